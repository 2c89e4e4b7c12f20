/*
 * libFuzzer target: the endpoint parser (lib/endpoint.c) that card-ebs and
 * flint-nbd-server read their NBD addresses with.  The input, cut at its
 * first NUL, is an endpoint; one that parses must format to text that
 * parses back to the same address, and one refused must leave nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[ENDPOINT_MAX_LEN + 64];
	char err[128], again_text[ENDPOINT_MAX_LEN + 64];
	struct endpoint ep, again;
	if (size >= sizeof(text))
		size = sizeof(text) - 1;
	memcpy(text, data, size);
	text[size] = '\0';
	if (endpoint_parse(text, &ep, err, sizeof(err)) != 0) {
		if (ep.addrlen != 0 || ep.addr.ss_family != 0 || strlen(err) == 0)
			abort();
		return 0;
	}
	if (ep.addrlen == 0 || ep.addrlen > sizeof(ep.addr))
		abort();
	endpoint_format(&ep, again_text, sizeof(again_text));
	if (endpoint_parse(again_text, &again, err, sizeof(err)) != 0 ||
	    again.addrlen != ep.addrlen || memcmp(&again.addr, &ep.addr, ep.addrlen) != 0)
		abort();
	return 0;
}
