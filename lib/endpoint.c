#include "endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#define WANT "(want unix:PATH, /PATH, IPv4:PORT or [IPv6]:PORT)"

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int parse_unix(const char *path, struct endpoint *ep, char *err, size_t errlen)
{
	struct sockaddr_un *sa = (struct sockaddr_un *)&ep->addr;
	size_t len = strlen(path);
	if (len == 0)
		return fail(err, errlen, "endpoint: empty unix socket path");
	if (len >= sizeof(sa->sun_path))
		return fail(err, errlen, "endpoint: unix socket path longer than %zu bytes",
			    sizeof(sa->sun_path) - 1);
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, len + 1);
	ep->addrlen = sizeof(*sa);
	return 0;
}

/* 1..65535 in plain decimal: no sign, no blanks, no leading zeros. */
static int parse_port(const char *s, uint16_t *port)
{
	unsigned v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 5 || (s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int parse_tcp(const char *text, struct endpoint *ep, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN];
	const char *h = text, *colon;
	size_t hlen;
	int v6 = text[0] == '[';
	if (v6) {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return fail(err, errlen, "endpoint '%s': want [IPv6]:PORT", text);
		h = text + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return fail(err, errlen, "endpoint '%s': no port " WANT, text);
		hlen = (size_t)(colon - text);
		if (memchr(text, ':', hlen) != NULL)
			return fail(err, errlen, "endpoint '%s': an IPv6 address goes in brackets, "
				    "[ADDR]:PORT", text);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return fail(err, errlen, "endpoint '%s': bad address " WANT, text);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	uint16_t port;
	if (parse_port(colon + 1, &port) != 0)
		return fail(err, errlen, "endpoint '%s': bad port (1..65535)", text);
	if (v6) {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ep->addr;
		if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
			return fail(err, errlen, "endpoint '%s': bad IPv6 address", text);
		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons(port);
		ep->addrlen = sizeof(*sa);
		return 0;
	}
	struct sockaddr_in *sa = (struct sockaddr_in *)&ep->addr;
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return fail(err, errlen, "endpoint '%s': bad IPv4 address (host names are not "
			    "resolved) " WANT, text);
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	ep->addrlen = sizeof(*sa);
	return 0;
}

int endpoint_parse(const char *text, struct endpoint *ep, char *err, size_t errlen)
{
	memset(ep, 0, sizeof(*ep));
	if (text == NULL || text[0] == '\0')
		return fail(err, errlen, "endpoint: none given " WANT);
	/* Bounded before anything else looks at it (and before it is quoted in err). */
	if (strnlen(text, ENDPOINT_MAX_LEN + 1) > ENDPOINT_MAX_LEN)
		return fail(err, errlen, "endpoint: longer than %d bytes", ENDPOINT_MAX_LEN);
	int r;
	if (strncmp(text, "unix:", 5) == 0)
		r = parse_unix(text + 5, ep, err, errlen);
	else if (text[0] == '/')
		r = parse_unix(text, ep, err, errlen);
	else
		r = parse_tcp(text, ep, err, errlen);
	if (r != 0)
		memset(ep, 0, sizeof(*ep));
	return r;
}

void endpoint_format(const struct endpoint *ep, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int n = -1;
	if (len == 0)
		return;
	switch (ep->addr.ss_family) {
	case AF_UNIX:
		n = snprintf(buf, len, "unix:%s", ((const struct sockaddr_un *)&ep->addr)->sun_path);
		break;
	case AF_INET: {
		const struct sockaddr_in *sa = (const void *)&ep->addr;
		if (inet_ntop(AF_INET, &sa->sin_addr, host, sizeof(host)) != NULL)
			n = snprintf(buf, len, "%s:%u", host, ntohs(sa->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sa = (const void *)&ep->addr;
		if (inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof(host)) != NULL)
			n = snprintf(buf, len, "[%s]:%u", host, ntohs(sa->sin6_port));
		break;
	}
	}
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
}
