/*
 * blkbad: hostile requests a correct back end must reject, and keep serving
 * after.  Each case builds its descriptor chain by hand on queue 0, waits a
 * bounded time (BLK_HOSTILE_WAIT) and records the outcome; a malformed
 * chain without a usable status byte may legitimately never complete (its
 * descriptors are then never reused).  After every case a normal write +
 * read-back must succeed: that is the real check.  A case "fails" if the
 * device accepted it (status OK where it must not), wrote where it must not,
 * answered with a status the spec rules out, or stopped serving.
 */
#include "blk_common.h"
#include "printf.h"
#include "tests.h"
#include "util.h"

#define A_OK (1u << 0)
#define A_IOERR (1u << 1)
#define A_UNSUPP (1u << 2)
#define A_NONE (1u << 3)     /* no completion */
#define A_NOSTATUS (1u << 4) /* completed, status byte untouched */
#define A_REJECT (A_IOERR | A_UNSUPP | A_NONE | A_NOSTATUS)

/* Descriptor address placeholders. */
#define AD_HDR 1
#define AD_STATUS 2
#define AD_DATA 3
#define AD_FAR 0x7ff000000000ULL /* far outside guest RAM */
#define AD_RAM_END 4             /* straddles the end of the arena's RAM */
#define AD_HOLE 0xfd000000ULL    /* MMIO hole: not RAM */

#define NX_END (-1)
#define NX_RAW(v) (1000 + (v)) /* literal `next` value, NEXT flag set */
#define NX_QSIZE (-2)          /* literal next = queue size */

#define MAXD 20
#define GUARD 8192 /* bytes of the data area watched by `guard_from` */

struct dspec {
	uint64_t addr;
	uint32_t len; /* 0: block size */
	uint16_t flags;
	int next;
};

struct bad_case {
	const char *name;
	uint32_t type;
	int sector; /* 0: scratch; 1: capacity + far; 2: 2^64 - 256; 3: +1 */
	unsigned allowed;
	uint32_t guard_from; /* data bytes from here on must stay untouched */
	unsigned nd;
	struct dspec d[MAXD];
};

#define W VRING_DESC_F_WRITE
#define HDR(n) { AD_HDR, 16, 0, (n) }
#define STS { AD_STATUS, 1, W, NX_END }
#define NOGUARD 0xffffffffu

