#include "serial.h"

#include <string.h>

enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
	UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_MASK 0x0f
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO_ENABLED 0xc0
#define FCR_FIFO_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_DCD 0x80
#define MSR_DSR 0x20
#define MSR_CTS 0x10

static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_FIFO_ENABLE) ? IIR_FIFO_ENABLED : 0;

	if ((s->ier & IER_RDI) && s->rx_count > 0)
		return fifo | IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_ipending)
		return fifo | IIR_THRI;
	return fifo | IIR_NO_INT;
}

/* The line follows "an interrupt is pending", as on the chip (and QEMU). */
static void serial_update_irq(struct serial *s)
{
	int level = (serial_iir(s) & IIR_NO_INT) == 0;

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (s->set_irq != NULL)
		s->set_irq(s->opaque, level);
}

void serial_init(struct serial *s, void (*tx)(void *, uint8_t),
		 void (*set_irq)(void *, int), void *opaque)
{
	memset(s, 0, sizeof(*s));
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->dll = 0x0c; /* 9600 baud, what firmware leaves behind */
	s->tx = tx;
	s->set_irq = set_irq;
	s->opaque = opaque;
}

size_t serial_rx_room(const struct serial *s)
{
	return SERIAL_RX_FIFO - s->rx_count;
}

static void rx_put(struct serial *s, uint8_t byte)
{
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = byte;
	s->rx_count++;
}

size_t serial_rx_push(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	while (n < len && s->rx_count < SERIAL_RX_FIFO)
		rx_put(s, buf[n++]);
	serial_update_irq(s);
	return n;
}

static uint8_t rx_take(struct serial *s)
{
	if (s->rx_count == 0)
		return 0;
	uint8_t b = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
	s->rx_count--;
	return b;
}

static void transmit(struct serial *s, uint8_t value)
{
	if (s->mcr & MCR_LOOP) {
		if (s->rx_count < SERIAL_RX_FIFO)
			rx_put(s, value);
	} else if (s->tx != NULL) {
		s->tx(s->opaque, value);
	}
	/* The byte leaves at once, so the holding register is empty again. */
	s->thr_ipending = true;
}

static uint8_t loopback_msr(const struct serial *s)
{
	/* In loopback, RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
	return (uint8_t)(((s->mcr & 0x02) << 3) | ((s->mcr & 0x01) << 5) |
			 ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
}

uint8_t serial_read(struct serial *s, unsigned int offset)
{
	uint8_t v;

	switch (offset & 7) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		v = rx_take(s);
		serial_update_irq(s);
		return v;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR_FCR:
		v = serial_iir(s);
		/* Reading IIR acknowledges a transmitter-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI) {
			s->thr_ipending = false;
			serial_update_irq(s);
		}
		return v;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT | s->lsr_extra;
		if (s->rx_count > 0)
			v |= LSR_DR;
		s->lsr_extra = 0;
		return v;
	case UART_MSR:
		return (s->mcr & MCR_LOOP) ? loopback_msr(s) : s->msr;
	default: /* UART_SCR */
		return s->scr;
	}
}

void serial_write(struct serial *s, unsigned int offset, uint8_t value)
{
	switch (offset & 7) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = value;
			return;
		}
		transmit(s, value);
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = value;
			return;
		}
		/* Enabling THRI while the holding register is empty interrupts at once. */
		if (!(s->ier & IER_THRI) && (value & IER_THRI))
			s->thr_ipending = true;
		s->ier = value & IER_MASK;
		break;
	case UART_IIR_FCR:
		s->fcr = value & 0xc9;
		if (value & FCR_CLEAR_RX) {
			s->rx_head = 0;
			s->rx_count = 0;
		}
		break;
	case UART_LCR:
		s->lcr = value;
		return;
	case UART_MCR:
		s->mcr = value & MCR_MASK;
		return;
	case UART_LSR:
	case UART_MSR:
		return; /* read-only */
	default:
		s->scr = value;
		return;
	}
	serial_update_irq(s);
}
