#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "log_limit.h"

static void *ring_ptr(const struct gmm *mem, uint64_t gpa, uint64_t len,
		      uintptr_t align)
{
	if (gpa & (align - 1))
		return NULL;
	void *p = gmm_ptr(mem, gpa, len);
	if (p == NULL || ((uintptr_t)p & (align - 1)))
		return NULL;
	return p;
}

int vq_init(struct vq *q, const struct gmm *mem, uint16_t num, bool indirect,
	    uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
	    uint16_t base)
{
	memset(q, 0, sizeof(*q));
	if (num == 0 || (num & (num - 1)))
		return -EINVAL;
	q->desc = ring_ptr(mem, desc_gpa, 16ull * num, 16);
	q->avail = ring_ptr(mem, avail_gpa, 4ull + 2ull * num, 2);
	q->used = ring_ptr(mem, used_gpa, 4ull + 8ull * num, 4);
	if (q->desc == NULL || q->avail == NULL || q->used == NULL) {
		memset(q, 0, sizeof(*q));
		return -EFAULT;
	}
	q->mem = mem;
	q->avail_gpa = avail_gpa;
	q->used_gpa = used_gpa;
	q->num = num;
	q->indirect = indirect;
	q->last_avail = base;
	log_limit_init(&q->own_log, 1, 0);
	q->guest_log = &q->own_log;
	/* Resume where the used ring stands (all earlier requests completed). */
	q->used_idx = le16toh(__atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE));
	return 0;
}

/* The single read of a descriptor from shared memory. */
static void load_desc(struct vring_desc *d, const struct vring_desc *shared)
{
	memcpy(d, shared, sizeof(*d));
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

static bool add_seg(const struct vq *q, struct vq_req *req,
		    const struct vring_desc *d)
{
	bool writable = d->flags & VRING_DESC_F_WRITE;
	if (d->len == 0 || req->nout + req->nin >= VQ_MAX_SEGS)
		return false;
	if (!writable && req->nin > 0)
		return false; /* readable after writable */
	uint8_t *p = gmm_ptr(q->mem, d->addr, d->len);
	if (p == NULL)
		return false;
	req->seg[req->nout + req->nin] = (struct vq_seg){ p, d->len };
	if (writable)
		req->nin++;
	else
		req->nout++;
	return true;
}

/* Record one descriptor; after the first error only look for the chain's end. */
static void visit(const struct vq *q, struct vq_req *req,
		  const struct vring_desc *d)
{
	if (!req->bad && !add_seg(q, req, d))
		req->bad = true;
	if (!(d->flags & VRING_DESC_F_NEXT) && (d->flags & VRING_DESC_F_WRITE)) {
		uint8_t *p = gmm_ptr(q->mem, d->addr, d->len);
		if (p != NULL)
			req->status = p + d->len - 1;
	}
}

static void walk_indirect(const struct vq *q, struct vq_req *req,
			  const struct vring_desc *ind)
{
	if (!q->indirect || (ind->flags & VRING_DESC_F_NEXT) ||
	    ind->len == 0 || ind->len % sizeof(struct vring_desc) != 0 ||
	    ind->len / sizeof(struct vring_desc) > VQ_MAX_SEGS) {
		req->bad = true;
		return;
	}
	const struct vring_desc *tbl = gmm_ptr(q->mem, ind->addr, ind->len);
	if (tbl == NULL) {
		req->bad = true;
		return;
	}
	unsigned int n = ind->len / sizeof(struct vring_desc);
	unsigned int i = 0;
	for (unsigned int count = 0;; count++) {
		struct vring_desc d;
		if (count >= n || i >= n) {
			req->bad = true; /* loop, or next out of the table */
			return;
		}
		load_desc(&d, &tbl[i]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			req->bad = true; /* nested */
			return;
		}
		visit(q, req, &d);
		if (!(d.flags & VRING_DESC_F_NEXT))
			return;
		i = d.next;
	}
}

static void walk(const struct vq *q, struct vq_req *req)
{
	struct vring_desc d;
	unsigned int i = req->head;

	load_desc(&d, &q->desc[i]);
	if (d.flags & VRING_DESC_F_INDIRECT) {
		walk_indirect(q, req, &d);
		return;
	}
	for (unsigned int count = 1;; count++) {
		visit(q, req, &d);
		if (!(d.flags & VRING_DESC_F_NEXT))
			return;
		i = d.next;
		if (count >= q->num || i >= q->num) {
			req->bad = true; /* longer than the queue (a loop), or bad next */
			return;
		}
		load_desc(&d, &q->desc[i]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			req->bad = true; /* only the head may be indirect */
			return;
		}
	}
}

int vq_pop(struct vq *q, struct vq_req *req)
{
	while (!q->broken) {
		uint16_t avail_idx =
			le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE));
		if (avail_idx == q->last_avail)
			return 0;
		if ((uint16_t)(avail_idx - q->last_avail) > q->num) {
			log_limited(q->guest_log, LOG_WARN,
				    "vq: avail index %u is %u ahead of %u, queue stopped",
				    avail_idx, (uint16_t)(avail_idx - q->last_avail),
				    q->last_avail);
			q->broken = true;
			return 0;
		}
		uint16_t head = le16toh(__atomic_load_n(
			&q->avail->ring[q->last_avail & (q->num - 1)],
			__ATOMIC_RELAXED));
		q->last_avail++;
		if (head >= q->num) {
			log_limited(q->guest_log, LOG_WARN,
				    "vq: avail head %u >= queue size %u, dropped", head, q->num);
			continue;
		}
		req->head = head;
		req->nout = 0;
		req->nin = 0;
		req->bad = false;
		req->status = NULL;
		walk(q, req);
		if (req->bad)
			req->nout = req->nin = 0; /* nothing of it is used */
		return 1;
	}
	return 0;
}

