#include "blk_queue.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define BLK_QUEUE_AIO_MAX 64 /* asynchronous requests in flight per queue */
/*
 * How long a stopping queue lets its requests in flight finish on their
 * own before it has the backend abandon them (they complete with
 * VIRTIO_BLK_S_IOERR).  The front end's budget for the answer to
 * GET_VRING_BASE (flint-hv: VUF_STOP_TIMEOUT_MS, 5 s) covers this plus
 * the abandoning, even in the nested lab; see docs/architecture.md.
 */
#define BLK_QUEUE_STOP_GRACE_MS 1000

/* One request in flight: the worker thread that serves it and its chain. */
struct blk_queue_worker {
	struct blk_queue *q;
	pthread_t thread;
	struct vq_req req;
	struct vblk_req_hdr hdr;
};

/* A request handed to an asynchronous backend (vblk_submit). */
struct blk_queue_aio {
	struct vblk_aio a;
	struct blk_queue *q;
	uint16_t head;
	int next;              /* free list */
};

static void queue_notify(struct blk_queue *q)
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
static bool wait_for_kick(struct blk_queue *q)
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
static struct blk_queue_aio *aio_get(struct blk_queue *q)
{
	if (q->aio_free < 0)
		return NULL;
	struct blk_queue_aio *x = &q->aio[q->aio_free];
	q->aio_free = x->next;
	q->aio_inflight++;
	return x;
}

