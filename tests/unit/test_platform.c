/* Platform devices: each reset/power-off path, the debug-exit gate, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "flint/guest_abi.h"
#include "platform.h"

static struct platform p;

static enum platform_action out(uint16_t port, unsigned int size, uint32_t v,
				uint32_t *value)
{
	uint8_t data[4];
	const char *reason;
	memcpy(data, &v, 4);
	return platform_pio(&p, port, size, true, data, value, &reason);
}

static uint32_t in(uint16_t port, unsigned int size)
{
	uint8_t data[4] = { 0 };
	uint32_t value = 0, v = 0;
	const char *reason;
	assert_int_equal(platform_pio(&p, port, size, false, data, &value, &reason),
			 PLATFORM_CONTINUE);
	memcpy(&v, data, 4);
	return v;
}

static void init(bool debug_exit)
{
	struct timespec t = { 0, 0 };
	int null_fd = STDERR_FILENO;
	platform_init(&p, -1, null_fd, debug_exit, &t);
}

static void test_power_paths(void **state)
{
	uint32_t v = 0;
	(void)state;
	init(false);
	assert_int_equal(out(FLINT_I8042_CMD_PORT, 1, 0xfe, &v), PLATFORM_REBOOT);
	assert_int_equal(out(FLINT_I8042_CMD_PORT, 1, 0xaa, &v), PLATFORM_CONTINUE);
	assert_int_equal(out(FLINT_RESET_CONTROL_PORT, 1, 0x06, &v), PLATFORM_REBOOT);
	assert_int_equal(out(FLINT_RESET_CONTROL_PORT, 1, 0x02, &v), PLATFORM_CONTINUE);
	assert_int_equal(out(FLINT_ACPI_RESET_PORT, 1, FLINT_ACPI_RESET_VALUE, &v),
			 PLATFORM_REBOOT);
	assert_int_equal(out(FLINT_ACPI_SLEEP_CONTROL_PORT, 1,
			     FLINT_ACPI_SLP_EN | (FLINT_ACPI_SLP_TYP_S5 << 2), &v),
			 PLATFORM_POWEROFF);
	/* S3 request or SLP_EN missing: not a power-off */
	assert_int_equal(out(FLINT_ACPI_SLEEP_CONTROL_PORT, 1, FLINT_ACPI_SLP_EN | (3 << 2), &v),
			 PLATFORM_CONTINUE);
	assert_int_equal(out(FLINT_ACPI_SLEEP_CONTROL_PORT, 1, FLINT_ACPI_SLP_TYP_S5 << 2, &v),
			 PLATFORM_CONTINUE);
	assert_int_equal(in(FLINT_I8042_CMD_PORT, 1), 0);
}

static void test_debug_exit_gate(void **state)
{
	uint32_t v = 0;
	(void)state;
	init(false);
	assert_int_equal(out(FLINT_DEBUG_EXIT_PORT, 4, 3, &v), PLATFORM_CONTINUE);
	assert_int_equal(in(FLINT_DEBUG_EXIT_PORT, 1), 0xff); /* unassigned */
	init(true);
	assert_int_equal(out(FLINT_DEBUG_EXIT_PORT, 4, 3, &v), PLATFORM_DEBUG_EXIT);
	assert_int_equal(v, 3);
}

static void test_unassigned(void **state)
{
	uint32_t v = 0;
	uint8_t data[8];
	(void)state;
	init(false);
	assert_int_equal(in(0x510, 4), 0xffffffff);
	assert_int_equal(out(0x510, 4, 1, &v), PLATFORM_CONTINUE);
	assert_int_equal(out(0x80, 1, 1, &v), PLATFORM_CONTINUE);
	/* Odd sizes are ignored, not trusted. */
	assert_int_equal(out(FLINT_I8042_CMD_PORT, 3, 0xfe, &v), PLATFORM_CONTINUE);
	memset(data, 0, sizeof(data));
	assert_int_equal(platform_mmio(&p, 0xd0000000ULL, 8, false, data), PLATFORM_CONTINUE);
	assert_int_equal(data[7], 0xff);
	assert_int_equal(platform_mmio(&p, 0xd0000000ULL, 100, false, data), PLATFORM_CONTINUE);
	data[0] = FLINT_BOOT_MARKER_MAGIC;
	for (int i = 0; i < 10; i++)
		assert_int_equal(platform_mmio(&p, FLINT_BOOT_MARKER_MMIO, 1, true, data),
				 PLATFORM_CONTINUE);
	assert_int_equal(p.markers_logged, 4); /* bounded log */
}

static void test_console(void **state)
{
	(void)state;
	init(false);
	uint8_t big[SERIAL_RX_FIFO + 10];
	assert_int_equal(platform_console_input(&p, (const uint8_t *)"ls\n", 3), 3);
	assert_int_equal(in(FLINT_COM1_PORT, 1), 'l');
	memset(big, 'x', sizeof(big));
	/* The FIFO takes what fits; the caller keeps the rest. */
	assert_int_equal(platform_console_input(&p, big, sizeof(big)), SERIAL_RX_FIFO - 2);
}

/* Output is queued under the UART lock and written after it is released. */
static void test_console_output(void **state)
{
	int fds[2];
	char got[8] = { 0 };
	uint32_t v = 0;
	struct timespec t = { 0, 0 };
	(void)state;
	assert_int_equal(pipe(fds), 0);
	platform_init(&p, -1, fds[1], false, &t);
	assert_int_equal(out(FLINT_COM1_PORT, 1, 'o', &v), PLATFORM_CONTINUE);
	assert_int_equal(out(FLINT_COM1_PORT, 1, 'k', &v), PLATFORM_CONTINUE);
	assert_int_equal(p.tx_len, 0);
	assert_int_equal(read(fds[0], got, sizeof(got)), 2);
	assert_string_equal(got, "ok");
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_paths),
		cmocka_unit_test(test_debug_exit_gate),
		cmocka_unit_test(test_unassigned),
		cmocka_unit_test(test_console),
		cmocka_unit_test(test_console_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
