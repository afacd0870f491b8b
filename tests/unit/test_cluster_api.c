/* The cluster API without a socket: routing, answers, error statuses and
 * messages, and --save writing the fleet back (or refusing the change). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cluster/cluster.h"

static const char fleet_text[] =
	"nodes:\n"
	"  - {id: node-74adf4f8, name: peppy-dumpling-32, role: head, district: bxl1,\n"
	"     venue: rupelmonde, owner: visit.flanders, lan_ip: 127.11.0.32,\n"
	"     wg_ip: 127.10.100.32, status: online}\n"
	"  - {id: node-74f9fbf2, name: boom-pickle-38, role: body, district: bxl1,\n"
	"     venue: rupelmonde, owner: visit.flanders, lan_ip: 127.11.0.24,\n"
	"     wg_ip: 127.10.100.24, status: online, idle: true, vram_mb: 12288}\n"
	"  - {id: node-4c2be4b0, name: cosmic-pretzel-98, role: body, district: bxl1,\n"
	"     venue: cloud-seven, owner: visit.flanders, lan_ip: 127.11.0.12,\n"
	"     wg_ip: 127.10.100.12, status: online, idle: true, vram_mb: 8192}\n";

/* An api over the fleet in text. */
static struct clu_api *
api_of(const char *text, const char *save_path)
{
	struct clu_fleet *fleet = NULL;
	struct clu_api *api = NULL;
	struct hc_err err = { 0, "" };

	assert_int_equal(clu_fleet_load_buffer("fleet.yaml", text, strlen(text), &fleet,
	                                       &err), 0);
	assert_int_equal(clu_api_new(fleet, save_path, &api, &err), 0);
	return api;
}

static struct clu_api *
api_new(const char *save_path)
{
	return api_of(fleet_text, save_path);
}

/* Runs one request; query is "k=v&k2=v2" (already decoded) or NULL. The
 * answer's body is returned in *body (caller frees), the status returned. */
static int
call(struct clu_api *api, const char *method, const char *path, const char *query,
     const char *body, char **out)
{
	struct clu_param params[CLU_PARAMS_MAX + 2];
	struct clu_request req = { method, path, params, 0, body,
	                           body != NULL ? strlen(body) : 0 };
	struct clu_response resp;
	char *q = query != NULL ? strdup(query) : NULL;
	char *p = q, *amp;
	int status;

	while (p != NULL && *p != '\0' && req.nparams < CLU_PARAMS_MAX + 2) {
		char *eq;
		amp = strchr(p, '&');
		if (amp != NULL)
			*amp = '\0';
		eq = strchr(p, '=');
		if (eq != NULL)
			*eq = '\0';
		params[req.nparams].key = p;
		params[req.nparams].value = eq != NULL ? eq + 1 : "";
		req.nparams++;
		p = amp != NULL ? amp + 1 : NULL;
	}
	assert_int_equal(clu_api_handle(api, &req, &resp), 0);
	assert_non_null(resp.body);
	assert_int_equal(strlen(resp.body), resp.body_len);
	status = resp.status;
	*out = resp.body;
	resp.body = NULL;
	clu_response_free(&resp);
	free(q);
	return status;
}

static void
expect(struct clu_api *api, const char *method, const char *path, const char *query,
       const char *body, int want_status, const char *want_text)
{
	char *out = NULL;
	int status = call(api, method, path, query, body, &out);

	if (status != want_status || strstr(out, want_text) == NULL)
		fail_msg("%s %s?%s: got %d %s, want %d with %s", method, path,
		         query != NULL ? query : "", status, out, want_status, want_text);
	free(out);
}

