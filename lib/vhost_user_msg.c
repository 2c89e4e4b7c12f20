#include "vhost_user_msg.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void vhost_user_msg_init(struct vhost_user_msg *m, uint32_t request,
			 uint32_t size)
{
	memset(m, 0, sizeof(*m));
	m->hdr.request = request;
	m->hdr.flags = VHOST_USER_VERSION;
	m->hdr.size = size;
	for (unsigned int i = 0; i < VHOST_USER_MAX_FDS; i++)
		m->fds[i] = -1;
}

void vhost_user_msg_close_fds(struct vhost_user_msg *m)
{
	for (unsigned int i = 0; i < m->nfds && i < VHOST_USER_MAX_FDS; i++) {
		if (m->fds[i] >= 0)
			close(m->fds[i]);
		m->fds[i] = -1;
	}
	m->nfds = 0;
}

int64_t vhost_user_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits until sock is ready for ev or the deadline passes.  A hang-up or
 * error counts as ready: the next recvmsg/sendmsg reports it with its own
 * errno, so every path ends in one place.
 */
static int wait_sock(int sock, short ev, int64_t deadline_ms)
{
	struct pollfd p = { .fd = sock, .events = ev };
	int n;
	do {
		int timeout = -1;
		if (deadline_ms >= 0) {
			int64_t left = deadline_ms - vhost_user_clock_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left < INT_MAX ? (int)left : INT_MAX;
		}
		/* poll, not ppoll: the one flint-hv's vCPU filter allows. */
		n = poll(&p, 1, timeout);
	} while (n == 0 || (n < 0 && errno == EINTR));
	return n < 0 ? -errno : 0;
}

/* After a failed call: 0 to try it again, or the error to return. */
static int retry_after(int sock, short ev, int64_t deadline_ms)
{
	int e = errno;
	if (e == EINTR)
		return 0;
	if (e == EAGAIN)
		return wait_sock(sock, ev, deadline_ms);
	return -e;
}

/*
 * One recvmsg (ev POLLIN) or sendmsg (POLLOUT), retried on EINTR and, when
 * the socket is not ready, after waiting for it.  Without a deadline the
 * call blocks, as the card's always did.
 */
static ssize_t msg_until(int sock, struct msghdr *mh, short ev, int64_t deadline_ms)
{
	int flags = deadline_ms >= 0 ? MSG_DONTWAIT : 0;
	for (;;) {
		ssize_t r = ev == POLLOUT ? sendmsg(sock, mh, flags | MSG_NOSIGNAL) :
			    recvmsg(sock, mh, flags | MSG_CMSG_CLOEXEC);
		if (r >= 0)
			return r;
		int rc = retry_after(sock, ev, deadline_ms);
		if (rc != 0)
			return rc;
	}
}

/*
 * Reads exactly len more bytes of a started message.  recvmsg, not recv:
 * flint-hv's filter allows no recvfrom.  Fds only travel with a message's
 * first byte; any later ones were dropped (no control buffer) and make the
 * message malformed.
 */
static int read_rest(int sock, void *buf, size_t len, int64_t deadline_ms)
{
	uint8_t *p = buf;
	while (len > 0) {
		struct iovec iov = { .iov_base = p, .iov_len = len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t r = msg_until(sock, &mh, POLLIN, deadline_ms);
		if (r < 0)
			return (int)r;
		if (r == 0 || (mh.msg_flags & MSG_CTRUNC))
			return -EPROTO;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Moves every received fd into m: 0, or -EPROTO if any did not fit. */
static int take_fds(struct msghdr *mh, struct vhost_user_msg *m)
{
	int rc = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
	     c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (m->nfds < VHOST_USER_MAX_FDS)
				m->fds[m->nfds++] = fd;
			else {
				close(fd);
				rc = -EPROTO;
			}
		}
	}
	/* Fds past the buffer, or any at all without one. */
	if (mh->msg_flags & MSG_CTRUNC)
		rc = -EPROTO;
	return rc;
}

union fd_ctl {
	char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
	struct cmsghdr align;
};

static int recv_msg(int sock, struct vhost_user_msg *m, bool with_fds,
		    int64_t deadline_ms)
{
	union fd_ctl ctl;
	struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (with_fds) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
	}

	vhost_user_msg_init(m, 0, 0);
	ssize_t r = msg_until(sock, &mh, POLLIN, deadline_ms);
	if (r < 0)
		return (int)r;
	/* Take every fd first, so that each error path below closes them. */
	int rc = take_fds(&mh, m);
	if (r == 0 && rc == 0)
		return -ECONNRESET;
	if (rc == 0)
		rc = read_rest(sock, (uint8_t *)&m->hdr + r,
			       sizeof(m->hdr) - (size_t)r, deadline_ms);
	if (rc == 0 && m->hdr.size > sizeof(m->payload))
		rc = -EPROTO;
	if (rc == 0)
		rc = read_rest(sock, &m->payload, m->hdr.size, deadline_ms);
	if (rc != 0)
		vhost_user_msg_close_fds(m);
	return rc;
}

