/*
 * The PCI bus a guest sees: one host bridge (00:00.0, segment 0, bus 0) and
 * up to 31 devices in slots 1..31, function 0 only.  Each device has a 4 KiB
 * type-0 configuration space reached through mechanism #1 (ports 0xcf8 and
 * 0xcfc..0xcff) and through ECAM (FLINT_PCI_ECAM_BASE, described by MCFG).
 *
 * Guest writes go through a per-byte write mask, so read-only fields stay
 * read-only and BAR sizing (write all-ones, read back the size mask) falls
 * out of the mask.  Memory BARs are placed by flint-hv in the 32-bit window
 * at registration; the guest may move them inside that window.
 *
 * MSI-X routes (pci_msix.c) are kept here as a whole GSI routing table,
 * because KVM_SET_GSI_ROUTING replaces the table each time.
 *
 * Locking: one lock per bus.  Every device callback runs with it held, from
 * a vCPU thread after seccomp: callbacks must not allocate or open anything.
 */
#ifndef FLINT_HV_PCI_H
#define FLINT_HV_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "flint/guest_abi.h"

#define PCI_CFG_SIZE 4096
#define PCI_NUM_BARS 6
#define PCI_CAP_START 0x40

/* Standard header offsets (type 0) */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_CAP_LIST 0x10

#define PCI_BAR_MEM_TYPE_64 0x4

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* GSIs for MSI routes: [FLINT_PCI_MSI_GSI_BASE, + PCI_MSI_GSIS). */
#define PCI_MSI_GSIS 256
/* KVM's default routes: IOAPIC pins 0-23 and PIC pins 0-15. */
#define PCI_DEFAULT_ROUTES (24 + 16)

struct pci_device;

enum pci_bar_type {
	PCI_BAR_NONE,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64, /* takes this BAR index and the next */
};

struct pci_device_ops {
	/* One access of 1..8 bytes, [off, off + len) inside the BAR (checked). */
	void (*bar_read)(struct pci_device *d, unsigned int bar, uint64_t off,
			 uint8_t *data, unsigned int len);
	void (*bar_write)(struct pci_device *d, unsigned int bar, uint64_t off,
			  const uint8_t *data, unsigned int len);
	/* After a guest write to config bytes [off, off + len) (already masked). */
	void (*config_written)(struct pci_device *d, unsigned int off, unsigned int len);
	/* A BAR started or stopped decoding, or moved (addr is valid when decoded). */
	void (*bar_moved)(struct pci_device *d, unsigned int bar, uint64_t addr,
			  bool decoded);
};

struct pci_bar {
	enum pci_bar_type type;
	uint64_t size;     /* power of two, >= 4 KiB */
	uint64_t addr;     /* where it decodes, when decoded */
	bool decoded;
};

struct pci_device {
	struct pci_bus *bus;
	unsigned int slot;
	const struct pci_device_ops *ops;
	void *opaque;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits a guest write may change */
	struct pci_bar bars[PCI_NUM_BARS];
	unsigned int cap_end;  /* next free capability offset */
	unsigned int cap_last; /* offset of the last capability, 0: none */
};

/*
 * The KVM calls the bus makes; tests substitute recording fakes.  Each
 * returns 0 or -1 (errno set).
 */
struct pci_kvm_ops {
	int (*set_gsi_routing)(void *ctx, const struct kvm_irq_routing *table);
	int (*irqfd)(void *ctx, int fd, uint32_t gsi, bool assign);
	int (*ioeventfd)(void *ctx, int fd, uint64_t addr, unsigned int len, bool assign);
};

