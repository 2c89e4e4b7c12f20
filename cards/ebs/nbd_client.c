/*
 * NBD client for card-ebs: see nbd_client.h for the contract.
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
#include "nbd_client.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"
#include "log.h"
#include "log_limit.h"
#include "nbd_conn.h"
#include "nbd_proto.h"
#include "nbd_replay_log.h"
#include "storage_connect.h"

#define DEFAULT_TIMEOUT_MS 30000U
#define DEFAULT_REPLAY_CAP (64ULL << 20)
#define BACKOFF_MIN_MS 50U
#define BACKOFF_MAX_MS 1000U
#define ZERO_CHUNK (1ULL << 30) /* TRIM / WRITE_ZEROES per request */

#define NSLOTS 64        /* requests in flight on the connection */
#define CALL_WINDOW 16   /* chunks of one call in flight at once */
#define HANDLE_IDX_BITS 8
#define HANDLE_IDX_MASK ((1U << HANDLE_IDX_BITS) - 1)
#define OWN_HANDLE HANDLE_IDX_MASK /* replay and DISC: never a slot */
#define SINK_LEN 16384U

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
	int rx_started;
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

static int give_up(struct nbd_client *c, const struct nbd_request *rq);

/* Condition variables run on CLOCK_MONOTONIC, like every deadline here. */
static int cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000),
			       .tv_nsec = (long)(deadline % 1000) * 1000000 };
	return pthread_cond_timedwait(cv, m, &ts);
}

static int cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	if (pthread_condattr_init(&a) != 0)
		return -ENOMEM;
	int r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return -r;
}

/* ---- connecting ---- */

/* The dial of a client that connects by itself (no storage dialer). */
static int dial_endpoint(void *ep, int cancel_fd, uint64_t deadline_ms)
{
	return storage_connect(ep, cancel_fd, deadline_ms);
}

static int connect_socket(struct nbd_client *c, uint64_t deadline)
{
	return c->dial(c->dial_ctx, c->wake_fd, deadline);
}

/* ---- slots and the send token (all under c->lock) ---- */

static struct slot *slot_get(struct nbd_client *c, uint64_t deadline, int wait)
{
	while (c->free_head < 0) {
		if (!wait || c->aborting)
			return NULL;
		if (cond_wait_until(&c->slot_cv, &c->lock, deadline) == ETIMEDOUT &&
		    c->free_head < 0)
			return NULL;
	}
	struct slot *s = &c->slots[c->free_head];
	c->free_head = s->next;
	return s;
}

static void slot_put(struct nbd_client *c, struct slot *s)
{
	s->state = SLOT_FREE;
	s->wbuf = NULL;
	s->rbuf = NULL;
	s->next = c->free_head;
	c->free_head = (int)(s - c->slots);
	pthread_cond_broadcast(&c->slot_cv);
}

/* The receiver is done with a request: hand the verdict to its caller. */
static void slot_finish(struct nbd_client *c, struct slot *s, int result)
{
	if (s->state == SLOT_ABANDONED) {
		slot_put(c, s);
		return;
	}
	s->state = SLOT_DONE;
	s->result = result;
	if (s->aio == NULL) {
		pthread_cond_signal(&s->cv);
		return;
	}
	/* Queued: done() runs without the lock (aio_run_done). */
	s->next = -1;
	if (c->aio_tail >= 0)
		c->slots[c->aio_tail].next = (int)(s - c->slots);
	else
		c->aio_head = (int)(s - c->slots);
	c->aio_tail = (int)(s - c->slots);
}

/*
 * Receiver, unlocked: runs done() of every finished aio request.  The slot
 * is free before done() runs, so done() may submit again.
 */
