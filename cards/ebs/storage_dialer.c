#include "storage_dialer.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <seccomp.h>

#include "storage_connect.h"

/* One request, one reply; a SOCK_SEQPACKET pair keeps them whole. */
struct dial_request {
	uint32_t seq;
	uint32_t reserved;
	uint64_t deadline_ms; /* CLOCK_MONOTONIC, the card's own deadline */
};

struct dial_reply {
	uint32_t seq;
	int32_t err;          /* 0: the connected socket rides along (SCM_RIGHTS) */
};

#define HELPER_SOCK 3     /* the helper's only descriptor */

/*
 * The raw system call: no atexit handlers, and no sanitizer's exit hook
 * (a leak check would need more than the helper's jail allows).
 */
__attribute__((noreturn)) static void helper_exit(int status)
{
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}

/* ---- the helper ---- */

static const int helper_syscalls[] = {
	SCMP_SYS(connect), SCMP_SYS(poll), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(close),
	SCMP_SYS(clock_gettime), SCMP_SYS(restart_syscall), SCMP_SYS(exit_group),
};
#define HELPER_FILTERED 3 /* socket, getsockopt, setsockopt */

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int add_helper_rules(scmp_filter_ctx ctx, const struct endpoint *ep)
{
	for (size_t i = 0; i < N(helper_syscalls); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, helper_syscalls[i], 0) != 0)
			return -1;
	/* Exactly the socket storage_connect makes, and its two options. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3,
			     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)ep->addr.ss_family, 0),
			     SCMP_A1(SCMP_CMP_EQ, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
			     SCMP_A2(SCMP_CMP_EQ, 0, 0)) != 0)
		return -1;
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getsockopt), 2,
			     SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET, 0), SCMP_A2(SCMP_CMP_EQ, SO_ERROR, 0)) != 0)
		return -1;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2,
				SCMP_A1(SCMP_CMP_EQ, IPPROTO_TCP, 0), SCMP_A2(SCMP_CMP_EQ, TCP_NODELAY, 0));
}

int storage_dialer_enter_jail(const struct endpoint *ep)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL)
		return -1;
	int bad = add_helper_rules(ctx, ep) != 0 || seccomp_load(ctx) != 0;
	/* Released only on failure: free() after the load may need what is denied. */
	if (bad)
		seccomp_release(ctx);
	return bad ? -1 : 0;
}

unsigned int storage_dialer_syscall_count(void)
{
	return (unsigned int)(N(helper_syscalls) + HELPER_FILTERED);
}

static int send_reply(int sock, uint32_t seq, int fd)
{
	struct dial_reply rp = { .seq = seq, .err = fd < 0 ? -fd : 0 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { &rp, sizeof(rp) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		return n == (ssize_t)sizeof(rp) ? 0 : -1;
	}
}

/*
 * Answers requests until the card's end closes.  A new request (or the
 * card hanging up) cancels a connect still under way: the card has given
 * up on it.
 */
static void helper_serve(int sock, const struct endpoint *ep)
{
	for (;;) {
		struct dial_request rq;
		struct iovec iov = { &rq, sizeof(rq) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(sock, &mh, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(rq) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
			return; /* the card is gone, or this is not the card speaking */
		int fd = storage_connect(ep, sock, rq.deadline_ms);
		int r = send_reply(sock, rq.seq, fd);
		if (fd >= 0)
			close(fd);
		if (r != 0)
			return;
	}
}

/* In the forked child: keep only the socketpair end, jail, serve, exit. */
static void helper_main(int sock, const struct endpoint *ep)
{
	/* Its life is the card's: it ends when the card's end closes. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	if (dup2(sock, HELPER_SOCK) != HELPER_SOCK)
		helper_exit(1);
	if (close_range(0, HELPER_SOCK - 1, 0) != 0 || close_range(HELPER_SOCK + 1, ~0U, 0) != 0)
		helper_exit(1);
	if (storage_dialer_enter_jail(ep) != 0)
		helper_exit(1);
	helper_serve(HELPER_SOCK, ep);
	helper_exit(0);
}

/* ---- the card's side ---- */

int storage_dialer_start(struct storage_dialer *d, const struct endpoint *ep,
			 char *err, size_t errlen)
{
	int sv[2];

	d->sock = -1;
	d->helper = -1;
	d->seq = 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		int e = errno;
		snprintf(err, errlen, "storage dialer: socketpair: %s", strerror(e));
		return -e;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		snprintf(err, errlen, "storage dialer: fork: %s", strerror(e));
		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (pid == 0)
		helper_main(sv[1], ep);
	close(sv[1]);
	d->sock = sv[0];
	d->helper = pid;
	return 0;
}

static int send_request(struct storage_dialer *d, uint64_t deadline_ms)
{
	struct dial_request rq = { .seq = ++d->seq, .deadline_ms = deadline_ms };
	struct iovec iov = { &rq, sizeof(rq) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	for (;;) {
		ssize_t n = sendmsg(d->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -EBUSY : -errno;
		return n == (ssize_t)sizeof(rq) ? 0 : -EPROTO;
	}
}

/* The descriptor a reply carries, or -1; any surplus is closed. */
static int take_fd(struct msghdr *mh)
{
	int fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(got));
			if (fd < 0)
				fd = got;
			else
				close(got);
		}
	}
	return fd;
}

/*
 * One reply: 1 = the answer to the current request (*out: fd or -errno),
 * 0 = a stale one (discarded), or -errno: the helper is gone or garbled.
 */
static int recv_reply(struct storage_dialer *d, int *out)
{
	struct dial_reply rp;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { &rp, sizeof(rp) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };

	ssize_t n = recvmsg(d->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -EPIPE;
	int fd = take_fd(&mh);
	int bad = n != (ssize_t)sizeof(rp) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
		  (rp.err == 0) != (fd >= 0) || rp.err < 0 || rp.err > 4095;
	if (bad || rp.seq != d->seq) {
		if (fd >= 0)
			close(fd);
		return bad ? -EPROTO : 0;
	}
	*out = rp.err != 0 ? -rp.err : fd;
	return 1;
}

int storage_dialer_dial(void *ctx, int cancel_fd, uint64_t deadline_ms)
{
	struct storage_dialer *d = ctx;

	if (d->sock < 0)
		return -EPIPE;
	int r = send_request(d, deadline_ms);
	while (r == 0) {
		r = storage_wait_fd(d->sock, POLLIN, cancel_fd, deadline_ms);
		if (r < 0)
			return r;
		int fd = -1;
		r = recv_reply(d, &fd);
		if (r == 1)
			return fd;
	}
	return r;
}

pid_t storage_dialer_stop(struct storage_dialer *d)
{
	if (d->sock >= 0)
		close(d->sock);
	d->sock = -1;
	return d->helper;
}
