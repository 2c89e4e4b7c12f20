#include "vhost_user_msg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
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

/* Read exactly len bytes (no fds expected after the header). */
static int read_full(int sock, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t r = recv(sock, p, len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPROTO;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int vhost_user_recv(int sock, struct vhost_user_msg *m)
{
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	ssize_t r;

	vhost_user_msg_init(m, 0, 0);
	do {
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;

	/* Take every fd first, so that each error path below closes them. */
	int rc = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	     c = CMSG_NXTHDR(&mh, c)) {
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
	if (mh.msg_flags & MSG_CTRUNC)
		rc = -EPROTO;
	if (r == 0 && rc == 0)
		return -ECONNRESET;
	if (rc == 0 && (size_t)r < sizeof(m->hdr))
		rc = read_full(sock, (uint8_t *)&m->hdr + r,
			       sizeof(m->hdr) - (size_t)r);
	if (rc == 0 && m->hdr.size > sizeof(m->payload))
		rc = -EPROTO;
	if (rc == 0 && m->hdr.size > 0)
		rc = read_full(sock, &m->payload, m->hdr.size);
	if (rc != 0)
		vhost_user_msg_close_fds(m);
	return rc;
}

int vhost_user_send(int sock, const struct vhost_user_msg *m)
{
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	if (m->hdr.size > sizeof(m->payload) || m->nfds > VHOST_USER_MAX_FDS)
		return -EINVAL;
	struct iovec iov[2] = {
		{ .iov_base = (void *)&m->hdr, .iov_len = sizeof(m->hdr) },
		{ .iov_base = (void *)&m->payload, .iov_len = m->hdr.size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	if (m->nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
		memcpy(CMSG_DATA(c), m->fds, m->nfds * sizeof(int));
	}
	size_t total = sizeof(m->hdr) + m->hdr.size;
	ssize_t r;
	do {
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	/* A short stream write: push the rest without fds. */
	size_t done = (size_t)r;
	while (done < total) {
		const uint8_t *p;
		size_t len;
		if (done < sizeof(m->hdr)) {
			p = (const uint8_t *)&m->hdr + done;
			len = sizeof(m->hdr) - done;
		} else {
			p = (const uint8_t *)&m->payload + (done - sizeof(m->hdr));
			len = total - done;
		}
		r = send(sock, p, len, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
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