static void aio_run_done(struct nbd_client *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->aio_head >= 0) {
		struct slot *s = &c->slots[c->aio_head];
		c->aio_head = s->next;
		if (c->aio_head < 0)
			c->aio_tail = -1;
		struct blk_aio *io = s->aio;
		int r = s->result;
		s->aio = NULL;
		slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		io->done(io, r);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Lock held.  Wakes the caller only if it waits for this (no extra switch otherwise). */
static void slot_unpin_locked(struct slot *s)
{
	if (--s->busy == 0 && s->unpin_wait)
		pthread_cond_signal(&s->cv);
}

static void slot_unpin(struct nbd_client *c, struct slot *s)
{
	pthread_mutex_lock(&c->lock);
	slot_unpin_locked(s);
	pthread_mutex_unlock(&c->lock);
}

/* In flight on the live connection: a reply may still come for it. */
static int slot_in_flight(const struct nbd_client *c, const struct slot *s)
{
	return c->fd >= 0 && s->sent_gen == c->gen &&
	       (s->state == SLOT_PENDING || s->state == SLOT_ABANDONED);
}

static struct slot *slot_for_reply(struct nbd_client *c, uint64_t handle)
{
	uint32_t idx = (uint32_t)(handle & HANDLE_IDX_MASK);
	if (idx >= NSLOTS)
		return NULL;
	struct slot *s = &c->slots[idx];
	return s->handle == handle && slot_in_flight(c, s) ? s : NULL;
}

/*
 * Whoever releases the token hands it on: to the receiver if it waits (it
 * must tear a connection down), else to the first queued sender.
 */
static void send_release(struct nbd_client *c)
{
	c->sending = -1;
	if (c->rx_wants_send) {
		c->send_busy = 0;
		pthread_cond_broadcast(&c->rx_cv);
		return;
	}
	if (!c->up || c->sendq_head < 0) {
		c->send_busy = 0;
		return;
	}
	struct slot *s = &c->slots[c->sendq_head];
	c->sendq_head = s->next;
	if (c->sendq_head < 0)
		c->sendq_tail = -1;
	s->granted = 1;
	pthread_cond_signal(&s->cv);
}

static void sendq_remove(struct nbd_client *c, struct slot *s)
{
	int idx = (int)(s - c->slots), prev = -1;
	for (int i = c->sendq_head; i >= 0; prev = i, i = c->slots[i].next) {
		if (i != idx)
			continue;
		if (prev < 0)
			c->sendq_head = s->next;
		else
			c->slots[prev].next = s->next;
		if (c->sendq_tail == idx)
			c->sendq_tail = prev;
		return;
	}
}

/* Waits for the send token (FIFO) until the slot's deadline. */
static int send_acquire(struct nbd_client *c, struct slot *s)
{
	if (c->up && !c->send_busy) {
		c->send_busy = 1;
		return 0;
	}
	int idx = (int)(s - c->slots);
	s->granted = 0;
	s->next = -1;
	if (c->sendq_tail >= 0)
		c->slots[c->sendq_tail].next = idx;
	else
		c->sendq_head = idx;
	c->sendq_tail = idx;
	while (!s->granted) {
		if (cond_wait_until(&s->cv, &c->lock, s->deadline) == ETIMEDOUT && !s->granted) {
			sendq_remove(c, s);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

/* ---- the receiver: replies ---- */

static int proto_error(struct nbd_client *c, const uint8_t *rb, const char *what)
{
	pthread_mutex_lock(&c->lock);
	c->stats.proto_errors++;
	pthread_mutex_unlock(&c->lock);
	log_warn("nbd: %s (magic 0x%08x, handle 0x%" PRIx64 ")", what, nbd_get32(rb),
		 nbd_get64(rb + 8));
	return -EPROTO;
}

/*
 * One recv() of a READ payload (lock held around it, not during it): into
 * the caller's buffer, pinned, while the caller waits; to scratch once it
 * gave up.  Returns the byte count, 0 at EOF, or -errno.
 */
static ssize_t rx_recv_chunk(struct nbd_client *c, int fd, struct slot *s, uint32_t done,
			     uint8_t *sink)
{
	int mine = s->state == SLOT_PENDING;
	s->busy += mine;
	pthread_mutex_unlock(&c->lock);
	size_t want = s->length - done;
	if (!mine && want > SINK_LEN)
		want = SINK_LEN;
	ssize_t n = recv(fd, mine ? (uint8_t *)s->rbuf + done : sink, want, MSG_DONTWAIT);
	int e = errno;
	pthread_mutex_lock(&c->lock);
	if (mine)
		slot_unpin_locked(s);
	return n < 0 ? -e : n;
}

static int rx_read_payload(struct nbd_client *c, int fd, struct slot *s)
{
	uint8_t sink[SINK_LEN];
	uint64_t deadline = storage_now_ms() + c->timeout_ms;
	uint32_t done = 0;
	int r = 0;
	pthread_mutex_lock(&c->lock);
	while (r == 0 && done < s->length) {
		ssize_t n = rx_recv_chunk(c, fd, s, done, sink);
		if (n > 0)
			done += (uint32_t)n;
		else if (n == 0)
			r = -ECONNRESET;
		else if (n != -EINTR && n != -EAGAIN && n != -EWOULDBLOCK)
			r = (int)n;
		else if (n != -EINTR) {
			pthread_mutex_unlock(&c->lock);
			int ev = storage_wait_fd(fd, POLLIN, c->wake_fd, deadline);
			pthread_mutex_lock(&c->lock);
			r = ev < 0 ? ev : 0;
		}
	}
	if (r == 0)
		slot_finish(c, s, 0);
	pthread_mutex_unlock(&c->lock);
	return r;
}

static void rx_mutation_done(struct nbd_client *c, struct slot *s)
{
	pthread_mutex_lock(&c->lock);
	/* An abandoned request's buffer is gone: it cannot be logged. */
	int logged = s->state == SLOT_PENDING && (c->tflags & NBD_FLAG_SEND_FLUSH);
	uint64_t seq = logged ? ++c->log_seq : 0;
	s->busy += logged;
	pthread_mutex_unlock(&c->lock);
	/* Pinned: its buffer is still there. */
	if (logged)
		replay_log_append(&c->log, seq, s->type, s->offset, s->length,
				  s->type == NBD_CMD_WRITE ? s->wbuf : NULL);
	pthread_mutex_lock(&c->lock);
	if (logged)
		slot_unpin_locked(s);
	slot_finish(c, s, 0);
	pthread_mutex_unlock(&c->lock);
}

static void rx_flush_done(struct nbd_client *c, struct slot *s)
{
	replay_log_flushed(&c->log, s->mark);
	pthread_mutex_lock(&c->lock);
	int r = 0;
	if (s->state == SLOT_PENDING && replay_log_take_loss(&c->log))
		r = -EIO;
	slot_finish(c, s, r);
	pthread_mutex_unlock(&c->lock);
	if (r != 0)
		log_err("nbd: writes acknowledged before a server restart may be lost");
}

/* One reply whose header is in rb. */
static int rx_dispatch(struct nbd_client *c, int fd, const uint8_t *rb)
{
	struct nbd_simple_reply rep;
	if (nbd_decode_simple_reply(rb, NBD_SIMPLE_REPLY_LEN, &rep) != 0)
		return proto_error(c, rb, "malformed reply");
	pthread_mutex_lock(&c->lock);
	/* In flight here, so only the receiver can free it: s stays valid. */
	struct slot *s = slot_for_reply(c, rep.handle);
	int err = rep.error ? nbd_error_to_errno(rep.error) : 0;
	if (s != NULL && err != 0 && err != -ESHUTDOWN)
		slot_finish(c, s, err); /* the server's verdict, final */
	pthread_mutex_unlock(&c->lock);
	if (s == NULL)
		return proto_error(c, rb, "reply for no request in flight");
	if (err != 0)
		return err == -ESHUTDOWN ? -ESHUTDOWN : 0; /* going away: retry elsewhere */
	switch (s->type) {
	case NBD_CMD_READ:
		return rx_read_payload(c, fd, s);
	case NBD_CMD_FLUSH:
		rx_flush_done(c, s);
		return 0;
	default:
		rx_mutation_done(c, s);
		return 0;
	}
}

/*
 * Waits until idle_deadline for a reply and processes it.  Returns 0,
 * -EAGAIN if none started arriving, or an error: the connection is unusable.
 */
static int rx_one(struct nbd_client *c, int fd, uint64_t idle_deadline)
{
	uint8_t rb[NBD_SIMPLE_REPLY_LEN];
	ssize_t n;
	for (;;) {
		n = recv(fd, rb, sizeof(rb), MSG_DONTWAIT);
		if (n > 0)
			break;
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = storage_wait_fd(fd, POLLIN, c->wake_fd, idle_deadline);
		if (r == -ETIMEDOUT)
			return -EAGAIN;
		if (r < 0)
			return r;
	}
	if ((size_t)n < sizeof(rb)) {
		int r = nbd_conn_recv_all(fd, c->wake_fd, rb + n, sizeof(rb) - (size_t)n,
					  storage_now_ms() + c->timeout_ms);
		if (r != 0)
			return r;
	}
	return rx_dispatch(c, fd, rb);
}

/*
 * Receiver, unlocked: fails every aio request past its deadline with -EIO,
 * as collect() does for a waiting caller (an answer in flight is left to
 * the receiver, which drops it).  Skipped: requests still inside submit()
 * (it has its own deadline) and those whose buffer is in use right now.
 * Returns when to look again (ms, UINT64_MAX: nothing to watch).
 */
static uint64_t aio_expire(struct nbd_client *c)
{
	struct blk_aio *dead[NSLOTS];
	struct nbd_request rq[NSLOTS];
	int n = 0;
	uint64_t now = storage_now_ms(), next = UINT64_MAX;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < NSLOTS; i++) {
		struct slot *s = &c->slots[i];
		if (s->aio == NULL || s->state != SLOT_PENDING || s->sent_gen == 0)
			continue;
		uint64_t when = s->deadline;
		if (when <= now && (s->busy > 0 || c->sending == i))
			when = now + 10; /* a pinned buffer is let go within a recv or send */
		if (when > now) {
			next = when < next ? when : next;
			continue;
		}
		dead[n] = s->aio;
		rq[n++] = (struct nbd_request){ .type = s->type, .offset = s->offset,
						.length = s->length };
		s->aio = NULL;
		if (slot_in_flight(c, s))
			s->state = SLOT_ABANDONED; /* freed when its reply comes */
		else
			slot_put(c, s);
	}
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < n; i++)
		dead[i]->done(dead[i], give_up(c, &rq[i]));
	return next;
}

/*
 * A request unanswered for twice the timeout (its caller gave up after one)
 * means a hung server: without this its slots would never come back.
 */
static int rx_overdue(struct nbd_client *c)
{
	uint64_t now = storage_now_ms(), limit = 2ULL * c->timeout_ms;
	int overdue = 0;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < NSLOTS && !overdue; i++)
		overdue = slot_in_flight(c, &c->slots[i]) && now - c->slots[i].sent_ms >= limit;
	pthread_mutex_unlock(&c->lock);
	return overdue;
}

/* Serves the live connection until it fails; returns why. */
static int rx_serve(struct nbd_client *c)
{
	uint64_t check = storage_now_ms() + c->timeout_ms;
	for (;;) {
		uint64_t expiry = aio_expire(c);
		int r = rx_one(c, c->fd, expiry < check ? expiry : check);
		aio_run_done(c);
		if (r == 0)
			c->rx_backoff = BACKOFF_MIN_MS; /* a working connection, not just a handshake */
		if (r != 0 && r != -EAGAIN)
			return r;
		/* Busy or idle, once a timeout: other replies may flow past a lost one. */
		uint64_t now = storage_now_ms();
		if (now < check)
			continue;
		check = now + c->timeout_ms;
		if (rx_overdue(c)) {
			log_warn("nbd: no reply for %u ms", 2 * c->timeout_ms);
			return -ETIMEDOUT;
		}
	}
}

/* ---- the receiver: losing and regaining the connection ---- */

static int rx_stopping(struct nbd_client *c)
{
	pthread_mutex_lock(&c->lock);
	int s = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* Sweeps slots that can get no reply any more: their callers are gone. */
static void free_abandoned(struct nbd_client *c)
{
	for (int i = 0; i < NSLOTS; i++)
		if (c->slots[i].state == SLOT_ABANDONED)
			slot_put(c, &c->slots[i]);
}

/* Stops new sends, takes the send token (kept until reconnected), closes. */
static void conn_drop(struct nbd_client *c, int why)
{
	pthread_mutex_lock(&c->lock);
	c->up = 0;
	c->last_err = -why;
	int fd = c->fd;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR); /* a sender blocked on it fails at once */
	if (!c->rx_owns_send) {
		c->rx_wants_send = 1;
		while (c->send_busy)
			pthread_cond_wait(&c->rx_cv, &c->lock);
		c->rx_wants_send = 0;
		c->send_busy = 1;
		c->rx_owns_send = 1;
	}
	c->fd = -1;
	free_abandoned(c);
	pthread_mutex_unlock(&c->lock);
	if (fd >= 0)
		close(fd);
}

static int has_pending(const struct nbd_client *c)
{
	for (int i = 0; i < NSLOTS; i++)
		if (c->slots[i].state == SLOT_PENDING)
			return 1;
	return 0;
}

/*
 * Backoff before the next attempt, cut short by a request that has not been
 * tried yet (as when each request retried on its own); then, with nothing
 * to do, waits for a request: an idle client does not hammer a dead server.
 */
static int rx_pause(struct nbd_client *c)
{
	uint64_t until = storage_now_ms() + c->rx_backoff;
	pthread_mutex_lock(&c->lock);
	while (!c->stopping && !c->fresh_work && storage_now_ms() < until)
		cond_wait_until(&c->rx_cv, &c->lock, until);
	int fresh = c->fresh_work;
	while (!c->stopping && !has_pending(c)) {
		fresh = 1;
		pthread_cond_wait(&c->rx_cv, &c->lock);
	}
	c->fresh_work = 0;
	int stop = c->stopping;
	pthread_mutex_unlock(&c->lock);
	c->rx_backoff = fresh ? BACKOFF_MIN_MS :
			c->rx_backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->rx_backoff * 2;
	return stop ? -ECANCELED : 0;
}

static int same_export(const struct nbd_client *c, const struct nbd_export_info *in, uint32_t bs)
{
	const uint16_t keep = NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_TRIM |
			      NBD_FLAG_SEND_WRITE_ZEROES;
	return in->size == c->size && bs == c->block_size && (in->flags & keep) == (c->tflags & keep);
}

/* Connect, negotiate, check it is the same export, install it. */
static int connect_again(struct nbd_client *c)
{
	uint64_t deadline = storage_now_ms() + c->timeout_ms;
	struct nbd_neg_result res;
	int fd = connect_socket(c, deadline);
	if (fd < 0)
		return fd;
	int r = nbd_negotiate(fd, c->wake_fd, c->export_name, deadline, &res);
	if (r != 0) {
		pthread_mutex_lock(&c->lock);
		c->stats.proto_errors += r == -EPROTO;
		pthread_mutex_unlock(&c->lock);
		log_warn("nbd: reconnect: %s", res.msg);
		close(fd);
		return r;
	}
	uint32_t bs, maxp;
	if (nbd_export_geometry(&res.info, &bs, &maxp, res.msg, sizeof(res.msg)) != 0 ||
	    !same_export(c, &res.info, bs)) {
		log_warn("nbd: reconnect: the export changed (size %" PRIu64 " flags 0x%x): refusing it",
			 res.info.size, res.info.flags);
		close(fd);
		return -ESTALE;
	}
	pthread_mutex_lock(&c->lock);
	c->fd = fd;
	c->gen++;
	if (maxp < c->max_payload)
		c->max_payload = maxp;
	c->stats.reconnects++;
	pthread_mutex_unlock(&c->lock);
	replay_log_reconnected(&c->log);
	return 0;
}

/* Sequentially, in order: overlapping writes must land as acknowledged. */
static int replay_log(struct nbd_client *c, int fd)
{
	struct replay_cursor cur = replay_log_begin(&c->log);
	struct replay_entry e;
	while (replay_log_next(&c->log, &cur, &e)) {
		uint64_t deadline = storage_now_ms() + c->timeout_ms;
		struct nbd_request rq = { .type = e.type, .handle = OWN_HANDLE, .offset = e.offset,
					  .length = e.length };
		uint8_t rb[NBD_SIMPLE_REPLY_LEN];
		struct nbd_simple_reply rep;
		int r = nbd_conn_send_request(fd, c->wake_fd, &rq, e.payload, deadline);
		if (r == 0)
			r = nbd_conn_recv_all(fd, c->wake_fd, rb, sizeof(rb), deadline);
		if (r != 0)
			return r;
		if (nbd_decode_simple_reply(rb, sizeof(rb), &rep) != 0 || rep.handle != OWN_HANDLE)
			return proto_error(c, rb, "malformed reply to a replayed write");
		int err = rep.error ? nbd_error_to_errno(rep.error) : 0;
		if (err == -ESHUTDOWN)
			return err;
		if (err != 0) {
			log_warn("nbd: replaying an unflushed write failed: %s", strerror(-err));
			replay_log_mark_lost(&c->log);
		}
	}
	return 0;
}

/*
 * Sends a request on a new connection, processing the replies that come in
 * meanwhile: a server that blocks writing replies we do not read would stop
 * reading our requests.
 */
static int rx_send_serving(struct nbd_client *c, int fd, const struct nbd_request *rq,
			   const void *payload, uint64_t deadline)
{
	struct nbd_wire_request w;
	nbd_wire_request_init(&w, rq, payload);
	for (;;) {
		int r = nbd_conn_send_msg(fd, c->wake_fd, &w.msg, deadline, true);
		if (r <= 0)
			return r;
		r = rx_one(c, fd, 0);
		if (r != 0 && r != -EAGAIN)
			return r;
	}
}

static int resend_one(struct nbd_client *c, int fd, struct slot *s, uint64_t handle)
{
	pthread_mutex_lock(&c->lock);
	uint64_t now = storage_now_ms();
	/* Given up since (the caller frees it), or even freed and taken anew. */
	if (s->state != SLOT_PENDING || s->handle != handle || s->deadline <= now) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	int write = s->type == NBD_CMD_WRITE;
	s->busy += write;
	s->sent_gen = c->gen;
	s->sent_ms = now;
	s->mark = c->log_seq; /* everything logged was replayed just before */
	c->stats.retries++;
	struct nbd_request rq = { .type = s->type, .handle = s->handle, .offset = s->offset,
				  .length = s->length };
	const void *payload = s->wbuf;
	pthread_mutex_unlock(&c->lock);
	/* A pinned payload may hold its caller only until its deadline. */
	int r = rx_send_serving(c, fd, &rq, write ? payload : NULL,
				write ? s->deadline : now + c->timeout_ms);
	if (write)
		slot_unpin(c, s);
	return r;
}

/* Every request sent on a lost connection and still wanted, in handle (submission) order. */
static int resend_pending(struct nbd_client *c, int fd)
{
	struct { uint64_t handle; int idx; } todo[NSLOTS];
	int n = 0;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < NSLOTS; i++) {
		const struct slot *s = &c->slots[i];
		if (s->state != SLOT_PENDING || s->sent_gen == 0)
			continue;
		int j = n++;
		for (; j > 0 && todo[j - 1].handle > s->handle; j--)
			todo[j] = todo[j - 1];
		todo[j].handle = s->handle;
		todo[j].idx = i;
	}
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < n; i++) {
		int r = resend_one(c, fd, &c->slots[todo[i].idx], todo[i].handle);
		if (r != 0)
			return r;
	}
	return 0;
}

