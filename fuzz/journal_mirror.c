/*
 * The origin's publish journal ({root}/meta/journal) holding the input,
 * opened as an origin opens it: whatever the file says, it opens with an
 * id of 32 lower-case hex digits, the changes answer is JSON naming the
 * run of entries it holds, and the file the open rewrote opens again to the
 * same id and the same answer. The loader lives behind the mirror's
 * private journal.h, the one entry point to it.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fuzz/lib/support.h"
#include "mirror/journal.h"

static char root[PATH_MAX], meta[PATH_MAX];

/* The id, first and last seq and the changes answer of the journal at root
 * (caller frees *json). Aborts unless it opens and answers. */
static void
load(struct mir_journal_stats *st, char **json)
{
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;

	if (mir_journal_open(root, &j, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		fz_fail("the journal does not open because of its file");
	}
	mir_journal_stats(j, st);
	if (mir_journal_changes(j, 0, 0, 0, json, &err) != 0)
		fz_fail("no changes answer");
	mir_journal_close(j);
}

static int64_t
json_int(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
		fz_fail("the changes answer lacks a number");
	return json_object_get_int64(v);
}

/* The answer is JSON naming the run the stats say is held, as numbers a
 * peer reads (int64, not negative), and its entries are that run's first
 * ones in order. */
static void
check_answer(const struct mir_journal_stats *st, const char *json)
{
	struct json_object *o = json_tokener_parse(json), *list;
	uint64_t held = st->last_seq + 1 - st->first_seq, want;
	size_t i;

	if (o == NULL || !json_object_object_get_ex(o, "entries", &list))
		fz_fail("the changes answer is not JSON with entries");
	if (st->first_seq < 1 || st->first_seq > st->last_seq + 1 || held > MIR_JOURNAL_KEEP ||
	    st->last_seq > INT64_MAX)
		fz_fail("first_seq and last_seq name no run of held entries");
	if (json_int(o, "first_seq") != (int64_t)st->first_seq ||
	    json_int(o, "last_seq") != (int64_t)st->last_seq)
		fz_fail("the changes answer names another run than the stats");
	want = held < MIR_JOURNAL_PAGE ? held : MIR_JOURNAL_PAGE;
	if (json_object_array_length(list) != want)
		fz_fail("the changes answer does not hold the entries from the first");
	for (i = 0; i < want; i++) {
		struct json_object *e = json_object_array_get_idx(list, i);

		if (json_int(e, "seq") != (int64_t)(st->first_seq + i) || json_int(e, "size") < 0)
			fz_fail("an entry of the changes answer is out of order or negative");
	}
	json_object_put(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct mir_journal_stats st1, st2;
	char *json1 = NULL, *json2 = NULL;

	fz_quiet();
	if (root[0] == '\0' &&
	    (hc_snprintf(root, sizeof(root), "%s/origin", fz_scratch()) != 0 ||
	     hc_snprintf(meta, sizeof(meta), "%s/meta", root) != 0 ||
	     hc_mkdir_p(meta, 0755, &err) != 0))
		fz_fail("cannot create the root");
	fz_write(meta, "journal", data, size);
	load(&st1, &json1);
	if (!hc_is_lower_hex(st1.id, MIR_JOURNAL_ID_LEN))
		fz_fail("the journal id is not 32 lower-case hex digits");
	check_answer(&st1, json1);
	load(&st2, &json2);
	if (strcmp(st1.id, st2.id) != 0 || st1.first_seq != st2.first_seq ||
	    st1.last_seq != st2.last_seq || strcmp(json1, json2) != 0)
		fz_fail("the rewritten journal does not open to what was loaded");
	free(json1);
	free(json2);
	return 0;
}
