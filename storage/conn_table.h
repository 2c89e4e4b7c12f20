/*
 * The connection slots of flint-nbd-server.  A fixed number of connections
 * are served at once; when all are taken, a new one still gets in if some
 * connection is idle (negotiating, or between requests): the one idle
 * longest is evicted, one with unflushed writes only when no clean one is
 * left.  So clients that connect and then do nothing cannot lock card-ebs
 * out; clients that stop reading are the send timeout's business, and a new
 * connection is refused at once while every slot is serving a request.
 *
 * Eviction and a request starting race: both happen under the table's lock,
 * so a connection is evicted only while it has read nothing of its next
 * request, and never after it began one.
 */
#ifndef FLINT_STORAGE_CONN_TABLE_H
#define FLINT_STORAGE_CONN_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define CONN_SLOTS 64

/* What the table knows of one connection (embedded in the connection). */
struct conn_slot {
	int sock;
	int index;          /* in the table, while it holds a slot */
	uint64_t idle_since; /* ms; 0 while serving a request */
	bool dirty;         /* has writes not yet synced */
	bool evicted;       /* its socket was shut down to make room */
};

struct conn_table {
	pthread_mutex_t lock;
	struct conn_slot *slot[CONN_SLOTS];
	unsigned leaving; /* evicted and not yet gone: bounded like the slots */
};

void conn_table_init(struct conn_table *t);

/*
 * A slot for s (idle since now: negotiation is evictable).  0, or 1 when an
 * idle connection was evicted to make room (its socket is shut down, its
 * thread ends on its own; *victim is a copy of what it was), or -EBUSY:
 * every slot is serving a request.
 */
int conn_table_add(struct conn_table *t, struct conn_slot *s, uint64_t now,
		   struct conn_slot *victim);

/* s is gone (its thread ends): frees its slot. */
void conn_table_remove(struct conn_table *t, struct conn_slot *s);

/* s waits for its next request from now on; dirty: it has unsynced writes. */
void conn_table_idle(struct conn_table *t, struct conn_slot *s, uint64_t now, bool dirty);

/*
 * s's next request has begun arriving: false if s was evicted meanwhile
 * (it must close without reading it).
 */
bool conn_table_busy(struct conn_table *t, struct conn_slot *s);

/* Connections holding a slot now. */
unsigned conn_table_count(struct conn_table *t);

#endif
