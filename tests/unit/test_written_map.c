/*
 * card-local's map of written granules (cards/local/written_map.c): bits
 * across word and leaf boundaries, runs of either state, the map's ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "written_map.h"

#define LEAF WRITTEN_MAP_LEAF_BITS

static void test_fresh_map_is_unwritten(void **state)
{
	(void)state;
	struct written_map m;
	bool w = true;
	assert_int_equal(written_map_init(&m, 3 * LEAF + 5), 0);
	assert_false(written_map_test(&m, 0));
	assert_false(written_map_test(&m, 3 * LEAF + 4));
	/* One run over every leaf, none allocated, capped at the end. */
	assert_int_equal(written_map_run(&m, 0, UINT64_MAX, &w), 3 * LEAF + 5);
	assert_false(w);
	assert_int_equal(written_map_run(&m, 7, 10, &w), 10);
	assert_int_equal(written_map_run(&m, 3 * LEAF + 4, 10, &w), 1);
	written_map_free(&m);
}

static void test_set_across_words_and_leaves(void **state)
{
	(void)state;
	struct written_map m;
	bool w;
	assert_int_equal(written_map_init(&m, 4 * LEAF), 0);
	/* 60..200: ends inside words; LEAF-3..LEAF+70: across a leaf. */
	assert_int_equal(written_map_set(&m, 60, 141), 0);
	assert_int_equal(written_map_set(&m, LEAF - 3, 74), 0);
	assert_false(written_map_test(&m, 59));
	assert_true(written_map_test(&m, 60));
	assert_true(written_map_test(&m, 200));
	assert_false(written_map_test(&m, 201));
	assert_int_equal(written_map_run(&m, 0, UINT64_MAX, &w), 60);
	assert_false(w);
	assert_int_equal(written_map_run(&m, 60, UINT64_MAX, &w), 141);
	assert_true(w);
	assert_int_equal(written_map_run(&m, 100, 5, &w), 5);
	assert_true(w);
	assert_int_equal(written_map_run(&m, 201, UINT64_MAX, &w), LEAF - 3 - 201);
	assert_false(w);
	assert_int_equal(written_map_run(&m, LEAF - 3, UINT64_MAX, &w), 74);
	assert_true(w);
	assert_true(written_map_test(&m, LEAF + 70));
	assert_false(written_map_test(&m, LEAF + 71));
	/* From a set leaf into an unallocated one: the unwritten run goes on. */
	assert_int_equal(written_map_run(&m, LEAF + 71, UINT64_MAX, &w), 3 * LEAF - 71);
	assert_false(w);
	written_map_free(&m);
}

static void test_whole_map_and_single_bits(void **state)
{
	(void)state;
	struct written_map m;
	bool w;
	assert_int_equal(written_map_init(&m, 2 * LEAF + 1), 0);
	assert_int_equal(written_map_set(&m, 0, 2 * LEAF + 1), 0);
	assert_int_equal(written_map_run(&m, 0, UINT64_MAX, &w), 2 * LEAF + 1);
	assert_true(w);
	written_map_free(&m);

	assert_int_equal(written_map_init(&m, 128), 0);
	assert_int_equal(written_map_set(&m, 63, 1), 0);
	assert_int_equal(written_map_set(&m, 64, 1), 0);
	assert_int_equal(written_map_set(&m, 127, 1), 0);
	assert_int_equal(written_map_run(&m, 0, 128, &w), 63);
	assert_int_equal(written_map_run(&m, 63, 128, &w), 2);
	assert_true(w);
	assert_int_equal(written_map_run(&m, 65, 128, &w), 62);
	assert_false(w);
	assert_int_equal(written_map_run(&m, 127, 128, &w), 1);
	assert_true(w);
	/* Setting again changes nothing. */
	assert_int_equal(written_map_set(&m, 60, 8), 0);
	assert_int_equal(written_map_run(&m, 60, 128, &w), 8);
	written_map_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_map_is_unwritten),
		cmocka_unit_test(test_set_across_words_and_leaves),
		cmocka_unit_test(test_whole_map_and_single_bits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
