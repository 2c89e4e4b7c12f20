/*
 * libFuzzer target: flint-nbd-server's handling of one client, negotiation
 * and transmission phase, through the server's own per-connection path
 * (storage/nbd_server.h) over a socketpair.  The input is the byte stream a
 * hostile client sends: client flags, options, then requests with their
 * payloads.  The export is a 1 MiB memfd named "fuzz" with 4096-byte blocks.
 * The server must answer or close, never crash, read or write outside the
 * export, or stop reading (a hang is reported by -timeout).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_stream.h"
#include "log.h"
#include "nbd_server.h"

#define EXPORT_BYTES (1u << 20)
#define EXPORT_NAME "fuzz"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct server_run {
	int sock, file;
};

static void *server_thread(void *arg)
{
	const struct server_run *r = arg;
	nbd_server_serve_connection(r->sock, r->file, EXPORT_BYTES, 4096, EXPORT_NAME);
	return NULL;
}

/* The export's backing file, made once: its contents steer no branch. */
static int export_file(void)
{
	static int fd = -1;
	if (fd >= 0)
		return fd;
	fd = memfd_create("fuzz-export", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, EXPORT_BYTES) != 0)
		abort();
	log_set_level(LOG_ERROR); /* a message per bad request: too many */
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	pthread_t th;

	struct server_run run = { .file = export_file() };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	run.sock = sv[1]; /* closed by the server */
	if (pthread_create(&th, NULL, server_thread, &run) != 0)
		abort();
	struct fuzz_chunk stream = { .data = data, .len = size };
	fuzz_stream_exchange(sv[0], &stream, 1);
	pthread_join(th, NULL);
	close(sv[0]);
	return 0;
}
