/*
 * The vhost-user-blk back end driven over a socketpair by a test front end:
 * negotiation, SET_MEM_TABLE with a memfd, two queues with kick/call
 * eventfds, virtio-blk writes and reads built in the shared memory, a
 * malformed request, failure acks, and malformed messages that must end
 * the connection cleanly (vub_serve returns -EPROTO, no crash).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk_mem.h"
#include "vhost_user_blk.h"
#include "vhost_user_msg.h"
#include "virtio_blk.h"
#include "virtqueue.h"
#include "test_vub_card.h"
#include "test_log_capture.h"

#define MEMSZ (1024 * 1024)
#define UVA 0x7f0000000000ull /* the "front end's" address of guest RAM */
#define QN 8
#define DISK (4 * 1024 * 1024)

/*
 * The window between a completion's last step and the card's teardown is
 * a few instructions wide.  To hit it every time, pthread_mutex_lock is
 * interposed: on a thread that sets lock_trap_at, the lock call of that
 * number (1, 2, ...) first sleeps 300 ms; lock_trap_count counts the lock
 * calls such a thread got through.  Every other thread and call passes straight
 * through.
 */
static __thread int lock_trap_at;
static __thread int lock_trap_seen;
static atomic_int lock_trap_count;
static int (*real_mutex_lock)(pthread_mutex_t *);

int pthread_mutex_lock(pthread_mutex_t *m)
{
	if (lock_trap_at > 0 && ++lock_trap_seen == lock_trap_at)
		usleep(300000);
	int r = real_mutex_lock(m);
	if (lock_trap_at > 0)
		atomic_fetch_add(&lock_trap_count, 1);
	return r;
}

static int start(struct card *s)
{
	return card_run(s, (struct vub_options){ .num_queues = 2, .serial = "e2e" });
}

/* The front end hangs up; the card's result. */
static int stop(struct card *s, int fe)
{
	close(fe);
	return card_join(s);
}

static void send_msg(int fe, uint32_t req, uint32_t flags, const void *payload,
		     uint32_t size, const int *fds, unsigned int nfds)
{
	struct vhost_user_msg m;
	vhost_user_msg_init(&m, req, size);
	m.hdr.flags |= flags;
	if (size)
		memcpy(&m.payload, payload, size);
	for (unsigned int i = 0; i < nfds; i++)
		m.fds[i] = fds[i];
	m.nfds = nfds;
	assert_int_equal(vhost_user_send(fe, &m), 0);
}

static void get_reply(int fe, uint32_t req, struct vhost_user_msg *r)
{
	assert_int_equal(vhost_user_recv(fe, r), 0);
	assert_int_equal(vhost_user_reply_validate(r, req), 0);
}

static uint64_t get_u64(int fe, uint32_t req)
{
	struct vhost_user_msg r;
	send_msg(fe, req, 0, NULL, 0, NULL, 0);
	get_reply(fe, req, &r);
	return r.payload.u64;
}

/* A request with NEED_REPLY; returns the ack word (0 = success). */
static uint64_t acked(int fe, uint32_t req, const void *p, uint32_t size,
		      const int *fds, unsigned int nfds)
{
	struct vhost_user_msg r;
	send_msg(fe, req, VHOST_USER_FLAG_NEED_REPLY, p, size, fds, nfds);
	get_reply(fe, req, &r);
	return r.payload.u64;
}

struct ring {
	unsigned int idx;
	uint64_t desc, avail, used; /* guest-physical */
	int kick, call;
	uint16_t avail_idx;
};

struct guest {
	uint8_t *mem;
	struct ring q[2];
};

static void *gp(struct guest *g, uint64_t gpa)
{
	return g->mem + gpa;
}

static void setup_ring(int fe, struct guest *g, unsigned int i)
{
	struct ring *q = &g->q[i];
	q->idx = i;
	q->desc = 0x4000ull * i;
	q->avail = q->desc + 0x1000;
	q->used = q->desc + 0x2000;
	q->kick = eventfd(0, EFD_CLOEXEC);
	q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vhost_user_vring_state st = { i, QN };
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 0);
	st.num = 0;
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_BASE, &st, sizeof(st), NULL, 0), 0);
	struct vhost_user_vring_addr a = {
		.index = i, .desc = UVA + q->desc, .avail = UVA + q->avail,
		.used = UVA + q->used,
	};
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	uint64_t v = i;
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_CALL, &v, 8, &q->call, 1), 0);
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_KICK, &v, 8, &q->kick, 1), 0);
	st.num = 1;
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0), 0);
}

/* Put a 3-descriptor request on ring i, kick, wait for the call; status. */
static uint8_t request(struct guest *g, unsigned int i, uint32_t type,
		       uint64_t sector, uint32_t len, bool data_writable)
{
	struct ring *q = &g->q[i];
	uint64_t hdr = 0x8000 + 0x100 * i, st = 0x9000 + 0x100 * i;
	uint64_t data = 0x10000 + 0x10000ull * i;
	struct virtio_blk_outhdr h = { type, 0, sector };
	memcpy(gp(g, hdr), &h, sizeof(h));
	struct vring_desc *d = gp(g, q->desc);
	d[0] = (struct vring_desc){ hdr, 16, VRING_DESC_F_NEXT, 1 };
	d[1] = (struct vring_desc){ data, len,
		VRING_DESC_F_NEXT | (data_writable ? VRING_DESC_F_WRITE : 0), 2 };
	d[2] = (struct vring_desc){ st, 1, VRING_DESC_F_WRITE, 0 };
	*(uint8_t *)gp(g, st) = 0xff;
	struct vring_avail *a = gp(g, q->avail);
	struct vring_used *u = gp(g, q->used);
	uint16_t used_before = u->idx;
	a->ring[q->avail_idx % QN] = 0;
	__atomic_store_n(&a->idx, ++q->avail_idx, __ATOMIC_RELEASE);
	uint64_t one = 1;
	assert_int_equal(write(q->kick, &one, 8), 8);
	struct pollfd p = { .fd = q->call, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	uint64_t v;
	assert_int_equal(read(q->call, &v, 8), 8);
	assert_int_equal(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE),
			 (uint16_t)(used_before + 1));
	assert_int_equal(u->ring[used_before % QN].id, 0);
	return *(uint8_t *)gp(g, st);
}

