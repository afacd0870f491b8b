/*
 * A district mirror is an untrusted cache (issue 12): the digest a file is
 * checked against comes from the origin, asked with a HEAD that runs beside
 * the district probe, and a district caught serving other bytes is told so
 * with POST /api/v1/peer/verify/{path}.
 */
#include <inttypes.h>
#include <string.h>

#include "mirrorfetch/internal.h"

/* Routes of a file on a mirror and the store path each one maps to. */
#define ROUTE_FILES "/api/v1/peer/files/"
#define ROUTE_TOOLS "/api/v1/tools/"
#define ROUTE_VERIFY "/api/v1/peer/verify/"

static void *
origin_probe_main(void *arg)
{
	struct mf_origin_probe *p = arg;
	struct hc_http_config http = p->cfg->http;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;

	http.total_timeout_ms = p->cfg->head_timeout_ms;
	if (http.connect_timeout_ms == 0 || http.connect_timeout_ms > p->cfg->head_timeout_ms)
		http.connect_timeout_ms = p->cfg->head_timeout_ms;
	req.method = "HEAD";
	req.url = p->origin->url;
	req.parsed = &p->origin->u;
	req.fail_on_http_error = 1;
	if (hc_http_request(&http, &req, &resp, &p->why) != 0)
		return NULL;
	if (resp.sha256[0] == '\0') {
		hc_err_set(&p->why, HC_EUNAVAIL, "HTTP %ld without X-File-SHA256", resp.status);
		return NULL;
	}
	hc_strlcpy(p->sha256, resp.sha256, sizeof(p->sha256));
	return NULL;
}

int
mf_origin_probe_start(const struct mf_config *cfg, const struct mf_candidate *origin,
                      struct mf_origin_probe *p)
{
	memset(p, 0, sizeof(*p));
	p->cfg = cfg;
	p->origin = origin;
	if (pthread_create(&p->thread, NULL, origin_probe_main, p) != 0) {
		hc_err_set(&p->why, HC_ESOFTWARE, "cannot start the origin HEAD");
		return -1;
	}
	p->started = 1;
	return 0;
}

void
mf_origin_probe_wait(struct mf_origin_probe *p)
{
	if (!p->started)
		return;
	pthread_join(p->thread, NULL);
	p->started = 0;
}

/* The verify URL of the file c serves: its base, then ROUTE_VERIFY and the
 * store path, still percent-encoded, without the query. 0, or -1 when c's
 * URL is not a file route of a mirror. */
static int
origin_verify_url(const char *url, char *out, size_t size)
{
	const char *scheme_end = strstr(url, "://");
	const char *path, *rest, *store_prefix = "";
	size_t rest_len;

	if (scheme_end == NULL)
		return -1;
	path = strchr(scheme_end + 3, '/');
	if (path == NULL)
		return -1;
	if (strncmp(path, ROUTE_FILES, strlen(ROUTE_FILES)) == 0) {
		rest = path + strlen(ROUTE_FILES);
	} else if (strncmp(path, ROUTE_TOOLS, strlen(ROUTE_TOOLS)) == 0) {
		/* The tools tree is the mirror's store under tools/. */
		rest = path + strlen(ROUTE_TOOLS);
		store_prefix = "tools/";
	} else {
		return -1;
	}
	rest_len = strcspn(rest, "?#");
	if (rest_len == 0)
		return -1;
	return hc_snprintf(out, size, "%.*s" ROUTE_VERIFY "%s%.*s", (int)(path - url), url,
	                   store_prefix, (int)rest_len, rest) == 0 ? 0 : -1;
}

void
mf_report_mismatch(const struct mf_config *cfg, const struct mf_candidate *c,
                   const char *display)
{
	struct hc_http_config http = cfg->http;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct hc_err why = { 0, "" };
	char url[MF_URL_MAX];

	if (origin_verify_url(c->url, url, sizeof(url)) != 0) {
		hc_log(HC_LOG_WARN, MF_MOD, "sha256 mismatch of %s from %s not reported: %s is "
		       "not a mirror file URL", display, c->host, c->url);
		return;
	}
	/* A report is a courtesy: it never holds an install up for long. */
	http.total_timeout_ms = cfg->head_timeout_ms;
	if (http.connect_timeout_ms == 0 || http.connect_timeout_ms > cfg->head_timeout_ms)
		http.connect_timeout_ms = cfg->head_timeout_ms;
	http.stall_bytes_per_s = 0;
	req.method = "POST";
	req.url = url;
	req.fail_on_http_error = 1;
	if (hc_http_request(&http, &req, &resp, &why) != 0)
		hc_log(HC_LOG_WARN, MF_MOD, "sha256 mismatch of %s not reported to %s: %s",
		       display, c->host, why.msg);
	else
		hc_log(HC_LOG_WARN, MF_MOD, "sha256 mismatch of %s reported to %s (HTTP %ld)",
		       display, c->host, resp.status);
}
