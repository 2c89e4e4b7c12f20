/*
 * NBD integration tests: the card-ebs NBD client (cards/ebs/nbd_client.c)
 * against flint-nbd-server, nbdkit, qemu-nbd and a fake server (garbage,
 * replies out of order, late or held back); many threads on one client,
 * inside the card's seccomp jail too; and flint-nbd-server's request
 * validation over raw sockets.
 *
 *   test_nbd_client SCENARIO [SERVER_BINARY]
 *
 * No timing thresholds: only a generous hard limit (alarm) catches hangs.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "card_sandbox.h"
#include "endpoint.h"
#include "storage_dialer.h"
#include "nbd_client.h"
#include "nbd_proto.h"
#include "nbd_test_util.h"

#define MiB (1ULL << 20)
#define EXPORT_SIZE (64 * MiB)

static const char *server_bin;
static char sock_path[100], file_path[200], server_log[200];
static pid_t server_pid;

/* flint-nbd-server with extra options (NULL-terminated, at most 6). */
static void start_server_opts(int create, const char *const *extra)
{
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)EXPORT_SIZE);
	char *argv[20] = { (char *)server_bin, "--file", file_path, "--size", size,
			   "--listen-unix", sock_path, "--export", "vol0" };
	int n = 9;
	if (create)
		argv[n++] = "--create";
	for (; extra != NULL && *extra != NULL && n < 19; extra++)
		argv[n++] = (char *)*extra;
	unlink(sock_path);
	server_pid = spawn_logged(argv, server_log);
	CHECK(wait_unix_socket(sock_path, 10000) == 0);
}

static void start_server(int create)
{
	start_server_opts(create, NULL);
}

static int raw_connect(void);
static void raw_handshake(int fd);
static int raw_go(int fd, const char *name);
static void raw_check_alive(int fd);
static uint32_t raw_cmd(int fd, uint16_t type, uint16_t flags, uint64_t off, uint32_t len,
			const void *payload, size_t plen, void *rbuf);

/* The server's log goes to a file (its stats lines are read from there), shown at exit. */

static void show_server_log(void)
{
	static int shown;
	if (shown++ || server_log[0] == '\0')
		return;
	fprintf(stderr, "---- flint-nbd-server log ----\n");
	copy_file_to_stderr(server_log);
}

/*
 * Asks the running server for its counters (SIGUSR1: one "stats:" line in
 * its log) and returns the one named key.
 */
static uint64_t server_stat(const char *key)
{
	struct stat st;
	off_t from = stat(server_log, &st) == 0 ? st.st_size : 0;
	CHECK(kill(server_pid, SIGUSR1) == 0);
	for (;;) {
		char buf[4096], pat[64];
		FILE *f = fopen(server_log, "r");
		CHECK(f != NULL);
		CHECK(fseeko(f, from, SEEK_SET) == 0);
		snprintf(pat, sizeof(pat), " %s=", key);
		while (fgets(buf, sizeof(buf), f) != NULL) {
			char *stats = strstr(buf, "stats:");
			char *at = stats != NULL ? strstr(stats, pat) : NULL;
			if (stats == NULL || strchr(buf, '\n') == NULL)
				continue;
			CHECK(at != NULL);
			fclose(f);
			return strtoull(at + strlen(pat), NULL, 10);
		}
		fclose(f);
		usleep(10000);
	}
}

/* Waits until the server's counter key reaches want. */
static void wait_server_stat(const char *key, uint64_t want)
{
	while (server_stat(key) < want)
		usleep(100000);
}

static void stop_server(void)
{
	kill_wait(server_pid, SIGKILL);
	server_pid = 0;
}

/* dialer: NULL, or the storage dialer every connection must come from. */
static void open_backend_via(struct blk_backend *b, const char *export, uint32_t timeout_ms,
			     struct storage_dialer *dialer)
{
	char err[256] = "";
	char ep[300];
	snprintf(ep, sizeof(ep), "unix:%s", sock_path);
	struct nbd_client_config cfg = {
		.endpoint = ep, .export_name = export, .retry_timeout_ms = timeout_ms,
		.dial = dialer ? storage_dialer_dial : NULL, .dial_ctx = dialer,
	};
	int r = nbd_backend_open(b, &cfg, err, sizeof(err));
	if (r != 0)
		fprintf(stderr, "open: %d %s\n", r, err);
	CHECK_EQ(r, 0);
}

