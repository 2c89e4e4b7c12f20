/*
 * The NBD client's receiver thread: reads every reply and hands it to its
 * request's caller, and alone deals with a broken connection: reconnects
 * with backoff, replays the log and re-sends what was in flight (see
 * nbd_client_int.h).
 */
#include "nbd_client_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "nbd_conn.h"
#include "nbd_proto.h"
#include "nbd_replay_log.h"
#include "storage_connect.h"

#define SINK_LEN 16384U

/* ---- replies ---- */

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
		nbd_slot_unpin_locked(s);
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
		nbd_slot_finish(c, s, 0);
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
		nbd_slot_unpin_locked(s);
	nbd_slot_finish(c, s, 0);
	pthread_mutex_unlock(&c->lock);
}

static void rx_flush_done(struct nbd_client *c, struct slot *s)
{
	replay_log_flushed(&c->log, s->mark);
	pthread_mutex_lock(&c->lock);
	int r = 0;
	if (s->state == SLOT_PENDING && replay_log_take_loss(&c->log))
		r = -EIO;
	nbd_slot_finish(c, s, r);
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
	struct slot *s = nbd_slot_for_reply(c, rep.handle);
	int err = rep.error ? nbd_error_to_errno(rep.error) : 0;
	if (s != NULL && err != 0 && err != -ESHUTDOWN)
		nbd_slot_finish(c, s, err); /* the server's verdict, final */
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
uint64_t nbd_aio_expire(struct nbd_client *c)
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
		if (nbd_slot_in_flight(c, s))
			s->state = SLOT_ABANDONED; /* freed when its reply comes */
		else
			nbd_slot_put(c, s);
	}
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < n; i++)
		dead[i]->done(dead[i], nbd_give_up(c, &rq[i]));
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
		overdue = nbd_slot_in_flight(c, &c->slots[i]) && now - c->slots[i].sent_ms >= limit;
	pthread_mutex_unlock(&c->lock);
	return overdue;
}

/* Serves the live connection until it fails; returns why. */
static int rx_serve(struct nbd_client *c)
{
	uint64_t check = storage_now_ms() + c->timeout_ms;
	for (;;) {
		uint64_t expiry = nbd_aio_expire(c);
		int r = rx_one(c, c->fd, expiry < check ? expiry : check);
		nbd_aio_run_done(c);
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

/* ---- losing and regaining the connection ---- */

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
			nbd_slot_put(c, &c->slots[i]);
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
	int fd = c->dial(c->dial_ctx, c->wake_fd, deadline);
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
		nbd_slot_unpin(c, s);
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
	nbd_send_release(c);
	pthread_mutex_unlock(&c->lock);
}

static int rx_reconnect(struct nbd_client *c)
{
	for (;;) {
		/* Between attempts: aio requests past their deadline fail now. */
		nbd_aio_expire(c);
		if (rx_pause(c) != 0)
			return -ECANCELED;
		nbd_aio_expire(c);
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

/*
 * The receiver is the library's own thread: it must never be the one the
 * kernel picks for a process signal (the card waits for SIGTERM with
 * sigwait and blocks it everywhere else; a thread with it unblocked would
 * take the default action and kill the card before it wipes its key).
 */
int nbd_receiver_start(struct nbd_client *c)
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