static void test_full_session(void **state)
{
	(void)state;
	struct card s;
	struct guest g = { 0 };
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);
	int fe = start(&s);

	uint64_t f = get_u64(fe, VHOST_USER_GET_FEATURES);
	assert_true(f & (1ull << VIRTIO_F_VERSION_1));
	assert_true(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	assert_true(f & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(f & (1ull << VIRTIO_RING_F_EVENT_IDX));
	uint64_t pf = get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES);
	assert_true(pf & (1ull << VHOST_USER_PROTOCOL_F_CONFIG));
	send_msg(fe, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &pf, 8, NULL, 0);
	assert_int_equal(get_u64(fe, VHOST_USER_GET_QUEUE_NUM), 2);
	assert_int_equal(acked(fe, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);

	struct vhost_user_config c = { .offset = 0, .size = 60 };
	struct vhost_user_msg r;
	send_msg(fe, VHOST_USER_GET_CONFIG, 0, &c, 12 + 60, NULL, 0);
	get_reply(fe, VHOST_USER_GET_CONFIG, &r);
	struct virtio_blk_config cfg;
	memcpy(&cfg, r.payload.config.payload, sizeof(cfg));
	assert_int_equal(cfg.capacity, DISK / 512);
	assert_int_equal(cfg.num_queues, 2);

	/* A feature that was not offered is refused (ack != 0). */
	uint64_t bad = f | (1ull << 34); /* VIRTIO_F_RING_PACKED */
	assert_int_not_equal(acked(fe, VHOST_USER_SET_FEATURES, &bad, 8, NULL, 0), 0);
	/* This test's driver does not implement event indices: it expects a
	 * call after every request. */
	f &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);
	assert_int_equal(acked(fe, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0), 0);

	int mfd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(mfd, MEMSZ), 0);
	assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	g.mem = mmap(NULL, MEMSZ, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	assert_true(g.mem != MAP_FAILED);
	struct vhost_user_mem_table mt = {
		.nregions = 1,
		.regions[0] = { .guest_phys_addr = 0, .memory_size = MEMSZ,
				.userspace_addr = UVA, .mmap_offset = 0 },
	};
	assert_int_equal(acked(fe, VHOST_USER_SET_MEM_TABLE, &mt, 8 + 32, &mfd, 1), 0);
	setup_ring(fe, &g, 0);
	setup_ring(fe, &g, 1);

	/* Write on queue 0, read it back on queue 1. */
	memset(gp(&g, 0x10000), 0x5c, 4096);
	assert_int_equal(request(&g, 0, VIRTIO_BLK_T_OUT, 16, 4096, false), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_mem_data(&s.be)[16 * 512 + 4095], 0x5c);
	memset(gp(&g, 0x20000), 0, 4096);
	assert_int_equal(request(&g, 1, VIRTIO_BLK_T_IN, 16, 4096, true), VIRTIO_BLK_S_OK);
	assert_memory_equal(gp(&g, 0x20000), gp(&g, 0x10000), 4096);
	/* Malformed request (beyond capacity), then a good one. */
	assert_int_equal(request(&g, 0, VIRTIO_BLK_T_IN, DISK / 512, 512, true),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(&g, 0, 0xdead, 0, 512, true), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(&g, 0, VIRTIO_BLK_T_IN, 16, 512, true), VIRTIO_BLK_S_OK);

	/* A queue index out of range: a failure ack, the connection lives. */
	struct vhost_user_vring_state st = { 5, QN };
	assert_int_not_equal(acked(fe, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0), 0);
	assert_int_equal(get_u64(fe, VHOST_USER_GET_QUEUE_NUM), 2);

	/* Stop queue 1: GET_VRING_BASE gives where it stands. */
	st = (struct vhost_user_vring_state){ 1, 0 };
	send_msg(fe, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0);
	get_reply(fe, VHOST_USER_GET_VRING_BASE, &r);
	assert_int_equal(r.payload.state.num, 1);
	/* Restart it with rings outside guest memory: refused when enabled (the
	 * stop left it disabled, as a new ring). */
	struct vhost_user_vring_addr a = { .index = 1, .desc = UVA + MEMSZ - 16,
					   .avail = UVA, .used = UVA + 0x2000 };
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	uint64_t v = 1;
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_KICK, &v, 8, &g.q[1].kick, 1), 0);
	st = (struct vhost_user_vring_state){ 1, 1 };
	assert_int_not_equal(acked(fe, VHOST_USER_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0), 0);
	/* Queue 0 still serves. */
	assert_int_equal(request(&g, 0, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);

	/* A malformed message ends the connection. */
	uint32_t four = 4;
	send_msg(fe, VHOST_USER_SET_FEATURES, 0, &four, 4, NULL, 0);
	assert_int_equal(vhost_user_recv(fe, &r), -ECONNRESET);
	assert_int_equal(stop(&s, fe), -EPROTO);

	for (unsigned int i = 0; i < 2; i++) {
		close(g.q[i].kick);
		close(g.q[i].call);
	}
	munmap(g.mem, MEMSZ);
	close(mfd);
	s.be.ops->close(s.be.ctx);
}

