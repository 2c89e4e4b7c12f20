/*
 * The command-line options every block card shares (--socket, --sector-size,
 * --queues, --iodepth, --serial), parsed once here so that the cards accept
 * and check them identically.  Each card adds its own options to the same
 * getopt_long table with CARD_COMMON_OPTIONS and hands the codes it does not
 * know to card_common_option().
 */
#ifndef FLINT_CARDS_CARD_OPTIONS_H
#define FLINT_CARDS_CARD_OPTIONS_H

#include <getopt.h>
#include <stdint.h>

#define CARD_MAX_QUEUES 16
#define CARD_MAX_IODEPTH 64
#define CARD_DEFAULT_IODEPTH 8

enum card_common_opt {
	CARD_OPT_SOCKET = 0x1000,
	CARD_OPT_SECTOR,
	CARD_OPT_QUEUES,
	CARD_OPT_IODEPTH,
	CARD_OPT_SERIAL,
};

#define CARD_COMMON_OPTIONS                                                   \
	{ "socket", required_argument, NULL, CARD_OPT_SOCKET },               \
	{ "sector-size", required_argument, NULL, CARD_OPT_SECTOR },          \
	{ "queues", required_argument, NULL, CARD_OPT_QUEUES },               \
	{ "iodepth", required_argument, NULL, CARD_OPT_IODEPTH },             \
	{ "serial", required_argument, NULL, CARD_OPT_SERIAL }

/* For each card's --help, after its own lines. */
#define CARD_COMMON_USAGE                                                                \
	"  --socket PATH        vhost-user socket the VMM connects to (required)\n"      \
	"  --sector-size N      512 or 4096 (default 4096): encryption unit, block size\n" \
	"  --queues N           virtqueues, 1..16 (default 1)\n"                          \
	"  --iodepth N          threads serving each queue, 1..64 (default 8)\n"          \
	"  --serial ID          answer to VIRTIO_BLK_T_GET_ID (at most 20 bytes)\n"

struct card_common_config {
	const char *socket_path;
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
 * A card's own option: 1 applied, 0 not one of its options, -1 invalid
 * value.
 */
typedef int (*card_own_option_fn)(void *ctx, int opt, const char *arg);

/*
 * The whole getopt_long loop every card runs: opts must hold
 * CARD_COMMON_OPTIONS, the card's own (handed to own), and
 * { "help", no_argument, NULL, 'h' } (prints usage and exits 0).  Resets
 * *card to the defaults first.  Unknown options, invalid values (named by
 * their option) and stray arguments are logged; 0 or -1.  Checking that
 * required options were given stays with the card.
 */
int card_parse_options(int argc, char **argv, const struct option *opts,
		       struct card_common_config *card, card_own_option_fn own, void *ctx,
		       void (*usage)(void));

#endif
