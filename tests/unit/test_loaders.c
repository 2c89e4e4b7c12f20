/* Kernel image loaders on synthetic images: every rejection names its cause. */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "boot_image.h"
#include "guest_mem.h"

#define MEM (64ULL << 20)

static struct guest_mem gm;

static int setup(void **state)
{
	(void)state;
	return guest_mem_create(&gm, MEM);
}

static int teardown(void **state)
{
	(void)state;
	guest_mem_destroy(&gm);
	return 0;
}

/* A minimal PVH ELF: one PT_LOAD at 2 MiB, one PT_NOTE with the entry. */
struct pvh_elf {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	Elf64_Nhdr nh;
	char name[4];
	uint32_t entry;
	uint8_t code[64];
};

static void make_pvh(struct pvh_elf *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
	e->eh.e_ident[EI_CLASS] = ELFCLASS64;
	e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e->eh.e_ident[EI_VERSION] = EV_CURRENT;
	e->eh.e_type = ET_EXEC;
	e->eh.e_machine = EM_X86_64;
	e->eh.e_version = EV_CURRENT;
	e->eh.e_phoff = offsetof(struct pvh_elf, ph);
	e->eh.e_phentsize = sizeof(Elf64_Phdr);
	e->eh.e_phnum = 2;
	e->eh.e_ehsize = sizeof(Elf64_Ehdr);
	e->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X,
		.p_offset = offsetof(struct pvh_elf, code), .p_paddr = 0x200000,
		.p_vaddr = 0x200000, .p_filesz = sizeof(e->code), .p_memsz = 0x1000 };
	e->ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE,
		.p_offset = offsetof(struct pvh_elf, nh),
		.p_filesz = sizeof(Elf64_Nhdr) + 4 + 4 };
	e->nh.n_namesz = 4;
	e->nh.n_descsz = 4;
	e->nh.n_type = 18;
	memcpy(e->name, "Xen", 4);
	e->entry = 0x200010;
	memset(e->code, 0x90, sizeof(e->code));
}

static void expect_reject(const void *img, size_t len, const char *why)
{
	struct boot_image bi;
	char err[256] = "";
	assert_int_equal(boot_image_load(img, len, &gm, &bi, err, sizeof(err)), -1);
	if (strstr(err, why) == NULL)
		fail_msg("'%s' does not mention '%s'", err, why);
}

static void test_pvh_ok(void **state)
{
	struct pvh_elf e;
	struct boot_image bi;
	char err[256];
	(void)state;
	make_pvh(&e);
	memset(guest_mem_ptr(&gm, 0x200000, 0x1000), 0xee, 0x1000);
	assert_int_equal(boot_image_load((const uint8_t *)&e, sizeof(e), &gm, &bi, err, sizeof(err)), 0);
	assert_int_equal(bi.proto, BOOT_PROTO_PVH);
	assert_int_equal(bi.entry, 0x200010);
	assert_int_equal(bi.kernel_end, 0x201000);
	uint8_t *p = guest_mem_ptr(&gm, 0x200000, 0x1000);
	assert_int_equal(p[0], 0x90);
	assert_int_equal(p[sizeof(e.code)], 0); /* bss zeroed */
}

static void test_pvh_rejects(void **state)
{
	struct pvh_elf e;
	(void)state;

	make_pvh(&e);
	expect_reject(&e, 10, "truncated");
	expect_reject(&e, sizeof(Elf64_Ehdr) + 8, "program headers");
	e.eh.e_machine = EM_386;
	expect_reject(&e, sizeof(e), "x86-64");
	make_pvh(&e);
	e.eh.e_ident[EI_CLASS] = ELFCLASS32;
	expect_reject(&e, sizeof(e), "ELF64");
	make_pvh(&e);
	e.eh.e_phnum = 1000;
	expect_reject(&e, sizeof(e), "e_phnum");
	make_pvh(&e);
	e.nh.n_type = 17;
	expect_reject(&e, sizeof(e), "no PVH entry");
	make_pvh(&e);
	e.nh.n_descsz = 0x7fffffff;
	expect_reject(&e, sizeof(e), "no PVH entry");
	make_pvh(&e);
	e.ph[0].p_filesz = 1ULL << 40;
	expect_reject(&e, sizeof(e), "past the end");
	make_pvh(&e);
	e.ph[0].p_offset = ~0ULL - 4;
	expect_reject(&e, sizeof(e), "past the end");
	make_pvh(&e);
	e.ph[0].p_memsz = 1;
	expect_reject(&e, sizeof(e), "p_filesz");
	make_pvh(&e);
	e.ph[0].p_paddr = MEM - 0x800;
	expect_reject(&e, sizeof(e), "does not fit");
	make_pvh(&e);
	e.ph[0].p_paddr = ~0ULL - 0x10;
	expect_reject(&e, sizeof(e), "does not fit");
	make_pvh(&e);
	e.ph[0].p_paddr = 0x1000;
	expect_reject(&e, sizeof(e), "below 1 MiB");
	make_pvh(&e);
	e.entry = 0x900000;
	expect_reject(&e, sizeof(e), "not inside");
	make_pvh(&e);
	e.ph[1] = e.ph[0];
	e.ph[1].p_paddr += 0x800;
	expect_reject(&e, sizeof(e), "overlaps");
	expect_reject("hello, world", 12, "neither");
}

