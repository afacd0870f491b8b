/*
 * DIR/.hydra-index holding the input, read by mf_sync of a manifest whose
 * one file is already right in DIR: whatever the index says, the sync
 * succeeds without a transfer (the manifest's URL leads nowhere).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/lib/support.h"
#include "mirrorfetch/mirrorfetch.h"

static char dir[PATH_MAX], manifest[PATH_MAX], state[PATH_MAX];

static void
setup(void)
{
	struct hc_err err = { 0, "" };
	struct mf_manifest *m = NULL;
	char src[PATH_MAX];
	char *json;

	if (dir[0] != '\0')
		return;
	if (hc_snprintf(src, sizeof(src), "%s/src", fz_scratch()) != 0 ||
	    hc_snprintf(dir, sizeof(dir), "%s/dir", fz_scratch()) != 0 ||
	    hc_snprintf(state, sizeof(state), "%s/state", fz_scratch()) != 0 ||
	    hc_snprintf(manifest, sizeof(manifest), "%s/manifest.json", fz_scratch()) != 0 ||
	    hc_mkdir_p(src, 0755, &err) != 0 || hc_mkdir_p(dir, 0755, &err) != 0 ||
	    hc_mkdir_p(state, 0755, &err) != 0)
		fz_fail("cannot create the folders");
	fz_write(src, "a.txt", "hello\n", 6);
	fz_write(dir, "a.txt", "hello\n", 6);
	/* Port 9 (discard) on loopback: never contacted when the index is harmless. */
	if (mf_manifest_from_dir(src, "tool", "1", "http://127.0.0.1:9", &m, &err) != 0)
		fz_fail("cannot build the manifest");
	json = mf_manifest_to_json(m);
	if (json == NULL)
		fz_fail("out of memory");
	fz_write(fz_scratch(), "manifest.json", json, strlen(json));
	free(json);
	mf_manifest_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct mf_config cfg;
	struct mf_sync_options opt;
	struct mf_sync_result res;
	int rc;

	fz_quiet();
	setup();
	fz_write(dir, MF_SYNC_INDEX, data, size);
	memset(&cfg, 0, sizeof(cfg));
	cfg.node_id = "fuzz";
	cfg.state_dir = state;
	cfg.district_static = "";
	cfg.origin_host = "origin.invalid";
	cfg.url_pattern = "http://{district}.invalid";
	cfg.head_timeout_ms = 100;
	memset(&opt, 0, sizeof(opt));
	opt.manifest = manifest;
	opt.dir = dir;
	opt.jobs = 1;
	memset(&res, 0, sizeof(res));
	rc = mf_sync(&cfg, &opt, &res, &err);
	if (rc != 0) {
		fprintf(stderr, "%s\n", err.msg);
		fz_fail("sync of a folder that is already right failed because of its index");
	}
	if (res.downloaded != 0 || res.unchanged != 1)
		fz_fail("the index made sync download a file that was right");
	mf_sync_result_free(&res);
	return 0;
}
