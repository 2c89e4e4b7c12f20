/*
 * One connection to an NBD server: socket I/O bounded by deadlines, and
 * negotiation.  See nbd_conn.h.
 */
#include "nbd_conn.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "storage_connect.h"

#define MAX_OPT_REPLIES 64

void nbd_set_msg(char *buf, size_t len, const char *fmt, ...)
{
	if (buf == NULL || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- socket I/O ---- */

/* Consumes n sent bytes and any empty entries after them. */
static void iov_advance(struct msghdr *m, size_t n)
{
	while (m->msg_iovlen > 0) {
		size_t k = n < m->msg_iov->iov_len ? n : m->msg_iov->iov_len;
		m->msg_iov->iov_base = (uint8_t *)m->msg_iov->iov_base + k;
		m->msg_iov->iov_len -= k;
		n -= k;
		if (m->msg_iov->iov_len > 0)
			return;
		m->msg_iov++;
		m->msg_iovlen--;
	}
}

int nbd_conn_send_msg(int fd, int cancel_fd, struct msghdr *m, uint64_t deadline,
		      bool stop_if_readable)
{
	iov_advance(m, 0);
	while (m->msg_iovlen > 0) {
		ssize_t k = sendmsg(fd, m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			iov_advance(m, (size_t)k);
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return k < 0 ? -errno : -EPIPE;
		short events = (short)(POLLOUT | (stop_if_readable ? POLLIN : 0));
		int ev = storage_wait_fd(fd, events, cancel_fd, deadline);
		if (ev < 0)
			return ev;
		if (stop_if_readable && (ev & POLLIN))
			return 1;
	}
	return 0;
}

static int send_all(int fd, int cancel_fd, const void *buf, size_t len, uint64_t deadline)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	return nbd_conn_send_msg(fd, cancel_fd, &m, deadline, false);
}

void nbd_wire_request_init(struct nbd_wire_request *w, const struct nbd_request *rq,
			   const void *payload)
{
	nbd_encode_request(w->hdr, rq);
	w->iov[0] = (struct iovec){ .iov_base = w->hdr, .iov_len = sizeof(w->hdr) };
	w->iov[1] = (struct iovec){ .iov_base = (void *)payload, .iov_len = payload ? rq->length : 0 };
	w->msg = (struct msghdr){ .msg_iov = w->iov, .msg_iovlen = payload ? 2 : 1 };
}

int nbd_conn_send_request(int fd, int cancel_fd, const struct nbd_request *rq,
			  const void *payload, uint64_t deadline)
{
	struct nbd_wire_request w;
	nbd_wire_request_init(&w, rq, payload);
	return nbd_conn_send_msg(fd, cancel_fd, &w.msg, deadline, false);
}

int nbd_conn_recv_all(int fd, int cancel_fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET; /* EOF */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = storage_wait_fd(fd, POLLIN, cancel_fd, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

static int discard_bytes(int fd, int cancel_fd, uint32_t len, uint64_t deadline)
{
	uint8_t sink[512];
	while (len > 0) {
		uint32_t n = len < sizeof(sink) ? len : (uint32_t)sizeof(sink);
		int r = nbd_conn_recv_all(fd, cancel_fd, sink, n, deadline);
		if (r != 0)
			return r;
		len -= n;
	}
	return 0;
}

/* ---- negotiation ---- */

/* Copies a printable prefix of an option error message into res->msg. */
static void error_reply_msg(struct nbd_neg_result *res, uint32_t type, const uint8_t *data,
			    uint32_t len)
{
	char text[96];
	size_t n = 0;
	for (uint32_t i = 0; i < len && n + 1 < sizeof(text); i++)
		text[n++] = (data[i] >= 0x20 && data[i] < 0x7f) ? (char)data[i] : '?';
	text[n] = '\0';
	nbd_set_msg(res->msg, sizeof(res->msg), "server refused the export (reply 0x%08x)%s%s", type,
		n ? ": " : "", text);
}

static int opt_export_name(int fd, int cancel_fd, const char *export_name, int no_zeroes,
			   uint64_t deadline, struct nbd_neg_result *res)
{
	uint8_t hdr[NBD_OPT_HDR_LEN];
	size_t nlen = strlen(export_name);
	nbd_encode_opt_hdr(hdr, NBD_OPT_EXPORT_NAME, (uint32_t)nlen);
	int r = send_all(fd, cancel_fd, hdr, sizeof(hdr), deadline);
	if (r == 0)
		r = send_all(fd, cancel_fd, export_name, nlen, deadline);
	uint8_t rep[NBD_EXPORT_NAME_REPLY_LEN];
	if (r == 0)
		r = nbd_conn_recv_all(fd, cancel_fd, rep, sizeof(rep), deadline);
	if (r == 0 && !no_zeroes)
		r = discard_bytes(fd, cancel_fd, 124, deadline);
	if (r != 0) {
		nbd_set_msg(res->msg, sizeof(res->msg), "EXPORT_NAME: %s", strerror(-r));
		return r;
	}
	if (nbd_decode_export_name_reply(rep, sizeof(rep), &res->info) != 0) {
		nbd_set_msg(res->msg, sizeof(res->msg), "EXPORT_NAME: malformed reply");
		return -EPROTO;
	}
	return 0;
}

int nbd_negotiate(int fd, int cancel_fd, const char *export_name, uint64_t deadline,
		  struct nbd_neg_result *res)
{
	uint8_t greet[NBD_GREETING_LEN];
	uint16_t hflags;
	memset(res, 0, sizeof(*res));
	int r = nbd_conn_recv_all(fd, cancel_fd, greet, sizeof(greet), deadline);
	if (r != 0) {
		nbd_set_msg(res->msg, sizeof(res->msg), "greeting: %s", strerror(-r));
		return r;
	}
	if (nbd_decode_greeting(greet, sizeof(greet), &hflags) != 0) {
		nbd_set_msg(res->msg, sizeof(res->msg), "not a newstyle NBD server");
		return -EPROTO;
	}
	if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE)) {
		res->fatal = 1;
		nbd_set_msg(res->msg, sizeof(res->msg), "server lacks fixed newstyle negotiation");
		return -EPROTO;
	}
	int no_zeroes = (hflags & NBD_FLAG_NO_ZEROES) != 0;
	uint8_t cflags[4];
	nbd_put32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE | (no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0));

	uint8_t msg[NBD_OPT_HDR_LEN + 4 + NBD_MAX_NAME_LEN + 4];
	static const uint16_t want[] = { NBD_INFO_BLOCK_SIZE };
	int plen = nbd_encode_go_payload(msg + NBD_OPT_HDR_LEN, sizeof(msg) - NBD_OPT_HDR_LEN,
					 export_name, want, 1);
	if (plen < 0) {
		res->fatal = 1;
		nbd_set_msg(res->msg, sizeof(res->msg), "export name too long");
		return -EINVAL;
	}
	nbd_encode_opt_hdr(msg, NBD_OPT_GO, (uint32_t)plen);
	r = send_all(fd, cancel_fd, cflags, sizeof(cflags), deadline);
	if (r == 0)
		r = send_all(fd, cancel_fd, msg, NBD_OPT_HDR_LEN + (size_t)plen, deadline);
	if (r != 0) {
		nbd_set_msg(res->msg, sizeof(res->msg), "sending OPT_GO: %s", strerror(-r));
		return r;
	}
	for (int i = 0; i < MAX_OPT_REPLIES; i++) {
		uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];
		uint8_t data[256];
		struct nbd_opt_reply rep;
		r = nbd_conn_recv_all(fd, cancel_fd, hdr, sizeof(hdr), deadline);
		if (r != 0) {
			nbd_set_msg(res->msg, sizeof(res->msg), "OPT_GO reply: %s", strerror(-r));
			return r;
		}
		if (nbd_decode_opt_reply(hdr, sizeof(hdr), &rep) != 0 || rep.option != NBD_OPT_GO) {
			nbd_set_msg(res->msg, sizeof(res->msg), "malformed OPT_GO reply");
			return -EPROTO;
		}
		uint32_t keep = rep.length < sizeof(data) ? rep.length : (uint32_t)sizeof(data);
		r = nbd_conn_recv_all(fd, cancel_fd, data, keep, deadline);
		if (r == 0)
			r = discard_bytes(fd, cancel_fd, rep.length - keep, deadline);
		if (r != 0) {
			nbd_set_msg(res->msg, sizeof(res->msg), "OPT_GO reply: %s", strerror(-r));
			return r;
		}
		switch (rep.type) {
		case NBD_REP_ACK:
			if (rep.length != 0 || !res->info.have_export) {
				nbd_set_msg(res->msg, sizeof(res->msg), "OPT_GO acknowledged without export info");
				return -EPROTO;
			}
			return 0;
		case NBD_REP_INFO:
			if (rep.length > sizeof(data) ||
			    nbd_parse_info(data, rep.length, &res->info) != 0) {
				nbd_set_msg(res->msg, sizeof(res->msg), "malformed NBD_REP_INFO");
				return -EPROTO;
			}
			break;
		case NBD_REP_ERR_UNSUP:
			/* An older server: the name-only option, same connection. */
			return opt_export_name(fd, cancel_fd, export_name, no_zeroes, deadline, res);
		default:
			if (rep.type & NBD_REP_FLAG_ERROR) {
				/* Shutting down is transient; the rest is a refusal. */
				res->fatal = rep.type != NBD_REP_ERR_SHUTDOWN;
				error_reply_msg(res, rep.type, data, keep);
				return -EACCES;
			}
			nbd_set_msg(res->msg, sizeof(res->msg), "unexpected OPT_GO reply type %u", rep.type);
			return -EPROTO;
		}
	}
	nbd_set_msg(res->msg, sizeof(res->msg), "too many OPT_GO replies");
	return -EPROTO;
}

int nbd_export_geometry(const struct nbd_export_info *in, uint32_t *bs, uint32_t *maxp,
			char *msg, size_t msglen)
{
	uint32_t b = 512;
	if (in->have_block_size) {
		if (in->min_block > 4096) {
			nbd_set_msg(msg, msglen, "server minimum block size %u is unsupported", in->min_block);
			return -EOPNOTSUPP;
		}
		if (in->min_block > b)
			b = in->min_block;
	}
	uint32_t m = NBD_MAX_PAYLOAD;
	if (in->have_block_size && in->max_block < m)
		m = in->max_block / b * b;
	if (m < b) {
		nbd_set_msg(msg, msglen, "server maximum block size %u is too small", in->max_block);
		return -EOPNOTSUPP;
	}
	if (in->size < b || in->size > (uint64_t)INT64_MAX) {
		nbd_set_msg(msg, msglen, "export size %" PRIu64 " is unusable", in->size);
		return -EOPNOTSUPP;
	}
	*bs = b;
	*maxp = m;
	return 0;
}
