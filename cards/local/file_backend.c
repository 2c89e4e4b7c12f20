#include "file_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_store {
	int fd;
};

static int f_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct file_store *f = ctx;
	for (size_t done = 0; done < len;) {
		ssize_t r = pread(f->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) { /* past a sparse end: zeros */
			memset((uint8_t *)buf + done, 0, len - done);
			break;
		}
		done += (size_t)r;
	}
	return 0;
}

static int f_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct file_store *f = ctx;
	for (size_t done = 0; done < len;) {
		ssize_t r = pwrite(f->fd, (const uint8_t *)buf + done, len - done,
				   (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (size_t)r;
	}
	return 0;
}

static int f_flush(void *ctx)
{
	struct file_store *f = ctx;
	return fdatasync(f->fd) == 0 ? 0 : -errno;
}

static int zero_by_writing(struct file_store *f, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int r = f_write(f, off, zeros, n);
		if (r != 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int f_write_zeroes(void *ctx, uint64_t off, uint64_t len)
{
	struct file_store *f = ctx;
	if (fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	return zero_by_writing(f, off, len);
}

static int f_discard(void *ctx, uint64_t off, uint64_t len)
{
	struct file_store *f = ctx;
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
	return -EOPNOTSUPP;
}

static void f_close(void *ctx)
{
	struct file_store *f = ctx;
	close(f->fd);
	free(f);
}

static const struct blk_backend_ops file_ops = {
	.read = f_read,
	.write = f_write,
	.flush = f_flush,
	.discard = f_discard,
	.write_zeroes = f_write_zeroes,
	.close = f_close,
};

static int store_size(int fd, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size);
	*size = (uint64_t)st.st_size;
	return 0;
}

int file_backend_open(struct blk_backend *out, const char *path, uint64_t size,
		      uint32_t block_size, char *err, size_t errlen)
{
	if (block_size != 512 && block_size != 4096) {
		snprintf(err, errlen, "block size %u: use 512 or 4096", block_size);
		return -1;
	}
	int fd = open(path, O_RDWR | O_CLOEXEC | (size ? O_CREAT : 0), 0600);
	uint64_t have = 0;
	if (fd < 0 || store_size(fd, &have) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (size != 0 && have < size && ftruncate(fd, (off_t)size) != 0) {
		snprintf(err, errlen, "%s: cannot size to %llu bytes: %s", path,
			 (unsigned long long)size, strerror(errno));
		close(fd);
		return -1;
	}
	uint64_t usable = (size ? size : have) / block_size * block_size;
	if (usable == 0) {
		snprintf(err, errlen, "%s: empty store", path);
		close(fd);
		return -1;
	}
	struct file_store *f = malloc(sizeof(*f));
	if (f == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	f->fd = fd;
	*out = (struct blk_backend){ &file_ops, f, usable, block_size };
	return 0;
}
