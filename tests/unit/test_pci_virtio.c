/*
 * The virtio-pci transport against a fake back end: identity and
 * capabilities, feature negotiation, the queue set-up state machine, irqfd
 * and ioeventfd binding, MSI-X masking (irqfd unbound while the vector is
 * masked, the PBA), device config bounds and reset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>

#include <cmocka.h>

#include "pci.h"
#include "virtio_pci.h"
#include "test_pci_fake.h"

struct fake_be {
	uint64_t features;
	uint64_t accepted;
	int refuse;
	uint8_t config[8];
	unsigned int resets, starts, driver_ok;
	struct virtio_pci_queue_info last;
	int start_fails;
};

static uint64_t be_get_features(void *be) { return ((struct fake_be *)be)->features; }
static int be_set_features(void *be, uint64_t f)
{
	struct fake_be *b = be;
	b->accepted = f;
	return b->refuse;
}
static void be_get_config(void *be, uint32_t off, uint8_t *buf, uint32_t len)
{
	memcpy(buf, ((struct fake_be *)be)->config + off, len);
}
static void be_set_config(void *be, uint32_t off, const uint8_t *buf, uint32_t len)
{
	memcpy(((struct fake_be *)be)->config + off, buf, len);
}
static int be_queue_start(void *be, const struct virtio_pci_queue_info *q)
{
	struct fake_be *b = be;
	b->starts++;
	b->last = *q;
	return b->start_fails;
}
static void be_driver_ok(void *be) { ((struct fake_be *)be)->driver_ok++; }
static void be_reset(void *be) { ((struct fake_be *)be)->resets++; }

static const struct virtio_backend_ops be_ops = {
	.get_features = be_get_features, .set_features = be_set_features,
	.get_config = be_get_config, .set_config = be_set_config,
	.queue_start = be_queue_start, .driver_ok = be_driver_ok, .reset = be_reset,
};

static struct pci_bus bus;
static struct fake_kvm fk;
static struct fake_be be;
static struct virtio_pci vp;
static uint64_t bar0;

#define COMMON(off) (bar0 + VIRTIO_PCI_COMMON_OFF + (off))

static int setup(void **state)
{
	char err[128];
	(void)state;
	memset(&fk, 0, sizeof(fk));
	memset(&be, 0, sizeof(be));
	be.features = (1ULL << 9) | (1ULL << VIRTIO_F_NOTIFICATION_DATA); /* any bit, plus one we mask */
	memcpy(be.config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	pci_bus_init(&bus, -1, &fake_kvm_ops, &fk);
	struct virtio_pci_params p = {
		.device_type = 2, .class_code = 0x018000, .nr_queues = 2,
		.queue_size_max = 256, .config_size = 8, .ops = &be_ops, .be = &be,
	};
	assert_int_equal(virtio_pci_init(&vp, &bus, &p, err, sizeof(err)), 0);
	assert_int_equal(vp.pci.slot, 1);
	assert_int_equal(be.resets, 1);
	/* The guest enables memory decode: notify ioeventfds get bound. */
	pci_config_write(&bus, 8, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	bar0 = vp.pci.bars[0].addr;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	virtio_pci_close(&vp);
	return 0;
}

static void test_identity_and_caps(void **state)
{
	(void)state;
	assert_int_equal(ecam_read(&bus, 1, 0, 4), 0x10421af4);
	assert_int_equal(ecam_read(&bus, 1, PCI_REVISION_ID, 1), 1);
	assert_int_equal(ecam_read(&bus, 1, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(ecam_read(&bus, 1, PCI_INTERRUPT_PIN, 1), 0); /* MSI-X only */
	/* Walk: MSI-X, then common (1), ISR (3), notify (2), device (4). */
	unsigned int p = ecam_read(&bus, 1, PCI_CAPABILITY_LIST, 1);
	assert_int_equal(ecam_read(&bus, 1, p, 1), PCI_CAP_ID_MSIX);
	assert_int_equal(ecam_read(&bus, 1, p + 2, 2), 2); /* 3 vectors */
	static const uint8_t types[] = { 1, 3, 2, 4 };
	static const uint32_t offs[] = { 0, 0x1000, 0x3000, 0x2000 };
	static const uint32_t lens[] = { 0x38, 1, 8, 8 };
	for (unsigned int i = 0; i < 4; i++) {
		p = ecam_read(&bus, 1, p + 1, 1);
		assert_int_not_equal(p, 0);
		assert_int_equal(ecam_read(&bus, 1, p, 1), PCI_CAP_ID_VNDR);
		assert_int_equal(ecam_read(&bus, 1, p + 3, 1), types[i]);
		assert_int_equal(ecam_read(&bus, 1, p + 4, 1), 0); /* BAR 0 */
		assert_int_equal(ecam_read(&bus, 1, p + 8, 4), offs[i]);
		assert_int_equal(ecam_read(&bus, 1, p + 12, 4), lens[i]);
		if (types[i] == 2) {
			assert_int_equal(ecam_read(&bus, 1, p + 2, 1), 20);
			assert_int_equal(ecam_read(&bus, 1, p + 16, 4), 4);
		}
	}
	assert_int_equal(ecam_read(&bus, 1, p + 1, 1), 0);
	/* One ioeventfd per queue at its notify address, 2 bytes wide. */
	assert_int_equal(fk.nr_ioeventfd, 2);
	for (unsigned int q = 0; q < 2; q++) {
		assert_true(fk.ioeventfd[q].assign);
		assert_int_equal(fk.ioeventfd[q].addr, bar0 + 0x3000 + 4 * q);
		assert_int_equal(fk.ioeventfd[q].len, 2);
		assert_int_equal(fk.ioeventfd[q].fd, vp.q[q].kick_fd);
	}
	/* Moving BAR 0 moves them. */
	pci_config_write(&bus, 8, PCI_BAR0, 4, 0xc0100000);
	assert_int_equal(fk.nr_ioeventfd, 6);
	assert_false(fk.ioeventfd[2].assign);
	assert_int_equal(fk.ioeventfd[5].addr, 0xc0100000 + 0x3000 + 4);
	assert_true(fk.ioeventfd[5].assign);
}

static void test_features(void **state)
{
	(void)state;
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), 2);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_DF), 4), 1 << 9);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_DF), 4), 1); /* VERSION_1 only */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 7);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_DF), 4), 0);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1,
		   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	/* Without VERSION_1: FEATURES_OK does not stick. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4, 1 << 9);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x0b);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0x03);
	/* A bit the device never offered: refused too. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4, 1 | (1 << 6));
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x0b);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0x03);
	/* The back end may refuse. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4, 1);
	be.refuse = 1;
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x0b);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0x03);
	be.refuse = 0;
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x0b);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0x0b);
	assert_int_equal(be.accepted, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 9));
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4), 1);
	/* Features are frozen after FEATURES_OK. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4, 0);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4), 1);
	/* Wrong widths are ignored. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 4, 0);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 4, 1);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0x0b);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), 0);
}

static void negotiate(void)
{
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x03);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4, 1);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x0b);
}

/* MSI-X through config space and BAR 2, as a driver does it. */
static uint64_t msix_table(void)
{
	return vp.pci.bars[VIRTIO_PCI_MSIX_BAR].addr;
}

