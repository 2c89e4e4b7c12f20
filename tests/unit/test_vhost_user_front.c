/*
 * flint-hv's vhost-user front end against the real card back end
 * (vub_serve on blk_mem) over a socketpair, with a guest_mem memfd as guest
 * RAM: negotiation, cached config, features, a virtio-blk write and read
 * played by a test driver through the kick/call eventfds, reset; then the
 * failure paths: back end gone, back end silent (bounded wait), back end
 * lacking a required protocol feature.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk_mem.h"
#include "guest_mem.h"
#include "hv_seccomp.h"
#include "vhost_user_blk.h"
#include "vhost_user_front.h"
#include "vhost_user_msg.h"
#include "test_vhost_user_front_driver.h"
#include "test_vub_card.h"
#include "test_log_capture.h"

#define RAM (16ull << 20)
#define DISK (4ull << 20)
#define DATA_GPA 0x100000ull

/* A card with nq queues on a fresh blk_mem; returns the front end's socket. */
static int card_start(struct card *c, uint16_t nq)
{
	assert_int_equal(blk_mem_create(&c->be, DISK, 512), 0);
	return card_run(c, (struct vub_options){ .num_queues = nq });
}

/* The card goes away on its own: its end shut down under the front end. */
static void card_stop(struct card *c)
{
	shutdown(c->sock, SHUT_RDWR);
	card_join(c);
	c->be.ops->close(c->be.ctx);
}

static void test_card_session(void **state)
{
	(void)state;
	static struct vuf f;
	struct guest_mem gm;
	struct card c;
	char err[256];
	struct drv_queue q0 = { .kick = -1, .call = -1 }, q1 = { .kick = -1, .call = -1 };

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	int fe = card_start(&c, 2);
	assert_int_equal(vuf_setup(&f, fe, "blk0", "socketpair", 2, &gm, err, sizeof(err)), 0);
	assert_true(f.reply_ack);

	/* Config from the cache: capacity in sectors, num_queues as exposed. */
	uint64_t cap;
	uint16_t nq;
	vuf_ops.get_config(&f, 0, (uint8_t *)&cap, 8);
	assert_int_equal(cap, DISK / 512);
	vuf_ops.get_config(&f, 34, (uint8_t *)&nq, 2);
	assert_int_equal(nq, 2);

	/* Features: device bits only, never the vhost-user bit 30. */
	uint64_t feat = vuf_ops.get_features(&f);
	assert_false(feat & (1ull << 30));
	assert_false(feat & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(feat & (1ull << 12)); /* VIRTIO_BLK_F_MQ */
	assert_int_not_equal(vuf_ops.set_features(&f, (1ull << 40) | (1ULL << VIRTIO_F_VERSION_1)), 0);
	assert_int_equal(vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)), 0);

	assert_int_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	assert_int_equal(drv_queue_start(&f, &gm, &q1, 1, 0x20000), 0);
	/* Index beyond the negotiated queues: refused. */
	struct drv_queue qx = { .kick = -1, .call = -1 };
	assert_int_not_equal(drv_queue_start(&f, &gm, &qx, 2, 0x30000), 0);
	drv_queue_close(&qx);

	uint8_t *data = guest_mem_ptr(&gm, DATA_GPA, 8192);
	for (int i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(drv_request(&gm, &q0, DRV_T_OUT, 3, DATA_GPA, 4096, 5000), 0);
	assert_memory_equal(blk_mem_data(&c.be) + 3 * 512, data, 4096);
	memset(data + 4096, 0, 4096);
	assert_int_equal(drv_request(&gm, &q1, DRV_T_IN, 3, DATA_GPA + 4096, 4096, 5000), 0);
	assert_memory_equal(data + 4096, data, 4096);

	/* Reset stops both queues; the device can start again afterwards. */
	vuf_ops.reset(&f);
	assert_false(f.broken);
	assert_int_equal(vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)), 0);
	assert_int_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	memset(data + 4096, 0, 4096);
	assert_int_equal(drv_request(&gm, &q0, DRV_T_IN, 3, DATA_GPA + 4096, 4096, 5000), 0);
	assert_memory_equal(data + 4096, data, 4096);

	/* The back end goes away: the next start fails cleanly, config still answers. */
	card_stop(&c);
	assert_int_equal(c.rc, 0);
	vuf_ops.reset(&f);
	assert_int_not_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	assert_true(f.broken);
	assert_int_not_equal(drv_queue_start(&f, &gm, &q1, 1, 0x20000), 0);
	assert_int_not_equal(vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)), 0);
	vuf_ops.get_config(&f, 0, (uint8_t *)&cap, 8);
	assert_int_equal(cap, DISK / 512);
	vuf_ops.reset(&f);

	drv_queue_close(&q0);
	drv_queue_close(&q1);
	vuf_close(&f);
	guest_mem_destroy(&gm);
}