static void
test_eligible(void **state)
{
	struct clu_api *api = api_new(NULL);

	(void)state;
	expect(api, "GET", "/api/v1/bodies/eligible", "head_id=node-74adf4f8", NULL, 200,
	       "{\"bodies\":[{\"node_id\":\"node-74f9fbf2\",\"name\":\"boom-pickle-38\","
	       "\"district\":\"bxl1\",\"venue\":\"rupelmonde\",\"owner\":\"visit.flanders\","
	       "\"lan_ip\":\"127.11.0.24\",\"wg_ip\":\"127.10.100.24\",\"status\":\"online\","
	       "\"drained\":false,\"idle\":true,\"vram_mb\":12288,\"same_venue\":true}],"
	       "\"partition\":\"quickroute\",\"district\":\"bxl1\",\"venue\":\"rupelmonde\","
	       "\"head_id\":\"node-74adf4f8\"}\n");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/district", NULL,
	       "{\"district\":\"bxl1-test\",\"venue\":\"rupelmonde\"}", 200,
	       "\"district\":\"bxl1-test\"");
	expect(api, "GET", "/api/v1/bodies/eligible",
	       "district=bxl1&venue=rupelmonde&head_id=node-74adf4f8", NULL, 200,
	       "{\"bodies\":[{\"node_id\":\"node-4c2be4b0\"");
	expect(api, "GET", "/api/v1/bodies/eligible", "head_id=node-74adf4f8", NULL, 200,
	       "\"same_venue\":false}],\"partition\":\"cross_venue\"");
	expect(api, "GET", "/api/v1/bodies/eligible", "district=bxl1&venue=rupelmonde",
	       NULL, 200, "{\"bodies\":[],\"partition\":\"strict_venue\"");
	expect(api, "GET", "/api/v1/body/config", "node_id=node-74f9fbf2", NULL, 200,
	       "{\"node_id\":\"node-74f9fbf2\",\"district\":\"bxl1-test\","
	       "\"venue\":\"rupelmonde\",\"owner\":\"visit.flanders\"}\n");
	clu_api_free(api);
}

static void
test_errors(void **state)
{
	struct clu_api *api = api_new(NULL);
	char big[CLU_BODY_MAX + 2];

	(void)state;
	expect(api, "GET", "/api/v1/bodies/eligible", "head_id=node-0", NULL, 404,
	       "{\"error\":\"unknown head 'node-0'\"}\n");
	expect(api, "GET", "/api/v1/bodies/eligible", "head_id=", NULL, 400,
	       "query parameter 'head_id': '' is not a node id");
	expect(api, "GET", "/api/v1/bodies/eligible", "head_id=node-74f9fbf2", NULL, 400,
	       "is a body, not a head");
	expect(api, "GET", "/api/v1/bodies/eligible", "district=bxl1", NULL, 400,
	       "missing query parameter 'venue' (required without head_id)");
	expect(api, "GET", "/api/v1/bodies/eligible", "district=b_x&venue=v", NULL, 400,
	       "query parameter 'district': 'b_x' is not a DNS label");
	expect(api, "GET", "/api/v1/bodies/eligible", "head_id=node-74adf4f8&x=1", NULL, 400,
	       "unknown query parameter 'x'");
	expect(api, "GET", "/api/v1/bodies/eligible",
	       "a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1&a=1",
	       NULL, 400, "too many query parameters");
	expect(api, "GET", "/api/v1/nodes", "verbose=1", NULL, 400,
	       "unknown query parameter 'verbose'");
	expect(api, "GET", "/api/v1/body/config", "node_id=node-0", NULL, 404,
	       "unknown node 'node-0'");
	expect(api, "GET", "/api/v1/nodes/node-0", NULL, NULL, 404, "unknown node 'node-0'");
	expect(api, "GET", "/api/v1/nodes/bad%20id", NULL, NULL, 400,
	       "node id: 'bad%20id' is not a node id");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/district", NULL, "{\"district\":null}",
	       400, "request body: field 'district': expected a string, got null");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/district", NULL,
	       "{\"district\":\"bxl1\",\"venue\":7}", 400,
	       "request body: field 'venue': expected a string, got an integer");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/district", NULL,
	       "{\"district\":\"bxl1\"} x", 400, "request body: invalid JSON at offset 20");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL,
	       "{\"status\":\"online\",\"drained\":1}", 400,
	       "field 'drained': expected a boolean, got an integer");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL,
	       "{\"status\":null,\"drained\":null}", 400,
	       "field 'status': expected a string, got null");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL, "{}", 400,
	       "nothing to change");
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL, big, 413,
	       "request body larger than 4096 bytes");
	expect(api, "POST", "/api/v1/nodes", NULL, "{}", 405,
	       "method POST not allowed on /api/v1/nodes (allowed: GET)");
	expect(api, "GET", "/api/v1/nodes/node-74f9fbf2/venue", NULL, NULL, 404,
	       "no such endpoint: /api/v1/nodes/node-74f9fbf2/venue");
	expect(api, "GET", "/", NULL, NULL, 404, "no such endpoint: /");
	/* Nothing above changed the fleet. */
	expect(api, "GET", "/api/v1/nodes/node-74f9fbf2", NULL, NULL, 200,
	       "\"district\":\"bxl1\",\"venue\":\"rupelmonde\",\"owner\":\"visit.flanders\","
	       "\"lan_ip\":\"127.11.0.24\",\"wg_ip\":\"127.10.100.24\",\"status\":\"online\","
	       "\"drained\":false");
	expect(api, "GET", "/api/v1/health", NULL, NULL, 200,
	       "{\"status\":\"healthy\",\"service\":\"hydra-cluster-sim\"");
	clu_api_free(api);
}

