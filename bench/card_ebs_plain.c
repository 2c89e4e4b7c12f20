/*
 * flint-card-ebs-plain: BENCHMARK ONLY, never installed.  card-ebs's data
 * path without its AES-256-XTS layer: the same NBD client and the same
 * vhost-user-blk serving loop (card_run), so that bench/lab-blk.sh can show
 * what the encryption costs.  Production card-ebs has no way to turn
 * encryption off; this binary exists only in the build tree and the lab.
 *
 * Like card-ebs it locks its memory and presents 4096-byte blocks (when the
 * export's size allows), so the only difference is the XTS layer.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_serve.h"
#include "key_mem.h"
#include "log.h"
#include "nbd_client.h"
#include "parse_num.h"

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "nbd", required_argument, NULL, 'n' },
		{ "queues", required_argument, NULL, 'q' },
		{ "serial", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *endpoint = NULL, *serial = NULL;
	uint16_t queues = 1;
	uint64_t v;
	char err[256];
	int o;

	log_init("flint-card-ebs-plain", LOG_INFO);
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': sock = optarg; break;
		case 'n': endpoint = optarg; break;
		case 'i':
			if (strlen(optarg) > 20)
				goto usage;
			serial = optarg;
			break;
		case 'q':
			if (parse_u64_range(optarg, 1, 16, &v) != 0)
				goto usage;
			queues = (uint16_t)v;
			break;
		default:
			goto usage;
		}
	}
	if (optind < argc || !sock || !endpoint)
		goto usage;
	if (card_lock_memory() != 0) {
		log_errno("cannot lock memory");
		return 1;
	}
	struct nbd_client_config nc = { .endpoint = endpoint };
	struct blk_backend vol;
	if (nbd_backend_open(&vol, &nc, err, sizeof(err)) != 0) {
		log_err("%s", err);
		return 1;
	}
	if (vol.size_bytes % 4096 == 0)
		vol.block_size = 4096;
	log_info("UNENCRYPTED benchmark card: plaintext goes to the storage server");
	struct vub_options vo = { .num_queues = queues, .serial = serial };
	int rc = card_run(&vol, sock, &vo, "volume");
	vol.ops->close(vol.ctx);
	return rc == 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: flint-card-ebs-plain --socket PATH --nbd ENDPOINT "
		"[--queues N] [--serial ID]\n(benchmark only: no encryption)\n");
	return 2;
}