/*
 * The run-time calls work under the real vCPU seccomp filter (in a forked
 * child: the filter cannot be removed): queue start with REPLY_ACK, a
 * request through the card, reset.
 */
static void test_under_vcpu_seccomp(void **state)
{
	(void)state;
	static struct vuf f;
	struct guest_mem gm;
	struct card c;
	char err[256];
	struct drv_queue q0 = { .kick = -1, .call = -1 };

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	int fe = card_start(&c, 1);
	assert_int_equal(vuf_setup(&f, fe, "blk0", "socketpair", 1, &gm, err, sizeof(err)), 0);
	assert_int_equal(vuf_ops.set_features(&f, vuf_ops.get_features(&f) | (1ULL << VIRTIO_F_VERSION_1)), 0);
	q0.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q0.call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (hv_seccomp_install_vcpu(STDOUT_FILENO, &fe, 1) != 0)
			syscall(SYS_exit_group, 100);
		int rc = drv_queue_start(&f, &gm, &q0, 0, 0x10000) != 0 ? 1 : 0;
		vuf_ops.reset(&f);
		syscall(SYS_exit_group, rc | (f.broken ? 2 : 0));
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The queue the child started and stopped works again from here. */
	assert_int_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	assert_int_equal(drv_request(&gm, &q0, DRV_T_IN, 0, DATA_GPA, 512, 5000), 0);
	card_stop(&c);
	drv_queue_close(&q0);
	vuf_close(&f);
	guest_mem_destroy(&gm);
}

/* A back end that connects but never answers: set-up fails in bounded time. */
static void test_silent_at_setup(void **state)
{
	(void)state;
	static struct vuf f;
	struct guest_mem gm;
	char err[256];
	int sv[2];

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int64_t t0 = vhost_user_clock_ms();
	assert_int_not_equal(vuf_setup(&f, sv[0], "blk0", "silent", 1, &gm, err, sizeof(err)), 0);
	int64_t took = vhost_user_clock_ms() - t0;
	assert_true(took >= VUF_TIMEOUT_MS - 100 && took < VUF_TIMEOUT_MS + 1500);
	assert_non_null(strstr(err, "GET_FEATURES: no reply in time"));
	print_message("silent back end: %s (%lld ms)\n", err, (long long)took);
	vuf_close(&f);
	close(sv[1]);
	guest_mem_destroy(&gm);
}

