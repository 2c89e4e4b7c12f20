#include "vhost_user_blk.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "guest_mem_map.h"
#include "log.h"
#include "log_limit.h"
#include "ring_eventfd.h"
#include "vhost_user_msg.h"
#include "virtio_blk.h"
#include "virtqueue.h"

#define VUB_PROTOCOL_FEATURES ((1ull << VHOST_USER_PROTOCOL_F_MQ) | \
			       (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
			       (1ull << VHOST_USER_PROTOCOL_F_CONFIG))

#define VUB_MAX_IODEPTH 64
#define VUB_AIO_MAX 64 /* asynchronous requests in flight per queue */
/*
 * How long a stopping queue lets its requests in flight finish on their
 * own before it has the backend abandon them (they complete with
 * VIRTIO_BLK_S_IOERR).  The front end's budget for the answer to
 * GET_VRING_BASE (flint-hv: VUF_STOP_TIMEOUT_MS, 5 s) covers this plus
 * the abandoning, even in the nested lab; see docs/architecture.md.
 */
#define VUB_STOP_GRACE_MS 1000

struct vub;
struct vub_queue;

/* One request in flight: the worker thread that serves it and its chain. */
struct vub_worker {
	struct vub_queue *q;
	pthread_t thread;
	struct vq_req req;
	struct vblk_req_hdr hdr;
};

/* A request handed to an asynchronous backend (vblk_submit). */
struct vub_aio {
	struct vblk_aio a;
	struct vub_queue *q;
	uint16_t head;
	int next;              /* free list */
};

/*
 * A queue is served by `nworkers` identical threads, leader/follower style:
 * while the ring is empty one of them (the leader) waits in poll() for a
 * kick and the others sleep on work_cv.  A thread that takes a request from
 * the ring first wakes a sleeper when there is no leader, so someone always
 * watches the kick fd (or, when every thread is busy, each comes back to
 * the ring when done).  Kicks thus cost one wake-up, not two, and a burst of
 * requests fans out over the threads one wake-up at a time.  `vq`,
 * `have_leader`, `idle` and `stopping` are under `lock`; the I/O itself runs
 * outside it.
 */
struct vub_queue {
	struct vub *dev;
	unsigned int idx;
	uint16_t num;          /* 0: not set */
	bool addr_set;
	struct vhost_user_vring_addr addr;
	uint16_t base;         /* next avail index while stopped */
	bool started;          /* kick fd received, not stopped since */
	bool enabled;
	bool running;          /* threads exist */
	int kick_fd, call_fd, err_fd, stop_fd;
	pthread_mutex_t call_lock;
	pthread_mutex_t lock;
	pthread_cond_t work_cv;
	bool have_leader;
	unsigned int idle;     /* threads asleep on work_cv */
	bool stopping;
	unsigned int nworkers;
	struct vub_worker *workers;
	/*
	 * Over a backend with submit, a worker hands a request down and takes
	 * the next one; the backend's completion pushes it to the used ring.
	 * `aio_free`, `aio_inflight`, `live` are under `lock`; stopping the
	 * queue waits on `aio_idle` until no worker thread is left and
	 * nothing is in flight.
	 */
	struct vub_aio *aio;
	int aio_free;
	unsigned int aio_inflight;
	unsigned int live;     /* worker threads not yet finished */
	pthread_cond_t aio_idle;
	struct log_limit stall_log;
	struct vq vq;
	/*
	 * What a guest (through the front end) or the front end can trigger
	 * again and again is latched per ring, once per connection: ring
	 * errors the guest made (vq_pop, under `lock`), why a ring start or
	 * fd was refused, and refused ring messages (the message thread).
	 * The connection's end sums up what was not logged.
	 */
	struct log_limit guest_log, cause_log, refused_log;
};

