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
	case 0xb: /* x2APIC topology: level 0 SMT (1 thread), level 1 core */
		c->edx = index;
		if (c->index == 0) {
			c->eax = 0;
			c->ebx = 1;
			c->ecx = (1U << 8) | 0;
		} else if (c->index == 1) {
			c->eax = bits_for(vcpus);
			c->ebx = vcpus;
			c->ecx = (2U << 8) | 1;
		} else {
			c->eax = 0;
			c->ebx = 0;
			c->ecx = c->index;
		}
		break;
	case 0x80000008: /* AMD: number of cores - 1 */
		c->ecx = (c->ecx & ~0xffU) | ((vcpus - 1) & 0xff);
		break;
	default:
		break;
	}
}

void cpuid_patch(struct kvm_cpuid_entry2 *e, unsigned int n, unsigned int index,
		 unsigned int vcpus)
{
	for (unsigned int i = 0; i < n; i++)
		patch_one(&e[i], index, vcpus);
}
