/*
 * The card jails, one profile per card: what each card needs still works
 * (threads - clone3 refused with ENOSYS so glibc falls back to a
 * thread-only clone -, read-write mappings, its own I/O), opening a file
 * fails with EACCES, and everything else kills the process with SIGSYS:
 * exec, ptrace, mount, any new socket or connect, a signal to another
 * process, executable memory, a new process or namespace, and the other
 * card's I/O calls.  Each case runs in a forked child that enters the jail.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "card_sandbox.h"

#include "test_sanitized.h"

enum probe {
	/* allowed */
	P_THREADS, P_MMAP_RW, P_OPEN_EACCES, P_CLONE3_ENOSYS, P_SIGNAL_SELF, P_VHOST_IO,
	P_EVENTFD, P_ACCEPT, P_STORE_IO, P_STREAM_IO,
	/* forbidden */
	P_EXEC, P_PTRACE, P_MOUNT, P_SOCKET_INET_RAW, P_SOCKET_INET_DGRAM, P_SOCKET_INET_STREAM,
	P_SOCKET_UNIX, P_SOCKET_INET6, P_SOCKET_PACKET, P_CONNECT, P_TGKILL_PARENT, P_KILL_PARENT,
	P_MMAP_EXEC, P_MPROTECT_EXEC, P_FORK, P_CLONE_FORK, P_CLONE_NEWNS, P_UNSHARE,
	P_SETSOCKOPT, P_FCNTL_SETOWN,
};

static const char *const probe_names[] = {
	"threads", "mmap-rw", "open-eacces", "clone3-enosys", "signal-self", "vhost-io",
	"eventfd", "accept", "store-io", "stream-io",
	"exec", "ptrace", "mount", "socket-inet-raw", "socket-inet-dgram", "socket-inet-stream",
	"socket-unix", "socket-inet6", "socket-packet", "connect", "tgkill-parent", "kill-parent",
	"mmap-exec", "mprotect-exec", "fork", "clone-fork", "clone-newns", "unshare",
	"setsockopt", "fcntl-setown",
};

/* Descriptors a card has from before its jail: made in the child, then jailed. */
struct prejail {
	int sock;      /* an unconnected unix stream socket */
	int pair[2];   /* a connected pair: vhost-user / NBD stand-in */
	int store;     /* a memfd: the local store stand-in */
	pid_t parent;  /* another process (getppid is not in the jail) */
};

static int thread_tag[8];

static void *thread_main(void *arg)
{
	/* A new thread's first malloc may create an arena: mmap + mprotect RW. */
	void *p = malloc(64 << 10);
	free(p);
	return arg;
}

static int probe_threads(void)
{
#ifdef SANITIZED
	return 0; /* skipped: see check_profile */
#endif
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		if (pthread_create(&t[i], NULL, thread_main, &thread_tag[i]) != 0)
			return 1;
	for (int i = 0; i < 8; i++) {
		void *ret = NULL;
		if (pthread_join(t[i], &ret) != 0 || ret != &thread_tag[i])
			return 1;
	}
	return 0;
}

static int probe_mmap_rw(void)
{
	uint8_t *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	p[0] = 1;
	int rc = mprotect(p, 4096, PROT_READ) == 0 && mprotect(p, 4096, PROT_NONE) == 0 ? 0 : 1;
	return munmap(p, 1 << 20) == 0 ? rc : 1;
}

/* The raw system call with fork's arguments: it must fail with ENOSYS. */
static int probe_clone3(void)
{
	struct clone_args ca = { .exit_signal = SIGCHLD };
	long r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0)
		syscall(SYS_exit_group, 0); /* a new process: it must not exist */
	return r == -1 && errno == ENOSYS ? 0 : 3;
}

static int probe_stream_io(const struct prejail *pj)
{
	char c = 'x';
	return write(pj->pair[0], &c, 1) == 1 && recv(pj->pair[1], &c, 1, 0) == 1 ? 0 : 1;
}

static int probe_vhost_io(const struct prejail *pj)
{
	char c = 'x';
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	return sendmsg(pj->pair[0], &mh, MSG_NOSIGNAL) == 1 && recvmsg(pj->pair[1], &mh, 0) == 1 ? 0 : 1;
}

