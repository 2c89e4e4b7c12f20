/* Polled 16550 UART on COM1: no interrupts, no FIFO tricks. */
#ifndef GUEST_SERIAL_H
#define GUEST_SERIAL_H

#include <stddef.h>

void serial_init(void);
void serial_putc(char c);
void serial_write(const char *s, size_t len);

#endif
