/* Freestanding replacements for the bits of libc the guest needs. */
#ifndef GUEST_UTIL_H
#define GUEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define GUEST_NORETURN __attribute__((noreturn))

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* Compare a (ptr, len) token with a NUL-terminated string. */
bool token_eq(const char *tok, size_t len, const char *s);
/* Parse an unsigned decimal or 0x-hex token; false if malformed. */
bool parse_u64(const char *tok, size_t len, uint64_t *out);

#endif
