#include "irq.h"

#include "cpu.h"
#include "io.h"
#include "util.h"

#define MSR_APIC_BASE 0x1b
#define APIC_BASE_X2APIC (1ULL << 10)
#define APIC_BASE_ENABLE (1ULL << 11)

#define LAPIC_ID 0x20
#define LAPIC_SVR 0xf0
#define LAPIC_SVR_ENABLE 0x100
#define LAPIC_LVT0 0x350
#define LAPIC_LVT_MASKED (1u << 16)

#define PIC1_DATA 0x21
#define PIC2_DATA 0xa1

volatile uint32_t irq_count, irq_spurious;
extern char isr_irq_count[], isr_spurious[];

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(IRQ_LAPIC_BASE + reg);
}

static void lapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IRQ_LAPIC_BASE + reg, v);
}

const char *irq_init(uint32_t *apic_id)
{
	uint64_t base = rdmsr(MSR_APIC_BASE);

	if (!(base & APIC_BASE_ENABLE))
		return "local APIC disabled in IA32_APIC_BASE";
	if (base & APIC_BASE_X2APIC)
		return "local APIC in x2APIC mode (only xAPIC MMIO is handled)";
	if ((base & ~0xfffULL & 0xffffffffffULL) != IRQ_LAPIC_BASE)
		return "local APIC not at 0xfee00000";
	/* Firmware (SeaBIOS) leaves its PIT tick on the PIC: mask every line. */
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);
	lapic_write(LAPIC_LVT0, lapic_read(LAPIC_LVT0) | LAPIC_LVT_MASKED);
	irq_count = irq_spurious = 0;
	cpu_set_irq_gate(IRQ_MSI_VECTOR, isr_irq_count);
	cpu_set_irq_gate(IRQ_SPURIOUS_VECTOR, isr_spurious);
	lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | IRQ_SPURIOUS_VECTOR);
	*apic_id = lapic_read(LAPIC_ID) >> 24;
	return NULL;
}
