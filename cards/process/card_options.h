/*
 * The command-line options every block card shares (the front-end channel:
 * --fd or --socket with --peer-uid; --instance and --device for its log
 * lines; --sector-size, --queues, --iodepth, --serial), parsed once here so that the cards accept
 * and check them identically.  Each card adds its own options to the same
 * getopt_long table with CARD_COMMON_OPTIONS and hands the codes it does not
 * know to card_common_option().
 */
#ifndef FLINT_CARDS_CARD_OPTIONS_H
#define FLINT_CARDS_CARD_OPTIONS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CARD_MAX_QUEUES 16
#define CARD_MAX_IODEPTH 64
#define CARD_DEFAULT_IODEPTH 8
/* --instance and --device: short names from a small alphabet, log-safe. */
#define CARD_NAME_MAX 32

enum card_common_opt {
	CARD_OPT_SOCKET = 0x1000,
	CARD_OPT_SECTOR,
	CARD_OPT_QUEUES,
	CARD_OPT_IODEPTH,
	CARD_OPT_SERIAL,
	CARD_OPT_FD,
	CARD_OPT_PEER_UID,
	CARD_OPT_INSTANCE,
	CARD_OPT_DEVICE,
};

#define CARD_COMMON_OPTIONS                                                   \
	{ "socket", required_argument, NULL, CARD_OPT_SOCKET },               \
	{ "sector-size", required_argument, NULL, CARD_OPT_SECTOR },          \
	{ "queues", required_argument, NULL, CARD_OPT_QUEUES },               \
	{ "iodepth", required_argument, NULL, CARD_OPT_IODEPTH },             \
	{ "serial", required_argument, NULL, CARD_OPT_SERIAL },               \
	{ "fd", required_argument, NULL, CARD_OPT_FD },                       \
	{ "peer-uid", required_argument, NULL, CARD_OPT_PEER_UID },           \
	{ "instance", required_argument, NULL, CARD_OPT_INSTANCE },           \
	{ "device", required_argument, NULL, CARD_OPT_DEVICE }

/* For each card's --help, after its own lines. */
#define CARD_COMMON_USAGE                                                                \
	"  --fd N               inherited, connected unix stream socket: the one\n"      \
	"                       front end's vhost-user channel (the VMM's mode)\n"        \
	"  --socket PATH        listen on PATH instead, for exactly one front end\n"     \
	"                       (QEMU); PATH is removed once it connected\n"              \
	"  --peer-uid UID       with --socket: the front end's uid (default: own)\n"     \
	"  --instance ID        instance this card serves, for log lines\n"              \
	"  --device NAME        device name in the instance, for log lines\n"            \
	"  --sector-size N      512 or 4096 (default 4096): encryption unit, block size\n" \
	"  --queues N           virtqueues, 1..16 (default 1)\n"                          \
	"  --iodepth N          threads serving each queue, 1..64 (default 8)\n"          \
	"  --serial ID          answer to VIRTIO_BLK_T_GET_ID (at most 20 bytes)\n"

struct card_common_config {
	const char *socket_path; /* --socket, or NULL */
	int channel_fd;          /* --fd, or -1 */
	uid_t peer_uid;          /* --peer-uid; the card's euid by default */
	int peer_uid_given;
	const char *instance;    /* --instance, or NULL */
	const char *device;      /* --device, or NULL */
	const char *serial;
	uint32_t sector;
	uint16_t queues;
	uint16_t iodepth;
};

void card_common_defaults(struct card_common_config *c);

/*
 * Applies option `opt` with argument `arg`.  1: it was a common option and
 * its value is valid; 0: not a common option; -1: a common option with an
 * invalid value (the caller reports it).
 */
int card_common_option(struct card_common_config *c, int opt, const char *arg);

/*
 * The checks across options: exactly one of --socket and --fd; --peer-uid
 * only with --socket.  0, or -1 with the reason in err.
 */
int card_common_check(const struct card_common_config *c, char *err, size_t errlen);

/* "i-42/vdb" from --instance/--device ("-" for a missing one), "" if neither. */
void card_log_context(const struct card_common_config *c, char *out, size_t outlen);

/*
 * A card's own option: 1 applied, 0 not one of its options, -1 invalid
 * value.
 */
typedef int (*card_own_option_fn)(void *ctx, int opt, const char *arg);

/*
 * The whole getopt_long loop every card runs: opts must hold
 * CARD_COMMON_OPTIONS, the card's own (handed to own), and
 * { "help", no_argument, NULL, 'h' } (prints usage and exits 0).  Resets
 * *card to the defaults first.  Unknown options, invalid values (named by
 * their option), stray arguments and card_common_check() failures are
 * logged; 0 or -1.  On success the log context is set from --instance and
 * --device.  Checking the card's own required options stays with the card.
 */
int card_parse_options(int argc, char **argv, const struct option *opts,
		       struct card_common_config *card, card_own_option_fn own, void *ctx,
		       void (*usage)(void));

#endif