/* The new connection is ready: callers may send (queued ones first). */
static void conn_ready(struct nbd_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->up = 1;
	c->rx_owns_send = 0;
	c->last_err = 0;
	send_release(c);
	pthread_mutex_unlock(&c->lock);
}

static int rx_reconnect(struct nbd_client *c)
{
	for (;;) {
		/* Between attempts: aio requests past their deadline fail now. */
		aio_expire(c);
		if (rx_pause(c) != 0)
			return -ECANCELED;
		aio_expire(c);
		int r = connect_again(c);
		if (r == 0)
			r = replay_log(c, c->fd);
		if (r == 0)
			r = resend_pending(c, c->fd);
		if (r == 0) {
			conn_ready(c);
			return 0;
		}
		if (r == -ECANCELED)
			return r;
		conn_drop(c, r);
	}
}

static void *rx_main(void *arg)
{
	struct nbd_client *c = arg;
	for (;;) {
		int r = rx_serve(c);
		if (rx_stopping(c))
			break;
		log_warn("nbd: connection lost: %s", strerror(-r));
		conn_drop(c, r);
		if (rx_reconnect(c) != 0)
			break;
	}
	return NULL;
}

/* ---- callers ---- */

/* A request failed for good: logged, a few lines a minute at most (a stall fails many). */
static int give_up(struct nbd_client *c, const struct nbd_request *rq)
{
	uint64_t suppressed = 0;
	pthread_mutex_lock(&c->lock);
	int e = c->aborting ? ECANCELED : c->last_err ? c->last_err : ETIMEDOUT;
	bool say = log_limit_pass(&c->giveup_log, &suppressed);
	pthread_mutex_unlock(&c->lock);
	const char *why = e == ECANCELED ? "abandoned" : strerror(e);
	if (say && suppressed > 0)
		log_err("nbd: request (type %u, offset %" PRIu64 ", %u bytes) failed: %s "
			"(%" PRIu64 " similar suppressed)", rq->type, rq->offset, rq->length, why,
			suppressed);
	else if (say)
		log_err("nbd: request (type %u, offset %" PRIu64 ", %u bytes) failed: %s",
			rq->type, rq->offset, rq->length, why);
	return -EIO;
}

