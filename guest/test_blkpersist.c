/*
 * blkpersist: data survives a back-end restart or a second guest.
 * `blk.phase=write`: write the (sector, seed) pattern (`blk.seed=N`) over
 * `blk.persist_mib` MiB (default 8) spread over the disk, then flush.
 * `blk.phase=verify`: only read it back and verify.
 */
#include "blk_common.h"
#include "bootinfo.h"
#include "tests.h"
#include "util.h"

#define CHUNK 2048u /* sectors (1 MiB) */
#define REQ 256u    /* sectors per request (128 KiB) */

static bool writing;
static uint64_t mib = 8;

static const char *persist_body(struct blk_ctx *c)
{
	struct vblk *d = &c->dev;
	const char *why = blk_open(c, "blkpersist");
	if (why)
		return why;
	uint64_t chunks = d->capacity / CHUNK;
	if (mib > chunks)
		mib = chunks;
	if (mib == 0)
		return "disk smaller than 1 MiB";
	unsigned nseg = d->seg_max && d->seg_max < 4 ? d->seg_max : 4;
	for (uint64_t i = 0; i < mib; i++) {
		/* Chunk i at an even spread, the last one flush at the end. */
		uint64_t base = mib > 1 ? (chunks - 1) * i / (mib - 1) * CHUNK : 0;
		for (uint32_t o = 0; o < CHUNK; o += REQ) {
			why = writing ? blk_write(c, 0, base + o, REQ, nseg, c->seed,
						  c->arena)
				      : blk_verify(c, 0, base + o, REQ, nseg, c->seed,
						   c->arena);
			if (why)
				return why;
		}
	}
	if (writing && vblk_has(d, VIRTIO_BLK_F_FLUSH)) {
		int st = vblk_simple(d, 0, VIRTIO_BLK_T_FLUSH);
		if (st != VIRTIO_BLK_S_OK)
			return test_fail("flush: %s", blk_status_name(st));
	}
	bprintf("blkpersist: %s %lu MiB, seed %lu\n",
		writing ? "wrote and flushed" : "verified", mib, c->seed);
	return NULL;
}

const char *test_blkpersist(void)
{
	size_t len;
	const char *phase = cmdline_get("blk.phase", &len);

	if (!phase)
		return "blk.phase=write|verify missing";
	if (token_eq(phase, len, "write"))
		writing = true;
	else if (token_eq(phase, len, "verify"))
		writing = false;
	else
		return "blk.phase must be write or verify";
	cmdline_get_u64("blk.persist_mib", &mib);
	return blk_run("blkpersist", 1, persist_body);
}
