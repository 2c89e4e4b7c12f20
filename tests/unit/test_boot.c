/* Boot structures: memory map, initrd placement, ACPI tables, translator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "acpi.h"
#include "boot_layout.h"
#include "boot_setup.h"
#include "flint/guest_abi.h"
#include "guest_mem.h"

static void test_translator(void **state)
{
	struct guest_mem gm;
	(void)state;
	assert_int_equal(guest_mem_create(&gm, 64ULL << 20), 0);
	assert_non_null(guest_mem_ptr(&gm, 0, 64ULL << 20));
	assert_non_null(guest_mem_ptr(&gm, (64ULL << 20) - 1, 1));
	assert_null(guest_mem_ptr(&gm, (64ULL << 20) - 1, 2));
	assert_null(guest_mem_ptr(&gm, 64ULL << 20, 1));
	assert_null(guest_mem_ptr(&gm, 0, 0));
	assert_null(guest_mem_ptr(&gm, ~0ULL, 2));
	assert_null(guest_mem_ptr(&gm, 16, ~0ULL));
	guest_mem_destroy(&gm);
}

static void test_layout_split(void **state)
{
	struct guest_mem gm;
	(void)state;
	guest_mem_layout(&gm, 4ULL << 30);
	assert_int_equal(gm.nr_regions, 2);
	assert_int_equal(gm.regions[0].size, FLINT_MMIO_GAP_START);
	assert_int_equal(gm.regions[1].gpa, FLINT_MMIO_GAP_END);
	assert_int_equal(gm.regions[1].size, (4ULL << 30) - FLINT_MMIO_GAP_START);
	assert_int_equal(gm.regions[1].offset, FLINT_MMIO_GAP_START);
	guest_mem_layout(&gm, 1ULL << 30);
	assert_int_equal(gm.nr_regions, 1);

	struct e820_entry map[E820_MAX_ENTRIES];
	guest_mem_layout(&gm, 4ULL << 30);
	unsigned int n = boot_e820_build(&gm, map, E820_MAX_ENTRIES);
	assert_int_equal(n, 4);
	uint64_t ram = 0;
	for (unsigned int i = 0; i < n; i++) {
		if (map[i].type == E820_RAM)
			ram += map[i].size;
		/* No RAM entry reaches into the MMIO hole. */
		if (map[i].type == E820_RAM && map[i].addr < FLINT_MMIO_GAP_END)
			assert_true(map[i].addr + map[i].size <= FLINT_MMIO_GAP_START);
	}
	assert_int_equal(ram, (4ULL << 30) - (BOOT_KERNEL_ADDR - BOOT_EBDA_START));
}

