/*
 * card-local's device reads as a new disk (IST-5): a blk_backend layer on
 * top of the XTS layer that remembers, in card memory (written_map.h),
 * which FRESH_DISK_GRANULE-byte granules the instance has written since the
 * card started, and answers reads of the others with zeros without touching
 * the store.  An earlier tenant's ciphertext, decrypted under this card's new
 * key, never reaches the guest, and the store is never zeroed up front.
 *
 * With 4096-byte sectors every write covers whole granules.  With 512-byte
 * sectors the first write into a granule that covers only part of it is
 * widened to the whole granule, the rest filled with the zeros the granule
 * reads as, so that a written granule is written throughout; writes that
 * touch an unwritten granule hold a lock on its region meanwhile.
 *
 * Discard and write-zeroes reach the store only where the instance wrote.
 * Synchronous only: the store below (a local file) has no submit.
 */
#ifndef FLINT_CARDS_LOCAL_FRESH_DISK_H
#define FLINT_CARDS_LOCAL_FRESH_DISK_H

#include <stddef.h>

#include "blk_backend.h"

#define FRESH_DISK_GRANULE 4096u

/*
 * Wraps lower (taking ownership: closing this layer closes it), whose
 * contents are all treated as unwritten.  0, or -1 with a reason in err.
 */
int fresh_disk_open(struct blk_backend *out, struct blk_backend *lower, char *err,
		    size_t errlen);

#endif
