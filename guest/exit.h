/* Ending the VM: ACPI power-off or the debug-exit port. */
#ifndef GUEST_EXIT_H
#define GUEST_EXIT_H

#include <stdint.h>

#include "util.h"

/*
 * Write v to the debug-exit port (QEMU isa-debug-exit / flint-hv
 * --debug-exit: the VMM exits with status (v << 1) | 1), then halt forever.
 */
GUEST_NORETURN void debug_exit(uint32_t v);

/* Halt forever with interrupts off. */
GUEST_NORETURN void halt_forever(void);

/* End of run: power off if nothing failed, else debug-exit(failed). */
GUEST_NORETURN void guest_finish(unsigned failed);

#endif
