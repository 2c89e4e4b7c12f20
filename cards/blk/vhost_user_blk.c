#include "vhost_user_blk.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blk_queue.h"
#include "guest_mem_map.h"
#include "log.h"
#include "log_limit.h"
#include "ring_eventfd.h"
#include "vhost_user_msg.h"
#include "virtio_blk.h"

#define VUB_PROTOCOL_FEATURES ((1ull << VHOST_USER_PROTOCOL_F_MQ) | \
			       (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
			       (1ull << VHOST_USER_PROTOCOL_F_CONFIG))

#define VUB_MAX_IODEPTH 64

struct vub;

/*
 * What the front end said about one ring, and the engine that serves it
 * (blk_queue.h) once it is started and enabled.
 */
struct vub_ring {
	struct vub *dev;
	unsigned int idx;
	uint16_t num;          /* 0: not set */
	bool addr_set;
	struct vhost_user_vring_addr addr;
	uint16_t base;         /* next avail index while stopped */
	bool started;          /* kick fd received, not stopped since */
	bool enabled;
	int kick_fd;           /* lent to the engine while it runs */
	int err_fd;
	/*
	 * What a guest (through the front end) or the front end can trigger
	 * again and again is latched per ring, once per connection: ring
	 * errors the guest made (vq_pop, under the engine's lock), why a ring
	 * start or fd was refused, and refused ring messages (the message
	 * thread).  The connection's end sums up what was not logged.
	 */
	struct log_limit guest_log, cause_log, refused_log;
	struct blk_queue queue;
};

struct vub {
	struct vblk blk;
	pthread_mutex_t be_lock;
	uint16_t num_queues;
	uint16_t iodepth;
	uint64_t features;          /* acked by SET_FEATURES */
	uint64_t protocol_features; /* acked by SET_PROTOCOL_FEATURES */
	struct gmm mem;
	struct vub_ring q[VBLK_MAX_QUEUES];
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
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
static int take_ring_fd(struct vub_ring *q, struct vhost_user_msg *m, int *fd)
{
	*fd = take_fd(m);
	if (*fd < 0)
		return 0;
	int rc = ring_eventfd_check(*fd, blk_queue_eventfd(&q->queue));
	if (rc != 0) {
		log_limited(&q->cause_log, LOG_WARN, "vub: queue %u: %s fd is not an eventfd",
			    q->idx, vhost_user_request_name(m->hdr.request));
		close_fd(fd);
	}
	return rc;
}

/* Stops the ring's engine, if it runs; the base is where it stopped. */
static void ring_stop(struct vub_ring *q)
{
	(void)blk_queue_stop(&q->queue, &q->base);
}

/* Start the ring's engine if everything it needs is there. */
static int ring_try_start(struct vub_ring *q)
{
	struct vub *d = q->dev;
	if (blk_queue_running(&q->queue) || !q->started || !q->enabled || q->num == 0 ||
	    !q->addr_set || q->kick_fd < 0 || d->mem.n == 0)
		return 0;
	struct blk_queue_rings rings = {
		.num = q->num,
		.base = q->base,
		.desc = q->addr.desc,
		.avail = q->addr.avail,
		.used = q->addr.used,
		.indirect = d->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC),
		.event_idx = d->features & (1ull << VIRTIO_RING_F_EVENT_IDX),
	};
	return blk_queue_start(&q->queue, &d->mem, &rings, q->kick_fd);
}

/*
 * Back to the state of a new ring: stopped, disabled (with
 * PROTOCOL_FEATURES the front end enables it again after the next kick, as
 * QEMU and flint-hv do at every start; without, the kick enables it), no
 * kick fd.  Size, addresses, base and call fd stay for the next start.
 */
static void ring_halt(struct vub_ring *q)
{
	ring_stop(q);
	q->started = false;
	q->enabled = false;
	close_fd(&q->kick_fd);
}

/* Re-arms the ring's latches, saying once what they kept out of the log. */
static void ring_log_dropped(struct vub_ring *q)
{
	unsigned long long guest = log_limit_rearm(&q->guest_log);
	unsigned long long cause = log_limit_rearm(&q->cause_log);
	unsigned long long refused = log_limit_rearm(&q->refused_log);
	if (guest + cause + refused == 0)
		return;
	log_warn("vub: queue %u: not logged: %llu more guest ring errors, %llu more "
		 "refusal causes, %llu more refused requests", q->idx, guest, cause, refused);
}

