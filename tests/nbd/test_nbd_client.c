/*
 * NBD integration tests: the card-ebs NBD client (cards/ebs/nbd_client.c)
 * against flint-nbd-server, nbdkit, qemu-nbd and a garbage-spewing fake
 * server; and flint-nbd-server's request validation over raw sockets.
 *
 *   test_nbd_client SCENARIO [SERVER_BINARY]
 *
 * No timing thresholds: only a generous hard limit (alarm) catches hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd_client.h"
#include "nbd_proto.h"
#include "nbd_test_util.h"

#define MiB (1ULL << 20)
#define EXPORT_SIZE (64 * MiB)

static const char *server_bin;
static char sock_path[100], file_path[200];
static pid_t server_pid;

static void start_server(int create)
{
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)EXPORT_SIZE);
	char *argv[] = { (char *)server_bin, "--file", file_path, "--size", size,
			 "--listen-unix", sock_path, "--export", "vol0",
			 create ? "--create" : NULL, NULL };
	unlink(sock_path);
	server_pid = spawn(argv);
	CHECK(wait_unix_socket(sock_path, 10000) == 0);
}

static void stop_server(void)
{
	kill_wait(server_pid, SIGKILL);
	server_pid = 0;
}

static void open_backend(struct blk_backend *b, const char *export, uint32_t timeout_ms)
{
	char err[256] = "";
	char ep[300];
	snprintf(ep, sizeof(ep), "unix:%s", sock_path);
	struct nbd_client_config cfg = {
		.endpoint = ep, .export_name = export, .retry_timeout_ms = timeout_ms,
	};
	int r = nbd_backend_open(b, &cfg, err, sizeof(err));
	if (r != 0)
		fprintf(stderr, "open: %d %s\n", r, err);
	CHECK_EQ(r, 0);
}

static void write_pattern(struct blk_backend *b, uint64_t off, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	CHECK(buf != NULL);
	fill_pattern(buf, len, off, seed);
	CHECK_EQ(b->ops->write(b->ctx, off, buf, len), 0);
	free(buf);
}

static void verify_pattern(struct blk_backend *b, uint64_t off, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);
	CHECK(buf != NULL);
	memset(buf, 0xa5, len);
	CHECK_EQ(b->ops->read(b->ctx, off, buf, len), 0);
	CHECK(check_pattern(buf, len, off, seed) == 0);
	free(buf);
}

static void verify_zero(struct blk_backend *b, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	CHECK(buf != NULL);
	memset(buf, 0xa5, len);
	CHECK_EQ(b->ops->read(b->ctx, off, buf, len), 0);
	for (size_t i = 0; i < len; i++)
		CHECK(buf[i] == 0);
	free(buf);
}

/* Pattern I/O, flush, trim, write-zeroes, range checks: works on any server. */
static void exercise(struct blk_backend *b)
{
	CHECK(b->size_bytes >= EXPORT_SIZE);
	CHECK(b->block_size == 512 || b->block_size == 4096);
	write_pattern(b, 0, MiB, 1);
	write_pattern(b, 5 * MiB + 4096, 40 * MiB, 2); /* > 32 MiB: split */
	write_pattern(b, b->size_bytes - 8192, 8192, 3);
	CHECK_EQ(b->ops->flush(b->ctx), 0);
	verify_pattern(b, 0, MiB, 1);
	verify_pattern(b, 5 * MiB + 4096, 40 * MiB, 2);
	verify_pattern(b, b->size_bytes - 8192, 8192, 3);
	if (b->ops->write_zeroes) {
		CHECK_EQ(b->ops->write_zeroes(b->ctx, 64 * 1024, 128 * 1024), 0);
		verify_zero(b, 64 * 1024, 128 * 1024);
		verify_pattern(b, 0, 64 * 1024, 1);
		verify_pattern(b, 192 * 1024, MiB - 192 * 1024, 1);
	}
	if (b->ops->discard) {
		CHECK_EQ(b->ops->discard(b->ctx, 6 * MiB, MiB), 0);
		verify_pattern(b, 5 * MiB + 4096, MiB - 4096, 2); /* neighbours intact */
		verify_pattern(b, 7 * MiB, MiB, 2);
	}
	/* Out of range, overflow: clean errors, the backend keeps working. */
	uint8_t buf[8192];
	CHECK_EQ(b->ops->read(b->ctx, b->size_bytes - 4096, buf, 8192), -EINVAL);
	CHECK_EQ(b->ops->write(b->ctx, b->size_bytes, buf, 4096), -EINVAL);
	CHECK_EQ(b->ops->read(b->ctx, UINT64_MAX - 4095, buf, 8192), -EINVAL);
	if (b->ops->write_zeroes)
		CHECK_EQ(b->ops->write_zeroes(b->ctx, 4096, UINT64_MAX - 100), -EINVAL);
	verify_pattern(b, 0, 4096, 1);
	CHECK_EQ(b->ops->flush(b->ctx), 0);
}

