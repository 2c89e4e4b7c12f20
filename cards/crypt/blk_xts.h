/*
 * AES-256-XTS as a block layer (EBS-3, IST-3): a blk_backend that encrypts
 * every data unit on its way down and decrypts it on the way up, so the
 * storage below only ever sees ciphertext.  The data unit is the device's
 * logical block (sector); the XTS tweak is the unit's index, little-endian
 * (dm-crypt's plain64).  Plaintext only exists in guest memory and in this
 * process's locked memory.
 */
#ifndef FLINT_CARDS_BLK_XTS_H
#define FLINT_CARDS_BLK_XTS_H

#include <stddef.h>
#include <stdint.h>

#include "blk_backend.h"

/*
 * Wraps lower (taking ownership: closing the XTS layer closes it).  key is
 * 64 bytes (two AES-256 keys); it is copied into the layer's cipher contexts
 * and can be wiped by the caller afterwards.  unit is the sector size (512
 * or 4096) and must be a multiple of lower->block_size.  Returns 0 or -1 with
 * a reason in err.
 */
int blk_xts_open(struct blk_backend *out, struct blk_backend *lower, const uint8_t *key,
		 uint32_t unit, char *err, size_t errlen);

#endif
