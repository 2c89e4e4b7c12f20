/*
 * libFuzzer target: the NBD parsers on arbitrary bytes.  The input is read
 * as the byte stream a server sends a client (greeting, option replies with
 * their payloads, an EXPORT_NAME reply, simple replies), then as the stream
 * a client sends a server (option headers, GO payloads, requests).  Any
 * crash or out-of-bounds read is a bug; every decoded value must re-encode
 * to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nbd_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void server_stream(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	uint16_t hflags;
	struct nbd_export_info info;

	memset(&info, 0, sizeof(info));
	if (nbd_decode_greeting(data, size, &hflags) == 0)
		pos = NBD_GREETING_LEN;
	for (int i = 0; i < 64; i++) {
		struct nbd_opt_reply rep;
		if (nbd_decode_opt_reply(data + pos, size - pos, &rep) != 0)
			break;
		uint8_t again[NBD_OPT_REPLY_HDR_LEN];
		nbd_encode_opt_reply(again, rep.option, rep.type, rep.length);
		if (memcmp(again, data + pos, sizeof(again)) != 0)
			abort();
		pos += NBD_OPT_REPLY_HDR_LEN;
		size_t len = rep.length < size - pos ? rep.length : size - pos;
		if (rep.type == NBD_REP_INFO && nbd_parse_info(data + pos, len, &info) == 0 &&
		    info.have_block_size &&
		    (info.min_block == 0 || info.max_block < info.min_block))
			abort();
		pos += len;
		if (rep.type == NBD_REP_ACK)
			break;
	}
	if (nbd_decode_export_name_reply(data + pos, size - pos, &info) == 0 &&
	    !(info.flags & NBD_FLAG_HAS_FLAGS))
		abort();
	for (size_t p = pos; p < size; p++) {
		struct nbd_simple_reply r;
		if (nbd_decode_simple_reply(data + p, size - p, &r) != 0)
			continue;
		uint8_t again[NBD_SIMPLE_REPLY_LEN];
		nbd_encode_simple_reply(again, r.error, r.handle);
		if (memcmp(again, data + p, sizeof(again)) != 0)
			abort();
		int e = nbd_error_to_errno(r.error);
		if ((r.error == 0) != (e == 0) || e > 0)
			abort();
	}
}

static void client_stream(const uint8_t *data, size_t size)
{
	uint32_t opt, len;
	if (nbd_decode_opt_hdr(data, size, &opt, &len) == 0) {
		char name[NBD_MAX_NAME_LEN + 1];
		int want;
		size_t avail = size - NBD_OPT_HDR_LEN;
		if (len < avail)
			avail = len;
		if (nbd_parse_go_payload(data + NBD_OPT_HDR_LEN, avail, name, sizeof(name), &want) == 0 &&
		    strlen(name) > NBD_MAX_NAME_LEN)
			abort();
	}
	/* A tiny name buffer must be refused, not overrun. */
	char small[4];
	int want;
	(void)nbd_parse_go_payload(data, size, small, sizeof(small), &want);
	struct nbd_request rq;
	if (nbd_decode_request(data, size, &rq) == 0) {
		uint8_t again[NBD_REQUEST_LEN];
		nbd_encode_request(again, &rq);
		if (memcmp(again, data, sizeof(again)) != 0)
			abort();
		(void)nbd_range_ok(rq.offset, rq.length, 1ULL << 30);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	server_stream(data, size);
	client_stream(data, size);
	return 0;
}
