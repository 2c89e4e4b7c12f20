/* Command-line numbers, parsed strictly: decimal, no sign, no trailing text. */
#ifndef FLINT_PARSE_NUM_H
#define FLINT_PARSE_NUM_H

#include <stdint.h>

/* 0 and *out set when s is a decimal in [min, max]; -1 otherwise. */
int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
