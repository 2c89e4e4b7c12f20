#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exit_status.h"
#include "hv_seccomp.h"
#include "log.h"
#include "vcpu_setup.h"

#define KVM_API_EXPECTED 12
/* Inside the MMIO hole, away from the APICs: KVM's real-mode helpers. */
#define KVM_TSS_ADDR 0xfffbd000UL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

void vm_exit(int status, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(status == HV_EXIT_POWEROFF ? LOG_INFO : LOG_ERROR, "%s (exit status %d)",
		msg, status);
	/* exit_group: every vCPU thread stops with the process. */
	_exit(status);
}

static int check_caps(int kvm_fd, unsigned int vcpus, char *err, size_t errlen)
{
	static const struct { int cap; const char *name; } need[] = {
		{ KVM_CAP_IRQCHIP, "IRQCHIP" },
		{ KVM_CAP_USER_MEMORY, "USER_MEMORY" },
		{ KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR" },
		{ KVM_CAP_PIT2, "PIT2" },
		{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },
		/* PCI: MSI-X routes, and eventfds cards use to bypass flint-hv. */
		{ KVM_CAP_IRQ_ROUTING, "IRQ_ROUTING" },
		{ KVM_CAP_IRQFD, "IRQFD" },
		{ KVM_CAP_IOEVENTFD, "IOEVENTFD" },
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			snprintf(err, errlen, "KVM lacks KVM_CAP_%s", need[i].name);
			return -1;
		}
	}
	int max = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max > 0 && vcpus > (unsigned int)max) {
		snprintf(err, errlen, "--cpus %u exceeds this host's KVM limit of %d",
			 vcpus, max);
		return -1;
	}
	return 0;
}

static int set_memslots(struct vm *vm, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)(vm->mem.host + r->offset),
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) != 0) {
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION %u: %s", i,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int create_vm_fd(struct vm *vm, char *err, size_t errlen)
{
	const char *step = "KVM_CREATE_VM";

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		goto fail;
	step = "KVM_SET_TSS_ADDR";
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) != 0)
		goto fail;
	uint64_t ident = KVM_IDENTITY_MAP_ADDR;
	step = "KVM_SET_IDENTITY_MAP_ADDR";
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) != 0)
		goto fail;
	step = "KVM_CREATE_IRQCHIP";
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) != 0)
		goto fail;
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	step = "KVM_CREATE_PIT2";
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", step, strerror(errno));
	return -1;
}

int vm_create(struct vm *vm, const struct hv_config *cfg, char *err, size_t errlen)
{
	vm->vm_fd = -1;
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		snprintf(err, errlen, "/dev/kvm: %s (KVM is not available here)",
			 strerror(errno));
		return -1;
	}
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_EXPECTED) {
		snprintf(err, errlen, "KVM API version %d, need %d", api, KVM_API_EXPECTED);
		return -1;
	}
	if (check_caps(vm->kvm_fd, cfg->vcpus, err, errlen) != 0)
		return -1;
	int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -1;
	}
	vm->run_size = (size_t)run_size;
	if (create_vm_fd(vm, err, errlen) != 0)
		return -1;
	return set_memslots(vm, err, errlen);
}

int vm_create_vcpus(struct vm *vm, const struct boot_cpu_state *boot,
		    char *err, size_t errlen)
{
	struct kvm_cpuid2 *cpuid = vcpu_supported_cpuid(vm->kvm_fd);

	if (cpuid == NULL) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return -1;
	}
	int rc = 0;
	for (unsigned int i = 0; i < vm->nr_vcpus && rc == 0; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->index = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0) {
			snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
			rc = -1;
			break;
		}
		v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			snprintf(err, errlen, "mmap kvm_run %u: %s", i, strerror(errno));
			rc = -1;
			break;
		}
		rc = vcpu_configure(v->fd, cpuid, i, vm->nr_vcpus, boot, err, errlen);
	}
	free(cpuid);
	return rc;
}

static void handle_pio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	/* KVM owns this layout; offset and count come from the kernel, not the guest. */
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		uint32_t value = 0;
		const char *reason;
		enum platform_action a = platform_pio(&v->vm->platform, run->io.port,
						      run->io.size, is_write, data, &value,
						      &reason);
		switch (a) {
		case PLATFORM_CONTINUE:
			break;
		case PLATFORM_POWEROFF:
			vm_exit(HV_EXIT_POWEROFF, "guest powered off (%s)", reason);
		case PLATFORM_REBOOT:
			vm_exit(HV_EXIT_REBOOT, "guest requested a reboot (%s)", reason);
		case PLATFORM_DEBUG_EXIT:
			vm_exit((int)(((value << 1) | 1) & 0xff),
				"guest wrote 0x%x to the %s", value, reason);
		}
	}
}

static void handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_exit(HV_EXIT_POWEROFF, "guest powered off (system event)");
	case KVM_SYSTEM_EVENT_RESET:
		vm_exit(HV_EXIT_REBOOT, "guest requested a reboot (system event)");
	default:
		vm_exit(HV_EXIT_INTERNAL, "vCPU %u: system event %u", v->index,
			v->run->system_event.type);
	}
}

static void handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_pio(v);
		return;
	case KVM_EXIT_MMIO:
		platform_mmio(&v->vm->platform, run->mmio.phys_addr, run->mmio.len,
			      run->mmio.is_write, run->mmio.data);
		return;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
		return;
	case KVM_EXIT_SHUTDOWN:
		vm_exit(HV_EXIT_TRIPLE_FAULT, "vCPU %u: triple fault", v->index);
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(v);
		return;
	case KVM_EXIT_FAIL_ENTRY:
		vm_exit(HV_EXIT_INTERNAL, "vCPU %u: entry failed, hardware reason 0x%llx",
			v->index,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	case KVM_EXIT_INTERNAL_ERROR:
		vm_exit(HV_EXIT_INTERNAL, "vCPU %u: KVM internal error, suberror %u",
			v->index, run->internal.suberror);
	default:
		vm_exit(HV_EXIT_INTERNAL, "vCPU %u: unhandled exit reason %u", v->index,
			run->exit_reason);
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;

	if (hv_seccomp_install_vcpu(v->vm->console_fd, v->vm->blk_socks, v->vm->nr_blk) != 0)
		vm_exit(HV_EXIT_INTERNAL, "vCPU %u: cannot install seccomp filter", v->index);
	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) != 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* errno as a number: strerror may allocate, which seccomp forbids. */
			vm_exit(HV_EXIT_INTERNAL, "vCPU %u: KVM_RUN failed, errno %d", v->index,
				errno);
		}
		handle_exit(v);
	}
	return NULL;
}

int vm_start(struct vm *vm, char *err, size_t errlen)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		int r = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (r != 0) {
			snprintf(err, errlen, "vCPU %u thread: %s", i, strerror(r));
			return -1;
		}
	}
	return 0;
}
