/*
 * blk: data integrity over a virtio-blk device.  Writes the (sector, seed)
 * pattern over several ranges (start, middle, the very end of the disk) in
 * single- and multi-descriptor requests, flushes, reads back with other
 * request shapes and verifies; GET_ID (checked against `blk.serial=`); a
 * write straddling the end of the disk must fail with IOERR and leave the
 * last block alone; discard and write-zeroes when offered.  All at CPL3.
 */
#include "blk_common.h"
#include "bootinfo.h"
#include "printf.h"
#include "tests.h"
#include "util.h"

#define KIB 1024u

struct range {
	uint64_t sector;
	uint32_t nsect;
	uint32_t req_sect; /* per request on write */
	unsigned wseg, rseg; /* descriptors per request: write, read */
};

static const char *do_ranges(struct blk_ctx *c, const struct range *r,
			     unsigned n, uint64_t seed)
{
	uint8_t *buf = c->arena;
	const char *why;

	for (unsigned i = 0; i < n; i++)
		for (uint32_t o = 0; o < r[i].nsect; o += r[i].req_sect) {
			uint32_t k = r[i].nsect - o < r[i].req_sect ?
					     r[i].nsect - o : r[i].req_sect;
			why = blk_write(c, (i + o) % c->dev.num_queues,
					r[i].sector + o, k, r[i].wseg, seed, buf);
			if (why)
				return why;
		}
	if (vblk_has(&c->dev, VIRTIO_BLK_F_FLUSH)) {
		int st = vblk_simple(&c->dev, 0, VIRTIO_BLK_T_FLUSH);
		if (st != VIRTIO_BLK_S_OK)
			return test_fail("flush: %s", blk_status_name(st));
	}
	/* Read back with a different request size: 2x, capped at 1 MiB. */
	for (unsigned i = 0; i < n; i++) {
		uint32_t rs = r[i].req_sect * 2;
		if (rs > 2048)
			rs = 2048;
		for (uint32_t o = 0; o < r[i].nsect; o += rs) {
			uint32_t k = r[i].nsect - o < rs ? r[i].nsect - o : rs;
			why = blk_verify(c, 0, r[i].sector + o, k, r[i].rseg,
					 seed, buf);
			if (why)
				return why;
		}
	}
	return NULL;
}

static uint32_t seg_cap(const struct blk_ctx *c, uint32_t want)
{
	if (c->dev.seg_max && want > c->dev.seg_max)
		return c->dev.seg_max;
	return want;
}

