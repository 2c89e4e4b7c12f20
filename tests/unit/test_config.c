#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static int parse(struct hv_config *c, char *err, size_t n, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"flint-hv";
	while (*args != NULL)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	return hv_config_parse(c, argc, argv, err, n);
}

static void test_defaults(void **state)
{
	struct hv_config c;
	char err[256];
	const char *a[] = { "--kernel", "k", NULL };
	(void)state;
	assert_int_equal(parse(&c, err, sizeof(err), a), 0);
	assert_string_equal(c.kernel_path, "k");
	assert_null(c.initrd_path);
	assert_string_equal(c.cmdline, "");
	assert_int_equal(c.mem_bytes, 128ULL << 20);
	assert_int_equal(c.vcpus, 1);
	assert_false(c.debug_exit);
}

static void test_all_options(void **state)
{
	struct hv_config c;
	char err[256];
	const char *a[] = { "--kernel", "k", "--initrd", "i", "--cmdline", "console=ttyS0",
			    "--mem", "2G", "--cpus", "4", "--debug-exit", "--log-level", "debug",
			    NULL };
	(void)state;
	assert_int_equal(parse(&c, err, sizeof(err), a), 0);
	assert_string_equal(c.initrd_path, "i");
	assert_string_equal(c.cmdline, "console=ttyS0");
	assert_int_equal(c.mem_bytes, 2048ULL << 20);
	assert_int_equal(c.vcpus, 4);
	assert_true(c.debug_exit);
	assert_int_equal(c.log_level, 3);
}

struct bad_case {
	const char *args[8];
	const char *msg;
};

