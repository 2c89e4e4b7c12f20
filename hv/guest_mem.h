/*
 * Guest RAM: one memfd (so card processes can later map the same pages),
 * mapped once in flint-hv, split into at most two guest-physical regions
 * around the [3 GiB, 4 GiB) MMIO hole.  Every host access to guest memory goes
 * through guest_mem_ptr(), the one checked translator.
 */
#ifndef FLINT_HV_GUEST_MEM_H
#define FLINT_HV_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t offset; /* into the memfd and the host mapping */
};

struct guest_mem {
	int fd;
	uint8_t *host;
	uint64_t size;
	unsigned int nr_regions;
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Computes the region layout for size bytes of RAM (no allocation). */
void guest_mem_layout(struct guest_mem *gm, uint64_t size);

/*
 * Allocates size bytes of guest RAM: memfd, sealed against resizing, mapped
 * shared, excluded from core dumps and from KSM merging (HV-10).  Returns 0 or
 * -1 with errno set.
 */
int guest_mem_create(struct guest_mem *gm, uint64_t size);
void guest_mem_destroy(struct guest_mem *gm);

/*
 * Host pointer for guest-physical [gpa, gpa + len), or NULL when any byte of
 * it lies outside one RAM region (overflow-safe).  len 0 is rejected.
 */
void *guest_mem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* End of the RAM region that starts at 0 (RAM below the MMIO hole). */
uint64_t guest_mem_low_end(const struct guest_mem *gm);

#endif
