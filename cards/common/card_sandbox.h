/*
 * The jail every card process enters before it reads untrusted input
 * (a front end's messages, a guest's rings, a storage server's replies):
 * no new privileges, and a seccomp allowlist applied to all threads.  What
 * remains is what a card needs to serve: sockets it already has or
 * reconnects (unix and IPv4 only), shared guest memory mappings, eventfd
 * signalling, threads, and durable writes to an already-open store.  No
 * open, no exec, no ptrace, no mount, no new process.
 */
#ifndef FLINT_CARDS_CARD_SANDBOX_H
#define FLINT_CARDS_CARD_SANDBOX_H

/* Returns 0, or -1 (the card must not start). */
int card_sandbox_enter(void);

/* How many syscalls the allowlist admits (for docs and tests). */
unsigned int card_sandbox_syscall_count(void);

#endif