int vhost_user_recv_until(int sock, struct vhost_user_msg *m, int64_t deadline_ms)
{
	return recv_msg(sock, m, true, deadline_ms);
}

int vhost_user_recv_nofds_until(int sock, struct vhost_user_msg *m,
				int64_t deadline_ms)
{
	return recv_msg(sock, m, false, deadline_ms);
}

/* Points iov at what is left of m after done bytes; the iov count. */
static size_t unsent(const struct vhost_user_msg *m, size_t done, struct iovec iov[2])
{
	size_t n = 0;
	if (done < sizeof(m->hdr))
		iov[n++] = (struct iovec){ (uint8_t *)&m->hdr + done,
					   sizeof(m->hdr) - done };
	size_t poff = done > sizeof(m->hdr) ? done - sizeof(m->hdr) : 0;
	if (m->hdr.size > poff)
		iov[n++] = (struct iovec){ (uint8_t *)&m->payload + poff,
					   m->hdr.size - poff };
	return n;
}

static void attach_fds(struct msghdr *mh, union fd_ctl *ctl,
		       const struct vhost_user_msg *m)
{
	memset(ctl, 0, sizeof(*ctl));
	mh->msg_control = ctl->buf;
	mh->msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
	struct cmsghdr *c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
	memcpy(CMSG_DATA(c), m->fds, m->nfds * sizeof(int));
}

int vhost_user_send_until(int sock, const struct vhost_user_msg *m,
			  int64_t deadline_ms)
{
	union fd_ctl ctl;
	if (m->hdr.size > sizeof(m->payload) || m->nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;
	size_t total = sizeof(m->hdr) + m->hdr.size;
	/* A short stream write is continued without the fds, sent once. */
	for (size_t done = 0; done < total;) {
		struct iovec iov[2];
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = unsent(m, done, iov) };
		if (done == 0 && m->nfds > 0)
			attach_fds(&mh, &ctl, m);
		ssize_t r = msg_until(sock, &mh, POLLOUT, deadline_ms);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EPIPE; /* never for a stream; no endless loop */
		done += (size_t)r;
	}
	return 0;
}

static bool add_overflows(uint64_t a, uint64_t b)
{
	return a + b < a;
}

static int validate_mem_table(const struct vhost_user_msg *m)
{
	const struct vhost_user_mem_table *t = &m->payload.mem;
	if (m->hdr.size < 8)
		return -EINVAL;
	if (t->nregions == 0 || t->nregions > VHOST_USER_MAX_REGIONS)
		return -EINVAL;
	if (m->hdr.size != 8 + t->nregions * sizeof(struct vhost_user_mem_region))
		return -EINVAL;
	if (m->nfds != t->nregions)
		return -EINVAL;
	for (uint32_t i = 0; i < t->nregions; i++) {
		const struct vhost_user_mem_region *r = &t->regions[i];
		if (r->memory_size == 0 ||
		    add_overflows(r->guest_phys_addr, r->memory_size) ||
		    add_overflows(r->userspace_addr, r->memory_size) ||
		    add_overflows(r->mmap_offset, r->memory_size))
			return -EINVAL;
	}
	return 0;
}

static int validate_config(const struct vhost_user_msg *m)
{
	const struct vhost_user_config *c = &m->payload.config;
	if (m->hdr.size < VHOST_USER_CONFIG_HDR_SIZE)
		return -EINVAL;
	if (c->size > VHOST_USER_CONFIG_MAX ||
	    m->hdr.size != VHOST_USER_CONFIG_HDR_SIZE + c->size)
		return -EINVAL;
	if (c->offset > VHOST_USER_CONFIG_MAX ||
	    c->size > VHOST_USER_CONFIG_MAX - c->offset)
		return -EINVAL;
	if (c->flags > VHOST_USER_CONFIG_F_MIGRATION)
		return -EINVAL;
	return 0;
}

