/*
 * What a card keeps locked in RAM: its key page and the heap holding the
 * XTS key schedules, set up as the cards do it (card_lock_memory, key,
 * blk_xts_open, card_lock_memory_end) - but not guest memory it maps
 * afterwards (SET_MEM_TABLE), which it would otherwise pin for the host.
 * Needs the right to lock memory (root or CAP_IPC_LOCK); skips without.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk_mem.h"
#include "blk_xts.h"
#include "guest_mem_map.h"
#include "key_mem.h"

#define GUEST_RAM (64ULL << 20)

#include "test_sanitized.h"

/* VmLck from /proc/self/status, in KiB. */
static uint64_t vm_locked_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kib = UINT64_MAX;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmLck: %" SCNu64, &kib) == 1)
			break;
	fclose(f);
	assert_true(kib != UINT64_MAX);
	return kib;
}

/* Whether the mapping holding addr is locked (VmFlags "lo" in smaps). */
static int is_locked(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int inside = 0, locked = -1;
	uintptr_t a = (uintptr_t)addr;
	assert_non_null(f);
	while (locked < 0 && fgets(line, sizeof(line), f) != NULL) {
		uintptr_t lo, hi;
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2) /* a mapping's first line */
			inside = a >= lo && a < hi;
		else if (inside && strncmp(line, "VmFlags:", 8) == 0)
			locked = strstr(line, " lo") != NULL;
	}
	fclose(f);
	assert_true(locked >= 0);
	return locked;
}

/* A sealed memfd, as flint-hv hands a card its guest RAM, mapped by gmm_map. */
static void map_guest_ram(struct gmm *g)
{
	int fd = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)GUEST_RAM), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	struct vhost_user_mem_region r = {
		.guest_phys_addr = 0, .memory_size = GUEST_RAM, .userspace_addr = 1ULL << 32,
	};
	assert_int_equal(gmm_map(g, &r, &fd, 1), 0);
	close(fd);
}

static void test_only_keys_stay_locked(void **state)
{
	(void)state;
	struct key_mem key;
	struct blk_backend disk, vol;
	char err[256];

#ifdef SANITIZED
	print_message("SKIP: sanitizer runtimes make mlock/mlockall no-ops\n");
	exit(77);
#endif
	if (card_lock_memory() != 0) {
		print_message("SKIP: cannot lock memory (%s): needs root or CAP_IPC_LOCK\n",
			      strerror(errno));
		exit(77);
	}
	assert_int_equal(key_mem_alloc(&key), 0);
	assert_int_equal(key_mem_generate(&key), 0);
	assert_int_equal(blk_mem_create(&disk, 1 << 20, 512), 0);
	assert_int_equal(blk_xts_open(&vol, &disk, key.page, 512, err, sizeof(err)), 0);
	assert_int_equal(card_lock_memory_end(), 0);

	/* The key page, and the heap the XTS layer built its contexts on. */
	assert_true(is_locked(key.page));
	assert_true(is_locked(vol.ctx));
	uint64_t before = vm_locked_kib();

	struct gmm g;
	map_guest_ram(&g);
	uint8_t *ram = gmm_ptr(&g, 0, GUEST_RAM);
	assert_non_null(ram);
	for (uint64_t off = 0; off < GUEST_RAM; off += 4096)
		ram[off] = 1; /* the guest's pages, touched as requests come in */
	uint64_t after = vm_locked_kib();
	print_message("VmLck: %" PRIu64 " KiB with the keys, %" PRIu64 " KiB after mapping "
		      "and touching %llu MiB of guest RAM\n", before, after, GUEST_RAM >> 20);
	assert_false(is_locked(ram));
	assert_true(after - before < GUEST_RAM / 1024 / 2);

	gmm_unmap(&g);
	vol.ops->close(vol.ctx);
	key_mem_free(&key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_only_keys_stay_locked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