static void msix_flags(uint16_t flags)
{
	pci_config_write(&bus, 8, vp.msix.cap + 2, 2, flags);
}

static void vector_program(unsigned int v, uint32_t data)
{
	mmio_write(&bus, msix_table() + 16 * v, 8, 0xfee00000);
	mmio_write(&bus, msix_table() + 16 * v + 8, 4, data);
}

static void vector_mask(unsigned int v, bool masked)
{
	mmio_write(&bus, msix_table() + 16 * v + 12, 4, masked);
}

static uint64_t pba(void)
{
	return mmio_read(&bus, msix_table() + VIRTIO_PCI_MSIX_PBA_OFF, 8);
}

/* Queue q at valid ring addresses, with vector v (not enabled). */
static void queue_prepare(unsigned int q, uint16_t v)
{
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, v);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8, 0x10000 + 0x1000 * q);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, 0x20000 + 0x1000 * q);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 8, 0x30000 + 0x1000 * q);
}

static void queue_enable(unsigned int q)
{
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
}

static void queue_vector(unsigned int q, uint16_t v)
{
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, v);
}

/* The irqfd call number i was (fd of queue q, vector v, assign). */
static void expect_irqfd(unsigned int i, unsigned int q, unsigned int v, bool assign)
{
	assert_true(i < fk.nr_irqfd);
	assert_int_equal(fk.irqfd[i].fd, vp.q[q].call_fd);
	assert_int_equal(fk.irqfd[i].gsi, pci_msix_gsi(&vp.msix, v));
	assert_int_equal(fk.irqfd[i].assign, assign);
	/* A GSI always has its route while an irqfd is bound to it. */
	assert_true(fk.irqfd[i].routed);
}

