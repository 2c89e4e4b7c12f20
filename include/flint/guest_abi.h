/*
 * The fixed platform flint-hv presents to a guest: port numbers, MMIO
 * addresses and magic values that both the hypervisor (hv/) and the in-tree
 * test guest (guest/) rely on.  Everything here is guest-visible ABI: values
 * only ever get added, never moved.
 */
#ifndef FLINT_GUEST_ABI_H
#define FLINT_GUEST_ABI_H

/* 16550 console (COM1), ISA IRQ 4, as every PC guest expects. */
#define FLINT_COM1_PORT 0x3f8
#define FLINT_COM1_IRQ 4

/*
 * Boot-time marker, in the spirit of Firecracker's boot timer: a one-byte
 * write of FLINT_BOOT_MARKER_MAGIC to this MMIO address makes flint-hv log the
 * time since its own start.  MMIO (not a port) so that a Linux guest can hit
 * it from userspace with busybox `devmem`.
 */
#define FLINT_BOOT_MARKER_MMIO 0xfeb00000ULL
#define FLINT_BOOT_MARKER_MAGIC 123

/*
 * Debug exit device, same semantics as QEMU's isa-debug-exit at iobase 0xf4:
 * a write of value v ends the VMM with status (v << 1) | 1.  flint-hv only
 * decodes it when started with --debug-exit (test builds of guests use it to
 * report failure); without that flag the port is unassigned.
 */
#define FLINT_DEBUG_EXIT_PORT 0xf4

/*
 * ACPI hardware-reduced sleep and reset registers (FADT SLEEP_CONTROL_REG,
 * SLEEP_STATUS_REG, RESET_REG).  Writing SLP_EN | (SLP_TYP << 2) with
 * SLP_TYP == FLINT_ACPI_SLP_TYP_S5 to the control register powers off; the
 * DSDT's \_S5_ package carries the same SLP_TYP.
 */
#define FLINT_ACPI_SLEEP_CONTROL_PORT 0x600
#define FLINT_ACPI_SLEEP_STATUS_PORT 0x601
#define FLINT_ACPI_RESET_PORT 0x602
#define FLINT_ACPI_RESET_VALUE 0x01
#define FLINT_ACPI_SLP_TYP_S5 5
#define FLINT_ACPI_SLP_EN 0x20

/* Legacy reset paths Linux also uses: i8042 pulse and the PCI reset register. */
#define FLINT_I8042_DATA_PORT 0x60
#define FLINT_I8042_CMD_PORT 0x64
#define FLINT_I8042_CMD_RESET 0xfe
#define FLINT_RESET_CONTROL_PORT 0xcf9

/* Where the RSDP lives (inside the BIOS area Linux scans). */
#define FLINT_ACPI_RSDP_ADDR 0x000e0000ULL

/* Local APIC and I/O APIC at their architectural addresses. */
#define FLINT_LAPIC_ADDR 0xfee00000ULL
#define FLINT_IOAPIC_ADDR 0xfec00000ULL

/* Guest RAM above this is placed above 4 GiB; [3 GiB, 4 GiB) is MMIO. */
#define FLINT_MMIO_GAP_START 0xc0000000ULL
#define FLINT_MMIO_GAP_END 0x100000000ULL

/*
 * PCI: one host bridge (segment 0, bus 0 only) at 00:00.0, devices in slots
 * 1..31.  Configuration space through mechanism #1 (address register 0xcf8,
 * data 0xcfc..0xcff) and through ECAM (MCFG): 1 MiB for bus 0.  BARs live in
 * the 32-bit window below the ECAM area, inside the MMIO hole.
 */
#define FLINT_PCI_CONFIG_ADDR_PORT 0xcf8
#define FLINT_PCI_CONFIG_DATA_PORT 0xcfc
#define FLINT_PCI_ECAM_BASE 0xe0000000ULL
#define FLINT_PCI_ECAM_SIZE 0x100000ULL
#define FLINT_PCI_MMIO32_BASE 0xc0000000ULL
#define FLINT_PCI_MMIO32_SIZE 0x20000000ULL
#define FLINT_PCI_SLOTS 32
/* First GSI for MSI routes; 0-23 are the IOAPIC/PIC pins. */
#define FLINT_PCI_MSI_GSI_BASE 24

#endif
