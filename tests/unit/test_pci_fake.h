/*
 * A recording stand-in for the KVM calls the PCI bus makes (routing table,
 * irqfd, ioeventfd), shared by the PCI unit tests.
 */
#ifndef FLINT_TEST_PCI_FAKE_H
#define FLINT_TEST_PCI_FAKE_H

#include <string.h>

#include "pci.h"

#define FAKE_MAX 64

struct fake_kvm {
	unsigned int routing_calls;
	unsigned int routing_nr;
	struct kvm_irq_routing_entry routing[PCI_DEFAULT_ROUTES + PCI_MSI_GSIS];
	unsigned int nr_irqfd;
	struct { int fd; uint32_t gsi; bool assign; } irqfd[FAKE_MAX];
	unsigned int nr_ioeventfd;
	struct { int fd; uint64_t addr; unsigned int len; bool assign; } ioeventfd[FAKE_MAX];
};

static int fake_routing(void *ctx, const struct kvm_irq_routing *t)
{
	struct fake_kvm *f = ctx;
	f->routing_calls++;
	f->routing_nr = t->nr;
	memcpy(f->routing, t->entries, t->nr * sizeof(t->entries[0]));
	return 0;
}

static int fake_irqfd(void *ctx, int fd, uint32_t gsi, bool assign)
{
	struct fake_kvm *f = ctx;
	if (f->nr_irqfd < FAKE_MAX) {
		f->irqfd[f->nr_irqfd].fd = fd;
		f->irqfd[f->nr_irqfd].gsi = gsi;
		f->irqfd[f->nr_irqfd].assign = assign;
		f->nr_irqfd++;
	}
	return 0;
}

static int fake_ioeventfd(void *ctx, int fd, uint64_t addr, unsigned int len, bool assign)
{
	struct fake_kvm *f = ctx;
	if (f->nr_ioeventfd < FAKE_MAX) {
		f->ioeventfd[f->nr_ioeventfd].fd = fd;
		f->ioeventfd[f->nr_ioeventfd].addr = addr;
		f->ioeventfd[f->nr_ioeventfd].len = len;
		f->ioeventfd[f->nr_ioeventfd].assign = assign;
		f->nr_ioeventfd++;
	}
	return 0;
}

static const struct pci_kvm_ops fake_kvm_ops = {
	.set_gsi_routing = fake_routing,
	.irqfd = fake_irqfd,
	.ioeventfd = fake_ioeventfd,
};

/* ECAM helpers: config access of bus 0, slot, function 0. */
static inline uint32_t ecam_read(struct pci_bus *bus, unsigned int slot, unsigned int reg,
				 unsigned int len)
{
	uint8_t d[8] = { 0 };
	uint32_t v = 0;
	assert_true(pci_mmio(bus, FLINT_PCI_ECAM_BASE + ((uint64_t)slot << 15) + reg, len,
			     false, d));
	memcpy(&v, d, len < 4 ? len : 4);
	return v;
}

static inline void ecam_write(struct pci_bus *bus, unsigned int slot, unsigned int reg,
			      unsigned int len, uint32_t v)
{
	uint8_t d[8] = { 0 };
	memcpy(d, &v, len < 4 ? len : 4);
	assert_true(pci_mmio(bus, FLINT_PCI_ECAM_BASE + ((uint64_t)slot << 15) + reg, len,
			     true, d));
}

static inline uint64_t mmio_read(struct pci_bus *bus, uint64_t addr, unsigned int len)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;
	assert_true(pci_mmio(bus, addr, len, false, d));
	memcpy(&v, d, len);
	return v;
}

static inline void mmio_write(struct pci_bus *bus, uint64_t addr, unsigned int len, uint64_t v)
{
	uint8_t d[8];
	memcpy(d, &v, 8);
	assert_true(pci_mmio(bus, addr, len, true, d));
}

#endif