static void open_backend(struct blk_backend *b, const char *export, uint32_t timeout_ms)
{
	open_backend_via(b, export, timeout_ms, NULL);
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

/* ---- many threads on one backend ---- */

#define MT_BLOCKS 16
#define MT_BLOCK (64 * 1024)

#define MT_ZEROED UINT32_MAX

/* One thread's region: MT_BLOCKS blocks, the last seed written to each (0 = none yet). */
struct mt_worker {
	struct blk_backend *b;
	int id;
	int ops;            /* at least this many */
	int until_killer;   /* and 30 more once the killer is done */
	uint64_t base;
	uint32_t seed[MT_BLOCKS];
};

static void mt_verify_block(struct mt_worker *w, int blk)
{
	uint64_t off = w->base + (uint64_t)blk * MT_BLOCK;
	if (w->seed[blk] == MT_ZEROED)
		verify_zero(w->b, off, MT_BLOCK);
	else if (w->seed[blk] != 0)
		verify_pattern(w->b, off, MT_BLOCK, w->seed[blk]);
}

static atomic_int killer_done;

/*
 * Writes and reads back its own blocks (sizes vary: some split in chunks
 * when the server's limit is small), zeroes some, flushes now and then.
 * Every error is fatal: nothing may fail, even across a server restart.
 */
static void *mt_main(void *arg)
{
	struct mt_worker *w = arg;
	int after = 0;
	for (int i = 0; i < w->ops || (w->until_killer && after < 30); i++) {
		if (w->until_killer && atomic_load(&killer_done))
			after++;
		int blk = (i * 7 + w->id) % MT_BLOCKS;
		uint64_t off = w->base + (uint64_t)blk * MT_BLOCK;
		uint32_t seed = ((uint32_t)w->id << 20 | (uint32_t)i) + 1;
		if (i % 5 == 4 && w->b->ops->write_zeroes != NULL) {
			CHECK_EQ(w->b->ops->write_zeroes(w->b->ctx, off, MT_BLOCK), 0);
			w->seed[blk] = MT_ZEROED;
		} else {
			write_pattern(w->b, off, MT_BLOCK, seed);
			w->seed[blk] = seed;
		}
		mt_verify_block(w, blk);
		if (i % 8 == 0)
			CHECK_EQ(w->b->ops->flush(w->b->ctx), 0);
	}
	return NULL;
}

/* n workers on b, region of worker i at base + i * MT_BLOCKS * MT_BLOCK. */
static void mt_run(struct blk_backend *b, struct mt_worker *w, int n, uint64_t base, int ops,
		   int until_killer)
{
	pthread_t th[64];
	CHECK(n <= 64);
	for (int i = 0; i < n; i++) {
		uint32_t seed[MT_BLOCKS];
		memcpy(seed, w[i].seed, sizeof(seed)); /* a second run goes on from the first */
		w[i] = (struct mt_worker){ .b = b, .id = i, .ops = ops, .until_killer = until_killer,
					   .base = base + (uint64_t)i * MT_BLOCKS * MT_BLOCK };
		memcpy(w[i].seed, seed, sizeof(seed));
		CHECK(pthread_create(&th[i], NULL, mt_main, &w[i]) == 0);
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void mt_verify_all(struct mt_worker *w, int n)
{
	for (int i = 0; i < n; i++)
		for (int blk = 0; blk < MT_BLOCKS; blk++)
			mt_verify_block(&w[i], blk);
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

/*
 * After an acknowledged FLUSH (or FUA write) the range must be on the
 * device: the page cache holds none of it dirty, and the server counted a
 * sync.  (Killing the server proves nothing here: the kernel keeps its page
 * cache, so data it never synced would still read back.)
 */
static void check_synced(uint64_t off, uint64_t len, uint64_t syncs_before)
{
	uint64_t unsynced = 0;
	int r = file_unsynced_pages(file_path, off, len, &unsynced);
	if (r != 0)
		fprintf(stderr, "NOTE: cachestat cannot tell here (%s): checking the sync count only\n",
			strerror(-r));
	else
		CHECK_EQ(unsynced, 0);
	CHECK(server_stat("syncs") > syncs_before);
}

static void scenario_durability(void)
{
	struct blk_backend b;
	start_server(1);
	open_backend(&b, "vol0", 10000);
	uint64_t syncs = server_stat("syncs");
	write_pattern(&b, 3 * MiB, 8 * MiB, 7);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	check_synced(3 * MiB, 8 * MiB, syncs);
	/* A FUA write is durable when acknowledged, without a FLUSH. */
	syncs = server_stat("syncs");
	int fd = raw_connect();
	raw_handshake(fd);
	CHECK_EQ(raw_go(fd, "vol0"), NBD_REP_ACK);
	uint8_t *buf = malloc(MiB);
	CHECK(buf != NULL);
	fill_pattern(buf, MiB, 20 * MiB, 8);
	CHECK_EQ(raw_cmd(fd, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 20 * MiB, MiB, buf, MiB, NULL), 0);
	check_synced(20 * MiB, MiB, syncs);
	free(buf);
	close(fd);
	stop_server(); /* SIGKILL */
	start_server(0);
	/* The same client reconnects transparently... */
	verify_pattern(&b, 3 * MiB, 8 * MiB, 7);
	b.ops->close(b.ctx);
	/* ...and a fresh one sees the data as well. */
	open_backend(&b, "vol0", 10000);
	verify_pattern(&b, 3 * MiB, 8 * MiB, 7);
	verify_pattern(&b, 20 * MiB, MiB, 8);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK_EQ(st.reconnects, 0);
	b.ops->close(b.ctx);
	stop_server();
}

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

/* scenario_reconnect with many threads: none may see an error. */
static void scenario_reconnect_mt(void)
{
	struct blk_backend b;
	struct mt_worker w[8];
	memset(w, 0, sizeof(w));
	start_server(1);
	open_backend(&b, "vol0", 20000);
	pthread_t killer;
	CHECK(pthread_create(&killer, NULL, killer_main, NULL) == 0);
	mt_run(&b, w, 8, 0, 0, 1);
	pthread_join(killer, NULL);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	mt_verify_all(w, 8);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	fprintf(stderr, "reconnects %llu retries %llu\n", (unsigned long long)st.reconnects,
		(unsigned long long)st.retries);
	CHECK(st.reconnects >= 1);
	b.ops->close(b.ctx);
	/* A fresh client sees what was flushed. */
	open_backend(&b, "vol0", 20000);
	mt_verify_all(w, 8);
	b.ops->close(b.ctx);
	stop_server();
}

/*
 * The client inside the card's seccomp jail (as card-ebs runs it: storage
 * dialer started first, memory locked on fault, jail entered after open):
 * threads, timed waits, the replay log's mapping and a reconnect - through
 * the dialer, the jail has no socket() or connect() - must all stay within
 * the allowlist.  A forbidden system call kills the child with SIGSYS.
 */
static void sandboxed_child(int to_parent, int from_parent)
{
	struct blk_backend b;
	struct mt_worker w[4];
	memset(w, 0, sizeof(w));
	char ch = 'k';
	char err[256];
	char spec[300];
	struct endpoint ep;
	struct storage_dialer dialer;
	snprintf(spec, sizeof(spec), "unix:%s", sock_path);
	CHECK_EQ(endpoint_parse(spec, &ep, err, sizeof(err)), 0);
	CHECK_EQ(storage_dialer_start(&dialer, &ep, err, sizeof(err)), 0);
	if (geteuid() == 0)
		(void)mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
	open_backend_via(&b, "vol0", 20000, &dialer);
	CHECK(card_sandbox_enter(CARD_PROFILE_EBS) == 0);
	mt_run(&b, w, 4, 0, 24, 0);
	write_pattern(&b, 40 * MiB, MiB, 99); /* unflushed: replayed after the restart */
	CHECK(write(to_parent, &ch, 1) == 1);
	CHECK(read(from_parent, &ch, 1) == 1);
	verify_pattern(&b, 40 * MiB, MiB, 99);
	mt_verify_all(w, 4);
	mt_run(&b, w, 4, 0, 24, 0);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	mt_verify_all(w, 4);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK(st.reconnects >= 1);
	b.ops->close(b.ctx);
	storage_dialer_stop(&dialer);
	exit(0);
}

#include "../unit/test_sanitized.h"

static void scenario_sandbox(void)
{
#ifdef SANITIZED
	fprintf(stderr, "SKIP: sanitizer runtimes need system calls the card jail refuses\n");
	tmpdir_cleanup();
	exit(77);
#endif
	int up[2], down[2];
	char ch = 0;
	start_server(1);
	CHECK(pipe(up) == 0 && pipe(down) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		sandboxed_child(up[1], down[0]);
	}
	close(up[1]);
	close(down[0]);
	/* EOF instead of the child's go-ahead: it died; waitpid says how. */
	if (read(up[0], &ch, 1) == 1) {
		stop_server();
		start_server(0);
		CHECK(write(down[1], &ch, 1) == 1);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	stop_server();
	if (WIFSIGNALED(status))
		fprintf(stderr, "sandboxed client killed by signal %d\n", WTERMSIG(status));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(ch == 'k');
}

/* A free TCP port on a loopback address of family af, or 0 (no such loopback here). */
static int free_port(int af)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)af };
	socklen_t len = af == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (af == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port = 0;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		port = ntohs(af == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
					      ((struct sockaddr_in *)&ss)->sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* A raw client over TCP at host:port gets through negotiation. */
static void raw_tcp_go(int af, int port)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)af };
	socklen_t len = af == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (af == AF_INET6) {
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	} else {
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	}
	int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	uint64_t end = mono_ms() + 10000;
	while (connect(fd, (struct sockaddr *)&ss, len) != 0) {
		CHECK(mono_ms() < end); /* the server is starting */
		usleep(20000);
	}
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	raw_handshake(fd);
	CHECK_EQ(raw_go(fd, "vol0"), NBD_REP_ACK);
	raw_check_alive(fd);
	close(fd);
}

/*
 * TCP: the server's --listen-tcp and the client's endpoint are read by the
 * same parser (endpoint.h).  The client connects as card-ebs does, through
 * a storage dialer, whose own jail must let it make exactly this socket.
 */
static void scenario_tcp(void)
{
	static const char *const hosts[] = { "127.0.0.1", "[::1]" };
	static const int families[] = { AF_INET, AF_INET6 };
	for (int i = 0; i < 2; i++) {
		int port = free_port(families[i]);
		if (port == 0) {
			fprintf(stderr, "NOTE: no %s loopback here: not tried\n", hosts[i]);
			CHECK(i > 0); /* IPv4 loopback must be there */
			continue;
		}
		char ep[64], size[32], err[256] = "";
		snprintf(ep, sizeof(ep), "%s:%d", hosts[i], port);
		snprintf(size, sizeof(size), "%llu", (unsigned long long)EXPORT_SIZE);
		char *argv[] = { (char *)server_bin, "--file", file_path, "--size", size, "--create",
				 "--listen-tcp", ep, "--export", "vol0", NULL };
		server_pid = spawn_logged(argv, server_log);
		raw_tcp_go(families[i], port);
		struct endpoint parsed;
		struct storage_dialer dialer;
		CHECK_EQ(endpoint_parse(ep, &parsed, err, sizeof(err)), 0);
		CHECK_EQ(storage_dialer_start(&dialer, &parsed, err, sizeof(err)), 0);
		struct nbd_client_config cfg = { .endpoint = ep, .export_name = "vol0",
						 .retry_timeout_ms = 10000,
						 .dial = storage_dialer_dial, .dial_ctx = &dialer };
		struct blk_backend b;
		int r = nbd_backend_open(&b, &cfg, err, sizeof(err));
		if (r != 0)
			fprintf(stderr, "open %s: %s\n", ep, err);
		CHECK_EQ(r, 0);
		write_pattern(&b, 0, MiB, 30);
		CHECK_EQ(b.ops->flush(b.ctx), 0);
		verify_pattern(&b, 0, MiB, 30);
		b.ops->close(b.ctx);
		int status;
		CHECK_EQ(waitpid(storage_dialer_stop(&dialer), &status, 0) > 0, 1);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* not killed by its jail */
		stop_server();
	}
	/* Host names are not resolved. */
	struct nbd_client_config cfg = { .endpoint = "localhost:10809", .retry_timeout_ms = 1000 };
	struct blk_backend b;
	char err[256] = "";
	CHECK_EQ(nbd_backend_open(&b, &cfg, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "not resolved") != NULL);
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

static void scenario_concurrency_server(void)
{
	struct blk_backend b;
	struct mt_worker w[16];
	memset(w, 0, sizeof(w));
	start_server(1);
	open_backend(&b, "vol0", 20000);
	mt_run(&b, w, 16, 0, 120, 0);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	mt_verify_all(w, 16);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK_EQ(st.reconnects, 0);
	CHECK_EQ(st.proto_errors, 0);
	b.ops->close(b.ctx);
	stop_server();
}



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

/* ---- the server's batching: a whole pipeline sent at once ---- */

#define PIPE_N 40
#define PIPE_BIG (1U << 20)       /* more than the server receives at once */
#define PIPE_BIG_READ (2U << 20)  /* more than it sends at once */
#define PIPE_BASE (40ULL * MiB)   /* clear of what the rest of the scenario uses */

struct pipe_stream {
	int fd;
	uint8_t *buf;
	size_t len;
};

static void *pipe_sender(void *arg)
{
	struct pipe_stream *p = arg;
	size_t done = 0;
	while (done < p->len) {
		ssize_t n = send(p->fd, p->buf + done, p->len - done, MSG_NOSIGNAL);
		CHECK(n > 0);
		done += (size_t)n;
	}
	return NULL;
}

static size_t pipe_put(uint8_t *at, uint16_t type, uint64_t handle, uint64_t off, uint32_t len,
		       uint32_t seed)
{
	struct nbd_request rq = { .type = type, .handle = handle, .offset = off, .length = len };
	nbd_encode_request(at, &rq);
	if (type != NBD_CMD_WRITE)
		return NBD_REQUEST_LEN;
	fill_pattern(at + NBD_REQUEST_LEN, len, off, seed);
	return NBD_REQUEST_LEN + len;
}

/*
 * PIPE_N small writes, one larger than the server's receive buffer, a
 * flush, PIPE_N small reads and one larger than its send buffer, all in
 * one stream written while the replies are read: every reply comes, in
 * order, with the right data (headers and payloads straddle the server's
 * recv() boundaries on the way).
 */
static void raw_pipeline(int fd)
{
	struct pipe_stream p = { .fd = fd };
	size_t cap = 2 * PIPE_N * (NBD_REQUEST_LEN + 4096) + PIPE_BIG + 4 * NBD_REQUEST_LEN;
	p.buf = malloc(cap);
	uint8_t *rbuf = malloc(PIPE_BIG_READ);
	CHECK(p.buf != NULL && rbuf != NULL);
	uint64_t h = 1000;
	for (int i = 0; i < PIPE_N; i++)
		p.len += pipe_put(p.buf + p.len, NBD_CMD_WRITE, h++, PIPE_BASE + (uint64_t)i * 8192,
				  4096, 3);
	p.len += pipe_put(p.buf + p.len, NBD_CMD_WRITE, h++, PIPE_BASE + 4 * MiB, PIPE_BIG, 4);
	p.len += pipe_put(p.buf + p.len, NBD_CMD_FLUSH, h++, 0, 0, 0);
	for (int i = 0; i < PIPE_N; i++)
		p.len += pipe_put(p.buf + p.len, NBD_CMD_READ, h++, PIPE_BASE + (uint64_t)i * 8192,
				  4096, 0);
	p.len += pipe_put(p.buf + p.len, NBD_CMD_READ, h++, PIPE_BASE + 4 * MiB, PIPE_BIG_READ, 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, pipe_sender, &p) == 0);
	for (uint64_t want = 1000; want < h; want++) {
		uint8_t rep[NBD_SIMPLE_REPLY_LEN];
		struct nbd_simple_reply sr;
		CHECK(raw_recv(fd, rep, sizeof(rep)) == 0);
		CHECK(nbd_decode_simple_reply(rep, sizeof(rep), &sr) == 0);
		CHECK_EQ(sr.handle, want);
		CHECK_EQ(sr.error, 0);
		uint64_t i = want - 1000 - (PIPE_N + 2);
		if (want < 1000 + PIPE_N + 2)
			continue; /* a write or the flush */
		if (i < PIPE_N) {
			CHECK(raw_recv(fd, rbuf, 4096) == 0);
			CHECK(check_pattern(rbuf, 4096, PIPE_BASE + i * 8192, 3) == 0);
			continue;
		}
		CHECK(raw_recv(fd, rbuf, PIPE_BIG_READ) == 0);
		CHECK(check_pattern(rbuf, PIPE_BIG, PIPE_BASE + 4 * MiB, 4) == 0);
		for (size_t k = PIPE_BIG; k < PIPE_BIG_READ; k++)
			CHECK(rbuf[k] == 0);
	}
	pthread_join(th, NULL);
	free(p.buf);
	free(rbuf);
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

	raw_pipeline(fd);
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

/* ---- the server's connection limits: idle, stalled and full ---- */

#define SERVER_SLOTS 64 /* flint-nbd-server's connections at once */
#define STALL_READS 8   /* 256 KiB READs a stalled client asks for: more than a socket holds */

static int raw_client_go(void)
{
	int fd = raw_connect();
	raw_handshake(fd);
	CHECK_EQ(raw_go(fd, "vol0"), NBD_REP_ACK);
	return fd;
}

/* Waits, without reading, until the server has closed fd (the hard limit guards it). */
static void raw_wait_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	for (;;) {
		int r = poll(&p, 1, -1);
		CHECK(r >= 0 || errno == EINTR);
		if (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return;
	}
}

/* The same for any of fds[0..n). */
static void raw_wait_any_closed(const int *fds, int n)
{
	struct pollfd p[SERVER_SLOTS];
	CHECK(n <= SERVER_SLOTS);
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = fds[i], .events = POLLRDHUP };
	for (;;) {
		int r = poll(p, (nfds_t)n, -1);
		CHECK(r >= 0 || errno == EINTR);
		for (int i = 0; i < n && r > 0; i++)
			if (p[i].revents & (POLLRDHUP | POLLHUP | POLLERR))
				return;
	}
}

/* The server is still serving fd. */
static void raw_check_alive(int fd)
{
	uint8_t buf[4096];
	CHECK_EQ(raw_cmd(fd, NBD_CMD_READ, 0, 0, sizeof(buf), NULL, 0, buf), 0);
}

/* A client can still get in and use the volume. */
static void check_served(uint32_t seed)
{
	struct blk_backend b;
	open_backend(&b, "vol0", 20000);
	write_pattern(&b, 30 * MiB, 65536, seed);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	verify_pattern(&b, 30 * MiB, 65536, seed);
	b.ops->close(b.ctx);
}

/*
 * Every connection slot held by a client that negotiated and then sends
 * nothing: a new client still gets in at once (an idle one makes room; one
 * with unflushed writes only when no clean one is left, even though it has
 * been idle longest).  On its
 * own, an idle client is dropped after --idle-timeout, and so is one that
 * stops in the middle of a request, after --stall-timeout.
 */
static void scenario_server_idle(void)
{
	int fds[SERVER_SLOTS];
	start_server(1);
	/* The one idle longest has an unflushed write: it is passed over for the next one. */
	uint8_t buf[4096] = { 1 };
	fds[0] = raw_client_go();
	CHECK_EQ(raw_cmd(fds[0], NBD_CMD_WRITE, 0, 0, sizeof(buf), buf, sizeof(buf), NULL), 0);
	for (int i = 1; i < SERVER_SLOTS; i++)
		fds[i] = raw_client_go();
	check_served(21);
	raw_wait_any_closed(fds + 1, SERVER_SLOTS - 1);
	raw_check_alive(fds[0]);
	for (int i = 0; i < SERVER_SLOTS; i++)
		close(fds[i]);
	stop_server();

	static const char *const timeouts[] = { "--idle-timeout", "1", "--stall-timeout", "1", NULL };
	start_server_opts(0, timeouts);
	int fd = raw_client_go();
	raw_wait_closed(fd);
	close(fd);
	fd = raw_client_go();
	uint8_t req[NBD_REQUEST_LEN];
	nbd_encode_request(req, &(struct nbd_request){ .type = NBD_CMD_READ, .length = 4096 });
	raw_send(fd, req, 10);
	raw_wait_closed(fd);
	close(fd);
	uint64_t idle = server_stat("idle_closed"), stalled = server_stat("stalled");
	CHECK_EQ(idle, 1);
	CHECK_EQ(stalled, 1);
	check_served(22);
	stop_server();
}

/*
 * Every slot held by a client that sends READs and never reads the
 * replies: each is dropped after --stall-timeout, so a new client gets in.
 */
static void scenario_server_stalled(void)
{
	int fds[SERVER_SLOTS];
	static const char *const stall[] = { "--stall-timeout", "2", NULL };
	start_server_opts(1, stall);
	for (int i = 0; i < SERVER_SLOTS; i++) {
		fds[i] = raw_client_go();
		for (int k = 0; k < STALL_READS; k++) {
			uint8_t req[NBD_REQUEST_LEN];
			nbd_encode_request(req, &(struct nbd_request){
				.type = NBD_CMD_READ, .handle = (uint64_t)k + 1,
				.offset = (uint64_t)k * MiB, .length = 256 * 1024 });
			raw_send(fds[i], req, sizeof(req));
		}
	}
	/* Replies have started coming: each server thread is in send(), not idle. */
	for (int i = 0; i < SERVER_SLOTS; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		CHECK(poll(&p, 1, -1) == 1);
	}
	check_served(23);
	for (int i = 0; i < SERVER_SLOTS; i++) {
		raw_wait_closed(fds[i]);
		close(fds[i]);
	}
	CHECK_EQ(server_stat("stalled"), SERVER_SLOTS);
	CHECK_EQ(server_stat("evicted"), 0);
	stop_server();
}

/*
 * card-ebs's long-lived connection against a server that drops idle ones:
 * the next request reconnects and nothing fails or is lost.  A connection
 * with unflushed writes is never dropped for being idle: the client cannot
 * tell that from a crash, and with its replay log overflowed its next flush
 * would fail.
 */
static void scenario_idle_drop(void)
{
	struct blk_backend b, dirty, clean;
	static const char *const idle[] = { "--idle-timeout", "1", NULL };
	start_server_opts(1, idle);
	open_backend(&b, "vol0", 20000);
	write_pattern(&b, 0, MiB, 11);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	wait_server_stat("idle_closed", 1);
	verify_pattern(&b, 0, MiB, 11);
	write_pattern(&b, MiB, MiB, 12);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	verify_pattern(&b, 0, MiB, 11);
	verify_pattern(&b, MiB, MiB, 12);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK_EQ(st.reconnects, 1);
	b.ops->close(b.ctx);

	char err[256] = "", ep[300];
	snprintf(ep, sizeof(ep), "unix:%s", sock_path);
	struct nbd_client_config cfg = { .endpoint = ep, .export_name = "vol0",
					 .retry_timeout_ms = 20000, .replay_cap_bytes = MiB };
	CHECK_EQ(nbd_backend_open(&dirty, &cfg, err, sizeof(err)), 0);
	uint64_t closed = server_stat("idle_closed");
	write_pattern(&dirty, 8 * MiB, 4 * MiB, 13); /* more than its replay log holds */
	/* Idle after the dirty one: once it is dropped, the dirty one was idle longer. */
	open_backend(&clean, "vol0", 20000);
	verify_pattern(&clean, 8 * MiB, 4 * MiB, 13);
	wait_server_stat("idle_closed", closed + 1);
	CHECK_EQ(dirty.ops->flush(dirty.ctx), 0);
	verify_pattern(&dirty, 8 * MiB, 4 * MiB, 13);
	nbd_backend_stats(&dirty, &st);
	CHECK_EQ(st.reconnects, 0);
	dirty.ops->close(dirty.ctx);
	clean.ops->close(clean.ctx);
	stop_server();
}

/* ---- a fake server that answers with garbage ---- */

enum fake_mode {
	FAKE_GOOD, FAKE_BAD_MAGIC, FAKE_BAD_HANDLE, FAKE_ERROR, FAKE_WEIRD_ERROR,
	FAKE_STRUCTURED, FAKE_SILENT, FAKE_CLOSE, FAKE_RANDOM, FAKE_SHORT_READ,
	/* negotiation */
	FAKE_NEG_BAD_GREETING, FAKE_NEG_HUGE_OPT, FAKE_NEG_NO_EXPORT, FAKE_NEG_BAD_BS,
	FAKE_NEG_REFUSE, FAKE_NEG_WRONG_OPT, FAKE_NEG_SILENT,
	/* pipelining (fake_pipeline): requests and replies decoupled */
	FAKE_REVERSE,    /* reads fake_batch requests, then replies in reverse order */
	FAKE_LATE_READ,  /* holds the first READ's reply until late_release */
	FAKE_SCRIPT,     /* records requests; holds FLUSHes, hangs up when told (fake_script) */
	FAKE_STALL,      /* answers nothing until late_release, then everything held */
	FAKE_RESEND,     /* hangs up on what it read, then answers each request in turn */
};
static atomic_int fake_mode;
static int fake_lfd;
static atomic_int fake_conns;   /* connections that got past negotiation */

#define FAKE_READ_SEED 77       /* READ payloads: fill_pattern(offset, FAKE_READ_SEED) */
#define FAKE_LATE_BYTE 0x77     /* the late READ reply's payload */
#define FAKE_MAX_BATCH 64
#define FAKE_MAX_WRITE (64 * 1024)
#define MARK_SEED 4242          /* the write that must survive the flush */
static atomic_int fake_batch = 1;
static atomic_int late_release, late_sent;

/* FAKE_SCRIPT's knobs and its record of what it received. */
static atomic_int script_hold;   /* a FLUSH is answered only after this many more WRITEs */
static atomic_int script_hangup; /* the next request is not answered: the connection closes */
static atomic_int flush_seen;    /* a FLUSH is being held */
struct rec { int conn; uint16_t type; uint64_t offset; uint32_t length; int payload_ok; };
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rec rec[256];
static int nrec;

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

struct fake_req {
	struct nbd_request rq;
	int payload_ok; /* WRITE: carried fill_pattern(offset, MARK_SEED) */
};

/* Reads one request (and a WRITE's payload); -1 on EOF, garbage or DISC. */
static int fake_read_req(int fd, struct fake_req *r, uint8_t *payload)
{
	uint8_t rb[NBD_REQUEST_LEN];
	if (fake_recv(fd, rb, sizeof(rb)) || nbd_decode_request(rb, sizeof(rb), &r->rq) ||
	    r->rq.type == NBD_CMD_DISC)
		return -1;
	r->payload_ok = 0;
	if (r->rq.type != NBD_CMD_WRITE)
		return 0;
	if (r->rq.length > FAKE_MAX_WRITE || fake_recv(fd, payload, r->rq.length))
		return -1;
	r->payload_ok = check_pattern(payload, r->rq.length, r->rq.offset, MARK_SEED) == 0;
	return 0;
}

/* A success reply; a READ's payload is the offset's pattern, or fill if >= 0. */
static int fake_reply(int fd, const struct nbd_request *rq, int fill)
{
	uint8_t rep[NBD_SIMPLE_REPLY_LEN];
	nbd_encode_simple_reply(rep, 0, rq->handle);
	if (send(fd, rep, sizeof(rep), MSG_NOSIGNAL) != (ssize_t)sizeof(rep))
		return -1;
	if (rq->type != NBD_CMD_READ)
		return 0;
	uint8_t *p = malloc(rq->length);
	CHECK(p != NULL);
	if (fill >= 0)
		memset(p, fill, rq->length);
	else
		fill_pattern(p, rq->length, rq->offset, FAKE_READ_SEED);
	int r = send(fd, p, rq->length, MSG_NOSIGNAL) == (ssize_t)rq->length ? 0 : -1;
	free(p);
	return r;
}

/* A batch of fake_batch requests (read once the first is in), answered last first. */
static void fake_reverse(int fd, uint8_t *payload)
{
	struct fake_req q[FAKE_MAX_BATCH];
	for (;;) {
		if (fake_read_req(fd, &q[0], payload))
			return;
		int n = atomic_load(&fake_batch);
		CHECK(n >= 1 && n <= FAKE_MAX_BATCH);
		for (int i = 1; i < n; i++)
			if (fake_read_req(fd, &q[i], payload))
				return;
		for (int i = n - 1; i >= 0; i--)
			if (fake_reply(fd, &q[i].rq, -1))
				return;
	}
}

static void fake_late_read(int fd, uint8_t *payload)
{
	struct fake_req r;
	int held = 0;
	while (fake_read_req(fd, &r, payload) == 0) {
		if (r.rq.type != NBD_CMD_READ || held++) {
			if (fake_reply(fd, &r.rq, -1))
				return;
			continue;
		}
		while (!atomic_load(&late_release))
			usleep(1000);
		if (fake_reply(fd, &r.rq, FAKE_LATE_BYTE))
			return;
		atomic_store(&late_sent, 1);
	}
}

static atomic_int stall_held;   /* FAKE_STALL: requests held on the current connection */

static void fake_stall(int fd, uint8_t *payload)
{
	struct fake_req held[FAKE_MAX_BATCH];
	int n = 0;
	atomic_store(&stall_held, 0);
	for (;;) {
		if (atomic_load(&late_release) && n > 0) {
			for (int i = 0; i < n; i++)
				if (fake_reply(fd, &held[i].rq, FAKE_LATE_BYTE))
					return;
			n = 0;
			atomic_store(&late_sent, 1);
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 10) <= 0)
			continue;
		struct fake_req r;
		if (fake_read_req(fd, &r, payload))
			return;
		if (atomic_load(&late_release)) {
			if (fake_reply(fd, &r.rq, -1))
				return;
			continue;
		}
		CHECK(n < FAKE_MAX_BATCH);
		held[n++] = r;
		atomic_store(&stall_held, n);
	}
}

#define RESEND_READS 2
#define RESEND_READ_LEN (4 * MiB)
#define RESEND_WRITES 8

/*
 * FAKE_RESEND: the first connection reads RESEND_READS + RESEND_WRITES
 * requests, answers none and hangs up; every later one answers each
 * request as it reads it, blocking in a READ's reply until the client
 * takes it in, and reads nothing meanwhile.
 */
static void fake_resend(int fd, uint8_t *payload)
{
	struct fake_req r;
	if (atomic_load(&fake_conns) == 1) {
		for (int i = 0; i < RESEND_READS + RESEND_WRITES; i++)
			if (fake_read_req(fd, &r, payload))
				return;
		return;
	}
	while (fake_read_req(fd, &r, payload) == 0)
		if (fake_reply(fd, &r.rq, -1))
			return;
}

static void fake_record(int conn, const struct fake_req *r)
{
	pthread_mutex_lock(&rec_lock);
	if (nrec < (int)(sizeof(rec) / sizeof(rec[0])))
		rec[nrec++] = (struct rec){ conn, r->rq.type, r->rq.offset, r->rq.length, r->payload_ok };
	pthread_mutex_unlock(&rec_lock);
}

/*
 * Answers everything, records what it received on which connection, holds
 * a FLUSH until script_hold more WRITEs were answered, and "restarts"
 * (closes the connection, leaving a request unanswered) when told to.
 */
static void fake_script(int fd, uint8_t *payload)
{
	int conn = atomic_load(&fake_conns);
	struct fake_req r, flush;
	int held = 0;
	while (fake_read_req(fd, &r, payload) == 0) {
		if (atomic_exchange(&script_hangup, 0))
			return;
		fake_record(conn, &r);
		if (r.rq.type == NBD_CMD_FLUSH && !held && (held = atomic_load(&script_hold)) > 0) {
			flush = r;
			atomic_store(&flush_seen, 1);
			continue;
		}
		if (fake_reply(fd, &r.rq, -1))
			return;
		if (held > 0 && r.rq.type == NBD_CMD_WRITE && --held == 0) {
			atomic_store(&flush_seen, 0);
			if (fake_reply(fd, &flush.rq, -1))
				return;
		}
	}
}

/* The requests connection conn received, in order; returns how many. */
static int script_log(int conn, struct rec *out, int cap)
{
	int n = 0;
	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < nrec; i++) {
		if (rec[i].conn != conn)
			continue;
		fprintf(stderr, "connection %d: type %u offset %llu length %u\n", conn, rec[i].type,
			(unsigned long long)rec[i].offset, rec[i].length);
		if (n < cap)
			out[n] = rec[i];
		n++;
	}
	pthread_mutex_unlock(&rec_lock);
	return n;
}

