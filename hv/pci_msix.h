/*
 * MSI-X for a PCI device: the capability, the vector table and PBA in one of
 * the device's BARs, and a KVM GSI per vector.  Whoever holds an eventfd
 * bound to a vector's GSI (irqfd; a card) signals the guest without flint-hv.
 *
 * A vector delivers when MSI-X is on, the function is not masked and the
 * vector is not masked.  The device that owns the capability is told (struct
 * pci_msix_ops) when that changes, and must stop signalling a vector's GSI
 * while the vector cannot deliver: virtio-pci deassigns the queue's irqfd,
 * so the card's signals accumulate in the eventfd counter (held pending),
 * and reassigns it on unmask; KVM then injects at once if the eventfd was
 * signalled meanwhile.  Nothing is lost and nothing is delivered while masked.
 *
 * KVM routes follow the table lazily, so that a mask or unmask costs one KVM
 * call (the owner's irqfd) rather than two: a vector's route is installed or
 * updated when the vector can deliver (before the owner hears of it) and is
 * left in place while it is masked (nothing signals its GSI then).  A message
 * rewritten while masked reaches KVM on unmask; reset removes every route.
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

/*
 * What the owning device learns.  Both run with the bus lock held, on a vCPU
 * thread under seccomp.
 */
struct pci_msix_ops {
	/*
	 * Vector v can now deliver (masked false: its route is already in KVM)
	 * or no longer can (masked true: stop signalling its GSI before
	 * returning).  Only changes are reported; all vectors start masked.
	 */
	void (*vector_masked)(void *opaque, unsigned int v, bool masked);
	/* PBA read: whether masked vector v has a message held (NULL: never). */
	bool (*vector_pending)(void *opaque, unsigned int v);
};

struct pci_msix {
	struct pci_device *dev;
	const struct pci_msix_ops *ops; /* NULL: nobody to tell */
	void *opaque;
	unsigned int nr;        /* vectors */
	unsigned int bar;
	uint32_t table_off;     /* inside the BAR */
	uint32_t pba_off;
	unsigned int cap;       /* config offset of the capability */
	uint32_t gsi_base;
	struct pci_msix_entry table[PCI_MSIX_MAX];
	bool routed[PCI_MSIX_MAX];  /* KVM has a route for v, with message route[v] */
	struct pci_msix_entry route[PCI_MSIX_MAX];
	bool live[PCI_MSIX_MAX];    /* the owner was told v can deliver */
};

/*
 * Adds the capability to d (before pci_bus_add_device) and reserves nr GSIs on
 * bus.  The table (nr * 16 bytes at table_off) and the PBA (at pba_off) must
 * lie inside BAR bar, 8-byte aligned and apart.  0 or -1.
 */
int pci_msix_init(struct pci_msix *m, struct pci_bus *bus, struct pci_device *d,
		  unsigned int nr, unsigned int bar, uint32_t table_off, uint32_t pba_off);

/* Who to tell about mask changes (after init, before the guest runs). */
void pci_msix_set_ops(struct pci_msix *m, const struct pci_msix_ops *ops, void *opaque);

/* The GSI of vector v (v < nr). */
uint32_t pci_msix_gsi(const struct pci_msix *m, unsigned int v);

/*
 * A BAR access from the device's bar_read/bar_write: true if it hit the table
 * or PBA (and was served).  Table accesses must be 4 or 8 bytes, aligned.
 * The PBA reads the owner's vector_pending for masked vectors.
 */
bool pci_msix_bar_read(struct pci_msix *m, unsigned int bar, uint64_t off,
		       uint8_t *data, unsigned int len);
bool pci_msix_bar_write(struct pci_msix *m, unsigned int bar, uint64_t off,
			const uint8_t *data, unsigned int len);

/* From the device's config_written: reacts to the enable and mask bits. */
void pci_msix_config_written(struct pci_msix *m, unsigned int off, unsigned int len);

/*
 * Whether vector v can deliver now: not masked in any way, and KVM has its
 * route (unmasked but not deliverable only after a failed routing update,
 * retried at the next table or capability write).  Inside vector_masked it
 * already gives the new state.
 */
bool pci_msix_vector_enabled(const struct pci_msix *m, unsigned int v);

/* Back to power-on state (all vectors masked, MSI-X off); removes the routes. */
void pci_msix_reset(struct pci_msix *m);

#endif
