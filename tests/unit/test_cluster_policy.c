/* The body-selection partition policy (the seed's four cases and the
 * filters and ties around them) and the strict fleet file loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cluster/cluster.h"

struct spec {
	const char *id;
	const char *role;
	const char *district;
	const char *venue;
	const char *owner;
	const char *status;
	int drained;
	int idle;
	long long vram_mb;
};

#define HEAD "node-74adf4f8"     /* peppy-dumpling-32 */
#define BOOM "node-74f9fbf2"     /* boom-pickle-38 */
#define COSMIC "node-4c2be4b0"   /* cosmic-pretzel-98 */
#define VF "visit.flanders"
#define OTHER "ghent.arcades"

/* Builds a fleet from specs (ended by a NULL id) through the real loader. */
static struct clu_fleet *
fleet_of(const struct spec *specs)
{
	struct clu_fleet *fleet = NULL;
	struct hc_err err = { 0, "" };
	char *text = NULL;
	size_t len = 0, i;
	FILE *out = open_memstream(&text, &len);

	assert_non_null(out);
	fputs("nodes:\n", out);
	for (i = 0; specs[i].id != NULL; i++) {
		const struct spec *s = &specs[i];
		fprintf(out,
		        "  - {id: %s, name: %s-name, role: %s, district: %s, venue: %s,\n"
		        "     owner: %s, lan_ip: 127.11.0.%zu, wg_ip: 127.10.100.%zu,\n"
		        "     status: %s, drained: %s, idle: %s, vram_mb: %lld}\n",
		        s->id, s->id, s->role, s->district, s->venue, s->owner, i + 1, i + 1,
		        s->status, s->drained ? "true" : "false", s->idle ? "true" : "false",
		        s->vram_mb);
	}
	assert_int_equal(fclose(out), 0);
	if (clu_fleet_load_buffer("fleet.yaml", text, len, &fleet, &err) != 0)
		fail_msg("fleet did not load: %s\n%s", err.msg, text);
	free(text);
	return fleet;
}

/* The seed's fleet: peppy (head), boom-pickle in its venue, cosmic across
 * venues, and bodies each filter must drop. */
static const struct spec seed_fleet[] = {
	{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 0 },
	{ BOOM, "body", "bxl1", "rupelmonde", VF, "online", 0, 0, 8192 },
	{ COSMIC, "body", "bxl1", "cloud-seven", VF, "online", 0, 1, 8192 },
	{ "node-other-owner", "body", "bxl1", "cloud-seven", OTHER, "online", 0, 1, 24576 },
	{ "node-drained", "body", "bxl1", "cloud-seven", VF, "online", 1, 1, 24576 },
	{ "node-offline", "body", "bxl1", "cloud-seven", VF, "offline", 0, 1, 24576 },
	{ "node-ant1", "body", "ant1", "zuid", VF, "online", 0, 1, 24576 },
	{ NULL },
};

static void
expect_ids(const struct clu_eligible *e, const char *const *want)
{
	size_t n = 0;

	while (want[n] != NULL)
		n++;
	if (e->n != n) {
		size_t i;
		for (i = 0; i < e->n; i++)
			print_message("  got %s\n", e->picks[i].node->id);
		fail_msg("got %zu bodies, want %zu", e->n, n);
	}
	for (n = 0; want[n] != NULL; n++)
		assert_string_equal(e->picks[n].node->id, want[n]);
}

static void
eligible(const struct clu_fleet *fleet, const char *district, const char *venue,
         const char *head_id, struct clu_eligible *e)
{
	struct clu_query q = { district, venue, head_id, NULL, 0, NULL, 0 };
	struct hc_err err = { 0, "" };

	if (clu_policy_eligible(fleet, &q, e, &err) != 0)
		fail_msg("clu_policy_eligible: %s", err.msg);
}

/* Seed 1: the head's own venue has a body: quickroute returns it, and only it. */
static void
test_quickroute_hit(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet);
	struct clu_eligible e;
	static const char *const want[] = { BOOM, NULL };

	(void)state;
	eligible(fleet, NULL, NULL, HEAD, &e);
	expect_ids(&e, want);
	assert_int_equal(e.partition, CLU_PART_QUICKROUTE);
	assert_string_equal(clu_partition_name(e.partition), "quickroute");
	assert_true(e.picks[0].same_venue);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Quickroute is a gate, not a sort key: a busy small same-venue body wins
 * over an idle large cross-venue one, which is not listed at all. */
