/*
 * ACPI tables for a hardware-reduced platform: RSDP, XSDT, FADT (sleep and
 * reset registers), DSDT (\_S5_, COM1, the PCI host bridge and its ECAM
 * reservation), MADT (one Local APIC per vCPU, the I/O APIC) and MCFG.
 * This is how a Linux guest finds its CPUs, console and PCI bus, and how it
 * powers off.
 */
#ifndef FLINT_HV_ACPI_H
#define FLINT_HV_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "guest_mem.h"

/* Writes all tables into [BOOT_ACPI_START, BOOT_ACPI_END). */
int acpi_build(struct guest_mem *gm, unsigned int vcpus, char *err, size_t errlen);

/* The ACPI checksum rule: all bytes of a table sum to zero. */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

#endif
