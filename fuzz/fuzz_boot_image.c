/*
 * libFuzzer target: the kernel image loaders (bzImage and PVH ELF) on
 * arbitrary bytes, into a small guest RAM.  Any crash, overflow or
 * out-of-bounds copy is a bug; rejection with a message is the norm.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot_image.h"
#include "boot_setup.h"
#include "guest_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem gm;
	static int ready;
	struct boot_image bi;
	struct boot_cpu_state cpu;
	struct boot_initrd initrd = { 0, 0 };
	char err[256];

	if (!ready) {
		if (guest_mem_create(&gm, 32ULL << 20) != 0)
			abort();
		ready = 1;
	}
	if (boot_image_load(data, size, &gm, &bi, err, sizeof(err)) != 0) {
		if (strnlen(err, sizeof(err)) == 0)
			abort(); /* every rejection must say why */
		return 0;
	}
	if (bi.entry == 0 && bi.proto == BOOT_PROTO_PVH)
		abort();
	(void)boot_place_initrd(&gm, &bi, 4096, &initrd.gpa, err, sizeof(err));
	(void)boot_setup(&gm, &bi, "console=ttyS0", &initrd, 2, &cpu, err, sizeof(err));
	return 0;
}
