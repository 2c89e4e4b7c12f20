/*
 * Buffered I/O of one NBD connection in flint-nbd-server.  A client with
 * many requests in flight sends them back to back: one recv() then takes
 * several, and their replies leave in one send(), so the client's receiver
 * wakes once for the batch instead of once per reply.  Replies are held
 * only while more requests are already buffered: the server flushes before
 * it would wait for the client (conn_in_fill with wait set does that).
 */
#ifndef FLINT_STORAGE_CONN_BUF_H
#define FLINT_STORAGE_CONN_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes received and not yet consumed: buf[head, tail). */
struct conn_in {
	uint8_t *buf;
	size_t cap, head, tail;
};

/* Replies not yet sent: buf[0, used). */
struct conn_out {
	uint8_t *buf;
	size_t cap, used;
};

int conn_in_init(struct conn_in *in, size_t cap);
void conn_in_free(struct conn_in *in);

static inline size_t conn_in_avail(const struct conn_in *in)
{
	return in->tail - in->head;
}

static inline const uint8_t *conn_in_data(const struct conn_in *in)
{
	return in->buf + in->head;
}

void conn_in_consume(struct conn_in *in, size_t n);

/*
 * One recv() into the free space (moving unconsumed bytes to the front
 * first).  Without wait it does not block.  With wait it first sends out
 * (pending replies: the client may be waiting for them).  Returns the byte
 * count, 0 at EOF, -EAGAIN (no wait: nothing there; wait: the socket's
 * send or receive timeout expired) or another negative errno.
 */
ssize_t conn_in_fill(struct conn_in *in, int sock, bool wait, struct conn_out *out);

int conn_out_init(struct conn_out *out, size_t cap);
void conn_out_free(struct conn_out *out);

/* Room for n more bytes, or NULL (flush first, or n is larger than cap). */
uint8_t *conn_out_reserve(struct conn_out *out, size_t n);

static inline void conn_out_commit(struct conn_out *out, size_t n)
{
	out->used += n;
}

/* Sends everything pending.  0, -EAGAIN (the send timeout expired) or a
 * negative errno (the connection is broken). */
int conn_out_flush(struct conn_out *out, int sock);

#endif
