/*
 * libFuzzer target: the split virtqueue walk and the virtio-blk request
 * handler on fake guest memory.  The input is the guest memory image
 * (64 KiB at GPA 0x10000, descriptor table at its start, avail ring at
 * +0x1000, used ring at +0x2000, queue size 16); the device serves every
 * available request against a 256 KiB in-memory disk.  The first input byte
 * also selects INDIRECT_DESC, 4K blocks, event indices and the asynchronous
 * path (vblk_submit over a backend that completes inside submit).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk_mem.h"
#include "guest_mem_map.h"
#include "virtio_blk.h"
#include "virtqueue.h"

#define GBASE 0x10000ull
#define GSIZE 0x10000u
#define QSIZE 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct blk_backend_ops async_ops;
static void *mem_ctx;

/* Completes at once, through the in-memory disk's own read/write. */
static int async_submit(void *ctx, struct blk_aio *io)
{
	(void)ctx;
	int r = io->write ? async_ops.write(mem_ctx, io->offset, io->buf, io->len)
			  : async_ops.read(mem_ctx, io->offset, io->buf, io->len);
	io->done(io, r);
	return 0;
}

static uint32_t async_used;
static int async_completions;

static void async_complete(struct vblk_aio *a, uint32_t used)
{
	(void)a;
	async_used = used;
	async_completions++;
}

/* Bytes the device may write into the chain (its writable segments). */
static uint64_t writable(const struct vq_req *req)
{
	uint64_t n = 0;
	for (unsigned int i = req->nout; i < req->nout + req->nin; i++)
		n += req->seg[i].len;
	return n;
}

static uint32_t serve(const struct vblk *dev, const struct vq_req *req, bool async)
{
	static struct vblk_aio a = { .complete = async_complete };
	struct vblk_req_hdr h;
	vblk_parse(req, &h);
	if (!async || !vblk_submit(dev, req, &h, &a))
		return vblk_handle(dev, req, &h, NULL);
	if (async_completions != 1 || async_used > writable(req))
		abort(); /* once, and never more than the chain holds */
	async_completions = 0;
	return async_used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *mem;
	static struct vq_req req;
	struct blk_backend be;
	struct vblk dev;
	struct gmm g;
	struct vq q;

	if (size < 1)
		return 0;
	if (mem == NULL && (mem = aligned_alloc(4096, GSIZE)) == NULL)
		abort();
	memset(mem, 0, GSIZE);
	memcpy(mem, data + 1, size - 1 < GSIZE ? size - 1 : GSIZE);
	gmm_init_flat(&g, mem, GBASE, GSIZE);
	if (blk_mem_create(&be, 256 * 1024, (data[0] & 2) ? 4096 : 512) != 0)
		abort();
	bool async = data[0] & 8;
	if (async) {
		async_ops = *be.ops;
		async_ops.submit = async_submit;
		mem_ctx = be.ctx;
		be.ops = &async_ops;
	}
	if (vblk_init(&dev, &be, 1, "fuzz", NULL) != 0 ||
	    vq_init(&q, &g, QSIZE, data[0] & 1, GBASE, GBASE + 0x1000,
		    GBASE + 0x2000, 0) != 0)
		abort();
	/* Event indices: the guest-written used_event steers notifications. */
	if ((data[0] & 4) && vq_use_event_idx(&q) != 0)
		abort();
	for (int n = 0; n < 4 * QSIZE; n++) {
		if (vq_pop(&q, &req) != 1) {
			if (!vq_arm_kick(&q))
				break;
			continue;
		}
		if (req.nout + req.nin > VQ_MAX_SEGS)
			abort();
		uint32_t len = serve(&dev, &req, async);
		vq_push(&q, req.head, len);
		(void)vq_should_notify(&q);
	}
	be.ops->close(be.ctx);
	return 0;
}
