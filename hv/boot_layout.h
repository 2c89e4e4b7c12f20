/*
 * Where flint-hv puts the structures a guest finds at boot, all below 1 MiB
 * (kernels load at 1 MiB and above).  The ACPI tables sit in the BIOS area
 * [0xe0000, 0x100000) that Linux scans for the RSDP.
 */
#ifndef FLINT_HV_BOOT_LAYOUT_H
#define FLINT_HV_BOOT_LAYOUT_H

#define BOOT_GDT_ADDR 0x500ULL
#define BOOT_IDT_ADDR 0x540ULL
#define BOOT_PVH_INFO_ADDR 0x6000ULL     /* hvm_start_info, modlist, memmap */
#define BOOT_PVH_INFO_SIZE 0x1000ULL
#define BOOT_PARAMS_ADDR 0x7000ULL       /* Linux zero page */
#define BOOT_STACK_TOP 0x8ff0ULL
#define BOOT_PML4_ADDR 0x9000ULL
#define BOOT_PDPT_ADDR 0xa000ULL
#define BOOT_PD_ADDR 0xb000ULL           /* 4 pages: 4 GiB of 2 MiB pages */
#define BOOT_CMDLINE_ADDR 0x20000ULL
#define BOOT_CMDLINE_MAX 0x1000ULL
#define BOOT_EBDA_START 0x9fc00ULL        /* end of usable low memory */
#define BOOT_ACPI_START 0xe0000ULL
#define BOOT_ACPI_END 0x100000ULL
#define BOOT_KERNEL_ADDR 0x100000ULL

/* GDT selectors (index * 8). */
#define BOOT_SEL_CODE32 0x08
#define BOOT_SEL_CODE64 0x10
#define BOOT_SEL_DATA 0x18
#define BOOT_SEL_TSS 0x20

#endif