static void test_malformed_messages(void **state)
{
	(void)state;
	struct card s;
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);

	/* An fd on a request that takes none. */
	int fe = start(&s);
	int ev = eventfd(0, EFD_CLOEXEC);
	send_msg(fe, VHOST_USER_SET_OWNER, 0, NULL, 0, &ev, 1);
	assert_int_equal(stop(&s, fe), -EPROTO);

	/* An unknown request. */
	fe = start(&s);
	send_msg(fe, 77, 0, NULL, 0, NULL, 0);
	assert_int_equal(stop(&s, fe), -EPROTO);

	/* A header claiming a huge payload, then a truncated header. */
	fe = start(&s);
	struct vhost_user_hdr h = { VHOST_USER_SET_FEATURES, 1, 0x7fffffff };
	assert_int_equal(write(fe, &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(stop(&s, fe), -EPROTO);
	fe = start(&s);
	assert_int_equal(write(fe, &h, 5), 5);
	assert_int_equal(stop(&s, fe), -EPROTO);

	/* A memory table whose fd is smaller than the region, without ack. */
	fe = start(&s);
	int mfd = memfd_create("small", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(mfd, 4096), 0);
	assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	struct vhost_user_mem_table mt = {
		.nregions = 1,
		.regions[0] = { 0, MEMSZ, UVA, 0 },
	};
	send_msg(fe, VHOST_USER_SET_MEM_TABLE, 0, &mt, 8 + 32, &mfd, 1);
	assert_int_equal(stop(&s, fe), -EPROTO);

	/* A clean session: GET_FEATURES then close. */
	fe = start(&s);
	assert_true(get_u64(fe, VHOST_USER_GET_FEATURES) & (1ull << VIRTIO_F_VERSION_1));
	assert_int_equal(stop(&s, fe), 0);

	close(mfd);
	close(ev);
	s.be.ops->close(s.be.ctx);
}

/*
 * A backend whose flush blocks until `target` flushes are inside it at once
 * (or the test releases it), recording how many ever were: it shows whether
 * the card really has several requests of one queue in flight.
 */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	unsigned int inside, max_inside, target;
	bool released;
};

static int gate_flush(void *ctx)
{
	struct gate *g = ctx;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10; /* a hang limit, not a timing assertion */
	pthread_mutex_lock(&g->lock);
	g->inside++;
	if (g->inside > g->max_inside)
		g->max_inside = g->inside;
	pthread_cond_broadcast(&g->cv);
	while (!g->released && g->max_inside < g->target &&
	       pthread_cond_timedwait(&g->cv, &g->lock, &until) == 0)
		;
	g->inside--;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static int gate_rw(void *ctx, uint64_t off, void *buf, size_t len)
{
	(void)ctx; (void)off; (void)buf; (void)len;
	return 0;
}

static int gate_wr(void *ctx, uint64_t off, const void *buf, size_t len)
{
	(void)ctx; (void)off; (void)buf; (void)len;
	return 0;
}

static void gate_close(void *ctx)
{
	(void)ctx;
}

static const struct blk_backend_ops gate_ops = {
	.read = gate_rw, .write = gate_wr, .flush = gate_flush, .close = gate_close,
};

/* Posts n FLUSH requests (2 descriptors each) on ring 0 and kicks once. */
static void post_flushes(struct guest *g, unsigned int n)
{
	struct ring *q = &g->q[0];
	struct vring_desc *d = gp(g, q->desc);
	struct vring_avail *a = gp(g, q->avail);
	for (unsigned int k = 0; k < n; k++) {
		uint64_t hdr = 0x8000 + 0x20 * k, st = 0x9000 + k;
		struct virtio_blk_outhdr h = { VIRTIO_BLK_T_FLUSH, 0, 0 };
		memcpy(gp(g, hdr), &h, sizeof(h));
		*(uint8_t *)gp(g, st) = 0xff;
		d[2 * k] = (struct vring_desc){ hdr, 16, VRING_DESC_F_NEXT, (uint16_t)(2 * k + 1) };
		d[2 * k + 1] = (struct vring_desc){ st, 1, VRING_DESC_F_WRITE, 0 };
		a->ring[(q->avail_idx + k) % QN] = (uint16_t)(2 * k);
	}
	q->avail_idx = (uint16_t)(q->avail_idx + n);
	__atomic_store_n(&a->idx, q->avail_idx, __ATOMIC_RELEASE);
	uint64_t one = 1;
	assert_int_equal(write(q->kick, &one, 8), 8);
}

static void *release_later(void *arg)
{
	struct gate *gt = arg;
	usleep(100000); /* GET_VRING_BASE is on its way meanwhile */
	pthread_mutex_lock(&gt->lock);
	gt->released = true;
	pthread_cond_broadcast(&gt->cv);
	pthread_mutex_unlock(&gt->lock);
	return NULL;
}

/*
 * A session on one queue with guest memory mapped, rings not set up yet;
 * `drop` are feature bits the test driver does not take.
 */
static int session_open(struct card *s, struct guest *g, int *mfd, uint16_t depth,
			uint64_t drop)
{
	int fe = card_run(s, (struct vub_options){ .num_queues = 1, .iodepth = depth });
	uint64_t f = get_u64(fe, VHOST_USER_GET_FEATURES) & ~drop;
	uint64_t pf = get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES);
	send_msg(fe, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &pf, 8, NULL, 0);
	assert_int_equal(acked(fe, VHOST_USER_SET_FEATURES, &f, 8, NULL, 0), 0);
	*mfd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(*mfd, MEMSZ), 0);
	assert_int_equal(fcntl(*mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	g->mem = mmap(NULL, MEMSZ, PROT_READ | PROT_WRITE, MAP_SHARED, *mfd, 0);
	assert_true(g->mem != MAP_FAILED);
	struct vhost_user_mem_table mt = {
		.nregions = 1,
		.regions[0] = { 0, MEMSZ, UVA, 0 },
	};
	assert_int_equal(acked(fe, VHOST_USER_SET_MEM_TABLE, &mt, 8 + 32, mfd, 1), 0);
	return fe;
}

/* Session set-up shared by the in-flight tests: one queue of QN. */
static int inflight_session(struct card *s, struct guest *g, int *mfd, uint16_t depth)
{
	int fe = session_open(s, g, mfd, depth, 0);
	setup_ring(fe, g, 0);
	return fe;
}

static void inflight_end(struct card *s, struct guest *g, int fe, int mfd)
{
	assert_int_equal(stop(s, fe), 0);
	close(g->q[0].kick);
	close(g->q[0].call);
	munmap(g->mem, MEMSZ);
	close(mfd);
}

/* Waits until the used index reaches want (hang limit 10 s). */
static void wait_used(struct guest *g, uint16_t want)
{
	struct vring_used *u = gp(g, g->q[0].used);
	for (int i = 0; i < 10000; i++) {
		if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == want)
			return;
		usleep(1000);
	}
	fail_msg("used index %u, want %u", u->idx, want);
}

/*
 * GET_VRING_BASE on queue 0 while release(arg), in a thread of its own, lets
 * the requests in flight finish; the base the card answers.
 */
