/*
 * One KVM virtual machine: the VM fd, guest RAM slots, the in-kernel
 * interrupt controllers, the vCPUs (one thread each) and the platform
 * devices their exits reach.
 */
#ifndef FLINT_HV_VM_H
#define FLINT_HV_VM_H

#include <pthread.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "boot_setup.h"
#include "config.h"
#include "guest_mem.h"
#include "pci.h"
#include "platform.h"
#include "vhost_user_front.h"

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct guest_mem mem;
	unsigned int nr_vcpus;
	struct vcpu vcpus[HV_VCPUS_MAX];
	struct platform platform;
	struct pci_bus pci;
	int console_fd;
	/* vhost-user-blk devices (--blk); their sockets, for the vCPU filter. */
	unsigned int nr_blk;
	struct vuf *blk[HV_BLK_MAX];
	int blk_socks[HV_BLK_MAX];
};

/*
 * Opens /dev/kvm, creates the VM, its irqchip and PIT, and registers vm->mem
 * (already allocated and loaded) as guest RAM.
 */
int vm_create(struct vm *vm, const struct hv_config *cfg, char *err, size_t errlen);

/* Creates and configures every vCPU; the first starts as described by boot. */
int vm_create_vcpus(struct vm *vm, const struct boot_cpu_state *boot,
		    char *err, size_t errlen);

/* Starts the vCPU threads; each installs its seccomp filter before KVM_RUN. */
int vm_start(struct vm *vm, char *err, size_t errlen);

/* Ends the whole process with status after a one-line reason on stderr. */
__attribute__((noreturn, format(printf, 2, 3)))
void vm_exit(int status, const char *fmt, ...);

#endif
