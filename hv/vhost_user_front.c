#include "vhost_user_front.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "channel_fd.h"
#include "log.h"
#include "vhost_user_msg.h"

#define VIRTIO_BLK_CLASS 0x018000
#define PROTO_F(bit) (1ULL << (bit))

/*
 * errno names without strerror: messages are also written under seccomp,
 * where nothing may allocate.
 */
static const char *err_name(int e)
{
	switch (e) {
	case ECONNRESET: return "connection closed";
	case EPIPE: return "broken pipe";
	case ETIMEDOUT: return "no reply in time";
	case EPROTO: return "malformed reply";
	case EIO: return "request refused";
	case ENOENT: return "no such file";
	case ECONNREFUSED: return "connection refused";
	case EACCES: return "permission denied";
	case ENOTSOCK: return "not a socket";
	default: return "error";
	}
}

/*
 * The reply to request, by the deadline.  It may carry no fds: they are
 * never installed (closing them is not allowed under seccomp).
 */
static int recv_reply(struct vuf *f, uint32_t request, struct vhost_user_msg *r,
		      int64_t deadline)
{
	int rc = vhost_user_recv_nofds_until(f->sock, r, deadline);
	if (rc != 0)
		return rc;
	return vhost_user_reply_validate(r, request) == 0 ? 0 : -EPROTO;
}

/*
 * The back end failed (or did not answer in time): cut it off for good.  A
 * late answer would be taken for the next request's, and a card still
 * running queues the guest has reset would write into memory the guest
 * reuses: the shutdown makes it see the end and stop every queue, and
 * flint-hv counts them all stopped.
 */
static void mark_broken(struct vuf *f, uint32_t request, int rc)
{
	if (f->broken)
		return;
	f->broken = true;
	if (f->sock >= 0)
		shutdown(f->sock, SHUT_RDWR);
	for (unsigned int q = 0; q < VIRTIO_PCI_QUEUES_MAX; q++)
		f->started[q] = false;
	log_err("vhost-user %s (%s): back end failed during %s (%s); cut off, device "
		"disabled, guest keeps running", f->label, f->path,
		vhost_user_request_name(request), err_name(-rc));
}

/*
 * One request.  reply != NULL: the request has an answer of its own.
 * ack: ask for a REPLY_ACK when negotiated.  Returns 0, -EIO when the back
 * end refused (the connection stays usable), or another -errno after which
 * the device is broken.
 */
static int transact_within(struct vuf *f, struct vhost_user_msg *m, bool ack,
			   struct vhost_user_msg *reply, int timeout_ms)
{
	uint32_t request = m->hdr.request;
	struct vhost_user_msg local;

	if (f->broken)
		return -EPIPE;
	bool want_ack = ack && reply == NULL && f->reply_ack;
	if (want_ack) {
		m->hdr.flags |= VHOST_USER_FLAG_NEED_REPLY;
		reply = &local;
	}
	int64_t deadline = vhost_user_clock_ms() + timeout_ms;
	int rc = vhost_user_send_until(f->sock, m, deadline);
	if (rc == 0 && reply != NULL)
		rc = recv_reply(f, request, reply, deadline);
	if (rc != 0) {
		mark_broken(f, request, rc);
		return rc;
	}
	if (want_ack && reply->payload.u64 != 0)
		return -EIO; /* the caller says so, once (guests can repeat it) */
	return 0;
}

static int transact(struct vuf *f, struct vhost_user_msg *m, bool ack,
		    struct vhost_user_msg *reply)
{
	return transact_within(f, m, ack, reply, f->timeout_ms);
}

static int get_u64(struct vuf *f, uint32_t request, uint64_t *out)
{
	struct vhost_user_msg m, r;
	vhost_user_msg_init(&m, request, 0);
	int rc = transact(f, &m, false, &r);
	if (rc == 0)
		*out = r.payload.u64;
	return rc;
}

static int set_u64(struct vuf *f, uint32_t request, uint64_t v, bool ack)
{
	struct vhost_user_msg m;
	vhost_user_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = v;
	return transact(f, &m, ack, NULL);
}

static int set_state(struct vuf *f, uint32_t request, uint32_t index, uint32_t num)
{
	struct vhost_user_msg m;
	vhost_user_msg_init(&m, request, sizeof(m.payload.state));
	m.payload.state = (struct vhost_user_vring_state){ index, num };
	return transact(f, &m, true, NULL);
}

static int set_vring_fd(struct vuf *f, uint32_t request, uint32_t index, int fd)
{
	struct vhost_user_msg m;
	vhost_user_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = index;
	if (fd < 0) {
		m.payload.u64 |= VHOST_USER_VRING_NOFD;
	} else {
		m.fds[0] = fd;
		m.nfds = 1;
	}
	return transact(f, &m, true, NULL);
}

