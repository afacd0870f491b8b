/* One discovery: the cached body if it still answers, else the eligible list. */
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery.h"

/* 1 with out filled when the cached body answered its one probe; 0 when
 * there is no usable cache (a failed or unreadable one is invalidated and
 * logged, and *probe holds the failed probe when one was made). */
static int
try_cache(const struct disc_config *cfg, struct disc_choice *out,
          struct disc_probe_record *probe, int *probed)
{
	struct disc_cached c;
	struct hc_err lerr = { 0, "" };
	char why[DISC_REASON_MAX] = "";
	char reason[DISC_REASON_MAX + 64];
	enum disc_probe_result r;
	int64_t start = hc_now_ms();
	int rc;

	*probed = 0;
	rc = disc_cache_load(cfg->state_dir, &c, &lerr);
	if (rc == HC_ENOTFOUND)
		return 0;
	if (rc != 0) {
		hc_snprintf(reason, sizeof(reason), "cache unreadable: %s", lerr.msg);
		if (disc_cache_invalidate(cfg->state_dir, reason, NULL, &lerr) != 0)
			hc_log(HC_LOG_WARN, "discovery", "%s", lerr.msg);
		return 0;
	}
	r = disc_probe_tcp(c.ip, cfg->port, cfg->probe_timeout_ms, cfg->cancel, why,
	                   sizeof(why));
	memset(probe, 0, sizeof(*probe));
	hc_strlcpy(probe->node_id, c.node_id, sizeof(probe->node_id));
	hc_strlcpy(probe->ip, c.ip, sizeof(probe->ip));
	probe->transport = c.transport;
	probe->result = r;
	probe->ms = hc_now_ms() - start;
	probe->rtt_ms = -1;
	*probed = 1;
	if (r == DISC_PROBE_OK) {
		memset(out, 0, sizeof(*out));
		hc_strlcpy(out->body.node_id, c.node_id, sizeof(out->body.node_id));
		hc_strlcpy(out->body.name, c.name, sizeof(out->body.name));
		out->body.same_venue = c.same_venue;
		if (c.transport == DISC_LAN)
			hc_strlcpy(out->body.lan_ip, c.ip, sizeof(out->body.lan_ip));
		else
			hc_strlcpy(out->body.wg_ip, c.ip, sizeof(out->body.wg_ip));
		hc_strlcpy(out->ip, c.ip, sizeof(out->ip));
		out->transport = c.transport;
		out->cached = 1;
		out->probes[0] = *probe;
		out->nprobes = 1;
		hc_log(HC_LOG_INFO, "discovery", "using cached body %s: %s answers on %s",
		       c.node_id, c.ip, disc_transport_name(c.transport));
		return 1;
	}
	hc_snprintf(reason, sizeof(reason), "probe %s:%d %s (%s)", c.ip, cfg->port,
	            disc_probe_result_name(r), why);
	if (disc_cache_invalidate(cfg->state_dir, reason, NULL, &lerr) != 0)
		hc_log(HC_LOG_WARN, "discovery", "%s", lerr.msg);
	return 0;
}

/*
 * Phase 2 (issue 20): a cross-venue list is put in the order of the round
 * trips measured now, unless rank is server. Other lists keep the server's
 * order: quickroute is a gate. A failed measurement keeps the server's
 * order too. Returns the ranking used; rtt holds the medians (or -1s).
 */
static enum disc_rank
discover_rank(const struct disc_config *cfg, struct disc_list *list, struct disc_rtt *rtt)
{
	struct hc_err merr = { 0, "" };
	char first[DISC_LABEL_MAX];
	size_t i;
	int rc;

	for (i = 0; i < DISC_MAX_BODIES; i++)
		rtt->lan_ms[i] = rtt->wg_ms[i] = -1;
	if (!list->cross_venue || cfg->rank != DISC_RANK_LATENCY || list->n == 0)
		return DISC_RANK_SERVER;
	hc_strlcpy(first, list->bodies[0].node_id, sizeof(first));
	rc = cfg->measure != NULL ? cfg->measure(cfg->measure_ctx, cfg, list, rtt, &merr) :
	     disc_measure_tcp(NULL, cfg, list, rtt, &merr);
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "discovery", "latency measurement failed (%s); keeping "
		       "the cluster's order", merr.msg);
		for (i = 0; i < DISC_MAX_BODIES; i++)
			rtt->lan_ms[i] = rtt->wg_ms[i] = -1;
		return DISC_RANK_SERVER;
	}
	disc_rank_by_rtt(list, rtt);
	/* No figures here (they are in the debug lines): both modes log the
	 * same info lines. */
	if (disc_rtt_best(rtt, 0) >= 0)
		hc_log(HC_LOG_INFO, "discovery", "cross-venue bodies ranked by measured "
		       "latency: first %s (the cluster ranked %s first)",
		       list->bodies[0].node_id, first);
	return DISC_RANK_LATENCY;
}

/* Notes on each probe record of a measured body its median round trip. */
static void
discover_note_rtt(struct disc_choice *out, const struct disc_list *list,
                  const struct disc_rtt *rtt)
{
	size_t i, b;

	for (i = 0; i < out->nprobes; i++) {
		struct disc_probe_record *p = &out->probes[i];

		for (b = 0; b < list->n; b++) {
			if (strcmp(list->bodies[b].node_id, p->node_id) == 0)
				p->rtt_ms = p->transport == DISC_LAN ? rtt->lan_ms[b] : rtt->wg_ms[b];
		}
	}
}

