/* nbd_proto: encode/decode round trips and rejections of malformed input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nbd_proto.h"

static void test_request_roundtrip(void **state)
{
	(void)state;
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request in = { .flags = NBD_CMD_FLAG_FUA, .type = NBD_CMD_WRITE,
				  .handle = 0x0102030405060708ULL, .offset = 0xfffffffffffff000ULL,
				  .length = 0x2000000 }, out;
	nbd_encode_request(b, &in);
	assert_int_equal(nbd_get32(b), NBD_REQUEST_MAGIC);
	assert_int_equal(b[8], 0x01); /* big-endian handle */
	assert_int_equal(nbd_decode_request(b, sizeof(b), &out), 0);
	assert_int_equal(out.flags, in.flags);
	assert_int_equal(out.type, in.type);
	assert_true(out.handle == in.handle);
	assert_true(out.offset == in.offset);
	assert_int_equal(out.length, in.length);
	assert_int_equal(nbd_decode_request(b, sizeof(b) - 1, &out), -EINVAL);
	b[0] ^= 1;
	assert_int_equal(nbd_decode_request(b, sizeof(b), &out), -EPROTO);
}

static void test_simple_reply(void **state)
{
	(void)state;
	uint8_t b[NBD_SIMPLE_REPLY_LEN];
	struct nbd_simple_reply r;
	nbd_encode_simple_reply(b, NBD_ENOSPC, 42);
	assert_int_equal(nbd_decode_simple_reply(b, sizeof(b), &r), 0);
	assert_int_equal(r.error, NBD_ENOSPC);
	assert_int_equal(r.handle, 42);
	assert_int_equal(nbd_error_to_errno(r.error), -ENOSPC);
	assert_int_equal(nbd_decode_simple_reply(b, 15, &r), -EINVAL);
	assert_int_equal(nbd_decode_simple_reply(NULL, 16, &r), -EINVAL);
	nbd_put32(b, NBD_STRUCTURED_REPLY_MAGIC);
	assert_int_equal(nbd_decode_simple_reply(b, sizeof(b), &r), -EPROTO);
}

static void test_errors(void **state)
{
	(void)state;
	assert_int_equal(nbd_error_to_errno(0), 0);
	assert_int_equal(nbd_error_to_errno(NBD_EINVAL), -EINVAL);
	assert_int_equal(nbd_error_to_errno(12345), -EIO);
	assert_int_equal(nbd_error_to_errno(0xffffffffU), -EIO);
	assert_int_equal(nbd_errno_to_error(-EINVAL), NBD_EINVAL);
	assert_int_equal(nbd_errno_to_error(-EBADF), NBD_EIO);
	assert_int_equal(nbd_errno_to_error(-EOPNOTSUPP), NBD_ENOTSUP);
}

