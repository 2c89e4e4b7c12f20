/*
 * vhost_user_msg_validate(): every request type with its exact size and fd
 * count accepted, one byte more or less and wrong fd counts rejected, field
 * ranges; send/recv over a socketpair with fds, and surplus fds closed;
 * the deadline path: a stalled peer times out, a peer closing mid-message
 * is -EPROTO, a late message arrives, a full socket times out a send, and
 * the no-fds receive refuses a message carrying one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost_user_msg.h"

struct kind {
	uint32_t req;
	uint32_t size;
	unsigned int nfds;
};

static const struct kind kinds[] = {
	{ VHOST_USER_GET_FEATURES, 0, 0 },
	{ VHOST_USER_SET_FEATURES, 8, 0 },
	{ VHOST_USER_SET_OWNER, 0, 0 },
	{ VHOST_USER_RESET_OWNER, 0, 0 },
	{ VHOST_USER_SET_MEM_TABLE, 8 + 2 * 32, 2 },
	{ VHOST_USER_SET_VRING_NUM, 8, 0 },
	{ VHOST_USER_SET_VRING_ADDR, 40, 0 },
	{ VHOST_USER_SET_VRING_BASE, 8, 0 },
	{ VHOST_USER_GET_VRING_BASE, 8, 0 },
	{ VHOST_USER_SET_VRING_KICK, 8, 1 },
	{ VHOST_USER_SET_VRING_CALL, 8, 1 },
	{ VHOST_USER_SET_VRING_ERR, 8, 1 },
	{ VHOST_USER_GET_PROTOCOL_FEATURES, 0, 0 },
	{ VHOST_USER_SET_PROTOCOL_FEATURES, 8, 0 },
	{ VHOST_USER_GET_QUEUE_NUM, 0, 0 },
	{ VHOST_USER_SET_VRING_ENABLE, 8, 0 },
	{ VHOST_USER_GET_CONFIG, 12 + 60, 0 },
	{ VHOST_USER_SET_CONFIG, 12 + 4, 0 },
};

/* A valid message of the kind, with placeholder fds. */
static void make(struct vhost_user_msg *m, const struct kind *k)
{
	vhost_user_msg_init(m, k->req, k->size);
	m->nfds = k->nfds;
	for (unsigned int i = 0; i < k->nfds; i++)
		m->fds[i] = 100 + (int)i;
	switch (k->req) {
	case VHOST_USER_SET_MEM_TABLE:
		m->payload.mem.nregions = 2;
		m->payload.mem.regions[0] = (struct vhost_user_mem_region){ 0, 4096, 0x1000, 0 };
		m->payload.mem.regions[1] = (struct vhost_user_mem_region){ 0x10000, 4096, 0x9000, 0 };
		break;
	case VHOST_USER_SET_VRING_NUM:
		m->payload.state.num = 256;
		break;
	case VHOST_USER_SET_VRING_ENABLE:
		m->payload.state.num = 1;
		break;
	case VHOST_USER_GET_CONFIG:
		m->payload.config.size = 60;
		break;
	case VHOST_USER_SET_CONFIG:
		m->payload.config.offset = 32;
		m->payload.config.size = 4;
		break;
	default:
		break;
	}
}

static void test_every_type_exact_size(void **state)
{
	(void)state;
	struct vhost_user_msg m;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind *k = &kinds[i];
		make(&m, k);
		assert_int_equal(vhost_user_msg_validate(&m), 0);
		m.hdr.flags |= VHOST_USER_FLAG_NEED_REPLY;
		assert_int_equal(vhost_user_msg_validate(&m), 0);
		m.hdr.size = k->size + 1;
		assert_int_not_equal(vhost_user_msg_validate(&m), 0);
		if (k->size > 0) {
			m.hdr.size = k->size - 1;
			assert_int_not_equal(vhost_user_msg_validate(&m), 0);
		}
		make(&m, k);
		m.nfds = k->nfds + 1;
		assert_int_not_equal(vhost_user_msg_validate(&m), 0);
		if (k->nfds > 0) {
			make(&m, k);
			m.nfds = k->nfds - 1;
			assert_int_not_equal(vhost_user_msg_validate(&m), 0);
		}
		make(&m, k);
		m.hdr.flags = 2; /* wrong version */
		assert_int_not_equal(vhost_user_msg_validate(&m), 0);
		make(&m, k);
		m.hdr.flags |= VHOST_USER_FLAG_REPLY; /* a reply is not a request */
		assert_int_not_equal(vhost_user_msg_validate(&m), 0);
		make(&m, k);
		m.hdr.flags |= 1u << 7; /* unknown flag */
		assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	}
}