/* Locked. */
static void aio_put(struct blk_queue *q, struct blk_queue_aio *x)
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
	struct blk_queue_aio *x = (struct blk_queue_aio *)a;
	struct blk_queue *q = x->q;
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
static void worker_serve(struct blk_queue_worker *w)
{
	struct blk_queue *q = w->q;
	vblk_parse(&w->req, &w->hdr);
	struct blk_queue_aio *x = aio_get(q);
	if (x != NULL) {
		/* Handed down, this thread is back at the ring at once: no
		 * need to wake another one to watch it. */
		x->head = w->req.head;
		pthread_mutex_unlock(&q->lock);
		bool taken = vblk_submit(q->blk, &w->req, &w->hdr, &x->a);
		pthread_mutex_lock(&q->lock);
		if (taken)
			return;
		aio_put(q, x);
	}
	/* Somebody must keep watching the ring while this thread is busy. */
	if (!q->have_leader && q->idle > 0)
		pthread_cond_signal(&q->work_cv);
	pthread_mutex_unlock(&q->lock);
	uint32_t len = vblk_handle(q->blk, &w->req, &w->hdr, NULL);
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
	struct blk_queue_worker *w = arg;
	struct blk_queue *q = w->q;

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
static bool queue_wait_quiet(struct blk_queue *q, int timeout_ms)
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
static void queue_abandon_in_flight(struct blk_queue *q)
{
	const struct blk_backend *be = q->blk->be;
	log_limited(&q->stall_log, LOG_WARN, "vub: queue %u: requests in flight %u ms after "
		    "the stop began: storage stalled, failing them", q->idx,
		    BLK_QUEUE_STOP_GRACE_MS);
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
 * BLK_QUEUE_STOP_GRACE_MS to complete, then fail: a stop is answered in
 * bounded time even while storage stalls, and nothing touches the ring
 * after it.
 */
static void queue_join(struct blk_queue *q)
{
	uint64_t v = 1;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->work_cv);
	pthread_mutex_unlock(&q->lock);
	/* Wakes the leader out of poll(). */
	if (write(q->stop_fd, &v, sizeof(v)) < 0)
		log_errno("vub: queue %u: stop", q->idx);
	if (!queue_wait_quiet(q, BLK_QUEUE_STOP_GRACE_MS))
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
static int aio_pool_init(struct blk_queue *q)
{
	q->aio = NULL;
	q->aio_free = -1;
	q->aio_inflight = 0;
	if (q->blk->be->ops->submit == NULL || q->blk->be_lock != NULL)
		return 0;
	q->aio = calloc(BLK_QUEUE_AIO_MAX, sizeof(*q->aio));
	if (q->aio == NULL)
		return -ENOMEM;
	for (int i = 0; i < BLK_QUEUE_AIO_MAX; i++) {
		q->aio[i].q = q;
		q->aio[i].a.complete = aio_complete;
		q->aio[i].next = i + 1 < BLK_QUEUE_AIO_MAX ? i + 1 : -1;
	}
	q->aio_free = 0;
	return 0;
}

static int queue_spawn(struct blk_queue *q)
{
	if (aio_pool_init(q) != 0)
		return -ENOMEM;
	q->workers = calloc(q->depth, sizeof(*q->workers));
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
	for (q->nworkers = 0; q->nworkers < q->depth; q->nworkers++) {
		struct blk_queue_worker *w = &q->workers[q->nworkers];
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

/* The rings' guest-physical addresses, checked and set up in q->vq. */
static int queue_map_rings(struct blk_queue *q, const struct gmm *mem,
			   const struct blk_queue_rings *r)
{
	uint64_t desc, avail, used;
	if (gmm_uva_to_gpa(mem, r->desc, 16ull * r->num, &desc) != 0 ||
	    gmm_uva_to_gpa(mem, r->avail, 4ull + 2ull * r->num, &avail) != 0 ||
	    gmm_uva_to_gpa(mem, r->used, 4ull + 8ull * r->num, &used) != 0 ||
	    vq_init(&q->vq, mem, r->num, r->indirect, desc, avail, used, r->base) != 0) {
		log_limited(q->logs.refusal, LOG_WARN,
			    "vub: queue %u: rings outside guest memory or misaligned", q->idx);
		return -EFAULT;
	}
	q->vq.guest_log = q->logs.guest;
	if (r->event_idx && vq_use_event_idx(&q->vq) != 0) {
		log_limited(q->logs.refusal, LOG_WARN,
			    "vub: queue %u: event index fields outside guest memory", q->idx);
		return -EFAULT;
	}
	return 0;
}

int blk_queue_start(struct blk_queue *q, const struct gmm *mem,
		    const struct blk_queue_rings *rings, int kick_fd)
{
	int rc = queue_map_rings(q, mem, rings);
	if (rc != 0)
		return rc;
	q->kick_fd = kick_fd;
	rc = queue_spawn(q);
	if (rc != 0) {
		q->kick_fd = -1;
		return rc;
	}
	q->running = true;
	log_debug("vub: queue %u started (size %u, base %u)", q->idx, rings->num, rings->base);
	return 0;
}

bool blk_queue_stop(struct blk_queue *q, uint16_t *base)
{
	if (!q->running)
		return false;
	queue_join(q);
	q->running = false;
	q->kick_fd = -1;
	*base = q->vq.last_avail;
	log_debug("vub: queue %u stopped at %u", q->idx, *base);
	return true;
}

bool blk_queue_running(const struct blk_queue *q)
{
	return q->running;
}

int blk_queue_eventfd(const struct blk_queue *q)
{
	return q->stop_fd;
}

void blk_queue_set_call_fd(struct blk_queue *q, int fd)
{
	pthread_mutex_lock(&q->call_lock);
	if (q->call_fd >= 0)
		close(q->call_fd);
	q->call_fd = fd;
	pthread_mutex_unlock(&q->call_lock);
}

void blk_queue_reset(struct blk_queue *q)
{
	uint16_t base;
	(void)blk_queue_stop(q, &base);
	blk_queue_set_call_fd(q, -1);
}

int blk_queue_init(struct blk_queue *q, const struct vblk *blk, unsigned int idx,
		   unsigned int depth, struct blk_queue_logs logs)
{
	memset(q, 0, sizeof(*q));
	q->blk = blk;
	q->idx = idx;
	q->depth = depth;
	q->logs = logs;
	q->kick_fd = q->call_fd = -1;
	q->aio_free = -1;
	pthread_mutex_init(&q->call_lock, NULL);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work_cv, NULL);
	/* The stop's grace period is measured on CLOCK_MONOTONIC. */
	pthread_condattr_t mono;
	pthread_condattr_init(&mono);
	pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
	pthread_cond_init(&q->aio_idle, &mono);
	pthread_condattr_destroy(&mono);
	log_limit_init(&q->stall_log, 1, 60000);
	q->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return q->stop_fd < 0 ? -errno : 0;
}

void blk_queue_destroy(struct blk_queue *q)
{
	blk_queue_reset(q);
	if (q->stop_fd >= 0)
		close(q->stop_fd);
	q->stop_fd = -1;
	pthread_mutex_destroy(&q->call_lock);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->work_cv);
	pthread_cond_destroy(&q->aio_idle);
}
