/*
 * Where an NBD connection goes, as an operator writes it: "unix:PATH" or
 * "/PATH" (a unix socket), "IPv4:PORT" or "[IPv6]:PORT" (TCP).  Used by
 * card-ebs's NBD client and by flint-nbd-server, so both read the same
 * forms the same way.  Numeric addresses only: nothing resolves host names
 * (card-ebs runs jailed, with no resolver).
 */
#ifndef FLINT_ENDPOINT_H
#define FLINT_ENDPOINT_H

#include <stddef.h>
#include <sys/socket.h>

struct endpoint {
	struct sockaddr_storage addr; /* AF_UNIX, AF_INET or AF_INET6 */
	socklen_t addrlen;
};

/* Longest text endpoint_parse looks at; anything longer is refused. */
#define ENDPOINT_MAX_LEN 255

/*
 * Fills *ep from text.  0, or -EINVAL with a message naming the problem in
 * err (which may be NULL).  A unix path is kept as written (relative ones
 * too, after "unix:"); it must fit sun_path.
 */
int endpoint_parse(const char *text, struct endpoint *ep, char *err, size_t errlen);

/* The text form endpoint_parse reads back to the same address; "" if it does not fit. */
void endpoint_format(const struct endpoint *ep, char *buf, size_t len);

#endif