static void test_unknown_and_unsupported(void **state)
{
	(void)state;
	struct vhost_user_msg m;
	uint32_t reqs[] = { 0, VHOST_USER_SET_LOG_BASE, VHOST_USER_SET_LOG_FD, 19,
			    40, 41, 1000, UINT32_MAX };
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		vhost_user_msg_init(&m, reqs[i], 0);
		assert_int_equal(vhost_user_msg_validate(&m), -ENOTSUP);
	}
	vhost_user_msg_init(&m, VHOST_USER_GET_FEATURES, sizeof(m.payload) + 1);
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
}

static void test_field_ranges(void **state)
{
	(void)state;
	struct vhost_user_msg m;
	const struct kind num = { VHOST_USER_SET_VRING_NUM, 8, 0 };
	uint32_t bad_nums[] = { 0, 3, 100, 65536, 32768 * 2, UINT32_MAX };
	for (size_t i = 0; i < sizeof(bad_nums) / sizeof(bad_nums[0]); i++) {
		make(&m, &num);
		m.payload.state.num = bad_nums[i];
		assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	}
	make(&m, &num);
	m.payload.state.num = 32768;
	assert_int_equal(vhost_user_msg_validate(&m), 0);

	const struct kind base = { VHOST_USER_SET_VRING_BASE, 8, 0 };
	make(&m, &base);
	m.payload.state.num = 0x10000;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);

	const struct kind en = { VHOST_USER_SET_VRING_ENABLE, 8, 0 };
	make(&m, &en);
	m.payload.state.num = 2;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);

	const struct kind addr = { VHOST_USER_SET_VRING_ADDR, 40, 0 };
	make(&m, &addr);
	m.payload.addr.flags = 2;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);

	/* Kick: NOFD means no fd; unknown bits rejected. */
	const struct kind kick = { VHOST_USER_SET_VRING_KICK, 8, 1 };
	make(&m, &kick);
	m.payload.u64 = 3 | VHOST_USER_VRING_NOFD;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	m.nfds = 0;
	assert_int_equal(vhost_user_msg_validate(&m), 0);
	m.payload.u64 = 1ull << 9;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);

	/* Memory table: region counts, size formula, overflow. */
	const struct kind mt = { VHOST_USER_SET_MEM_TABLE, 8 + 2 * 32, 2 };
	make(&m, &mt);
	m.payload.mem.nregions = 3;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &mt);
	m.payload.mem.nregions = 0;
	m.hdr.size = 8;
	m.nfds = 0;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &mt);
	m.payload.mem.nregions = 9;
	m.hdr.size = 8 + 9 * 32;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &mt);
	m.payload.mem.regions[1].memory_size = 0;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &mt);
	m.payload.mem.regions[1].guest_phys_addr = UINT64_MAX - 10;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &mt);
	m.payload.mem.regions[0].mmap_offset = UINT64_MAX;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);

	/* Config: offset + size within 256, size field matches. */
	const struct kind cfg = { VHOST_USER_GET_CONFIG, 12 + 60, 0 };
	make(&m, &cfg);
	m.payload.config.offset = 200;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &cfg);
	m.payload.config.size = 61;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &cfg);
	m.payload.config.size = 257;
	m.hdr.size = 12 + 257;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &cfg);
	m.payload.config.offset = UINT32_MAX;
	m.payload.config.size = 60;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
	make(&m, &cfg);
	m.payload.config.flags = 2;
	assert_int_not_equal(vhost_user_msg_validate(&m), 0);
}