static void slot_fill(struct slot *s, const struct nbd_request *rq, const void *wbuf, void *rbuf,
		      uint64_t deadline, struct blk_aio *aio)
{
	s->aio = aio;
	s->state = SLOT_PENDING;
	s->busy = 0;
	s->unpin_wait = 0;
	s->granted = 0;
	s->result = 0;
	s->next = -1;
	s->type = rq->type;
	s->length = rq->length;
	s->handle = rq->handle;
	s->offset = rq->offset;
	s->wbuf = wbuf;
	s->rbuf = rbuf;
	s->deadline = deadline;
	s->sent_gen = 0;
	s->sent_ms = 0;
	s->mark = 0;
}

/*
 * Takes a slot (waiting for one only if wait is set) and sends the request.
 * Returns the slot index, -EAGAIN (no slot free) or -EIO (timed out).  A
 * failed send is not an error here: the receiver re-sends the request.
 * With aio the slot is the receiver's once sent: it completes and frees it
 * (possibly before this returns), so the index is not to be collected.
 */
static int submit(struct nbd_client *c, struct nbd_request *rq, const void *wbuf, void *rbuf,
		  int wait, struct blk_aio *aio)
{
	uint64_t deadline = storage_now_ms() + c->timeout_ms;
	pthread_mutex_lock(&c->lock);
	if (c->aborting) {
		pthread_mutex_unlock(&c->lock);
		return -EIO; /* quietly: the abort was reported by whoever asked for it */
	}
	struct slot *s = slot_get(c, deadline, wait);
	if (s == NULL) {
		pthread_mutex_unlock(&c->lock);
		return wait ? give_up(c, rq) : -EAGAIN;
	}
	int idx = (int)(s - c->slots);
	rq->handle = (++c->handle_seq << HANDLE_IDX_BITS) | (uint64_t)idx;
	slot_fill(s, rq, wbuf, rbuf, deadline, aio);
	if (!c->up) {
		c->fresh_work = 1;
		pthread_cond_broadcast(&c->rx_cv);
	}
	int r = send_acquire(c, s);
	if (r == 0 && storage_now_ms() >= deadline) {
		send_release(c); /* too late to start: a send cut short would break the connection */
		r = -ETIMEDOUT;
	}
	if (r != 0) {
		slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		return give_up(c, rq);
	}
	s->sent_gen = c->gen;
	s->sent_ms = storage_now_ms();
	s->mark = c->log_seq;
	c->sending = idx; /* an aio request is not expired while its payload goes out */
	int fd = c->fd;
	pthread_mutex_unlock(&c->lock);

	r = nbd_conn_send_request(fd, c->wake_fd, rq, rq->type == NBD_CMD_WRITE ? wbuf : NULL,
				  deadline);
	pthread_mutex_lock(&c->lock);
	if (r != 0) {
		c->last_err = -r;
		shutdown(fd, SHUT_RDWR); /* half a request went out: the receiver reconnects */
	}
	send_release(c);
	pthread_mutex_unlock(&c->lock);
	return idx;
}

