/*
 * One connection to an NBD server, as card-ebs's NBD client uses it: socket
 * I/O on a non-blocking socket, each call bounded by a deadline (ms,
 * CLOCK_MONOTONIC: storage_now_ms) and cut short with -ECANCELED once
 * cancel_fd is readable (the client is closing: whoever waits must let
 * go); and fixed newstyle negotiation on a fresh connection.
 *
 * This layer only moves bytes and returns.  It knows nothing of the client
 * that uses it: a caller that must serve replies while it sends (a server
 * that blocks writing replies nobody reads would stop reading requests)
 * asks nbd_conn_send_msg to stop when replies are waiting, serves them and
 * sends on.
 */
#ifndef FLINT_CARDS_EBS_NBD_CONN_H
#define FLINT_CARDS_EBS_NBD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "nbd_proto.h"

/* Formats a message into buf (nothing if buf is NULL or len 0). */
__attribute__((format(printf, 3, 4)))
void nbd_set_msg(char *buf, size_t len, const char *fmt, ...);

/*
 * A request as it goes on the wire: the encoded header and the payload (a
 * WRITE's), as one message.  msg points into the structure: initialize it
 * where it is used, do not copy it.
 */
struct nbd_wire_request {
	uint8_t hdr[NBD_REQUEST_LEN];
	struct iovec iov[2];
	struct msghdr msg;
};
void nbd_wire_request_init(struct nbd_wire_request *w, const struct nbd_request *rq,
			   const void *payload);

/*
 * Sends what is left of m (advancing it).  Returns 0 once all of it is
 * sent, -errno (-ETIMEDOUT at deadline, -ECANCELED), or, with
 * stop_if_readable set, 1 as soon as fd has bytes to read: m holds the
 * rest, to be sent by calling again.
 */
int nbd_conn_send_msg(int fd, int cancel_fd, struct msghdr *m, uint64_t deadline,
		      bool stop_if_readable);

/* One request and its payload (NULL: none). */
int nbd_conn_send_request(int fd, int cancel_fd, const struct nbd_request *rq,
			  const void *payload, uint64_t deadline);

/* Exactly len bytes; -ECONNRESET at EOF. */
int nbd_conn_recv_all(int fd, int cancel_fd, void *buf, size_t len, uint64_t deadline);

/* Negotiation outcome beyond the errno: fatal = the server refused us for good. */
struct nbd_neg_result {
	struct nbd_export_info info;
	int fatal;
	char msg[192];
};

/*
 * Fixed newstyle negotiation on a fresh socket: NBD_OPT_GO for export_name,
 * falling back to NBD_OPT_EXPORT_NAME.  Returns 0 or -errno with res->msg
 * saying why.
 */
int nbd_negotiate(int fd, int cancel_fd, const char *export_name, uint64_t deadline,
		  struct nbd_neg_result *res);

/*
 * Derives block size (*bs) and the largest payload (*maxp) from what the
 * server said.  Returns 0, or -EOPNOTSUPP with msg saying why.
 */
int nbd_export_geometry(const struct nbd_export_info *in, uint32_t *bs, uint32_t *maxp,
			char *msg, size_t msglen);

#endif
