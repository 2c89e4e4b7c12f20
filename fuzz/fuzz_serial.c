/*
 * libFuzzer target: the 16550 model driven by a guest-controlled sequence of
 * register reads, writes and console input.  Checks the model's invariants
 * after every step.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void tx(void *o, uint8_t b)
{
	(void)o;
	(void)b;
}

static void irq(void *o, int level)
{
	int *line = o;
	if (level != 0 && level != 1)
		abort();
	*line = level;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct serial s;
	int line = 0;

	serial_init(&s, tx, irq, &line);
	for (size_t i = 0; i + 1 < size; i += 2) {
		uint8_t op = data[i], v = data[i + 1];
		switch (op >> 6) {
		case 0:
			serial_write(&s, op & 7, v);
			break;
		case 1:
			(void)serial_read(&s, op & 7);
			break;
		default:
			(void)serial_rx_push(&s, &v, 1);
			break;
		}
		if (s.rx_count > SERIAL_RX_FIFO || s.rx_head >= SERIAL_RX_FIFO)
			abort();
		if (line != s.irq_level)
			abort();
	}
	return 0;
}
