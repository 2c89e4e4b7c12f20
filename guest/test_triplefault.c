/* triplefault: empty IDT + int3 -> #GP -> #DF -> triple fault (shutdown). */
#include "cpu.h"
#include "io.h"
#include "printf.h"
#include "tests.h"

const char *test_triplefault(void)
{
	kprintf("flint-guest: triplefault: loading empty IDT, int3\n");
	cpu_load_empty_idt();
	__asm__ volatile("int3");
	__asm__ volatile("ud2");
	return "still running after the triple fault";
}