struct worker {
	struct blk_backend *b;
	int id;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t base = 48 * MiB + (uint64_t)w->id * MiB;
	for (int i = 0; i < 100; i++) {
		uint64_t off = base + (uint64_t)(i % 16) * 65536;
		write_pattern(w->b, off, 65536, (uint32_t)(w->id * 1000 + i));
		verify_pattern(w->b, off, 65536, (uint32_t)(w->id * 1000 + i));
		if (i % 25 == 0)
			CHECK_EQ(w->b->ops->flush(w->b->ctx), 0);
	}
	return NULL;
}

static void scenario_basic(void)
{
	struct blk_backend b, b2;
	start_server(1);
	open_backend(&b, "vol0", 5000);
	CHECK_EQ(b.size_bytes, EXPORT_SIZE);
	CHECK_EQ(b.block_size, 4096);
	CHECK(b.ops->discard != NULL && b.ops->write_zeroes != NULL);
	exercise(&b);

	/* Several threads on one backend, and a second connection. */
	open_backend(&b2, "vol0", 5000);
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ i < 2 ? &b : &b2, i };
		CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	verify_pattern(&b2, 0, 4096, 1);
	b2.ops->close(b2.ctx);

	/* A wrong export name is refused at once. */
	char err[256] = "", ep[300];
	snprintf(ep, sizeof(ep), "unix:%s", sock_path);
	struct nbd_client_config cfg = { .endpoint = ep, .export_name = "nope", .retry_timeout_ms = 60000 };
	struct blk_backend bad;
	CHECK(nbd_backend_open(&bad, &cfg, err, sizeof(err)) < 0);
	CHECK(strlen(err) > 0);
	fprintf(stderr, "expected refusal: %s\n", err);
	b.ops->close(b.ctx);
	stop_server();
}

static void scenario_durability(void)
{
	struct blk_backend b;
	start_server(1);
	open_backend(&b, "vol0", 10000);
	write_pattern(&b, 3 * MiB, 8 * MiB, 7);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	stop_server(); /* SIGKILL */
	start_server(0);
	/* The same client reconnects transparently... */
	verify_pattern(&b, 3 * MiB, 8 * MiB, 7);
	b.ops->close(b.ctx);
	/* ...and a fresh one sees the data as well. */
	open_backend(&b, "vol0", 10000);
	verify_pattern(&b, 3 * MiB, 8 * MiB, 7);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK_EQ(st.reconnects, 0);
	b.ops->close(b.ctx);
	stop_server();
}

static atomic_int killer_done;

static void *killer_main(void *arg)
{
	(void)arg;
	usleep(200000);
	stop_server();
	usleep(300000);
	start_server(0);
	atomic_store(&killer_done, 1);
	return NULL;
}

