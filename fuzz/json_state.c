/*
 * discovery's state files (discovery-cache.json, discovery-demoted.json in
 * state_dir) holding the input: loading the cache, applying demotions to a
 * list, and recording one more demotion over whatever the file held.
 */
#include <string.h>

#include "discovery/discovery.h"
#include "fuzz/lib/support.h"

static const char *const ids[] = { "node-a", "node-b", "node-c" };
#define NIDS (sizeof(ids) / sizeof(ids[0]))

static void
fill_list(struct disc_list *l)
{
	size_t i;

	memset(l, 0, sizeof(*l));
	for (i = 0; i < NIDS; i++) {
		hc_strlcpy(l->bodies[i].node_id, ids[i], sizeof(l->bodies[i].node_id));
		hc_strlcpy(l->bodies[i].lan_ip, "127.0.0.1", sizeof(l->bodies[i].lan_ip));
	}
	l->n = l->total = NIDS;
}

/* The list is a permutation of ids. */
static void
check_list(const struct disc_list *l)
{
	size_t i, k, seen = 0;

	if (l->n != NIDS)
		fz_fail("demotions changed the number of bodies");
	for (i = 0; i < NIDS; i++) {
		for (k = 0; k < l->n; k++) {
			if (strcmp(l->bodies[k].node_id, ids[i]) == 0) {
				seen++;
				break;
			}
		}
	}
	if (seen != NIDS)
		fz_fail("demotions lost or duplicated a body");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct disc_cached cached;
	struct disc_list list;
	const char *dir;
	size_t i;
	int rc;

	fz_quiet();
	dir = fz_scratch();
	fz_write(dir, "discovery-cache.json", data, size);
	fz_write(dir, "discovery-demoted.json", data, size);
	rc = disc_cache_load(dir, &cached, &err);
	if (rc == 0) {
		if (strnlen(cached.node_id, DISC_LABEL_MAX) == DISC_LABEL_MAX ||
		    strnlen(cached.ip, DISC_IP_MAX) == DISC_IP_MAX)
			fz_fail("a loaded cache holds an unterminated string");
	} else if (rc != HC_EDATA && rc != HC_ENOTFOUND && rc != HC_ENOMEM) {
		fz_fail("disc_cache_load: unexpected status");
	}
	fill_list(&list);
	disc_apply_demotions(dir, &list);
	check_list(&list);
	if (disc_demote(dir, "node-b", &err) == 0) {
		fill_list(&list);
		disc_apply_demotions(dir, &list);
		check_list(&list);
		for (i = 0; i < list.n; i++) {
			if (strcmp(list.bodies[i].node_id, "node-b") == 0 && !list.bodies[i].demoted)
				fz_fail("a body just demoted is not demoted");
		}
	}
	return 0;
}
