#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static int parse(struct hv_config *c, char *err, size_t n, const char *const *args)
{
	char *argv[16];
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_cmdline_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