struct vub {
	struct vblk blk;
	pthread_mutex_t be_lock;
	uint16_t num_queues;
	uint16_t iodepth;
	uint64_t features;          /* acked by SET_FEATURES */
	uint64_t protocol_features; /* acked by SET_PROTOCOL_FEATURES */
	struct gmm mem;
	struct vub_queue q[VBLK_MAX_QUEUES];
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void queue_notify(struct vub_queue *q)
{
	uint64_t one = 1;
	pthread_mutex_lock(&q->call_lock);
	if (q->call_fd >= 0 && write(q->call_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_errno("vub: queue %u: call", q->idx);
	pthread_mutex_unlock(&q->call_lock);
}

/*
 * The leader's wait: until a kick (true) or the stop/failure of the queue
 * (false).  Called unlocked.
 */
static bool wait_for_kick(struct vub_queue *q)
{
	struct pollfd p[2] = {
		{ .fd = q->stop_fd, .events = POLLIN },
		{ .fd = q->kick_fd, .events = POLLIN },
	};
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_errno("vub: queue %u: poll", q->idx);
			return false;
		}
		if (p[0].revents)
			return false;
		if (p[1].revents & (POLLERR | POLLNVAL)) {
			log_warn("vub: queue %u: kick fd failed", q->idx);
			return false;
		}
		uint64_t v;
		if (read(q->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
			log_errno("vub: queue %u: kick", q->idx);
			return false;
		}
		return true;
	}
}

/* Locked.  NULL when the backend is synchronous or all are in flight. */
static struct vub_aio *aio_get(struct vub_queue *q)
{
	if (q->aio_free < 0)
		return NULL;
	struct vub_aio *x = &q->aio[q->aio_free];
	q->aio_free = x->next;
	q->aio_inflight++;
	return x;
}

/* Locked. */
static void aio_put(struct vub_queue *q, struct vub_aio *x)
{
	x->next = q->aio_free;
	q->aio_free = (int)(x - q->aio);
	if (--q->aio_inflight == 0)
		pthread_cond_broadcast(&q->aio_idle);
}

/*
 * The backend finished a request (any thread): used ring, then interrupt.
 * The request stays counted in flight until the interrupt is out: a queue
 * being stopped (and perhaps freed) waits for that count, so the count is
 * the last thing this touches.
 */
static void aio_complete(struct vblk_aio *a, uint32_t used)
{
	struct vub_aio *x = (struct vub_aio *)a;
	struct vub_queue *q = x->q;
	pthread_mutex_lock(&q->lock);
	vq_push(&q->vq, x->head, used);
	bool notify = vq_should_notify(&q->vq);
	if (!notify) {
		aio_put(q, x);
		pthread_mutex_unlock(&q->lock);
		return;
	}
	pthread_mutex_unlock(&q->lock);
	queue_notify(q);
	pthread_mutex_lock(&q->lock);
	aio_put(q, x);
	pthread_mutex_unlock(&q->lock);
}

/* Serves one popped request and completes it; called and returns locked. */
static void worker_serve(struct vub_worker *w)
{
	struct vub_queue *q = w->q;
	vblk_parse(&w->req, &w->hdr);
	struct vub_aio *x = aio_get(q);
	if (x != NULL) {
		/* Handed down, this thread is back at the ring at once: no
		 * need to wake another one to watch it. */
		x->head = w->req.head;
		pthread_mutex_unlock(&q->lock);
		bool taken = vblk_submit(&q->dev->blk, &w->req, &w->hdr, &x->a);
		pthread_mutex_lock(&q->lock);
		if (taken)
			return;
		aio_put(q, x);
	}
	/* Somebody must keep watching the ring while this thread is busy. */
	if (!q->have_leader && q->idle > 0)
		pthread_cond_signal(&q->work_cv);
	pthread_mutex_unlock(&q->lock);
	uint32_t len = vblk_handle(&q->dev->blk, &w->req, &w->hdr, NULL);
	pthread_mutex_lock(&q->lock);
	vq_push(&q->vq, w->req.head, len);
	if (vq_should_notify(&q->vq)) {
		pthread_mutex_unlock(&q->lock);
		queue_notify(q);
		pthread_mutex_lock(&q->lock);
	}
}

static void *worker_thread(void *arg)
{
	struct vub_worker *w = arg;
	struct vub_queue *q = w->q;

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		if (vq_pop(&q->vq, &w->req) == 1) {
			worker_serve(w);
			continue;
		}
		if (q->have_leader) {
			q->idle++;
			pthread_cond_wait(&q->work_cv, &q->lock);
			q->idle--;
			continue;
		}
		/* The driver may have added work before it saw it must kick. */
		if (vq_arm_kick(&q->vq))
			continue;
		q->have_leader = true;
		pthread_mutex_unlock(&q->lock);
		bool kicked = wait_for_kick(q);
		pthread_mutex_lock(&q->lock);
		q->have_leader = false;
		if (!kicked) {
			q->stopping = true;
			pthread_cond_broadcast(&q->work_cv);
		}
	}
	if (--q->live == 0)
		pthread_cond_broadcast(&q->aio_idle);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/*
 * Waits until no worker thread is left and nothing handed down is in
 * flight, for at most timeout_ms (< 0: as long as it takes).  Whether it
 * got there.
 */
static bool queue_wait_quiet(struct vub_queue *q, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&q->lock);
	while (q->live > 0 || q->aio_inflight > 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&q->aio_idle, &q->lock);
		else if (pthread_cond_timedwait(&q->aio_idle, &q->lock, &until) == ETIMEDOUT)
			break;
	}
	bool quiet = q->live == 0 && q->aio_inflight == 0;
	pthread_mutex_unlock(&q->lock);
	return quiet;
}

