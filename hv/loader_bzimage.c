/*
 * Linux x86 boot protocol (Documentation/arch/x86/boot.rst): load the
 * protected-mode part of a bzImage at 1 MiB and enter it through the 64-bit
 * entry point, like Firecracker and QEMU's direct kernel boot do.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "boot_image.h"
#include "boot_layout.h"

#define BZ_BOOT_FLAG_OFF 0x1fe
#define BZ_SETUP_SECTS_OFF 0x1f1
#define BZ_HEADER_OFF 0x202
#define BZ_VERSION_OFF 0x206
#define BZ_JUMP_OFF 0x201
#define BZ_LOADFLAGS_OFF 0x211
#define BZ_INITRD_MAX_OFF 0x22c
#define BZ_XLOADFLAGS_OFF 0x236
#define BZ_CMDLINE_SIZE_OFF 0x238
#define BZ_PREF_ADDRESS_OFF 0x258
#define BZ_INIT_SIZE_OFF 0x260

#define BZ_MAGIC 0x53726448U /* "HdrS" */
#define BZ_MIN_VERSION 0x020c /* 2.12: xloadflags, 64-bit entry */
#define BZ_LOADED_HIGH 0x01
#define BZ_XLF_KERNEL_64 0x01
#define BZ_ENTRY64_OFFSET 0x200

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

static int check_header(const uint8_t *img, size_t len, char *err, size_t errlen)
{
	if (len < BZ_HDR_END) {
		snprintf(err, errlen, "bzImage: truncated: %zu bytes, header needs %d",
			 len, BZ_HDR_END);
		return -1;
	}
	if (rd16(img + BZ_BOOT_FLAG_OFF) != 0xaa55 || rd32(img + BZ_HEADER_OFF) != BZ_MAGIC) {
		snprintf(err, errlen, "bzImage: no boot signature (boot_flag/HdrS)");
		return -1;
	}
	uint16_t version = rd16(img + BZ_VERSION_OFF);
	if (version < BZ_MIN_VERSION) {
		snprintf(err, errlen,
			 "bzImage: boot protocol %u.%02u, need 2.12 or newer",
			 version >> 8, version & 0xff);
		return -1;
	}
	if (!(img[BZ_LOADFLAGS_OFF] & BZ_LOADED_HIGH)) {
		snprintf(err, errlen, "bzImage: not a high-loaded (bz) kernel");
		return -1;
	}
	if (!(rd16(img + BZ_XLOADFLAGS_OFF) & BZ_XLF_KERNEL_64)) {
		snprintf(err, errlen, "bzImage: kernel has no 64-bit entry point");
		return -1;
	}
	return 0;
}

int boot_load_bzimage(const uint8_t *img, size_t len, struct guest_mem *gm,
		      struct boot_image *bi, char *err, size_t errlen)
{
	if (check_header(img, len, err, errlen) != 0)
		return -1;

	unsigned int setup_sects = img[BZ_SETUP_SECTS_OFF];
	if (setup_sects == 0)
		setup_sects = 4;
	size_t setup_size = ((size_t)setup_sects + 1) * 512;
	if (setup_size >= len) {
		snprintf(err, errlen,
			 "bzImage: truncated: setup is %zu bytes, file %zu", setup_size, len);
		return -1;
	}
	size_t kernel_size = len - setup_size;
	uint32_t init_size = rd32(img + BZ_INIT_SIZE_OFF);
	uint64_t pref = rd64(img + BZ_PREF_ADDRESS_OFF);
	uint64_t low_end = guest_mem_low_end(gm);

	/*
	 * The decompressor needs init_size bytes from where it runs: loaded at
	 * 1 MiB, it moves itself up to pref_address (LOAD_PHYSICAL_ADDR) first,
	 * relocatable or not.
	 */
	uint64_t run_at = BOOT_KERNEL_ADDR;
	if (pref > run_at)
		run_at = pref;
	if (init_size < kernel_size)
		init_size = (uint32_t)kernel_size;
	if (run_at > low_end || init_size > low_end - run_at) {
		snprintf(err, errlen,
			 "bzImage: kernel needs RAM up to 0x%" PRIx64 " (init_size %" PRIu32
			 " at 0x%" PRIx64 "), guest has 0x%" PRIx64,
			 run_at + init_size, init_size, run_at, low_end);
		return -1;
	}
	void *dst = guest_mem_ptr(gm, BOOT_KERNEL_ADDR, kernel_size);
	if (dst == NULL) {
		snprintf(err, errlen, "bzImage: %zu-byte kernel does not fit in RAM",
			 kernel_size);
		return -1;
	}
	memcpy(dst, img + setup_size, kernel_size);

	size_t hdr_end = BZ_HEADER_OFF + 2 + (size_t)img[BZ_JUMP_OFF];
	if (hdr_end > BZ_HDR_END)
		hdr_end = BZ_HDR_END;
	memset(bi, 0, sizeof(*bi));
	memcpy(bi->setup_header, img + BZ_HDR_START, hdr_end - BZ_HDR_START);
	bi->proto = BOOT_PROTO_LINUX64;
	bi->entry = BOOT_KERNEL_ADDR + BZ_ENTRY64_OFFSET;
	bi->kernel_end = run_at + init_size;
	bi->cmdline_max = rd32(img + BZ_CMDLINE_SIZE_OFF);
	bi->initrd_max = rd32(img + BZ_INITRD_MAX_OFF);
	return 0;
}

int boot_image_load(const uint8_t *img, size_t len, struct guest_mem *gm,
		    struct boot_image *bi, char *err, size_t errlen)
{
	static const uint8_t elf_magic[4] = { 0x7f, 'E', 'L', 'F' };

	if (len >= sizeof(elf_magic) && memcmp(img, elf_magic, sizeof(elf_magic)) == 0)
		return boot_load_pvh_elf(img, len, gm, bi, err, errlen);
	if (len >= BZ_HEADER_OFF + 4 && rd32(img + BZ_HEADER_OFF) == BZ_MAGIC)
		return boot_load_bzimage(img, len, gm, bi, err, errlen);
	snprintf(err, errlen, "kernel image is neither a bzImage nor an ELF file "
		 "(%zu bytes)", len);
	return -1;
}
