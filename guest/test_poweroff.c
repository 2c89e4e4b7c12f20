/* poweroff: ACPI power-off right now, no summary. */
#include "acpi.h"
#include "printf.h"
#include "tests.h"

const char *test_poweroff(void)
{
	kprintf("flint-guest: poweroff: powering off via ACPI\n");
	acpi_poweroff();
	return "still running after the ACPI power-off";
}
