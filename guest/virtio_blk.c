#include "virtio_blk.h"

#include <stddef.h>

#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_pci.h>

#include "io.h"
#include "util.h"

#define FREE 0xffff /* owner[] of a descriptor no chain holds */

/* Offsets into the device configuration (virtio 1.x, 5.2.4). */
#define BC(field) offsetof(struct virtio_blk_config, field)

#define WAIT_CYCLES 30000000000ULL /* ~10 s at 3 GHz: "hung" */

#define barrier() __asm__ volatile("" ::: "memory")

struct vq_mem {
	struct vring_desc desc[VBLK_QSIZE] __attribute__((aligned(4096)));
	/* struct vring_avail and struct vring_used (flexible rings) */
	uint8_t avail[4096] __attribute__((aligned(4096)));
	uint8_t used[4096] __attribute__((aligned(4096)));
	struct vblk_slot slot[VBLK_QSIZE];
};

static struct vq_mem vq_mem[VBLK_MAX_QUEUES] __attribute__((aligned(4096)));

/* MMIO helpers, bounds-checked against the capability's window. */
static bool in_win(const struct virtio_pci_region *r, uint32_t off, uint32_t w)
{
	return r->present && (uint64_t)off + w <= r->length;
}

static uint8_t rd8(const struct virtio_pci_region *r, uint32_t off)
{
	if (!in_win(r, off, 1))
		return 0;
	return *(volatile uint8_t *)(uintptr_t)(r->addr + off);
}

static uint16_t rd16(const struct virtio_pci_region *r, uint32_t off)
{
	if (!in_win(r, off, 2))
		return 0;
	return *(volatile uint16_t *)(uintptr_t)(r->addr + off);
}

static uint32_t rd32(const struct virtio_pci_region *r, uint32_t off)
{
	if (!in_win(r, off, 4))
		return 0;
	return *(volatile uint32_t *)(uintptr_t)(r->addr + off);
}

static void wr8(const struct virtio_pci_region *r, uint32_t off, uint8_t v)
{
	if (in_win(r, off, 1))
		*(volatile uint8_t *)(uintptr_t)(r->addr + off) = v;
}

static void wr16(const struct virtio_pci_region *r, uint32_t off, uint16_t v)
{
	if (in_win(r, off, 2))
		*(volatile uint16_t *)(uintptr_t)(r->addr + off) = v;
}

static void wr32(const struct virtio_pci_region *r, uint32_t off, uint32_t v)
{
	if (in_win(r, off, 4))
		*(volatile uint32_t *)(uintptr_t)(r->addr + off) = v;
}

static void wr64(const struct virtio_pci_region *r, uint32_t off, uint64_t v)
{
	wr32(r, off, (uint32_t)v);
	wr32(r, off + 4, (uint32_t)(v >> 32));
}

const char *vblk_probe(struct vblk *d, unsigned index)
{
	memset(d, 0, sizeof(*d));
	return virtio_pci_probe(PCI_DEVICE_VIRTIO_BLK, index, &d->pci);
}

uint8_t vblk_status(struct vblk *d)
{
	return rd8(&d->pci.common, VIRTIO_PCI_COMMON_STATUS);
}

void vblk_reset(struct vblk *d)
{
	wr8(&d->pci.common, VIRTIO_PCI_COMMON_STATUS, 0);
	/* The reset completes when status reads back 0 (4.1.4.3.2). */
	uint64_t t0 = rdtsc();
	while (vblk_status(d) != 0 && rdtsc() - t0 < WAIT_CYCLES)
		cpu_relax();
}

/* Read the device config consistently (config_generation unchanged). */
static void read_config(struct vblk *d)
{
	const struct virtio_pci_region *c = &d->pci.device;
	for (int tries = 0; tries < 100; tries++) {
		uint8_t gen = rd8(&d->pci.common, VIRTIO_PCI_COMMON_CFGGENERATION);
		d->capacity = rd32(c, BC(capacity)) |
			      (uint64_t)rd32(c, BC(capacity) + 4) << 32;
		d->size_max = vblk_has(d, VIRTIO_BLK_F_SIZE_MAX) ? rd32(c, BC(size_max)) : 0;
		d->seg_max = vblk_has(d, VIRTIO_BLK_F_SEG_MAX) ? rd32(c, BC(seg_max)) : 0;
		d->blk_size = vblk_has(d, VIRTIO_BLK_F_BLK_SIZE) ? rd32(c, BC(blk_size)) : 0;
		d->dev_queues = vblk_has(d, VIRTIO_BLK_F_MQ) ? rd16(c, BC(num_queues)) : 1;
		if (vblk_has(d, VIRTIO_BLK_F_DISCARD)) {
			d->max_discard_sectors = rd32(c, BC(max_discard_sectors));
			d->max_discard_seg = rd32(c, BC(max_discard_seg));
			d->discard_align = rd32(c, BC(discard_sector_alignment));
		}
		if (vblk_has(d, VIRTIO_BLK_F_WRITE_ZEROES)) {
			d->max_wz_sectors = rd32(c, BC(max_write_zeroes_sectors));
			d->max_wz_seg = rd32(c, BC(max_write_zeroes_seg));
			d->wz_may_unmap = rd8(c, BC(write_zeroes_may_unmap));
		}
		if (rd8(&d->pci.common, VIRTIO_PCI_COMMON_CFGGENERATION) == gen)
			break;
	}
}

