/*
 * The PCI bus: config mechanism #1 and ECAM decode, BAR sizing, read-only
 * fields, the capability list, out-of-range accesses, BAR decode and MSI-X
 * routing (with KVM replaced by a recorder).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pci.h"
#include "pci_msix.h"
#include "test_pci_fake.h"

static struct pci_bus bus;
static struct fake_kvm fk;
static struct pci_device dev;
static struct pci_msix msix;

struct moved { unsigned int n; unsigned int bar; uint64_t addr; bool decoded; };
static struct moved moved;
static uint64_t last_bar_write_off;

static void t_bar_read(struct pci_device *d, unsigned int bar, uint64_t off, uint8_t *data,
		       unsigned int len)
{
	if (pci_msix_bar_read(&msix, bar, off, data, len))
		return;
	memset(data, 0x5a, len);
}

static void t_bar_write(struct pci_device *d, unsigned int bar, uint64_t off,
			const uint8_t *data, unsigned int len)
{
	if (!pci_msix_bar_write(&msix, bar, off, data, len))
		last_bar_write_off = off;
}

static void t_config_written(struct pci_device *d, unsigned int off, unsigned int len)
{
	pci_msix_config_written(&msix, off, len);
}

static void t_bar_moved(struct pci_device *d, unsigned int bar, uint64_t addr, bool decoded)
{
	moved.n++;
	moved.bar = bar;
	moved.addr = addr;
	moved.decoded = decoded;
}

static const struct pci_device_ops t_ops = {
	.bar_read = t_bar_read, .bar_write = t_bar_write,
	.config_written = t_config_written, .bar_moved = t_bar_moved,
};

/* A device in slot 1: BAR0 64-bit 16 KiB, BAR2 32-bit 4 KiB with 4 MSI-X vectors. */
static int setup(void **state)
{
	(void)state;
	memset(&fk, 0, sizeof(fk));
	memset(&moved, 0, sizeof(moved));
	pci_bus_init(&bus, -1, &fake_kvm_ops, &fk);
	pci_device_init(&dev, 0x1af4, 0x1042, 0x018000, 1, &t_ops, NULL);
	assert_int_equal(pci_device_set_bar(&dev, 0, PCI_BAR_MEM64, 0x4000), 0);
	assert_int_equal(pci_device_set_bar(&dev, 2, PCI_BAR_MEM32, 0x1000), 0);
	assert_int_equal(pci_msix_init(&msix, &bus, &dev, 4, 2, 0, 0x800), 0);
	unsigned int c = pci_device_add_cap(&dev, PCI_CAP_ID_VNDR, 16);
	assert_int_not_equal(c, 0);
	dev.cfg[c + 2] = 16;
	assert_int_equal(pci_bus_add_device(&bus, &dev), 1);
	return 0;
}

static void cf8(uint32_t v)
{
	uint8_t d[4];
	memcpy(d, &v, 4);
	assert_true(pci_pio(&bus, 0xcf8, 4, true, d));
}

static uint32_t cfc_read(unsigned int byte, unsigned int size)
{
	uint8_t d[4] = { 0 };
	uint32_t v = 0;
	assert_true(pci_pio(&bus, (uint16_t)(0xcfc + byte), size, false, d));
	memcpy(&v, d, size);
	return v;
}

static void cfc_write(unsigned int byte, unsigned int size, uint32_t v)
{
	uint8_t d[4];
	memcpy(d, &v, 4);
	assert_true(pci_pio(&bus, (uint16_t)(0xcfc + byte), size, true, d));
}

static uint32_t addr(unsigned int slot, unsigned int reg)
{
	return 0x80000000U | slot << 11 | reg;
}

