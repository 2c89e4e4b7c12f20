#include "blk_common.h"

#include <stdarg.h>

#include "bootinfo.h"
#include "io.h"
#include "printf.h"
#include "tests.h"
#include "user.h"
#include "util.h"

#define MIB (1ULL << 20)
#define LOW_4G 0x100000000ULL

struct blk_ctx blk_ctx;
extern char __image_end[];

void bprintf(const char *fmt, ...)
{
	static char buf[256];
	va_list ap;

	memcpy(buf, "flint-guest: ", 13);
	va_start(ap, fmt);
	int n = kvsnprintf(buf + 13, sizeof(buf) - 13, fmt, ap);
	va_end(ap);
	size_t len = 13 + (n < 0 ? 0 : (size_t)n);
	if (len > sizeof(buf) - 1)
		len = sizeof(buf) - 1;
	if (read_cs() & 3)
		user_write(buf, len);
	else
		kprintf("%s", buf);
}

const char *blk_status_name(int st)
{
	switch (st) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case VBLK_TIMEOUT: return "no completion";
	case VBLK_NOSTATUS: return "completed, status byte not written";
	default: return "bogus status";
	}
}

uint32_t blk_unit(const struct blk_ctx *c)
{
	return c->dev.blk_size > VBLK_SECTOR ? c->dev.blk_size / VBLK_SECTOR : 1;
}

static inline uint64_t pat(uint64_t sector, uint64_t word, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL ^ sector * 0xbf58476d1ce4e5b9ULL ^
		     word * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	return x;
}

void blk_fill(void *buf, uint64_t sector, uint32_t nsect, uint64_t seed)
{
	uint64_t *w = buf;

	for (uint32_t s = 0; s < nsect; s++)
		for (uint64_t i = 0; i < VBLK_SECTOR / 8; i++)
			*w++ = pat(sector + s, i, seed);
}

const char *blk_check(const void *buf, uint64_t sector, uint32_t nsect,
		      uint64_t seed)
{
	const uint64_t *w = buf;

	for (uint32_t s = 0; s < nsect; s++)
		for (uint64_t i = 0; i < VBLK_SECTOR / 8; i++, w++)
			if (*w != pat(sector + s, i, seed))
				return test_fail(
					"data mismatch at sector %lu word %lu: "
					"read 0x%016lx want 0x%016lx (seed %lu)",
					sector + s, i, *w, pat(sector + s, i, seed),
					seed);
	return NULL;
}

