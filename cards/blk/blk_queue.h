/*
 * The queue engine of a block card: one virtqueue's rings served on a vblk
 * device by worker threads, with the requests in flight accounted for, so
 * that a stop is answered in bounded time and nothing touches the ring
 * after it.  It knows nothing of vhost-user: its owner (vhost_user_blk.c)
 * decides from the front end's messages when a queue starts and stops and
 * hands it the rings, the guest memory and the fds.
 *
 * Lifetime: blk_queue_init(), then any number of blk_queue_start() /
 * blk_queue_stop() pairs, blk_queue_set_call_fd() at any time, and
 * blk_queue_destroy().  Every call comes from the owner's one thread; the
 * engine's own threads exist only between a start and its stop.
 */
#ifndef FLINT_CARDS_BLK_BLK_QUEUE_H
#define FLINT_CARDS_BLK_BLK_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_mem_map.h"
#include "log_limit.h"
#include "virtio_blk.h"
#include "virtqueue.h"

struct blk_queue_worker;
struct blk_queue_aio;

/* Where a queue's rings are and how to read them. */
struct blk_queue_rings {
	uint16_t num;                /* ring size */
	uint16_t base;               /* next avail index to serve */
	/* Front-end virtual addresses, translated through the guest memory
	 * (gmm_uva_to_gpa: guest_mem_map.h). */
	uint64_t desc, avail, used;
	bool indirect;               /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool event_idx;              /* VIRTIO_RING_F_EVENT_IDX negotiated */
};

/*
 * The latches the engine logs through (log_limit.h).  They are the
 * owner's, who decides how long they hold (flint's card: once per ring and
 * connection) and reports what they kept out of the log.
 */
struct blk_queue_logs {
	struct log_limit *guest;     /* ring errors the guest made (vq_pop) */
	struct log_limit *refusal;   /* why a start was refused */
};

/*
 * A queue is served by `nworkers` identical threads, leader/follower style:
 * while the ring is empty one of them (the leader) waits in poll() for a
 * kick and the others sleep on work_cv.  A thread that takes a request from
 * the ring first wakes a sleeper when there is no leader, so someone always
 * watches the kick fd (or, when every thread is busy, each comes back to
 * the ring when done).  Kicks thus cost one wake-up, not two, and a burst of
 * requests fans out over the threads one wake-up at a time.  `vq`,
 * `have_leader`, `idle` and `stopping` are under `lock`; the I/O itself runs
 * outside it.
 *
 * Every field is the engine's: the owner uses the functions below.
 */
struct blk_queue {
	const struct vblk *blk;
	unsigned int idx;      /* for log lines */
	unsigned int depth;    /* worker threads while running */
	struct blk_queue_logs logs;
	bool running;          /* threads exist */
	int kick_fd;           /* the owner's, lent while running */
	int call_fd, stop_fd;
	pthread_mutex_t call_lock;
	pthread_mutex_t lock;
	pthread_cond_t work_cv;
	bool have_leader;
	unsigned int idle;     /* threads asleep on work_cv */
	bool stopping;
	unsigned int nworkers;
	struct blk_queue_worker *workers;
	/*
	 * Over a backend with submit, a worker hands a request down and takes
	 * the next one; the backend's completion pushes it to the used ring.
	 * `aio_free`, `aio_inflight`, `live` are under `lock`; stopping the
	 * queue waits on `aio_idle` until no worker thread is left and
	 * nothing is in flight.
	 */
	struct blk_queue_aio *aio;
	int aio_free;
	unsigned int aio_inflight;
	unsigned int live;     /* worker threads not yet finished */
	pthread_cond_t aio_idle;
	struct log_limit stall_log;
	struct vq vq;
};

/*
 * A stopped queue, idx `idx` of blk, that will run `depth` worker threads.
 * The logs' latches must outlive it.  0, or -errno if the queue's own
 * eventfd cannot be made; the queue can be destroyed either way.
 */
int blk_queue_init(struct blk_queue *q, const struct vblk *blk, unsigned int idx,
		   unsigned int depth, struct blk_queue_logs logs);

/* Stops the queue and frees all it holds; the call fd is closed. */
void blk_queue_destroy(struct blk_queue *q);

/*
 * An eventfd of the queue's own, to tell eventfds apart from other fds
 * (ring_eventfd_check): never to be read or written.
 */
int blk_queue_eventfd(const struct blk_queue *q);

/* Whether its threads run (between a successful start and a stop). */
bool blk_queue_running(const struct blk_queue *q);

/*
 * Serve the rings in mem: requests are taken after each kick on kick_fd
 * (an eventfd, lent until the stop), done on the device and completed on
 * the used ring, with an interrupt on the call fd when the driver wants
 * one.  mem must stay mapped until the stop.  The queue must be stopped.
 * 0; -EFAULT or -EINVAL if the rings are outside mem or misaligned (said
 * once through logs.refusal); -ENOMEM or another -errno if threads cannot
 * be made.
 */
int blk_queue_start(struct blk_queue *q, const struct gmm *mem,
		    const struct blk_queue_rings *rings, int kick_fd);

/*
 * Stops a running queue and returns true, with the next avail index to
 * serve in *base; false (*base untouched) if it was not running.  Requests
 * in flight get a grace period to complete, then the backend abandons them
 * (they complete with VIRTIO_BLK_S_IOERR): the stop takes a bounded time
 * even while storage stalls, and when it returns nothing touches the rings,
 * the memory or the kick fd any more.
 */
bool blk_queue_stop(struct blk_queue *q, uint16_t *base);

/*
 * The eventfd to signal after completions, or -1 for none; the queue owns
 * it from now on and closes the one it had.  Safe while running.
 */
void blk_queue_set_call_fd(struct blk_queue *q, int fd);

/* As after blk_queue_init: stopped, no call fd. */
void blk_queue_reset(struct blk_queue *q);

#endif