static int probe_store_io(const struct prejail *pj)
{
	char buf[512] = { 1 };
	return pwrite(pj->store, buf, sizeof(buf), 4096) == (ssize_t)sizeof(buf) &&
	       pread(pj->store, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
	       fdatasync(pj->store) == 0 ? 0 : 1;
}

static int probe_connect(const struct prejail *pj)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/nonexistent/flint-test" };
	(void)connect(pj->sock, (struct sockaddr *)&sa, sizeof(sa));
	return 0;
}

static int probe_exec(void)
{
	char *argv[] = { (char *)"/bin/true", NULL };
	execve("/bin/true", argv, NULL);
	return 0;
}

/* A second process, however it is asked for: the child must not run on. */
static int probe_new_process(enum probe what)
{
	long r;
	if (what == P_FORK)
		r = fork();
	else if (what == P_CLONE_FORK)
		r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	else
		r = syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
	if (r == 0)
		syscall(SYS_exit_group, 0);
	return 0;
}

static int probe_exec_memory(enum probe what)
{
	int prot = what == P_MMAP_EXEC ? PROT_READ | PROT_EXEC : PROT_READ | PROT_WRITE;
	void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (what == P_MPROTECT_EXEC && p != MAP_FAILED)
		(void)mprotect(p, 4096, PROT_READ | PROT_EXEC);
	return 0;
}

static int run_probe(enum probe what, const struct prejail *pj)
{
	int one = 1;
	switch (what) {
	case P_THREADS: return probe_threads();
	case P_MMAP_RW: return probe_mmap_rw();
	case P_OPEN_EACCES: return open("/etc/hostname", O_RDONLY) == -1 && errno == EACCES ? 0 : 1;
	case P_CLONE3_ENOSYS: return probe_clone3();
	case P_SIGNAL_SELF: return pthread_kill(pthread_self(), 0) == 0 ? 0 : 1;
	case P_VHOST_IO: return probe_vhost_io(pj);
	case P_EVENTFD: {
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		return efd >= 0 && eventfd_write(efd, 1) == 0 ? 0 : 1;
	}
	case P_ACCEPT: (void)accept4(pj->sock, NULL, NULL, SOCK_CLOEXEC); return 0;
	case P_STORE_IO: return probe_store_io(pj);
	case P_STREAM_IO: return probe_stream_io(pj);
	case P_EXEC: return probe_exec();
	case P_PTRACE: ptrace(PTRACE_TRACEME, 0, NULL, NULL); return 0;
	case P_MOUNT: mount("none", "/mnt", "tmpfs", 0, NULL); return 0;
	case P_SOCKET_INET_RAW: socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); return 0;
	case P_SOCKET_INET_DGRAM: socket(AF_INET, SOCK_DGRAM, 0); return 0;
	case P_SOCKET_INET_STREAM: socket(AF_INET, SOCK_STREAM, 0); return 0;
	case P_SOCKET_UNIX: socket(AF_UNIX, SOCK_STREAM, 0); return 0;
	case P_SOCKET_INET6: socket(AF_INET6, SOCK_STREAM, 0); return 0;
	case P_SOCKET_PACKET: socket(AF_PACKET, SOCK_RAW, 0); return 0;
	case P_CONNECT: return probe_connect(pj);
	/* Signal 0: only whether the call is let through matters. */
	case P_TGKILL_PARENT: syscall(SYS_tgkill, pj->parent, pj->parent, 0); return 0;
	case P_KILL_PARENT: kill(pj->parent, 0); return 0;
	case P_MMAP_EXEC:
	case P_MPROTECT_EXEC: return probe_exec_memory(what);
	case P_FORK:
	case P_CLONE_FORK:
	case P_CLONE_NEWNS: return probe_new_process(what);
	case P_UNSHARE: unshare(CLONE_NEWUSER); return 0;
	case P_SETSOCKOPT: setsockopt(pj->sock, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)); return 0;
	/* SIGIO to another process once the socket is readable. */
	case P_FCNTL_SETOWN: fcntl(pj->pair[1], F_SETOWN, pj->parent); return 0;
	}
	return 2;
}

