#include "channel_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

int channel_fd_check(int fd, const char *what, char *err, size_t errlen)
{
	struct stat st;
	struct sockaddr_un peer;
	socklen_t plen = sizeof(peer);
	int type = 0, domain = 0, listening = 0;
	socklen_t len = sizeof(int);

	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: not a socket: %s", what, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: not a socket", what);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
		return -1;
	}
	if (domain != AF_UNIX || type != SOCK_STREAM) {
		snprintf(err, errlen, "%s: not a unix stream socket", what);
		return -1;
	}
	/* A listening or unconnected socket has no peer. */
	if (listening || getpeername(fd, (struct sockaddr *)&peer, &plen) != 0) {
		snprintf(err, errlen, "%s: not a connected socket", what);
		return -1;
	}
	/* Nothing the process starts later inherits the channel. */
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
		return -1;
	}
	return 0;
}
