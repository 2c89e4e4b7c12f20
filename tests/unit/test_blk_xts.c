/*
 * The XTS layer: storage below sees only ciphertext, reads return the
 * plaintext, the tweak is the sector number, and the result matches an
 * independent XTS computed here from AES-256-ECB (IEEE 1619).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "blk_xts.h"
#include "key_mem.h"

#define STORE_SIZE (1U << 20)

struct mem_store {
	uint8_t *data;
	int writes;
	int flushes;
};

static int m_read(void *c, uint64_t off, void *buf, size_t len)
{
	struct mem_store *m = c;
	memcpy(buf, m->data + off, len);
	return 0;
}

static int m_write(void *c, uint64_t off, const void *buf, size_t len)
{
	struct mem_store *m = c;
	memcpy(m->data + off, buf, len);
	m->writes++;
	return 0;
}

static int m_flush(void *c)
{
	((struct mem_store *)c)->flushes++;
	return 0;
}

static void m_close(void *c)
{
	struct mem_store *m = c;
	free(m->data);
	m->data = NULL;
}

static const struct blk_backend_ops mem_ops = {
	.read = m_read, .write = m_write, .flush = m_flush, .close = m_close,
};

static uint8_t key[64];

static void open_xts(struct blk_backend *x, struct mem_store *m, uint32_t unit)
{
	char err[128];
	m->data = calloc(1, STORE_SIZE);
	m->writes = m->flushes = 0;
	struct blk_backend lower = { &mem_ops, m, STORE_SIZE, 512 };
	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(blk_xts_open(x, &lower, key, unit, err, sizeof(err)), 0);
}

/* Independent XTS: T = E_K2(tweak), C_j = E_K1(P_j ^ T) ^ T, T *= alpha. */
static void reference_xts(const uint8_t *k, uint64_t sector, const uint8_t *in, uint8_t *out,
			  size_t len)
{
	EVP_CIPHER_CTX *c1 = EVP_CIPHER_CTX_new(), *c2 = EVP_CIPHER_CTX_new();
	uint8_t t[16] = { 0 }, tw[16] = { 0 };
	int outl;
	for (int i = 0; i < 8; i++)
		tw[i] = (uint8_t)(sector >> (8 * i));
	EVP_EncryptInit_ex(c1, EVP_aes_256_ecb(), NULL, k, NULL);
	EVP_EncryptInit_ex(c2, EVP_aes_256_ecb(), NULL, k + 32, NULL);
	EVP_CIPHER_CTX_set_padding(c1, 0);
	EVP_CIPHER_CTX_set_padding(c2, 0);
	EVP_EncryptUpdate(c2, t, &outl, tw, 16);
	for (size_t j = 0; j < len; j += 16) {
		uint8_t pp[16], cc[16];
		for (int i = 0; i < 16; i++)
			pp[i] = in[j + i] ^ t[i];
		EVP_EncryptUpdate(c1, cc, &outl, pp, 16);
		for (int i = 0; i < 16; i++)
			out[j + i] = cc[i] ^ t[i];
		int carry = t[15] >> 7;
		for (int i = 15; i > 0; i--)
			t[i] = (uint8_t)((t[i] << 1) | (t[i - 1] >> 7));
		t[0] = (uint8_t)((t[0] << 1) ^ (carry ? 0x87 : 0));
	}
	EVP_CIPHER_CTX_free(c1);
	EVP_CIPHER_CTX_free(c2);
}

static void test_roundtrip_ciphertext_only(void **state)
{
	struct mem_store m;
	struct blk_backend x;
	static uint8_t plain[64 * 1024], back[64 * 1024];
	(void)state;
	open_xts(&x, &m, 4096);
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = "FLINT-PLAINTEXT!"[i % 16];
	assert_int_equal(x.ops->write(x.ctx, 8192, plain, sizeof(plain)), 0);
	/* The pattern is nowhere in the store (EBS-3). */
	assert_null(memmem(m.data, STORE_SIZE, "FLINT-PLAINTEXT!", 16));
	assert_int_equal(x.ops->read(x.ctx, 8192, back, sizeof(back)), 0);
	assert_memory_equal(plain, back, sizeof(plain));
	/* Same plaintext in two sectors: different ciphertext (the tweak). */
	assert_memory_not_equal(m.data + 8192, m.data + 8192 + 4096, 4096);
	assert_int_equal(x.ops->flush(x.ctx), 0);
	assert_int_equal(m.flushes, 1);
	x.ops->close(x.ctx);
}

static void test_matches_reference(void **state)
{
	struct mem_store m;
	struct blk_backend x;
	static uint8_t plain[512], expect[512];
	(void)state;
	open_xts(&x, &m, 512);
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)i;
	assert_int_equal(x.ops->write(x.ctx, 3 * 512, plain, sizeof(plain)), 0);
	reference_xts(key, 3, plain, expect, sizeof(plain));
	assert_memory_equal(m.data + 3 * 512, expect, sizeof(expect));
	x.ops->close(x.ctx);
}

static void test_write_zeroes_reads_zero(void **state)
{
	struct mem_store m;
	struct blk_backend x;
	static uint8_t buf[8192], zero[8192];
	(void)state;
	open_xts(&x, &m, 4096);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(x.ops->write(x.ctx, 0, buf, sizeof(buf)), 0);
	assert_int_equal(x.ops->write_zeroes(x.ctx, 0, sizeof(buf)), 0);
	assert_int_equal(x.ops->read(x.ctx, 0, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, zero, sizeof(buf));
	/* ... and the store holds encrypted zeros, not zeros. */
	assert_memory_not_equal(m.data, zero, 4096);
	x.ops->close(x.ctx);
}

static void test_rejects(void **state)
{
	struct mem_store m;
	struct blk_backend x;
	uint8_t buf[4096];
	char err[128];
	(void)state;
	open_xts(&x, &m, 4096);
	assert_int_equal(x.ops->read(x.ctx, 512, buf, 4096), -EINVAL);
	assert_int_equal(x.ops->write(x.ctx, 0, buf, 100), -EINVAL);
	assert_int_equal(x.ops->read(x.ctx, STORE_SIZE, buf, 4096), -EINVAL);
	assert_int_equal(x.ops->write(x.ctx, ~0ULL - 4095, buf, 4096), -EINVAL);
	assert_int_equal(x.ops->discard(x.ctx, 0, 4096), -EOPNOTSUPP);
	x.ops->close(x.ctx);

	struct blk_backend lower = { &mem_ops, &m, STORE_SIZE, 512 };
	uint8_t same[64];
	memset(same, 0x42, sizeof(same));
	assert_int_equal(blk_xts_open(&x, &lower, same, 4096, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "equal"));
	assert_int_equal(blk_xts_open(&x, &lower, key, 1000, err, sizeof(err)), -1);
}

static void test_key_mem(void **state)
{
	struct key_mem k;
	(void)state;
	assert_int_equal(key_mem_alloc(&k), 0);
	assert_int_equal(key_mem_generate(&k), 0);
	uint8_t zero[XTS_KEY_BYTES] = { 0 };
	assert_memory_not_equal(k.page, zero, XTS_KEY_BYTES);
	key_mem_free(&k);
	assert_null(k.page);
	key_mem_free(&k); /* idempotent */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_ciphertext_only),
		cmocka_unit_test(test_matches_reference),
		cmocka_unit_test(test_write_zeroes_reads_zero),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_key_mem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
