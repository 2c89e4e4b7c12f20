/*
 * card-ebs's storage dialer: the only way a jailed card-ebs gets a new
 * connection to its storage server (privilege separation, as OpenBSD's
 * privsep daemons and vmd do it).
 *
 * connect() cannot be filtered by address, so the card's jail allows no
 * socket() and no connect() at all.  Before the jail (and before it holds
 * any key) the card starts a small helper process that knows one thing:
 * the configured storage endpoint.  The helper keeps no descriptor but its
 * end of a socketpair, enters a seccomp filter of its own (a stream socket
 * of the endpoint's family, connect, poll, the socketpair: nothing else),
 * and on each request connects to that endpoint and passes the connected
 * socket back over SCM_RIGHTS.  It exits when the card's end closes.  A
 * compromised card can thus reach its own storage server and nothing else;
 * a compromised helper holds no key and no guest memory.
 */
#ifndef FLINT_CARDS_EBS_STORAGE_DIALER_H
#define FLINT_CARDS_EBS_STORAGE_DIALER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "endpoint.h"

struct storage_dialer {
	int sock;     /* the card's end of the socketpair; -1 once stopped */
	pid_t helper; /* the helper process */
	uint32_t seq; /* number of the last request: older replies are stale */
};

/*
 * Starts the helper for ep (fork: call it while the process has one
 * thread, before any key is in memory).  Returns 0, or -errno with a
 * message in err.
 */
int storage_dialer_start(struct storage_dialer *d, const struct endpoint *ep,
			 char *err, size_t errlen);

/*
 * A new connection to the endpoint, made by the helper: a connected,
 * non-blocking, close-on-exec stream socket, or -errno (the helper's
 * connect error, -ETIMEDOUT at deadline_ms on CLOCK_MONOTONIC, -ECANCELED
 * once cancel_fd is readable, -EPIPE when the helper is gone).  One caller
 * at a time.  The signature of nbd_client_config's dial; ctx is the
 * struct storage_dialer.
 */
int storage_dialer_dial(void *ctx, int cancel_fd, uint64_t deadline_ms);

/*
 * Closes the card's end, which ends the helper.  Returns the helper's pid
 * for a caller that may reap it (a jailed card may not: its zombie goes
 * when the card exits).
 */
pid_t storage_dialer_stop(struct storage_dialer *d);

/* The helper's own jail, for tests: 0 or -1. */
int storage_dialer_enter_jail(const struct endpoint *ep);

/* How many syscalls the helper's jail allows (docs, tests). */
unsigned int storage_dialer_syscall_count(void);

#endif
