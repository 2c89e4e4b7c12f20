/*
 * NBD client behind the blk_backend interface: card-ebs reaches the remote
 * volume (EBS-2) through it.  Fixed newstyle negotiation (NBD_OPT_GO, falling
 * back to NBD_OPT_EXPORT_NAME), simple replies.
 *
 * Thread-safe and pipelined: any number of threads may call the backend at
 * once; their requests (up to 64) are in flight together on one connection
 * and replies, in any order, are matched by handle.  read/write block until
 * their request is done (a call larger than the server's maximum is split
 * into requests that are in flight together too); submit does not: the
 * receiver thread runs the request's done() when the reply is in, and fails
 * it with -EIO once past its deadline (late by at most one reconnect
 * attempt when the connection is down at that moment).
 *
 * Everything the server sends is untrusted and validated.  A broken
 * connection (EOF, reset, malformed reply, ESHUTDOWN, a request unanswered
 * for twice retry_timeout_ms) is torn down by a receiver thread owned by the
 * backend, which reconnects with backoff (50 ms doubling to 1 s) and re-sends
 * every request still in flight.  A request that has not succeeded
 * retry_timeout_ms after it started returns -EIO; its buffer is never
 * touched afterwards, even if the reply comes late.  An error reply from the
 * server (EINVAL, ENOSPC, EIO...) is a definitive answer and is returned as
 * is.
 *
 * Durability across reconnects: writes, discards and write-zeroes
 * acknowledged since the last successful flush are kept in a replay log and
 * re-sent, in the order they were acknowledged, to the new connection before
 * anything else, so a flush that succeeds makes every write acknowledged
 * before it was sent durable even if the server restarted in between.  (A
 * flush does not cover writes acknowledged while it was in flight: they stay
 * in the log.)  If the log overflows replay_cap_bytes and a reconnect
 * happens, the next flush returns -EIO once (data may be lost).  The log
 * lives in a reserved, reused mapping of replay_cap_bytes (pages stay
 * resident once written); "unlimited" reserves up to 64 GiB.
 */
#ifndef FLINT_CARDS_EBS_NBD_CLIENT_H
#define FLINT_CARDS_EBS_NBD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "blk_backend.h"

struct nbd_client_config {
	/* "unix:PATH", "/PATH" (unix socket), "IPv4:PORT" or "[IPv6]:PORT" (TCP),
	 * read by endpoint.h. */
	const char *endpoint;
	const char *export_name;   /* NULL or "" = the default export */
	uint32_t retry_timeout_ms; /* 0 = 30000 */
	uint64_t replay_cap_bytes; /* 0 = 64 MiB; UINT64_MAX = unlimited (64 GiB) */
	/*
	 * Makes each connection; NULL: the client connects to endpoint itself.
	 * A jailed card-ebs passes storage_dialer_dial (storage_dialer.h): its
	 * jail has no socket() or connect(), a helper connects for it.  Returns
	 * a connected, non-blocking stream socket or -errno, and gives up at
	 * deadline_ms (CLOCK_MONOTONIC) or with -ECANCELED once cancel_fd is
	 * readable (the client is closing).
	 */
	int (*dial)(void *dial_ctx, int cancel_fd, uint64_t deadline_ms);
	void *dial_ctx;
};

/*
 * Connects and negotiates (retrying connection failures until
 * retry_timeout_ms; an explicit refusal by the server fails at once), starts
 * the receiver thread and fills *out.  discard / write_zeroes are NULL when
 * the server does not advertise them.  Returns 0 or a negative errno with a
 * message in err.  close() says goodbye (NBD_CMD_DISC), stops the thread and
 * frees everything; no call may be in progress then.
 */
int nbd_backend_open(struct blk_backend *out, const struct nbd_client_config *cfg,
		     char *err, size_t errlen);

/* Counters for tests and monitoring (any thread). */
struct nbd_client_stats {
	uint64_t reconnects;     /* successful connections after the first */
	uint64_t retries;        /* requests re-sent after a connection failure */
	uint64_t proto_errors;   /* malformed / unexpected server messages */
};
void nbd_backend_stats(const struct blk_backend *b, struct nbd_client_stats *st);

#endif
