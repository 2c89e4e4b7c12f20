#include "virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "log.h"

#define SECTOR 512u

int vblk_init(struct vblk *dev, struct blk_backend *be, uint16_t num_queues,
	      const char *serial, pthread_mutex_t *be_lock)
{
	memset(dev, 0, sizeof(*dev));
	if (be == NULL || be->ops == NULL || be->ops->read == NULL ||
	    be->ops->write == NULL || be->ops->flush == NULL ||
	    (be->block_size != 512 && be->block_size != 4096) ||
	    be->size_bytes == 0 || be->size_bytes % be->block_size != 0 ||
	    num_queues == 0 || num_queues > VBLK_MAX_QUEUES)
		return -EINVAL;
	dev->be = be;
	dev->be_lock = be_lock;
	dev->num_queues = num_queues;
	if (serial != NULL)
		memcpy(dev->id, serial, strnlen(serial, sizeof(dev->id)));
	return 0;
}

uint64_t vblk_features(const struct vblk *dev)
{
	uint64_t f = (1ull << VIRTIO_F_VERSION_1) |
		     (1ull << VIRTIO_BLK_F_SEG_MAX) |
		     (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		     (1ull << VIRTIO_BLK_F_FLUSH) |
		     (1ull << VIRTIO_BLK_F_MQ) |
		     (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
		     (1ull << VIRTIO_RING_F_EVENT_IDX);
	if (dev->be->ops->discard != NULL)
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (dev->be->ops->write_zeroes != NULL)
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	return f;
}

void vblk_config(const struct vblk *dev, struct virtio_blk_config *cfg)
{
	uint32_t bs = dev->be->block_size;
	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = htole64(dev->be->size_bytes / SECTOR);
	cfg->seg_max = htole32(VQ_MAX_SEGS - 2); /* minus header and status */
	cfg->blk_size = htole32(bs);
	cfg->num_queues = htole16(dev->num_queues);
	if (dev->be->ops->discard != NULL) {
		cfg->max_discard_sectors = htole32(VBLK_MAX_DISCARD_SECTORS);
		cfg->max_discard_seg = htole32(VBLK_MAX_DISCARD_SEG);
		cfg->discard_sector_alignment = htole32(bs / SECTOR);
	}
	if (dev->be->ops->write_zeroes != NULL) {
		cfg->max_write_zeroes_sectors = htole32(VBLK_MAX_DISCARD_SECTORS);
		cfg->max_write_zeroes_seg = htole32(VBLK_MAX_DISCARD_SEG);
	}
}

/* A cursor over a run of segments seen as one byte stream. */
struct stream {
	const struct vq_seg *seg;
	unsigned int n;
	unsigned int i;
	uint32_t off; /* inside seg[i] */
};

static uint64_t seg_total(const struct vq_seg *seg, unsigned int n)
{
	uint64_t t = 0;
	for (unsigned int i = 0; i < n; i++)
		t += seg[i].len;
	return t;
}

static void advance(struct stream *st, uint64_t n)
{
	while (n > 0 && st->i < st->n) {
		uint64_t room = st->seg[st->i].len - st->off;
		uint64_t k = n < room ? n : room;
		st->off += (uint32_t)k;
		n -= k;
		if (st->off == st->seg[st->i].len) {
			st->i++;
			st->off = 0;
		}
	}
}

/* Copy between the stream and a local buffer; the caller checked the length. */
static void stream_copy(struct stream *st, void *local, size_t len, bool to_guest)
{
	uint8_t *p = local;
	while (len > 0 && st->i < st->n) {
		uint8_t *g = st->seg[st->i].ptr + st->off;
		size_t room = st->seg[st->i].len - st->off;
		size_t k = len < room ? len : room;
		if (to_guest)
			memcpy(g, p, k);
		else
			memcpy(p, g, k);
		advance(st, k);
		p += k;
		len -= k;
	}
}

static int be_rw(const struct vblk *dev, bool read, uint64_t off, void *buf,
		 size_t len)
{
	struct blk_backend *be = dev->be;
	if (dev->be_lock)
		pthread_mutex_lock(dev->be_lock);
	int rc = read ? be->ops->read(be->ctx, off, buf, len)
		      : be->ops->write(be->ctx, off, buf, len);
	if (dev->be_lock)
		pthread_mutex_unlock(dev->be_lock);
	return rc;
}

/*
 * Move len bytes (a multiple of the block size) between the disk at off and
 * the stream: whole blocks inside one segment go straight to the backend, a
 * block straddling segments through a one-block bounce buffer.
 */
static int xfer(const struct vblk *dev, struct stream *st, uint64_t off,
		uint64_t len, bool read)
{
	uint32_t bs = dev->be->block_size;
	uint8_t bounce[4096];

	while (len > 0) {
		if (st->i >= st->n)
			return -EINVAL;
		const struct vq_seg *s = &st->seg[st->i];
		uint64_t room = s->len - st->off;
		uint64_t n;
		int rc;
		if (room >= bs) {
			n = room - room % bs;
			if (n > len)
				n = len;
			rc = be_rw(dev, read, off, s->ptr + st->off, (size_t)n);
			if (rc == 0)
				advance(st, n);
		} else {
			n = bs;
			if (read) {
				rc = be_rw(dev, true, off, bounce, bs);
				if (rc == 0)
					stream_copy(st, bounce, bs, true);
			} else {
				stream_copy(st, bounce, bs, false);
				rc = be_rw(dev, false, off, bounce, bs);
			}
		}
		if (rc != 0)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

/* sector and byte length inside the disk and block aligned: byte offset. */
static int check_range(const struct vblk *dev, uint64_t sector, uint64_t len,
		       uint64_t *off)
{
	uint64_t size = dev->be->size_bytes;
	uint32_t bs = dev->be->block_size;
	if (sector > size / SECTOR)
		return -EINVAL;
	*off = sector * SECTOR;
	if (*off % bs != 0 || len % bs != 0 || len > size - *off)
		return -EINVAL;
	return 0;
}

static uint8_t do_discard(const struct vblk *dev, struct stream *rd,
			  uint64_t nbytes, uint32_t type)
{
	const struct blk_backend_ops *ops = dev->be->ops;
	int (*op)(void *, uint64_t, uint64_t) =
		type == VIRTIO_BLK_T_DISCARD ? ops->discard : ops->write_zeroes;
	uint32_t allowed = type == VIRTIO_BLK_T_DISCARD ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	struct virtio_blk_discard_write_zeroes seg[VBLK_MAX_DISCARD_SEG];
	uint64_t off[VBLK_MAX_DISCARD_SEG];

	if (op == NULL)
		return VIRTIO_BLK_S_UNSUPP;
	if (nbytes == 0 || nbytes % sizeof(seg[0]) != 0 ||
	    nbytes / sizeof(seg[0]) > VBLK_MAX_DISCARD_SEG)
		return VIRTIO_BLK_S_IOERR;
	unsigned int n = (unsigned int)(nbytes / sizeof(seg[0]));
	/* Check every segment before touching the disk. */
	for (unsigned int i = 0; i < n; i++) {
		stream_copy(rd, &seg[i], sizeof(seg[i]), false);
		seg[i].sector = le64toh(seg[i].sector);
		seg[i].num_sectors = le32toh(seg[i].num_sectors);
		seg[i].flags = le32toh(seg[i].flags);
		if (seg[i].flags & ~allowed)
			return VIRTIO_BLK_S_UNSUPP;
		if (seg[i].num_sectors > VBLK_MAX_DISCARD_SECTORS ||
		    check_range(dev, seg[i].sector,
				(uint64_t)seg[i].num_sectors * SECTOR, &off[i]) != 0)
			return VIRTIO_BLK_S_IOERR;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (seg[i].num_sectors == 0)
			continue;
		if (dev->be_lock)
			pthread_mutex_lock(dev->be_lock);
		int rc = op(dev->be->ctx, off[i], (uint64_t)seg[i].num_sectors * SECTOR);
		if (dev->be_lock)
			pthread_mutex_unlock(dev->be_lock);
		if (rc != 0)
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

void vblk_parse(const struct vq_req *req, struct vblk_req_hdr *h)
{
	struct virtio_blk_outhdr raw;

	memset(h, 0, sizeof(*h));
	/* A good chain's status byte ends its last (writable) segment. */
	if (req->bad || req->status == NULL || req->nin == 0)
		return;
	uint64_t out_len = seg_total(req->seg, req->nout);
	if (out_len < sizeof(raw))
		return;
	struct stream rd = { .seg = req->seg, .n = req->nout };
	stream_copy(&rd, &raw, sizeof(raw), false);
	h->type = le32toh(raw.type);
	h->sector = le64toh(raw.sector);
	h->out_len = out_len - sizeof(raw);
	h->in_len = seg_total(&req->seg[req->nout], req->nin) - 1;
	h->ok = true;
}

uint32_t vblk_serve(const struct vblk *dev, const struct vq_req *req, uint8_t *status)
{
	struct vblk_req_hdr h;
	vblk_parse(req, &h);
	return vblk_handle(dev, req, &h, status);
}

uint32_t vblk_handle(const struct vblk *dev, const struct vq_req *req,
		     const struct vblk_req_hdr *h, uint8_t *status_out)
{
	uint8_t *status_ptr = req->status;
	uint8_t status = VIRTIO_BLK_S_IOERR;
	uint32_t used = 0;

	if (!h->ok)
		goto done;

	uint64_t out_len = h->out_len, in_len = h->in_len;
	struct stream rd = { .seg = req->seg, .n = req->nout };
	struct stream wr = { .seg = &req->seg[req->nout], .n = req->nin };
	uint64_t off;

	advance(&rd, sizeof(struct virtio_blk_outhdr));
	switch (h->type) {
	case VIRTIO_BLK_T_IN:
		if (out_len != 0 || check_range(dev, h->sector, in_len, &off) != 0)
			break;
		if (xfer(dev, &wr, off, in_len, true) == 0) {
			status = VIRTIO_BLK_S_OK;
			used = (uint32_t)in_len;
		}
		break;
	case VIRTIO_BLK_T_OUT:
		if (in_len != 0 || check_range(dev, h->sector, out_len, &off) != 0)
			break;
		if (xfer(dev, &rd, off, out_len, false) == 0)
			status = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (out_len != 0 || in_len != 0)
			break;
		if (dev->be_lock)
			pthread_mutex_lock(dev->be_lock);
		if (dev->be->ops->flush(dev->be->ctx) == 0)
			status = VIRTIO_BLK_S_OK;
		if (dev->be_lock)
			pthread_mutex_unlock(dev->be_lock);
		break;
	case VIRTIO_BLK_T_GET_ID: {
		if (out_len != 0 || in_len == 0)
			break;
		size_t n = in_len < VIRTIO_BLK_ID_BYTES ? in_len : VIRTIO_BLK_ID_BYTES;
		char id[VIRTIO_BLK_ID_BYTES];
		memcpy(id, dev->id, sizeof(id));
		stream_copy(&wr, id, n, true);
		status = VIRTIO_BLK_S_OK;
		used = (uint32_t)n;
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (in_len != 0)
			break;
		status = do_discard(dev, &rd, out_len, h->type);
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
done:
	if (status_ptr != NULL) {
		__atomic_store_n(status_ptr, status, __ATOMIC_RELAXED);
		used += 1;
	} else {
		used = 0;
	}
	if (status_out != NULL)
		*status_out = status;
	return used;
}

/* ---- asynchronous reads and writes ---- */

static void aio_finish(struct vblk_aio *a)
{
	int err = __atomic_load_n(&a->error, __ATOMIC_ACQUIRE);
	uint8_t status = err == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
	__atomic_store_n(a->status, status, __ATOMIC_RELAXED);
	a->complete(a, (err == 0 ? a->read_len : 0) + 1);
}

static void aio_put(struct vblk_aio *a, int result)
{
	if (result != 0)
		__atomic_store_n(&a->error, result, __ATOMIC_RELEASE);
	if (__atomic_sub_fetch(&a->pending, 1, __ATOMIC_ACQ_REL) == 0)
		aio_finish(a);
}

static void aio_seg_done(struct blk_aio *io, int result)
{
	struct vblk_seg_io *s = (struct vblk_seg_io *)io;
	aio_put(s->req, result);
}

/*
 * The data segments of a chain that fits the asynchronous path: all
 * readable (write) or all writable (read) but the header and the status,
 * each whole blocks.  Returns their count, 0 when the chain does not fit.
 */
static unsigned int aio_data_segs(const struct vblk *dev, const struct vq_req *req,
				  bool write, const struct vq_seg **first)
{
	unsigned int n = write ? req->nout - 1 : req->nin - 1;
	if (req->nout < 1 || req->nin < 1 || req->seg[0].len != sizeof(struct virtio_blk_outhdr) ||
	    req->seg[req->nout + req->nin - 1].len != 1 || (write ? req->nin : req->nout) != 1 ||
	    n == 0 || n > VBLK_AIO_SEGS)
		return 0;
	*first = &req->seg[1];
	for (unsigned int i = 0; i < n; i++)
		if ((*first)[i].len == 0 || (*first)[i].len % dev->be->block_size != 0)
			return 0;
	return n;
}

bool vblk_submit(const struct vblk *dev, const struct vq_req *req,
		 const struct vblk_req_hdr *h, struct vblk_aio *a)
{
	const struct blk_backend *be = dev->be;
	const struct vq_seg *data;
	uint64_t off;

	if (be->ops->submit == NULL || dev->be_lock != NULL || !h->ok)
		return false;
	uint32_t type = h->type;
	if (type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_OUT)
		return false;
	bool write = type == VIRTIO_BLK_T_OUT;
	unsigned int n = aio_data_segs(dev, req, write, &data);
	if (n == 0)
		return false;
	uint64_t total = seg_total(data, n);
	if (total > VBLK_AIO_MAX_BYTES)
		return false;
	if (check_range(dev, h->sector, total, &off) != 0)
		return false; /* vblk_handle answers it (IOERR) */

	a->pending = n + 1; /* the submitter's reference: complete() not before the loop ends */
	a->error = 0;
	a->status = req->status;
	a->read_len = write ? 0 : (uint32_t)total;
	for (unsigned int i = 0; i < n; i++) {
		struct vblk_seg_io *s = &a->seg[i];
		s->req = a;
		s->io = (struct blk_aio){ .write = write, .offset = off, .len = data[i].len,
					  .buf = data[i].ptr, .done = aio_seg_done };
		off += data[i].len;
		if (be->ops->submit(be->ctx, &s->io) == 0)
			continue;
		/* Not taken below (too large for one request...): serve it here. */
		aio_put(a, be_rw(dev, !write, s->io.offset, s->io.buf, s->io.len));
	}
	aio_put(a, 0);
	return true;
}
