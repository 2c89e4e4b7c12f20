/*
 * virtio-blk over modern virtio-pci (virtio 1.x), split virtqueues, polled
 * (no interrupts: every MSI-X vector is VIRTIO_MSI_NO_VECTOR, unless a test
 * sets vblk.irq: then queue 0 uses MSI-X vector 0 and asks for interrupts,
 * still polling the used ring).
 *
 * vblk_probe() touches PCI config space and must run at CPL0; everything
 * else only does MMIO on the BAR and ordinary memory accesses and runs at
 * CPL3 as well (all guest pages, BARs included, are user-accessible).
 */
#ifndef GUEST_VIRTIO_BLK_H
#define GUEST_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "pci.h"

#define VBLK_SECTOR 512u
#define VBLK_MAX_QUEUES 4
#define VBLK_QSIZE 128 /* at most; the device's maximum may be smaller */

/* Result of waiting for a request. */
#define VBLK_TIMEOUT (-1)   /* no completion within the time limit */
#define VBLK_NOSTATUS (-2)  /* completed, status byte never written */

/* Per descriptor-chain head: the request's device-visible header and
 * status byte. */
struct vblk_slot {
	struct virtio_blk_outhdr hdr;
	volatile uint8_t status;
	uint8_t pad[15];
};

struct vblk_queue {
	uint16_t index, size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	volatile uint16_t *notify;
	uint16_t avail_idx, last_used;
	unsigned nfree;
	uint16_t owner[VBLK_QSIZE]; /* head of the chain holding it, or FREE */
	bool inflight[VBLK_QSIZE], done[VBLK_QSIZE], abandoned[VBLK_QSIZE];
	uint32_t used_len[VBLK_QSIZE];
	struct vblk_slot *slot; /* [VBLK_QSIZE] */
	unsigned bogus_used;     /* used entries with a bad or stale id */
	unsigned late;           /* completions of abandoned requests */
};

struct vblk {
	struct virtio_pci_dev pci;
	uint64_t features;       /* negotiated */
	uint64_t offered;
	uint64_t capacity;       /* 512-byte sectors */
	uint32_t blk_size, size_max, seg_max;
	uint16_t num_queues;     /* set up */
	uint16_t dev_queues;     /* device config num_queues (MQ) */
	uint32_t max_discard_sectors, max_discard_seg, discard_align;
	uint32_t max_wz_sectors, max_wz_seg;
	uint8_t wz_may_unmap;
	bool irq;                /* set before vblk_init: queue 0 on MSI-X vector 0 */
	struct vblk_queue q[VBLK_MAX_QUEUES];
};

/* A data segment of a request. */
struct vblk_seg {
	uint64_t addr;
	uint32_t len;
	uint16_t flags; /* VRING_DESC_F_WRITE if device-writable */
};

/* CPL0: find the index'th virtio-blk function, map its regions. */
const char *vblk_probe(struct vblk *d, unsigned index);
/* Reset, negotiate, set up min(want_queues, device's) queues, DRIVER_OK. */
const char *vblk_init(struct vblk *d, unsigned want_queues);
/* Reset the device (stops all DMA). */
void vblk_reset(struct vblk *d);
uint8_t vblk_status(struct vblk *d);

static inline bool vblk_has(const struct vblk *d, unsigned bit)
{
	return (d->features >> bit) & 1;
}

/* Descriptor allocation (raw; hostile tests build chains by hand). */
int vq_alloc(struct vblk_queue *q); /* descriptor index or -1 */
/* Mark descs[0..n) as belonging to the chain starting at descs[0], make
 * descs[0] available, but do not notify. */
void vq_post(struct vblk_queue *q, const uint16_t *descs, unsigned n);
void vq_kick(struct vblk_queue *q);
/* Reap used entries. */
void vq_poll(struct vblk_queue *q);
/* Wait up to `cycles` TSC ticks for the chain `head`; its status byte
 * (0..255), VBLK_TIMEOUT or VBLK_NOSTATUS (status still 0xff sentinel).  On
 * timeout the chain is abandoned: its descriptors are never reused. */
int vq_wait(struct vblk_queue *q, uint16_t head, uint64_t cycles);
static inline bool vq_done(const struct vblk_queue *q, uint16_t head)
{
	return q->done[head];
}
/* Result of a completed chain (like vq_wait), then release its slot. */
int vq_result(struct vblk_queue *q, uint16_t head);

/* Build and post (no kick) a request: header, segments, status.  Returns
 * the head, or -1 if the queue lacks free descriptors. */
int vblk_submit(struct vblk_queue *q, uint32_t type, uint64_t sector,
		const struct vblk_seg *segs, unsigned nseg);
/* Read/write `len` bytes at `buf` split into nseg segments, synchronously. */
int vblk_rw(struct vblk *d, unsigned qi, uint32_t type, uint64_t sector,
	    void *buf, uint32_t len, unsigned nseg);
/* Flush / GET_ID / discard / write-zeroes, synchronously. */
int vblk_simple(struct vblk *d, unsigned qi, uint32_t type);
int vblk_get_id(struct vblk *d, unsigned qi, char *id /* VIRTIO_BLK_ID_BYTES + 1 */);
int vblk_dwz(struct vblk *d, unsigned qi, uint32_t type, uint64_t sector,
	     uint32_t nsect, uint32_t flags);

#endif
