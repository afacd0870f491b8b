/*
 * URL parsing and the district rewrite. Input: four lines, the URL, the
 * district, origin_host and url_pattern. Every candidate the rewrite gives
 * is a URL hc_url_parse accepts, and the last one is the URL itself.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/lib/support.h"
#include "mirrorfetch/mirrorfetch.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[2][MF_URL_MAX];
	struct hc_err err = { 0, "" };
	char *text = fz_cstr(data, size);
	char *f[4];
	struct hc_url u;
	size_t n = 0, i;
	char what[HC_ERR_MAX];

	fz_quiet();
	fz_split(text, '\n', f, 4);
	if (hc_url_parse(f[0], &u, &err) == 0) {
		if (u.host[0] == '\0' || u.port < 1 || u.port > 65535 || u.path_query == NULL ||
		    u.path_query[0] == '\0')
			fz_fail("hc_url_parse accepted a URL without host, port or path");
		if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0)
			fz_fail("hc_url_parse accepted a scheme other than http(s)");
		hc_url_free(&u);
		if (hc_cfg_check_url(f[0], what, sizeof(what)) != 0)
			fz_fail("hc_cfg_check_url refuses what hc_url_parse accepts");
	}
	(void)mf_is_origin_url(f[0], f[2]);
	if (mf_rewrite_url(f[0], f[1], f[2], f[3], out, &n, &err) == 0) {
		if (n < 1 || n > 2 || strcmp(out[n - 1], f[0]) != 0)
			fz_fail("the rewrite does not end with the URL itself");
		for (i = 0; i < n; i++) {
			if (hc_url_parse(out[i], &u, &err) != 0)
				fz_fail("the rewrite gave a candidate that is not a URL");
			hc_url_free(&u);
		}
	}
	free(text);
	return 0;
}
