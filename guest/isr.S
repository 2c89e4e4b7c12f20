/* Exception entry stubs for vectors 0-31: all fatal, see exception_handler;
 * then the external-interrupt stubs irq.c installs. */
	.text

.macro ISR_NOERR n
isr\n:
	pushq $0
	pushq $\n
	jmp isr_common
.endm

.macro ISR_ERR n
isr\n:
	pushq $\n
	jmp isr_common
.endm

ISR_NOERR 0
ISR_NOERR 1
ISR_NOERR 2
ISR_NOERR 3
ISR_NOERR 4
ISR_NOERR 5
ISR_NOERR 6
ISR_NOERR 7
ISR_ERR 8
ISR_NOERR 9
ISR_ERR 10
ISR_ERR 11
ISR_ERR 12
ISR_ERR 13
ISR_ERR 14
ISR_NOERR 15
ISR_NOERR 16
ISR_ERR 17
ISR_NOERR 18
ISR_NOERR 19
ISR_NOERR 20
ISR_ERR 21
ISR_NOERR 22
ISR_NOERR 23
ISR_NOERR 24
ISR_NOERR 25
ISR_NOERR 26
ISR_NOERR 27
ISR_NOERR 28
ISR_ERR 29
ISR_ERR 30
ISR_NOERR 31

isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movl $0x10, %eax		/* KERNEL_DS: SS may be null after a CPL change */
	movl %eax, %ds
	movl %eax, %es
	movq %rsp, %rdi
	andq $-16, %rsp
	call exception_handler
1:	cli
	hlt
	jmp 1b

/*
 * External interrupts (irq.c): count and EOI the xAPIC; nothing else, so
 * only %rax needs saving.  The spurious vector takes no EOI.
 */
	.globl isr_irq_count
isr_irq_count:
	pushq %rax
	lock incl irq_count(%rip)
	movl $0xfee000b0, %eax		/* xAPIC EOI register (zero-extended) */
	movl $0, (%rax)
	popq %rax
	iretq

	.globl isr_spurious
isr_spurious:
	lock incl irq_spurious(%rip)
	iretq

	.section .rodata
	.p2align 3
	.globl isr_table
isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad isr\n
	.endr

	.section .note.GNU-stack, "", @progbits
