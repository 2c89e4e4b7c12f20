#include "card_sandbox.h"

#include <errno.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <seccomp.h>

static const int card_syscalls[] = {
	/* data path: sockets and eventfds the card holds, the store */
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
	SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(poll), SCMP_SYS(ppoll),
	SCMP_SYS(close), SCMP_SYS(shutdown), SCMP_SYS(accept), SCMP_SYS(accept4),
	SCMP_SYS(connect), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
	SCMP_SYS(fcntl), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
	SCMP_SYS(fdatasync), SCMP_SYS(fsync), SCMP_SYS(fallocate),
	SCMP_SYS(eventfd2), /* wakes the card's own queue threads */
	/* guest memory from SET_MEM_TABLE, allocator, thread stacks */
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(madvise),
	SCMP_SYS(brk), SCMP_SYS(mremap),
	/* threads, time, signals */
	SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(futex), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(gettid),
	SCMP_SYS(getpid), SCMP_SYS(tgkill), SCMP_SYS(sched_yield),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigtimedwait),
	SCMP_SYS(rt_sigaction), /* glibc, at the first pthread_create */
	SCMP_SYS(restart_syscall), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(clock_gettime), SCMP_SYS(getrandom),
	/* glibc's malloc sizes its arena count by the CPUs (get_nprocs) when
	 * many worker threads allocate at once */
	SCMP_SYS(sched_getaffinity),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* New sockets only for reconnecting to storage: unix or IPv4 streams. */
static int allow_socket(scmp_filter_ctx ctx, int domain)
{
	const struct scmp_arg_cmp cmp = {
		.arg = 0, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)domain, .datum_b = 0,
	};
	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &cmp);
}

int card_sandbox_enter(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL)
		return -1;
	int bad = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0;
	for (size_t i = 0; !bad && i < N(card_syscalls); i++)
		bad = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, card_syscalls[i], 0) != 0;
	if (!bad)
		bad = allow_socket(ctx, AF_UNIX) != 0 || allow_socket(ctx, AF_INET) != 0;
	/*
	 * Opening files is refused with an error, not a kill: glibc's malloc
	 * probes /proc/sys/vm/overcommit_memory when it trims a thread's heap
	 * and copes with the failure.  Nothing is ever opened.
	 */
	if (!bad)
		bad = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0) != 0 ||
		      seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0) != 0;
	if (!bad)
		bad = seccomp_load(ctx) != 0;
	/* Released only on failure: free() after the load may need what is denied. */
	if (bad)
		seccomp_release(ctx);
	return bad ? -1 : 0;
}

unsigned int card_sandbox_syscall_count(void)
{
	return N(card_syscalls) + 1; /* + socket, argument-filtered */
}
