/*
 * Body selection Phase 2 on the server (issue 20): what heads measured.
 * Heads report TCP connect round trips to bodies; each (head, body) keeps a
 * decaying estimate that ranks the cross-venue partition for that head.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cluster/cluster.h"

/* Weight of a new report in the estimate: two reports move it most of the
 * way, so a path that changed shows within a minute of a head's polling. */
#define CLU_RTT_ALPHA 0.5
/* An estimate nobody refreshed for this long says nothing about now. */
#define CLU_RTT_STALE_MS (10LL * 60 * 1000)
/* (head, body) pairs kept: a district of 256 heads and 256 bodies. Past it
 * the stalest estimate gives way. */
#define CLU_LATENCY_ENTRIES_MAX 65536

struct clu_rtt_entry {
	const char *head;     /* node ids, owned by the fleet (never freed: nodes
	                         are not removed while the api lives) */
	const char *body;
	double rtt_ms;
	int64_t updated_ms;
};

struct clu_latency {
	struct clu_rtt_entry *items;
	size_t n, cap;
};

int
clu_latency_new(struct clu_latency **out, struct hc_err *err)
{
	*out = calloc(1, sizeof(**out));
	if (*out == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	return 0;
}

void
clu_latency_free(struct clu_latency *lat)
{
	if (lat == NULL)
		return;
	free(lat->items);
	free(lat);
}

static struct clu_rtt_entry *
clu_latency_find(const struct clu_latency *lat, const char *head, const char *body)
{
	size_t i;

	for (i = 0; i < lat->n; i++) {
		if (strcmp(lat->items[i].head, head) == 0 &&
		    strcmp(lat->items[i].body, body) == 0)
			return &lat->items[i];
	}
	return NULL;
}

int
clu_latency_get(const struct clu_latency *lat, const char *head_id,
                const char *body_id, int64_t now_ms, double *rtt_ms)
{
	const struct clu_rtt_entry *e;

	if (lat == NULL)
		return HC_ENOTFOUND;
	e = clu_latency_find(lat, head_id, body_id);
	if (e == NULL || now_ms - e->updated_ms > CLU_RTT_STALE_MS)
		return HC_ENOTFOUND;
	*rtt_ms = e->rtt_ms;
	return 0;
}

/* The entry for (head, body), new or reused: a free slot, else the stalest.
 * NULL when out of memory. */
static struct clu_rtt_entry *
clu_latency_slot(struct clu_latency *lat, const char *head, const char *body)
{
	struct clu_rtt_entry *e = clu_latency_find(lat, head, body);
	size_t i, oldest = 0;

	if (e != NULL)
		return e;
	if (lat->n == CLU_LATENCY_ENTRIES_MAX) {
		for (i = 1; i < lat->n; i++) {
			if (lat->items[i].updated_ms < lat->items[oldest].updated_ms)
				oldest = i;
		}
		e = &lat->items[oldest];
	} else {
		if (hc_array_reserve((void **)&lat->items, &lat->cap, lat->n + 1,
		                     sizeof(*lat->items), CLU_LATENCY_ENTRIES_MAX) != 0)
			return NULL;
		e = &lat->items[lat->n++];
	}
	e->head = head;
	e->body = body;
	e->updated_ms = INT64_MIN;
	return e;
}

int
clu_latency_report(struct clu_latency *lat, const char *head_id,
                   const struct clu_rtt_sample *s, size_t n, int64_t now_ms,
                   struct hc_err *err)
{
	struct clu_rtt_entry *e;
	size_t i, j;
	double best;

	/* Reserve first, so that a report is stored whole or not at all. */
	if (hc_array_reserve((void **)&lat->items, &lat->cap,
	                     lat->n + n < CLU_LATENCY_ENTRIES_MAX ? lat->n + n :
	                     CLU_LATENCY_ENTRIES_MAX,
	                     sizeof(*lat->items), CLU_LATENCY_ENTRIES_MAX) != 0)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		/* One value per body and report: the head streams over its best
		 * path, so the lowest of its transports counts. */
		for (j = 0; j < i; j++) {
			if (strcmp(s[j].node_id, s[i].node_id) == 0)
				break;
		}
		if (j < i)
			continue;
		best = s[i].rtt_ms;
		for (j = i + 1; j < n; j++) {
			if (strcmp(s[j].node_id, s[i].node_id) == 0 && s[j].rtt_ms < best)
				best = s[j].rtt_ms;
		}
		e = clu_latency_slot(lat, head_id, s[i].node_id);
		if (e == NULL)
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		if (e->updated_ms == INT64_MIN || now_ms - e->updated_ms > CLU_RTT_STALE_MS)
			e->rtt_ms = best;
		else
			e->rtt_ms += CLU_RTT_ALPHA * (best - e->rtt_ms);
		e->updated_ms = now_ms;
	}
	return 0;
}

