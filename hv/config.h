/* flint-hv's command line: parsed and validated in one place. */
#ifndef FLINT_HV_CONFIG_H
#define FLINT_HV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HV_MEM_MIN_MIB 16ULL
#define HV_MEM_MAX_MIB (1024ULL * 1024) /* 1 TiB */
#define HV_MEM_DEFAULT_MIB 128ULL
#define HV_VCPUS_MAX 64
#define HV_CMDLINE_MAX 4095
#define HV_BLK_MAX 8
#define HV_BLK_QUEUES_MAX 16
#define HV_BLK_PATH_MAX 107 /* sizeof(sun_path) - 1 */

/*
 * --blk socket=PATH|fd=N[,queues=N]: a vhost-user-blk back end, reached by
 * connecting to PATH or over an inherited, connected socket N (the way the
 * controller hands a card's channel down, HV-7).
 */
struct hv_blk_config {
	char socket_path[HV_BLK_PATH_MAX + 1]; /* "" with fd */
	int fd;                                /* -1 with socket_path */
	unsigned int queues;
};

struct hv_config {
	const char *kernel_path;
	const char *initrd_path;   /* NULL: none */
	const char *cmdline;       /* never NULL after parsing */
	uint64_t mem_bytes;
	unsigned int vcpus;
	bool debug_exit;           /* decode the test-only debug-exit port */
	unsigned int nr_blk;
	struct hv_blk_config blk[HV_BLK_MAX];
	int log_level;             /* enum log_level */
	bool help;
	bool version;
};

/*
 * Parses argv into *cfg.  Returns 0 on success, -1 with a one-line reason in
 * err on any unknown option, missing value, out-of-range number or missing
 * kernel.  Never exits and never touches files.
 */
int hv_config_parse(struct hv_config *cfg, int argc, char **argv,
		    char *err, size_t errlen);

/* Parses "512", "512M", "2G" (MiB when no suffix) into bytes, range-checked. */
int hv_parse_mem_size(const char *s, uint64_t *bytes, char *err, size_t errlen);

void hv_config_usage(const char *prog);

#endif
