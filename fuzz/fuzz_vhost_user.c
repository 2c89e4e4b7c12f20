/*
 * libFuzzer target: vhost_user_msg_validate() and vhost_user_reply_validate()
 * on arbitrary headers and payloads.  Input: 1 byte fd count, then the
 * 12-byte header and payload as they come off the socket.  Checks that an
 * accepted request's declared size fits and matches what the type needs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhost_user_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_user_msg m;

	if (size < 1 + sizeof(m.hdr))
		return 0;
	vhost_user_msg_init(&m, 0, 0);
	m.nfds = data[0] % (VHOST_USER_MAX_FDS + 2);
	memcpy(&m.hdr, data + 1, sizeof(m.hdr));
	size_t rest = size - 1 - sizeof(m.hdr);
	if (rest > sizeof(m.payload))
		rest = sizeof(m.payload);
	memcpy(&m.payload, data + 1 + sizeof(m.hdr), rest);

	if (vhost_user_msg_validate(&m) == 0) {
		if (m.hdr.size > sizeof(m.payload) || m.nfds > VHOST_USER_MAX_FDS)
			abort();
		if (m.hdr.request == VHOST_USER_SET_MEM_TABLE &&
		    (m.payload.mem.nregions == 0 ||
		     m.payload.mem.nregions > VHOST_USER_MAX_REGIONS ||
		     m.nfds != m.payload.mem.nregions))
			abort();
		if ((m.hdr.request == VHOST_USER_GET_CONFIG ||
		     m.hdr.request == VHOST_USER_SET_CONFIG) &&
		    (uint64_t)m.payload.config.offset + m.payload.config.size >
			    VHOST_USER_CONFIG_MAX)
			abort();
		(void)vhost_user_request_name(m.hdr.request);
	}
	(void)vhost_user_reply_validate(&m, m.hdr.request);
	return 0;
}
