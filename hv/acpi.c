#include "acpi.h"

#include <stdio.h>
#include <string.h>

#include "aml.h"
#include "boot_layout.h"
#include "flint/guest_abi.h"

#define ACPI_HDR_LEN 36
#define ACPI_OEM_ID "FLINT "
#define ACPI_OEM_TABLE "FLINTHV "

/* FADT (ACPI 6.x) field offsets */
#define FADT_LEN 276
#define FADT_DSDT 40
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS 256
#define FADT_HYPERVISOR_ID 268

#define FADT_F_PWR_BUTTON (1U << 4)  /* no fixed power button */
#define FADT_F_SLP_BUTTON (1U << 5)
#define FADT_F_RESET_REG_SUP (1U << 10)
#define FADT_F_HW_REDUCED (1U << 20)
#define IAPC_VGA_NOT_PRESENT (1U << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1U << 5)

#define GAS_SPACE_IO 1
#define GAS_ACCESS_BYTE 1

/* MCFG: header, 8 reserved bytes, one 16-byte allocation per segment/bus range. */
#define MCFG_LEN (ACPI_HDR_LEN + 8 + 16)
/* I/O BARs, should a device ever have one, go above the platform's ports. */
#define PCI0_IO_WINDOW_MIN 0x1000

#define MADT_PCAT_COMPAT 1U
#define MADT_LAPIC 0
#define MADT_IOAPIC 1

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0 - sum);
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE, 8);
	put32(t + 24, 1);        /* OEM revision */
	memcpy(t + 28, "FLNT", 4); /* creator id */
	put32(t + 32, 1);
}

static void finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = acpi_checksum(t, len);
}

/* Generic Address Structure for a byte-wide I/O port. */
static void gas_io(uint8_t *g, uint16_t port)
{
	g[0] = GAS_SPACE_IO;
	g[1] = 8; /* bit width */
	g[2] = 0;
	g[3] = GAS_ACCESS_BYTE;
	put64(g + 4, port);
}

/* Name (\_S5_, Package () { 5, 5 }): the SLP_TYP Linux writes to power off. */
static void dsdt_s5(struct aml *body)
{
	static const uint8_t package_op = 0x12;
	struct aml pkg, obj;

	aml_init(&pkg);
	aml_byte(&pkg, 2); /* NumElements */
	aml_integer(&pkg, FLINT_ACPI_SLP_TYP_S5);
	aml_integer(&pkg, FLINT_ACPI_SLP_TYP_S5);
	aml_init(&obj);
	aml_package_op(&obj, &package_op, 1, &pkg);
	aml_name(body, "\\_S5_", &obj);
}

/*
 * COM1 as a PNP0501 device.  A hardware-reduced platform has no legacy PIC,
 * so Linux preallocates no ISA IRQs: the UART's IRQ 4 only exists because
 * this _CRS names it (the same approach as Firecracker's DSDT).
 */
static void dsdt_com1(struct aml *sb)
{
	static const uint8_t crs[] = {
		0x47, 0x01,                             /* I/O port, 16-bit decode */
		FLINT_COM1_PORT & 0xff, FLINT_COM1_PORT >> 8, /* min */
		FLINT_COM1_PORT & 0xff, FLINT_COM1_PORT >> 8, /* max */
		0x01, 0x08,                             /* alignment, length */
		0x22, 1 << FLINT_COM1_IRQ, 0x00,        /* IRQNoFlags () { 4 } */
		0x79, 0x00,                             /* end tag */
	};
	struct aml dev, obj;

	aml_init(&dev);
	aml_init(&obj);
	aml_integer(&obj, aml_eisa_id("PNP0501"));
	aml_name(&dev, "_HID", &obj);
	aml_init(&obj);
	aml_integer(&obj, 0);
	aml_name(&dev, "_UID", &obj);
	aml_init(&obj);
	aml_buffer(&obj, crs, sizeof(crs));
	aml_name(&dev, "_CRS", &obj);
	aml_device(sb, "COM1", &dev);
}

static void name_int(struct aml *dev, const char *name, uint64_t v)
{
	struct aml obj;

	aml_init(&obj);
	aml_integer(&obj, v);
	aml_name(dev, name, &obj);
}

