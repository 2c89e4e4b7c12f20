/*
 * Shared by the blk* tests: the device handle, a DMA arena in guest RAM,
 * the (sector, seed) data pattern, CPL-independent console output.
 */
#ifndef GUEST_BLK_COMMON_H
#define GUEST_BLK_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_blk.h"

#define BLK_ARENA_SIZE (16u << 20) /* bytes of RAM the blk tests may use */
#define BLK_HOSTILE_WAIT 3000000000ULL /* ~1 s: "no completion" */

struct blk_ctx {
	struct vblk dev;
	uint8_t *arena;       /* BLK_ARENA_SIZE bytes of guest RAM */
	uint64_t ram_end;     /* end of the RAM range holding the arena */
	uint64_t seed;
	uint64_t bytes_written, bytes_read;
	unsigned want_queues;
};

extern struct blk_ctx blk_ctx;

/*
 * CPL0: find the device, find the arena, read the common options.  Then
 * runs body(&blk_ctx) at CPL3, which returns NULL or a failure reason.
 */
const char *blk_run(const char *tag, unsigned want_queues,
		    const char *(*body)(struct blk_ctx *));
/* The same with body at CPL0 (for tests that need config space or the
 * LAPIC while the device runs). */
const char *blk_run_cpl0(const char *tag, unsigned want_queues,
			 const char *(*body)(struct blk_ctx *));

/* Console output at CPL0 or CPL3, prefixed "flint-guest: ". */
void bprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Device init + a one-line summary. */
const char *blk_open(struct blk_ctx *c, const char *tag);

/* Fill / check `nsect` sectors starting at `sector` with the pattern. */
void blk_fill(void *buf, uint64_t sector, uint32_t nsect, uint64_t seed);
/* NULL if the buffer matches, else a failure reason. */
const char *blk_check(const void *buf, uint64_t sector, uint32_t nsect,
		      uint64_t seed);
bool blk_is_zero(const void *buf, uint32_t len);

/* Write, then read back and verify, `nsect` sectors (synchronously). */
const char *blk_write(struct blk_ctx *c, unsigned q, uint64_t sector,
		      uint32_t nsect, unsigned nseg, uint64_t seed, void *buf);
const char *blk_verify(struct blk_ctx *c, unsigned q, uint64_t sector,
		       uint32_t nsect, unsigned nseg, uint64_t seed, void *buf);

/* Device block size in sectors (1 if the device gives none). */
uint32_t blk_unit(const struct blk_ctx *c);
const char *blk_status_name(int st);

#endif