static void
test_405_allow(void **state)
{
	struct clu_api *api = api_new(NULL);
	struct clu_request req = { "GET", "/api/v1/nodes/node-74f9fbf2/status", NULL, 0,
	                           NULL, 0 };
	struct clu_response resp;

	(void)state;
	assert_int_equal(clu_api_handle(api, &req, &resp), 0);
	assert_int_equal(resp.status, 405);
	assert_string_equal(resp.allow, "POST");
	clu_response_free(&resp);
	clu_api_free(api);
}

static void
test_save(void **state)
{
	char dir[] = "/tmp/test_cluster_api.XXXXXX";
	char path[256], bad[300];
	struct clu_fleet *fleet = NULL;
	struct clu_api *api;
	struct hc_err err = { 0, "" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fleet.yaml", dir);
	api = api_new(path);
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL,
	       "{\"drained\":true}", 200, "\"drained\":true");
	assert_int_equal(clu_fleet_load_file(path, &fleet, &err), 0);
	assert_true(clu_fleet_find(fleet, "node-74f9fbf2")->drained);
	clu_fleet_free(fleet);
	clu_api_free(api);

	/* A save that fails refuses the change. */
	snprintf(bad, sizeof(bad), "%s/missing/fleet.yaml", dir);
	api = api_new(bad);
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/district", NULL,
	       "{\"district\":\"bxl1-test\"}", 500, "saving fleet: create ");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL,
	       "{\"status\":\"offline\"}", 500, "saving fleet: create ");
	expect(api, "GET", "/api/v1/nodes/node-74f9fbf2", NULL, NULL, 200,
	       "\"district\":\"bxl1\",\"venue\":\"rupelmonde\"");
	expect(api, "GET", "/api/v1/nodes/node-74f9fbf2", NULL, NULL, 200,
	       "\"status\":\"online\"");
	clu_api_free(api);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* Sends len raw bytes as the body of POST path; returns the status, the
 * answer in *out (caller frees). */
static int
post_raw(struct clu_api *api, const char *path, const char *body, size_t len,
         char **out)
{
	struct clu_request req = { "POST", path, NULL, 0, body, len };
	struct clu_response resp;

	assert_int_equal(clu_api_handle(api, &req, &resp), 0);
	assert_non_null(resp.body);
	*out = resp.body;
	return resp.status;
}

/* Whether s is entirely valid UTF-8 (an error body must be, to be JSON). */
static int
utf8_ok(const char *s)
{
	return clu_utf8_valid_len(s, strlen(s)) == strlen(s);
}

/* Issue 19 item 13: what json-c lets through is refused with the field
 * named, nothing is changed, and error bodies stay valid UTF-8 JSON. */
