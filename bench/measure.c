/*
 * flint-measure: runs one VMM command and reports, on its last stdout line,
 *   marker_ms=<time from spawn to the first output line containing MARKER>
 *   overhead_kib=<peak RssAnon+RssFile once the marker was seen: the VMM's own
 *                steady-state memory, guest RAM excluded>
 *   startup_kib=<the same over the whole run, including start-up buffers such
 *                as the kernel image being loaded>
 *   rss_kib=<peak resident set, guest RAM included> status=<exit status>
 * Guest RAM must be a shared mapping (memfd) for the split to be fair: both
 * flint-hv and QEMU (memory-backend-memfd) are run that way by the scripts.
 * usage: flint-measure MARKER TIMEOUT_S OUTFILE -- COMMAND [ARGS...]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SAMPLE_MS 2

struct peaks {
	long overhead_kib; /* after the marker */
	long startup_kib;  /* whole run */
	long rss_kib;
};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static long field_kib(const char *status, const char *name)
{
	const char *p = strstr(status, name);
	return p == NULL ? 0 : strtol(p + strlen(name), NULL, 10);
}

static void sample(pid_t pid, struct peaks *pk, int after_marker)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	long own = field_kib(buf, "RssAnon:") + field_kib(buf, "RssFile:");
	long rss = field_kib(buf, "VmHWM:");
	if (own > pk->startup_kib)
		pk->startup_kib = own;
	if (after_marker && own > pk->overhead_kib)
		pk->overhead_kib = own;
	if (rss > pk->rss_kib)
		pk->rss_kib = rss;
}

/* Scans new output for the marker; keeps a partial line across reads. */
static int scan(const char *marker, char *line, size_t *len, const char *buf, size_t n)
{
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || *len == 1023) {
			line[*len] = '\0';
			if (strstr(line, marker) != NULL)
				found = 1;
			*len = 0;
			continue;
		}
		line[(*len)++] = buf[i];
	}
	line[*len] = '\0';
	return found || strstr(line, marker) != NULL;
}

int main(int argc, char **argv)
{
	if (argc < 6 || strcmp(argv[4], "--") != 0) {
		fprintf(stderr, "usage: %s MARKER TIMEOUT_S OUTFILE -- COMMAND [ARGS...]\n", argv[0]);
		return 2;
	}
	const char *marker = argv[1];
	double limit_ms = atof(argv[2]) * 1e3;
	FILE *out = fopen(argv[3], "w");
	int pipefd[2];
	if (out == NULL || pipe(pipefd) != 0) {
		perror("flint-measure");
		return 2;
	}
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, STDIN_FILENO);
		execvp(argv[5], argv + 5);
		_exit(127);
	}
	close(pipefd[1]);
	struct peaks pk = { 0, 0, 0 };
	double marker_ms = -1;
	char line[1024], buf[4096];
	size_t len = 0;
	int status = -1;
	struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
	int killed = 0;
	for (;;) {
		sample(pid, &pk, marker_ms >= 0);
		if (!killed && now_ms() - t0 > limit_ms) {
			killed = 1;
			kill(pid, SIGKILL);
			fprintf(stderr, "flint-measure: timeout after %s s\n", argv[2]);
		}
		int r = poll(&pfd, 1, SAMPLE_MS);
		if (r > 0) {
			ssize_t n = read(pipefd[0], buf, sizeof(buf));
			if (n > 0) {
				fwrite(buf, 1, (size_t)n, out);
				if (marker_ms < 0 && scan(marker, line, &len, buf, (size_t)n)) {
					marker_ms = now_ms() - t0;
					sample(pid, &pk, 1);
				}
				continue;
			}
			pfd.fd = -1; /* EOF: wait for the process */
		}
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
	}
	fclose(out);
	printf("marker_ms=%.1f overhead_kib=%ld startup_kib=%ld rss_kib=%ld status=%d\n",
	       marker_ms, pk.overhead_kib, pk.startup_kib, pk.rss_kib, status);
	return marker_ms < 0 ? 1 : 0;
}
