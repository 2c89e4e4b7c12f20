#include "guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "flint/guest_abi.h"

void guest_mem_layout(struct guest_mem *gm, uint64_t size)
{
	uint64_t low = size < FLINT_MMIO_GAP_START ? size : FLINT_MMIO_GAP_START;

	gm->size = size;
	gm->nr_regions = 1;
	gm->regions[0] = (struct guest_mem_region){ .gpa = 0, .size = low, .offset = 0 };
	if (size > low) {
		gm->regions[1] = (struct guest_mem_region){
			.gpa = FLINT_MMIO_GAP_END, .size = size - low, .offset = low,
		};
		gm->nr_regions = 2;
	}
}

int guest_mem_create(struct guest_mem *gm, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	guest_mem_layout(gm, size);

	int fd = memfd_create("flint-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) != 0)
		goto fail;
	/* The size is fixed for the instance's life: nobody may shrink it under a mapping. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		goto fail;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	/* Guest memory never lands in a core dump of the VMM. */
	if (madvise(p, size, MADV_DONTDUMP) != 0) {
		munmap(p, size);
		goto fail;
	}
	/*
	 * HV-10: never merged with another instance's pages.  KSM only merges
	 * regions marked MERGEABLE, so this is belt and braces; EINVAL means the
	 * kernel has no KSM at all.
	 */
	if (madvise(p, size, MADV_UNMERGEABLE) != 0 && errno != EINVAL) {
		munmap(p, size);
		goto fail;
	}
	gm->fd = fd;
	gm->host = p;
	return 0;
fail:;
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

void guest_mem_destroy(struct guest_mem *gm)
{
	if (gm->host != NULL)
		munmap(gm->host, gm->size);
	if (gm->fd >= 0)
		close(gm->fd);
	gm->host = NULL;
	gm->fd = -1;
}

void *guest_mem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	if (len == 0 || gm->host == NULL)
		return NULL;
	for (unsigned int i = 0; i < gm->nr_regions; i++) {
		const struct guest_mem_region *r = &gm->regions[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		/* Compare by subtraction: gpa + len may overflow. */
		if (off >= r->size || len > r->size - off)
			continue;
		return gm->host + r->offset + off;
	}
	return NULL;
}

uint64_t guest_mem_low_end(const struct guest_mem *gm)
{
	return gm->regions[0].size;
}
