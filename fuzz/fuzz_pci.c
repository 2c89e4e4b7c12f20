/*
 * libFuzzer target: everything a guest can do to the PCI bus and a virtio
 * device on it - config mechanism #1 ports, ECAM, the virtio BAR (common,
 * notify, ISR, device config), the MSI-X table and PBA - as a sequence of
 * accesses of any size at any address, mixed with a card signalling a
 * queue's call eventfd.  The back end accepts everything.  Nothing may crash
 * or read out of bounds.
 *
 * KVM calls go to a stand-in that keeps the irqfd and routing state and
 * aborts on what real KVM would refuse or what would lose or misdirect an
 * interrupt: binding a bound eventfd (EBUSY), unbinding one that is not
 * bound, binding to a GSI without an MSI route, or a routing table that
 * drops the route of a GSI with an irqfd on it.  After every access, each
 * queue's irqfd must be bound exactly when the queue is enabled and its
 * vector can deliver (not masked in any way).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "flint/guest_abi.h"
#include "pci.h"
#include "virtio_pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NQ 2

static unsigned int kvm_calls;
static struct virtio_pci vp;

/* What KVM holds: an MSI route per GSI, an irqfd per call eventfd. */
static bool gsi_routed[FLINT_PCI_MSI_GSI_BASE + PCI_MSI_GSIS];
static struct { int fd; bool bound; uint32_t gsi; } kvm_irqfd[NQ];

static int k_routing(void *ctx, const struct kvm_irq_routing *t)
{
	(void)ctx;
	if (t->nr > PCI_DEFAULT_ROUTES + PCI_MSI_GSIS)
		abort();
	memset(gsi_routed, 0, sizeof(gsi_routed));
	for (unsigned int i = 0; i < t->nr; i++) {
		const struct kvm_irq_routing_entry *e = &t->entries[i];
		if (e->type != KVM_IRQ_ROUTING_MSI)
			continue;
		if (e->gsi < FLINT_PCI_MSI_GSI_BASE || e->gsi >= FLINT_PCI_MSI_GSI_BASE + PCI_MSI_GSIS)
			abort();
		gsi_routed[e->gsi] = true;
	}
	for (unsigned int q = 0; q < NQ; q++)
		if (kvm_irqfd[q].bound && !gsi_routed[kvm_irqfd[q].gsi])
			abort(); /* an irqfd left on a GSI with no route */
	kvm_calls++;
	return 0;
}

static int k_irqfd(void *ctx, int fd, uint32_t gsi, bool assign)
{
	(void)ctx;
	unsigned int q = 0;
	while (q < NQ && kvm_irqfd[q].fd != fd)
		q++;
	if (q == NQ || gsi >= FLINT_PCI_MSI_GSI_BASE + PCI_MSI_GSIS)
		abort();
	if (assign) {
		if (kvm_irqfd[q].bound || !gsi_routed[gsi])
			abort();
		kvm_irqfd[q].bound = true;
		kvm_irqfd[q].gsi = gsi;
	} else {
		if (!kvm_irqfd[q].bound || kvm_irqfd[q].gsi != gsi)
			abort();
		kvm_irqfd[q].bound = false;
		eventfd_t n;
		(void)eventfd_read(fd, &n); /* KVM resets the counter on unbind */
	}
	kvm_calls++;
	return 0;
}

static int k_ioeventfd(void *ctx, int fd, uint64_t addr, unsigned int len, bool assign)
{
	(void)ctx;
	(void)fd;
	(void)addr;
	(void)len;
	(void)assign;
	kvm_calls++;
	return 0;
}

/* Each queue's irqfd is bound exactly when it should be, as KVM has it. */
static void check_irqfds(void)
{
	for (unsigned int q = 0; q < NQ; q++) {
		const struct virtio_pci_queue *vq = &vp.q[q];
		bool want = vq->enabled && vq->msix_vector != PCI_MSIX_NO_VECTOR &&
			    pci_msix_vector_enabled(&vp.msix, vq->msix_vector);
		if (vq->irqfd_bound != want || kvm_irqfd[q].bound != want)
			abort();
		if (want && kvm_irqfd[q].gsi != pci_msix_gsi(&vp.msix, vq->msix_vector))
			abort();
	}
}