/* Waits for a submitted request; returns its result or -EIO after its deadline. */
static int collect(struct nbd_client *c, int idx)
{
	struct slot *s = &c->slots[idx];
	pthread_mutex_lock(&c->lock);
	while (s->state != SLOT_DONE)
		if (cond_wait_until(&s->cv, &c->lock, s->deadline) == ETIMEDOUT)
			break;
	s->unpin_wait = 1;
	while (s->busy > 0)
		pthread_cond_wait(&s->cv, &c->lock);
	if (s->state == SLOT_DONE) {
		int r = s->result;
		slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	struct nbd_request rq = { .type = s->type, .offset = s->offset, .length = s->length };
	if (slot_in_flight(c, s))
		s->state = SLOT_ABANDONED; /* the receiver frees it when the reply comes */
	else
		slot_put(c, s);
	pthread_mutex_unlock(&c->lock);
	return give_up(c, &rq);
}

/*
 * One call split in chunks: independent requests, so up to CALL_WINDOW go
 * out before the first is waited for.  A caller holding slots never waits
 * for a free one (it collects its own first): callers cannot deadlock on
 * the table.  Returns the first error.
 */
static int run_chunks(struct nbd_client *c, uint16_t type, uint64_t off, uint64_t len,
		      uint64_t chunk, const uint8_t *wbuf, uint8_t *rbuf)
{
	int q[CALL_WINDOW];
	unsigned head = 0, n = 0;
	uint64_t done = 0;
	int first = 0;
	while ((first == 0 && done < len) || n > 0) {
		if (first == 0 && done < len && n < CALL_WINDOW) {
			uint64_t k = len - done < chunk ? len - done : chunk;
			struct nbd_request rq = { .type = type, .offset = off + done, .length = (uint32_t)k };
			int idx = submit(c, &rq, wbuf ? wbuf + done : NULL, rbuf ? rbuf + done : NULL,
					 n == 0, NULL);
			if (idx >= 0) {
				q[(head + n++) % CALL_WINDOW] = idx;
				done += k;
				continue;
			}
			if (idx != -EAGAIN)
				first = idx;
			if (n == 0)
				continue;
		}
		int r = collect(c, q[head]);
		head = (head + 1) % CALL_WINDOW;
		n--;
		if (first == 0)
			first = r;
	}
	return first;
}

static uint32_t max_payload(struct nbd_client *c)
{
	pthread_mutex_lock(&c->lock);
	uint32_t m = c->max_payload;
	pthread_mutex_unlock(&c->lock);
	return m;
}

static int nbd_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct nbd_client *c = ctx;
	int r = nbd_range_ok(off, len, c->size);
	if (r != 0)
		return r;
	return run_chunks(c, NBD_CMD_READ, off, len, max_payload(c), NULL, buf);
}

