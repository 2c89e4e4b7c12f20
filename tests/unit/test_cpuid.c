#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cpuid.h"

static void test_patch(void **state)
{
	struct kvm_cpuid_entry2 e[4];
	(void)state;
	memset(e, 0, sizeof(e));
	e[0].function = 1;
	e[0].ebx = 0xff00abcd;
	e[1].function = 0xb;
	e[1].index = 1;
	e[2].function = 0x40000000;
	e[2].ebx = 0x4b4d564b;
	e[3].function = 0x80000008;
	e[3].ecx = 0xff;
	cpuid_patch(e, 4, 3, 4);
	assert_true(e[0].ecx & (1U << 31));
	assert_int_equal(e[0].ebx >> 24, 3);
	assert_int_equal((e[0].ebx >> 16) & 0xff, 4);
	assert_int_equal(e[0].ebx & 0xffff, 0xabcd);
	assert_true(e[0].edx & (1U << 28));
	assert_int_equal(e[1].edx, 3);
	assert_int_equal(e[1].ebx, 4);
	assert_int_equal(e[1].eax, 2);
	assert_int_equal(e[2].ebx, 0x4b4d564b); /* KVM leaves pass through */
	assert_int_equal(e[3].ecx & 0xff, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_patch) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
