/*
 * The legacy platform devices a guest reaches with port I/O and MMIO exits:
 * the COM1 UART, the reset and power-off paths (i8042, 0xcf9, ACPI
 * hardware-reduced sleep/reset registers), the boot-time marker, for test
 * guests only the debug-exit port, and the PCI bus (config ports, ECAM, BARs)
 * when one is attached.  Everything else reads as all-ones and ignores writes.
 */
#ifndef FLINT_HV_PLATFORM_H
#define FLINT_HV_PLATFORM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pci.h"
#include "serial.h"

enum platform_action {
	PLATFORM_CONTINUE,
	PLATFORM_POWEROFF,
	PLATFORM_REBOOT,
	PLATFORM_DEBUG_EXIT, /* *value holds the guest's code */
};

/* Console output waiting to be written; beyond this, output is dropped. */
#define PLATFORM_TX_RING (64 * 1024)

struct platform {
	pthread_mutex_t lock; /* serialises the UART between vCPUs and input */
	struct serial com1;
	/*
	 * The UART only queues output under the lock; whoever holds tx_flush
	 * writes it out without the lock, so a stalled console blocks one
	 * vCPU at most, never the others or console input.
	 */
	pthread_mutex_t tx_flush;
	uint8_t tx_ring[PLATFORM_TX_RING];
	size_t tx_head, tx_len;
	uint64_t tx_dropped;
	int vm_fd;            /* for the UART's interrupt line; -1 in tests */
	int console_fd;       /* where guest console output goes */
	bool debug_exit;
	struct timespec start;
	unsigned int markers_logged;
	unsigned int unhandled_logged;
	struct pci_bus *pci;  /* NULL: no PCI (config ports and ECAM unassigned) */
};

void platform_init(struct platform *p, int vm_fd, int console_fd, bool debug_exit,
		   const struct timespec *start);

/*
 * One port access of size 1, 2 or 4 bytes.  For reads, data is filled in.
 * Returns what the VM should do next; *reason names the path for the log.
 */
enum platform_action platform_pio(struct platform *p, uint16_t port, unsigned int size,
				  bool is_write, uint8_t *data, uint32_t *value,
				  const char **reason);

/* One MMIO access of 1..8 bytes. */
enum platform_action platform_mmio(struct platform *p, uint64_t addr, unsigned int len,
				   bool is_write, uint8_t *data);

/* Routes the PCI config ports, ECAM and BARs to bus (after platform_init). */
void platform_attach_pci(struct platform *p, struct pci_bus *bus);

/* Writes queued console output (called after any UART access). */
void platform_console_flush(struct platform *p);

/* Feeds console input to the UART; returns bytes accepted. */
size_t platform_console_input(struct platform *p, const uint8_t *buf, size_t len);

#endif