int vuf_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "--blk socket=%s: path too long", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(err, errlen, "--blk socket=%s: socket: %s", path, strerror(errno));
		return -1;
	}
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		snprintf(err, errlen, "--blk socket=%s: cannot connect: %s", path,
			 strerror(errno));
		close(s);
		return -1;
	}
	return s;
}

int vuf_adopt_fd(int fd, char *err, size_t errlen)
{
	char what[24];
	snprintf(what, sizeof(what), "--blk fd=%d", fd);
	return channel_fd_check(fd, what, err, errlen) == 0 ? fd : -1;
}

static int fail(struct vuf *f, char *err, size_t errlen, const char *what, int rc)
{
	snprintf(err, errlen, "vhost-user %s (%s): %s: %s", f->label, f->path, what,
		 err_name(-rc));
	return -1;
}

static int set_mem_table(struct vuf *f, const struct guest_mem *gm)
{
	struct vhost_user_msg m;
	vhost_user_msg_init(&m, VHOST_USER_SET_MEM_TABLE,
			    (uint32_t)(8 + gm->nr_regions * sizeof(struct vhost_user_mem_region)));
	m.payload.mem.nregions = gm->nr_regions;
	for (unsigned int i = 0; i < gm->nr_regions; i++) {
		const struct guest_mem_region *r = &gm->regions[i];
		/* userspace_addr == gpa: ring addresses need no translation. */
		m.payload.mem.regions[i] = (struct vhost_user_mem_region){
			.guest_phys_addr = r->gpa, .memory_size = r->size,
			.userspace_addr = r->gpa, .mmap_offset = r->offset,
		};
		m.fds[i] = gm->fd;
	}
	m.nfds = gm->nr_regions;
	return transact(f, &m, true, NULL);
}

static int get_config(struct vuf *f, char *err, size_t errlen)
{
	struct vhost_user_msg m, r;
	vhost_user_msg_init(&m, VHOST_USER_GET_CONFIG,
			    VHOST_USER_CONFIG_HDR_SIZE + VUF_BLK_CONFIG_SIZE);
	m.payload.config.offset = 0;
	m.payload.config.size = VUF_BLK_CONFIG_SIZE;
	int rc = transact(f, &m, false, &r);
	if (rc != 0)
		return fail(f, err, errlen, "GET_CONFIG", rc);
	if (r.payload.config.offset != 0 || r.payload.config.size != VUF_BLK_CONFIG_SIZE) {
		snprintf(err, errlen, "vhost-user %s (%s): GET_CONFIG answered %u bytes "
			 "at %u, asked %u at 0", f->label, f->path, r.payload.config.size,
			 r.payload.config.offset, VUF_BLK_CONFIG_SIZE);
		return -1;
	}
	memcpy(f->config, r.payload.config.payload, VUF_BLK_CONFIG_SIZE);
	/* The guest sees exactly the queues flint-hv exposes. */
	uint16_t nq = (uint16_t)f->nr_queues;
	memcpy(f->config + offsetof(struct virtio_blk_config, num_queues), &nq, sizeof(nq));
	return 0;
}

