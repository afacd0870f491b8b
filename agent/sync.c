/* hydra-agent sync: bring a folder up to a per-file manifest (docs/sync.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "mirrorfetch/mirrorfetch.h"

static int
sync_run(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "manifest", required_argument, NULL, 'm' },
		{ "manifest-hash", required_argument, NULL, 'H' },
		{ "dir", required_argument, NULL, 'd' },
		{ "delete", no_argument, NULL, 'D' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "json", no_argument, NULL, 'J' },
		{ "progress", required_argument, NULL, 'p' },
		{ "source", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mf_sync_options so;
	struct mf_config mf;
	struct mf_sync_result *res = NULL;
	const char *progress = "auto";
	const char *sources[MF_EXTRA_SOURCES_MAX], *merged[MF_EXTRA_SOURCES_MAX];
	size_t n_sources = 0;
	char *servers = NULL;
	long long jobs = MF_SYNC_JOBS_DEFAULT;
	int json = 0;
	int rc, opt;

	memset(&so, 0, sizeof(so));
	optind = 1;
	for (;;) {
		opt = getopt_long(argc, argv, "m:H:d:Dj:Jp:S:h", opts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'm': so.manifest = optarg; break;
		case 'H':
			if (!hc_sha256_hex_valid(optarg))
				return hc_err_set(err, HC_EUSAGE, "--manifest-hash: '%s' is not 64 hex "
				                  "digits", optarg);
			so.manifest_hash = optarg;
			break;
		case 'd': so.dir = optarg; break;
		case 'D': so.delete_extra = 1; break;
		case 'j':
			if (hc_parse_int(optarg, 1, MF_SYNC_JOBS_MAX, &jobs) != 0)
				return hc_err_set(err, HC_EUSAGE, "--jobs: '%s' is not in 1..%d", optarg,
				                  MF_SYNC_JOBS_MAX);
			break;
		case 'J': json = 1; break;
		case 'p': progress = optarg; break;
		case 'S':
			rc = ag_source_arg(optarg, sources, &n_sources, MF_EXTRA_SOURCES_MAX, err);
			if (rc != 0)
				return rc;
			break;
		case 'h':
			fputs(ag_cmd_sync.usage, stdout);
			return 0;
		default:
			return hc_err_set(err, HC_EUSAGE, "sync: see 'hydra-agent sync --help'");
		}
	}
	if (optind != argc)
		return hc_err_set(err, HC_EUSAGE, "sync: unexpected argument '%s'", argv[optind]);
	if (so.manifest == NULL || so.dir == NULL)
		return hc_err_set(err, HC_EUSAGE, "sync: --manifest and --dir are required");
	rc = ag_progress_arg(progress, &so.progress, err);
	if (rc != 0)
		return rc;
	so.jobs = (int)jobs;

	res = calloc(1, sizeof(*res));
	if (res == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = ag_config_mirrorfetch(&ctx->cfg, &mf, &servers, err);
	if (rc == 0)
		rc = ag_mirrorfetch_sources(&mf, sources, n_sources, merged, MF_EXTRA_SOURCES_MAX,
		                            err);
	if (rc == 0)
		rc = mf_sync(&mf, &so, res, err);
	if (json)
		mf_sync_result_print_json(res, rc, err != NULL ? err->msg : NULL, stdout);
	mf_sync_result_free(res);
	free(res);
	free(servers);
	return rc;
}

const struct ag_command ag_cmd_sync = {
	.name = "sync",
	.summary = "bring a folder up to a per-file manifest, downloading what changed",
	.usage =
	"usage: hydra-agent sync --manifest URL|FILE --dir DIR [--delete] [--jobs N]\n"
	"                        [--manifest-hash HEX] [--json] [--progress auto|bar|none]\n"
	"                        [--source URL]...\n"
	"\n"
	"Reads the manifest (hydra-agent manifest), checks manifest_hash and every\n"
	"entry before writing anything, then downloads only the files of DIR that are\n"
	"missing or changed. Unchanged files are known from DIR/.hydra-index (size,\n"
	"mtime, ctime, inode) without hashing them again. Each file comes through the\n"
	"district mirror with the origin as fallback, exactly as 'install' fetches,\n"
	"into DIR/.hydra-staging; when every one is verified they are renamed into\n"
	"DIR. A run killed half-way resumes what it had downloaded.\n"
	"With more mirrors (mirror.extra_sources, --source) the files are spread\n"
	"over them, the least loaded first (outstanding bytes over the throughput\n"
	"measured in this run); a file whose mirror fails goes on from the next\n"
	"one, the origin last.\n"
	"\n"
	"  --delete     remove files of DIR the manifest does not list\n"
	"  --manifest-hash HEX  refuse a manifest whose manifest_hash is not HEX\n"
	"  --jobs N     transfers at once, 1 to 64 (default 4)\n"
	"  --json       print the result as one JSON object on stdout\n"
	"  --progress M summary on stderr: auto (when a terminal), bar, none\n"
	"  --source URL another mirror, http(s)://HOST[:PORT] (repeatable, up to 6\n"
	"               with mirror.extra_sources)\n"
	"\n"
	"Exit: 0 in sync, 64 usage, 65 bad manifest or checksum failed everywhere,\n"
	"66 --manifest or --config missing, 69 no source reachable, 73 cannot create\n"
	"in DIR, 74 I/O error, 78 bad config.\n",
	.run = sync_run,
	.needs_log = 1,
};