/*
 * The grace period is over and requests are still in flight: storage has
 * stalled.  The backend abandons them (each completes with IOERR on the
 * used ring now, before the stop is answered, and its late answer never
 * reaches guest memory); the abort covers the whole backend for that
 * moment, so other queues' requests in flight then fail too.  A backend
 * without set_abort is a local one, bounded on its own: waited for.
 */
static void queue_abandon_in_flight(struct vub_queue *q)
{
	const struct blk_backend *be = q->dev->blk.be;
	log_limited(&q->stall_log, LOG_WARN, "vub: queue %u: requests in flight %u ms after "
		    "the stop began: storage stalled, failing them", q->idx, VUB_STOP_GRACE_MS);
	if (be->ops->set_abort == NULL) {
		queue_wait_quiet(q, -1);
		return;
	}
	be->ops->set_abort(be->ctx, true);
	queue_wait_quiet(q, -1);
	be->ops->set_abort(be->ctx, false);
}

/*
 * Stops the threads and frees them.  Requests in flight get
 * VUB_STOP_GRACE_MS to complete, then fail: a stop is answered in bounded
 * time even while storage stalls, and nothing touches the ring after it.
 */
static void queue_join(struct vub_queue *q)
{
	uint64_t v = 1;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->work_cv);
	pthread_mutex_unlock(&q->lock);
	/* Wakes the leader out of poll(). */
	if (write(q->stop_fd, &v, sizeof(v)) < 0)
		log_errno("vub: queue %u: stop", q->idx);
	if (!queue_wait_quiet(q, VUB_STOP_GRACE_MS))
		queue_abandon_in_flight(q);
	for (unsigned int i = 0; i < q->nworkers; i++)
		pthread_join(q->workers[i].thread, NULL);
	if (read(q->stop_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_errno("vub: queue %u: stop", q->idx);
	free(q->workers);
	q->workers = NULL;
	q->nworkers = 0;
	free(q->aio);
	q->aio = NULL;
	q->aio_free = -1;
}

/* The pool of asynchronous requests, when the backend takes them. */
static int aio_pool_init(struct vub_queue *q)
{
	q->aio = NULL;
	q->aio_free = -1;
	q->aio_inflight = 0;
	if (q->dev->blk.be->ops->submit == NULL || q->dev->blk.be_lock != NULL)
		return 0;
	q->aio = calloc(VUB_AIO_MAX, sizeof(*q->aio));
	if (q->aio == NULL)
		return -ENOMEM;
	for (int i = 0; i < VUB_AIO_MAX; i++) {
		q->aio[i].q = q;
		q->aio[i].a.complete = aio_complete;
		q->aio[i].next = i + 1 < VUB_AIO_MAX ? i + 1 : -1;
	}
	q->aio_free = 0;
	return 0;
}

static int queue_spawn(struct vub_queue *q, unsigned int depth)
{
	if (aio_pool_init(q) != 0)
		return -ENOMEM;
	q->workers = calloc(depth, sizeof(*q->workers));
	if (q->workers == NULL) {
		free(q->aio);
		q->aio = NULL;
		q->aio_free = -1;
		return -ENOMEM;
	}
	q->stopping = false;
	q->have_leader = false;
	q->idle = 0;
	q->live = 0;
	int rc = 0;
	for (q->nworkers = 0; q->nworkers < depth; q->nworkers++) {
		struct vub_worker *w = &q->workers[q->nworkers];
		w->q = q;
		pthread_mutex_lock(&q->lock);
		q->live++;
		pthread_mutex_unlock(&q->lock);
		rc = pthread_create(&w->thread, NULL, worker_thread, w);
		if (rc != 0) {
			pthread_mutex_lock(&q->lock);
			q->live--;
			pthread_mutex_unlock(&q->lock);
			break;
		}
	}
	if (rc == 0)
		return 0;
	log_warn("vub: queue %u: pthread_create: %s", q->idx, strerror(rc));
	queue_join(q);
	return -rc;
}

static void queue_stop(struct vub_queue *q)
{
	if (!q->running)
		return;
	queue_join(q);
	q->running = false;
	q->base = q->vq.last_avail;
	log_debug("vub: queue %u stopped at %u", q->idx, q->base);
}

/* Start the queue's threads if everything it needs is there. */
static int queue_try_start(struct vub_queue *q)
{
	struct vub *d = q->dev;
	uint64_t desc, avail, used;

	if (q->running || !q->started || !q->enabled || q->num == 0 ||
	    !q->addr_set || q->kick_fd < 0 || d->mem.n == 0)
		return 0;
	if (gmm_uva_to_gpa(&d->mem, q->addr.desc, 16ull * q->num, &desc) != 0 ||
	    gmm_uva_to_gpa(&d->mem, q->addr.avail, 4ull + 2ull * q->num, &avail) != 0 ||
	    gmm_uva_to_gpa(&d->mem, q->addr.used, 4ull + 8ull * q->num, &used) != 0 ||
	    vq_init(&q->vq, &d->mem, q->num,
		    d->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC),
		    desc, avail, used, q->base) != 0) {
		log_limited(&q->cause_log, LOG_WARN,
			    "vub: queue %u: rings outside guest memory or misaligned", q->idx);
		return -EFAULT;
	}
	q->vq.guest_log = &q->guest_log;
	if ((d->features & (1ull << VIRTIO_RING_F_EVENT_IDX)) && vq_use_event_idx(&q->vq) != 0) {
		log_limited(&q->cause_log, LOG_WARN,
			    "vub: queue %u: event index fields outside guest memory", q->idx);
		return -EFAULT;
	}
	int rc = queue_spawn(q, d->iodepth);
	if (rc != 0)
		return rc;
	q->running = true;
	log_debug("vub: queue %u started (size %u, base %u)", q->idx, q->num, q->base);
	return 0;
}