static void test_mechanism1(void **state)
{
	(void)state;
	cf8(addr(0, 0));
	assert_int_equal(cfc_read(0, 4), 0x00081b36);  /* host bridge */
	assert_int_equal(cfc_read(2, 2), 0x0008);
	assert_int_equal(cfc_read(1, 1), 0x1b);
	cf8(addr(0, 8));
	assert_int_equal(cfc_read(0, 4) >> 8, 0x060000); /* class: host bridge */
	/* The address register reads back; other sizes at 0xcf8 are not PCI. */
	uint8_t d[4];
	assert_true(pci_pio(&bus, 0xcf8, 4, false, d));
	assert_int_equal(d[3], 0x80);
	assert_false(pci_pio(&bus, 0xcf9, 1, true, d));
	assert_false(pci_pio(&bus, 0xcfb, 1, true, d));
	cf8(addr(1, 0));
	assert_int_equal(cfc_read(0, 4), 0x10421af4);
	/* Enable bit clear, bus 1, empty slot, function 1: all-ones. */
	cf8(addr(1, 0) & 0x7fffffff);
	assert_int_equal(cfc_read(0, 4), 0xffffffff);
	cf8(addr(1, 0) | 1 << 16);
	assert_int_equal(cfc_read(0, 4), 0xffffffff);
	cf8(addr(5, 0));
	assert_int_equal(cfc_read(0, 4), 0xffffffff);
	assert_int_equal(cfc_read(0, 2), 0xffff);
	cf8(addr(1, 0) | 1 << 8);
	assert_int_equal(cfc_read(0, 4), 0xffffffff);
	/* Writes at a byte offset inside the data dword. */
	cf8(addr(1, 0x0c));
	cfc_write(1, 1, 0x40);  /* latency timer (0x0d) */
	assert_int_equal(cfc_read(0, 4) & 0xff00, 0x4000);
	cf8(addr(1, 0x3c));
	cfc_write(0, 2, 0x050b); /* interrupt line RW, pin RO */
	assert_int_equal(cfc_read(0, 2), 0x000b);
	/* Straddling the data dword is refused. */
	cf8(addr(1, 0));
	assert_int_equal(cfc_read(2, 4), 0xffffffff);
	assert_int_equal(cfc_read(3, 2), 0xffff);
}

static void test_ecam(void **state)
{
	(void)state;
	assert_int_equal(ecam_read(&bus, 0, 0, 4), 0x00081b36);
	assert_int_equal(ecam_read(&bus, 1, 0, 4), 0x10421af4);
	assert_int_equal(ecam_read(&bus, 1, 2, 2), 0x1042);
	assert_int_equal(ecam_read(&bus, 1, 0xb, 1), 0x01); /* base class */
	assert_int_equal(ecam_read(&bus, 7, 0, 4), 0xffffffff);
	/* Function 3 of slot 1 */
	assert_true(pci_mmio(&bus, FLINT_PCI_ECAM_BASE + (1 << 15) + (3 << 12), 4, false,
			     (uint8_t[8]){ 0 }));
	assert_int_equal(pci_config_read(&bus, 8 + 3, 0, 4), 0xffffffff);
	/* Extended space exists (zeros) up to 4 KiB. */
	assert_int_equal(ecam_read(&bus, 1, 0xffc, 4), 0);
	/* Misaligned and 8-byte accesses read all-ones and write nothing. */
	assert_int_equal(ecam_read(&bus, 1, 1, 2), 0xffff);
	assert_int_equal(ecam_read(&bus, 1, 2, 4), 0xffffffff);
	assert_int_equal(mmio_read(&bus, FLINT_PCI_ECAM_BASE + (1 << 15), 8), ~0ULL);
	ecam_write(&bus, 1, 0x3c, 1, 0x0b);
	assert_int_equal(ecam_read(&bus, 1, 0x3c, 1), 0x0b); /* interrupt line is RW */
	ecam_write(&bus, 1, 0x3b, 2, 0xffff);                /* misaligned: ignored */
	assert_int_equal(ecam_read(&bus, 1, 0x3c, 1), 0x0b);
	/* Just outside the ECAM area is not PCI. */
	assert_false(pci_mmio(&bus, FLINT_PCI_ECAM_BASE + FLINT_PCI_ECAM_SIZE, 4, false,
			      (uint8_t[8]){ 0 }));
}

static void test_out_of_range(void **state)
{
	(void)state;
	assert_int_equal(pci_config_read(&bus, 8, 4096, 1), 0xff);
	assert_int_equal(pci_config_read(&bus, 8, 4094, 4), 0xffffffff);
	assert_int_equal(pci_config_read(&bus, 8, 4095, 2), 0xffff);
	assert_int_equal(pci_config_read(&bus, 8, 0, 3), 0xffffff);
	assert_int_equal(pci_config_read(&bus, 8, 0xffffffffU, 4), 0xffffffff);
	assert_int_equal(pci_config_read(&bus, 256, 0, 4), 0xffffffff);
	pci_config_write(&bus, 8, 4096, 4, 0);
	pci_config_write(&bus, 8, 0xfffffffcU, 4, 0);
	pci_config_write(&bus, 999, 0, 4, 0);
	assert_int_equal(pci_config_read(&bus, 8, 0, 4), 0x10421af4);
}

