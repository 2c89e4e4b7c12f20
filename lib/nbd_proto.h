/*
 * NBD wire protocol (fixed newstyle negotiation, simple replies): constants
 * and pure, bounds-checked encode/decode helpers shared by the Flint NBD
 * client (card-ebs) and flint-nbd-server.  No I/O here.  All multi-byte wire
 * fields are big-endian.  Every decoder takes the number of bytes actually
 * available and returns 0 or a negative errno (-EINVAL: too short / bad
 * field, -EPROTO: wrong magic or inconsistent message).
 */
#ifndef FLINT_NBD_PROTO_H
#define FLINT_NBD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define NBD_MAGIC            0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_IHAVEOPT         0x49484156454f5054ULL /* "IHAVEOPT" */
#define NBD_OPT_REPLY_MAGIC  0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC    0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC     0x67446698U
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efU

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE   (1U << 0)
#define NBD_FLAG_NO_ZEROES        (1U << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE NBD_FLAG_FIXED_NEWSTYLE
#define NBD_FLAG_C_NO_ZEROES      NBD_FLAG_NO_ZEROES

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS         (1U << 0)
#define NBD_FLAG_READ_ONLY         (1U << 1)
#define NBD_FLAG_SEND_FLUSH        (1U << 2)
#define NBD_FLAG_SEND_FUA          (1U << 3)
#define NBD_FLAG_ROTATIONAL        (1U << 4)
#define NBD_FLAG_SEND_TRIM         (1U << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1U << 6)
#define NBD_FLAG_CAN_MULTI_CONN    (1U << 8)

/* Options. */
#define NBD_OPT_EXPORT_NAME      1U
#define NBD_OPT_ABORT            2U
#define NBD_OPT_LIST             3U
#define NBD_OPT_STARTTLS         5U
#define NBD_OPT_INFO             6U
#define NBD_OPT_GO               7U
#define NBD_OPT_STRUCTURED_REPLY 8U

/* Option reply types. */
#define NBD_REP_ACK    1U
#define NBD_REP_SERVER 2U
#define NBD_REP_INFO   3U
#define NBD_REP_FLAG_ERROR (1U << 31)
#define NBD_REP_ERR_UNSUP    (NBD_REP_FLAG_ERROR | 1U)
#define NBD_REP_ERR_POLICY   (NBD_REP_FLAG_ERROR | 2U)
#define NBD_REP_ERR_INVALID  (NBD_REP_FLAG_ERROR | 3U)
#define NBD_REP_ERR_PLATFORM (NBD_REP_FLAG_ERROR | 4U)
#define NBD_REP_ERR_TLS_REQD (NBD_REP_FLAG_ERROR | 5U)
#define NBD_REP_ERR_UNKNOWN  (NBD_REP_FLAG_ERROR | 6U)
#define NBD_REP_ERR_SHUTDOWN (NBD_REP_FLAG_ERROR | 7U)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8U)
#define NBD_REP_ERR_TOO_BIG  (NBD_REP_FLAG_ERROR | 9U)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT      0U
#define NBD_INFO_NAME        1U
#define NBD_INFO_DESCRIPTION 2U
#define NBD_INFO_BLOCK_SIZE  3U

/* Commands and command flags. */
#define NBD_CMD_READ         0U
#define NBD_CMD_WRITE        1U
#define NBD_CMD_DISC         2U
#define NBD_CMD_FLUSH        3U
#define NBD_CMD_TRIM         4U
#define NBD_CMD_CACHE        5U
#define NBD_CMD_WRITE_ZEROES 6U
#define NBD_CMD_FLAG_FUA     (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE (1U << 1)

/* Wire error values (errno numbers as the protocol fixes them). */
#define NBD_EPERM     1U
#define NBD_EIO       5U
#define NBD_ENOMEM    12U
#define NBD_EINVAL    22U
#define NBD_ENOSPC    28U
#define NBD_EOVERFLOW 75U
#define NBD_ENOTSUP   95U
#define NBD_ESHUTDOWN 108U

/* Sizes of fixed wire structures. */
#define NBD_GREETING_LEN      18U /* NBDMAGIC, IHAVEOPT, u16 flags */
#define NBD_OPT_HDR_LEN       16U /* IHAVEOPT, u32 opt, u32 len */
#define NBD_OPT_REPLY_HDR_LEN 20U /* magic, u32 opt, u32 type, u32 len */
#define NBD_REQUEST_LEN       28U
#define NBD_SIMPLE_REPLY_LEN  16U
#define NBD_EXPORT_NAME_REPLY_LEN 10U /* u64 size, u16 flags (+124 zeroes) */

/* Limits Flint applies to everything it receives. */
#define NBD_MAX_PAYLOAD     (32U << 20) /* one READ/WRITE */
#define NBD_MAX_OPT_LEN     4096U       /* one client option payload */
#define NBD_MAX_OPT_REPLY_LEN 65536U    /* one server option reply payload */
#define NBD_MAX_NAME_LEN    4096U       /* export name */

