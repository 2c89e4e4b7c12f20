/*
 * NBD client for card-ebs: see nbd_client.h for the contract.
 *
 * Every socket operation is non-blocking and bounded by the deadline of the
 * request it serves, so a silent or slow server can delay a caller by at
 * most retry_timeout_ms.  Nothing the server sends is trusted: each reply is
 * checked (magic, handle, lengths) before any payload byte is accepted.
 */
#include "nbd_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "nbd_proto.h"

#define DEFAULT_TIMEOUT_MS 30000U
#define DEFAULT_REPLAY_CAP (64ULL << 20)
#define BACKOFF_MIN_MS 50U
#define BACKOFF_MAX_MS 1000U
#define MAX_OPT_REPLIES 64
#define ZERO_CHUNK (1ULL << 30) /* TRIM / WRITE_ZEROES per request */
#define REPLAY_ENTRY_COST 64U

/* A mutation acknowledged since the last successful flush. */
struct replay_ent {
	struct replay_ent *next;
	uint16_t type;
	uint64_t offset;
	uint32_t length;
	uint8_t data[]; /* WRITE payload */
};

struct nbd_client {
	pthread_mutex_t lock;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char *export_name;
	uint32_t timeout_ms;
	uint64_t replay_cap;

	int fd; /* -1: not connected */
	uint64_t next_handle;
	uint64_t size;       /* as the server reports it */
	uint16_t tflags;
	uint32_t block_size;
	uint32_t max_payload;

	struct replay_ent *log_head, *log_tail;
	uint64_t log_bytes;
	int log_incomplete; /* the log overflowed since the last flush */
	int lost;           /* reconnected with an incomplete log: flush must fail */

	struct nbd_client_stats stats;
};

/* Negotiation outcome beyond the errno: 1 = the server refused us for good. */
struct neg_result {
	struct nbd_export_info info;
	int fatal;
	char msg[192];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

__attribute__((format(printf, 3, 4)))
static void set_msg(char *buf, size_t len, const char *fmt, ...)
{
	if (buf == NULL || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		uint64_t left = deadline - now;
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

static int send_all(int fd, const void *buf, size_t len, uint64_t deadline)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(fd, POLLOUT, deadline);
			if (r != 0)
				return r;
			continue;
		}
		return n < 0 ? -errno : -EPIPE;
	}
	return 0;
}

static int recv_all(int fd, void *buf, size_t len, uint64_t deadline)
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
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int r = wait_fd(fd, POLLIN, deadline);
			if (r != 0)
				return r;
			continue;
		}
		return -errno;
	}
	return 0;
}

static int discard_bytes(int fd, uint32_t len, uint64_t deadline)
{
	uint8_t sink[512];
	while (len > 0) {
		uint32_t n = len < sizeof(sink) ? len : (uint32_t)sizeof(sink);
		int r = recv_all(fd, sink, n, deadline);
		if (r != 0)
			return r;
		len -= n;
	}
	return 0;
}

static int parse_endpoint(struct nbd_client *c, const char *ep, char *err, size_t errlen)
{
	memset(&c->addr, 0, sizeof(c->addr));
	if (ep == NULL || *ep == '\0') {
		set_msg(err, errlen, "nbd: no endpoint");
		return -EINVAL;
	}
	const char *path = NULL;
	if (strncmp(ep, "unix:", 5) == 0)
		path = ep + 5;
	else if (ep[0] == '/')
		path = ep;
	if (path != NULL) {
		struct sockaddr_un *sa = (struct sockaddr_un *)&c->addr;
		if (*path == '\0' || strlen(path) >= sizeof(sa->sun_path)) {
			set_msg(err, errlen, "nbd: bad unix socket path");
			return -EINVAL;
		}
		sa->sun_family = AF_UNIX;
		strcpy(sa->sun_path, path);
		c->addrlen = sizeof(*sa);
		return 0;
	}
	char host[64];
	const char *colon = strrchr(ep, ':');
	struct sockaddr_in *sin = (struct sockaddr_in *)&c->addr;
	char *end;
	if (colon == NULL || (size_t)(colon - ep) >= sizeof(host))
		goto bad;
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno || *end || colon[1] == '\0' || port == 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		goto bad;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	c->addrlen = sizeof(*sin);
	return 0;
bad:
	set_msg(err, errlen, "nbd: bad endpoint '%s' (want unix:PATH, /PATH or IPv4:PORT)", ep);
	return -EINVAL;
}

