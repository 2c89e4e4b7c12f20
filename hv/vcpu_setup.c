/*
 * Initial architectural state of a vCPU: CPUID, MSRs, FPU, local APIC LINT
 * pins and, for the boot CPU, the registers the boot protocol prescribes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot_layout.h"
#include "cpuid.h"
#include "vcpu_setup.h"

#define CPUID_MAX_ENTRIES 256
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MISC_ENABLE_FAST_STRING 1ULL

#define CR0_PE 0x1ULL
#define CR0_ET 0x10ULL
#define CR0_NE 0x20ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

struct kvm_cpuid2 *vcpu_supported_cpuid(int kvm_fd)
{
	size_t sz = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);

	if (c == NULL)
		return NULL;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

static int set_cpuid(int fd, const struct kvm_cpuid2 *supported, unsigned int index,
		     unsigned int vcpus)
{
	unsigned int max = supported->nent + CPUID_EXTRA_ENTRIES;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + max * sizeof(struct kvm_cpuid_entry2));

	if (c == NULL)
		return -1;
	c->nent = cpuid_build(supported->entries, supported->nent, c->entries, max, index,
			      vcpus);
	int r = ioctl(fd, KVM_SET_CPUID2, c);
	free(c);
	return r;
}

static int set_msrs(int fd)
{
	union {
		struct kvm_msrs hdr;
		uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} m;
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.hdr.entries[0].index = MSR_IA32_MISC_ENABLE;
	m.hdr.entries[0].data = MISC_ENABLE_FAST_STRING;
	return ioctl(fd, KVM_SET_MSRS, &m.hdr) == 1 ? 0 : -1;
}

static int set_fpu(int fd)
{
	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	return ioctl(fd, KVM_SET_FPU, &fpu);
}

static void set_lvt_mode(struct kvm_lapic_state *l, unsigned int reg, uint32_t mode)
{
	uint32_t v;
	memcpy(&v, &l->regs[reg], sizeof(v));
	v = (v & ~0x700U) | (mode << 8);
	memcpy(&l->regs[reg], &v, sizeof(v));
}

/* LINT0 as ExtINT (the 8259 path), LINT1 as NMI, as on a PC. */
static int set_lint(int fd)
{
	struct kvm_lapic_state l;
	if (ioctl(fd, KVM_GET_LAPIC, &l) != 0)
		return -1;
	set_lvt_mode(&l, APIC_LVT0, APIC_MODE_EXTINT);
	set_lvt_mode(&l, APIC_LVT1, APIC_MODE_NMI);
	return ioctl(fd, KVM_SET_LAPIC, &l);
}

static struct kvm_segment flat_segment(uint16_t sel, uint8_t type, int code64)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1,
		.l = code64 ? 1 : 0, .g = 1,
	};
}

static void boot_sregs(struct kvm_sregs *s, enum boot_protocol proto)
{
	struct kvm_segment data = flat_segment(BOOT_SEL_DATA, 3, 0);

	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->tr = (struct kvm_segment){
		.base = 0, .limit = 0xfffff, .selector = BOOT_SEL_TSS, .type = 11,
		.present = 1, .s = 0,
	};
	s->gdt.base = BOOT_GDT_ADDR;
	s->gdt.limit = 5 * 8 - 1;
	s->idt.base = BOOT_IDT_ADDR;
	s->idt.limit = 7;
	if (proto == BOOT_PROTO_PVH) {
		/* PVH: 32-bit protected mode, paging off. */
		s->cs = flat_segment(BOOT_SEL_CODE32, 11, 0);
		s->cr0 = CR0_PE | CR0_ET;
		s->cr4 = 0;
		s->efer = 0;
		s->cr3 = 0;
		return;
	}
	/* Linux 64-bit entry: long mode on the identity page tables. */
	s->cs = flat_segment(BOOT_SEL_CODE64, 11, 1);
	s->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	s->cr3 = BOOT_PML4_ADDR;
	s->cr4 = CR4_PAE;
	s->efer = EFER_LME | EFER_LMA;
}

static int set_boot_regs(int fd, const struct boot_cpu_state *boot)
{
	struct kvm_sregs sregs;
	if (ioctl(fd, KVM_GET_SREGS, &sregs) != 0)
		return -1;
	boot_sregs(&sregs, boot->proto);
	if (ioctl(fd, KVM_SET_SREGS, &sregs) != 0)
		return -1;

	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = boot->rip;
	if (boot->proto == BOOT_PROTO_PVH) {
		regs.rbx = boot->info_addr;
	} else {
		regs.rsi = boot->info_addr;
		regs.rsp = BOOT_STACK_TOP;
		regs.rbp = BOOT_STACK_TOP;
	}
	return ioctl(fd, KVM_SET_REGS, &regs);
}

int vcpu_configure(int fd, const struct kvm_cpuid2 *cpuid, unsigned int index,
		   unsigned int vcpus, const struct boot_cpu_state *boot,
		   char *err, size_t errlen)
{
	const char *step;

	step = "KVM_SET_CPUID2";
	if (set_cpuid(fd, cpuid, index, vcpus) != 0)
		goto fail;
	step = "KVM_SET_MSRS";
	if (set_msrs(fd) != 0)
		goto fail;
	step = "KVM_SET_FPU";
	if (set_fpu(fd) != 0)
		goto fail;
	step = "KVM_SET_LAPIC";
	if (set_lint(fd) != 0)
		goto fail;
	/* Application processors wait for INIT/SIPI in the in-kernel LAPIC. */
	if (index != 0)
		return 0;
	step = "boot registers";
	if (set_boot_regs(fd, boot) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "vCPU %u: %s: %s", index, step, strerror(errno));
	return -1;
}
