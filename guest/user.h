/*
 * CPL3 (ring 3) execution.  Heavy work belongs here: on the production dev
 * machines guest CPL0 code goes through KVM's instruction emulator while CPL3
 * runs natively.  CPL3 code shares the kernel's address space (all pages are
 * user-accessible) but must not execute privileged instructions; it does I/O
 * through the int 0x80 gate.
 */
#ifndef GUEST_USER_H
#define GUEST_USER_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t (*user_fn)(uint64_t arg);

/* Run fn(arg) at CPL3 and return its result.  Not reentrant. */
uint64_t user_call(user_fn fn, uint64_t arg);

/* From CPL3: write to the console through the syscall gate. */
void user_write(const char *s, size_t len);
void user_puts(const char *s);

/* Kernel side of the gate (called from user.S). */
uint64_t syscall_dispatch(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t nr);

#endif
