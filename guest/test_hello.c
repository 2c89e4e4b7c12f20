/* hello: print the command line and the memory map; always passes. */
#include "bootinfo.h"
#include "printf.h"
#include "tests.h"

static const char *e820_name(uint32_t type)
{
	switch (type) {
	case 1: return "ram";
	case 2: return "reserved";
	case 3: return "acpi";
	case 4: return "nvs";
	case 5: return "unusable";
	default: return "other";
	}
}

const char *test_hello(void)
{
	kprintf("flint-guest: hello: start_info %s version %u\n",
		bootinfo.valid ? "ok" : "missing", bootinfo.version);
	kprintf("flint-guest: hello: cmdline \"%s\"\n", bootinfo.cmdline);
	for (unsigned i = 0; i < bootinfo.nmem; i++) {
		const struct hvm_memmap_table_entry *m = &bootinfo.mem[i];
		kprintf("flint-guest: hello: mem 0x%016lx size 0x%lx %s (%u)\n",
			m->addr, m->size, e820_name(m->type), m->type);
	}
	return NULL;
}
