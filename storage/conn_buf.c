#include "conn_buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

int conn_in_init(struct conn_in *in, size_t cap)
{
	in->buf = malloc(cap);
	in->cap = cap;
	in->head = in->tail = 0;
	return in->buf != NULL ? 0 : -1;
}

void conn_in_free(struct conn_in *in)
{
	free(in->buf);
	in->buf = NULL;
}

void conn_in_consume(struct conn_in *in, size_t n)
{
	in->head += n;
	if (in->head == in->tail)
		in->head = in->tail = 0;
}

ssize_t conn_in_fill(struct conn_in *in, int sock, bool wait, struct conn_out *out)
{
	if (in->head > 0) {
		memmove(in->buf, in->buf + in->head, in->tail - in->head);
		in->tail -= in->head;
		in->head = 0;
	}
	if (wait) {
		int r = conn_out_flush(out, sock);
		if (r != 0)
			return r;
	}
	for (;;) {
		ssize_t n = recv(sock, in->buf + in->tail, in->cap - in->tail,
				 wait ? 0 : MSG_DONTWAIT);
		if (n > 0)
			in->tail += (size_t)n;
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

int conn_out_init(struct conn_out *out, size_t cap)
{
	out->buf = malloc(cap);
	out->cap = cap;
	out->used = 0;
	return out->buf != NULL ? 0 : -1;
}

void conn_out_free(struct conn_out *out)
{
	free(out->buf);
	out->buf = NULL;
}

uint8_t *conn_out_reserve(struct conn_out *out, size_t n)
{
	return n <= out->cap - out->used ? out->buf + out->used : NULL;
}

int conn_out_flush(struct conn_out *out, int sock)
{
	size_t done = 0;
	while (done < out->used) {
		ssize_t n = send(sock, out->buf + done, out->used - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -EIO : errno == EWOULDBLOCK ? -EAGAIN : -errno;
		done += (size_t)n;
	}
	out->used = 0;
	return 0;
}
