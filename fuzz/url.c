/*
 * URL parsing and the district rewrite. Input: four lines, the URL, the
 * district, origin_host and url_pattern. Every candidate the rewrite gives
 * is a URL hc_url_parse accepts, and the last one is the URL itself.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/lib/support.h"
#include "mirrorfetch/mirrorfetch.h"

static void
check_candidate(const char *url)
{
	struct hc_err err = { 0, "" };
	struct hc_url u;

	if (hc_url_parse(url, &u, &err) != 0)
		fz_fail("the rewrite gave a candidate that is not a URL");
	hc_url_free(&u);
}

/* The rewrite ends with the URL itself, and every candidate parses. */
static void
check_rewrite(const struct hc_url *u, char **f)
{
	static struct mf_candidates out;
	struct hc_err err = { 0, "" };
	size_t i;

	(void)mf_is_origin(u, f[2]);
	if (mf_rewrite_url(u, f[0], f[1], f[2], f[3], &out, &err) != 0) {
		mf_candidates_free(&out);
		return;
	}
	if (out.n < 1 || out.n > MF_CANDIDATES_MAX || strcmp(out.c[out.n - 1].url, f[0]) != 0)
		fz_fail("the rewrite does not end with the URL itself");
	for (i = 0; i < out.n; i++)
		check_candidate(out.c[i].url);
	mf_candidates_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	char *text = fz_cstr(data, size);
	char *f[4];
	struct hc_url u;
	char what[HC_ERR_MAX];

	fz_quiet();
	fz_split(text, '\n', f, 4);
	if (hc_url_parse(f[0], &u, &err) == 0) {
		if (u.host[0] == '\0' || u.port < 1 || u.port > 65535 || u.path_query == NULL ||
		    u.path_query[0] == '\0')
			fz_fail("hc_url_parse accepted a URL without host, port or path");
		if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0)
			fz_fail("hc_url_parse accepted a scheme other than http(s)");
		if (hc_cfg_check_url(f[0], what, sizeof(what)) != 0)
			fz_fail("hc_cfg_check_url refuses what hc_url_parse accepts");
		check_rewrite(&u, f);
		hc_url_free(&u);
	}
	free(text);
	return 0;
}
