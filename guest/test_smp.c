/* smp: count enabled CPUs in the ACPI MADT, compare with smp.expect=N. */
#include "acpi.h"
#include "bootinfo.h"
#include "printf.h"
#include "tests.h"

const char *test_smp(void)
{
	uint64_t want;

	if (!cmdline_get_u64("smp.expect", &want))
		return "smp.expect=N missing or malformed";
	if (!acpi.have_madt)
		return "no ACPI MADT";
	kprintf("flint-guest: smp: MADT lists %u enabled CPUs\n", acpi.ncpus);
	if (acpi.ncpus != want)
		return test_fail("MADT has %u CPUs, expected %lu", acpi.ncpus,
				 want);
	return NULL;
}
