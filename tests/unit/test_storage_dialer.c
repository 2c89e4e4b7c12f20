/*
 * card-ebs's storage dialer: a jailed card (no socket, no connect) gets
 * connections to its one storage endpoint from the helper; the helper keeps
 * no other descriptor, is confined to that endpoint's kind of socket, and
 * exits when the card's end closes; cancelled or late replies never leak a
 * descriptor into the next dial; a dead helper is an error, not a SIGPIPE.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "card_sandbox.h"
#include "storage_connect.h"
#include "storage_dialer.h"

struct fixture {
	char dir[64];
	char path[128];
	int listener;
	struct endpoint ep;
	struct storage_dialer d;
};

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/flint-dialer-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/nbd.sock", f->dir);
	f->listener = listen_at(f->path);
	char spec[160];
	snprintf(spec, sizeof(spec), "unix:%s", f->path);
	assert_int_equal(endpoint_parse(spec, &f->ep, err, sizeof(err)), 0);
	assert_int_equal(storage_dialer_start(&f->d, &f->ep, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pid_t helper = storage_dialer_stop(&f->d);
	if (helper > 0)
		(void)waitpid(helper, NULL, 0);
	close(f->listener);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static uint64_t in_ms(uint64_t ms)
{
	return storage_now_ms() + ms;
}

/* One byte from the card's socket arrives at the accepted end. */
static void check_linked(int card_fd, int server_fd)
{
	char c = 'p';
	assert_int_equal(write(card_fd, &c, 1), 1);
	c = 0;
	assert_int_equal(read(server_fd, &c, 1), 1);
	assert_int_equal(c, 'p');
}

static void test_dial_connects(void **state)
{
	struct fixture *f = *state;
	int fd = storage_dialer_dial(&f->d, -1, in_ms(5000));
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	int s = accept(f->listener, NULL, NULL);
	assert_true(s >= 0);
	check_linked(fd, s);
	close(fd);
	close(s);
}

/* The card's jail has no socket() or connect(): the dialer must do. */
static void test_dial_from_card_jail(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (card_sandbox_enter(CARD_PROFILE_EBS) != 0)
			syscall(SYS_exit_group, 100);
		int fd = storage_dialer_dial(&f->d, -1, in_ms(5000));
		char c = 'j';
		syscall(SYS_exit_group, fd >= 0 && write(fd, &c, 1) == 1 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	int s = accept(f->listener, NULL, NULL);
	char c = 0;
	assert_int_equal(read(s, &c, 1), 1);
	assert_int_equal(c, 'j');
	close(s);
}

static void test_refused_then_back(void **state)
{
	struct fixture *f = *state;
	close(f->listener);
	unlink(f->path);
	assert_int_equal(storage_dialer_dial(&f->d, -1, in_ms(5000)), -ENOENT);
	f->listener = listen_at(f->path);
	int fd = storage_dialer_dial(&f->d, -1, in_ms(5000));
	assert_true(fd >= 0);
	close(fd);
}

/*
 * A dial given up (cancelled, or past its deadline) still gets its reply
 * later: the next dial must close that descriptor, not return it.
 */
static void test_abandoned_replies_are_closed(void **state)
{
	struct fixture *f = *state;
	int cancel = eventfd(1, EFD_CLOEXEC);
	assert_true(cancel >= 0);
	assert_int_equal(storage_dialer_dial(&f->d, cancel, in_ms(5000)), -ECANCELED);
	assert_int_equal(storage_dialer_dial(&f->d, -1, storage_now_ms()), -ETIMEDOUT);
	int fd = storage_dialer_dial(&f->d, -1, in_ms(5000));
	assert_true(fd >= 0);
	/* Three connections, in order: the first two were dropped by the card. */
	char c;
	for (int i = 0; i < 2; i++) {
		int s = accept(f->listener, NULL, NULL);
		assert_true(s >= 0);
		assert_int_equal(read(s, &c, 1), 0);
		close(s);
	}
	int s = accept(f->listener, NULL, NULL);
	check_linked(fd, s);
	close(s);
	close(fd);
	close(cancel);
}

static unsigned int count_fds(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	assert_non_null(d);
	unsigned int n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Whatever the card held when it forked (a key fd...) the helper does not keep. */
static void test_helper_keeps_one_fd(void **state)
{
	struct fixture *f = *state;
	int fd = storage_dialer_dial(&f->d, -1, in_ms(5000));
	assert_true(fd >= 0);
	close(fd);
	/*
	 * A failed dial's reply comes after the helper closed the previous
	 * connection and its own failed socket: now it holds only its end of
	 * the pair (not the listener, or anything else this process had).
	 */
	unlink(f->path);
	assert_int_equal(storage_dialer_dial(&f->d, -1, in_ms(5000)), -ENOENT);
	assert_int_equal(count_fds(f->d.helper), 1);
}

static void test_helper_exits_with_card_end(void **state)
{
	struct fixture *f = *state;
	pid_t helper = storage_dialer_stop(&f->d);
	int status;
	assert_int_equal(waitpid(helper, &status, 0), helper);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	f->d.helper = -1;
	assert_int_equal(storage_dialer_dial(&f->d, -1, in_ms(5000)), -EPIPE);
}

static void test_dead_helper_is_an_error(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(kill(f->d.helper, SIGKILL), 0);
	assert_int_equal(waitpid(f->d.helper, NULL, 0), f->d.helper);
	f->d.helper = -1;
	int r = storage_dialer_dial(&f->d, -1, in_ms(5000));
	assert_true(r == -EPIPE || r == -ECONNRESET);
}

enum helper_probe { HP_ENDPOINT_SOCKET, HP_INET_SOCKET, HP_UNIX_DGRAM, HP_OPEN, HP_SETSOCKOPT };

static int run_in_helper_jail(const struct endpoint *ep, enum helper_probe what)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int one = 1;
		int pre = socket(AF_UNIX, SOCK_STREAM, 0);
		if (storage_dialer_enter_jail(ep) != 0)
			syscall(SYS_exit_group, 100);
		switch (what) {
		case HP_ENDPOINT_SOCKET:
			syscall(SYS_exit_group,
				socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) >= 0 ? 0 : 1);
			break;
		case HP_INET_SOCKET:
			socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			break;
		case HP_UNIX_DGRAM:
			socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			break;
		case HP_OPEN:
			open("/etc/hostname", O_RDONLY);
			break;
		case HP_SETSOCKOPT:
			setsockopt(pre, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
			break;
		}
		syscall(SYS_exit_group, 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_helper_jail(void **state)
{
	struct fixture *f = *state;
	int st = run_in_helper_jail(&f->ep, HP_ENDPOINT_SOCKET);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	const enum helper_probe forbidden[] = { HP_INET_SOCKET, HP_UNIX_DGRAM, HP_OPEN, HP_SETSOCKOPT };
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		st = run_in_helper_jail(&f->ep, forbidden[i]);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGSYS);
	}
	print_message("storage dialer jail: %u system calls allowed\n", storage_dialer_syscall_count());
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_dial_connects),
		T(test_dial_from_card_jail),
		T(test_refused_then_back),
		T(test_abandoned_replies_are_closed),
		T(test_helper_keeps_one_fd),
		T(test_helper_exits_with_card_end),
		T(test_dead_helper_is_an_error),
		T(test_helper_jail),
	};
	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: the dialer must not raise one */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
