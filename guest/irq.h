/*
 * External interrupts for tests that want them (blkirq): MSIs to this CPU's
 * xAPIC at a fixed vector, counted by a tiny handler that EOIs.  Nothing
 * else may interrupt: the legacy PIC and LINT0 are masked.  CPL0 only;
 * interrupts stay off (IF=0) until the caller runs sti.
 */
#ifndef GUEST_IRQ_H
#define GUEST_IRQ_H

#include <stdint.h>

#define IRQ_MSI_VECTOR 0x40
#define IRQ_SPURIOUS_VECTOR 0x4f /* low nibble 0xf: old APICs hardwire it */
#define IRQ_LAPIC_BASE 0xfee00000u

/* Bumped by the handlers in isr.S. */
extern volatile uint32_t irq_count, irq_spurious;

/*
 * Enable the xAPIC (software enable, spurious vector), mask the PIC and
 * LINT0, install the handlers; *apic_id gets this CPU's APIC ID for MSI
 * addresses.  NULL on success, else a reason (x2APIC mode is not handled).
 */
const char *irq_init(uint32_t *apic_id);

static inline void irq_enable(void)
{
	__asm__ volatile("sti" ::: "memory");
}

static inline void irq_disable(void)
{
	__asm__ volatile("cli" ::: "memory");
}

#endif
