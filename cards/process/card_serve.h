/*
 * How a block card meets its front end and serves it: the card belongs to
 * one instance (CARD-7, ACC-2, IST-4), so it serves exactly one front end,
 * once, and the volume's life ends with that front end.
 *
 * The channel is either inherited (--fd: an already connected unix stream
 * socket, the way the VMM hands a device its channel) or, for QEMU and other
 * peers that connect to a path, one connection accepted on --socket PATH
 * from a peer whose uid (SO_PEERCRED) is the one the card was told to expect.
 * A peer with another uid is refused and the card keeps waiting, so a local
 * process cannot end a card before its real front end arrives.  PATH is
 * removed once the front end is connected: nobody else can reach the card.
 *
 * The card then enters its jail and serves until the front end goes away
 * (disconnect, VMM exit, protocol error) or SIGTERM/SIGINT (detach/release)
 * arrives, at any point, also while waiting.  Either way the caller then
 * ends the volume's life (card-ebs flushes and wipes its key, card-local
 * crypto-erases); nothing is ever served to a second front end.
 */
#ifndef FLINT_CARDS_CARD_SERVE_H
#define FLINT_CARDS_CARD_SERVE_H

#include <stddef.h>
#include <sys/types.h>

#include "blk_backend.h"
#include "card_options.h"
#include "card_sandbox.h"
#include "vhost_user_blk.h"

/* Creates the listening socket (replacing a stale socket file only). */
int card_listen_unix(const char *path, char *err, size_t errlen);

/*
 * The tail every card's main shares once its volume is open: get the one
 * front end's channel (card->channel_fd or card->socket_path), enter the
 * jail (nothing untrusted has been read yet), serve that front end until it
 * goes away or SIGTERM/SIGINT arrives.  The caller still owns vol and ends
 * its life after.  Returns 0 when the card ended as a card should (front
 * end gone, or a stop signal, also one that came before any front end), -1
 * (with a logged reason) when it could not serve at all.
 */
int card_run(struct blk_backend *vol, const struct card_common_config *card,
	     const struct vub_options *opts, const char *what, enum card_profile jail);

#endif
