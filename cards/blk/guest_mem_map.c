#include "guest_mem_map.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "log.h"

/* [a, a + alen) and [b, b + blen) intersect; neither end overflows. */
static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int check_regions(const struct vhost_user_mem_region *regs,
			 unsigned int n)
{
	if (n == 0 || n > GMM_MAX_REGIONS)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		const struct vhost_user_mem_region *r = &regs[i];
		if (r->memory_size == 0 || r->memory_size > SIZE_MAX / 2 ||
		    r->guest_phys_addr + r->memory_size < r->guest_phys_addr ||
		    r->userspace_addr + r->memory_size < r->userspace_addr ||
		    r->mmap_offset + r->memory_size < r->mmap_offset ||
		    r->mmap_offset + r->memory_size > SIZE_MAX / 2)
			return -EINVAL;
		for (unsigned int j = 0; j < i; j++) {
			const struct vhost_user_mem_region *o = &regs[j];
			if (ranges_overlap(r->guest_phys_addr, r->memory_size,
					   o->guest_phys_addr, o->memory_size) ||
			    ranges_overlap(r->userspace_addr, r->memory_size,
					   o->userspace_addr, o->memory_size))
				return -EINVAL;
		}
	}
	return 0;
}

int gmm_map(struct gmm *g, const struct vhost_user_mem_region *regs,
	    const int *fds, unsigned int n)
{
	memset(g, 0, sizeof(*g));
	int rc = check_regions(regs, n);
	if (rc != 0) {
		log_warn("gmm: invalid memory table");
		return rc;
	}
	for (unsigned int i = 0; i < n; i++) {
		const struct vhost_user_mem_region *r = &regs[i];
		size_t len = (size_t)(r->mmap_offset + r->memory_size);
		/*
		 * A front end that could shrink the file under our mapping could
		 * make the card die of SIGBUS: only memory sealed against
		 * shrinking is accepted (flint-hv and QEMU's memory-backend-memfd
		 * both seal).  The seals come first: only then is the size that
		 * fstat reports final.  The other way round, a front end could
		 * shrink and seal between the two calls.
		 */
		int seals = fcntl(fds[i], F_GET_SEALS);
		if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
			log_warn("gmm: region %u is not sealed against shrinking: refused", i);
			rc = -EINVAL;
			goto fail;
		}
		struct stat st;
		if (fstat(fds[i], &st) != 0) {
			rc = -errno;
			goto fail;
		}
		/* Touching past the end of a file would be SIGBUS. */
		if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < len) {
			log_warn("gmm: region %u: fd has %lld bytes, needs %zu",
				 i, (long long)st.st_size, len);
			rc = -EINVAL;
			goto fail;
		}
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_NORESERVE, fds[i], 0);
		if (p == MAP_FAILED) {
			rc = -errno;
			log_errno("gmm: mmap region %u (%zu bytes)", i, len);
			goto fail;
		}
		g->r[i] = (struct gmm_region){
			.gpa = r->guest_phys_addr,
			.size = r->memory_size,
			.uva = r->userspace_addr,
			.host = (uint8_t *)p + r->mmap_offset,
			.map_base = p,
			.map_len = len,
		};
		g->n = i + 1;
	}
	return 0;
fail:
	gmm_unmap(g);
	return rc;
}

void gmm_init_flat(struct gmm *g, void *host, uint64_t gpa, uint64_t size)
{
	memset(g, 0, sizeof(*g));
	g->r[0] = (struct gmm_region){
		.gpa = gpa, .size = size, .uva = gpa, .host = host,
	};
	g->n = 1;
}

void gmm_unmap(struct gmm *g)
{
	for (unsigned int i = 0; i < g->n && i < GMM_MAX_REGIONS; i++)
		if (g->r[i].map_base != NULL)
			munmap(g->r[i].map_base, g->r[i].map_len);
	memset(g, 0, sizeof(*g));
}

void *gmm_ptr(const struct gmm *g, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return NULL;
	for (unsigned int i = 0; i < g->n && i < GMM_MAX_REGIONS; i++) {
		const struct gmm_region *r = &g->r[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off >= r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int gmm_uva_to_gpa(const struct gmm *g, uint64_t uva, uint64_t len,
		   uint64_t *gpa)
{
	if (len == 0)
		return -EFAULT;
	for (unsigned int i = 0; i < g->n && i < GMM_MAX_REGIONS; i++) {
		const struct gmm_region *r = &g->r[i];
		if (uva < r->uva)
			continue;
		uint64_t off = uva - r->uva;
		if (off >= r->size || len > r->size - off)
			continue;
		*gpa = r->gpa + off;
		return 0;
	}
	return -EFAULT;
}
