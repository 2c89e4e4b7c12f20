#include "written_map.h"

#include <errno.h>
#include <stdlib.h>

#define WORDS_PER_LEAF (WRITTEN_MAP_LEAF_BITS / 64)

int written_map_init(struct written_map *m, uint64_t granules)
{
	m->granules = granules;
	m->nleaves = (size_t)((granules + WRITTEN_MAP_LEAF_BITS - 1) / WRITTEN_MAP_LEAF_BITS);
	m->leaves = calloc(m->nleaves ? m->nleaves : 1, sizeof(*m->leaves));
	return m->leaves != NULL ? 0 : -ENOMEM;
}

void written_map_free(struct written_map *m)
{
	if (m->leaves == NULL)
		return;
	for (size_t i = 0; i < m->nleaves; i++)
		free((void *)atomic_load(&m->leaves[i]));
	free(m->leaves);
	m->leaves = NULL;
}

static _Atomic(uint64_t) *leaf_of(const struct written_map *m, uint64_t g)
{
	return atomic_load_explicit(&m->leaves[g / WRITTEN_MAP_LEAF_BITS], memory_order_acquire);
}

/* The leaf holding g, allocated (by whichever thread gets there first). */
static _Atomic(uint64_t) *leaf_for_write(struct written_map *m, uint64_t g)
{
	_Atomic(uint64_t) *leaf = leaf_of(m, g);
	if (leaf != NULL)
		return leaf;
	_Atomic(uint64_t) *fresh = calloc(WORDS_PER_LEAF, sizeof(*fresh));
	if (fresh == NULL)
		return NULL;
	if (atomic_compare_exchange_strong_explicit(&m->leaves[g / WRITTEN_MAP_LEAF_BITS], &leaf,
						    fresh, memory_order_acq_rel,
						    memory_order_acquire))
		return fresh;
	free((void *)fresh); /* another thread installed one: leaf holds it */
	return leaf;
}

int written_map_set(struct written_map *m, uint64_t first, uint64_t count)
{
	uint64_t g = first, end = first + count;

	while (g < end) {
		_Atomic(uint64_t) *leaf = leaf_for_write(m, g);
		if (leaf == NULL)
			return -ENOMEM;
		unsigned int bit = (unsigned int)(g % 64);
		uint64_t n = 64 - bit < end - g ? 64 - bit : end - g;
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
		atomic_fetch_or_explicit(&leaf[(g % WRITTEN_MAP_LEAF_BITS) / 64], mask,
					 memory_order_release);
		g += n;
	}
	return 0;
}

bool written_map_test(const struct written_map *m, uint64_t g)
{
	_Atomic(uint64_t) *leaf = leaf_of(m, g);
	if (leaf == NULL)
		return false;
	uint64_t w = atomic_load_explicit(&leaf[(g % WRITTEN_MAP_LEAF_BITS) / 64],
					  memory_order_acquire);
	return (w >> (g % 64)) & 1;
}

uint64_t written_map_run(const struct written_map *m, uint64_t g, uint64_t max, bool *written)
{
	bool state = written_map_test(m, g);
	uint64_t n = 0;

	if (max > m->granules - g)
		max = m->granules - g;
	while (n < max) {
		uint64_t at = g + n;
		_Atomic(uint64_t) *leaf = leaf_of(m, at);
		if (leaf == NULL) {
			if (state)
				break;
			n += WRITTEN_MAP_LEAF_BITS - at % WRITTEN_MAP_LEAF_BITS;
			continue;
		}
		uint64_t w = atomic_load_explicit(&leaf[(at % WRITTEN_MAP_LEAF_BITS) / 64],
						  memory_order_acquire);
		/* Ones where a granule is in `state`, from `at` on. */
		uint64_t same = (state ? w : ~w) >> (at % 64);
		uint64_t avail = 64 - at % 64;
		uint64_t ones = ~same == 0 ? 64 : (uint64_t)__builtin_ctzll(~same);
		if (ones >= avail) {
			n += avail;
			continue;
		}
		n += ones;
		break;
	}
	*written = state;
	return n < max ? n : max;
}