static int negotiate(struct vuf *f, const struct guest_mem *gm, char *err, size_t errlen)
{
	uint64_t pf = 0, qnum = 0;
	int rc;

	struct vhost_user_msg m;
	vhost_user_msg_init(&m, VHOST_USER_SET_OWNER, 0);
	if ((rc = transact(f, &m, false, NULL)) != 0)
		return fail(f, err, errlen, "SET_OWNER", rc);
	if ((rc = get_u64(f, VHOST_USER_GET_FEATURES, &f->backend_features)) != 0)
		return fail(f, err, errlen, "GET_FEATURES", rc);
	if (!(f->backend_features & (1ULL << VIRTIO_F_VERSION_1)) ||
	    !(f->backend_features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))) {
		snprintf(err, errlen, "vhost-user %s (%s): back end lacks VIRTIO_F_VERSION_1 "
			 "or VHOST_USER_F_PROTOCOL_FEATURES (features 0x%llx)", f->label,
			 f->path, (unsigned long long)f->backend_features);
		return -1;
	}
	if ((rc = get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES, &pf)) != 0)
		return fail(f, err, errlen, "GET_PROTOCOL_FEATURES", rc);
	uint64_t need = PROTO_F(VHOST_USER_PROTOCOL_F_CONFIG);
	if (f->nr_queues > 1)
		need |= PROTO_F(VHOST_USER_PROTOCOL_F_MQ);
	if ((pf & need) != need) {
		snprintf(err, errlen, "vhost-user %s (%s): back end lacks protocol feature%s "
			 "(offers 0x%llx)", f->label, f->path,
			 (pf & PROTO_F(VHOST_USER_PROTOCOL_F_CONFIG)) ? " MQ" : " CONFIG",
			 (unsigned long long)pf);
		return -1;
	}
	f->protocol_features = pf & (need | PROTO_F(VHOST_USER_PROTOCOL_F_MQ) |
				     PROTO_F(VHOST_USER_PROTOCOL_F_REPLY_ACK));
	if ((rc = set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, f->protocol_features,
			  false)) != 0)
		return fail(f, err, errlen, "SET_PROTOCOL_FEATURES", rc);
	f->reply_ack = f->protocol_features & PROTO_F(VHOST_USER_PROTOCOL_F_REPLY_ACK);
	if (f->protocol_features & PROTO_F(VHOST_USER_PROTOCOL_F_MQ)) {
		if ((rc = get_u64(f, VHOST_USER_GET_QUEUE_NUM, &qnum)) != 0)
			return fail(f, err, errlen, "GET_QUEUE_NUM", rc);
		if (qnum < f->nr_queues) {
			snprintf(err, errlen, "vhost-user %s (%s): back end has %llu queues, "
				 "queues=%u asked", f->label, f->path,
				 (unsigned long long)qnum, f->nr_queues);
			return -1;
		}
	}
	if (f->nr_queues > 1 && !(f->backend_features & (1ULL << VIRTIO_BLK_F_MQ))) {
		snprintf(err, errlen, "vhost-user %s (%s): back end lacks VIRTIO_BLK_F_MQ "
			 "for queues=%u", f->label, f->path, f->nr_queues);
		return -1;
	}
	if (get_config(f, err, errlen) != 0)
		return -1;
	if ((rc = set_mem_table(f, gm)) != 0)
		return fail(f, err, errlen, "SET_MEM_TABLE", rc);
	return 0;
}

int vuf_setup(struct vuf *f, int sock, const char *label, const char *path,
	      unsigned int nr_queues, const struct guest_mem *gm,
	      char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	f->sock = sock;
	f->timeout_ms = VUF_TIMEOUT_MS;
	f->stop_timeout_ms = VUF_STOP_TIMEOUT_MS;
	for (unsigned int q = 0; q < VIRTIO_PCI_QUEUES_MAX; q++)
		log_limit_init(&f->start_log[q], 1, 0);
	log_limit_init(&f->features_log, 1, 0);
	snprintf(f->label, sizeof(f->label), "%s", label);
	snprintf(f->path, sizeof(f->path), "%s", path);
	for (unsigned int q = 0; q < VIRTIO_PCI_QUEUES_MAX; q++)
		f->vp.q[q].kick_fd = f->vp.q[q].call_fd = -1;
	if (nr_queues < 1 || nr_queues > VIRTIO_PCI_QUEUES_MAX) {
		snprintf(err, errlen, "vhost-user %s: queues=%u outside 1..%d", label,
			 nr_queues, VIRTIO_PCI_QUEUES_MAX);
		vuf_close(f);
		return -1;
	}
	f->nr_queues = nr_queues;
	if (negotiate(f, gm, err, errlen) != 0) {
		vuf_close(f);
		return -1;
	}
	log_info("vhost-user %s (%s): %u queue%s, features 0x%llx, protocol 0x%llx",
		 label, path, nr_queues, nr_queues == 1 ? "" : "s",
		 (unsigned long long)f->backend_features,
		 (unsigned long long)f->protocol_features);
	return 0;
}

int vuf_attach(struct vuf *f, struct pci_bus *bus, char *err, size_t errlen)
{
	const struct virtio_pci_params p = {
		.device_type = VIRTIO_ID_BLOCK,
		.class_code = VIRTIO_BLK_CLASS,
		.nr_queues = f->nr_queues,
		.queue_size_max = VUF_QUEUE_SIZE_MAX,
		.config_size = VUF_BLK_CONFIG_SIZE,
		.ops = &vuf_ops,
		.be = f,
	};
	char why[256];
	if (virtio_pci_init(&f->vp, bus, &p, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "vhost-user %s: PCI device: %s", f->label, why);
		return -1;
	}
	return 0;
}

void vuf_close(struct vuf *f)
{
	if (f->sock >= 0)
		close(f->sock);
	f->sock = -1;
	f->broken = true;
}

