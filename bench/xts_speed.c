/*
 * flint-xts-speed: single-thread throughput of card-ebs's encryption layer
 * (cards/crypt/blk_xts.c: per-sector tweak, bounce buffer, the same code
 * path as a guest write) over an in-memory store, in MB/s, for comparison
 * with `openssl speed -evp aes-256-xts` on the same core.
 * usage: flint-xts-speed [SECONDS] [SECTOR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blk_xts.h"

#define STORE (64U << 20)
#define IO (1U << 20)


/*
 * The store is a sink: what is measured is the encryption layer's own cost
 * (tweaks, cipher calls, bounce buffer), not a memory copy the real storage
 * transport would do anyway.
 */
static int m_read(void *c, uint64_t off, void *buf, size_t len)
{
	(void)c;
	(void)off;
	(void)buf;
	(void)len;
	return 0;
}

static int m_write(void *c, uint64_t off, const void *buf, size_t len)
{
	(void)c;
	(void)off;
	(void)buf;
	(void)len;
	return 0;
}

static int m_flush(void *c)
{
	(void)c;
	return 0;
}

static const struct blk_backend_ops mem_ops = { .read = m_read, .write = m_write, .flush = m_flush };

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3.0;
	uint32_t sector = argc > 2 ? (uint32_t)atoi(argv[2]) : 4096;
	uint8_t key[64];
	char err[128];
	struct blk_backend lower = { &mem_ops, NULL, STORE, 512 }, x;
	static uint8_t buf[IO];

	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 13 + 7);
	memset(buf, 0xa5, sizeof(buf));
	if (blk_xts_open(&x, &lower, key, sector, err, sizeof(err)) != 0) {
		fprintf(stderr, "flint-xts-speed: %s\n", err);
		return 1;
	}
	for (int dir = 0; dir < 2; dir++) {
		double t0 = now(), t;
		uint64_t bytes = 0, off = 0;
		do {
			int r = dir == 0 ? x.ops->write(x.ctx, off, buf, IO)
					 : x.ops->read(x.ctx, off, buf, IO);
			if (r != 0)
				return 1;
			bytes += IO;
			off = (off + IO) % STORE;
			t = now() - t0;
		} while (t < secs);
		printf("xts_%s_mbps=%.0f\n", dir == 0 ? "encrypt" : "decrypt", (double)bytes / t / 1e6);
	}
	return 0;
}
