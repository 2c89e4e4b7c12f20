/*
 * Locked memory for data keys (CARD-5, EBS-6, IST-2): a page of its own,
 * mlock'ed (never swapped), excluded from core dumps, and wiped before it is
 * released.  Card processes are also non-dumpable and lock all their memory
 * (card_lock_memory), so key schedules inside OpenSSL are covered too.
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
 * Process-wide: not dumpable, and every present and future page locked as it
 * is touched (MCL_ONFAULT, so guest RAM is not populated up front).
 */
int card_lock_memory(void);

#endif
