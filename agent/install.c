/* hydra-agent install: the CLI of mirrorfetch (docs/architecture.md section 5). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "mirrorfetch/mirrorfetch.h"

static int
install_run(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "out", required_argument, NULL, 'o' },
		{ "sha256", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "progress", required_argument, NULL, 'p' },
		{ "source", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct ag_config *c = &ctx->cfg;
	struct mf_config mf;
	struct mf_result *res = NULL;
	const char *url = NULL, *out = NULL, *sha = NULL, *progress = "auto";
	enum mf_progress_mode mode = MF_PROGRESS_NONE;
	const char *sources[MF_EXTRA_SOURCES_MAX], *merged[MF_EXTRA_SOURCES_MAX];
	size_t n_sources = 0;
	char *servers = NULL;
	int json = 0, bar = 0, source_rc = 0;
	int rc, opt;

	optind = 1;
	for (;;) {
		opt = getopt_long(argc, argv, "u:o:s:jp:S:h", opts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'u': url = optarg; break;
		case 'o': out = optarg; break;
		case 's': sha = optarg; break;
		case 'j': json = 1; break;
		case 'p': progress = optarg; break;
		case 'S':
			/* Reported below, where --json covers it. */
			if (source_rc == 0)
				source_rc = ag_source_arg(optarg, sources, &n_sources,
				                          MF_EXTRA_SOURCES_MAX, err);
			break;
		case 'h':
			fputs(ag_cmd_install.usage, stdout);
			return 0;
		default:
			return hc_err_set(err, HC_EUSAGE, "install: see 'hydra-agent install --help'");
		}
	}
	/* From here on, --json reports every failure too. */
	res = calloc(1, sizeof(*res));
	if (res == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	if (out != NULL)
		hc_strlcpy(res->path, out, sizeof(res->path));
	if (source_rc != 0)
		rc = source_rc;
	else if (optind != argc)
		rc = hc_err_set(err, HC_EUSAGE, "install: unexpected argument '%s'", argv[optind]);
	else if (url == NULL || out == NULL)
		rc = hc_err_set(err, HC_EUSAGE, "install: --url and --out are required");
	else if (*out == '\0')
		rc = hc_err_set(err, HC_EUSAGE, "install: --out is empty");
	else
		rc = ag_progress_arg(progress, &bar, err);
	if (rc == 0)
		rc = ag_config_mirrorfetch(c, &mf, &servers, err);
	if (rc == 0)
		rc = ag_mirrorfetch_sources(&mf, sources, n_sources, merged, MF_EXTRA_SOURCES_MAX,
		                            err);
	mode = bar ? MF_PROGRESS_BAR : MF_PROGRESS_NONE;
	if (rc == 0)
		rc = mf_install(&mf, url, out, sha, mode, res, err);
	if (json)
		mf_result_print_json(res, rc, err != NULL ? err->msg : NULL, stdout);
	free(res);
	free(servers);
	return rc;
}

const struct ag_command ag_cmd_install = {
	.name = "install",
	.summary = "download a build through the district mirror, verified",
	.usage =
	"usage: hydra-agent install --url BUILD_URL --out PATH [--sha256 HEX] [--json]\n"
	"                           [--progress auto|bar|none] [--source URL]...\n"
	"\n"
	"Downloads BUILD_URL to PATH. When BUILD_URL is on mirror.origin_host and the\n"
	"body's district is known (district.static, or district.config_url), the\n"
	"district mirror is tried first and the origin is the fallback. Bytes go to\n"
	"PATH.part while SHA-256 is computed; a failing source hands over to the next\n"
	"one with a Range request. PATH only ever holds a verified file. The digest\n"
	"checked is --sha256, else the origin's (a HEAD beside the district probe),\n"
	"else the district's own X-File-SHA256 or Repr-Digest, with a warning.\n"
	"Mirrors named by mirror.extra_sources and --source are tried after the\n"
	"district and before the origin, in order; their digests are checked the\n"
	"same way.\n"
	"With --sha256 and a regular file at PATH that has that digest, nothing is\n"
	"fetched: exit 0, status \"already installed\".\n"
	"\n"
	"  --json          print the result as one JSON object on stdout\n"
	"  --progress M    progress bar on stderr: auto (when a terminal), bar, none\n"
	"  --source URL    another mirror, http(s)://HOST[:PORT] (repeatable, up to 6\n"
	"                  with mirror.extra_sources)\n"
	"\n"
	"A PATH or PATH.part that is a symbolic link or not a regular file is refused\n"
	"before anything is downloaded.\n"
	"\n"
	"Exit: 0 installed (or already installed), 64 usage (a malformed --url\n"
	"included), 65 checksum failed on every source that answered, 66 --config\n"
	"missing, 69 no source reachable, 73 cannot create PATH.part (or PATH is a\n"
	"link, a folder), 74 I/O error (disk full included), 78 bad config.\n",
	.run = install_run,
	.needs_log = 1,
};
