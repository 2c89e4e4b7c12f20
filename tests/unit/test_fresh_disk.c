/*
 * card-local's device reads as a new disk (IST-5, cards/local/fresh_disk.c):
 * over a store full of an earlier tenant's data it reads zeros, without
 * reading the store; written blocks read back; writes smaller than a
 * granule keep the rest of the granule zero; concurrent first writes into
 * one granule keep every writer's data.
 */
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk_xts.h"
#include "file_backend.h"
#include "fresh_disk.h"

#define STORE (1u << 20)
#define OLD 0xa5

/* An in-memory store that counts what reaches it. */
struct mem_store {
	uint8_t data[STORE];
	unsigned int reads, writes, zeroes;
	bool slow; /* widens the window between a writer's check and its write */
};

static int m_read(void *c, uint64_t off, void *buf, size_t len)
{
	struct mem_store *m = c;
	__atomic_add_fetch(&m->reads, 1, __ATOMIC_RELAXED);
	memcpy(buf, m->data + off, len);
	return 0;
}

static int m_write(void *c, uint64_t off, const void *buf, size_t len)
{
	struct mem_store *m = c;
	__atomic_add_fetch(&m->writes, 1, __ATOMIC_RELAXED);
	if (m->slow)
		usleep(100);
	memcpy(m->data + off, buf, len);
	return 0;
}

static int m_zeroes(void *c, uint64_t off, uint64_t len)
{
	struct mem_store *m = c;
	m->zeroes++;
	memset(m->data + off, 0, len);
	return 0;
}

static int m_flush(void *c)
{
	(void)c;
	return 0;
}

static void m_close(void *c)
{
	(void)c;
}

static const struct blk_backend_ops mem_ops = {
	.read = m_read, .write = m_write, .flush = m_flush, .close = m_close,
	.write_zeroes = m_zeroes, .discard = m_zeroes,
};

/* A fresh device of `sector`-byte blocks over a store full of old data. */
static struct mem_store *open_over_old(struct blk_backend *dev, uint32_t sector)
{
	static struct mem_store m;
	char err[128];
	memset(&m, 0, sizeof(m));
	memset(m.data, OLD, sizeof(m.data));
	struct blk_backend lower = { &mem_ops, &m, STORE, sector };
	assert_int_equal(fresh_disk_open(dev, &lower, err, sizeof(err)), 0);
	return &m;
}

static void assert_filled(const uint8_t *p, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			fail_msg("byte %zu is 0x%02x, want 0x%02x", i, p[i], v);
}

static void test_old_data_reads_as_zeros(void **state)
{
	(void)state;
	struct blk_backend d;
	static uint8_t buf[STORE];
	struct mem_store *m = open_over_old(&d, 4096);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(d.ops->read(d.ctx, 0, buf, STORE), 0);
	assert_filled(buf, STORE, 0);
	assert_int_equal(m->reads, 0); /* the store was not read at all */
	/* Write-zeroes and discard of unwritten blocks do not reach it either. */
	assert_int_equal(d.ops->write_zeroes(d.ctx, 8192, 65536), 0);
	assert_int_equal(d.ops->discard(d.ctx, 0, STORE), 0);
	assert_int_equal(m->zeroes, 0);
	d.ops->close(d.ctx);
}

static void test_written_blocks_read_back(void **state)
{
	(void)state;
	struct blk_backend d;
	uint8_t data[3 * 4096], back[6 * 4096];
	struct mem_store *m = open_over_old(&d, 4096);
	memset(data, 0x3c, sizeof(data));
	assert_int_equal(d.ops->write(d.ctx, 2 * 4096, data, sizeof(data)), 0);
	/* A read over unwritten, written, unwritten: zeros, data, zeros. */
	assert_int_equal(d.ops->read(d.ctx, 0, back, sizeof(back)), 0);
	assert_filled(back, 2 * 4096, 0);
	assert_memory_equal(back + 2 * 4096, data, sizeof(data));
	assert_filled(back + 5 * 4096, 4096, 0);
	assert_int_equal(m->reads, 1); /* only the written run */
	/* Write-zeroes reaches the store where the instance wrote. */
	assert_int_equal(d.ops->write_zeroes(d.ctx, 0, 4 * 4096), 0);
	assert_int_equal(m->zeroes, 1);
	assert_int_equal(d.ops->read(d.ctx, 0, back, sizeof(back)), 0);
	assert_filled(back, 4 * 4096, 0);
	assert_memory_equal(back + 4 * 4096, data, 4096);
	d.ops->close(d.ctx);
}

