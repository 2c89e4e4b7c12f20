/*
 * vhost-user wire format (QEMU docs/interop/vhost-user.rst), shared by the
 * block cards (back end) and flint-hv (front end).  Messages are native
 * endian: a 12-byte header, then exactly hdr.size payload bytes, with file
 * descriptors carried as SCM_RIGHTS ancillary data on the header.
 *
 * The peer is untrusted: vhost_user_recv_until() bounds the payload and the
 * fd array, vhost_user_msg_validate() checks the payload size exactly per
 * request type, the fd count and the field ranges.  It is pure (no I/O), so
 * it is fuzzed (fuzz/fuzz_vhost_user.c).
 */
#ifndef FLINT_VHOST_USER_MSG_H
#define FLINT_VHOST_USER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_MAX_REQUEST = 41,
};

/* Header flags. */
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_FLAG_REPLY (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)

/* Virtio feature bit 30: the back end speaks the protocol-feature extension. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* Protocol feature bits. */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9

#define VHOST_USER_MAX_FDS 8
#define VHOST_USER_MAX_REGIONS 8
#define VHOST_USER_CONFIG_MAX 256
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD (1u << 8)
#define VHOST_USER_VRING_MAX_NUM 32768u
#define VHOST_VRING_F_LOG 1u
#define VHOST_USER_CONFIG_F_WRITABLE 0u
#define VHOST_USER_CONFIG_F_MIGRATION 1u

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* payload bytes following the header */
};

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;  /* front-end virtual addresses, see guest_mem_map.h */
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vhost_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

struct vhost_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_USER_MAX_REGIONS];
};

#define VHOST_USER_CONFIG_HDR_SIZE 12u
struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VHOST_USER_CONFIG_MAX];
};

union vhost_user_payload {
	uint64_t u64;
	struct vhost_user_vring_state state;
	struct vhost_user_vring_addr addr;
	struct vhost_user_mem_table mem;
	struct vhost_user_config config;
};

struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union vhost_user_payload payload;
	/* Received descriptors; the receiver owns them until moved out (-1). */
	int fds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
};

/* Zero a message, set request, version flags and size, and no fds. */
void vhost_user_msg_init(struct vhost_user_msg *m, uint32_t request,
			 uint32_t size);

/*
 * Message I/O, shared by the card (blocking) and flint-hv (bounded: it must
 * never hang on a dead card).  deadline_ms is an absolute
 * vhost_user_clock_ms() time; a negative one means block forever.  With a
 * deadline every call is MSG_DONTWAIT and waits in poll() on this one fd for
 * the time left, so the calls made are recvmsg, sendmsg, poll and
 * clock_gettime only (flint-hv's vCPU seccomp filter allows no more).  EINTR
 * is retried.  Errors:
 *   -ECONNRESET  recv: the peer closed before the first byte of a message
 *   -EPROTO      recv: the peer closed inside a message, the payload is
 *                larger than struct vhost_user_msg holds, too many or
 *                unexpected fds (every received fd is then closed)
 *   -ETIMEDOUT   the deadline passed
 *   -EINVAL      send: hdr.size or nfds out of range (nothing sent)
 *   -errno       anything else the kernel reports, e.g. -EPIPE or
 *                -ECONNRESET when a send finds the peer gone
 * After an error the stream position is unknown: end the connection.
 * Received messages are not validated.
 */
#define VHOST_USER_NO_DEADLINE (-1)

/* CLOCK_MONOTONIC in milliseconds: the clock deadlines are measured on. */
int64_t vhost_user_clock_ms(void);

/* Read one message and the fds sent with it (owned by m, at most 8). */
int vhost_user_recv_until(int sock, struct vhost_user_msg *m, int64_t deadline_ms);

/*
 * Read one message that must carry no fds, with no control buffer: fds the
 * peer attaches are dropped by the kernel and the message is -EPROTO.  For
 * flint-hv, whose seccomp filter forbids close(): nothing is ever
 * installed that it would have to close.
 */
int vhost_user_recv_nofds_until(int sock, struct vhost_user_msg *m,
				int64_t deadline_ms);

/* Send header + hdr.size payload bytes, m->fds[0..nfds) with the first byte. */
int vhost_user_send_until(int sock, const struct vhost_user_msg *m,
			  int64_t deadline_ms);

static inline int vhost_user_recv(int sock, struct vhost_user_msg *m)
{
	return vhost_user_recv_until(sock, m, VHOST_USER_NO_DEADLINE);
}

static inline int vhost_user_send(int sock, const struct vhost_user_msg *m)
{
	return vhost_user_send_until(sock, m, VHOST_USER_NO_DEADLINE);
}

/* Close every fd still owned by the message (those not set to -1). */
void vhost_user_msg_close_fds(struct vhost_user_msg *m);

/*
 * Check a front-end -> back-end request: version bits, no REPLY flag, a
 * known request type, the exact payload size and fd count for it, and the
 * field ranges that need no device state (region count, vring number range,
 * config offset/size, flag bits).  0 or -EINVAL/-ENOTSUP (unknown request).
 */
int vhost_user_msg_validate(const struct vhost_user_msg *m);

/*
 * Check a back-end -> front-end reply to `request` (for flint-hv): REPLY
 * flag, matching request, exact size, no fds.  0 or -EINVAL.
 */
int vhost_user_reply_validate(const struct vhost_user_msg *m, uint32_t request);

/* "GET_FEATURES" etc., or "UNKNOWN". */
const char *vhost_user_request_name(uint32_t request);

#endif
