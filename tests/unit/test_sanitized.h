/*
 * SANITIZED is defined in sanitizer builds (ASan, TSan; gcc and clang),
 * where the runtime makes system calls of its own in every new thread and
 * turns mlock and mlockall into no-ops: tests of seccomp jails and locked
 * memory say so and skip what they cannot show there.
 */
#ifndef FLINT_TESTS_SANITIZED_H
#define FLINT_TESTS_SANITIZED_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

#endif