static uint64_t vuf_get_features(void *be)
{
	struct vuf *f = be;
	return f->backend_features & VUF_GUEST_FEATURES;
}

static int vuf_set_features(void *be, uint64_t features)
{
	struct vuf *f = be;
	uint64_t offered = (f->backend_features & VUF_GUEST_FEATURES) | (1ULL << VIRTIO_F_VERSION_1);
	if (features & ~offered)
		return -1;
	/* The transport's own bits stay with it; bit 30 keeps vring enabling on. */
	uint64_t v = (features & offered) | (1ULL << VIRTIO_F_VERSION_1) |
		     (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	int rc = set_u64(f, VHOST_USER_SET_FEATURES, v, true);
	if (rc == 0) {
		log_limit_rearm(&f->features_log);
		return 0;
	}
	if (rc == -EIO)
		log_limited(&f->features_log, LOG_WARN, "vhost-user %s: back end refused "
			    "features 0x%llx", f->label, (unsigned long long)v);
	return -1;
}

static void vuf_get_config(void *be, uint32_t off, uint8_t *buf, uint32_t len)
{
	struct vuf *f = be;
	/* The transport checks off + len <= config_size; checked again here. */
	if (off > VUF_BLK_CONFIG_SIZE || len > VUF_BLK_CONFIG_SIZE - off) {
		memset(buf, 0xff, len);
		return;
	}
	memcpy(buf, f->config + off, len);
}

static void vuf_set_config(void *be, uint32_t off, const uint8_t *buf, uint32_t len)
{
	/* Nothing flint-hv exposes is writable (no CONFIG_WCE): ignored. */
	(void)be;
	(void)off;
	(void)buf;
	(void)len;
}

static int vuf_queue_start(void *be, const struct virtio_pci_queue_info *q)
{
	struct vuf *f = be;

	if (f->broken || q->index >= f->nr_queues)
		return -1;
	/* From the first message on the back end holds some of this ring's
	 * state: a reset stops the ring (GET_VRING_BASE) even if its start
	 * fails half-way, or a back end that kept the state might refuse every
	 * later start. */
	f->started[q->index] = true;
	struct vhost_user_msg m;
	uint32_t step = VHOST_USER_SET_VRING_NUM;
	int rc = set_state(f, step, q->index, q->size);
	if (rc == 0) {
		step = VHOST_USER_SET_VRING_ADDR;
		vhost_user_msg_init(&m, step, sizeof(m.payload.addr));
		m.payload.addr = (struct vhost_user_vring_addr){
			.index = q->index, .desc = q->desc, .avail = q->driver,
			.used = q->device,
		};
		rc = transact(f, &m, true, NULL);
	}
	if (rc == 0)
		rc = set_state(f, step = VHOST_USER_SET_VRING_BASE, q->index, 0);
	if (rc == 0)
		rc = set_vring_fd(f, step = VHOST_USER_SET_VRING_KICK, q->index, q->kick_fd);
	if (rc == 0)
		rc = set_vring_fd(f, step = VHOST_USER_SET_VRING_CALL, q->index, q->call_fd);
	if (rc == 0)
		rc = set_state(f, step = VHOST_USER_SET_VRING_ENABLE, q->index, 1);
	if (rc != 0) {
		/* A cut-off was logged already; a refusal is the guest's to repeat. */
		if (rc == -EIO)
			log_limited(&f->start_log[q->index], LOG_WARN, "vhost-user %s: queue %u "
				    "did not start: back end refused %s", f->label, q->index,
				    vhost_user_request_name(step));
		return -1;
	}
	log_limit_rearm(&f->start_log[q->index]);
	return 0;
}

/*
 * Stops every started queue.  A back end that does not answer within
 * stop_timeout_ms is cut off (mark_broken): its other queues count as
 * stopped too, and it is not asked again.
 */
static void vuf_reset(void *be)
{
	struct vuf *f = be;
	for (unsigned int q = 0; q < f->nr_queues && !f->broken; q++) {
		if (!f->started[q])
			continue;
		f->started[q] = false;
		struct vhost_user_msg m, r;
		vhost_user_msg_init(&m, VHOST_USER_GET_VRING_BASE, sizeof(m.payload.state));
		m.payload.state = (struct vhost_user_vring_state){ q, 0 };
		(void)transact_within(f, &m, false, &r, f->stop_timeout_ms);
	}
}

const struct virtio_backend_ops vuf_ops = {
	.get_features = vuf_get_features,
	.set_features = vuf_set_features,
	.get_config = vuf_get_config,
	.set_config = vuf_set_config,
	.queue_start = vuf_queue_start,
	.driver_ok = NULL,
	.reset = vuf_reset,
};
