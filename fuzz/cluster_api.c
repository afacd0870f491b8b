/*
 * hydra-cluster-sim's API handler without a socket (clu_api_handle). Input:
 * "METHOD PATH?QUERY" on the first line, the request body after it; the
 * query is split at '&' and '=' (already decoded, as the server passes it).
 * Every answer is a valid HTTP status with a body that is valid JSON (and
 * valid UTF-8), and a 405 names what is allowed.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "fuzz/lib/support.h"

/* One head and two bodies of one district: enough for every partition. */
static const char fleet_yaml[] =
	"nodes:\n"
	"  - {id: node-head1, name: head-1, role: head, district: bxl1, venue: v1,\n"
	"     owner: o, lan_ip: 127.0.0.1, wg_ip: 127.0.0.2, status: online,\n"
	"     drained: false, idle: true, vram_mb: 0}\n"
	"  - {id: node-body1, name: body-1, role: body, district: bxl1, venue: v1,\n"
	"     owner: o, lan_ip: 127.0.0.3, wg_ip: 127.0.0.4, status: online,\n"
	"     drained: false, idle: true, vram_mb: 8192}\n"
	"  - {id: node-body2, name: body-2, role: body, district: bxl1, venue: v2,\n"
	"     owner: o, lan_ip: '::1', wg_ip: 127.0.0.5, status: offline,\n"
	"     drained: true, idle: false, vram_mb: 4096}\n";

static void
check_json(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (tok == NULL)
		fz_fail("out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		fprintf(stderr, "body: %.*s\n", (int)len, text);
		fz_fail("an API answer is not valid JSON in UTF-8");
	}
	json_object_put(o);
	json_tokener_free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct clu_param params[CLU_PARAMS_MAX + 2];
	struct hc_err err = { 0, "" };
	struct clu_fleet *fleet = NULL;
	struct clu_api *api = NULL;
	struct clu_request req;
	struct clu_response resp;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t head_len = nl != NULL ? (size_t)(nl - data) : size;
	char *text = fz_cstr(data, head_len);
	char *body = nl != NULL ? fz_cstr(nl + 1, size - head_len - 1) : NULL;
	char *head[2], *target[2], *q;

	fz_quiet();
	if (clu_fleet_load_buffer("fleet.yaml", fleet_yaml, sizeof(fleet_yaml) - 1, &fleet,
	                          &err) != 0 || clu_api_new(fleet, NULL, &api, &err) != 0)
		fz_fail("cannot set up the API");
	fz_split(text, ' ', head, 2);
	fz_split(head[1], '?', target, 2);
	memset(&req, 0, sizeof(req));
	req.method = head[0];
	req.path = target[0];
	req.params = params;
	for (q = target[1]; *q != '\0' && req.nparams < CLU_PARAMS_MAX + 2;) {
		char *kv[2], *next = strchr(q, '&');
		if (next != NULL)
			*next = '\0';
		fz_split(q, '=', kv, 2);
		params[req.nparams].key = kv[0];
		params[req.nparams].value = kv[1];
		req.nparams++;
		if (next == NULL)
			break;
		q = next + 1;
	}
	/* The body keeps its NUL bytes: it is everything after the first line. */
	req.body = body;
	req.body_len = body != NULL ? size - head_len - 1 : 0;
	if (clu_api_handle(api, &req, &resp) == 0) {
		if (resp.status < 200 || resp.status > 599 || resp.body == NULL)
			fz_fail("an answer without a status or a body");
		if (resp.status == 405 && resp.allow == NULL)
			fz_fail("a 405 without Allow");
		check_json(resp.body, resp.body_len);
	}
	clu_response_free(&resp);
	clu_api_free(api);
	free(body);
	free(text);
	return 0;
}
