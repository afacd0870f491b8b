/*
 * The head's latency report (body selection Phase 2): the round trips it
 * measured, sent to the cluster so that its ranking of the cross-venue
 * partition follows what heads see. Best effort: a report that fails is
 * logged and never changes the choice.
 */
#include <json-c/json.h>
#include <string.h>

#include "discovery/discovery.h"

/* The cluster is asked after the choice is made; a slow one must not hold
 * the stream back for long. */
#define REPORT_TIMEOUT_MS 2000
#define REPORT_URL_MAX 4096

/* Adds one sample; 0, or -1 when out of memory. */
static int
report_add(struct json_object *samples, const char *node_id, const char *transport,
           double ms)
{
	struct json_object *s = json_object_new_object();

	if (s == NULL)
		return -1;
	if (json_object_object_add(s, "node_id", json_object_new_string(node_id)) != 0 ||
	    json_object_object_add(s, "transport", json_object_new_string(transport)) != 0 ||
	    json_object_object_add(s, "rtt_ms", json_object_new_double(ms)) != 0 ||
	    json_object_array_add(samples, s) != 0) {
		json_object_put(s);
		return -1;
	}
	return 0;
}

/* The report's JSON text, or NULL when nothing was measured or out of
 * memory. Caller puts *root. */
static const char *
report_body(const struct disc_list *list, const struct disc_rtt *rtt,
            struct json_object **root)
{
	struct json_object *samples = json_object_new_array();
	size_t i, n = 0;
	int bad = samples == NULL;

	*root = json_object_new_object();
	bad |= *root == NULL;
	for (i = 0; !bad && i < list->n && i < DISC_MAX_BODIES; i++) {
		if (rtt->lan_ms[i] >= 0) {
			bad |= report_add(samples, list->bodies[i].node_id, "lan", rtt->lan_ms[i]) != 0;
			n++;
		}
		if (!bad && rtt->wg_ms[i] >= 0) {
			bad |= report_add(samples, list->bodies[i].node_id, "wg", rtt->wg_ms[i]) != 0;
			n++;
		}
	}
	if (!bad && n > 0 && json_object_object_add(*root, "samples", samples) == 0)
		return json_object_to_json_string_ext(*root, JSON_C_TO_STRING_PLAIN);
	json_object_put(samples);
	return NULL;
}

void
disc_report_latency(const struct disc_config *cfg, const struct disc_list *list,
                    const struct disc_rtt *rtt)
{
	static const char *const headers[] = { "Content-Type: application/json", NULL };
	char url[REPORT_URL_MAX], head[3 * DISC_LABEL_MAX + 1];
	struct hc_http_config http = cfg->http;
	struct hc_http_request req;
	struct hc_http_response resp;
	struct hc_err err = { 0, "" };
	struct json_object *root = NULL;
	const char *body;
	size_t base;

	body = report_body(list, rtt, &root);
	if (body == NULL || cfg->cluster_url == NULL || cfg->head_id == NULL)
		goto done;
	base = strlen(cfg->cluster_url);
	while (base > 0 && cfg->cluster_url[base - 1] == '/')
		base--;
	if (hc_query_encode(cfg->head_id, head, sizeof(head)) != 0 ||
	    hc_snprintf(url, sizeof(url), "%.*s/api/v1/heads/%s/latency", (int)base,
	                cfg->cluster_url, head) != 0) {
		hc_log(HC_LOG_WARN, "discovery", "latency report not sent: URL too long");
		goto done;
	}
	if (http.total_timeout_ms == 0 || http.total_timeout_ms > REPORT_TIMEOUT_MS)
		http.total_timeout_ms = REPORT_TIMEOUT_MS;
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.body = body;
	req.body_len = strlen(body);
	req.headers = headers;
	req.fail_on_http_error = 1;
	req.cancel = (volatile int *)cfg->cancel;
	if (hc_http_request(&http, &req, &resp, &err) != 0)
		hc_log(HC_LOG_WARN, "discovery", "latency report to %s not accepted: %s", url,
		       err.msg);
	else
		hc_log(HC_LOG_DEBUG, "discovery", "latency report sent to %s", url);
done:
	json_object_put(root);
}
