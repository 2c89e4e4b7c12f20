#include "key_mem.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

int key_mem_alloc(struct key_mem *k)
{
	long ps = sysconf(_SC_PAGESIZE);

	k->page = NULL;
	k->page_size = ps > 0 ? (size_t)ps : 4096;
	void *p = mmap(NULL, k->page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	if (mlock(p, k->page_size) != 0 || madvise(p, k->page_size, MADV_DONTDUMP) != 0) {
		int saved = errno;
		munmap(p, k->page_size);
		errno = saved;
		return -1;
	}
	/* Not inherited by a child: a fork never carries the key. */
	(void)madvise(p, k->page_size, MADV_WIPEONFORK);
	k->page = p;
	return 0;
}

void key_mem_free(struct key_mem *k)
{
	if (k->page == NULL)
		return;
	OPENSSL_cleanse(k->page, k->page_size);
	munlock(k->page, k->page_size);
	munmap(k->page, k->page_size);
	k->page = NULL;
}

int key_mem_generate(struct key_mem *k)
{
	size_t got = 0;
	while (got < XTS_KEY_BYTES) {
		ssize_t r = getrandom(k->page + got, XTS_KEY_BYTES - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int card_lock_memory(void)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -1;
	return mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
}

/* mlockall without MCL_FUTURE clears it; mappings locked so far stay locked. */
int card_lock_memory_end(void)
{
	return mlockall(MCL_CURRENT | MCL_ONFAULT);
}
