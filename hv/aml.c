#include "aml.h"

#include <string.h>

#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_QWORD_PREFIX 0x0e
#define AML_NAME_OP 0x08
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_EXT_OP 0x5b
#define AML_DEVICE_OP 0x82
#define AML_ROOT_CHAR '\\'

void aml_init(struct aml *a)
{
	a->len = 0;
	a->overflow = false;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > AML_MAX - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

void aml_name_string(struct aml *a, const char *name)
{
	if (name[0] == AML_ROOT_CHAR) {
		aml_byte(a, AML_ROOT_CHAR);
		name++;
	}
	if (strlen(name) != 4) {
		a->overflow = true; /* a programming error: fail the whole table */
		return;
	}
	aml_bytes(a, name, 4);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_byte(a, (uint8_t)v);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_bytes(a, &(uint16_t){ (uint16_t)v }, 2);
	} else if (v <= 0xffffffffULL) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_bytes(a, &(uint32_t){ (uint32_t)v }, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_bytes(a, &v, 8);
	}
}

void aml_name(struct aml *a, const char *name, const struct aml *obj)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, name);
	if (obj->overflow)
		a->overflow = true;
	aml_bytes(a, obj->buf, obj->len);
}

/* PkgLength counts its own bytes: 1 byte up to 63, else 2..4 bytes. */
static void pkg_length(struct aml *a, size_t inner)
{
	size_t total = inner + 1;
	if (total < 0x40) {
		aml_byte(a, (uint8_t)total);
		return;
	}
	unsigned int extra = 1;
	while (extra < 3 && inner + 1 + extra >= (1UL << (4 + 8 * extra)))
		extra++;
	total = inner + 1 + extra;
	aml_byte(a, (uint8_t)((extra << 6) | (total & 0x0f)));
	for (unsigned int i = 0; i < extra; i++)
		aml_byte(a, (uint8_t)(total >> (4 + 8 * i)));
}

void aml_package_op(struct aml *a, const uint8_t *op, size_t op_len, const struct aml *inner)
{
	if (inner->overflow)
		a->overflow = true;
	aml_bytes(a, op, op_len);
	pkg_length(a, inner->len);
	aml_bytes(a, inner->buf, inner->len);
}

void aml_buffer(struct aml *a, const uint8_t *p, size_t n)
{
	static const uint8_t op = AML_BUFFER_OP;
	struct aml inner;
	aml_init(&inner);
	aml_integer(&inner, n);
	aml_bytes(&inner, p, n);
	aml_package_op(a, &op, 1, &inner);
}

static void named_block(struct aml *a, const uint8_t *op, size_t op_len, const char *name,
			const struct aml *inner)
{
	struct aml body;
	aml_init(&body);
	aml_name_string(&body, name);
	if (inner->overflow)
		body.overflow = true;
	aml_bytes(&body, inner->buf, inner->len);
	aml_package_op(a, op, op_len, &body);
}

void aml_device(struct aml *a, const char *name, const struct aml *inner)
{
	static const uint8_t op[] = { AML_EXT_OP, AML_DEVICE_OP };
	named_block(a, op, sizeof(op), name, inner);
}

void aml_scope(struct aml *a, const char *path, const struct aml *inner)
{
	static const uint8_t op[] = { AML_SCOPE_OP };
	named_block(a, op, sizeof(op), path, inner);
}

uint32_t aml_eisa_id(const char id[7])
{
	uint32_t vendor = ((uint32_t)(id[0] - '@') << 10) | ((uint32_t)(id[1] - '@') << 5) |
			  (uint32_t)(id[2] - '@');
	uint32_t product = 0;
	for (int i = 3; i < 7; i++) {
		char c = id[i];
		uint32_t d = (c >= '0' && c <= '9') ? (uint32_t)(c - '0') :
			     (uint32_t)((c | 0x20) - 'a' + 10);
		product = (product << 4) | d;
	}
	/* Stored big-endian in the 32-bit value's byte order. */
	return ((vendor >> 8) & 0xff) | ((vendor & 0xff) << 8) |
	       (((product >> 8) & 0xff) << 16) | ((product & 0xff) << 24);
}

#define RES_DWORD_TAG 0x87
#define RES_WORD_TAG 0x88
#define RES_MEM32_FIXED_TAG 0x86
#define RES_IO_TAG 0x47
#define RES_END_TAG 0x79
/* General flags: MaxFixed | MinFixed, PosDecode, ResourceProducer. */
#define RES_WINDOW_FLAGS 0x0c

static void put_le(struct aml *a, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

/*
 * Large address space descriptors: tag, length (bytes after it), type,
 * general flags, type flags, then granularity, min, max, translation and
 * length, each w bytes wide.
 */
static void res_addr(struct aml *a, uint8_t tag, unsigned int w, uint8_t type,
		     uint8_t type_flags, uint64_t min, uint64_t max)
{
	aml_byte(a, tag);
	put_le(a, 3 + 5 * w, 2);
	aml_byte(a, type);
	aml_byte(a, RES_WINDOW_FLAGS);
	aml_byte(a, type_flags);
	put_le(a, 0, w);             /* granularity */
	put_le(a, min, w);
	put_le(a, max, w);
	put_le(a, 0, w);             /* translation offset */
	put_le(a, max - min + 1, w); /* length */
}

void aml_res_word(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t min,
		  uint16_t max)
{
	res_addr(a, RES_WORD_TAG, 2, type, type_flags, min, max);
}

void aml_res_dword(struct aml *a, uint8_t type, uint8_t type_flags, uint32_t min,
		   uint32_t max)
{
	res_addr(a, RES_DWORD_TAG, 4, type, type_flags, min, max);
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(a, RES_IO_TAG);
	aml_byte(a, 0x01); /* 16-bit decode */
	put_le(a, min, 2);
	put_le(a, max, 2);
	aml_byte(a, align);
	aml_byte(a, len);
}

void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	aml_byte(a, RES_MEM32_FIXED_TAG);
	put_le(a, 9, 2);
	aml_byte(a, 0x01); /* read/write */
	put_le(a, base, 4);
	put_le(a, len, 4);
}

void aml_res_end(struct aml *a)
{
	aml_byte(a, RES_END_TAG);
	aml_byte(a, 0x00);
}