static const struct pci_kvm_ops kvm_ops = {
	.set_gsi_routing = k_routing, .irqfd = k_irqfd, .ioeventfd = k_ioeventfd,
};

static uint8_t dev_config[64];

static uint64_t b_features(void *be)
{
	(void)be;
	return (1ULL << 6) | (1ULL << 9) | (1ULL << 12);
}

static int b_set_features(void *be, uint64_t f)
{
	(void)be;
	return (f & (1ULL << 63)) ? -1 : 0;
}

static void b_get_config(void *be, uint32_t off, uint8_t *buf, uint32_t len)
{
	(void)be;
	if (off > sizeof(dev_config) || len > sizeof(dev_config) - off)
		abort(); /* the transport must have bounds-checked */
	memcpy(buf, dev_config + off, len);
}

static void b_set_config(void *be, uint32_t off, const uint8_t *buf, uint32_t len)
{
	(void)be;
	if (off > sizeof(dev_config) || len > sizeof(dev_config) - off)
		abort();
	memcpy(dev_config + off, buf, len);
}

static int b_queue_start(void *be, const struct virtio_pci_queue_info *q)
{
	(void)be;
	if (q->index >= NQ || q->size == 0 || (q->size & (q->size - 1)) != 0)
		abort(); /* the transport must only start valid queues */
	/* The card always gets the queue's call eventfd; the transport
	 * decides by binding it whether a signal reaches the guest. */
	if (q->call_fd != vp.q[q->index].call_fd)
		abort();
	return 0;
}

static void b_reset(void *be)
{
	(void)be;
}

static const struct virtio_backend_ops be_ops = {
	.get_features = b_features, .set_features = b_set_features,
	.get_config = b_get_config, .set_config = b_set_config,
	.queue_start = b_queue_start, .reset = b_reset,
};

/*
 * Each record: op, size, 4 address bytes, 4 value bytes.  (op >> 1) % 8
 * picks the kind; 7 is the card signalling a call eventfd, 4..6 are 0..2.
 */
#define REC 10

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pci_bus bus;
	char err[128];

	memset(gsi_routed, 0, sizeof(gsi_routed));
	memset(kvm_irqfd, 0, sizeof(kvm_irqfd));
	pci_bus_init(&bus, -1, &kvm_ops, NULL);
	struct virtio_pci_params p = {
		.device_type = 2, .class_code = 0x018000, .nr_queues = 2,
		.queue_size_max = 256, .config_size = sizeof(dev_config),
		.ops = &be_ops, .be = NULL,
	};
	if (virtio_pci_init(&vp, &bus, &p, err, sizeof(err)) != 0)
		abort();
	for (unsigned int q = 0; q < NQ; q++)
		kvm_irqfd[q].fd = vp.q[q].call_fd;
	for (size_t i = 0; i + REC <= size; i += REC) {
		const uint8_t *r = data + i;
		uint8_t op = r[0];
		unsigned int len = (unsigned int)(r[1] % 9);
		uint32_t a, v;
		memcpy(&a, r + 2, 4);
		memcpy(&v, r + 6, 4);
		uint8_t buf[8] = { 0 };
		memcpy(buf, &v, 4);
		bool write = op & 1;
		unsigned int kind = (op >> 1) % 8;
		if (kind == 7) { /* the card completes a request on queue a % NQ */
			(void)eventfd_write(vp.q[a % NQ].call_fd, 1);
			continue;
		}
		switch (kind % 4) {
		case 0: /* config mechanism #1 */
			(void)pci_pio(&bus, (uint16_t)(FLINT_PCI_CONFIG_ADDR_PORT + (a % 8)), len, write, buf);
			break;
		case 1: /* ECAM, all slots and registers */
			(void)pci_mmio(&bus, FLINT_PCI_ECAM_BASE + (a % FLINT_PCI_ECAM_SIZE), len,
				       write, buf);
			break;
		case 2: /* the BAR window, where the virtio BARs sit */
			(void)pci_mmio(&bus, FLINT_PCI_MMIO32_BASE + (a % 0x10000), len, write, buf);
			break;
		default: /* anywhere at all */
			(void)pci_mmio(&bus, a, len, write, buf);
			break;
		}
		check_irqfds();
	}
	virtio_pci_close(&vp);
	return 0;
}
