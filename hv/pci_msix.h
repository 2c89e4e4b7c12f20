/*
 * MSI-X for a PCI device: the capability, the vector table and PBA in one of
 * the device's BARs, and a KVM GSI per vector.  A vector that is enabled
 * (MSI-X on, function not masked, vector not masked) has an MSI route with
 * the guest's address and data; any other vector routes to nothing, so an
 * eventfd bound to its GSI (irqfd) raises nothing.  Whoever holds the eventfd
 * (a card) thus signals the guest without flint-hv.
 *
 * Limit: an interrupt signalled while its vector is masked is dropped, not
 * kept pending in the PBA (which reads as zero).
 */
#ifndef FLINT_HV_PCI_MSIX_H
#define FLINT_HV_PCI_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "pci.h"

#define PCI_MSIX_MAX 64
#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_CAP_LEN 12
#define PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_FLAGS_MASKALL 0x4000
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 1U
#define PCI_MSIX_NO_VECTOR 0xffff

/* One table entry as the guest sees it: address low/high, data, control. */
enum { PCI_MSIX_ADDR_LO, PCI_MSIX_ADDR_HI, PCI_MSIX_DATA, PCI_MSIX_CTRL };
struct pci_msix_entry {
	uint32_t w[4];
};

struct pci_msix {
	struct pci_device *dev;
	unsigned int nr;        /* vectors */
	unsigned int bar;
	uint32_t table_off;     /* inside the BAR */
	uint32_t pba_off;
	unsigned int cap;       /* config offset of the capability */
	uint32_t gsi_base;
	struct pci_msix_entry table[PCI_MSIX_MAX];
	bool routed[PCI_MSIX_MAX]; /* what KVM has now */
};

/*
 * Adds the capability to d (before pci_bus_add_device) and reserves nr GSIs on
 * bus.  The table (nr * 16 bytes at table_off) and the PBA (at pba_off) must
 * lie inside BAR bar, 8-byte aligned and apart.  0 or -1.
 */
int pci_msix_init(struct pci_msix *m, struct pci_bus *bus, struct pci_device *d,
		  unsigned int nr, unsigned int bar, uint32_t table_off, uint32_t pba_off);

/* The GSI of vector v (v < nr). */
uint32_t pci_msix_gsi(const struct pci_msix *m, unsigned int v);

/*
 * A BAR access from the device's bar_read/bar_write: true if it hit the table
 * or PBA (and was served).  Table accesses must be 4 or 8 bytes, aligned.
 */
bool pci_msix_bar_read(struct pci_msix *m, unsigned int bar, uint64_t off,
		       uint8_t *data, unsigned int len);
bool pci_msix_bar_write(struct pci_msix *m, unsigned int bar, uint64_t off,
			const uint8_t *data, unsigned int len);

/* From the device's config_written: reacts to the enable and mask bits. */
void pci_msix_config_written(struct pci_msix *m, unsigned int off, unsigned int len);

/* Whether vector v would deliver now (for tests and the transport). */
bool pci_msix_vector_enabled(const struct pci_msix *m, unsigned int v);

/* Back to power-on state (all vectors masked, MSI-X off); updates routes. */
void pci_msix_reset(struct pci_msix *m);

#endif
