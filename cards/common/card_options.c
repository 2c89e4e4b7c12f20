#include "card_options.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
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

int card_parse_options(int argc, char **argv, const struct option *opts,
		       struct card_common_config *card, card_own_option_fn own, void *ctx,
		       void (*usage)(void))
{
	int o, li = 0;

	card_common_defaults(card);
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, &li)) != -1) {
		if (o == 'h') {
			usage();
			exit(0);
		}
		int r = card_common_option(card, o, optarg);
		if (r == 0 && o != '?' && o != ':')
			r = own(ctx, o, optarg);
		if (r > 0)
			continue;
		if (r < 0)
			log_err("--%s: invalid value '%s'", opts[li].name, optarg);
		else
			log_err("%s: unknown option or missing value (see --help)",
				argv[optind - 1]);
		return -1;
	}
	if (optind < argc) {
		log_err("%s: unexpected argument (see --help)", argv[optind]);
		return -1;
	}
	return 0;
}
