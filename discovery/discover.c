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
	rc = disc_fetch_eligible(cfg, list, err);
	if (rc != 0)
		goto done;
	hc_log(HC_LOG_INFO, "discovery", "%zu eligible bodies for head %s", list->n,
	       cfg->head_id != NULL && *cfg->head_id != '\0' ? cfg->head_id : "(none)");
	disc_apply_demotions(cfg->state_dir, list);
	if (cfg->mode == DISC_MODE_PARALLEL)
		rc = disc_choose_parallel(cfg, list, out, err);
	else
		rc = disc_choose_sequential(cfg, list, NULL, NULL, out, err);
	if (probed && out->nprobes < sizeof(out->probes) / sizeof(out->probes[0])) {
		memmove(&out->probes[1], &out->probes[0], out->nprobes * sizeof(out->probes[0]));
		out->probes[0] = cache_probe;
		out->nprobes++;
	}
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
