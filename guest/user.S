/*
 * Ring-3 switch.  user_call(fn, arg) saves the kernel context, iretq's to
 * fn(arg) at CPL3 on the user stack, and comes back when fn returns (through
 * a trampoline that does `int $0x80` with SYS_EXIT).  The same DPL3 gate
 * serves the I/O syscalls (SYS_WRITE) that CPL3 code may use; int/iretq work
 * alike on QEMU TCG and KVM, and need no MSR setup.
 */
#include "layout.h"

	.text
	.globl user_call
/* uint64_t user_call(uint64_t (*fn)(uint64_t), uint64_t arg) */
user_call:
	pushq %rbx
	pushq %rbp
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, saved_kernel_rsp(%rip)

	leaq user_stack_top(%rip), %rax
	pushq $USER_DS			/* SS */
	pushq %rax			/* RSP */
	pushq $0x002			/* RFLAGS: IF=0, IOPL=0 */
	pushq $USER_CS			/* CS */
	leaq user_trampoline(%rip), %rax
	pushq %rax			/* RIP */
	movq %rdi, %rax
	movq %rsi, %rdi
	xorl %esi, %esi
	xorl %edx, %edx
	xorl %ecx, %ecx
	xorl %ebx, %ebx
	xorl %ebp, %ebp
	iretq

/* CPL3 from here on. */
user_trampoline:
	call *%rax
	movq %rax, %rdi
	movl $SYS_EXIT, %eax
	int $SYSCALL_VECTOR
	ud2				/* not reached */

/* int 0x80 gate, DPL3: entered on TSS.RSP0. */
	.globl isr_syscall
isr_syscall:
	cmpq $SYS_EXIT, %rax
	je 1f
	pushq %rbp
	movq %rsp, %rbp
	andq $-16, %rsp
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq %rax, %rcx
	call syscall_dispatch		/* (a0, a1, a2, nr) */
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	movq %rbp, %rsp
	popq %rbp
	iretq

1:	/* SYS_EXIT: drop the user frame, resume user_call's caller. */
	movq %rdi, %rax
	movl $KERNEL_DS, %ecx
	movl %ecx, %ss
	movl %ecx, %ds
	movl %ecx, %es
	movq saved_kernel_rsp(%rip), %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbp
	popq %rbx
	ret

	.bss
	.p2align 3
saved_kernel_rsp:
	.quad 0

	.section .note.GNU-stack, "", @progbits
