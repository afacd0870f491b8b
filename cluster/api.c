/*
 * The cluster HTTP API of docs/architecture.md section 9, independent of the HTTP
 * server: a request in, a status and a JSON body out. Every request runs
 * under one mutex, so a change is seen whole by the next request.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cluster/cluster.h"

#define CLU_PREFIX "/api/v1/"
/* Longest path worth routing: the prefix, "nodes/", an id and "/district". */
#define CLU_PATH_MAX 256
/* Largest answer: /nodes of a fleet file at its 4 MiB limit fits easily. */
#define CLU_ANSWER_MAX (16 * 1024 * 1024)

struct clu_api {
	pthread_mutex_t lock;
	struct clu_fleet *fleet;
	char *save_path;
	struct clu_latency *latency; /* what heads measured (issue 20) */
};

int
clu_api_new(struct clu_fleet *fleet, const char *save_path, struct clu_api **out,
            struct hc_err *err)
{
	struct clu_api *api = calloc(1, sizeof(*api));

	if (api == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	if (save_path != NULL) {
		api->save_path = hc_strdup(save_path);
		if (api->save_path == NULL) {
			free(api);
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		}
	}
	if (clu_latency_new(&api->latency, err) != 0) {
		free(api->save_path);
		free(api);
		return HC_ENOMEM;
	}
	if (pthread_mutex_init(&api->lock, NULL) != 0) {
		clu_latency_free(api->latency);
		free(api->save_path);
		free(api);
		return hc_err_set(err, HC_ESOFTWARE, "pthread_mutex_init failed");
	}
	api->fleet = fleet;
	*out = api;
	return 0;
}

void
clu_api_free(struct clu_api *api)
{
	if (api == NULL)
		return;
	pthread_mutex_destroy(&api->lock);
	clu_fleet_free(api->fleet);
	clu_latency_free(api->latency);
	free(api->save_path);
	free(api);
}

void
clu_response_free(struct clu_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

/* Serialises obj into resp (and puts obj). HC_ENOMEM when it cannot. */
static int
clu_respond(struct clu_response *resp, int status, struct json_object *obj)
{
	struct hc_buf body;
	const char *text;
	int rc;

	if (obj == NULL)
		return HC_ENOMEM;
	/* Answers are a fleet listing at most; the cap only guards a runaway. */
	hc_buf_init(&body, CLU_ANSWER_MAX);
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
	                                           JSON_C_TO_STRING_NOSLASHESCAPE);
	rc = text != NULL ? hc_buf_printf(&body, "%s\n", text) : HC_ENOMEM;
	json_object_put(obj);
	if (rc != 0) {
		hc_buf_free(&body);
		return HC_ENOMEM;
	}
	resp->body_len = body.len;
	resp->body = hc_buf_take(&body);
	resp->status = status;
	return 0;
}

static int
clu_fail(struct clu_response *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Answers {"error": "..."} with status. */
static int
clu_fail(struct clu_response *resp, int status, const char *fmt, ...)
{
	char msg[HC_ERR_MAX];
	char clean[HC_ERR_MAX * 3]; /* each bad byte may become 3 */
	struct json_object *obj;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The message may quote a client's bytes; JSON text must be UTF-8. */
	clu_utf8_repair(msg, clean, sizeof(clean));
	obj = json_object_new_object();
	if (obj == NULL ||
	    json_object_object_add(obj, "error", json_object_new_string(clean)) != 0) {
		json_object_put(obj);
		return HC_ENOMEM;
	}
	return clu_respond(resp, status, obj);
}

/* The HTTP status for an hc status from the fleet or the policy. */
static int
clu_http_status(int rc)
{
	switch (rc) {
	case HC_ENOTFOUND: return 404;
	case HC_EDATA:     return 400;
	default:           return 500;
	}
}

static int
clu_add(struct json_object *obj, const char *key, struct json_object *val)
{
	if (val == NULL)
		return HC_ENOMEM;
	if (json_object_object_add(obj, key, val) != 0) {
		json_object_put(val);
		return HC_ENOMEM;
	}
	return 0;
}

/* The node as the API shows it; with_role for /nodes, same_venue >= 0 adds
 * that field for /bodies/eligible. NULL when out of memory. */
static struct json_object *
clu_node_json(const struct clu_node *n, int with_role, int same_venue)
{
	struct json_object *o = json_object_new_object();

	if (o == NULL)
		return NULL;
	if (clu_add(o, "node_id", json_object_new_string(n->id)) != 0 ||
	    clu_add(o, "name", json_object_new_string(n->name)) != 0 ||
	    (with_role && clu_add(o, "role", json_object_new_string(clu_role_name(n->role))) != 0) ||
	    clu_add(o, "district", json_object_new_string(n->district)) != 0 ||
	    clu_add(o, "venue", json_object_new_string(n->venue)) != 0 ||
	    clu_add(o, "owner", json_object_new_string(n->owner)) != 0 ||
	    clu_add(o, "lan_ip", json_object_new_string(n->lan_ip)) != 0 ||
	    clu_add(o, "wg_ip", json_object_new_string(n->wg_ip)) != 0 ||
	    clu_add(o, "status", json_object_new_string(clu_status_name(n->status))) != 0 ||
	    clu_add(o, "drained", json_object_new_boolean(n->drained)) != 0 ||
	    clu_add(o, "idle", json_object_new_boolean(n->idle)) != 0 ||
	    clu_add(o, "vram_mb", json_object_new_int64(n->vram_mb)) != 0 ||
	    (same_venue >= 0 &&
	     clu_add(o, "same_venue", json_object_new_boolean(same_venue)) != 0)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---------------------------------------------------------------- params */

/* Refuses parameters the route does not know (a typo such as head-id would
 * otherwise silently change the policy) and parameters given twice. */
static int
clu_check_params(const struct clu_request *req, const char *const *allowed,
                 struct clu_response *resp)
{
	size_t i, j, k;

	if (req->nparams > CLU_PARAMS_MAX)
		return clu_fail(resp, 400, "too many query parameters (at most %d)",
		                CLU_PARAMS_MAX);
	for (i = 0; i < req->nparams; i++) {
		for (k = 0; allowed[k] != NULL; k++) {
			if (strcmp(req->params[i].key, allowed[k]) == 0)
				break;
		}
		if (allowed[k] == NULL)
			return clu_fail(resp, 400, "unknown query parameter '%s'",
			                req->params[i].key);
		for (j = 0; j < i; j++) {
			if (strcmp(req->params[i].key, req->params[j].key) == 0)
				return clu_fail(resp, 400, "query parameter '%s' given twice",
				                req->params[i].key);
		}
	}
	return 0;
}

static const char *
clu_param(const struct clu_request *req, const char *key)
{
	size_t i;

	for (i = 0; i < req->nparams; i++) {
		if (strcmp(req->params[i].key, key) == 0)
			return req->params[i].value != NULL ? req->params[i].value : "";
	}
	return NULL;
}

/* A parameter that must be a node id (when present, or always if required).
 * Returns 0 with *out set (NULL when absent), or a non-zero status after
 * answering 400. */
static int
clu_param_id(const struct clu_request *req, const char *key, int required,
             const char **out, struct clu_response *resp, int *answered)
{
	const char *v = clu_param(req, key);
	char what[HC_ERR_MAX];

	*out = v;
	if (v == NULL && !required)
		return 0;
	*answered = 1;
	if (v == NULL)
		return clu_fail(resp, 400, "missing query parameter '%s'", key);
	if (clu_check_node_id(v, what, sizeof(what)) != 0)
		return clu_fail(resp, 400, "query parameter '%s': %s", key, what);
	*answered = 0;
	return 0;
}

static int
clu_param_place(const struct clu_request *req, const char *key, const char **out,
                struct clu_response *resp, int *answered)
{
	const char *v = clu_param(req, key);
	char what[HC_ERR_MAX];

	*out = v;
	if (v == NULL)
		return 0;
	if (clu_check_place(v, what, sizeof(what)) != 0) {
		*answered = 1;
		return clu_fail(resp, 400, "query parameter '%s': %s", key, what);
	}
	return 0;
}

/* exclude=ID,ID,...: the bodies a head found unreachable. Splits a copy of
 * the value into buf; ids point into it. Answers 400 on a bad id, an empty
 * item or too many ids. */
static int
clu_param_exclude(const struct clu_request *req, char *buf, size_t size,
                  const char **ids, size_t *n, struct clu_response *resp,
                  int *answered)
{
	const char *v = clu_param(req, "exclude");
	char what[HC_ERR_MAX];
	char *p;

	*n = 0;
	if (v == NULL)
		return 0;
	*answered = 1;
	if (hc_strlcpy(buf, v, size) != 0)
		return clu_fail(resp, 400, "query parameter 'exclude': too long");
	p = buf;
	for (;;) {
		char *comma = strchr(p, ',');

		if (comma != NULL)
			*comma = '\0';
		if (*n == CLU_EXCLUDE_MAX)
			return clu_fail(resp, 400, "query parameter 'exclude': more than %d ids",
			                CLU_EXCLUDE_MAX);
		if (clu_check_node_id(p, what, sizeof(what)) != 0)
			return clu_fail(resp, 400, "query parameter 'exclude': %s", what);
		ids[(*n)++] = p;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*answered = 0;
	return 0;
}

/* ---------------------------------------------------------------- routes */

static int
clu_get_health(struct clu_api *api, struct clu_response *resp)
{
	struct json_object *o = json_object_new_object();
	size_t i, heads = 0, bodies = 0, available = 0;

	for (i = 0; i < clu_fleet_count(api->fleet); i++) {
		const struct clu_node *n = clu_fleet_node(api->fleet, i);
		if (n->role == CLU_ROLE_HEAD) {
			heads++;
			continue;
		}
		bodies++;
		if (n->status == CLU_STATUS_ONLINE && !n->drained)
			available++;
	}
	if (o == NULL ||
	    clu_add(o, "status", json_object_new_string("healthy")) != 0 ||
	    clu_add(o, "service", json_object_new_string("hydra-cluster-sim")) != 0 ||
	    clu_add(o, "version", json_object_new_string(HC_VERSION)) != 0 ||
	    clu_add(o, "nodes", json_object_new_int64((int64_t)clu_fleet_count(api->fleet))) != 0 ||
	    clu_add(o, "heads", json_object_new_int64((int64_t)heads)) != 0 ||
	    clu_add(o, "bodies", json_object_new_int64((int64_t)bodies)) != 0 ||
	    clu_add(o, "bodies_available", json_object_new_int64((int64_t)available)) != 0 ||
	    clu_add(o, "save", json_object_new_boolean(api->save_path != NULL)) != 0) {
		json_object_put(o);
		return HC_ENOMEM;
	}
	return clu_respond(resp, 200, o);
}

static int
clu_get_nodes(struct clu_api *api, struct clu_response *resp)
{
	struct json_object *o = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	size_t i;

	if (o == NULL || arr == NULL)
		goto oom;
	for (i = 0; i < clu_fleet_count(api->fleet); i++) {
		struct json_object *n = clu_node_json(clu_fleet_node(api->fleet, i), 1, -1);
		if (n == NULL || json_object_array_add(arr, n) != 0) {
			json_object_put(n);
			goto oom;
		}
	}
	if (clu_add(o, "nodes", arr) != 0) {
		arr = NULL;
		goto oom;
	}
	return clu_respond(resp, 200, o);
oom:
	json_object_put(arr);
	json_object_put(o);
	return HC_ENOMEM;
}

static int
clu_get_node(struct clu_api *api, const char *id, struct clu_response *resp)
{
	const struct clu_node *n = clu_fleet_find(api->fleet, id);

	if (n == NULL)
		return clu_fail(resp, 404, "unknown node '%s'", id);
	return clu_respond(resp, 200, clu_node_json(n, 1, -1));
}

static int
clu_get_body_config(struct clu_api *api, const struct clu_request *req,
                    struct clu_response *resp)
{
	static const char *const allowed[] = { "node_id", NULL };
	const struct clu_node *n;
	struct json_object *o;
	const char *id;
	int answered = 0, rc;

	rc = clu_check_params(req, allowed, resp);
	if (rc != 0 || resp->body != NULL)
		return rc;
	rc = clu_param_id(req, "node_id", 1, &id, resp, &answered);
	if (rc != 0 || answered)
		return rc;
	n = clu_fleet_find(api->fleet, id);
	if (n == NULL)
		return clu_fail(resp, 404, "unknown node '%s'", id);
	o = json_object_new_object();
	if (o == NULL ||
	    clu_add(o, "node_id", json_object_new_string(n->id)) != 0 ||
	    clu_add(o, "district", json_object_new_string(n->district)) != 0 ||
	    clu_add(o, "venue", json_object_new_string(n->venue)) != 0 ||
	    clu_add(o, "owner", json_object_new_string(n->owner)) != 0) {
		json_object_put(o);
		return HC_ENOMEM;
	}
	return clu_respond(resp, 200, o);
}

/* The query parameters of /bodies/eligible into q (exclude ids point into
 * buf). 0 with q set, or a status after answering (then *answered is 1). */
static int
clu_eligible_query(const struct clu_request *req, struct clu_query *q,
                   const char **exclude, char *buf, size_t size,
                   struct clu_response *resp, int *answered)
{
	static const char *const allowed[] = { "district", "venue", "head_id", "exclude",
	                                       NULL };
	int rc;

	*answered = 1;
	rc = clu_check_params(req, allowed, resp);
	if (rc != 0 || resp->body != NULL)
		return rc;
	*answered = 0;
	rc = clu_param_place(req, "district", &q->district, resp, answered);
	if (rc == 0 && !*answered)
		rc = clu_param_place(req, "venue", &q->venue, resp, answered);
	if (rc == 0 && !*answered)
		rc = clu_param_id(req, "head_id", 0, &q->head_id, resp, answered);
	if (rc == 0 && !*answered)
		rc = clu_param_exclude(req, buf, size, exclude, &q->nexclude, resp, answered);
	if (rc != 0 || *answered)
		return rc;
	q->exclude = exclude;
	*answered = 1;
	if (q->head_id == NULL && q->district == NULL)
		return clu_fail(resp, 400, "missing query parameter 'district' "
		                "(required without head_id)");
	if (q->head_id == NULL && q->venue == NULL)
		return clu_fail(resp, 400, "missing query parameter 'venue' "
		                "(required without head_id)");
	*answered = 0;
	return 0;
}

/* Adds "rtt_ms" to o with at most two decimals ("5", "15.5", "3.88"):
 * json-c would print the binary double (3.8799999999999999). */
static int
clu_add_rtt(struct json_object *o, double rtt_ms)
{
	char text[32];
	size_t len;

	if (hc_snprintf(text, sizeof(text), "%.2f", rtt_ms) != 0)
		return HC_EDATA;
	len = strlen(text);
	while (len > 0 && text[len - 1] == '0')
		text[--len] = '\0';
	if (len > 0 && text[len - 1] == '.')
		text[--len] = '\0';
	return clu_add(o, "rtt_ms", json_object_new_double_s(rtt_ms, text));
}

/* The eligible answer as JSON; NULL when out of memory. */
static struct json_object *
clu_eligible_json(const struct clu_eligible *e, const struct clu_query *q)
{
	struct json_object *o = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	size_t i;
	int rc;

	if (o == NULL || arr == NULL)
		goto oom;
	for (i = 0; i < e->n; i++) {
		struct json_object *n = clu_node_json(e->picks[i].node, 0, e->picks[i].same_venue);
		/* Phase 2: the head's estimate, only where there is one. */
		if (n != NULL && e->picks[i].has_rtt && clu_add_rtt(n, e->picks[i].rtt_ms) != 0) {
			json_object_put(n);
			n = NULL;
		}
		if (n == NULL || json_object_array_add(arr, n) != 0) {
			json_object_put(n);
			goto oom;
		}
	}
	rc = clu_add(o, "bodies", arr);
	arr = NULL;
	if (rc != 0 ||
	    clu_add(o, "partition", json_object_new_string(clu_partition_name(e->partition))) != 0 ||
	    clu_add(o, "district", json_object_new_string(e->district)) != 0 ||
	    clu_add(o, "venue", json_object_new_string(e->venue)) != 0 ||
	    (q->head_id != NULL &&
	     clu_add(o, "head_id", json_object_new_string(q->head_id)) != 0))
		goto oom;
	return o;
oom:
	json_object_put(arr);
	json_object_put(o);
	return NULL;
}

static int
clu_get_eligible(struct clu_api *api, const struct clu_request *req,
                 struct clu_response *resp)
{
	struct clu_eligible e = { NULL, 0, CLU_PART_NONE, NULL, NULL };
	struct clu_query q;
	const char *exclude[CLU_EXCLUDE_MAX];
	char exclude_buf[CLU_EXCLUDE_BUF];
	struct hc_err err = { 0, "" };
	struct json_object *o;
	int answered = 0, rc;

	memset(&q, 0, sizeof(q));
	rc = clu_eligible_query(req, &q, exclude, exclude_buf, sizeof(exclude_buf), resp,
	                        &answered);
	if (rc != 0 || answered)
		return rc;
	q.latency = api->latency;
	q.now_ms = hc_now_ms();
	rc = clu_policy_eligible(api->fleet, &q, &e, &err);
	if (rc == HC_ENOMEM)
		return rc;
	if (rc != 0)
		return clu_fail(resp, clu_http_status(rc), "%s", err.msg);
	if (q.head_id != NULL &&
	    ((q.district != NULL && strcmp(q.district, e.district) != 0) ||
	     (q.venue != NULL && strcmp(q.venue, e.venue) != 0)))
		hc_log(HC_LOG_WARN, "cluster",
		       "head %s asked for %s/%s but is placed in %s/%s; using its placement",
		       q.head_id, q.district != NULL ? q.district : "-",
		       q.venue != NULL ? q.venue : "-", e.district, e.venue);
	hc_log(HC_LOG_INFO, "cluster", "eligible for %s%s in %s/%s: partition %s, %zu found%s%s%s",
	       q.head_id != NULL ? "head " : "strict venue",
	       q.head_id != NULL ? q.head_id : "", e.district, e.venue,
	       clu_partition_name(e.partition), e.n, e.n > 0 ? ", first " : "",
	       e.n > 0 ? e.picks[0].node->id : "",
	       q.nexclude > 0 ? " (excluding unreachable bodies)" : "");
	o = clu_eligible_json(&e, &q);
	clu_eligible_free(&e);
	return o != NULL ? clu_respond(resp, 200, o) : HC_ENOMEM;
}

/* One field a request body may carry and the JSON type it must have; null
 * is never accepted for a field that is present. */
struct clu_field {
	const char *name;
	enum json_type type;
	const char *label;   /* "a string": for "expected a string, got null" */
};

/* Checks each member of obj against fields: known name, the right type.
 * 0, or HC_EDATA with err naming the field. */
static int
clu_body_fields(struct json_object *obj, const struct clu_field *fields,
                struct hc_err *err)
{
	size_t k;

	json_object_object_foreach(obj, key, val) {
		for (k = 0; fields[k].name != NULL; k++) {
			if (strcmp(key, fields[k].name) == 0)
				break;
		}
		if (fields[k].name == NULL)
			return hc_err_set(err, HC_EDATA, "unknown field '%s'", key);
		if (val == NULL || !json_object_is_type(val, fields[k].type))
			return hc_err_set(err, HC_EDATA, "field '%s': expected %s, got %s", key,
			                  fields[k].label, hc_json_type_label(val));
	}
	return 0;
}

/* Parses a request body that must be a JSON object with only the listed
 * fields, each of its type, in valid UTF-8 without NULs or repeated keys.
 * Returns 0 with *out set, or answers 400/413 and sets *answered. */
static int
clu_body_object(const struct clu_request *req, const struct clu_field *fields,
                struct json_object **out, struct clu_response *resp, int *answered)
{
	struct json_object *obj = NULL;
	struct hc_err err = { 0, "" };
	int rc;

	*out = NULL;
	*answered = 1;
	if (req->body_len > CLU_BODY_MAX)
		return clu_fail(resp, 413, "request body larger than %d bytes", CLU_BODY_MAX);
	if (req->body == NULL || req->body_len == 0)
		return clu_fail(resp, 400, "request body: expected a JSON object");
	if (hc_json_parse(req->body, req->body_len, &obj, &err) != 0)
		return clu_fail(resp, 400, "request body: %s", err.msg);
	rc = clu_json_strict(req->body, req->body_len, &err);
	if (rc == 0 && !json_object_is_type(obj, json_type_object))
		rc = hc_err_set(&err, HC_EDATA, "expected a JSON object");
	if (rc == 0)
		rc = clu_body_fields(obj, fields, &err);
	if (rc != 0) {
		json_object_put(obj);
		return rc == HC_ENOMEM ? rc : clu_fail(resp, 400, "request body: %s", err.msg);
	}
	*answered = 0;
	*out = obj;
	return 0;
}

/* Writes the fleet back when --save is on. 0, or the hc status with err. */
static int
clu_save(struct clu_api *api, struct hc_err *err)
{
	if (api->save_path == NULL)
		return 0;
	return clu_fleet_save(api->fleet, api->save_path, err);
}

/* Answers 500 for a change that was undone because it could not be saved. */
static int
clu_unsaved(struct clu_response *resp, const struct hc_err *err)
{
	hc_log(HC_LOG_ERROR, "cluster", "saving fleet: %s; change refused", err->msg);
	return clu_fail(resp, 500, "saving fleet: %s", err->msg);
}

static int
clu_post_district(struct clu_api *api, const char *id, const struct clu_request *req,
                  struct clu_response *resp)
{
	static const struct clu_field fields[] = {
		{ "district", json_type_string, "a string" },
		{ "venue", json_type_string, "a string" },
		{ NULL, json_type_null, NULL },
	};
	const struct clu_node *n = clu_fleet_find(api->fleet, id);
	struct json_object *body = NULL;
	struct hc_err err = { 0, "" };
	const char *district = NULL, *venue = NULL;
	char *old_district = NULL, *old_venue = NULL;
	int answered = 0, rc;

	if (n == NULL)
		return clu_fail(resp, 404, "unknown node '%s'", id);
	rc = clu_body_object(req, fields, &body, resp, &answered);
	if (rc != 0 || answered)
		return rc;
	if (hc_json_get_string(body, "district", &district, &err) != 0 ||
	    hc_json_opt_string(body, "venue", &venue, &err) != 0) {
		rc = clu_fail(resp, 400, "request body: %s", err.msg);
		goto done;
	}
	old_district = hc_strdup(n->district);
	old_venue = hc_strdup(n->venue);
	if (old_district == NULL || old_venue == NULL) {
		rc = HC_ENOMEM;
		goto done;
	}
	rc = clu_fleet_move(api->fleet, id, district, venue, &err);
	if (rc != 0) {
		rc = rc == HC_ENOMEM ? rc : clu_fail(resp, clu_http_status(rc), "%s", err.msg);
		goto done;
	}
	if (clu_save(api, &err) != 0) {
		struct hc_err undo = { 0, "" };
		/* The file and the API must agree: a change that cannot be saved is
		 * not made. */
		if (clu_fleet_move(api->fleet, id, old_district, old_venue, &undo) != 0)
			hc_log(HC_LOG_ERROR, "cluster", "undo move of %s: %s", id, undo.msg);
		rc = clu_unsaved(resp, &err);
		goto done;
	}
	n = clu_fleet_find(api->fleet, id);
	hc_log(HC_LOG_INFO, "cluster", "node %s (%s) moved to %s/%s (was %s/%s)", n->id,
	       n->name, n->district, n->venue, old_district, old_venue);
	rc = clu_respond(resp, 200, clu_node_json(n, 1, -1));
done:
	free(old_district);
	free(old_venue);
	json_object_put(body);
	return rc;
}

static int
clu_post_status(struct clu_api *api, const char *id, const struct clu_request *req,
                struct clu_response *resp)
{
	static const struct clu_field fields[] = {
		{ "status", json_type_string, "a string" },
		{ "drained", json_type_boolean, "a boolean" },
		{ NULL, json_type_null, NULL },
	};
	const struct clu_node *n = clu_fleet_find(api->fleet, id);
	struct json_object *body = NULL, *v = NULL;
	struct hc_err err = { 0, "" };
	const char *status_text = NULL;
	int status = -1, drained = -1, old_status, old_drained;
	int answered = 0, rc;

	if (n == NULL)
		return clu_fail(resp, 404, "unknown node '%s'", id);
	rc = clu_body_object(req, fields, &body, resp, &answered);
	if (rc != 0 || answered)
		return rc;
	if (hc_json_opt_string(body, "status", &status_text, &err) != 0) {
		rc = clu_fail(resp, 400, "request body: %s", err.msg);
		goto done;
	}
	if (status_text != NULL && clu_status_parse(status_text, &status) != 0) {
		rc = clu_fail(resp, 400, "request body: field 'status': '%s' is not online "
		              "or offline", status_text);
		goto done;
	}
	if (json_object_object_get_ex(body, "drained", &v))
		drained = json_object_get_boolean(v) ? 1 : 0;
	if (status == -1 && drained == -1) {
		rc = clu_fail(resp, 400, "request body: nothing to change: give 'status', "
		              "'drained' or both");
		goto done;
	}
	old_status = n->status;
	old_drained = n->drained;
	rc = clu_fleet_set_state(api->fleet, id, status, drained, &err);
	if (rc != 0) {
		rc = clu_fail(resp, clu_http_status(rc), "%s", err.msg);
		goto done;
	}
	if (clu_save(api, &err) != 0) {
		struct hc_err undo = { 0, "" };
		if (clu_fleet_set_state(api->fleet, id, old_status, old_drained, &undo) != 0)
			hc_log(HC_LOG_ERROR, "cluster", "undo state of %s: %s", id, undo.msg);
		rc = clu_unsaved(resp, &err);
		goto done;
	}
	hc_log(HC_LOG_INFO, "cluster", "node %s (%s) is %s, drained %s (was %s, drained %s)",
	       n->id, n->name, clu_status_name(n->status), n->drained ? "true" : "false",
	       clu_status_name(old_status), old_drained ? "true" : "false");
	rc = clu_respond(resp, 200, clu_node_json(n, 1, -1));
done:
	json_object_put(body);
	return rc;
}

/* Phase 2 (issue 20): a head reports the round trips it measured. The whole
 * report is checked before anything is stored. */
static int
clu_post_latency(struct clu_api *api, const char *id, const struct clu_request *req,
                 struct clu_response *resp)
{
	static const struct clu_field fields[] = {
		{ "samples", json_type_array, "an array" },
		{ NULL, json_type_null, NULL },
	};
	const struct clu_node *head = clu_fleet_find(api->fleet, id);
	struct clu_rtt_sample *samples = NULL;
	struct json_object *body = NULL, *arr = NULL, *o;
	struct hc_err err = { 0, "" };
	int answered = 0, rc;
	size_t n = 0;

	if (head == NULL)
		return clu_fail(resp, 404, "unknown head '%s'", id);
	if (head->role != CLU_ROLE_HEAD)
		return clu_fail(resp, 400, "node '%s' is a body, not a head", id);
	rc = clu_body_object(req, fields, &body, resp, &answered);
	if (rc != 0 || answered)
		return rc;
	samples = calloc(CLU_LATENCY_SAMPLES_MAX, sizeof(*samples));
	if (samples == NULL) {
		rc = HC_ENOMEM;
		goto done;
	}
	(void)json_object_object_get_ex(body, "samples", &arr);
	rc = clu_latency_parse(api->fleet, arr, samples, &n, &err);
	if (rc == 0)
		rc = clu_latency_report(api->latency, head->id, samples, n, hc_now_ms(), &err);
	if (rc != 0) {
		rc = rc == HC_ENOMEM ? rc : clu_fail(resp, 400, "request body: %s", err.msg);
		goto done;
	}
	hc_log(HC_LOG_DEBUG, "cluster", "head %s reported %zu round trips", head->id, n);
	o = json_object_new_object();
	if (o == NULL || clu_add(o, "head_id", json_object_new_string(head->id)) != 0 ||
	    clu_add(o, "samples", json_object_new_int64((int64_t)n)) != 0) {
		json_object_put(o);
		rc = HC_ENOMEM;
		goto done;
	}
	rc = clu_respond(resp, 200, o);
done:
	free(samples);
	json_object_put(body);
	return rc;
}

/* ---------------------------------------------------------------- routing */

enum clu_route {
	CLU_R_NONE, CLU_R_HEALTH, CLU_R_NODES, CLU_R_NODE, CLU_R_NODE_DISTRICT,
	CLU_R_NODE_STATUS, CLU_R_BODY_CONFIG, CLU_R_ELIGIBLE, CLU_R_HEAD_LATENCY,
};

/* Maps path to a route; for node routes copies the raw id into id. */
static enum clu_route
clu_route_of(const char *path, char *id, size_t id_size)
{
	const char *rest, *slash;
	size_t len;
	int head = 0;

	if (strncmp(path, CLU_PREFIX, strlen(CLU_PREFIX)) != 0)
		return CLU_R_NONE;
	rest = path + strlen(CLU_PREFIX);
	if (strcmp(rest, "health") == 0)
		return CLU_R_HEALTH;
	if (strcmp(rest, "nodes") == 0)
		return CLU_R_NODES;
	if (strcmp(rest, "body/config") == 0)
		return CLU_R_BODY_CONFIG;
	if (strcmp(rest, "bodies/eligible") == 0)
		return CLU_R_ELIGIBLE;
	if (strncmp(rest, "heads/", 6) == 0)
		head = 1;
	else if (strncmp(rest, "nodes/", 6) != 0)
		return CLU_R_NONE;
	rest += 6;
	slash = strchr(rest, '/');
	len = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	if (len >= id_size)
		len = id_size - 1;
	memcpy(id, rest, len);
	id[len] = '\0';
	if (head)
		return slash != NULL && strcmp(slash, "/latency") == 0 ? CLU_R_HEAD_LATENCY :
		       CLU_R_NONE;
	if (slash == NULL)
		return CLU_R_NODE;
	if (strcmp(slash, "/district") == 0)
		return CLU_R_NODE_DISTRICT;
	if (strcmp(slash, "/status") == 0)
		return CLU_R_NODE_STATUS;
	return CLU_R_NONE;
}

static int
clu_dispatch(struct clu_api *api, const struct clu_request *req,
             struct clu_response *resp)
{
	static const char *const none[] = { NULL };
	char id[CLU_PATH_MAX];
	char what[HC_ERR_MAX];
	enum clu_route route;
	const char *want;
	int rc;

	if (strlen(req->path) >= CLU_PATH_MAX)
		return clu_fail(resp, 404, "no such endpoint");
	route = clu_route_of(req->path, id, sizeof(id));
	if (route == CLU_R_NONE)
		return clu_fail(resp, 404, "no such endpoint: %s", req->path);
	want = route == CLU_R_NODE_DISTRICT || route == CLU_R_NODE_STATUS ||
	       route == CLU_R_HEAD_LATENCY ? "POST" : "GET";
	if (strcmp(req->method, want) != 0) {
		resp->allow = want;
		return clu_fail(resp, 405, "method %s not allowed on %s (allowed: %s)",
		                req->method, req->path, want);
	}
	if (route == CLU_R_NODE || route == CLU_R_NODE_DISTRICT ||
	    route == CLU_R_NODE_STATUS || route == CLU_R_HEAD_LATENCY) {
		if (clu_check_node_id(id, what, sizeof(what)) != 0)
			return clu_fail(resp, 400, "node id: %s", what);
	}
	if (route != CLU_R_BODY_CONFIG && route != CLU_R_ELIGIBLE) {
		rc = clu_check_params(req, none, resp);
		if (rc != 0 || resp->body != NULL)
			return rc;
	}
	switch (route) {
	case CLU_R_HEALTH:        return clu_get_health(api, resp);
	case CLU_R_NODES:         return clu_get_nodes(api, resp);
	case CLU_R_NODE:          return clu_get_node(api, id, resp);
	case CLU_R_NODE_DISTRICT: return clu_post_district(api, id, req, resp);
	case CLU_R_NODE_STATUS:   return clu_post_status(api, id, req, resp);
	case CLU_R_BODY_CONFIG:   return clu_get_body_config(api, req, resp);
	case CLU_R_ELIGIBLE:      return clu_get_eligible(api, req, resp);
	case CLU_R_HEAD_LATENCY:  return clu_post_latency(api, id, req, resp);
	case CLU_R_NONE:          break;
	}
	return clu_fail(resp, 404, "no such endpoint: %s", req->path);
}

int
clu_api_handle(struct clu_api *api, const struct clu_request *req,
               struct clu_response *resp)
{
	int rc;

	memset(resp, 0, sizeof(*resp));
	pthread_mutex_lock(&api->lock);
	rc = clu_dispatch(api, req, resp);
	pthread_mutex_unlock(&api->lock);
	if (rc == 0 && resp->body != NULL)
		return 0;
	/* Out of memory somewhere above: try a small error body once more. */
	clu_response_free(resp);
	resp->allow = NULL;
	rc = clu_fail(resp, 500, "out of memory");
	return rc == 0 ? 0 : HC_ENOMEM;
}