static void test_queue_setup(void **state)
{
	(void)state;
	negotiate();
	/* MSI-X on, vectors 0 and 2 programmed and unmasked (the driver's order). */
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	vector_program(0, 0x40);
	vector_program(2, 0x42);
	vector_mask(0, false);
	vector_mask(2, false);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 1);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 256);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_NOFF), 2), 1);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), 0xffff);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 100);  /* not a power of 2 */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 512);  /* above the max */
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 256);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 128);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 128);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 9);    /* no such vector */
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), 0xffff);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 2);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), 2);
	/* Ring addresses as two 32-bit halves (Linux) and as one 64-bit write. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0x10000);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO + 4), 4, 1);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, 0x20000);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 4, 0x30000);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8), 0x100010000ULL);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO + 4), 4), 1);
	assert_int_equal(fk.nr_irqfd, 0);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 1);
	assert_int_equal(be.starts, 1);
	assert_int_equal(be.last.index, 1);
	assert_int_equal(be.last.size, 128);
	assert_int_equal(be.last.desc, 0x100010000ULL);
	assert_int_equal(be.last.driver, 0x20000);
	assert_int_equal(be.last.device, 0x30000);
	assert_int_equal(be.last.kick_fd, vp.q[1].kick_fd);
	assert_int_equal(be.last.call_fd, vp.q[1].call_fd);
	/* The call eventfd is bound to the GSI of vector 2. */
	assert_int_equal(fk.nr_irqfd, 1);
	expect_irqfd(0, 1, 2, true);
	/* Frozen while enabled: size and addresses. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 64);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 128);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4), 0x10000);
	/* A new vector rebinds the irqfd. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 0);
	assert_int_equal(fk.nr_irqfd, 3);
	expect_irqfd(1, 1, 2, false);
	expect_irqfd(2, 1, 0, true);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x0f);
	assert_int_equal(be.driver_ok, 1);
	/* No such queue: size 0, writes ignored. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 5);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 0);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	assert_int_equal(be.starts, 1);
	/* Reset: back end told, irqfd unbound, queue state back to defaults. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0);
	assert_int_equal(be.resets, 2);
	assert_int_equal(fk.nr_irqfd, 4);
	assert_false(fk.irqfd[3].assign);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1), 0);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), 0);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 1);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 256);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8), 0);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_GF), 4), 0);
}

/* Masking a vector unbinds the irqfds of its queues; unmasking binds them again. */
static void test_vector_mask(void **state)
{
	(void)state;
	negotiate();
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	vector_program(0, 0x40);
	vector_program(1, 0x41);
	/* Queue 0 enabled while its vector is masked: no irqfd, yet the card gets the fd. */
	queue_prepare(0, 0);
	queue_enable(0);
	assert_int_equal(be.starts, 1);
	assert_int_equal(be.last.call_fd, vp.q[0].call_fd);
	assert_int_equal(fk.nr_irqfd, 0);
	/* Unmask: one irqfd call, after the route (expect_irqfd checks). */
	unsigned int calls = fk.routing_calls;
	vector_mask(0, false);
	assert_int_equal(fk.routing_calls, calls + 1);
	assert_int_equal(fk.nr_irqfd, 1);
	expect_irqfd(0, 0, 0, true);
	/* Mask: one irqfd call, no routing call (the route stays for the unmask). */
	vector_mask(0, true);
	assert_int_equal(fk.nr_irqfd, 2);
	expect_irqfd(1, 0, 0, false);
	assert_int_equal(fk.routing_calls, calls + 1);
	/* Unmasking again costs only the irqfd call. */
	vector_mask(0, false);
	assert_int_equal(fk.nr_irqfd, 3);
	expect_irqfd(2, 0, 0, true);
	assert_int_equal(fk.routing_calls, calls + 1);
	/* Another vector's mask bit leaves queue 0 alone. */
	vector_mask(1, false);
	vector_mask(1, true);
	assert_int_equal(fk.nr_irqfd, 3);
	/* Function mask-all: the same as masking. */
	msix_flags(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_int_equal(fk.nr_irqfd, 4);
	expect_irqfd(3, 0, 0, false);
	vector_mask(0, false); /* the vector bit alone does not unmask it */
	assert_int_equal(fk.nr_irqfd, 4);
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(fk.nr_irqfd, 5);
	expect_irqfd(4, 0, 0, true);
	/* MSI-X disabled: the same again. */
	msix_flags(0);
	assert_int_equal(fk.nr_irqfd, 6);
	expect_irqfd(5, 0, 0, false);
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(fk.nr_irqfd, 7);
	expect_irqfd(6, 0, 0, true);
	/* Two queues on one vector: both follow it. */
	queue_prepare(1, 0);
	queue_enable(1);
	assert_int_equal(fk.nr_irqfd, 8);
	expect_irqfd(7, 1, 0, true);
	vector_mask(0, true);
	assert_int_equal(fk.nr_irqfd, 10);
	expect_irqfd(8, 0, 0, false);
	expect_irqfd(9, 1, 0, false);
	vector_mask(0, false);
	assert_int_equal(fk.nr_irqfd, 12);
	expect_irqfd(10, 0, 0, true);
	expect_irqfd(11, 1, 0, true);
	assert_int_equal(vp.kvm_errors, 0);
}

/* The queue's vector changes while one or the other is masked. */
static void test_vector_change_while_masked(void **state)
{
	(void)state;
	negotiate();
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	vector_program(0, 0x40);
	vector_program(1, 0x41);
	queue_prepare(0, 0);
	queue_enable(0);
	assert_int_equal(fk.nr_irqfd, 0);
	/* Masked vector 0 to masked vector 1: still nothing bound. */
	queue_vector(0, 1);
	assert_int_equal(fk.nr_irqfd, 0);
	/* Unmasking the old vector does not bind the queue; the new one does. */
	vector_mask(0, false);
	assert_int_equal(fk.nr_irqfd, 0);
	vector_mask(1, false);
	assert_int_equal(fk.nr_irqfd, 1);
	expect_irqfd(0, 0, 1, true);
	/* Live vector 1 to masked vector 2: unbound, not rebound. */
	vector_program(2, 0x42);
	queue_vector(0, 2);
	assert_int_equal(fk.nr_irqfd, 2);
	expect_irqfd(1, 0, 1, false);
	/* Masked vector 2 to live vector 0: bound there. */
	queue_vector(0, 0);
	assert_int_equal(fk.nr_irqfd, 3);
	expect_irqfd(2, 0, 0, true);
	/* Live vector 0 to NO_VECTOR, then masking vector 0: nothing more. */
	queue_vector(0, PCI_MSIX_NO_VECTOR);
	assert_int_equal(fk.nr_irqfd, 4);
	expect_irqfd(3, 0, 0, false);
	vector_mask(0, true);
	vector_mask(0, false);
	assert_int_equal(fk.nr_irqfd, 4);
}

/*
 * A queue enabled without a vector (polled) that gets one later: the card
 * had the call eventfd from the start, so its completions reach the new
 * vector, including one signalled before the vector was set.
 */
static void test_vector_after_enable(void **state)
{
	(void)state;
	negotiate();
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	vector_program(0, 0x40);
	vector_mask(0, false);
	queue_prepare(0, PCI_MSIX_NO_VECTOR);
	queue_enable(0);
	assert_int_equal(be.last.call_fd, vp.q[0].call_fd);
	assert_false(vp.q[0].irqfd_bound);
	assert_int_equal(eventfd_write(vp.q[0].call_fd, 1), 0);
	assert_int_equal(pba(), 0); /* no vector: nothing to be pending on */
	unsigned int n = fk.nr_irqfd;
	queue_vector(0, 0);
	expect_irqfd(n, 0, 0, true);
	assert_true(vp.q[0].irqfd_bound);
	assert_int_equal(fk.injected, 1);
}

/* Device reset (status 0) with the vector live, and with it masked. */
static void test_reset_and_mask(void **state)
{
	(void)state;
	negotiate();
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	vector_program(0, 0x40);
	vector_mask(0, false);
	queue_prepare(0, 0);
	queue_enable(0);
	assert_int_equal(fk.nr_irqfd, 1);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0);
	assert_int_equal(fk.nr_irqfd, 2);
	expect_irqfd(1, 0, 0, false);
	/* The queue forgot its vector: masking and unmasking touch nothing. */
	vector_mask(0, true);
	vector_mask(0, false);
	assert_int_equal(fk.nr_irqfd, 2);
	/* Masked at reset: nothing bound, nothing to unbind, nothing afterwards. */
	negotiate();
	vector_mask(0, true);
	queue_prepare(0, 0);
	queue_enable(0);
	assert_int_equal(fk.nr_irqfd, 2);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0);
	vector_mask(0, false);
	assert_int_equal(fk.nr_irqfd, 2);
	/* MSI-X itself is not reset by a virtio reset: the table keeps its state. */
	assert_true(pci_msix_vector_enabled(&vp.msix, 0));
	assert_int_equal(vp.kvm_errors, 0);
}

