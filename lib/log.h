/*
 * One small log module for every Flint process: messages go to stderr as
 * "<prog>: <text>" (or "<prog>[<context>]: <text>" once a context is set:
 * a card names its instance and device so that two instances' cards can be
 * told apart), warn() appends the errno text.  No guest-controlled bytes
 * are ever passed as the format string.
 */
#ifndef FLINT_LOG_H
#define FLINT_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
/* A short context shown in brackets after the program name; NULL clears it. */
void log_set_context(const char *context);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like log_msg(LOG_ERROR, ...) with ": <strerror(errno)>" appended. */
void log_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_err(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
