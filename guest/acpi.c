#include "acpi.h"

#include "bootinfo.h"
#include "flint/guest_abi.h"
#include "io.h"
#include "printf.h"
#include "util.h"

struct acpi_info acpi;

#define LOW_4G 0x100000000ULL
#define FADT_HW_REDUCED (1u << 20)
#define PM1_SLP_EN (1u << 13)

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static const uint8_t *phys(uint64_t pa)
{
	return pa && pa < LOW_4G ? (const uint8_t *)(uintptr_t)pa : NULL;
}

static uint8_t checksum(const uint8_t *p, uint32_t len)
{
	uint8_t sum = 0;
	while (len--)
		sum += *p++;
	return sum;
}

static bool rsdp_valid(const uint8_t *p)
{
	if (memcmp(p, "RSD PTR ", 8) != 0 || checksum(p, 20) != 0)
		return false;
	if (p[15] >= 2 && (rd32(p + 20) < 36 || rd32(p + 20) > 4096 ||
			   checksum(p, rd32(p + 20)) != 0))
		return false;
	return true;
}

static uint64_t find_rsdp(void)
{
	const uint8_t *p = phys(bootinfo.rsdp_paddr);

	if (p && rsdp_valid(p))
		return bootinfo.rsdp_paddr;
	if (p)
		kprintf("flint-guest: acpi: start_info rsdp 0x%lx invalid\n",
			bootinfo.rsdp_paddr);
	/* flint-hv puts it at the start of the BIOS area: usually 1 probe. */
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
		if (rsdp_valid((const uint8_t *)(uintptr_t)a))
			return a;
	return 0;
}

/* A table header that looks sane, or NULL. */
static const uint8_t *table_at(uint64_t pa)
{
	const uint8_t *t = phys(pa);

	if (!t || rd32(t + 4) < 36 || pa + rd32(t + 4) > LOW_4G)
		return NULL;
	return t;
}

static const uint8_t *find_table(const char sig[4])
{
	const uint8_t *rsdp = phys(acpi.rsdp);
	const uint8_t *sdt = NULL;
	unsigned esize = 4;

	if (!rsdp)
		return NULL;
	if (rsdp[15] >= 2 && rd64(rsdp + 24)) {
		sdt = table_at(rd64(rsdp + 24));
		esize = 8;
	}
	if (!sdt) {
		sdt = table_at(rd32(rsdp + 16));
		esize = 4;
	}
	if (!sdt)
		return NULL;
	uint32_t n = (rd32(sdt + 4) - 36) / esize;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = sdt + 36 + i * esize;
		const uint8_t *t = table_at(esize == 8 ? rd64(e) : rd32(e));
		if (t && memcmp(t, sig, 4) == 0)
			return t;
	}
	return NULL;
}

/* Decode one AML integer (ZeroOp, OneOp, BytePrefix, WordPrefix). */
static bool aml_int(const uint8_t **pp, const uint8_t *end, uint8_t *out)
{
	const uint8_t *p = *pp;

	if (p >= end)
		return false;
	switch (*p) {
	case 0x00:
	case 0x01:
		*out = *p;
		*pp = p + 1;
		return true;
	case 0x0a:
		if (p + 2 > end)
			return false;
		*out = p[1];
		*pp = p + 2;
		return true;
	case 0x0b:
		if (p + 3 > end)
			return false;
		*out = p[1];
		*pp = p + 3;
		return true;
	default:
		return false;
	}
}

/* Find Name(_S5_, Package() { SLP_TYPa, SLP_TYPb, ... }) in the DSDT. */
static void parse_s5(const uint8_t *dsdt)
{
	uint32_t len = rd32(dsdt + 4);
	const uint8_t *end = dsdt + len;

	for (const uint8_t *p = dsdt + 36; p + 4 < end; p++) {
		if (memcmp(p, "_S5_", 4) != 0)
			continue;
		if (!(p[-1] == 0x08 || (p[-1] == '\\' && p[-2] == 0x08)))
			continue;
		const uint8_t *q = p + 4;
		if (q >= end || *q++ != 0x12) /* PackageOp */
			continue;
		if (q >= end)
			return;
		q += 1 + (*q >> 6); /* PkgLength */
		q++;                /* NumElements */
		if (aml_int(&q, end, &acpi.s5_typa) &&
		    aml_int(&q, end, &acpi.s5_typb))
			acpi.have_s5 = true;
		return;
	}
}