/* Re-arms the ring's latches, saying once what they kept out of the log. */
static void queue_log_dropped(struct vub_queue *q)
{
	unsigned long long guest = log_limit_rearm(&q->guest_log);
	unsigned long long cause = log_limit_rearm(&q->cause_log);
	unsigned long long refused = log_limit_rearm(&q->refused_log);
	if (guest + cause + refused == 0)
		return;
	log_warn("vub: queue %u: not logged: %llu more guest ring errors, %llu more "
		 "refusal causes, %llu more refused requests", q->idx, guest, cause, refused);
}

static void queue_reset(struct vub_queue *q)
{
	queue_stop(q);
	queue_log_dropped(q);
	close_fd(&q->kick_fd);
	close_fd(&q->err_fd);
	pthread_mutex_lock(&q->call_lock);
	close_fd(&q->call_fd);
	pthread_mutex_unlock(&q->call_lock);
	q->num = 0;
	q->addr_set = false;
	q->base = 0;
	q->started = false;
	q->enabled = false;
}

static void dev_reset(struct vub *d)
{
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++)
		queue_reset(&d->q[i]);
	gmm_unmap(&d->mem);
	d->features = 0;
	d->protocol_features = 0;
}

static int set_mem_table(struct vub *d, struct vhost_user_msg *m)
{
	for (unsigned int i = 0; i < d->num_queues; i++)
		queue_stop(&d->q[i]);
	gmm_unmap(&d->mem);
	int rc = gmm_map(&d->mem, m->payload.mem.regions, m->fds,
			 m->payload.mem.nregions);
	if (rc != 0)
		return rc;
	for (unsigned int i = 0; i < d->num_queues; i++) {
		int r = queue_try_start(&d->q[i]);
		if (r != 0)
			rc = r;
	}
	return rc;
}