static void test_partial_granules(void **state)
{
	(void)state;
	struct blk_backend d;
	uint8_t data[8192], back[4 * 4096];
	struct mem_store *m = open_over_old(&d, 512);
	memset(data, 0x11, sizeof(data));
	/* One sector inside an unwritten granule: the whole granule is written. */
	assert_int_equal(d.ops->write(d.ctx, 1024, data, 512), 0);
	assert_filled(m->data, 1024, 0);
	assert_filled(m->data + 1536, 4096 - 1536, 0);
	assert_int_equal(d.ops->read(d.ctx, 0, back, 4096), 0);
	assert_filled(back, 1024, 0);
	assert_filled(back + 1024, 512, 0x11);
	assert_filled(back + 1536, 4096 - 1536, 0);
	/* A second sector in the now written granule leaves the first alone. */
	memset(data, 0x22, sizeof(data));
	assert_int_equal(d.ops->write(d.ctx, 2048, data, 512), 0);
	assert_int_equal(d.ops->read(d.ctx, 0, back, 4096), 0);
	assert_filled(back + 1024, 512, 0x11);
	assert_filled(back + 2048, 512, 0x22);
	assert_filled(back + 2560, 4096 - 2560, 0);
	/* Across three granules: written head, whole middle, unwritten tail. */
	memset(data, 0x33, sizeof(data));
	assert_int_equal(d.ops->write(d.ctx, 3584, data, 512 + 4096 + 1024), 0);
	assert_int_equal(d.ops->read(d.ctx, 0, back, sizeof(back)), 0);
	assert_filled(back + 1024, 512, 0x11);
	assert_filled(back + 2048, 512, 0x22);
	assert_filled(back + 3584, 512 + 4096 + 1024, 0x33);
	assert_filled(back + 2 * 4096 + 1024, 3072 + 4096, 0);
	assert_filled(m->data + 2 * 4096 + 1024, 3072, 0); /* the store's tail too */
	assert_filled(m->data + 3 * 4096, 4096, OLD);        /* never touched */
	d.ops->close(d.ctx);
}

struct writer {
	struct blk_backend *d;
	unsigned int slot;
};

/* Each writer owns one 512-byte sector in each of 256 granules. */
static void *write_sectors(void *arg)
{
	struct writer *w = arg;
	uint8_t data[512];
	memset(data, 0x40 + (int)w->slot, sizeof(data));
	for (uint64_t g = 0; g < 256; g++)
		assert_int_equal(w->d->ops->write(w->d->ctx, g * 4096 + w->slot * 512, data, 512), 0);
	return NULL;
}

static void test_concurrent_first_writes(void **state)
{
	(void)state;
	struct blk_backend d;
	pthread_t t[8];
	struct writer w[8];
	uint8_t back[4096];
	open_over_old(&d, 512)->slow = true;
	for (unsigned int i = 0; i < 8; i++) {
		w[i] = (struct writer){ &d, i };
		assert_int_equal(pthread_create(&t[i], NULL, write_sectors, &w[i]), 0);
	}
	for (unsigned int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	for (uint64_t g = 0; g < 256; g++) {
		assert_int_equal(d.ops->read(d.ctx, g * 4096, back, sizeof(back)), 0);
		for (unsigned int i = 0; i < 8; i++)
			assert_filled(back + i * 512, 512, (uint8_t)(0x40 + i));
	}
	d.ops->close(d.ctx);
}

/*
 * card-local's whole stack: a store file an earlier tenant filled under its
 * key; a new key over it reads zeros through fresh_disk (and garbage
 * without it: the check is not vacuous).
 */
static void test_new_tenant_over_file(void **state)
{
	(void)state;
	char path[64], err[128];
	uint8_t key[2][64], buf[8192], back[8192];
	struct blk_backend store, xts, dev;
	for (int i = 0; i < 64; i++) {
		key[0][i] = (uint8_t)(i + 1);
		key[1][i] = (uint8_t)(0x80 + i * 3);
	}
	snprintf(path, sizeof(path), "/tmp/flint-fresh-disk.%d", (int)getpid());
	unlink(path);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(file_backend_open(&store, path, STORE, 512, err, sizeof(err)), 0);
	assert_int_equal(blk_xts_open(&xts, &store, key[0], 512, err, sizeof(err)), 0);
	for (uint64_t off = 0; off < STORE; off += sizeof(buf))
		assert_int_equal(xts.ops->write(xts.ctx, off, buf, sizeof(buf)), 0);
	xts.ops->close(xts.ctx);

	/* The next tenant, without the layer: the old ciphertext, decrypted. */
	assert_int_equal(file_backend_open(&store, path, 0, 512, err, sizeof(err)), 0);
	assert_int_equal(blk_xts_open(&xts, &store, key[1], 512, err, sizeof(err)), 0);
	assert_int_equal(xts.ops->read(xts.ctx, 0, back, sizeof(back)), 0);
	uint8_t zero[8192] = { 0 };
	assert_memory_not_equal(back, zero, sizeof(back));
	/* With it: zeros; then a 512-byte write, read back inside zeros. */
	assert_int_equal(fresh_disk_open(&dev, &xts, err, sizeof(err)), 0);
	assert_int_equal(dev.ops->read(dev.ctx, 0, back, sizeof(back)), 0);
	assert_memory_equal(back, zero, sizeof(back));
	assert_int_equal(dev.ops->write(dev.ctx, 4096 + 512, buf, 512), 0);
	assert_int_equal(dev.ops->read(dev.ctx, 0, back, sizeof(back)), 0);
	assert_filled(back, 4096 + 512, 0);
	assert_filled(back + 4096 + 512, 512, 0x5a);
	assert_filled(back + 4096 + 1024, 8192 - 4096 - 1024, 0);
	dev.ops->close(dev.ctx);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_old_data_reads_as_zeros),
		cmocka_unit_test(test_written_blocks_read_back),
		cmocka_unit_test(test_partial_granules),
		cmocka_unit_test(test_concurrent_first_writes),
		cmocka_unit_test(test_new_tenant_over_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
