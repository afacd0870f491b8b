/*
 * hydra-agent: installs builds through the district mirror, picks a body to
 * stream from, and syncs directories to manifests. main() is the only place
 * that turns a status into an exit code.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"

static const struct ag_command *const commands[] = {
	&ag_cmd_check_config,
	&ag_cmd_discover,
	&ag_cmd_invalidate,
	&ag_cmd_stream,
	&ag_cmd_install,
	&ag_cmd_manifest,
	&ag_cmd_sync,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *out)
{
	size_t i;

	fputs("usage: hydra-agent [--config FILE] [--log-level LEVEL] [--log-stderr]\n"
	      "                   COMMAND [ARGS...]\n"
	      "       hydra-agent --help | --version\n"
	      "\n"
	      "commands:\n", out);
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-14s %s\n", commands[i]->name, commands[i]->summary);
	fputs("\n"
	      "options:\n"
	      "  --config FILE      config file (default " AG_DEFAULT_CONFIG ")\n"
	      "  --log-level LEVEL  debug, info, warn or error (default info)\n"
	      "  --log-stderr       copy log lines to stderr even when it is not a terminal\n"
	      "\n"
	      "'hydra-agent COMMAND --help' describes a command. Exit codes follow\n"
	      "sysexits(3): 64 usage, 65 data, 69 unavailable, 73 cannot create,\n"
	      "74 I/O, 78 config.\n", out);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-stderr", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ag_ctx ctx;
	struct hc_err err = { 0, "" };
	const struct ag_command *cmd = NULL;
	enum hc_log_level level = HC_LOG_INFO;
	int log_stderr = isatty(STDERR_FILENO);
	int have_cfg = 0, have_http = 0;
	int rc = 0, c;
	size_t i;

	memset(&ctx, 0, sizeof(ctx));
	ctx.config_path = AG_DEFAULT_CONFIG;
	/* '+': stop at the subcommand; its options are its own. */
	for (;;) {
		c = getopt_long(argc, argv, "+c:l:ehV", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'c':
			ctx.config_path = optarg;
			ctx.config_given = 1;
			break;
		case 'l':
			if (hc_log_level_parse(optarg, &level) != 0) {
				rc = hc_err_set(&err, HC_EUSAGE, "--log-level: '%s' is not one of "
				                "debug, info, warn, error", optarg);
				goto done;
			}
			break;
		case 'e':
			log_stderr = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("hydra-agent %s\n", HC_VERSION);
			return 0;
		default:
			usage(stderr);
			return hc_status_exit_code(HC_EUSAGE);
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return hc_status_exit_code(HC_EUSAGE);
	}
	for (i = 0; i < NCOMMANDS; i++) {
		if (strcmp(argv[optind], commands[i]->name) == 0)
			cmd = commands[i];
	}
	if (cmd == NULL) {
		rc = hc_err_set(&err, HC_EUSAGE, "unknown command '%s' (see --help)",
		                argv[optind]);
		goto done;
	}
	rc = ag_config_load(&ctx.cfg, ctx.config_path, ctx.config_given, &err);
	if (rc != 0)
		goto done;
	have_cfg = 1;
	/* Lines go to stderr until the log file is open, so nothing is lost. */
	hc_log_open(NULL, level, 1, NULL);
	if (cmd->needs_log) {
		rc = hc_log_open(ctx.cfg.log_file, level, log_stderr, &err);
		if (rc != 0)
			goto done;
	}
	rc = hc_http_global_init(&err);
	if (rc != 0)
		goto done;
	have_http = 1;
	rc = cmd->run(&ctx, argc - optind, argv + optind, &err);
done:
	if (rc != 0)
		fprintf(stderr, "hydra-agent: %s\n", err.msg);
	if (have_http)
		hc_http_global_cleanup();
	if (have_cfg)
		ag_config_free(&ctx.cfg);
	hc_log_close();
	return hc_status_exit_code(rc);
}
