/*
 * flint-card-ebs-plain: BENCHMARK ONLY, never installed.  card-ebs's data
 * path without its AES-256-XTS layer: the same NBD client and the same
 * vhost-user-blk serving loop (card_run), so that bench/lab-blk.sh can show
 * what the encryption costs.  Production card-ebs has no way to turn
 * encryption off; this binary exists only in the build tree and the lab.
 *
 * Like card-ebs it locks the memory it holds at start, takes the same card options and presents
 * --sector-size blocks (when the export's size allows), so the only
 * difference is the XTS layer.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_options.h"
#include "card_serve.h"
#include "key_mem.h"
#include "log.h"
#include "nbd_client.h"
#include "storage_dialer.h"

static void usage(void)
{
	fprintf(stderr, "usage: flint-card-ebs-plain (--fd N | --socket PATH) --nbd ENDPOINT [options]\n"
		CARD_COMMON_USAGE "(benchmark only: no encryption)\n");
}

static int plain_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'n')
		return 0;
	*(const char **)ctx = arg;
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		CARD_COMMON_OPTIONS,
		{ "nbd", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct card_common_config card;
	const char *endpoint = NULL;
	char err[256];

	log_init("flint-card-ebs-plain", LOG_INFO);
	if (card_parse_options(argc, argv, opts, &card, plain_option, &endpoint, usage) != 0 ||
	    !endpoint) {
		usage();
		return 2;
	}
	/* Like card-ebs: storage connections come from a dialer, not the jail. */
	struct endpoint ep;
	struct storage_dialer dialer;
	if (endpoint_parse(endpoint, &ep, err, sizeof(err)) != 0 ||
	    storage_dialer_start(&dialer, &ep, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	/* No key here: locked as card-ebs is once its key schedules are in place. */
	if (card_lock_memory() != 0 || card_lock_memory_end() != 0) {
		log_errno("cannot lock memory");
		return 1;
	}
	struct nbd_client_config nc = {
		.endpoint = endpoint, .dial = storage_dialer_dial, .dial_ctx = &dialer,
	};
	struct blk_backend vol;
	if (nbd_backend_open(&vol, &nc, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	if (vol.size_bytes % card.sector == 0)
		vol.block_size = card.sector;
	log_info("UNENCRYPTED benchmark card: plaintext goes to the storage server");
	struct vub_options vo = {
		.num_queues = card.queues, .iodepth = card.iodepth, .serial = card.serial,
	};
	int rc = card_run(&vol, &card, &vo, "volume", CARD_PROFILE_EBS);
	vol.ops->close(vol.ctx);
	storage_dialer_stop(&dialer);
	return rc == 0 ? 0 : 1;
}
