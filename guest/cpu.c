#include "cpu.h"

#include "exit.h"
#include "layout.h"
#include "printf.h"
#include "util.h"

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t reserved;
} __attribute__((packed));

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

extern uint64_t gdt_tss[2];
extern char trap_stack_top[], ist_stack_top[];
extern const uint64_t isr_table[32];
extern char isr_syscall[];

static struct tss64 tss;
static struct idt_gate idt[SYSCALL_VECTOR + 1];

static void set_gate(unsigned vec, uint64_t handler, unsigned dpl, unsigned ist)
{
	struct idt_gate *g = &idt[vec];

	g->off_lo = handler & 0xffff;
	g->sel = KERNEL_CS;
	g->ist = ist;
	g->type_attr = 0x80 | (dpl << 5) | 0xe; /* present, 64-bit interrupt gate */
	g->off_mid = (handler >> 16) & 0xffff;
	g->off_hi = handler >> 32;
	g->reserved = 0;
}

void cpu_init(void)
{
	uint64_t base = (uintptr_t)&tss;
	uint64_t limit = sizeof(tss) - 1;

	tss.rsp[0] = (uintptr_t)trap_stack_top;
	tss.ist[0] = (uintptr_t)ist_stack_top;
	tss.iomap_base = sizeof(tss); /* no I/O bitmap: CPL3 has no port access */
	gdt_tss[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
		     (0x89ULL << 40) | /* present, available 64-bit TSS */
		     ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt_tss[1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(TSS_SEL) : "memory");

	for (unsigned v = 0; v < 32; v++)
		set_gate(v, isr_table[v], 0, (v == 2 || v == 8) ? 1 : 0);
	set_gate(SYSCALL_VECTOR, (uintptr_t)isr_syscall, 3, 0);

	struct desc_ptr p = { .limit = sizeof(idt) - 1, .base = (uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

void cpu_set_irq_gate(unsigned vec, const void *handler)
{
	if (vec >= 32 && vec < SYSCALL_VECTOR)
		set_gate(vec, (uintptr_t)handler, 0, 0);
}

void cpu_load_empty_idt(void)
{
	struct desc_ptr p = { .limit = 0, .base = 0 };
	__asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

static const char *const vector_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "?9", "#TS", "#NP", "#SS", "#GP", "#PF", "?15",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "?22", "?23",
	"?24", "?25", "?26", "?27", "#HV", "#VC", "#SX", "?31",
};

/* Called from isr.S with interrupts off; never returns. */
void exception_handler(struct trap_frame *f);
void exception_handler(struct trap_frame *f)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	kprintf("flint-guest: EXCEPTION vector %lu (%s) error 0x%lx rip 0x%lx "
		"cs 0x%lx rsp 0x%lx cr2 0x%lx\n",
		f->vector, f->vector < 32 ? vector_names[f->vector] : "?",
		f->error, f->rip, f->cs, f->rsp, cr2);
	debug_exit(EXIT_EXCEPTION);
}