int vhost_user_msg_validate(const struct vhost_user_msg *m)
{
	const struct vhost_user_hdr *h = &m->hdr;
	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
	    (h->flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_FLAG_NEED_REPLY)))
		return -EINVAL;
	if (h->size > sizeof(m->payload) || m->nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;

	uint32_t size = 0;
	unsigned int nfds = 0;
	switch (h->request) {
	case VHOST_USER_GET_FEATURES:
	case VHOST_USER_SET_OWNER:
	case VHOST_USER_RESET_OWNER:
	case VHOST_USER_GET_PROTOCOL_FEATURES:
	case VHOST_USER_GET_QUEUE_NUM:
		break;
	case VHOST_USER_SET_FEATURES:
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		size = sizeof(uint64_t);
		break;
	case VHOST_USER_SET_MEM_TABLE:
		return validate_mem_table(m);
	case VHOST_USER_SET_VRING_NUM: {
		uint32_t n = m->payload.state.num;
		size = sizeof(struct vhost_user_vring_state);
		if (h->size == size &&
		    (n == 0 || n > VHOST_USER_VRING_MAX_NUM || (n & (n - 1))))
			return -EINVAL;
		break;
	}
	case VHOST_USER_SET_VRING_BASE:
		size = sizeof(struct vhost_user_vring_state);
		if (h->size == size && m->payload.state.num > 0xffff)
			return -EINVAL;
		break;
	case VHOST_USER_GET_VRING_BASE:
		size = sizeof(struct vhost_user_vring_state);
		break;
	case VHOST_USER_SET_VRING_ENABLE:
		size = sizeof(struct vhost_user_vring_state);
		if (h->size == size && m->payload.state.num > 1)
			return -EINVAL;
		break;
	case VHOST_USER_SET_VRING_ADDR:
		size = sizeof(struct vhost_user_vring_addr);
		if (h->size == size && (m->payload.addr.flags & ~VHOST_VRING_F_LOG))
			return -EINVAL;
		break;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		size = sizeof(uint64_t);
		if (h->size != size)
			return -EINVAL;
		if (m->payload.u64 & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK |
						 VHOST_USER_VRING_NOFD))
			return -EINVAL;
		nfds = (m->payload.u64 & VHOST_USER_VRING_NOFD) ? 0 : 1;
		break;
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		if (m->nfds != 0)
			return -EINVAL;
		return validate_config(m);
	default:
		/* Known to the protocol but not to this implementation. */
		return -ENOTSUP;
	}
	if (h->size != size || m->nfds != nfds)
		return -EINVAL;
	return 0;
}

int vhost_user_reply_validate(const struct vhost_user_msg *m, uint32_t request)
{
	const struct vhost_user_hdr *h = &m->hdr;
	if (h->flags != (VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY) ||
	    h->request != request || m->nfds != 0)
		return -EINVAL;
	switch (request) {
	case VHOST_USER_GET_VRING_BASE:
		return h->size == sizeof(struct vhost_user_vring_state) ? 0 : -EINVAL;
	case VHOST_USER_GET_CONFIG:
		if (h->size < VHOST_USER_CONFIG_HDR_SIZE)
			return -EINVAL;
		return validate_config(m);
	default:
		/* u64 answers and REPLY_ACK status words. */
		return h->size == sizeof(uint64_t) ? 0 : -EINVAL;
	}
}

const char *vhost_user_request_name(uint32_t request)
{
	static const char *const names[] = {
		[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
		[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
		[VHOST_USER_SET_OWNER] = "SET_OWNER",
		[VHOST_USER_RESET_OWNER] = "RESET_OWNER",
		[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
		[VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
		[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
		[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
		[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
		[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
		[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
		[VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
		[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
		[VHOST_USER_GET_CONFIG] = "GET_CONFIG",
		[VHOST_USER_SET_CONFIG] = "SET_CONFIG",
	};
	if (request < sizeof(names) / sizeof(names[0]) && names[request] != NULL)
		return names[request];
	return "UNKNOWN";
}
