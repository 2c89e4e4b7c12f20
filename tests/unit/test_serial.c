#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "serial.h"

struct sink {
	uint8_t out[256];
	size_t n;
	int level;
	int edges; /* rising edges of the interrupt line */
};

static void tx(void *o, uint8_t b)
{
	struct sink *s = o;
	if (s->n < sizeof(s->out))
		s->out[s->n++] = b;
}

static void irq(void *o, int level)
{
	struct sink *s = o;
	if (level && !s->level)
		s->edges++;
	s->level = level;
}

static void test_transmit(void **state)
{
	struct serial u;
	struct sink k = { 0 };
	(void)state;
	serial_init(&u, tx, irq, &k);
	assert_true(serial_read(&u, 5) & 0x20); /* THRE */
	serial_write(&u, 0, 'h');
	serial_write(&u, 0, 'i');
	assert_int_equal(k.n, 2);
	assert_memory_equal(k.out, "hi", 2);
	assert_int_equal(k.level, 0); /* no interrupt while IER is 0 */
}

/* The transmitter-empty interrupt Linux's 8250 driver lives on. */
static void test_thri(void **state)
{
	struct serial u;
	struct sink k = { 0 };
	(void)state;
	serial_init(&u, tx, irq, &k);
	serial_write(&u, 1, 0x02); /* IER.THRI while THR empty: interrupt now */
	assert_int_equal(k.level, 1);
	assert_int_equal(serial_read(&u, 2) & 0x0f, 0x02);
	assert_int_equal(k.level, 0); /* reading IIR acknowledged it */
	assert_int_equal(serial_read(&u, 2) & 0x0f, 0x01);
	serial_write(&u, 0, 'x'); /* next byte sent: empty again */
	assert_int_equal(k.level, 1);
	assert_int_equal(k.edges, 2);
	serial_write(&u, 1, 0x00); /* masking drops the line */
	assert_int_equal(k.level, 0);
}

static void test_receive(void **state)
{
	struct serial u;
	struct sink k = { 0 };
	uint8_t big[100];
	(void)state;
	serial_init(&u, tx, irq, &k);
	serial_write(&u, 1, 0x01); /* IER.RDI */
	assert_int_equal(serial_rx_push(&u, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(k.level, 1);
	assert_int_equal(serial_read(&u, 2) & 0x0f, 0x04);
	assert_true(serial_read(&u, 5) & 0x01);
	assert_int_equal(serial_read(&u, 0), 'a');
	assert_int_equal(serial_read(&u, 0), 'b');
	assert_false(serial_read(&u, 5) & 0x01);
	assert_int_equal(k.level, 0);
	memset(big, 'z', sizeof(big));
	assert_int_equal(serial_rx_push(&u, big, sizeof(big)), SERIAL_RX_FIFO);
	assert_int_equal(serial_rx_room(&u), 0);
	assert_int_equal(serial_read(&u, 0), 'z');
	assert_int_equal(serial_rx_room(&u), 1);
}

static void test_dlab_scratch_loopback(void **state)
{
	struct serial u;
	struct sink k = { 0 };
	(void)state;
	serial_init(&u, tx, irq, &k);
	serial_write(&u, 3, 0x80); /* DLAB */
	serial_write(&u, 0, 0x01);
	serial_write(&u, 1, 0x00);
	assert_int_equal(serial_read(&u, 0), 0x01);
	serial_write(&u, 3, 0x03);
	assert_int_equal(k.n, 0); /* divisor writes are not output */
	serial_write(&u, 7, 0x5a);
	assert_int_equal(serial_read(&u, 7), 0x5a);
	serial_write(&u, 2, 0x01); /* FIFO enable: IIR reports 16550A */
	assert_int_equal(serial_read(&u, 2) & 0xc0, 0xc0);
	serial_write(&u, 4, 0x10 | 0x0a); /* loopback, RTS, OUT2 */
	assert_int_equal(serial_read(&u, 6) & 0xf0, 0x90);
	serial_write(&u, 0, 'q'); /* looped back, not output */
	assert_int_equal(k.n, 0);
	assert_int_equal(serial_read(&u, 0), 'q');
}

/* Every offset and value is defined: nothing a guest writes breaks the model. */
static void test_all_registers(void **state)
{
	struct serial u;
	struct sink k = { 0 };
	(void)state;
	serial_init(&u, tx, irq, &k);
	for (unsigned int off = 0; off < 16; off++)
		for (unsigned int v = 0; v < 256; v++) {
			serial_write(&u, off, (uint8_t)v);
			(void)serial_read(&u, off);
		}
	assert_true(u.rx_count <= SERIAL_RX_FIFO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transmit),
		cmocka_unit_test(test_thri),
		cmocka_unit_test(test_receive),
		cmocka_unit_test(test_dlab_scratch_loopback),
		cmocka_unit_test(test_all_registers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