static const char *blk_body(struct blk_ctx *c)
{
	struct vblk *d = &c->dev;
	const char *why = blk_open(c, "blk");
	if (why)
		return why;
	uint32_t u = blk_unit(c);
	uint64_t cap = d->capacity / u * u; /* whole blocks */
	uint64_t mid = cap / 2 / u * u;
	uint32_t bs = u * VBLK_SECTOR;
	if (d->size_max && d->size_max < 4 * KIB)
		return "size_max below 4 KiB: not supported by this test";

	struct range r[] = {
		/* 1 MiB at the start: 64 KiB requests, 4 descriptors. */
		{ 0, 2048, 128, seg_cap(c, 4), seg_cap(c, 8) },
		/* 512 KiB in the middle: 128 KiB single-descriptor requests. */
		{ mid, 1024, 256, 1, seg_cap(c, 2) },
		/* One lone block just after it. */
		{ mid + 1024 + 7 * u, u, u, 1, 1 },
		/* The last 1 MiB: 32 KiB requests over 8 descriptors... */
		{ cap - 2048, 2048 - u, 64, seg_cap(c, 8), seg_cap(c, 16) },
		/* ...and the very last block alone. */
		{ cap - u, u, u, 1, 1 },
	};
	/* size_max caps each descriptor: split requests finer if needed. */
	for (unsigned i = 0; i < ARRAY_SIZE(r); i++)
		if (d->size_max)
			while (r[i].req_sect * VBLK_SECTOR / r[i].wseg > d->size_max ||
			       r[i].req_sect * 2 * VBLK_SECTOR / r[i].rseg > d->size_max)
				r[i].req_sect /= 2;
	why = do_ranges(c, r, ARRAY_SIZE(r), c->seed);
	if (why)
		return why;
	bprintf("blk: %u ranges written, flushed, verified (seed %lu, "
		"last block %lu)\n", (unsigned)ARRAY_SIZE(r), c->seed, cap - u);

	/* GET_ID. */
	char id[VIRTIO_BLK_ID_BYTES + 1];
	int st = vblk_get_id(d, 0, id);
	size_t len;
	const char *want = cmdline_get("blk.serial", &len);
	bprintf("blk: GET_ID: %s \"%s\"\n", blk_status_name(st), id);
	if (want) {
		if (st != VIRTIO_BLK_S_OK)
			return test_fail("GET_ID: %s", blk_status_name(st));
		if (len > VIRTIO_BLK_ID_BYTES || strlen(id) != len ||
			    memcmp(id, want, len) != 0) {
			char w[VIRTIO_BLK_ID_BYTES + 1];
			size_t n = len < VIRTIO_BLK_ID_BYTES ? len : VIRTIO_BLK_ID_BYTES;
			memcpy(w, want, n);
			w[n] = '\0';
			return test_fail("GET_ID \"%s\", blk.serial wants \"%s\"",
					 id, w);
		}
	}

	/* A write straddling the end must fail, all of it. */
	uint8_t *buf = c->arena;
	memset(buf, 0x5c, 2 * bs);
	st = vblk_rw(d, 0, VIRTIO_BLK_T_OUT, cap - u, buf, 2 * bs, 2);
	bprintf("blk: write of 2 blocks at sector %lu (last block + 1): %s\n",
		cap - u, blk_status_name(st));
	if (st != VIRTIO_BLK_S_IOERR)
		return test_fail("write beyond capacity: %s, want IOERR",
				 blk_status_name(st));
	st = vblk_rw(d, 0, VIRTIO_BLK_T_IN, cap, buf, bs, 1);
	if (st != VIRTIO_BLK_S_IOERR)
		return test_fail("read at capacity: %s, want IOERR",
				 blk_status_name(st));
	why = blk_verify(c, 0, cap - u, u, 1, c->seed, buf);
	if (why)
		return test_fail("last block after the rejected write: %s", why);

	/* Discard, then write-zeroes over part of the middle range. */
	if (vblk_has(d, VIRTIO_BLK_F_DISCARD)) {
		uint32_t n = 256;
		if (d->max_discard_sectors && n > d->max_discard_sectors)
			n = d->max_discard_sectors / u * u;
		st = vblk_dwz(d, 0, VIRTIO_BLK_T_DISCARD, mid, n, 0);
		bprintf("blk: discard sector %lu +%u: %s (max %u sectors, %u segs, "
			"align %u)\n", mid, n, blk_status_name(st),
			d->max_discard_sectors, d->max_discard_seg, d->discard_align);
		if (st != VIRTIO_BLK_S_OK)
			return test_fail("discard: %s", blk_status_name(st));
		/* Content after a discard is unspecified; rewrite it. */
		why = blk_write(c, 0, mid, n, 1, c->seed, buf);
		if (why)
			return why;
	}
	if (vblk_has(d, VIRTIO_BLK_F_WRITE_ZEROES)) {
		for (uint32_t unmap = 0; unmap <= (d->wz_may_unmap ? 1u : 0u); unmap++) {
			uint64_t s = mid + 256 * unmap;
			uint32_t n = 256;
			if (d->max_wz_sectors && n > d->max_wz_sectors)
				n = d->max_wz_sectors / u * u;
			st = vblk_dwz(d, 0, VIRTIO_BLK_T_WRITE_ZEROES, s, n, unmap);
			bprintf("blk: write-zeroes sector %lu +%u unmap=%u: %s\n",
				s, n, unmap, blk_status_name(st));
			if (st != VIRTIO_BLK_S_OK)
				return test_fail("write-zeroes: %s", blk_status_name(st));
			memset(buf, 0xa5, (size_t)(n + 2 * u) * VBLK_SECTOR);
			st = vblk_rw(d, 0, VIRTIO_BLK_T_IN, s - u, buf,
				     (n + 2 * u) * VBLK_SECTOR, 4);
			if (st != VIRTIO_BLK_S_OK)
				return test_fail("read after write-zeroes: %s",
						 blk_status_name(st));
			c->bytes_read += (uint64_t)(n + 2 * u) * VBLK_SECTOR;
			if (!blk_is_zero(buf + bs, n * VBLK_SECTOR))
				return "write-zeroes range does not read back as zeros";
			/* The next block keeps its data. */
			why = blk_check(buf + bs + n * VBLK_SECTOR, s + n, u, c->seed);
			if (why)
				return test_fail("block after write-zeroes: %s", why);
		}
	}
	return NULL;
}

const char *test_blk(void)
{
	return blk_run("blk", 1, blk_body);
}