static uint32_t vring_base_releasing(int fe, void *(*release)(void *), void *arg)
{
	pthread_t rel;
	assert_int_equal(pthread_create(&rel, NULL, release, arg), 0);
	struct vhost_user_vring_state st = { 0, 0 };
	struct vhost_user_msg r;
	send_msg(fe, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0);
	get_reply(fe, VHOST_USER_GET_VRING_BASE, &r);
	pthread_join(rel, NULL);
	return r.payload.state.num;
}

static void test_requests_in_flight(void **state)
{
	(void)state;
	struct gate gt = { .target = 4 };
	pthread_mutex_init(&gt.lock, NULL);
	pthread_cond_init(&gt.cv, NULL);
	struct card s = { .be = { &gate_ops, &gt, DISK, 512 } };
	struct guest g = { 0 };
	int mfd;
	int fe = inflight_session(&s, &g, &mfd, 4);

	/* Four requests, one kick: all four are inside the backend at once. */
	post_flushes(&g, 4);
	wait_used(&g, 4);
	assert_int_equal(gt.max_inside, 4);
	for (unsigned int k = 0; k < 4; k++)
		assert_int_equal(*(uint8_t *)gp(&g, 0x9000 + k), VIRTIO_BLK_S_OK);

	/* GET_VRING_BASE while requests are in flight: they complete first. */
	pthread_mutex_lock(&gt.lock);
	gt.target = 99;
	gt.max_inside = 0;
	pthread_mutex_unlock(&gt.lock);
	post_flushes(&g, 3);
	for (int i = 0; i < 10000 && __atomic_load_n(&gt.inside, __ATOMIC_ACQUIRE) < 3; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&gt.inside, __ATOMIC_ACQUIRE), 3);
	assert_int_equal(vring_base_releasing(fe, release_later, &gt), 7);
	struct vring_used *u = gp(&g, g.q[0].used);
	assert_int_equal(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE), 7);
	inflight_end(&s, &g, fe, mfd);
}

/* iodepth 1: the old behaviour, one request at a time. */
static void test_iodepth_one(void **state)
{
	(void)state;
	struct gate gt = { .target = 2 };
	pthread_mutex_init(&gt.lock, NULL);
	pthread_cond_init(&gt.cv, NULL);
	struct card s = { .be = { &gate_ops, &gt, DISK, 512 } };
	struct guest g = { 0 };
	int mfd;
	int fe = inflight_session(&s, &g, &mfd, 1);
	pthread_t rel;
	assert_int_equal(pthread_create(&rel, NULL, release_later, &gt), 0);
	post_flushes(&g, 2);
	wait_used(&g, 2);
	pthread_join(rel, NULL);
	assert_int_equal(gt.max_inside, 1);
	inflight_end(&s, &g, fe, mfd);
}

/*
 * An asynchronous backend (submit) that holds what it is given until the
 * test lets it go, then completes from a thread of its own, newest first:
 * a card over it keeps many requests in flight with one worker thread, and
 * completions land on the used ring out of order.
 */
struct held {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct blk_aio *q[64];
	unsigned int n, max_held;
	bool release, stop;
	bool trap;             /* completions run with the lock trap set at 2 */
	unsigned int completing; /* done() calls running */
	/* stall_ops: set_abort, and a flush that waits like a held request. */
	bool aborting;
	unsigned int aborted;  /* requests failed by set_abort */
	unsigned int flushing; /* flushes waiting inside */
	uint8_t disk[DISK];
	pthread_t thread;
};

