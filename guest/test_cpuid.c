/*
 * cpuid: CPUID.1:ECX[31] (hypervisor present) and the KVM signature at leaf
 * 0x40000000.  cpuid.expect=kvm (default) requires both, cpuid.expect=hv only
 * the hypervisor bit, cpuid.expect=none nothing (for QEMU TCG).
 */
#include "bootinfo.h"
#include "io.h"
#include "printf.h"
#include "tests.h"
#include "util.h"

const char *test_cpuid(void)
{
	uint32_t a, b, c, d;
	char sig[13];
	size_t len;
	const char *expect = cmdline_get("cpuid.expect", &len);
	int level = 2; /* 2 = kvm, 1 = hv, 0 = none */

	if (expect && token_eq(expect, len, "none"))
		level = 0;
	else if (expect && token_eq(expect, len, "hv"))
		level = 1;
	else if (expect && !token_eq(expect, len, "kvm"))
		return "bad cpuid.expect (kvm, hv or none)";

	cpuid(1, 0, &a, &b, &c, &d);
	bool hv = c >> 31;
	cpuid(0x40000000, 0, &a, &b, &c, &d);
	memcpy(sig, &b, 4);
	memcpy(sig + 4, &c, 4);
	memcpy(sig + 8, &d, 4);
	sig[12] = '\0';
	for (int i = 0; i < 12; i++)
		if (sig[i] && (sig[i] < 0x20 || sig[i] > 0x7e))
			sig[i] = '?';
	kprintf("flint-guest: cpuid: hypervisor bit %d, leaf 0x40000000 max "
		"0x%x signature \"%s\"\n", hv, a, sig);

	if (level >= 1 && !hv)
		return "CPUID.1:ECX.hypervisor is clear";
	if (level >= 2 && memcmp(sig, "KVMKVMKVM\0\0\0", 12) != 0)
		return test_fail("signature \"%s\", want KVMKVMKVM", sig);
	return NULL;
}