static void ring_reset(struct vub_ring *q)
{
	blk_queue_reset(&q->queue);
	ring_log_dropped(q);
	close_fd(&q->kick_fd);
	close_fd(&q->err_fd);
	q->num = 0;
	q->addr_set = false;
	q->base = 0;
	q->started = false;
	q->enabled = false;
}

static void dev_reset(struct vub *d)
{
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++)
		ring_reset(&d->q[i]);
	gmm_unmap(&d->mem);
	d->features = 0;
	d->protocol_features = 0;
}

/* The answer to a request whose answer is one u64. */
static int reply_u64(struct vhost_user_msg *r, uint64_t v)
{
	r->hdr.size = sizeof(uint64_t);
	r->payload.u64 = v;
	return 0;
}

static uint64_t offered_features(const struct vub *d)
{
	return vblk_features(&d->blk) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

static int set_features(struct vub *d, uint64_t features)
{
	if (features & ~offered_features(d))
		return -EINVAL;
	d->features = features;
	return 0;
}

static int set_protocol_features(struct vub *d, uint64_t features)
{
	if (features & ~VUB_PROTOCOL_FEATURES)
		return -EINVAL;
	d->protocol_features = features;
	return 0;
}

/* The device as on a new connection, but the protocol features stay. */
static int reset_owner(struct vub *d)
{
	uint64_t pf = d->protocol_features;
	dev_reset(d);
	d->protocol_features = pf;
	return 0;
}

static int set_mem_table(struct vub *d, struct vhost_user_msg *m)
{
	for (unsigned int i = 0; i < d->num_queues; i++)
		ring_stop(&d->q[i]);
	gmm_unmap(&d->mem);
	int rc = gmm_map(&d->mem, m->payload.mem.regions, m->fds,
			 m->payload.mem.nregions);
	if (rc != 0)
		return rc;
	for (unsigned int i = 0; i < d->num_queues; i++) {
		int r = ring_try_start(&d->q[i]);
		if (r != 0)
			rc = r;
	}
	return rc;
}

static int set_vring_num(struct vub_ring *q, uint32_t num)
{
	ring_stop(q);
	q->num = (uint16_t)num;
	return ring_try_start(q);
}

static int set_vring_addr(struct vub_ring *q, const struct vhost_user_vring_addr *addr)
{
	ring_stop(q);
	q->addr = *addr;
	q->addr_set = true;
	return ring_try_start(q);
}

static int set_vring_base(struct vub_ring *q, uint32_t base)
{
	ring_stop(q);
	q->base = (uint16_t)base;
	return ring_try_start(q);
}

static int get_vring_base(struct vub_ring *q, struct vhost_user_msg *r)
{
	ring_halt(q);
	r->hdr.size = sizeof(r->payload.state);
	r->payload.state.index = q->idx;
	r->payload.state.num = q->base;
	return 0;
}

static int set_vring_kick(struct vub_ring *q, struct vhost_user_msg *m)
{
	int fd;
	int rc = take_ring_fd(q, m, &fd);
	if (rc != 0)
		return rc;
	if (fd < 0)
		return -ENOTSUP; /* polling mode */
	ring_stop(q);
	close_fd(&q->kick_fd);
	q->kick_fd = fd;
	q->started = true;
	if (!(q->dev->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
		q->enabled = true;
	rc = ring_try_start(q);
	/* A refused start leaves no half-started ring behind, which every later
	 * ring message would try (and fail) to start again. */
	if (rc != 0)
		ring_halt(q);
	return rc;
}

static int set_vring_call(struct vub_ring *q, struct vhost_user_msg *m)
{
	int fd;
	int rc = take_ring_fd(q, m, &fd);
	if (rc != 0)
		return rc;
	blk_queue_set_call_fd(&q->queue, fd);
	return 0;
}

static int set_vring_err(struct vub_ring *q, struct vhost_user_msg *m)
{
	int fd;
	int rc = take_ring_fd(q, m, &fd);
	if (rc != 0)
		return rc;
	close_fd(&q->err_fd);
	q->err_fd = fd;
	return 0;
}

static int set_vring_enable(struct vub_ring *q, bool enable)
{
	q->enabled = enable;
	if (!enable) {
		ring_stop(q);
		return 0;
	}
	int rc = ring_try_start(q);
	if (rc != 0)
		q->enabled = false;
	return rc;
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

static int set_config(void)
{
	log_debug("vub: SET_CONFIG ignored (nothing writable)");
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
 * Act on a validated message.  A request with an answer of its own sets
 * the reply r (its size, never 0, and payload); the others leave it empty.
 * 0 or -errno.
 */
static int dispatch(struct vub *d, struct vhost_user_msg *m, struct vhost_user_msg *r)
{
	uint32_t idx;
	(void)msg_ring_index(m, &idx);
	if (idx >= d->num_queues)
		return -EINVAL;
	struct vub_ring *q = &d->q[idx];
	const union vhost_user_payload *p = &m->payload;

	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		return reply_u64(r, offered_features(d));
	case VHOST_USER_SET_FEATURES:
		return set_features(d, p->u64);
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return reply_u64(r, VUB_PROTOCOL_FEATURES);
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		return set_protocol_features(d, p->u64);
	case VHOST_USER_GET_QUEUE_NUM:
		return reply_u64(r, d->num_queues);
	case VHOST_USER_SET_OWNER:
		return 0;
	case VHOST_USER_RESET_OWNER:
		return reset_owner(d);
	case VHOST_USER_SET_MEM_TABLE:
		return set_mem_table(d, m);
	case VHOST_USER_SET_VRING_NUM:
		return set_vring_num(q, p->state.num);
	case VHOST_USER_SET_VRING_ADDR:
		return set_vring_addr(q, &p->addr);
	case VHOST_USER_SET_VRING_BASE:
		return set_vring_base(q, p->state.num);
	case VHOST_USER_GET_VRING_BASE:
		return get_vring_base(q, r);
	case VHOST_USER_SET_VRING_KICK:
		return set_vring_kick(q, m);
	case VHOST_USER_SET_VRING_CALL:
		return set_vring_call(q, m);
	case VHOST_USER_SET_VRING_ERR:
		return set_vring_err(q, m);
	case VHOST_USER_SET_VRING_ENABLE:
		return set_vring_enable(q, p->state.num == 1);
	case VHOST_USER_GET_CONFIG:
		return get_config(d, m, r);
	case VHOST_USER_SET_CONFIG:
		return set_config();
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
		rc = dispatch(d, &m, &r);
		vhost_user_msg_close_fds(&m);
		bool has_reply = r.hdr.size != 0;
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

/*
 * A device with every ring stopped into *out (NULL only if it could not be
 * allocated; else to be destroyed whatever the result).  0 or -errno.
 */
static int vub_create(const struct vub_options *opts, struct vub **out)
{
	struct vub *d = calloc(1, sizeof(*d));
	*out = d;
	if (d == NULL)
		return -ENOMEM;
	d->num_queues = opts->num_queues ? opts->num_queues : 1;
	d->iodepth = opts->iodepth ? opts->iodepth : 1;
	if (d->iodepth > VUB_MAX_IODEPTH)
		d->iodepth = VUB_MAX_IODEPTH;
	pthread_mutex_init(&d->be_lock, NULL);
	int rc = 0;
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++) {
		struct vub_ring *q = &d->q[i];
		q->dev = d;
		q->idx = i;
		q->kick_fd = q->err_fd = -1;
		log_limit_init(&q->guest_log, 1, 0);
		log_limit_init(&q->cause_log, 1, 0);
		log_limit_init(&q->refused_log, 1, 0);
		struct blk_queue_logs logs = { .guest = &q->guest_log, .refusal = &q->cause_log };
		int r = blk_queue_init(&q->queue, &d->blk, i, d->iodepth, logs);
		if (r != 0)
			rc = r;
	}
	return rc;
}

static void vub_destroy(struct vub *d)
{
	dev_reset(d);
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++)
		blk_queue_destroy(&d->q[i].queue);
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
	struct vub *d;
	rc = vub_create(opts, &d);
	if (d == NULL)
		return rc;
	if (rc != 0)
		goto out;
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
