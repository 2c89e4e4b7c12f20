/*
 * A 16550A UART model (the console, CARD-9).  Pure register logic: the
 * caller serialises access and supplies callbacks that move bytes out and
 * drive the interrupt line.  Reads and writes at any offset and with any
 * value are defined, since both come straight from the guest.
 */
#ifndef FLINT_HV_SERIAL_H
#define FLINT_HV_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_RX_FIFO 64

struct serial {
	uint8_t ier, lcr, mcr, lsr_extra, msr, scr, fcr;
	uint8_t dll, dlm;
	bool thr_ipending;
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned int rx_head, rx_count;
	int irq_level;
	void (*tx)(void *opaque, uint8_t byte);
	void (*set_irq)(void *opaque, int level);
	void *opaque;
};

void serial_init(struct serial *s, void (*tx)(void *, uint8_t),
		 void (*set_irq)(void *, int), void *opaque);
uint8_t serial_read(struct serial *s, unsigned int offset);
void serial_write(struct serial *s, unsigned int offset, uint8_t value);
/* Queues input for the guest; returns how many bytes fitted. */
size_t serial_rx_push(struct serial *s, const uint8_t *buf, size_t len);
/* Free space in the receive FIFO. */
size_t serial_rx_room(const struct serial *s);

#endif
