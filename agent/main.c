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
	      "  -h, --help         this text; after a command, the command's\n"
	      "  -V, --version      the program's version\n"
	      "\n"
	      "Global options go before or after the command (up to '--').\n"
	      "'hydra-agent COMMAND --help' describes a command. Exit codes follow\n"
	      "sysexits(3): 64 usage, 65 data, 66 no input file, 69 unavailable,\n"
	      "73 cannot create, 74 I/O, 78 config.\n", out);
}

/* The global options, known before and after the subcommand. */
struct main_opts {
	struct ag_ctx *ctx;
	enum hc_log_level level;
	int log_stderr;
	int help, version;
};

/* Applies one global option (c as getopt_long returns it). */
static int
main_global_opt(struct main_opts *mo, int c, const char *arg, struct hc_err *err)
{
	switch (c) {
	case 'c':
		mo->ctx->config_path = arg;
		mo->ctx->config_given = 1;
		return 0;
	case 'l':
		if (hc_log_level_parse(arg, &mo->level) != 0)
			return hc_err_set(err, HC_EUSAGE, "--log-level: '%s' is not one of "
			                  "debug, info, warn, error", arg);
		return 0;
	case 'e':
		mo->log_stderr = 1;
		return 0;
	case 'h':
		mo->help = 1;
		return 0;
	case 'V':
		mo->version = 1;
		return 0;
	default:
		return hc_err_set(err, HC_EUSAGE, "see 'hydra-agent --help'");
	}
}

/* The value of "--name VALUE" or "--name=VALUE" at argv[*i] (advancing *i
 * past a separate value), or NULL when argv[*i] is not that option. A
 * missing value is an error. */
static int
main_opt_value(const char *name, int argc, char **argv, int *i, const char **value,
               struct hc_err *err)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	*value = NULL;
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*value = a + n + 1;
		return 0;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return hc_err_set(err, HC_EUSAGE, "%s needs a value", name);
	(*i)++;
	*value = argv[*i];
	return 0;
}

/*
 * Takes the global options out of a subcommand's arguments (up to "--", after
 * which everything belongs to the command), so that `install --config F` works
 * as `--config F install`. argv is compacted in place; returns the new argc
 * through *argc. A subcommand's own option of the same name wins ("manifest
 * --version V" is the tool's version there; -V is the program's everywhere).
 */
static int
main_take_globals(struct main_opts *mo, const struct ag_command *cmd, int *argc,
                  char **argv, struct hc_err *err)
{
	int i, o = 1, rc;
	int own_version = strcmp(cmd->name, "manifest") == 0;

	for (i = 1; i < *argc; i++) {
		const char *a = argv[i], *v = NULL;

		if (strcmp(a, "--") == 0) {
			while (i < *argc)
				argv[o++] = argv[i++];
			break;
		}
		rc = main_opt_value("--config", *argc, argv, &i, &v, err);
		if (rc == 0 && v != NULL) {
			rc = main_global_opt(mo, 'c', v, err);
		} else if (rc == 0) {
			rc = main_opt_value("--log-level", *argc, argv, &i, &v, err);
			if (rc == 0 && v != NULL)
				rc = main_global_opt(mo, 'l', v, err);
		}
		if (rc != 0)
			return rc;
		if (v != NULL)
			continue;
		if (strcmp(a, "--log-stderr") == 0)
			mo->log_stderr = 1;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			mo->help = 1;
		else if (strcmp(a, "-V") == 0 || (!own_version && strcmp(a, "--version") == 0))
			mo->version = 1;
		else
			argv[o++] = argv[i];
	}
	argv[o] = NULL;
	*argc = o;
	return 0;
}

/* One error style: "hydra-agent <command>: <what>" (a message that already
 * names the command is not prefixed twice). */
