/*
 * lib/log_limit: a latch lets its burst through until re-armed, a rate limit
 * its burst per window, and the first line after dropped ones says how many
 * were dropped.  Lines are counted from what really reaches stderr.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"
#include "log_limit.h"
#include "test_log_capture.h"

static void test_latch(void **state)
{
	(void)state;
	struct log_limit l = LOG_LIMIT_INIT(1, 0);
	struct log_capture c;

	log_init("test", LOG_INFO);
	capture_begin(&c);
	for (int i = 0; i < 1000; i++)
		log_limited(&l, LOG_WARN, "bad thing %d", i);
	assert_int_equal(capture_end(&c, "bad thing"), 1);
	assert_int_equal(log_limit_rearm(&l), 999);
	assert_int_equal(log_limit_rearm(&l), 0);

	capture_begin(&c);
	log_limited(&l, LOG_WARN, "bad thing again");
	log_limited(&l, LOG_WARN, "bad thing again");
	assert_int_equal(capture_end(&c, "bad thing again"), 1);
	assert_int_equal(log_limit_rearm(&l), 1);
}

static void test_rate_limit_summary(void **state)
{
	(void)state;
	/* A window far longer than the test: every line falls in the first. */
	struct log_limit l;
	struct log_capture c;
	uint64_t sup = 99;

	log_limit_init(&l, 3, 3600u * 1000u);
	capture_begin(&c);
	for (int i = 0; i < 200; i++)
		log_limited(&l, LOG_WARN, "peer misbehaved");
	assert_int_equal(capture_end(&c, "peer misbehaved"), 3);
	/* A new window (forced here): the count comes with its first line. */
	l.passed = 0;
	l.window_start = 0;
	assert_true(log_limit_pass(&l, &sup));
	assert_int_equal(sup, 197);
	capture_begin(&c);
	log_limit_init(&l, 1, 0);
	log_limited(&l, LOG_WARN, "x");
	log_limited(&l, LOG_WARN, "x");
	l.passed = 0;
	log_limited(&l, LOG_WARN, "latch %s", "reopened");
	assert_int_equal(capture_end(&c, "latch reopened (1 similar suppressed)"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_latch),
		cmocka_unit_test(test_rate_limit_summary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
