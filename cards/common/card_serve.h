/*
 * The serving loop shared by the block cards: a listening unix socket for
 * the VMM's vhost-user front end, one front end at a time (a VMM restart or
 * live update reconnects), until SIGTERM/SIGINT - the detach/release
 * signal - ends it cleanly so the caller can wipe keys (EBS-6, IST-4).
 */
#ifndef FLINT_CARDS_CARD_SERVE_H
#define FLINT_CARDS_CARD_SERVE_H

#include <stddef.h>

#include "blk_backend.h"
#include "vhost_user_blk.h"

/* Creates the listening socket (replacing a stale socket file only). */
int card_listen_unix(const char *path, char *err, size_t errlen);

/*
 * Blocks SIGTERM and SIGINT in every thread, then serves front ends on
 * listen_fd until one of them arrives.  Returns 0 on such a stop.
 */
int card_serve_until_signal(int listen_fd, struct blk_backend *vol,
			    const struct vub_options *opts);

/*
 * The tail every card's main shares once its volume is open: listen on
 * socket_path, enter the jail (nothing untrusted has been read yet), serve
 * until SIGTERM/SIGINT.  The caller still owns vol and closes it after.
 * Returns 0 after a clean stop, -1 (with a logged reason) otherwise.
 */
int card_run(struct blk_backend *vol, const char *socket_path, const struct vub_options *opts,
	     const char *what);

#endif
