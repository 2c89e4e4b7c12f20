/*
 * The kick, call and err fds a vhost-user front end hands the card.  They
 * must be eventfds: anything else can hang or spin the card (a pipe nobody
 * reads blocks the call write(); /dev/null, a regular file or a pipe without
 * a writer is always readable and spins the thread waiting for kicks).
 */
#ifndef FLINT_CARDS_BLK_RING_EVENTFD_H
#define FLINT_CARDS_BLK_RING_EVENTFD_H

/*
 * 0 if fd is an eventfd (told apart by comparing it with own_eventfd, one
 * the card made itself); it is then made non-blocking, so that a front end
 * that fills its counter cannot block the card's write().  -EINVAL if fd is
 * something else, another -errno if fd cannot be examined or changed.
 * Needs only fstat, poll and fcntl: it runs under the card's seccomp filter,
 * where /proc cannot be opened.
 */
int ring_eventfd_check(int fd, int own_eventfd);

#endif