static void
test_quickroute_is_a_gate(void **state)
{
	static const struct spec specs[] = {
		{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 0 },
		{ BOOM, "body", "bxl1", "rupelmonde", VF, "online", 0, 0, 1024 },
		{ COSMIC, "body", "bxl1", "cloud-seven", VF, "online", 0, 1, 49152 },
		{ NULL },
	};
	struct clu_fleet *fleet = fleet_of(specs);
	struct clu_eligible e;
	static const char *const want[] = { BOOM, NULL };

	(void)state;
	eligible(fleet, NULL, NULL, HEAD, &e);
	expect_ids(&e, want);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Seed 2 (Test A step 1 and 2): boom-pickle parked in bxl1-test empties the
 * quickroute; cross-venue returns cosmic alone, same_venue false; moving it
 * back restores quickroute. */
static void
test_quickroute_empty_cross_venue(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet);
	struct hc_err err = { 0, "" };
	struct clu_eligible e;
	static const char *const cosmic[] = { COSMIC, NULL };
	static const char *const boom[] = { BOOM, NULL };

	(void)state;
	assert_int_equal(clu_fleet_move(fleet, BOOM, "bxl1-test", "rupelmonde", &err), 0);
	eligible(fleet, NULL, NULL, HEAD, &e);
	expect_ids(&e, cosmic);
	assert_int_equal(e.partition, CLU_PART_CROSS_VENUE);
	assert_false(e.picks[0].same_venue);
	assert_string_equal(e.district, "bxl1");
	assert_string_equal(e.venue, "rupelmonde");
	clu_eligible_free(&e);

	assert_int_equal(clu_fleet_move(fleet, BOOM, "bxl1", NULL, &err), 0);
	assert_string_equal(clu_fleet_find(fleet, BOOM)->venue, "rupelmonde");
	eligible(fleet, NULL, NULL, HEAD, &e);
	expect_ids(&e, boom);
	assert_true(e.picks[0].same_venue);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Test B: the head could not reach boom-pickle, so it asks again excluding
 * it; quickroute is then empty and cross-venue gives cosmic. Excluding a
 * body never adds one of another owner, and excluding everything is empty. */
static void
test_exclude_unreachable(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet);
	struct hc_err err = { 0, "" };
	struct clu_eligible e;
	static const char *const boom_only[] = { BOOM };
	static const char *const both[] = { BOOM, COSMIC };
	static const char *const cosmic[] = { COSMIC, NULL };
	struct clu_query q = { NULL, NULL, HEAD, boom_only, 1, NULL, 0 };

	(void)state;
	assert_int_equal(clu_policy_eligible(fleet, &q, &e, &err), 0);
	expect_ids(&e, cosmic);
	assert_int_equal(e.partition, CLU_PART_CROSS_VENUE);
	assert_false(e.picks[0].same_venue);
	clu_eligible_free(&e);

	q.exclude = both;
	q.nexclude = 2;
	assert_int_equal(clu_policy_eligible(fleet, &q, &e, &err), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(e.partition, CLU_PART_NONE);
	clu_eligible_free(&e);

	/* Strict venue honours it too. */
	q.head_id = NULL;
	q.district = "bxl1";
	q.venue = "rupelmonde";
	q.exclude = boom_only;
	q.nexclude = 1;
	assert_int_equal(clu_policy_eligible(fleet, &q, &e, &err), 0);
	assert_int_equal(e.n, 0);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Seed 3: no candidate anywhere is an empty list, not an error. */
static void
test_no_candidates(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet);
	struct hc_err err = { 0, "" };
	struct clu_eligible e;

	(void)state;
	assert_int_equal(clu_fleet_move(fleet, BOOM, "bxl1-test", NULL, &err), 0);
	assert_int_equal(clu_fleet_set_state(fleet, COSMIC, CLU_STATUS_OFFLINE, -1, &err), 0);
	eligible(fleet, NULL, NULL, HEAD, &e);
	assert_int_equal(e.n, 0);
	assert_null(e.picks);
	assert_int_equal(e.partition, CLU_PART_NONE);
	assert_string_equal(clu_partition_name(e.partition), "none");
	clu_eligible_free(&e);
	/* Strict venue with nothing there is empty too. */
	eligible(fleet, "bxl1", "nowhere", NULL, &e);
	assert_int_equal(e.n, 0);
	assert_int_equal(e.partition, CLU_PART_STRICT_VENUE);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Seed 4: without head_id the old strict venue stands: every owner's bodies
 * of that district and venue, never another venue, never a head. */
static void
test_missing_head_id_strict_venue(void **state)
{
	static const struct spec specs[] = {
		{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 0 },
		{ BOOM, "body", "bxl1", "rupelmonde", VF, "online", 0, 1, 8192 },
		{ "node-r-other", "body", "bxl1", "rupelmonde", OTHER, "online", 0, 1, 4096 },
		{ COSMIC, "body", "bxl1", "cloud-seven", VF, "online", 0, 1, 49152 },
		{ "node-test", "body", "bxl1-test", "rupelmonde", VF, "online", 0, 1, 49152 },
		{ NULL },
	};
	struct clu_fleet *fleet = fleet_of(specs);
	struct clu_query q = { "bxl1", NULL, NULL, NULL, 0, NULL, 0 };
	struct hc_err err = { 0, "" };
	struct clu_eligible e;
	static const char *const want[] = { BOOM, "node-r-other", NULL };

	(void)state;
	eligible(fleet, "bxl1", "rupelmonde", NULL, &e);
	expect_ids(&e, want);
	assert_int_equal(e.partition, CLU_PART_STRICT_VENUE);
	assert_true(e.picks[0].same_venue);
	assert_true(e.picks[1].same_venue);
	clu_eligible_free(&e);
	/* Cloud-seven is not rupelmonde: strict means strict even when empty
	 * nearby would be tempting. */
	eligible(fleet, "bxl1", "cloud-seven", NULL, &e);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.picks[0].node->id, COSMIC);
	clu_eligible_free(&e);

	assert_int_equal(clu_policy_eligible(fleet, &q, &e, &err), HC_EDATA);
	assert_string_equal(err.msg, "venue is required without head_id");
	q.district = NULL;
	q.venue = "rupelmonde";
	assert_int_equal(clu_policy_eligible(fleet, &q, &e, &err), HC_EDATA);
	assert_string_equal(err.msg, "district is required without head_id");
	assert_int_equal(e.n, 0);
	clu_fleet_free(fleet);
}

/* Drained and offline bodies are out of every partition, and back once
 * they are online and undrained. */
static void
test_drained_offline_excluded(void **state)
{
	static const struct spec specs[] = {
		{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 0 },
		{ "node-q-drained", "body", "bxl1", "rupelmonde", VF, "online", 1, 1, 8192 },
		{ "node-q-offline", "body", "bxl1", "rupelmonde", VF, "offline", 0, 1, 8192 },
		{ "node-x-drained", "body", "bxl1", "cloud-seven", VF, "online", 1, 1, 8192 },
		{ "node-x-offline", "body", "bxl1", "cloud-seven", VF, "offline", 0, 1, 8192 },
		{ COSMIC, "body", "bxl1", "cloud-seven", VF, "online", 0, 0, 1024 },
		{ NULL },
	};
	struct clu_fleet *fleet = fleet_of(specs);
	struct hc_err err = { 0, "" };
	struct clu_eligible e;
	static const char *const cosmic[] = { COSMIC, NULL };
	static const char *const back[] = { "node-q-drained", NULL };

	(void)state;
	eligible(fleet, NULL, NULL, HEAD, &e);
	expect_ids(&e, cosmic);
	assert_int_equal(e.partition, CLU_PART_CROSS_VENUE);
	clu_eligible_free(&e);
	eligible(fleet, "bxl1", "rupelmonde", NULL, &e);
	assert_int_equal(e.n, 0);
	clu_eligible_free(&e);

	assert_int_equal(clu_fleet_set_state(fleet, "node-q-drained", -1, 0, &err), 0);
	eligible(fleet, NULL, NULL, HEAD, &e);
	expect_ids(&e, back);
	assert_int_equal(e.partition, CLU_PART_QUICKROUTE);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Idle first, then VRAM descending, then node id, in every partition; file
 * order plays no part. */
static void
test_ordering_ties(void **state)
{
	static const struct spec specs[] = {
		{ "node-a", "body", "bxl1", "cloud-seven", VF, "online", 0, 0, 49152 },
		{ "node-d", "body", "bxl1", "cloud-seven", VF, "online", 0, 1, 16384 },
		{ "node-b", "body", "bxl1", "cloud-seven", VF, "online", 0, 1, 8192 },
		{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 0 },
		{ "node-c", "body", "bxl1", "cloud-seven", VF, "online", 0, 1, 16384 },
		{ "node-e", "body", "bxl1", "cloud-seven", VF, "online", 0, 0, 49152 },
		{ NULL },
	};
	struct clu_fleet *fleet = fleet_of(specs);
	struct clu_eligible e;
	static const char *const want[] = {
		"node-c", "node-d", "node-b", "node-a", "node-e", NULL,
	};
	size_t i;

	(void)state;
	eligible(fleet, NULL, NULL, HEAD, &e);
	assert_int_equal(e.partition, CLU_PART_CROSS_VENUE);
	expect_ids(&e, want);
	for (i = 0; i < e.n; i++)
		assert_false(e.picks[i].same_venue);
	clu_eligible_free(&e);
	eligible(fleet, "bxl1", "cloud-seven", NULL, &e);
	expect_ids(&e, want);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* The same ties inside quickroute. */
static void
test_ordering_quickroute(void **state)
{
	static const struct spec specs[] = {
		{ "node-z", "body", "bxl1", "rupelmonde", VF, "online", 0, 0, 99999 },
		{ "node-y", "body", "bxl1", "rupelmonde", VF, "online", 0, 1, 4096 },
		{ "node-x", "body", "bxl1", "rupelmonde", VF, "online", 0, 1, 4096 },
		{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 0 },
		{ "node-w", "body", "bxl1", "rupelmonde", VF, "online", 0, 1, 8192 },
		{ NULL },
	};
	struct clu_fleet *fleet = fleet_of(specs);
	struct clu_eligible e;
	static const char *const want[] = { "node-w", "node-x", "node-y", "node-z", NULL };

	(void)state;
	eligible(fleet, NULL, NULL, HEAD, &e);
	assert_int_equal(e.partition, CLU_PART_QUICKROUTE);
	expect_ids(&e, want);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Another owner's body never serves the head: not in quickroute even in
 * the head's venue, and not across venues even when it is all there is. */
static void
test_other_owner_never_listed(void **state)
{
	static const struct spec specs[] = {
		{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 0 },
		{ "node-o-here", "body", "bxl1", "rupelmonde", OTHER, "online", 0, 1, 49152 },
		{ "node-o-there", "body", "bxl1", "cloud-seven", OTHER, "online", 0, 1, 49152 },
		{ NULL },
	};
	struct clu_fleet *fleet = fleet_of(specs);
	struct clu_eligible e;

	(void)state;
	eligible(fleet, NULL, NULL, HEAD, &e);
	assert_int_equal(e.n, 0);
	assert_int_equal(e.partition, CLU_PART_NONE);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Heads are never listed: not the asking head, not another head, in no
 * partition, whatever their idle and VRAM. */
static void
test_head_never_listed(void **state)
{
	static const struct spec specs[] = {
		{ HEAD, "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 99999 },
		{ "node-head2", "head", "bxl1", "rupelmonde", VF, "online", 0, 1, 99999 },
		{ "node-head3", "head", "bxl1", "cloud-seven", VF, "online", 0, 1, 99999 },
		{ COSMIC, "body", "bxl1", "cloud-seven", VF, "online", 0, 0, 1 },
		{ NULL },
	};
	struct clu_fleet *fleet = fleet_of(specs);
	struct clu_eligible e;
	static const char *const cosmic[] = { COSMIC, NULL };

	(void)state;
	eligible(fleet, NULL, NULL, HEAD, &e);
	expect_ids(&e, cosmic);
	clu_eligible_free(&e);
	eligible(fleet, "bxl1", "rupelmonde", NULL, &e);
	assert_int_equal(e.n, 0);
	clu_eligible_free(&e);
	eligible(fleet, "bxl1", "cloud-seven", NULL, &e);
	expect_ids(&e, cosmic);
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* An unknown head is an error (404 in the API), and so is a body id. */
static void
test_unknown_head(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet);
	struct clu_query q = { "bxl1", "rupelmonde", "node-nope", NULL, 0, NULL, 0 };
	struct hc_err err = { 0, "" };
	struct clu_eligible e;

	(void)state;
	assert_int_equal(clu_policy_eligible(fleet, &q, &e, &err), HC_ENOTFOUND);
	assert_string_equal(err.msg, "unknown head 'node-nope'");
	assert_int_equal(e.n, 0);
	q.head_id = BOOM;
	assert_int_equal(clu_policy_eligible(fleet, &q, &e, &err), HC_EDATA);
	assert_string_equal(err.msg, "node 'node-74f9fbf2' is a body, not a head");
	clu_fleet_free(fleet);
}

/* The head's placement in the fleet decides, not the query's district and
 * venue (a kiosk's config can be stale after a move). */
static void
test_head_placement_wins(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet);
	struct clu_eligible e;
	static const char *const boom[] = { BOOM, NULL };

	(void)state;
	eligible(fleet, "ant1", "zuid", HEAD, &e);
	expect_ids(&e, boom);
	assert_string_equal(e.district, "bxl1");
	clu_eligible_free(&e);
	clu_fleet_free(fleet);
}

/* Changes: unknown ids and bad values are refused and change nothing. */
static void
test_fleet_changes(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet);
	struct hc_err err = { 0, "" };
	const struct clu_node *boom;

	(void)state;
	assert_int_equal(clu_fleet_move(fleet, "node-nope", "bxl1", NULL, &err), HC_ENOTFOUND);
	assert_string_equal(err.msg, "unknown node 'node-nope'");
	assert_int_equal(clu_fleet_move(fleet, BOOM, "bxl 1", "x", &err), HC_EDATA);
	assert_string_equal(err.msg, "district: 'bxl 1' is not a DNS label (letters, digits, '-')");
	assert_int_equal(clu_fleet_move(fleet, BOOM, "bxl1-test", "", &err), HC_EDATA);
	assert_string_equal(err.msg, "venue: '' is not a DNS label (letters, digits, '-')");
	boom = clu_fleet_find(fleet, BOOM);
	assert_string_equal(boom->district, "bxl1");
	assert_string_equal(boom->venue, "rupelmonde");
	assert_int_equal(clu_fleet_set_state(fleet, "node-nope", 1, -1, &err), HC_ENOTFOUND);
	assert_int_equal(clu_fleet_set_state(fleet, BOOM, 7, -1, &err), HC_EDATA);
	assert_int_equal(clu_fleet_set_state(fleet, BOOM, -1, 2, &err), HC_EDATA);
	assert_int_equal(boom->status, CLU_STATUS_ONLINE);
	assert_int_equal(boom->drained, 0);
	assert_int_equal(clu_fleet_set_state(fleet, BOOM, CLU_STATUS_OFFLINE, 1, &err), 0);
	assert_int_equal(boom->status, CLU_STATUS_OFFLINE);
	assert_int_equal(boom->drained, 1);
	clu_fleet_free(fleet);
}

/* clu_fleet_to_yaml reads back to the same fleet, changes included. */
static void
test_yaml_round_trip(void **state)
{
	struct clu_fleet *fleet = fleet_of(seed_fleet), *again = NULL;
	struct hc_err err = { 0, "" };
	char *text = NULL;
	size_t len = 0, i;

	(void)state;
	assert_int_equal(clu_fleet_move(fleet, BOOM, "bxl1-test", NULL, &err), 0);
	assert_int_equal(clu_fleet_set_state(fleet, COSMIC, -1, 1, &err), 0);
	assert_int_equal(clu_fleet_to_yaml(fleet, &text, &len, &err), 0);
	assert_int_equal(strlen(text), len);
	if (clu_fleet_load_buffer("saved.yaml", text, len, &again, &err) != 0)
		fail_msg("%s\n%s", err.msg, text);
	assert_int_equal(clu_fleet_count(again), clu_fleet_count(fleet));
	for (i = 0; i < clu_fleet_count(fleet); i++) {
		const struct clu_node *a = clu_fleet_node(fleet, i);
		const struct clu_node *b = clu_fleet_node(again, i);
		assert_string_equal(a->id, b->id);
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->role, b->role);
		assert_string_equal(a->district, b->district);
		assert_string_equal(a->venue, b->venue);
		assert_string_equal(a->owner, b->owner);
		assert_string_equal(a->lan_ip, b->lan_ip);
		assert_string_equal(a->wg_ip, b->wg_ip);
		assert_int_equal(a->status, b->status);
		assert_int_equal(a->drained, b->drained);
		assert_int_equal(a->idle, b->idle);
		assert_int_equal(a->vram_mb, b->vram_mb);
	}
	assert_string_equal(clu_fleet_find(again, BOOM)->district, "bxl1-test");
	assert_true(clu_fleet_find(again, COSMIC)->drained);
	assert_null(clu_fleet_node(again, clu_fleet_count(again)));
	free(text);
	clu_fleet_free(again);
	clu_fleet_free(fleet);
}

/* One valid node; tests below break one thing in it. */
#define NODE_OK(extra) \
	"nodes:\n" \
	"  - id: node-74f9fbf2\n" \
	"    name: boom-pickle-38\n" \
	"    role: body\n" \
	"    district: bxl1\n" \
	"    venue: rupelmonde\n" \
	"    owner: visit.flanders\n" \
	"    lan_ip: 127.11.0.24\n" \
	"    wg_ip: 127.10.100.24\n" \
	"    status: online\n" \
	extra

static void
expect_fleet_error(const char *text, const char *want)
{
	struct clu_fleet *fleet = NULL;
	struct hc_err err = { 0, "" };

	assert_int_equal(clu_fleet_load_buffer("fleet.yaml", text, strlen(text), &fleet, &err),
	                 HC_ECONFIG);
	assert_null(fleet);
	assert_string_equal(err.msg, want);
}

static void
test_fleet_defaults(void **state)
{
	struct clu_fleet *fleet = NULL;
	struct hc_err err = { 0, "" };
	const char *text = NODE_OK("");
	const struct clu_node *n;

	(void)state;
	assert_int_equal(clu_fleet_load_buffer("fleet.yaml", text, strlen(text), &fleet, &err), 0);
	assert_int_equal(clu_fleet_count(fleet), 1);
	n = clu_fleet_node(fleet, 0);
	assert_string_equal(n->name, "boom-pickle-38");
	assert_int_equal(n->role, CLU_ROLE_BODY);
	assert_string_equal(clu_role_name(n->role), "body");
	assert_string_equal(clu_status_name(n->status), "online");
	assert_int_equal(n->drained, 0);
	assert_int_equal(n->idle, 0);
	assert_int_equal(n->vram_mb, 0);
	assert_null(clu_fleet_find(fleet, "node-nope"));
	clu_fleet_free(fleet);
}

static void
test_fleet_file_errors(void **state)
{
	(void)state;
	expect_fleet_error(NODE_OK("    colour: green\n"),
	                   "fleet.yaml:11:5: unknown key 'colour' in nodes[0]");
	expect_fleet_error("nodes:\n  - id: node-1\n    name: n\n",
	                   "fleet.yaml:2:5: nodes[0]: missing required key 'role'");
	expect_fleet_error(NODE_OK("") "  - {id: node-2, name: b, role: body}\n",
	                   "fleet.yaml:11:5: nodes[1]: missing required key 'district'");
	expect_fleet_error(NODE_OK("    role: head\n"),
	                   "fleet.yaml:11:5: duplicate key 'nodes[0].role'");
	expect_fleet_error(NODE_OK("    vram_mb: -1\n"),
	                   "fleet.yaml:11:14: nodes[0].vram_mb: -1 is out of range [0, 16777216]");
	expect_fleet_error(NODE_OK("    idle: yes\n"),
	                   "fleet.yaml:11:11: nodes[0].idle: expected true or false, got 'yes'");
	expect_fleet_error("nodes:\n  - {id: node-1, name: n, role: kiosk}\n",
	                   "fleet.yaml:2:33: nodes[0].role: 'kiosk' is not one of: head body");
	expect_fleet_error("nodes:\n  - {id: node-1, name: n, role: body, district: bxl1,\n"
	                   "     venue: v, owner: o, lan_ip: 11.0.11.x, wg_ip: 127.0.0.1,\n"
	                   "     status: online}\n",
	                   "fleet.yaml:3:34: nodes[0].lan_ip: '11.0.11.x' is not an IP address");
	expect_fleet_error("nodes:\n  - {id: node-1, name: n, role: body, district: \"bxl 1\"}\n",
	                   "fleet.yaml:2:49: nodes[0].district: 'bxl 1' is not a DNS label "
	                   "(letters, digits, '-')");
	expect_fleet_error("nodes:\n  - {id: \"node/1\"}\n",
	                   "fleet.yaml:2:10: nodes[0].id: 'node/1' is not a node id "
	                   "(1 to 64 letters, digits, '-', '_', '.')");
	expect_fleet_error("nodes:\n  - {id: n, name: n, role: body, district: b, venue: v,\n"
	                   "     owner: o, lan_ip: 127.0.0.1, wg_ip: 127.0.0.1, status: busy}\n",
	                   "fleet.yaml:3:61: nodes[0].status: 'busy' is not one of: online offline");
	expect_fleet_error(NODE_OK("  - id: node-74f9fbf2\n    name: again\n    role: body\n"
	                           "    district: bxl1\n    venue: v\n    owner: o\n"
	                           "    lan_ip: ::1\n    wg_ip: 127.0.0.2\n    status: online\n"),
	                   "fleet.yaml:11:9: nodes[1].id: duplicate id 'node-74f9fbf2' "
	                   "(first used by nodes[0])");
	expect_fleet_error("nodes: {}\n", "fleet.yaml:1:8: nodes: expected a list of mappings");
	expect_fleet_error("node:\n  - {}\n", "fleet.yaml:1:1: unknown key 'node'");
	expect_fleet_error("other: 1\n", "fleet.yaml:1:1: unknown key 'other'");
	expect_fleet_error("{}\n", "fleet.yaml:1:1: missing required key 'nodes'");
	expect_fleet_error("nodes:\n  - {id: n, name: n, role: body, district: b, venue: v,\n"
	                   "     owner: \"\", lan_ip: 127.0.0.1, wg_ip: 127.0.0.1, status: online}\n",
	                   "fleet.yaml:3:13: nodes[0].owner: must not be empty");
	expect_fleet_error("nodes:\n  - {id: n, name: n, role: body, district: b, venue: v,\n"
	                   "     owner: o, lan_ip: 127.0.0.1, status: online}\n",
	                   "fleet.yaml:2:10: nodes[0].wg_ip: a body needs one (a head may "
	                   "leave it out)");
}

/* A head is never probed: it needs no lan_ip or wg_ip. */
static void
test_fleet_head_without_addresses(void **state)
{
	struct clu_fleet *fleet = NULL;
	struct hc_err err = { 0, "" };
	const char *text = NODE_OK("") "  - {id: node-head, name: kiosk, role: head, district: bxl1,\n"
	                   "     venue: rupelmonde, owner: visit.flanders, status: online}\n";
	const struct clu_node *n;

	(void)state;
	assert_int_equal(clu_fleet_load_buffer("fleet.yaml", text, strlen(text), &fleet, &err), 0);
	n = clu_fleet_find(fleet, "node-head");
	assert_non_null(n);
	assert_int_equal(n->role, CLU_ROLE_HEAD);
	assert_string_equal(n->lan_ip, "");
	assert_string_equal(n->wg_ip, "");
	clu_fleet_free(fleet);
}

static void
test_fleet_missing_file(void **state)
{
	struct clu_fleet *fleet = NULL;
	struct hc_err err = { 0, "" };

	(void)state;
	assert_int_equal(clu_fleet_load_file("/nonexistent/fleet.yaml", &fleet, &err),
	                 HC_ECONFIG);
	assert_null(fleet);
	assert_string_equal(err.msg, "/nonexistent/fleet.yaml: No such file or directory");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quickroute_hit),
		cmocka_unit_test(test_quickroute_is_a_gate),
		cmocka_unit_test(test_quickroute_empty_cross_venue),
		cmocka_unit_test(test_exclude_unreachable),
		cmocka_unit_test(test_no_candidates),
		cmocka_unit_test(test_missing_head_id_strict_venue),
		cmocka_unit_test(test_drained_offline_excluded),
		cmocka_unit_test(test_ordering_ties),
		cmocka_unit_test(test_ordering_quickroute),
		cmocka_unit_test(test_other_owner_never_listed),
		cmocka_unit_test(test_head_never_listed),
		cmocka_unit_test(test_unknown_head),
		cmocka_unit_test(test_head_placement_wins),
		cmocka_unit_test(test_fleet_changes),
		cmocka_unit_test(test_yaml_round_trip),
		cmocka_unit_test(test_fleet_defaults),
		cmocka_unit_test(test_fleet_file_errors),
		cmocka_unit_test(test_fleet_head_without_addresses),
		cmocka_unit_test(test_fleet_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
