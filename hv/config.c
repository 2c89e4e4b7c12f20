#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum {
	OPT_KERNEL = 0x100,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_MEM,
	OPT_CPUS,
	OPT_DEBUG_EXIT,
	OPT_LOG_LEVEL,
	OPT_HELP,
	OPT_VERSION,
	OPT_BLK,
};

static const struct option hv_options[] = {
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "cmdline", required_argument, NULL, OPT_CMDLINE },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "debug-exit", no_argument, NULL, OPT_DEBUG_EXIT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "blk", required_argument, NULL, OPT_BLK },
	{ NULL, 0, NULL, 0 },
};

void hv_config_usage(const char *prog)
{
	printf("usage: %s --kernel PATH [options]\n"
	       "  --kernel PATH     bzImage, or ELF with a PVH entry note\n"
	       "  --initrd PATH     initial ramdisk\n"
	       "  --cmdline STR     kernel command line (max %d bytes)\n"
	       "  --mem SIZE        guest RAM, MiB or with M/G suffix "
	       "(%llu MiB .. %llu MiB, default %llu)\n"
	       "  --cpus N          vCPUs, 1..%d (default 1)\n"
	       "  --debug-exit      decode the test debug-exit port 0xf4\n"
	       "  --log-level L     error, warn, info or debug (default info)\n"
	       "  --blk socket=PATH|fd=N[,queues=N]\n"
	       "                    virtio-blk served by a vhost-user back end on the unix\n"
	       "                    socket PATH (connected at start), N queues 1..%d\n"
	       "                    (default 1); repeatable, at most %d\n"
	       "exit status: 0 power-off, 2 bad usage or image, 4 guest reboot,\n"
	       "  6 triple fault, 8 internal error or failed back end,\n"
	       "  odd values from debug-exit\n",
	       prog, HV_CMDLINE_MAX, HV_MEM_MIN_MIB, HV_MEM_MAX_MIB,
	       HV_MEM_DEFAULT_MIB, HV_VCPUS_MAX, HV_BLK_QUEUES_MAX, HV_BLK_MAX);
}

static int parse_u64(const char *s, uint64_t *out, char **end)
{
	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, end, 10);
	if (errno != 0)
		return -1;
	*out = v;
	return 0;
}

int hv_parse_mem_size(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
	uint64_t v;
	char *end;

	if (parse_u64(s, &v, &end) != 0) {
		snprintf(err, errlen, "--mem: '%s' is not a size", s);
		return -1;
	}
	uint64_t mib = v;
	if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0) {
		if (v > HV_MEM_MAX_MIB / 1024) {
			snprintf(err, errlen, "--mem: '%s' exceeds %llu MiB", s,
				 HV_MEM_MAX_MIB);
			return -1;
		}
		mib = v * 1024;
	} else if (*end != '\0' && strcmp(end, "M") != 0 &&
		   strcmp(end, "MiB") != 0) {
		snprintf(err, errlen, "--mem: unknown suffix in '%s' (use M or G)", s);
		return -1;
	}
	if (mib < HV_MEM_MIN_MIB || mib > HV_MEM_MAX_MIB) {
		snprintf(err, errlen, "--mem: %" PRIu64 " MiB is outside %llu..%llu MiB",
			 mib, HV_MEM_MIN_MIB, HV_MEM_MAX_MIB);
		return -1;
	}
	*bytes = mib << 20;
	return 0;
}

