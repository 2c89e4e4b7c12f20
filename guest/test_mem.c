/*
 * mem: at CPL3, fill all usable RAM above the guest image with an
 * address-dependent pattern, then verify (and again inverted).  Every 8-byte
 * word gets a distinct value, so aliased addresses are caught.  RAM above
 * 4 GiB is not identity-mapped and is skipped.  `mem.max_mib=N` caps the
 * amount tested.
 */
#include "bootinfo.h"
#include "printf.h"
#include "tests.h"
#include "user.h"

#define LOW_4G 0x100000000ULL
#define MIB ((uint64_t)1 << 20)
#define PATTERN_MUL 0x9e3779b97f4a7c15ULL
#define PATTERN_XOR 0x5a5a5a5a5a5a5a5aULL

extern char __image_end[];

struct mem_job {
	uint64_t start, end;
	uint64_t bad_addr, bad_val, want;
};

static struct mem_job job;

static inline uint64_t pattern(uint64_t a)
{
	return (a * PATTERN_MUL) ^ PATTERN_XOR;
}

static uint64_t mem_work(uint64_t arg)
{
	struct mem_job *j = (struct mem_job *)(uintptr_t)arg;

	for (uint64_t inv = 0; inv <= 1; inv++) {
		uint64_t flip = inv ? ~0ULL : 0;
		for (uint64_t a = j->start; a < j->end; a += 8)
			*(volatile uint64_t *)(uintptr_t)a = pattern(a) ^ flip;
		for (uint64_t a = j->start; a < j->end; a += 8) {
			uint64_t v = *(volatile uint64_t *)(uintptr_t)a;
			if (v != (pattern(a) ^ flip)) {
				j->bad_addr = a;
				j->bad_val = v;
				j->want = pattern(a) ^ flip;
				return 1;
			}
		}
	}
	return 0;
}

const char *test_mem(void)
{
	uint64_t floor = ((uintptr_t)__image_end + 0xfff) & ~0xfffULL;
	uint64_t tested = 0, skipped_high = 0, max = ~0ULL;
	unsigned ranges = 0;

	if (cmdline_get_u64("mem.max_mib", &max))
		max *= MIB;
	if (bootinfo.nmem == 0)
		return "no memory map";
	for (unsigned i = 0; i < bootinfo.nmem; i++) {
		const struct hvm_memmap_table_entry *m = &bootinfo.mem[i];
		if (m->type != E820_RAM)
			continue;
		uint64_t start = (m->addr + 7) & ~7ULL;
		uint64_t end = (m->addr + m->size) & ~7ULL;
		if (start < floor)
			start = floor;
		if (end > LOW_4G) {
			skipped_high += end - (start > LOW_4G ? start : LOW_4G);
			end = LOW_4G;
		}
		if (start >= end)
			continue;
		if (end - start > max - tested)
			end = start + (max - tested);
		if (start >= end)
			continue;
		job.start = start;
		job.end = end;
		if (user_call(mem_work, (uintptr_t)&job))
			return test_fail("at 0x%lx: read 0x%016lx, wrote 0x%016lx",
					 job.bad_addr, job.bad_val, job.want);
		tested += end - start;
		ranges++;
	}
	kprintf("flint-guest: mem: tested %lu MiB in %u ranges above 0x%lx",
		tested / MIB, ranges, floor);
	if (skipped_high)
		kprintf(", skipped %lu MiB above 4 GiB", skipped_high / MIB);
	kprintf("\n");
	if (tested == 0)
		return "no usable RAM above the guest image";
	return NULL;
}