static int nbd_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct nbd_client *c = ctx;
	int r = nbd_range_ok(off, len, c->size);
	if (r != 0)
		return r;
	if (c->tflags & NBD_FLAG_READ_ONLY)
		return -EROFS;
	return run_chunks(c, NBD_CMD_WRITE, off, len, max_payload(c), buf, NULL);
}

/*
 * Asynchronous read or write in one request (larger than the server's
 * maximum: not accepted, the caller uses read/write, which split it).  A
 * request that cannot even be sent in time completes with -EIO at once.
 */
static int nbd_submit(void *ctx, struct blk_aio *io)
{
	struct nbd_client *c = ctx;
	int r = nbd_range_ok(io->offset, io->len, c->size);
	if (r != 0)
		return r;
	if (io->len == 0 || io->len > max_payload(c))
		return -EOPNOTSUPP;
	struct nbd_request rq = { .type = io->write ? NBD_CMD_WRITE : NBD_CMD_READ,
				  .offset = io->offset, .length = (uint32_t)io->len };
	r = submit(c, &rq, io->write ? io->buf : NULL, io->write ? NULL : io->buf, 1, io);
	if (r < 0)
		io->done(io, r);
	return 0;
}

static int nbd_flush(void *ctx)
{
	struct nbd_client *c = ctx;
	if (!(c->tflags & NBD_FLAG_SEND_FLUSH))
		return 0; /* no volatile cache: nothing was logged, nothing to lose */
	struct nbd_request rq = { .type = NBD_CMD_FLUSH };
	int idx = submit(c, &rq, NULL, NULL, 1, NULL);
	return idx < 0 ? idx : collect(c, idx);
}

