/*
 * blkmq: two virtqueues at once.  Each round posts BATCH writes on every
 * queue (interleaved: q0, q1, q0, ...) before kicking and polling any,
 * then reads everything back the same way and verifies.  Needs MQ with
 * num_queues >= 2.
 */
#include "blk_common.h"
#include "tests.h"
#include "util.h"

#define NQ 2
#define BATCH 8
#define REQ_SECT 128u /* 64 KiB */
#define ROUNDS 4

static const char *post_all(struct blk_ctx *c, uint32_t type, uint64_t base,
			    uint64_t seed, unsigned nseg)
{
	struct vblk *d = &c->dev;
	int head[NQ][BATCH];
	uint8_t *buf = c->arena;

	for (unsigned b = 0; b < BATCH; b++)
		for (unsigned q = 0; q < NQ; q++) {
			unsigned k = b * NQ + q;
			uint64_t sector = base + (uint64_t)k * REQ_SECT;
			uint8_t *p = buf + (size_t)k * REQ_SECT * VBLK_SECTOR;
			struct vblk_seg segs[4];
			uint32_t part = REQ_SECT * VBLK_SECTOR / nseg;
			if (type == VIRTIO_BLK_T_OUT)
				blk_fill(p, sector, REQ_SECT, seed);
			else
				memset(p, 0xa5, REQ_SECT * VBLK_SECTOR);
			for (unsigned s = 0; s < nseg; s++)
				segs[s] = (struct vblk_seg){
					(uintptr_t)p + s * part, part,
					type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0 };
			head[q][b] = vblk_submit(&d->q[q], type, sector, segs, nseg);
			if (head[q][b] < 0)
				return "queue full";
			/* Kick every other request: both queues busy at once. */
			if (b & 1)
				vq_kick(&d->q[q]);
		}
	for (unsigned q = 0; q < NQ; q++)
		vq_kick(&d->q[q]);
	for (unsigned b = 0; b < BATCH; b++)
		for (unsigned q = 0; q < NQ; q++) {
			int st = vq_wait(&d->q[q], (uint16_t)head[q][b],
					 30000000000ULL);
			if (st != VIRTIO_BLK_S_OK)
				return test_fail("%s q%u #%u: %s",
						 type == VIRTIO_BLK_T_OUT ? "write" : "read",
						 q, b, blk_status_name(st));
		}
	uint64_t bytes = (uint64_t)NQ * BATCH * REQ_SECT * VBLK_SECTOR;
	if (type == VIRTIO_BLK_T_OUT)
		c->bytes_written += bytes;
	else
		c->bytes_read += bytes;
	if (type == VIRTIO_BLK_T_IN)
		for (unsigned k = 0; k < NQ * BATCH; k++) {
			const char *why = blk_check(
				buf + (size_t)k * REQ_SECT * VBLK_SECTOR,
				base + (uint64_t)k * REQ_SECT, REQ_SECT, seed);
			if (why)
				return why;
		}
	return NULL;
}

static const char *blkmq_body(struct blk_ctx *c)
{
	struct vblk *d = &c->dev;
	const char *why = blk_open(c, "blkmq");
	if (why)
		return why;
	if (d->num_queues < NQ)
		return test_fail("device has %u queue(s), need %u (MQ %s)",
				 d->num_queues, NQ,
				 vblk_has(d, VIRTIO_BLK_F_MQ) ? "on" : "off");
	unsigned nseg = d->seg_max && d->seg_max < 4 ? d->seg_max : 4;
	uint64_t span = (uint64_t)NQ * BATCH * REQ_SECT;
	for (unsigned r = 0; r < ROUNDS; r++) {
		/* Spread the rounds over the disk, block aligned. */
		uint64_t base = (d->capacity - span) / ROUNDS * r;
		base = base / blk_unit(c) * blk_unit(c);
		uint64_t seed = c->seed * 31 + r;
		why = post_all(c, VIRTIO_BLK_T_OUT, base, seed, nseg);
		if (!why && vblk_has(d, VIRTIO_BLK_F_FLUSH)) {
			int st = vblk_simple(d, 1, VIRTIO_BLK_T_FLUSH);
			if (st != VIRTIO_BLK_S_OK)
				why = test_fail("flush on q1: %s", blk_status_name(st));
		}
		if (!why)
			why = post_all(c, VIRTIO_BLK_T_IN, base, seed, nseg);
		if (why)
			return test_fail("round %u: %s", r, why);
	}
	for (unsigned q = 0; q < NQ; q++)
		if (d->q[q].bogus_used)
			return test_fail("q%u: %u bogus used-ring entries", q,
					 d->q[q].bogus_used);
	bprintf("blkmq: %u rounds x %u queues x %u requests of %u KiB verified\n",
		ROUNDS, NQ, BATCH, REQ_SECT / 2);
	return NULL;
}

const char *test_blkmq(void)
{
	return blk_run("blkmq", NQ, blkmq_body);
}
