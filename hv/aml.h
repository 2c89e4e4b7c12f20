/*
 * A minimal AML (ACPI Machine Language) writer for the DSDT: names,
 * packages, buffers, devices and scopes, each emitted into a bounded
 * buffer.  Enough to describe \_S5_ and legacy devices; PCI host bridges
 * will use the same primitives.
 */
#ifndef FLINT_HV_AML_H
#define FLINT_HV_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX 2048

struct aml {
	uint8_t buf[AML_MAX];
	size_t len;
	bool overflow; /* set once anything did not fit; the output is then unusable */
};

void aml_init(struct aml *a);
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t b);
/* A 4-character NameSeg, or a root-prefixed "\\XXXX" path. */
void aml_name_string(struct aml *a, const char *name);
/* Integer constant with the shortest encoding. */
void aml_integer(struct aml *a, uint64_t v);
/* Name (NAME, <already-encoded object in obj>) */
void aml_name(struct aml *a, const char *name, const struct aml *obj);
/* op PkgLength <inner>: Package, Buffer, Scope and Device bodies. */
void aml_package_op(struct aml *a, const uint8_t *op, size_t op_len, const struct aml *inner);
/* Buffer () { bytes } */
void aml_buffer(struct aml *a, const uint8_t *p, size_t n);
/* Device (NAME) { inner } and Scope (PATH) { inner } */
void aml_device(struct aml *a, const char *name, const struct aml *inner);
void aml_scope(struct aml *a, const char *path, const struct aml *inner);
/*
 * Resource descriptors for a _CRS template (ACPI 6.5, 6.4.2 and 6.4.3), written
 * raw into a; wrap the finished template with aml_buffer().  Address space
 * descriptors here are bridge windows: ResourceProducer, MinFixed, MaxFixed,
 * PosDecode, granularity 0, no translation.
 */
#define AML_RES_MEMORY 0
#define AML_RES_IO 1
#define AML_RES_BUS 2
/* Type-specific flags: memory read/write non-cacheable; I/O entire range. */
#define AML_RES_MEM_RW 0x01
#define AML_RES_IO_ENTIRE 0x03
/* Word Address Space Descriptor (tag 0x88, 16 bytes). */
void aml_res_word(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t min,
		  uint16_t max);
/* DWord Address Space Descriptor (tag 0x87, 26 bytes). */
void aml_res_dword(struct aml *a, uint8_t type, uint8_t type_flags, uint32_t min,
		   uint32_t max);
/* I/O Port Descriptor, 16-bit decode (tag 0x47, 8 bytes). */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* Memory32Fixed, read/write (tag 0x86, 12 bytes). */
void aml_res_mem32_fixed(struct aml *a, uint32_t base, uint32_t len);
/* End Tag (0x79, checksum 0: "treat as correct"). */
void aml_res_end(struct aml *a);

/* EisaId ("PNP0501") as its 32-bit encoding. */
uint32_t aml_eisa_id(const char id[7]);

#endif
