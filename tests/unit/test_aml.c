#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "aml.h"

static void test_eisa_id(void **state)
{
	(void)state;
	assert_int_equal(aml_eisa_id("PNP0501"), 0x0105d041);
	assert_int_equal(aml_eisa_id("PNP0A03"), 0x030ad041);
}

static void test_integers(void **state)
{
	struct aml a;
	(void)state;
	aml_init(&a);
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 5);
	aml_integer(&a, 0x1234);
	aml_integer(&a, 0x12345678);
	static const uint8_t want[] = { 0x00, 0x01, 0x0a, 0x05, 0x0b, 0x34, 0x12,
					0x0c, 0x78, 0x56, 0x34, 0x12 };
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.buf, want, sizeof(want));
}

/* PkgLength: one byte below 64, then the multi-byte form, self-inclusive. */
static void test_pkg_length(void **state)
{
	struct aml a, inner;
	static const uint8_t op = 0x12;
	(void)state;
	aml_init(&inner);
	for (int i = 0; i < 62; i++)
		aml_byte(&inner, 0xaa);
	aml_init(&a);
	aml_package_op(&a, &op, 1, &inner);
	assert_int_equal(a.buf[1], 63);
	aml_byte(&inner, 0xaa);
	aml_init(&a);
	aml_package_op(&a, &op, 1, &inner);
	/* 63 inner + 2 length bytes = 65 = 0x41: lead 0x40 | 0x1, then 0x04 */
	assert_int_equal(a.buf[1], 0x41);
	assert_int_equal(a.buf[2], 0x04);
	assert_int_equal(a.len, 1 + 2 + 63);
}

static void test_device_and_overflow(void **state)
{
	struct aml a, dev, obj;
	(void)state;
	aml_init(&dev);
	aml_init(&obj);
	aml_integer(&obj, 0);
	aml_name(&dev, "_UID", &obj);
	aml_init(&a);
	aml_device(&a, "COM1", &dev);
	static const uint8_t want[] = { 0x5b, 0x82, 11, 'C', 'O', 'M', '1',
					0x08, '_', 'U', 'I', 'D', 0x00 };
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.buf, want, sizeof(want));
	assert_false(a.overflow);

	aml_init(&a);
	for (int i = 0; i < AML_MAX + 1; i++)
		aml_byte(&a, 0);
	assert_true(a.overflow);
	aml_init(&a);
	aml_name_string(&a, "TOOLONG");
	assert_true(a.overflow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eisa_id),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_pkg_length),
		cmocka_unit_test(test_device_and_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
