/*
 * cpl3: run a compute loop in ring 3, come back through the int 0x80 gate,
 * check the result against a closed form (cheap to evaluate at CPL0).
 */
#include "bootinfo.h"
#include "io.h"
#include "printf.h"
#include "tests.h"
#include "user.h"

#define DEFAULT_ITERS 5000000ULL

struct cpl3_job {
	uint64_t iters;
	uint64_t cpl;
	uint64_t sum, sumsq; /* sum of i and of i*i for i < iters, mod 2^64 */
};

static struct cpl3_job job;

static uint64_t cpl3_work(uint64_t arg)
{
	struct cpl3_job *j = (struct cpl3_job *)(uintptr_t)arg;
	uint64_t s = 0, s2 = 0;

	j->cpl = read_cs() & 3;
	user_puts("flint-guest: cpl3: hello from ring 3\n");
	for (uint64_t i = 0; i < j->iters; i++) {
		s += i;
		s2 += i * i;
		/* Keep the compiler from replacing the loop by a closed form. */
		__asm__ volatile("" : "+r"(s), "+r"(s2));
	}
	j->sum = s;
	j->sumsq = s2;
	return 0xc3c3c3c3;
}

const char *test_cpl3(void)
{
	uint64_t n = DEFAULT_ITERS;

	cmdline_get_u64("cpl3.iters", &n);
	job.iters = n;
	uint64_t ret = user_call(cpl3_work, (uintptr_t)&job);
	if (ret != 0xc3c3c3c3)
		return test_fail("bad return value 0x%lx", ret);
	if (job.cpl != 3)
		return test_fail("ran at CPL%lu, not CPL3", job.cpl);

	/* n(n-1)/2 and n(n-1)(2n-1)/6, dividing exactly before wrapping. */
	uint64_t a = n, b = n ? n - 1 : 0, c = n ? 2 * n - 1 : 0;
	uint64_t sum = (a % 2 == 0) ? (a / 2) * b : a * (b / 2);
	if (a % 2 == 0)
		a /= 2;
	else
		b /= 2;
	if (a % 3 == 0)
		a /= 3;
	else if (b % 3 == 0)
		b /= 3;
	else
		c /= 3;
	uint64_t sumsq = a * b * c;

	if (job.sum != sum || job.sumsq != sumsq)
		return test_fail("checksum mismatch: got 0x%lx/0x%lx want "
				 "0x%lx/0x%lx", job.sum, job.sumsq, sum, sumsq);
	kprintf("flint-guest: cpl3: %lu iterations at CPL3\n", n);
	return NULL;
}
