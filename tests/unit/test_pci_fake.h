/*
 * A recording stand-in for the KVM calls the PCI bus makes (routing table,
 * irqfd, ioeventfd), shared by the PCI unit tests.  Its irqfd does what
 * KVM's does to a real eventfd: assigning one that is already signalled
 * injects at once (counted in injected; the counter is left as it is), and
 * deassigning resets the counter (read here).
 */
#ifndef FLINT_TEST_PCI_FAKE_H
#define FLINT_TEST_PCI_FAKE_H

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "pci.h"

#define FAKE_MAX 64

struct fake_kvm {
	int fail_routing;     /* nonzero: KVM_SET_GSI_ROUTING fails (EINVAL), table kept */
	unsigned int routing_calls;
	unsigned int routing_nr;
	struct kvm_irq_routing_entry routing[PCI_DEFAULT_ROUTES + PCI_MSI_GSIS];
	int fail_irqfd;       /* nonzero: KVM_IRQFD fails (ENOMEM) */
	unsigned int nr_irqfd;
	/* routed: the GSI had an MSI route in the last table when the call came */
	struct { int fd; uint32_t gsi; bool assign; bool routed; } irqfd[FAKE_MAX];
	unsigned int injected;
	unsigned int nr_ioeventfd;
	struct { int fd; uint64_t addr; unsigned int len; bool assign; } ioeventfd[FAKE_MAX];
};

static int fake_routing(void *ctx, const struct kvm_irq_routing *t)
{
	struct fake_kvm *f = ctx;
	f->routing_calls++;
	if (f->fail_routing) {
		errno = EINVAL;
		return -1;
	}
	f->routing_nr = t->nr;
	memcpy(f->routing, t->entries, t->nr * sizeof(t->entries[0]));
	return 0;
}

static inline bool fake_fd_signalled(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static int fake_irqfd(void *ctx, int fd, uint32_t gsi, bool assign)
{
	struct fake_kvm *f = ctx;
	bool routed = false;
	for (unsigned int i = 0; i < f->routing_nr; i++)
		if (f->routing[i].gsi == gsi && f->routing[i].type == KVM_IRQ_ROUTING_MSI)
			routed = true;
	if (f->nr_irqfd < FAKE_MAX) {
		f->irqfd[f->nr_irqfd].fd = fd;
		f->irqfd[f->nr_irqfd].gsi = gsi;
		f->irqfd[f->nr_irqfd].assign = assign;
		f->irqfd[f->nr_irqfd].routed = routed;
		f->nr_irqfd++;
	}
	if (f->fail_irqfd) {
		errno = ENOMEM;
		return -1;
	}
	if (assign && fake_fd_signalled(fd))
		f->injected++;
	if (!assign && fake_fd_signalled(fd)) {
		uint64_t n;
		if (read(fd, &n, sizeof(n)) != sizeof(n))
			return -1;
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
