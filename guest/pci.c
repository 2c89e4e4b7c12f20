#include "pci.h"

#define VIRTIO_PCI_NO_LEGACY
#include <linux/virtio_pci.h>

#include "io.h"
#include "printf.h"
#include "util.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc

#define PCI_CMD 0x04
#define PCI_CMD_MEM 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CMD_INTX_OFF 0x0400
#define PCI_STATUS 0x06
#define PCI_STATUS_CAPS 0x0010
#define PCI_HDR_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34

#define PCI_CAP_VENDOR 0x09
#define PCI_CAP_MSIX 0x11

bool pci_force_assign;

static void pci_select(unsigned dev, unsigned fn, unsigned off)
{
	outl(PCI_ADDR, 0x80000000u | (dev & 31) << 11 | (fn & 7) << 8 |
			       (off & 0xfc));
}

uint32_t pci_cfg_read32(unsigned dev, unsigned fn, unsigned off)
{
	pci_select(dev, fn, off);
	return inl(PCI_DATA);
}

uint16_t pci_cfg_read16(unsigned dev, unsigned fn, unsigned off)
{
	pci_select(dev, fn, off);
	return inw(PCI_DATA + (off & 2));
}

uint8_t pci_cfg_read8(unsigned dev, unsigned fn, unsigned off)
{
	pci_select(dev, fn, off);
	return inb(PCI_DATA + (off & 3));
}

void pci_cfg_write32(unsigned dev, unsigned fn, unsigned off, uint32_t v)
{
	pci_select(dev, fn, off);
	outl(PCI_DATA, v);
}

void pci_cfg_write16(unsigned dev, unsigned fn, unsigned off, uint16_t v)
{
	pci_select(dev, fn, off);
	outw(PCI_DATA + (off & 2), v);
}

struct bar_info {
	bool valid, io, is64;
	uint64_t base, size;
};

/* Size BAR i (decoding must be off while it holds all-ones). */
static struct bar_info bar_probe(unsigned dev, unsigned fn, unsigned i)
{
	struct bar_info b = { 0 };
	unsigned off = PCI_BAR0 + 4 * i;
	uint32_t lo = pci_cfg_read32(dev, fn, off);

	if (lo & 1) {
		b.io = true;
		return b;
	}
	b.is64 = ((lo >> 1) & 3) == 2;
	if (b.is64 && i == 5)
		return b; /* malformed: no upper half */
	uint32_t hi = b.is64 ? pci_cfg_read32(dev, fn, off + 4) : 0;
	uint16_t cmd = pci_cfg_read16(dev, fn, PCI_CMD);

	pci_cfg_write16(dev, fn, PCI_CMD, cmd & ~(PCI_CMD_MEM | 1));
	pci_cfg_write32(dev, fn, off, 0xffffffffu);
	uint32_t mlo = pci_cfg_read32(dev, fn, off);
	uint32_t mhi = 0xffffffffu;
	if (b.is64) {
		pci_cfg_write32(dev, fn, off + 4, 0xffffffffu);
		mhi = pci_cfg_read32(dev, fn, off + 4);
		pci_cfg_write32(dev, fn, off + 4, hi);
	}
	pci_cfg_write32(dev, fn, off, lo);
	pci_cfg_write16(dev, fn, PCI_CMD, cmd);

	uint64_t mask = ((uint64_t)mhi << 32) | (mlo & ~0xfu);
	if (!b.is64)
		mask |= 0xffffffff00000000ULL;
	if ((mlo & ~0xfu) == 0 && (!b.is64 || mhi == 0))
		return b; /* unimplemented BAR */
	b.size = ~mask + 1;
	b.base = ((uint64_t)hi << 32) | (lo & ~0xfu);
	b.valid = b.size != 0 && (b.size & (b.size - 1)) == 0;
	return b;
}

static bool fn_present(unsigned dev, unsigned fn)
{
	return pci_cfg_read16(dev, fn, 0) != 0xffff;
}