/*
 * The PBA and the end-to-end promise, on real eventfds: a signal while
 * masked is pending and is injected on unmask; none is lost or duplicated.
 */
static void test_pending_delivered_on_unmask(void **state)
{
	(void)state;
	negotiate();
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	vector_program(0, 0x40);
	vector_program(1, 0x41);
	vector_mask(0, false);
	queue_prepare(0, 0);
	queue_enable(0);
	queue_prepare(1, 1); /* vector 1 masked, queue 1 enabled */
	queue_enable(1);
	assert_int_equal(pba(), 0); /* nothing signalled yet */
	/* The card completes on queue 0 while vector 0 is masked. */
	vector_mask(0, true);
	assert_int_equal(eventfd_write(vp.q[0].call_fd, 1), 0);
	assert_int_equal(pba(), 0x1);
	assert_int_equal(mmio_read(&bus, msix_table() + VIRTIO_PCI_MSIX_PBA_OFF, 1), 0x1);
	assert_int_equal(eventfd_write(vp.q[0].call_fd, 1), 0); /* two completions: one message */
	assert_int_equal(fk.injected, 0);
	/* Unmask: bound again, and KVM injects the held message at once. */
	vector_mask(0, false);
	assert_int_equal(fk.injected, 1);
	assert_int_equal(pba(), 0); /* a vector that can deliver has no pending bit */
	/* Masking again: the unbind drains the counter, nothing stays pending. */
	vector_mask(0, true);
	assert_int_equal(pba(), 0);
	vector_mask(0, false);
	assert_int_equal(fk.injected, 1);
	/* Queue 1 on masked vector 1: pending through mask-all and MSI-X off as well. */
	assert_int_equal(eventfd_write(vp.q[1].call_fd, 1), 0);
	assert_int_equal(pba(), 0x2);
	msix_flags(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_int_equal(pba(), 0x2);
	vector_mask(1, false);
	assert_int_equal(fk.injected, 1);
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(fk.injected, 2);
	assert_int_equal(pba(), 0);
	/* A disabled queue's signals are no pending message (after reset). */
	vector_mask(1, true);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0);
	assert_int_equal(eventfd_write(vp.q[1].call_fd, 1), 0);
	assert_int_equal(pba(), 0);
}

