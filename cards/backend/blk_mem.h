/*
 * An in-memory blk_backend for tests and flint-blk-mem-card: a zeroed buffer
 * of size_bytes, thread-safe (one mutex), with discard and write-zeroes
 * (both zero the range).  Bounds are checked again here (-EINVAL), so a
 * caller bug is an error, not a memory corruption.
 */
#ifndef FLINT_CARDS_BLK_MEM_H
#define FLINT_CARDS_BLK_MEM_H

#include <stdint.h>

#include "blk_backend.h"

/*
 * Fill *be with a new in-memory disk.  size_bytes must be a non-zero
 * multiple of block_size (512 or 4096).  Release with
 * be->ops->close(be->ctx).  0 or -EINVAL / -ENOMEM.
 */
int blk_mem_create(struct blk_backend *be, uint64_t size_bytes,
		   uint32_t block_size);

/* The disk contents (tests inspect them directly). */
uint8_t *blk_mem_data(const struct blk_backend *be);

#endif
