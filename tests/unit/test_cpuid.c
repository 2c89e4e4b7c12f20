#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <linux/kvm.h>

#include "cpuid.h"

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid_entry2 *e, unsigned int n,
					    uint32_t fn, uint32_t idx)
{
	for (unsigned int i = 0; i < n; i++)
		if (e[i].function == fn && e[i].index == idx)
			return &e[i];
	return NULL;
}

static void test_build(void **state)
{
	struct kvm_cpuid_entry2 in[5], out[5 + CPUID_EXTRA_ENTRIES];
	(void)state;
	memset(in, 0, sizeof(in));
	in[0].function = 0;
	in[0].eax = 0xd; /* max basic leaf */
	in[1].function = 1;
	in[1].ebx = 0xff00abcd;
	in[2].function = 0xb; /* what current KVM returns: an empty sub-leaf 0 */
	in[3].function = 0x40000000;
	in[3].ebx = 0x4b4d564b;
	in[4].function = 0x80000008;
	in[4].ecx = 0xff;
	unsigned int n = cpuid_build(in, 5, out, 5 + CPUID_EXTRA_ENTRIES, 3, 4);
	assert_int_equal(n, 4 + 3);
	const struct kvm_cpuid_entry2 *l1 = find(out, n, 1, 0);
	assert_true(l1->ecx & (1U << 31));
	assert_int_equal(l1->ebx >> 24, 3);
	assert_int_equal((l1->ebx >> 16) & 0xff, 4);
	assert_int_equal(l1->ebx & 0xffff, 0xabcd);
	assert_true(l1->edx & (1U << 28));
	const struct kvm_cpuid_entry2 *smt = find(out, n, 0xb, 0);
	const struct kvm_cpuid_entry2 *core = find(out, n, 0xb, 1);
	const struct kvm_cpuid_entry2 *end = find(out, n, 0xb, 2);
	assert_non_null(smt);
	assert_non_null(core);
	assert_non_null(end);
	assert_int_equal(smt->ebx, 1);
	assert_int_equal(core->ebx, 4);
	assert_int_equal(core->eax, 2);
	assert_int_equal(core->edx, 3);
	assert_int_equal((end->ecx >> 8) & 0xff, 0); /* invalid level ends the list */
	assert_true(core->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	assert_int_equal(find(out, n, 0x40000000, 0)->ebx, 0x4b4d564b);
	assert_int_equal(find(out, n, 0x80000008, 0)->ecx & 0xff, 3);
	/* No room: never writes past max. */
	assert_int_equal(cpuid_build(in, 5, out, 2, 0, 1), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_build) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
