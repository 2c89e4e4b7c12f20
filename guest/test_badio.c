/*
 * badio: poke unassigned I/O ports and MMIO in the hole; the VMM must survive
 * and the guest carries on.  Avoids everything with side effects on QEMU or
 * flint-hv: COM1, the debug-exit port, ACPI 0x600-0x602, i8042 0x60/0x64,
 * the 0xcf9 reset register, RTC, PIC, PIT, and the boot marker.
 */
#include "flint/guest_abi.h"
#include "io.h"
#include "printf.h"
#include "tests.h"

static const uint64_t mmio_addrs[] = {
	0xd0000000ULL, 0xd0001000ULL, 0xdffffff8ULL,
};

const char *test_badio(void)
{
	uint32_t x = 0;

	/* 0x00-0x1f: ISA DMA controller on a PC, nothing on flint-hv. */
	for (uint16_t p = 0x00; p < 0x20; p++) {
		x ^= inb(p);
		outb(p, 0);
	}
	x ^= inw(0x510); /* QEMU fw_cfg selector: harmless elsewhere */
	outw(0x510, 0);
	x ^= inb(0x511);
	/* PCI config mechanism #1, 32-bit only (0xcf9 is the reset port). */
	outl(0xcf8, 0x80000000);
	x ^= inl(0xcfc);
	outl(0xcf8, 0);
	x ^= inl(0xcf8);
	x ^= inw(0x1234);
	outw(0x1234, 0xbeef);
	x ^= inl(0xfff0);
	outl(0xfff0, 0xdeadbeef);

	for (unsigned i = 0; i < sizeof(mmio_addrs) / sizeof(mmio_addrs[0]); i++) {
		x ^= mmio_read32(mmio_addrs[i]);
		mmio_write32(mmio_addrs[i], 0xdeadbeef);
		x ^= mmio_read32(mmio_addrs[i]);
	}
	kprintf("flint-guest: badio: survived (xor of reads 0x%x)\n", x);
	return NULL;
}
