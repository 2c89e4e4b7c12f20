/*
 * PCI bus 0 through configuration mechanism #1 (ports 0xcf8/0xcfc) and the
 * virtio-pci (1.x, modern) vendor-capability walk.  CPL0 only (port I/O).
 */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "flint/guest_abi.h"

#define PCI_VENDOR_VIRTIO 0x1af4
#define PCI_DEVICE_VIRTIO_BLK 0x1042 /* 0x1040 + virtio device id 2 */

/* [PCI_MMIO_BASE, PCI_MMIO_END): the 32-bit window the guest maps uncached
 * (entry.S) and in which BARs are used or assigned. */
#define PCI_MMIO_BASE 0xc0000000ULL
#define PCI_MMIO_END 0xfec00000ULL
/* BARs we assign ourselves stay inside flint-hv's 32-bit window (below its
 * ECAM), which is also free on QEMU q35. */
#define PCI_ASSIGN_END (FLINT_PCI_MMIO32_BASE + FLINT_PCI_MMIO32_SIZE)

/* Test knob (`pci.reassign=1`): move the BARs even if firmware placed them. */
extern bool pci_force_assign;

uint32_t pci_cfg_read32(unsigned dev, unsigned fn, unsigned off);
uint16_t pci_cfg_read16(unsigned dev, unsigned fn, unsigned off);
uint8_t pci_cfg_read8(unsigned dev, unsigned fn, unsigned off);
void pci_cfg_write32(unsigned dev, unsigned fn, unsigned off, uint32_t v);
void pci_cfg_write16(unsigned dev, unsigned fn, unsigned off, uint16_t v);

/* One virtio capability: a window [offset, offset + length) of BAR `bar`,
 * resolved to a guest-physical address. */
struct virtio_pci_region {
	bool present;
	uint8_t bar;
	uint32_t offset, length;
	uint64_t addr;
};

struct virtio_pci_dev {
	unsigned dev, fn;
	uint16_t device_id;
	uint64_t bar_base[6], bar_size[6];
	bool bar_assigned[6]; /* we placed it (firmware/VMM left it at 0) */
	struct virtio_pci_region common, notify, isr, device;
	uint32_t notify_mult;
	/* MSI-X capability (config offset; 0: none): vectors, table and PBA. */
	unsigned msix_cap;
	uint16_t msix_size;
	uint8_t msix_table_bar, msix_pba_bar;
	uint32_t msix_table_off, msix_pba_off;
};

/* MSI-X capability: message control (at cap + 2) bits, table entry layout. */
#define PCI_MSIX_CTRL 2
#define PCI_MSIX_ENABLE 0x8000
#define PCI_MSIX_MASKALL 0x4000
#define PCI_MSIX_ENTRY_ADDR_LO 0
#define PCI_MSIX_ENTRY_ADDR_HI 4
#define PCI_MSIX_ENTRY_DATA 8
#define PCI_MSIX_ENTRY_VCTRL 12 /* bit 0: vector masked */

/*
 * Find the index'th (0-based) function on bus 0 with vendor 0x1af4 and
 * device `device_id`, walk its capabilities, size (and if need be assign)
 * the BARs they reference, enable memory decoding and bus mastering.
 * NULL on success, else a reason.
 */
const char *virtio_pci_probe(uint16_t device_id, unsigned index,
			     struct virtio_pci_dev *out);

/*
 * After virtio_pci_probe: size (and if need be assign) the BARs holding the
 * MSI-X table and PBA, and give their guest-physical addresses.  NULL on
 * success, else a reason (no MSI-X capability among them).
 */
const char *virtio_pci_msix_map(struct virtio_pci_dev *d, uint64_t *table,
				uint64_t *pba);

#endif