static void
main_report(const struct ag_command *cmd, const struct hc_err *err)
{
	size_t n;

	if (cmd == NULL) {
		fprintf(stderr, "hydra-agent: %s\n", err->msg);
		return;
	}
	n = strlen(cmd->name);
	if (strncmp(err->msg, cmd->name, n) == 0 && err->msg[n] == ':')
		fprintf(stderr, "hydra-agent %s%s\n", cmd->name, err->msg + n);
	else
		fprintf(stderr, "hydra-agent %s: %s\n", cmd->name, err->msg);
}

/* Reads the global options before the subcommand and finds the subcommand
 * (*cmd stays NULL when there is none); the subcommand's own globals are taken
 * out of its arguments, *cmd_argc counting what is left from argv[optind].
 * 0, or HC_EUSAGE with the reason in err. */
static int
main_parse(struct main_opts *mo, int argc, char **argv, const struct ag_command **cmd,
           int *cmd_argc, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-stderr", no_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	size_t i;
	int c, rc;

	/* '+': stop at the subcommand; main_take_globals reads what follows.
	 * ':': a missing value is told apart from an unknown option. */
	opterr = 0;
	for (;;) {
		c = getopt_long(argc, argv, "+:c:l:ehV", opts, NULL);
		if (c == -1)
			break;
		if (c == ':')
			return hc_err_set(err, HC_EUSAGE, "%s needs a value",
			                  argv[optind - 1]);
		if (c == '?')
			return hc_err_set(err, HC_EUSAGE, "unknown option %s (see --help)",
			                  argv[optind - 1]);
		rc = main_global_opt(mo, c, optarg, err);
		if (rc != 0)
			return rc;
	}
	*cmd = NULL;
	*cmd_argc = argc - optind;
	if (optind >= argc)
		return 0;
	for (i = 0; i < NCOMMANDS; i++) {
		if (strcmp(argv[optind], commands[i]->name) == 0)
			*cmd = commands[i];
	}
	if (*cmd == NULL)
		return hc_err_set(err, HC_EUSAGE, "unknown command '%s' (see --help)", argv[optind]);
	return main_take_globals(mo, *cmd, cmd_argc, argv + optind, err);
}

int
main(int argc, char **argv)
{
	struct ag_ctx ctx;
	struct main_opts mo;
	struct hc_err err = { 0, "" };
	const struct ag_command *cmd = NULL;
	int have_cfg = 0, have_http = 0;
	int rc = 0, cmd_argc = 0;

	memset(&ctx, 0, sizeof(ctx));
	ctx.config_path = AG_DEFAULT_CONFIG;
	memset(&mo, 0, sizeof(mo));
	mo.ctx = &ctx;
	mo.level = HC_LOG_INFO;
	mo.log_stderr = isatty(STDERR_FILENO);
	rc = main_parse(&mo, argc, argv, &cmd, &cmd_argc, &err);
	if (rc != 0)
		goto done;
	/* Help and version need no config and no log: they always work. */
	if (mo.version) {
		printf("hydra-agent %s\n", HC_VERSION);
		return 0;
	}
	if (mo.help) {
		if (cmd != NULL)
			fputs(cmd->usage, stdout);
		else
			usage(stdout);
		return 0;
	}
	if (cmd == NULL) {
		usage(stderr);
		return hc_status_exit_code(HC_EUSAGE);
	}
	rc = ag_config_load(&ctx.cfg, ctx.config_path, ctx.config_given, &err);
	if (rc != 0)
		goto done;
	have_cfg = 1;
	/* Lines go to stderr until the log file is open, so nothing is lost. */
	hc_log_open(NULL, mo.level, 1, NULL);
	if (cmd->needs_log) {
		rc = hc_log_open(ctx.cfg.log_file, mo.level, mo.log_stderr, &err);
		if (rc != 0)
			goto done;
	}
	rc = hc_http_global_init(&err);
	if (rc != 0)
		goto done;
	have_http = 1;
	rc = cmd->run(&ctx, cmd_argc, argv + optind, &err);
done:
	if (rc != 0)
		main_report(cmd, &err);
	if (have_http)
		hc_http_global_cleanup();
	if (have_cfg)
		ag_config_free(&ctx.cfg);
	hc_log_close();
	return hc_status_exit_code(rc);
}