static const struct bad_case cases[] = {
	{ "read into address far outside RAM", VIRTIO_BLK_T_IN, 0, A_REJECT,
	  NOGUARD, 3, { HDR(1), { AD_FAR, 0, W, 2 }, STS } },
	{ "write from the MMIO hole (not RAM)", VIRTIO_BLK_T_OUT, 0, A_REJECT,
	  NOGUARD, 3, { HDR(1), { AD_HOLE, 0, 0, 2 }, STS } },
	{ "write from a buffer straddling the end of RAM", VIRTIO_BLK_T_OUT, 0,
	  A_REJECT, NOGUARD, 3, { HDR(1), { AD_RAM_END, 0, 0, 2 }, STS } },
	{ "header far outside RAM", VIRTIO_BLK_T_IN, 0, A_REJECT, NOGUARD, 3,
	  { { AD_FAR, 16, 0, 1 }, { AD_DATA, 0, W, 2 }, STS } },
	{ "descriptor loop (data -> header)", VIRTIO_BLK_T_IN, 0,
	  A_NONE | A_NOSTATUS, NOGUARD, 2, { HDR(1), { AD_DATA, 0, W, 0 } } },
	{ "descriptor self-loop", VIRTIO_BLK_T_OUT, 0, A_NONE | A_NOSTATUS,
	  NOGUARD, 2, { HDR(1), { AD_DATA, 0, 0, 1 } } },
	{ "chain longer than the queue (cycle of 16)", VIRTIO_BLK_T_OUT, 0,
	  A_NONE | A_NOSTATUS, NOGUARD, 17,
	  { HDR(1), { AD_DATA, 512, 0, 2 }, { AD_DATA, 512, 0, 3 },
	    { AD_DATA, 512, 0, 4 }, { AD_DATA, 512, 0, 5 },
	    { AD_DATA, 512, 0, 6 }, { AD_DATA, 512, 0, 7 },
	    { AD_DATA, 512, 0, 8 }, { AD_DATA, 512, 0, 9 },
	    { AD_DATA, 512, 0, 10 }, { AD_DATA, 512, 0, 11 },
	    { AD_DATA, 512, 0, 12 }, { AD_DATA, 512, 0, 13 },
	    { AD_DATA, 512, 0, 14 }, { AD_DATA, 512, 0, 15 },
	    { AD_DATA, 512, 0, 16 }, { AD_DATA, 512, 0, 1 } } },
	{ "next index = queue size", VIRTIO_BLK_T_IN, 0, A_NONE | A_NOSTATUS,
	  NOGUARD, 2, { HDR(1), { AD_DATA, 0, W, NX_QSIZE } } },
	{ "next index 0xfff0", VIRTIO_BLK_T_IN, 0, A_NONE | A_NOSTATUS, NOGUARD,
	  2, { HDR(1), { AD_DATA, 0, W, NX_RAW(0xfff0) } } },
	{ "status byte in a read-only descriptor", VIRTIO_BLK_T_IN, 0,
	  A_NONE | A_NOSTATUS, NOGUARD, 3,
	  { HDR(1), { AD_DATA, 0, W, 2 }, { AD_STATUS, 1, 0, NX_END } } },
	{ "write whose data descriptor is device-writable", VIRTIO_BLK_T_OUT, 0,
	  A_REJECT, NOGUARD, 3, { HDR(1), { AD_DATA, 0, W, 2 }, STS } },
	{ "read into a read-only data descriptor", VIRTIO_BLK_T_IN, 0, A_REJECT,
	  0, 3, { HDR(1), { AD_DATA, 0, 0, 2 }, STS } },
	{ "header of 8 bytes", VIRTIO_BLK_T_IN, 0, A_REJECT, NOGUARD, 3,
	  { { AD_HDR, 8, 0, 1 }, { AD_DATA, 0, W, 2 }, STS } },
	{ "header of 8 bytes, alone with the status", VIRTIO_BLK_T_OUT, 0,
	  A_REJECT, NOGUARD, 2, { { AD_HDR, 8, 0, 1 }, STS } },
	{ "status descriptor of 0 bytes", VIRTIO_BLK_T_IN, 0,
	  A_NONE | A_NOSTATUS, 0, 3,
	  { HDR(1), { AD_DATA, 0, W, 2 }, { AD_STATUS, 0, W, NX_END } } },
	{ "unknown request type 0x55", 0x55, 0, A_UNSUPP, NOGUARD, 3,
	  { HDR(1), { AD_DATA, 0, W, 2 }, STS } },
	{ "read beyond capacity", VIRTIO_BLK_T_IN, 1, A_IOERR, NOGUARD, 3,
	  { HDR(1), { AD_DATA, 0, W, 2 }, STS } },
	{ "write beyond capacity", VIRTIO_BLK_T_OUT, 1, A_IOERR, NOGUARD, 3,
	  { HDR(1), { AD_DATA, 0, 0, 2 }, STS } },
	{ "read at sector 2^64-256 (offset overflow)", VIRTIO_BLK_T_IN, 2,
	  A_IOERR, NOGUARD, 3, { HDR(1), { AD_DATA, 0, W, 2 }, STS } },
	{ "write of 100 bytes (not a sector multiple)", VIRTIO_BLK_T_OUT, 0,
	  A_IOERR | A_UNSUPP, NOGUARD, 3, { HDR(1), { AD_DATA, 100, 0, 2 }, STS } },
	{ "read of 512 bytes (below blk_size)", VIRTIO_BLK_T_IN, 0,
	  A_IOERR | A_UNSUPP | A_OK, NOGUARD, 3,
	  { HDR(1), { AD_DATA, 512, W, 2 }, STS } },
	{ "write of one block at a sector not blk_size aligned", VIRTIO_BLK_T_OUT,
	  3, A_IOERR | A_UNSUPP | A_OK, NOGUARD, 3,
	  { HDR(1), { AD_DATA, 0, 0, 2 }, STS } },
	{ "GET_ID into a 4-byte buffer", VIRTIO_BLK_T_GET_ID, 0,
	  A_OK | A_IOERR | A_UNSUPP, 4, 3, { HDR(1), { AD_DATA, 4, W, 2 }, STS } },
	{ "flush with a data descriptor", VIRTIO_BLK_T_FLUSH, 0,
	  A_OK | A_IOERR | A_UNSUPP, 0, 3, { HDR(1), { AD_DATA, 0, W, 2 }, STS } },
};

