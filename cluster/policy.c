/*
 * The body-selection partition policy (docs/architecture.md section 9, seed "Server
 * changes"). A partition is a list of filters; a body is in it when every
 * filter accepts it. Within a partition bodies are ranked by a list of keys,
 * compared in order until one differs.
 *
 * Where later phases attach (runbooks/body-selection.md says the same):
 *  - Phase 2 (measured latency, issue 20): clu_key_rtt leads
 *    clu_cross_venue_keys, before idle and VRAM; quickroute needs none (same
 *    venue is the lowest latency by definition, and the gate stays a gate).
 *  - Phase 3 (sharing tier and cost): clu_filter_may_serve grows the
 *    allowed_orgs test; clu_key_cost_tier joins clu_cross_venue_keys.
 *  - Phase 5 (marketplace): clu_filter_may_serve also accepts a marketplace
 *    agreement; the cost tier ranks it last.
 *  - Phase 4 (mid-stream re-discovery) is client side; it reuses the
 *    exclude filter that Phase 1 clients already send after a quickroute
 *    list turned out unreachable.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

/* What the filters compare a body against. */
struct clu_ctx {
	const struct clu_node *head; /* NULL in strict venue */
	const char *district;
	const char *venue;
	const char *const *exclude;
	size_t nexclude;
	const struct clu_latency *latency;
	int64_t now_ms;
};

/* 1 when body belongs in the partition. */
typedef int (*clu_filter)(const struct clu_node *body, const struct clu_ctx *ctx);
/* <0 when a ranks before b, >0 after, 0 when this key cannot tell. */
typedef int (*clu_key)(const struct clu_pick *a, const struct clu_pick *b);

/* Every partition: a body (never a head), online, not drained. */
static int
clu_filter_available(const struct clu_node *body, const struct clu_ctx *ctx)
{
	(void)ctx;
	return body->role == CLU_ROLE_BODY && body->status == CLU_STATUS_ONLINE &&
	       !body->drained;
}

/* Every partition: not a body the head already found unreachable. The gate
 * stays a gate: a quickroute body that answers is never passed over. */
static int
clu_filter_not_excluded(const struct clu_node *body, const struct clu_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->nexclude; i++) {
		if (strcmp(body->id, ctx->exclude[i]) == 0)
			return 0;
	}
	return 1;
}

static int
clu_filter_district(const struct clu_node *body, const struct clu_ctx *ctx)
{
	return strcmp(body->district, ctx->district) == 0;
}

static int
clu_filter_venue(const struct clu_node *body, const struct clu_ctx *ctx)
{
	return strcmp(body->venue, ctx->venue) == 0;
}

/* Quickroute is the head's own organisation's fleet, whatever Phase 3 adds. */
static int
clu_filter_same_owner(const struct clu_node *body, const struct clu_ctx *ctx)
{
	return strcmp(body->owner, ctx->head->owner) == 0;
}

/* Whether body's owner lets the head's owner stream from it across venues.
 * Phase 1: same owner only. Phase 3: || head owner in body allowed_orgs;
 * Phase 5: || a marketplace agreement permits. */
static int
clu_filter_may_serve(const struct clu_node *body, const struct clu_ctx *ctx)
{
	return strcmp(body->owner, ctx->head->owner) == 0;
}

static const clu_filter clu_strict_venue_filters[] = {
	clu_filter_available, clu_filter_not_excluded, clu_filter_district,
	clu_filter_venue, NULL,
};

static const clu_filter clu_quickroute_filters[] = {
	clu_filter_available, clu_filter_not_excluded, clu_filter_district,
	clu_filter_venue, clu_filter_same_owner, NULL,
};

static const clu_filter clu_cross_venue_filters[] = {
	clu_filter_available, clu_filter_not_excluded, clu_filter_district,
	clu_filter_may_serve, NULL,
};

static int
clu_key_idle(const struct clu_pick *a, const struct clu_pick *b)
{
	return (b->node->idle != 0) - (a->node->idle != 0);
}

static int
clu_key_vram_desc(const struct clu_pick *a, const struct clu_pick *b)
{
	if (a->node->vram_mb != b->node->vram_mb)
		return a->node->vram_mb > b->node->vram_mb ? -1 : 1;
	return 0;
}

/* Last key: ids are unique, so the order is total and stable across runs. */
static int
clu_key_id(const struct clu_pick *a, const struct clu_pick *b)
{
	return strcmp(a->node->id, b->node->id);
}

static const clu_key clu_quickroute_keys[] = {
	clu_key_idle, clu_key_vram_desc, clu_key_id, NULL,
};

/* Strict venue keeps the quickroute order: both are one venue. */
#define clu_strict_venue_keys clu_quickroute_keys

/* Measured before unmeasured; among measured, lower estimate first, in steps
 * of CLU_RTT_TIE_MS so that bodies about as close keep the order below. */
