/* The seed's rewrite rule: origin URLs go to the district mirror first. */
#include <string.h>
#include <strings.h>

#include "mirrorfetch/mirrorfetch.h"

int
mf_is_origin_url(const char *url, const char *origin_host)
{
	struct hc_url u;
	int same;

	if (origin_host == NULL || *origin_host == '\0')
		return 0;
	if (hc_url_parse(url, &u, NULL) != 0)
		return 0;
	same = strcasecmp(u.host, origin_host) == 0;
	hc_url_free(&u);
	return same;
}

/* Writes pattern with every {district} replaced into out, without a trailing
 * slash. On error out is undefined. */
static int
rewrite_base(const char *pattern, const char *district, char *out, size_t size)
{
	static const char token[] = "{district}";
	const size_t tlen = sizeof(token) - 1;
	const char *p = pattern;
	size_t used = 0, dlen = strlen(district);

	while (*p != '\0') {
		if (strncmp(p, token, tlen) == 0) {
			if (used + dlen >= size)
				return HC_EDATA;
			memcpy(out + used, district, dlen);
			used += dlen;
			p += tlen;
			continue;
		}
		if (used + 1 >= size)
			return HC_EDATA;
		out[used++] = *p++;
	}
	while (used > 0 && out[used - 1] == '/')
		used--;
	out[used] = '\0';
	return 0;
}

int
mf_rewrite_url(const char *url, const char *district, const char *origin_host,
               const char *url_pattern, char out[2][MF_URL_MAX], size_t *n,
               struct hc_err *err)
{
	struct hc_url u = { .path_query = NULL };
	char base[MF_URL_MAX];
	int rc;

	*n = 0;
	rc = hc_url_parse(url, &u, err);
	if (rc != 0)
		return rc;
	if (district != NULL && *district != '\0' && origin_host != NULL &&
	    strcasecmp(u.host, origin_host) == 0) {
		if (rewrite_base(url_pattern, district, base, sizeof(base)) != 0 ||
		    hc_snprintf(out[0], MF_URL_MAX, "%s%s", base, u.path_query) != 0) {
			rc = hc_err_set(err, HC_ECONFIG, "mirror.url_pattern: URL too long");
			goto done;
		}
		/* A pattern that yields no valid URL is a config error, not a fallback. */
		if (hc_cfg_check_url(out[0], base, sizeof(base)) != 0) {
			rc = hc_err_set(err, HC_ECONFIG, "mirror.url_pattern gives '%s', not a URL",
			                out[0]);
			goto done;
		}
		*n = 1;
	}
	if (hc_strlcpy(out[*n], url, MF_URL_MAX) != 0) {
		rc = hc_err_set(err, HC_EDATA, "URL too long");
		goto done;
	}
	(*n)++;
	rc = 0;
done:
	hc_url_free(&u);
	return rc;
}