static void scenario_reconnect(void)
{
	struct blk_backend b;
	start_server(1);
	open_backend(&b, "vol0", 20000);
	pthread_t killer;
	CHECK(pthread_create(&killer, NULL, killer_main, NULL) == 0);
	int after = 0;
	uint32_t ops = 0;
	for (uint32_t i = 0; after < 50; i++, ops++) {
		uint64_t off = (uint64_t)(i % 256) * 65536;
		write_pattern(&b, off, 65536, i);
		verify_pattern(&b, off, 65536, i);
		if (i % 8 == 0)
			CHECK_EQ(b.ops->flush(b.ctx), 0);
		if (atomic_load(&killer_done))
			after++;
	}
	pthread_join(killer, NULL);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	for (uint32_t i = ops > 256 ? ops - 256 : 0; i < ops; i++)
		verify_pattern(&b, (uint64_t)(i % 256) * 65536, 65536, i);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	fprintf(stderr, "ops %u reconnects %llu retries %llu\n", ops,
		(unsigned long long)st.reconnects, (unsigned long long)st.retries);
	CHECK(st.reconnects >= 1);
	b.ops->close(b.ctx);
	stop_server();
}

static void scenario_timeout(void)
{
	struct blk_backend b;
	uint8_t buf[4096];
	start_server(1);
	open_backend(&b, "vol0", 2000);
	write_pattern(&b, 0, 4096, 9);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	stop_server();
	CHECK_EQ(b.ops->read(b.ctx, 0, buf, sizeof(buf)), -EIO);
	CHECK_EQ(b.ops->write(b.ctx, 0, buf, sizeof(buf)), -EIO);
	CHECK_EQ(b.ops->flush(b.ctx), -EIO);
	/* The component keeps running: back to normal once the server is. */
	start_server(0);
	verify_pattern(&b, 0, 4096, 9);
	b.ops->close(b.ctx);
	stop_server();
	/* Open against nothing fails after the timeout, not forever. */
	struct blk_backend nb;
	char err[256] = "", ep[300];
	snprintf(ep, sizeof(ep), "unix:%s", sock_path);
	struct nbd_client_config cfg = { .endpoint = ep, .retry_timeout_ms = 1000 };
	CHECK_EQ(nbd_backend_open(&nb, &cfg, err, sizeof(err)), -EIO);
	fprintf(stderr, "expected failure: %s\n", err);
}

/* ---- raw protocol against flint-nbd-server ---- */

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
	CHECK(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n);
}

