/*
 * Bounds the log lines that someone else can trigger: a guest, a front end
 * or a storage peer must not be able to fill the host log (the threat model
 * promises one line per queue or device, or a few per minute).
 *
 * One struct log_limit per message site and per object it is about (a
 * queue, a device), kept in that object.  It has no lock of its own: use it
 * under the lock that already serialises the object (a card's queue lock, a
 * device's message thread, flint-hv's bus lock).
 *
 *   struct vq { ...; struct log_limit bad_head; };
 *   log_limit_init(&q->bad_head, 1, 0);                      // a latch
 *   log_limited(&q->bad_head, LOG_WARN, "queue %u: bad head %u", i, h);
 *   ...when the queue is set up again:
 *   log_limit_rearm(&q->bad_head);                           // may log again
 *
 * A rate limit (interval_ms > 0) lets `burst` lines through per window of
 * interval_ms; a latch (interval_ms == 0) lets `burst` lines through, then
 * nothing until log_limit_rearm().  The first line let through after some
 * were dropped ends in " (N similar suppressed)"; log_limit_rearm() returns
 * the count dropped since the last line let through, for a latch's caller
 * to report if it wishes.  Dropped lines cost no formatting.
 */
#ifndef FLINT_LOG_LIMIT_H
#define FLINT_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

struct log_limit {
	uint32_t burst;       /* lines let through per window (latch: in all) */
	uint32_t interval_ms; /* window length; 0: a latch */
	int64_t window_start; /* ms, CLOCK_MONOTONIC */
	uint32_t passed;      /* lines let through in this window */
	uint64_t suppressed;  /* dropped since the last line let through */
};

/* Static initializer: LOG_LIMIT_INIT(1, 0) is a latch. */
#define LOG_LIMIT_INIT(burst_, interval_ms_) \
	{ .burst = (burst_), .interval_ms = (interval_ms_) }

void log_limit_init(struct log_limit *l, uint32_t burst, uint32_t interval_ms);

/*
 * Whether this line may go out; counts it either way.  When it may,
 * *suppressed (if not NULL) receives how many were dropped before it.
 */
bool log_limit_pass(struct log_limit *l, uint64_t *suppressed);

/* Opens the limit again; returns how many lines were dropped since the last one. */
uint64_t log_limit_rearm(struct log_limit *l);

/* log_msg through the limit l; fmt must be a string literal. */
#define log_limited(l, level, fmt, ...)                                              \
	do {                                                                         \
		uint64_t log_sup_;                                                   \
		if (log_limit_pass((l), &log_sup_)) {                                \
			if (log_sup_ != 0)                                           \
				log_msg((level), fmt " (%llu similar suppressed)",   \
					##__VA_ARGS__, (unsigned long long)log_sup_); \
			else                                                         \
				log_msg((level), fmt, ##__VA_ARGS__);                \
		}                                                                    \
	} while (0)

#endif
