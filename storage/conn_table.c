#include "conn_table.h"

#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

void conn_table_init(struct conn_table *t)
{
	pthread_mutex_init(&t->lock, NULL);
	for (int i = 0; i < CONN_SLOTS; i++)
		t->slot[i] = NULL;
	t->leaving = 0;
}

/* Whether a is a better victim than b: clean before dirty, then idle longest. */
static bool evict_before(const struct conn_slot *a, const struct conn_slot *b)
{
	if (b == NULL)
		return true;
	if (a->dirty != b->dirty)
		return !a->dirty;
	return a->idle_since < b->idle_since;
}

static struct conn_slot *pick_victim(struct conn_table *t)
{
	struct conn_slot *best = NULL;
	for (int i = 0; i < CONN_SLOTS; i++) {
		struct conn_slot *s = t->slot[i];
		if (s != NULL && s->idle_since != 0 && evict_before(s, best))
			best = s;
	}
	return best;
}

int conn_table_add(struct conn_table *t, struct conn_slot *s, uint64_t now,
		   struct conn_slot *victim)
{
	int r = 0;
	s->idle_since = now;
	s->dirty = false;
	s->evicted = false;
	pthread_mutex_lock(&t->lock);
	int free_idx = -1;
	for (int i = 0; i < CONN_SLOTS && free_idx < 0; i++)
		if (t->slot[i] == NULL)
			free_idx = i;
	/* Evicted connections still finishing count too: no unbounded churn. */
	struct conn_slot *v = free_idx < 0 && t->leaving < CONN_SLOTS ? pick_victim(t) : NULL;
	if (free_idx < 0 && v == NULL) {
		r = -EBUSY;
	} else {
		if (v != NULL) {
			*victim = *v;
			v->evicted = true;
			(void)shutdown(v->sock, SHUT_RDWR);
			free_idx = v->index;
			t->leaving++;
			r = 1;
		}
		s->index = free_idx;
		t->slot[free_idx] = s;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void conn_table_remove(struct conn_table *t, struct conn_slot *s)
{
	pthread_mutex_lock(&t->lock);
	if (s->evicted)
		t->leaving--;
	else
		t->slot[s->index] = NULL;
	pthread_mutex_unlock(&t->lock);
}

void conn_table_idle(struct conn_table *t, struct conn_slot *s, uint64_t now, bool dirty)
{
	pthread_mutex_lock(&t->lock);
	s->idle_since = now != 0 ? now : 1;
	s->dirty = dirty;
	pthread_mutex_unlock(&t->lock);
}

bool conn_table_busy(struct conn_table *t, struct conn_slot *s)
{
	pthread_mutex_lock(&t->lock);
	bool ok = !s->evicted;
	s->idle_since = 0;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

unsigned conn_table_count(struct conn_table *t)
{
	unsigned n = 0;
	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < CONN_SLOTS; i++)
		n += t->slot[i] != NULL;
	pthread_mutex_unlock(&t->lock);
	return n;
}
