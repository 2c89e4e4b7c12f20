/*
 * flint-card-ebs: one remote, encrypted block volume for one guest.
 *
 * The guest's virtio-blk rings are served here directly over vhost-user
 * (the VMM only sets them up); every sector is encrypted with AES-256-XTS
 * before it leaves this process (EBS-3) for the storage server, reached over
 * NBD (EBS-2).  The 512-bit volume key arrives on an inherited fd (the
 * control channel until KMS delivery lands), lives only in locked,
 * non-dumpable memory, and is wiped when the volume is detached (SIGTERM)
 * or its one front end goes away (EBS-6, CARD-7): the volume is flushed, the
 * key wiped and the card exits; it never serves a second front end.
 *
 * Start-up order: parse, start the storage dialer (a helper process that
 * connects to storage for the jailed card, forked before any key is in
 * memory), lock memory, read the key, connect to storage, take the front
 * end's channel, enter the jail, then serve.
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
#include "key_mem.h"
#include "log.h"
#include "nbd_client.h"
#include "parse_num.h"
#include "storage_dialer.h"

struct ebs_config {
	struct card_common_config card;
	const char *endpoint;
	const char *export_name;
	int key_fd;
	uint32_t retry_ms;
};

static void usage(void)
{
	printf("usage: flint-card-ebs (--fd N | --socket PATH) --nbd ENDPOINT --key-fd N [options]\n"
	       "  --nbd ENDPOINT       storage server: unix:/path, /path, IPv4:port or [IPv6]:port\n"
	       "  --export NAME        NBD export name (default: the default export)\n"
	       "  --key-fd N           fd carrying the 64-byte AES-256-XTS volume key\n"
	       "  --retry-timeout-ms N how long storage outages are retried (default 30000)\n"
	       CARD_COMMON_USAGE);
}

static int ebs_option(void *ctx, int opt, const char *arg)
{
	struct ebs_config *c = ctx;
	uint64_t v;

	switch (opt) {
	case 'n': c->endpoint = arg; return 1;
	case 'e': c->export_name = arg; return 1;
	case 'k':
		if (parse_u64_range(arg, 0, 1 << 20, &v) != 0)
			return -1;
		c->key_fd = (int)v;
		return 1;
	case 'r':
		if (parse_u64_range(arg, 1, 3600000, &v) != 0)
			return -1;
		c->retry_ms = (uint32_t)v;
		return 1;
	default:
		return 0;
	}
}

static int parse_args(int argc, char **argv, struct ebs_config *c)
{
	static const struct option opts[] = {
		CARD_COMMON_OPTIONS,
		{ "nbd", required_argument, NULL, 'n' },
		{ "export", required_argument, NULL, 'e' },
		{ "key-fd", required_argument, NULL, 'k' },
		{ "retry-timeout-ms", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	*c = (struct ebs_config){ .key_fd = -1, .retry_ms = 30000 };
	if (card_parse_options(argc, argv, opts, &c->card, ebs_option, c, usage) != 0)
		return -1;
	if (!c->endpoint || c->key_fd < 0) {
		log_err("--nbd and --key-fd are required (see --help)");
		return -1;
	}
	if (c->key_fd == c->card.channel_fd) {
		log_err("--key-fd and --fd must differ");
		return -1;
	}
	return 0;
}

/* Exactly 64 bytes, then EOF or not: a short key is refused. */
static int read_key(int fd, struct key_mem *k)
{
	size_t got = 0;
	while (got < XTS_KEY_BYTES) {
		ssize_t r = read(fd, k->page + got, XTS_KEY_BYTES - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct ebs_config cfg;
	struct key_mem key;
	struct blk_backend store, vol;
	struct endpoint ep;
	struct storage_dialer dialer;
	char err[256];

	log_init("flint-card-ebs", LOG_INFO);
	if (parse_args(argc, argv, &cfg) != 0)
		return 2;
	if (endpoint_parse(cfg.endpoint, &ep, err, sizeof(err)) != 0) {
		log_err("--nbd: %s", err);
		return 2;
	}
	/* Before any key is in memory: the jail has no socket() or connect(). */
	if (storage_dialer_start(&dialer, &ep, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	/* Keys and key schedules never reach swap or a core file (CARD-5). */
	if (card_lock_memory() != 0) {
		log_errno("cannot lock memory; refusing to hold keys");
		return 1;
	}
	if (key_mem_alloc(&key) != 0 || read_key(cfg.key_fd, &key) != 0) {
		log_err("--key-fd %d: need exactly %d key bytes", cfg.key_fd, XTS_KEY_BYTES);
		key_mem_free(&key);
		return 2;
	}
	struct nbd_client_config nc = {
		.endpoint = cfg.endpoint, .export_name = cfg.export_name,
		.retry_timeout_ms = cfg.retry_ms,
		.dial = storage_dialer_dial, .dial_ctx = &dialer,
	};
	if (nbd_backend_open(&store, &nc, err, sizeof(err)) != 0) {
		log_err("%s", err);
		key_mem_free(&key);
		return 1;
	}
	int rc = blk_xts_open(&vol, &store, key.page, cfg.card.sector, err, sizeof(err));
	key_mem_free(&key); /* the cipher contexts hold the only copy now */
	if (rc != 0) {
		log_err("%s", err);
		store.ops->close(store.ctx);
		return 2;
	}
	/* The key schedules are locked with the heap: guest RAM mapped later is not. */
	if (card_lock_memory_end() != 0) {
		log_errno("cannot lock the key schedules");
		vol.ops->close(vol.ctx);
		return 1;
	}
	struct vub_options vo = {
		.num_queues = cfg.card.queues, .iodepth = cfg.card.iodepth, .serial = cfg.card.serial,
	};
	rc = card_run(&vol, &cfg.card, &vo, "volume", CARD_PROFILE_EBS);
	/*
	 * Detach, or the front end is gone: what it wrote reaches storage, then
	 * the XTS layer wipes its key schedules as it closes (EBS-6).
	 */
	int fr = vol.ops->flush(vol.ctx);
	if (fr != 0)
		log_err("detach: flushing the volume failed: %s", strerror(-fr));
	vol.ops->close(vol.ctx);
	storage_dialer_stop(&dialer);
	log_info("volume detached, key wiped");
	return rc == 0 && fr == 0 ? 0 : 1;
}
