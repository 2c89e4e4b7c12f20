#include "card_serve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "card_sandbox.h"
#include "log.h"

struct serve_state {
	pthread_mutex_t lock;
	int listen_fd;
	int conn_fd; /* -1 between connections */
	bool stopping;
	sigset_t stop_signals;
};

int card_listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "--socket %s: path too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* A socket left by an earlier card may go; any other file may not. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "--socket %s: exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1) != 0) {
		snprintf(err, errlen, "--socket %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void *stop_watcher(void *arg)
{
	struct serve_state *s = arg;
	int sig = 0;

	while (sigwait(&s->stop_signals, &sig) != 0)
		;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	/* Wake accept() and end the current connection: vub_serve sees EOF. */
	shutdown(s->listen_fd, SHUT_RDWR);
	if (s->conn_fd >= 0)
		shutdown(s->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	log_info("signal %d: stopping", sig);
	return NULL;
}

static bool stopping(struct serve_state *s)
{
	pthread_mutex_lock(&s->lock);
	bool st = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return st;
}

int card_serve_until_signal(int listen_fd, struct blk_backend *vol,
			    const struct vub_options *opts)
{
	static struct serve_state s;
	pthread_t watcher;

	pthread_mutex_init(&s.lock, NULL);
	s.listen_fd = listen_fd;
	s.conn_fd = -1;
	s.stopping = false;
	sigemptyset(&s.stop_signals);
	sigaddset(&s.stop_signals, SIGTERM);
	sigaddset(&s.stop_signals, SIGINT);
	/* Every thread started from here on inherits the blocked set. */
	if (pthread_sigmask(SIG_BLOCK, &s.stop_signals, NULL) != 0 ||
	    pthread_create(&watcher, NULL, stop_watcher, &s) != 0)
		return -1;

	while (!stopping(&s)) {
		int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (stopping(&s))
				break;
			log_errno("accept");
			return -1;
		}
		pthread_mutex_lock(&s.lock);
		bool stop = s.stopping;
		if (!stop)
			s.conn_fd = conn;
		pthread_mutex_unlock(&s.lock);
		if (!stop) {
			log_info("front end connected");
			int r = vub_serve(conn, vol, opts);
			log_info("front end gone (%s)", r == 0 ? "disconnected" : strerror(-r));
		}
		pthread_mutex_lock(&s.lock);
		s.conn_fd = -1;
		close(conn);
		pthread_mutex_unlock(&s.lock);
	}
	pthread_join(watcher, NULL);
	return 0;
}

int card_run(struct blk_backend *vol, const char *socket_path, const struct vub_options *opts,
	     const char *what)
{
	char err[256];
	int lfd = card_listen_unix(socket_path, err, sizeof(err));

	if (lfd < 0) {
		log_err("%s", err);
		return -1;
	}
	if (card_sandbox_enter() != 0) {
		log_err("cannot enter the seccomp jail");
		close(lfd);
		return -1;
	}
	log_info("serving %llu MiB %s on %s", (unsigned long long)(vol->size_bytes >> 20), what,
		 socket_path);
	int rc = card_serve_until_signal(lfd, vol, opts);
	close(lfd);
	return rc == 0 ? 0 : -1;
}
