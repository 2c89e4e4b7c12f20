#include "card_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parse_num.h"
#include "virtio_blk.h"

void card_common_defaults(struct card_common_config *c)
{
	*c = (struct card_common_config){
		.sector = 4096, .queues = 1, .iodepth = CARD_DEFAULT_IODEPTH,
		.channel_fd = -1, .peer_uid = geteuid(),
	};
}

/* Instance and device names end up in every log line: keep them plain. */
static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CARD_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789._-") == n;
}

int card_common_option(struct card_common_config *c, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case CARD_OPT_SOCKET:
		c->socket_path = arg;
		return 1;
	case CARD_OPT_FD:
		if (parse_u64_range(arg, 0, 1 << 20, &v) != 0)
			return -1;
		c->channel_fd = (int)v;
		return 1;
	case CARD_OPT_PEER_UID:
		/* (uid_t)-1 means "no change" to the kernel, never a real peer. */
		if (parse_u64_range(arg, 0, UINT32_MAX - 1, &v) != 0)
			return -1;
		c->peer_uid = (uid_t)v;
		c->peer_uid_given = 1;
		return 1;
	case CARD_OPT_INSTANCE:
	case CARD_OPT_DEVICE:
		if (!name_ok(arg))
			return -1;
		*(opt == CARD_OPT_INSTANCE ? &c->instance : &c->device) = arg;
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

int card_common_check(const struct card_common_config *c, char *err, size_t errlen)
{
	if ((c->socket_path != NULL) == (c->channel_fd >= 0)) {
		snprintf(err, errlen, "exactly one of --fd and --socket is required");
		return -1;
	}
	if (c->peer_uid_given && c->socket_path == NULL) {
		snprintf(err, errlen, "--peer-uid goes with --socket (an inherited --fd is "
			 "trusted as handed over)");
		return -1;
	}
	return 0;
}

void card_log_context(const struct card_common_config *c, char *out, size_t outlen)
{
	if (c->instance == NULL && c->device == NULL) {
		snprintf(out, outlen, "%s", "");
		return;
	}
	snprintf(out, outlen, "%s/%s", c->instance ? c->instance : "-",
		 c->device ? c->device : "-");
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
	char msg[128];
	if (card_common_check(card, msg, sizeof(msg)) != 0) {
		log_err("%s (see --help)", msg);
		return -1;
	}
	card_log_context(card, msg, sizeof(msg));
	log_set_context(msg);
	return 0;
}
