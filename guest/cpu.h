/* GDT/TSS/IDT setup, the CPL0 exception handler, interrupt gates. */
#ifndef GUEST_CPU_H
#define GUEST_CPU_H

#include <stdint.h>

/* Register frame built by isr.S (lowest address first). */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* Load the TSS and an IDT with vectors 0-31 and the int 0x80 gate. */
void cpu_init(void);

/* Load a zero-limit IDT: the next exception triple-faults. */
void cpu_load_empty_idt(void);

/* Point IDT vector vec (32..SYSCALL_VECTOR - 1) at an interrupt handler
 * (DPL0, interrupts off on entry). */
void cpu_set_irq_gate(unsigned vec, const void *handler);

#endif
