/*
 * Captures what the log module writes (to stderr) for tests that count log
 * lines: stderr is pointed at a memfd between capture_begin() and
 * capture_end().  Include after <cmocka.h>.
 */
#ifndef FLINT_TEST_LOG_CAPTURE_H
#define FLINT_TEST_LOG_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct log_capture {
	int saved;  /* the real stderr */
	int mem;
};

static inline void capture_begin(struct log_capture *c)
{
	c->mem = memfd_create("log", MFD_CLOEXEC);
	assert_true(c->mem >= 0);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(c->mem, STDERR_FILENO), STDERR_FILENO);
}

/*
 * Restores stderr, echoes what was captured to it (for the test log) and
 * returns the number of lines that contain needle (every line if NULL).
 */
static inline unsigned int capture_end(struct log_capture *c, const char *needle)
{
	assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
	close(c->saved);
	off_t len = lseek(c->mem, 0, SEEK_END);
	assert_true(len >= 0);
	char *text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(pread(c->mem, text, (size_t)len, 0), len);
	close(c->mem);
	unsigned int lines = 0;
	for (char *p = text, *nl; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
		if (needle == NULL || strstr(p, needle) != NULL)
			lines++;
		fprintf(stderr, "captured: %s\n", p);
	}
	free(text);
	return lines;
}

#endif
