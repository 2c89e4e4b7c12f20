/*
 * libFuzzer target: the block card's vhost-user back end as a whole
 * (vub_serve in cards/blk/vhost_user_blk.c), driven by a hostile front end
 * over a socketpair: every message goes through the card's receive path,
 * validation, dispatch, queue start/stop and the end-of-connection reset.
 *
 * Input: one device byte (bits 0-1: queues - 1; bit 2: iodepth 2, else 1;
 * bit 3: serialized backend; bit 4: 4096-byte blocks, else 512), then up to
 * 64 messages, each
 *   u8 fd count (mod 10: 9 is one more than a message may carry),
 *   one kind byte per fd (see make_fd), the 12-byte header and
 *   min(header.size, what is left) payload bytes, sent as they are.
 * The fds are created here (at most 32 per input): eventfds, sealed and
 * unsealed memfds (guest memory), pipes, /dev/null, a socket.  Guest memory
 * stays zero, so a started queue finds its ring empty: what its threads do
 * with ring contents is fuzz_virtio_blk's, and this keeps a run
 * deterministic.  The card ends the connection (its own choice or at the
 * end of the input); every fd it took must be closed and its threads gone,
 * or a later run fails to create fds (abort) or hangs (-timeout).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blk_mem.h"
#include "fuzz_stream.h"
#include "log.h"
#include "vhost_user_blk.h"
#include "vhost_user_msg.h"

#define MAX_MESSAGES 64
#define MAX_FDS_PER_INPUT 32
#define MSG_FD_COUNTS (VHOST_USER_MAX_FDS + 2)
#define DISK_BYTES (256u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every fd this run created (closed at its end), including pipe peers. */
struct harness_fds {
	int fd[2 * MAX_FDS_PER_INPUT];
	unsigned int n;
	unsigned int made; /* fds handed to messages */
};

static int keep(struct harness_fds *s, int fd)
{
	if (fd < 0)
		abort(); /* out of fds: the card leaks them */
	s->fd[s->n++] = fd;
	return fd;
}

static int make_memfd(struct harness_fds *s, uint8_t kind)
{
	static const off_t sizes[4] = { 4096, 65536, 1 << 20, 0 };
	int fd = keep(s, memfd_create("fuzz-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	if (ftruncate(fd, sizes[(kind >> 4) & 3]) != 0)
		abort();
	if ((kind & 8) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		abort();
	return fd;
}

/* A new fd of the kind the input byte names, owned by s. */
static int make_fd(struct harness_fds *s, uint8_t kind)
{
	int p[2];

	switch (kind & 7) {
	case 0:
		return keep(s, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	case 1:
		return keep(s, eventfd(0, EFD_CLOEXEC));
	case 2:
	case 3:
		return make_memfd(s, kind); /* bit 3: unsealed */
	case 4: /* a pipe nobody will ever write to */
		if (pipe2(p, O_CLOEXEC) != 0)
			abort();
		close(p[1]);
		return keep(s, p[0]);
	case 5: /* a pipe nobody reads */
		if (pipe2(p, O_CLOEXEC) != 0)
			abort();
		keep(s, p[0]);
		return keep(s, p[1]);
	case 6:
		return keep(s, open("/dev/null", O_RDWR | O_CLOEXEC));
	default:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
			abort();
		keep(s, p[1]);
		return keep(s, p[0]);
	}
}

/* Splits the input into messages; returns how many. */
static size_t decode(const uint8_t *data, size_t size, struct fuzz_chunk *msgs,
		     struct harness_fds *fds)
{
	size_t pos = 0, n = 0;
	while (pos < size && n < MAX_MESSAGES) {
		struct fuzz_chunk *c = &msgs[n];
		unsigned int want = data[pos++] % MSG_FD_COUNTS;
		memset(c, 0, sizeof(*c));
		for (unsigned int i = 0; i < want && pos < size; i++) {
			uint8_t kind = data[pos++];
			if (fds->made == MAX_FDS_PER_INPUT)
				continue;
			fds->made++;
			c->fds[c->nfds++] = make_fd(fds, kind);
		}
		struct vhost_user_hdr h = { 0 };
		size_t left = size - pos;
		size_t hdr_len = left < sizeof(h) ? left : sizeof(h);
		memcpy(&h, data + pos, hdr_len);
		size_t body = left - hdr_len < h.size ? left - hdr_len : h.size;
		if (hdr_len == 0)
			break; /* its fds were never sent: closed with the rest */
		c->data = data + pos;
		c->len = hdr_len + body;
		pos += c->len;
		n++;
	}
	return n;
}

struct card_run {
	int sock;
	struct blk_backend *be;
	struct vub_options opts;
	int rc;
};

static void *card_thread(void *arg)
{
	struct card_run *r = arg;
	r->rc = vub_serve(r->sock, r->be, &r->opts);
	return NULL;
}

static struct blk_backend *disk(bool big_blocks)
{
	static struct blk_backend be[2];
	static bool made[2];
	if (!made[big_blocks]) {
		if (blk_mem_create(&be[big_blocks], DISK_BYTES, big_blocks ? 4096 : 512) != 0)
			abort();
		made[big_blocks] = true;
		log_set_level(LOG_ERROR); /* a message per bad request: too many */
	}
	return &be[big_blocks];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_chunk msgs[MAX_MESSAGES];
	struct harness_fds fds = { .n = 0 };
	int sv[2];
	pthread_t th;

	if (size < 1)
		return 0;
	struct card_run run = {
		.be = disk(data[0] & 16),
		.opts = {
			.num_queues = 1 + (data[0] & 3),
			.iodepth = 1 + ((data[0] >> 2) & 1),
			.serialize_backend = data[0] & 8,
		},
	};
	size_t n = decode(data + 1, size - 1, msgs, &fds);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	run.sock = sv[1];
	if (pthread_create(&th, NULL, card_thread, &run) != 0)
		abort();
	fuzz_stream_exchange(sv[0], msgs, n);
	pthread_join(th, NULL);
	/* The connected fd stays the caller's (vhost_user_blk.h). */
	close(sv[0]);
	close(sv[1]);
	for (unsigned int i = 0; i < fds.n; i++)
		close(fds.fd[i]);
	return 0;
}