static void test_rejects(void **state)
{
	static const struct bad_case cases[] = {
		{ { NULL }, "--kernel is required" },
		{ { "--kernel", "k", "--mem", "0", NULL }, "outside" },
		{ { "--kernel", "k", "--mem", "15", NULL }, "outside" },
		{ { "--kernel", "k", "--mem", "2000000", NULL }, "outside" },
		{ { "--kernel", "k", "--mem", "99999999999999999999999", NULL }, "not a size" },
		{ { "--kernel", "k", "--mem", "-5", NULL }, "not a size" },
		{ { "--kernel", "k", "--mem", "12X", NULL }, "unknown suffix" },
		{ { "--kernel", "k", "--mem", "9999999G", NULL }, "exceeds" },
		{ { "--kernel", "k", "--cpus", "0", NULL }, "outside" },
		{ { "--kernel", "k", "--cpus", "65", NULL }, "outside" },
		{ { "--kernel", "k", "--cpus", "two", NULL }, "not a number" },
		{ { "--kernel", "k", "--cpus", "2x", NULL }, "not a number" },
		{ { "--kernel", "k", "--frobnicate", NULL }, "unknown option" },
		{ { "--kernel", "k", "stray", NULL }, "unexpected argument" },
		{ { "--kernel", "k", "--log-level", "loud", NULL }, "unknown level" },
		{ { "--kernel", NULL }, "missing value" },
		{ { "--kernel", "k", "--blk", "", NULL }, "exactly one of socket=PATH and fd=N" },
		{ { "--kernel", "k", "--blk", "queues=2", NULL }, "exactly one of socket=PATH and fd=N" },
		{ { "--kernel", "k", "--blk", "socket=/s,fd=5", NULL }, "exactly one of" },
		{ { "--kernel", "k", "--blk", "fd=5,fd=6", NULL }, "fd given twice" },
		{ { "--kernel", "k", "--blk", "fd=2", NULL }, "3..1023" },
		{ { "--kernel", "k", "--blk", "fd=1024", NULL }, "3..1023" },
		{ { "--kernel", "k", "--blk", "fd=5x", NULL }, "3..1023" },
		{ { "--kernel", "k", "--blk", "fd=", NULL }, "unknown or empty key" },
		{ { "--kernel", "k", "--blk", "fd=99999999999", NULL }, "3..1023" },
		{ { "--kernel", "k", "--blk", "fd=7", "--blk", "fd=7", NULL }, "two devices" },
		{ { "--kernel", "k", "--blk", "socket=", NULL }, "unknown or empty key" },
		{ { "--kernel", "k", "--blk", "path=/s", NULL }, "unknown or empty key" },
		{ { "--kernel", "k", "--blk", "socket=/s,", NULL }, "trailing comma" },
		{ { "--kernel", "k", "--blk", "socket=/s,,queues=1", NULL }, "unknown or empty" },
		{ { "--kernel", "k", "--blk", "socket=/s,socket=/t", NULL }, "given twice" },
		{ { "--kernel", "k", "--blk", "socket=/s,queues=1,queues=2", NULL }, "given twice" },
		{ { "--kernel", "k", "--blk", "socket=/s,queues=0", NULL }, "1..16" },
		{ { "--kernel", "k", "--blk", "socket=/s,queues=17", NULL }, "1..16" },
		{ { "--kernel", "k", "--blk", "socket=/s,queues=2x", NULL }, "1..16" },
		{ { "--kernel", "k", "--blk", "socket=/s,queues=-1", NULL }, "1..16" },
		{ { "--kernel", "k", "--blk", "socket=/s,queues=99999999999999999999999", NULL },
		  "1..16" },
		{ { "--kernel", "k", "--blk", NULL }, "missing value" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hv_config c;
		char err[256] = "";
		assert_int_equal(parse(&c, err, sizeof(err), cases[i].args), -1);
		if (strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' does not mention '%s'", i, err, cases[i].msg);
	}
}

static void test_cmdline_too_long(void **state)
{
	static char long_cmdline[HV_CMDLINE_MAX + 2];
	struct hv_config c;
	char err[256];
	(void)state;
	memset(long_cmdline, 'a', sizeof(long_cmdline) - 1);
	const char *a[] = { "--kernel", "k", "--cmdline", long_cmdline, NULL };
	assert_int_equal(parse(&c, err, sizeof(err), a), -1);
	assert_non_null(strstr(err, "--cmdline"));
}

static void test_blk(void **state)
{
	struct hv_config c;
	char err[256];
	(void)state;
	const char *a[] = { "--kernel", "k", "--blk", "socket=/run/a.sock",
			    "--blk", "queues=16,socket=/b", NULL };
	assert_int_equal(parse(&c, err, sizeof(err), a), 0);
	assert_int_equal(c.nr_blk, 2);
	assert_string_equal(c.blk[0].socket_path, "/run/a.sock");
	assert_int_equal(c.blk[0].queues, 1);
	assert_string_equal(c.blk[1].socket_path, "/b");
	assert_int_equal(c.blk[1].queues, 16);
	assert_int_equal(c.blk[0].fd, -1);

	const char *fds[] = { "--kernel", "k", "--blk", "fd=9,queues=2", "--blk", "fd=12", NULL };
	assert_int_equal(parse(&c, err, sizeof(err), fds), 0);
	assert_int_equal(c.nr_blk, 2);
	assert_int_equal(c.blk[0].fd, 9);
	assert_int_equal(c.blk[0].queues, 2);
	assert_string_equal(c.blk[0].socket_path, "");
	assert_int_equal(c.blk[1].fd, 12);

	/* At most HV_BLK_MAX devices. */
	const char *many[4 + 2 * (HV_BLK_MAX + 1)];
	int n = 0;
	many[n++] = "--kernel";
	many[n++] = "k";
	for (int i = 0; i < HV_BLK_MAX + 1; i++) {
		many[n++] = "--blk";
		many[n++] = "socket=/s";
	}
	many[n] = NULL;
	assert_int_equal(parse(&c, err, sizeof(err), many), -1);
	assert_non_null(strstr(err, "at most 8 devices"));
	many[n - 2] = NULL;
	assert_int_equal(parse(&c, err, sizeof(err), many), 0);
	assert_int_equal(c.nr_blk, HV_BLK_MAX);

	/* A unix socket path fits sun_path (107 bytes + NUL). */
	static char path[8 + HV_BLK_PATH_MAX + 2];
	memcpy(path, "socket=/", 8);
	memset(path + 8, 'p', HV_BLK_PATH_MAX - 1);
	const char *ok[] = { "--kernel", "k", "--blk", path, NULL };
	assert_int_equal(parse(&c, err, sizeof(err), ok), 0);
	path[8 + HV_BLK_PATH_MAX - 1] = 'p';
	assert_int_equal(parse(&c, err, sizeof(err), ok), -1);
	assert_non_null(strstr(err, "socket path of 108 bytes"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_cmdline_too_long),
		cmocka_unit_test(test_blk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
