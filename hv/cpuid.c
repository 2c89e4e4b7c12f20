#include "cpuid.h"

#define CPUID_1_ECX_HYPERVISOR (1U << 31)
#define CPUID_1_EDX_HTT (1U << 28)

static unsigned int bits_for(unsigned int n)
{
	unsigned int b = 0;
	while ((1U << b) < n)
		b++;
	return b;
}

static void patch_one(struct kvm_cpuid_entry2 *c, unsigned int index, unsigned int vcpus)
{
	switch (c->function) {
	case 1:
		c->ecx |= CPUID_1_ECX_HYPERVISOR;
		c->ebx = (c->ebx & 0x0000ffffU) | (index << 24) | ((vcpus & 0xff) << 16);
		if (vcpus > 1)
			c->edx |= CPUID_1_EDX_HTT;
		else
			c->edx &= ~CPUID_1_EDX_HTT;
		break;
	case 4: /* Intel deterministic cache: cores per package - 1 in EAX[31:26] */
		c->eax = (c->eax & 0x03ffffffU) | (((vcpus - 1) & 0x3f) << 26);
		break;
	case 0x80000008: /* AMD: number of cores - 1 */
		c->ecx = (c->ecx & ~0xffU) | ((vcpus - 1) & 0xff);
		break;
	default:
		break;
	}
}

/*
 * Leaf 0xB, written whole: KVM returns at most an empty sub-leaf 0 for it
 * (no topology), and a host's own sub-leaves would describe the host.
 * Level 0: SMT, one thread per core; level 1: cores; level 2: invalid.
 */
static unsigned int add_topology(struct kvm_cpuid_entry2 *out, unsigned int index,
				 unsigned int vcpus)
{
	for (unsigned int sub = 0; sub < 3; sub++) {
		struct kvm_cpuid_entry2 *c = &out[sub];
		*c = (struct kvm_cpuid_entry2){
			.function = 0xb,
			.index = sub,
			.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
			.edx = index,
		};
		if (sub == 0) {
			c->ebx = 1;
			c->ecx = (1U << 8) | 0;
		} else if (sub == 1) {
			c->eax = bits_for(vcpus);
			c->ebx = vcpus;
			c->ecx = (2U << 8) | 1;
		} else {
			c->ecx = sub;
		}
	}
	return 3;
}

static unsigned int max_basic_leaf(const struct kvm_cpuid_entry2 *in, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (in[i].function == 0)
			return in[i].eax;
	return 0;
}

unsigned int cpuid_build(const struct kvm_cpuid_entry2 *in, unsigned int n,
			 struct kvm_cpuid_entry2 *out, unsigned int max,
			 unsigned int index, unsigned int vcpus)
{
	unsigned int m = 0;

	for (unsigned int i = 0; i < n && m < max; i++) {
		/* 0xB is rebuilt below; 0x1F (preferred by Linux) is dropped. */
		if (in[i].function == 0xb || in[i].function == 0x1f)
			continue;
		out[m] = in[i];
		patch_one(&out[m], index, vcpus);
		m++;
	}
	if (max_basic_leaf(in, n) >= 0xb && max - m >= 3)
		m += add_topology(out + m, index, vcpus);
	return m;
}
