/* endpoint: the NBD endpoint forms the client and the server share, and what they refuse. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "endpoint.h"

static void parse_ok(const char *text, struct endpoint *ep)
{
	char err[256] = "";
	int r = endpoint_parse(text, ep, err, sizeof(err));
	if (r != 0)
		print_error("'%s': %s\n", text, err);
	assert_int_equal(r, 0);
}

/* Refused with a message, and nothing left in *ep. */
static void parse_bad(const char *text, const char *msg_part)
{
	char err[256] = "";
	struct endpoint ep;
	memset(&ep, 0x5a, sizeof(ep));
	assert_int_equal(endpoint_parse(text, &ep, err, sizeof(err)), -EINVAL);
	if (strstr(err, msg_part) == NULL)
		print_error("'%s': '%s' lacks '%s'\n", text ? text : "(null)", err, msg_part);
	assert_non_null(strstr(err, msg_part));
	assert_int_equal(ep.addrlen, 0);
	assert_int_equal(ep.addr.ss_family, 0);
}

/* The text form reads back to the same address. */
static void round_trip(const struct endpoint *ep, const char *want)
{
	char buf[300];
	struct endpoint again;
	endpoint_format(ep, buf, sizeof(buf));
	assert_string_equal(buf, want);
	parse_ok(buf, &again);
	assert_int_equal(again.addrlen, ep->addrlen);
	assert_memory_equal(&again.addr, &ep->addr, ep->addrlen);
}

static void test_unix(void **state)
{
	(void)state;
	struct endpoint ep;
	parse_ok("unix:/run/nbd.sock", &ep);
	const struct sockaddr_un *sa = (const void *)&ep.addr;
	assert_int_equal(sa->sun_family, AF_UNIX);
	assert_string_equal(sa->sun_path, "/run/nbd.sock");
	assert_int_equal(ep.addrlen, sizeof(*sa));
	round_trip(&ep, "unix:/run/nbd.sock");
	parse_ok("/run/nbd.sock", &ep);
	assert_string_equal(sa->sun_path, "/run/nbd.sock");
	parse_ok("unix:rel/nbd.sock", &ep); /* relative after unix: */
	assert_string_equal(sa->sun_path, "rel/nbd.sock");
	parse_ok("unix:/a:1", &ep); /* a colon in a path is a path */
	assert_string_equal(sa->sun_path, "/a:1");

	char path[sizeof(sa->sun_path) + 8];
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[sizeof(sa->sun_path) - 1] = '\0'; /* 107 bytes: fits */
	parse_ok(path, &ep);
	path[sizeof(sa->sun_path) - 1] = 'p';
	path[sizeof(sa->sun_path)] = '\0'; /* 108: does not */
	parse_bad(path, "longer than");
	parse_bad("unix:", "empty");
}

static void test_ipv4(void **state)
{
	(void)state;
	struct endpoint ep;
	parse_ok("127.0.0.1:10809", &ep);
	const struct sockaddr_in *sa = (const void *)&ep.addr;
	assert_int_equal(sa->sin_family, AF_INET);
	assert_int_equal(ntohs(sa->sin_port), 10809);
	assert_int_equal(ntohl(sa->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(ep.addrlen, sizeof(*sa));
	round_trip(&ep, "127.0.0.1:10809");
	parse_ok("0.0.0.0:1", &ep);
	parse_ok("10.1.2.3:65535", &ep);
	parse_bad("10.1.2.3:65536", "bad port");
	parse_bad("10.1.2.3:0", "bad port");
	parse_bad("10.1.2.3:080", "bad port");
	parse_bad("10.1.2.3:+80", "bad port");
	parse_bad("10.1.2.3: 80", "bad port");
	parse_bad("10.1.2.3:-1", "bad port");
	parse_bad("10.1.2.3:", "bad port");
	parse_bad("10.1.2.3:80x", "bad port");
	parse_bad("10.1.2.3", "no port");
	parse_bad(":80", "bad address");
	parse_bad("10.1.2:80", "bad IPv4");
	parse_bad("256.1.2.3:80", "bad IPv4");
	parse_bad("localhost:80", "not resolved");
}

static void test_ipv6(void **state)
{
	(void)state;
	struct endpoint ep;
	parse_ok("[::1]:10809", &ep);
	const struct sockaddr_in6 *sa = (const void *)&ep.addr;
	assert_int_equal(sa->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sa->sin6_port), 10809);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sa->sin6_addr));
	assert_int_equal(ep.addrlen, sizeof(*sa));
	round_trip(&ep, "[::1]:10809");
	parse_ok("[2001:db8::42]:1", &ep);
	round_trip(&ep, "[2001:db8::42]:1");
	parse_ok("[::ffff:10.0.0.1]:80", &ep);
	parse_bad("::1:80", "brackets");
	parse_bad("[::1]", "[IPv6]:PORT");
	parse_bad("[::1]80", "[IPv6]:PORT");
	parse_bad("[::1:80", "[IPv6]:PORT");
	parse_bad("[]:80", "bad address");
	parse_bad("[fe80::1%eth0]:80", "bad IPv6");
	parse_bad("[10.0.0.1]:80", "bad IPv6");
	parse_bad("[::1]:0", "bad port");
}

static void test_refused(void **state)
{
	(void)state;
	parse_bad(NULL, "none given");
	parse_bad("", "none given");
	char longer[ENDPOINT_MAX_LEN + 2];
	memset(longer, '1', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	parse_bad(longer, "longer than");
	/* No message buffer: still refused, nothing written. */
	struct endpoint ep;
	assert_int_equal(endpoint_parse("nope", &ep, NULL, 0), -EINVAL);
	/* A message that does not fit is cut, not overrun. */
	char small[8];
	memset(small, 'x', sizeof(small));
	assert_int_equal(endpoint_parse("nope", &ep, small, 4), -EINVAL);
	assert_int_equal(small[3], '\0');
	assert_int_equal(small[4], 'x');
	/* Formatting into a buffer too small gives "". */
	parse_ok("[2001:db8::42]:1", &ep);
	endpoint_format(&ep, small, sizeof(small));
	assert_string_equal(small, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unix),
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
