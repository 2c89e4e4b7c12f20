/*
 * The NBD client's in-flight table and its send token: a caller takes a
 * slot per request and the token to send it, the receiver finishes it (see
 * nbd_client_int.h).  All with c->lock held, but nbd_slot_unpin and
 * nbd_aio_run_done, which take it.
 */
#include "nbd_client_int.h"

#include <errno.h>
#include <pthread.h>

struct slot *nbd_slot_get(struct nbd_client *c, uint64_t deadline, int wait)
{
	while (c->free_head < 0) {
		if (!wait || c->aborting)
			return NULL;
		if (cond_wait_until(&c->slot_cv, &c->lock, deadline) == ETIMEDOUT &&
		    c->free_head < 0)
			return NULL;
	}
	struct slot *s = &c->slots[c->free_head];
	c->free_head = s->next;
	return s;
}

void nbd_slot_put(struct nbd_client *c, struct slot *s)
{
	s->state = SLOT_FREE;
	s->wbuf = NULL;
	s->rbuf = NULL;
	s->next = c->free_head;
	c->free_head = (int)(s - c->slots);
	pthread_cond_broadcast(&c->slot_cv);
}

/* The receiver is done with a request: hand the verdict to its caller. */
void nbd_slot_finish(struct nbd_client *c, struct slot *s, int result)
{
	if (s->state == SLOT_ABANDONED) {
		nbd_slot_put(c, s);
		return;
	}
	s->state = SLOT_DONE;
	s->result = result;
	if (s->aio == NULL) {
		pthread_cond_signal(&s->cv);
		return;
	}
	/* Queued: done() runs without the lock (nbd_aio_run_done). */
	s->next = -1;
	if (c->aio_tail >= 0)
		c->slots[c->aio_tail].next = (int)(s - c->slots);
	else
		c->aio_head = (int)(s - c->slots);
	c->aio_tail = (int)(s - c->slots);
}

/*
 * Receiver, unlocked: runs done() of every finished aio request.  The slot
 * is free before done() runs, so done() may submit again.
 */
void nbd_aio_run_done(struct nbd_client *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->aio_head >= 0) {
		struct slot *s = &c->slots[c->aio_head];
		c->aio_head = s->next;
		if (c->aio_head < 0)
			c->aio_tail = -1;
		struct blk_aio *io = s->aio;
		int r = s->result;
		s->aio = NULL;
		nbd_slot_put(c, s);
		pthread_mutex_unlock(&c->lock);
		io->done(io, r);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Lock held.  Wakes the caller only if it waits for this (no extra switch otherwise). */
void nbd_slot_unpin_locked(struct slot *s)
{
	if (--s->busy == 0 && s->unpin_wait)
		pthread_cond_signal(&s->cv);
}

void nbd_slot_unpin(struct nbd_client *c, struct slot *s)
{
	pthread_mutex_lock(&c->lock);
	nbd_slot_unpin_locked(s);
	pthread_mutex_unlock(&c->lock);
}

/* In flight on the live connection: a reply may still come for it. */
int nbd_slot_in_flight(const struct nbd_client *c, const struct slot *s)
{
	return c->fd >= 0 && s->sent_gen == c->gen &&
	       (s->state == SLOT_PENDING || s->state == SLOT_ABANDONED);
}

struct slot *nbd_slot_for_reply(struct nbd_client *c, uint64_t handle)
{
	uint32_t idx = (uint32_t)(handle & HANDLE_IDX_MASK);
	if (idx >= NSLOTS)
		return NULL;
	struct slot *s = &c->slots[idx];
	return s->handle == handle && nbd_slot_in_flight(c, s) ? s : NULL;
}

/*
 * Whoever releases the token hands it on: to the receiver if it waits (it
 * must tear a connection down), else to the first queued sender.
 */
void nbd_send_release(struct nbd_client *c)
{
	c->sending = -1;
	if (c->rx_wants_send) {
		c->send_busy = 0;
		pthread_cond_broadcast(&c->rx_cv);
		return;
	}
	if (!c->up || c->sendq_head < 0) {
		c->send_busy = 0;
		return;
	}
	struct slot *s = &c->slots[c->sendq_head];
	c->sendq_head = s->next;
	if (c->sendq_head < 0)
		c->sendq_tail = -1;
	s->granted = 1;
	pthread_cond_signal(&s->cv);
}

static void sendq_remove(struct nbd_client *c, struct slot *s)
{
	int idx = (int)(s - c->slots), prev = -1;
	for (int i = c->sendq_head; i >= 0; prev = i, i = c->slots[i].next) {
		if (i != idx)
			continue;
		if (prev < 0)
			c->sendq_head = s->next;
		else
			c->slots[prev].next = s->next;
		if (c->sendq_tail == idx)
			c->sendq_tail = prev;
		return;
	}
}

/* Waits for the send token (FIFO) until the slot's deadline. */
int nbd_send_acquire(struct nbd_client *c, struct slot *s)
{
	if (c->up && !c->send_busy) {
		c->send_busy = 1;
		return 0;
	}
	int idx = (int)(s - c->slots);
	s->granted = 0;
	s->next = -1;
	if (c->sendq_tail >= 0)
		c->slots[c->sendq_tail].next = idx;
	else
		c->sendq_head = idx;
	c->sendq_tail = idx;
	while (!s->granted) {
		if (cond_wait_until(&s->cv, &c->lock, s->deadline) == ETIMEDOUT && !s->granted) {
			sendq_remove(c, s);
			return -ETIMEDOUT;
		}
	}
	return 0;
}