/* A back end that stops answering while the guest runs: bounded, then broken. */
static void test_silent_at_run_time(void **state)
{
	(void)state;
	static struct vuf f;
	struct guest_mem gm;
	struct card c;
	char err[256];
	int sv[2];
	struct drv_queue q0 = { .kick = -1, .call = -1 };

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	int fe = card_start(&c, 1);
	assert_int_equal(vuf_setup(&f, fe, "blk0", "socketpair", 1, &gm, err, sizeof(err)), 0);
	/* Swap in a peer that reads nothing and answers nothing. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f.sock = sv[0];
	f.timeout_ms = 300;
	int64_t t0 = vhost_user_clock_ms();
	assert_int_not_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	int64_t took = vhost_user_clock_ms() - t0;
	assert_true(f.broken);
	assert_true(took >= 250 && took < 1500);
	close(fe);
	card_stop(&c);
	drv_queue_close(&q0);
	vuf_close(&f);
	close(sv[1]);
	guest_mem_destroy(&gm);
}

/* A scripted back end: offers features and the given protocol features. */
struct script {
	int sock;
	uint64_t features, protocol;
};

static void *scripted(void *arg)
{
	struct script *s = arg;
	struct vhost_user_msg m, r;
	while (vhost_user_recv(s->sock, &m) == 0) {
		vhost_user_msg_close_fds(&m);
		if (m.hdr.request != VHOST_USER_GET_FEATURES &&
		    m.hdr.request != VHOST_USER_GET_PROTOCOL_FEATURES &&
		    m.hdr.request != VHOST_USER_GET_QUEUE_NUM)
			continue;
		vhost_user_msg_init(&r, m.hdr.request, 8);
		r.hdr.flags |= VHOST_USER_FLAG_REPLY;
		r.payload.u64 = m.hdr.request == VHOST_USER_GET_FEATURES ? s->features :
				m.hdr.request == VHOST_USER_GET_QUEUE_NUM ? 1 : s->protocol;
		if (vhost_user_send(s->sock, &r) != 0)
			break;
	}
	return NULL;
}

static void expect_refused(uint64_t features, uint64_t protocol, unsigned int queues,
			   const char *why)
{
	static struct vuf f;
	struct guest_mem gm;
	char err[256];
	int sv[2];
	pthread_t t;

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct script s = { sv[1], features, protocol };
	assert_int_equal(pthread_create(&t, NULL, scripted, &s), 0);
	assert_int_not_equal(vuf_setup(&f, sv[0], "blk0", "script", queues, &gm, err,
				       sizeof(err)), 0);
	print_message("refused: %s\n", err);
	assert_non_null(strstr(err, why));
	vuf_close(&f);
	pthread_join(t, NULL);
	close(sv[1]);
	guest_mem_destroy(&gm);
}

static void test_missing_features(void **state)
{
	(void)state;
	const uint64_t base = (1ULL << VIRTIO_F_VERSION_1) | (1ull << 30);
	expect_refused((1ULL << VIRTIO_F_VERSION_1), 0, 1, "lacks VIRTIO_F_VERSION_1");
	expect_refused(base, 1ull << 3, 1, "lacks protocol feature CONFIG");
	expect_refused(base, 1ull << 9, 2, "lacks protocol feature MQ");
	expect_refused(base, (1ull << 9) | 1, 2, "back end has 1 queues");
}

/*
 * A ring whose start the card refused (rings outside guest memory) does
 * not stay broken: after the guest's reset the next start works.
 */
static void test_failed_start_then_reset(void **state)
{
	(void)state;
	static struct vuf f;
	struct guest_mem gm;
	struct card c;
	char err[256];
	struct drv_queue q0 = { .kick = -1, .call = -1 };

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	int fe = card_start(&c, 1);
	assert_int_equal(vuf_setup(&f, fe, "blk0", "socketpair", 1, &gm, err, sizeof(err)), 0);
	uint64_t feat = vuf_ops.get_features(&f);
	assert_int_equal(vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)), 0);
	for (int round = 0; round < 3; round++) {
		/* The guest put its rings beyond its RAM. */
		struct virtio_pci_queue_info beyond = {
			.index = 0, .size = DRV_QN, .desc = RAM, .driver = RAM + 0x1000,
			.device = RAM + 0x2000, .kick_fd = q0.kick, .call_fd = q0.call,
		};
		if (round == 0) /* the fds come with the first good start */
			beyond.kick_fd = beyond.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_int_not_equal(vuf_ops.queue_start(&f, &beyond), 0);
		if (round == 0)
			close(beyond.kick_fd);
		assert_false(f.broken);
		vuf_ops.reset(&f);
		assert_int_equal(vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)), 0);
		assert_int_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
		assert_int_equal(drv_request(&gm, &q0, DRV_T_IN, 0, DATA_GPA, 512, 5000), 0);
		vuf_ops.reset(&f);
		assert_int_equal(vuf_ops.set_features(&f, feat | (1ULL << VIRTIO_F_VERSION_1)), 0);
	}
	card_stop(&c);
	drv_queue_close(&q0);
	vuf_close(&f);
	guest_mem_destroy(&gm);
}

/* A back end that refuses every SET_VRING_KICK and counts GET_VRING_BASE. */
struct kick_refuser {
	int sock;
	unsigned int vring_base_asked;
};

