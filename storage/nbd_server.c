/*
 * flint-nbd-server: Flint's remote storage server (EBS-2).  Serves one
 * file-backed export over NBD (fixed newstyle negotiation, simple replies)
 * on a unix socket or a TCP address, one thread per connection, whose
 * requests and replies are batched (conn_buf.h).
 *
 * It stores exactly the bytes it receives (ciphertext, in Flint's design).
 * Everything a client sends is validated: a malformed request gets an error
 * reply, a broken framing (bad magic, oversized payload) closes only that
 * connection.  FLUSH and FUA mean fdatasync(2): durable.
 *
 * Clients cannot hold the server: one that stops reading its replies, or
 * stops in the middle of a request, is dropped after --stall-timeout; one
 * with nothing in flight and nothing unsynced after --idle-timeout; and
 * when every slot is taken the one idle longest makes room (conn_table.h).
 * SIGUSR1 logs the counters (stats line); SIGTERM syncs, logs them and exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn_buf.h"
#include "conn_table.h"
#include "endpoint.h"
#include "log.h"
#include "log_limit.h"
#include "nbd_server.h"
#include "parse_num.h"
#include "nbd_proto.h"

#define HANDSHAKE_TIMEOUT_S 10
#define DEFAULT_IDLE_TIMEOUT_S 300
#define DEFAULT_STALL_TIMEOUT_S 30
#define MAX_TIMEOUT_S 86400
#define MAX_OPTIONS 64
#define IN_BUF (512U << 10)  /* requests (and write payloads) received at once */
#define OUT_BUF (1U << 20)   /* replies (and read payloads) sent at once */
#define EXPORT_TFLAGS (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | \
		       NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES)

/* Counters for the stats line (SIGUSR1, exit). */
struct server_stats {
	atomic_ullong accepted;
	atomic_ullong refused;     /* every slot was serving a request */
	atomic_ullong evicted;     /* idle, closed to make room */
	atomic_ullong idle_closed; /* past --idle-timeout */
	atomic_ullong stalled;     /* past --stall-timeout: not reading, or stopped mid-request */
	atomic_ullong requests;
	atomic_ullong syncs;       /* fdatasync calls that succeeded */
};

struct server {
	int fd;             /* the backing file */
	uint64_t size;
	uint32_t block_size;
	const char *export_name;
	uint16_t tflags;
	unsigned idle_timeout_s;  /* 0: never */
	unsigned stall_timeout_s; /* 0: never */
	struct conn_table conns;
	struct server_stats stats;
	struct log_limit full_log; /* the acceptor's only */
};

/* Why a connection's transmission phase ended (END_NONE: it goes on). */
enum conn_end { END_NONE, END_CLIENT, END_IDLE, END_EVICTED, END_STALLED };

struct conn {
	struct server *srv;
	struct conn_slot slot; /* slot.sock is the socket */
	int sock;
	/* Writes since this connection's last FLUSH: its client's replay log
	 * empties only then, whoever else synced the file meanwhile. */
	bool dirty;
	uint8_t *buf; /* NBD_MAX_PAYLOAD bytes for payloads too large to batch, or NULL */
	struct conn_in in;
	struct conn_out out;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void log_stats(struct server *s, const char *when)
{
	struct server_stats *st = &s->stats;
	log_info("stats: %s connections=%u accepted=%llu refused=%llu evicted=%llu idle_closed=%llu "
		 "stalled=%llu requests=%llu syncs=%llu", when, conn_table_count(&s->conns),
		 atomic_load(&st->accepted), atomic_load(&st->refused), atomic_load(&st->evicted),
		 atomic_load(&st->idle_closed), atomic_load(&st->stalled),
		 atomic_load(&st->requests), atomic_load(&st->syncs));
}

/* 0, or -ECONNRESET at EOF, -EAGAIN past the receive timeout, -errno. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A reply header and its payload in one sendmsg() where the socket takes it:
 * the client then wakes once per reply, not once for the header and again
 * for the data.  0, or -EAGAIN past the send timeout, -errno.
 */
static int write_full2(int fd, const void *a, size_t alen, const void *b, size_t blen)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *)a, .iov_len = alen },
		{ .iov_base = (void *)b, .iov_len = blen },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t done = 0;
	for (;;) {
		/* Skip what has been sent (and empty parts). */
		while (mh.msg_iovlen > 0 && done >= mh.msg_iov[0].iov_len) {
			done -= mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen == 0)
			return 0;
		mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + done;
		mh.msg_iov[0].iov_len -= done;
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			done = 0;
			continue;
		}
		if (n <= 0)
			return n == 0 ? -EIO : -errno;
		done = (size_t)n;
	}
}

