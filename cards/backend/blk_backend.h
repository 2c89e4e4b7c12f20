/*
 * The storage interface every block card is built from: the virtio-blk
 * device logic calls a blk_backend; the encryption layer is a blk_backend
 * wrapping another one; at the bottom sit the NBD client (card-ebs, remote
 * volumes) and a local file (card-local, instance storage).
 *
 * All offsets and lengths are in bytes and already checked by the caller
 * against size_bytes and block_size alignment.  Backends that reach their
 * storage through another process (NBD) also offer submit: the caller does
 * not wait, so one thread keeps many requests in flight and the backend's
 * own receiver completes them, without a wake-up per request to hand each
 * result back.  Every operation returns 0 or
 * a negative errno; a backend never returns a short transfer as success.
 */
#ifndef FLINT_CARDS_BLK_BACKEND_H
#define FLINT_CARDS_BLK_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * An asynchronous read or write (blk_backend_ops.submit).  The submitter
 * owns the structure and buf until done() runs; done() runs exactly once,
 * on any thread (often a backend's receiver thread, possibly before submit
 * returns), and must not block on I/O.
 */
struct blk_aio {
	bool write;
	uint64_t offset;
	size_t len;
	void *buf;
	void (*done)(struct blk_aio *io, int result);
};

struct blk_backend_ops {
	int (*read)(void *ctx, uint64_t offset, void *buf, size_t len);
	int (*write)(void *ctx, uint64_t offset, const void *buf, size_t len);
	/* Durable: everything acknowledged before the flush survives a crash. */
	int (*flush)(void *ctx);
	/* Contents of the range become unspecified (may be NULL: not supported). */
	int (*discard)(void *ctx, uint64_t offset, uint64_t len);
	/* The range reads back as zeros afterwards (may be NULL: not supported). */
	int (*write_zeroes)(void *ctx, uint64_t offset, uint64_t len);
	void (*close)(void *ctx);
	/*
	 * Optional (NULL: synchronous only).  0: accepted, io->done will be
	 * called; -errno: not accepted (io->done never called), the caller
	 * may use read/write instead.  May wait for a free resource, never
	 * for the I/O itself.  The same checks as read/write apply.
	 */
	int (*submit)(void *ctx, struct blk_aio *io);
	/*
	 * Optional (NULL: every request ends on its own, in bounded time, as
	 * on a local store).  set_abort(ctx, true): every request in progress
	 * gives up now (read, write... return -EIO, submitted ones complete
	 * with -EIO, possibly on the calling thread before this returns) and
	 * its buffer is never touched again, even when the storage answers
	 * late; new requests fail at once with -EIO until
	 * set_abort(ctx, false).  Requests that succeeded keep every
	 * durability promise.  Any thread, any time.  The card calls it when
	 * a queue must stop and storage has stalled past the grace period.
	 */
	void (*set_abort)(void *ctx, bool on);
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	void *ctx;
	uint64_t size_bytes;  /* capacity, a multiple of block_size */
	uint32_t block_size;  /* 512 or 4096: the smallest unit of I/O */
};

#endif
