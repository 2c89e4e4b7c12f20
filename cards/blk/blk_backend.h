/*
 * The storage interface every block card is built from: the virtio-blk
 * device logic calls a blk_backend; the encryption layer is a blk_backend
 * wrapping another one; at the bottom sit the NBD client (card-ebs, remote
 * volumes) and a local file (card-local, instance storage).
 *
 * All offsets and lengths are in bytes and already checked by the caller
 * against size_bytes and block_size alignment.  Every operation returns 0 or
 * a negative errno; a backend never returns a short transfer as success.
 */
#ifndef FLINT_CARDS_BLK_BACKEND_H
#define FLINT_CARDS_BLK_BACKEND_H

#include <stddef.h>
#include <stdint.h>

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
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	void *ctx;
	uint64_t size_bytes;  /* capacity, a multiple of block_size */
	uint32_t block_size;  /* 512 or 4096: the smallest unit of I/O */
};

#endif