/* Take the message's fd (validated to be there unless NOFD); -1 if none. */
static int take_fd(struct vhost_user_msg *m)
{
	int fd = -1;
	if (!(m->payload.u64 & VHOST_USER_VRING_NOFD) && m->nfds == 1) {
		fd = m->fds[0];
		m->fds[0] = -1;
	}
	return fd;
}

/*
 * The message's kick, call or err fd into *fd (-1 with NOFD).  Only an
 * eventfd is taken, made non-blocking: a bad one is closed and the message
 * refused, the ring left as it was.
 */
static int take_ring_fd(struct vub_queue *q, struct vhost_user_msg *m, int *fd)
{
	*fd = take_fd(m);
	if (*fd < 0)
		return 0;
	int rc = ring_eventfd_check(*fd, q->stop_fd);
	if (rc != 0) {
		log_limited(&q->cause_log, LOG_WARN, "vub: queue %u: %s fd is not an eventfd",
			    q->idx, vhost_user_request_name(m->hdr.request));
		close_fd(fd);
	}
	return rc;
}

/*
 * Back to the state of a new ring: stopped, disabled (with
 * PROTOCOL_FEATURES the front end enables it again after the next kick, as
 * QEMU and flint-hv do at every start; without, the kick enables it), no
 * kick fd.  Size, addresses, base and call fd stay for the next start.
 */
static void queue_halt(struct vub_queue *q)
{
	queue_stop(q);
	q->started = false;
	q->enabled = false;
	close_fd(&q->kick_fd);
}

