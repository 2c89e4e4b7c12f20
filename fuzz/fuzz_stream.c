#include "fuzz_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

union fd_ctl {
	char buf[CMSG_SPACE(FUZZ_CHUNK_MAX_FDS * sizeof(int))];
	struct cmsghdr align;
};

/* One sendmsg of what is left of c (fds only with its first byte). */
static ssize_t send_part(int sock, const struct fuzz_chunk *c, size_t done)
{
	union fd_ctl ctl;
	struct iovec iov = { .iov_base = (void *)(c->data + done), .iov_len = c->len - done };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (done == 0 && c->nfds > 0) {
		unsigned int nfds = c->nfds < FUZZ_CHUNK_MAX_FDS ? c->nfds : FUZZ_CHUNK_MAX_FDS;
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), c->fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Reads and drops what is there; false once the peer has closed. */
static bool drain(int sock)
{
	static char sink[65536];
	for (;;) {
		ssize_t r = recv(sock, sink, sizeof(sink), MSG_DONTWAIT);
		if (r > 0)
			continue;
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 && errno == EAGAIN;
	}
}

void fuzz_stream_exchange(int sock, const struct fuzz_chunk *chunks, size_t n)
{
	size_t i = 0, done = 0;
	bool sending = true;

	for (;;) {
		/* Empty chunks (and their fds) would send nothing: skip them. */
		while (sending && i < n && done == chunks[i].len) {
			i++;
			done = 0;
		}
		if (sending && i == n) {
			shutdown(sock, SHUT_WR);
			sending = false;
		}
		struct pollfd p = { .fd = sock, .events = POLLIN | (sending ? POLLOUT : 0) };
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !drain(sock))
			return;
		if (!sending || !(p.revents & POLLOUT))
			continue;
		ssize_t w = send_part(sock, &chunks[i], done);
		if (w > 0) {
			done += (size_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			/* The peer has gone (EPIPE, ECONNRESET): read to its end. */
			shutdown(sock, SHUT_WR);
			sending = false;
		}
	}
}