/*
 * The PCI host bridge: segment 0, bus 0 only.  Its _CRS names the config
 * ports, an I/O window above the platform's ports and the 32-bit MMIO window
 * the BARs live in.  There is no 64-bit window: BARs stay below 4 GiB.
 */
static void dsdt_pci0(struct aml *sb)
{
	struct aml dev, crs, obj;

	aml_init(&crs);
	aml_res_word(&crs, AML_RES_BUS, 0, 0, 0);
	aml_res_io(&crs, FLINT_PCI_CONFIG_ADDR_PORT, FLINT_PCI_CONFIG_ADDR_PORT, 1, 8);
	aml_res_word(&crs, AML_RES_IO, AML_RES_IO_ENTIRE, PCI0_IO_WINDOW_MIN, 0xffff);
	aml_res_dword(&crs, AML_RES_MEMORY, AML_RES_MEM_RW, (uint32_t)FLINT_PCI_MMIO32_BASE,
		      (uint32_t)(FLINT_PCI_MMIO32_BASE + FLINT_PCI_MMIO32_SIZE - 1));
	aml_res_end(&crs);
	aml_init(&dev);
	name_int(&dev, "_HID", aml_eisa_id("PNP0A08"));
	name_int(&dev, "_CID", aml_eisa_id("PNP0A03"));
	name_int(&dev, "_SEG", 0);
	name_int(&dev, "_BBN", 0);
	name_int(&dev, "_UID", 0);
	aml_init(&obj);
	aml_buffer(&obj, crs.buf, crs.len);
	if (crs.overflow)
		obj.overflow = true;
	aml_name(&dev, "_CRS", &obj);
	aml_device(sb, "PCI0", &dev);
}

/*
 * A motherboard resource (PNP0C02) covering the ECAM area: Linux only trusts
 * MCFG when the area is reserved by e820 or by such a device.
 */
static void dsdt_ecam_reservation(struct aml *sb)
{
	struct aml dev, crs, obj;

	aml_init(&crs);
	aml_res_mem32_fixed(&crs, (uint32_t)FLINT_PCI_ECAM_BASE, (uint32_t)FLINT_PCI_ECAM_SIZE);
	aml_res_end(&crs);
	aml_init(&dev);
	name_int(&dev, "_HID", aml_eisa_id("PNP0C02"));
	name_int(&dev, "_UID", 1);
	aml_init(&obj);
	aml_buffer(&obj, crs.buf, crs.len);
	aml_name(&dev, "_CRS", &obj);
	aml_device(sb, "MRES", &dev);
}

static uint32_t build_dsdt(uint8_t *t, size_t room)
{
	struct aml body, sb;

	aml_init(&body);
	dsdt_s5(&body);
	aml_init(&sb);
	dsdt_com1(&sb);
	dsdt_pci0(&sb);
	dsdt_ecam_reservation(&sb);
	aml_scope(&body, "\\_SB_", &sb);
	if (body.overflow || ACPI_HDR_LEN + body.len > room)
		return 0;
	uint32_t len = (uint32_t)(ACPI_HDR_LEN + body.len);
	header(t, "DSDT", len, 2);
	memcpy(t + ACPI_HDR_LEN, body.buf, body.len);
	finish(t, len);
	return len;
}

static uint32_t build_fadt(uint8_t *t, uint64_t dsdt)
{
	header(t, "FACP", FADT_LEN, 6);
	put32(t + FADT_DSDT, (uint32_t)dsdt);
	put16(t + FADT_IAPC_BOOT_ARCH, IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT);
	put32(t + FADT_FLAGS, FADT_F_HW_REDUCED | FADT_F_RESET_REG_SUP |
			      FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON);
	gas_io(t + FADT_RESET_REG, FLINT_ACPI_RESET_PORT);
	t[FADT_RESET_VALUE] = FLINT_ACPI_RESET_VALUE;
	t[FADT_MINOR_VERSION] = 5;
	put64(t + FADT_X_DSDT, dsdt);
	gas_io(t + FADT_SLEEP_CONTROL, FLINT_ACPI_SLEEP_CONTROL_PORT);
	gas_io(t + FADT_SLEEP_STATUS, FLINT_ACPI_SLEEP_STATUS_PORT);
	memcpy(t + FADT_HYPERVISOR_ID, "FLINTHV\0", 8);
	finish(t, FADT_LEN);
	return FADT_LEN;
}