static void test_initrd_placement(void **state)
{
	struct guest_mem gm;
	struct boot_image bi = { .kernel_end = 0x500000, .initrd_max = 0xffffffff };
	uint64_t gpa;
	char err[256];
	(void)state;
	guest_mem_layout(&gm, 64ULL << 20);
	assert_int_equal(boot_place_initrd(&gm, &bi, 12345, &gpa, err, sizeof(err)), 0);
	assert_int_equal(gpa & 0xfff, 0);
	assert_true(gpa + 12345 <= 64ULL << 20);
	assert_true(gpa >= 0x500000);
	bi.initrd_max = 0x1ffffff;
	assert_int_equal(boot_place_initrd(&gm, &bi, 4096, &gpa, err, sizeof(err)), 0);
	assert_true(gpa + 4096 <= 0x2000000);
	assert_int_equal(boot_place_initrd(&gm, &bi, 60ULL << 20, &gpa, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not fit"));
	assert_int_equal(boot_place_initrd(&gm, &bi, ~0ULL, &gpa, err, sizeof(err)), -1);
}

static const uint8_t *find_table(const uint8_t *base, const char *sig)
{
	const uint8_t *rsdp = base + (FLINT_ACPI_RSDP_ADDR - BOOT_ACPI_START);
	uint64_t xsdt_addr;
	uint32_t len;
	memcpy(&xsdt_addr, rsdp + 24, 8);
	const uint8_t *xsdt = base + (xsdt_addr - BOOT_ACPI_START);
	memcpy(&len, xsdt + 4, 4);
	for (uint32_t off = 36; off < len; off += 8) {
		uint64_t a;
		memcpy(&a, xsdt + off, 8);
		const uint8_t *t = base + (a - BOOT_ACPI_START);
		if (memcmp(t, sig, 4) == 0)
			return t;
	}
	return NULL;
}

static void check_sum(const uint8_t *t)
{
	uint32_t len;
	memcpy(&len, t + 4, 4);
	assert_int_equal(acpi_checksum(t, len), 0);
}

static void test_acpi(void **state)
{
	struct guest_mem gm;
	char err[256];
	(void)state;
	assert_int_equal(guest_mem_create(&gm, 32ULL << 20), 0);
	assert_int_equal(acpi_build(&gm, 3, err, sizeof(err)), 0);
	const uint8_t *base = guest_mem_ptr(&gm, BOOT_ACPI_START, BOOT_ACPI_END - BOOT_ACPI_START);
	const uint8_t *rsdp = base + (FLINT_ACPI_RSDP_ADDR - BOOT_ACPI_START);
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(acpi_checksum(rsdp, 20), 0);
	assert_int_equal(acpi_checksum(rsdp, 36), 0);

	const uint8_t *fadt = find_table(base, "FACP");
	const uint8_t *madt = find_table(base, "APIC");
	assert_non_null(fadt);
	assert_non_null(madt);
	check_sum(fadt);
	check_sum(madt);
	uint32_t flags;
	memcpy(&flags, fadt + 112, 4);
	assert_true(flags & (1U << 20)); /* hardware reduced */
	assert_int_equal(fadt[244], 1);   /* sleep control in I/O space */
	uint64_t port;
	memcpy(&port, fadt + 248, 8);
	assert_int_equal(port, FLINT_ACPI_SLEEP_CONTROL_PORT);
	uint64_t dsdt_addr;
	memcpy(&dsdt_addr, fadt + 140, 8);
	const uint8_t *dsdt = base + (dsdt_addr - BOOT_ACPI_START);
	assert_memory_equal(dsdt, "DSDT", 4);
	check_sum(dsdt);
	assert_memory_equal(dsdt + 36, "\x08\\_S5_", 6);
	uint32_t dsdt_len;
	memcpy(&dsdt_len, dsdt + 4, 4);
	assert_non_null(memmem(dsdt, dsdt_len, "COM1", 4));
	assert_non_null(memmem(dsdt, dsdt_len, "\x41\xd0\x05\x01", 4)); /* PNP0501 */

	uint32_t len;
	memcpy(&len, madt + 4, 4);
	unsigned int lapics = 0, ioapics = 0;
	for (uint32_t off = 44; off < len; off += madt[off + 1]) {
		assert_true(madt[off + 1] >= 2);
		if (madt[off] == 0) {
			assert_int_equal(madt[off + 3], lapics); /* APIC ID = index */
			lapics++;
		}
		if (madt[off] == 1)
			ioapics++;
	}
	assert_int_equal(lapics, 3);
	assert_int_equal(ioapics, 1);
	assert_int_equal(acpi_build(&gm, 0, err, sizeof(err)), -1);
	guest_mem_destroy(&gm);
}

static void test_boot_setup_pvh(void **state)
{
	struct guest_mem gm;
	struct boot_image bi = { .proto = BOOT_PROTO_PVH, .entry = 0x100000,
				 .kernel_end = 0x200000, .cmdline_max = 4095,
				 .initrd_max = 0xffffffff };
	struct boot_initrd initrd = { .gpa = 0x300000, .size = 100 };
	struct boot_cpu_state cpu;
	char err[256];
	(void)state;
	assert_int_equal(guest_mem_create(&gm, 32ULL << 20), 0);
	assert_int_equal(boot_setup(&gm, &bi, "console=ttyS0", &initrd, 2, &cpu,
				    err, sizeof(err)), 0);
	assert_int_equal(cpu.proto, BOOT_PROTO_PVH);
	assert_int_equal(cpu.info_addr, BOOT_PVH_INFO_ADDR);
	const uint32_t *si = guest_mem_ptr(&gm, BOOT_PVH_INFO_ADDR, 56);
	assert_int_equal(si[0], 0x336ec578);
	assert_int_equal(si[1], 1);
	assert_int_equal(si[3], 1); /* one module: the initrd */
	assert_string_equal(guest_mem_ptr(&gm, BOOT_CMDLINE_ADDR, 14), "console=ttyS0");

	static char long_cmdline[5000];
	memset(long_cmdline, 'x', sizeof(long_cmdline) - 1);
	assert_int_equal(boot_setup(&gm, &bi, long_cmdline, &initrd, 2, &cpu,
				    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "command line"));
	guest_mem_destroy(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_translator),
		cmocka_unit_test(test_layout_split),
		cmocka_unit_test(test_initrd_placement),
		cmocka_unit_test(test_acpi),
		cmocka_unit_test(test_boot_setup_pvh),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
