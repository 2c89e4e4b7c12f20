/*
 * PVH entry: the ELF note tells the loader (QEMU, flint-hv) the 32-bit
 * physical entry point.  We arrive in 32-bit protected mode, paging off,
 * flat segments, %ebx = struct hvm_start_info, no stack.  Switch to long
 * mode with statically built identity page tables (no loop at CPL0) and
 * call guest_main(start_info_pa).
 */
#include "layout.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.p2align 2
	.long 4				/* namesz: "Xen\0" */
	.long 4				/* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_start32

	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	/* Zero .bss (small: stacks live in the separate .stack section). */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx			/* both ends are 8-byte aligned */
	xorl %eax, %eax
	rep stosl
	movl %ebx, pvh_start_info_pa

	lgdt gdt_desc

	movl %cr4, %eax
	orl $0x20, %eax			/* CR4.PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx		/* EFER */
	rdmsr
	orl $0x100, %eax		/* EFER.LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax		/* CR0.PG | CR0.PE */
	movl %eax, %cr0
	ljmp $KERNEL_CS, $start64

	.code64
start64:
	movl $KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	leaq kernel_stack_top(%rip), %rsp
	xorl %ebp, %ebp
	movl pvh_start_info_pa(%rip), %edi
	call guest_main
1:	cli
	hlt
	jmp 1b

	.data
	.globl pvh_start_info_pa
	.p2align 2
pvh_start_info_pa:
	.long 0

/*
 * GDT.  Accessed bits preset so the CPU never writes to it.  The TSS
 * descriptor is filled in by cpu_init() (its base is not a link-time
 * constant expression the assembler can split).
 */
	.p2align 4
	.globl gdt, gdt_tss
gdt:
	.quad 0
	.quad 0x00af9b000000ffff		/* 0x08 kernel code, 64-bit */
	.quad 0x00cf93000000ffff		/* 0x10 kernel data */
	.quad 0x00cff3000000ffff		/* 0x18 user data, DPL3 */
	.quad 0x00affb000000ffff		/* 0x20 user code, 64-bit, DPL3 */
gdt_tss:
	.quad 0, 0				/* 0x28 TSS (16 bytes) */
gdt_end:

	.p2align 3
	.word 0, 0, 0
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

/*
 * Identity map of [0, 4 GiB) with 2 MiB pages, all user-accessible (the
 * CPL3 tests touch code, data and all RAM).  [3 GiB, 4 GiB) is the MMIO
 * hole: mapped uncached (PCD | PWT).  No 1 GiB pages: TCG's qemu64 model
 * may not have them.
 */
#define PTE_P 0x1
#define PTE_RW 0x2
#define PTE_US 0x4
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS 0x80

	.section .data.pagetables, "aw"
	.p2align 12
	.globl pml4
pml4:
	.quad pdpt + (PTE_P | PTE_RW | PTE_US)
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + (PTE_P | PTE_RW | PTE_US)
	.quad pd + 0x1000 + (PTE_P | PTE_RW | PTE_US)
	.quad pd + 0x2000 + (PTE_P | PTE_RW | PTE_US)
	.quad pd + 0x3000 + (PTE_P | PTE_RW | PTE_US)
	.fill 508, 8, 0
pd:
	.set i, 0
	.rept 2048
	.if i < 1536
	.quad (i << 21) | (PTE_P | PTE_RW | PTE_US | PTE_PS)
	.else
	.quad (i << 21) | (PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_PCD | PTE_PWT)
	.endif
	.set i, i + 1
	.endr

/* Stacks: not zeroed at boot (the loader zero-fills memsz anyway). */
	.section .stack, "aw", @nobits
	.p2align 12
	.globl kernel_stack_top, trap_stack_top, ist_stack_top, user_stack_top
	.space KERNEL_STACK_SIZE
kernel_stack_top:
	.space TRAP_STACK_SIZE
trap_stack_top:
	.space IST_STACK_SIZE
ist_stack_top:
	.space USER_STACK_SIZE
user_stack_top:

	.section .note.GNU-stack, "", @progbits
