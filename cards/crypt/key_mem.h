/*
 * Locked memory for data keys (CARD-5, EBS-6, IST-2): a page of its own,
 * mlock'ed (never swapped), excluded from core dumps, and wiped before it is
 * released.  Card processes are also non-dumpable, and lock what they
 * hold while their keys are set up (card_lock_memory .. _end), so the key
 * schedules OpenSSL builds on its heap are covered too - but not what they
 * map later: guest RAM, the replay log, worker stacks.
 */
#ifndef FLINT_CARDS_KEY_MEM_H
#define FLINT_CARDS_KEY_MEM_H

#include <stddef.h>
#include <stdint.h>

#define XTS_KEY_BYTES 64 /* AES-256-XTS: two 256-bit keys */

struct key_mem {
	uint8_t *page;   /* XTS_KEY_BYTES of key at the start */
	size_t page_size;
};

/* Returns 0, or -1 with errno (mlock refused: the card must not start). */
int key_mem_alloc(struct key_mem *k);
/* Wipes and releases; safe to call twice. */
void key_mem_free(struct key_mem *k);
/* Fills the key from the kernel CSPRNG (card-local's per-device key). */
int key_mem_generate(struct key_mem *k);

/*
 * Process-wide, before any key is read: not dumpable, and every page
 * present or mapped from now on locked as it is touched (MCL_ONFAULT),
 * until card_lock_memory_end().  Returns 0, or -1 with errno.
 */
int card_lock_memory(void);

/*
 * Once the cipher contexts are built: what is mapped now stays locked (the
 * heap pages holding OpenSSL's key schedules among it: OpenSSL gives no
 * address of them to lock alone), but nothing mapped later is, so the
 * card does not pin guest RAM or its replay log.  Returns 0, or -1.
 */
int card_lock_memory_end(void);

#endif
