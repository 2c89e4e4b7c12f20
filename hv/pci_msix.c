#include "pci_msix.h"

#include <string.h>

/* Capability layout */
#define MSIX_FLAGS 2
#define MSIX_TABLE 4
#define MSIX_PBA 8

int pci_msix_init(struct pci_msix *m, struct pci_bus *bus, struct pci_device *d,
		  unsigned int nr, unsigned int bar, uint32_t table_off, uint32_t pba_off)
{
	memset(m, 0, sizeof(*m));
	if (nr == 0 || nr > PCI_MSIX_MAX || bar >= PCI_NUM_BARS ||
	    d->bars[bar].type == PCI_BAR_NONE || (table_off & 7) || (pba_off & 7))
		return -1;
	uint64_t size = d->bars[bar].size;
	uint64_t table_end = (uint64_t)table_off + nr * PCI_MSIX_ENTRY_SIZE;
	uint64_t pba_end = (uint64_t)pba_off + ((nr + 63) / 64) * 8;
	if (table_end > size || pba_end > size ||
	    (pba_off < table_end && table_off < pba_end))
		return -1;
	int gsi = pci_bus_alloc_gsis(bus, nr);
	if (gsi < 0)
		return -1;
	unsigned int cap = pci_device_add_cap(d, PCI_CAP_ID_MSIX, PCI_MSIX_CAP_LEN);
	if (cap == 0)
		return -1;
	m->dev = d;
	m->nr = nr;
	m->bar = bar;
	m->table_off = table_off;
	m->pba_off = pba_off;
	m->cap = cap;
	m->gsi_base = (uint32_t)gsi;
	pci_cfg_set16(d, cap + MSIX_FLAGS, (uint16_t)(nr - 1));
	pci_cfg_set32(d, cap + MSIX_TABLE, table_off | bar);
	pci_cfg_set32(d, cap + MSIX_PBA, pba_off | bar);
	/* Only enable and function mask are writable. */
	d->wmask[cap + MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	for (unsigned int v = 0; v < nr; v++)
		m->table[v].w[PCI_MSIX_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	return 0;
}

uint32_t pci_msix_gsi(const struct pci_msix *m, unsigned int v)
{
	return m->gsi_base + v;
}

bool pci_msix_vector_enabled(const struct pci_msix *m, unsigned int v)
{
	uint16_t flags = pci_cfg_get16(m->dev, m->cap + MSIX_FLAGS);
	return v < m->nr && (flags & PCI_MSIX_FLAGS_ENABLE) &&
	       !(flags & PCI_MSIX_FLAGS_MASKALL) &&
	       !(m->table[v].w[PCI_MSIX_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

/* Brings KVM's routes in line with the table; one ioctl for all changes. */
static void sync_routes(struct pci_msix *m)
{
	bool dirty = false;

	for (unsigned int v = 0; v < m->nr; v++) {
		const struct pci_msix_entry *e = &m->table[v];
		bool on = pci_msix_vector_enabled(m, v);
		/* An unmasked vector's address or data may change too: always refresh. */
		if (!on && !m->routed[v])
			continue;
		pci_bus_set_msi_route(m->dev->bus, pci_msix_gsi(m, v), on, e->w[PCI_MSIX_ADDR_LO],
				      e->w[PCI_MSIX_ADDR_HI], e->w[PCI_MSIX_DATA]);
		m->routed[v] = on;
		dirty = true;
	}
	if (dirty)
		pci_bus_commit_routes(m->dev->bus);
}

static bool in_table(const struct pci_msix *m, uint64_t off, unsigned int len)
{
	return off >= m->table_off && off - m->table_off < (uint64_t)m->nr * PCI_MSIX_ENTRY_SIZE &&
	       len <= (uint64_t)m->nr * PCI_MSIX_ENTRY_SIZE - (off - m->table_off);
}

static bool in_pba(const struct pci_msix *m, uint64_t off)
{
	return off >= m->pba_off && off - m->pba_off < ((m->nr + 63) / 64) * 8ULL;
}

bool pci_msix_bar_read(struct pci_msix *m, unsigned int bar, uint64_t off,
		       uint8_t *data, unsigned int len)
{
	if (bar != m->bar)
		return false;
	if (in_pba(m, off)) {
		memset(data, 0, len); /* nothing is ever held pending */
		return true;
	}
	if (!in_table(m, off, 1))
		return false;
	if ((len != 4 && len != 8) || (off & (len - 1)) || !in_table(m, off, len)) {
		memset(data, 0xff, len);
		return true;
	}
	uint64_t rel = off - m->table_off;
	const uint32_t *words = m->table[rel / PCI_MSIX_ENTRY_SIZE].w;
	unsigned int w = (unsigned int)(rel % PCI_MSIX_ENTRY_SIZE) / 4;
	for (unsigned int i = 0; i < len / 4; i++) {
		uint32_t v = words[w + i];
		for (unsigned int b = 0; b < 4; b++)
			data[4 * i + b] = (uint8_t)(v >> (8 * b));
	}
	return true;
}

bool pci_msix_bar_write(struct pci_msix *m, unsigned int bar, uint64_t off,
			const uint8_t *data, unsigned int len)
{
	if (bar != m->bar)
		return false;
	if (in_pba(m, off))
		return true; /* read-only */
	if (!in_table(m, off, 1))
		return false;
	if ((len != 4 && len != 8) || (off & (len - 1)) || !in_table(m, off, len))
		return true;
	uint64_t rel = off - m->table_off;
	struct pci_msix_entry *e = &m->table[rel / PCI_MSIX_ENTRY_SIZE];
	uint32_t *words = e->w;
	unsigned int w = (unsigned int)(rel % PCI_MSIX_ENTRY_SIZE) / 4;
	for (unsigned int i = 0; i < len / 4; i++) {
		const uint8_t *p = data + 4 * i;
		words[w + i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			       (uint32_t)p[3] << 24;
	}
	/* Only the mask bit of vector control is defined; the rest reads zero. */
	e->w[PCI_MSIX_CTRL] &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
	sync_routes(m);
	return true;
}

void pci_msix_config_written(struct pci_msix *m, unsigned int off, unsigned int len)
{
	if (off < m->cap + PCI_MSIX_CAP_LEN && off + len > m->cap)
		sync_routes(m);
}

void pci_msix_reset(struct pci_msix *m)
{
	pci_cfg_set16(m->dev, m->cap + MSIX_FLAGS, (uint16_t)(m->nr - 1));
	for (unsigned int v = 0; v < m->nr; v++)
		m->table[v] = (struct pci_msix_entry){ .w = { [PCI_MSIX_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT } };
	sync_routes(m);
}