static void
test_strict_json(void **state)
{
	static const struct {
		const char *body;
		size_t len;          /* 0: strlen */
		const char *want;
	} cases[] = {
		{ "{\"district\":\"bxl1\\u0000-test\"}", 0,
		  "field 'district': contains a NUL character" },
		{ "{\"district\":\"bxl1\0x\"}", 16, "request body: invalid JSON" },
		{ "{\"district\":\"bxl1-test\",\"district\":\"bxl1\"}", 0,
		  "field 'district' given twice" },
		{ "{\"district\":\"bxl1\",\"distr\\u0069ct\":\"bxl1-test\"}", 0,
		  "field 'district' given twice" },
		{ "{\"district\":\"bxl1\\u0000\",\"venue\":\"x\"}", 0,
		  "field 'district': contains a NUL character" },
		{ "{\"dis\\u0000trict\":\"bxl1\"}", 0, "a field name contains a NUL character" },
		{ "{\"district\":\"bxl1\xff\"}", 0, "invalid UTF-8 at offset 17" },
		{ "{\"district\":\"\xed\xa0\x80\"}", 0, "invalid UTF-8 at offset 13" },
		{ "{\"district\":null}", 0, "field 'district': expected a string, got null" },
		{ "{\"district\":\"bxl1\",\"venue\":null}", 0,
		  "field 'venue': expected a string, got null" },
	};
	struct clu_api *api = api_new(NULL);
	char *out = NULL;
	size_t i;
	int status;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].body);

		status = post_raw(api, "/api/v1/nodes/node-74f9fbf2/district", cases[i].body,
		                  len, &out);
		if (status != 400 || strstr(out, cases[i].want) == NULL || !utf8_ok(out))
			fail_msg("case %zu: got %d %s, want 400 with %s", i, status, out,
			         cases[i].want);
		free(out);
	}
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL,
	       "{\"drained\":null}", 400, "field 'drained': expected a boolean, got null");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL,
	       "{\"status\":null}", 400, "field 'status': expected a string, got null");
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/status", NULL,
	       "{\"drained\":true,\"drained\":false}", 400, "field 'drained' given twice");
	/* A valid body in UTF-8 with an escape is still accepted. */
	expect(api, "POST", "/api/v1/nodes/node-74f9fbf2/district", NULL,
	       "{\"district\":\"bxl1\",\"venue\":\"rupel\\u006donde\"}", 200,
	       "\"venue\":\"rupelmonde\"");
	/* Nothing above changed the node. */
	expect(api, "GET", "/api/v1/nodes/node-74f9fbf2", NULL, NULL, 200,
	       "\"district\":\"bxl1\",\"venue\":\"rupelmonde\"");
	expect(api, "GET", "/api/v1/nodes/node-74f9fbf2", NULL, NULL, 200, "\"drained\":false");
	/* Invalid bytes a client sent are not echoed raw into an error body. */
	status = call(api, "GET", "/api/v1/nodes/node-\xff\xfe", NULL, NULL, &out);
	assert_int_equal(status, 400);
	assert_true(utf8_ok(out));
	assert_non_null(strstr(out, "node-\xEF\xBF\xBD\xEF\xBF\xBD"));
	free(out);
	status = call(api, "GET", "/api/v1/bodies/eligible", "head_id=\xc0\xaf", NULL, &out);
	assert_int_equal(status, 400);
	assert_true(utf8_ok(out));
	free(out);
	clu_api_free(api);
}

/* The UTF-8 rules: overlong forms, surrogates and code points past U+10FFFF
 * are invalid; repair replaces each bad byte and never cuts a character. */