#define SCRATCH_SECTOR 4096 /* 2 MiB in: the hostile writes' target */
#define CHECK_SECTOR 8192   /* 4 MiB in: the follow-up checks */

static const char *outcome(int st, char *buf, size_t n, uint32_t len)
{
	if (st >= 0 && st <= 2)
		ksnprintf(buf, n, "status %s, used.len %u", blk_status_name(st), len);
	else if (st >= 0)
		ksnprintf(buf, n, "bogus status %d, used.len %u", st, len);
	else if (st == VBLK_NOSTATUS)
		ksnprintf(buf, n, "completed without writing the status, used.len %u",
			  len);
	else
		ksnprintf(buf, n, "no completion (abandoned)");
	return buf;
}

static unsigned outcome_bit(int st)
{
	switch (st) {
	case VIRTIO_BLK_S_OK: return A_OK;
	case VIRTIO_BLK_S_IOERR: return A_IOERR;
	case VIRTIO_BLK_S_UNSUPP: return A_UNSUPP;
	case VBLK_TIMEOUT: return A_NONE;
	case VBLK_NOSTATUS: return A_NOSTATUS;
	default: return 0;
	}
}

static const char *run_case(struct blk_ctx *c, unsigned idx, bool *bad)
{
	const struct bad_case *k = &cases[idx];
	struct vblk *d = &c->dev;
	struct vblk_queue *q = &d->q[0];
	uint32_t u = blk_unit(c), bs = u * VBLK_SECTOR;
	uint8_t *data = c->arena + (8u << 20) + idx * (GUARD + bs);
	uint16_t ids[MAXD];
	char why[96];

	*bad = false;
	vq_poll(q);
	if (q->nfree < k->nd)
		return test_fail("case %u: out of descriptors (%u free)", idx,
				 q->nfree);
	for (unsigned i = 0; i < k->nd; i++)
		ids[i] = (uint16_t)vq_alloc(q);
	struct vblk_slot *s = &q->slot[ids[0]];
	uint64_t sector = SCRATCH_SECTOR;
	if (k->sector == 1)
		sector = d->capacity + 1000 * u;
	else if (k->sector == 2)
		sector = ~0ULL - 255;
	else if (k->sector == 3)
		sector = SCRATCH_SECTOR + 1;
	s->hdr = (struct virtio_blk_outhdr){ k->type, 0, sector };
	s->status = 0xff;
	memset(data, 0x3c, GUARD + bs);
	for (unsigned i = 0; i < k->nd; i++) {
		const struct dspec *x = &k->d[i];
		struct vring_desc *v = &q->desc[ids[i]];
		uint32_t len = x->len ? x->len : bs;
		v->addr = x->addr == AD_HDR ? (uintptr_t)&s->hdr :
			  x->addr == AD_STATUS ? (uintptr_t)&s->status :
			  x->addr == AD_DATA ? (uintptr_t)data :
			  x->addr == AD_RAM_END ? c->ram_end - bs / 2 : x->addr;
		if (x->addr == AD_DATA && k->type == VIRTIO_BLK_T_OUT)
			blk_fill(data, sector, len / VBLK_SECTOR, c->seed);
		v->len = len;
		v->flags = x->flags;
		if (x->next == NX_END) {
			v->next = 0;
		} else {
			v->flags |= VRING_DESC_F_NEXT;
			v->next = x->next == NX_QSIZE ? q->size :
				  x->next >= 1000 ? (uint16_t)(x->next - 1000) :
						    ids[x->next];
		}
	}
	struct virtio_blk_outhdr hdr_sent = s->hdr;
	vq_post(q, ids, k->nd);
	vq_kick(q);
	int st = vq_wait(q, ids[0], BLK_HOSTILE_WAIT);
	uint32_t used_len = q->used_len[ids[0]];
	unsigned bit = outcome_bit(st);
	bool ok = (bit & k->allowed) != 0;
	const char *extra = "";
	if (k->guard_from != NOGUARD) {
		for (uint32_t i = k->guard_from; i < GUARD + bs; i++)
			if (data[i] != 0x3c) {
				ok = false;
				extra = test_fail(" -- device wrote data byte %u", i);
				break;
			}
	}
	if (k->d[k->nd - 1].addr == AD_STATUS &&
	    !(k->d[k->nd - 1].flags & VRING_DESC_F_WRITE) && s->status != 0xff) {
		ok = false;
		extra = " -- device wrote the read-only status byte";
	}
	/* The header is device-readable: any change is a stray write (e.g. a
	 * "status byte" taken from just before a 0-byte descriptor). */
	if (memcmp((const void *)&s->hdr, &hdr_sent, sizeof(hdr_sent)) != 0) {
		const uint8_t *a = (const void *)&s->hdr, *b = (const void *)&hdr_sent;
		unsigned i = 0;
		while (i < sizeof(hdr_sent) && a[i] == b[i])
			i++;
		ok = false;
		extra = test_fail(" -- device wrote the read-only header "
				  "(byte %u: 0x%02x -> 0x%02x)", i, b[i], a[i]);
	}
	/* test_fail's buffer may hold `extra`: print before reusing it. */
	bprintf("blkbad: %2u %-48s %s%s%s\n", idx, k->name,
		outcome(st, why, sizeof(why), used_len), extra,
		ok ? "" : "  <-- WRONG");
	*bad = !ok;

	/* The real check: the device still serves normal requests. */
	uint64_t cs = CHECK_SECTOR + (uint64_t)idx * 2 * u;
	uint64_t seed = c->seed + 1000 + idx;
	const char *e = blk_write(c, 0, cs, 2 * u, 2, seed, c->arena);
	if (!e)
		e = blk_verify(c, 0, cs, 2 * u, 2, seed, c->arena);
	if (e)
		return test_fail("after case %u (%s) the device stopped serving: %s",
				 idx, k->name, e);
	return NULL;
}

