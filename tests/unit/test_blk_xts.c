/*
 * The XTS layer: storage below sees only ciphertext, reads return the
 * plaintext, the tweak is the sector number, and the result matches an
 * independent XTS computed here from AES-256-ECB (IEEE 1619).
 */
#include <errno.h>
#include <pthread.h>
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

/*
 * An asynchronous store: submit() queues, a thread of its own completes
 * (newest first, so out of order), as the NBD client's receiver does.
 * refuse > 0: that many submits are not accepted.
 */
#define AQ 64
struct async_store {
	struct mem_store m;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct blk_aio *q[AQ];
	int n, stop, refuse;
	pthread_t thread;
};

static void *async_main(void *arg)
{
	struct async_store *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stop || a->n > 0) {
		if (a->n == 0) {
			pthread_cond_wait(&a->cv, &a->lock);
			continue;
		}
		struct blk_aio *io = a->q[--a->n];
		pthread_mutex_unlock(&a->lock);
		if (io->write)
			m_write(&a->m, io->offset, io->buf, io->len);
		else
			m_read(&a->m, io->offset, io->buf, io->len);
		io->done(io, 0);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static int a_submit(void *c, struct blk_aio *io)
{
	struct async_store *a = c;
	pthread_mutex_lock(&a->lock);
	int r = 0;
	if (a->refuse > 0) {
		a->refuse--;
		r = -EOPNOTSUPP;
	} else {
		assert_true(a->n < AQ);
		a->q[a->n++] = io;
		pthread_cond_signal(&a->cv);
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}

static const struct blk_backend_ops async_ops = {
	.read = m_read, .write = m_write, .flush = m_flush, .close = m_close, .submit = a_submit,
};

struct xts_req {
	struct blk_aio io;
	int result;
	pthread_t thread;
};
static pthread_mutex_t req_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t req_cv = PTHREAD_COND_INITIALIZER;
static int req_done;

static void req_complete(struct blk_aio *io, int result)
{
	struct xts_req *r = (struct xts_req *)io;
	pthread_mutex_lock(&req_lock);
	r->result = result;
	r->thread = pthread_self();
	req_done++;
	pthread_cond_broadcast(&req_cv);
	pthread_mutex_unlock(&req_lock);
}

static void req_wait(int n)
{
	pthread_mutex_lock(&req_lock);
	while (req_done < n)
		pthread_cond_wait(&req_cv, &req_lock);
	pthread_mutex_unlock(&req_lock);
}

/*
 * submit through the XTS layer: more requests than it has slots (the
 * extra ones wait for a completion to free one), ciphertext below,
 * plaintext back, decrypted on the completing thread; a request below
 * refuses is refused above with its slot given back.
 */
static void test_async(void **state)
{
	enum { N = 24, LEN = 4096 };
	static struct async_store a;
	static uint8_t plain[N][LEN], back[N][LEN];
	static struct xts_req req[N];
	struct blk_backend x;
	char err[128];
	(void)state;
	memset(&a, 0, sizeof(a));
	a.m.data = calloc(1, STORE_SIZE);
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.cv, NULL);
	assert_int_equal(pthread_create(&a.thread, NULL, async_main, &a), 0);
	struct blk_backend lower = { &async_ops, &a, STORE_SIZE, 512 };
	assert_int_equal(blk_xts_open(&x, &lower, key, 4096, err, sizeof(err)), 0);
	assert_non_null(x.ops->submit);
	req_done = 0;
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < LEN; j++)
			plain[i][j] = "FLINT-PLAINTEXT!"[j % 16] ^ (uint8_t)i;
		req[i].io = (struct blk_aio){ .write = true, .offset = (uint64_t)i * LEN, .len = LEN,
					      .buf = plain[i], .done = req_complete };
		assert_int_equal(x.ops->submit(x.ctx, &req[i].io), 0);
	}
	req_wait(N);
	assert_null(memmem(a.m.data, STORE_SIZE, "FLINT-PLAINTEXT!", 16));
	for (int i = 0; i < N; i++) {
		assert_int_equal(req[i].result, 0);
		req[i].io = (struct blk_aio){ .offset = (uint64_t)i * LEN, .len = LEN,
					      .buf = back[i], .done = req_complete };
		assert_int_equal(x.ops->submit(x.ctx, &req[i].io), 0);
	}
	req_wait(2 * N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(req[i].result, 0);
		assert_true(pthread_equal(req[i].thread, a.thread));
		assert_memory_equal(plain[i], back[i], LEN);
	}
	/* The synchronous path reads the same plaintext. */
	assert_int_equal(x.ops->read(x.ctx, 0, back[0], LEN), 0);
	assert_memory_equal(plain[0], back[0], LEN);
	/* Refused below: refused here, and no slot is lost (N more go through). */
	a.refuse = 17;
	for (int i = 0; i < 17; i++)
		assert_int_equal(x.ops->submit(x.ctx, &req[0].io), -EOPNOTSUPP);
	for (int i = 0; i < N; i++)
		assert_int_equal(x.ops->submit(x.ctx, &req[i].io), 0);
	req_wait(3 * N);
	/* Larger than a bounce buffer: not taken (read/write chunk it). */
	struct blk_aio big = { .len = 1u << 20, .buf = back, .done = req_complete };
	assert_int_equal(x.ops->submit(x.ctx, &big), -EOPNOTSUPP);
	pthread_mutex_lock(&a.lock);
	a.stop = 1;
	pthread_cond_signal(&a.cv);
	pthread_mutex_unlock(&a.lock);
	pthread_join(a.thread, NULL);
	x.ops->close(x.ctx);
}

/* Over a synchronous store the layer offers no submit. */
static void test_no_async_over_sync(void **state)
{
	struct mem_store m;
	struct blk_backend x;
	(void)state;
	open_xts(&x, &m, 4096);
	assert_null(x.ops->submit);
	x.ops->close(x.ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_ciphertext_only),
		cmocka_unit_test(test_matches_reference),
		cmocka_unit_test(test_write_zeroes_reads_zero),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_key_mem),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_no_async_over_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