static const char *setup_queue(struct vblk *d, unsigned i)
{
	const struct virtio_pci_region *cc = &d->pci.common;
	struct vblk_queue *q = &d->q[i];
	struct vq_mem *m = &vq_mem[i];

	wr16(cc, VIRTIO_PCI_COMMON_Q_SELECT, (uint16_t)i);
	uint16_t max = rd16(cc, VIRTIO_PCI_COMMON_Q_SIZE);
	if (max == 0)
		return "queue not available (queue_size 0)";
	uint16_t size = max < VBLK_QSIZE ? max : VBLK_QSIZE;
	while (size & (size - 1)) /* split rings: a power of 2 */
		size &= (uint16_t)(size - 1);
	wr16(cc, VIRTIO_PCI_COMMON_Q_SIZE, size);

	memset(m, 0, sizeof(*m));
	memset(q, 0, sizeof(*q));
	q->index = (uint16_t)i;
	q->size = size;
	q->desc = m->desc;
	q->avail = (struct vring_avail *)m->avail;
	q->used = (struct vring_used *)m->used;
	q->slot = m->slot;
	q->nfree = size;
	for (unsigned k = 0; k < VBLK_QSIZE; k++)
		q->owner[k] = FREE;
	uint16_t vector = d->irq && i == 0 ? 0 : VIRTIO_MSI_NO_VECTOR;
	q->avail->flags = vector == VIRTIO_MSI_NO_VECTOR ? VRING_AVAIL_F_NO_INTERRUPT : 0;

	wr16(cc, VIRTIO_PCI_COMMON_Q_MSIX, vector);
	if (rd16(cc, VIRTIO_PCI_COMMON_Q_MSIX) != vector)
		return vector == VIRTIO_MSI_NO_VECTOR ?
			       "queue_msix_vector does not read back VIRTIO_MSI_NO_VECTOR" :
			       "queue_msix_vector does not read back vector 0";
	wr64(cc, VIRTIO_PCI_COMMON_Q_DESCLO, (uintptr_t)m->desc);
	wr64(cc, VIRTIO_PCI_COMMON_Q_AVAILLO, (uintptr_t)m->avail);
	wr64(cc, VIRTIO_PCI_COMMON_Q_USEDLO, (uintptr_t)m->used);

	uint64_t noff = (uint64_t)rd16(cc, VIRTIO_PCI_COMMON_Q_NOFF) * d->pci.notify_mult;
	if (noff + 2 > d->pci.notify.length)
		return "queue notify address outside the notify window";
	q->notify = (volatile uint16_t *)(uintptr_t)(d->pci.notify.addr + noff);
	wr16(cc, VIRTIO_PCI_COMMON_Q_ENABLE, 1);
	return NULL;
}

