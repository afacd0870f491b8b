/* hydra-mirror publish journal: entries survive a reopen with the same id,
 * a torn last line and lines the writer never makes are dropped, a foreign
 * file starts a new id, one origin per root keeps it, the long-poll waits
 * and wakes on an append, and the list pages what the store holds. */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "mirror/journal.h"

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

struct fixture {
	char root[PATH_MAX];
	char path[PATH_MAX + 16];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char meta[PATH_MAX + 8];

	assert_non_null(fx);
	snprintf(fx->root, sizeof(fx->root), "%s/mir-journal-XXXXXX",
	         getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(fx->root));
	snprintf(meta, sizeof(meta), "%s/meta", fx->root);
	assert_int_equal(mkdir(meta, 0755), 0);
	snprintf(fx->path, sizeof(fx->path), "%s/meta/journal", fx->root);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* The changes answer after since, parsed (caller puts). */
static struct json_object *
changes(struct mir_journal *j, uint64_t since, int64_t wait_ms)
{
	struct hc_err err = { 0, "" };
	struct json_object *o;
	char *text = NULL;

	assert_int_equal(mir_journal_changes(j, since, wait_ms, 0, &text, &err), 0);
	o = json_tokener_parse(text);
	assert_non_null(o);
	free(text);
	return o;
}

static int64_t
field(struct json_object *o, const char *name)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, name, &v));
	return json_object_get_int64(v);
}

static size_t
entries(struct json_object *o)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, "entries", &v));
	return json_object_array_length(v);
}

/* Replaces the entry lines of the journal (made first when absent) with
 * lines, keeping its head line and so its id. */
static void
rewrite_entries(struct fixture *fx, const char *lines)
{
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;
	char head[128];
	FILE *f;

	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	mir_journal_close(j);
	f = fopen(fx->path, "r");
	assert_non_null(f);
	assert_non_null(fgets(head, sizeof(head), f));
	fclose(f);
	f = fopen(fx->path, "w");
	assert_non_null(f);
	fprintf(f, "%s%s", head, lines);
	fclose(f);
}

static void
test_reopen_keeps_id_and_entries(void **state)
{
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;
	struct mir_journal_stats st1, st2;
	struct json_object *o;
	FILE *f;

	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	mir_journal_stats(j, &st1);
	assert_int_equal(strlen(st1.id), MIR_JOURNAL_ID_LEN);
	assert_int_equal(st1.last_seq, 0);
	assert_int_equal(mir_journal_append(j, MIR_JOURNAL_PUT, "rel/a b.bin", 3, SHA_ABC, &err), 0);
	assert_int_equal(mir_journal_append(j, MIR_JOURNAL_PUT, "rel/c.bin", 5, SHA_ABC, &err), 0);
	assert_int_equal(mir_journal_append(j, MIR_JOURNAL_DELETE, "rel/c.bin", 0, "", &err), 0);
	mir_journal_close(j);

	/* A crash in the middle of a line leaves a torn tail. */
	f = fopen(fx->path, "a");
	assert_non_null(f);
	fputs("4 1700000000 P 9 - rel/torn", f);
	fclose(f);

	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	mir_journal_stats(j, &st2);
	assert_string_equal(st2.id, st1.id);
	assert_int_equal(st2.last_seq, 3);
	o = changes(j, 1, 0);
	assert_int_equal(entries(o), 2);
	assert_int_equal(field(o, "first_seq"), 1);
	assert_int_equal(field(o, "last_seq"), 3);
	assert_non_null(strstr(json_object_to_json_string(o), "\"op\": \"delete\""));
	json_object_put(o);
	o = changes(j, 0, 0);
	assert_non_null(strstr(json_object_to_json_string(o), "rel\\/a b.bin"));
	json_object_put(o);
	assert_int_equal(mir_journal_append(j, MIR_JOURNAL_PUT, "rel/d.bin", 1, SHA_ABC, &err), 0);
	mir_journal_stats(j, &st2);
	assert_int_equal(st2.last_seq, 4);
	mir_journal_close(j);
}