static void test_reply_validate(void **state)
{
	(void)state;
	struct vhost_user_msg m;
	vhost_user_msg_init(&m, VHOST_USER_GET_FEATURES, 8);
	m.hdr.flags |= VHOST_USER_FLAG_REPLY;
	assert_int_equal(vhost_user_reply_validate(&m, VHOST_USER_GET_FEATURES), 0);
	assert_int_not_equal(vhost_user_reply_validate(&m, VHOST_USER_GET_QUEUE_NUM), 0);
	m.hdr.size = 4;
	assert_int_not_equal(vhost_user_reply_validate(&m, VHOST_USER_GET_FEATURES), 0);
	m.hdr.size = 8;
	m.hdr.flags = VHOST_USER_VERSION;
	assert_int_not_equal(vhost_user_reply_validate(&m, VHOST_USER_GET_FEATURES), 0);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_send_recv_fds(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int ev = eventfd(0, EFD_CLOEXEC);
	struct vhost_user_msg m, r;
	vhost_user_msg_init(&m, VHOST_USER_SET_VRING_KICK, 8);
	m.payload.u64 = 2;
	m.fds[0] = ev;
	m.nfds = 1;
	assert_int_equal(vhost_user_send(sv[0], &m), 0);
	assert_int_equal(vhost_user_recv(sv[1], &r), 0);
	assert_int_equal(r.hdr.request, VHOST_USER_SET_VRING_KICK);
	assert_int_equal(r.payload.u64, 2);
	assert_int_equal(r.nfds, 1);
	assert_true(fd_open(r.fds[0]));
	assert_int_equal(vhost_user_msg_validate(&r), 0);
	int got = r.fds[0];
	vhost_user_msg_close_fds(&r);
	assert_false(fd_open(got));

	/* Oversized payload: -EPROTO. */
	struct vhost_user_hdr h = { VHOST_USER_SET_FEATURES, 1, 100000 };
	assert_int_equal(write(sv[0], &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(vhost_user_recv(sv[1], &r), -EPROTO);
	close(sv[0]);
	close(sv[1]);

	/* EOF before a header, and EOF inside a payload. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct vhost_user_hdr h2 = { VHOST_USER_SET_FEATURES, 1, 8 };
	assert_int_equal(write(sv[0], &h2, sizeof(h2)), (ssize_t)sizeof(h2));
	close(sv[0]);
	assert_int_equal(vhost_user_recv(sv[1], &r), -EPROTO);
	assert_int_equal(vhost_user_recv(sv[1], &r), -ECONNRESET);
	close(sv[1]);
	close(ev);
}

/* Long enough for any machine to reach poll(); never a time bound. */
#define DEADLINE_MS 100
#define NO_HURRY_MS 10000

static int64_t soon(void)
{
	return vhost_user_clock_ms() + DEADLINE_MS;
}

/* Half a header, then nothing: both receives time out instead of hanging. */
static void test_recv_deadline_stall(void **state)
{
	(void)state;
	int sv[2];
	struct vhost_user_msg r;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(vhost_user_recv_until(sv[1], &r, soon()), -ETIMEDOUT);
	struct vhost_user_hdr h = { VHOST_USER_GET_FEATURES, 5, 8 };
	assert_int_equal(write(sv[0], &h, 6), 6);
	assert_int_equal(vhost_user_recv_until(sv[1], &r, soon()), -ETIMEDOUT);
	close(sv[1]);

	/* The header complete, the payload stalled, no fds wanted. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(vhost_user_recv_nofds_until(sv[1], &r, soon()), -ETIMEDOUT);
	assert_int_equal(vhost_user_recv_nofds_until(sv[1], &r,
						     vhost_user_clock_ms() - 1),
			 -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
}

/* Writes len bytes of buf (and fd, if >= 0) a little later, then closes. */
struct late {
	int sock;
	const void *buf;
	size_t len;
	int fd;
	pthread_t thread;
};

static void *late_write(void *arg)
{
	struct late *l = arg;
	/* Usually after the reader waits in poll; either order must work. */
	usleep(20000);
	struct iovec iov = { (void *)l->buf, l->len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl = { { 0 } };
	if (l->fd >= 0) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		*c = (struct cmsghdr){ CMSG_LEN(sizeof(int)), SOL_SOCKET, SCM_RIGHTS };
		memcpy(CMSG_DATA(c), &l->fd, sizeof(int));
	}
	if (l->len > 0 && sendmsg(l->sock, &mh, MSG_NOSIGNAL) != (ssize_t)l->len)
		return (void *)1;
	close(l->sock);
	return NULL;
}

/* Starts a late writer on a fresh socketpair; returns the reader's end. */
static int late_start(struct late *l, const void *buf, size_t len, int fd)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*l = (struct late){ .sock = sv[0], .buf = buf, .len = len, .fd = fd };
	assert_int_equal(pthread_create(&l->thread, NULL, late_write, l), 0);
	return sv[1];
}

static void late_join(struct late *l, int reader)
{
	void *ret;
	assert_int_equal(pthread_join(l->thread, &ret), 0);
	assert_null(ret);
	close(reader);
}

/* The peer closes while a bounded receive waits: as documented, never a hang. */
static void test_recv_deadline_eof(void **state)
{
	(void)state;
	struct vhost_user_msg m, r;
	struct late l;
	vhost_user_msg_init(&m, VHOST_USER_SET_FEATURES, 8);

	int s = late_start(&l, &m, 0, -1);
	assert_int_equal(vhost_user_recv_until(s, &r, vhost_user_clock_ms() + NO_HURRY_MS),
			 -ECONNRESET);
	late_join(&l, s);

	/* Header and half the payload, then gone. */
	s = late_start(&l, &m, sizeof(m.hdr) + 4, -1);
	assert_int_equal(vhost_user_recv_until(s, &r, vhost_user_clock_ms() + NO_HURRY_MS),
			 -EPROTO);
	late_join(&l, s);

	/* Half a header. */
	s = late_start(&l, &m, 5, -1);
	assert_int_equal(vhost_user_recv_nofds_until(s, &r,
						     vhost_user_clock_ms() + NO_HURRY_MS),
			 -EPROTO);
	late_join(&l, s);
}

/* A message that comes while the receive waits, its fd with it. */
static void test_recv_deadline_late_message(void **state)
{
	(void)state;
	struct vhost_user_msg m, r;
	struct late l;
	int ev = eventfd(0, EFD_CLOEXEC);
	vhost_user_msg_init(&m, VHOST_USER_SET_VRING_CALL, 8);
	m.payload.u64 = 1;

	uint8_t wire[sizeof(m.hdr) + 8];
	memcpy(wire, &m.hdr, sizeof(m.hdr));
	memcpy(wire + sizeof(m.hdr), &m.payload.u64, 8);

	int s = late_start(&l, wire, sizeof(wire), ev);
	assert_int_equal(vhost_user_recv_until(s, &r, vhost_user_clock_ms() + NO_HURRY_MS), 0);
	assert_int_equal(r.hdr.request, VHOST_USER_SET_VRING_CALL);
	assert_int_equal(r.payload.u64, 1);
	assert_int_equal(r.nfds, 1);
	assert_true(fd_open(r.fds[0]));
	assert_int_equal(vhost_user_msg_validate(&r), 0);
	vhost_user_msg_close_fds(&r);
	late_join(&l, s);
	close(ev);
}

/* The lowest free descriptor number: a new fd would get it. */
static int lowest_free_fd(void)
{
	int fd = dup(0);
	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/* Without a control buffer an fd is never installed, and the message is refused. */
static void test_recv_nofds(void **state)
{
	(void)state;
	int sv[2];
	struct vhost_user_msg m, r;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int ev = eventfd(0, EFD_CLOEXEC);
	vhost_user_msg_init(&m, VHOST_USER_GET_FEATURES, 8);
	m.hdr.flags |= VHOST_USER_FLAG_REPLY;
	m.payload.u64 = 0x1234;
	assert_int_equal(vhost_user_send_until(sv[0], &m, soon()), 0);
	assert_int_equal(vhost_user_recv_nofds_until(sv[1], &r, soon()), 0);
	assert_int_equal(r.payload.u64, 0x1234);
	assert_int_equal(r.nfds, 0);
	assert_int_equal(vhost_user_reply_validate(&r, VHOST_USER_GET_FEATURES), 0);

	m.fds[0] = ev;
	m.nfds = 1;
	assert_int_equal(vhost_user_send_until(sv[0], &m, soon()), 0);
	int free_fd = lowest_free_fd();
	assert_int_equal(vhost_user_recv_nofds_until(sv[1], &r, soon()), -EPROTO);
	assert_int_equal(r.nfds, 0);
	assert_int_equal(lowest_free_fd(), free_fd);
	close(ev);
	close(sv[0]);
	close(sv[1]);
}

/* A peer that reads nothing: a bounded send times out once the socket is full. */
static void test_send_deadline(void **state)
{
	(void)state;
	int sv[2];
	struct vhost_user_msg m;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	vhost_user_msg_init(&m, VHOST_USER_SET_CONFIG, VHOST_USER_CONFIG_HDR_SIZE + 256);
	int rc = 0;
	for (int i = 0; i < 100000 && rc == 0; i++)
		rc = vhost_user_send_until(sv[0], &m, soon());
	assert_int_equal(rc, -ETIMEDOUT);

	/* The peer gone: an error, not SIGPIPE. */
	close(sv[1]);
	rc = vhost_user_send_until(sv[0], &m, soon());
	assert_true(rc == -EPIPE || rc == -ECONNRESET);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_exact_size),
		cmocka_unit_test(test_unknown_and_unsupported),
		cmocka_unit_test(test_field_ranges),
		cmocka_unit_test(test_reply_validate),
		cmocka_unit_test(test_send_recv_fds),
		cmocka_unit_test(test_recv_deadline_stall),
		cmocka_unit_test(test_recv_deadline_eof),
		cmocka_unit_test(test_recv_deadline_late_message),
		cmocka_unit_test(test_recv_nofds),
		cmocka_unit_test(test_send_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