static int connect_socket(struct nbd_client *c, uint64_t deadline)
{
	int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&c->addr, c->addrlen) != 0) {
		if (errno != EINPROGRESS) {
			int e = -errno;
			close(fd);
			return e;
		}
		int r = wait_fd(fd, POLLOUT, deadline);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			r = -errno;
		if (r == 0 && soerr != 0)
			r = -soerr;
		if (r != 0) {
			close(fd);
			return r;
		}
	}
	if (c->addr.ss_family == AF_INET) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

/* Copies a printable prefix of an option error message into res->msg. */
static void error_reply_msg(struct neg_result *res, uint32_t type, const uint8_t *data, uint32_t len)
{
	char text[96];
	size_t n = 0;
	for (uint32_t i = 0; i < len && n + 1 < sizeof(text); i++)
		text[n++] = (data[i] >= 0x20 && data[i] < 0x7f) ? (char)data[i] : '?';
	text[n] = '\0';
	set_msg(res->msg, sizeof(res->msg), "server refused the export (reply 0x%08x)%s%s", type,
		n ? ": " : "", text);
}

static int opt_export_name(struct nbd_client *c, int fd, int no_zeroes, uint64_t deadline,
			   struct neg_result *res)
{
	uint8_t hdr[NBD_OPT_HDR_LEN];
	size_t nlen = strlen(c->export_name);
	nbd_encode_opt_hdr(hdr, NBD_OPT_EXPORT_NAME, (uint32_t)nlen);
	int r = send_all(fd, hdr, sizeof(hdr), deadline);
	if (r == 0)
		r = send_all(fd, c->export_name, nlen, deadline);
	uint8_t rep[NBD_EXPORT_NAME_REPLY_LEN];
	if (r == 0)
		r = recv_all(fd, rep, sizeof(rep), deadline);
	if (r == 0 && !no_zeroes)
		r = discard_bytes(fd, 124, deadline);
	if (r != 0) {
		set_msg(res->msg, sizeof(res->msg), "EXPORT_NAME: %s", strerror(-r));
		return r;
	}
	if (nbd_decode_export_name_reply(rep, sizeof(rep), &res->info) != 0) {
		set_msg(res->msg, sizeof(res->msg), "EXPORT_NAME: malformed reply");
		return -EPROTO;
	}
	return 0;
}

