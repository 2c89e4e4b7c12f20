/*
 * blkbench: block throughput through the virtio-blk driver, polled, at
 * CPL3.  Not a pass/fail test (it fails only on I/O errors): prints one line
 * per pattern with bytes and elapsed TSC cycles, for a host script to turn
 * into ratios between VMMs run on the same CPU (bench/lab-blk.sh).
 *
 *   seqwrite   bench.mib MiB from sector 0 in 128 KiB requests, + FLUSH
 *   seqread    the same range back
 *   randwrite  bench.rreqs 4 KiB requests at LCG offsets in that range, + FLUSH
 *   randread   the same number of 4 KiB reads at other LCG offsets
 *
 * Options: bench.mib=N (default 32), bench.rreqs=N (default 64 per MiB),
 * bench.qd=N requests kept in flight on queue 0 (default 1, at most 32).
 * Data is not generated or checked inside the timed loops (the blk test
 * does correctness); the arena holds a fixed pattern.
 */
#include "blk_common.h"
#include "bootinfo.h"
#include "io.h"
#include "tests.h"
#include "util.h"

#define SEQ_BYTES (128u << 10)
#define RAND_BYTES 4096u
#define QD_MAX 32
#define STALL_CYCLES 30000000000ULL /* no progress for this long: fail */

struct pattern {
	const char *name;
	uint32_t type;
	uint32_t req_bytes;
	bool random;
	uint64_t nreq;
};

/* TSC frequency from CPUID if the hypervisor or CPU tells it, else 0. */
static uint64_t tsc_khz(void)
{
	uint32_t a, b, c, d;

	cpuid(0x40000000, 0, &a, &b, &c, &d);
	if (a >= 0x40000010 && a < 0x40010000) {
		cpuid(0x40000010, 0, &a, &b, &c, &d);
		if (a)
			return a;
	}
	cpuid(0, 0, &a, &b, &c, &d);
	if (a >= 0x15) {
		uint32_t den, num, hz;
		cpuid(0x15, 0, &den, &num, &hz, &d);
		if (den && num && hz)
			return (uint64_t)hz * num / den / 1000;
	}
	return 0;
}