static void *held_main(void *arg)
{
	struct held *h = arg;
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		if (!h->release || h->n == 0) {
			pthread_cond_wait(&h->cv, &h->lock);
			continue;
		}
		struct blk_aio *io = h->q[--h->n];
		if (io->write) /* under the lock: the test reads disk under it */
			memcpy(h->disk + io->offset, io->buf, io->len);
		else
			memcpy(io->buf, h->disk + io->offset, io->len);
		bool trap = h->trap;
		h->completing++;
		pthread_mutex_unlock(&h->lock);
		lock_trap_at = trap ? 2 : 0;
		lock_trap_seen = 0;
		io->done(io, 0);
		lock_trap_at = 0;
		pthread_mutex_lock(&h->lock);
		h->completing--;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static int held_submit(void *ctx, struct blk_aio *io)
{
	struct held *h = ctx;
	pthread_mutex_lock(&h->lock);
	assert_true(h->n < 64);
	h->q[h->n++] = io;
	if (h->n > h->max_held)
		h->max_held = h->n;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static void held_set(struct held *h, bool release)
{
	pthread_mutex_lock(&h->lock);
	h->release = release;
	h->max_held = 0;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
}

static unsigned int held_count(struct held *h)
{
	pthread_mutex_lock(&h->lock);
	unsigned int n = h->n;
	pthread_mutex_unlock(&h->lock);
	return n;
}

static void held_wait(struct held *h, unsigned int n)
{
	for (int i = 0; i < 10000 && held_count(h) < n; i++)
		usleep(1000);
	assert_int_equal(held_count(h), n);
}

static void *held_release_later(void *arg)
{
	usleep(100000); /* GET_VRING_BASE is on its way meanwhile */
	held_set(arg, true);
	return NULL;
}

static const struct blk_backend_ops held_ops = {
	.read = gate_rw, .write = gate_wr, .flush = gate_flush, .close = gate_close,
	.submit = held_submit,
};

/*
 * n 4 KiB requests of type on ring 0 (request k: sector 8k, data at
 * 0x40000 + 0x1000k, through an indirect table of 3), one kick.
 */
static void post_rw(struct guest *g, unsigned int n, uint32_t type)
{
	struct ring *q = &g->q[0];
	struct vring_desc *d = gp(g, q->desc);
	struct vring_avail *a = gp(g, q->avail);
	uint16_t wr = type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0;
	for (unsigned int k = 0; k < n; k++) {
		uint64_t tbl = 0xa000 + 0x40 * k, hdr = 0xb000 + 0x20 * k, st = 0xc000 + k;
		struct virtio_blk_outhdr h = { type, 0, 8 * k };
		memcpy(gp(g, hdr), &h, sizeof(h));
		*(uint8_t *)gp(g, st) = 0xff;
		struct vring_desc *t = gp(g, tbl);
		t[0] = (struct vring_desc){ hdr, 16, VRING_DESC_F_NEXT, 1 };
		t[1] = (struct vring_desc){ 0x40000 + 0x1000ull * k, 4096,
					    (uint16_t)(VRING_DESC_F_NEXT | wr), 2 };
		t[2] = (struct vring_desc){ st, 1, VRING_DESC_F_WRITE, 0 };
		d[k] = (struct vring_desc){ tbl, 48, VRING_DESC_F_INDIRECT, 0 };
		a->ring[(q->avail_idx + k) % QN] = (uint16_t)k;
	}
	q->avail_idx = (uint16_t)(q->avail_idx + n);
	__atomic_store_n(&a->idx, q->avail_idx, __ATOMIC_RELEASE);
	uint64_t one = 1;
	assert_int_equal(write(q->kick, &one, 8), 8);
}

static void test_async_backend(void **state)
{
	(void)state;
	static struct held h;
	memset(&h, 0, sizeof(h));
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cv, NULL);
	assert_int_equal(pthread_create(&h.thread, NULL, held_main, &h), 0);
	struct card s = { .be = { &held_ops, &h, DISK, 512 } };
	struct guest g = { 0 };
	int mfd;
	/* One worker thread: only the asynchronous path has several in flight. */
	int fe = inflight_session(&s, &g, &mfd, 1);

	for (unsigned int k = 0; k < 6; k++)
		memset(gp(&g, 0x40000 + 0x1000ull * k), 0x30 + (int)k, 4096);
	post_rw(&g, 6, VIRTIO_BLK_T_OUT);
	held_wait(&h, 6);
	held_set(&h, true);
	wait_used(&g, 6);
	struct vring_used *u = gp(&g, g.q[0].used);
	assert_int_equal(u->ring[0].id, 5); /* newest first: out of order */
	for (unsigned int k = 0; k < 6; k++) {
		assert_int_equal(*(uint8_t *)gp(&g, 0xc000 + k), VIRTIO_BLK_S_OK);
		assert_int_equal(u->ring[k].len, 1);
		pthread_mutex_lock(&h.lock);
		uint8_t last = h.disk[8 * 512 * k + 4095];
		pthread_mutex_unlock(&h.lock);
		assert_int_equal(last, 0x30 + k);
	}

	memset(gp(&g, 0x40000), 0, 6 * 4096);
	post_rw(&g, 6, VIRTIO_BLK_T_IN);
	wait_used(&g, 12);
	for (unsigned int k = 0; k < 6; k++) {
		assert_int_equal(*(uint8_t *)gp(&g, 0xc000 + k), VIRTIO_BLK_S_OK);
		assert_int_equal(u->ring[(6 + k) % QN].len, 4096 + 1);
		assert_int_equal(*(uint8_t *)gp(&g, 0x40000 + 0x1000ull * k + 4095), 0x30 + k);
	}

	/* GET_VRING_BASE with requests held below: they complete first. */
	held_set(&h, false);
	post_rw(&g, 3, VIRTIO_BLK_T_OUT);
	held_wait(&h, 3);
	assert_int_equal(vring_base_releasing(fe, held_release_later, &h), 15);
	assert_int_equal(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE), 15);
	inflight_end(&s, &g, fe, mfd);
	pthread_mutex_lock(&h.lock);
	h.stop = true;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.lock);
	pthread_join(h.thread, NULL);
}

static void held_start(struct held *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cv, NULL);
	assert_int_equal(pthread_create(&h->thread, NULL, held_main, h), 0);
}

static void held_end(struct held *h)
{
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
}

/*
 * The front end hangs up while a request is held below; the backend
 * completes it afterwards, slowly (the lock trap delays its second lock,
 * the one after the request's own bookkeeping).  The card must not finish
 * its teardown (and free the queue) while that completion still runs in
 * it: before the fix, vub_serve returned while the completion was asleep
 * in the trap, which then locked the freed call_lock (ASan:
 * heap-use-after-free in queue_notify).
 */
static void test_disconnect_with_completion_in_flight(void **state)
{
	(void)state;
	static struct held h;
	held_start(&h);
	struct card s = { .be = { &held_ops, &h, DISK, 512 } };
	struct guest g = { 0 };
	int mfd;
	int fe = inflight_session(&s, &g, &mfd, 1);

	post_rw(&g, 1, VIRTIO_BLK_T_OUT);
	held_wait(&h, 1);
	close(fe); /* the card starts tearing down, waiting for the request */
	usleep(100000);
	atomic_store(&lock_trap_count, 0);
	pthread_mutex_lock(&h.lock);
	h.trap = true;
	h.release = true;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.lock);
	assert_int_equal(card_join(&s), 0);
	int locks_when_gone = atomic_load(&lock_trap_count);
	pthread_mutex_lock(&h.lock);
	while (h.n > 0 || h.completing > 0)
		pthread_cond_wait(&h.cv, &h.lock);
	pthread_mutex_unlock(&h.lock);
	print_message("completion locks: %d when the card was gone, %d in all\n", locks_when_gone, atomic_load(&lock_trap_count));
	/* Every lock the completion took in the card came before the card was gone. */
	assert_int_equal(locks_when_gone, atomic_load(&lock_trap_count));
	held_end(&h);
	close(g.q[0].kick);
	close(g.q[0].call);
	munmap(g.mem, MEMSZ);
	close(mfd);
}

/*
 * A stalled storage: held requests never complete unless released, flushes
 * wait the same way, and set_abort fails both at once as the contract says.
 */
static void stall_set_abort(void *ctx, bool on)
{
	struct held *h = ctx;
	struct blk_aio *dead[64];
	pthread_mutex_lock(&h->lock);
	h->aborting = on;
	unsigned int n = on ? h->n : 0;
	memcpy(dead, h->q, n * sizeof(dead[0]));
	h->n -= n;
	h->aborted += n;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
	for (unsigned int i = 0; i < n; i++)
		dead[i]->done(dead[i], -EIO);
}

