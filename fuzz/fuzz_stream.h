/*
 * The peer side of a fuzzed stream connection: sends what a fuzz target
 * decoded from its input (byte runs, some carrying file descriptors as
 * SCM_RIGHTS) to the component under test, while reading and dropping
 * whatever it answers, so that neither side can block the other on a full
 * socket buffer.  No timeouts: a component that stops reading or never ends
 * the connection is a hang, which libFuzzer's -timeout reports.
 */
#ifndef FLINT_FUZZ_STREAM_H
#define FLINT_FUZZ_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_CHUNK_MAX_FDS 16

struct fuzz_chunk {
	const uint8_t *data;
	size_t len;
	int fds[FUZZ_CHUNK_MAX_FDS]; /* sent with the chunk's first byte */
	unsigned int nfds;
};

/*
 * Sends the chunks in order on the connected stream socket sock, then
 * shuts down its sending side, and returns once the peer has closed (or
 * reset) the connection.  Sending stops early when the peer has gone.  The
 * chunks' fds stay the caller's.
 */
void fuzz_stream_exchange(int sock, const struct fuzz_chunk *chunks, size_t n);

#endif
