/*
 * Minimal ACPI: find the RSDP, walk XSDT/RSDT, cache what the tests and the
 * power-off path need (FADT sleep registers, MADT CPU count).  acpi_init()
 * runs before the tests, so the mem test may later overwrite the tables.
 */
#ifndef GUEST_ACPI_H
#define GUEST_ACPI_H

#include <stdbool.h>
#include <stdint.h>

struct acpi_info {
	uint64_t rsdp;        /* 0: not found */
	bool have_fadt;
	bool hw_reduced;      /* FADT flags bit 20 */
	uint8_t sleep_space;  /* SLEEP_CONTROL_REG: 0 = memory, 1 = I/O */
	uint64_t sleep_addr;  /* 0: none */
	uint32_t pm1a_cnt;    /* legacy PM1a control block (I/O port), 0: none */
	uint32_t pm1b_cnt;
	bool have_s5;         /* \_S5_ found in the DSDT */
	uint8_t s5_typa, s5_typb;
	bool have_madt;
	unsigned ncpus;       /* enabled LAPIC + x2APIC entries */
};

extern struct acpi_info acpi;

void acpi_init(void);

/* Try to power off; returns only if the machine is still running. */
void acpi_poweroff(void);

#endif
