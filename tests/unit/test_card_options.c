/*
 * The block cards' shared options (cards/process/card_options.c): defaults,
 * the accepted ranges and every refusal, through getopt_long as the cards
 * call it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "card_options.h"

/* Runs getopt_long over argv like a card would; -1 on the first bad value. */
static int parse(struct card_common_config *c, int *others, char **argv)
{
	static const struct option opts[] = {
		CARD_COMMON_OPTIONS,
		{ "own", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	int argc = 0, o;
	while (argv[argc] != NULL)
		argc++;
	card_common_defaults(c);
	*others = 0;
	optind = 0; /* full re-initialisation between calls */
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int r = card_common_option(c, o, optarg);
		if (r < 0)
			return -1;
		if (r == 0)
			(*others)++;
	}
	return 0;
}

static void test_defaults(void **state)
{
	(void)state;
	struct card_common_config c;
	card_common_defaults(&c);
	assert_null(c.socket_path);
	assert_null(c.serial);
	assert_int_equal(c.sector, 4096);
	assert_int_equal(c.queues, 1);
	assert_int_equal(c.iodepth, CARD_DEFAULT_IODEPTH);
	assert_int_equal(c.channel_fd, -1);
	assert_int_equal(c.peer_uid, geteuid());
	assert_null(c.instance);
	assert_null(c.device);
}

static void test_valid(void **state)
{
	(void)state;
	struct card_common_config c;
	int others;
	char *argv[] = { "card", "--socket", "/tmp/s", "--sector-size", "512", "--queues", "16",
			 "--iodepth", "64", "--serial", "12345678901234567890", "--own", "x",
			 NULL };
	assert_int_equal(parse(&c, &others, argv), 0);
	assert_string_equal(c.socket_path, "/tmp/s");
	assert_string_equal(c.serial, "12345678901234567890");
	assert_int_equal(c.sector, 512);
	assert_int_equal(c.queues, 16);
	assert_int_equal(c.iodepth, 64);
	assert_int_equal(others, 1); /* --own is the card's, not ours */
}

static void test_refused(void **state)
{
	(void)state;
	static const char *bad[][2] = {
		{ "--sector-size", "1024" }, { "--sector-size", "0" }, { "--sector-size", "8192" },
		{ "--sector-size", "4096x" }, { "--queues", "0" }, { "--queues", "17" },
		{ "--queues", "-1" }, { "--queues", "" }, { "--iodepth", "0" },
		{ "--iodepth", "65" }, { "--iodepth", "99999999999999999999" },
		{ "--serial", "123456789012345678901" },
		{ "--fd", "-1" }, { "--fd", "3x" }, { "--peer-uid", "4294967295" },
		{ "--peer-uid", "-5" }, { "--instance", "" }, { "--instance", "i 42" },
		{ "--instance", "i/42" }, { "--device", "vdb]" }, { "--device", "vd\nb" },
		{ "--instance", "i-123456789012345678901234567890123" }, /* 34 chars */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct card_common_config c;
		int others;
		char *argv[] = { "card", (char *)bad[i][0], (char *)bad[i][1], NULL };
		print_message("%s '%s'\n", bad[i][0], bad[i][1]);
		assert_int_equal(parse(&c, &others, argv), -1);
	}
}

static void test_channel_and_names(void **state)
{
	(void)state;
	struct card_common_config c;
	char err[128], ctx[80];
	int others;
	char *fd_mode[] = { "card", "--fd", "3", "--instance", "i-42", "--device", "vd.b_1", NULL };
	assert_int_equal(parse(&c, &others, fd_mode), 0);
	assert_int_equal(c.channel_fd, 3);
	assert_int_equal(card_common_check(&c, err, sizeof(err)), 0);
	card_log_context(&c, ctx, sizeof(ctx));
	assert_string_equal(ctx, "i-42/vd.b_1");

	char *path_mode[] = { "card", "--socket", "/s", "--peer-uid", "107", NULL };
	assert_int_equal(parse(&c, &others, path_mode), 0);
	assert_int_equal(c.peer_uid, 107);
	assert_int_equal(card_common_check(&c, err, sizeof(err)), 0);
	card_log_context(&c, ctx, sizeof(ctx));
	assert_string_equal(ctx, "");

	/* Exactly one channel; --peer-uid only for a socket. */
	char *both[] = { "card", "--socket", "/s", "--fd", "3", NULL };
	char *neither[] = { "card", "--queues", "2", NULL };
	char *uid_with_fd[] = { "card", "--fd", "3", "--peer-uid", "0", NULL };
	char **refused[] = { both, neither, uid_with_fd };
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(parse(&c, &others, refused[i]), 0);
		assert_int_equal(card_common_check(&c, err, sizeof(err)), -1);
		print_message("%s\n", err);
	}
	char *device_only[] = { "card", "--fd", "0", "--device", "vdb", NULL };
	assert_int_equal(parse(&c, &others, device_only), 0);
	card_log_context(&c, ctx, sizeof(ctx));
	assert_string_equal(ctx, "-/vdb");
}

static int own_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'o')
		return 0;
	if (strcmp(arg, "bad") == 0)
		return -1;
	*(const char **)ctx = arg;
	return 1;
}

static void no_usage(void)
{
	fail_msg("--help is not part of these cases");
}

/* The shared loop: common and own options, and each way to be refused. */
static void test_parse_options(void **state)
{
	(void)state;
	static const struct option opts[] = {
		CARD_COMMON_OPTIONS,
		{ "own", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct card_common_config c;
	const char *own = NULL;
	char *ok[] = { "card", "--queues", "4", "--own", "x", "--socket=/s", NULL };
	optind = 0;
	assert_int_equal(card_parse_options(6, ok, opts, &c, own_option, &own, no_usage), 0);
	assert_int_equal(c.queues, 4);
	assert_string_equal(c.socket_path, "/s");
	assert_string_equal(own, "x");
	assert_int_equal(c.iodepth, CARD_DEFAULT_IODEPTH);

	char *bad_own[] = { "card", "--own", "bad", NULL };
	char *bad_common[] = { "card", "--iodepth", "0", NULL };
	char *unknown[] = { "card", "--nope", NULL };
	char *missing[] = { "card", "--own", NULL };
	char *stray[] = { "card", "--own", "x", "extra", NULL };
	char **refused[] = { bad_own, bad_common, unknown, missing, stray };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		int argc = 0;
		while (refused[i][argc] != NULL)
			argc++;
		optind = 0;
		assert_int_equal(card_parse_options(argc, refused[i], opts, &c, own_option, &own,
						    no_usage), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_channel_and_names),
		cmocka_unit_test(test_parse_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