static int
clu_key_rtt(const struct clu_pick *a, const struct clu_pick *b)
{
	long long sa, sb;

	if (a->has_rtt != b->has_rtt)
		return b->has_rtt - a->has_rtt;
	if (!a->has_rtt)
		return 0;
	sa = (long long)(a->rtt_ms / CLU_RTT_TIE_MS);
	sb = (long long)(b->rtt_ms / CLU_RTT_TIE_MS);
	return (sa > sb) - (sa < sb);
}

static const clu_key clu_cross_venue_keys[] = {
	clu_key_rtt, clu_key_idle, clu_key_vram_desc, clu_key_id, NULL,
};

static int
clu_rank_cmp(const void *pa, const void *pb, void *arg)
{
	const clu_key *keys = arg;
	size_t i;
	int c;

	for (i = 0; keys[i] != NULL; i++) {
		c = keys[i](pa, pb);
		if (c != 0)
			return c;
	}
	return 0;
}

/* Fills out->picks with the bodies every filter accepts, ranked by keys. */
static int
clu_partition(const struct clu_fleet *fleet, const struct clu_ctx *ctx,
              const clu_filter *filters, const clu_key *keys,
              struct clu_eligible *out, struct hc_err *err)
{
	size_t count = clu_fleet_count(fleet), i, f;
	struct clu_pick *picks;
	size_t n = 0;

	if (count == 0)
		return 0;
	picks = calloc(count, sizeof(*picks));
	if (picks == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	for (i = 0; i < count; i++) {
		const struct clu_node *body = clu_fleet_node(fleet, i);
		for (f = 0; filters[f] != NULL; f++) {
			if (!filters[f](body, ctx))
				break;
		}
		if (filters[f] != NULL)
			continue;
		picks[n].node = body;
		picks[n].same_venue = strcmp(body->district, ctx->district) == 0 &&
		                      strcmp(body->venue, ctx->venue) == 0;
		picks[n].has_rtt = ctx->head != NULL &&
		                   clu_latency_get(ctx->latency, ctx->head->id, body->id,
		                                   ctx->now_ms, &picks[n].rtt_ms) == 0;
		n++;
	}
	if (n == 0) {
		free(picks);
		return 0;
	}
	qsort_r(picks, n, sizeof(*picks), clu_rank_cmp, (void *)keys);
	out->picks = picks;
	out->n = n;
	return 0;
}

int
clu_policy_eligible(const struct clu_fleet *fleet, const struct clu_query *q,
                    struct clu_eligible *out, struct hc_err *err)
{
	struct clu_ctx ctx = { NULL, NULL, NULL, q->exclude, q->nexclude, q->latency,
	                       q->now_ms };
	int rc;

	memset(out, 0, sizeof(*out));
	if (q->head_id == NULL) {
		if (q->district == NULL || *q->district == '\0')
			return hc_err_set(err, HC_EDATA, "district is required without head_id");
		if (q->venue == NULL || *q->venue == '\0')
			return hc_err_set(err, HC_EDATA, "venue is required without head_id");
		ctx.district = q->district;
		ctx.venue = q->venue;
		out->partition = CLU_PART_STRICT_VENUE;
		out->district = ctx.district;
		out->venue = ctx.venue;
		return clu_partition(fleet, &ctx, clu_strict_venue_filters,
		                     clu_strict_venue_keys, out, err);
	}

	ctx.head = clu_fleet_find(fleet, q->head_id);
	if (ctx.head == NULL)
		return hc_err_set(err, HC_ENOTFOUND, "unknown head '%s'", q->head_id);
	if (ctx.head->role != CLU_ROLE_HEAD)
		return hc_err_set(err, HC_EDATA, "node '%s' is a body, not a head",
		                  q->head_id);
	ctx.district = ctx.head->district;
	ctx.venue = ctx.head->venue;
	out->district = ctx.district;
	out->venue = ctx.venue;

	/* Quickroute is a gate: when the head's own venue has a body, nothing
	 * across venues is considered, however idle or large. */
	out->partition = CLU_PART_QUICKROUTE;
	rc = clu_partition(fleet, &ctx, clu_quickroute_filters, clu_quickroute_keys,
	                   out, err);
	if (rc != 0 || out->n > 0)
		return rc;
	out->partition = CLU_PART_CROSS_VENUE;
	rc = clu_partition(fleet, &ctx, clu_cross_venue_filters, clu_cross_venue_keys,
	                   out, err);
	if (rc == 0 && out->n == 0)
		out->partition = CLU_PART_NONE;
	return rc;
}

void
clu_eligible_free(struct clu_eligible *e)
{
	if (e == NULL)
		return;
	free(e->picks);
	e->picks = NULL;
	e->n = 0;
}

const char *
clu_partition_name(enum clu_partition p)
{
	switch (p) {
	case CLU_PART_STRICT_VENUE: return "strict_venue";
	case CLU_PART_QUICKROUTE:   return "quickroute";
	case CLU_PART_CROSS_VENUE:  return "cross_venue";
	case CLU_PART_NONE:         return "none";
	}
	return "none";
}