struct pci_msi_route {
	bool active;
	uint32_t addr_lo, addr_hi, data;
};

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t config_addr;  /* mechanism #1 address register */
	struct pci_device *slots[FLINT_PCI_SLOTS];
	struct pci_device host_bridge;
	uint64_t mmio32_next;  /* BAR placement at registration */
	const struct pci_kvm_ops *kvm;
	void *kvm_ctx;
	int vm_fd;
	unsigned int gsis_used;
	struct pci_msi_route msi[PCI_MSI_GSIS];
	unsigned int routing_errors;
	/*
	 * A struct kvm_irq_routing with room for every entry, built in place:
	 * no allocation once the guest runs.  Raw bytes, because the kernel's
	 * struct ends in a flexible array and could not be embedded.
	 */
	_Alignas(struct kvm_irq_routing_entry) uint8_t routing[sizeof(struct kvm_irq_routing) +
		(PCI_DEFAULT_ROUTES + PCI_MSI_GSIS) * sizeof(struct kvm_irq_routing_entry)];
};

/*
 * Sets up an empty bus with its host bridge at 00:00.0.  kvm NULL: the real
 * KVM calls on vm_fd (vm_fd -1: no KVM, every call succeeds doing nothing).
 */
void pci_bus_init(struct pci_bus *bus, int vm_fd, const struct pci_kvm_ops *kvm,
		  void *kvm_ctx);

/*
 * A device before registration: zeroed config space with the given IDs and
 * class (24 bits: base, sub, prog-if), the writable command bits, no BARs.
 */
void pci_device_init(struct pci_device *d, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision,
		     const struct pci_device_ops *ops, void *opaque);

/* Declares memory BAR bar of size bytes; 0 or -1 (bad index, size, overlap). */
int pci_device_set_bar(struct pci_device *d, unsigned int bar, enum pci_bar_type type,
		       uint64_t size);

/*
 * Appends a capability of len bytes (including id and next) to the list;
 * returns its config offset, or 0 when it does not fit in the first 256 bytes.
 */
unsigned int pci_device_add_cap(struct pci_device *d, uint8_t id, unsigned int len);

/* Little-endian helpers on config space (offsets trusted: set-up code). */
void pci_cfg_set16(struct pci_device *d, unsigned int off, uint16_t v);
void pci_cfg_set32(struct pci_device *d, unsigned int off, uint32_t v);
uint16_t pci_cfg_get16(const struct pci_device *d, unsigned int off);
uint32_t pci_cfg_get32(const struct pci_device *d, unsigned int off);

/*
 * Puts d in the first free slot (1..31) and places its BARs in the 32-bit
 * window.  Returns the slot, or -1 when the bus or the window is full.
 */
int pci_bus_add_device(struct pci_bus *bus, struct pci_device *d);

/*
 * Guest config access to bus 0, devfn, offset reg, size 1/2/4: reg must be
 * size-aligned and inside 4 KiB.  Anything else, or a missing function, reads
 * all-ones and ignores writes.  Takes the bus lock.
 */
uint32_t pci_config_read(struct pci_bus *bus, unsigned int devfn, unsigned int reg,
			 unsigned int size);
void pci_config_write(struct pci_bus *bus, unsigned int devfn, unsigned int reg,
		      unsigned int size, uint32_t value);

/* Port access; true if the port belongs to PCI (0xcf8 dword, 0xcfc..0xcff). */
bool pci_pio(struct pci_bus *bus, uint16_t port, unsigned int size, bool is_write,
	     uint8_t *data);

/* MMIO access (ECAM or a decoded BAR); true if the address belongs to PCI. */
bool pci_mmio(struct pci_bus *bus, uint64_t addr, unsigned int len, bool is_write,
	      uint8_t *data);

/*
 * MSI routes (bus lock held): reserve n consecutive GSIs (returns the first,
 * or -1), and set or clear the route of one.  Changes reach KVM on commit;
 * commit returns 0 or -1.
 */
int pci_bus_alloc_gsis(struct pci_bus *bus, unsigned int n);
void pci_bus_set_msi_route(struct pci_bus *bus, uint32_t gsi, bool active,
			   uint32_t addr_lo, uint32_t addr_hi, uint32_t data);
int pci_bus_commit_routes(struct pci_bus *bus);

#endif
