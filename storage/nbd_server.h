/*
 * flint-nbd-server's per-connection path as a function, for its fuzz target
 * (fuzz/fuzz_nbd_server.c builds nbd_server.c with main renamed).  The
 * server itself only calls it through its accept loop's threads.
 */
#ifndef FLINT_STORAGE_NBD_SERVER_H
#define FLINT_STORAGE_NBD_SERVER_H

#include <stdint.h>

/*
 * Serves one client on the connected stream socket sock, on the calling
 * thread and exactly as an accepted connection is served (negotiation, then
 * requests, with the same limits), until the client leaves or misbehaves;
 * sock is closed.  The export, named export_name, is the first size bytes
 * (a multiple of block_size, 512 or 4096) of the regular file file_fd.
 */
void nbd_server_serve_connection(int sock, int file_fd, uint64_t size,
				 uint32_t block_size, const char *export_name);

#endif