/* One member of samples[i]; answers with the field named "samples[i].key". */
static int
clu_sample_field(struct json_object *o, size_t i, const char *key, enum json_type t,
                 const char *label, struct json_object **out, struct hc_err *err)
{
	if (!json_object_object_get_ex(o, key, out))
		return hc_err_set(err, HC_EDATA, "samples[%zu]: missing field '%s'", i, key);
	if (json_object_is_type(*out, t) ||
	    (t == json_type_double && json_object_is_type(*out, json_type_int)))
		return 0;
	return hc_err_set(err, HC_EDATA, "samples[%zu].%s: expected %s", i, key, label);
}

/* samples[i] into *out: known body, known transport, a sane round trip. */
static int
clu_sample_parse(const struct clu_fleet *fleet, struct json_object *o, size_t i,
                 struct clu_rtt_sample *out, struct hc_err *err)
{
	struct json_object *id, *tr, *rtt;
	const struct clu_node *node;
	char what[HC_ERR_MAX];
	const char *t;
	int rc;

	if (!json_object_is_type(o, json_type_object))
		return hc_err_set(err, HC_EDATA, "samples[%zu]: expected an object", i);
	json_object_object_foreach(o, key, val) {
		(void)val;
		if (strcmp(key, "node_id") != 0 && strcmp(key, "transport") != 0 &&
		    strcmp(key, "rtt_ms") != 0)
			return hc_err_set(err, HC_EDATA, "samples[%zu]: unknown field '%s'", i,
			                  key);
	}
	rc = clu_sample_field(o, i, "node_id", json_type_string, "a string", &id, err);
	if (rc == 0)
		rc = clu_sample_field(o, i, "transport", json_type_string, "a string", &tr, err);
	if (rc == 0)
		rc = clu_sample_field(o, i, "rtt_ms", json_type_double, "a number", &rtt, err);
	if (rc != 0)
		return rc;
	out->node_id = json_object_get_string(id);
	if (clu_check_node_id(out->node_id, what, sizeof(what)) != 0)
		return hc_err_set(err, HC_EDATA, "samples[%zu].node_id: %s", i, what);
	node = clu_fleet_find(fleet, out->node_id);
	if (node == NULL || node->role != CLU_ROLE_BODY)
		return hc_err_set(err, HC_EDATA, "samples[%zu].node_id: '%s' is not a body "
		                  "of the fleet", i, out->node_id);
	out->node_id = node->id; /* the fleet's copy outlives the request */
	t = json_object_get_string(tr);
	if (strcmp(t, "lan") == 0)
		out->transport = CLU_TRANSPORT_LAN;
	else if (strcmp(t, "wg") == 0)
		out->transport = CLU_TRANSPORT_WG;
	else
		return hc_err_set(err, HC_EDATA, "samples[%zu].transport: '%s' is not lan "
		                  "or wg", i, t);
	out->rtt_ms = json_object_get_double(rtt);
	if (!isfinite(out->rtt_ms) || out->rtt_ms < 0 || out->rtt_ms > CLU_RTT_MAX_MS)
		return hc_err_set(err, HC_EDATA, "samples[%zu].rtt_ms: %g is not a round "
		                  "trip of 0 to %d ms", i, out->rtt_ms, CLU_RTT_MAX_MS);
	return 0;
}

int
clu_latency_parse(const struct clu_fleet *fleet, struct json_object *samples,
                  struct clu_rtt_sample *out, size_t *n, struct hc_err *err)
{
	size_t i, len;
	int rc;

	*n = 0;
	if (samples == NULL || !json_object_is_type(samples, json_type_array))
		return hc_err_set(err, HC_EDATA, "field 'samples': expected an array");
	len = json_object_array_length(samples);
	if (len == 0)
		return hc_err_set(err, HC_EDATA, "field 'samples': empty");
	if (len > CLU_LATENCY_SAMPLES_MAX)
		return hc_err_set(err, HC_EDATA, "field 'samples': more than %d samples",
		                  CLU_LATENCY_SAMPLES_MAX);
	for (i = 0; i < len; i++) {
		rc = clu_sample_parse(fleet, json_object_array_get_idx(samples, i), i, &out[i],
		                      err);
		if (rc != 0)
			return rc;
	}
	*n = len;
	return 0;
}
