#include "exit.h"

#include "acpi.h"
#include "flint/guest_abi.h"
#include "io.h"
#include "printf.h"

void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void debug_exit(uint32_t v)
{
	outl(FLINT_DEBUG_EXIT_PORT, v);
	halt_forever();
}

void guest_finish(unsigned failed)
{
	if (failed == 0) {
		acpi_poweroff();
		/* Still running: no usable ACPI power-off; exit status 1. */
		kprintf("flint-guest: ACPI power-off failed, using debug exit\n");
		debug_exit(0);
	}
	debug_exit(failed);
}