const char *vblk_init(struct vblk *d, unsigned want_queues)
{
	const struct virtio_pci_region *cc = &d->pci.common;
	static const unsigned wanted[] = {
		VIRTIO_BLK_F_SIZE_MAX, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_RO,
		VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_MQ,
		VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES,
		VIRTIO_F_VERSION_1,
	};

	vblk_reset(d);
	if (vblk_status(d) != 0)
		return "device did not reset (status stays nonzero)";
	wr8(cc, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr8(cc, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);

	wr32(cc, VIRTIO_PCI_COMMON_DFSELECT, 0);
	uint64_t f = rd32(cc, VIRTIO_PCI_COMMON_DF);
	wr32(cc, VIRTIO_PCI_COMMON_DFSELECT, 1);
	f |= (uint64_t)rd32(cc, VIRTIO_PCI_COMMON_DF) << 32;
	d->offered = f;
	if (!((f >> VIRTIO_F_VERSION_1) & 1)) {
		wr8(cc, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_FAILED);
		return "device does not offer VIRTIO_F_VERSION_1";
	}
	uint64_t want = 0;
	for (unsigned k = 0; k < ARRAY_SIZE(wanted); k++)
		want |= 1ULL << wanted[k];
	d->features = f & want;
	wr32(cc, VIRTIO_PCI_COMMON_GFSELECT, 0);
	wr32(cc, VIRTIO_PCI_COMMON_GF, (uint32_t)d->features);
	wr32(cc, VIRTIO_PCI_COMMON_GFSELECT, 1);
	wr32(cc, VIRTIO_PCI_COMMON_GF, (uint32_t)(d->features >> 32));
	wr8(cc, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(vblk_status(d) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		wr8(cc, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_FAILED);
		return "device cleared FEATURES_OK";
	}

	read_config(d);
	if (d->blk_size && (d->blk_size < VBLK_SECTOR ||
			    (d->blk_size & (d->blk_size - 1))))
		return "device blk_size is not a power of 2 >= 512";
	wr16(cc, VIRTIO_PCI_COMMON_MSIX, VIRTIO_MSI_NO_VECTOR);

	unsigned nq = d->dev_queues ? d->dev_queues : 1;
	uint16_t hw_nq = rd16(cc, VIRTIO_PCI_COMMON_NUMQ);
	if (nq > hw_nq)
		nq = hw_nq;
	if (nq > want_queues)
		nq = want_queues;
	if (nq > VBLK_MAX_QUEUES)
		nq = VBLK_MAX_QUEUES;
	if (nq == 0)
		return "device has no queues";
	for (unsigned i = 0; i < nq; i++) {
		const char *why = setup_queue(d, i);
		if (why) {
			wr8(cc, VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_FAILED);
			return why;
		}
	}
	d->num_queues = (uint16_t)nq;
	wr8(cc, VIRTIO_PCI_COMMON_STATUS,
	    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	uint8_t st = vblk_status(d);
	if (st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED) || !(st & VIRTIO_CONFIG_S_DRIVER_OK))
		return "device status bad after DRIVER_OK";
	return NULL;
}

int vq_alloc(struct vblk_queue *q)
{
	if (q->nfree == 0)
		return -1;
	for (unsigned k = 0; k < q->size; k++) {
		if (q->owner[k] == FREE) {
			q->owner[k] = (uint16_t)k; /* provisional */
			q->nfree--;
			return (int)k;
		}
	}
	return -1;
}

void vq_post(struct vblk_queue *q, const uint16_t *descs, unsigned n)
{
	uint16_t head = descs[0];

	for (unsigned k = 0; k < n; k++)
		q->owner[descs[k]] = head;
	q->inflight[head] = true;
	q->done[head] = false;
	q->abandoned[head] = false;
	q->used_len[head] = 0;
	q->avail->ring[q->avail_idx % q->size] = head;
	barrier(); /* x86 keeps stores in order; stop the compiler only */
	q->avail_idx++;
	*(volatile uint16_t *)&q->avail->idx = q->avail_idx;
}

void vq_kick(struct vblk_queue *q)
{
	barrier();
	*q->notify = q->index;
}

static void release(struct vblk_queue *q, uint16_t head)
{
	for (unsigned k = 0; k < q->size; k++) {
		if (q->owner[k] == head) {
			q->owner[k] = FREE;
			q->nfree++;
		}
	}
	q->inflight[head] = false;
	q->done[head] = false;
}

void vq_poll(struct vblk_queue *q)
{
	uint16_t used_idx = *(volatile uint16_t *)&q->used->idx;

	if ((uint16_t)(used_idx - q->last_used) > q->size) {
		/* The device claims more completions than could be in flight. */
		q->bogus_used++;
		q->last_used = used_idx;
		return;
	}
	while (q->last_used != used_idx) {
		barrier();
		struct vring_used_elem e =
			((volatile struct vring_used_elem *)q->used->ring)
				[q->last_used % q->size];
		q->last_used++;
		if (e.id >= q->size || !q->inflight[e.id] || q->done[e.id]) {
			q->bogus_used++;
			continue;
		}
		if (q->abandoned[e.id]) {
			q->late++;
			release(q, (uint16_t)e.id);
			continue;
		}
		q->used_len[e.id] = e.len;
		q->done[e.id] = true;
	}
}

int vq_result(struct vblk_queue *q, uint16_t head)
{
	uint8_t st = q->slot[head].status;

	release(q, head);
	return st == 0xff ? VBLK_NOSTATUS : st;
}

int vq_wait(struct vblk_queue *q, uint16_t head, uint64_t cycles)
{
	uint64_t t0 = rdtsc();

	for (;;) {
		vq_poll(q);
		if (q->done[head])
			return vq_result(q, head);
		if (rdtsc() - t0 > cycles)
			break;
		cpu_relax();
	}
	q->abandoned[head] = true;
	return VBLK_TIMEOUT;
}

int vblk_submit(struct vblk_queue *q, uint32_t type, uint64_t sector,
		const struct vblk_seg *segs, unsigned nseg)
{
	uint16_t ids[VBLK_QSIZE];
	unsigned n = nseg + 2;

	if (n > q->nfree || n > q->size)
		return -1;
	for (unsigned k = 0; k < n; k++)
		ids[k] = (uint16_t)vq_alloc(q);
	struct vblk_slot *s = &q->slot[ids[0]];
	s->hdr.type = type;
	s->hdr.ioprio = 0;
	s->hdr.sector = sector;
	s->status = 0xff;

	struct vring_desc *dsc = q->desc;
	dsc[ids[0]] = (struct vring_desc){ (uintptr_t)&s->hdr, sizeof(s->hdr),
					   VRING_DESC_F_NEXT, ids[1] };
	for (unsigned k = 0; k < nseg; k++)
		dsc[ids[k + 1]] = (struct vring_desc){
			segs[k].addr, segs[k].len,
			(uint16_t)(segs[k].flags | VRING_DESC_F_NEXT), ids[k + 2] };
	dsc[ids[n - 1]] = (struct vring_desc){ (uintptr_t)&s->status, 1,
					       VRING_DESC_F_WRITE, 0 };
	vq_post(q, ids, n);
	return ids[0];
}

static int submit_wait(struct vblk_queue *q, uint32_t type, uint64_t sector,
		       const struct vblk_seg *segs, unsigned nseg)
{
	vq_poll(q);
	int head = vblk_submit(q, type, sector, segs, nseg);
	if (head < 0)
		return VBLK_TIMEOUT;
	vq_kick(q);
	return vq_wait(q, (uint16_t)head, WAIT_CYCLES);
}

int vblk_rw(struct vblk *d, unsigned qi, uint32_t type, uint64_t sector,
	    void *buf, uint32_t len, unsigned nseg)
{
	struct vblk_seg segs[64];
	uint16_t fl = type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0;

	if (nseg == 0)
		nseg = 1;
	if (nseg > ARRAY_SIZE(segs))
		nseg = ARRAY_SIZE(segs);
	/* Equal parts in whole sectors, the remainder in the last one. */
	uint32_t part = len / nseg / VBLK_SECTOR * VBLK_SECTOR;
	if (part == 0) {
		part = len;
		nseg = 1;
	}
	uint64_t a = (uintptr_t)buf;
	for (unsigned k = 0; k < nseg; k++) {
		uint32_t l = k + 1 == nseg ? len - part * k : part;
		segs[k] = (struct vblk_seg){ a, l, fl };
		a += l;
	}
	return submit_wait(&d->q[qi], type, sector, segs, nseg);
}

int vblk_simple(struct vblk *d, unsigned qi, uint32_t type)
{
	return submit_wait(&d->q[qi], type, 0, NULL, 0);
}

int vblk_get_id(struct vblk *d, unsigned qi, char *id)
{
	static char idbuf[VBLK_MAX_QUEUES][VIRTIO_BLK_ID_BYTES];
	char *b = idbuf[qi];

	memset(b, 0, VIRTIO_BLK_ID_BYTES);
	struct vblk_seg seg = { (uintptr_t)b, VIRTIO_BLK_ID_BYTES,
				VRING_DESC_F_WRITE };
	int st = submit_wait(&d->q[qi], VIRTIO_BLK_T_GET_ID, 0, &seg, 1);
	memcpy(id, b, VIRTIO_BLK_ID_BYTES);
	id[VIRTIO_BLK_ID_BYTES] = '\0';
	return st;
}

int vblk_dwz(struct vblk *d, unsigned qi, uint32_t type, uint64_t sector,
	     uint32_t nsect, uint32_t flags)
{
	static struct {
		uint64_t sector;
		uint32_t num_sectors, flags;
	} seg_buf[VBLK_MAX_QUEUES];

	seg_buf[qi].sector = sector;
	seg_buf[qi].num_sectors = nsect;
	seg_buf[qi].flags = flags;
	struct vblk_seg seg = { (uintptr_t)&seg_buf[qi], 16, 0 };
	return submit_wait(&d->q[qi], type, 0, &seg, 1);
}
