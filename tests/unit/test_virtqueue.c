/*
 * Guest memory translation, the split virtqueue and the virtio-blk request
 * handler on a fake guest memory: one malloc'ed region at GPA 0x10000.
 * Every malformed request must complete (IOERR/UNSUPP, or length 0 when the
 * chain has no writable end) and the next good request must still work.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk_mem.h"
#include "guest_mem_map.h"
#include "virtio_blk.h"
#include "virtqueue.h"
#include "test_log_capture.h"

#define BASE 0x10000ull
#define MEMSZ 0x40000ull
#define QN 8
#define DESC (BASE + 0x0000)
#define AVAIL (BASE + 0x1000)
#define USED (BASE + 0x2000)
#define IND (BASE + 0x3000)
#define HDR (BASE + 0x4000)
#define STAT (BASE + 0x5000)
#define DATA (BASE + 0x8000)
#define DISK (1024 * 1024)

struct fx {
	uint8_t *mem;
	struct gmm g;
	struct vq q;
	struct blk_backend be;
	struct vblk dev;
	uint16_t avail_idx;
};

static void *gp(struct fx *f, uint64_t gpa)
{
	return f->mem + (gpa - BASE);
}

static void desc(struct fx *f, unsigned int i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	struct vring_desc *d = (struct vring_desc *)gp(f, DESC) + i;
	*d = (struct vring_desc){ addr, len, flags, next };
}

static void publish(struct fx *f, uint16_t head)
{
	struct vring_avail *a = gp(f, AVAIL);
	a->ring[f->avail_idx % QN] = head;
	a->idx = ++f->avail_idx;
}

static void hdr(struct fx *f, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { type, 0, sector };
	memcpy(gp(f, HDR), &h, sizeof(h));
}

/* Pop and serve one request; check the used ring; return the status. */
static uint8_t run(struct fx *f, uint32_t *used_len)
{
	static struct vq_req req;
	uint8_t status = 0xff;
	struct vring_used *u = gp(f, USED);
	uint16_t before = u->idx;

	assert_int_equal(vq_pop(&f->q, &req), 1);
	uint32_t len = vblk_serve(&f->dev, &req, &status);
	vq_push(&f->q, req.head, len);
	assert_int_equal(u->idx, (uint16_t)(before + 1));
	assert_int_equal(u->ring[before % QN].id, req.head);
	assert_int_equal(u->ring[before % QN].len, len);
	if (used_len)
		*used_len = len;
	assert_int_equal(vq_pop(&f->q, &req), 0);
	return status;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->mem = aligned_alloc(4096, MEMSZ);
	memset(f->mem, 0, MEMSZ);
	gmm_init_flat(&f->g, f->mem, BASE, MEMSZ);
	assert_int_equal(blk_mem_create(&f->be, DISK, 512), 0);
	assert_int_equal(vblk_init(&f->dev, &f->be, 1, "flint-test-serial", NULL), 0);
	assert_int_equal(vq_init(&f->q, &f->g, QN, true, DESC, AVAIL, USED, 0), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	f->be.ops->close(f->be.ctx);
	free(f->mem);
	free(f);
	return 0;
}

/* A good write of 2 sectors then a read of them: the baseline. */
static void good_write_read(struct fx *f, uint64_t sector, uint8_t pat)
{
	uint32_t len;
	memset(gp(f, DATA), pat, 1024);
	hdr(f, VIRTIO_BLK_T_OUT, sector);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 1024, VRING_DESC_F_NEXT, 2);
	desc(f, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	assert_int_equal(*(uint8_t *)gp(f, STAT), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_mem_data(&f->be)[sector * 512], pat);

	memset(gp(f, DATA), 0, 1024);
	hdr(f, VIRTIO_BLK_T_IN, sector);
	desc(f, 1, DATA, 1024, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	publish(f, 0);
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1025);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(((uint8_t *)gp(f, DATA))[i], pat);
}

static void test_gmm_edges(void **state)
{
	(void)state;
	static uint8_t buf[2][4096];
	struct gmm g;
	gmm_init_flat(&g, buf[0], 0x1000, 4096);
	g.r[1] = (struct gmm_region){ .gpa = 0x2000, .size = 4096, .uva = 0x7000,
				      .host = buf[1] };
	g.n = 2;
	assert_ptr_equal(gmm_ptr(&g, 0x1000, 4096), buf[0]);
	assert_ptr_equal(gmm_ptr(&g, 0x1fff, 1), buf[0] + 4095);
	assert_null(gmm_ptr(&g, 0x1000, 0));            /* empty */
	assert_null(gmm_ptr(&g, 0x0fff, 2));            /* starts before */
	assert_null(gmm_ptr(&g, 0x1fff, 2));            /* straddles two regions */
	assert_null(gmm_ptr(&g, 0x3000, 1));            /* just past the end */
	assert_null(gmm_ptr(&g, 0x1800, UINT64_MAX));   /* wraps */
	assert_null(gmm_ptr(&g, UINT64_MAX, 2));
	assert_ptr_equal(gmm_ptr(&g, 0x2010, 16), buf[1] + 16);
	uint64_t gpa = 0;
	assert_int_equal(gmm_uva_to_gpa(&g, 0x7010, 16, &gpa), 0);
	assert_int_equal(gpa, 0x2010);
	assert_int_not_equal(gmm_uva_to_gpa(&g, 0x7ff0, 32, &gpa), 0);
	assert_int_not_equal(gmm_uva_to_gpa(&g, 0x6000, 1, &gpa), 0);
}

static void test_gmm_map_memfd(void **state)
{
	(void)state;
	int fd = memfd_create("gmm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 3 * 4096), 0);
	struct vhost_user_mem_region one = { .guest_phys_addr = 0, .memory_size = 4096 };
	struct gmm unsealed;
	/* Memory the front end could still shrink is refused. */
	assert_int_equal(gmm_map(&unsealed, &one, &fd, 1), -EINVAL);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	struct vhost_user_mem_region r[2] = {
		{ .guest_phys_addr = 0, .memory_size = 4096, .userspace_addr = 0x100000,
		  .mmap_offset = 0 },
		{ .guest_phys_addr = 0x100000, .memory_size = 4096,
		  .userspace_addr = 0x200000, .mmap_offset = 8192 },
	};
	int fds[2] = { fd, fd };
	struct gmm g;
	assert_int_equal(gmm_map(&g, r, fds, 2), 0);
	uint8_t v = 0x5a;
	assert_int_equal(pwrite(fd, &v, 1, 8192 + 7), 1);
	assert_int_equal(*(uint8_t *)gmm_ptr(&g, 0x100007, 1), 0x5a);
	gmm_unmap(&g);
	assert_int_equal(g.n, 0);

	/* Overlapping guest-physical ranges. */
	r[1].guest_phys_addr = 0x800;
	assert_int_not_equal(gmm_map(&g, r, fds, 2), 0);
	/* The fd is smaller than mmap_offset + size. */
	r[1].guest_phys_addr = 0x100000;
	r[1].mmap_offset = 3 * 4096;
	assert_int_not_equal(gmm_map(&g, r, fds, 2), 0);
	/* Wrapping region. */
	r[1].mmap_offset = 0;
	r[1].memory_size = UINT64_MAX;
	assert_int_not_equal(gmm_map(&g, r, fds, 2), 0);
	close(fd);
}

/*
 * The seals are checked before the size: only once the fd cannot shrink
 * any more does its size say what may be mapped.  Checked the other way
 * round, a front end could shrink and seal between fstat and F_GET_SEALS
 * and have the card map past the end (SIGBUS at the first touch).  The
 * race itself needs a hook between two system calls; what is tested is
 * the order: an fd that is both unsealed and too small is refused for
 * being unsealed, before its size is looked at.
 */
static void test_gmm_map_seals_before_size(void **state)
{
	(void)state;
	struct log_capture cap;
	struct gmm g;
	struct vhost_user_mem_region r = { .guest_phys_addr = 0, .memory_size = 8192 };
	int fd = memfd_create("gmm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	capture_begin(&cap);
	assert_int_equal(gmm_map(&g, &r, &fd, 1), -EINVAL);
	assert_int_equal(capture_end(&cap, "not sealed against shrinking"), 1);
	/* Sealed, it is refused for its size. */
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	capture_begin(&cap);
	assert_int_equal(gmm_map(&g, &r, &fd, 1), -EINVAL);
	assert_int_equal(capture_end(&cap, "fd has 4096 bytes, needs 8192"), 1);
	close(fd);
}

static void test_vq_init_checks(void **state)
{
	struct fx *f = *state;
	struct vq q;
	assert_int_not_equal(vq_init(&q, &f->g, 6, false, DESC, AVAIL, USED, 0), 0);
	assert_int_not_equal(vq_init(&q, &f->g, QN, false, DESC + 8, AVAIL, USED, 0), 0);
	assert_int_not_equal(vq_init(&q, &f->g, QN, false, DESC, AVAIL, BASE + MEMSZ - 8, 0), 0);
	assert_int_not_equal(vq_init(&q, &f->g, QN, false, 0, AVAIL, USED, 0), 0);
}

static void test_write_read(void **state)
{
	good_write_read(*state, 4, 0xa5);
}

/* Data split at non-block boundaries goes through the bounce buffer. */
static void test_unaligned_segments(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 1024; i++)
		((uint8_t *)gp(f, DATA))[i] = (uint8_t)i;
	hdr(f, VIRTIO_BLK_T_OUT, 10);
	desc(f, 0, HDR, 8, VRING_DESC_F_NEXT, 1);       /* header split too */
	desc(f, 1, HDR + 8, 8, VRING_DESC_F_NEXT, 2);
	desc(f, 2, DATA, 100, VRING_DESC_F_NEXT, 3);
	desc(f, 3, DATA + 100, 924, VRING_DESC_F_NEXT, 4);
	desc(f, 4, STAT, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(blk_mem_data(&f->be) + 10 * 512, gp(f, DATA), 1024);

	/* Read back into 3 writable pieces, the status sharing the last one. */
	memset(gp(f, DATA), 0, 2048);
	hdr(f, VIRTIO_BLK_T_IN, 10);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 300, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(f, 2, DATA + 300, 700, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
	desc(f, 3, DATA + 1000, 25, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	uint32_t len;
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1025);
	assert_memory_equal(blk_mem_data(&f->be) + 10 * 512, gp(f, DATA), 1024);
	assert_int_equal(((uint8_t *)gp(f, DATA))[1024], VIRTIO_BLK_S_OK);
}

static void test_addr_outside(void **state)
{
	struct fx *f = *state;
	hdr(f, VIRTIO_BLK_T_IN, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, BASE + MEMSZ - 512, 1024, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(f, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
	*(uint8_t *)gp(f, STAT) = 0xee;
	publish(f, 0);
	uint32_t len;
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
	assert_int_equal(*(uint8_t *)gp(f, STAT), VIRTIO_BLK_S_IOERR);
	good_write_read(f, 1, 0x11);
}

static void test_loop(void **state)
{
	struct fx *f = *state;
	hdr(f, VIRTIO_BLK_T_IN, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	uint32_t len;
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 0);
	good_write_read(f, 2, 0x22);
}

/* Every slot chained to the next and the last back to the first. */
static void test_chain_longer_than_queue(void **state)
{
	struct fx *f = *state;
	for (unsigned int i = 0; i < QN; i++)
		desc(f, i, DATA + i * 16, 16, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % QN));
	publish(f, 3);
	uint32_t len;
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 0);
	/* next index out of range */
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, QN);
	publish(f, 0);
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_IOERR);
	good_write_read(f, 3, 0x33);
}

static void test_write_into_readonly(void **state)
{
	struct fx *f = *state;
	hdr(f, VIRTIO_BLK_T_IN, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 512, VRING_DESC_F_NEXT, 2); /* read-only buffer */
	desc(f, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	/* Readable after writable. */
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(f, 2, DATA + 512, 512, VRING_DESC_F_NEXT, 3);
	desc(f, 3, STAT, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*(uint8_t *)gp(f, STAT), VIRTIO_BLK_S_IOERR);
	good_write_read(f, 4, 0x44);
}

static void test_status_not_writable(void **state)
{
	struct fx *f = *state;
	hdr(f, VIRTIO_BLK_T_OUT, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 512, VRING_DESC_F_NEXT, 2);
	desc(f, 2, STAT, 1, 0, 0);
	*(uint8_t *)gp(f, STAT) = 0xee;
	publish(f, 0);
	uint32_t len;
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 0);
	assert_int_equal(*(uint8_t *)gp(f, STAT), 0xee);
	assert_int_equal(blk_mem_data(&f->be)[0], 0); /* nothing written */
	good_write_read(f, 5, 0x55);
}

static void test_bad_lengths_and_range(void **state)
{
	struct fx *f = *state;
	struct { uint32_t type; uint64_t sector; uint32_t len; } cases[] = {
		{ VIRTIO_BLK_T_OUT, 0, 100 },                 /* not a block */
		{ VIRTIO_BLK_T_OUT, DISK / 512, 512 },        /* past the end */
		{ VIRTIO_BLK_T_OUT, DISK / 512 - 1, 1024 },   /* crosses the end */
		{ VIRTIO_BLK_T_OUT, UINT64_MAX / 256, 512 },  /* sector * 512 wraps */
		{ VIRTIO_BLK_T_OUT, UINT64_MAX, 512 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hdr(f, cases[i].type, cases[i].sector);
		desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
		desc(f, 1, DATA, cases[i].len, VRING_DESC_F_NEXT, 2);
		desc(f, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
		publish(f, 0);
		assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	}
	/* Short header. */
	desc(f, 0, HDR, 8, VRING_DESC_F_NEXT, 2);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	/* Unknown type. */
	hdr(f, 0x1234, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 2);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_UNSUPP);
	good_write_read(f, DISK / 512 - 2, 0x66);
}

static void test_4k_disk_alignment(void **state)
{
	struct fx *f = *state;
	struct blk_backend be;
	struct vblk dev;
	static struct vq_req req;
	assert_int_equal(blk_mem_create(&be, DISK, 4096), 0);
	assert_int_equal(vblk_init(&dev, &be, 1, NULL, NULL), 0);
	uint8_t st;
	hdr(f, VIRTIO_BLK_T_OUT, 1); /* 512 bytes in: not 4K aligned */
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 4096, VRING_DESC_F_NEXT, 2);
	desc(f, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(vq_pop(&f->q, &req), 1);
	vq_push(&f->q, req.head, vblk_serve(&dev, &req, &st));
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	hdr(f, VIRTIO_BLK_T_OUT, 8);
	desc(f, 1, DATA, 512, VRING_DESC_F_NEXT, 2); /* 512 bytes: not a block */
	publish(f, 0);
	assert_int_equal(vq_pop(&f->q, &req), 1);
	vq_push(&f->q, req.head, vblk_serve(&dev, &req, &st));
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	desc(f, 1, DATA, 4096, VRING_DESC_F_NEXT, 2);
	publish(f, 0);
	assert_int_equal(vq_pop(&f->q, &req), 1);
	vq_push(&f->q, req.head, vblk_serve(&dev, &req, &st));
	assert_int_equal(st, VIRTIO_BLK_S_OK);
	be.ops->close(be.ctx);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	struct vring_desc *t = gp(f, IND);
	memset(gp(f, DATA), 0x77, 512);
	hdr(f, VIRTIO_BLK_T_OUT, 6);
	t[0] = (struct vring_desc){ HDR, 16, VRING_DESC_F_NEXT, 2 };
	t[2] = (struct vring_desc){ DATA, 512, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ STAT, 1, VRING_DESC_F_WRITE, 0 };
	desc(f, 5, IND, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_mem_data(&f->be)[6 * 512], 0x77);

	/* Nested indirect. */
	t[2].flags |= VRING_DESC_F_INDIRECT;
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	t[2].flags &= (uint16_t)~VRING_DESC_F_INDIRECT;
	/* Loop inside the table. */
	t[1] = (struct vring_desc){ STAT, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0 };
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	t[1].flags = VRING_DESC_F_WRITE;
	/* Table length not a multiple of 16, table outside memory, INDIRECT|NEXT. */
	desc(f, 5, IND, 40, VRING_DESC_F_INDIRECT, 0);
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	desc(f, 5, BASE + MEMSZ - 16, 48, VRING_DESC_F_INDIRECT, 0);
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	desc(f, 5, IND, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 6);
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	/* Not negotiated. */
	f->q.indirect = false;
	desc(f, 5, IND, 48, VRING_DESC_F_INDIRECT, 0);
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	f->q.indirect = true;
	publish(f, 5);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_OK);
	good_write_read(f, 7, 0x78);
}

static void test_other_commands(void **state)
{
	struct fx *f = *state;
	uint32_t len;
	/* GET_ID */
	hdr(f, VIRTIO_BLK_T_GET_ID, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	desc(f, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_int_equal(run(f, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 21);
	assert_memory_equal(gp(f, DATA), "flint-test-serial\0\0\0", 20);
	/* FLUSH */
	hdr(f, VIRTIO_BLK_T_FLUSH, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 2);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_OK);
	/* WRITE_ZEROES over sectors 20..21, then DISCARD with a bad flag. */
	memset(blk_mem_data(&f->be) + 20 * 512, 0xcc, 1024);
	struct virtio_blk_discard_write_zeroes s = { 20, 2, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	memcpy(gp(f, DATA), &s, sizeof(s));
	hdr(f, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, DATA, 16, VRING_DESC_F_NEXT, 2);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_mem_data(&f->be)[20 * 512 + 1023], 0);
	hdr(f, VIRTIO_BLK_T_DISCARD, 0);
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_UNSUPP); /* unmap on discard */
	s.flags = 0;
	s.num_sectors = VBLK_MAX_DISCARD_SECTORS + 1;
	memcpy(gp(f, DATA), &s, sizeof(s));
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	s.sector = DISK / 512 - 1;
	s.num_sectors = 2;
	memcpy(gp(f, DATA), &s, sizeof(s));
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	desc(f, 1, DATA, 24, VRING_DESC_F_NEXT, 2); /* not whole segments */
	publish(f, 0);
	assert_int_equal(run(f, NULL), VIRTIO_BLK_S_IOERR);
	good_write_read(f, 8, 0x88);
}

static void test_bad_head_and_broken_index(void **state)
{
	struct fx *f = *state;
	publish(f, QN + 3); /* head out of range: dropped, not completed */
	static struct vq_req req;
	assert_int_equal(vq_pop(&f->q, &req), 0);
	good_write_read(f, 9, 0x99);
	/* The avail index jumps more than a queue ahead: the queue stops. */
	struct vring_avail *a = gp(f, AVAIL);
	a->idx = (uint16_t)(f->avail_idx + QN + 1);
	assert_int_equal(vq_pop(&f->q, &req), 0);
	assert_true(f->q.broken);
}

static void test_config(void **state)
{
	struct fx *f = *state;
	struct virtio_blk_config c;
	vblk_config(&f->dev, &c);
	assert_int_equal(c.capacity, DISK / 512);
	assert_int_equal(c.blk_size, 512);
	assert_int_equal(c.num_queues, 1);
	assert_int_equal(c.seg_max, VQ_MAX_SEGS - 2);
	assert_int_equal(offsetof(struct virtio_blk_config, max_discard_sectors), 36);
	assert_int_equal(offsetof(struct virtio_blk_config, num_queues), 34);
	/* What flint-hv caches: the fields before secure erase. */
	assert_int_equal(offsetof(struct virtio_blk_config, max_secure_erase_sectors), 60);
	uint64_t feat = vblk_features(&f->dev);
	assert_true(feat & (1ull << VIRTIO_F_VERSION_1));
	assert_true(feat & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_true(feat & (1ull << VIRTIO_RING_F_EVENT_IDX));
	struct blk_backend bad = f->be;
	bad.size_bytes = 1000;
	struct vblk d2;
	assert_int_not_equal(vblk_init(&d2, &bad, 1, NULL, NULL), 0);
}

/* EVENT_IDX: one kick per wait, interrupts only past used_event. */
static void test_event_idx(void **state)
{
	struct fx *f = *state;
	struct vring_used *u = gp(f, USED);
	struct vring_avail *a = gp(f, AVAIL);
	uint16_t *avail_event = (uint16_t *)&u->ring[QN];
	uint16_t *used_event = &a->ring[QN];
	static struct vq_req req;

	/* Without it: NO_INTERRUPT is honoured, the kick is never suppressed. */
	assert_true(vq_should_notify(&f->q));
	a->flags = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(vq_should_notify(&f->q));
	a->flags = 0;
	assert_false(vq_arm_kick(&f->q));

	assert_int_equal(vq_use_event_idx(&f->q), 0);
	/* Arming publishes where the device will look next... */
	*avail_event = 0xffff;
	assert_false(vq_arm_kick(&f->q));
	assert_int_equal(*avail_event, 0);
	/* ...and reports work that slipped in before the driver saw it. */
	hdr(f, VIRTIO_BLK_T_GET_ID, 0);
	desc(f, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	desc(f, 1, STAT, 1, VRING_DESC_F_WRITE, 0);
	publish(f, 0);
	assert_true(vq_arm_kick(&f->q));
	assert_int_equal(vq_pop(&f->q, &req), 1);
	vq_push(&f->q, req.head, 1);
	/* The first completion always interrupts (nothing signalled yet). */
	*used_event = 0;
	assert_true(vq_should_notify(&f->q));
	/* The driver wants an interrupt after used index 3 only. */
	*used_event = 2;
	for (uint16_t i = 2; i <= 4; i++) {
		publish(f, 0);
		assert_int_equal(vq_pop(&f->q, &req), 1);
		vq_push(&f->q, req.head, 1);
		assert_int_equal(u->idx, i);
		/* used index 2: not past 2 yet; 3: passed; 4: already told. */
		assert_int_equal(vq_should_notify(&f->q), i == 3);
	}
	/* NO_INTERRUPT means nothing once event indices are in use. */
	a->flags = VRING_AVAIL_F_NO_INTERRUPT;
	*used_event = 4;
	publish(f, 0);
	assert_int_equal(vq_pop(&f->q, &req), 1);
	vq_push(&f->q, req.head, 1);
	assert_true(vq_should_notify(&f->q));
	assert_false(vq_arm_kick(&f->q));
	assert_int_equal(*avail_event, f->q.last_avail);
}

/* The trailing event fields must be inside guest memory as well. */
static void test_event_idx_bounds(void **state)
{
	struct fx *f = *state;
	struct vq q;
	/* The used ring's last element ends exactly at the end of memory. */
	uint64_t used = BASE + MEMSZ - (4 + 8 * QN);
	assert_int_equal(vq_init(&q, &f->g, QN, false, DESC, AVAIL, used, 0), 0);
	assert_int_equal(vq_use_event_idx(&q), -EFAULT);
	assert_false(q.event_idx);
	assert_int_equal(vq_init(&q, &f->g, QN, false, DESC, AVAIL, USED, 0), 0);
	assert_int_equal(vq_use_event_idx(&q), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gmm_edges),
		cmocka_unit_test(test_gmm_map_memfd),
		cmocka_unit_test(test_gmm_map_seals_before_size),
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
		T(test_vq_init_checks),
		T(test_write_read),
		T(test_unaligned_segments),
		T(test_addr_outside),
		T(test_loop),
		T(test_chain_longer_than_queue),
		T(test_write_into_readonly),
		T(test_status_not_writable),
		T(test_bad_lengths_and_range),
		T(test_4k_disk_alignment),
		T(test_indirect),
		T(test_other_commands),
		T(test_bad_head_and_broken_index),
		T(test_config),
		T(test_event_idx),
		T(test_event_idx_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
