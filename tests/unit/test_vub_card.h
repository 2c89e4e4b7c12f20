/*
 * The card back end (vub_serve) in a thread over a socketpair, for the
 * tests that play its front end.  The caller sets up c->be first and keeps
 * ownership of it.  Include after <cmocka.h>.
 */
#ifndef FLINT_TEST_VUB_CARD_H
#define FLINT_TEST_VUB_CARD_H

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhost_user_blk.h"

struct card {
	int sock; /* the card's end */
	struct blk_backend be;
	struct vub_options opts;
	int rc; /* vub_serve's, once card_join() returned */
	pthread_t thread;
};

static inline void *card_serve(void *arg)
{
	struct card *c = arg;
	c->rc = vub_serve(c->sock, &c->be, &c->opts);
	return NULL;
}

/* Serves c->be with opts in a new thread; returns the front end's end. */
static inline int card_run(struct card *c, struct vub_options opts)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c->sock = sv[1];
	c->opts = opts;
	assert_int_equal(pthread_create(&c->thread, NULL, card_serve, c), 0);
	return sv[0];
}

/* Waits for the session to end (the caller ended it); vub_serve's rc. */
static inline int card_join(struct card *c)
{
	pthread_join(c->thread, NULL);
	close(c->sock);
	return c->rc;
}

#endif