static void test_read_only(void **state)
{
	(void)state;
	uint8_t before[256];
	memcpy(before, dev.cfg, 256);
	pci_config_write(&bus, 8, 0, 4, 0);            /* IDs */
	pci_config_write(&bus, 8, 8, 4, 0);            /* revision, class */
	pci_config_write(&bus, 8, 6, 2, 0xffff);       /* status */
	pci_config_write(&bus, 8, 0x2c, 4, 0);         /* subsystem */
	pci_config_write(&bus, 8, 0x34, 1, 0x80);      /* capability pointer */
	pci_config_write(&bus, 8, 0x0e, 1, 0x80);      /* header type */
	pci_config_write(&bus, 8, 0x40, 4, 0);         /* MSI-X cap id/next */
	pci_config_write(&bus, 8, 0x44, 4, 0);         /* MSI-X table offset */
	assert_memory_equal(before, dev.cfg, 256);
	/* Command: only IO, memory, bus master and INTx disable stick. */
	pci_config_write(&bus, 8, 4, 2, 0xffff);
	assert_int_equal(pci_config_read(&bus, 8, 4, 2), 0x0407);
	/* Host bridge command is read-only zero. */
	pci_config_write(&bus, 0, 4, 2, 0xffff);
	assert_int_equal(pci_config_read(&bus, 0, 4, 2), 0);
}

static void test_bar_sizing(void **state)
{
	(void)state;
	assert_int_equal(pci_config_read(&bus, 8, 0x10, 4), 0xc0000004); /* placed, 64-bit */
	assert_int_equal(pci_config_read(&bus, 8, 0x14, 4), 0);
	assert_int_equal(pci_config_read(&bus, 8, 0x18, 4), 0xc0004000);
	for (unsigned int r = 0x10; r <= 0x30; r += 4)
		pci_config_write(&bus, 8, r, 4, 0xffffffff);
	assert_int_equal(pci_config_read(&bus, 8, 0x10, 4), 0xffffc004);
	assert_int_equal(pci_config_read(&bus, 8, 0x14, 4), 0xffffffff);
	assert_int_equal(pci_config_read(&bus, 8, 0x18, 4), 0xfffff000);
	assert_int_equal(pci_config_read(&bus, 8, 0x1c, 4), 0); /* no BAR3..5 */
	assert_int_equal(pci_config_read(&bus, 8, 0x24, 4), 0);
	assert_int_equal(pci_config_read(&bus, 8, 0x30, 4), 0); /* no ROM */
	/* Byte-wise sizing works the same. */
	pci_config_write(&bus, 8, 0x18, 1, 0xff);
	assert_int_equal(pci_config_read(&bus, 8, 0x18, 1), 0x00);
	/* Bad BAR declarations. */
	struct pci_device d2;
	pci_device_init(&d2, 1, 2, 0, 0, NULL, NULL);
	assert_int_equal(pci_device_set_bar(&d2, 5, PCI_BAR_MEM64, 0x1000), -1);
	assert_int_equal(pci_device_set_bar(&d2, 0, PCI_BAR_MEM32, 0x1800), -1);
	assert_int_equal(pci_device_set_bar(&d2, 0, PCI_BAR_MEM32, 0x800), -1);
	assert_int_equal(pci_device_set_bar(&d2, 0, PCI_BAR_MEM64, 0x1000), 0);
	assert_int_equal(pci_device_set_bar(&d2, 1, PCI_BAR_MEM32, 0x1000), -1);
}

