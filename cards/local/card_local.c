/*
 * flint-card-local: instance storage for one guest (IST-1..5).
 *
 * The same block card as card-ebs in its second mode: the store is a local
 * file or device, and the AES-256-XTS key is generated here, per device, and
 * never leaves this process (IST-3).  The device reads as zeros wherever the
 * instance has not written (IST-5, fresh_disk.h), whatever an earlier tenant
 * left in the store.  On release (SIGTERM: the instance stopped or
 * terminated) or when its one front end goes away, the key is destroyed -
 * crypto-erase (IST-4) - and the card exits.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk_xts.h"
#include "card_options.h"
#include "card_serve.h"
#include "file_backend.h"
#include "fresh_disk.h"
#include "key_mem.h"
#include "log.h"
#include "parse_num.h"

struct local_config {
	struct card_common_config card;
	const char *store_path;
	uint64_t size;
};

static void usage(void)
{
	printf("usage: flint-card-local (--fd N | --socket PATH) --store FILE [options]\n"
	       "  --store FILE         local file or block device backing the device\n"
	       "  --size BYTES         create or extend the store to this size\n"
	       CARD_COMMON_USAGE);
}

static int local_option(void *ctx, int opt, const char *arg)
{
	struct local_config *c = ctx;

	switch (opt) {
	case 'f': c->store_path = arg; return 1;
	case 'z': return parse_u64_range(arg, 4096, 1ULL << 50, &c->size) == 0 ? 1 : -1;
	default: return 0;
	}
}

static int parse_args(int argc, char **argv, struct local_config *c)
{
	static const struct option opts[] = {
		CARD_COMMON_OPTIONS,
		{ "store", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	*c = (struct local_config){ 0 };
	if (card_parse_options(argc, argv, opts, &c->card, local_option, c, usage) != 0)
		return -1;
	if (!c->store_path) {
		log_err("--store is required (see --help)");
		return -1;
	}
	return 0;
}

/*
 * Opens the store under a freshly generated key (the key page is wiped
 * after), as a device that reads as zeros until written.
 */
static int open_device(const struct local_config *c, struct blk_backend *vol)
{
	struct key_mem key;
	struct blk_backend store, xts;
	char err[256];

	if (key_mem_alloc(&key) != 0 || key_mem_generate(&key) != 0) {
		log_errno("cannot create the device key");
		key_mem_free(&key);
		return -1;
	}
	if (file_backend_open(&store, c->store_path, c->size, c->card.sector, err, sizeof(err)) != 0) {
		log_err("%s", err);
		key_mem_free(&key);
		return -1;
	}
	int rc = blk_xts_open(&xts, &store, key.page, c->card.sector, err, sizeof(err));
	key_mem_free(&key);
	if (rc != 0) {
		log_err("%s", err);
		store.ops->close(store.ctx);
		return rc;
	}
	rc = fresh_disk_open(vol, &xts, err, sizeof(err));
	if (rc != 0) {
		log_err("%s", err);
		xts.ops->close(xts.ctx);
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct local_config cfg;
	struct blk_backend vol;

	log_init("flint-card-local", LOG_INFO);
	if (parse_args(argc, argv, &cfg) != 0)
		return 2;
	if (card_lock_memory() != 0) {
		log_errno("cannot lock memory; refusing to hold keys");
		return 1;
	}
	if (open_device(&cfg, &vol) != 0)
		return 1;
	/* The key schedules are locked with the heap: guest RAM mapped later is not. */
	if (card_lock_memory_end() != 0) {
		log_errno("cannot lock the key schedules");
		vol.ops->close(vol.ctx);
		return 1;
	}
	struct vub_options vo = {
		.num_queues = cfg.card.queues, .iodepth = cfg.card.iodepth, .serial = cfg.card.serial,
	};
	int rc = card_run(&vol, &cfg.card, &vo, "instance store", CARD_PROFILE_LOCAL);
	/*
	 * Crypto-erase (IST-4): the key schedules are wiped on close.  What the
	 * store holds is ciphertext under a key that no longer exists, and the
	 * next card's device reads as zeros until written, so nothing is zeroed.
	 */
	vol.ops->close(vol.ctx);
	log_info("released: key destroyed (crypto-erase)");
	return rc == 0 ? 0 : 1;
}
