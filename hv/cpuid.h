/*
 * The CPUID a vCPU sees: what KVM supports, plus the hypervisor bit (without
 * it Linux loses kvm-clock and hangs calibrating the TSC) and a consistent
 * topology (one thread per core, vCPU index = APIC ID).
 */
#ifndef FLINT_HV_CPUID_H
#define FLINT_HV_CPUID_H

#include <linux/kvm.h>

void cpuid_patch(struct kvm_cpuid_entry2 *e, unsigned int n, unsigned int index,
		 unsigned int vcpus);

#endif
