/*
 * A card belongs to one instance (CARD-7, ACC-2, IST-4, IST-5), tried on the
 * real card binaries with flint-hv's vhost-user front end playing the VMM:
 *
 *   fd-session        card-local on an inherited socketpair (--fd): a guest
 *                     write reads back, unwritten blocks over a store full
 *                     of old data read as zeros, log lines name the
 *                     instance and device, and the front end hanging up ends
 *                     the card with its key destroyed
 *   second-front-end  card-local on --socket: once its front end is
 *                     connected the path is gone and a second connection is
 *                     impossible; the first one leaving ends the card
 *   peer-uid          --peer-uid someone else: our connection is refused
 *                     unserved, the card keeps waiting; SIGTERM ends it
 *   nobody            (root only) a front end running as nobody is refused,
 *                     then the expected one (root) is served
 *   protocol-error    a malformed message ends the card (no next front end)
 *   ebs-disconnect    card-ebs over flint-nbd-server: the front end leaving
 *                     ends the card, flushed, key wiped
 *   ebs-sigterm       SIGTERM detaches a serving card-ebs: key wiped
 *   sigterm-waiting   SIGTERM before any front end: clean exit, path removed
 *   bad-fd            --fd that is a pipe, a listening socket or a datagram
 *                     socket is refused
 *
 * usage: test_card_instance SCENARIO CARD_LOCAL CARD_EBS NBD_SERVER
 * Exit 0 pass, 1 fail, 77 skip (FLINT_CARDS_SANITIZED=1: the card binaries
 * carry a sanitizer runtime, whose syscalls their jail does not admit).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest_mem.h"
#include "log.h"
#include "vhost_user_front.h"
#include "vhost_user_msg.h"
#include "test_vhost_user_front_driver.h"

#define RAM (16ull << 20)
#define STORE_BYTES (8ull << 20)
#define DATA_GPA 0x100000ull
#define LEN 8192
#define OLD_BYTE 0xa5
#define EXIT_WAIT_S 20 /* a hang guard, not a timing assertion */

static const char *card_local, *card_ebs, *nbd_server;
static char dir[] = "/tmp/flint-card-instance.XXXXXX";
static char store[128], sock[128], card_log[128], nbd_sock[128], key[128];
static pid_t children[4];
static unsigned int nchildren;

