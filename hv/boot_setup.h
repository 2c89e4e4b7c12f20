/*
 * Everything a guest finds in memory at its first instruction: GDT, identity
 * page tables, command line, initrd, memory map, boot_params or
 * hvm_start_info, and the ACPI tables.
 */
#ifndef FLINT_HV_BOOT_SETUP_H
#define FLINT_HV_BOOT_SETUP_H

#include <stddef.h>
#include <stdint.h>

#include "boot_image.h"
#include "guest_mem.h"

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_MAX_ENTRIES 8

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

struct boot_initrd {
	uint64_t gpa;
	uint64_t size; /* 0: no initrd */
};

/* Where the first vCPU starts and what it is told. */
struct boot_cpu_state {
	enum boot_protocol proto;
	uint64_t rip;
	uint64_t info_addr; /* %rsi (boot_params) or %rbx (hvm_start_info) */
};

/* Fills the e820 map for gm; returns the number of entries. */
unsigned int boot_e820_build(const struct guest_mem *gm, struct e820_entry *map,
			     unsigned int max);

/*
 * Picks the highest page-aligned place for an initrd of size bytes above the
 * kernel and below both the low RAM end and the kernel's initrd limit.
 * Returns 0 and sets *gpa, or -1 with a reason.
 */
int boot_place_initrd(const struct guest_mem *gm, const struct boot_image *bi,
		      uint64_t size, uint64_t *gpa, char *err, size_t errlen);

/*
 * Writes the boot structures for a kernel already loaded by boot_image_load
 * (and an initrd already copied to initrd->gpa).  Returns 0 or -1 with err.
 */
int boot_setup(struct guest_mem *gm, const struct boot_image *bi,
	       const char *cmdline, const struct boot_initrd *initrd,
	       unsigned int vcpus, struct boot_cpu_state *cpu,
	       char *err, size_t errlen);

#endif