static uint64_t lcg_next(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static const char *flush(struct vblk *d)
{
	if (!vblk_has(d, VIRTIO_BLK_F_FLUSH))
		return NULL;
	int st = vblk_simple(d, 0, VIRTIO_BLK_T_FLUSH);
	return st == VIRTIO_BLK_S_OK ? NULL :
		test_fail("flush: %s", blk_status_name(st));
}

static const char *run(struct blk_ctx *c, const struct pattern *p,
		       uint64_t region_sect, unsigned qd, uint64_t khz)
{
	struct vblk *d = &c->dev;
	struct vblk_queue *q = &d->q[0];
	uint32_t req_sect = p->req_bytes / VBLK_SECTOR;
	uint64_t nblocks = region_sect / req_sect;
	uint64_t lcg = p->type == VIRTIO_BLK_T_OUT ? 0x1234567ULL : 0x89abcdefULL;
	int head[QD_MAX];
	uint64_t submitted = 0, completed = 0;
	uint16_t flags = p->type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0;

	for (unsigned s = 0; s < qd; s++)
		head[s] = -1;
	uint64_t t0 = rdtsc(), progress = t0;
	while (completed < p->nreq) {
		bool posted = false;
		for (unsigned s = 0; s < qd && submitted < p->nreq; s++) {
			if (head[s] >= 0)
				continue;
			uint64_t blk = p->random ? lcg_next(&lcg) % nblocks :
						   submitted % nblocks;
			struct vblk_seg seg = {
				(uintptr_t)c->arena + (uint64_t)s * p->req_bytes,
				p->req_bytes, flags };
			head[s] = vblk_submit(q, p->type, blk * req_sect, &seg, 1);
			if (head[s] < 0)
				return test_fail("%s: queue full at qd %u", p->name, qd);
			submitted++;
			posted = true;
		}
		if (posted)
			vq_kick(q);
		vq_poll(q);
		for (unsigned s = 0; s < qd; s++) {
			if (head[s] < 0 || !vq_done(q, (uint16_t)head[s]))
				continue;
			int st = vq_result(q, (uint16_t)head[s]);
			if (st != VIRTIO_BLK_S_OK)
				return test_fail("%s: request %lu: %s", p->name,
						 completed, blk_status_name(st));
			head[s] = -1;
			completed++;
			progress = rdtsc();
		}
		if (rdtsc() - progress > STALL_CYCLES)
			return test_fail("%s: no completion (%lu of %lu done)",
					 p->name, completed, p->nreq);
	}
	const char *why = p->type == VIRTIO_BLK_T_OUT ? flush(d) : NULL;
	uint64_t dt = rdtsc() - t0;
	if (why)
		return why;
	uint64_t bytes = p->nreq * p->req_bytes;
	if (p->type == VIRTIO_BLK_T_OUT)
		c->bytes_written += bytes;
	else
		c->bytes_read += bytes;
	/* MB/s only as information (when the TSC frequency is known). */
	uint64_t mbs = khz && dt ? bytes * khz / dt / 1000 : 0;
	bprintf("bench %s bytes=%lu cycles=%lu reqs=%lu qd=%u tsc_khz=%lu mb_s=%lu\n",
		p->name, bytes, dt, p->nreq, qd, khz, mbs);
	return NULL;
}

static const char *blkbench_body(struct blk_ctx *c)
{
	struct vblk *d = &c->dev;
	const char *why = blk_open(c, "blkbench");
	if (why)
		return why;
	uint64_t mib = 32, qd = 1, rreqs;
	cmdline_get_u64("bench.mib", &mib);
	cmdline_get_u64("bench.qd", &qd);
	rreqs = mib * 64;
	cmdline_get_u64("bench.rreqs", &rreqs);
	if (qd < 1)
		qd = 1;
	/* 3 descriptors per request; the arena holds qd 128 KiB buffers. */
	if (qd > QD_MAX)
		qd = QD_MAX;
	if (qd > d->q[0].size / 3)
		qd = d->q[0].size / 3;
	if (d->size_max && d->size_max < SEQ_BYTES)
		return "size_max below 128 KiB: not supported by this benchmark";
	if (vblk_has(d, VIRTIO_BLK_F_RO))
		return "device is read-only";
	if (blk_unit(c) > RAND_BYTES / VBLK_SECTOR)
		return "block size above 4 KiB: not supported by this benchmark";
	uint64_t region = mib * 2048; /* sectors */
	if (region > d->capacity)
		region = d->capacity;
	region = region / (SEQ_BYTES / VBLK_SECTOR) * (SEQ_BYTES / VBLK_SECTOR);
	if (region == 0 || rreqs == 0)
		return "nothing to do (bench.mib or bench.rreqs is 0, or the disk is too small)";

	for (uint32_t s = 0; s < QD_MAX * SEQ_BYTES / VBLK_SECTOR; s += 256)
		blk_fill(c->arena + (uint64_t)s * VBLK_SECTOR, s, 256, c->seed);
	uint64_t khz = tsc_khz();
	bprintf("bench: region %lu MiB, qd %lu, random requests %lu, tsc_khz %lu\n",
		region / 2048, qd, rreqs, khz);
	const struct pattern pats[] = {
		{ "seqwrite", VIRTIO_BLK_T_OUT, SEQ_BYTES, false, region * VBLK_SECTOR / SEQ_BYTES },
		{ "seqread", VIRTIO_BLK_T_IN, SEQ_BYTES, false, region * VBLK_SECTOR / SEQ_BYTES },
		{ "randwrite", VIRTIO_BLK_T_OUT, RAND_BYTES, true, rreqs },
		{ "randread", VIRTIO_BLK_T_IN, RAND_BYTES, true, rreqs },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(pats); i++) {
		why = run(c, &pats[i], region, (unsigned)qd, khz);
		if (why)
			return why;
	}
	if (d->q[0].bogus_used)
		return test_fail("%u bogus used-ring entries", d->q[0].bogus_used);
	return NULL;
}

const char *test_blkbench(void)
{
	return blk_run("blkbench", 1, blkbench_body);
}
