/* A sync manifest through mf_manifest_parse; an accepted manifest must be
 * sorted, and its JSON must parse back to the same manifest_hash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/lib/support.h"
#include "mirrorfetch/mirrorfetch.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct mf_manifest *m = NULL, *again = NULL;
	char *text;
	size_t i;
	int rc;

	fz_quiet();
	rc = mf_manifest_parse((const char *)data, size, &m, &err);
	if (rc != 0) {
		if (m != NULL)
			fz_fail("a refused manifest is returned");
		if (rc != HC_EDATA && rc != HC_ENOMEM)
			fz_fail("mf_manifest_parse: unexpected status");
		return 0;
	}
	if (m->n > MF_MANIFEST_FILES_MAX)
		fz_fail("more files than a manifest may hold");
	for (i = 0; i < m->n; i++) {
		if (mf_manifest_check_path(m->files[i].path, strlen(m->files[i].path), err.msg,
		                           sizeof(err.msg)) != 0)
			fz_fail("an accepted path fails mf_manifest_check_path");
		if (i > 0 && strcmp(m->files[i - 1].path, m->files[i].path) >= 0)
			fz_fail("files are not sorted and unique");
	}
	text = mf_manifest_to_json(m);
	if (text != NULL) {
		if (mf_manifest_parse(text, strlen(text), &again, &err) != 0) {
			fprintf(stderr, "json:\n%s\nreparse: %s\n", text, err.msg);
			fz_fail("the JSON of an accepted manifest does not parse");
		}
		if (again->n != m->n || strcmp(again->manifest_hash, m->manifest_hash) != 0)
			fz_fail("the JSON of a manifest parses to another manifest");
		mf_manifest_free(again);
		free(text);
	}
	mf_manifest_free(m);
	return 0;
}
