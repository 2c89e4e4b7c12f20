#include "tests.h"

#include <stdarg.h>

#include "printf.h"
#include "util.h"

static const struct test all_tests[] = {
	{ "hello", test_hello },
	{ "cpl3", test_cpl3 },
	{ "mem", test_mem },
	{ "cpuid", test_cpuid },
	{ "smp", test_smp },
	{ "blk", test_blk },
	{ "blkmq", test_blkmq },
	{ "blkbad", test_blkbad },
	{ "blkpersist", test_blkpersist },
	{ "blkirq", test_blkirq },
	{ "blkbench", test_blkbench },
	{ "triplefault", test_triplefault },
	{ "reboot", test_reboot },
	{ "badio", test_badio },
	{ "poweroff", test_poweroff },
};

const struct test *test_find(const char *name, unsigned long len)
{
	for (unsigned i = 0; i < ARRAY_SIZE(all_tests); i++)
		if (token_eq(name, len, all_tests[i].name))
			return &all_tests[i];
	return NULL;
}

const char *test_fail(const char *fmt, ...)
{
	static char reason[160];
	char tmp[sizeof(reason)];
	va_list ap;

	/* Through tmp: an argument may be a previous reason. */
	va_start(ap, fmt);
	kvsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(reason, tmp, sizeof(reason));
	return reason;
}
