#include "card_options.h"

#include <string.h>

#include "parse_num.h"
#include "virtio_blk.h"

void card_common_defaults(struct card_common_config *c)
{
	*c = (struct card_common_config){
		.sector = 4096, .queues = 1, .iodepth = CARD_DEFAULT_IODEPTH,
	};
}

int card_common_option(struct card_common_config *c, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case CARD_OPT_SOCKET:
		c->socket_path = arg;
		return 1;
	case CARD_OPT_SERIAL:
		/* The GET_ID answer is 20 bytes; a longer one would be cut silently. */
		if (strlen(arg) > VIRTIO_BLK_ID_BYTES)
			return -1;
		c->serial = arg;
		return 1;
	case CARD_OPT_SECTOR:
		if (parse_u64_range(arg, 512, 4096, &v) != 0 || (v != 512 && v != 4096))
			return -1;
		c->sector = (uint32_t)v;
		return 1;
	case CARD_OPT_QUEUES:
		if (parse_u64_range(arg, 1, CARD_MAX_QUEUES, &v) != 0)
			return -1;
		c->queues = (uint16_t)v;
		return 1;
	case CARD_OPT_IODEPTH:
		if (parse_u64_range(arg, 1, CARD_MAX_IODEPTH, &v) != 0)
			return -1;
		c->iodepth = (uint16_t)v;
		return 1;
	default:
		return 0;
	}
}
