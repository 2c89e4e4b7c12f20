/* PVH boot information (struct hvm_start_info), copied into guest memory. */
#ifndef GUEST_BOOTINFO_H
#define GUEST_BOOTINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flint/pvh_abi.h"

#define E820_RAM 1


#define BOOTINFO_MAX_CMDLINE 1024
#define BOOTINFO_MAX_MEMMAP 64

struct bootinfo {
	bool valid;         /* start_info magic matched */
	uint32_t version;
	uint64_t rsdp_paddr;
	char cmdline[BOOTINFO_MAX_CMDLINE];
	unsigned nmem;
	struct hvm_memmap_table_entry mem[BOOTINFO_MAX_MEMMAP];
};

extern struct bootinfo bootinfo;

/* Parse and copy start_info (so later tests may overwrite the original). */
void bootinfo_init(uint32_t start_info_pa);

/*
 * Command line: space-separated words, `key=value` or bare `key`.
 * cmdline_get returns the value of the last `key=...` (NULL if absent) and
 * its length.
 */
const char *cmdline_get(const char *key, size_t *len);
/* cmdline_get + parse_u64; false if absent or malformed. */
bool cmdline_get_u64(const char *key, uint64_t *out);

#endif
