/*
 * card-ebs's NBD replay log: the writes, trims and write-zeroes the server
 * acknowledged that no successful flush covers yet, kept to be re-sent, in
 * the order they were acknowledged, to a new connection (nbd_client.h:
 * durability across reconnects).
 *
 * A plain data structure: values in, values out, no locking and no I/O.
 * The NBD client's receiver owns it; the sequence numbers it is given (one
 * per acknowledgement, increasing) are the client's, and a flush is marked
 * with the last one given out when the flush was sent.
 *
 * Entries are a 64-byte header and the payload, rounded up to 64 bytes, in
 * a ring of the capacity's bytes, mapped at the first append (pages stay
 * resident once written: the ring starts over at its beginning whenever it
 * empties, to touch as few pages as it can).  A capacity of UINT64_MAX or
 * more than 64 GiB means as much as one reservation of 64 GiB allows.
 *
 * Overflow: an entry that does not fit (or a ring that cannot be mapped)
 * empties the log and makes it incomplete: it no longer holds everything
 * acknowledged since the last flush, so nothing more is logged until a
 * flush covers the last acknowledgement it missed.  A reconnection while
 * incomplete may have lost data, and so may a replayed entry the new
 * server refused: the log then reports a loss, once (replay_log_take_loss),
 * for the next flush to return.
 */
#ifndef FLINT_CARDS_EBS_NBD_REPLAY_LOG_H
#define FLINT_CARDS_EBS_NBD_REPLAY_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* The log's own state: read and changed only through the functions below. */
struct replay_log {
	uint8_t *base;       /* NULL until the first entry */
	uint64_t size;       /* usable bytes of the ring */
	uint64_t want;       /* size to map */
	int map_failed;
	/* Live bytes: [head, tail), or [head, wrap) then [0, tail) if wrapped. */
	uint64_t head, tail, wrap;
	int wrapped;
	uint64_t count;
	uint64_t unlogged;   /* last sequence missing from the log */
	int incomplete;      /* entries are missing since the last flush */
	int lost;            /* reconnected with entries missing: flush fails */
};

/* One logged request, as replay_log_next returns it. */
struct replay_entry {
	uint64_t seq;
	uint16_t type;          /* the NBD command */
	uint64_t offset;
	uint32_t length;
	const void *payload;    /* length bytes inside the log, or NULL */
};

/* Where a walk through the log is: from replay_log_begin. */
struct replay_cursor {
	uint64_t pos;
	uint64_t left;
};

/* An empty log of cap_bytes; nothing is mapped yet. */
void replay_log_init(struct replay_log *l, uint64_t cap_bytes);

/* Unmaps the ring. */
void replay_log_destroy(struct replay_log *l);

/*
 * Records the request acknowledged as seq (greater than any before): a
 * payload of length bytes is copied (NULL: none, as for a trim).  An entry
 * that does not fit makes the log incomplete instead.
 */
void replay_log_append(struct replay_log *l, uint64_t seq, uint16_t type, uint64_t offset,
		       uint32_t length, const void *payload);

/*
 * A flush sent when mark was the last sequence given out succeeded: every
 * entry up to mark is durable and leaves the log, and so does the
 * incompleteness if mark covers what was missed.
 */
void replay_log_flushed(struct replay_log *l, uint64_t mark);

/* Entries in the log. */
uint64_t replay_log_count(const struct replay_log *l);

/*
 * A walk through the entries, oldest first: replay_log_next fills e and
 * returns true until there are no more.  Appending or flushing ends a walk.
 */
struct replay_cursor replay_log_begin(const struct replay_log *l);
bool replay_log_next(const struct replay_log *l, struct replay_cursor *cur,
		     struct replay_entry *e);

/* A new connection was made: if entries were missing, data may be lost. */
void replay_log_reconnected(struct replay_log *l);

/* Replaying an entry failed: data may be lost. */
void replay_log_mark_lost(struct replay_log *l);

/* Whether data may have been lost since last asked (then cleared). */
bool replay_log_take_loss(struct replay_log *l);

#endif
