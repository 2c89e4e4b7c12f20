#ifndef FLINT_HV_VCPU_SETUP_H
#define FLINT_HV_VCPU_SETUP_H

#include <stddef.h>

#include <linux/kvm.h>

#include "boot_setup.h"

/* KVM's supported CPUID, allocated; NULL on failure (errno set). */
struct kvm_cpuid2 *vcpu_supported_cpuid(int kvm_fd);

int vcpu_configure(int fd, const struct kvm_cpuid2 *cpuid, unsigned int index,
		   unsigned int vcpus, const struct boot_cpu_state *boot,
		   char *err, size_t errlen);

#endif
