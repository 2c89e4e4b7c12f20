/*
 * flint-hv's seccomp allowlists (kill the process on anything else).  The
 * vCPU threads can only run the vCPU, raise the console interrupt, route MSIs
 * and bind eventfds for PCI devices, write the console and log, and
 * synchronise; the main thread can additionally read
 * console input.  No open, no socket, no exec, no mmap: after start the
 * hypervisor has no filesystem and no network (HV-4).
 */
#ifndef FLINT_HV_SECCOMP_H
#define FLINT_HV_SECCOMP_H

#include <seccomp.h>

/* Build (without loading) the filters; the caller releases with seccomp_release. */
scmp_filter_ctx hv_seccomp_vcpu_filter(int console_fd);
scmp_filter_ctx hv_seccomp_main_filter(int console_fd);

/* Build and load into the calling thread.  0 or -1. */
int hv_seccomp_install_vcpu(int console_fd);
int hv_seccomp_install_main(int console_fd);

struct hv_seccomp_counts {
	unsigned int syscalls;
	unsigned int ioctls;
};
/* How many syscalls and ioctl requests each list allows (for docs and tests). */
struct hv_seccomp_counts hv_seccomp_vcpu_counts(void);
struct hv_seccomp_counts hv_seccomp_main_counts(void);

#endif
