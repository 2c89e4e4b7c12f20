/*
 * The seccomp allowlists: an allowed call works under the filter, and a
 * forbidden one (open, socket, execve) kills the process with SIGSYS.
 * Each case runs in a forked child so the test runner itself stays free.
 */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv_seccomp.h"

enum action {
	DO_WRITE, DO_OPEN, DO_SOCKET, DO_EXECVE, DO_WRITE_OTHER_FD, DO_MMAP,
	DO_SENDMSG, DO_SENDMSG_OTHER_FD, DO_RECVMSG, DO_POLL_ONE, DO_POLL_TWO,
	DO_SHUTDOWN, DO_SHUTDOWN_OTHER_FD,
};

/* A vhost-user socket stand-in: [0] is allowed, [1] is not. */
static int sv[2] = { -1, -1 };

static int install_vcpu(int console_fd)
{
	return hv_seccomp_install_vcpu(console_fd, NULL, 0);
}

static int install_vcpu_sock(int console_fd)
{
	return hv_seccomp_install_vcpu(console_fd, &sv[0], 1);
}

static void do_sendmsg(int fd)
{
	struct iovec iov = { (void *)"x", 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	(void)sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int run_child(int (*install)(int), enum action what)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (install(STDOUT_FILENO) != 0)
			_exit(100);
		switch (what) {
		case DO_WRITE:
			(void)!write(STDOUT_FILENO, "", 0);
			break;
		case DO_OPEN:
			(void)open("/etc/hostname", O_RDONLY);
			break;
		case DO_SOCKET:
			(void)socket(AF_INET, SOCK_STREAM, 0);
			break;
		case DO_EXECVE: {
			char *argv[] = { (char *)"/bin/true", NULL };
			execve("/bin/true", argv, NULL);
			break;
		}
		case DO_WRITE_OTHER_FD:
			(void)!write(devnull, "x", 1);
			break;
		case DO_MMAP:
			(void)syscall(SYS_mmap, 0, 4096, 3, 0x22, -1, 0);
			break;
		case DO_SENDMSG:
			do_sendmsg(sv[0]);
			break;
		case DO_SENDMSG_OTHER_FD:
			do_sendmsg(sv[1]);
			break;
		case DO_SHUTDOWN:
			(void)shutdown(sv[0], SHUT_RDWR);
			break;
		case DO_SHUTDOWN_OTHER_FD:
			(void)shutdown(sv[1], SHUT_RDWR);
			break;
		case DO_RECVMSG: {
			char b;
			struct iovec iov = { &b, 1 };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
			(void)recvmsg(sv[0], &mh, MSG_DONTWAIT);
			break;
		}
		case DO_POLL_ONE: {
			struct pollfd p = { .fd = sv[0], .events = POLLIN };
			(void)syscall(SYS_poll, &p, 1, 0);
			break;
		}
		case DO_POLL_TWO: {
			struct pollfd p[2] = { { .fd = sv[0], .events = POLLIN },
					       { .fd = sv[1], .events = POLLIN } };
			(void)syscall(SYS_poll, p, 2, 0);
			break;
		}
		}
		/* Raw exit_group: sanitizer runtimes hook _exit with extra syscalls. */
		syscall(SYS_exit_group, 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void expect_killed(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void expect_ok(int status)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_vcpu_filter(void **state)
{
	(void)state;
	expect_ok(run_child(install_vcpu, DO_WRITE));
	expect_killed(run_child(install_vcpu, DO_OPEN));
	expect_killed(run_child(install_vcpu, DO_SOCKET));
	expect_killed(run_child(install_vcpu, DO_EXECVE));
	expect_killed(run_child(install_vcpu, DO_WRITE_OTHER_FD));
	expect_killed(run_child(install_vcpu, DO_MMAP));
	/* Without back ends: no socket I/O and no poll at all. */
	expect_killed(run_child(install_vcpu, DO_SENDMSG));
	expect_killed(run_child(install_vcpu, DO_RECVMSG));
	expect_killed(run_child(install_vcpu, DO_POLL_ONE));
}

/* With one vhost-user socket: sendmsg/recvmsg/shutdown on it only, poll on one fd. */
static void test_vcpu_filter_vhost_user(void **state)
{
	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	expect_ok(run_child(install_vcpu_sock, DO_WRITE));
	expect_ok(run_child(install_vcpu_sock, DO_SENDMSG));
	expect_ok(run_child(install_vcpu_sock, DO_RECVMSG));
	expect_ok(run_child(install_vcpu_sock, DO_POLL_ONE));
	expect_ok(run_child(install_vcpu_sock, DO_SHUTDOWN));
	expect_killed(run_child(install_vcpu_sock, DO_SENDMSG_OTHER_FD));
	expect_killed(run_child(install_vcpu_sock, DO_SHUTDOWN_OTHER_FD));
	expect_killed(run_child(install_vcpu_sock, DO_POLL_TWO));
	expect_killed(run_child(install_vcpu_sock, DO_SOCKET));
	expect_killed(run_child(install_vcpu_sock, DO_OPEN));
	close(sv[0]);
	close(sv[1]);
}

static void test_main_filter(void **state)
{
	(void)state;
	expect_ok(run_child(hv_seccomp_install_main, DO_WRITE));
	expect_killed(run_child(hv_seccomp_install_main, DO_OPEN));
	expect_killed(run_child(hv_seccomp_install_main, DO_SOCKET));
	expect_killed(run_child(hv_seccomp_install_main, DO_EXECVE));
}

static void test_counts(void **state)
{
	(void)state;
	struct hv_seccomp_counts v = hv_seccomp_vcpu_counts(0);
	struct hv_seccomp_counts vs = hv_seccomp_vcpu_counts(2);
	struct hv_seccomp_counts m = hv_seccomp_main_counts();
	/* The vCPU list is the tiny one; both stay far below Firecracker's 24. */
	assert_true(v.syscalls <= m.syscalls);
	assert_true(m.syscalls < 24);
	assert_int_equal(v.ioctls, 5);
	assert_int_equal(v.syscalls, 8);
	/* Back ends add sendmsg, recvmsg, shutdown and poll, whatever their number. */
	assert_int_equal(vs.syscalls, v.syscalls + 4);
	assert_int_equal(vs.ioctls, v.ioctls);
	assert_int_equal(m.syscalls, 11);
	print_message("seccomp: vCPU threads %u syscalls + %u ioctls (%u with vhost-user), "
		      "main %u + %u\n", v.syscalls, v.ioctls, vs.syscalls, m.syscalls, m.ioctls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_filter),
		cmocka_unit_test(test_vcpu_filter_vhost_user),
		cmocka_unit_test(test_main_filter),
		cmocka_unit_test(test_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
