/*
 * A block card's view of guest memory: the regions a front end passed with
 * SET_MEM_TABLE, each mmap'ed from its fd.  gmm_ptr() is the one way from a
 * guest-physical address to a host pointer: the whole range must lie inside
 * one region (overflow-safe), or NULL.
 *
 * Ring addresses: vhost-user gives them as front-end virtual addresses (QEMU:
 * its own mapping of guest RAM), which gmm_uva_to_gpa() turns into guest-
 * physical ones through each region's userspace_addr.  A front end that has
 * no such address space (flint-hv) sets userspace_addr == guest_phys_addr,
 * which makes both the same.  (With VIRTIO_F_IOMMU_PLATFORM they would be
 * IOVAs; that feature is not offered.)
 */
#ifndef FLINT_CARDS_BLK_GUEST_MEM_MAP_H
#define FLINT_CARDS_BLK_GUEST_MEM_MAP_H

#include <stdint.h>
#include <stddef.h>

#include "vhost_user_msg.h"

#define GMM_MAX_REGIONS VHOST_USER_MAX_REGIONS

struct gmm_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint8_t *host;   /* gpa maps here */
	void *map_base;  /* what to munmap, NULL if not ours */
	size_t map_len;
};

struct gmm {
	unsigned int n;
	struct gmm_region r[GMM_MAX_REGIONS];
};

/*
 * Map n regions (MAP_SHARED, read/write, honouring mmap_offset).  The fds
 * stay owned by the caller (the mappings outlive them).  Rejects empty or
 * overlapping (guest-physical or front-end virtual) regions and fds smaller
 * than mmap_offset + size.  On error nothing stays mapped.  0 or -errno.
 */
int gmm_map(struct gmm *g, const struct vhost_user_mem_region *regs,
	    const int *fds, unsigned int n);

/* One region over memory the caller owns (tests, fuzzing); uva = gpa. */
void gmm_init_flat(struct gmm *g, void *host, uint64_t gpa, uint64_t size);

/* Unmap everything gmm_map() mapped; leaves an empty map. */
void gmm_unmap(struct gmm *g);

/* Host pointer for [gpa, gpa + len) if wholly inside one region, else NULL
 * (also for len 0). */
void *gmm_ptr(const struct gmm *g, uint64_t gpa, uint64_t len);

/* Front-end virtual [uva, uva + len) -> guest-physical; 0 or -EFAULT. */
int gmm_uva_to_gpa(const struct gmm *g, uint64_t uva, uint64_t len,
		   uint64_t *gpa);

#endif