static int raw_recv(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, (uint8_t *)p + got, n - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void raw_option(int fd, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t hdr[NBD_OPT_HDR_LEN];
	nbd_encode_opt_hdr(hdr, opt, len);
	raw_send(fd, hdr, sizeof(hdr));
	if (len)
		raw_send(fd, data, len);
}

/* Reads option replies up to a final one; returns its type. */
static uint32_t raw_opt_final(int fd, uint32_t opt)
{
	for (;;) {
		uint8_t hdr[NBD_OPT_REPLY_HDR_LEN], data[NBD_MAX_OPT_REPLY_LEN];
		struct nbd_opt_reply rep;
		CHECK(raw_recv(fd, hdr, sizeof(hdr)) == 0);
		CHECK(nbd_decode_opt_reply(hdr, sizeof(hdr), &rep) == 0);
		CHECK_EQ(rep.option, opt);
		CHECK(raw_recv(fd, data, rep.length) == 0);
		if (rep.type != NBD_REP_INFO && rep.type != NBD_REP_SERVER)
			return rep.type;
	}
}

static void raw_handshake(int fd)
{
	uint8_t g[NBD_GREETING_LEN], cf[4];
	uint16_t hf;
	CHECK(raw_recv(fd, g, sizeof(g)) == 0);
	CHECK(nbd_decode_greeting(g, sizeof(g), &hf) == 0);
	CHECK(hf & NBD_FLAG_FIXED_NEWSTYLE);
	nbd_put32(cf, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	raw_send(fd, cf, sizeof(cf));
}

static int raw_go(int fd, const char *name)
{
	uint8_t p[64];
	int n = nbd_encode_go_payload(p, sizeof(p), name, NULL, 0);
	CHECK(n > 0);
	raw_option(fd, NBD_OPT_GO, p, (uint32_t)n);
	return (int)raw_opt_final(fd, NBD_OPT_GO);
}

static uint32_t raw_cmd(int fd, uint16_t type, uint16_t flags, uint64_t off, uint32_t len,
			const void *payload, size_t plen, void *rbuf)
{
	static uint64_t h = 100;
	uint8_t req[NBD_REQUEST_LEN], rep[NBD_SIMPLE_REPLY_LEN];
	struct nbd_request rq = { .flags = flags, .type = type, .handle = ++h, .offset = off, .length = len };
	struct nbd_simple_reply sr;
	nbd_encode_request(req, &rq);
	raw_send(fd, req, sizeof(req));
	if (plen)
		raw_send(fd, payload, plen);
	CHECK(raw_recv(fd, rep, sizeof(rep)) == 0);
	CHECK(nbd_decode_simple_reply(rep, sizeof(rep), &sr) == 0);
	CHECK_EQ(sr.handle, h);
	if (sr.error == 0 && type == NBD_CMD_READ)
		CHECK(raw_recv(fd, rbuf, len) == 0);
	return sr.error;
}

static void scenario_server_raw(void)
{
	uint8_t buf[8192];
	start_server(1);

	/* Negotiation: LIST, INFO, wrong name, unknown option, then GO. */
	int fd = raw_connect();
	raw_handshake(fd);
	raw_option(fd, NBD_OPT_LIST, NULL, 0);
	CHECK_EQ(raw_opt_final(fd, NBD_OPT_LIST), NBD_REP_ACK);
	uint8_t p[64];
	int n = nbd_encode_go_payload(p, sizeof(p), "vol0", NULL, 0);
	raw_option(fd, NBD_OPT_INFO, p, (uint32_t)n);
	CHECK_EQ(raw_opt_final(fd, NBD_OPT_INFO), NBD_REP_ACK);
	raw_option(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	CHECK_EQ(raw_opt_final(fd, NBD_OPT_STRUCTURED_REPLY), NBD_REP_ERR_UNSUP);
	raw_option(fd, NBD_OPT_GO, "\0\0\0\x10", 4); /* name length past the end */
	CHECK_EQ(raw_opt_final(fd, NBD_OPT_GO), NBD_REP_ERR_INVALID);
	CHECK_EQ(raw_go(fd, "other"), (int)NBD_REP_ERR_UNKNOWN);
	CHECK_EQ(raw_go(fd, "vol0"), NBD_REP_ACK);

	/* Transmission: every bad request gets an error, the connection lives. */
	memset(buf, 0x5a, sizeof(buf));
	CHECK_EQ(raw_cmd(fd, NBD_CMD_WRITE, 0, 0, 4096, buf, 4096, NULL), 0);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_READ, 0, EXPORT_SIZE - 4096, 8192, NULL, 0, NULL), NBD_EINVAL);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_READ, 0, UINT64_MAX - 10, 4096, NULL, 0, NULL), NBD_EINVAL);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_READ, 0, 0, (32U << 20) + 1, NULL, 0, NULL), NBD_EINVAL);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_WRITE, 0, EXPORT_SIZE, 4096, buf, 4096, NULL), NBD_ENOSPC);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_TRIM, 0, EXPORT_SIZE - 4096, 8192, NULL, 0, NULL), NBD_EINVAL);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_WRITE_ZEROES, 0, UINT64_MAX - 4095, 8192, NULL, 0, NULL), NBD_ENOSPC);
	CHECK_EQ(raw_cmd(fd, 99, 0, 0, 0, NULL, 0, NULL), NBD_EINVAL);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_CACHE, 0, 0, 4096, NULL, 0, NULL), NBD_EINVAL);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_READ, 0x8000, 0, 4096, NULL, 0, NULL), NBD_EINVAL);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 4096, 4096, buf, 4096, NULL), 0);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_FLUSH, 0, 0, 0, NULL, 0, NULL), 0);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(raw_cmd(fd, NBD_CMD_READ, 0, 0, 8192, NULL, 0, buf), 0);
	for (int i = 0; i < 8192; i++)
		CHECK(buf[i] == 0x5a);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 0, 4096, NULL, 0, NULL), 0);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_TRIM, 0, 4096, 4096, NULL, 0, NULL), 0);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_READ, 0, 0, 4096, NULL, 0, buf), 0);
	for (int i = 0; i < 4096; i++)
		CHECK(buf[i] == 0);

	/* A second connection in parallel (EXPORT_NAME path). */
	int fd2 = raw_connect();
	raw_handshake(fd2);
	raw_option(fd2, NBD_OPT_EXPORT_NAME, "vol0", 4);
	uint8_t er[NBD_EXPORT_NAME_REPLY_LEN];
	struct nbd_export_info info = { 0 };
	CHECK(raw_recv(fd2, er, sizeof(er)) == 0);
	CHECK(nbd_decode_export_name_reply(er, sizeof(er), &info) == 0);
	CHECK_EQ(info.size, EXPORT_SIZE);
	CHECK(info.flags & NBD_FLAG_SEND_FLUSH);
	CHECK_EQ(raw_cmd(fd2, NBD_CMD_READ, 0, 8192, 4096, NULL, 0, buf), 0);

	/* Oversized write: framing error, that connection (only) is closed. */
	struct nbd_request rq = { .type = NBD_CMD_WRITE, .handle = 1, .length = 0xffffffffU };
	uint8_t req[NBD_REQUEST_LEN];
	nbd_encode_request(req, &rq);
	raw_send(fd2, req, sizeof(req));
	CHECK(raw_recv(fd2, buf, 1) != 0);
	close(fd2);

	/* Bad magic: closed as well. */
	memset(req, 0xee, sizeof(req));
	raw_send(fd, req, sizeof(req));
	CHECK(raw_recv(fd, buf, 1) != 0);
	close(fd);

	/* Bad option magic and ABORT. */
	fd = raw_connect();
	raw_handshake(fd);
	raw_option(fd, NBD_OPT_ABORT, NULL, 0);
	CHECK_EQ(raw_opt_final(fd, NBD_OPT_ABORT), NBD_REP_ACK);
	close(fd);
	fd = raw_connect();
	raw_handshake(fd);
	raw_send(fd, req, NBD_OPT_HDR_LEN);
	CHECK(raw_recv(fd, buf, 1) != 0);
	close(fd);

	/* Still serving. */
	struct blk_backend b;
	open_backend(&b, "vol0", 5000);
	verify_zero(&b, 0, 4096);
	b.ops->close(b.ctx);
	stop_server();
}