/* Fixed newstyle negotiation on a fresh socket. */
static int negotiate(struct nbd_client *c, int fd, uint64_t deadline, struct neg_result *res)
{
	uint8_t greet[NBD_GREETING_LEN];
	uint16_t hflags;
	memset(res, 0, sizeof(*res));
	int r = recv_all(fd, greet, sizeof(greet), deadline);
	if (r != 0) {
		set_msg(res->msg, sizeof(res->msg), "greeting: %s", strerror(-r));
		return r;
	}
	if (nbd_decode_greeting(greet, sizeof(greet), &hflags) != 0) {
		set_msg(res->msg, sizeof(res->msg), "not a newstyle NBD server");
		return -EPROTO;
	}
	if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE)) {
		res->fatal = 1;
		set_msg(res->msg, sizeof(res->msg), "server lacks fixed newstyle negotiation");
		return -EPROTO;
	}
	int no_zeroes = (hflags & NBD_FLAG_NO_ZEROES) != 0;
	uint8_t cflags[4];
	nbd_put32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE | (no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0));

	uint8_t msg[NBD_OPT_HDR_LEN + 4 + NBD_MAX_NAME_LEN + 4];
	static const uint16_t want[] = { NBD_INFO_BLOCK_SIZE };
	int plen = nbd_encode_go_payload(msg + NBD_OPT_HDR_LEN, sizeof(msg) - NBD_OPT_HDR_LEN,
					 c->export_name, want, 1);
	if (plen < 0) {
		res->fatal = 1;
		set_msg(res->msg, sizeof(res->msg), "export name too long");
		return -EINVAL;
	}
	nbd_encode_opt_hdr(msg, NBD_OPT_GO, (uint32_t)plen);
	r = send_all(fd, cflags, sizeof(cflags), deadline);
	if (r == 0)
		r = send_all(fd, msg, NBD_OPT_HDR_LEN + (size_t)plen, deadline);
	if (r != 0) {
		set_msg(res->msg, sizeof(res->msg), "sending OPT_GO: %s", strerror(-r));
		return r;
	}
	for (int i = 0; i < MAX_OPT_REPLIES; i++) {
		uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];
		uint8_t data[256];
		struct nbd_opt_reply rep;
		r = recv_all(fd, hdr, sizeof(hdr), deadline);
		if (r != 0) {
			set_msg(res->msg, sizeof(res->msg), "OPT_GO reply: %s", strerror(-r));
			return r;
		}
		if (nbd_decode_opt_reply(hdr, sizeof(hdr), &rep) != 0 || rep.option != NBD_OPT_GO) {
			set_msg(res->msg, sizeof(res->msg), "malformed OPT_GO reply");
			return -EPROTO;
		}
		uint32_t keep = rep.length < sizeof(data) ? rep.length : (uint32_t)sizeof(data);
		r = recv_all(fd, data, keep, deadline);
		if (r == 0)
			r = discard_bytes(fd, rep.length - keep, deadline);
		if (r != 0) {
			set_msg(res->msg, sizeof(res->msg), "OPT_GO reply: %s", strerror(-r));
			return r;
		}
		switch (rep.type) {
		case NBD_REP_ACK:
			if (rep.length != 0 || !res->info.have_export) {
				set_msg(res->msg, sizeof(res->msg), "OPT_GO acknowledged without export info");
				return -EPROTO;
			}
			return 0;
		case NBD_REP_INFO:
			if (rep.length > sizeof(data) ||
			    nbd_parse_info(data, rep.length, &res->info) != 0) {
				set_msg(res->msg, sizeof(res->msg), "malformed NBD_REP_INFO");
				return -EPROTO;
			}
			break;
		case NBD_REP_ERR_UNSUP:
			/* An older server: the name-only option, same connection. */
			return opt_export_name(c, fd, no_zeroes, deadline, res);
		default:
			if (rep.type & NBD_REP_FLAG_ERROR) {
				/* Shutting down is transient; the rest is a refusal. */
				res->fatal = rep.type != NBD_REP_ERR_SHUTDOWN;
				error_reply_msg(res, rep.type, data, keep);
				return -EACCES;
			}
			set_msg(res->msg, sizeof(res->msg), "unexpected OPT_GO reply type %u", rep.type);
			return -EPROTO;
		}
	}
	set_msg(res->msg, sizeof(res->msg), "too many OPT_GO replies");
	return -EPROTO;
}

/* Derives block size and I/O limits from what the server said. */
static int export_geometry(const struct nbd_export_info *in, uint32_t *bs, uint32_t *maxp,
			   char *msg, size_t msglen)
{
	uint32_t b = 512;
	if (in->have_block_size) {
		if (in->min_block > 4096) {
			set_msg(msg, msglen, "server minimum block size %u is unsupported", in->min_block);
			return -EOPNOTSUPP;
		}
		if (in->min_block > b)
			b = in->min_block;
	}
	uint32_t m = NBD_MAX_PAYLOAD;
	if (in->have_block_size && in->max_block < m)
		m = in->max_block / b * b;
	if (m < b) {
		set_msg(msg, msglen, "server maximum block size %u is too small", in->max_block);
		return -EOPNOTSUPP;
	}
	if (in->size < b || in->size > (uint64_t)INT64_MAX) {
		set_msg(msg, msglen, "export size %" PRIu64 " is unusable", in->size);
		return -EOPNOTSUPP;
	}
	*bs = b;
	*maxp = m;
	return 0;
}