bool blk_is_zero(const void *buf, uint32_t len)
{
	const uint64_t *w = buf;

	for (uint32_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

const char *blk_write(struct blk_ctx *c, unsigned q, uint64_t sector,
		      uint32_t nsect, unsigned nseg, uint64_t seed, void *buf)
{
	blk_fill(buf, sector, nsect, seed);
	int st = vblk_rw(&c->dev, q, VIRTIO_BLK_T_OUT, sector, buf,
			 nsect * VBLK_SECTOR, nseg);
	if (st != VIRTIO_BLK_S_OK)
		return test_fail("write q%u sector %lu +%u (%u segs): %s (%d)",
				 q, sector, nsect, nseg, blk_status_name(st), st);
	c->bytes_written += (uint64_t)nsect * VBLK_SECTOR;
	return NULL;
}

const char *blk_verify(struct blk_ctx *c, unsigned q, uint64_t sector,
		       uint32_t nsect, unsigned nseg, uint64_t seed, void *buf)
{
	memset(buf, 0xa5, (size_t)nsect * VBLK_SECTOR);
	int st = vblk_rw(&c->dev, q, VIRTIO_BLK_T_IN, sector, buf,
			 nsect * VBLK_SECTOR, nseg);
	if (st != VIRTIO_BLK_S_OK)
		return test_fail("read q%u sector %lu +%u (%u segs): %s (%d)",
				 q, sector, nsect, nseg, blk_status_name(st), st);
	c->bytes_read += (uint64_t)nsect * VBLK_SECTOR;
	return blk_check(buf, sector, nsect, seed);
}

const char *blk_open(struct blk_ctx *c, const char *tag)
{
	struct vblk *d = &c->dev;
	const char *why = vblk_init(d, c->want_queues);

	if (why)
		return why;
	bprintf("%s: features 0x%lx of 0x%lx, capacity %lu sectors (%lu MiB), "
		"blk_size %u, queues %u/%u, seg_max %u, size_max %u\n",
		tag, d->features, d->offered, d->capacity,
		(uint64_t)(d->capacity * VBLK_SECTOR / MIB), d->blk_size, d->num_queues,
		d->dev_queues, d->seg_max, d->size_max);
	if (d->capacity < 2 * 4096)
		return "capacity below 4 MiB: too small for the tests";
	return NULL;
}

/*
 * Firmware reserves pieces at the top of RAM (SeaBIOS: the last 132 KiB
 * below 256 MiB) that are still guest RAM to the back end: extend `end`
 * over e820 entries that continue it without a gap.
 */
static uint64_t backed_end(uint64_t end)
{
	for (bool grew = true; grew;) {
		grew = false;
		for (unsigned i = 0; i < bootinfo.nmem; i++) {
			const struct hvm_memmap_table_entry *m = &bootinfo.mem[i];
			if (m->addr == end && m->size && m->addr + m->size <= LOW_4G) {
				end = m->addr + m->size;
				grew = true;
			}
		}
	}
	return end;
}

/* Pick BLK_ARENA_SIZE bytes of RAM above the image, 2 MiB aligned. */
static const char *find_arena(struct blk_ctx *c)
{
	uint64_t floor = ((uintptr_t)__image_end + 2 * MIB - 1) & ~(2 * MIB - 1);

	for (unsigned i = 0; i < bootinfo.nmem; i++) {
		const struct hvm_memmap_table_entry *m = &bootinfo.mem[i];
		if (m->type != E820_RAM)
			continue;
		uint64_t start = (m->addr + 2 * MIB - 1) & ~(2 * MIB - 1);
		uint64_t end = m->addr + m->size;
		if (start < floor)
			start = floor;
		if (end > LOW_4G)
			end = LOW_4G;
		if (start + BLK_ARENA_SIZE <= end) {
			c->arena = (uint8_t *)(uintptr_t)start;
			c->ram_end = backed_end(m->addr + m->size);
			return NULL;
		}
	}
	return "no RAM range for the blk DMA arena";
}

static const char *(*blk_body)(struct blk_ctx *);

static uint64_t blk_user(uint64_t arg)
{
	return (uintptr_t)blk_body((struct blk_ctx *)(uintptr_t)arg);
}

static const char *run(const char *tag, unsigned want_queues,
		       const char *(*body)(struct blk_ctx *), bool cpl3)
{
	struct blk_ctx *c = &blk_ctx;
	const char *why;

	memset(c, 0, sizeof(*c));
	uint64_t reassign = 0;
	cmdline_get_u64("pci.reassign", &reassign);
	pci_force_assign = reassign != 0;
	why = vblk_probe(&c->dev, 0);
	if (why)
		return why;
	const struct virtio_pci_dev *p = &c->dev.pci;
	kprintf("flint-guest: %s: virtio-blk at 00:%02x.%u common 0x%lx notify "
		"0x%lx (x%u) device 0x%lx\n", tag, p->dev, p->fn, p->common.addr,
		p->notify.addr, p->notify_mult, p->device.addr);
	why = find_arena(c);
	if (why)
		return why;
	kprintf("flint-guest: %s: DMA arena 0x%lx, guest RAM (incl. adjacent reserved) ends at 0x%lx\n",
		tag, (uint64_t)(uintptr_t)c->arena, c->ram_end);
	for (unsigned i = 0; i < bootinfo.nmem; i++)
		kprintf("flint-guest: %s: e820 0x%lx-0x%lx type %u\n", tag,
			bootinfo.mem[i].addr, bootinfo.mem[i].addr + bootinfo.mem[i].size,
			bootinfo.mem[i].type);
	c->seed = 1;
	cmdline_get_u64("blk.seed", &c->seed);
	c->want_queues = want_queues;
	blk_body = body;
	uint64_t t0 = rdtsc();
	why = cpl3 ? (const char *)(uintptr_t)user_call(blk_user, (uintptr_t)c) : body(c);
	uint64_t dt = rdtsc() - t0;
	vblk_reset(&c->dev);
	kprintf("flint-guest: %s: wrote %lu KiB, read %lu KiB in %lu Mcycles\n",
		tag, c->bytes_written >> 10, c->bytes_read >> 10, dt / 1000000);
	return why;
}

const char *blk_run(const char *tag, unsigned want_queues,
		    const char *(*body)(struct blk_ctx *))
{
	return run(tag, want_queues, body, true);
}

const char *blk_run_cpl0(const char *tag, unsigned want_queues,
			 const char *(*body)(struct blk_ctx *))
{
	return run(tag, want_queues, body, false);
}
