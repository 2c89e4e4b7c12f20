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

static void test_connect_errors(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(vuf_connect("/nonexistent/flint.sock", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot connect"));
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
