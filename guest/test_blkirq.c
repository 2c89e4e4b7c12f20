/*
 * blkirq: MSI-X interrupts from a virtio-blk queue, and the PCI rule that a
 * masked vector holds its message (pending bit in the PBA) and sends it when
 * unmasked.  Queue 0 gets MSI-X vector 0, aimed at this CPU's LAPIC; each
 * step completes one read with the used ring polled, interrupts on:
 *   unmasked        the interrupt arrives (exactly one);
 *   vector masked   none arrives, the vector's PBA bit comes up; unmasking
 *                   delivers exactly one and clears the bit;
 *   function masked (mask-all) the same;
 *   unmasked        once more, after all that.
 * At CPL0 (config space, LAPIC, sti); it takes four interrupts in all.
 */
#include "blk_common.h"
#include "io.h"
#include "irq.h"
#include "printf.h"
#include "tests.h"
#include "util.h"

#define DEADLINE 10000000000ULL /* ~3 s or more: "never" */
#define SETTLE 300000000ULL     /* ~0.1 s: what a stray interrupt had to arrive */

struct msix {
	const struct virtio_pci_dev *p;
	uint64_t table, pba;
};

static void msix_ctrl(const struct msix *m, uint16_t v)
{
	pci_cfg_write16(m->p->dev, m->p->fn, m->p->msix_cap + PCI_MSIX_CTRL, v);
}

static void vector0_mask(const struct msix *m, bool masked)
{
	mmio_write32(m->table + PCI_MSIX_ENTRY_VCTRL, masked);
	(void)mmio_read32(m->table + PCI_MSIX_ENTRY_VCTRL); /* flush the write */
}

static bool pending0(const struct msix *m)
{
	return mmio_read32(m->pba) & 1;
}

/* One 4 KiB read on queue 0, the used ring polled. */
static const char *one_read(struct blk_ctx *c)
{
	int st = vblk_rw(&c->dev, 0, VIRTIO_BLK_T_IN, 0, c->arena, 4096, 1);
	if (st != VIRTIO_BLK_S_OK)
		return test_fail("read: %s (%d)", blk_status_name(st), st);
	c->bytes_read += 4096;
	return NULL;
}

/* Wait until irq_count reaches want (false on the deadline). */
static bool wait_count(uint32_t want)
{
	uint64_t t0 = rdtsc();
	while (irq_count < want)
		if (rdtsc() - t0 > DEADLINE)
			return false;
		else
			cpu_relax();
	return true;
}

static const char *unmasked_step(struct blk_ctx *c)
{
	uint32_t n = irq_count;
	const char *why = one_read(c);
	if (why)
		return why;
	if (!wait_count(n + 1))
		return "unmasked: no interrupt for a completion";
	tsc_delay(SETTLE);
	if (irq_count != n + 1)
		return test_fail("unmasked: %u interrupts for one completion", irq_count - n);
	return NULL;
}

/*
 * mask/unmask: the vector's mask bit, or the function's mask-all.  Goes on
 * to the unmask even without a PBA bit, so a failure says whether the
 * interrupt was merely not shown as pending or lost altogether.
 */
static const char *masked_step(struct blk_ctx *c, const struct msix *m, const char *how,
			       void (*mask)(const struct msix *, bool))
{
	mask(m, true);
	uint32_t n = irq_count;
	const char *why = one_read(c);
	if (why)
		return why;
	uint64_t t0 = rdtsc();
	bool pending = false;
	while (!(pending = pending0(m)) && irq_count == n && rdtsc() - t0 < DEADLINE)
		cpu_relax();
	tsc_delay(SETTLE);
	uint32_t early = irq_count - n;
	mask(m, false);
	wait_count(n + early + 1);
	tsc_delay(SETTLE);
	uint32_t late = irq_count - n - early;
	bool still = pending0(m);
	if (early)
		return test_fail("%s: %u interrupt(s) delivered while masked", how, early);
	if (!pending && late == 0)
		return test_fail("%s: completion while masked lost: no PBA bit, nothing on unmask",
				 how);
	if (!pending)
		return test_fail("%s: PBA bit never set (the interrupt came on unmask)", how);
	if (late != 1)
		return test_fail("%s: %u interrupts after unmasking, want 1", how, late);
	if (still)
		return test_fail("%s: PBA bit still set after delivery", how);
	bprintf("blkirq: %s: held while masked (PBA bit set), delivered once on unmask\n", how);
	return NULL;
}

static void function_mask(const struct msix *m, bool masked)
{
	msix_ctrl(m, PCI_MSIX_ENABLE | (masked ? PCI_MSIX_MASKALL : 0));
}

static const char *body(struct blk_ctx *c)
{
	struct msix m = { .p = &c->dev.pci };
	uint32_t apic_id;
	const char *why = virtio_pci_msix_map(&c->dev.pci, &m.table, &m.pba);
	if (!why)
		why = irq_init(&apic_id);
	if (why)
		return why;
	bprintf("blkirq: MSI-X cap 0x%x, %u vectors, table 0x%lx, PBA 0x%lx, APIC ID %u\n",
		m.p->msix_cap, m.p->msix_size, m.table, m.pba, apic_id);
	/* Linux's order: MSI-X on with the function masked, program, unmask. */
	msix_ctrl(&m, PCI_MSIX_ENABLE | PCI_MSIX_MASKALL);
	mmio_write32(m.table + PCI_MSIX_ENTRY_ADDR_LO, IRQ_LAPIC_BASE | apic_id << 12);
	mmio_write32(m.table + PCI_MSIX_ENTRY_ADDR_HI, 0);
	mmio_write32(m.table + PCI_MSIX_ENTRY_DATA, IRQ_MSI_VECTOR); /* fixed, edge */
	vector0_mask(&m, false);
	msix_ctrl(&m, PCI_MSIX_ENABLE);
	c->dev.irq = true;
	why = blk_open(c, "blkirq");
	if (why)
		return why;

	/* A back end may signal once when given the call fd (libvhost-user
	 * does, against hangs after a reconnect): let it land first. */
	irq_enable();
	tsc_delay(SETTLE);
	uint32_t early = irq_count;
	why = unmasked_step(c);
	if (!why)
		why = masked_step(c, &m, "vector mask", vector0_mask);
	if (!why)
		why = masked_step(c, &m, "function mask", function_mask);
	if (!why)
		why = unmasked_step(c);
	irq_disable();
	uint32_t total = irq_count;

	vector0_mask(&m, true);
	msix_ctrl(&m, 0);
	c->dev.irq = false;
	bprintf("blkirq: %u interrupts (%u before the first request), %u spurious\n", total,
		early, irq_spurious);
	return why;
}

const char *test_blkirq(void)
{
	return blk_run_cpl0("blkirq", 1, body);
}
