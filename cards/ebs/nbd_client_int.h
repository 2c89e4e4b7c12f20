/*
 * The NBD client for card-ebs from the inside: the state its parts share.
 * The contract is nbd_client.h.  The parts: nbd_client.c (the callers and
 * the client's lifetime), nbd_slots.c (the in-flight table and the send
 * token) and nbd_receiver.c (the receiver thread); below them nbd_conn.c
 * (one connection: socket I/O and negotiation) and nbd_replay_log.c.
 *
 * Pipelining.  A caller takes one slot of an in-flight table per request,
 * sends the request itself and sleeps on the slot.  One receiver thread per
 * client reads every reply, matches it to its slot by handle and wakes that
 * caller.  The receiver alone deals with a broken connection: it reconnects
 * with backoff, replays the log and re-sends what was in flight; callers
 * never reconnect.  Every socket operation is non-blocking and bounded by a
 * deadline, so a silent or slow server delays a caller by at most
 * retry_timeout_ms.  Nothing the server sends is trusted: each reply is
 * checked (magic, handle of a request in flight) before any payload byte is
 * accepted.
 *
 * Thread safety:
 * - c->lock guards the slot table, the connection state (fd, gen, up, the
 *   send token and its queue), log_seq and the stats.  It is never held
 *   across socket I/O or a payload copy.
 * - Sends are serialized by a token, handed over in FIFO order under the
 *   lock and held without it for one request, so a large WRITE never stalls
 *   the receiver.  While the connection is down the receiver holds the
 *   token: replay and re-sends reach a new connection before new requests.
 * - Only the receiver installs or closes c->fd, and it closes it only while
 *   holding the token, so a sender's fd stays valid for its whole send.  It
 *   shuts the socket down first so that a blocked sender lets go.
 * - The receiver touches a caller's buffer only while the slot is pinned
 *   (busy > 0).  A caller that gives up waits for the pins to go, abandons
 *   the slot and returns; its buffers are never touched again (a late READ
 *   payload goes to scratch).  A READ payload is pinned one recv() at a
 *   time; a WRITE payload while it is copied into the log, or re-sent
 *   (bounded by the caller's deadline).
 * - The replay log belongs to the receiver; log_seq, which numbers its
 *   entries, is under the lock: callers read it to mark a flush.
 */
#ifndef FLINT_CARDS_EBS_NBD_CLIENT_INT_H
#define FLINT_CARDS_EBS_NBD_CLIENT_INT_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "endpoint.h"
#include "log_limit.h"
#include "nbd_client.h"
#include "nbd_proto.h"
#include "nbd_replay_log.h"

#define BACKOFF_MIN_MS 50U
#define BACKOFF_MAX_MS 1000U

#define NSLOTS 64        /* requests in flight on the connection */
#define HANDLE_IDX_BITS 8
#define HANDLE_IDX_MASK ((1U << HANDLE_IDX_BITS) - 1)
#define OWN_HANDLE HANDLE_IDX_MASK /* replay and DISC: never a slot */

_Static_assert(NSLOTS <= OWN_HANDLE, "slot indices must fit in a handle");

enum slot_state { SLOT_FREE, SLOT_PENDING, SLOT_DONE, SLOT_ABANDONED };

struct slot {
	pthread_cond_t cv;  /* only the owner waits: token, completion, unpin */
	enum slot_state state;
	int busy;           /* pins: the receiver is using the caller's buffer */
	int unpin_wait;     /* the caller gave up and waits for the pins to go */
	int granted;        /* the send token was handed to this slot */
	int result;
	int next;           /* free list / send queue link, -1 = end */
	uint16_t type;
	uint32_t length;
	uint64_t handle;
	uint64_t offset;
	const void *wbuf;
	void *rbuf;
	uint64_t deadline;  /* the caller's, ms */
	uint64_t sent_gen;  /* connection it was last sent on; 0 = not yet */
	uint64_t sent_ms;
	uint64_t mark;      /* FLUSH: log_seq when sent */
	struct blk_aio *aio; /* submit(): nobody waits, the receiver completes it */
};

struct nbd_client {
	pthread_mutex_t lock;
	pthread_cond_t slot_cv;  /* a slot was freed */
	pthread_cond_t rx_cv;    /* receiver: work, stop, token released */
	pthread_t rx;
	int wake_fd;             /* eventfd: interrupts the receiver's waits at close */

	struct endpoint ep;
	int (*dial)(void *dial_ctx, int cancel_fd, uint64_t deadline_ms);
	void *dial_ctx;
	char *export_name;
	uint32_t timeout_ms;

	uint64_t size;           /* as the server reports it */
	uint16_t tflags;
	uint32_t block_size;
	uint32_t max_payload;    /* may shrink on reconnect (lock) */

	int fd;                  /* -1: no live connection (receiver writes) */
	uint64_t gen;            /* bumped per connection */
	int up;                  /* callers may send */
	int send_busy;           /* the send token is taken */
	int sending;             /* slot whose request submit() is sending, -1 */
	int rx_owns_send;        /* ...by the receiver, until reconnected */
	int rx_wants_send;
	int sendq_head, sendq_tail;
	int fresh_work;          /* a request arrived while disconnected */
	int stopping;
	int aborting;            /* set_abort: everything fails at once */
	int last_err;            /* why the connection last failed (errno) */
	struct log_limit giveup_log;
	uint32_t rx_backoff;     /* receiver only: next pause before reconnecting */

	struct slot slots[NSLOTS];
	int free_head;
	int aio_head, aio_tail;  /* finished aio slots, their done() still to run */
	uint64_t handle_seq;

	/* Writes, trims and write-zeroes acknowledged since the last flush. */
	struct replay_log log;
	uint64_t log_seq;        /* last sequence number given to one (lock) */
	struct nbd_client_stats stats;
};

/* Condition variables run on CLOCK_MONOTONIC, like every deadline here. */
static inline int cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000),
			       .tv_nsec = (long)(deadline % 1000) * 1000000 };
	return pthread_cond_timedwait(cv, m, &ts);
}

/* ---- slots and the send token (nbd_slots.c; all under c->lock) ---- */

struct slot *nbd_slot_get(struct nbd_client *c, uint64_t deadline, int wait);
void nbd_slot_put(struct nbd_client *c, struct slot *s);
void nbd_slot_finish(struct nbd_client *c, struct slot *s, int result);
void nbd_slot_unpin_locked(struct slot *s);
int nbd_slot_in_flight(const struct nbd_client *c, const struct slot *s);
struct slot *nbd_slot_for_reply(struct nbd_client *c, uint64_t handle);
void nbd_send_release(struct nbd_client *c);
int nbd_send_acquire(struct nbd_client *c, struct slot *s);
/* Unlocked. */
void nbd_slot_unpin(struct nbd_client *c, struct slot *s);
void nbd_aio_run_done(struct nbd_client *c);

/* ---- callers (nbd_client.c) ---- */

int nbd_give_up(struct nbd_client *c, const struct nbd_request *rq);

/* ---- the receiver (nbd_receiver.c) ---- */

int nbd_receiver_start(struct nbd_client *c);
uint64_t nbd_aio_expire(struct nbd_client *c); /* unlocked */

#endif