static void
test_utf8(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(clu_utf8_valid_len("a\xc3\xa9z", 4), 4);
	assert_int_equal(clu_utf8_valid_len("a\xc0\x80", 3), 1);
	assert_int_equal(clu_utf8_valid_len("\xf4\x90\x80\x80", 4), 0);
	assert_int_equal(clu_utf8_valid_len("\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(clu_utf8_valid_len("\xe2\x82", 2), 0);
	clu_utf8_repair("a\xffz", out, sizeof(out));
	assert_string_equal(out, "a\xEF\xBF\xBDz");
	clu_utf8_repair("abcde\xc3\xa9", out, 7);
	assert_string_equal(out, "abcde");
}

static const char latency_fleet[] =
	"nodes:\n"
	"  - {id: head-1, name: h, role: head, district: d1, venue: a, owner: o,\n"
	"     lan_ip: 127.0.0.1, wg_ip: 127.0.0.2, status: online}\n"
	"  - {id: near-1, name: n, role: body, district: d1, venue: a, owner: o,\n"
	"     lan_ip: 127.0.0.3, wg_ip: 127.0.0.4, status: online, idle: true}\n"
	"  - {id: big-1, name: b, role: body, district: d1, venue: b, owner: o,\n"
	"     lan_ip: 127.0.0.5, wg_ip: 127.0.0.6, status: online, idle: true,\n"
	"     vram_mb: 8192}\n"
	"  - {id: small-1, name: s, role: body, district: d1, venue: c, owner: o,\n"
	"     lan_ip: 127.0.0.7, wg_ip: 127.0.0.8, status: online, idle: true,\n"
	"     vram_mb: 4096}\n";

/* The body ids of head-1's eligible answer, space separated, into ids. */
static void
eligible_ids(struct clu_api *api, char *ids, size_t size, char **answer)
{
	char *out = NULL, *p;

	assert_int_equal(call(api, "GET", "/api/v1/bodies/eligible", "head_id=head-1", NULL,
	                      &out), 200);
	ids[0] = '\0';
	for (p = strstr(out, "\"node_id\":\""); p != NULL;
	     p = strstr(p + 1, "\"node_id\":\"")) {
		char *q = p + 11, *end = strchr(q, '"');
		size_t len = strlen(ids);
		snprintf(ids + len, size - len, "%s%.*s", len > 0 ? " " : "", (int)(end - q), q);
	}
	*answer = out;
}

static void
report(struct clu_api *api, const char *body, int want, const char *text)
{
	expect(api, "POST", "/api/v1/heads/head-1/latency", NULL, body, want, text);
}

/* Reports the latency API refuses: 400 (or 404, 405) naming the field;
 * the caller checks that nothing was stored. */
static void
latency_bad_reports(struct clu_api *api)
{
	report(api, "{\"samples\":[{\"node_id\":\"node-x\",\"transport\":\"lan\",\"rtt_ms\":1}]}",
	       400, "samples[0].node_id: 'node-x' is not a body of the fleet");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":1},"
	       "{\"node_id\":\"head-1\",\"transport\":\"lan\",\"rtt_ms\":1}]}",
	       400, "samples[1].node_id: 'head-1' is not a body of the fleet");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":-1}]}",
	       400, "samples[0].rtt_ms: -1 is not a round trip of 0 to 60000 ms");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":1e9}]}",
	       400, "samples[0].rtt_ms: 1e+09 is not a round trip");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":\"1\"}]}",
	       400, "samples[0].rtt_ms: expected a number");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"ip\",\"rtt_ms\":1}]}",
	       400, "samples[0].transport: 'ip' is not lan or wg");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"rtt_ms\":1}]}",
	       400, "samples[0]: missing field 'transport'");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":1,"
	       "\"x\":1}]}", 400, "samples[0]: unknown field 'x'");
	report(api, "{\"samples\":[]}", 400, "field 'samples': empty");
	report(api, "{\"samples\":{}}", 400, "field 'samples': expected an array, got an object");
	report(api, "{}", 400, "field 'samples': expected an array");
	expect(api, "POST", "/api/v1/heads/node-x/latency", NULL, "{\"samples\":[]}", 404,
	       "unknown head 'node-x'");
	expect(api, "POST", "/api/v1/heads/big-1/latency", NULL, "{\"samples\":[]}", 400,
	       "node 'big-1' is a body, not a head");
	expect(api, "GET", "/api/v1/heads/head-1/latency", NULL, NULL, 405, "allowed: POST");
	{
		char big[CLU_BODY_MAX];
		size_t len = 0, i;

		len += (size_t)snprintf(big + len, sizeof(big) - len, "{\"samples\":[");
		for (i = 0; i <= CLU_LATENCY_SAMPLES_MAX && len + 8 < sizeof(big); i++)
			len += (size_t)snprintf(big + len, sizeof(big) - len, "%s{}", i ? "," : "");
		snprintf(big + len, sizeof(big) - len, "]}");
		/* 257 empty objects fit in the body limit: too many, named as such. */
		report(api, big, 400, "field 'samples': more than 256 samples");
	}
}

