/*
 * The body's district: static config, the district API, or the last answer
 * the API gave (kept in state_dir so installs keep using the district mirror
 * while the API is down).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "mirrorfetch/mirrorfetch.h"

#define MOD "mirrorfetch"
/* The body config answer is a small JSON object. */
#define DISTRICT_BODY_MAX (64 * 1024)
/* The API is on the install path: do not let it hold an install for long. */
#define DISTRICT_API_TIMEOUT_MS 5000
#define DISTRICT_STATE_FILE "district"

struct district_body {
	char data[DISTRICT_BODY_MAX];
	size_t len;
};

static int
district_sink(void *ctx, const void *data, size_t len)
{
	struct district_body *b = ctx;

	if (len > sizeof(b->data) - 1 - b->len)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static int
district_state_path(const struct mf_config *cfg, char *out, size_t size)
{
	if (cfg->state_dir == NULL || *cfg->state_dir == '\0')
		return HC_ECONFIG;
	return hc_snprintf(out, size, "%s/%s", cfg->state_dir, DISTRICT_STATE_FILE);
}

/* Remembers a good answer. Failing to remember is logged, never fatal. */
static void
district_remember(const struct mf_config *cfg, const char *district)
{
	char path[MF_URL_MAX];
	struct hc_err err;

	if (district_state_path(cfg, path, sizeof(path)) != 0)
		return;
	if (hc_mkdir_p(cfg->state_dir, 0755, &err) != 0 ||
	    hc_atomic_write(path, district, strlen(district), 0644, &err) != 0)
		hc_log(HC_LOG_WARN, MOD, "cannot remember district: %s", err.msg);
}

static int
district_recall(const struct mf_config *cfg, char out[MF_DISTRICT_MAX])
{
	char path[MF_URL_MAX];
	char *text = NULL;
	size_t len = 0;
	int rc = HC_ENOTFOUND;

	if (district_state_path(cfg, path, sizeof(path)) != 0)
		return HC_ENOTFOUND;
	if (hc_read_file(path, MF_DISTRICT_MAX, &text, &len, NULL) != 0)
		return HC_ENOTFOUND;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (hc_is_dns_label(text) && hc_strlcpy(out, text, MF_DISTRICT_MAX) == 0)
		rc = 0;
	free(text);
	return rc;
}

/* Asks the district API. On error nothing is written to out. */
static int
district_ask_api(const struct mf_config *cfg, char out[MF_DISTRICT_MAX],
                 struct hc_err *err)
{
	struct hc_http_config http = cfg->http;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct district_body *body = NULL;
	struct json_object *obj = NULL;
	const char *district = NULL;
	char url[MF_URL_MAX];
	char id[3 * MF_NODE_ID_MAX];
	int rc;

	if (hc_query_encode(cfg->node_id != NULL ? cfg->node_id : "", id, sizeof(id)) != 0)
		return hc_err_set(err, HC_ECONFIG, "node_id longer than %d bytes", MF_NODE_ID_MAX - 1);
	if (hc_snprintf(url, sizeof(url), "%s%snode_id=%s", cfg->district_config_url,
	                strchr(cfg->district_config_url, '?') != NULL ? "&" : "?", id) != 0) {
		rc = hc_err_set(err, HC_ECONFIG, "district.config_url too long");
		goto done;
	}
	body = calloc(1, sizeof(*body));
	if (body == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	if (http.total_timeout_ms == 0 || http.total_timeout_ms > DISTRICT_API_TIMEOUT_MS)
		http.total_timeout_ms = DISTRICT_API_TIMEOUT_MS;
	req.url = url;
	req.sink = district_sink;
	req.ctx = body;
	req.fail_on_http_error = 1;
	rc = hc_http_request(&http, &req, &resp, err);
	if (rc != 0)
		goto done;
	if (resp.status != 200) {
		rc = hc_err_set(err, HC_EUNAVAIL, "HTTP %ld", resp.status);
		goto done;
	}
	rc = hc_json_parse(body->data, body->len, &obj, err);
	if (rc != 0)
		goto done;
	rc = hc_json_get_string(obj, "district", &district, err);
	if (rc != 0)
		goto done;
	if (*district != '\0' && !hc_is_dns_label(district)) {
		rc = hc_err_set(err, HC_EDATA, "field 'district': '%s' is not a DNS label",
		                district);
		goto done;
	}
	rc = hc_strlcpy(out, district, MF_DISTRICT_MAX) == 0 ? 0 :
	     hc_err_set(err, HC_EDATA, "field 'district': too long");
done:
	json_object_put(obj);
	free(body);
	return rc;
}

int
mf_district_lookup(const struct mf_config *cfg, char out[MF_DISTRICT_MAX],
                   struct hc_err *err)
{
	struct hc_err api_err = { 0, "" };
	int rc;

	out[0] = '\0';
	if (cfg->district_static != NULL && *cfg->district_static != '\0') {
		if (!hc_is_dns_label(cfg->district_static)) {
			hc_log(HC_LOG_WARN, MOD, "district '%s' is not a DNS label, using %s only",
			       cfg->district_static, cfg->origin_host);
			return 0;
		}
		hc_strlcpy(out, cfg->district_static, MF_DISTRICT_MAX);
		/* The contract line of docs/architecture.md section 7 first, so one grep finds every
		 * install that knew its district; the source follows. */
		hc_log(HC_LOG_INFO, MOD, "district %s from body config (district.static)", out);
		return 0;
	}
	if (cfg->district_config_url == NULL || *cfg->district_config_url == '\0') {
		if (district_recall(cfg, out) == 0)
			hc_log(HC_LOG_INFO, MOD, "district %s from body config (last known, no config_url)", out);
		return 0;
	}
	rc = district_ask_api(cfg, out, &api_err);
	if (rc == HC_ECONFIG || rc == HC_ENOMEM)
		return hc_err_set(err, rc, "%s", api_err.msg);
	if (rc == 0) {
		if (*out == '\0') {
			hc_log(HC_LOG_INFO, MOD, "no district in body config, using %s",
			       cfg->origin_host);
			return 0;
		}
		hc_log(HC_LOG_INFO, MOD, "district %s from body config", out);
		district_remember(cfg, out);
		return 0;
	}
	if (district_recall(cfg, out) == 0) {
		hc_log(HC_LOG_WARN, MOD,
		       "district %s from body config (last known; API unavailable: %s)",
		       out, api_err.msg);
		return 0;
	}
	if (rc == HC_EDATA)
		hc_log(HC_LOG_WARN, MOD, "district refused: %s, using %s", api_err.msg,
		       cfg->origin_host);
	else
		hc_log(HC_LOG_WARN, MOD, "body config unavailable (%s), no district known, using %s",
		       api_err.msg, cfg->origin_host);
	return 0;
}