static void parse_fadt(const uint8_t *f)
{
	uint32_t len = rd32(f + 4);

	acpi.have_fadt = true;
	if (len >= 116)
		acpi.hw_reduced = rd32(f + 112) & FADT_HW_REDUCED;
	if (len >= 256) {
		const uint8_t *gas = f + 244; /* SLEEP_CONTROL_REG */
		acpi.sleep_space = gas[0];
		acpi.sleep_addr = rd64(gas + 4);
	}
	if (len >= 72) {
		acpi.pm1a_cnt = rd32(f + 64);
		acpi.pm1b_cnt = rd32(f + 68);
	}
	if (len >= 184 && f[172] == 1 && rd64(f + 176)) /* X_PM1a_CNT_BLK */
		acpi.pm1a_cnt = (uint32_t)rd64(f + 176);

	uint64_t dsdt_pa = rd32(f + 40);
	if (len >= 148 && rd64(f + 140))
		dsdt_pa = rd64(f + 140);
	const uint8_t *dsdt = table_at(dsdt_pa);
	if (!acpi.hw_reduced && dsdt && memcmp(dsdt, "DSDT", 4) == 0)
		parse_s5(dsdt);
}

static void parse_madt(const uint8_t *m)
{
	uint32_t len = rd32(m + 4);
	const uint8_t *p = m + 44, *end = m + len;

	acpi.have_madt = true;
	while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
		if (p[0] == 0 && p[1] >= 8 && (rd32(p + 4) & 1))
			acpi.ncpus++; /* Processor Local APIC, enabled */
		else if (p[0] == 9 && p[1] >= 16 && (rd32(p + 8) & 1))
			acpi.ncpus++; /* Processor Local x2APIC, enabled */
		p += p[1];
	}
}

void acpi_init(void)
{
	const uint8_t *t;

	acpi.rsdp = find_rsdp();
	if (!acpi.rsdp) {
		kprintf("flint-guest: acpi: no RSDP\n");
		return;
	}
	if ((t = find_table("FACP")))
		parse_fadt(t);
	if ((t = find_table("APIC")))
		parse_madt(t);

	kprintf("flint-guest: acpi: rsdp 0x%lx fadt %s", acpi.rsdp,
		acpi.have_fadt ? (acpi.hw_reduced ? "hw-reduced" : "legacy")
			       : "none");
	if (acpi.hw_reduced)
		kprintf(" sleep-ctl %s 0x%lx",
			acpi.sleep_space == 1 ? "io" : "mmio", acpi.sleep_addr);
	else if (acpi.have_fadt)
		kprintf(" pm1a-cnt 0x%x s5 %s %u", acpi.pm1a_cnt,
			acpi.have_s5 ? "found" : "missing", acpi.s5_typa);
	if (acpi.have_madt)
		kprintf(" madt %u cpus", acpi.ncpus);
	kprintf("\n");
}

void acpi_poweroff(void)
{
	if (acpi.hw_reduced && acpi.sleep_addr) {
		uint8_t v = (FLINT_ACPI_SLP_TYP_S5 << 2) | FLINT_ACPI_SLP_EN;
		if (acpi.sleep_space == 1 && acpi.sleep_addr <= 0xffff)
			outb((uint16_t)acpi.sleep_addr, v);
		else if (acpi.sleep_space == 0 && acpi.sleep_addr < LOW_4G)
			mmio_write8(acpi.sleep_addr, v);
	} else if (acpi.have_fadt && !acpi.hw_reduced && acpi.have_s5 &&
		   acpi.pm1a_cnt && acpi.pm1a_cnt <= 0xffff) {
		/* Legacy PM1 control (QEMU pc/q35): SLP_TYP in bits 10-12. */
		outw((uint16_t)acpi.pm1a_cnt,
		     (uint16_t)((acpi.s5_typa & 7) << 10) | PM1_SLP_EN);
		if (acpi.pm1b_cnt && acpi.pm1b_cnt <= 0xffff)
			outw((uint16_t)acpi.pm1b_cnt,
			     (uint16_t)((acpi.s5_typb & 7) << 10) | PM1_SLP_EN);
	} else {
		return;
	}
	/*
	 * A VMM handles the write synchronously (flint-hv) or soon after
	 * (QEMU's main loop); give it ~0.1-0.3 s before declaring failure.
	 */
	tsc_delay(300ULL * 1000 * 1000);
}
