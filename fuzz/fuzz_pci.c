/*
 * libFuzzer target: everything a guest can do to the PCI bus and a virtio
 * device on it - config mechanism #1 ports, ECAM, the virtio BAR (common,
 * notify, ISR, device config) and the MSI-X table - as a sequence of
 * accesses of any size at any address.  KVM calls go to a counting stand-in;
 * the back end accepts everything.  Nothing may crash or read out of bounds.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flint/guest_abi.h"
#include "pci.h"
#include "virtio_pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned int kvm_calls;

static int k_routing(void *ctx, const struct kvm_irq_routing *t)
{
	(void)ctx;
	if (t->nr > PCI_DEFAULT_ROUTES + PCI_MSI_GSIS)
		abort();
	kvm_calls++;
	return 0;
}

static int k_irqfd(void *ctx, int fd, uint32_t gsi, bool assign)
{
	(void)ctx;
	(void)fd;
	(void)gsi;
	(void)assign;
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
	if (q->index >= 2 || q->size == 0 || (q->size & (q->size - 1)) != 0)
		abort(); /* the transport must only start valid queues */
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

/* Each record: op, size, 4 address bytes, 4 value bytes. */
#define REC 10

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pci_bus bus;
	static struct virtio_pci vp;
	char err[128];

	pci_bus_init(&bus, -1, &kvm_ops, NULL);
	struct virtio_pci_params p = {
		.device_type = 2, .class_code = 0x018000, .nr_queues = 2,
		.queue_size_max = 256, .config_size = sizeof(dev_config),
		.ops = &be_ops, .be = NULL,
	};
	if (virtio_pci_init(&vp, &bus, &p, err, sizeof(err)) != 0)
		abort();
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
		switch ((op >> 1) % 4) {
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
	}
	virtio_pci_close(&vp);
	return 0;
}