static uint32_t build_madt(uint8_t *t, unsigned int vcpus)
{
	uint32_t len = ACPI_HDR_LEN + 8;

	put32(t + ACPI_HDR_LEN, (uint32_t)FLINT_LAPIC_ADDR);
	put32(t + ACPI_HDR_LEN + 4, MADT_PCAT_COMPAT);
	for (unsigned int i = 0; i < vcpus; i++) {
		uint8_t *e = t + len;
		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i;     /* ACPI processor UID */
		e[3] = (uint8_t)i;     /* APIC ID, matches CPUID */
		put32(e + 4, 1);       /* enabled */
		len += 8;
	}
	uint8_t *io = t + len;
	io[0] = MADT_IOAPIC;
	io[1] = 12;
	io[2] = 0; /* I/O APIC id; KVM's in-kernel IOAPIC */
	io[3] = 0;
	put32(io + 4, (uint32_t)FLINT_IOAPIC_ADDR);
	put32(io + 8, 0); /* GSI base */
	len += 12;
	header(t, "APIC", len, 5);
	finish(t, len);
	return len;
}

static uint32_t build_mcfg(uint8_t *t)
{
	uint8_t *e = t + ACPI_HDR_LEN + 8;

	header(t, "MCFG", MCFG_LEN, 1);
	put64(e, FLINT_PCI_ECAM_BASE);
	put16(e + 8, 0);  /* segment */
	e[10] = 0;        /* start bus */
	e[11] = (uint8_t)((FLINT_PCI_ECAM_SIZE >> 20) - 1); /* end bus */
	finish(t, MCFG_LEN);
	return MCFG_LEN;
}

static uint32_t build_xsdt(uint8_t *t, const uint64_t *tables, unsigned int n)
{
	uint32_t len = ACPI_HDR_LEN + 8 * n;
	header(t, "XSDT", len, 1);
	for (unsigned int i = 0; i < n; i++)
		put64(t + ACPI_HDR_LEN + 8 * i, tables[i]);
	finish(t, len);
	return len;
}

static void build_rsdp(uint8_t *r, uint64_t xsdt)
{
	memset(r, 0, 36);
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, ACPI_OEM_ID, 6);
	r[15] = 2; /* ACPI 2.0+ */
	put32(r + 20, 36);
	put64(r + 24, xsdt);
	r[8] = acpi_checksum(r, 20);
	r[32] = acpi_checksum(r, 36);
}

static uint64_t align16(uint64_t v)
{
	return (v + 15) & ~15ULL;
}

int acpi_build(struct guest_mem *gm, unsigned int vcpus, char *err, size_t errlen)
{
	const uint64_t area = BOOT_ACPI_END - BOOT_ACPI_START;
	uint8_t *base = guest_mem_ptr(gm, BOOT_ACPI_START, area);

	/* 8 bytes per LAPIC entry; the BIOS area holds thousands. */
	if (base == NULL || vcpus == 0 || vcpus > 255) {
		snprintf(err, errlen, "ACPI: cannot describe %u vCPUs", vcpus);
		return -1;
	}
	memset(base, 0, area);
	uint64_t off = 64; /* the RSDP sits at the start of the area */
	uint64_t dsdt = BOOT_ACPI_START + off;
	uint32_t dsdt_len = build_dsdt(base + off, area - off);
	if (dsdt_len == 0) {
		snprintf(err, errlen, "ACPI: DSDT does not fit");
		return -1;
	}
	off = align16(off + dsdt_len);
	uint64_t fadt = BOOT_ACPI_START + off;
	off = align16(off + build_fadt(base + off, dsdt));
	uint64_t madt = BOOT_ACPI_START + off;
	off = align16(off + build_madt(base + off, vcpus));
	uint64_t mcfg = BOOT_ACPI_START + off;
	off = align16(off + build_mcfg(base + off));
	uint64_t tables[] = { fadt, madt, mcfg };
	uint64_t xsdt = BOOT_ACPI_START + off;
	build_xsdt(base + off, tables, sizeof(tables) / sizeof(tables[0]));
	build_rsdp(base + (FLINT_ACPI_RSDP_ADDR - BOOT_ACPI_START), xsdt);
	return 0;
}
