/*
 * Kernel image loaders.  Each parser works on the image bytes in memory and
 * checks every field it uses against the image length and guest RAM, so a
 * truncated or corrupt image is an error message, never a crash.
 */
#ifndef FLINT_HV_BOOT_IMAGE_H
#define FLINT_HV_BOOT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "guest_mem.h"

enum boot_protocol {
	BOOT_PROTO_LINUX64, /* bzImage, 64-bit entry, boot_params in %rsi */
	BOOT_PROTO_PVH,     /* ELF PVH entry, 32-bit, hvm_start_info in %ebx */
};

/* Size of the bzImage setup header we copy into boot_params (0x1f1..0x280). */
#define BZ_HDR_START 0x1f1
#define BZ_HDR_END 0x280

struct boot_image {
	enum boot_protocol proto;
	uint64_t entry;        /* guest-physical entry point */
	uint64_t kernel_end;   /* first byte above everything the kernel needs */
	uint32_t cmdline_max;  /* longest command line the kernel accepts */
	uint32_t initrd_max;   /* highest byte an initrd may occupy */
	uint8_t setup_header[BZ_HDR_END - BZ_HDR_START]; /* bzImage only */
};

/*
 * Detects the format and loads the image into guest RAM.  Returns 0, or -1
 * with a one-line reason (naming the field and values) in err.
 */
int boot_image_load(const uint8_t *img, size_t len, struct guest_mem *gm,
		    struct boot_image *bi, char *err, size_t errlen);

int boot_load_bzimage(const uint8_t *img, size_t len, struct guest_mem *gm,
		      struct boot_image *bi, char *err, size_t errlen);
int boot_load_pvh_elf(const uint8_t *img, size_t len, struct guest_mem *gm,
		      struct boot_image *bi, char *err, size_t errlen);

#endif
