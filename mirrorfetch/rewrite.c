/* The seed's rewrite rule: origin URLs go to the district mirror first. */
#include <string.h>
#include <strings.h>

#include "mirrorfetch/mirrorfetch.h"

int
mf_is_origin(const struct hc_url *u, const char *origin_host)
{
	return origin_host != NULL && *origin_host != '\0' &&
	       strcasecmp(u->host, origin_host) == 0;
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

/* The district candidate for u: its URL, and its host from the one parse
 * that also proves the pattern gives a URL. */
static int
rewrite_district(const struct hc_url *u, const char *district, const char *url_pattern,
                 struct mf_candidate *out, struct hc_err *err)
{
	char base[MF_URL_MAX];
	struct hc_url d;

	if (rewrite_base(url_pattern, district, base, sizeof(base)) != 0 ||
	    hc_snprintf(out->url, sizeof(out->url), "%s%s", base, u->path_query) != 0)
		return hc_err_set(err, HC_ECONFIG, "mirror.url_pattern: URL too long");
	/* A pattern that yields no valid URL is a config error, not a fallback. */
	if (hc_url_parse(out->url, &d, NULL) != 0)
		return hc_err_set(err, HC_ECONFIG, "mirror.url_pattern gives '%s', not a URL",
		                  out->url);
	hc_strlcpy(out->host, d.host, sizeof(out->host));
	out->u = d;
	return 0;
}

void
mf_candidates_free(struct mf_candidates *c)
{
	size_t i;

	for (i = 0; i < MF_CANDIDATES_MAX; i++)
		hc_url_free(&c->c[i].u);
	c->n = 0;
}

int
mf_rewrite_url(const struct hc_url *u, const char *url, const char *district,
               const char *origin_host, const char *url_pattern,
               struct mf_candidates *out, struct hc_err *err)
{
	struct mf_candidate *last;
	int rc;

	memset(out, 0, sizeof(*out));
	if (district != NULL && *district != '\0' && mf_is_origin(u, origin_host)) {
		rc = rewrite_district(u, district, url_pattern, &out->c[0], err);
		if (rc != 0)
			return rc;
		out->n = 1;
	}
	last = &out->c[out->n];
	if (hc_strlcpy(last->url, url, MF_URL_MAX) != 0) {
		mf_candidates_free(out);
		return hc_err_set(err, HC_EDATA, "URL too long");
	}
	hc_strlcpy(last->host, u->host, sizeof(last->host));
	/* The caller keeps u: the candidate gets its own parse. */
	rc = hc_url_parse(url, &last->u, err);
	if (rc != 0) {
		mf_candidates_free(out);
		return rc;
	}
	out->n++;
	return 0;
}

int
mf_source_check(const char *value, char *what, size_t what_size)
{
	struct hc_url u;
	struct hc_err e;
	int bad;

	if (hc_url_parse(value, &u, &e) != 0) {
		hc_snprintf(what, what_size, "'%s' is not a mirror's base URL: %s", value, e.msg);
		return HC_ECONFIG;
	}
	/* The file's path is appended: a base with its own path or query would
	 * silently ask for other files. */
	bad = strcmp(u.path_query, "/") != 0;
	hc_url_free(&u);
	if (bad || strchr(value, '?') != NULL || strchr(value, '#') != NULL) {
		hc_snprintf(what, what_size, "'%s' is not a mirror's base URL: "
		            "want http(s)://HOST[:PORT] without a path", value);
		return HC_ECONFIG;
	}
	return 0;
}

/* Inserts cfg->extra_sources (base plus u's path and query) between the
 * district and the origin, the last of out. */
static int
rewrite_extras(const struct mf_config *cfg, const struct hc_url *u, struct mf_candidates *out,
               struct hc_err *err)
{
	struct mf_candidate origin = out->c[out->n - 1];
	size_t i, base_len;
	int rc;

	out->n--;
	memset(&out->c[out->n], 0, sizeof(out->c[out->n]));
	for (i = 0; i < cfg->n_extra_sources && i < MF_EXTRA_SOURCES_MAX; i++) {
		struct mf_candidate *c = &out->c[out->n];
		const char *base = cfg->extra_sources[i];

		base_len = strlen(base);
		while (base_len > 0 && base[base_len - 1] == '/')
			base_len--;
		if (hc_snprintf(c->url, sizeof(c->url), "%.*s%s", (int)base_len, base,
		                u->path_query) != 0) {
			rc = hc_err_set(err, HC_EDATA, "source %s: URL too long", base);
			goto fail;
		}
		rc = hc_url_parse(c->url, &c->u, err);
		if (rc != 0) {
			hc_err_prefix(err, "source %s", base);
			goto fail;
		}
		hc_strlcpy(c->host, c->u.host, sizeof(c->host));
		c->extra = 1;
		out->n++;
	}
	out->c[out->n++] = origin;
	return 0;
fail:
	hc_url_free(&origin.u);
	mf_candidates_free(out);
	return rc;
}

int
mf_candidates_for(const struct mf_config *cfg, const char *url, mf_district_fn district,
                  void *ctx, struct mf_candidates *out, struct hc_err *err)
{
	struct hc_url u;
	const char *d = "";
	int rc;

	memset(out, 0, sizeof(*out));
	rc = hc_url_parse(url, &u, err);
	if (rc != 0) {
		hc_err_prefix(err, "URL '%s'", url);
		if (err != NULL)
			err->status = HC_EUSAGE;
		return HC_EUSAGE;
	}
	if (mf_is_origin(&u, cfg->origin_host))
		rc = district(ctx, &d, err);
	if (rc == 0)
		rc = mf_rewrite_url(&u, url, d, cfg->origin_host, cfg->url_pattern, out, err);
	if (rc == 0 && cfg->n_extra_sources > 0 && mf_is_origin(&u, cfg->origin_host))
		rc = rewrite_extras(cfg, &u, out, err);
	hc_url_free(&u);
	return rc;
}