static void test_cap_list(void **state)
{
	(void)state;
	assert_true(pci_config_read(&bus, 8, 6, 2) & 0x10);
	unsigned int p = pci_config_read(&bus, 8, 0x34, 1);
	uint8_t ids[8];
	unsigned int n = 0;
	while (p != 0 && n < 8) {
		assert_true(p >= 0x40 && p < 256 && (p & 3) == 0);
		ids[n++] = (uint8_t)pci_config_read(&bus, 8, p, 1);
		p = pci_config_read(&bus, 8, p + 1, 1);
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], PCI_CAP_ID_MSIX);
	assert_int_equal(ids[1], PCI_CAP_ID_VNDR);
	/* MSI-X: 4 vectors, table in BAR 2 at 0, PBA at 0x800. */
	assert_int_equal(pci_config_read(&bus, 8, 0x42, 2), 3);
	assert_int_equal(pci_config_read(&bus, 8, 0x44, 4), 2);
	assert_int_equal(pci_config_read(&bus, 8, 0x48, 4), 0x802);
	/* The host bridge has no capabilities. */
	assert_int_equal(pci_config_read(&bus, 0, 0x34, 1), 0);
	/* Capabilities stay in the first 256 bytes. */
	struct pci_device d2;
	pci_device_init(&d2, 1, 2, 0, 0, NULL, NULL);
	assert_int_not_equal(pci_device_add_cap(&d2, 9, 0xb0), 0);
	assert_int_equal(pci_device_add_cap(&d2, 9, 0x20), 0);
}