static void
test_gap_keeps_the_run_after_it(void **state)
{
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;
	struct json_object *o;

	/* Entry 2 lost: 1 is forgotten, 3 and 4 are kept. */
	rewrite_entries(fx, "1 1 P 1 - a\n3 1 P 1 " SHA_ABC " b\n4 1 D 0 - b\nnot a line\n");
	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	o = changes(j, 0, 0);
	assert_int_equal(field(o, "first_seq"), 3);
	assert_int_equal(field(o, "last_seq"), 4);
	assert_int_equal(entries(o), 2);
	json_object_put(o);
	mir_journal_close(j);
}

static void
test_foreign_file_new_id(void **state)
{
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;
	struct mir_journal_stats st1, st2;
	FILE *f;

	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	assert_int_equal(mir_journal_append(j, MIR_JOURNAL_PUT, "a", 1, SHA_ABC, &err), 0);
	mir_journal_stats(j, &st1);
	mir_journal_close(j);
	f = fopen(fx->path, "w");
	assert_non_null(f);
	fputs("not a journal\n", f);
	fclose(f);
	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	mir_journal_stats(j, &st2);
	assert_string_not_equal(st2.id, st1.id);
	assert_int_equal(st2.last_seq, 0);
	mir_journal_close(j);
}

/* Opens a journal file of head and one entry line (seq 1); fails unless
 * it keeps the head's id and the entry (kept) or starts anew as from a
 * foreign file: a fresh id of lower-case hex, nothing held. */
static void
expect_head(struct fixture *fx, const char *head, int kept)
{
	const char *id = head + strlen("hydra-mirror-journal 1 ");
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;
	struct mir_journal_stats st;
	FILE *f = fopen(fx->path, "w");

	assert_non_null(f);
	fprintf(f, "%s1 1700000000 P 1 %s a\n", head, SHA_ABC);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	mir_journal_stats(j, &st);
	mir_journal_close(j);
	if (kept && (strncmp(st.id, id, MIR_JOURNAL_ID_LEN) != 0 || st.last_seq != 1))
		fail_msg("%s: not kept (id %s, last_seq %d)", head, st.id, (int)st.last_seq);
	if (!kept && (strncmp(st.id, id, MIR_JOURNAL_ID_LEN) == 0 || st.last_seq != 0 ||
	              !hc_is_lower_hex(st.id, MIR_JOURNAL_ID_LEN)))
		fail_msg("%s: taken as this journal's (id %s, last_seq %d)", head, st.id,
		         (int)st.last_seq);
}

/* The head's id counts only as jnl_new_id writes it, exactly 32 lower-case
 * hex digits: one of the right length in upper case, with a byte that is
 * not hex, a space or a sign in it makes the file foreign as a wrong length
 * does. */