void vq_push(struct vq *q, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &q->used->ring[q->used_idx & (q->num - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
	q->used_idx++;
	/* The element is visible before the index that publishes it. */
	__atomic_store_n(&q->used->idx, htole16(q->used_idx), __ATOMIC_RELEASE);
}

int vq_use_event_idx(struct vq *q)
{
	/* The trailing fields follow ring[num]: the rings grow by 2 bytes. */
	if (q->mem == NULL ||
	    gmm_ptr(q->mem, q->avail_gpa, 6ull + 2ull * q->num) != (void *)q->avail ||
	    gmm_ptr(q->mem, q->used_gpa, 6ull + 8ull * q->num) != (void *)q->used)
		return -EFAULT;
	q->event_idx = true;
	q->signalled_valid = false;
	return 0;
}

static uint16_t *avail_event(const struct vq *q)
{
	return (uint16_t *)&q->used->ring[q->num];
}

static const uint16_t *used_event(const struct vq *q)
{
	return &q->avail->ring[q->num];
}

bool vq_arm_kick(struct vq *q)
{
	if (q->event_idx) {
		__atomic_store_n(avail_event(q), htole16(q->last_avail), __ATOMIC_RELAXED);
		/* The store must be visible before we look at the index again. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	uint16_t idx = le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE));
	return !q->broken && idx != q->last_avail;
}

/* virtio 1.x 2.7.10: has `new` moved past `event` since `old`? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vq_should_notify(struct vq *q)
{
	if (!q->event_idx) {
		uint16_t flags = le16toh(__atomic_load_n(&q->avail->flags, __ATOMIC_ACQUIRE));
		return !(flags & VRING_AVAIL_F_NO_INTERRUPT);
	}
	/* The used index we published must be ordered before reading the
	 * driver's wish, or both sides could miss each other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t event = le16toh(__atomic_load_n(used_event(q), __ATOMIC_RELAXED));
	bool notify = !q->signalled_valid || need_event(event, q->used_idx, q->signalled_used);
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return notify;
}
