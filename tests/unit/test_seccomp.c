/*
 * The seccomp allowlists: an allowed call works under the filter, and a
 * forbidden one (open, socket, execve) kills the process with SIGSYS.
 * Each case runs in a forked child so the test runner itself stays free.
 */
#include <fcntl.h>
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

enum action { DO_WRITE, DO_OPEN, DO_SOCKET, DO_EXECVE, DO_WRITE_OTHER_FD, DO_MMAP };

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
	expect_ok(run_child(hv_seccomp_install_vcpu, DO_WRITE));
	expect_killed(run_child(hv_seccomp_install_vcpu, DO_OPEN));
	expect_killed(run_child(hv_seccomp_install_vcpu, DO_SOCKET));
	expect_killed(run_child(hv_seccomp_install_vcpu, DO_EXECVE));
	expect_killed(run_child(hv_seccomp_install_vcpu, DO_WRITE_OTHER_FD));
	expect_killed(run_child(hv_seccomp_install_vcpu, DO_MMAP));
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
	struct hv_seccomp_counts v = hv_seccomp_vcpu_counts();
	struct hv_seccomp_counts m = hv_seccomp_main_counts();
	/* The vCPU list is the tiny one; both stay far below Firecracker's 24. */
	assert_true(v.syscalls <= m.syscalls);
	assert_true(m.syscalls < 24);
	assert_int_equal(v.ioctls, 5);
	print_message("seccomp: vCPU threads %u syscalls + %u ioctls, main %u + %u\n",
		      v.syscalls, v.ioctls, m.syscalls, m.ioctls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_filter),
		cmocka_unit_test(test_main_filter),
		cmocka_unit_test(test_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