/* ---- a fake server that answers with garbage ---- */

enum fake_mode {
	FAKE_GOOD, FAKE_BAD_MAGIC, FAKE_BAD_HANDLE, FAKE_ERROR, FAKE_WEIRD_ERROR,
	FAKE_STRUCTURED, FAKE_SILENT, FAKE_CLOSE, FAKE_RANDOM, FAKE_SHORT_READ,
	/* negotiation */
	FAKE_NEG_BAD_GREETING, FAKE_NEG_HUGE_OPT, FAKE_NEG_NO_EXPORT, FAKE_NEG_BAD_BS,
	FAKE_NEG_REFUSE, FAKE_NEG_WRONG_OPT, FAKE_NEG_SILENT,
};
static atomic_int fake_mode;
static int fake_lfd;

static int fake_recv(int fd, void *p, size_t n)
{
	return raw_recv(fd, p, n);
}

static void fake_opt_reply(int fd, uint32_t opt, uint32_t type, const void *d, uint32_t len)
{
	uint8_t h[NBD_OPT_REPLY_HDR_LEN];
	nbd_encode_opt_reply(h, opt, type, len);
	(void)send(fd, h, sizeof(h), MSG_NOSIGNAL);
	if (len)
		(void)send(fd, d, len, MSG_NOSIGNAL);
}

