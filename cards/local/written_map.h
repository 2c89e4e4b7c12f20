/*
 * Which granules of card-local's device the instance has written since the
 * card started (IST-5): everything else reads as zeros, like a new disk,
 * however much of an earlier tenant's ciphertext the store still holds.
 *
 * A two-level bitmap: one bit per granule, in leaves of WRITTEN_MAP_LEAF_BITS
 * bits allocated on the first write into them, so a mostly unwritten device
 * costs a pointer per leaf (8 bytes per 128 MiB of 4 KiB granules) and a
 * fully written one a bit per granule (32 MiB per TiB).  Bits are only ever
 * set, never cleared.  Safe for concurrent set/test/run from many threads.
 */
#ifndef FLINT_CARDS_LOCAL_WRITTEN_MAP_H
#define FLINT_CARDS_LOCAL_WRITTEN_MAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WRITTEN_MAP_LEAF_BITS 32768u /* a 4 KiB leaf */

struct written_map {
	uint64_t granules;
	size_t nleaves;
	_Atomic(_Atomic(uint64_t) *) *leaves;
};

/* A map of `granules` unwritten granules.  0 or -ENOMEM. */
int written_map_init(struct written_map *m, uint64_t granules);
void written_map_free(struct written_map *m);

/* Marks [first, first + count) written (the range must lie in the map).  0 or -ENOMEM. */
int written_map_set(struct written_map *m, uint64_t first, uint64_t count);

bool written_map_test(const struct written_map *m, uint64_t g);

/*
 * How many granules from g (< granules) on, at most max, are in g's state;
 * *written says which state.  At least 1 when max >= 1.
 */
uint64_t written_map_run(const struct written_map *m, uint64_t g, uint64_t max, bool *written);

#endif
