#include "boot_setup.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "acpi.h"
#include "boot_layout.h"
#include "flint/guest_abi.h"
#include "flint/pvh_abi.h"

#define PAGE_SIZE 4096ULL
#define PTE_PRESENT 0x1ULL
#define PTE_WRITE 0x2ULL
#define PTE_PS 0x80ULL

/* boot_params offsets (Linux arch/x86/include/uapi/asm/bootparam.h) */
#define BP_ACPI_RSDP 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_HEAP_END_PTR 0x224
#define BP_CMD_LINE_PTR 0x228
#define BP_SETUP_DATA 0x250
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define BP_LOADER_UNDEFINED 0xff
#define BP_CAN_USE_HEAP 0x80

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void wr64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

unsigned int boot_e820_build(const struct guest_mem *gm, struct e820_entry *map,
			     unsigned int max)
{
	unsigned int n = 0;
	uint64_t low_end = guest_mem_low_end(gm);

	if (max < 3 + GUEST_MEM_MAX_REGIONS)
		return 0;
	map[n++] = (struct e820_entry){ 0, BOOT_EBDA_START, E820_RAM };
	/* EBDA, VGA hole and BIOS area: the ACPI tables live here. */
	map[n++] = (struct e820_entry){ BOOT_EBDA_START, BOOT_ACPI_END - BOOT_EBDA_START,
					E820_RESERVED };
	map[n++] = (struct e820_entry){ BOOT_KERNEL_ADDR, low_end - BOOT_KERNEL_ADDR, E820_RAM };
	for (unsigned int i = 1; i < gm->nr_regions; i++)
		map[n++] = (struct e820_entry){ gm->regions[i].gpa, gm->regions[i].size,
						E820_RAM };
	return n;
}

