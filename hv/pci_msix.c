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

void pci_msix_set_ops(struct pci_msix *m, const struct pci_msix_ops *ops, void *opaque)
{
	m->ops = ops;
	m->opaque = opaque;
}

uint32_t pci_msix_gsi(const struct pci_msix *m, unsigned int v)
{
	return m->gsi_base + v;
}

/* What the guest asks for: MSI-X on, function and vector v not masked. */
static bool unmasked(const struct pci_msix *m, unsigned int v)
{
	uint16_t flags = pci_cfg_get16(m->dev, m->cap + MSIX_FLAGS);
	return (flags & PCI_MSIX_FLAGS_ENABLE) && !(flags & PCI_MSIX_FLAGS_MASKALL) &&
	       !(m->table[v].w[PCI_MSIX_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

bool pci_msix_vector_enabled(const struct pci_msix *m, unsigned int v)
{
	return v < m->nr && m->live[v];
}

static void tell(struct pci_msix *m, unsigned int v, bool masked)
{
	m->live[v] = !masked;
	if (m->ops != NULL && m->ops->vector_masked != NULL)
		m->ops->vector_masked(m->opaque, v, masked);
}

static bool route_current(const struct pci_msix *m, unsigned int v)
{
	const uint32_t *t = m->table[v].w, *r = m->route[v].w;
	return m->routed[v] && t[PCI_MSIX_ADDR_LO] == r[PCI_MSIX_ADDR_LO] &&
	       t[PCI_MSIX_ADDR_HI] == r[PCI_MSIX_ADDR_HI] && t[PCI_MSIX_DATA] == r[PCI_MSIX_DATA];
}

/*
 * Brings KVM and the owner in line with the table and the capability, in an
 * order that neither loses nor misdirects a signal: vectors that stop
 * delivering are reported first (the owner stops signalling while their route
 * is still in place), then every deliverable vector whose route is missing or
 * stale gets one (one KVM call for all of them), and only then are vectors
 * that start delivering reported.  A masked vector keeps its route.
 */
static void sync_vectors(struct pci_msix *m)
{
	bool on[PCI_MSIX_MAX], changed[PCI_MSIX_MAX];
	bool dirty = false;

	for (unsigned int v = 0; v < m->nr; v++) {
		on[v] = unmasked(m, v);
		if (m->live[v] && !on[v])
			tell(m, v, true);
	}
	for (unsigned int v = 0; v < m->nr; v++) {
		changed[v] = on[v] && !route_current(m, v);
		if (!changed[v])
			continue;
		const struct pci_msix_entry *e = &m->table[v];
		pci_bus_set_msi_route(m->dev->bus, pci_msix_gsi(m, v), true, e->w[PCI_MSIX_ADDR_LO],
				      e->w[PCI_MSIX_ADDR_HI], e->w[PCI_MSIX_DATA]);
		m->route[v] = *e;
		m->routed[v] = true;
		dirty = true;
	}
	if (dirty && pci_bus_commit_routes(m->dev->bus) != 0) {
		/*
		 * KVM kept its old table (the failure is logged).  The next sync
		 * tries again; until then a vector that is not live yet stays
		 * masked for the owner, so its signals are held rather than sent
		 * to a GSI without a route (a live one keeps its old message).
		 */
		for (unsigned int v = 0; v < m->nr; v++)
			if (changed[v])
				m->routed[v] = false;
	}
	for (unsigned int v = 0; v < m->nr; v++)
		if (on[v] && m->routed[v] && !m->live[v])
			tell(m, v, false);
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

/*
 * Pending bits: a vector that cannot deliver and whose owner holds a message
 * for it.  Asked only on a PBA read (Linux never reads the PBA), so the cost
 * (a zero-timeout poll per bound queue in virtio-pci) is no data-path cost.
 * Any access size; bytes past the PBA read as zero.
 */
static void pba_read(struct pci_msix *m, uint64_t rel, uint8_t *data, unsigned int len)
{
	for (unsigned int i = 0; i < len; i++) {
		uint8_t byte = 0;
		for (unsigned int b = 0; b < 8; b++) {
			uint64_t v = (rel + i) * 8 + b;
			if (v < m->nr && !m->live[v] &&
			    m->ops != NULL && m->ops->vector_pending != NULL &&
			    m->ops->vector_pending(m->opaque, (unsigned int)v))
				byte |= (uint8_t)(1U << b);
		}
		data[i] = byte;
	}
}

bool pci_msix_bar_read(struct pci_msix *m, unsigned int bar, uint64_t off,
		       uint8_t *data, unsigned int len)
{
	if (bar != m->bar)
		return false;
	if (in_pba(m, off)) {
		pba_read(m, off - m->pba_off, data, len);
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
	sync_vectors(m);
	return true;
}

void pci_msix_config_written(struct pci_msix *m, unsigned int off, unsigned int len)
{
	if (off < m->cap + PCI_MSIX_CAP_LEN && off + len > m->cap)
		sync_vectors(m);
}

void pci_msix_reset(struct pci_msix *m)
{
	bool dirty = false;

	pci_cfg_set16(m->dev, m->cap + MSIX_FLAGS, (uint16_t)(m->nr - 1));
	for (unsigned int v = 0; v < m->nr; v++)
		m->table[v] = (struct pci_msix_entry){ .w = { [PCI_MSIX_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT } };
	sync_vectors(m); /* the owner stops signalling every vector */
	for (unsigned int v = 0; v < m->nr; v++) {
		if (!m->routed[v])
			continue;
		pci_bus_set_msi_route(m->dev->bus, pci_msix_gsi(m, v), false, 0, 0, 0);
		m->routed[v] = false;
		dirty = true;
	}
	if (dirty)
		(void)pci_bus_commit_routes(m->dev->bus);
}