static int parse_cpus(const char *s, unsigned int *out, char *err, size_t errlen)
{
	uint64_t v;
	char *end;

	if (parse_u64(s, &v, &end) != 0 || *end != '\0') {
		snprintf(err, errlen, "--cpus: '%s' is not a number", s);
		return -1;
	}
	if (v < 1 || v > HV_VCPUS_MAX) {
		snprintf(err, errlen, "--cpus: %s is outside 1..%d", s, HV_VCPUS_MAX);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

static int parse_log_level(const char *s, int *out, char *err, size_t errlen)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	snprintf(err, errlen, "--log-level: unknown level '%s'", s);
	return -1;
}

/* "N" for fd=N: a descriptor above stderr, at most 1023. */
static int parse_blk_fd(const char *p, size_t len, int *fd)
{
	char num[8];
	uint64_t v;
	char *end;

	if (len >= sizeof(num))
		return -1;
	snprintf(num, sizeof(num), "%.*s", (int)len, p);
	if (parse_u64(num, &v, &end) != 0 || *end != '\0' || v < 3 || v > 1023)
		return -1;
	*fd = (int)v;
	return 0;
}

/*
 * "socket=PATH|fd=N[,queues=N]", keys in any order, each at most once,
 * exactly one of socket and fd.  PATH cannot contain a comma.
 */
static int parse_blk(struct hv_config *cfg, const char *arg, char *err, size_t errlen)
{
	struct hv_blk_config b = { .fd = -1, .queues = 1 };
	bool have_socket = false, have_queues = false;
	const char *p = arg;

	if (cfg->nr_blk >= HV_BLK_MAX) {
		snprintf(err, errlen, "--blk: at most %d devices", HV_BLK_MAX);
		return -1;
	}
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > 7 && strncmp(p, "socket=", 7) == 0) {
			if (have_socket) {
				snprintf(err, errlen, "--blk %s: socket given twice", arg);
				return -1;
			}
			if (len - 7 > HV_BLK_PATH_MAX) {
				snprintf(err, errlen, "--blk: socket path of %zu bytes, at most %d",
					 len - 7, HV_BLK_PATH_MAX);
				return -1;
			}
			memcpy(b.socket_path, p + 7, len - 7);
			b.socket_path[len - 7] = '\0';
			have_socket = true;
		} else if (len > 3 && strncmp(p, "fd=", 3) == 0) {
			if (b.fd >= 0) {
				snprintf(err, errlen, "--blk %s: fd given twice", arg);
				return -1;
			}
			if (parse_blk_fd(p + 3, len - 3, &b.fd) != 0) {
				snprintf(err, errlen, "--blk: fd=%.*s is not a number in 3..1023",
					 (int)(len - 3 > 20 ? 20 : len - 3), p + 3);
				return -1;
			}
		} else if (len > 7 && strncmp(p, "queues=", 7) == 0) {
			char num[24];
			uint64_t v;
			char *nend;
			if (have_queues) {
				snprintf(err, errlen, "--blk %s: queues given twice", arg);
				return -1;
			}
			snprintf(num, sizeof(num), "%.*s", (int)(len - 7), p + 7);
			if (len - 7 >= sizeof(num) || parse_u64(num, &v, &nend) != 0 ||
			    *nend != '\0' || v < 1 || v > HV_BLK_QUEUES_MAX) {
				snprintf(err, errlen, "--blk: queues=%.*s is not a number in 1..%d",
					 (int)(len - 7 > 20 ? 20 : len - 7), p + 7,
					 HV_BLK_QUEUES_MAX);
				return -1;
			}
			b.queues = (unsigned int)v;
			have_queues = true;
		} else {
			snprintf(err, errlen, "--blk: unknown or empty key '%.*s' "
				 "(want socket=PATH|fd=N[,queues=N])", (int)(len > 40 ? 40 : len), p);
			return -1;
		}
		p += len;
		if (*p == ',' && *++p == '\0') {
			snprintf(err, errlen, "--blk %s: trailing comma", arg);
			return -1;
		}
	}
	if (have_socket == (b.fd >= 0)) {
		snprintf(err, errlen, "--blk: exactly one of socket=PATH and fd=N is required");
		return -1;
	}
	for (unsigned int i = 0; b.fd >= 0 && i < cfg->nr_blk; i++) {
		if (cfg->blk[i].fd == b.fd) {
			snprintf(err, errlen, "--blk fd=%d: given for two devices", b.fd);
			return -1;
		}
	}
	cfg->blk[cfg->nr_blk++] = b;
	return 0;
}

static int apply_option(struct hv_config *cfg, int opt, const char *arg,
			char *err, size_t errlen)
{
	switch (opt) {
	case OPT_KERNEL:
		cfg->kernel_path = arg;
		return 0;
	case OPT_INITRD:
		cfg->initrd_path = arg;
		return 0;
	case OPT_CMDLINE:
		if (strlen(arg) > HV_CMDLINE_MAX) {
			snprintf(err, errlen, "--cmdline: %zu bytes, at most %d",
				 strlen(arg), HV_CMDLINE_MAX);
			return -1;
		}
		cfg->cmdline = arg;
		return 0;
	case OPT_MEM:
		return hv_parse_mem_size(arg, &cfg->mem_bytes, err, errlen);
	case OPT_CPUS:
		return parse_cpus(arg, &cfg->vcpus, err, errlen);
	case OPT_DEBUG_EXIT:
		cfg->debug_exit = true;
		return 0;
	case OPT_LOG_LEVEL:
		return parse_log_level(arg, &cfg->log_level, err, errlen);
	case OPT_HELP:
		cfg->help = true;
		return 0;
	case OPT_VERSION:
		cfg->version = true;
		return 0;
	case OPT_BLK:
		return parse_blk(cfg, arg, err, errlen);
	default:
		snprintf(err, errlen, "unknown option (see --help)");
		return -1;
	}
}

int hv_config_parse(struct hv_config *cfg, int argc, char **argv,
		    char *err, size_t errlen)
{
	*cfg = (struct hv_config){
		.cmdline = "",
		.mem_bytes = HV_MEM_DEFAULT_MIB << 20,
		.vcpus = 1,
		.log_level = LOG_INFO,
	};
	opterr = 0;
	optind = 0; /* full reset of getopt state: parse may run more than once */
	int opt;
	while ((opt = getopt_long(argc, argv, "", hv_options, NULL)) != -1) {
		if (opt == '?' || opt == ':') {
			const char *bad = argv[optind - 1];
			snprintf(err, errlen, "%s: %s", bad,
				 opt == ':' ? "missing value" :
				 "unknown option or missing value (see --help)");
			return -1;
		}
		if (apply_option(cfg, opt, optarg, err, errlen) != 0)
			return -1;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (cfg->help || cfg->version)
		return 0;
	if (cfg->kernel_path == NULL) {
		snprintf(err, errlen, "--kernel is required");
		return -1;
	}
	return 0;
}