static unsigned fn_count(unsigned dev)
{
	return (pci_cfg_read8(dev, 0, PCI_HDR_TYPE) & 0x80) ? 8 : 1;
}

/* Memory BARs of every bus-0 function that sit in the window (except the
 * one being placed), to find a gap between them. */
#define MAX_USED 96
static uint64_t used_base[MAX_USED], used_end[MAX_USED];
static unsigned nused;

static void collect_used(unsigned skip_dev, unsigned skip_fn, unsigned skip_bar)
{
	nused = 0;
	for (unsigned dev = 0; dev < 32; dev++) {
		if (!fn_present(dev, 0))
			continue;
		for (unsigned fn = 0, nf = fn_count(dev); fn < nf; fn++) {
			if (!fn_present(dev, fn))
				continue;
			/* Type-0 headers have 6 BARs; bridges have 2. */
			unsigned nbars =
				(pci_cfg_read8(dev, fn, PCI_HDR_TYPE) & 0x7f) == 0 ? 6 : 2;
			for (unsigned i = 0; i < nbars; i++) {
				struct bar_info b = bar_probe(dev, fn, i);
				bool self = dev == skip_dev && fn == skip_fn &&
					    i == skip_bar;
				if (!self && b.valid && !b.io && b.base &&
				    b.base < PCI_MMIO_END &&
				    b.base + b.size > PCI_MMIO_BASE && nused < MAX_USED) {
					used_base[nused] = b.base;
					used_end[nused++] = b.base + b.size;
				}
				if (b.is64)
					i++;
			}
		}
	}
}

/* Place BAR i at the lowest naturally aligned gap of the window. */
static const char *bar_assign(unsigned dev, unsigned fn, unsigned i,
			      struct bar_info *b)
{
	collect_used(dev, fn, i);
	uint64_t base = PCI_MMIO_BASE;
	for (bool moved = true; moved;) {
		moved = false;
		base = (base + b->size - 1) & ~(b->size - 1);
		for (unsigned k = 0; k < nused; k++)
			if (base < used_end[k] && base + b->size > used_base[k]) {
				base = used_end[k];
				moved = true;
			}
	}
	if (base + b->size > PCI_ASSIGN_END)
		return "no room for the BAR in the PCI MMIO window";
	uint16_t cmd = pci_cfg_read16(dev, fn, PCI_CMD);
	pci_cfg_write16(dev, fn, PCI_CMD, cmd & ~PCI_CMD_MEM);
	uint32_t lo = pci_cfg_read32(dev, fn, PCI_BAR0 + 4 * i) & 0xf;
	pci_cfg_write32(dev, fn, PCI_BAR0 + 4 * i, (uint32_t)base | lo);
	if (b->is64)
		pci_cfg_write32(dev, fn, PCI_BAR0 + 4 * i + 4, 0);
	pci_cfg_write16(dev, fn, PCI_CMD, cmd);
	struct bar_info chk = bar_probe(dev, fn, i);
	if (chk.base != base)
		return "BAR did not take the assigned address";
	b->base = base;
	return NULL;
}

static const char *take_cap(struct virtio_pci_region *r, unsigned dev,
			    unsigned fn, unsigned cap, uint8_t cap_len)
{
	if (r->present)
		return NULL; /* the first of each type wins (spec) */
	if (cap_len < sizeof(struct virtio_pci_cap))
		return "virtio capability shorter than 16 bytes";
	r->bar = pci_cfg_read8(dev, fn, cap + VIRTIO_PCI_CAP_BAR);
	r->offset = pci_cfg_read32(dev, fn, cap + VIRTIO_PCI_CAP_OFFSET);
	r->length = pci_cfg_read32(dev, fn, cap + VIRTIO_PCI_CAP_LENGTH);
	if (r->bar > 5)
		return NULL; /* reserved BAR number: ignore this instance */
	r->present = true;
	return NULL;
}

