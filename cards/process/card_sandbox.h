/*
 * The jail every card process enters before it reads untrusted input
 * (a front end's messages, a guest's rings, a storage server's replies):
 * no new privileges, and a seccomp allowlist applied to all threads, one
 * per card.  Anything outside it kills the process.
 *
 * Both cards may use the sockets and eventfds they already hold, map
 * shared guest memory read-write (never executable: mmap and mprotect
 * with PROT_EXEC die), create threads (clone with exactly
 * pthread_create's flags; clone3 fails with ENOSYS so that glibc falls
 * back to clone; fork and new namespaces die), signal their own threads
 * (tgkill with the card's own pid) and use a few fcntl commands (no
 * F_SETOWN: no SIGIO aimed elsewhere).  open/openat fail with EACCES.
 * Neither may create a socket or connect one: card-ebs gets new storage
 * connections from its storage dialer (cards/ebs/storage_dialer.h).
 * card-ebs adds recv on its NBD socket; card-local adds positioned I/O,
 * fdatasync and fallocate on its already-open store.
 */
#ifndef FLINT_CARDS_CARD_SANDBOX_H
#define FLINT_CARDS_CARD_SANDBOX_H

enum card_profile {
	CARD_PROFILE_EBS,   /* card-ebs (and the benchmark's card-ebs-plain) */
	CARD_PROFILE_LOCAL, /* card-local */
};

/* Returns 0, or -1 (the card must not start). */
int card_sandbox_enter(enum card_profile profile);

/* How many syscalls a profile allows, argument-filtered ones included (docs, tests). */
unsigned int card_sandbox_syscall_count(enum card_profile profile);

#endif