static void drop_conn(struct nbd_client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static void log_clear(struct nbd_client *c)
{
	struct replay_ent *e = c->log_head;
	while (e != NULL) {
		struct replay_ent *n = e->next;
		free(e);
		e = n;
	}
	c->log_head = c->log_tail = NULL;
	c->log_bytes = 0;
}

/*
 * One request/reply exchange on the current connection.  Returns 0 when the
 * exchange completed (*srv_err holds the server's verdict as a negative
 * errno or 0), or a negative errno when the connection is unusable.
 */
static int exchange(struct nbd_client *c, uint16_t type, uint64_t off, uint32_t len,
		    const void *wbuf, void *rbuf, uint64_t deadline, int *srv_err)
{
	uint8_t hdr[NBD_REQUEST_LEN];
	struct nbd_request rq = {
		.type = type, .handle = ++c->next_handle, .offset = off, .length = len,
	};
	nbd_encode_request(hdr, &rq);
	int r = send_all(c->fd, hdr, sizeof(hdr), deadline);
	if (r == 0 && type == NBD_CMD_WRITE)
		r = send_all(c->fd, wbuf, len, deadline);
	if (r != 0)
		return r;
	uint8_t rb[NBD_SIMPLE_REPLY_LEN];
	struct nbd_simple_reply rep;
	r = recv_all(c->fd, rb, sizeof(rb), deadline);
	if (r != 0)
		return r;
	if (nbd_decode_simple_reply(rb, sizeof(rb), &rep) != 0 || rep.handle != rq.handle) {
		c->stats.proto_errors++;
		log_warn("nbd: malformed reply (magic 0x%08x, handle %" PRIu64 " want %" PRIu64 ")",
			 nbd_get32(rb), rep.handle, rq.handle);
		return -EPROTO;
	}
	if (rep.error != 0) {
		*srv_err = nbd_error_to_errno(rep.error);
		if (*srv_err == -ESHUTDOWN)
			return -ESHUTDOWN; /* the server is going away: retry elsewhere */
		return 0;
	}
	if (type == NBD_CMD_READ) {
		r = recv_all(c->fd, rbuf, len, deadline);
		if (r != 0)
			return r;
	}
	*srv_err = 0;
	return 0;
}

/* Connect, negotiate, check it is the same export, replay unflushed writes. */
static int reconnect(struct nbd_client *c, uint64_t deadline)
{
	struct neg_result res;
	int fd = connect_socket(c, deadline);
	if (fd < 0)
		return fd;
	int r = negotiate(c, fd, deadline, &res);
	if (r != 0) {
		if (r == -EPROTO)
			c->stats.proto_errors++;
		log_warn("nbd: reconnect: %s", res.msg);
		close(fd);
		return r;
	}
	uint32_t bs, maxp;
	if (export_geometry(&res.info, &bs, &maxp, res.msg, sizeof(res.msg)) != 0 ||
	    res.info.size != c->size || bs != c->block_size ||
	    (res.info.flags & (NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_TRIM |
			       NBD_FLAG_SEND_WRITE_ZEROES)) !=
		    (c->tflags & (NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_TRIM |
				  NBD_FLAG_SEND_WRITE_ZEROES))) {
		log_warn("nbd: reconnect: the export changed (size %" PRIu64 " flags 0x%x): refusing it",
			 res.info.size, res.info.flags);
		close(fd);
		return -ESTALE;
	}
	c->fd = fd;
	if (maxp < c->max_payload)
		c->max_payload = maxp;
	c->stats.reconnects++;
	if (c->log_incomplete)
		c->lost = 1;
	for (struct replay_ent *e = c->log_head; e != NULL; e = e->next) {
		int se = 0;
		r = exchange(c, e->type, e->offset, e->length, e->data, NULL, deadline, &se);
		if (r != 0) {
			drop_conn(c);
			return r;
		}
		if (se != 0) {
			log_warn("nbd: replaying an unflushed write failed: %s", strerror(-se));
			c->lost = 1;
		}
	}
	return 0;
}

static void log_append(struct nbd_client *c, uint16_t type, uint64_t off, uint32_t len,
		       const void *data)
{
	if (!(c->tflags & NBD_FLAG_SEND_FLUSH) || c->log_incomplete)
		return; /* no volatile cache on the server / already incomplete */
	size_t dlen = type == NBD_CMD_WRITE ? len : 0;
	uint64_t cost = dlen + REPLAY_ENTRY_COST;
	struct replay_ent *e = NULL;
	if (c->log_bytes + cost <= c->replay_cap)
		e = malloc(sizeof(*e) + dlen);
	if (e == NULL) {
		log_clear(c);
		c->log_incomplete = 1;
		return;
	}
	e->next = NULL;
	e->type = type;
	e->offset = off;
	e->length = len;
	if (dlen)
		memcpy(e->data, data, dlen);
	if (c->log_tail)
		c->log_tail->next = e;
	else
		c->log_head = e;
	c->log_tail = e;
	c->log_bytes += cost;
}

/*
 * One request with reconnect-and-retry until its deadline.  Caller holds
 * the lock.  Returns 0, the server's error, or -EIO on timeout.
 */
static int run(struct nbd_client *c, uint16_t type, uint64_t off, uint32_t len,
	       const void *wbuf, void *rbuf)
{
	uint64_t deadline = now_ms() + c->timeout_ms;
	uint32_t backoff = BACKOFF_MIN_MS;
	int last = 0;
	for (int attempt = 0;; attempt++) {
		if (c->fd < 0)
			last = reconnect(c, deadline);
		if (c->fd >= 0) {
			int se = 0;
			if (attempt > 0)
				c->stats.retries++;
			last = exchange(c, type, off, len, wbuf, rbuf, deadline, &se);
			if (last == 0) {
				if (se == 0 && (type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
						type == NBD_CMD_WRITE_ZEROES))
					log_append(c, type, off, len, wbuf);
				return se;
			}
			drop_conn(c);
		}
		uint64_t now = now_ms();
		if (now >= deadline)
			break;
		uint64_t nap = deadline - now < backoff ? deadline - now : backoff;
		sleep_ms(nap);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	log_err("nbd: request (type %u, offset %" PRIu64 ", %u bytes) failed after %u ms: %s",
		type, off, len, c->timeout_ms, strerror(last < 0 ? -last : EIO));
	return -EIO;
}

static int check_range(struct nbd_client *c, uint64_t off, uint64_t len)
{
	return nbd_range_ok(off, len, c->size);
}

static int nbd_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct nbd_client *c = ctx;
	int r = check_range(c, off, len);
	pthread_mutex_lock(&c->lock);
	while (r == 0 && len > 0) {
		uint32_t n = len < c->max_payload ? (uint32_t)len : c->max_payload;
		r = run(c, NBD_CMD_READ, off, n, NULL, buf);
		buf = (uint8_t *)buf + n;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int nbd_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct nbd_client *c = ctx;
	int r = check_range(c, off, len);
	if (r == 0 && (c->tflags & NBD_FLAG_READ_ONLY))
		r = -EROFS;
	pthread_mutex_lock(&c->lock);
	while (r == 0 && len > 0) {
		uint32_t n = len < c->max_payload ? (uint32_t)len : c->max_payload;
		r = run(c, NBD_CMD_WRITE, off, n, buf, NULL);
		buf = (const uint8_t *)buf + n;
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int nbd_flush(void *ctx)
{
	struct nbd_client *c = ctx;
	int r = 0;
	pthread_mutex_lock(&c->lock);
	if (c->tflags & NBD_FLAG_SEND_FLUSH)
		r = run(c, NBD_CMD_FLUSH, 0, 0, NULL, NULL);
	if (r == 0) {
		log_clear(c);
		c->log_incomplete = 0;
		if (c->lost) {
			c->lost = 0;
			log_err("nbd: writes acknowledged before a server restart may be lost");
			r = -EIO;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int zero_range(struct nbd_client *c, uint16_t type, uint64_t off, uint64_t len)
{
	int r = check_range(c, off, len);
	if (r == 0 && (c->tflags & NBD_FLAG_READ_ONLY))
		r = -EROFS;
	pthread_mutex_lock(&c->lock);
	while (r == 0 && len > 0) {
		uint32_t n = len < ZERO_CHUNK ? (uint32_t)len : (uint32_t)ZERO_CHUNK;
		r = run(c, type, off, n, NULL, NULL);
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int nbd_discard(void *ctx, uint64_t off, uint64_t len)
{
	return zero_range(ctx, NBD_CMD_TRIM, off, len);
}

static int nbd_write_zeroes(void *ctx, uint64_t off, uint64_t len)
{
	return zero_range(ctx, NBD_CMD_WRITE_ZEROES, off, len);
}

static void client_free(struct nbd_client *c)
{
	drop_conn(c);
	log_clear(c);
	pthread_mutex_destroy(&c->lock);
	free(c->export_name);
	free(c);
}

static void nbd_close(void *ctx)
{
	struct nbd_client *c = ctx;
	if (c == NULL)
		return;
	if (c->fd >= 0) {
		uint8_t hdr[NBD_REQUEST_LEN];
		struct nbd_request rq = { .type = NBD_CMD_DISC, .handle = ++c->next_handle };
		nbd_encode_request(hdr, &rq);
		(void)send_all(c->fd, hdr, sizeof(hdr), now_ms() + 100);
	}
	client_free(c);
}

/* All four tables: discard / write_zeroes only when the server offers them. */
static const struct blk_backend_ops ops_all = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush,
	.discard = nbd_discard, .write_zeroes = nbd_write_zeroes, .close = nbd_close,
};
static const struct blk_backend_ops ops_trim = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush,
	.discard = nbd_discard, .close = nbd_close,
};
static const struct blk_backend_ops ops_wz = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush,
	.write_zeroes = nbd_write_zeroes, .close = nbd_close,
};
static const struct blk_backend_ops ops_basic = {
	.read = nbd_read, .write = nbd_write, .flush = nbd_flush, .close = nbd_close,
};

int nbd_backend_open(struct blk_backend *out, const struct nbd_client_config *cfg,
		     char *err, size_t errlen)
{
	if (out == NULL || cfg == NULL) {
		set_msg(err, errlen, "nbd: no configuration");
		return -EINVAL;
	}
	const char *name = cfg->export_name ? cfg->export_name : "";
	if (strlen(name) > NBD_MAX_NAME_LEN) {
		set_msg(err, errlen, "nbd: export name too long");
		return -EINVAL;
	}
	struct nbd_client *c = calloc(1, sizeof(*c));
	if (c == NULL || (c->export_name = strdup(name)) == NULL) {
		free(c);
		set_msg(err, errlen, "nbd: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->fd = -1;
	c->timeout_ms = cfg->retry_timeout_ms ? cfg->retry_timeout_ms : DEFAULT_TIMEOUT_MS;
	c->replay_cap = cfg->replay_cap_bytes ? cfg->replay_cap_bytes : DEFAULT_REPLAY_CAP;
	int r = parse_endpoint(c, cfg->endpoint, err, errlen);
	if (r != 0) {
		client_free(c);
		return r;
	}

	uint64_t deadline = now_ms() + c->timeout_ms;
	uint32_t backoff = BACKOFF_MIN_MS;
	struct neg_result res;
	char why[sizeof(res.msg)] = "";
	for (;;) {
		int fd = connect_socket(c, deadline);
		if (fd >= 0) {
			r = negotiate(c, fd, deadline, &res);
			if (r == 0)
				r = export_geometry(&res.info, &c->block_size, &c->max_payload,
						    res.msg, sizeof(res.msg));
			if (r == 0) {
				c->fd = fd;
				break;
			}
			close(fd);
			if (res.fatal || r == -EOPNOTSUPP) {
				set_msg(err, errlen, "nbd: %s", res.msg);
				client_free(c);
				return r;
			}
		} else {
			r = fd;
			set_msg(res.msg, sizeof(res.msg), "connect: %s", strerror(-fd));
		}
		/* Report the most telling failure, not the final timeout. */
		if (r != -ETIMEDOUT || why[0] == '\0')
			memcpy(why, res.msg, sizeof(why));
		uint64_t now = now_ms();
		if (now >= deadline) {
			set_msg(err, errlen, "nbd: %s (gave up after %u ms)", why, c->timeout_ms);
			client_free(c);
			return -EIO;
		}
		sleep_ms(deadline - now < backoff ? deadline - now : backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	c->size = res.info.size;
	c->tflags = res.info.flags;

	int trim = (c->tflags & NBD_FLAG_SEND_TRIM) != 0;
	int wz = (c->tflags & NBD_FLAG_SEND_WRITE_ZEROES) != 0;
	out->ops = trim && wz ? &ops_all : trim ? &ops_trim : wz ? &ops_wz : &ops_basic;
	out->ctx = c;
	out->size_bytes = c->size / c->block_size * c->block_size;
	out->block_size = c->block_size;
	return 0;
}

void nbd_backend_stats(const struct blk_backend *b, struct nbd_client_stats *st)
{
	struct nbd_client *c = b->ctx;
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	pthread_mutex_unlock(&c->lock);
}
