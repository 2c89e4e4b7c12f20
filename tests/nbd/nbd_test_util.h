/* Helpers shared by the NBD integration tests (not part of Flint proper). */
#ifndef FLINT_TESTS_NBD_UTIL_H
#define FLINT_TESTS_NBD_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,  \
				__LINE__, #cond);                           \
			exit(1);                                             \
		}                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long va_ = (long long)(a), vb_ = (long long)(b);        \
		if (va_ != vb_) {                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, va_, vb_);        \
			exit(1);                                             \
		}                                                            \
	} while (0)

/* Makes a private temporary directory (removed by tmpdir_cleanup). */
const char *tmpdir_make(void);
void tmpdir_cleanup(void);

/* fork+exec argv; returns the pid.  Killed at exit unless kill_wait() reaped it. */
pid_t spawn(char *const argv[]);
/* The same with the child's stderr appended to log_path (NULL: inherited). */
pid_t spawn_logged(char *const argv[], const char *log_path);
void copy_file_to_stderr(const char *path);
/*
 * Pages of [off, off+len) of a file that the page cache holds dirty or under
 * writeback, i.e. not yet on the device (cachestat(2)).  0, or -ENOSYS
 * (kernel older than 6.5) / -EOPNOTSUPP (tmpfs: never clean) when it
 * cannot tell.
 */
int file_unsynced_pages(const char *path, uint64_t off, uint64_t len, uint64_t *pages);
/* Waits (at most timeout_ms) until a unix socket accepts connections. */
int wait_unix_socket(const char *path, unsigned timeout_ms);
/* SIGKILL (or sig) and reap. */
void kill_wait(pid_t pid, int sig);
/* Arms a hard alarm(2) limit that kills a hung test. */
void hard_limit(unsigned seconds);
uint64_t mono_ms(void);
/* Deterministic pattern for (seed, offset). */
void fill_pattern(void *buf, size_t len, uint64_t off, uint32_t seed);
int check_pattern(const void *buf, size_t len, uint64_t off, uint32_t seed);
/* Search PATH; 0 if found. */
int have_program(const char *name);

#endif