int boot_place_initrd(const struct guest_mem *gm, const struct boot_image *bi,
		      uint64_t size, uint64_t *gpa, char *err, size_t errlen)
{
	uint64_t top = guest_mem_low_end(gm);

	if ((uint64_t)bi->initrd_max + 1 < top)
		top = (uint64_t)bi->initrd_max + 1;
	uint64_t floor = (bi->kernel_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (size == 0 || size > top || top - size < floor) {
		snprintf(err, errlen, "initrd of %" PRIu64 " bytes does not fit between "
			 "the kernel end 0x%" PRIx64 " and 0x%" PRIx64 " (use more --mem)",
			 size, floor, top);
		return -1;
	}
	*gpa = (top - size) & ~(PAGE_SIZE - 1);
	return 0;
}

/* Flat GDT: null, 32-bit code, 64-bit code, data, TSS. */
static void write_gdt(uint8_t *gdt)
{
	static const uint64_t entries[] = {
		0,
		0x00cf9b000000ffffULL, /* code32: base 0, 4 GiB, DB */
		0x00af9b000000ffffULL, /* code64: L */
		0x00cf93000000ffffULL, /* data: base 0, 4 GiB */
		0x008f8b000000ffffULL, /* TSS (busy), for KVM's sake */
	};
	memcpy(gdt, entries, sizeof(entries));
}

/* Identity map of the first 4 GiB with 2 MiB pages: enough for any entry. */
static void write_page_tables(struct guest_mem *gm)
{
	uint8_t *pml4 = guest_mem_ptr(gm, BOOT_PML4_ADDR, PAGE_SIZE);
	uint8_t *pdpt = guest_mem_ptr(gm, BOOT_PDPT_ADDR, PAGE_SIZE);
	uint8_t *pd = guest_mem_ptr(gm, BOOT_PD_ADDR, 4 * PAGE_SIZE);

	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	wr64(pml4, BOOT_PDPT_ADDR | PTE_PRESENT | PTE_WRITE);
	for (uint64_t i = 0; i < 4; i++)
		wr64(pdpt + i * 8, (BOOT_PD_ADDR + i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE);
	for (uint64_t i = 0; i < 4 * 512; i++)
		wr64(pd + i * 8, (i << 21) | PTE_PRESENT | PTE_WRITE | PTE_PS);
}

static int write_cmdline(struct guest_mem *gm, const struct boot_image *bi,
			 const char *cmdline, char *err, size_t errlen)
{
	size_t len = strlen(cmdline);
	uint64_t max = bi->cmdline_max;

	if (max == 0 || max > BOOT_CMDLINE_MAX - 1)
		max = BOOT_CMDLINE_MAX - 1;
	if (len > max) {
		snprintf(err, errlen, "command line is %zu bytes, the kernel accepts %" PRIu64,
			 len, max);
		return -1;
	}
	char *dst = guest_mem_ptr(gm, BOOT_CMDLINE_ADDR, BOOT_CMDLINE_MAX);
	memset(dst, 0, BOOT_CMDLINE_MAX);
	memcpy(dst, cmdline, len);
	return 0;
}

static void write_boot_params(struct guest_mem *gm, const struct boot_image *bi,
			      const struct boot_initrd *initrd)
{
	uint8_t *bp = guest_mem_ptr(gm, BOOT_PARAMS_ADDR, PAGE_SIZE);
	struct e820_entry map[E820_MAX_ENTRIES];
	unsigned int n = boot_e820_build(gm, map, E820_MAX_ENTRIES);

	memset(bp, 0, PAGE_SIZE);
	memcpy(bp + BZ_HDR_START, bi->setup_header, sizeof(bi->setup_header));
	/* We pass no setup_data; never let the image's own pointer through. */
	wr64(bp + BP_SETUP_DATA, 0);
	bp[BP_TYPE_OF_LOADER] = BP_LOADER_UNDEFINED;
	bp[BP_LOADFLAGS] |= BP_CAN_USE_HEAP;
	bp[BP_HEAP_END_PTR] = 0x00;
	bp[BP_HEAP_END_PTR + 1] = 0xfe; /* 0xfe00: the real-mode heap end */
	wr32(bp + BP_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
	wr32(bp + BP_RAMDISK_IMAGE, (uint32_t)initrd->gpa);
	wr32(bp + BP_RAMDISK_SIZE, (uint32_t)initrd->size);
	wr64(bp + BP_ACPI_RSDP, FLINT_ACPI_RSDP_ADDR);
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(bp + BP_E820_TABLE, map, n * sizeof(map[0]));
}

static void write_pvh_info(struct guest_mem *gm, const struct boot_initrd *initrd)
{
	uint8_t *base = guest_mem_ptr(gm, BOOT_PVH_INFO_ADDR, BOOT_PVH_INFO_SIZE);
	struct e820_entry map[E820_MAX_ENTRIES];
	unsigned int n = boot_e820_build(gm, map, E820_MAX_ENTRIES);
	const uint64_t mod_off = 0x40, map_off = 0x80;

	memset(base, 0, BOOT_PVH_INFO_SIZE);
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = 1,
		.cmdline_paddr = BOOT_CMDLINE_ADDR,
		.rsdp_paddr = FLINT_ACPI_RSDP_ADDR,
		.memmap_paddr = BOOT_PVH_INFO_ADDR + map_off,
		.memmap_entries = n,
	};
	if (initrd->size != 0) {
		struct hvm_modlist_entry mod = { .paddr = initrd->gpa, .size = initrd->size };
		memcpy(base + mod_off, &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = BOOT_PVH_INFO_ADDR + mod_off;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct hvm_memmap_table_entry e = { map[i].addr, map[i].size, map[i].type, 0 };
		memcpy(base + map_off + i * sizeof(e), &e, sizeof(e));
	}
	memcpy(base, &si, sizeof(si));
}

int boot_setup(struct guest_mem *gm, const struct boot_image *bi,
	       const char *cmdline, const struct boot_initrd *initrd,
	       unsigned int vcpus, struct boot_cpu_state *cpu,
	       char *err, size_t errlen)
{
	/* Every fixed structure lives in the first MiB, which the minimum RAM covers. */
	if (guest_mem_ptr(gm, 0, BOOT_KERNEL_ADDR) == NULL) {
		snprintf(err, errlen, "guest RAM smaller than 1 MiB");
		return -1;
	}
	write_gdt(guest_mem_ptr(gm, BOOT_GDT_ADDR, 5 * 8));
	memset(guest_mem_ptr(gm, BOOT_IDT_ADDR, 8), 0, 8);
	write_page_tables(gm);
	if (write_cmdline(gm, bi, cmdline, err, errlen) != 0)
		return -1;
	if (acpi_build(gm, vcpus, err, errlen) != 0)
		return -1;

	cpu->proto = bi->proto;
	cpu->rip = bi->entry;
	if (bi->proto == BOOT_PROTO_LINUX64) {
		write_boot_params(gm, bi, initrd);
		cpu->info_addr = BOOT_PARAMS_ADDR;
	} else {
		write_pvh_info(gm, initrd);
		cpu->info_addr = BOOT_PVH_INFO_ADDR;
	}
	return 0;
}