/* Issue 20: reports rank the cross-venue partition for the head; the
 * quickroute gate is unchanged; bad reports store nothing. */
static void
test_latency(void **state)
{
	struct clu_api *api = api_of(latency_fleet, NULL);
	char ids[256], *out = NULL;

	(void)state;
	/* Same venue wins through quickroute whatever was measured. */
	report(api, "{\"samples\":[{\"node_id\":\"near-1\",\"transport\":\"lan\",\"rtt_ms\":40},"
	       "{\"node_id\":\"small-1\",\"transport\":\"wg\",\"rtt_ms\":5}]}", 200,
	       "\"samples\":2");
	eligible_ids(api, ids, sizeof(ids), &out);
	assert_string_equal(ids, "near-1");
	assert_non_null(strstr(out, "\"partition\":\"quickroute\""));
	assert_non_null(strstr(out, "\"rtt_ms\":40"));
	free(out);
	expect(api, "POST", "/api/v1/nodes/near-1/status", NULL, "{\"drained\":true}", 200,
	       "\"drained\":true");
	/* Across venues the 5 ms body leads although the server ranks it second
	 * (less VRAM); the unmeasured one follows. */
	eligible_ids(api, ids, sizeof(ids), &out);
	assert_string_equal(ids, "small-1 big-1");
	assert_non_null(strstr(out, "\"rtt_ms\":5}"));
	free(out);
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":40},"
	       "{\"node_id\":\"big-1\",\"transport\":\"wg\",\"rtt_ms\":30.5}]}", 200,
	       "\"samples\":2");
	eligible_ids(api, ids, sizeof(ids), &out);
	assert_string_equal(ids, "small-1 big-1");
	assert_non_null(strstr(out, "\"rtt_ms\":30.5")); /* the best transport counts */
	free(out);
	/* The estimate decays towards new reports: 30.5 then 0.5 gives 15.5. */
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":0.5}]}",
	       200, "\"samples\":1");
	eligible_ids(api, ids, sizeof(ids), &out);
	assert_non_null(strstr(out, "\"rtt_ms\":15.5"));
	free(out);
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":0}]}",
	       200, "\"samples\":1");
	report(api, "{\"samples\":[{\"node_id\":\"big-1\",\"transport\":\"lan\",\"rtt_ms\":0}]}",
	       200, "\"samples\":1");
	/* big-1 decayed to 3.875 ms, small-1 is at 5: 2 ms steps 1 and 2, so
	 * big-1 leads now. */
	eligible_ids(api, ids, sizeof(ids), &out);
	assert_string_equal(ids, "big-1 small-1");
	free(out);
	report(api, "{\"samples\":[{\"node_id\":\"small-1\",\"transport\":\"lan\",\"rtt_ms\":2.9}]}",
	       200, "\"samples\":1");
	/* small-1 now 3.95, big-1 3.875: the same 2 ms step, server order. */
	eligible_ids(api, ids, sizeof(ids), &out);
	assert_string_equal(ids, "big-1 small-1");
	free(out);

	latency_bad_reports(api);
	eligible_ids(api, ids, sizeof(ids), &out);
	assert_string_equal(ids, "big-1 small-1");
	assert_non_null(strstr(out, "\"rtt_ms\":3.88")); /* unchanged by the refused ones */
	free(out);
	clu_api_free(api);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eligible),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_405_allow),
		cmocka_unit_test(test_save),
		cmocka_unit_test(test_strict_json),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_latency),
	};
	hc_log_open(NULL, HC_LOG_ERROR, 0, NULL); /* quiet: answers are asserted */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
