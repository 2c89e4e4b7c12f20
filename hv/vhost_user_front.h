/*
 * The vhost-user front end (CARD-7, EBS-1): hands one virtio-blk device to a
 * card process over a connected unix stream socket, speaking the standard
 * protocol (QEMU docs/interop/vhost-user.rst) that QEMU, Cloud Hypervisor and
 * SPDK speak, so any vhost-user-blk back end can serve it.
 *
 * Set-up (before the guest runs, before seccomp): vuf_open() connects to the
 * socket (the only socket flint-hv ever creates; later the controller will
 * pass a connected fd instead, HV-7) and negotiates SET_OWNER, GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES (CONFIG required, MQ when queues > 1, REPLY_ACK
 * used when offered), GET_QUEUE_NUM, GET_CONFIG (cached: guest config reads
 * are answered from it) and SET_MEM_TABLE with the guest RAM memfd, each
 * region with userspace_addr == guest_phys_addr so ring addresses are
 * guest-physical.  vuf_attach() then puts the device on the PCI bus.
 *
 * Run time (vCPU thread, bus lock held, under seccomp: only poll, sendmsg and
 * recvmsg on this socket): the transport calls vuf_ops.  The data path never
 * passes through flint-hv: kicks are KVM ioeventfds and calls KVM irqfds,
 * both handed to the card with SET_VRING_KICK/CALL.  Every reply is awaited
 * at most timeout_ms (VUF_TIMEOUT_MS), except GET_VRING_BASE's, which may
 * wait for the card to settle requests in flight: stop_timeout_ms
 * (VUF_STOP_TIMEOUT_MS; the budget is in docs/architecture.md).  When the
 * back end goes away or misbehaves (EOF, reset, timeout, malformed reply)
 * it is cut off, with one log line: the socket is shut down (so the card
 * sees the end and stops every queue), every queue counts as stopped, and
 * nothing is sent to it again.  The device is broken from then on: feature
 * negotiation and queue starts fail (the transport sets DEVICE_NEEDS_RESET)
 * and flint-hv and the guest keep running.  The socket stays open (closing
 * is not allowed under seccomp).  A refused queue start or feature set is
 * logged once per queue (device) until one succeeds.  SET_CONFIG from the
 * guest is ignored: no virtio-blk config field flint-hv exposes is
 * writable.
 */
#ifndef FLINT_HV_VHOST_USER_FRONT_H
#define FLINT_HV_VHOST_USER_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "guest_mem.h"
#include "log_limit.h"
#include "pci.h"
#include "virtio_pci.h"

#define VUF_TIMEOUT_MS 2000
/* The card's stop grace (1 s) plus abandoning what is in flight, with margin. */
#define VUF_STOP_TIMEOUT_MS 5000
/* struct virtio_blk_config up to write_zeroes_may_unmap (virtio 1.1). */
/* The config fields up to write-zeroes: secure erase and zones are not offered. */
#define VUF_BLK_CONFIG_SIZE ((unsigned int)offsetof(struct virtio_blk_config, max_secure_erase_sectors))
#define VUF_QUEUE_SIZE_MAX 256

struct vuf {
	int sock;
	char label[16];            /* "blk0" */
	char path[108];            /* for messages only */
	unsigned int nr_queues;
	int timeout_ms;
	int stop_timeout_ms;       /* GET_VRING_BASE */
	bool broken;               /* cut off: never talked to again */
	bool reply_ack;
	uint64_t backend_features; /* GET_FEATURES */
	uint64_t protocol_features; /* negotiated */
	uint8_t config[VUF_BLK_CONFIG_SIZE];
	bool started[VIRTIO_PCI_QUEUES_MAX]; /* a start was tried since the last reset */
	/* Guest-triggered failures: one line each until things work again. */
	struct log_limit start_log[VIRTIO_PCI_QUEUES_MAX];
	struct log_limit features_log;
	struct virtio_pci vp;
};

/* Connects to a unix socket path: the fd, or -1 with a reason in err. */
int vuf_connect(const char *path, char *err, size_t errlen);

/*
 * Takes an inherited fd that must be a connected unix stream socket (the
 * controller's socketpair end), marks it close-on-exec: fd, or -1 with a
 * reason in err.
 */
int vuf_adopt_fd(int fd, char *err, size_t errlen);

/*
 * Negotiates with the back end on the connected sock (owned by f from now
 * on; closed on failure) for nr_queues queues over guest RAM gm.  Every
 * reply is awaited at most VUF_TIMEOUT_MS.  0, or -1 with a one-line reason
 * in err.
 */
int vuf_setup(struct vuf *f, int sock, const char *label, const char *path,
	      unsigned int nr_queues, const struct guest_mem *gm,
	      char *err, size_t errlen);

/* Registers f as a virtio-blk PCI device on bus.  0, or -1 with err. */
int vuf_attach(struct vuf *f, struct pci_bus *bus, char *err, size_t errlen);

/* Closes the socket and the transport's eventfds (tests, failed set-up). */
void vuf_close(struct vuf *f);

/* The virtio_backend_ops; be is the struct vuf. */
extern const struct virtio_backend_ops vuf_ops;

/*
 * Feature bits passed to the guest when the back end offers them: virtio-blk
 * bits 0-15 except CONFIG_WCE (11: its config field would be writable, and
 * SET_CONFIG is ignored), none whose config lies past the cached 60 bytes
 * (SECURE_ERASE 16, ZONED 17), INDIRECT_DESC and EVENT_IDX.  VERSION_1 is
 * the transport's; NOTIFICATION_DATA, RING_RESET, packed rings and the
 * vhost-user bit 30 never reach the guest.
 */
#define VUF_GUEST_FEATURES (0xf7ffULL | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
			    (1ULL << VIRTIO_RING_F_EVENT_IDX))

#endif