static void
test_head_id_lower_hex(void **state)
{
	static const char *const foreign[] = {
		"hydra-mirror-journal 1 0123456789ABCDEF0123456789abcdef\n",
		"hydra-mirror-journal 1 0123456789abcdeg0123456789abcdef\n",
		"hydra-mirror-journal 1 0123456789abcdef 123456789abcdef\n",
		"hydra-mirror-journal 1 +123456789abcdef0123456789abcdef\n",
		"hydra-mirror-journal 1 0123456789abcdef0123456789abcdef0\n",
		"hydra-mirror-journal 1 0123456789abcdef0123456789abcde\n",
	};
	struct fixture *fx = *state;
	size_t i;

	for (i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		expect_head(fx, foreign[i], 0);
	expect_head(fx, "hydra-mirror-journal 1 0123456789abcdef0123456789abcdef\n", 1);
}

static void
test_one_keeper_per_root(void **state)
{
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL, *k = NULL;

	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	assert_int_equal(mir_journal_open(fx->root, &k, &err), HC_EUNAVAIL);
	assert_null(k);
	mir_journal_close(j);
}

struct appender {
	struct mir_journal *j;
};

static void *
append_later(void *arg)
{
	struct appender *a = arg;
	struct hc_err err = { 0, "" };

	usleep(100 * 1000);
	assert_int_equal(mir_journal_append(a->j, MIR_JOURNAL_PUT, "late", 1, SHA_ABC, &err), 0);
	return NULL;
}

static void
test_long_poll(void **state)
{
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;
	struct appender a;
	struct json_object *o;
	pthread_t t;
	int64_t t0;

	assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
	/* Nothing new: the answer waits its whole wait, then is empty. */
	t0 = hc_now_ms();
	o = changes(j, 0, 200);
	assert_true(hc_now_ms() - t0 >= 200);
	assert_int_equal(entries(o), 0);
	json_object_put(o);
	/* An append wakes it long before a 10 s wait ends. */
	a.j = j;
	assert_int_equal(pthread_create(&t, NULL, append_later, &a), 0);
	t0 = hc_now_ms();
	o = changes(j, 0, 10000);
	assert_true(hc_now_ms() - t0 < 5000);
	assert_int_equal(entries(o), 1);
	json_object_put(o);
	pthread_join(t, NULL);
	/* Stopped: no wait at all. */
	mir_journal_stop(j);
	t0 = hc_now_ms();
	o = changes(j, 1, 10000);
	assert_true(hc_now_ms() - t0 < 5000);
	json_object_put(o);
	mir_journal_close(j);
}

/* Lines the writer never produces are dropped, each of which sscanf's
 * "%llu %lld %c %llu %65s %n" took: a sign, white space other than one
 * space, an overflow, a raw space inside the path; and a line out of order. */
static void
test_malformed_lines_dropped(void **state)
{
	static const char *const bad[] = {
		"-1 1 P 1 - bad\n",
		"+2 1 P 1 - bad\n",
		" 2 1 P 1 - bad\n",
		"2\t1 P 1 - bad\n",
		"2  1 P 1 - bad\n",
		"2 1 P +5 - bad\n",
		"2 1 P 18446744073709551616 - bad\n",
		"2 -9223372036854775809 P 1 - bad\n",
		"2 1 P 1 -  bad\n",
		"2 1 P 1 - bad tail\n",
		"2 1 P 1 - bad \n",
		"2 1 P 1 - bad\r\n",
		"2 1 P 1 " SHA_ABC "0 bad\n",
		"1 1 P 1 - again\n",
		/* Past int64 (the answer's JSON numbers); the top of uint64_t
		 * wrapped the held run and crashed the rewrite. */
		"9223372036854775808 1 P 1 - bad\n",
		"18446744073709551615 1 P 1 - bad\n",
		"2 1 P 9223372036854775808 - bad\n",
	};
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct mir_journal *j = NULL;
	struct mir_journal_stats st;
	char lines[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* A time before 1970 is a valid field: only the bad line goes. */
		assert_true(snprintf(lines, sizeof(lines), "1 -5 P 1 " SHA_ABC " good\n%s",
		                     bad[i]) < (int)sizeof(lines));
		rewrite_entries(fx, lines);
		assert_int_equal(mir_journal_open(fx->root, &j, &err), 0);
		mir_journal_stats(j, &st);
		if (st.last_seq != 1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(st.first_seq, 1);
		mir_journal_close(j);
	}
}

static void
touch(const char *root, const char *rel)
{
	char path[PATH_MAX + 64], cmd[2 * PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/files/%s", root, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\" && printf x > '%s'", path, path);
	assert_int_equal(system(cmd), 0);
}

static void
test_list(void **state)
{
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct json_object *o, *files, *next;
	char *text = NULL;

	touch(fx->root, "rel/b.bin");
	touch(fx->root, "rel/a.bin");
	touch(fx->root, "other/c.bin");
	assert_int_equal(mir_journal_list(fx->root, "rel/", "", &text, &err), 0);
	o = json_tokener_parse(text);
	free(text);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "files", &files));
	assert_int_equal(json_object_array_length(files), 2);
	assert_non_null(strstr(json_object_to_json_string(json_object_array_get_idx(files, 0)),
	                       "rel\\/a.bin"));
	assert_true(json_object_object_get_ex(o, "next", &next));
	assert_null(next);
	json_object_put(o);
	/* after: the page starts past it. */
	assert_int_equal(mir_journal_list(fx->root, "rel/", "rel/a.bin", &text, &err), 0);
	assert_null(strstr(text, "a.bin"));
	assert_non_null(strstr(text, "b.bin"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reopen_keeps_id_and_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gap_keeps_the_run_after_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_lines_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_file_new_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_id_lower_hex, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_keeper_per_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
