#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_prog = "flint";
static char log_context[72]; /* "" or "[instance/device]" */
static enum log_level log_max = LOG_INFO;

void log_init(const char *prog, enum log_level level)
{
	log_prog = prog;
	log_max = level;
}

void log_set_context(const char *context)
{
	if (context == NULL || context[0] == '\0') {
		log_context[0] = '\0';
		return;
	}
	snprintf(log_context, sizeof(log_context), "[%s]", context);
}

void log_set_level(enum log_level level)
{
	log_max = level;
}

/*
 * Format into one buffer and emit it with a single write(2): lines from
 * several vCPU threads never interleave, and no stdio locking or allocation
 * happens after the seccomp filter is in place.
 */
__attribute__((format(printf, 1, 0)))
static void log_emit(const char *fmt, va_list ap, const char *suffix)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s%s: ", log_prog, log_context);

	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	size_t len = strnlen(buf, sizeof(buf) - 1);
	if (suffix != NULL) {
		int k = snprintf(buf + len, sizeof(buf) - len, ": %s", suffix);
		if (k > 0)
			len = strnlen(buf, sizeof(buf) - 1);
	}
	if (len >= sizeof(buf) - 1)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > log_max)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_emit(fmt, ap, NULL);
	va_end(ap);
}

void log_errno(const char *fmt, ...)
{
	int saved = errno;
	char ebuf[128];
	const char *etext = strerror_r(saved, ebuf, sizeof(ebuf));
	va_list ap;
	va_start(ap, fmt);
	log_emit(fmt, ap, etext);
	va_end(ap);
	errno = saved;
}
