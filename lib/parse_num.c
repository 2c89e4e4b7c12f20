#include "parse_num.h"

#include <errno.h>
#include <stdlib.h>

int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