static void fake_pipeline(int fd, int mode)
{
	uint8_t *payload = malloc(FAKE_MAX_WRITE);
	CHECK(payload != NULL);
	switch (mode) {
	case FAKE_REVERSE: fake_reverse(fd, payload); break;
	case FAKE_LATE_READ: fake_late_read(fd, payload); break;
	case FAKE_SCRIPT: fake_script(fd, payload); break;
	case FAKE_STALL: fake_stall(fd, payload); break;
	case FAKE_RESEND: fake_resend(fd, payload); break;
	default: break;
	}
	free(payload);
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
	if (mode == FAKE_REVERSE) {
		/* Small requests: one call becomes many chunks in flight. */
		fake_opt_reply(fd, opt, NBD_REP_INFO, info, 12);
		nbd_encode_info_block_size(info, 512, 4096, 64 * 1024);
		fake_opt_reply(fd, opt, NBD_REP_INFO, info, 14);
		fake_opt_reply(fd, opt, NBD_REP_ACK, NULL, 0);
		atomic_fetch_add(&fake_conns, 1);
		fake_pipeline(fd, mode);
		return;
	}
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
	atomic_fetch_add(&fake_conns, 1);
	if (mode >= FAKE_REVERSE) {
		fake_pipeline(fd, mode);
		return;
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

static void fake_start(int mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	atomic_store(&fake_mode, mode);
	fake_lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fake_lfd >= 0);
	CHECK(bind(fake_lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(fake_lfd, 8) == 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, fake_main, NULL) == 0);
	pthread_detach(th);
}

static void scenario_garbage(void)
{
	fake_start(FAKE_GOOD);
	struct blk_backend b;
	uint8_t buf[8192];
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

/* ---- pipelining against the fake server ---- */

struct rev_worker {
	struct blk_backend *b;
	int id, rounds;
};

/* Exactly 3 requests a round, one at a time: each batch holds one of every thread's. */
static void *rev_main(void *arg)
{
	struct rev_worker *w = arg;
	uint64_t off = (uint64_t)w->id * 65536;
	uint8_t buf[4096];
	for (int i = 0; i < w->rounds; i++) {
		fill_pattern(buf, sizeof(buf), off, MARK_SEED);
		CHECK_EQ(w->b->ops->write(w->b->ctx, off, buf, sizeof(buf)), 0);
		memset(buf, 0xa5, sizeof(buf));
		CHECK_EQ(w->b->ops->read(w->b->ctx, off, buf, sizeof(buf)), 0);
		CHECK(check_pattern(buf, sizeof(buf), off, FAKE_READ_SEED) == 0);
		CHECK_EQ(w->b->ops->flush(w->b->ctx), 0);
	}
	return NULL;
}

/*
 * The fake server answers only once it holds a whole batch, last request
 * first: the client must keep the batch in flight and match replies by
 * handle (each READ's data depends on its offset).  A client that cannot
 * would time out.
 */
static void scenario_concurrency_reverse(void)
{
	struct blk_backend b;
	fake_start(FAKE_REVERSE);
	open_backend(&b, "", 20000);
	CHECK(b.ops->discard == NULL);

	/* One call, 16 chunks of the server's 64 KiB limit, all in flight. */
	size_t len = 2 * MiB;
	uint8_t *buf = malloc(len);
	CHECK(buf != NULL);
	atomic_store(&fake_batch, 16);
	memset(buf, 0xa5, len);
	CHECK_EQ(b.ops->read(b.ctx, MiB, buf, MiB), 0);
	CHECK(check_pattern(buf, MiB, MiB, FAKE_READ_SEED) == 0);
	fill_pattern(buf, MiB, 0, MARK_SEED);
	CHECK_EQ(b.ops->write(b.ctx, 0, buf, MiB), 0);
	memset(buf, 0xa5, len);
	CHECK_EQ(b.ops->read(b.ctx, 3 * MiB, buf, len), 0); /* 32 chunks: two windows */
	CHECK(check_pattern(buf, len, 3 * MiB, FAKE_READ_SEED) == 0);
	free(buf);

	/* 32 threads, one request each at a time: batches of 32. */
	enum { N = 32 };
	pthread_t th[N];
	struct rev_worker w[N];
	atomic_store(&fake_batch, N);
	for (int i = 0; i < N; i++) {
		w[i] = (struct rev_worker){ &b, i, 10 };
		CHECK(pthread_create(&th[i], NULL, rev_main, &w[i]) == 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK_EQ(st.reconnects, 0);
	CHECK_EQ(st.proto_errors, 0);
	CHECK_EQ(atomic_load(&fake_conns), 1);
	b.ops->close(b.ctx);
}

static void scenario_concurrency(void)
{
	scenario_concurrency_server();
	tmpdir_cleanup();
	snprintf(sock_path, sizeof(sock_path), "%s/nbd.sock", tmpdir_make());
	scenario_concurrency_reverse();
}

/*
 * A READ whose reply comes after the caller gave up: the payload must not
 * land in the caller's buffer (it may be reused), and the connection goes
 * on (the reply is consumed, not taken for garbage).
 */
static void scenario_late_reply(void)
{
	struct blk_backend b;
	size_t len = 64 * 1024;
	uint8_t *buf = malloc(len), *other = malloc(4096);
	CHECK(buf != NULL && other != NULL);
	fake_start(FAKE_LATE_READ);
	open_backend(&b, "", 3000);
	memset(buf, 0x11, len);
	CHECK_EQ(b.ops->read(b.ctx, 0, buf, len), -EIO);
	struct nbd_client_stats before, after;
	nbd_backend_stats(&b, &before);
	atomic_store(&late_release, 1);
	/* Replies come in order: once this one is back, the late one was handled. */
	CHECK_EQ(b.ops->read(b.ctx, 8192, other, 4096), 0);
	CHECK(atomic_load(&late_sent));
	CHECK(check_pattern(other, 4096, 8192, FAKE_READ_SEED) == 0);
	for (size_t i = 0; i < len; i++)
		CHECK(buf[i] == 0x11);
	nbd_backend_stats(&b, &after);
	CHECK_EQ(after.reconnects, before.reconnects);
	CHECK_EQ(after.proto_errors, before.proto_errors);
	CHECK_EQ(atomic_load(&fake_conns), 1);
	/* Still working, buffer reused. */
	CHECK_EQ(b.ops->read(b.ctx, 0, buf, len), 0);
	CHECK(check_pattern(buf, len, 0, FAKE_READ_SEED) == 0);
	b.ops->close(b.ctx);
	free(buf);
	free(other);
}

static void *flush_main(void *arg)
{
	struct blk_backend *b = arg;
	return (void *)(intptr_t)b->ops->flush(b->ctx);
}

/* A FLUSH the fake server holds until hold more WRITEs were answered. */
static pthread_t flush_held(struct blk_backend *b, int hold)
{
	pthread_t th;
	atomic_store(&script_hold, hold);
	CHECK(pthread_create(&th, NULL, flush_main, b) == 0);
	while (!atomic_load(&flush_seen))
		usleep(1000);
	atomic_store(&script_hold, 0);
	return th;
}

static int flush_result(pthread_t th)
{
	void *res;
	pthread_join(th, &res);
	return (int)(intptr_t)res;
}

/* 4 KiB at block blk, a pattern the fake server checks (payload_ok). */
static void script_write(struct blk_backend *b, int blk)
{
	uint8_t buf[4096];
	fill_pattern(buf, sizeof(buf), (uint64_t)blk * 4096, MARK_SEED);
	CHECK_EQ(b->ops->write(b->ctx, (uint64_t)blk * 4096, buf, sizeof(buf)), 0);
}

/*
 * The server "restarts": the next request finds the connection gone, the
 * client reconnects, replays its log and re-sends the request.  Returns
 * the new connection's number.
 */
static int script_restart(struct blk_backend *b)
{
	uint8_t buf[4096];
	atomic_store(&script_hangup, 1);
	CHECK_EQ(b->ops->read(b->ctx, 32 * MiB, buf, sizeof(buf)), 0);
	return atomic_load(&fake_conns);
}

/* What a connection received must be WRITEs of blocks want[], then the READ. */
static void check_replayed(int conn, const int *want, int n)
{
	struct rec got[64];
	CHECK_EQ(script_log(conn, got, 64), n + 1);
	for (int i = 0; i < n; i++) {
		CHECK_EQ(got[i].type, NBD_CMD_WRITE);
		CHECK_EQ(got[i].offset, (uint64_t)want[i] * 4096);
		CHECK(got[i].payload_ok);
	}
	CHECK_EQ(got[n].type, NBD_CMD_READ);
	CHECK_EQ(got[n].offset, 32 * MiB);
}

/*
 * A flush covers the writes acknowledged before it was sent, not those
 * acknowledged while it was in flight: block 0 (acked, then the FLUSH sent)
 * leaves the replay log when the flush succeeds, block 2 (sent and acked
 * while the server held the FLUSH) must stay.  After a server restart the
 * new connection must see block 2 replayed, and block 0 not.
 */
static void scenario_flush_mark(void)
{
	struct blk_backend b;
	fake_start(FAKE_SCRIPT);
	open_backend(&b, "", 20000);
	script_write(&b, 0);
	pthread_t th = flush_held(&b, 1);
	script_write(&b, 2);
	CHECK_EQ(flush_result(th), 0);
	int conn = script_restart(&b);
	CHECK_EQ(conn, 2);
	check_replayed(conn, (const int[]){ 2 }, 1);
	/* The restart lost nothing the log could not replay: the next flush is fine. */
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	b.ops->close(b.ctx);
}

/*
 * The replay log's ring, small enough to wrap (10 entries of 4 KiB): entries
 * left behind by a flush, appends wrapping to the start, a replay crossing
 * the wrap, a flush popping across it; then an overflow, after which a
 * restart makes the next flush fail once.
 */
static void scenario_replay_ring(void)
{
	struct blk_backend b;
	char err[256] = "", ep[300];
	snprintf(ep, sizeof(ep), "unix:%s", sock_path);
	struct nbd_client_config cfg = {
		.endpoint = ep, .retry_timeout_ms = 20000, .replay_cap_bytes = 10 * (4096 + 64),
	};
	fake_start(FAKE_SCRIPT);
	CHECK_EQ(nbd_backend_open(&b, &cfg, err, sizeof(err)), 0);
	for (int i = 1; i <= 6; i++)
		script_write(&b, i);
	pthread_t th = flush_held(&b, 2);
	script_write(&b, 7);
	script_write(&b, 8);
	CHECK_EQ(flush_result(th), 0); /* drops 1-6, keeps 7-8 at the ring's middle */
	for (int i = 9; i <= 13; i++)
		script_write(&b, i); /* 9-10 fill the ring's end, 11-13 wrap to its start */
	int conn = script_restart(&b);
	check_replayed(conn, (const int[]){ 7, 8, 9, 10, 11, 12, 13 }, 7);

	th = flush_held(&b, 1);
	script_write(&b, 14);
	CHECK_EQ(flush_result(th), 0); /* pops 7-13 across the wrap, keeps 14 */
	conn = script_restart(&b);
	check_replayed(conn, (const int[]){ 14 }, 1);

	for (int i = 15; i <= 30; i++)
		script_write(&b, i); /* more than the ring holds */
	conn = script_restart(&b);
	check_replayed(conn, NULL, 0);
	CHECK_EQ(b.ops->flush(b.ctx), -EIO); /* once */
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	script_write(&b, 31); /* logged again */
	conn = script_restart(&b);
	check_replayed(conn, (const int[]){ 31 }, 1);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK_EQ(st.reconnects, 4);
	CHECK_EQ(st.proto_errors, 0);
	b.ops->close(b.ctx);
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
	/* Out-of-order replies from a multi-threaded server. */
	struct mt_worker w[8];
	memset(w, 0, sizeof(w));
	mt_run(&b, w, 8, 8 * MiB, 40, 0);
	CHECK_EQ(b.ops->flush(b.ctx), 0);
	mt_verify_all(w, 8);
	b.ops->close(b.ctx);
	kill_wait(pid, SIGTERM);
}

/*
 * The card blocks SIGTERM and waits for it with sigwait() to wipe its key.
 * The client's receiver thread must not take it instead (a thread with the
 * signal unblocked would die of it, killing the process): with SIGTERM
 * unblocked in the opening thread, as in card-ebs before it enters its
 * serving loop, a later SIGTERM must still reach sigwait().
 */
static void scenario_signals(void)
{
	struct blk_backend b;
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	hard_limit(30); /* a lost signal shows as a hang */
	CHECK(pthread_sigmask(SIG_UNBLOCK, &term, NULL) == 0);
	start_server(1);
	open_backend(&b, "vol0", 5000);
	write_pattern(&b, 0, 65536, 5);
	CHECK(pthread_sigmask(SIG_BLOCK, &term, NULL) == 0);
	CHECK(kill(getpid(), SIGTERM) == 0);
	int sig = 0;
	CHECK(sigwait(&term, &sig) == 0);
	CHECK_EQ(sig, SIGTERM);
	verify_pattern(&b, 0, 65536, 5); /* the receiver is alive too */
	b.ops->close(b.ctx);
	stop_server();
}

/* ---- asynchronous requests (submit) ---- */

#define AIO_N 48
#define AIO_LEN 4096

struct aio_req {
	struct blk_aio io;
	int result;
	int done;
	pthread_t thread;
};

static pthread_mutex_t aio_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t aio_cv = PTHREAD_COND_INITIALIZER;
static int aio_completed;

static void aio_done(struct blk_aio *io, int result)
{
	struct aio_req *r = (struct aio_req *)io;
	pthread_mutex_lock(&aio_lock);
	CHECK(!r->done); /* exactly once */
	r->result = result;
	r->done = 1;
	r->thread = pthread_self();
	aio_completed++;
	pthread_cond_broadcast(&aio_cv);
	pthread_mutex_unlock(&aio_lock);
}

static void aio_wait(int n)
{
	pthread_mutex_lock(&aio_lock);
	while (aio_completed < n)
		pthread_cond_wait(&aio_cv, &aio_lock);
	pthread_mutex_unlock(&aio_lock);
}

/* Submits r (accepted) for len bytes at off in buf. */
static void aio_go(struct blk_backend *b, struct aio_req *r, int write, uint64_t off, void *buf,
		   size_t len)
{
	memset(r, 0, sizeof(*r));
	r->io = (struct blk_aio){ .write = write, .offset = off, .len = len, .buf = buf,
				  .done = aio_done };
	CHECK_EQ(b->ops->submit(b->ctx, &r->io), 0);
}

/* AIO_N writes then AIO_N reads, all in flight at once; then round trips. */
static void aio_batch(struct blk_backend *b, uint8_t *bufs, uint32_t seed, int *n)
{
	static struct aio_req req[AIO_N];
	for (int i = 0; i < AIO_N; i++) {
		uint64_t off = (uint64_t)i * 2 * AIO_LEN;
		fill_pattern(bufs + (size_t)i * AIO_LEN, AIO_LEN, off, seed);
		aio_go(b, &req[i], 1, off, bufs + (size_t)i * AIO_LEN, AIO_LEN);
	}
	aio_wait(*n += AIO_N);
	for (int i = 0; i < AIO_N; i++) {
		CHECK_EQ(req[i].result, 0);
		/* The receiver completes them: nobody waited in the submitter. */
		CHECK(!pthread_equal(req[i].thread, pthread_self()));
	}
	memset(bufs, 0xa5, (size_t)AIO_N * AIO_LEN);
	for (int i = 0; i < AIO_N; i++)
		aio_go(b, &req[i], 0, (uint64_t)i * 2 * AIO_LEN, bufs + (size_t)i * AIO_LEN, AIO_LEN);
	aio_wait(*n += AIO_N);
	for (int i = 0; i < AIO_N; i++) {
		CHECK_EQ(req[i].result, 0);
		CHECK(check_pattern(bufs + (size_t)i * AIO_LEN, AIO_LEN, (uint64_t)i * 2 * AIO_LEN,
				    seed) == 0);
	}
}

/*
 * submit(): many requests in flight from one thread, completed by the
 * receiver; across a server restart (re-sent, no error); past the deadline
 * with the server gone (-EIO, once); a late reply after that never touches
 * the buffer; a request larger than the server's maximum is not accepted.
 */
static void scenario_aio(void)
{
	struct blk_backend b;
	uint8_t *bufs = malloc((size_t)AIO_N * AIO_LEN);
	CHECK(bufs != NULL);
	int n = 0;
	start_server(1);
	open_backend(&b, "vol0", 3000);
	CHECK(b.ops->submit != NULL);
	aio_batch(&b, bufs, 1, &n);

	/* Restarted server: the batch still succeeds. */
	atomic_store(&killer_done, 0);
	pthread_t killer;
	CHECK(pthread_create(&killer, NULL, killer_main, NULL) == 0);
	for (uint32_t seed = 2; !atomic_load(&killer_done); seed++)
		aio_batch(&b, bufs, seed, &n);
	pthread_join(killer, NULL);
	aio_batch(&b, bufs, 99, &n);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK(st.reconnects >= 1);

	/* Server gone: -EIO after the deadline. */
	struct aio_req r;
	stop_server();
	aio_go(&b, &r, 0, 0, bufs, AIO_LEN);
	aio_wait(++n);
	CHECK_EQ(r.result, -EIO);
	start_server(0);
	verify_pattern(&b, 0, AIO_LEN, 99);

	/* Not accepted: larger than one request may be. */
	struct blk_aio big = { .len = 64u << 20, .buf = bufs, .done = aio_done };
	CHECK(b.ops->submit(b.ctx, &big) != 0);
	b.ops->close(b.ctx);
	stop_server();

	/* A late reply to an expired request: dropped, the buffer untouched. */
	unlink(sock_path);
	fake_start(FAKE_LATE_READ);
	open_backend(&b, "", 1500);
	memset(bufs, 0x11, AIO_LEN);
	aio_go(&b, &r, 0, 0, bufs, AIO_LEN);
	aio_wait(++n);
	CHECK_EQ(r.result, -EIO);
	atomic_store(&late_release, 1);
	uint8_t other[4096];
	CHECK_EQ(b.ops->read(b.ctx, 8192, other, sizeof(other)), 0);
	CHECK(atomic_load(&late_sent));
	for (size_t i = 0; i < AIO_LEN; i++)
		CHECK(bufs[i] == 0x11);
	CHECK_EQ(atomic_load(&fake_conns), 1);
	b.ops->close(b.ctx);
	free(bufs);
}

/*
 * Re-sending after a reconnect serves the replies that come in meanwhile:
 * big READs, then more WRITE payload than the socket buffers hold, all in
 * flight when the server hangs up.  The new connection answers the first
 * READ at once and reads nothing until its reply is taken in; a client that
 * only sent would wait for it in the WRITEs until their deadline, and they
 * would fail.
 */
static void scenario_resend_serving(void)
{
	struct blk_backend b;
	struct aio_req req[RESEND_READS + RESEND_WRITES];
	uint8_t *reads = malloc((size_t)RESEND_READS * RESEND_READ_LEN);
	uint8_t *writes = malloc((size_t)RESEND_WRITES * FAKE_MAX_WRITE);
	CHECK(reads != NULL && writes != NULL);
	memset(reads, 0xa5, (size_t)RESEND_READS * RESEND_READ_LEN);
	fake_start(FAKE_RESEND);
	open_backend(&b, "", 10000);
	for (int i = 0; i < RESEND_READS; i++)
		aio_go(&b, &req[i], 0, (uint64_t)i * RESEND_READ_LEN,
		       reads + (size_t)i * RESEND_READ_LEN, RESEND_READ_LEN);
	uint64_t woff = (uint64_t)RESEND_READS * RESEND_READ_LEN;
	for (int i = 0; i < RESEND_WRITES; i++) {
		uint8_t *buf = writes + (size_t)i * FAKE_MAX_WRITE;
		uint64_t off = woff + (uint64_t)i * FAKE_MAX_WRITE;
		fill_pattern(buf, FAKE_MAX_WRITE, off, MARK_SEED);
		aio_go(&b, &req[RESEND_READS + i], 1, off, buf, FAKE_MAX_WRITE);
	}
	aio_wait(RESEND_READS + RESEND_WRITES);
	for (int i = 0; i < RESEND_READS + RESEND_WRITES; i++)
		CHECK_EQ(req[i].result, 0);
	for (int i = 0; i < RESEND_READS; i++)
		CHECK(check_pattern(reads + (size_t)i * RESEND_READ_LEN, RESEND_READ_LEN,
				    (uint64_t)i * RESEND_READ_LEN, FAKE_READ_SEED) == 0);
	struct nbd_client_stats st;
	nbd_backend_stats(&b, &st);
	CHECK_EQ(st.reconnects, 1);
	CHECK_EQ(st.retries, RESEND_READS + RESEND_WRITES);
	CHECK_EQ(st.proto_errors, 0);
	CHECK_EQ(atomic_load(&fake_conns), 2);
	b.ops->close(b.ctx);
	free(reads);
	free(writes);
}

/* A sync read through the backend in a thread of its own. */
struct reader {
	struct blk_backend *b;
	uint8_t *buf;
	size_t len;
	int result;
	pthread_t thread;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->result = r->b->ops->read(r->b->ctx, 0, r->buf, r->len);
	return NULL;
}

/*
 * set_abort on a stalled server (it holds every request): a waiting sync
 * read and two aio requests give up at once with -EIO, long before their
 * deadline (60 s, past this scenario's hard limit); a request made while
 * aborting fails at once; their buffers are never touched, even when the
 * server answers afterwards; once the abort ends the volume works again
 * (over a new connection).
 */
static void scenario_abort(void)
{
	struct blk_backend b;
	size_t len = 64 * 1024;
	uint8_t *buf = malloc(len), *abuf = malloc(2 * AIO_LEN);
	CHECK(buf != NULL && abuf != NULL);
	hard_limit(40);
	fake_start(FAKE_STALL);
	open_backend(&b, "", 60000);
	CHECK(b.ops->set_abort != NULL);
	memset(buf, 0x11, len);
	memset(abuf, 0x22, 2 * AIO_LEN);
	struct reader rd = { .b = &b, .buf = buf, .len = len };
	CHECK(pthread_create(&rd.thread, NULL, reader_main, &rd) == 0);
	struct aio_req r[2];
	aio_go(&b, &r[0], 0, 0, abuf, AIO_LEN);
	aio_go(&b, &r[1], 1, 8192, abuf + AIO_LEN, AIO_LEN);
	while (atomic_load(&stall_held) < 3)
		usleep(1000);

	b.ops->set_abort(b.ctx, true);
	aio_wait(2);
	CHECK_EQ(r[0].result, -EIO);
	CHECK_EQ(r[1].result, -EIO);
	pthread_join(rd.thread, NULL);
	CHECK_EQ(rd.result, -EIO);
	uint8_t other[4096];
	CHECK_EQ(b.ops->read(b.ctx, 8192, other, sizeof(other)), -EIO);
	b.ops->set_abort(b.ctx, false);

	/* The server answers what it held, late: nothing lands in the buffers. */
	atomic_store(&late_release, 1);
	CHECK_EQ(b.ops->read(b.ctx, 8192, other, sizeof(other)), 0);
	CHECK(check_pattern(other, sizeof(other), 8192, FAKE_READ_SEED) == 0);
	usleep(100000);
	for (size_t i = 0; i < len; i++)
		CHECK(buf[i] == 0x11);
	for (size_t i = 0; i < AIO_LEN; i++)
		CHECK(abuf[i] == 0x22);
	CHECK(atomic_load(&fake_conns) >= 2);
	b.ops->close(b.ctx);
	free(buf);
	free(abuf);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s basic|durability|reconnect|timeout|server-raw|server-idle|server-stalled|idle-drop|tcp|garbage|"
			"concurrency|reconnect-mt|late-reply|flush-mark|replay-ring|signals|aio|abort|sandbox|nbdkit|qemu-nbd [SERVER]\n",
			argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	hard_limit(240);
	const char *dir = tmpdir_make();
	snprintf(sock_path, sizeof(sock_path), "%s/nbd.sock", dir);
	snprintf(file_path, sizeof(file_path), "%s/volume.img", dir);
	snprintf(server_log, sizeof(server_log), "%s/server.log", dir);
	atexit(show_server_log);
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
	else if (strcmp(s, "server-idle") == 0)
		scenario_server_idle();
	else if (strcmp(s, "server-stalled") == 0)
		scenario_server_stalled();
	else if (strcmp(s, "idle-drop") == 0)
		scenario_idle_drop();
	else if (strcmp(s, "tcp") == 0)
		scenario_tcp();
	else if (strcmp(s, "garbage") == 0)
		scenario_garbage();
	else if (strcmp(s, "concurrency") == 0)
		scenario_concurrency();
	else if (strcmp(s, "reconnect-mt") == 0)
		scenario_reconnect_mt();
	else if (strcmp(s, "late-reply") == 0)
		scenario_late_reply();
	else if (strcmp(s, "flush-mark") == 0)
		scenario_flush_mark();
	else if (strcmp(s, "replay-ring") == 0)
		scenario_replay_ring();
	else if (strcmp(s, "signals") == 0)
		scenario_signals();
	else if (strcmp(s, "aio") == 0)
		scenario_aio();
	else if (strcmp(s, "resend-serving") == 0)
		scenario_resend_serving();
	else if (strcmp(s, "abort") == 0)
		scenario_abort();
	else if (strcmp(s, "sandbox") == 0)
		scenario_sandbox();
	else if (strcmp(s, "nbdkit") == 0 || strcmp(s, "qemu-nbd") == 0)
		scenario_interop(s);
	else {
		fprintf(stderr, "unknown scenario %s\n", s);
		return 2;
	}
	show_server_log();
	tmpdir_cleanup();
	fprintf(stderr, "%s: OK\n", s);
	return 0;
}