/* A failed KVM_IRQFD: logged, counted, signals held until a retry binds. */
static void test_irqfd_failure(void **state)
{
	(void)state;
	negotiate();
	msix_flags(PCI_MSIX_FLAGS_ENABLE);
	vector_program(0, 0x40);
	vector_mask(0, false);
	queue_prepare(0, 0);
	fk.fail_irqfd = 1;
	queue_enable(0);
	assert_int_equal(be.last.call_fd, vp.q[0].call_fd);
	assert_false(vp.q[0].irqfd_bound);
	assert_int_equal(vp.kvm_errors, 1);
	/* The card completes meanwhile; the next change retries and delivers. */
	assert_int_equal(eventfd_write(vp.q[0].call_fd, 1), 0);
	fk.fail_irqfd = 0;
	vector_mask(0, true);
	assert_int_equal(fk.injected, 0);
	vector_mask(0, false);
	assert_true(vp.q[0].irqfd_bound);
	assert_int_equal(fk.injected, 1);
	fk.injected = 0;
	/* KVM refusing the route of a vector being unmasked: its queues stay unbound
	 * (signals held, never sent to a GSI without a route) until a retry works. */
	vector_program(1, 0x41);
	queue_prepare(1, 1);
	queue_enable(1);
	assert_int_equal(be.last.call_fd, vp.q[1].call_fd);
	unsigned int n = fk.nr_irqfd;
	fk.fail_routing = 1;
	vector_mask(1, false);
	assert_int_equal(fk.nr_irqfd, n);
	assert_false(vp.q[1].irqfd_bound);
	assert_int_equal(eventfd_write(vp.q[1].call_fd, 1), 0);
	assert_int_equal(pba(), 0x2);
	fk.fail_routing = 0;
	vector_program(2, 0x42); /* any table write retries */
	assert_int_equal(fk.nr_irqfd, n + 1);
	expect_irqfd(n, 1, 1, true);
	assert_int_equal(fk.injected, 1);
	assert_int_equal(pba(), 0);
}

