/*
 * 64-bit C entry: boot marker, console, CPU tables, boot info, ACPI, then the
 * tests named by `tests=` on the command line, a summary, and the exit.
 */
#include "acpi.h"
#include "bootinfo.h"
#include "cpu.h"
#include "exit.h"
#include "flint/guest_abi.h"
#include "io.h"
#include "printf.h"
#include "serial.h"
#include "tests.h"
#include "util.h"

#define DEFAULT_TESTS "hello,cpl3,mem"

void guest_main(uint32_t start_info_pa);
void guest_main(uint32_t start_info_pa)
{
	mmio_write8(FLINT_BOOT_MARKER_MMIO, FLINT_BOOT_MARKER_MAGIC);
	serial_init();
	/* Leading newline: firmware (SeaBIOS) may leave a partial line. */
	kprintf("\nflint-guest: boot marker\n");

	cpu_init();
	bootinfo_init(start_info_pa);
	acpi_init();

	size_t len;
	const char *list = cmdline_get("tests", &len);
	if (!list) {
		list = DEFAULT_TESTS;
		len = strlen(list);
	}

	unsigned passed = 0, failed = 0;
	const char *end = list + len;
	while (list < end) {
		const char *name = list;
		while (list < end && *list != ',')
			list++;
		size_t nlen = (size_t)(list - name);
		if (list < end)
			list++; /* skip ',' */
		if (nlen == 0)
			continue;

		const struct test *t = test_find(name, nlen);
		const char *why = t ? t->fn() : "unknown test";
		kprintf("flint-guest: test ");
		serial_write(name, nlen);
		if (why) {
			kprintf(": FAIL %s\n", why);
			failed++;
		} else {
			kprintf(": ok\n");
			passed++;
		}
	}
	kprintf("flint-guest: %u passed, %u failed\n", passed, failed);
	guest_finish(failed);
}
