/*
 * The NBD client's replay log: see nbd_replay_log.h.
 */
#include "nbd_replay_log.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

/*
 * Entries of a 64-byte header and the payload, rounded up to 64 bytes.
 * Unlimited means as much as one reservation of RING_MAX allows.
 */
#define REPLAY_ALIGN 64U
#define RING_MAX (64ULL << 30)
#define RING_MIN (1ULL << 20)

struct replay_hdr {
	uint64_t seq;
	uint64_t offset;
	uint64_t span;      /* whole entry, header included */
	uint32_t length;
	uint16_t type;
	uint8_t has_payload;
};
_Static_assert(sizeof(struct replay_hdr) <= REPLAY_ALIGN, "replay header too big");

void replay_log_init(struct replay_log *l, uint64_t cap_bytes)
{
	memset(l, 0, sizeof(*l));
	l->want = cap_bytes < RING_MAX ? cap_bytes : RING_MAX;
}

void replay_log_destroy(struct replay_log *l)
{
	if (l->base != NULL)
		munmap(l->base, l->size);
	l->base = NULL;
}

static void log_reset(struct replay_log *l)
{
	l->head = l->tail = l->wrap = 0;
	l->wrapped = 0;
	l->count = 0;
}

static int log_map(struct replay_log *l)
{
	for (uint64_t sz = l->want; sz > 0; sz = sz > RING_MIN ? sz / 2 : 0) {
		void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			continue;
		/* Volume data has no business in a core file. */
		(void)madvise(p, sz, MADV_DONTDUMP);
		/*
		 * Every write is copied in here, so a new card faults the ring in
		 * as the guest first writes: with 4 KiB pages that is one fault per
		 * 4 KiB written, which measured 2x the whole cost of a new card's
		 * first 32 MiB of sequential writes.  Huge pages (where the kernel
		 * has them) make it one fault per 2 MiB.  A hint: failure is fine.
		 */
		(void)madvise(p, sz, MADV_HUGEPAGE);
		if (sz < l->want)
			log_warn("nbd: replay log limited to %" PRIu64 " MiB", sz >> 20);
		l->base = p;
		l->size = sz;
		return 0;
	}
	l->map_failed = 1;
	log_warn("nbd: cannot map the replay log: unflushed writes will not survive a reconnect");
	return -ENOMEM;
}

/* Room for need bytes at the tail of the ring, or NULL. */
static uint8_t *log_reserve(struct replay_log *l, uint64_t need)
{
	if (l->count == 0)
		log_reset(l); /* start over at the beginning: touch as few pages as we can */
	if (l->wrapped) {
		if (l->head - l->tail < need)
			return NULL;
	} else if (l->size - l->tail < need) {
		if (l->head < need)
			return NULL;
		l->wrap = l->tail;
		l->wrapped = 1;
		l->tail = 0;
	}
	uint8_t *p = l->base + l->tail;
	l->tail += need;
	l->count++;
	return p;
}

static const struct replay_hdr *log_at(const struct replay_log *l, uint64_t *pos)
{
	if (l->wrapped && *pos == l->wrap)
		*pos = 0;
	const struct replay_hdr *h = (const void *)(l->base + *pos);
	*pos += h->span;
	return h;
}

static void log_pop(struct replay_log *l)
{
	uint64_t pos = l->head;
	log_at(l, &pos);
	l->head = pos;
	l->count--;
	if (l->wrapped && l->head == l->wrap) {
		l->head = 0;
		l->wrapped = 0;
	}
	if (l->count == 0)
		log_reset(l);
}

static void log_overflow(struct replay_log *l, uint64_t seq)
{
	log_reset(l);
	l->incomplete = 1;
	l->unlogged = seq;
}

void replay_log_append(struct replay_log *l, uint64_t seq, uint16_t type, uint64_t offset,
		       uint32_t length, const void *payload)
{
	if (l->incomplete) {
		l->unlogged = seq;
		return;
	}
	if (l->base == NULL && (l->map_failed || log_map(l) != 0)) {
		log_overflow(l, seq);
		return;
	}
	uint64_t dlen = payload != NULL ? length : 0;
	uint64_t span = REPLAY_ALIGN + (dlen + REPLAY_ALIGN - 1) / REPLAY_ALIGN * REPLAY_ALIGN;
	uint8_t *p = log_reserve(l, span);
	if (p == NULL) {
		log_overflow(l, seq);
		return;
	}
	struct replay_hdr *h = (struct replay_hdr *)p;
	*h = (struct replay_hdr){ .seq = seq, .offset = offset, .span = span, .length = length,
				  .type = type, .has_payload = payload != NULL };
	if (dlen)
		memcpy(p + REPLAY_ALIGN, payload, dlen);
}

void replay_log_flushed(struct replay_log *l, uint64_t mark)
{
	while (l->count > 0) {
		const struct replay_hdr *h = (const void *)(l->base + l->head);
		if (h->seq > mark)
			break;
		log_pop(l);
	}
	if (l->incomplete && l->unlogged <= mark)
		l->incomplete = 0;
}

uint64_t replay_log_count(const struct replay_log *l)
{
	return l->count;
}

struct replay_cursor replay_log_begin(const struct replay_log *l)
{
	return (struct replay_cursor){ .pos = l->head, .left = l->count };
}

bool replay_log_next(const struct replay_log *l, struct replay_cursor *cur,
		     struct replay_entry *e)
{
	if (cur->left == 0)
		return false;
	cur->left--;
	const struct replay_hdr *h = log_at(l, &cur->pos);
	*e = (struct replay_entry){ .seq = h->seq, .type = h->type, .offset = h->offset,
				    .length = h->length,
				    .payload = h->has_payload ? (const uint8_t *)h + REPLAY_ALIGN : NULL };
	return true;
}

void replay_log_reconnected(struct replay_log *l)
{
	if (l->incomplete)
		l->lost = 1;
}

void replay_log_mark_lost(struct replay_log *l)
{
	l->lost = 1;
}

bool replay_log_take_loss(struct replay_log *l)
{
	bool lost = l->lost;
	l->lost = 0;
	return lost;
}