static void cleanup(void)
{
	char cmd[200];
	for (unsigned int i = 0; i < nchildren; i++) {
		if (children[i] > 0 && kill(children[i], SIGKILL) == 0)
			waitpid(children[i], NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

static void show_log(void)
{
	char line[512];
	FILE *f = fopen(card_log, "r");
	if (f == NULL)
		return;
	fprintf(stderr, "---- card log\n");
	while (fgets(line, sizeof(line), f) != NULL)
		fprintf(stderr, "%s", line);
	fclose(f);
}

static int fail(const char *what)
{
	fprintf(stderr, "FAIL: %s\n", what);
	show_log();
	cleanup();
	return 1;
}

static bool log_has(const char *needle)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(card_log, "r");
	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* Starts argv with stderr to log; channel (if >= 0) becomes its fd 3. */
static pid_t spawn(char *const argv[], const char *log, int channel)
{
	pid_t p = fork();
	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd < 0 || dup2(fd, 2) != 2)
			_exit(126);
		if (channel >= 0 && dup2(channel, 3) != 3)
			_exit(126);
		if (channel == 3 && fcntl(3, F_SETFD, 0) != 0) /* dup2 kept CLOEXEC */
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	if (p > 0 && nchildren < sizeof(children) / sizeof(children[0]))
		children[nchildren++] = p;
	return p;
}

static void forget(pid_t p)
{
	for (unsigned int i = 0; i < nchildren; i++)
		if (children[i] == p)
			children[i] = -1;
}

/* Its exit status, or -1 if it is still running after EXIT_WAIT_S. */
static int wait_exit(pid_t p)
{
	for (int i = 0; i < EXIT_WAIT_S * 20; i++) {
		int st;
		if (waitpid(p, &st, WNOHANG) == p) {
			forget(p);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(50000);
	}
	return -1;
}

static bool running_after_a_while(pid_t p)
{
	usleep(300000);
	return waitpid(p, NULL, WNOHANG) == 0;
}

static int wait_socket(const char *path, pid_t p)
{
	for (int i = 0; i < 400; i++) {
		struct stat st;
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		if (waitpid(p, NULL, WNOHANG) == p) {
			forget(p);
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

/* A store full of an earlier tenant's bytes. */
static int old_store(void)
{
	static uint8_t old[1 << 16];
	memset(old, OLD_BYTE, sizeof(old));
	int fd = open(store, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	for (uint64_t off = 0; off < STORE_BYTES; off += sizeof(old))
		if (pwrite(fd, old, sizeof(old), (off_t)off) != (ssize_t)sizeof(old))
			return -1;
	close(fd);
	return 0;
}

static pid_t start_local(const char *channel_opt, const char *channel_arg, int channel,
			 const char *extra1, const char *extra2)
{
	char *argv[] = { (char *)card_local, (char *)channel_opt, (char *)channel_arg,
			 "--store", store, "--size", "8388608", "--sector-size", "512",
			 "--queues", "2",
			 "--instance", "i-42", "--device", "vdb",
			 (char *)extra1, (char *)extra2, NULL };
	return spawn(argv, card_log, channel);
}

/* The VMM's side: negotiated, RAM shared, two queues started. */
struct front {
	struct vuf f;
	struct guest_mem gm;
	struct drv_queue q0, q1;
};

static int front_start(struct front *fe, int s)
{
	char err[256];
	fe->q0 = (struct drv_queue){ .kick = -1, .call = -1 };
	fe->q1 = (struct drv_queue){ .kick = -1, .call = -1 };
	if (guest_mem_create(&fe->gm, RAM) != 0)
		return -1;
	if (vuf_setup(&fe->f, s, "blk0", "card", 2, &fe->gm, err, sizeof(err)) != 0) {
		fprintf(stderr, "vuf_setup: %s\n", err);
		guest_mem_destroy(&fe->gm);
		return -1;
	}
	/* This driver waits for a call after each request: no event index (bit 29). */
	uint64_t features = vuf_ops.get_features(&fe->f) & ~(1ull << 29);
	if (vuf_ops.set_features(&fe->f, features | (1ULL << VIRTIO_F_VERSION_1)) != 0 ||
	    drv_queue_start(&fe->f, &fe->gm, &fe->q0, 0, 0x10000) != 0 ||
	    drv_queue_start(&fe->f, &fe->gm, &fe->q1, 1, 0x20000) != 0)
		return -1;
	return 0;
}

static void front_stop(struct front *fe)
{
	drv_queue_close(&fe->q0);
	drv_queue_close(&fe->q1);
	vuf_close(&fe->f);
	guest_mem_destroy(&fe->gm);
}

/* Write a pattern at sector 24 on queue 1, read it back on queue 0. */
static int front_write_read(struct front *fe)
{
	uint8_t *data = guest_mem_ptr(&fe->gm, DATA_GPA, 2 * LEN);
	for (int i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 13 + 5);
	if (drv_request(&fe->gm, &fe->q1, DRV_T_OUT, 24, DATA_GPA, LEN, 5000) != 0)
		return -1;
	memset(data + LEN, 0, LEN);
	if (drv_request(&fe->gm, &fe->q0, DRV_T_IN, 24, DATA_GPA + LEN, LEN, 5000) != 0)
		return -1;
	return memcmp(data, data + LEN, LEN) == 0 ? 0 : -1;
}

static int connect_path(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Sends GET_FEATURES: 1 if the card answered within 5 s, 0 if it did not. */
static int answered(int s)
{
	struct vhost_user_msg m, r;
	vhost_user_msg_init(&m, VHOST_USER_GET_FEATURES, 0);
	if (vhost_user_send(s, &m) != 0)
		return 0;
	struct pollfd p = { .fd = s, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		return 0;
	return vhost_user_recv(s, &r) == 0;
}

static int fd_session(void)
{
	struct front fe;
	int sv[2];
	if (old_store() != 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return fail("set-up");
	pid_t card = start_local("--fd", "3", sv[1], NULL, NULL);
	close(sv[1]);
	if (front_start(&fe, sv[0]) != 0)
		return fail("the card on --fd 3 did not serve its front end");
	if (front_write_read(&fe) != 0)
		return fail("write and read back through the card");
	/* Unwritten sectors over the old store: zeros, not old data decrypted. */
	uint8_t *data = guest_mem_ptr(&fe.gm, DATA_GPA, LEN);
	memset(data, 0xee, LEN);
	if (drv_request(&fe.gm, &fe.q0, DRV_T_IN, 1000, DATA_GPA, LEN, 5000) != 0)
		return fail("read of unwritten sectors");
	for (int i = 0; i < LEN; i++)
		if (data[i] != 0)
			return fail("unwritten sectors do not read as zeros (IST-5)");
	front_stop(&fe);
	int st = wait_exit(card);
	if (st != 0)
		return fail(st < 0 ? "the card still runs after its front end left"
				   : "the card failed after its front end left");
	if (!log_has("flint-card-local[i-42/vdb]: "))
		return fail("log lines do not name the instance and device");
	if (!log_has("key destroyed"))
		return fail("no 'key destroyed' in the log");
	cleanup();
	printf("PASS: --fd session, zeros over old data, exit with the key destroyed\n");
	return 0;
}

static int second_front_end(void)
{
	struct front fe;
	struct stat st;
	char err[256];
	if (old_store() != 0)
		return fail("set-up");
	pid_t card = start_local("--socket", sock, -1, NULL, NULL);
	if (wait_socket(sock, card) != 0)
		return fail("the card did not listen");
	int s = vuf_connect(sock, err, sizeof(err));
	if (s < 0 || front_start(&fe, s) != 0 || front_write_read(&fe) != 0)
		return fail("the first front end was not served");
	/* Connected: nothing is left to connect to. */
	if (stat(sock, &st) == 0)
		return fail("the socket path is still there once the front end connected");
	int second = connect_path(sock);
	if (second >= 0) {
		int served = answered(second);
		close(second);
		return fail(served ? "a second front end was served"
				   : "a second front end could connect");
	}
	front_stop(&fe);
	int rc = wait_exit(card);
	if (rc != 0)
		return fail(rc < 0 ? "the card still runs after its front end left"
				   : "the card failed after its front end left");
	/* Nothing serves the volume's key any more. */
	second = connect_path(sock);
	if (second >= 0) {
		close(second);
		return fail("a connection after the first front end left");
	}
	if (!log_has("key destroyed"))
		return fail("no 'key destroyed' in the log");
	cleanup();
	printf("PASS: one front end per card; the path is gone once it connected\n");
	return 0;
}

static int peer_uid(void)
{
	char uid[16];
	snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid() + 1);
	pid_t card = start_local("--socket", sock, -1, "--peer-uid", uid);
	if (wait_socket(sock, card) != 0)
		return fail("the card did not listen");
	int s = connect_path(sock);
	if (s < 0)
		return fail("connect");
	if (answered(s))
		return fail("a front end with the wrong uid was served");
	close(s);
	if (!running_after_a_while(card))
		return fail("a refused front end ended the card");
	if (!log_has("refused a front end from uid"))
		return fail("no log line about the refused front end");
	kill(card, SIGTERM);
	if (wait_exit(card) != 0 || !log_has("key destroyed"))
		return fail("SIGTERM while waiting did not end the card cleanly");
	cleanup();
	printf("PASS: a peer with another uid is refused, the card waits on\n");
	return 0;
}

static int nobody(void)
{
	struct passwd *pw = getpwnam("nobody");
	char err[256];
	struct front fe;
	if (geteuid() != 0 || pw == NULL) {
		fprintf(stderr, "SKIP: *** needs root and a 'nobody' user to connect as "
			"another uid ***\n");
		cleanup();
		return 77;
	}
	/* Let nobody reach the socket: only the credentials check stops it. */
	chmod(dir, 0755);
	mode_t old = umask(0);
	pid_t card = start_local("--socket", sock, -1, NULL, NULL);
	umask(old);
	if (wait_socket(sock, card) != 0)
		return fail("the card did not listen");
	pid_t child = fork();
	if (child == 0) {
		if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
			_exit(2);
		int s = connect_path(sock);
		if (s < 0)
			_exit(3);
		_exit(answered(s) ? 1 : 0);
	}
	int st = 0;
	waitpid(child, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) == 1)
		return fail("a front end running as nobody was served");
	if (WEXITSTATUS(st) != 0)
		return fail("the nobody child could not connect at all (set-up)");
	if (!log_has("refused a front end from uid"))
		return fail("no log line about the refused front end");
	int s = vuf_connect(sock, err, sizeof(err));
	if (s < 0 || front_start(&fe, s) != 0 || front_write_read(&fe) != 0)
		return fail("the expected front end was not served after a refusal");
	front_stop(&fe);
	if (wait_exit(card) != 0)
		return fail("the card did not end with its front end");
	cleanup();
	printf("PASS: nobody refused, root served\n");
	return 0;
}

static int protocol_error(void)
{
	if (old_store() != 0)
		return fail("set-up");
	pid_t card = start_local("--socket", sock, -1, NULL, NULL);
	if (wait_socket(sock, card) != 0)
		return fail("the card did not listen");
	int s = connect_path(sock);
	if (s < 0 || !answered(s))
		return fail("the front end was not served");
	struct vhost_user_hdr h = { 77, 1, 0 }; /* no such request */
	if (write(s, &h, sizeof(h)) != (ssize_t)sizeof(h))
		return fail("write");
	int rc = wait_exit(card);
	close(s);
	if (rc != 0)
		return fail(rc < 0 ? "the card still runs after a protocol error"
				   : "the card failed after a protocol error");
	if (!log_has("protocol error") || !log_has("key destroyed"))
		return fail("the log does not show the end of the volume's life");
	cleanup();
	printf("PASS: a protocol error ends the card, key destroyed\n");
	return 0;
}

/* flint-nbd-server on a store, then card-ebs for it on --socket; its pid. */
static pid_t start_ebs(const char *device)
{
	char nbd_log[160], endpoint[160];
	uint8_t k[64];
	snprintf(nbd_log, sizeof(nbd_log), "%s/nbd.log", dir);
	for (int i = 0; i < 64; i++)
		k[i] = (uint8_t)(i * 7 + 1);
	int kfd = open(key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (kfd < 0 || write(kfd, k, sizeof(k)) != (ssize_t)sizeof(k))
		return -1;
	close(kfd);
	char *nbd_argv[] = { (char *)nbd_server, "--file", store, "--size", "8388608", "--create",
			     "--listen-unix", nbd_sock, NULL };
	pid_t server = spawn(nbd_argv, nbd_log, -1);
	if (wait_socket(nbd_sock, server) != 0)
		return -1;
	kfd = open(key, O_RDONLY | O_CLOEXEC);
	snprintf(endpoint, sizeof(endpoint), "unix:%s", nbd_sock);
	char *argv[] = { (char *)card_ebs, "--socket", sock, "--nbd", endpoint, "--key-fd", "3",
			 "--queues", "2", "--instance", "i-42", "--device", (char *)device, NULL };
	pid_t card = spawn(argv, card_log, kfd);
	close(kfd);
	return wait_socket(sock, card) == 0 ? card : -1;
}

static int ebs_disconnect(void)
{
	struct front fe;
	char err[256];
	pid_t card = start_ebs("vdc");
	if (card < 0)
		return fail("card-ebs or flint-nbd-server did not start");
	int s = vuf_connect(sock, err, sizeof(err));
	if (s < 0 || front_start(&fe, s) != 0 || front_write_read(&fe) != 0)
		return fail("card-ebs did not serve its front end");
	front_stop(&fe);
	int rc = wait_exit(card);
	if (rc != 0)
		return fail(rc < 0 ? "card-ebs still runs after its front end left"
				   : "card-ebs failed after its front end left");
	if (!log_has("flint-card-ebs[i-42/vdc]: volume detached, key wiped"))
		return fail("no 'key wiped' line naming the instance in the log");
	cleanup();
	printf("PASS: card-ebs ends with its front end: flushed, key wiped\n");
	return 0;
}

/* Detach (SIGTERM) while the front end is connected: as before. */
static int ebs_sigterm(void)
{
	struct front fe;
	char err[256];
	pid_t card = start_ebs("vdd");
	if (card < 0)
		return fail("card-ebs or flint-nbd-server did not start");
	int s = vuf_connect(sock, err, sizeof(err));
	if (s < 0 || front_start(&fe, s) != 0 || front_write_read(&fe) != 0)
		return fail("card-ebs did not serve its front end");
	kill(card, SIGTERM);
	if (wait_exit(card) != 0)
		return fail("SIGTERM did not end a serving card-ebs cleanly");
	if (!log_has("signal 15: stopping") ||
	    !log_has("flint-card-ebs[i-42/vdd]: volume detached, key wiped"))
		return fail("the log does not show the detach");
	front_stop(&fe);
	cleanup();
	printf("PASS: SIGTERM detaches a serving card-ebs, key wiped\n");
	return 0;
}

static int sigterm_waiting(void)
{
	struct stat st;
	pid_t card = start_local("--socket", sock, -1, NULL, NULL);
	if (wait_socket(sock, card) != 0)
		return fail("the card did not listen");
	kill(card, SIGTERM);
	if (wait_exit(card) != 0)
		return fail("SIGTERM while waiting did not end the card cleanly");
	if (!log_has("key destroyed"))
		return fail("no 'key destroyed' in the log");
	if (stat(sock, &st) == 0)
		return fail("the socket path was left behind");
	cleanup();
	printf("PASS: SIGTERM while waiting: clean exit, path removed\n");
	return 0;
}

/* The card refuses channel fd (exit status != 0) and says why. */
static int refuses_channel(int fd, const char *why)
{
	pid_t card = start_local("--fd", "3", fd, NULL, NULL);
	close(fd);
	int rc = wait_exit(card);
	if (rc <= 0 || !log_has(why)) {
		fprintf(stderr, "wanted a refusal: %s\n", why);
		return -1;
	}
	return 0;
}

static int bad_fd(void)
{
	int p[2], dg[2];
	char path[64];
	if (pipe2(p, O_CLOEXEC) != 0 || refuses_channel(p[0], "not a socket") != 0)
		return fail("a pipe as the channel");
	close(p[1]);
	snprintf(path, sizeof(path), "%s/listening", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 1) != 0 ||
	    refuses_channel(l, "not a connected socket") != 0)
		return fail("a listening socket as the channel");
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg) != 0 ||
	    refuses_channel(dg[1], "not a unix stream socket") != 0)
		return fail("a datagram socket as the channel");
	close(dg[0]);
	cleanup();
	printf("PASS: a pipe, a listening socket and a datagram socket are refused\n");
	return 0;
}

static const struct {
	const char *name;
	int (*run)(void);
} scenarios[] = {
	{ "fd-session", fd_session },       { "second-front-end", second_front_end },
	{ "peer-uid", peer_uid },           { "nobody", nobody },
	{ "protocol-error", protocol_error }, { "ebs-disconnect", ebs_disconnect },
	{ "sigterm-waiting", sigterm_waiting }, { "bad-fd", bad_fd },
	{ "ebs-sigterm", ebs_sigterm },
};

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s SCENARIO CARD_LOCAL CARD_EBS NBD_SERVER\n", argv[0]);
		return 2;
	}
	const char *sanitized = getenv("FLINT_CARDS_SANITIZED");
	if (sanitized != NULL && strcmp(sanitized, "1") == 0) {
		fprintf(stderr, "SKIP: *** the card binaries are built with a sanitizer, whose "
			"runtime the card's seccomp jail kills (sigaltstack): run this test "
			"on a plain build ***\n");
		return 77;
	}
	card_local = argv[2];
	card_ebs = argv[3];
	nbd_server = argv[4];
	log_init("test-card-instance", LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL)
		return fail("mkdtemp");
	snprintf(store, sizeof(store), "%s/store.img", dir);
	snprintf(sock, sizeof(sock), "%s/card.sock", dir);
	snprintf(card_log, sizeof(card_log), "%s/card.log", dir);
	snprintf(nbd_sock, sizeof(nbd_sock), "%s/nbd.sock", dir);
	snprintf(key, sizeof(key), "%s/key", dir);
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (strcmp(argv[1], scenarios[i].name) == 0)
			return scenarios[i].run();
	fprintf(stderr, "unknown scenario %s\n", argv[1]);
	cleanup();
	return 2;
}