/* A minimal bzImage: 1 setup sector + boot sector, then the kernel. */
#define BZ_SETUP (2 * 512)
static uint8_t *make_bz(size_t kernel_len, size_t *len)
{
	*len = BZ_SETUP + kernel_len;
	uint8_t *b = calloc(1, *len);
	b[0x1f1] = 1;
	b[0x1fe] = 0x55;
	b[0x1ff] = 0xaa;
	memcpy(b + 0x202, "HdrS", 4);
	b[0x201] = 0x6a; /* header ends at 0x26c */
	b[0x206] = 0x0f;
	b[0x207] = 0x02; /* 2.15 */
	b[0x211] = 0x01; /* LOADED_HIGH */
	b[0x236] = 0x01; /* XLF_KERNEL_64 */
	uint32_t cmdline_size = 2048, initrd_max = 0x37ffffff, init_size = 0x400000;
	memcpy(b + 0x238, &cmdline_size, 4);
	memcpy(b + 0x22c, &initrd_max, 4);
	memcpy(b + 0x260, &init_size, 4);
	memset(b + BZ_SETUP, 0xab, kernel_len);
	return b;
}

static void test_bz_ok(void **state)
{
	size_t len;
	uint8_t *b = make_bz(4096, &len);
	struct boot_image bi;
	char err[256];
	(void)state;
	assert_int_equal(boot_image_load(b, len, &gm, &bi, err, sizeof(err)), 0);
	assert_int_equal(bi.proto, BOOT_PROTO_LINUX64);
	assert_int_equal(bi.entry, 0x100200);
	assert_int_equal(bi.kernel_end, 0x100000 + 0x400000);
	assert_int_equal(bi.cmdline_max, 2048);
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&gm, 0x100000, 1), 0xab);
	/* setup header copied from 0x1f1 */
	assert_memory_equal(bi.setup_header + (0x202 - 0x1f1), "HdrS", 4);
	free(b);
}

static void test_bz_rejects(void **state)
{
	size_t len;
	uint8_t *b = make_bz(4096, &len);
	(void)state;
	expect_reject(b, 0x204, "neither"); /* too short for the HdrS magic */
	expect_reject(b, 0x250, "truncated");
	expect_reject(b, BZ_SETUP, "truncated");
	b[0x207] = 0x02;
	b[0x206] = 0x00;
	expect_reject(b, len, "boot protocol 2.00");
	b[0x206] = 0x0f;
	b[0x236] = 0;
	expect_reject(b, len, "64-bit entry");
	b[0x236] = 1;
	b[0x211] = 0;
	expect_reject(b, len, "high-loaded");
	b[0x211] = 1;
	b[0x1fe] = 0;
	expect_reject(b, len, "boot signature");
	b[0x1fe] = 0x55;
	uint32_t huge = 0x7fffffff;
	memcpy(b + 0x260, &huge, 4);
	expect_reject(b, len, "kernel needs RAM");
	b[0x1f1] = 200; /* setup larger than the file */
	expect_reject(b, len, "truncated");
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pvh_ok),
		cmocka_unit_test(test_pvh_rejects),
		cmocka_unit_test(test_bz_ok),
		cmocka_unit_test(test_bz_rejects),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
