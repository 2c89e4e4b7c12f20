/*
 * flint-blk-mem-card: a test block card serving an in-memory disk over
 * vhost-user, for trying front ends (QEMU vhost-user-blk-pci, flint-hv).
 * Not jailed and not installed.
 *
 *   flint-blk-mem-card --socket PATH --size-mib N [--queues N]
 *                      [--block-size 512|4096] [--once] [-v]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "blk_mem.h"
#include "log.h"
#include "parse_num.h"
#include "vhost_user_blk.h"

/* A number in 1..max, via the strict shared parser. */
static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (parse_u64_range(s, 1, max, &v) != 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: flint-blk-mem-card --socket PATH --size-mib N "
		"[--queues 1..16] [--block-size 512|4096] [--once] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "size-mib", required_argument, NULL, 'm' },
		{ "queues", required_argument, NULL, 'q' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "once", no_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	uint32_t size_mib = 0, queues = 1, bs = 512;
	struct vub_options opts = { .serial = "flint-mem" };
	enum log_level level = LOG_INFO;
	int c;

	log_init("flint-blk-mem-card", LOG_INFO);
	while ((c = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'm':
			if (parse_u32(optarg, 1u << 16, &size_mib) != 0)
				usage();
			break;
		case 'q':
			if (parse_u32(optarg, 16, &queues) != 0)
				usage();
			break;
		case 'b':
			if (parse_u32(optarg, 4096, &bs) != 0 || (bs != 512 && bs != 4096))
				usage();
			break;
		case 'o':
			opts.once = true;
			break;
		case 'v':
			level = LOG_DEBUG;
			break;
		default:
			usage();
		}
	}
	if (path == NULL || size_mib == 0 || optind != argc)
		usage();
	log_set_level(level);
	opts.num_queues = (uint16_t)queues;

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("socket path too long: %s", path);
		return 1;
	}
	strcpy(sa.sun_path, path);

	struct blk_backend be;
	int rc = blk_mem_create(&be, (uint64_t)size_mib << 20, bs);
	if (rc != 0) {
		log_err("cannot create a %u MiB disk: %s", size_mib, strerror(-rc));
		return 1;
	}
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0) {
		log_errno("socket");
		return 1;
	}
	unlink(path);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 1) != 0) {
		log_errno("%s", path);
		return 1;
	}
	log_info("serving %u MiB (block %u, %u queues) on %s", size_mib, bs,
		 queues, path);
	rc = vub_serve(ls, &be, &opts);
	close(ls);
	unlink(path);
	be.ops->close(be.ctx);
	if (rc != 0 && rc != -EPROTO) {
		log_err("vub_serve: %s", strerror(-rc));
		return 1;
	}
	return 0;
}
