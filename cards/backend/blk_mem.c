#include "blk_mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct blk_mem {
	pthread_mutex_t lock;
	uint64_t size;
	uint8_t *data;
};

static int range_ok(const struct blk_mem *m, uint64_t off, uint64_t len)
{
	return off <= m->size && len <= m->size - off;
}

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct blk_mem *m = ctx;
	if (!range_ok(m, off, len))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	memcpy(buf, m->data + off, len);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int mem_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct blk_mem *m = ctx;
	if (!range_ok(m, off, len))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	memcpy(m->data + off, buf, len);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int mem_flush(void *ctx)
{
	(void)ctx;
	return 0;
}

static int mem_zero(void *ctx, uint64_t off, uint64_t len)
{
	struct blk_mem *m = ctx;
	if (!range_ok(m, off, len))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	memset(m->data + off, 0, len);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void mem_close(void *ctx)
{
	struct blk_mem *m = ctx;
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->data);
	free(m);
}

static const struct blk_backend_ops blk_mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.flush = mem_flush,
	.discard = mem_zero,
	.write_zeroes = mem_zero,
	.close = mem_close,
};

int blk_mem_create(struct blk_backend *be, uint64_t size_bytes,
		   uint32_t block_size)
{
	if ((block_size != 512 && block_size != 4096) || size_bytes == 0 ||
	    size_bytes % block_size != 0 || size_bytes > SIZE_MAX / 2)
		return -EINVAL;
	struct blk_mem *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->data = calloc(1, (size_t)size_bytes);
	if (m->data == NULL) {
		free(m);
		return -ENOMEM;
	}
	m->size = size_bytes;
	pthread_mutex_init(&m->lock, NULL);
	*be = (struct blk_backend){
		.ops = &blk_mem_ops,
		.ctx = m,
		.size_bytes = size_bytes,
		.block_size = block_size,
	};
	return 0;
}

uint8_t *blk_mem_data(const struct blk_backend *be)
{
	return ((struct blk_mem *)be->ctx)->data;
}