static int write_full(int fd, const void *buf, size_t len)
{
	return write_full2(fd, buf, len, NULL, 0);
}

static int send_opt_reply(int sock, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
	uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];
	nbd_encode_opt_reply(hdr, opt, type, len);
	if (write_full(sock, hdr, sizeof(hdr)) != 0)
		return -1;
	return len ? write_full(sock, data, len) : 0;
}

/* pread/pwrite the whole range or return a negative errno. */
static int file_pread(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) { /* file shorter than export: reads as zeros */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int file_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int file_sync(struct server *s)
{
	if (fdatasync(s->fd) != 0)
		return -errno;
	atomic_fetch_add(&s->stats.syncs, 1);
	return 0;
}

/* c->buf, allocated when first needed: most connections never do. */
static uint8_t *big_buf(struct conn *c)
{
	if (c->buf == NULL)
		c->buf = malloc(NBD_MAX_PAYLOAD);
	if (c->buf == NULL)
		log_err("out of memory for a connection's payload buffer");
	return c->buf;
}

/* Make [off, off+len) read as zeros: punch a hole (unless no_hole), else
 * zero the range in place, else write zeros. */
static int file_zero(struct conn *c, uint64_t off, uint64_t len, int no_hole)
{
	int fd = c->srv->fd;
	if (len == 0)
		return 0;
	if (!no_hole &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	size_t chunk = 1U << 20;
	if (big_buf(c) == NULL)
		return -ENOMEM;
	memset(c->buf, 0, chunk);
	while (len > 0) {
		size_t n = len < chunk ? (size_t)len : chunk;
		int r = file_pwrite(fd, c->buf, n, off);
		if (r != 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int send_export_infos(struct conn *c, uint32_t opt)
{
	uint8_t info[14];
	size_t n = nbd_encode_info_export(info, c->srv->size, c->srv->tflags);
	if (send_opt_reply(c->sock, opt, NBD_REP_INFO, info, (uint32_t)n) != 0)
		return -1;
	/* Always sent: the spec allows it, and clients benefit from knowing. */
	n = nbd_encode_info_block_size(info, c->srv->block_size, c->srv->block_size, NBD_MAX_PAYLOAD);
	return send_opt_reply(c->sock, opt, NBD_REP_INFO, info, (uint32_t)n);
}

/*
 * Option haggling.  Returns 1 to enter transmission, 0 to close (cleanly or
 * not).  Any framing error closes the connection.
 */
static int negotiate(struct conn *c)
{
	struct server *s = c->srv;
	uint8_t greet[NBD_GREETING_LEN], cflags_buf[4];
	nbd_encode_greeting(greet, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	if (write_full(c->sock, greet, sizeof(greet)) != 0 ||
	    read_full(c->sock, cflags_buf, sizeof(cflags_buf)) != 0)
		return 0;
	uint32_t cflags = nbd_get32(cflags_buf);
	if (cflags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		log_warn("client sent unknown flags 0x%x", cflags);
		return 0;
	}
	int no_zeroes = (cflags & NBD_FLAG_C_NO_ZEROES) != 0;

	for (int i = 0; i < MAX_OPTIONS; i++) {
		uint8_t hdr[NBD_OPT_HDR_LEN];
		uint8_t data[NBD_MAX_OPT_LEN];
		uint32_t opt, len;
		if (read_full(c->sock, hdr, sizeof(hdr)) != 0)
			return 0;
		int r = nbd_decode_opt_hdr(hdr, sizeof(hdr), &opt, &len);
		if (r != 0) {
			log_warn("bad option header (%s): closing", strerror(-r));
			return 0;
		}
		if (read_full(c->sock, data, len) != 0)
			return 0;
		switch (opt) {
		case NBD_OPT_EXPORT_NAME: {
			char name[NBD_MAX_NAME_LEN + 1];
			if (len > NBD_MAX_NAME_LEN || memchr(data, 0, len) != NULL)
				return 0;
			memcpy(name, data, len);
			name[len] = '\0';
			if (strcmp(name, s->export_name) != 0)
				return 0; /* the only answer EXPORT_NAME allows */
			uint8_t rep[NBD_EXPORT_NAME_REPLY_LEN + 124];
			memset(rep, 0, sizeof(rep));
			nbd_put64(rep, s->size);
			nbd_put16(rep + 8, s->tflags);
			if (write_full(c->sock, rep, no_zeroes ? NBD_EXPORT_NAME_REPLY_LEN : sizeof(rep)) != 0)
				return 0;
			return 1;
		}
		case NBD_OPT_ABORT:
			(void)send_opt_reply(c->sock, opt, NBD_REP_ACK, NULL, 0);
			return 0;
		case NBD_OPT_LIST: {
			if (len != 0) {
				if (send_opt_reply(c->sock, opt, NBD_REP_ERR_INVALID, NULL, 0) != 0)
					return 0;
				break;
			}
			size_t nl = strlen(s->export_name);
			uint8_t rep[4 + NBD_MAX_NAME_LEN];
			nbd_put32(rep, (uint32_t)nl);
			memcpy(rep + 4, s->export_name, nl);
			if (send_opt_reply(c->sock, opt, NBD_REP_SERVER, rep, (uint32_t)(4 + nl)) != 0 ||
			    send_opt_reply(c->sock, opt, NBD_REP_ACK, NULL, 0) != 0)
				return 0;
			break;
		}
		case NBD_OPT_INFO:
		case NBD_OPT_GO: {
			char name[NBD_MAX_NAME_LEN + 1];
			int want_bs;
			r = nbd_parse_go_payload(data, len, name, sizeof(name), &want_bs);
			uint32_t err = 0;
			if (r != 0)
				err = NBD_REP_ERR_INVALID;
			else if (strcmp(name, s->export_name) != 0)
				err = NBD_REP_ERR_UNKNOWN;
			if (err) {
				if (send_opt_reply(c->sock, opt, err, NULL, 0) != 0)
					return 0;
				break;
			}
			if (send_export_infos(c, opt) != 0 ||
			    send_opt_reply(c->sock, opt, NBD_REP_ACK, NULL, 0) != 0)
				return 0;
			if (opt == NBD_OPT_GO)
				return 1;
			break;
		}
		default:
			if (send_opt_reply(c->sock, opt, NBD_REP_ERR_UNSUP, NULL, 0) != 0)
				return 0;
			break;
		}
	}
	log_warn("too many options: closing");
	return 0;
}

/*
 * At least n bytes (n <= IN_BUF) buffered: what is already there is taken
 * without waiting; before waiting, the replies so far go out.  0,
 * -ECONNRESET at EOF, -EAGAIN past the stall timeout, or -errno.
 */
static int need(struct conn *c, size_t n)
{
	while (conn_in_avail(&c->in) < n) {
		ssize_t r = conn_in_fill(&c->in, c->sock, false, &c->out);
		if (r == -EAGAIN)
			r = conn_in_fill(&c->in, c->sock, true, &c->out);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0)
			return (int)r;
	}
	return 0;
}

/* Room for n reply bytes, flushing if the batch is full; NULL if n never fits. */
static uint8_t *out_room(struct conn *c, size_t n, int *err)
{
	uint8_t *p = conn_out_reserve(&c->out, n);
	if (p != NULL)
		return p;
	*err = conn_out_flush(&c->out, c->sock);
	return *err == 0 ? conn_out_reserve(&c->out, n) : NULL;
}

static int reply(struct conn *c, uint32_t error, uint64_t handle)
{
	int err = 0;
	uint8_t *p = out_room(c, NBD_SIMPLE_REPLY_LEN, &err);
	if (p == NULL)
		return err != 0 ? err : -EIO;
	nbd_encode_simple_reply(p, error, handle);
	conn_out_commit(&c->out, NBD_SIMPLE_REPLY_LEN);
	return 0;
}

/* A READ's reply, its data read straight into the batch where it fits. */
static int reply_read(struct conn *c, const struct nbd_request *rq)
{
	int err = 0;
	size_t n = NBD_SIMPLE_REPLY_LEN + rq->length;
	uint8_t *p = out_room(c, n, &err);
	if (err != 0)
		return err;
	uint8_t *data = p != NULL ? p + NBD_SIMPLE_REPLY_LEN : big_buf(c);
	if (data == NULL)
		return reply(c, NBD_ENOMEM, rq->handle);
	int r = file_pread(c->srv->fd, data, rq->length, rq->offset);
	if (r != 0)
		return reply(c, nbd_errno_to_error(r), rq->handle);
	if (p != NULL) {
		nbd_encode_simple_reply(p, 0, rq->handle);
		conn_out_commit(&c->out, n);
		return 0;
	}
	/* Larger than a batch (the batch is empty now): on its own. */
	uint8_t hdr[NBD_SIMPLE_REPLY_LEN];
	nbd_encode_simple_reply(hdr, 0, rq->handle);
	return write_full2(c->sock, hdr, sizeof(hdr), c->buf, rq->length);
}

/*
 * A WRITE's payload: in the receive buffer when it fits (consumed by the
 * caller with conn_in_consume), else assembled in c->buf.  NULL (*err set)
 * when the connection fails.
 */
static const uint8_t *take_payload(struct conn *c, uint32_t len, size_t *consume, int *err)
{
	if (len <= c->in.cap) {
		*consume = len;
		*err = need(c, len);
		return *err == 0 ? conn_in_data(&c->in) : NULL;
	}
	size_t have = conn_in_avail(&c->in);
	if (big_buf(c) == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(c->buf, conn_in_data(&c->in), have);
	conn_in_consume(&c->in, have);
	*consume = 0;
	*err = conn_out_flush(&c->out, c->sock);
	if (*err == 0)
		*err = read_full(c->sock, c->buf + have, len - have);
	return *err == 0 ? c->buf : NULL;
}

/* A mutation's reply: synced first if FUA, else the connection is dirty. */
static int reply_mutation(struct conn *c, const struct nbd_request *rq, int r)
{
	if (r == 0 && (rq->flags & NBD_CMD_FLAG_FUA))
		r = file_sync(c->srv);
	else if (r == 0)
		c->dirty = true;
	return reply(c, nbd_errno_to_error(r), rq->handle);
}

static int do_write(struct conn *c, const struct nbd_request *rq, int r, int in_range)
{
	/* The payload must be consumed to stay in sync; one larger than the
	 * cap is a framing error. */
	if (rq->length > NBD_MAX_PAYLOAD) {
		log_warn("write of %" PRIu32 " bytes exceeds the cap: closing", rq->length);
		return -EPROTO;
	}
	size_t consume;
	int err;
	const uint8_t *payload = take_payload(c, rq->length, &consume, &err);
	if (payload == NULL)
		return err;
	if (r == 0 && !in_range)
		r = -ENOSPC;
	if (r == 0)
		r = file_pwrite(c->srv->fd, payload, rq->length, rq->offset);
	conn_in_consume(&c->in, consume);
	return reply_mutation(c, rq, r);
}

/* One request whose header was decoded into rq.  0, or a negative errno to close. */
static int serve_request(struct conn *c, const struct nbd_request *rq)
{
	struct server *s = c->srv;
	int r = 0;
	int in_range = nbd_range_ok(rq->offset, rq->length, s->size) == 0;
	atomic_fetch_add(&s->stats.requests, 1);
	if (rq->flags & ~(uint16_t)(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE))
		r = -EINVAL;
	switch (rq->type) {
	case NBD_CMD_READ:
		if (r == 0 && (rq->length > NBD_MAX_PAYLOAD || !in_range))
			r = -EINVAL;
		return r != 0 ? reply(c, nbd_errno_to_error(r), rq->handle) : reply_read(c, rq);
	case NBD_CMD_WRITE:
		return do_write(c, rq, r, in_range);
	case NBD_CMD_FLUSH:
		/* Every connection writes the same file: one sync covers them all. */
		if (r == 0)
			r = file_sync(s);
		if (r == 0)
			c->dirty = false;
		return reply(c, nbd_errno_to_error(r), rq->handle);
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		if (r == 0 && !in_range)
			r = rq->type == NBD_CMD_WRITE_ZEROES ? -ENOSPC : -EINVAL;
		if (r == 0)
			r = file_zero(c, rq->offset, rq->length,
				      rq->type == NBD_CMD_WRITE_ZEROES &&
				      (rq->flags & NBD_CMD_FLAG_NO_HOLE));
		return reply_mutation(c, rq, r);
	case NBD_CMD_DISC:
		(void)conn_out_flush(&c->out, c->sock);
		return -ECONNRESET;
	default:
		return reply(c, NBD_EINVAL, rq->handle);
	}
}

/*
 * Between requests, nothing buffered: the replies go out, then the
 * connection is idle (evictable) until its next request begins.  A clean
 * one waits at most the idle timeout; one with unsynced writes is never
 * dropped for idling, since its client could not tell that from a crash
 * (card-ebs would fail its next flush if its replay log had overflowed).
 */
static enum conn_end wait_request(struct conn *c)
{
	struct server *s = c->srv;
	ssize_t r = conn_in_fill(&c->in, c->sock, false, &c->out);
	if (r > 0)
		return conn_table_busy(&s->conns, &c->slot) ? END_NONE : END_EVICTED;
	if (r == 0 || r != -EAGAIN)
		return END_CLIENT;
	r = conn_out_flush(&c->out, c->sock);
	if (r != 0)
		return r == -EAGAIN ? END_STALLED : END_CLIENT;
	conn_table_idle(&s->conns, &c->slot, now_ms(), c->dirty);
	int timeout = s->idle_timeout_s == 0 || c->dirty ? -1 : (int)s->idle_timeout_s * 1000;
	struct pollfd p = { .fd = c->sock, .events = POLLIN };
	int n;
	while ((n = poll(&p, 1, timeout)) < 0 && errno == EINTR)
		;
	if (!conn_table_busy(&s->conns, &c->slot))
		return END_EVICTED;
	return n == 0 ? END_IDLE : END_NONE;
}

/* Transmission phase: returns why it ended. */
static enum conn_end transmit(struct conn *c)
{
	if (!conn_table_busy(&c->srv->conns, &c->slot))
		return END_EVICTED;
	for (;;) {
		struct nbd_request rq;
		if (conn_in_avail(&c->in) == 0) {
			enum conn_end end = wait_request(c);
			if (end != END_NONE)
				return end;
		}
		int r = need(c, NBD_REQUEST_LEN);
		if (r == 0 && nbd_decode_request(conn_in_data(&c->in), NBD_REQUEST_LEN, &rq) != 0) {
			log_warn("bad request magic: closing connection");
			r = -EPROTO;
		}
		if (r == 0) {
			conn_in_consume(&c->in, NBD_REQUEST_LEN);
			r = serve_request(c, &rq);
		}
		if (r != 0)
			return r == -EAGAIN ? END_STALLED : END_CLIENT;
	}
}

static void set_timeouts(int sock, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds };
	(void)setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The server ends the connection: what it acknowledged is made durable first. */
static void conn_end(struct conn *c, enum conn_end end)
{
	struct server *s = c->srv;
	switch (end) {
	case END_NONE:
	case END_CLIENT:
		return;
	case END_IDLE:
		atomic_fetch_add(&s->stats.idle_closed, 1);
		log_info("connection idle for %u s: closed", s->idle_timeout_s);
		break;
	case END_EVICTED:
		break; /* counted and logged by the acceptor */
	case END_STALLED:
		atomic_fetch_add(&s->stats.stalled, 1);
		log_warn("client stalled for %u s (not reading replies, or mid-request): closed",
			 s->stall_timeout_s);
		break;
	}
	if (c->dirty && file_sync(s) != 0)
		log_errno("sync before closing a connection");
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	set_timeouts(c->sock, HANDSHAKE_TIMEOUT_S);
	if (negotiate(c)) {
		set_timeouts(c->sock, c->srv->stall_timeout_s);
		if (conn_in_init(&c->in, IN_BUF) != 0 ||
		    conn_out_init(&c->out, OUT_BUF) != 0)
			log_err("out of memory for connection buffers");
		else
			conn_end(c, transmit(c));
	}
	close(c->sock);
	conn_table_remove(&c->srv->conns, &c->slot);
	conn_in_free(&c->in);
	conn_out_free(&c->out);
	free(c->buf);
	free(c);
	return NULL;
}

/* A listening socket on ep (text: how the operator wrote it, for messages). */
static int listen_endpoint(const struct endpoint *ep, const char *text)
{
	int family = ep->addr.ss_family;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_errno("socket for %s", text);
		return -1;
	}
	if (family == AF_UNIX) {
		(void)unlink(((const struct sockaddr_un *)&ep->addr)->sun_path);
	} else {
		int one = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)&ep->addr, ep->addrlen) != 0 || listen(fd, 16) != 0) {
		log_errno("listen on %s", text);
		close(fd);
		return -1;
	}
	return fd;
}

/* --listen-unix PATH or --listen-tcp ADDR:PORT, read by the parser card-ebs uses too. */
static int listen_option(const char *unix_path, const char *tcp)
{
	char text[ENDPOINT_MAX_LEN + 8], err[256];
	struct endpoint ep;
	if (unix_path != NULL)
		snprintf(text, sizeof(text), "unix:%s", unix_path);
	else
		snprintf(text, sizeof(text), "%s", tcp);
	if (endpoint_parse(text, &ep, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return -1;
	}
	if (tcp != NULL && ep.addr.ss_family == AF_UNIX) {
		log_err("--listen-tcp wants IPv4:PORT or [IPv6]:PORT, not a unix socket: %s", tcp);
		return -1;
	}
	return listen_endpoint(&ep, unix_path != NULL ? unix_path : tcp);
}

/* The fuzz target's entry point (nbd_server.h): one connection, this thread. */
void nbd_server_serve_connection(int sock, int file_fd, uint64_t size,
				 uint32_t block_size, const char *export_name)
{
	struct server s = {
		.fd = file_fd, .size = size, .block_size = block_size,
		.export_name = export_name, .tflags = EXPORT_TFLAGS,
	};
	struct conn_slot victim;
	conn_table_init(&s.conns);
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(sock);
		return;
	}
	c->srv = &s;
	c->sock = sock;
	c->slot.sock = sock;
	if (conn_table_add(&s.conns, &c->slot, now_ms(), &victim) < 0) {
		close(sock);
		free(c);
		return;
	}
	(void)conn_thread(c);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: flint-nbd-server --file PATH [--size BYTES --create]\n"
		"                        (--listen-unix PATH | --listen-tcp IPv4:PORT|[IPv6]:PORT)\n"
		"                        [--export NAME] [--block-size 512|4096]\n"
		"                        [--idle-timeout SECONDS] [--stall-timeout SECONDS] [--verbose]\n"
		"\n"
		"  --idle-timeout S   close a connection with no request in flight and no\n"
		"                     unflushed write after S seconds (default %d; 0: never)\n"
		"  --stall-timeout S  close a connection whose client stops reading replies,\n"
		"                     or stops in the middle of a request, for S seconds\n"
		"                     (default %d; 0: never)\n"
		"At most %d connections at once: when all are taken, the one idle longest\n"
		"(clean ones first) is closed for a new one; if none is idle it is refused.\n"
		"SIGUSR1 logs a stats line; SIGTERM or SIGINT syncs the file, logs it and exits.\n",
		DEFAULT_IDLE_TIMEOUT_S, DEFAULT_STALL_TIMEOUT_S, CONN_SLOTS);
}

static int parse_timeout(const char *name, const char *arg, unsigned *out)
{
	uint64_t v;
	if (parse_u64_range(arg, 0, MAX_TIMEOUT_S, &v) != 0) {
		log_err("bad --%s (0..%d seconds): %s", name, MAX_TIMEOUT_S, arg);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/*
 * Signals are taken by one thread (blocked everywhere else): SIGUSR1 logs
 * the counters, SIGTERM and SIGINT make what was written durable and exit.
 */
static void *signal_thread(void *arg)
{
	struct server *s = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			log_stats(s, "now");
			continue;
		}
		if (file_sync(s) != 0)
			log_errno("sync at exit");
		log_stats(s, "exit");
		exit(0);
	}
}

static int start_signal_thread(struct server *s)
{
	sigset_t set;
	pthread_t th;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* Before any other thread: they all inherit the mask. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
	    pthread_create(&th, NULL, signal_thread, s) != 0)
		return -1;
	pthread_detach(th);
	return 0;
}

/* Rate-limited: a client connecting in a loop must not flood the log. */
/* Refusals and evictions can come in floods: a line a second at most. */
static void log_full(struct server *s, int r, const struct conn_slot *victim)
{
	uint64_t quiet = 0;
	if (!log_limit_pass(&s->full_log, &quiet))
		return;
	char more[64] = "";
	if (quiet > 0)
		snprintf(more, sizeof(more), " (and %" PRIu64 " times more since the last line)", quiet);
	if (r < 0)
		log_warn("all %d connections are serving requests: refused a new one%s",
			 CONN_SLOTS, more);
	else
		log_warn("all %d connections taken: closed one idle for %" PRIu64 " ms%s to make room%s",
			 CONN_SLOTS, now_ms() - victim->idle_since,
			 victim->dirty ? " with unflushed writes" : "", more);
}

/* Takes a slot for a new connection and starts its thread; closes it if none. */
static void serve_connection(struct server *s, int cs, int tcp)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(cs);
		return;
	}
	c->srv = s;
	c->sock = cs;
	c->slot.sock = cs;
	struct conn_slot victim;
	int r = conn_table_add(&s->conns, &c->slot, now_ms(), &victim);
	if (r != 0)
		log_full(s, r, &victim);
	if (r < 0) {
		atomic_fetch_add(&s->stats.refused, 1);
		close(cs);
		free(c);
		return;
	}
	atomic_fetch_add(&s->stats.accepted, 1);
	if (r > 0)
		atomic_fetch_add(&s->stats.evicted, 1);
	if (tcp) {
		int one = 1;
		(void)setsockopt(cs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* A peer that vanished without a FIN is found even while idle. */
		(void)setsockopt(cs, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, conn_thread, c) != 0) {
		log_warn("cannot start a connection thread");
		close(cs);
		conn_table_remove(&s->conns, &c->slot);
		free(c);
	}
	pthread_attr_destroy(&attr);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "create", no_argument, NULL, 'c' },
		{ "listen-unix", required_argument, NULL, 'u' },
		{ "listen-tcp", required_argument, NULL, 't' },
		{ "export", required_argument, NULL, 'e' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "stall-timeout", required_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = NULL, *unix_path = NULL, *tcp = NULL;
	uint64_t size = 0, bs = 4096;
	int have_size = 0, create = 0;
	struct server s = { .export_name = "", .idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S,
			    .stall_timeout_s = DEFAULT_STALL_TIMEOUT_S };

	log_init("flint-nbd-server", LOG_INFO);
	for (;;) {
		int o = getopt_long(argc, argv, "", opts, NULL);
		if (o == -1)
			break;
		switch (o) {
		case 'f': file = optarg; break;
		case 's':
			if (parse_u64_range(optarg, 1, UINT64_MAX, &size) != 0) {
				log_err("bad --size: %s", optarg);
				return 2;
			}
			have_size = 1;
			break;
		case 'c': create = 1; break;
		case 'u': unix_path = optarg; break;
		case 't': tcp = optarg; break;
		case 'e': s.export_name = optarg; break;
		case 'b':
			if (parse_u64_range(optarg, 512, 4096, &bs) != 0 || (bs != 512 && bs != 4096)) {
				log_err("bad --block-size (512 or 4096): %s", optarg);
				return 2;
			}
			break;
		case 'i':
			if (parse_timeout("idle-timeout", optarg, &s.idle_timeout_s) != 0)
				return 2;
			break;
		case 'S':
			if (parse_timeout("stall-timeout", optarg, &s.stall_timeout_s) != 0)
				return 2;
			break;
		case 'v': log_set_level(LOG_DEBUG); break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind != argc || file == NULL || (unix_path == NULL) == (tcp == NULL) ||
	    (create && !have_size)) {
		usage();
		return 2;
	}
	if (strlen(s.export_name) > NBD_MAX_NAME_LEN) {
		log_err("export name too long");
		return 2;
	}
	s.block_size = (uint32_t)bs;

	s.fd = open(file, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (s.fd < 0) {
		log_errno("open %s", file);
		return 1;
	}
	struct stat st;
	if (fstat(s.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_err("%s: not a regular file", file);
		return 1;
	}
	if (have_size) {
		if (size == 0 || size % bs != 0 || size > (uint64_t)INT64_MAX) {
			log_err("--size must be a non-zero multiple of the block size");
			return 2;
		}
		if ((uint64_t)st.st_size < size) {
			if (!create) {
				log_err("%s is smaller than --size (use --create to grow it)", file);
				return 1;
			}
			if (ftruncate(s.fd, (off_t)size) != 0) {
				log_errno("resize %s", file);
				return 1;
			}
		}
		s.size = size;
	} else {
		s.size = (uint64_t)st.st_size / bs * bs;
		if (s.size == 0) {
			log_err("%s is empty (use --size and --create)", file);
			return 1;
		}
	}
	s.tflags = EXPORT_TFLAGS;

	signal(SIGPIPE, SIG_IGN);
	conn_table_init(&s.conns);
	log_limit_init(&s.full_log, 1, 1000);
	if (start_signal_thread(&s) != 0) {
		log_err("cannot start the signal thread");
		return 1;
	}
	int lfd = listen_option(unix_path, tcp);
	if (lfd < 0)
		return 1;
	log_info("serving %s (%" PRIu64 " bytes, export '%s') on %s", file, s.size,
		 s.export_name, unix_path ? unix_path : tcp);

	for (;;) {
		int cs = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cs < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_errno("accept");
				usleep(100000);
				continue;
			}
			log_errno("accept");
			return 1;
		}
		serve_connection(&s, cs, tcp != NULL);
	}
}