static const char *resolve(struct virtio_pci_dev *d, struct virtio_pci_region *r,
			   const char *what, uint32_t min_len)
{
	static char why[96];

	if (!r->present) {
		ksnprintf(why, sizeof(why), "no virtio %s capability", what);
		return why;
	}
	if (r->length < min_len) {
		ksnprintf(why, sizeof(why), "virtio %s window too short (%u)",
			  what, r->length);
		return why;
	}
	uint64_t size = d->bar_size[r->bar];
	if (size == 0 || (uint64_t)r->offset + r->length > size) {
		ksnprintf(why, sizeof(why),
			  "virtio %s window 0x%x+0x%x outside BAR%u (size 0x%lx)",
			  what, r->offset, r->length, r->bar, size);
		return why;
	}
	r->addr = d->bar_base[r->bar] + r->offset;
	return NULL;
}

/* Size BAR i, and place it when it is unassigned or outside the window. */
static const char *setup_bar(struct virtio_pci_dev *d, unsigned i)
{
	if (d->bar_size[i])
		return NULL;
	struct bar_info b = bar_probe(d->dev, d->fn, i);
	if (b.io || !b.valid)
		return "capability points at an I/O or unimplemented BAR";
	/* The guest maps [PCI_MMIO_BASE, 4 GiB) uncached and nothing
	 * above 4 GiB: move a BAR that is unassigned or outside. */
	if (b.base == 0 || b.base < PCI_MMIO_BASE ||
	    b.base + b.size > PCI_MMIO_END || pci_force_assign) {
		kprintf("flint-guest: pci: 00:%02x.%u BAR%u at 0x%lx "
			"(size 0x%lx): assigning\n", d->dev, d->fn, i,
			b.base, b.size);
		const char *why = bar_assign(d->dev, d->fn, i, &b);
		if (why)
			return why;
		d->bar_assigned[i] = true;
	}
	d->bar_base[i] = b.base;
	d->bar_size[i] = b.size;
	return NULL;
}

static const char *setup_bars(struct virtio_pci_dev *d)
{
	struct virtio_pci_region *regs[4] = { &d->common, &d->notify, &d->isr,
					      &d->device };

	for (unsigned k = 0; k < 4; k++) {
		if (!regs[k]->present)
			continue;
		const char *why = setup_bar(d, regs[k]->bar);
		if (why)
			return why;
	}
	return NULL;
}

const char *virtio_pci_msix_map(struct virtio_pci_dev *d, uint64_t *table,
				uint64_t *pba)
{
	if (d->msix_cap == 0)
		return "no MSI-X capability";
	if (d->msix_table_bar > 5 || d->msix_pba_bar > 5)
		return "MSI-X table or PBA in a reserved BAR";
	const char *why = setup_bar(d, d->msix_table_bar);
	if (!why)
		why = setup_bar(d, d->msix_pba_bar);
	if (why)
		return why;
	uint64_t tlen = (uint64_t)d->msix_size * 16, plen = ((d->msix_size + 63u) / 64) * 8;
	if (d->msix_table_off + tlen > d->bar_size[d->msix_table_bar] ||
	    d->msix_pba_off + plen > d->bar_size[d->msix_pba_bar])
		return "MSI-X table or PBA outside its BAR";
	*table = d->bar_base[d->msix_table_bar] + d->msix_table_off;
	*pba = d->bar_base[d->msix_pba_bar] + d->msix_pba_off;
	uint16_t cmd = pci_cfg_read16(d->dev, d->fn, PCI_CMD);
	pci_cfg_write16(d->dev, d->fn, PCI_CMD, cmd | PCI_CMD_MEM);
	return NULL;
}

