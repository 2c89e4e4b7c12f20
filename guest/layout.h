/*
 * Segment selectors, stack sizes and syscall numbers shared by the guest's
 * assembly and C code.  Assembler-safe: only #defines.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

/* GDT layout (entry.S).  User data precedes user code so that a future
 * SYSRET path (STAR[63:48] = 0x10) would also work. */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS (0x18 | 3)
#define USER_CS (0x20 | 3)
#define TSS_SEL 0x28

#define KERNEL_STACK_SIZE 16384 /* boot/kernel stack */
#define TRAP_STACK_SIZE 8192    /* TSS.RSP0: entries from CPL3 */
#define IST_STACK_SIZE 4096     /* TSS.IST1: #DF and NMI */
#define USER_STACK_SIZE 16384   /* CPL3 stack */

/* int 0x80 gate (DPL3): %rax = number, %rdi/%rsi/%rdx = arguments. */
#define SYSCALL_VECTOR 0x80
#define SYS_EXIT 0  /* leave user mode; %rdi becomes user_call()'s result */
#define SYS_WRITE 1 /* write(%rdi = buffer, %rsi = length) to the console */

/* Exit code written to the debug-exit port on an unexpected exception. */
#define EXIT_EXCEPTION 0x7f

#endif
