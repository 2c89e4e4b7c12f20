#include "storage_connect.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t storage_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int storage_wait_fd(int fd, short events, int cancel_fd, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = storage_now_ms();
		if (now >= deadline_ms)
			return -ETIMEDOUT;
		uint64_t left = deadline_ms - now;
		struct pollfd p[2] = {
			{ .fd = fd, .events = events },
			{ .fd = cancel_fd, .events = POLLIN },
		};
		int r = poll(p, cancel_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (cancel_fd >= 0 && p[1].revents)
			return -ECANCELED;
		if (r > 0)
			return p[0].revents;
	}
}

/* A non-blocking connect that is still under way: its outcome, by the deadline. */
static int finish_connect(int fd, int cancel_fd, uint64_t deadline_ms)
{
	int r = storage_wait_fd(fd, POLLOUT, cancel_fd, deadline_ms);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (r >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
		r = -errno;
	if (r >= 0 && soerr != 0)
		r = -soerr;
	return r < 0 ? r : 0;
}

int storage_connect(const struct endpoint *ep, int cancel_fd, uint64_t deadline_ms)
{
	int fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, (const struct sockaddr *)&ep->addr, ep->addrlen) != 0)
		r = errno == EINPROGRESS ? finish_connect(fd, cancel_fd, deadline_ms) : -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	if (ep->addr.ss_family != AF_UNIX) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}
