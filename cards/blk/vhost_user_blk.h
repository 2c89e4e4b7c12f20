/*
 * vhost-user-blk back end: serves one front end (QEMU vhost-user-blk-pci, or
 * flint-hv later) at a time over a unix stream socket and runs the guest's
 * virtio-blk queues on a blk_backend.
 *
 * Protocol: GET/SET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK,
 * CONFIG), GET_QUEUE_NUM, SET_OWNER, RESET_OWNER, SET_MEM_TABLE,
 * SET_VRING_NUM/ADDR/BASE/KICK/CALL/ERR (the fds must be eventfds; they are
 * made non-blocking), GET_VRING_BASE (stops the ring and returns it to its
 * initial, disabled state: the front end enables it after the next kick),
 * SET_VRING_ENABLE, GET_CONFIG, SET_CONFIG (accepted and ignored: no field is
 * writable).  Every message is checked by vhost_user_msg_validate() and
 * against the device state.  A malformed message (bad size, fds, flags,
 * unknown request) ends the connection.  A well-formed request that cannot
 * be honoured (queue index out of range, ring address outside guest memory,
 * polled kick, a kick/call/err fd that is not an eventfd) is answered with a
 * failure ack when the front end asked for one with REPLY_ACK, else it also
 * ends the connection.  A refused ring start leaves the ring stopped and
 * disabled, never half started (a later good start works).
 *
 * Queues (the queue engine, blk_queue.h): per started and enabled queue,
 * opts->iodepth worker threads, one of them blocked in poll() on its kick
 * eventfd while the ring is empty, that pop requests, serve them on the
 * backend and complete them, so that up to iodepth requests of one queue
 * are in flight at once (a remote volume's round trip no longer idles the
 * queue).  Completions may reach the used ring out of order, as
 * virtio allows.  The connection's own thread handles messages and stops a
 * queue (its in-flight requests finish first) before changing that queue or
 * the memory table.  The call eventfd is signalled after each completed
 * request unless the driver set VRING_AVAIL_F_NO_INTERRUPT.  Backend ops are
 * called from many threads at once unless opts->serialize_backend is set.
 *
 * End of a connection (EOF, error, malformed message): the socket is shut
 * down (both directions; closing it is the caller's for a connected fd), every queue thread is
 * stopped, guest memory unmapped, kick/call/err fds closed, negotiated state
 * forgotten; the process is then as before the connection.
 */
#ifndef FLINT_CARDS_BLK_VHOST_USER_BLK_H
#define FLINT_CARDS_BLK_VHOST_USER_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "blk_backend.h"

struct vub_options {
	uint16_t num_queues;    /* 1..16; 0 means 1 */
	uint16_t iodepth;       /* requests in flight per queue, 1..64; 0 means 1 */
	const char *serial;     /* VIRTIO_BLK_T_GET_ID answer (<= 20 bytes), or NULL */
	bool serialize_backend; /* backend not thread-safe: one call at a time */
	bool once;              /* listening fd: return after the first connection */
};

/*
 * Serve front ends on fd, which is either
 *  - a listening unix stream socket: accept one connection at a time and
 *    serve it; after it ends, accept the next (or return if opts->once);
 *  - a connected socket: serve it until it ends.
 * fd and the backend stay owned by the caller (neither is closed).
 * Returns 0 after a clean disconnect, -EPROTO if the (last) front end sent a
 * malformed or unserviceable message, another negative errno on a socket or
 * setup error (e.g. -EINVAL for a backend vblk_init() refuses).
 */
int vub_serve(int fd, struct blk_backend *backend, const struct vub_options *opts);

#endif
