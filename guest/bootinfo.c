#include "bootinfo.h"

#include "flint/pvh_abi.h"
#include "printf.h"
#include "util.h"

struct bootinfo bootinfo;

#define LOW_4G 0x100000000ULL

void bootinfo_init(uint32_t pa)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)pa;

	if (pa == 0 || si->magic != HVM_START_MAGIC) {
		kprintf("flint-guest: warning: bad start_info at 0x%x\n", pa);
		return;
	}
	bootinfo.valid = true;
	bootinfo.version = si->version;
	bootinfo.rsdp_paddr = si->rsdp_paddr;

	if (si->cmdline_paddr && si->cmdline_paddr < LOW_4G) {
		const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
		size_t i;
		for (i = 0; i + 1 < sizeof(bootinfo.cmdline) && c[i]; i++)
			bootinfo.cmdline[i] = c[i];
		bootinfo.cmdline[i] = '\0';
	}

	if (si->version >= 1 && si->memmap_paddr &&
	    si->memmap_paddr < LOW_4G) {
		const struct hvm_memmap_table_entry *m =
			(const void *)(uintptr_t)si->memmap_paddr;
		unsigned n = si->memmap_entries;
		if (n > BOOTINFO_MAX_MEMMAP)
			n = BOOTINFO_MAX_MEMMAP;
		memcpy(bootinfo.mem, m, n * sizeof(*m));
		bootinfo.nmem = n;
	}
}

const char *cmdline_get(const char *key, size_t *len)
{
	const char *p = bootinfo.cmdline, *found = NULL;
	size_t klen = strlen(key);

	while (*p) {
		while (*p == ' ')
			p++;
		const char *w = p;
		while (*p && *p != ' ')
			p++;
		size_t wlen = (size_t)(p - w);
		if (wlen > klen && w[klen] == '=' && memcmp(w, key, klen) == 0) {
			found = w + klen + 1;
			*len = wlen - klen - 1;
		}
	}
	return found;
}

bool cmdline_get_u64(const char *key, uint64_t *out)
{
	size_t len;
	const char *v = cmdline_get(key, &len);

	return v && parse_u64(v, len, out);
}
