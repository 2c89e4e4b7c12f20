/*
 * The virtio-blk device model (virtio 1.x, 5.2) over a blk_backend: feature
 * set, config space and request handling.  vblk_handle() works on a popped
 * chain only (no rings, no fds), so it is fuzzed on fake guest memory
 * (fuzz/fuzz_virtio_blk.c).
 *
 * Request layout, read as two byte streams whatever the descriptor split:
 * the device-readable stream is the 16-byte header {type, ioprio, sector}
 * followed by OUT data or DISCARD/WRITE_ZEROES segments; the device-writable
 * stream is IN/GET_ID data followed by the status byte, which must be the
 * last byte of the last descriptor.  The header and each segment are copied
 * to locals before use.  Any violation completes the request with
 * VIRTIO_BLK_S_IOERR; unknown types, and reserved flag bits, with
 * VIRTIO_BLK_S_UNSUPP.
 */
#ifndef FLINT_CARDS_BLK_VIRTIO_BLK_H
#define FLINT_CARDS_BLK_VIRTIO_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#include "blk_backend.h"
#include "virtqueue.h"

#define VBLK_MAX_QUEUES 16
#define VBLK_MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per segment */
#define VBLK_MAX_DISCARD_SEG 16u

struct vblk {
	struct blk_backend *be;
	pthread_mutex_t *be_lock;  /* NULL: backend is called concurrently */
	uint16_t num_queues;
	char id[VIRTIO_BLK_ID_BYTES]; /* GET_ID answer, NUL-padded */
};

/*
 * Check the backend (block size 512 or 4096, size a non-zero multiple) and
 * fill dev.  serial may be NULL; longer than 20 bytes is truncated.
 * be_lock, if not NULL, serialises every backend call.  0 or -EINVAL.
 */
int vblk_init(struct vblk *dev, struct blk_backend *be, uint16_t num_queues,
	      const char *serial, pthread_mutex_t *be_lock);

/* Features offered (discard/write-zeroes only if the backend has them). */
uint64_t vblk_features(const struct vblk *dev);

/* The config space, little endian. */
void vblk_config(const struct vblk *dev, struct virtio_blk_config *cfg);

/*
 * A request's header and shape, read from the guest once: the guest may
 * rewrite its buffers at any time, so vblk_submit() and vblk_handle() act
 * on this copy and never read the header again.
 */
struct vblk_req_hdr {
	bool ok;          /* a status byte ends the chain and the header is whole */
	uint32_t type;    /* host byte order */
	uint64_t sector;
	uint64_t out_len; /* device-readable bytes after the header */
	uint64_t in_len;  /* device-writable bytes before the status byte */
};

/* Read a popped chain's header (any descriptor split) into *h. */
void vblk_parse(const struct vq_req *req, struct vblk_req_hdr *h);

/*
 * Serve one popped chain parsed into *h: do the I/O, write the status byte
 * when there is a writable one, and return the used length (bytes written
 * to the chain) for vq_push().  *status (may be NULL) receives the status
 * for tests.
 */
uint32_t vblk_handle(const struct vblk *dev, const struct vq_req *req,
		     const struct vblk_req_hdr *h, uint8_t *status);

/* vblk_parse() then vblk_handle(): for callers without an asynchronous path. */
uint32_t vblk_serve(const struct vblk *dev, const struct vq_req *req, uint8_t *status);

/*
 * Asynchronous service of the common small reads and writes, over a backend
 * with submit: a header-only first descriptor, 1..VBLK_AIO_SEGS data
 * segments of whole blocks, a status-only last one, at most
 * VBLK_AIO_MAX_BYTES in all.  Each segment goes down as its own request;
 * the chain is not touched after complete() runs.
 *
 * Why small only: for a small request the thread hand-off that the
 * asynchronous path saves is most of the cost, while a large one's copies
 * and cipher work dwarf it, and served synchronously they run on as many
 * worker threads as there are such requests instead of on the one thread
 * that submits (writes) or completes (reads).  Measured: all requests
 * asynchronous made 128 KiB encrypted I/O 2x slower in the nested lab
 * (emulated AES, one CPU shared with the polling guest) and 10% faster on
 * the host; 4 KiB I/O gained 1.5-2x in both.
 */
#define VBLK_AIO_SEGS 8
#define VBLK_AIO_MAX_BYTES (64u << 10)

struct vblk_aio;

struct vblk_seg_io {
	struct blk_aio io;
	struct vblk_aio *req;
};

struct vblk_aio {
	/* Set by the caller: runs once, on any thread, with the used length. */
	void (*complete)(struct vblk_aio *a, uint32_t used);
	/* vblk_submit's own. */
	struct vblk_seg_io seg[VBLK_AIO_SEGS];
	unsigned int pending;  /* segments outstanding, plus the submitter */
	int error;
	uint8_t *status;
	uint32_t read_len;
};

/*
 * true: the request was taken and a->complete will run (possibly before
 * this returns); false: it does not fit the asynchronous path (any other
 * shape, type or a malformed chain), serve it with vblk_handle.
 */
bool vblk_submit(const struct vblk *dev, const struct vq_req *req,
		 const struct vblk_req_hdr *h, struct vblk_aio *a);

#endif
