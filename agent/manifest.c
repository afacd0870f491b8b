/* hydra-agent manifest: the per-file manifest of a tool folder (docs/sync.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "mirrorfetch/mirrorfetch.h"

#define MANIFEST_BASE_ENV "HYDRA_FILES_BASE_URL"
/* The seed's name for the same thing, honoured when ours is unset. */
#define MANIFEST_BASE_ENV_SEED "BITSTATION_FILES_BASE_URL"

static int
manifest_run(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "tool-id", required_argument, NULL, 't' },
		{ "version", required_argument, NULL, 'v' },
		{ "base-url", required_argument, NULL, 'b' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *tool_id = NULL, *version = NULL, *out = NULL;
	const char *base = getenv(MANIFEST_BASE_ENV);
	struct mf_manifest *m = NULL;
	char *text = NULL;
	int rc, opt;

	(void)ctx;
	if (base == NULL || *base == '\0')
		base = getenv(MANIFEST_BASE_ENV_SEED);
	optind = 1;
	for (;;) {
		opt = getopt_long(argc, argv, "d:t:v:b:o:h", opts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'd': dir = optarg; break;
		case 't': tool_id = optarg; break;
		case 'v': version = optarg; break;
		case 'b': base = optarg; break;
		case 'o': out = optarg; break;
		case 'h':
			fputs(ag_cmd_manifest.usage, stdout);
			return 0;
		default:
			return hc_err_set(err, HC_EUSAGE, "manifest: see 'hydra-agent manifest --help'");
		}
	}
	if (optind != argc)
		return hc_err_set(err, HC_EUSAGE, "manifest: unexpected argument '%s'", argv[optind]);
	if (dir == NULL || tool_id == NULL || version == NULL)
		return hc_err_set(err, HC_EUSAGE, "manifest: --dir, --tool-id and --version are "
		                  "required");
	if (base == NULL || *base == '\0')
		return hc_err_set(err, HC_EUSAGE, "manifest: --base-url, " MANIFEST_BASE_ENV
		                  " or " MANIFEST_BASE_ENV_SEED " is required");
	rc = mf_manifest_from_dir(dir, tool_id, version, base, &m, err);
	if (rc != 0)
		goto done;
	text = mf_manifest_to_json(m);
	if (text == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	if (out != NULL) {
		char *line = NULL;
		size_t len = strlen(text);
		/* One trailing newline, as on stdout. */
		line = malloc(len + 2);
		if (line == NULL) {
			rc = hc_err_set(err, HC_ENOMEM, "out of memory");
			goto done;
		}
		memcpy(line, text, len);
		line[len] = '\n';
		rc = hc_atomic_write(out, line, len + 1, 0644, err);
		free(line);
	} else if (fprintf(stdout, "%s\n", text) < 0 || fflush(stdout) != 0) {
		rc = hc_err_set(err, HC_EIO, "write to stdout failed");
	}
done:
	free(text);
	mf_manifest_free(m);
	return rc;
}

const struct ag_command ag_cmd_manifest = {
	.name = "manifest",
	.summary = "write the per-file manifest of a tool folder",
	.usage =
	"usage: hydra-agent manifest --dir DIR --tool-id ID --version V --base-url URL\n"
	"                            [--out FILE]\n"
	"\n"
	"Hashes every regular file under DIR and writes the manifest that\n"
	"'hydra-agent sync' brings a folder up to: manifest_version, tool_id,\n"
	"tool_version, files [{path, sha256, size, url}] sorted by path, and\n"
	"manifest_hash (docs/sync.md). Each url is\n"
	"URL/api/v1/tools/ID/V/files/PATH, percent-encoded. The base URL can also come\n"
	"from " MANIFEST_BASE_ENV " (or " MANIFEST_BASE_ENV_SEED "). Top-level .hydra-* entries (a synced folder's\n"
	"own state) are not listed; symlinks and special files are skipped with a\n"
	"warning.\n"
	"\n"
	"  --out FILE   write FILE atomically instead of stdout\n"
	"\n"
	"Exit: 0, 64 usage, 65 a file name no manifest may hold, 66 --config\n"
	"missing, 73 cannot create FILE, 74 I/O error, 78 bad config.\n",
	.run = manifest_run,
	.needs_log = 0,
};
