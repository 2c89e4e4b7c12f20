/*
 * card-ebs's NBD replay log (cards/ebs/nbd_replay_log.c) as a data
 * structure: the ring's empty and full edges, wrapping to its start (with
 * and without a gap left at its end), overflow and what it means for the
 * next flush, and flush marks (only entries acknowledged up to the mark
 * leave the log).
 *
 * Entries here are 64-byte writes: a 64-byte header and 64 bytes of
 * payload, 128 bytes in the ring; RING holds exactly ten.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nbd_proto.h"
#include "nbd_replay_log.h"

#define PAYLOAD 64U
#define SPAN 128U
#define RING (10 * SPAN)

/* A write acknowledged as seq: payload bytes seq, at block seq. */
static void append_write(struct replay_log *l, uint64_t seq, uint32_t len)
{
	uint8_t buf[512];
	assert_true(len <= sizeof(buf));
	memset(buf, (int)(seq & 0xff), len);
	replay_log_append(l, seq, NBD_CMD_WRITE, seq * 4096, len, buf);
	memset(buf, 0xee, len); /* the log keeps its own copy */
}

static void append_writes(struct replay_log *l, uint64_t first, uint64_t last)
{
	for (uint64_t seq = first; seq <= last; seq++)
		append_write(l, seq, PAYLOAD);
}

/* The log holds writes first..last, in that order, each intact. */
static void expect_writes(const struct replay_log *l, uint64_t first, uint64_t last)
{
	struct replay_cursor cur = replay_log_begin(l);
	struct replay_entry e;
	assert_int_equal(replay_log_count(l), last + 1 - first);
	for (uint64_t seq = first; seq <= last; seq++) {
		assert_true(replay_log_next(l, &cur, &e));
		assert_int_equal(e.seq, seq);
		assert_int_equal(e.type, NBD_CMD_WRITE);
		assert_int_equal(e.offset, seq * 4096);
		assert_non_null(e.payload);
		const uint8_t *p = e.payload;
		for (uint32_t i = 0; i < e.length; i++)
			assert_int_equal(p[i], seq & 0xff);
	}
	assert_false(replay_log_next(l, &cur, &e));
}

static void expect_empty(const struct replay_log *l)
{
	struct replay_cursor cur = replay_log_begin(l);
	struct replay_entry e;
	assert_int_equal(replay_log_count(l), 0);
	assert_false(replay_log_next(l, &cur, &e));
}

/* A new connection is made: was anything lost since last asked? */
static void expect_loss_on_reconnect(struct replay_log *l, bool lost)
{
	replay_log_reconnected(l);
	assert_int_equal(replay_log_take_loss(l), lost);
}

/* Each test gets an empty log of RING bytes in *state. */
static int ring_setup(void **state)
{
	struct replay_log *l = malloc(sizeof(*l));
	if (l == NULL)
		return -1;
	replay_log_init(l, RING);
	*state = l;
	return 0;
}

static int ring_teardown(void **state)
{
	replay_log_destroy(*state);
	free(*state);
	return 0;
}

static void test_empty_log(void **state)
{
	struct replay_log *l = *state;
	expect_empty(l);
	replay_log_flushed(l, 100);
	expect_empty(l);
	/* Nothing was ever missing: a new connection loses nothing. */
	expect_loss_on_reconnect(l, false);
}

static void test_entries_kept_in_order_with_their_payloads(void **state)
{
	struct replay_log *l = *state;
	append_write(l, 1, PAYLOAD);
	replay_log_append(l, 2, NBD_CMD_TRIM, 1 << 20, 1 << 20, NULL);
	replay_log_append(l, 3, NBD_CMD_WRITE_ZEROES, 2 << 20, 4096, NULL);
	append_write(l, 4, 100); /* not a multiple of 64 */
	assert_int_equal(replay_log_count(l), 4);

	struct replay_cursor cur = replay_log_begin(l);
	struct replay_entry e;
	assert_true(replay_log_next(l, &cur, &e));
	assert_int_equal(e.seq, 1);
	assert_int_equal(((const uint8_t *)e.payload)[PAYLOAD - 1], 1);
	assert_true(replay_log_next(l, &cur, &e));
	assert_int_equal(e.seq, 2);
	assert_int_equal(e.type, NBD_CMD_TRIM);
	assert_int_equal(e.offset, 1 << 20);
	assert_int_equal(e.length, 1 << 20); /* the range, without a payload */
	assert_null(e.payload);
	assert_true(replay_log_next(l, &cur, &e));
	assert_int_equal(e.type, NBD_CMD_WRITE_ZEROES);
	assert_int_equal(e.length, 4096);
	assert_null(e.payload);
	assert_true(replay_log_next(l, &cur, &e));
	assert_int_equal(e.seq, 4);
	assert_int_equal(e.length, 100);
	assert_int_equal(((const uint8_t *)e.payload)[0], 4);
	assert_int_equal(((const uint8_t *)e.payload)[99], 4);
	assert_false(replay_log_next(l, &cur, &e));
}

/* Ten entries fill the ring to its last byte; the eleventh overflows it. */
static void test_full_ring(void **state)
{
	struct replay_log *l = *state;
	append_writes(l, 1, 10);
	expect_writes(l, 1, 10);
	expect_loss_on_reconnect(l, false);

	append_write(l, 11, PAYLOAD);
	/* What it held no longer covers everything unflushed: dropped. */
	expect_empty(l);
	expect_loss_on_reconnect(l, true);
	assert_false(replay_log_take_loss(l)); /* reported once */
}

