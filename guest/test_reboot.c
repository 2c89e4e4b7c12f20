/* reboot: i8042 reset pulse (0xfe to port 0x64). */
#include "flint/guest_abi.h"
#include "io.h"
#include "printf.h"
#include "tests.h"

const char *test_reboot(void)
{
	kprintf("flint-guest: reboot: writing 0x%x to port 0x%x\n",
		FLINT_I8042_CMD_RESET, FLINT_I8042_CMD_PORT);
	outb(FLINT_I8042_CMD_PORT, FLINT_I8042_CMD_RESET);
	tsc_delay(300ULL * 1000 * 1000);
	return "still running after the reset request";
}