static void test_bar_decode(void **state)
{
	(void)state;
	/* Memory decode off: BARs are not reachable. */
	assert_false(pci_mmio(&bus, 0xc0000000, 4, false, (uint8_t[8]){ 0 }));
	pci_config_write(&bus, 8, 4, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(moved.n, 2);
	assert_int_equal(mmio_read(&bus, 0xc0000010, 4), 0x5a5a5a5a);
	mmio_write(&bus, 0xc0000123, 1, 0);
	assert_int_equal(last_bar_write_off, 0x123);
	/* An access straddling the BAR end reads all-ones. */
	assert_int_equal(mmio_read(&bus, 0xc0003ffc, 8), ~0ULL);
	/* Move BAR0 (64-bit, two dword writes). */
	pci_config_write(&bus, 8, 0x10, 4, 0xc0100000);
	pci_config_write(&bus, 8, 0x14, 4, 0);
	assert_int_equal(moved.bar, 0);
	assert_int_equal(moved.addr, 0xc0100000);
	assert_true(moved.decoded);
	assert_false(pci_mmio(&bus, 0xc0000010, 4, false, (uint8_t[8]){ 0 }));
	assert_int_equal(mmio_read(&bus, 0xc0100010, 4), 0x5a5a5a5a);
	/* Outside the 32-bit window (here: over RAM above 4 GiB): not decoded. */
	pci_config_write(&bus, 8, 0x14, 4, 1);
	assert_false(moved.decoded);
	assert_false(pci_mmio(&bus, 0xc0100010, 4, false, (uint8_t[8]){ 0 }));
	pci_config_write(&bus, 8, 4, 2, 0);
	assert_false(pci_mmio(&bus, 0xc0004000, 4, false, (uint8_t[8]){ 0 }));
}

static void expect_default_routes(void)
{
	unsigned int ioapic = 0, pic = 0;
	for (unsigned int i = 0; i < PCI_DEFAULT_ROUTES; i++) {
		const struct kvm_irq_routing_entry *e = &fk.routing[i];
		assert_int_equal(e->type, KVM_IRQ_ROUTING_IRQCHIP);
		if (e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
			assert_int_equal(e->u.irqchip.pin, e->gsi);
			ioapic++;
		} else {
			assert_true(e->gsi < 16);
			assert_int_equal(e->u.irqchip.irqchip,
					 e->gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE);
			assert_int_equal(e->u.irqchip.pin, e->gsi % 8);
			pic++;
		}
	}
	assert_int_equal(ioapic, 24);
	assert_int_equal(pic, 16);
}

static void test_msix_routes(void **state)
{
	(void)state;
	pci_config_write(&bus, 8, 4, 2, PCI_COMMAND_MEMORY);
	const uint64_t table = 0xc0004000;
	/* Program vector 1 while MSI-X is off: nothing reaches KVM. */
	mmio_write(&bus, table + 16, 4, 0xfee00000);
	mmio_write(&bus, table + 20, 4, 0);
	mmio_write(&bus, table + 24, 4, 0x4041);
	mmio_write(&bus, table + 28, 4, 0); /* unmask */
	assert_int_equal(fk.routing_calls, 0);
	assert_int_equal(mmio_read(&bus, table + 24, 4), 0x4041);
	assert_int_equal(mmio_read(&bus, table + 16, 8), 0xfee00000);
	assert_int_equal(mmio_read(&bus, table + 12, 4), 1); /* vector 0 masked */
	/* Enable MSI-X: one route for vector 1 at GSI 24 + 1, plus the defaults. */
	pci_config_write(&bus, 8, 0x42, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(fk.routing_calls, 1);
	assert_int_equal(fk.routing_nr, PCI_DEFAULT_ROUTES + 1);
	expect_default_routes();
	const struct kvm_irq_routing_entry *e = &fk.routing[PCI_DEFAULT_ROUTES];
	assert_int_equal(e->type, KVM_IRQ_ROUTING_MSI);
	assert_int_equal(e->gsi, FLINT_PCI_MSI_GSI_BASE + 1);
	assert_int_equal(pci_msix_gsi(&msix, 1), FLINT_PCI_MSI_GSI_BASE + 1);
	assert_int_equal(e->u.msi.address_lo, 0xfee00000);
	assert_int_equal(e->u.msi.data, 0x4041);
	/* Function mask: the vector stops delivering; its route stays (lazy). */
	pci_config_write(&bus, 8, 0x42, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_false(pci_msix_vector_enabled(&msix, 1));
	assert_int_equal(fk.routing_calls, 1);
	pci_config_write(&bus, 8, 0x42, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_true(pci_msix_vector_enabled(&msix, 1));
	assert_int_equal(fk.routing_calls, 1); /* route unchanged: no KVM call */
	assert_int_equal(fk.routing_nr, PCI_DEFAULT_ROUTES + 1);
	/* New data while unmasked updates the route at once. */
	mmio_write(&bus, table + 24, 4, 0x4042);
	assert_int_equal(fk.routing_calls, 2);
	assert_int_equal(fk.routing[PCI_DEFAULT_ROUTES].u.msi.data, 0x4042);
	/* Writing the same data again, or another vector's mask bit: no KVM call. */
	mmio_write(&bus, table + 24, 4, 0x4042);
	mmio_write(&bus, table + 12, 4, 1);
	assert_int_equal(fk.routing_calls, 2);
	/* Masked, the message may change (Linux: mask, write, unmask): it reaches KVM on unmask. */
	mmio_write(&bus, table + 28, 4, 1);
	mmio_write(&bus, table + 16, 8, 0xfee01000);
	mmio_write(&bus, table + 24, 4, 0x4043);
	assert_int_equal(fk.routing_calls, 2);
	assert_int_equal(fk.routing[PCI_DEFAULT_ROUTES].u.msi.data, 0x4042);
	mmio_write(&bus, table + 28, 4, 0);
	assert_int_equal(fk.routing_calls, 3);
	assert_int_equal(fk.routing_nr, PCI_DEFAULT_ROUTES + 1);
	assert_int_equal(fk.routing[PCI_DEFAULT_ROUTES].u.msi.address_lo, 0xfee01000);
	assert_int_equal(fk.routing[PCI_DEFAULT_ROUTES].u.msi.data, 0x4043);
	/* Table size field is read-only; only enable/mask bits are writable. */
	pci_config_write(&bus, 8, 0x42, 2, 0x3fff);
	assert_int_equal(pci_config_read(&bus, 8, 0x42, 2), 3);
	/* Bad table accesses: 2-byte, misaligned, past the table; PBA reads 0. */
	unsigned int calls = fk.routing_calls;
	mmio_write(&bus, table + 16, 2, 0);
	mmio_write(&bus, table + 18, 4, 0);
	assert_int_equal(fk.routing_calls, calls);
	assert_int_equal(mmio_read(&bus, table + 16, 4), 0xfee01000);
	assert_int_equal(mmio_read(&bus, table + 16, 2), 0xffff);
	assert_int_equal(mmio_read(&bus, table + 0x800, 8), 0);
	assert_int_equal(mmio_read(&bus, table + 4 * 16, 4), 0x5a5a5a5a); /* past the table */
	/* Reset: everything masked and routes gone. */
	pci_msix_reset(&msix);
	assert_int_equal(pci_config_read(&bus, 8, 0x42, 2), 3);
	assert_int_equal(mmio_read(&bus, table + 28, 4), 1);
	assert_int_equal(fk.routing_nr, PCI_DEFAULT_ROUTES);
	calls = fk.routing_calls;
	pci_msix_reset(&msix); /* nothing left to remove: no KVM call */
	assert_int_equal(fk.routing_calls, calls);
}

/* What the owner of the capability hears, and when relative to the routes. */
struct owner_event { unsigned int v; bool masked; unsigned int routing_calls; bool routed; };
static struct owner_event events[32];
static unsigned int nr_events;
static uint32_t pending_mask;

static bool route_in_kvm(uint32_t gsi)
{
	for (unsigned int i = 0; i < fk.routing_nr; i++)
		if (fk.routing[i].gsi == gsi && fk.routing[i].type == KVM_IRQ_ROUTING_MSI)
			return true;
	return false;
}

static void owner_masked(void *opaque, unsigned int v, bool masked)
{
	assert_ptr_equal(opaque, &dev);
	assert_true(nr_events < 32);
	events[nr_events++] = (struct owner_event){
		v, masked, fk.routing_calls, route_in_kvm(pci_msix_gsi(&msix, v)),
	};
	/* The state pci_msix reports is already the new one. */
	assert_int_equal(pci_msix_vector_enabled(&msix, v), !masked);
}

static bool owner_pending(void *opaque, unsigned int v)
{
	(void)opaque;
	assert_false(pci_msix_vector_enabled(&msix, v)); /* asked for masked vectors only */
	return (pending_mask >> v) & 1;
}

static const struct pci_msix_ops owner_ops = {
	.vector_masked = owner_masked, .vector_pending = owner_pending,
};

static void test_msix_owner(void **state)
{
	(void)state;
	nr_events = 0;
	pending_mask = 0;
	pci_msix_set_ops(&msix, &owner_ops, &dev);
	pci_config_write(&bus, 8, 4, 2, PCI_COMMAND_MEMORY);
	const uint64_t table = 0xc0004000, pba = table + 0x800;
	for (unsigned int v = 0; v < 4; v++) {
		mmio_write(&bus, table + 16 * v, 8, 0xfee00000);
		mmio_write(&bus, table + 16 * v + 8, 4, 0x40 + v);
	}
	/* Unmasking in the table with MSI-X off tells nobody. */
	mmio_write(&bus, table + 12, 4, 0);
	mmio_write(&bus, table + 28, 4, 0);
	assert_int_equal(nr_events, 0);
	/* MSI-X on: vectors 0 and 1 go live after their routes are in KVM (one call). */
	pci_config_write(&bus, 8, 0x42, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(fk.routing_calls, 1);
	assert_int_equal(nr_events, 2);
	for (unsigned int i = 0; i < 2; i++) {
		assert_int_equal(events[i].v, i);
		assert_false(events[i].masked);
		assert_int_equal(events[i].routing_calls, 1);
		assert_true(events[i].routed);
	}
	/* Masking vector 1: reported, no KVM routing call, route still there. */
	mmio_write(&bus, table + 28, 4, 1);
	assert_int_equal(nr_events, 3);
	assert_int_equal(events[2].v, 1);
	assert_true(events[2].masked);
	assert_true(events[2].routed);
	assert_int_equal(fk.routing_calls, 1);
	/* Masking it again, or rewriting its message while masked: nothing. */
	mmio_write(&bus, table + 28, 4, 1);
	mmio_write(&bus, table + 24, 4, 0x51);
	assert_int_equal(nr_events, 3);
	assert_int_equal(fk.routing_calls, 1);
	/* PBA: only masked vectors the owner holds a message for; any width. */
	pending_mask = 0xf;
	assert_int_equal(mmio_read(&bus, pba, 8), 0xe); /* 1, 2 and 3 are masked */
	pending_mask = 1U << 1;
	assert_int_equal(mmio_read(&bus, pba, 4), 0x2);
	assert_int_equal(mmio_read(&bus, pba, 1), 0x2);
	assert_int_equal(mmio_read(&bus, pba + 1, 1), 0);
	pending_mask = 0;
	assert_int_equal(mmio_read(&bus, pba, 8), 0);
	/* Unmask: the new message reaches KVM first, then the owner hears. */
	mmio_write(&bus, table + 28, 4, 0);
	assert_int_equal(nr_events, 4);
	assert_int_equal(events[3].v, 1);
	assert_false(events[3].masked);
	assert_int_equal(events[3].routing_calls, 2);
	assert_int_equal(fk.routing[PCI_DEFAULT_ROUTES + 1].u.msi.data, 0x51);
	/* Function mask: every live vector reported masked, no routing call. */
	pci_config_write(&bus, 8, 0x42, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_int_equal(nr_events, 6);
	assert_true(events[4].masked && events[5].masked);
	assert_int_equal(events[4].v + events[5].v, 1);
	assert_int_equal(fk.routing_calls, 2);
	pending_mask = 0x3;
	assert_int_equal(mmio_read(&bus, pba, 8), 0x3);
	pci_config_write(&bus, 8, 0x42, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(nr_events, 8);
	assert_false(events[6].masked || events[7].masked);
	assert_int_equal(mmio_read(&bus, pba, 8), 0);
	/* MSI-X off behaves the same. */
	pci_config_write(&bus, 8, 0x42, 2, 0);
	assert_int_equal(nr_events, 10);
	assert_true(events[8].masked && events[9].masked);
	assert_int_equal(mmio_read(&bus, pba, 8), 0x3);
	pci_config_write(&bus, 8, 0x42, 2, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(nr_events, 12);
	assert_int_equal(fk.routing_calls, 2);
	/* A failed routing call keeps a newly unmasked vector masked for the owner. */
	fk.fail_routing = 1;
	mmio_write(&bus, table + 2 * 16 + 12, 4, 0);
	assert_int_equal(nr_events, 12);
	assert_false(route_in_kvm(pci_msix_gsi(&msix, 2)));
	assert_false(pci_msix_vector_enabled(&msix, 2));
	pending_mask = 1U << 2; /* and what the owner holds for it shows as pending */
	assert_int_equal(mmio_read(&bus, pba, 8), 0x4);
	pending_mask = 0;
	fk.fail_routing = 0;
	mmio_write(&bus, table + 3 * 16 + 8, 4, 0x43); /* any later sync retries */
	assert_int_equal(nr_events, 13);
	assert_int_equal(events[12].v, 2);
	assert_true(events[12].routed);
	/* Reset: live vectors reported masked before their routes go. */
	unsigned int calls = fk.routing_calls;
	pci_msix_reset(&msix);
	assert_int_equal(nr_events, 16);
	for (unsigned int i = 13; i < 16; i++) {
		assert_true(events[i].masked);
		assert_true(events[i].routed);
		assert_int_equal(events[i].routing_calls, calls);
	}
	assert_int_equal(fk.routing_calls, calls + 1);
	assert_int_equal(fk.routing_nr, PCI_DEFAULT_ROUTES);
}

static void test_slots_full(void **state)
{
	(void)state;
	static struct pci_device many[31];
	for (unsigned int i = 0; i < 30; i++) {
		pci_device_init(&many[i], 1, 2, 0, 0, NULL, NULL);
		assert_int_equal(pci_bus_add_device(&bus, &many[i]), (int)(i + 2));
	}
	pci_device_init(&many[30], 1, 2, 0, 0, NULL, NULL);
	assert_int_equal(pci_bus_add_device(&bus, &many[30]), -1);
	/* GSIs run out too. */
	assert_int_equal(pci_bus_alloc_gsis(&bus, PCI_MSI_GSIS), -1);
	assert_int_equal(pci_bus_alloc_gsis(&bus, 1), FLINT_PCI_MSI_GSI_BASE + 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_mechanism1, setup),
		cmocka_unit_test_setup(test_ecam, setup),
		cmocka_unit_test_setup(test_out_of_range, setup),
		cmocka_unit_test_setup(test_read_only, setup),
		cmocka_unit_test_setup(test_bar_sizing, setup),
		cmocka_unit_test_setup(test_cap_list, setup),
		cmocka_unit_test_setup(test_bar_decode, setup),
		cmocka_unit_test_setup(test_msix_routes, setup),
		cmocka_unit_test_setup(test_msix_owner, setup),
		cmocka_unit_test_setup(test_slots_full, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
