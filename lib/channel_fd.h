/*
 * An inherited vhost-user channel: the controller creates each channel as
 * a socketpair and hands one end to flint-hv (--blk fd=N) and the other to
 * a card (--fd N).  Both ends check what they were given the same way.
 */
#ifndef FLINT_LIB_CHANNEL_FD_H
#define FLINT_LIB_CHANNEL_FD_H

#include <stddef.h>

/*
 * fd must be a connected unix stream socket (not listening, with a peer);
 * it is then marked close-on-exec.  `what` names it in messages (e.g.
 * "--fd 3").  0, or -1 with a one-line reason in err.
 */
int channel_fd_check(int fd, const char *what, char *err, size_t errlen);

#endif
