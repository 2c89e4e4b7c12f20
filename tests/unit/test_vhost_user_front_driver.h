/*
 * A minimal virtio-blk guest driver for the vhost-user front-end tests: it
 * lays a split virtqueue out in guest RAM (a guest_mem memfd), starts it
 * through vuf_ops.queue_start with eventfds it holds itself (as the
 * transport would), and runs one request at a time: kick, wait for the
 * call, check the used ring.  Shared by the cmocka test (card back end) and
 * the qemu-storage-daemon interop test.
 */
#ifndef FLINT_TEST_VUF_DRIVER_H
#define FLINT_TEST_VUF_DRIVER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "guest_mem.h"
#include "vhost_user_front.h"

#define DRV_QN 8
#define DRV_T_IN 0
#define DRV_T_OUT 1

struct drv_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct drv_queue {
	unsigned int index;
	uint64_t base; /* guest-physical: desc, +0x1000 avail, +0x2000 used */
	int kick, call;
	uint16_t avail_idx, used_seen;
};

static inline void *drv_ptr(struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(gm, gpa, len);
}

/* Fresh rings for queue index at base, started on the front end; its rc. */
static inline int drv_queue_start(struct vuf *f, struct guest_mem *gm, struct drv_queue *q,
				  unsigned int index, uint64_t base)
{
	q->index = index;
	q->base = base;
	q->avail_idx = q->used_seen = 0;
	memset(drv_ptr(gm, base, 0x3000), 0, 0x3000);
	if (q->kick < 0)
		q->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->call < 0)
		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct virtio_pci_queue_info info = {
		.index = index, .size = DRV_QN,
		.desc = base, .driver = base + 0x1000, .device = base + 0x2000,
		.kick_fd = q->kick, .call_fd = q->call,
	};
	return vuf_ops.queue_start(f, &info);
}

/*
 * One virtio-blk request (header, data of len bytes at data_gpa, status).
 * Returns the status byte, or -1 if no completion came within timeout_ms.
 */
static inline int drv_request(struct guest_mem *gm, struct drv_queue *q, uint32_t type,
			      uint64_t sector, uint64_t data_gpa, uint32_t len,
			      int timeout_ms)
{
	uint64_t hdr = q->base + 0x3000, st = q->base + 0x3100;
	struct { uint32_t type, ioprio; uint64_t sector; } h = { type, 0, sector };
	memcpy(drv_ptr(gm, hdr, 16), &h, 16);
	*(uint8_t *)drv_ptr(gm, st, 1) = 0xff;
	struct drv_desc *d = drv_ptr(gm, q->base, 16 * DRV_QN);
	d[0] = (struct drv_desc){ hdr, 16, 1 /* NEXT */, 1 };
	d[1] = (struct drv_desc){ data_gpa, len, (uint16_t)(1 | (type == DRV_T_IN ? 2 : 0)), 2 };
	d[2] = (struct drv_desc){ st, 1, 2 /* WRITE */, 0 };
	uint16_t *avail = drv_ptr(gm, q->base + 0x1000, 4 + 2 * DRV_QN);
	uint16_t *used = drv_ptr(gm, q->base + 0x2000, 4 + 8 * DRV_QN);
	avail[2 + q->avail_idx % DRV_QN] = 0;
	__atomic_store_n(&avail[1], ++q->avail_idx, __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(q->kick, &one, 8) != 8)
		return -1;
	for (;;) {
		if (__atomic_load_n(&used[1], __ATOMIC_ACQUIRE) != q->used_seen)
			break;
		struct pollfd p = { .fd = q->call, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) != 1)
			return -1;
		uint64_t v;
		(void)!read(q->call, &v, 8);
	}
	q->used_seen++;
	return *(volatile uint8_t *)drv_ptr(gm, st, 1);
}

static inline void drv_queue_close(struct drv_queue *q)
{
	if (q->kick >= 0)
		close(q->kick);
	if (q->call >= 0)
		close(q->call);
	q->kick = q->call = -1;
}

#endif
