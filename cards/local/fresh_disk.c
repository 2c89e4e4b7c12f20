#include "fresh_disk.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "written_map.h"

#define G FRESH_DISK_GRANULE
/* First writes lock the regions they touch: STRIPES locks, REGION granules each. */
#define STRIPES 64u
#define REGION 32u

struct fresh_disk {
	struct blk_backend lower;
	struct blk_backend_ops ops;
	struct written_map map;
	pthread_mutex_t stripe[STRIPES];
};

static int check_range(const struct fresh_disk *d, uint64_t off, uint64_t len)
{
	uint32_t bs = d->lower.block_size;
	if (off % bs != 0 || len % bs != 0 || off > d->lower.size_bytes ||
	    len > d->lower.size_bytes - off)
		return -EINVAL;
	return 0;
}

static bool all_written(const struct fresh_disk *d, uint64_t first, uint64_t last)
{
	bool w;
	uint64_t n = last - first + 1;
	return written_map_run(&d->map, first, n, &w) == n && w;
}

/*
 * Where the run of granules starting at pos that are all written, or all
 * not, ends (at most at end); *written says which it is.
 */
static uint64_t run_end(const struct fresh_disk *d, uint64_t pos, uint64_t end, bool *written)
{
	uint64_t g = pos / G;
	uint64_t run = written_map_run(&d->map, g, (end - 1) / G - g + 1, written);
	return (g + run) * G < end ? (g + run) * G : end;
}

static int fd_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct fresh_disk *d = ctx;
	uint64_t pos = off, end = off + len;
	int r = check_range(d, off, len);

	while (r == 0 && pos < end) {
		bool w;
		uint64_t stop = run_end(d, pos, end, &w);
		uint8_t *at = (uint8_t *)buf + (pos - off);
		if (w)
			r = d->lower.ops->read(d->lower.ctx, pos, at, stop - pos);
		else
			memset(at, 0, stop - pos);
		pos = stop;
	}
	return r;
}

/* The stripes of regions first..last, locked in ascending order. */
static void stripes_lock(struct fresh_disk *d, uint64_t first, uint64_t last, bool lock)
{
	uint64_t r0 = first / G / REGION, r1 = last / G / REGION;
	unsigned int lo = (unsigned int)(r0 % STRIPES), hi = (unsigned int)(r1 % STRIPES);
	for (unsigned int i = 0; i < STRIPES; i++) {
		bool mine = r1 - r0 + 1 >= STRIPES || (lo <= hi ? i >= lo && i <= hi
								  : i >= lo || i <= hi);
		if (mine && lock)
			pthread_mutex_lock(&d->stripe[i]);
		else if (mine)
			pthread_mutex_unlock(&d->stripe[i]);
	}
}

/*
 * A piece of a write inside one granule.  A granule not yet written is
 * written whole: the piece's data in the zeros it reads as.
 */
static int write_in_granule(struct fresh_disk *d, uint64_t off, const uint8_t *buf, size_t len)
{
	uint64_t gs = off / G * G;
	uint64_t ge = gs + G < d->lower.size_bytes ? gs + G : d->lower.size_bytes;
	uint8_t whole[G];

	if ((off == gs && off + len == ge) || written_map_test(&d->map, gs / G))
		return d->lower.ops->write(d->lower.ctx, off, buf, len);
	memset(whole, 0, sizeof(whole));
	memcpy(whole + (off - gs), buf, len);
	int r = d->lower.ops->write(d->lower.ctx, gs, whole, ge - gs);
	explicit_bzero(whole, sizeof(whole));
	return r;
}

/* Head and tail granules (maybe partly covered), whole granules between. */
static int write_widening(struct fresh_disk *d, uint64_t off, const uint8_t *buf, size_t len)
{
	uint64_t end = off + len;
	uint64_t head_end = (off / G + 1) * G < end ? (off / G + 1) * G : end;
	int r = write_in_granule(d, off, buf, head_end - off);
	if (r != 0 || head_end == end)
		return r;
	uint64_t tail = (end - 1) / G * G;
	if (tail > head_end) {
		r = d->lower.ops->write(d->lower.ctx, head_end, buf + (head_end - off),
					tail - head_end);
		if (r != 0)
			return r;
	}
	return write_in_granule(d, tail, buf + (tail - off), end - tail);
}

static int fd_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct fresh_disk *d = ctx;
	int r = check_range(d, off, len);
	if (r != 0 || len == 0)
		return r;
	uint64_t first = off / G, last = (off + len - 1) / G;
	/* Whole-granule sectors never widen; written granules need not. */
	if (d->lower.block_size >= G || all_written(d, first, last)) {
		r = d->lower.ops->write(d->lower.ctx, off, buf, len);
		return r != 0 ? r : written_map_set(&d->map, first, last - first + 1);
	}
	stripes_lock(d, off, off + len - 1, true);
	r = write_widening(d, off, buf, len);
	if (r == 0)
		r = written_map_set(&d->map, first, last - first + 1);
	stripes_lock(d, off, off + len - 1, false);
	return r;
}

/* Runs op on the written parts of the range; unwritten parts already read as zeros. */
static int on_written(struct fresh_disk *d, uint64_t off, uint64_t len,
		      int (*op)(void *, uint64_t, uint64_t))
{
	uint64_t pos = off, end = off + len;
	int r = check_range(d, off, len);

	while (r == 0 && pos < end) {
		bool w;
		uint64_t stop = run_end(d, pos, end, &w);
		if (w)
			r = op(d->lower.ctx, pos, stop - pos);
		pos = stop;
	}
	return r;
}

static int fd_write_zeroes(void *ctx, uint64_t off, uint64_t len)
{
	struct fresh_disk *d = ctx;
	return on_written(d, off, len, d->lower.ops->write_zeroes);
}

static int fd_discard(void *ctx, uint64_t off, uint64_t len)
{
	struct fresh_disk *d = ctx;
	return on_written(d, off, len, d->lower.ops->discard);
}

static int fd_flush(void *ctx)
{
	struct fresh_disk *d = ctx;
	return d->lower.ops->flush(d->lower.ctx);
}

static void fd_close(void *ctx)
{
	struct fresh_disk *d = ctx;
	for (unsigned int i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&d->stripe[i]);
	written_map_free(&d->map);
	d->lower.ops->close(d->lower.ctx);
	free(d);
}

int fresh_disk_open(struct blk_backend *out, struct blk_backend *lower, char *err,
		    size_t errlen)
{
	struct fresh_disk *d = calloc(1, sizeof(*d));
	if (d == NULL || written_map_init(&d->map, (lower->size_bytes + G - 1) / G) != 0) {
		free(d);
		snprintf(err, errlen, "fresh disk: out of memory");
		return -1;
	}
	d->lower = *lower;
	d->ops = (struct blk_backend_ops){
		.read = fd_read, .write = fd_write, .flush = fd_flush, .close = fd_close,
		.write_zeroes = lower->ops->write_zeroes ? fd_write_zeroes : NULL,
		.discard = lower->ops->discard ? fd_discard : NULL,
	};
	for (unsigned int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&d->stripe[i], NULL);
	*out = (struct blk_backend){
		.ops = &d->ops, .ctx = d, .size_bytes = lower->size_bytes,
		.block_size = lower->block_size,
	};
	return 0;
}
