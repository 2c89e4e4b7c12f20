/*
 * Split virtqueue (virtio 1.x, 2.7), device side.  The rings live in guest
 * memory the guest keeps writing to, so:
 *  - ring indices are masked; an avail index more than `num` ahead breaks
 *    the queue (vq->broken) instead of being trusted;
 *  - a chain is walked at most `num` descriptors (loop detection), at most
 *    VQ_MAX_SEGS in total, each descriptor copied to a local once;
 *  - every buffer is translated with gmm_ptr() over its whole length;
 *  - device-readable descriptors must all precede device-writable ones;
 *  - VRING_DESC_F_INDIRECT (when negotiated) only on the head, without NEXT,
 *    with a table of 1..VQ_MAX_SEGS entries; no nesting.
 * A malformed chain still comes back from vq_pop() (req->bad set, with the
 * segments validated so far, and req->status if the chain has a writable
 * end) so that the device can complete it with an error status; a chain
 * without an end (loop, next index out of range) is completed with length 0
 * and no status.  Only a head index >= num cannot be completed: it is
 * consumed and dropped (pushing it would make the driver mark the ring
 * broken anyway).
 *
 * VIRTIO_RING_F_EVENT_IDX (vq_use_event_idx): the device publishes in
 * avail_event where it will look next only when it is about to wait for a
 * kick (vq_arm_kick), so a driver kicks once per wait, not once per
 * request; it interrupts only when the used index passes the driver's
 * used_event (vq_should_notify).  Without it, kicks are never suppressed
 * and VRING_AVAIL_F_NO_INTERRUPT is honoured.  Packed rings are not
 * supported.
 */
#ifndef FLINT_CARDS_BLK_VIRTQUEUE_H
#define FLINT_CARDS_BLK_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "guest_mem_map.h"
#include "log_limit.h"

#define VQ_MAX_SIZE 32768u
#define VQ_MAX_SEGS 256u

struct vq_seg {
	uint8_t *ptr;   /* host address of the whole buffer */
	uint32_t len;
};

struct vq_req {
	uint16_t head;
	bool bad;             /* malformed chain: complete with an error */
	/* Last byte of the chain's final descriptor if that one is
	 * device-writable and inside guest memory (even in a bad chain, so
	 * that an error status can still be returned), else NULL. */
	uint8_t *status;
	unsigned int nout;    /* device-readable segments, seg[0..nout) */
	unsigned int nin;     /* device-writable, seg[nout..nout+nin) */
	struct vq_seg seg[VQ_MAX_SEGS];
};

struct vq {
	const struct gmm *mem;
	uint16_t num;         /* power of two, 1..VQ_MAX_SIZE */
	bool indirect;        /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool broken;          /* guest corrupted the avail index */
	bool event_idx;       /* VIRTIO_RING_F_EVENT_IDX in use */
	bool signalled_valid; /* signalled_used means something */
	uint16_t signalled_used; /* used index at the last notification */
	uint16_t last_avail;
	uint16_t used_idx;
	const struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t avail_gpa, used_gpa;
	/*
	 * The warnings the guest can trigger (a bad avail head or index) go
	 * through *guest_log: vq_init points it at own_log, a latch for this
	 * start of the ring; an owner that outlives the ring's starts points
	 * it at a latch of its own (used under the lock it holds around
	 * vq_pop), so that a guest restarting the ring gets no fresh line.
	 */
	struct log_limit *guest_log;
	struct log_limit own_log;
};

/*
 * Translate the three rings (guest-physical addresses) and check their
 * alignment and size.  `base` is the next avail index to process.  0 or
 * -EINVAL / -EFAULT.
 */
int vq_init(struct vq *q, const struct gmm *mem, uint16_t num, bool indirect,
	    uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
	    uint16_t base);

/*
 * Switch the queue to VIRTIO_RING_F_EVENT_IDX: the rings' trailing
 * used_event / avail_event fields must be inside guest memory too.  0 or
 * -EFAULT.
 */
int vq_use_event_idx(struct vq *q);

/*
 * About to wait for a kick: with EVENT_IDX ask the driver to kick for the
 * next request.  Returns true if requests are already waiting (pop them
 * instead of waiting: the driver may have added them before it saw the
 * request to kick).
 */
bool vq_arm_kick(struct vq *q);

/* After vq_push(): must the driver be interrupted now? */
bool vq_should_notify(struct vq *q);

/* 1: *req filled (check req->bad); 0: nothing to do (or broken). */
int vq_pop(struct vq *q, struct vq_req *req);

/* Return a chain to the driver with `len` bytes written into it. */
void vq_push(struct vq *q, uint16_t head, uint32_t len);

#endif