static void *refusing_kicks(void *arg)
{
	struct kick_refuser *s = arg;
	struct vhost_user_msg m, r;
	while (vhost_user_recv(s->sock, &m) == 0) {
		vhost_user_msg_close_fds(&m);
		vhost_user_msg_init(&r, m.hdr.request, 8);
		r.hdr.flags |= VHOST_USER_FLAG_REPLY;
		switch (m.hdr.request) {
		case VHOST_USER_GET_FEATURES:
			r.payload.u64 = (1ULL << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
			break;
		case VHOST_USER_GET_PROTOCOL_FEATURES:
			r.payload.u64 = (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
					(1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
			break;
		case VHOST_USER_GET_CONFIG:
			r.hdr.size = m.hdr.size;
			r.payload.config = m.payload.config;
			memset(r.payload.config.payload, 0, sizeof(r.payload.config.payload));
			break;
		case VHOST_USER_GET_VRING_BASE:
			__atomic_add_fetch(&s->vring_base_asked, 1, __ATOMIC_SEQ_CST);
			r.hdr.size = sizeof(r.payload.state);
			r.payload.state = m.payload.state;
			break;
		default:
			if (!(m.hdr.flags & VHOST_USER_FLAG_NEED_REPLY))
				continue;
			r.payload.u64 = m.hdr.request == VHOST_USER_SET_VRING_KICK;
		}
		if (vhost_user_send(s->sock, &r) != 0)
			break;
	}
	return NULL;
}

/*
 * A start the back end refused half-way (at SET_VRING_KICK) is still
 * stopped at reset: the back end may hold the ring's state from the
 * messages before, and must be told to let it go.
 */
static void test_reset_stops_refused_start(void **state)
{
	(void)state;
	static struct vuf f;
	struct guest_mem gm;
	char err[256];
	int sv[2];
	pthread_t t;
	struct drv_queue q0 = { .kick = -1, .call = -1 };

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct kick_refuser s = { .sock = sv[1] };
	assert_int_equal(pthread_create(&t, NULL, refusing_kicks, &s), 0);
	assert_int_equal(vuf_setup(&f, sv[0], "blk0", "script", 1, &gm, err, sizeof(err)), 0);
	assert_true(f.reply_ack);
	assert_int_not_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	assert_false(f.broken);
	vuf_ops.reset(&f);
	assert_false(f.broken);
	assert_int_equal(__atomic_load_n(&s.vring_base_asked, __ATOMIC_SEQ_CST), 1);
	/* Nothing was tried since: the next reset has nothing to stop. */
	vuf_ops.reset(&f);
	assert_int_equal(__atomic_load_n(&s.vring_base_asked, __ATOMIC_SEQ_CST), 1);
	vuf_close(&f);
	pthread_join(t, NULL);
	close(sv[1]);
	drv_queue_close(&q0);
	guest_mem_destroy(&gm);
}

static void test_connect_errors(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(vuf_connect("/nonexistent/flint.sock", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot connect"));
}

/*
 * Stalled storage under the real card: an asynchronous backend that holds
 * every request until set_abort (which fails them, as its contract says)
 * or until the test lets them go.
 */
struct stall {
	pthread_mutex_t lock;
	struct blk_aio *held[64];
	unsigned int n;
	bool aborting;
	unsigned int aborted;
};

static int stall_submit(void *ctx, struct blk_aio *io)
{
	struct stall *st = ctx;
	pthread_mutex_lock(&st->lock);
	bool refuse = st->aborting || st->n == 64;
	if (!refuse)
		st->held[st->n++] = io;
	pthread_mutex_unlock(&st->lock);
	if (refuse)
		io->done(io, -EIO);
	return 0;
}

/* Completes everything held with result; how many. */
static unsigned int stall_finish(struct stall *st, int result)
{
	struct blk_aio *done[64];
	pthread_mutex_lock(&st->lock);
	unsigned int n = st->n;
	memcpy(done, st->held, n * sizeof(done[0]));
	st->n = 0;
	pthread_mutex_unlock(&st->lock);
	for (unsigned int i = 0; i < n; i++)
		done[i]->done(done[i], result);
	return n;
}

static void stall_set_abort(void *ctx, bool on)
{
	struct stall *st = ctx;
	pthread_mutex_lock(&st->lock);
	st->aborting = on;
	pthread_mutex_unlock(&st->lock);
	if (on)
		st->aborted += stall_finish(st, -EIO);
}

static int stall_rw(void *ctx, uint64_t off, void *buf, size_t len)
{
	(void)ctx; (void)off; (void)buf; (void)len;
	return 0;
}

static int stall_wr(void *ctx, uint64_t off, const void *buf, size_t len)
{
	(void)ctx; (void)off; (void)buf; (void)len;
	return 0;
}

static int stall_flush(void *ctx)
{
	(void)ctx;
	return 0;
}

static void stall_close(void *ctx)
{
	(void)ctx;
}

static const struct blk_backend_ops stall_ops = {
	.read = stall_rw, .write = stall_wr, .flush = stall_flush, .close = stall_close,
	.submit = stall_submit, .set_abort = stall_set_abort,
};

/*
 * A guest resets the device while its card's storage stalls: the card
 * answers GET_VRING_BASE within flint-hv's budget (the request in flight
 * fails with IOERR), the device is not cut off, and it starts and serves
 * again.  Before the fix the card waited for the storage, flint-hv gave up
 * after its 2 s and the device was broken until the VM restarted.
 */
static void test_reset_during_storage_stall(void **state)
{
	(void)state;
	static struct vuf f;
	static struct stall st;
	struct guest_mem gm;
	struct card c;
	char err[256];
	struct drv_queue q0 = { .kick = -1, .call = -1 };

	memset(&st, 0, sizeof(st));
	pthread_mutex_init(&st.lock, NULL);
	c.be = (struct blk_backend){ &stall_ops, &st, DISK, 512 };
	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	int fe = card_run(&c, (struct vub_options){ .num_queues = 1 });
	assert_int_equal(vuf_setup(&f, fe, "blk0", "socketpair", 1, &gm, err, sizeof(err)), 0);
	uint64_t feat = vuf_ops.get_features(&f) | (1ULL << VIRTIO_F_VERSION_1);
	assert_int_equal(vuf_ops.set_features(&f, feat), 0);
	assert_int_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	/* A write that storage never answers: no completion. */
	assert_int_equal(drv_request(&gm, &q0, DRV_T_OUT, 0, DATA_GPA, 4096, 200), -1);
	pthread_mutex_lock(&st.lock);
	assert_int_equal(st.n, 1);
	pthread_mutex_unlock(&st.lock);

	vuf_ops.reset(&f);
	bool broken = f.broken;
	stall_finish(&st, 0); /* the hang guard for a card that still waits */
	assert_false(broken);
	assert_int_equal(st.aborted, 1);
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&gm, 0x13100, 1), 1 /* IOERR */);

	assert_int_equal(vuf_ops.set_features(&f, feat), 0);
	assert_int_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	assert_int_equal(drv_request(&gm, &q0, DRV_T_IN, 0, DATA_GPA, 512, 200), -1);
	assert_int_equal(stall_finish(&st, 0), 1);
	struct pollfd p = { .fd = q0.call, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&gm, 0x13100, 1), 0 /* OK */);
	close(fe);
	card_join(&c);
	drv_queue_close(&q0);
	vuf_close(&f);
	guest_mem_destroy(&gm);
}

/*
 * A back end played by the test: answers negotiation for two queues with
 * REPLY_ACK, acks everything (refusing `refuse` with a failure ack), and
 * does not answer GET_VRING_BASE when `silent_stop` is set.  It records
 * what it got and whether it saw the connection end.
 */
struct fake_be {
	int sock;
	uint32_t refuse;
	bool silent_stop;
	unsigned int got[64];
	bool eof;
	pthread_t thread;
};

static void fake_answer(struct fake_be *b, const struct vhost_user_msg *m)
{
	struct vhost_user_msg r;
	uint32_t req = m->hdr.request;
	vhost_user_msg_init(&r, req, 8);
	r.hdr.flags |= VHOST_USER_FLAG_REPLY;
	switch (req) {
	case VHOST_USER_GET_FEATURES:
		r.payload.u64 = (1ULL << VIRTIO_F_VERSION_1) | (1ull << 30) | (1ull << 12);
		break;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		r.payload.u64 = (1ull << VHOST_USER_PROTOCOL_F_MQ) |
				(1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
				(1ull << VHOST_USER_PROTOCOL_F_CONFIG);
		break;
	case VHOST_USER_GET_QUEUE_NUM:
		r.payload.u64 = 2;
		break;
	case VHOST_USER_GET_CONFIG:
		r.hdr.size = m->hdr.size;
		r.payload.config = m->payload.config;
		memset(r.payload.config.payload, 0, sizeof(r.payload.config.payload));
		break;
	case VHOST_USER_GET_VRING_BASE:
		if (b->silent_stop)
			return;
		r.hdr.size = sizeof(r.payload.state);
		r.payload.state = m->payload.state;
		break;
	default:
		if (!(m->hdr.flags & VHOST_USER_FLAG_NEED_REPLY))
			return;
		r.payload.u64 = req == b->refuse;
		break;
	}
	(void)vhost_user_send(b->sock, &r);
}

static void *fake_be_main(void *arg)
{
	struct fake_be *b = arg;
	struct vhost_user_msg m;
	int rc;
	while ((rc = vhost_user_recv(b->sock, &m)) == 0) {
		vhost_user_msg_close_fds(&m);
		if (m.hdr.request < 64)
			b->got[m.hdr.request]++;
		fake_answer(b, &m);
	}
	b->eof = rc == -ECONNRESET;
	return NULL;
}

/* vuf f set up on a fake back end b with two queues. */
static void fake_be_setup(struct vuf *f, struct fake_be *b, struct guest_mem *gm)
{
	int sv[2];
	char err[256];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	b->sock = sv[1];
	assert_int_equal(pthread_create(&b->thread, NULL, fake_be_main, b), 0);
	assert_int_equal(vuf_setup(f, sv[0], "blk0", "fake", 2, gm, err, sizeof(err)), 0);
	assert_int_equal(vuf_ops.set_features(f, vuf_ops.get_features(f) | (1ULL << VIRTIO_F_VERSION_1)),
			 0);
}

/*
 * A back end that does not answer GET_VRING_BASE within the budget is cut
 * off: its socket is shut down (it sees the end, and with it stops every
 * queue), both queues count as stopped, and it is never asked anything
 * again.  Before the fix the socket stayed up: the back end never learnt,
 * and kept serving the other queue on rings the guest had reset.
 */
static void test_silent_stop_cuts_off(void **state)
{
	(void)state;
	static struct vuf f;
	struct fake_be b = { .silent_stop = true };
	struct guest_mem gm;
	struct drv_queue q0 = { .kick = -1, .call = -1 }, q1 = { .kick = -1, .call = -1 };

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	fake_be_setup(&f, &b, &gm);
	assert_int_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	assert_int_equal(drv_queue_start(&f, &gm, &q1, 1, 0x20000), 0);
	f.stop_timeout_ms = 300;
	vuf_ops.reset(&f);
	assert_true(f.broken);
	assert_false(f.started[0]);
	assert_false(f.started[1]);
	/* The back end sees the end (hang guard: 5 s). */
	struct pollfd p = { .fd = b.sock, .events = POLLRDHUP };
	assert_int_equal(poll(&p, 1, 5000), 1);
	pthread_join(b.thread, NULL);
	assert_true(b.eof);
	assert_int_equal(b.got[VHOST_USER_GET_VRING_BASE], 1);
	/* Later resets and starts do not talk to it; the device stays failed. */
	vuf_ops.reset(&f);
	assert_int_not_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
	assert_int_not_equal(vuf_ops.set_features(&f, (1ULL << VIRTIO_F_VERSION_1)), 0);
	drv_queue_close(&q0);
	drv_queue_close(&q1);
	vuf_close(&f);
	close(b.sock);
	guest_mem_destroy(&gm);
}

/*
 * A guest that starts a queue the back end refuses, and resets, 200 times:
 * the log gets one line, not one or two per cycle (400 before the fix).
 */
static void test_failed_starts_log_once(void **state)
{
	(void)state;
	static struct vuf f;
	struct fake_be b = { .refuse = VHOST_USER_SET_VRING_ADDR };
	struct guest_mem gm;
	struct drv_queue q0 = { .kick = -1, .call = -1 };
	struct log_capture cap;

	assert_int_equal(guest_mem_create(&gm, RAM), 0);
	fake_be_setup(&f, &b, &gm);
	capture_begin(&cap);
	for (int i = 0; i < 200; i++) {
		assert_int_not_equal(drv_queue_start(&f, &gm, &q0, 0, 0x10000), 0);
		vuf_ops.reset(&f);
	}
	unsigned int lines = capture_end(&cap, NULL);
	assert_false(f.broken);
	assert_int_equal(b.got[VHOST_USER_SET_VRING_ADDR], 200);
	assert_int_equal(lines, 1);
	vuf_close(&f);
	pthread_join(b.thread, NULL);
	close(b.sock);
	drv_queue_close(&q0);
	guest_mem_destroy(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_card_session),
		cmocka_unit_test(test_under_vcpu_seccomp),
		cmocka_unit_test(test_silent_at_setup),
		cmocka_unit_test(test_silent_at_run_time),
		cmocka_unit_test(test_missing_features),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_reset_during_storage_stall),
		cmocka_unit_test(test_silent_stop_cuts_off),
		cmocka_unit_test(test_failed_starts_log_once),
		cmocka_unit_test(test_failed_start_then_reset),
		cmocka_unit_test(test_reset_stops_refused_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