static int set_vring_kick(struct vub *d, struct vub_queue *q, struct vhost_user_msg *m)
{
	int fd;
	int rc = take_ring_fd(q, m, &fd);
	if (rc != 0)
		return rc;
	if (fd < 0)
		return -ENOTSUP; /* polling mode */
	queue_stop(q);
	close_fd(&q->kick_fd);
	q->kick_fd = fd;
	q->started = true;
	if (!(d->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
		q->enabled = true;
	rc = queue_try_start(q);
	/* A refused start leaves no half-started ring behind, which every later
	 * ring message would try (and fail) to start again. */
	if (rc != 0)
		queue_halt(q);
	return rc;
}

static int set_vring_enable(struct vub_queue *q, bool enable)
{
	q->enabled = enable;
	if (!enable) {
		queue_stop(q);
		return 0;
	}
	int rc = queue_try_start(q);
	if (rc != 0)
		q->enabled = false;
	return rc;
}

static int set_vring_call(struct vub_queue *q, struct vhost_user_msg *m)
{
	int fd;
	int rc = take_ring_fd(q, m, &fd);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&q->call_lock);
	close_fd(&q->call_fd);
	q->call_fd = fd;
	pthread_mutex_unlock(&q->call_lock);
	return 0;
}

static int set_vring_err(struct vub_queue *q, struct vhost_user_msg *m)
{
	int fd;
	int rc = take_ring_fd(q, m, &fd);
	if (rc != 0)
		return rc;
	close_fd(&q->err_fd);
	q->err_fd = fd;
	return 0;
}

static int get_config(struct vub *d, const struct vhost_user_msg *m,
		      struct vhost_user_msg *r)
{
	uint8_t space[VHOST_USER_CONFIG_MAX] = { 0 };
	struct virtio_blk_config cfg;
	const struct vhost_user_config *c = &m->payload.config;

	vblk_config(&d->blk, &cfg);
	memcpy(space, &cfg, sizeof(cfg));
	r->hdr.size = m->hdr.size;
	r->payload.config.offset = c->offset;
	r->payload.config.size = c->size;
	r->payload.config.flags = c->flags;
	memcpy(r->payload.config.payload, space + c->offset, c->size);
	return 0;
}

/* Whether m is about one ring; its index (unchecked) into *idx. */
static bool msg_ring_index(const struct vhost_user_msg *m, uint32_t *idx)
{
	switch (m->hdr.request) {
	case VHOST_USER_SET_VRING_NUM:
	case VHOST_USER_SET_VRING_ADDR:
	case VHOST_USER_SET_VRING_BASE:
	case VHOST_USER_GET_VRING_BASE:
	case VHOST_USER_SET_VRING_ENABLE:
		*idx = m->payload.state.index; /* also addr.index */
		return true;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		*idx = (uint32_t)(m->payload.u64 & VHOST_USER_VRING_IDX_MASK);
		return true;
	default:
		*idx = 0;
		return false;
	}
}

/* A refused message; those about a ring go through its latch. */
static void log_refused(struct vub *d, const struct vhost_user_msg *m, const char *name,
			int rc)
{
	uint32_t idx;
	if (msg_ring_index(m, &idx) && idx < d->num_queues)
		log_limited(&d->q[idx].refused_log, LOG_WARN, "vub: queue %u: %s failed: %s",
			    idx, name, strerror(-rc));
	else
		log_warn("vub: %s failed: %s", name, strerror(-rc));
}

/*
 * Act on a validated message.  *reply is set (hdr.size, payload) when the
 * request has an answer of its own.  0 or -errno.
 */
static int dispatch(struct vub *d, struct vhost_user_msg *m,
		    struct vhost_user_msg *r, bool *has_reply)
{
	uint32_t idx;
	struct vub_queue *q = NULL;

	*has_reply = false;
	(void)msg_ring_index(m, &idx);
	if (idx >= d->num_queues)
		return -EINVAL;
	q = &d->q[idx];

	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		*has_reply = true;
		r->hdr.size = sizeof(uint64_t);
		r->payload.u64 = vblk_features(&d->blk) |
				 (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
		return 0;
	case VHOST_USER_SET_FEATURES: {
		uint64_t offered = vblk_features(&d->blk) |
				   (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
		if (m->payload.u64 & ~offered)
			return -EINVAL;
		d->features = m->payload.u64;
		return 0;
	}
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		*has_reply = true;
		r->hdr.size = sizeof(uint64_t);
		r->payload.u64 = VUB_PROTOCOL_FEATURES;
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (m->payload.u64 & ~VUB_PROTOCOL_FEATURES)
			return -EINVAL;
		d->protocol_features = m->payload.u64;
		return 0;
	case VHOST_USER_GET_QUEUE_NUM:
		*has_reply = true;
		r->hdr.size = sizeof(uint64_t);
		r->payload.u64 = d->num_queues;
		return 0;
	case VHOST_USER_SET_OWNER:
		return 0;
	case VHOST_USER_RESET_OWNER: {
		uint64_t pf = d->protocol_features;
		dev_reset(d);
		d->protocol_features = pf;
		return 0;
	}
	case VHOST_USER_SET_MEM_TABLE:
		return set_mem_table(d, m);
	case VHOST_USER_SET_VRING_NUM:
		queue_stop(q);
		q->num = (uint16_t)m->payload.state.num;
		return queue_try_start(q);
	case VHOST_USER_SET_VRING_ADDR:
		queue_stop(q);
		q->addr = m->payload.addr;
		q->addr_set = true;
		return queue_try_start(q);
	case VHOST_USER_SET_VRING_BASE:
		queue_stop(q);
		q->base = (uint16_t)m->payload.state.num;
		return queue_try_start(q);
	case VHOST_USER_GET_VRING_BASE:
		queue_halt(q);
		*has_reply = true;
		r->hdr.size = sizeof(r->payload.state);
		r->payload.state.index = idx;
		r->payload.state.num = q->base;
		return 0;
	case VHOST_USER_SET_VRING_KICK:
		return set_vring_kick(d, q, m);
	case VHOST_USER_SET_VRING_CALL:
		return set_vring_call(q, m);
	case VHOST_USER_SET_VRING_ERR:
		return set_vring_err(q, m);
	case VHOST_USER_SET_VRING_ENABLE:
		return set_vring_enable(q, m->payload.state.num == 1);
	case VHOST_USER_GET_CONFIG:
		*has_reply = true;
		return get_config(d, m, r);
	case VHOST_USER_SET_CONFIG:
		log_debug("vub: SET_CONFIG ignored (nothing writable)");
		return 0;
	default:
		return -ENOTSUP;
	}
}

/* Serve one connection until it ends; the device is reset afterwards. */
static int serve_conn(struct vub *d, int sock)
{
	int rc;
	for (;;) {
		struct vhost_user_msg m, r;
		bool has_reply;

		rc = vhost_user_recv(sock, &m);
		if (rc == -ECONNRESET) {
			rc = 0;
			break;
		}
		if (rc != 0) {
			log_warn("vub: receive: %s", strerror(-rc));
			rc = -EPROTO;
			break;
		}
		const char *name = vhost_user_request_name(m.hdr.request);
		rc = vhost_user_msg_validate(&m);
		if (rc != 0) {
			log_warn("vub: malformed %s (request %u, size %u, %u fds)",
				 name, m.hdr.request, m.hdr.size, m.nfds);
			vhost_user_msg_close_fds(&m);
			rc = -EPROTO;
			break;
		}
		vhost_user_msg_init(&r, m.hdr.request, 0);
		rc = dispatch(d, &m, &r, &has_reply);
		vhost_user_msg_close_fds(&m);
		bool ack = !has_reply && (m.hdr.flags & VHOST_USER_FLAG_NEED_REPLY) &&
			   (d->protocol_features &
			    (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
		if (ack) {
			r.hdr.size = sizeof(uint64_t);
			r.payload.u64 = rc != 0;
		}
		if (rc != 0)
			log_refused(d, &m, name, rc);
		if (has_reply || ack) {
			r.hdr.flags |= VHOST_USER_FLAG_REPLY;
			int s = vhost_user_send(sock, &r);
			if (s != 0) {
				log_warn("vub: send %s reply: %s", name, strerror(-s));
				rc = s;
				break;
			}
		}
		if (rc != 0 && !ack) {
			rc = -EPROTO;
			break;
		}
		rc = 0;
	}
	/* The front end sees the end at once, even before the fd is closed. */
	shutdown(sock, SHUT_RDWR);
	dev_reset(d);
	return rc;
}

static struct vub *vub_create(struct blk_backend *be, const struct vub_options *opts)
{
	struct vub *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->num_queues = opts->num_queues ? opts->num_queues : 1;
	d->iodepth = opts->iodepth ? opts->iodepth : 1;
	if (d->iodepth > VUB_MAX_IODEPTH)
		d->iodepth = VUB_MAX_IODEPTH;
	pthread_mutex_init(&d->be_lock, NULL);
	/* The stop's grace period is measured on CLOCK_MONOTONIC. */
	pthread_condattr_t mono;
	pthread_condattr_init(&mono);
	pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++) {
		struct vub_queue *q = &d->q[i];
		q->dev = d;
		q->idx = i;
		q->kick_fd = q->call_fd = q->err_fd = -1;
		pthread_mutex_init(&q->call_lock, NULL);
		pthread_mutex_init(&q->lock, NULL);
		pthread_cond_init(&q->work_cv, NULL);
		pthread_cond_init(&q->aio_idle, &mono);
		log_limit_init(&q->stall_log, 1, 60000);
		q->aio_free = -1;
		q->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		log_limit_init(&q->guest_log, 1, 0);
		log_limit_init(&q->cause_log, 1, 0);
		log_limit_init(&q->refused_log, 1, 0);
	}
	pthread_condattr_destroy(&mono);
	return d;
}

static void vub_destroy(struct vub *d)
{
	dev_reset(d);
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++) {
		close_fd(&d->q[i].stop_fd);
		pthread_mutex_destroy(&d->q[i].call_lock);
		pthread_mutex_destroy(&d->q[i].lock);
		pthread_cond_destroy(&d->q[i].work_cv);
		pthread_cond_destroy(&d->q[i].aio_idle);
	}
	pthread_mutex_destroy(&d->be_lock);
	free(d);
}

int vub_serve(int fd, struct blk_backend *backend, const struct vub_options *opts)
{
	static const struct vub_options defaults = { .num_queues = 1 };
	int listening = 0;
	socklen_t len = sizeof(listening);
	int rc;

	if (opts == NULL)
		opts = &defaults;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0)
		return -errno;
	struct vub *d = vub_create(backend, opts);
	if (d == NULL)
		return -ENOMEM;
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++) {
		if (d->q[i].stop_fd < 0) {
			rc = -EMFILE;
			goto out;
		}
	}
	rc = vblk_init(&d->blk, backend, d->num_queues, opts->serial,
		       opts->serialize_backend ? &d->be_lock : NULL);
	if (rc != 0)
		goto out;
	if (!listening) {
		rc = serve_conn(d, fd);
		goto out;
	}
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			rc = -errno;
			log_errno("vub: accept");
			break;
		}
		log_info("vub: front end connected");
		rc = serve_conn(d, c);
		close(c);
		log_info("vub: front end disconnected%s",
			 rc != 0 ? " (protocol error)" : "");
		if (opts->once)
			break;
	}
out:
	vub_destroy(d);
	return rc;
}