static int stall_flush(void *ctx)
{
	struct held *h = ctx;
	pthread_mutex_lock(&h->lock);
	h->flushing++;
	pthread_cond_broadcast(&h->cv);
	while (!h->release && !h->aborting)
		pthread_cond_wait(&h->cv, &h->lock);
	int r = h->aborting ? -EIO : 0;
	h->aborted += h->aborting;
	h->flushing--;
	pthread_mutex_unlock(&h->lock);
	return r;
}

static const struct blk_backend_ops stall_ops = {
	.read = gate_rw, .write = gate_wr, .flush = stall_flush, .close = gate_close,
	.submit = held_submit, .set_abort = stall_set_abort,
};

/* One FLUSH (descriptors at, at + 1; status at 0x9000) on ring 0, kicked. */
static void post_flush_at(struct guest *g, uint16_t at)
{
	struct ring *q = &g->q[0];
	struct vring_desc *d = gp(g, q->desc);
	struct vring_avail *a = gp(g, q->avail);
	struct virtio_blk_outhdr h = { VIRTIO_BLK_T_FLUSH, 0, 0 };
	memcpy(gp(g, 0x8800), &h, sizeof(h));
	*(uint8_t *)gp(g, 0x9000) = 0xff;
	d[at] = (struct vring_desc){ 0x8800, 16, VRING_DESC_F_NEXT, (uint16_t)(at + 1) };
	d[at + 1] = (struct vring_desc){ 0x9000, 1, VRING_DESC_F_WRITE, 0 };
	a->ring[q->avail_idx % QN] = at;
	__atomic_store_n(&a->idx, ++q->avail_idx, __ATOMIC_RELEASE);
	uint64_t one = 1;
	assert_int_equal(write(q->kick, &one, 8), 8);
}

/*
 * A hang guard for code that waits for stalled storage forever: storage
 * "comes back" (everything held completes successfully) after 10 s.
 */
struct rescue {
	struct held *h;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool cancelled;
	pthread_t thread;
};

static void *rescue_main(void *arg)
{
	struct rescue *r = arg;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&r->lock);
	while (!r->cancelled && pthread_cond_timedwait(&r->cv, &r->lock, &until) == 0)
		;
	bool rescue = !r->cancelled;
	pthread_mutex_unlock(&r->lock);
	if (rescue) {
		print_message("storage still stalled after 10 s: released (hang guard)\n");
		held_set(r->h, true);
	}
	return NULL;
}

/*
 * Reset (GET_VRING_BASE) while storage stalls, with requests in flight both
 * handed down (3 writes) and inside a worker (a flush): the card answers
 * after its grace period, every one of them completed with IOERR, none
 * reported done; afterwards the queue restarts where it stopped and serves
 * again.  Before the fix the card waited for the storage (here, for the
 * 10 s hang guard, which completes them: status OK instead of IOERR).
 */
static void test_stop_during_stall(void **state)
{
	(void)state;
	static struct held h;
	held_start(&h);
	struct card s = { .be = { &stall_ops, &h, DISK, 512 } };
	struct guest g = { 0 };
	int mfd;
	int fe = inflight_session(&s, &g, &mfd, 2);

	post_rw(&g, 3, VIRTIO_BLK_T_OUT);
	held_wait(&h, 3);
	post_flush_at(&g, 4);
	pthread_mutex_lock(&h.lock);
	for (int i = 0; i < 10000 && h.flushing == 0; i++) {
		pthread_mutex_unlock(&h.lock);
		usleep(1000);
		pthread_mutex_lock(&h.lock);
	}
	assert_int_equal(h.flushing, 1);
	pthread_mutex_unlock(&h.lock);

	struct rescue r = { .h = &h };
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cv, NULL);
	assert_int_equal(pthread_create(&r.thread, NULL, rescue_main, &r), 0);
	struct vhost_user_vring_state st = { 0, 0 };
	struct vhost_user_msg m;
	send_msg(fe, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0);
	get_reply(fe, VHOST_USER_GET_VRING_BASE, &m);
	pthread_mutex_lock(&r.lock);
	r.cancelled = true;
	pthread_cond_signal(&r.cv);
	pthread_mutex_unlock(&r.lock);
	pthread_join(r.thread, NULL);

	assert_int_equal(m.payload.state.num, 4);
	struct vring_used *u = gp(&g, g.q[0].used);
	assert_int_equal(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE), 4);
	for (unsigned int k = 0; k < 3; k++)
		assert_int_equal(*(uint8_t *)gp(&g, 0xc000 + k), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*(uint8_t *)gp(&g, 0x9000), VIRTIO_BLK_S_IOERR);
	pthread_mutex_lock(&h.lock);
	assert_int_equal(h.aborted, 4);
	assert_false(h.aborting); /* the card ended the abort */
	h.release = true;
	pthread_mutex_unlock(&h.lock);

	/* The queue starts again from where it stopped and serves (a stop
	 * also disables the ring: the front end enables it again). */
	uint64_t v = 0;
	struct vhost_user_vring_state on = { 0, 1 };
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_KICK, &v, 8, &g.q[0].kick, 1), 0);
	assert_int_equal(acked(fe, VHOST_USER_SET_VRING_ENABLE, &on, sizeof(on), NULL, 0), 0);
	post_rw(&g, 1, VIRTIO_BLK_T_OUT);
	wait_used(&g, 5);
	assert_int_equal(*(uint8_t *)gp(&g, 0xc000), VIRTIO_BLK_S_OK);
	inflight_end(&s, &g, fe, mfd);
	held_end(&h);
}

/* The test driver of the tests below implements no event index: it waits
 * for a call after every completion. */
#define NO_EVENT_IDX (1ull << VIRTIO_RING_F_EVENT_IDX)

/* Ring 0 at guest-physical 0 (desc, +0x1000 avail, +0x2000 used), no fds. */
static void ring_layout(struct guest *g)
{
	g->q[0] = (struct ring){ .idx = 0, .desc = 0, .avail = 0x1000, .used = 0x2000,
				 .kick = -1, .call = -1 };
}

