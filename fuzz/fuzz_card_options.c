/*
 * libFuzzer target: the block cards' command-line parser
 * (card_parse_options in cards/process/card_options.c) on an argv built from
 * the input: arguments are the input's NUL-separated strings (at most 64),
 * after a fixed argv[0].  The option table is a card's: the common options,
 * two of the card's own (one with a value, one without) and --help.
 *
 * The parser keeps getopt's global state and exits on --help, so each run
 * resets getopt (optind = 0: a full re-initialisation in glibc) and the
 * usage callback jumps back here instead of returning to exit(0).  An
 * accepted command line must leave every common value in its documented
 * range.
 */
#include <getopt.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "card_options.h"

#define MAX_ARGS 64
#define SERIAL_MAX 20 /* VIRTIO_BLK_ID_BYTES: the GET_ID answer */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum own_opt { OWN_KEY_FILE = 0x2000, OWN_VERBOSE };

static const struct option options[] = {
	CARD_COMMON_OPTIONS,
	{ "key-file", required_argument, NULL, OWN_KEY_FILE },
	{ "verbose", no_argument, NULL, OWN_VERBOSE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct own_config {
	const char *key_file;
	bool verbose;
};

static jmp_buf after_help;

static void usage(void)
{
	longjmp(after_help, 1);
}

static int own_option(void *ctx, int opt, const char *arg)
{
	struct own_config *own = ctx;
	switch (opt) {
	case OWN_KEY_FILE:
		if (arg == NULL || *arg == '\0')
			return -1;
		own->key_file = arg;
		return 1;
	case OWN_VERBOSE:
		own->verbose = true;
		return 1;
	default:
		return 0;
	}
}

/* Is p one of the argument strings (or NULL)? */
static bool from_argv(const char *p, char *const *argv, int argc)
{
	if (p == NULL)
		return true;
	for (int i = 0; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static void check_accepted(const struct card_common_config *c, char *const *argv, int argc)
{
	if ((c->sector != 512 && c->sector != 4096) ||
	    c->queues < 1 || c->queues > CARD_MAX_QUEUES ||
	    c->iodepth < 1 || c->iodepth > CARD_MAX_IODEPTH ||
	    (c->serial != NULL && strlen(c->serial) > SERIAL_MAX) ||
	    !from_argv(c->serial, argv, argc) || !from_argv(c->socket_path, argv, argc))
		abort();
}

/* card_parse_options' result, or 1 after --help (where it would exit). */
static int parse(int argc, char **argv, struct card_common_config *card,
		 struct own_config *own)
{
	optind = 0;
	if (setjmp(after_help) != 0)
		return 1;
	return card_parse_options(argc, argv, options, card, own_option, own, usage);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *argv[MAX_ARGS + 2];
	static char prog[] = "flint-card-fuzz";

	/* NUL-terminated copy, split in place. */
	char *buf = malloc(size + 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	int argc = 0;
	argv[argc++] = prog;
	for (size_t pos = 0; pos < size && argc <= MAX_ARGS; pos += strlen(buf + pos) + 1)
		argv[argc++] = buf + pos;
	argv[argc] = NULL;
	/* getopt permutes argv: keep the original pointers to check against. */
	char *orig[MAX_ARGS + 2];
	memcpy(orig, argv, sizeof(orig));

	struct card_common_config card;
	struct own_config own = { NULL, false };
	if (parse(argc, argv, &card, &own) == 0)
		check_accepted(&card, orig, argc);
	free(buf);
	return 0;
}
