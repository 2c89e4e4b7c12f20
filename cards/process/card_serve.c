#include "card_serve.h"

#include <errno.h>
#include <fcntl.h>
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
#include "channel_fd.h"
#include "log.h"

/* A local process connecting in a loop must not flood the log. */
#define REFUSALS_LOGGED 8

struct serve_state {
	pthread_mutex_t lock;
	int listen_fd; /* -1 unless waiting for the front end on --socket */
	int conn_fd;   /* -1 unless serving the front end */
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
	/* Wake accept(), or end the connection: vub_serve sees EOF. */
	if (s->listen_fd >= 0)
		shutdown(s->listen_fd, SHUT_RDWR);
	if (s->conn_fd >= 0)
		shutdown(s->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	log_info("signal %d: stopping", sig);
	return NULL;
}

/*
 * Blocks SIGTERM and SIGINT in every thread started from here on and hands
 * them to a watcher thread.  The watcher is never joined: once the front end
 * is gone the process ends, and a late signal it consumes does no harm.
 */
static int start_stop_watcher(struct serve_state *s)
{
	pthread_t watcher;

	pthread_mutex_init(&s->lock, NULL);
	s->listen_fd = s->conn_fd = -1;
	s->stopping = false;
	sigemptyset(&s->stop_signals);
	sigaddset(&s->stop_signals, SIGTERM);
	sigaddset(&s->stop_signals, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &s->stop_signals, NULL) != 0 ||
	    pthread_create(&watcher, NULL, stop_watcher, s) != 0)
		return -1;
	pthread_detach(watcher);
	return 0;
}

static bool stopping(struct serve_state *s)
{
	pthread_mutex_lock(&s->lock);
	bool st = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return st;
}

/* SO_PEERCRED: the uid the peer had when it connected (kernel-checked). */
static bool peer_expected(int conn, uid_t want, unsigned int *refused)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		log_errno("front end refused: no peer credentials");
		return false;
	}
	if (cr.uid == want) {
		log_info("front end connected (pid %d, uid %u)", (int)cr.pid, (unsigned)cr.uid);
		return true;
	}
	if (++*refused <= REFUSALS_LOGGED)
		log_warn("refused a front end from uid %u (pid %d): expecting uid %u%s",
			 (unsigned)cr.uid, (int)cr.pid, (unsigned)want,
			 *refused == REFUSALS_LOGGED ? "; further refusals are not logged" : "");
	return false;
}

/* Removes path if it is still the socket this card bound there. */
static void remove_socket_path(const char *path, const struct stat *bound)
{
	struct stat now;
	if (lstat(path, &now) == 0 && now.st_dev == bound->st_dev && now.st_ino == bound->st_ino)
		unlink(path);
}

/*
 * Waits on path for the one front end with uid want; others are refused and
 * the wait goes on.  The path is removed and the listening socket closed
 * before returning.  The connection, or -1 (*stopped: a stop signal came).
 */
static int accept_front_end(struct serve_state *s, const char *path, uid_t want, bool *stopped)
{
	char err[256];
	struct stat bound;
	unsigned int refused = 0;
	int conn = -1;

	int lfd = card_listen_unix(path, err, sizeof(err));
	if (lfd < 0) {
		log_err("%s", err);
		return -1;
	}
	if (lstat(path, &bound) != 0) {
		log_errno("--socket %s", path);
		close(lfd);
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	s->listen_fd = lfd;
	pthread_mutex_unlock(&s->lock);
	log_info("waiting on %s for the front end (uid %u)", path, (unsigned)want);
	while (conn < 0 && !stopping(s)) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || stopping(s))
				continue;
			log_errno("accept on %s", path);
			break;
		}
		if (peer_expected(c, want, &refused))
			conn = c;
		else
			close(c);
	}
	pthread_mutex_lock(&s->lock);
	s->listen_fd = -1;
	*stopped = s->stopping;
	pthread_mutex_unlock(&s->lock);
	/* Connections queued behind the front end see their end now. */
	close(lfd);
	remove_socket_path(path, &bound);
	if (conn >= 0 && *stopped) {
		close(conn);
		conn = -1;
	}
	return conn;
}

static int inherited_front_end(int fd)
{
	char err[256], what[16];
	snprintf(what, sizeof(what), "--fd %d", fd);
	if (channel_fd_check(fd, what, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return -1;
	}
	log_info("front end on fd %d", fd);
	return fd;
}

/* Serves conn until the front end goes away or a stop signal; closes it. */
static int serve_front_end(struct serve_state *s, int conn, struct blk_backend *vol,
			   const struct vub_options *opts)
{
	pthread_mutex_lock(&s->lock);
	bool stop = s->stopping;
	if (!stop)
		s->conn_fd = conn;
	pthread_mutex_unlock(&s->lock);
	int r = stop ? 0 : vub_serve(conn, vol, opts);
	pthread_mutex_lock(&s->lock);
	s->conn_fd = -1;
	stop = s->stopping;
	pthread_mutex_unlock(&s->lock);
	close(conn);
	if (stop)
		return 0;
	if (r == 0 || r == -EPROTO) {
		log_info("front end gone (%s): ending the volume's life",
			 r == 0 ? "disconnected" : "protocol error");
		return 0;
	}
	log_err("serving the front end failed: %s; ending the volume's life", strerror(-r));
	return -1;
}

int card_run(struct blk_backend *vol, const struct card_common_config *card,
	     const struct vub_options *opts, const char *what, enum card_profile jail)
{
	static struct serve_state s; /* the watcher outlives this call */
	bool stopped = false;

	if (start_stop_watcher(&s) != 0) {
		log_err("cannot start the signal watcher");
		return -1;
	}
	log_info("%llu MiB %s", (unsigned long long)(vol->size_bytes >> 20), what);
	int conn = card->socket_path != NULL
		? accept_front_end(&s, card->socket_path, card->peer_uid, &stopped)
		: inherited_front_end(card->channel_fd);
	if (conn < 0)
		return stopped ? 0 : -1;
	/* Nothing the front end sent has been read yet. */
	if (card_sandbox_enter(jail) != 0) {
		log_err("cannot enter the seccomp jail");
		close(conn);
		return -1;
	}
	return serve_front_end(&s, conn, vol, opts);
}
