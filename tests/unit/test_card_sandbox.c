/*
 * The card jail: what a card needs still works, opening a file fails with
 * EACCES, and exec, ptrace, mount or a raw socket kill the process.  Each
 * case runs in a forked child.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "card_sandbox.h"

enum action { DO_ALLOWED, DO_OPEN, DO_EXEC, DO_PTRACE, DO_MOUNT, DO_RAW_SOCKET, DO_INET6 };

static int run_child(enum action what)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (card_sandbox_enter() != 0)
			syscall(SYS_exit_group, 100);
		int rc = 0;
		switch (what) {
		case DO_ALLOWED: {
			int efd = eventfd(0, EFD_CLOEXEC);
			int s = socket(AF_UNIX, SOCK_STREAM, 0);
			rc = (efd >= 0 && s >= 0 && eventfd_write(efd, 1) == 0) ? 0 : 1;
			break;
		}
		case DO_OPEN:
			rc = (open("/etc/hostname", O_RDONLY) == -1 && errno == EACCES) ? 0 : 1;
			break;
		case DO_EXEC: {
			char *argv[] = { (char *)"/bin/true", NULL };
			execve("/bin/true", argv, NULL);
			break;
		}
		case DO_PTRACE:
			ptrace(PTRACE_TRACEME, 0, NULL, NULL);
			break;
		case DO_MOUNT:
			mount("none", "/mnt", "tmpfs", 0, NULL);
			break;
		case DO_RAW_SOCKET:
			socket(AF_PACKET, SOCK_RAW, 0);
			break;
		case DO_INET6:
			socket(AF_INET6, SOCK_STREAM, 0);
			break;
		}
		syscall(SYS_exit_group, rc);
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

static void test_allowed(void **state)
{
	(void)state;
	int st = run_child(DO_ALLOWED);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = run_child(DO_OPEN);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_forbidden(void **state)
{
	(void)state;
	expect_killed(run_child(DO_EXEC));
	expect_killed(run_child(DO_PTRACE));
	expect_killed(run_child(DO_MOUNT));
	expect_killed(run_child(DO_RAW_SOCKET));
	expect_killed(run_child(DO_INET6));
	print_message("card jail: %u syscalls allowed\n", card_sandbox_syscall_count());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_forbidden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
