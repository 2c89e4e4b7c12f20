/* card-local's file store: round trips, zeroing, refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "file_backend.h"

static char path[64];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/flint-file-backend.%d", (int)getpid());
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void test_roundtrip_and_zero(void **state)
{
	struct blk_backend b;
	char err[128];
	uint8_t buf[8192], back[8192], zero[8192] = { 0 };
	(void)state;
	assert_int_equal(file_backend_open(&b, path, 1 << 20, 4096, err, sizeof(err)), 0);
	assert_int_equal(b.size_bytes, 1 << 20);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(b.ops->write(b.ctx, 4096, buf, sizeof(buf)), 0);
	assert_int_equal(b.ops->flush(b.ctx), 0);
	assert_int_equal(b.ops->read(b.ctx, 4096, back, sizeof(back)), 0);
	assert_memory_equal(buf, back, sizeof(buf));
	assert_int_equal(b.ops->write_zeroes(b.ctx, 4096, sizeof(buf)), 0);
	assert_int_equal(b.ops->read(b.ctx, 4096, back, sizeof(back)), 0);
	assert_memory_equal(zero, back, sizeof(back));
	b.ops->close(b.ctx);
}

static void test_rejects(void **state)
{
	struct blk_backend b;
	char err[128];
	(void)state;
	assert_int_equal(file_backend_open(&b, "/nonexistent/dir/x", 0, 4096, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent"));
	assert_int_equal(file_backend_open(&b, path, 1 << 20, 1000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "block size"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_zero),
		cmocka_unit_test(test_rejects),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
