/* hydra-agent check-config: validate a config and print the effective one. */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "agent/agent.h"

static int
check_config_run(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'h') {
			fputs(ag_cmd_check_config.usage, stdout);
			return 0;
		}
		return hc_err_set(err, HC_EUSAGE, "check-config: unknown option");
	}
	if (optind != argc)
		return hc_err_set(err, HC_EUSAGE, "check-config: unexpected argument '%s'",
		                  argv[optind]);
	fflush(stdout);
	printf("# %s: ok%s\n", ctx->config_path,
	       ctx->config_given ? "" : " (not present: defaults)");
	fflush(stdout);
	return hc_cfg_dump(ag_config_schema, &ctx->cfg, STDOUT_FILENO, err);
}

const struct ag_command ag_cmd_check_config = {
	.name = "check-config",
	.summary = "validate the config file and print the effective config",
	.usage =
	"usage: hydra-agent [--config FILE] check-config\n"
	"\n"
	"Loads FILE (default " AG_DEFAULT_CONFIG "), reports the first error as\n"
	"file:line:col and exits 78, or prints every setting with its effective value.\n"
	"\n"
	"Exit status: 0, 64 usage, 66 when the --config file is missing, 78 on a bad\n"
	"config.\n",
	.run = check_config_run,
	.needs_log = 0,
};
