/*
 * How a connection to card-ebs's storage server (EBS-2) is made: used by
 * the NBD client when it connects by itself, and by the storage dialer's
 * helper for a jailed card (storage_dialer.h).
 */
#ifndef FLINT_CARDS_EBS_STORAGE_CONNECT_H
#define FLINT_CARDS_EBS_STORAGE_CONNECT_H

#include <stdint.h>

#include "endpoint.h"

/*
 * A new stream socket connected to ep: non-blocking, close-on-exec, with
 * TCP_NODELAY on TCP.  Returns the fd or -errno: the connect error,
 * -ETIMEDOUT at deadline_ms (CLOCK_MONOTONIC), or -ECANCELED as soon as
 * cancel_fd (if >= 0) is readable or hung up.
 */
int storage_connect(const struct endpoint *ep, int cancel_fd, uint64_t deadline_ms);

/*
 * Waits for events on fd until deadline_ms, or until cancel_fd (if >= 0)
 * is readable.  Returns fd's revents, -ETIMEDOUT or -ECANCELED.
 */
int storage_wait_fd(int fd, short events, int cancel_fd, uint64_t deadline_ms);

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline here. */
uint64_t storage_now_ms(void);

#endif