/* Ring 0's size, base and addresses (desc at desc_uva); the acks or-ed. */
static uint64_t ring_params(int fe, uint64_t desc_uva, uint16_t base)
{
	struct vhost_user_vring_state st = { 0, QN };
	uint64_t refused = acked(fe, VHOST_USER_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
	st.num = base;
	refused |= acked(fe, VHOST_USER_SET_VRING_BASE, &st, sizeof(st), NULL, 0);
	struct vhost_user_vring_addr a = { .index = 0, .desc = desc_uva,
					   .avail = desc_uva + 0x1000,
					   .used = desc_uva + 0x2000 };
	refused |= acked(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
	return refused;
}

/* SET_VRING_KICK, _CALL or _ERR of ring 0 with fd; the ack word. */
static uint64_t ring_fd(int fe, uint32_t req, int fd)
{
	uint64_t v = 0;
	return acked(fe, req, &v, 8, &fd, 1);
}

static uint64_t ring_enable(int fe, uint32_t on)
{
	struct vhost_user_vring_state st = { 0, on };
	return acked(fe, VHOST_USER_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0);
}

/* GET_VRING_BASE of ring 0 (the ring stops); its answer, within a hang limit. */
static uint32_t ring_stop(int fe)
{
	struct vhost_user_vring_state st = { 0, 0 };
	send_msg(fe, VHOST_USER_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0);
	struct pollfd p = { .fd = fe, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1)
		fail_msg("GET_VRING_BASE: no answer in 10 s: the card hangs stopping the ring");
	struct vhost_user_msg r;
	get_reply(fe, VHOST_USER_GET_VRING_BASE, &r);
	return r.payload.state.num;
}

/* n flushes on ring 0, 4 at a time (what its QN descriptors hold). */
static void run_flushes(struct guest *g, unsigned int n)
{
	for (unsigned int done = 0; done < n;) {
		unsigned int k = n - done < 4 ? n - done : 4;
		post_flushes(g, k);
		done += k;
		wait_used(g, (uint16_t)done);
	}
}

static void session_close(struct card *s, struct guest *g, int fe, int mfd)
{
	inflight_end(s, g, fe, mfd);
	s->be.ops->close(s->be.ctx);
}

/*
 * A call fd that is a pipe nobody reads (a page of buffer: 512 calls) is
 * refused; 1000 completions later the ring still stops on demand.  Taken,
 * it blocked the card's write() after 512 calls, and with it every later
 * completion and the ring's stop.
 */
static void test_call_fd_pipe_nobody_reads(void **state)
{
	(void)state;
	struct card s;
	struct guest g = { 0 };
	int mfd;
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);
	int fe = session_open(&s, &g, &mfd, 1, NO_EVENT_IDX);
	ring_layout(&g);
	assert_int_equal(ring_params(fe, UVA, 0), 0);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 0);
	uint64_t call_refused = ring_fd(fe, VHOST_USER_SET_VRING_CALL, p[1]);
	g.q[0].kick = eventfd(0, EFD_CLOEXEC);
	g.q[0].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* unused */
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_KICK, g.q[0].kick), 0);
	assert_int_equal(ring_enable(fe, 1), 0);
	run_flushes(&g, 1000);
	assert_int_equal(ring_stop(fe), 1000);
	assert_int_not_equal(call_refused, 0);
	session_close(&s, &g, fe, mfd);
	close(p[0]);
	close(p[1]);
}

/*
 * A real call eventfd, blocking, that the front end fills to its maximum
 * after handing it over: the card's write() would block.  The card made it
 * non-blocking: 1000 completions, and the ring stops on demand.
 */
static void test_call_fd_saturated_eventfd(void **state)
{
	(void)state;
	struct card s;
	struct guest g = { 0 };
	int mfd;
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);
	int fe = session_open(&s, &g, &mfd, 1, NO_EVENT_IDX);
	ring_layout(&g);
	assert_int_equal(ring_params(fe, UVA, 0), 0);
	g.q[0].call = eventfd(0, EFD_CLOEXEC);
	g.q[0].kick = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_CALL, g.q[0].call), 0);
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_KICK, g.q[0].kick), 0);
	assert_int_equal(ring_enable(fe, 1), 0);
	uint64_t full = UINT64_MAX - 1;
	assert_int_equal(write(g.q[0].call, &full, 8), 8);
	run_flushes(&g, 1000);
	assert_int_equal(ring_stop(fe), 1000);
	assert_true(fcntl(g.q[0].call, F_GETFL) & O_NONBLOCK);
	session_close(&s, &g, fe, mfd);
}

/*
 * Kick, call and err fds that are not eventfds are refused: /dev/null, a
 * regular file, a pipe's read end whose writer is gone (taken as a kick fd,
 * each of these is always readable and spun the queue's leader thread), a
 * pipe's write end, a socket, a timerfd, an epoll fd.  The connection lives on, real eventfds work;
 * without REPLY_ACK a refused fd ends the connection.
 */
static void test_bad_ring_fds_refused(void **state)
{
	(void)state;
	struct card s;
	struct guest g = { 0 };
	int mfd;
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);
	int fe = session_open(&s, &g, &mfd, 1, NO_EVENT_IDX);
	ring_layout(&g);
	assert_int_equal(ring_params(fe, UVA, 0), 0);

	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(devnull >= 0);
	FILE *tf = tmpfile();
	assert_non_null(tf);
	int p[2], sp[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	int unread = p[1];
	int nowriter[2];
	assert_int_equal(pipe2(nowriter, O_CLOEXEC), 0);
	close(nowriter[1]);
	/* These two are files on the same anonymous inode as an eventfd. */
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	assert_true(tfd >= 0 && ep >= 0);
	const int bad[] = { devnull, fileno(tf), nowriter[0], unread, sp[0], tfd, ep };
	const uint32_t reqs[] = { VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL,
				  VHOST_USER_SET_VRING_ERR };
	for (unsigned int r = 0; r < 3; r++)
		for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			print_message("%s with fd kind %u\n", vhost_user_request_name(reqs[r]), i);
			assert_int_not_equal(ring_fd(fe, reqs[r], bad[i]), 0);
		}

	g.q[0].kick = eventfd(0, EFD_CLOEXEC);
	g.q[0].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int err = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_ERR, err), 0);
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_CALL, g.q[0].call), 0);
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_KICK, g.q[0].kick), 0);
	assert_int_equal(ring_enable(fe, 1), 0);
	assert_int_equal(request(&g, 0, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);

	/* Without a reply asked for, a refused fd ends the connection. */
	uint64_t v = 0;
	send_msg(fe, VHOST_USER_SET_VRING_KICK, 0, &v, 8, &devnull, 1);
	assert_int_equal(stop(&s, fe), -EPROTO);
	close(g.q[0].kick);
	close(g.q[0].call);
	munmap(g.mem, MEMSZ);
	close(mfd);
	s.be.ops->close(s.be.ctx);
	close(err);
	close(devnull);
	fclose(tf);
	close(p[0]);
	close(p[1]);
	close(sp[0]);
	close(sp[1]);
	close(nowriter[0]);
	close(tfd);
	close(ep);
}

