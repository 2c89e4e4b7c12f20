/*
 * Self-tests.  Each returns NULL on success or a failure reason (use
 * test_fail() to format one).  Add a test: write test_NAME.c, declare it
 * here, list it in tests.c and in meson.build.
 */
#ifndef GUEST_TESTS_H
#define GUEST_TESTS_H

typedef const char *(*test_fn)(void);

struct test {
	const char *name;
	test_fn fn;
};

/* Format a failure reason into a static buffer. */
const char *test_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* NULL if no test has that name. */
const struct test *test_find(const char *name, unsigned long len);

const char *test_hello(void);
const char *test_cpl3(void);
const char *test_mem(void);
const char *test_cpuid(void);
const char *test_smp(void);
/* virtio-blk (see blk_common.h). */
const char *test_blk(void);
const char *test_blkmq(void);
const char *test_blkbad(void);
const char *test_blkpersist(void);
const char *test_blkirq(void);
/* Block throughput, for bench/lab-blk.sh (not a pass/fail test). */
const char *test_blkbench(void);
/* Hostile modes: they end the VM on purpose. */
const char *test_triplefault(void);
const char *test_reboot(void);
const char *test_badio(void);
const char *test_poweroff(void);

#endif