static int zero_range(struct nbd_client *c, uint16_t type, uint64_t off, uint64_t len)
{
	int r = nbd_range_ok(off, len, c->size);
	if (r != 0)
		return r;
	if (c->tflags & NBD_FLAG_READ_ONLY)
		return -EROFS;
	return run_chunks(c, type, off, len, ZERO_CHUNK, NULL, NULL);
}

static int nbd_discard(void *ctx, uint64_t off, uint64_t len)
{
	return zero_range(ctx, NBD_CMD_TRIM, off, len);
}

static int nbd_write_zeroes(void *ctx, uint64_t off, uint64_t len)
{
	return zero_range(ctx, NBD_CMD_WRITE_ZEROES, off, len);
}

/*
 * Gives up on everything in flight now: each waiting caller's deadline is
 * brought forward and it is woken (its buffer is let go as on a timeout),
 * aio requests complete with -EIO here, and a connection with requests on
 * it is shut down: a sender blocked on a stalled server lets go, and the
 * receiver reconnects and replays what was acknowledged, as after any
 * failure.  Late replies find their slots abandoned (or their connection
 * gone) and go to scratch.
 */
static void nbd_set_abort(void *ctx, bool on)
{
	struct nbd_client *c = ctx;
	pthread_mutex_lock(&c->lock);
	c->aborting = on;
	if (!on) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	uint64_t now = storage_now_ms();
	int on_wire = 0;
	for (int i = 0; i < NSLOTS; i++) {
		struct slot *s = &c->slots[i];
		if (s->state != SLOT_PENDING)
			continue;
		on_wire |= slot_in_flight(c, s);
		if (s->deadline > now)
			s->deadline = now;
		pthread_cond_signal(&s->cv);
	}
	pthread_cond_broadcast(&c->slot_cv);
	if (on_wire && c->fd >= 0) {
		c->last_err = ECANCELED;
		shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&c->lock);
	/* Pinned ones are let go by the shutdown and expired by the receiver. */
	aio_expire(c);
}

/* ---- lifetime ---- */

static void client_free(struct nbd_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	replay_log_destroy(&c->log);
	for (int i = 0; i < NSLOTS; i++)
		pthread_cond_destroy(&c->slots[i].cv);
	pthread_cond_destroy(&c->slot_cv);
	pthread_cond_destroy(&c->rx_cv);
	pthread_mutex_destroy(&c->lock);
	free(c->export_name);
	free(c);
}

/* Says goodbye if the connection is up and nobody is sending. */
static void send_disc(struct nbd_client *c)
{
	pthread_mutex_lock(&c->lock);
	int fd = c->up && !c->send_busy ? c->fd : -1;
	c->send_busy |= fd >= 0;
	pthread_mutex_unlock(&c->lock);
	if (fd < 0)
		return;
	struct nbd_request rq = { .type = NBD_CMD_DISC, .handle = OWN_HANDLE };
	(void)nbd_conn_send_request(fd, c->wake_fd, &rq, NULL, storage_now_ms() + 100);
	pthread_mutex_lock(&c->lock);
	send_release(c);
	pthread_mutex_unlock(&c->lock);
}

static void nbd_close(void *ctx)
{
	struct nbd_client *c = ctx;
	if (c == NULL)
		return;
	/* Stopping first: the server hanging up after DISC is no failure. */
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->rx_cv);
	pthread_mutex_unlock(&c->lock);
	send_disc(c);
	uint64_t one = 1;
	(void)!write(c->wake_fd, &one, sizeof(one));
	pthread_join(c->rx, NULL);
	client_free(c);
}

/* All four tables: discard / write_zeroes only when the server offers them. */
static const struct blk_backend_ops ops_all = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush,
	.discard = nbd_discard, .write_zeroes = nbd_write_zeroes, .close = nbd_close,
	.submit = nbd_submit, .set_abort = nbd_set_abort,
};
static const struct blk_backend_ops ops_trim = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush,
	.discard = nbd_discard, .close = nbd_close,
	.submit = nbd_submit, .set_abort = nbd_set_abort,
};
static const struct blk_backend_ops ops_wz = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush,
	.write_zeroes = nbd_write_zeroes, .close = nbd_close,
	.submit = nbd_submit, .set_abort = nbd_set_abort,
};
static const struct blk_backend_ops ops_basic = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush, .close = nbd_close,
	.submit = nbd_submit, .set_abort = nbd_set_abort,
};

