/*
 * The CPUID a vCPU sees: what KVM supports, plus the hypervisor bit (without
 * it Linux loses kvm-clock and hangs calibrating the TSC) and a consistent
 * topology (one thread per core, vCPU index = APIC ID).
 */
#ifndef FLINT_HV_CPUID_H
#define FLINT_HV_CPUID_H

#include <linux/kvm.h>

/* Extra entries cpuid_build may add beyond its input. */
#define CPUID_EXTRA_ENTRIES 3

/*
 * Builds vCPU index's CPUID from KVM's supported entries into out (room
 * for max entries); returns the count.
 */
unsigned int cpuid_build(const struct kvm_cpuid_entry2 *in, unsigned int n,
			 struct kvm_cpuid_entry2 *out, unsigned int max,
			 unsigned int index, unsigned int vcpus);

#endif
