/*
 * ACPI for PCI: the resource descriptor encodings, MCFG (in the XSDT, valid
 * checksum, ECAM base and bus range) and the DSDT's PCI0 and ECAM
 * reservation devices.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "acpi.h"
#include "aml.h"
#include "flint/guest_abi.h"
#include "guest_mem.h"

static void test_resource_descriptors(void **state)
{
	struct aml a;
	(void)state;
	aml_init(&a);
	aml_res_word(&a, AML_RES_BUS, 0, 0, 0);
	static const uint8_t bus[] = { 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0, 0,
				       0, 0, 0x01, 0x00 };
	assert_int_equal(a.len, sizeof(bus));
	assert_memory_equal(a.buf, bus, sizeof(bus));

	aml_init(&a);
	aml_res_word(&a, AML_RES_IO, AML_RES_IO_ENTIRE, 0x1000, 0xffff);
	static const uint8_t io[] = { 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x10,
				      0xff, 0xff, 0, 0, 0x00, 0xf0 };
	assert_memory_equal(a.buf, io, sizeof(io));

	aml_init(&a);
	aml_res_dword(&a, AML_RES_MEMORY, AML_RES_MEM_RW, 0xc0000000, 0xdfffffff);
	static const uint8_t mem[] = { 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0,
				       0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf,
				       0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20 };
	assert_int_equal(a.len, sizeof(mem));
	assert_memory_equal(a.buf, mem, sizeof(mem));

	aml_init(&a);
	aml_res_io(&a, 0xcf8, 0xcf8, 1, 8);
	aml_res_mem32_fixed(&a, 0xe0000000, 0x100000);
	aml_res_end(&a);
	static const uint8_t rest[] = { 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,
					0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0,
					0x00, 0x00, 0x10, 0x00, 0x79, 0x00 };
	assert_int_equal(a.len, sizeof(rest));
	assert_memory_equal(a.buf, rest, sizeof(rest));
}

static uint32_t le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static const uint8_t *table(const struct guest_mem *gm, uint64_t gpa)
{
	const uint8_t *h = guest_mem_ptr(gm, gpa, 36);
	assert_non_null(h);
	uint32_t len = le32(h + 4);
	h = guest_mem_ptr(gm, gpa, len);
	assert_non_null(h);
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + h[i]);
	assert_int_equal(sum, 0);
	return h;
}

static const uint8_t *find(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

static void test_tables(void **state)
{
	struct guest_mem gm;
	char err[128];
	(void)state;
	assert_int_equal(guest_mem_create(&gm, 32ULL << 20), 0);
	assert_int_equal(acpi_build(&gm, 2, err, sizeof(err)), 0);
	const uint8_t *rsdp = guest_mem_ptr(&gm, FLINT_ACPI_RSDP_ADDR, 36);
	const uint8_t *xsdt = table(&gm, le64(rsdp + 24));
	assert_memory_equal(xsdt, "XSDT", 4);
	unsigned int n = (le32(xsdt + 4) - 36) / 8;
	const uint8_t *mcfg = NULL, *dsdt = NULL;
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *t = table(&gm, le64(xsdt + 36 + 8 * i));
		if (memcmp(t, "MCFG", 4) == 0)
			mcfg = t;
		if (memcmp(t, "FACP", 4) == 0)
			dsdt = table(&gm, le64(t + 140));
	}
	assert_non_null(mcfg);
	assert_int_equal(le32(mcfg + 4), 60);
	assert_int_equal(mcfg[8], 1);
	assert_int_equal(le64(mcfg + 44), FLINT_PCI_ECAM_BASE);
	assert_int_equal(mcfg[52] | mcfg[53] << 8, 0); /* segment */
	assert_int_equal(mcfg[54], 0);                 /* start bus */
	assert_int_equal(mcfg[55], 0);                 /* end bus: 1 MiB = bus 0 */

	assert_non_null(dsdt);
	size_t dlen = le32(dsdt + 4);
	/* Device (PCI0) with _HID EisaId("PNP0A08"), _CID EisaId("PNP0A03"). */
	const uint8_t *pci0 = find(dsdt, dlen, "PCI0", 4);
	assert_non_null(pci0);
	assert_int_equal(pci0[-4], 0x5b);
	assert_int_equal(pci0[-3], 0x82);
	static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08 };
	static const uint8_t cid[] = { 0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	static const uint8_t seg[] = { 0x08, '_', 'S', 'E', 'G', 0x00 };
	static const uint8_t bbn[] = { 0x08, '_', 'B', 'B', 'N', 0x00 };
	assert_non_null(find(pci0, dlen - (size_t)(pci0 - dsdt), hid, sizeof(hid)));
	assert_non_null(find(pci0, dlen - (size_t)(pci0 - dsdt), cid, sizeof(cid)));
	assert_non_null(find(pci0, dlen - (size_t)(pci0 - dsdt), seg, sizeof(seg)));
	assert_non_null(find(pci0, dlen - (size_t)(pci0 - dsdt), bbn, sizeof(bbn)));
	/* The bus number and 32-bit MMIO windows, and the ECAM reservation. */
	static const uint8_t busw[] = { 0x88, 0x0d, 0x00, 0x02, 0x0c };
	static const uint8_t mem32[] = { 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf };
	static const uint8_t pnp0c02[] = { 0x0c, 0x41, 0xd0, 0x0c, 0x02 };
	static const uint8_t ecam[] = { 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0,
					0x00, 0x00, 0x10, 0x00 };
	assert_non_null(find(dsdt, dlen, busw, sizeof(busw)));
	assert_non_null(find(dsdt, dlen, mem32, sizeof(mem32)));
	assert_non_null(find(dsdt, dlen, pnp0c02, sizeof(pnp0c02)));
	assert_non_null(find(dsdt, dlen, ecam, sizeof(ecam)));
	guest_mem_destroy(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resource_descriptors),
		cmocka_unit_test(test_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