/*
 * A ring restarted with its rings outside guest memory is refused; the
 * front end (like QEMU on a failed start) does not stop a ring whose start
 * failed.  The next start, with good rings, must work: the refused one
 * must not leave the ring half started (its kick taken, enabled) so that
 * every later ring message retries the bad rings and is refused.
 */
static void test_failed_start_then_restart(void **state)
{
	(void)state;
	struct card s;
	struct guest g = { 0 };
	int mfd;
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);
	int fe = session_open(&s, &g, &mfd, 1, NO_EVENT_IDX);
	setup_ring(fe, &g, 0);
	assert_int_equal(request(&g, 0, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(ring_stop(fe), 1);

	uint64_t refused = ring_params(fe, UVA + MEMSZ - 16, 1);
	refused |= ring_fd(fe, VHOST_USER_SET_VRING_CALL, g.q[0].call);
	refused |= ring_fd(fe, VHOST_USER_SET_VRING_KICK, g.q[0].kick);
	refused |= ring_enable(fe, 1);
	assert_int_not_equal(refused, 0);

	assert_int_equal(ring_params(fe, UVA + g.q[0].desc, 1), 0);
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_CALL, g.q[0].call), 0);
	assert_int_equal(ring_fd(fe, VHOST_USER_SET_VRING_KICK, g.q[0].kick), 0);
	assert_int_equal(ring_enable(fe, 1), 0);
	assert_int_equal(request(&g, 0, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	session_close(&s, &g, fe, mfd);
}


/*
 * 1000 kicks, each with 7 avail heads beyond the ring and one good flush:
 * the card says so once, and at the end how many it did not log (7000
 * lines before: one per bad head).
 */
static void test_bad_heads_logged_once(void **state)
{
	(void)state;
	struct card s;
	struct guest g = { 0 };
	int mfd;
	struct log_capture cap;
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);
	int fe = session_open(&s, &g, &mfd, 1, NO_EVENT_IDX);
	setup_ring(fe, &g, 0);
	struct vring_avail *a = gp(&g, g.q[0].avail);
	capture_begin(&cap);
	for (unsigned int k = 0; k < 1000; k++) {
		for (unsigned int b = 0; b < 7; b++)
			a->ring[g.q[0].avail_idx++ % QN] = (uint16_t)(QN + b);
		post_flushes(&g, 1);
		wait_used(&g, (uint16_t)(k + 1));
	}
	assert_int_equal(ring_stop(fe), 8000);
	assert_int_equal(capture_end(&cap, NULL), 1);
	/* The end of the connection says how many were not logged. */
	capture_begin(&cap);
	assert_int_equal(stop(&s, fe), 0);
	assert_int_equal(capture_end(&cap, "6999 more guest ring errors"), 1);
	close(g.q[0].kick);
	close(g.q[0].call);
	munmap(g.mem, MEMSZ);
	close(mfd);
	s.be.ops->close(s.be.ctx);
}

/*
 * 200 start/stop cycles of a ring whose rings lie outside guest memory:
 * every start is refused, the card says why and that it refused once, and
 * at the end how many it did not log (400 lines before: the cause and the
 * refusal, per cycle).
 */
static void test_failed_starts_logged_once(void **state)
{
	(void)state;
	struct card s;
	struct guest g = { 0 };
	int mfd;
	struct log_capture cap;
	assert_int_equal(blk_mem_create(&s.be, DISK, 512), 0);
	int fe = session_open(&s, &g, &mfd, 1, NO_EVENT_IDX);
	ring_layout(&g);
	g.q[0].kick = eventfd(0, EFD_CLOEXEC);
	g.q[0].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	capture_begin(&cap);
	for (unsigned int k = 0; k < 200; k++) {
		uint64_t refused = ring_params(fe, UVA + MEMSZ - 16, 0);
		refused |= ring_fd(fe, VHOST_USER_SET_VRING_CALL, g.q[0].call);
		refused |= ring_fd(fe, VHOST_USER_SET_VRING_KICK, g.q[0].kick);
		refused |= ring_enable(fe, 1);
		assert_int_not_equal(refused, 0);
		assert_int_equal(ring_stop(fe), 0);
	}
	/* The cause and the refusal, once. */
	assert_int_equal(capture_end(&cap, NULL), 2);
	capture_begin(&cap);
	assert_int_equal(stop(&s, fe), 0);
	assert_int_equal(capture_end(&cap, "199 more refusal causes, 199 more refused"), 1);
	close(g.q[0].kick);
	close(g.q[0].call);
	munmap(g.mem, MEMSZ);
	close(mfd);
	s.be.ops->close(s.be.ctx);
}

int main(void)
{
	real_mutex_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
	if (real_mutex_lock == NULL)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_session),
		cmocka_unit_test(test_malformed_messages),
		cmocka_unit_test(test_requests_in_flight),
		cmocka_unit_test(test_iodepth_one),
		cmocka_unit_test(test_async_backend),
		cmocka_unit_test(test_disconnect_with_completion_in_flight),
		cmocka_unit_test(test_stop_during_stall),
		cmocka_unit_test(test_call_fd_pipe_nobody_reads),
		cmocka_unit_test(test_call_fd_saturated_eventfd),
		cmocka_unit_test(test_bad_ring_fds_refused),
		cmocka_unit_test(test_failed_start_then_restart),
		cmocka_unit_test(test_bad_heads_logged_once),
		cmocka_unit_test(test_failed_starts_logged_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
