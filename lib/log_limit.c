#include "log_limit.h"

#include <time.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void log_limit_init(struct log_limit *l, uint32_t burst, uint32_t interval_ms)
{
	*l = (struct log_limit){ .burst = burst, .interval_ms = interval_ms };
}

bool log_limit_pass(struct log_limit *l, uint64_t *suppressed)
{
	if (l->interval_ms != 0) {
		int64_t now = now_ms();
		/* The first use opens a window too (window_start 0 is long past). */
		if (l->passed == 0 || now - l->window_start >= (int64_t)l->interval_ms) {
			l->window_start = now;
			l->passed = 0;
		}
	}
	if (l->passed >= l->burst) {
		l->suppressed++;
		return false;
	}
	l->passed++;
	if (suppressed != NULL)
		*suppressed = l->suppressed;
	l->suppressed = 0;
	return true;
}

uint64_t log_limit_rearm(struct log_limit *l)
{
	uint64_t n = l->suppressed;
	l->passed = 0;
	l->suppressed = 0;
	return n;
}
