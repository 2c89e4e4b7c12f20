#include "hv_seccomp.h"

#include <stddef.h>
#include <unistd.h>

#include <linux/kvm.h>

/* Calls every thread needs: synchronisation, leaving, signal return, time. */
static const int common_syscalls[] = {
	SCMP_SYS(futex),           /* pthread mutexes (UART lock) */
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),      /* vm_exit() ends the VM */
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(restart_syscall),
	SCMP_SYS(clock_gettime),   /* boot marker; the vDSO normally avoids it */
};

/*
 * vCPU threads also serve PCI config and BAR accesses: programming an MSI-X
 * vector rewrites the GSI routing table, and enabling a virtio queue or
 * moving its BAR binds eventfds to a GSI (irqfd) or a notify address
 * (ioeventfd).  All three only act on this VM.
 */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_IRQ_LINE, KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD,
};
static const unsigned long main_ioctls[] = { KVM_IRQ_LINE };
/* Main thread only: console input. */
static const int main_syscalls[] = { SCMP_SYS(poll), SCMP_SYS(ppoll) };

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Allows syscall nr only when argument arg equals value. */
static int allow_arg_eq(scmp_filter_ctx ctx, int nr, unsigned int arg, scmp_datum_t value)
{
	const struct scmp_arg_cmp cmp = {
		.arg = arg, .op = SCMP_CMP_EQ, .datum_a = value, .datum_b = 0,
	};
	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp);
}

static int add_common(scmp_filter_ctx ctx, int console_fd)
{
	for (size_t i = 0; i < N(common_syscalls); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, common_syscalls[i], 0) != 0)
			return -1;
	/* Writes only to the console and to stderr (log). */
	if (allow_arg_eq(ctx, SCMP_SYS(write), 0, (scmp_datum_t)console_fd) != 0)
		return -1;
	if (console_fd != STDERR_FILENO &&
	    allow_arg_eq(ctx, SCMP_SYS(write), 0, STDERR_FILENO) != 0)
		return -1;
	return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *req, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (allow_arg_eq(ctx, SCMP_SYS(ioctl), 1, req[i]) != 0)
			return -1;
	return 0;
}

static scmp_filter_ctx new_filter(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL)
		return NULL;
	/* no_new_privs is set by the caller's sandbox step; keep it mandatory. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1) != 0) {
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * vhost-user control messages (queue start, feature negotiation, reset) go
 * out on vCPU threads: sendmsg, recvmsg and shutdown (cutting off a back end
 * that failed) only on the sockets connected at set-up, and poll on exactly
 * one pollfd (the bounded reply wait, and a
 * guest's MSI-X PBA read checking a masked queue's call eventfd with a zero
 * timeout).  poll's fd lives in memory and cannot be filtered; waiting on
 * any fd grants nothing.
 * recvmsg is called without a control buffer (vhost_user_recv_nofds_until),
 * so fds a back end sends are discarded by the kernel.
 */
static int add_vhost_user(scmp_filter_ctx ctx, const int *socks, unsigned int n)
{
	if (n == 0)
		return 0;
	for (unsigned int i = 0; i < n; i++) {
		if (socks[i] < 0 ||
		    allow_arg_eq(ctx, SCMP_SYS(sendmsg), 0, (scmp_datum_t)socks[i]) != 0 ||
		    allow_arg_eq(ctx, SCMP_SYS(recvmsg), 0, (scmp_datum_t)socks[i]) != 0 ||
		    allow_arg_eq(ctx, SCMP_SYS(shutdown), 0, (scmp_datum_t)socks[i]) != 0)
			return -1;
	}
	return allow_arg_eq(ctx, SCMP_SYS(poll), 1, 1);
}

scmp_filter_ctx hv_seccomp_vcpu_filter(int console_fd, const int *socks,
				       unsigned int nr_socks)
{
	scmp_filter_ctx ctx = new_filter();
	if (ctx == NULL)
		return NULL;
	if (add_common(ctx, console_fd) != 0 ||
	    add_ioctls(ctx, vcpu_ioctls, N(vcpu_ioctls)) != 0 ||
	    add_vhost_user(ctx, socks, nr_socks) != 0) {
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

scmp_filter_ctx hv_seccomp_main_filter(int console_fd)
{
	scmp_filter_ctx ctx = new_filter();
	if (ctx == NULL)
		return NULL;
	int bad = add_common(ctx, console_fd) != 0 ||
		  add_ioctls(ctx, main_ioctls, N(main_ioctls)) != 0;
	for (size_t i = 0; !bad && i < N(main_syscalls); i++)
		bad = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, main_syscalls[i], 0) != 0;
	/* Console input only from stdin. */
	if (!bad)
		bad = allow_arg_eq(ctx, SCMP_SYS(read), 0, STDIN_FILENO) != 0;
	if (bad) {
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * The context is deliberately not released after a successful load: free()
 * may hand memory back with munmap or madvise, which the filter forbids.  It
 * is a few KiB per thread for the life of the process.
 */
static int load(scmp_filter_ctx ctx)
{
	if (ctx == NULL)
		return -1;
	if (seccomp_load(ctx) != 0) {
		seccomp_release(ctx);
		return -1;
	}
	return 0;
}

int hv_seccomp_install_vcpu(int console_fd, const int *socks, unsigned int nr_socks)
{
	return load(hv_seccomp_vcpu_filter(console_fd, socks, nr_socks));
}

int hv_seccomp_install_main(int console_fd)
{
	return load(hv_seccomp_main_filter(console_fd));
}

struct hv_seccomp_counts hv_seccomp_vcpu_counts(unsigned int nr_socks)
{
	/* common + write + ioctl (+ sendmsg, recvmsg, shutdown, poll with back ends) */
	return (struct hv_seccomp_counts){ N(common_syscalls) + 2 + (nr_socks ? 4 : 0),
					   N(vcpu_ioctls) };
}

struct hv_seccomp_counts hv_seccomp_main_counts(void)
{
	/* common + write + ioctl + read + poll/ppoll */
	return (struct hv_seccomp_counts){ N(common_syscalls) + 3 + N(main_syscalls),
					   N(main_ioctls) };
}