/* A ring smaller than one entry logs nothing, and says so after a reconnect. */
static void test_entry_larger_than_the_ring(void **state)
{
	(void)state;
	struct replay_log small;
	replay_log_init(&small, SPAN - 1);
	append_write(&small, 1, PAYLOAD);
	expect_empty(&small);
	expect_loss_on_reconnect(&small, true);
	replay_log_destroy(&small);
}

/*
 * A flush drops what was acknowledged up to its mark (1-6); appends run to
 * the ring's end (9-10) and wrap to its start (11-13), up to the entries
 * still live (14-16: full again, to the byte); a flush pops across the
 * wrap; once empty, the ring starts over and holds ten again.
 */
static void test_wrap_around(void **state)
{
	struct replay_log *l = *state;
	append_writes(l, 1, 8);
	replay_log_flushed(l, 6);
	expect_writes(l, 7, 8);
	append_writes(l, 9, 13);
	expect_writes(l, 7, 13);
	append_writes(l, 14, 16);
	expect_writes(l, 7, 16);
	expect_loss_on_reconnect(l, false);

	replay_log_flushed(l, 12);
	expect_writes(l, 13, 16);
	replay_log_flushed(l, 16);
	expect_empty(l);
	append_writes(l, 17, 26);
	expect_writes(l, 17, 26);
	expect_loss_on_reconnect(l, false);
}

/*
 * An entry too big for the room left at the ring's end wraps to its start
 * and leaves the end unused: a walk and a flush step over the gap.
 */
static void test_wrap_leaves_a_gap(void **state)
{
	struct replay_log *l = *state;
	append_writes(l, 1, 9); /* 128 bytes left at the end */
	replay_log_flushed(l, 2);  /* 256 free at the start */
	append_write(l, 10, 2 * PAYLOAD); /* 192 bytes: to the start */
	expect_writes(l, 3, 10);
	replay_log_flushed(l, 9);
	expect_writes(l, 10, 10);
	expect_loss_on_reconnect(l, false);
}

/* No room at the end and too little before the oldest entry: overflow. */
static void test_wrap_without_room_overflows(void **state)
{
	struct replay_log *l = *state;
	append_writes(l, 1, 9);
	replay_log_flushed(l, 1);  /* 128 free at the start, 128 at the end */
	append_write(l, 10, 2 * PAYLOAD);
	expect_empty(l);
	expect_loss_on_reconnect(l, true);
}

/*
 * Once incomplete, nothing is logged until a flush covers the last
 * acknowledgement the log missed; a flush that covers only some of them
 * (its mark predates later ones) is not enough.
 */
static void test_overflow_lasts_until_a_flush_covers_it(void **state)
{
	struct replay_log *l = *state;
	append_writes(l, 1, 11); /* 11 overflows */
	append_write(l, 12, PAYLOAD);
	expect_empty(l);
	replay_log_flushed(l, 11); /* 12 is still unlogged */
	append_write(l, 13, PAYLOAD);
	expect_empty(l);
	replay_log_flushed(l, 13);
	append_write(l, 14, PAYLOAD);
	expect_writes(l, 14, 14);
	/* Complete again before the reconnect: nothing lost. */
	expect_loss_on_reconnect(l, false);
}

/* The loss stays reported until asked, even if a flush covers it since. */
static void test_loss_reported_once(void **state)
{
	struct replay_log *l = *state;
	append_writes(l, 1, 11);
	replay_log_reconnected(l);
	replay_log_flushed(l, 11);
	assert_true(replay_log_take_loss(l));
	assert_false(replay_log_take_loss(l));
	/* A replayed entry the new server refused is a loss too. */
	replay_log_mark_lost(l);
	assert_true(replay_log_take_loss(l));
	assert_false(replay_log_take_loss(l));
}

/* A flush covers what was acknowledged before it was sent, nothing after. */
static void test_flush_marks(void **state)
{
	struct replay_log *l = *state;
	append_writes(l, 1, 5);
	replay_log_flushed(l, 0); /* sent before any acknowledgement */
	expect_writes(l, 1, 5);
	replay_log_flushed(l, 3);
	expect_writes(l, 4, 5);
	replay_log_flushed(l, 3); /* a second flush with the same mark */
	expect_writes(l, 4, 5);
	append_writes(l, 6, 7);
	replay_log_flushed(l, 5);
	expect_writes(l, 6, 7);
	replay_log_flushed(l, 7);
	expect_empty(l);
}

#define RING_TEST(t) cmocka_unit_test_setup_teardown(t, ring_setup, ring_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		RING_TEST(test_empty_log),
		RING_TEST(test_entries_kept_in_order_with_their_payloads),
		RING_TEST(test_full_ring),
		cmocka_unit_test(test_entry_larger_than_the_ring),
		RING_TEST(test_wrap_around),
		RING_TEST(test_wrap_leaves_a_gap),
		RING_TEST(test_wrap_without_room_overflows),
		RING_TEST(test_overflow_lasts_until_a_flush_covers_it),
		RING_TEST(test_loss_reported_once),
		RING_TEST(test_flush_marks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
