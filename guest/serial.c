#include "serial.h"

#include "flint/guest_abi.h"
#include "io.h"

#define UART_THR 0 /* transmit holding (DLAB=0) / divisor low (DLAB=1) */
#define UART_IER 1 /* interrupt enable / divisor high */
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_THRE 0x20

void serial_init(void)
{
	const uint16_t p = FLINT_COM1_PORT;

	outb(p + UART_IER, 0x00); /* no interrupts */
	outb(p + UART_LCR, 0x80); /* DLAB on */
	outb(p + UART_THR, 0x01); /* 115200 baud */
	outb(p + UART_IER, 0x00);
	outb(p + UART_LCR, 0x03); /* 8N1, DLAB off */
	outb(p + UART_FCR, 0x07); /* enable + clear FIFOs */
	outb(p + UART_MCR, 0x03); /* DTR | RTS */
}

void serial_putc(char c)
{
	/* Bounded wait so that a missing UART cannot hang the guest. */
	unsigned spins = 1u << 20;

	while (!(inb(FLINT_COM1_PORT + UART_LSR) & UART_LSR_THRE) && --spins)
		cpu_relax();
	outb(FLINT_COM1_PORT + UART_THR, (uint8_t)c);
}

void serial_write(const char *s, size_t len)
{
	while (len--)
		serial_putc(*s++);
}