static const char *blkbad_body(struct blk_ctx *c)
{
	struct vblk *d = &c->dev;
	const char *why = blk_open(c, "blkbad");
	unsigned wrong = 0, none = 0;

	if (why)
		return why;
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		bool bad;
		why = run_case(c, i, &bad);
		if (why)
			return why;
		wrong += bad;
	}
	for (unsigned i = 0; i < d->q[0].size; i++)
		if (d->q[0].inflight[i] && d->q[0].abandoned[i])
			none++;
	/* Every queue still works. */
	for (unsigned q = 0; q < d->num_queues; q++) {
		why = blk_write(c, q, CHECK_SECTOR, blk_unit(c), 1, c->seed + q,
				c->arena);
		if (!why)
			why = blk_verify(c, q, CHECK_SECTOR, blk_unit(c), 1,
					 c->seed + q, c->arena);
		if (why)
			return test_fail("final check on q%u: %s", q, why);
	}
	bprintf("blkbad: %u cases, %u answered wrongly, %u never completed, "
		"%u late completions, %u bogus used entries, %u descriptors lost\n",
		(unsigned)ARRAY_SIZE(cases), wrong, none, d->q[0].late,
		d->q[0].bogus_used, d->q[0].size - d->q[0].nfree);
	if (d->q[0].bogus_used)
		return test_fail("%u bogus used-ring entries", d->q[0].bogus_used);
	if (wrong)
		return test_fail("%u hostile request(s) answered wrongly", wrong);
	return NULL;
}

const char *test_blkbad(void)
{
	return blk_run("blkbad", 4, blkbad_body);
}