static void prejail_open(struct prejail *pj)
{
	pj->parent = getppid();
	pj->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	pj->store = memfd_create("store", MFD_CLOEXEC);
	if (pj->sock < 0 || pj->store < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pj->pair) != 0 ||
	    ftruncate(pj->store, 1 << 20) != 0)
		syscall(SYS_exit_group, 101);
}

/* The child's wait status. */
static int run_child(enum card_profile profile, enum probe what)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct prejail pj;
		prejail_open(&pj);
		if (card_sandbox_enter(profile) != 0)
			syscall(SYS_exit_group, 100);
		syscall(SYS_exit_group, run_probe(what, &pj));
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

enum outcome { RUNS, DIES };

struct expectation {
	enum probe probe;
	enum outcome ebs, local;
};

static const struct expectation expectations[] = {
	{ P_THREADS, RUNS, RUNS },
	{ P_MMAP_RW, RUNS, RUNS },
	{ P_OPEN_EACCES, RUNS, RUNS },
	{ P_CLONE3_ENOSYS, RUNS, RUNS },
	{ P_SIGNAL_SELF, RUNS, RUNS },
	{ P_VHOST_IO, RUNS, RUNS },
	{ P_EVENTFD, RUNS, RUNS },
	{ P_ACCEPT, DIES, DIES }, /* the front end is accepted before the jail */
	{ P_STORE_IO, DIES, RUNS },
	{ P_STREAM_IO, RUNS, DIES },
	{ P_EXEC, DIES, DIES },
	{ P_PTRACE, DIES, DIES },
	{ P_MOUNT, DIES, DIES },
	{ P_SOCKET_INET_RAW, DIES, DIES },
	{ P_SOCKET_INET_DGRAM, DIES, DIES },
	{ P_SOCKET_INET_STREAM, DIES, DIES },
	{ P_SOCKET_UNIX, DIES, DIES },
	{ P_SOCKET_INET6, DIES, DIES },
	{ P_SOCKET_PACKET, DIES, DIES },
	{ P_CONNECT, DIES, DIES },
	{ P_TGKILL_PARENT, DIES, DIES },
	{ P_KILL_PARENT, DIES, DIES },
	{ P_MMAP_EXEC, DIES, DIES },
	{ P_MPROTECT_EXEC, DIES, DIES },
	{ P_FORK, DIES, DIES },
	{ P_CLONE_FORK, DIES, DIES },
	{ P_CLONE_NEWNS, DIES, DIES },
	{ P_UNSHARE, DIES, DIES },
	{ P_SETSOCKOPT, DIES, DIES },
	{ P_FCNTL_SETOWN, DIES, DIES },
};

static const char *describe(int st, char *buf, size_t len)
{
	if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "exited %d", WEXITSTATUS(st));
	return buf;
}

/* Runs every probe; reports each surprise, then fails if there was one. */
static void check_profile(enum card_profile profile, const char *name)
{
	unsigned int wrong = 0;
	for (size_t i = 0; i < sizeof(expectations) / sizeof(expectations[0]); i++) {
		const struct expectation *e = &expectations[i];
		enum outcome want = profile == CARD_PROFILE_EBS ? e->ebs : e->local;
		int st = run_child(profile, e->probe);
		int ok = want == RUNS ? WIFEXITED(st) && WEXITSTATUS(st) == 0
				      : WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS;
		if (!ok) {
			char buf[64];
			print_message("%s jail: %s should %s, but %s\n", name, probe_names[e->probe],
				      want == RUNS ? "work" : "die of SIGSYS", describe(st, buf, sizeof(buf)));
			wrong++;
		}
	}
	print_message("%s jail: %u system calls allowed\n", name, card_sandbox_syscall_count(profile));
#ifdef SANITIZED
	print_message("%s jail: NOT TESTED here: thread creation (sanitizer runtime)\n", name);
#endif
	assert_int_equal(wrong, 0);
}

static void test_ebs_profile(void **state)
{
	(void)state;
	check_profile(CARD_PROFILE_EBS, "card-ebs");
}

static void test_local_profile(void **state)
{
	(void)state;
	check_profile(CARD_PROFILE_LOCAL, "card-local");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ebs_profile),
		cmocka_unit_test(test_local_profile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
