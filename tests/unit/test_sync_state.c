/* mirrorfetch sync internals: the index (write, read back, damaged, linked),
 * planning (index, hash, staging, links), the swap and --delete, and the
 * link-safe helpers they stand on. Real files in a temp folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A fresh temp folder per test: its path and an fd on it. */
struct fixture {
	char root[64];
	int fd;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/test_sync_state.XXXXXX");
	if (mkdtemp(f->root) == NULL)
		return -1;
	f->fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	return f->fd < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	close(f->fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Writes text at root/rel, making the folders on the way. */
static void
put(const struct fixture *f, const char *rel, const char *text)
{
	char path[2048], cmd[2200];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->root, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
	assert_int_equal(system(cmd), 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* The contents of root/rel ("" when absent). Caller frees. */
static char *
get(const struct fixture *f, const char *rel)
{
	char path[512];
	char *text = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/%s", f->root, rel);
	if (hc_read_file(path, 1 << 20, &text, &len, NULL) != 0)
		return hc_strdup("");
	return text;
}

static void
link_at(const struct fixture *f, const char *target, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", f->root, rel);
	assert_int_equal(symlink(target, path), 0);
}

static int
is_link(const struct fixture *f, const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", f->root, rel);
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static void
assert_text(const struct fixture *f, const char *rel, const char *want)
{
	char *got = get(f, rel);

	assert_string_equal(got, want);
	free(got);
}

/* ------------------------------------------------------------ the index */

/* What is saved is read back, sorted, and matches the files' stat. */
static void
test_index_round_trip(void **state)
{
	struct fixture *f = *state;
	struct mf_index idx = { NULL, 0, 0 }, back = { NULL, 0, 0 };
	struct hc_err err = { 0, "" };
	const struct mf_index_entry *e;
	struct stat st;
	char path[512];

	put(f, "z/b.txt", "b");
	put(f, "a.txt", "");
	snprintf(path, sizeof(path), "%s/z/b.txt", f->root);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(mf_index_add(&idx, "z/b.txt", EMPTY_SHA, &st, &err), 0);
	snprintf(path, sizeof(path), "%s/a.txt", f->root);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(mf_index_add(&idx, "a.txt", EMPTY_SHA, &st, &err), 0);
	assert_int_equal(mf_index_save(&idx, f->fd, MF_SYNC_INDEX, &err), 0);
	mf_index_load(&back, f->fd, MF_SYNC_INDEX);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.entries[0].path, "a.txt");
	assert_string_equal(back.entries[1].path, "z/b.txt");
	e = mf_index_find(&back, "a.txt");
	assert_non_null(e);
	assert_string_equal(e->sha256, EMPTY_SHA);
	assert_true(mf_index_same_stat(e, &st));
	assert_null(mf_index_find(&back, "missing"));
	/* A changed file no longer matches its entry. */
	put(f, "a.txt", "now longer");
	assert_int_equal(lstat(path, &st), 0);
	assert_false(mf_index_same_stat(e, &st));
	mf_index_free(&idx);
	mf_index_free(&back);
}

/* Damaged lines are skipped, a cut last line ignored, a foreign file and
 * an index with no entry load as empty (no qsort on NULL, issue 19 item 7).
 * Damaged includes what sscanf took: a sign, an overflow, a tab or two
 * spaces between fields; a path keeps its leading space. */
static void
test_index_damaged(void **state)
{
	struct fixture *f = *state;
	struct mf_index idx = { NULL, 0, 0 };
	const struct mf_index_entry *e;

	put(f, MF_SYNC_INDEX, "hydra-index 1\n"
	    "not a line\n"
	    "zz" EMPTY_SHA " 1 2 3 4 bad-digest\n"
	    EMPTY_SHA " 0 10 20 30 good\n"
	    EMPTY_SHA " 0 10 20 30\n"
	    EMPTY_SHA " +5 10 20 30 plus\n"
	    EMPTY_SHA " -1 10 20 30 minus\n"
	    EMPTY_SHA " 0 10 20 18446744073709551616 overflow\n"
	    EMPTY_SHA " 0 10 20 30\ttab\n"
	    EMPTY_SHA "\t0 10 20 30 tab\n"
	    EMPTY_SHA " 0 10  20 30 double\n"
	    " " EMPTY_SHA " 0 10 20 30 lead\n"
	    EMPTY_SHA " 0 -10 -20 30 before-1970\n"
	    EMPTY_SHA " 0 10 20 30  spaced\n"
	    EMPTY_SHA " 0 10 20 30 cut-last-line");
	mf_index_load(&idx, f->fd, MF_SYNC_INDEX);
	assert_int_equal(idx.n, 3);
	assert_string_equal(idx.entries[0].path, " spaced");
	e = mf_index_find(&idx, "good");
	assert_non_null(e);
	assert_int_equal(e->ino, 30);
	e = mf_index_find(&idx, "before-1970");
	assert_non_null(e);
	assert_true(e->mtime_ns == -10 && e->ctime_ns == -20);
	put(f, MF_SYNC_INDEX, "something else\n" EMPTY_SHA " 0 10 20 30 good\n");
	mf_index_load(&idx, f->fd, MF_SYNC_INDEX);
	assert_int_equal(idx.n, 0);
	put(f, MF_SYNC_INDEX, "hydra-index 1\n");
	mf_index_load(&idx, f->fd, MF_SYNC_INDEX);
	assert_int_equal(idx.n, 0);
	assert_null(idx.entries);
	assert_null(mf_index_find(&idx, "good"));
	mf_index_free(&idx);
}

/* An index that is a link is neither read through nor written through. */
static void
test_index_link(void **state)
{
	struct fixture *f = *state;
	struct mf_index idx = { NULL, 0, 0 };
	struct hc_err err = { 0, "" };
	char target[512];

	put(f, "victim", "hydra-index 1\n" EMPTY_SHA " 0 10 20 30 planted\n");
	snprintf(target, sizeof(target), "%s/victim", f->root);
	link_at(f, target, MF_SYNC_INDEX);
	mf_index_load(&idx, f->fd, MF_SYNC_INDEX);
	assert_int_equal(idx.n, 0);
	assert_int_equal(mf_index_save(&idx, f->fd, MF_SYNC_INDEX, &err), 0);
	assert_false(is_link(f, MF_SYNC_INDEX));
	assert_text(f, MF_SYNC_INDEX, "hydra-index 1\n");
	assert_text(f, "victim", "hydra-index 1\n" EMPTY_SHA " 0 10 20 30 planted\n");
}

/* hc_atomic_write_at, the writer of the index and the part's meta: the
 * exact mode whatever the umask, a link replaced and never written through,
 * and nothing left behind when the rename fails. */
static void
test_atomic_write_at(void **state)
{
	struct fixture *f = *state;
	struct hc_err err = { 0, "" };
	struct stat st;
	char target[512], cmd[600];
	mode_t old = umask(077);

	assert_int_equal(hc_atomic_write_at(f->fd, "w", "one", 3, 0644, &err), 0);
	umask(old);
	assert_int_equal(fstatat(f->fd, "w", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_text(f, "w", "one");
	put(f, "victim", "keep");
	snprintf(target, sizeof(target), "%s/victim", f->root);
	link_at(f, target, "l");
	assert_int_equal(hc_atomic_write_at(f->fd, "l", "two", 3, 0600, &err), 0);
	assert_false(is_link(f, "l"));
	assert_text(f, "l", "two");
	assert_text(f, "victim", "keep");
	/* A folder that is not empty cannot be renamed over: an error, and
	 * only the folder and its file are there afterwards. */
	put(f, "d/x", "x");
	assert_int_equal(hc_atomic_write_at(f->fd, "d", "three", 5, 0644, &err), HC_EIO);
	assert_non_null(strstr(err.msg, "rename d"));
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep '^d\\.tmp\\.')\"", f->root);
	assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ beneath */

static void
test_beneath_refuses_links(void **state)
{
	struct fixture *f = *state;
	struct hc_err err = { 0, "" };
	char outside[512];
	int fd = -1;

	put(f, "out/secret", "s");
	put(f, "in/real/file", "f");
	snprintf(outside, sizeof(outside), "%s/out", f->root);
	link_at(f, outside, "in/link");
	link_at(f, "real/file", "in/flink");
	fd = mf_open_beneath(f->fd, "in/link/secret", O_RDONLY, 0);
	assert_int_equal(fd, -1);
	fd = mf_open_beneath(f->fd, "in/flink", O_RDONLY, 0);
	assert_int_equal(fd, -1);
	fd = mf_open_beneath(f->fd, "in/real/file", O_RDONLY, 0);
	assert_true(fd >= 0);
	close(fd);
	/* Without replace, a link where a folder belongs is an error... */
	assert_int_equal(mf_dir_beneath(f->fd, "in/link/new", 1, 0, &fd, "root", &err),
	                 HC_ECANTCREAT);
	assert_int_equal(fd, -1);
	/* ...with replace it is removed and a real folder made. */
	assert_int_equal(mf_dir_beneath(f->fd, "in/link/new", 1, 1, &fd, "root", &err), 0);
	assert_true(fd >= 0);
	close(fd);
	assert_false(is_link(f, "in/link"));
	assert_text(f, "out/secret", "s");
	assert_int_equal(mf_dir_beneath(f->fd, "absent", 0, 0, &fd, "root", &err), HC_ENOTFOUND);
	/* Removing a tree removes a link in it, not its target. */
	link_at(f, outside, "in/real/link-out");
	assert_int_equal(mf_remove_tree_at(f->fd, "in", "in", &err), 0);
	assert_text(f, "out/secret", "s");
	assert_int_equal(faccessat(f->fd, "in", F_OK, AT_SYMLINK_NOFOLLOW), -1);
}

/* ------------------------------------------------------------ planning */

/* A sync over f->root/dir for manifest m, no network: planning and the
 * swap only use the manifest, the folders and the index. */
struct state {
	struct mf_sync s;
	struct mf_sync_options opt;
	struct mf_sync_result res;
	char dir[512];
};

static void
state_open(struct state *st, const struct fixture *f, struct mf_manifest *m)
{
	struct hc_err err = { 0, "" };

	memset(st, 0, sizeof(*st));
	snprintf(st->dir, sizeof(st->dir), "%s/dir", f->root);
	st->opt.jobs = 2;
	st->opt.dir = st->dir;
	st->s.opt = &st->opt;
	st->s.res = &st->res;
	st->s.m = m;
	st->s.dir = st->dir;
	pthread_mutex_init(&st->s.mu, NULL);
	st->s.dir_fd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(st->s.dir_fd >= 0);
	st->s.staging_fd = -1;
	if (mf_dir_beneath(st->s.dir_fd, MF_SYNC_STAGING, 0, 1, &st->s.staging_fd, "dir",
	                   &err) == HC_ENOTFOUND)
		st->s.staging_fd = -1;
	mf_index_load(&st->s.index, st->s.dir_fd, MF_SYNC_INDEX);
}

static void
state_close(struct state *st)
{
	if (st->s.staging_fd >= 0)
		close(st->s.staging_fd);
	close(st->s.dir_fd);
	free(st->s.items);
	mf_index_free(&st->s.index);
	pthread_mutex_destroy(&st->s.mu);
}

static enum mf_sync_action
action_of(const struct state *st, const char *path)
{
	size_t i;

	for (i = 0; i < st->s.m->n; i++)
		if (strcmp(st->s.m->files[i].path, path) == 0)
			return st->s.items[i].action;
	fail_msg("%s not in the manifest", path);
	return MF_SYNC_FETCH;
}

/* The manifest of f->root/src. */
static struct mf_manifest *
manifest_of_src(const struct fixture *f)
{
	struct mf_manifest *m = NULL;
	struct hc_err err = { 0, "" };
	char src[512];

	snprintf(src, sizeof(src), "%s/src", f->root);
	assert_int_equal(mf_manifest_from_dir(src, "t", "1", "http://127.0.0.1:9", &m, &err), 0);
	return m;
}

static void
test_plan(void **state)
{
	struct fixture *f = *state;
	struct mf_manifest *m;
	struct state st;
	struct hc_err err = { 0, "" };
	char target[512];

	put(f, "src/same", "same bytes");
	put(f, "src/changed", "new bytes!");
	put(f, "src/missing", "m");
	put(f, "src/sub/staged", "staged");
	put(f, "src/linked", "linked");
	m = manifest_of_src(f);
	put(f, "dir/same", "same bytes");
	put(f, "dir/changed", "old bytes!");
	put(f, MF_SYNC_STAGING "/sub/staged", "staged");
	put(f, "outside/linked", "linked");
	snprintf(target, sizeof(target), "%s/outside/linked", f->root);
	link_at(f, target, "dir/linked");

	state_open(&st, f, m);
	assert_int_equal(mf_plan(&st.s, &err), 0);
	state_close(&st);
	/* The staged copy is in f->root/.hydra-staging, not DIR's: fetched. */
	assert_int_equal(st.res.hashed, 2);
	assert_int_equal(st.res.unchanged, 1);
	assert_int_equal(st.res.from_index, 0);
	assert_int_equal(st.s.n_fetch, 4);

	put(f, "dir/" MF_SYNC_STAGING "/sub/staged", "staged");
	state_open(&st, f, m);
	assert_int_equal(mf_plan(&st.s, &err), 0);
	assert_int_equal(action_of(&st, "same"), MF_SYNC_KEEP);
	assert_int_equal(action_of(&st, "changed"), MF_SYNC_FETCH);
	assert_int_equal(action_of(&st, "missing"), MF_SYNC_FETCH);
	assert_int_equal(action_of(&st, "sub/staged"), MF_SYNC_STAGED);
	/* A link to the right bytes is not the file. */
	assert_int_equal(action_of(&st, "linked"), MF_SYNC_FETCH);
	assert_int_equal(st.res.reused_staged, 1);
	assert_int_equal(st.s.n_fetch, 3);
	assert_int_equal(st.res.total_bytes, 10 + 10 + 1 + 6 + 6);
	state_close(&st);
	mf_manifest_free(m);
}

/* A file the index knows with the same stat is kept without hashing. */
static void
test_plan_from_index(void **state)
{
	struct fixture *f = *state;
	struct mf_manifest *m;
	struct mf_index idx = { NULL, 0, 0 };
	struct state st;
	struct hc_err err = { 0, "" };
	struct stat sb;
	char path[512];

	put(f, "src/a", "aaa");
	m = manifest_of_src(f);
	put(f, "dir/a", "aaa");
	snprintf(path, sizeof(path), "%s/dir/a", f->root);
	assert_int_equal(lstat(path, &sb), 0);
	assert_int_equal(mf_index_add(&idx, "a", m->files[0].sha256, &sb, &err), 0);
	state_open(&st, f, m);
	assert_int_equal(mf_index_save(&idx, st.s.dir_fd, MF_SYNC_INDEX, &err), 0);
	mf_index_load(&st.s.index, st.s.dir_fd, MF_SYNC_INDEX);
	assert_int_equal(mf_plan(&st.s, &err), 0);
	assert_int_equal(action_of(&st, "a"), MF_SYNC_KEEP);
	assert_int_equal(st.res.from_index, 1);
	assert_int_equal(st.res.hashed, 0);
	state_close(&st);
	mf_index_free(&idx);
	mf_manifest_free(m);
}

/* ------------------------------------------------------------ the swap */

/* Staged files go into DIR; a replaced file keeps its mode; a link where a
 * folder belongs and a folder where a file belongs need --delete, and with
 * it are replaced without touching what the link points to. */
static void
test_swap(void **state)
{
	struct fixture *f = *state;
	struct mf_manifest *m;
	struct state st;
	struct hc_err err = { 0, "" };
	char path[512], outside[512];
	struct stat sb;

	put(f, "src/tool", "new tool");
	put(f, "src/sub/x", "new x");
	put(f, "src/d", "now a file");
	m = manifest_of_src(f);
	put(f, "dir/tool", "old tool");
	snprintf(path, sizeof(path), "%s/dir/tool", f->root);
	assert_int_equal(chmod(path, 0750), 0);
	put(f, "dir/d/was-a-folder", "w");
	put(f, "outside/x", "outside");
	snprintf(outside, sizeof(outside), "%s/outside", f->root);
	link_at(f, outside, "dir/sub");
	put(f, "dir/" MF_SYNC_STAGING "/tool", "new tool");
	put(f, "dir/" MF_SYNC_STAGING "/sub/x", "new x");
	put(f, "dir/" MF_SYNC_STAGING "/d", "now a file");

	state_open(&st, f, m);
	assert_int_equal(mf_plan(&st.s, &err), 0);
	assert_int_equal(st.res.reused_staged, 3);
	assert_int_equal(mf_swap(&st.s, &err), HC_ECANTCREAT);
	assert_non_null(strstr(err.msg, "--delete would remove it"));
	assert_text(f, "outside/x", "outside");
	state_close(&st);

	state_open(&st, f, m);
	st.opt.delete_extra = 1;
	assert_int_equal(mf_plan(&st.s, &err), 0);
	assert_int_equal(mf_swap(&st.s, &err), 0);
	assert_text(f, "dir/tool", "new tool");
	assert_text(f, "dir/sub/x", "new x");
	assert_text(f, "dir/d", "now a file");
	assert_false(is_link(f, "dir/sub"));
	assert_text(f, "outside/x", "outside");
	assert_int_equal(lstat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	assert_int_equal(st.res.deleted, 2);
	state_close(&st);
	mf_manifest_free(m);
}

/* --delete removes unlisted files and emptied folders, keeps listed files,
 * folders of listed files and the sync's own state. */
static void
test_delete_extra(void **state)
{
	struct fixture *f = *state;
	struct mf_manifest *m;
	struct state st;
	struct hc_err err = { 0, "" };
	char target[512];

	put(f, "src/keep/a", "a");
	m = manifest_of_src(f);
	put(f, "dir/keep/a", "a");
	put(f, "dir/keep/extra", "e");
	put(f, "dir/gone/deep/extra", "e");
	put(f, "dir/" MF_SYNC_INDEX, "hydra-index 1\n");
	put(f, "outside/y", "y");
	snprintf(target, sizeof(target), "%s/outside/y", f->root);
	link_at(f, target, "dir/keep/link");
	state_open(&st, f, m);
	assert_int_equal(mf_swap_delete_extra(&st.s, &err), 0);
	assert_text(f, "dir/keep/a", "a");
	assert_int_equal(faccessat(f->fd, "dir/keep/extra", F_OK, 0), -1);
	assert_int_equal(faccessat(f->fd, "dir/gone", F_OK, 0), -1);
	assert_false(is_link(f, "dir/keep/link"));
	assert_text(f, "outside/y", "y");
	assert_text(f, "dir/" MF_SYNC_INDEX, "hydra-index 1\n");
	assert_int_equal(st.res.deleted, 3);
	state_close(&st);
	mf_manifest_free(m);
}

/* A tree below DIR longer than any manifest path stops --delete as a DIR
 * problem (73), not a manifest one (65). */
static void
test_delete_extra_too_long(void **state)
{
	struct fixture *f = *state;
	struct mf_manifest *m;
	struct state st;
	struct hc_err err = { 0, "" };
	char rel[1400], seg[201];
	int i;

	put(f, "src/a", "a");
	m = manifest_of_src(f);
	memset(seg, 'x', sizeof(seg) - 1);
	seg[sizeof(seg) - 1] = '\0';
	snprintf(rel, sizeof(rel), "dir");
	for (i = 0; i < 6; i++)
		snprintf(rel + strlen(rel), sizeof(rel) - strlen(rel), "/%s", seg);
	snprintf(rel + strlen(rel), sizeof(rel) - strlen(rel), "/f");
	put(f, rel, "deep");
	state_open(&st, f, m);
	st.opt.delete_extra = 1;
	assert_int_equal(mf_swap_delete_extra(&st.s, &err), HC_ECANTCREAT);
	assert_int_equal(err.status, HC_ECANTCREAT);
	assert_non_null(strstr(err.msg, "--delete: "));
	state_close(&st);
	mf_manifest_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_index_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_write_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_beneath_refuses_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan_from_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_extra, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_extra_too_long, setup, teardown),
	};

	hc_log_open(NULL, HC_LOG_ERROR, 0, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