const char *virtio_pci_probe(uint16_t device_id, unsigned index,
			     struct virtio_pci_dev *d)
{
	memset(d, 0, sizeof(*d));
	for (unsigned dev = 0; dev < 32; dev++) {
		if (!fn_present(dev, 0))
			continue;
		for (unsigned fn = 0, nf = fn_count(dev); fn < nf; fn++) {
			uint32_t id = pci_cfg_read32(dev, fn, 0);
			if ((id & 0xffff) != PCI_VENDOR_VIRTIO ||
			    (id >> 16) != device_id)
				continue;
			if (index-- > 0)
				continue;
			d->dev = dev;
			d->fn = fn;
			d->device_id = device_id;
			goto found;
		}
	}
	return "no virtio-blk (1af4:1042) function on PCI bus 0";

found:
	if (!(pci_cfg_read16(d->dev, d->fn, PCI_STATUS) & PCI_STATUS_CAPS))
		return "virtio function has no capability list";
	unsigned cap = pci_cfg_read8(d->dev, d->fn, PCI_CAP_PTR) & 0xfc;
	/* At most 48 capabilities fit in 192 bytes: bound the walk (loops). */
	for (unsigned n = 0; cap && n < 48; n++) {
		if (cap < 0x40 || cap > 0xfc)
			return "capability pointer outside 0x40..0xff";
		uint8_t id = pci_cfg_read8(d->dev, d->fn, cap);
		uint8_t next = pci_cfg_read8(d->dev, d->fn, cap + 1) & 0xfc;
		if (id == PCI_CAP_MSIX && d->msix_cap == 0) {
			uint32_t t = pci_cfg_read32(d->dev, d->fn, cap + 4);
			uint32_t b = pci_cfg_read32(d->dev, d->fn, cap + 8);
			d->msix_cap = cap;
			d->msix_size = (uint16_t)((pci_cfg_read16(d->dev, d->fn, cap + PCI_MSIX_CTRL) &
						   0x7ff) + 1);
			d->msix_table_bar = t & 7;
			d->msix_table_off = t & ~7u;
			d->msix_pba_bar = b & 7;
			d->msix_pba_off = b & ~7u;
		}
		if (id == PCI_CAP_VENDOR) {
			uint8_t len = pci_cfg_read8(d->dev, d->fn, cap + VIRTIO_PCI_CAP_LEN);
			uint8_t type = pci_cfg_read8(d->dev, d->fn, cap + VIRTIO_PCI_CAP_CFG_TYPE);
			const char *why = NULL;
			if (cap + (unsigned)len > 0x100)
				return "virtio capability runs past config space";
			switch (type) {
			case VIRTIO_PCI_CAP_COMMON_CFG:
				why = take_cap(&d->common, d->dev, d->fn, cap, len);
				break;
			case VIRTIO_PCI_CAP_NOTIFY_CFG:
				if (!d->notify.present && len >= sizeof(struct virtio_pci_notify_cap))
					d->notify_mult = pci_cfg_read32(d->dev, d->fn, cap +
						offsetof(struct virtio_pci_notify_cap, notify_off_multiplier));
				else if (!d->notify.present)
					return "virtio notify capability shorter than 20 bytes";
				why = take_cap(&d->notify, d->dev, d->fn, cap, len);
				break;
			case VIRTIO_PCI_CAP_ISR_CFG:
				why = take_cap(&d->isr, d->dev, d->fn, cap, len);
				break;
			case VIRTIO_PCI_CAP_DEVICE_CFG:
				why = take_cap(&d->device, d->dev, d->fn, cap, len);
				break;
			default:
				break;
			}
			if (why)
				return why;
		}
		cap = next;
	}

	const char *why = setup_bars(d);
	if (!why)
		why = resolve(d, &d->common, "common", 0x38);
	if (!why)
		why = resolve(d, &d->notify, "notify", 2);
	if (!why && d->isr.present)
		why = resolve(d, &d->isr, "isr", 1);
	if (!why)
		why = resolve(d, &d->device, "device", 8);
	if (why)
		return why;

	uint16_t cmd = pci_cfg_read16(d->dev, d->fn, PCI_CMD);
	pci_cfg_write16(d->dev, d->fn, PCI_CMD,
			cmd | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_OFF);
	return NULL;
}