static void test_queue_errors(void **state)
{
	(void)state;
	/* Enabling before FEATURES_OK does nothing. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	assert_int_equal(be.starts, 0);
	negotiate();
	/* Misaligned descriptor table: DEVICE_NEEDS_RESET, queue stays off. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0x10008);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	assert_int_equal(be.starts, 0);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1),
			 0x0b | VIRTIO_CONFIG_S_NEEDS_RESET);
	/* The driver cannot clear NEEDS_RESET; a reset can. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0x0f);
	assert_true(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1) &
		    VIRTIO_CONFIG_S_NEEDS_RESET);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, 0);
	negotiate();
	/* The back end failing to start a queue is NEEDS_RESET as well. */
	be.start_fails = -1;
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	assert_int_equal(be.starts, 1);
	assert_int_equal(be.last.call_fd, vp.q[0].call_fd); /* the card always gets it */
	assert_true(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_STATUS), 1) &
		    VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_device_config_and_bounds(void **state)
{
	(void)state;
	uint64_t cfg = bar0 + VIRTIO_PCI_DEVICE_OFF;
	assert_int_equal(mmio_read(&bus, cfg, 4), 0x04030201);
	assert_int_equal(mmio_read(&bus, cfg + 4, 4), 0x08070605);
	assert_int_equal(mmio_read(&bus, cfg + 6, 2), 0x0807);
	/* Straddling or beyond the config: all-ones, and the back end is not asked. */
	assert_int_equal(mmio_read(&bus, cfg + 6, 4), 0xffffffff);
	assert_int_equal(mmio_read(&bus, cfg + 8, 1), 0xff);
	mmio_write(&bus, cfg + 1, 1, 0xaa);
	mmio_write(&bus, cfg + 7, 2, 0xbbbb);
	assert_int_equal(be.config[1], 0xaa);
	assert_int_equal(be.config[7], 0x08);
	/* ISR reads zero; the common config past its end reads all-ones. */
	assert_int_equal(mmio_read(&bus, bar0 + VIRTIO_PCI_ISR_OFF, 1), 0);
	assert_int_equal(mmio_read(&bus, COMMON(0x36), 4), 0xffffffff);
	assert_int_equal(mmio_read(&bus, COMMON(0x38), 4), 0xffffffff);
	/* Config MSI-X vector: validated like queue vectors. */
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 2);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_MSIX), 2), 2);
	mmio_write(&bus, COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 3);
	assert_int_equal(mmio_read(&bus, COMMON(VIRTIO_PCI_COMMON_MSIX), 2), 0xffff);
	/* Notify writes that reach flint-hv are dropped harmlessly. */
	mmio_write(&bus, bar0 + VIRTIO_PCI_NOTIFY_OFF, 2, 0);
}

static void test_bad_params(void **state)
{
	char err[128];
	struct virtio_pci other;
	(void)state;
	struct virtio_pci_params p = {
		.device_type = 2, .nr_queues = 0, .queue_size_max = 256, .ops = &be_ops, .be = &be,
	};
	assert_int_equal(virtio_pci_init(&other, &bus, &p, err, sizeof(err)), -1);
	p.nr_queues = VIRTIO_PCI_QUEUES_MAX + 1;
	assert_int_equal(virtio_pci_init(&other, &bus, &p, err, sizeof(err)), -1);
	p.nr_queues = 1;
	p.queue_size_max = 100;
	assert_int_equal(virtio_pci_init(&other, &bus, &p, err, sizeof(err)), -1);
	p.queue_size_max = 256;
	p.config_size = VIRTIO_PCI_DEVICE_CFG_MAX + 1;
	assert_int_equal(virtio_pci_init(&other, &bus, &p, err, sizeof(err)), -1);
	p.config_size = 0;
	p.ops = NULL;
	assert_int_equal(virtio_pci_init(&other, &bus, &p, err, sizeof(err)), -1);
	p.ops = &be_ops;
	assert_int_equal(virtio_pci_init(&other, &bus, &p, err, sizeof(err)), 0);
	assert_int_equal(other.pci.slot, 2);
	virtio_pci_close(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_and_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vector_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vector_change_while_masked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vector_after_enable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_and_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_delivered_on_unmask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irqfd_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_config_and_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