static void fake_conn(int fd)
{
	int mode = atomic_load(&fake_mode);
	uint8_t g[NBD_GREETING_LEN], junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	if (mode == FAKE_NEG_BAD_GREETING) {
		(void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
		return;
	}
	nbd_encode_greeting(g, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	(void)send(fd, g, sizeof(g), MSG_NOSIGNAL);
	uint8_t cf[4], oh[NBD_OPT_HDR_LEN], od[NBD_MAX_OPT_LEN];
	uint32_t opt, len;
	if (fake_recv(fd, cf, 4) || fake_recv(fd, oh, sizeof(oh)) ||
	    nbd_decode_opt_hdr(oh, sizeof(oh), &opt, &len) || fake_recv(fd, od, len))
		return;
	uint8_t info[14];
	nbd_encode_info_export(info, EXPORT_SIZE, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH);
	switch (mode) {
	case FAKE_NEG_HUGE_OPT: {
		uint8_t h[NBD_OPT_REPLY_HDR_LEN];
		nbd_encode_opt_reply(h, opt, NBD_REP_INFO, 0xfffffff0U);
		(void)send(fd, h, sizeof(h), MSG_NOSIGNAL);
		(void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
		return;
	}
	case FAKE_NEG_NO_EXPORT:
		fake_opt_reply(fd, opt, NBD_REP_ACK, NULL, 0);
		return;
	case FAKE_NEG_BAD_BS:
		fake_opt_reply(fd, opt, NBD_REP_INFO, info, 12);
		nbd_encode_info_block_size(info, 3, 4096, 1U << 20);
		fake_opt_reply(fd, opt, NBD_REP_INFO, info, 14);
		fake_opt_reply(fd, opt, NBD_REP_ACK, NULL, 0);
		return;
	case FAKE_NEG_REFUSE:
		fake_opt_reply(fd, opt, NBD_REP_ERR_POLICY, "go away\n\x01", 9);
		return;
	case FAKE_NEG_WRONG_OPT:
		fake_opt_reply(fd, opt + 1, NBD_REP_INFO, info, 12);
		fake_opt_reply(fd, opt + 1, NBD_REP_ACK, NULL, 0);
		return;
	case FAKE_NEG_SILENT:
		(void)fake_recv(fd, junk, 1); /* until the client gives up */
		return;
	default:
		fake_opt_reply(fd, opt, NBD_REP_INFO, info, 12);
		fake_opt_reply(fd, opt, NBD_REP_ACK, NULL, 0);
		break;
	}
	for (;;) {
		uint8_t rb[NBD_REQUEST_LEN], rep[NBD_SIMPLE_REPLY_LEN];
		struct nbd_request rq;
		if (fake_recv(fd, rb, sizeof(rb)) || nbd_decode_request(rb, sizeof(rb), &rq))
			return;
		if (rq.type == NBD_CMD_DISC)
			return;
		if (rq.type == NBD_CMD_WRITE) {
			for (uint32_t left = rq.length; left;) {
				uint32_t n = left < sizeof(junk) ? left : (uint32_t)sizeof(junk);
				if (fake_recv(fd, junk, n))
					return;
				left -= n;
			}
		}
		mode = atomic_load(&fake_mode);
		uint32_t err = 0;
		uint64_t handle = rq.handle;
		nbd_encode_simple_reply(rep, 0, handle);
		switch (mode) {
		case FAKE_BAD_MAGIC: nbd_put32(rep, 0xdeadbeef); break;
		case FAKE_BAD_HANDLE: nbd_put64(rep + 8, handle + 1); break;
		case FAKE_ERROR: err = NBD_EIO; break;
		case FAKE_WEIRD_ERROR: err = 0x7fff1234; break;
		case FAKE_STRUCTURED:
			nbd_put32(rep, NBD_STRUCTURED_REPLY_MAGIC);
			nbd_put32(rep + 4, 0xffffffff);
			break;
		case FAKE_SILENT:
			(void)fake_recv(fd, junk, 1);
			return;
		case FAKE_CLOSE:
			return;
		case FAKE_RANDOM:
			(void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
			continue;
		default:
			break;
		}
		if (err)
			nbd_put32(rep + 4, err);
		(void)send(fd, rep, sizeof(rep), MSG_NOSIGNAL);
		if (mode == FAKE_SHORT_READ && rq.type == NBD_CMD_READ) {
			(void)send(fd, junk, rq.length / 2, MSG_NOSIGNAL);
			return;
		}
		if (err == 0 && rq.type == NBD_CMD_READ) {
			memset(junk, 0, sizeof(junk));
			for (uint32_t left = rq.length; left;) {
				uint32_t n = left < sizeof(junk) ? left : (uint32_t)sizeof(junk);
				if (send(fd, junk, n, MSG_NOSIGNAL) != (ssize_t)n)
					return;
				left -= n;
			}
		}
	}
}

static void *fake_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(fake_lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		fake_conn(fd);
		close(fd);
	}
}

static void scenario_garbage(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	fake_lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fake_lfd >= 0);
	CHECK(bind(fake_lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(fake_lfd, 8) == 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, fake_main, NULL) == 0);

	struct blk_backend b;
	uint8_t buf[8192];
	atomic_store(&fake_mode, FAKE_GOOD);
	open_backend(&b, "", 1000);
	CHECK_EQ(b.size_bytes, EXPORT_SIZE);
	CHECK_EQ(b.block_size, 512);
	CHECK(b.ops->discard == NULL && b.ops->write_zeroes == NULL);
	CHECK_EQ(b.ops->read(b.ctx, 0, buf, sizeof(buf)), 0);

	static const struct { int mode; int want, want_write; } cases[] = {
		{ FAKE_BAD_MAGIC, -EIO, -EIO }, { FAKE_BAD_HANDLE, -EIO, -EIO },
		{ FAKE_ERROR, -EIO, -EIO }, { FAKE_WEIRD_ERROR, -EIO, -EIO },
		{ FAKE_STRUCTURED, -EIO, -EIO }, { FAKE_SILENT, -EIO, -EIO },
		{ FAKE_CLOSE, -EIO, -EIO }, { FAKE_RANDOM, -EIO, -EIO },
		{ FAKE_SHORT_READ, -EIO, 0 }, /* only READ carries a payload back */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		atomic_store(&fake_mode, cases[i].mode);
		fprintf(stderr, "fake mode %d\n", cases[i].mode);
		CHECK_EQ(b.ops->read(b.ctx, 0, buf, sizeof(buf)), cases[i].want);
		CHECK_EQ(b.ops->write(b.ctx, 0, buf, sizeof(buf)), cases[i].want_write);
		CHECK_EQ(b.ops->flush(b.ctx), cases[i].want_write);
		/* The backend recovers as soon as the server behaves. */
		atomic_store(&fake_mode, FAKE_GOOD);
		CHECK_EQ(b.ops->read(b.ctx, 4096, buf, 4096), 0);
	}
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK(st.proto_errors > 0);
	b.ops->close(b.ctx);

	/* Negotiation garbage: open fails cleanly (fatal at once or after the timeout). */
	static const int neg[] = { FAKE_NEG_BAD_GREETING, FAKE_NEG_HUGE_OPT, FAKE_NEG_NO_EXPORT,
				   FAKE_NEG_BAD_BS, FAKE_NEG_REFUSE, FAKE_NEG_WRONG_OPT,
				   FAKE_NEG_SILENT };
	for (size_t i = 0; i < sizeof(neg) / sizeof(neg[0]); i++) {
		char err[256] = "", ep[300];
		snprintf(ep, sizeof(ep), "unix:%s", sock_path);
		struct nbd_client_config cfg = { .endpoint = ep, .retry_timeout_ms = 1000 };
		atomic_store(&fake_mode, neg[i]);
		int r = nbd_backend_open(&b, &cfg, err, sizeof(err));
		fprintf(stderr, "fake negotiation mode %d: %d %s\n", neg[i], r, err);
		CHECK(r < 0);
		CHECK(strlen(err) > 0);
	}
	shutdown(fake_lfd, SHUT_RDWR);
}

/* ---- third-party servers ---- */

static void scenario_interop(const char *tool)
{
	if (have_program(tool) != 0) {
		fprintf(stderr, "SKIP: %s is not installed (apt-get install %s)\n", tool,
			strcmp(tool, "nbdkit") == 0 ? "nbdkit" : "qemu-utils");
		exit(77);
	}
	pid_t pid;
	if (strcmp(tool, "nbdkit") == 0) {
		char *argv[] = { "nbdkit", "--foreground", "--unix", sock_path, "memory", "64M", NULL };
		pid = spawn(argv);
	} else {
		int fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0);
		CHECK(ftruncate(fd, (off_t)EXPORT_SIZE) == 0);
		close(fd);
		char sockarg[300];
		snprintf(sockarg, sizeof(sockarg), "--socket=%s", sock_path);
		char *argv[] = { "qemu-nbd", sockarg, "--format=raw", "--persistent", "--shared=4",
				 file_path, NULL };
		pid = spawn(argv);
	}
	if (wait_unix_socket(sock_path, 10000) != 0) {
		kill_wait(pid, SIGKILL);
		fprintf(stderr, "%s did not start\n", tool);
		exit(1);
	}
	struct blk_backend b;
	open_backend(&b, NULL, 10000);
	fprintf(stderr, "%s: size %llu block %u trim %d write_zeroes %d\n", tool,
		(unsigned long long)b.size_bytes, b.block_size, b.ops->discard != NULL,
		b.ops->write_zeroes != NULL);
	exercise(&b);
	b.ops->close(b.ctx);
	kill_wait(pid, SIGTERM);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s basic|durability|reconnect|timeout|server-raw|garbage|nbdkit|qemu-nbd [SERVER]\n",
			argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	hard_limit(240);
	const char *dir = tmpdir_make();
	snprintf(sock_path, sizeof(sock_path), "%s/nbd.sock", dir);
	snprintf(file_path, sizeof(file_path), "%s/volume.img", dir);
	server_bin = argc > 2 ? argv[2] : "flint-nbd-server";
	const char *s = argv[1];
	if (strcmp(s, "basic") == 0)
		scenario_basic();
	else if (strcmp(s, "durability") == 0)
		scenario_durability();
	else if (strcmp(s, "reconnect") == 0)
		scenario_reconnect();
	else if (strcmp(s, "timeout") == 0)
		scenario_timeout();
	else if (strcmp(s, "server-raw") == 0)
		scenario_server_raw();
	else if (strcmp(s, "garbage") == 0)
		scenario_garbage();
	else if (strcmp(s, "nbdkit") == 0 || strcmp(s, "qemu-nbd") == 0)
		scenario_interop(s);
	else {
		fprintf(stderr, "unknown scenario %s\n", s);
		return 2;
	}
	tmpdir_cleanup();
	fprintf(stderr, "%s: OK\n", s);
	return 0;
}
