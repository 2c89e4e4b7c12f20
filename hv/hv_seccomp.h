/*
 * flint-hv's seccomp allowlists (kill the process on anything else).  The
 * vCPU threads can only run the vCPU, raise the console interrupt, route MSIs
 * and bind eventfds for PCI devices, talk vhost-user on the back-end sockets
 * opened at set-up, write the console and log, and synchronise; the main thread can additionally read
 * console input.  No open, no socket, no exec, no mmap: after start the
 * hypervisor has no filesystem and no network (HV-4).
 */
#ifndef FLINT_HV_SECCOMP_H
#define FLINT_HV_SECCOMP_H

#include <seccomp.h>

/*
 * Build (without loading) the filters; the caller releases with
 * seccomp_release.  socks[0..nr_socks) are the vhost-user sockets the vCPU
 * threads talk to back ends on (sendmsg/recvmsg on exactly those fds, poll on
 * one fd); nr_socks 0 allows none of the three calls.
 */
scmp_filter_ctx hv_seccomp_vcpu_filter(int console_fd, const int *socks,
				       unsigned int nr_socks);
scmp_filter_ctx hv_seccomp_main_filter(int console_fd);

/* Build and load into the calling thread.  0 or -1. */
int hv_seccomp_install_vcpu(int console_fd, const int *socks, unsigned int nr_socks);
int hv_seccomp_install_main(int console_fd);

struct hv_seccomp_counts {
	unsigned int syscalls;
	unsigned int ioctls;
};
/* How many syscalls and ioctl requests each list allows (for docs and tests). */
struct hv_seccomp_counts hv_seccomp_vcpu_counts(unsigned int nr_socks);
struct hv_seccomp_counts hv_seccomp_main_counts(void);

#endif
