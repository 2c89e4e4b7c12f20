/*
 * NBD client for card-ebs: see nbd_client.h for the contract, and
 * nbd_client_int.h for how its parts share the client.  Here: the callers
 * (the blk_backend operations) and the client's lifetime.
 */
#include "nbd_client_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
#define ZERO_CHUNK (1ULL << 30) /* TRIM / WRITE_ZEROES per request */
#define CALL_WINDOW 16   /* chunks of one call in flight at once */

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

/* ---- callers ---- */

/* A request failed for good: logged, a few lines a minute at most (a stall fails many). */
int nbd_give_up(struct nbd_client *c, const struct nbd_request *rq)
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
	struct slot *s = nbd_slot_get(c, deadline, wait);
	if (s == NULL) {
		pthread_mutex_unlock(&c->lock);
		return wait ? nbd_give_up(c, rq) : -EAGAIN;
	}
	int idx = (int)(s - c->slots);
	rq->handle = (++c->handle_seq << HANDLE_IDX_BITS) | (uint64_t)idx;
	slot_fill(s, rq, wbuf, rbuf, deadline, aio);
	if (!c->up) {
		c->fresh_work = 1;
		pthread_cond_broadcast(&c->rx_cv);
	}
	int r = nbd_send_acquire(c, s);
	if (r == 0 && storage_now_ms() >= deadline) {
		nbd_send_release(c); /* too late to start: a send cut short would break the connection */
		r = -ETIMEDOUT;
	}
	if (r != 0) {
		nbd_slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		return nbd_give_up(c, rq);
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
	nbd_send_release(c);
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
		nbd_slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	struct nbd_request rq = { .type = s->type, .offset = s->offset, .length = s->length };
	if (nbd_slot_in_flight(c, s))
		s->state = SLOT_ABANDONED; /* the receiver frees it when the reply comes */
	else
		nbd_slot_put(c, s);
	pthread_mutex_unlock(&c->lock);
	return nbd_give_up(c, &rq);
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
		on_wire |= nbd_slot_in_flight(c, s);
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
	nbd_aio_expire(c);
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
	nbd_send_release(c);
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

/* The dial of a client that connects by itself (no storage dialer). */
static int dial_endpoint(void *ep, int cancel_fd, uint64_t deadline_ms)
{
	return storage_connect(ep, cancel_fd, deadline_ms);
}

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
		int fd = c->dial(c->dial_ctx, c->wake_fd, deadline);
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
	r = nbd_receiver_start(c);
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