static struct nbd_client *client_new(const struct nbd_client_config *cfg, const char *name)
{
	struct nbd_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->fd = -1;
	c->wake_fd = -1;
	if ((c->export_name = strdup(name)) == NULL) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	int bad = cond_init(&c->slot_cv) != 0 || cond_init(&c->rx_cv) != 0;
	for (int i = 0; i < NSLOTS; i++) {
		bad |= cond_init(&c->slots[i].cv) != 0;
		c->slots[i].next = i + 1 < NSLOTS ? i + 1 : -1;
	}
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (bad || c->wake_fd < 0) {
		client_free(c); /* destroying a never-initialized condvar is harmless in glibc */
		return NULL;
	}
	c->free_head = 0;
	c->sendq_head = c->sendq_tail = -1;
	c->aio_head = c->aio_tail = -1;
	c->sending = -1;
	c->timeout_ms = cfg->retry_timeout_ms ? cfg->retry_timeout_ms : DEFAULT_TIMEOUT_MS;
	log_limit_init(&c->giveup_log, 10, 60000);
	c->dial = cfg->dial ? cfg->dial : dial_endpoint;
	c->dial_ctx = cfg->dial ? cfg->dial_ctx : &c->ep;
	replay_log_init(&c->log, cfg->replay_cap_bytes ? cfg->replay_cap_bytes : DEFAULT_REPLAY_CAP);
	return c;
}

/* The first connection, retried until the timeout unless refused for good. */
static int connect_first(struct nbd_client *c, struct nbd_neg_result *res, char *err, size_t errlen)
{
	uint64_t deadline = storage_now_ms() + c->timeout_ms;
	uint32_t backoff = BACKOFF_MIN_MS;
	char why[sizeof(res->msg)] = "";
	for (;;) {
		int r;
		int fd = connect_socket(c, deadline);
		if (fd >= 0) {
			r = nbd_negotiate(fd, c->wake_fd, c->export_name, deadline, res);
			if (r == 0)
				r = nbd_export_geometry(&res->info, &c->block_size, &c->max_payload,
						    res->msg, sizeof(res->msg));
			if (r == 0) {
				c->fd = fd;
				return 0;
			}
			close(fd);
			if (res->fatal || r == -EOPNOTSUPP) {
				nbd_set_msg(err, errlen, "nbd: %s", res->msg);
				return r;
			}
		} else {
			r = fd;
			nbd_set_msg(res->msg, sizeof(res->msg), "connect: %s", strerror(-fd));
		}
		/* Report the most telling failure, not the final timeout. */
		if (r != -ETIMEDOUT || why[0] == '\0')
			memcpy(why, res->msg, sizeof(why));
		uint64_t now = storage_now_ms();
		if (now >= deadline) {
			nbd_set_msg(err, errlen, "nbd: %s (gave up after %u ms)", why, c->timeout_ms);
			return -EIO;
		}
		uint64_t nap = deadline - now < backoff ? deadline - now : backoff;
		struct timespec ts = { .tv_sec = (time_t)(nap / 1000), .tv_nsec = (long)(nap % 1000) * 1000000 };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/*
 * The receiver is the library's own thread: it must never be the one the
 * kernel picks for a process signal (the card waits for SIGTERM with
 * sigwait and blocks it everywhere else; a thread with it unblocked would
 * take the default action and kill the card before it wipes its key).
 */
static int start_receiver(struct nbd_client *c)
{
	sigset_t all, old;
	sigfillset(&all);
	int r = pthread_sigmask(SIG_SETMASK, &all, &old);
	if (r != 0)
		return -r;
	r = pthread_create(&c->rx, NULL, rx_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

int nbd_backend_open(struct blk_backend *out, const struct nbd_client_config *cfg,
		     char *err, size_t errlen)
{
	if (out == NULL || cfg == NULL) {
		nbd_set_msg(err, errlen, "nbd: no configuration");
		return -EINVAL;
	}
	const char *name = cfg->export_name ? cfg->export_name : "";
	if (strlen(name) > NBD_MAX_NAME_LEN) {
		nbd_set_msg(err, errlen, "nbd: export name too long");
		return -EINVAL;
	}
	struct nbd_client *c = client_new(cfg, name);
	if (c == NULL) {
		nbd_set_msg(err, errlen, "nbd: out of memory");
		return -ENOMEM;
	}
	struct nbd_neg_result res;
	struct endpoint *ep = &c->ep;
	int r = endpoint_parse(cfg->endpoint, ep, err, errlen);
	if (r == 0)
		r = connect_first(c, &res, err, errlen);
	if (r != 0) {
		client_free(c);
		return r;
	}
	c->size = res.info.size;
	c->tflags = res.info.flags;
	c->gen = 1;
	c->up = 1;
	c->rx_backoff = BACKOFF_MIN_MS;
	r = start_receiver(c);
	if (r != 0) {
		nbd_set_msg(err, errlen, "nbd: cannot start the receiver thread: %s", strerror(-r));
		client_free(c);
		return r;
	}

	int trim = (c->tflags & NBD_FLAG_SEND_TRIM) != 0;
	int wz = (c->tflags & NBD_FLAG_SEND_WRITE_ZEROES) != 0;
	out->ops = trim && wz ? &ops_all : trim ? &ops_trim : wz ? &ops_wz : &ops_basic;
	out->ctx = c;
	out->size_bytes = c->size / c->block_size * c->block_size;
	out->block_size = c->block_size;
	return 0;
}

void nbd_backend_stats(const struct blk_backend *b, struct nbd_client_stats *st)
{
	struct nbd_client *c = b->ctx;
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	pthread_mutex_unlock(&c->lock);
}
