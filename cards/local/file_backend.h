/*
 * A blk_backend over a local file or block device: card-local's instance
 * storage (IST-1).  pread/pwrite with full-transfer loops, fdatasync for
 * flush, fallocate for discard and write-zeroes where the file system can.
 */
#ifndef FLINT_CARDS_FILE_BACKEND_H
#define FLINT_CARDS_FILE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "blk_backend.h"

/*
 * Opens path read-write.  size 0 uses the file's size; otherwise the file is
 * created or extended to size bytes.  The size is rounded down to block_size.
 */
int file_backend_open(struct blk_backend *out, const char *path, uint64_t size,
		      uint32_t block_size, char *err, size_t errlen);

#endif
