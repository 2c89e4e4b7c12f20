#include "ring_eventfd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

/*
 * Every eventfd is a file on the kernel's one shared anonymous inode, so it
 * has the same device, inode number and mode as the card's own eventfd:
 * that rules out pipes, sockets, regular files, devices and memfds.  A few
 * other kinds of fd share that inode (timerfd, signalfd, epoll, inotify,
 * fanotify, userfaultfd, sync_file); none of them is ever writable, while an
 * eventfd is unless its counter is at its maximum (then a write would block,
 * so refusing it is right too).  What is left with poll's default answer
 * (readable and writable: the KVM and VFIO fds, which have no poll method)
 * fails every 8-byte read and write with EINVAL at once: it neither blocks
 * nor spins the card.
 */
static int is_eventfd(int fd, int own_eventfd)
{
	struct stat st, own;
	if (fstat(own_eventfd, &own) != 0 || fstat(fd, &st) != 0)
		return -errno;
	if (st.st_dev != own.st_dev || st.st_ino != own.st_ino ||
	    (st.st_mode & S_IFMT) != (own.st_mode & S_IFMT))
		return -EINVAL;
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int n = poll(&p, 1, 0);
	if (n < 0)
		return -errno;
	if (n != 1 || !(p.revents & POLLOUT) ||
	    (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
		return -EINVAL;
	return 0;
}

int ring_eventfd_check(int fd, int own_eventfd)
{
	int rc = is_eventfd(fd, own_eventfd);
	if (rc != 0)
		return rc;
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if ((flags & O_ACCMODE) != O_RDWR)
		return -EINVAL; /* eventfds are always opened read-write */
	/* The flag is the open file's: the front end's copy turns non-blocking
	 * too (flint-hv and QEMU make theirs non-blocking anyway). */
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return -errno;
	return 0;
}