/* The failover loop over list in the configured mode, after ranking it. */
static int
discover_choose(const struct disc_config *cfg, struct disc_list *list,
                struct disc_choice *out, struct hc_err *err)
{
	struct disc_rtt rtt;
	enum disc_rank ranking = discover_rank(cfg, list, &rtt);
	int rc;

	if (cfg->mode == DISC_MODE_PARALLEL)
		rc = disc_choose_parallel(cfg, list, out, err);
	else
		rc = disc_choose_sequential(cfg, list, NULL, NULL, out, err);
	out->ranking = ranking;
	if (ranking == DISC_RANK_LATENCY) {
		discover_note_rtt(out, list, &rtt);
		/* After the choice: the report must not delay it. */
		disc_report_latency(cfg, list, &rtt);
	}
	return rc;
}

/* Puts n earlier probe records in front of out's, as many as fit. */
static void
discover_prepend_probes(struct disc_choice *out, const struct disc_probe_record *recs,
                        size_t n)
{
	size_t cap = sizeof(out->probes) / sizeof(out->probes[0]);
	size_t keep;

	if (n > cap)
		n = cap;
	keep = out->nprobes + n > cap ? cap - n : out->nprobes;
	memmove(&out->probes[n], &out->probes[0], keep * sizeof(out->probes[0]));
	memcpy(&out->probes[0], recs, n * sizeof(out->probes[0]));
	out->nprobes = keep + n;
}

/*
 * Every body of a quickroute list was unreachable: quickroute is a gate, so
 * the cluster never looked at other venues. Ask once more, excluding the
 * bodies just tried; the answer is the cross-venue partition (or nothing).
 * out keeps the probes of both rounds.
 */
static int
discover_past_quickroute(const struct disc_config *cfg, const struct disc_list *tried,
                         struct disc_choice *out, struct hc_err *err)
{
	struct disc_list *rest = NULL;
	struct disc_probe_record *earlier = NULL;
	size_t nearlier = out->nprobes;
	struct hc_err ferr = { 0, "" };
	int rc;

	rest = malloc(sizeof(*rest));
	earlier = malloc(sizeof(out->probes));
	if (rest == NULL || earlier == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(earlier, out->probes, nearlier * sizeof(out->probes[0]));
	rc = disc_fetch_eligible(cfg, tried, rest, &ferr);
	if (rc != 0 || rest->n == 0) {
		if (rc != 0)
			hc_log(HC_LOG_WARN, "discovery", "%s", ferr.msg);
		hc_log(HC_LOG_ERROR, "discovery", "no reachable body among %zu eligible",
		       tried->n);
		rc = hc_err_set(err, HC_EUNAVAIL, "no reachable body among %zu eligible",
		                tried->n);
		goto done;
	}
	hc_log(HC_LOG_INFO, "discovery", "%zu eligible bodies in other venues", rest->n);
	rest->tried_before = tried->n;
	disc_apply_demotions(cfg->state_dir, rest);
	rc = discover_choose(cfg, rest, out, err);
	discover_prepend_probes(out, earlier, nearlier);
done:
	free(earlier);
	free(rest);
	return rc;
}

int
disc_discover(const struct disc_config *cfg, int use_cache, struct disc_choice *out,
              struct hc_err *err)
{
	struct disc_list *list = NULL;
	struct disc_probe_record cache_probe;
	struct disc_cached c;
	struct hc_err lerr = { 0, "" };
	int64_t start = hc_now_ms();
	int probed = 0;
	int rc;

	if (use_cache && try_cache(cfg, out, &cache_probe, &probed)) {
		out->elapsed_ms = hc_now_ms() - start;
		return 0;
	}
	list = malloc(sizeof(*list));
	if (list == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = disc_fetch_eligible(cfg, NULL, list, err);
	if (rc != 0)
		goto done;
	hc_log(HC_LOG_INFO, "discovery", "%zu eligible bodies for head %s", list->n,
	       cfg->head_id != NULL && *cfg->head_id != '\0' ? cfg->head_id : "(none)");
	disc_apply_demotions(cfg->state_dir, list);
	rc = discover_choose(cfg, list, out, err);
	if (rc == HC_EUNAVAIL && list->gated &&
	    !(cfg->cancel != NULL && *cfg->cancel))
		rc = discover_past_quickroute(cfg, list, out, err);
	if (probed)
		discover_prepend_probes(out, &cache_probe, 1);
	if (rc != 0)
		goto done;
	memset(&c, 0, sizeof(c));
	hc_strlcpy(c.node_id, out->body.node_id, sizeof(c.node_id));
	hc_strlcpy(c.name, out->body.name, sizeof(c.name));
	hc_strlcpy(c.ip, out->ip, sizeof(c.ip));
	c.transport = out->transport;
	c.same_venue = out->body.same_venue;
	/* The choice stands even when it cannot be remembered. */
	if (disc_cache_store(cfg->state_dir, &c, &lerr) != 0)
		hc_log(HC_LOG_WARN, "discovery", "%s", lerr.msg);
done:
	free(list);
	out->elapsed_ms = hc_now_ms() - start;
	return rc;
}
