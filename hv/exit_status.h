/*
 * flint-hv process exit statuses.  The VMM's own outcomes are even numbers so
 * that they never collide with the odd statuses ((v << 1) | 1) the debug-exit
 * device produces for test guests.
 */
#ifndef FLINT_HV_EXIT_STATUS_H
#define FLINT_HV_EXIT_STATUS_H

enum hv_exit_status {
	HV_EXIT_POWEROFF = 0,   /* the guest powered off */
	HV_EXIT_USAGE = 2,      /* bad option, configuration or image: nothing ran */
	HV_EXIT_REBOOT = 4,     /* the guest asked for a reset */
	HV_EXIT_TRIPLE_FAULT = 6, /* KVM reported a shutdown (triple fault) */
	HV_EXIT_INTERNAL = 8,   /* KVM or VMM failure: the guest cannot continue */
};

#endif