static void test_greeting_and_opts(void **state)
{
	(void)state;
	uint8_t g[NBD_GREETING_LEN];
	uint16_t f;
	nbd_encode_greeting(g, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	assert_int_equal(nbd_decode_greeting(g, sizeof(g), &f), 0);
	assert_int_equal(f, 3);
	assert_int_equal(nbd_decode_greeting(g, 17, &f), -EINVAL);
	g[9] = 0; /* oldstyle / garbage */
	assert_int_equal(nbd_decode_greeting(g, sizeof(g), &f), -EPROTO);

	uint8_t h[NBD_OPT_HDR_LEN];
	uint32_t opt, len;
	nbd_encode_opt_hdr(h, NBD_OPT_GO, 10);
	assert_int_equal(nbd_decode_opt_hdr(h, sizeof(h), &opt, &len), 0);
	assert_int_equal(opt, NBD_OPT_GO);
	assert_int_equal(len, 10);
	nbd_encode_opt_hdr(h, NBD_OPT_GO, NBD_MAX_OPT_LEN + 1);
	assert_int_equal(nbd_decode_opt_hdr(h, sizeof(h), &opt, &len), -E2BIG);

	uint8_t r[NBD_OPT_REPLY_HDR_LEN];
	struct nbd_opt_reply rep;
	nbd_encode_opt_reply(r, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 5);
	assert_int_equal(nbd_decode_opt_reply(r, sizeof(r), &rep), 0);
	assert_int_equal(rep.type, NBD_REP_ERR_UNKNOWN);
	assert_int_equal(rep.length, 5);
	assert_int_equal(nbd_decode_opt_reply(r, 19, &rep), -EINVAL);
	nbd_encode_opt_reply(r, NBD_OPT_GO, NBD_REP_INFO, 0xffffffffU);
	assert_int_equal(nbd_decode_opt_reply(r, sizeof(r), &rep), -E2BIG);
	r[0] = 1;
	assert_int_equal(nbd_decode_opt_reply(r, sizeof(r), &rep), -EPROTO);
}

static void test_go_payload(void **state)
{
	(void)state;
	uint8_t p[64];
	char name[16];
	int want = -1;
	static const uint16_t infos[] = { NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE };
	int n = nbd_encode_go_payload(p, sizeof(p), "vol0", infos, 2);
	assert_int_equal(n, 4 + 4 + 2 + 4);
	assert_int_equal(nbd_parse_go_payload(p, (size_t)n, name, sizeof(name), &want), 0);
	assert_string_equal(name, "vol0");
	assert_int_equal(want, 1);
	/* truncated, trailing bytes, too-long name, embedded NUL */
	assert_int_equal(nbd_parse_go_payload(p, (size_t)n - 1, name, sizeof(name), &want), -EINVAL);
	assert_int_equal(nbd_parse_go_payload(p, (size_t)n + 1, name, sizeof(name), &want), -EINVAL);
	assert_int_equal(nbd_parse_go_payload(p, (size_t)n, name, 4, &want), -E2BIG);
	nbd_put32(p, 0xffffffffU);
	assert_int_equal(nbd_parse_go_payload(p, (size_t)n, name, sizeof(name), &want), -EINVAL);
	n = nbd_encode_go_payload(p, sizeof(p), "ab", NULL, 0);
	p[5] = 0;
	assert_int_equal(nbd_parse_go_payload(p, (size_t)n, name, sizeof(name), &want), -EINVAL);
	assert_int_equal(nbd_encode_go_payload(p, 5, "vol0", NULL, 0), -ENOSPC);
	n = nbd_encode_go_payload(p, sizeof(p), NULL, NULL, 0);
	assert_int_equal(n, 6);
	assert_int_equal(nbd_parse_go_payload(p, 6, name, sizeof(name), &want), 0);
	assert_string_equal(name, "");
	assert_int_equal(want, 0);
}

static void test_info(void **state)
{
	(void)state;
	uint8_t b[14];
	struct nbd_export_info info;
	memset(&info, 0, sizeof(info));
	size_t n = nbd_encode_info_export(b, 1ULL << 40, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH);
	assert_int_equal(nbd_parse_info(b, n, &info), 0);
	assert_true(info.have_export);
	assert_true(info.size == 1ULL << 40);
	assert_int_equal(info.flags, NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH);
	assert_int_equal(nbd_parse_info(b, n - 1, &info), -EPROTO);
	assert_int_equal(nbd_parse_info(b, 1, &info), -EINVAL);
	nbd_encode_info_export(b, 1, 0); /* HAS_FLAGS missing */
	assert_int_equal(nbd_parse_info(b, 12, &info), -EPROTO);

	n = nbd_encode_info_block_size(b, 512, 4096, 32U << 20);
	assert_int_equal(nbd_parse_info(b, n, &info), 0);
	assert_true(info.have_block_size);
	assert_int_equal(info.min_block, 512);
	assert_int_equal(info.pref_block, 4096);
	nbd_encode_info_block_size(b, 3, 4096, 4096); /* not a power of two */
	assert_int_equal(nbd_parse_info(b, n, &info), -EPROTO);
	nbd_encode_info_block_size(b, 0, 4096, 4096);
	assert_int_equal(nbd_parse_info(b, n, &info), -EPROTO);
	nbd_encode_info_block_size(b, 4096, 512, 4096); /* pref < min */
	assert_int_equal(nbd_parse_info(b, n, &info), -EPROTO);
	nbd_encode_info_block_size(b, 4096, 4096, 6000); /* max not a multiple */
	assert_int_equal(nbd_parse_info(b, n, &info), -EPROTO);
	nbd_encode_info_block_size(b, 1, 4096, 0xffffffffU);
	assert_int_equal(nbd_parse_info(b, n, &info), 0);
	nbd_put16(b, 0x1234); /* unknown info: ignored */
	assert_int_equal(nbd_parse_info(b, n, &info), 0);

	uint8_t e[NBD_EXPORT_NAME_REPLY_LEN];
	memset(&info, 0, sizeof(info));
	nbd_put64(e, 4096);
	nbd_put16(e + 8, NBD_FLAG_HAS_FLAGS);
	assert_int_equal(nbd_decode_export_name_reply(e, sizeof(e), &info), 0);
	assert_int_equal(info.size, 4096);
	assert_int_equal(nbd_decode_export_name_reply(e, 9, &info), -EINVAL);
}

static void test_range(void **state)
{
	(void)state;
	assert_int_equal(nbd_range_ok(0, 100, 100), 0);
	assert_int_equal(nbd_range_ok(100, 0, 100), 0);
	assert_int_equal(nbd_range_ok(99, 2, 100), -EINVAL);
	assert_int_equal(nbd_range_ok(101, 0, 100), -EINVAL);
	assert_int_equal(nbd_range_ok(UINT64_MAX, 2, 100), -EINVAL);
	assert_int_equal(nbd_range_ok(50, UINT64_MAX, 100), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_simple_reply),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_greeting_and_opts),
		cmocka_unit_test(test_go_payload),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
