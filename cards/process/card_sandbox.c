#include "card_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <seccomp.h>

/*
 * What every block card calls once jailed: its vhost-user socket and the
 * eventfds of its rings, guest memory, the allocator, threads and time.
 * No socket(), no connect(), no accept(): a card's sockets are made (its
 * front end's accepted) before the jail, or - card-ebs reconnecting to
 * storage - handed over by its storage dialer.
 */
static const int every_card[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(poll),
	SCMP_SYS(close), SCMP_SYS(shutdown), SCMP_SYS(eventfd2),
	SCMP_SYS(getsockopt), /* vub_serve: is the fd a listening socket */
	SCMP_SYS(newfstatat), /* glibc's fstat: guest memory's size, ring fds are eventfds */
	/* guest memory (SET_MEM_TABLE), the allocator, thread stacks */
	SCMP_SYS(munmap), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mremap),
	/* threads, time, signals */
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(futex), SCMP_SYS(exit),
	SCMP_SYS(exit_group), SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(sched_yield),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigtimedwait),
	SCMP_SYS(rt_sigaction), /* glibc, at the first pthread_create */
	SCMP_SYS(restart_syscall), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(clock_gettime), SCMP_SYS(getrandom),
	/* glibc's malloc sizes its arena count by the CPUs (get_nprocs) when
	 * many worker threads allocate at once */
	SCMP_SYS(sched_getaffinity),
};

/* card-ebs: the NBD socket's replies (recv); its requests go out by sendmsg. */
static const int ebs_only[] = {
	SCMP_SYS(recvfrom),
};

/* card-local: its already-open store file. */
static const int local_only[] = {
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(fdatasync), SCMP_SYS(fallocate),
};

/*
 * The clone flags of glibc's pthread_create (and nothing else: fork, vfork
 * and new namespaces all differ).  The kernel reads only the low 32 bits.
 */
#define THREAD_CLONE_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | \
			    CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

/* fcntl commands a card uses: descriptor and status flags, memfd seals. */
static const int fcntl_cmds[] = { F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GET_SEALS };

/* Argument-filtered rules, each one syscall: see card_sandbox.h. */
#define FILTERED_SYSCALLS 5 /* mmap, mprotect, clone, tgkill, fcntl */

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int allow_all(scmp_filter_ctx ctx, const int *nrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nrs[i], 0) != 0)
			return -1;
	return 0;
}

/* Never executable memory: no new code, whatever a card is made to map. */
static int allow_no_exec_memory(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) != 0 ||
	       seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) != 0 ? -1 : 0;
}

/*
 * Threads only.  clone3 passes its flags behind a pointer, which seccomp
 * cannot read, so it fails with ENOSYS: glibc (2.34 on) then falls back to
 * clone, whose flags are checked here.
 */
static int allow_threads_only(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, THREAD_CLONE_FLAGS)) != 0 ||
	       seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0 ? -1 : 0;
}

/* Signals to the card's own threads only (glibc's pthread_kill and raise). */
static int allow_own_signals(scmp_filter_ctx ctx, pid_t self)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self, 0));
}

/* No F_SETOWN / F_SETSIG: SIGIO aimed at another process is a signal too. */
static int allow_fcntl(scmp_filter_ctx ctx)
{
	for (size_t i = 0; i < N(fcntl_cmds); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
				     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i], 0)) != 0)
			return -1;
	return 0;
}

/*
 * Opening files is refused with an error, not a kill: glibc's malloc
 * probes /proc/sys/vm/overcommit_memory when it trims a thread's heap
 * and copes with the failure.  Nothing is ever opened.
 */
static int refuse_open(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0) != 0 ||
	       seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0) != 0 ? -1 : 0;
}

static int add_profile_rules(scmp_filter_ctx ctx, enum card_profile profile)
{
	const int *own = profile == CARD_PROFILE_EBS ? ebs_only : local_only;
	size_t n_own = profile == CARD_PROFILE_EBS ? N(ebs_only) : N(local_only);

	if (allow_all(ctx, every_card, N(every_card)) != 0 || allow_all(ctx, own, n_own) != 0)
		return -1;
	if (allow_no_exec_memory(ctx) != 0 || allow_threads_only(ctx) != 0 ||
	    allow_own_signals(ctx, getpid()) != 0 || allow_fcntl(ctx) != 0)
		return -1;
	return refuse_open(ctx);
}

int card_sandbox_enter(enum card_profile profile)
{
	if (profile != CARD_PROFILE_EBS && profile != CARD_PROFILE_LOCAL)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL)
		return -1;
	int bad = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0 ||
		  add_profile_rules(ctx, profile) != 0;
	if (!bad)
		bad = seccomp_load(ctx) != 0;
	/* Released only on failure: free() after the load may need what is denied. */
	if (bad)
		seccomp_release(ctx);
	return bad ? -1 : 0;
}

unsigned int card_sandbox_syscall_count(enum card_profile profile)
{
	size_t own = profile == CARD_PROFILE_EBS ? N(ebs_only) : N(local_only);
	return (unsigned int)(N(every_card) + own + FILTERED_SYSCALLS);
}