struct nbd_request {
	uint16_t flags;
	uint16_t type;
	uint64_t handle;
	uint64_t offset;
	uint32_t length;
};

struct nbd_simple_reply {
	uint32_t error;  /* wire error value, 0 = success */
	uint64_t handle;
};

struct nbd_opt_reply {
	uint32_t option;
	uint32_t type;
	uint32_t length;
};

/* What NBD_REP_INFO / EXPORT_NAME told the client about the export. */
struct nbd_export_info {
	uint64_t size;
	uint16_t flags;
	int have_export;     /* NBD_INFO_EXPORT seen */
	int have_block_size; /* NBD_INFO_BLOCK_SIZE seen */
	uint32_t min_block, pref_block, max_block;
};

/* Big-endian helpers (also used by the tests and fuzzer). */
void nbd_put16(uint8_t *p, uint16_t v);
void nbd_put32(uint8_t *p, uint32_t v);
void nbd_put64(uint8_t *p, uint64_t v);
uint16_t nbd_get16(const uint8_t *p);
uint32_t nbd_get32(const uint8_t *p);
uint64_t nbd_get64(const uint8_t *p);

/* Server greeting. */
void nbd_encode_greeting(uint8_t out[NBD_GREETING_LEN], uint16_t hflags);
int nbd_decode_greeting(const uint8_t *buf, size_t len, uint16_t *hflags);

/* Client option header (followed by `length` payload bytes). */
void nbd_encode_opt_hdr(uint8_t out[NBD_OPT_HDR_LEN], uint32_t option, uint32_t length);
/* Rejects bad magic (-EPROTO) and length > NBD_MAX_OPT_LEN (-E2BIG). */
int nbd_decode_opt_hdr(const uint8_t *buf, size_t len, uint32_t *option, uint32_t *length);

/* Server option reply header (followed by r->length payload bytes). */
void nbd_encode_opt_reply(uint8_t out[NBD_OPT_REPLY_HDR_LEN], uint32_t option,
			  uint32_t type, uint32_t length);
/* Rejects bad magic and length > NBD_MAX_OPT_REPLY_LEN. */
int nbd_decode_opt_reply(const uint8_t *buf, size_t len, struct nbd_opt_reply *r);

/*
 * OPT_GO / OPT_INFO payload: u32 name length, name, u16 count, count u16
 * info types.  Encode returns the payload length or -ENOSPC / -EINVAL.
 */
int nbd_encode_go_payload(uint8_t *out, size_t cap, const char *name,
			  const uint16_t *infos, uint16_t ninfos);
/*
 * Server side: parse a GO/INFO payload; copies the NUL-terminated name into
 * name (-E2BIG if it does not fit, -EINVAL on an embedded NUL) and reports
 * whether NBD_INFO_BLOCK_SIZE was requested.
 */
int nbd_parse_go_payload(const uint8_t *buf, size_t len, char *name, size_t namecap,
			 int *want_block_size);

/* Encode one NBD_REP_INFO payload; returns its length. */
size_t nbd_encode_info_export(uint8_t out[12], uint64_t size, uint16_t flags);
size_t nbd_encode_info_block_size(uint8_t out[14], uint32_t min, uint32_t pref, uint32_t max);
/*
 * Client side: parse one NBD_REP_INFO payload into info.  Unknown info types
 * are ignored; known ones must have exactly their size and sane values
 * (block sizes: powers of two, min <= pref <= max constraints per spec).
 */
int nbd_parse_info(const uint8_t *buf, size_t len, struct nbd_export_info *info);

/* Reply to NBD_OPT_EXPORT_NAME: u64 size, u16 flags (the 124 zeroes follow
 * unless NO_ZEROES was negotiated; the caller handles them). */
int nbd_decode_export_name_reply(const uint8_t *buf, size_t len, struct nbd_export_info *info);

/* Transmission phase. */
void nbd_encode_request(uint8_t out[NBD_REQUEST_LEN], const struct nbd_request *r);
int nbd_decode_request(const uint8_t *buf, size_t len, struct nbd_request *r);
void nbd_encode_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t error, uint64_t handle);
/* -EPROTO on a structured reply magic too (never negotiated by Flint). */
int nbd_decode_simple_reply(const uint8_t *buf, size_t len, struct nbd_simple_reply *r);

/* Wire error value -> negative errno (unknown values -> -EIO), and back. */
int nbd_error_to_errno(uint32_t err);
uint32_t nbd_errno_to_error(int err);

/* Checks offset+length lies inside size without overflow: 0 or -EINVAL. */
int nbd_range_ok(uint64_t offset, uint64_t length, uint64_t size);

#endif
