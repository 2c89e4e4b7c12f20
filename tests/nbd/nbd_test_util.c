#include "nbd_test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#ifdef __NR_cachestat
#define CACHESTAT_NR __NR_cachestat
#else
#define CACHESTAT_NR 451 /* the same on every architecture */
#endif

static char tmpdir[64];

const char *tmpdir_make(void)
{
	strcpy(tmpdir, "/tmp/flint-nbd-test-XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
	return tmpdir;
}

void tmpdir_cleanup(void)
{
	if (tmpdir[0] == '\0')
		return;
	DIR *d = opendir(tmpdir);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			char p[512];
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
}

/*
 * Children still running.  A failed CHECK exits at once; without this the
 * servers it started would outlive it and keep the test's output open, so
 * the runner would wait for them until its own timeout.
 */
#define MAX_CHILDREN 16
static pid_t children[MAX_CHILDREN];
static pid_t children_parent; /* a forked copy of the test leaves them alone */
static pthread_mutex_t children_lock = PTHREAD_MUTEX_INITIALIZER;

static void kill_children(void)
{
	if (getpid() != children_parent)
		return;
	pthread_mutex_lock(&children_lock);
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
	pthread_mutex_unlock(&children_lock);
}

static void children_track(pid_t pid, pid_t untrack)
{
	static int registered;
	pthread_mutex_lock(&children_lock);
	if (!registered) {
		children_parent = getpid();
		registered = atexit(kill_children) == 0;
	}
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] == untrack) {
			children[i] = pid;
			break;
		}
	}
	pthread_mutex_unlock(&children_lock);
}

pid_t spawn(char *const argv[])
{
	return spawn_logged(argv, NULL);
}

pid_t spawn_logged(char *const argv[], const char *log_path)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (log_path != NULL) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
			if (fd < 0 || dup2(fd, 2) < 0)
				_exit(127);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	children_track(pid, 0);
	return pid;
}

int wait_unix_socket(const char *path, unsigned timeout_ms)
{
	uint64_t end = mono_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	while (mono_ms() < end) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		usleep(20000);
	}
	return -1;
}

void kill_wait(pid_t pid, int sig)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	children_track(0, pid);
}

static void on_alarm(int sig)
{
	static const char msg[] = "HARD TIME LIMIT: test hung\n";
	(void)sig;
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

void hard_limit(unsigned seconds)
{
	signal(SIGALRM, on_alarm);
	alarm(seconds);
}

uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint8_t pat(uint64_t pos, uint32_t seed)
{
	uint64_t x = (pos + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)seed << 32 | seed);
	x ^= x >> 29;
	return (uint8_t)(x ^ (x >> 11));
}

void fill_pattern(void *buf, size_t len, uint64_t off, uint32_t seed)
{
	uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		p[i] = pat(off + i, seed);
}

int check_pattern(const void *buf, size_t len, uint64_t off, uint32_t seed)
{
	const uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		if (p[i] != pat(off + i, seed))
			return -1;
	return 0;
}

int have_program(const char *name)
{
	const char *path = getenv("PATH");
	char buf[1024];
	if (path == NULL)
		path = "/usr/bin:/bin:/usr/sbin:/sbin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
		if (access(buf, X_OK) == 0)
			return 0;
		path += n;
		if (*path == ':')
			path++;
	}
	return -1;
}

void copy_file_to_stderr(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		(void)!write(2, buf, (size_t)n);
	close(fd);
}

int file_unsynced_pages(const char *path, uint64_t off, uint64_t len, uint64_t *pages)
{
	/* struct cachestat_range / struct cachestat (linux/mman.h, 6.5+), for older headers. */
	struct { uint64_t off, len; } range = { off, len };
	struct { uint64_t cache, dirty, writeback, evicted, recently_evicted; } cs;
	struct statfs sfs;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	/* tmpfs pages stay dirty after fdatasync: there is nothing to see there. */
	int r = fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC ? -EOPNOTSUPP : 0;
	if (r == 0 && syscall(CACHESTAT_NR, fd, &range, &cs, 0) != 0)
		r = -errno;
	close(fd);
	if (r == 0)
		*pages = cs.dirty + cs.writeback;
	return r;
}
