/* hydra-mirror store: digests computed once, LRU eviction, pins, pre-warm
 * reservations that evict only idle files, the index across a reopen
 * (journal replay, a torn tail, compaction), eviction outside the lock,
 * stale temp files, confinement. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "mirror/mirror.h"

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

struct fixture {
	char root[PATH_MAX];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->root, sizeof(fx->root), "%s/mir-store-XXXXXX",
	         getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(fx->root));
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

/* Stores size bytes of 'x' at path through a temp file, as PUT and fills do. */
static void
put(struct mir_store *st, const char *path, size_t size, uint64_t reserved)
{
	char tmp[PATH_MAX], *buf = malloc(size + 1);
	struct hc_err err = { 0, "" };
	int fd;

	assert_non_null(buf);
	memset(buf, 'x', size);
	fd = mir_store_tmp(st, tmp, sizeof(tmp), &err);
	assert_true(fd >= 0);
	assert_int_equal(hc_write_all(fd, buf, size), 0);
	assert_int_equal(mir_store_commit(st, path, tmp, fd, size, SHA_ABC, reserved, NULL, &err), 0);
	close(fd);
	free(buf);
}

static int
exists(const struct fixture *fx, const char *path)
{
	char full[PATH_MAX * 2];

	snprintf(full, sizeof(full), "%s/files/%s", fx->root, path);
	return access(full, F_OK) == 0;
}

static void
touch(struct mir_store *st, const char *path)
{
	struct mir_file f;
	struct hc_err err = { 0, "" };

	assert_int_equal(mir_store_get(st, path, 1, &f, &err), 0);
	close(f.fd);
	mir_store_release(st, f.entry);
}

static void
test_digest_once_and_on_change(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_file f;
	struct hc_err err = { 0, "" };
	char path[PATH_MAX * 2];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/files/a", fx->root);
	/* An origin: its files are its own publication. */
	assert_int_equal(mir_store_open(fx->root, 0, 0, &st, &err), 0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("abc", fp);
	fclose(fp);
	/* Not in the index yet: hashed on the first request. */
	assert_int_equal(mir_store_get(st, "a", 1, &f, &err), 0);
	assert_string_equal(f.sha256, SHA_ABC);
	assert_true(f.size == 3);
	close(f.fd);
	mir_store_release(st, f.entry);
	/* Changed behind the store's back: hashed again. */
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("abcd", fp);
	fclose(fp);
	assert_int_equal(mir_store_get(st, "a", 1, &f, &err), 0);
	assert_string_equal(f.sha256,
	                    "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
	close(f.fd);
	mir_store_release(st, f.entry);
	mir_store_close(st);
}

/* Writes text at files/path behind the store's back. */
static void
write_behind(const struct fixture *fx, const char *path, const char *text)
{
	char full[PATH_MAX * 2];
	FILE *fp;

	snprintf(full, sizeof(full), "%s/files/%s", fx->root, path);
	fp = fopen(full, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Sets the mtime of files/path far back: a rewrite within one tick of the
 * file system's clock may keep the mtime it had. */
static void
set_old_mtime(const struct fixture *fx, const char *path, time_t when)
{
	char full[PATH_MAX * 2];
	struct timespec times[2] = { { when, 0 }, { when, 0 } };

	snprintf(full, sizeof(full), "%s/files/%s", fx->root, path);
	assert_int_equal(utimensat(AT_FDCWD, full, times, 0), 0);
}

/* Commits text at path with the digest sha ("" for none). */
static void
put_text(struct mir_store *st, const char *path, const char *text, const char *sha)
{
	char tmp[PATH_MAX];
	struct hc_err err = { 0, "" };
	int fd;

	fd = mir_store_tmp(st, tmp, sizeof(tmp), &err);
	assert_true(fd >= 0);
	assert_int_equal(hc_write_all(fd, text, strlen(text)), 0);
	assert_int_equal(mir_store_commit(st, path, tmp, fd, strlen(text), sha, 0, NULL, &err), 0);
	close(fd);
}

static void
get_sha(struct mir_store *st, const char *path, char *sha)
{
	struct mir_file f;
	struct hc_err err = { 0, "" };

	assert_int_equal(mir_store_get(st, path, 1, &f, &err), 0);
	memcpy(sha, f.sha256, sizeof(f.sha256));
	close(f.fd);
	mir_store_release(st, f.entry);
}

/* A commit with no origin digest stays without one, across a restart, and
 * is counted as unverified; a peer never digests files it has no record
 * of: it serves them as unverified; a digest that is not one is refused. */
static void
test_empty_digest_stays_unknown(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct hc_err err = { 0, "" };
	char sha[HC_SHA256_HEX_LEN + 1], tmp[PATH_MAX];
	int fd;

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	put_text(st, "none", "abc", "");
	put_text(st, "known", "abc", SHA_ABC);
	get_sha(st, "none", sha);
	assert_string_equal(sha, "");
	mir_store_stats(st, &stats);
	assert_true(stats.files == 2 && stats.unverified == 1);
	fd = mir_store_tmp(st, tmp, sizeof(tmp), &err);
	assert_true(fd >= 0);
	assert_int_equal(mir_store_commit(st, "bad", tmp, fd, 0, "xyz", 0, NULL, &err), HC_EDATA);
	close(fd);
	assert_false(exists(fx, "bad"));
	mir_store_close(st);
	/* Copied in by hand: a peer does not trust it. */
	write_behind(fx, "byhand", "abc");
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	get_sha(st, "none", sha);
	assert_string_equal(sha, "");
	get_sha(st, "known", sha);
	assert_string_equal(sha, SHA_ABC);
	get_sha(st, "byhand", sha);
	assert_string_equal(sha, "");
	/* Appearing while it runs, too. */
	write_behind(fx, "later", "abc");
	get_sha(st, "later", sha);
	assert_string_equal(sha, "");
	mir_store_stats(st, &stats);
	assert_true(stats.files == 4 && stats.unverified == 3);
	mir_store_close(st);
	/* An origin digests what it has no digest for only when it has no
	 * record at all: a file committed without one stays without one. */
	write_behind(fx, "origin-new", "abc");
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 0, 0, &st, &err), 0);
	get_sha(st, "origin-new", sha);
	assert_string_equal(sha, SHA_ABC);
	get_sha(st, "none", sha);
	assert_string_equal(sha, "");
	mir_store_close(st);
}

/* Reads meta/index into buf; returns its number of lines. */
static int
index_lines(const struct fixture *fx, char *buf, size_t size)
{
	char path[PATH_MAX * 2];
	FILE *fp;
	size_t n, i;
	int lines = 0;

	snprintf(path, sizeof(path), "%s/meta/index", fx->root);
	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(buf, 1, size - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	for (i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

static void
append_index(const struct fixture *fx, const char *text)
{
	char path[PATH_MAX * 2];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/meta/index", fx->root);
	fp = fopen(path, "a");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Evicts one file (each is 100 bytes in a store of 500 holding 500). */
static void
evict_one(struct mir_store *st)
{
	assert_int_equal(mir_store_reserve(st, 100), 0);
	mir_store_unreserve(st, 100);
}

/* The LRU list (reservations kept, so that each evicts a file): a touch
 * moves a file to the young end, the victim is the oldest unpinned one,
 * pinned files are passed over and, released, are the oldest again. */
static void
test_lru_list(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_file c, d;
	struct hc_err err = { 0, "" };

	assert_int_equal(mir_store_open(fx->root, 500, 1, &st, &err), 0);
	put(st, "a", 100, 0);
	put(st, "b", 100, 0);
	put(st, "c", 100, 0);
	put(st, "d", 100, 0);
	put(st, "e", 100, 0);
	touch(st, "b");
	touch(st, "a");                         /* order: c d e b a */
	assert_int_equal(mir_store_get(st, "c", 0, &c, &err), 0);
	assert_int_equal(mir_store_get(st, "d", 0, &d, &err), 0);
	assert_int_equal(mir_store_reserve(st, 100), 0);                          /* c, d pinned: e goes */
	assert_false(exists(fx, "e"));
	assert_true(exists(fx, "c") && exists(fx, "d") && exists(fx, "b"));
	close(c.fd);
	mir_store_release(st, c.entry);         /* c is the oldest again */
	put(st, "f", 100, 100);             /* takes the first reservation */
	assert_int_equal(mir_store_reserve(st, 100), 0);
	assert_false(exists(fx, "c"));
	assert_true(exists(fx, "b") && exists(fx, "d"));
	assert_int_equal(mir_store_reserve(st, 100), 0);                          /* d still pinned: b */
	assert_false(exists(fx, "b"));
	close(d.fd);
	mir_store_release(st, d.entry);
	assert_int_equal(mir_store_reserve(st, 100), 0);
	assert_false(exists(fx, "d"));
	assert_true(exists(fx, "a") && exists(fx, "f"));
	mir_store_close(st);
}

/* A lower limit set while running (a reload) evicts the oldest unpinned
 * files down to it at once; a pinned file keeps the store over the limit
 * (HC_EIO) until it is released and room is needed. */
static void
test_set_max_bytes(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct mir_file a;
	struct hc_err err = { 0, "" };

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	put(st, "a", 100, 0);
	put(st, "b", 100, 0);
	put(st, "c", 100, 0);
	put(st, "d", 100, 0);
	assert_int_equal(mir_store_set_max_bytes(st, 250), 0);
	assert_false(exists(fx, "a"));
	assert_false(exists(fx, "b"));
	assert_true(exists(fx, "c") && exists(fx, "d"));
	mir_store_stats(st, &stats);
	assert_int_equal(stats.max_bytes, 250);
	assert_int_equal(stats.bytes, 200);

	assert_int_equal(mir_store_get(st, "c", 0, &a, &err), 0);
	assert_int_equal(mir_store_set_max_bytes(st, 50), HC_EIO);
	assert_true(exists(fx, "c"));
	assert_false(exists(fx, "d"));
	close(a.fd);
	mir_store_release(st, a.entry);
	assert_int_equal(mir_store_set_max_bytes(st, 50), 0);
	assert_false(exists(fx, "c"));
	/* 0 is no limit again: nothing more goes. */
	put(st, "e", 100, 0);
	assert_int_equal(mir_store_set_max_bytes(st, 0), 0);
	assert_true(exists(fx, "e"));
	mir_store_close(st);
}

/* The journal replays adds, touches and removes in order; a torn last
 * record is ignored, and appending after it works. */
static void
test_journal_replay_torn_tail(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct hc_err err = { 0, "" };
	char text[4096];

	assert_int_equal(mir_store_open(fx->root, 300, 1, &st, &err), 0);
	assert_int_equal(mir_store_flush(st, &err), 0);  /* a new index, then appends */
	put(st, "a", 100, 0);
	put(st, "b", 100, 0);
	put(st, "c", 100, 0);
	touch(st, "a");                         /* order: b c a */
	assert_int_equal(mir_store_delete(st, "b", &err), 0);
	mir_store_close(st);
	index_lines(fx, text, sizeof(text));
	assert_non_null(strstr(text, "\nT a\n"));
	assert_non_null(strstr(text, "\nR b\n"));
	append_index(fx, "A 100 1 2 - torn-rec");   /* a crash in the middle of an append */
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 300, 1, &st, &err), 0);
	mir_store_stats(st, &stats);
	assert_true(stats.files == 2 && stats.bytes == 200);
	put(st, "d", 100, 0);
	mir_store_close(st);
	index_lines(fx, text, sizeof(text));
	assert_null(strstr(text, "torn-rec"));
	assert_non_null(strstr(text, "\nA 100 "));
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 300, 1, &st, &err), 0);
	mir_store_stats(st, &stats);
	assert_true(stats.files == 3);
	evict_one(st);                          /* order: c a d */
	assert_false(exists(fx, "c"));
	assert_true(exists(fx, "a") && exists(fx, "d"));
	mir_store_close(st);
	/* Garbage in the middle is skipped, not fatal. */
	append_index(fx, "Z what\nA nonsense\n");
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 300, 1, &st, &err), 0);
	mir_store_stats(st, &stats);
	assert_true(stats.files == 2);
	mir_store_close(st);
}

/* A commit's record reaches the journal at once (a server killed right
 * after a fill keeps it); a hit's waits for the next flush. */
static void
test_commit_record_at_once(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct hc_err err = { 0, "" };
	char text[4096];

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	put(st, "k", 100, 0);
	index_lines(fx, text, sizeof(text));
	assert_non_null(strstr(text, " " SHA_ABC " k\n"));
	touch(st, "k");
	index_lines(fx, text, sizeof(text));
	assert_null(strstr(text, "T k\n"));
	assert_int_equal(mir_store_flush(st, &err), 0);
	index_lines(fx, text, sizeof(text));
	assert_non_null(strstr(text, "\nT k\n"));
	mir_store_close(st);
}

#define KILL_AFTER 40

/* The child of test_killed_after_commits: in a new store, commits files
 * c0, c1, ..., writing the number of each commit done to fd, until it is
 * killed. It never flushes: what reaches the index is the commits' own
 * writes. Never returns. */
static void
commit_forever(const char *root, int fd)
{
	struct mir_store *st = NULL;
	struct hc_err err = { 0, "" };
	char path[32], tmp[PATH_MAX];
	unsigned i;

	if (mir_store_open(root, 0, 1, &st, &err) != 0)
		_exit(1);
	for (i = 0;; i++) {
		int tfd = mir_store_tmp(st, tmp, sizeof(tmp), &err);
		snprintf(path, sizeof(path), "c%u", i);
		if (tfd < 0 || hc_write_all(tfd, "abc", 3) != 0 ||
		    mir_store_commit(st, path, tmp, tfd, 3, SHA_ABC, 0, NULL, &err) != 0)
			_exit(1);
		close(tfd);
		if (write(fd, &i, sizeof(i)) != (ssize_t)sizeof(i))
			_exit(1);
	}
}

/* kill -9 of a server in the middle of its work: every commit it finished
 * is found again with the origin's digest, and the index loads. */
static void
test_killed_after_commits(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct hc_err err = { 0, "" };
	char path[32], sha[HC_SHA256_HEX_LEN + 1];
	unsigned done = 0, i;
	int fds[2], status;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		commit_forever(fx->root, fds[1]);
	}
	close(fds[1]);
	while (done < KILL_AFTER)
		assert_int_equal(read(fds[0], &done, sizeof(done)), (ssize_t)sizeof(done));
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	while (read(fds[0], &i, sizeof(i)) == (ssize_t)sizeof(i))
		done = i;  /* the commits finished before the kill landed */
	close(fds[0]);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	for (i = 0; i <= done; i++) {
		snprintf(path, sizeof(path), "c%u", i);
		get_sha(st, path, sha);
		assert_string_equal(sha, SHA_ABC);
	}
	mir_store_close(st);
}

/* A journal grown past its bound is rewritten with one record per file,
 * in LRU order. */
static void
test_compaction_keeps_order(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct hc_err err = { 0, "" };
	static char text[1 << 16];
	char path[32];
	int i;

	assert_int_equal(mir_store_open(fx->root, 1300, 1, &st, &err), 0);
	put(st, "a", 100, 0);
	put(st, "b", 100, 0);
	put(st, "c", 100, 0);
	for (i = 0; i < 6000; i++) {
		snprintf(path, sizeof(path), "x%d", i % 10);
		assert_int_equal(mir_store_record(st, path, 100, "", 0, &err), 0);
	}
	touch(st, "a");                         /* order: b c x... a */
	assert_int_equal(mir_store_flush(st, &err), 0);
	assert_int_equal(index_lines(fx, text, sizeof(text)), 14);
	mir_store_close(st);
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 1300, 1, &st, &err), 0);
	mir_store_stats(st, &stats);
	assert_true(stats.files == 13 && stats.unverified == 10);
	assert_int_equal(mir_store_reserve(st, 100), 0);
	assert_false(exists(fx, "b"));
	assert_true(exists(fx, "a") && exists(fx, "c"));
	assert_int_equal(mir_store_reserve(st, 100), 0);
	assert_false(exists(fx, "c"));
	assert_true(exists(fx, "a"));
	mir_store_close(st);
}

/* An index of the earlier whole-file format (access number first) is read
 * in access order, and rewritten as a journal. */
static void
test_index_v1(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct hc_err err = { 0, "" };
	char sha[HC_SHA256_HEX_LEN + 1], text[4096], full[PATH_MAX * 2], line[512];
	const char *names[3] = { "x", "y", "z" };
	const int seqs[3] = { 7, 3, 5 };    /* order: y z x */
	struct stat sb;
	int i;

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	mir_store_close(st);
	snprintf(full, sizeof(full), "%s/meta/index", fx->root);
	assert_int_equal(unlink(full), 0);
	append_index(fx, "hydra-mirror-index 1\n");
	for (i = 0; i < 3; i++) {
		write_behind(fx, names[i], "abc");
		snprintf(full, sizeof(full), "%s/files/%s", fx->root, names[i]);
		assert_int_equal(stat(full, &sb), 0);
		snprintf(line, sizeof(line), "%d 3 %lld %ld %s %s\n", seqs[i],
		         (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec, i == 2 ? "-" : SHA_ABC,
		         names[i]);
		append_index(fx, line);
	}
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 9, 1, &st, &err), 0);
	get_sha(st, "z", sha);
	assert_string_equal(sha, "");
	get_sha(st, "x", sha);                  /* order: y z x, then z x by the gets */
	assert_string_equal(sha, SHA_ABC);
	assert_int_equal(mir_store_reserve(st, 3), 0);
	assert_false(exists(fx, "y"));
	assert_true(exists(fx, "x") && exists(fx, "z"));
	mir_store_close(st);
	index_lines(fx, text, sizeof(text));
	assert_int_equal(strncmp(text, "hydra-mirror-index 2\n", 21), 0);
}

/* Opens the store as a peer (it trusts its index: no walk) over an index
 * of head and the one record line, and fails unless it takes want files
 * (of 5 bytes) from it. */
static void
expect_index(const struct fixture *fx, const char *head, const char *line, uint64_t want)
{
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct hc_err err = { 0, "" };
	char full[PATH_MAX * 2];

	snprintf(full, sizeof(full), "%s/meta/index", fx->root);
	assert_true(unlink(full) == 0 || errno == ENOENT);
	append_index(fx, head);
	append_index(fx, line);
	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	mir_store_stats(st, &stats);
	mir_store_close(st);
	if (stats.files != want || stats.bytes != 5 * want)
		fail_msg("%s%s: %" PRIu64 " files of %" PRIu64 " bytes, want %" PRIu64, head, line,
		         stats.files, stats.bytes, want);
}

/* Index numbers are read as the writer prints them: a sign, a second
 * space or a tab before a number (strtoll skipped those), a number past
 * its field's range or a space after the last number make the record
 * malformed, in the current format and in the earlier one's access
 * number; the records the writers print, a negative mtime_s, the
 * largest access number and a path with spaces around it included, are
 * taken. */
static void
test_index_numbers_strict(void **state)
{
	static const char *const bad2[] = {
		"A +5 1 2 - p\n", "A  5 1 2 - p\n", "A \t5 1 2 - p\n", "A 5 +1 2 - p\n",
		"A 5  1 2 - p\n", "A 5 1 \t2 - p\n", "A 5 1 2  - p\n", "A -5 1 2 - p\n",
		"A 5 1 -2 - p\n", "A 9223372036854775808 1 2 - p\n",
		"A 99999999999999999999 1 2 - p\n", "A 5 9223372036854775808 2 - p\n",
		"A 5 -9223372036854775809 2 - p\n", "A 5 1 1000000000 - p\n", "A 5 1 2 -\n",
		"P +5 1 2 " SHA_ABC " p\n"
	};
	static const char *const good2[] = {
		"A 5 1 2 - p\n", "A 5 -1 999999999 - p\n", "P 5 -9223372036854775808 0 - p\n",
		"A 5 9223372036854775807 0 " SHA_ABC "  a b \n"
	};
	static const char *const bad1[] = {
		"+7 5 1 2 - p\n", " 7 5 1 2 - p\n", "\t7 5 1 2 - p\n", "7  5 1 2 - p\n",
		"-7 5 1 2 - p\n", "18446744073709551616 5 1 2 - p\n"
	};
	static const char *const good1[] = {
		"7 5 1 2 - p\n", "18446744073709551615 5 -1 2 " SHA_ABC " p\n"
	};
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct hc_err err = { 0, "" };
	size_t i;

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	mir_store_close(st);
	for (i = 0; i < sizeof(bad2) / sizeof(bad2[0]); i++)
		expect_index(fx, "hydra-mirror-index 2\n", bad2[i], 0);
	for (i = 0; i < sizeof(good2) / sizeof(good2[0]); i++)
		expect_index(fx, "hydra-mirror-index 2\n", good2[i], 1);
	for (i = 0; i < sizeof(bad1) / sizeof(bad1[0]); i++)
		expect_index(fx, "hydra-mirror-index 1\n", bad1[i], 0);
	for (i = 0; i < sizeof(good1) / sizeof(good1[0]); i++)
		expect_index(fx, "hydra-mirror-index 1\n", good1[i], 1);
}

#define CHURN_FILES 20000
#define CHURN_RECORDS 240000

/* Records CHURN_RECORDS times over CHURN_FILES paths, in order. */
static void *
churn_thread(void *arg)
{
	static int failed;
	struct hc_err err = { 0, "" };
	char path[32];
	int i;

	for (i = 0; i < CHURN_RECORDS; i++) {
		snprintf(path, sizeof(path), "c/%05d", i % CHURN_FILES);
		if (mir_store_record(arg, path, 1, "", 0, &err) != 0)
			return &failed;
	}
	return NULL;
}

/* Compactions run while another thread changes the table (the lock is
 * given up between batches): the journal still replays to the same files
 * in the same order. */
static void
test_compaction_concurrent(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct hc_err err = { 0, "" };
	static char text[4 << 20];
	pthread_t t;
	void *ret = &ret;
	char want[64], *line;
	int i, flushes = 0;

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	assert_int_equal(pthread_create(&t, NULL, churn_thread, st), 0);
	while (pthread_tryjoin_np(t, &ret) != 0) {
		assert_int_equal(mir_store_flush(st, &err), 0);
		flushes++;
	}
	assert_null(ret);
	assert_true(flushes > 1);
	mir_store_close(st);
	append_index(fx, "T torn");             /* the next open compacts */
	for (i = 0; i < 2; i++) {
		st = NULL;
		assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
		mir_store_stats(st, &stats);
		assert_true(stats.files == CHURN_FILES && stats.bytes == CHURN_FILES);
		mir_store_close(st);
	}
	assert_int_equal(index_lines(fx, text, sizeof(text)), CHURN_FILES + 1);
	/* Oldest first: the paths in the order of their last record. */
	line = strchr(text, '\n') + 1;
	for (i = CHURN_RECORDS - CHURN_FILES; i < CHURN_RECORDS; i++) {
		snprintf(want, sizeof(want), "A 1 0 0 - c/%05d\n", i % CHURN_FILES);
		assert_memory_equal(line, want, strlen(want));
		line += strlen(want);
	}
}

/* unlinkat of the test binary: while armed, checks from another thread that
 * the store lock is free while an evicted file is unlinked. */
static struct {
	struct mir_store *st;
	int armed, calls, lock_free;
	char name[64];
} unlink_probe;

static void *
stats_thread(void *arg)
{
	struct mir_store_stats stats;

	mir_store_stats(arg, &stats);
	return NULL;
}

int
unlinkat(int dirfd, const char *path, int flags)
{
	if (unlink_probe.armed) {
		pthread_t t;
		struct timespec deadline;

		unlink_probe.calls++;
		snprintf(unlink_probe.name, sizeof(unlink_probe.name), "%s", path);
		assert_int_equal(pthread_create(&t, NULL, stats_thread, unlink_probe.st), 0);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 5;
		if (pthread_timedjoin_np(t, NULL, &deadline) == 0)
			unlink_probe.lock_free = 1;
		else
			pthread_detach(t);
	}
	return (int)syscall(SYS_unlinkat, dirfd, path, flags);
}

static void
test_evict_unlinks_outside_lock(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct hc_err err = { 0, "" };
	char evicted[PATH_MAX * 2];

	assert_int_equal(mir_store_open(fx->root, 200, 1, &st, &err), 0);
	put(st, "a", 100, 0);
	put(st, "b", 100, 0);
	unlink_probe.st = st;
	unlink_probe.armed = 1;
	assert_int_equal(mir_store_reserve(st, 100), 0);
	unlink_probe.armed = 0;
	assert_int_equal(unlink_probe.calls, 1);
	assert_true(unlink_probe.lock_free);
	assert_non_null(strstr(unlink_probe.name, "gone."));
	snprintf(evicted, sizeof(evicted), "%s/tmp/%s", fx->root, unlink_probe.name);
	assert_int_equal(access(evicted, F_OK), -1);
	assert_false(exists(fx, "a"));
	/* A commit to the evicted path right after stays. */
	put(st, "a", 100, 100);
	assert_true(exists(fx, "a"));
	mir_store_close(st);
}

/* A peer checks a file changed since its commit against the origin's digest
 * before serving it: corrupt, it is removed and reads as absent, with a
 * WARN naming it; intact, it is served. A changed file with no digest is
 * not "verified" from its bytes: it cannot be checked, so it goes too. */
static void
test_changed_file_reverified(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct mir_file f;
	struct hc_err err = { 0, "" };
	char sha[HC_SHA256_HEX_LEN + 1], logpath[PATH_MAX * 2], text[4096];
	FILE *fp;
	size_t n;

	snprintf(logpath, sizeof(logpath), "%s/log", fx->root);
	assert_int_equal(hc_log_open(logpath, HC_LOG_INFO, 0, &err), 0);
	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	put_text(st, "d/good", "abc", SHA_ABC);
	put_text(st, "d/bad", "abc", SHA_ABC);
	put_text(st, "d/none", "abc", "");
	write_behind(fx, "d/bad", "abd");       /* same size, another mtime */
	set_old_mtime(fx, "d/bad", 1000000000);
	assert_int_equal(mir_store_get(st, "d/bad", 1, &f, &err), HC_ENOTFOUND);
	assert_false(exists(fx, "d/bad"));
	write_behind(fx, "d/good", "abc");      /* touched, same bytes */
	set_old_mtime(fx, "d/good", 1000000000);
	get_sha(st, "d/good", sha);
	assert_string_equal(sha, SHA_ABC);
	get_sha(st, "d/none", sha);             /* unchanged: served, no digest */
	assert_string_equal(sha, "");
	write_behind(fx, "d/none", "xyz");
	set_old_mtime(fx, "d/none", 1000000000);
	assert_int_equal(mir_store_get(st, "d/none", 1, &f, &err), HC_ENOTFOUND);
	assert_false(exists(fx, "d/none"));
	mir_store_stats(st, &stats);
	assert_true(stats.files == 1 && stats.unverified == 0);
	/* Corrupted while the peer was down: caught at the first get. */
	mir_store_close(st);
	write_behind(fx, "d/good", "abx");
	set_old_mtime(fx, "d/good", 1000000001);
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	assert_int_equal(mir_store_get(st, "d/good", 1, &f, &err), HC_ENOTFOUND);
	assert_false(exists(fx, "d/good"));
	mir_store_close(st);
	hc_log_close();
	fp = fopen(logpath, "r");
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	assert_non_null(strstr(text, "WARN mirror: d/bad changed on disk: expected sha256 " SHA_ABC));
	assert_non_null(strstr(text, "WARN mirror: d/good changed on disk"));
	assert_non_null(strstr(text, "WARN mirror: d/none changed on disk and has no digest"));
}

static void
test_lru_pins_and_restart(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct mir_file pinned;
	struct hc_err err = { 0, "" };

	assert_int_equal(mir_store_open(fx->root, 300, 1, &st, &err), 0);
	put(st, "d/a", 100, 0);
	put(st, "d/b", 100, 0);
	put(st, "d/c", 100, 0);
	touch(st, "d/a");                       /* order: b, c, a */
	assert_int_equal(mir_store_reserve(st, 100), 0);
	put(st, "d/e", 100, 100);               /* evicts b */
	assert_false(exists(fx, "d/b"));
	assert_true(exists(fx, "d/a") && exists(fx, "d/c") && exists(fx, "d/e"));
	mir_store_stats(st, &stats);
	assert_true(stats.bytes == 300 && stats.files == 3 && stats.evictions == 1);

	/* c is the oldest, but pinned: a goes instead. */
	assert_int_equal(mir_store_get(st, "d/c", 0, &pinned, &err), 0);
	assert_int_equal(mir_store_reserve(st, 100), 0);
	assert_false(exists(fx, "d/a"));
	assert_true(exists(fx, "d/c"));
	mir_store_unreserve(st, 100);
	/* Larger than the limit: refused, nothing evicted. */
	assert_int_equal(mir_store_reserve(st, 301), HC_EIO);
	assert_true(exists(fx, "d/c") && exists(fx, "d/e"));
	close(pinned.fd);
	mir_store_release(st, pinned.entry);
	touch(st, "d/c");                       /* order: e, c */
	mir_store_close(st);

	/* The order survives a reopen, and a stale temp file does not. */
	{
		char stale[PATH_MAX * 2];
		int fd;
		snprintf(stale, sizeof(stale), "%s/tmp/part.stale", fx->root);
		fd = open(stale, O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		close(fd);
		st = NULL;
		assert_int_equal(mir_store_open(fx->root, 300, 1, &st, &err), 0);
		assert_int_equal(access(stale, F_OK), -1);
	}
	assert_int_equal(mir_store_reserve(st, 200), 0);  /* evicts e only */
	assert_false(exists(fx, "d/e"));
	assert_true(exists(fx, "d/c"));
	mir_store_unreserve(st, 200);
	mir_store_close(st);
}

/* A commit can hand back its entry pinned (a fill's readers): eviction
 * passes it over until it is released. */
static void
test_commit_pins(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_entry *pin = NULL;
	struct hc_err err = { 0, "" };
	char tmp[PATH_MAX];
	int fd;

	assert_int_equal(mir_store_open(fx->root, 300, 1, &st, &err), 0);
	fd = mir_store_tmp(st, tmp, sizeof(tmp), &err);
	assert_true(fd >= 0);
	assert_int_equal(hc_write_all(fd, "0123456789", 10), 0);
	assert_int_equal(mir_store_commit(st, "d/a", tmp, fd, 10, SHA_ABC, 0, &pin, &err), 0);
	close(fd);
	assert_non_null(pin);
	put(st, "d/b", 100, 0);
	put(st, "d/c", 100, 0);
	assert_int_equal(mir_store_reserve(st, 100), 0);  /* a is oldest but pinned: b goes */
	assert_true(exists(fx, "d/a") && exists(fx, "d/c"));
	assert_false(exists(fx, "d/b"));
	mir_store_unreserve(st, 100);
	mir_store_release(st, pin);
	assert_int_equal(mir_store_reserve(st, 195), 0);  /* now a goes */
	assert_false(exists(fx, "d/a"));
	mir_store_unreserve(st, 195);
	mir_store_close(st);
}

/* Sleeps ms milliseconds (to age files past an idle bound). */
static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Pre-warm reservations evict only files idle for longer than the bound:
 * not enough of them is HC_EIO with nothing evicted; pinned files are
 * passed over; files loaded at a reopen count as read then. The bound is
 * 500 ms, files read just before a call are microseconds old and aged
 * ones are slept past it. */
static void
test_reserve_idle(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct mir_store_stats ss;
	struct mir_file d;
	struct hc_err err = { 0, "" };
	const int64_t idle = 500;

	assert_int_equal(mir_store_open(fx->root, 500, 1, &st, &err), 0);
	put(st, "a", 100, 0);
	put(st, "b", 100, 0);
	put(st, "c", 100, 0);
	sleep_ms(idle + 100);
	put(st, "d", 100, 0);
	put(st, "e", 100, 0);
	touch(st, "a");                         /* order: b c d e a; b and c idle */
	assert_int_equal(mir_store_reserve_idle(st, 300, idle), HC_EIO);
	assert_true(exists(fx, "a") && exists(fx, "b") && exists(fx, "c") && exists(fx, "d") &&
	            exists(fx, "e"));
	mir_store_stats(st, &ss);
	assert_int_equal(ss.evictions, 0);
	assert_int_equal(ss.bytes, 500);
	assert_int_equal(mir_store_reserve_idle(st, 200, idle), 0);
	assert_false(exists(fx, "b") || exists(fx, "c"));
	assert_true(exists(fx, "a") && exists(fx, "d") && exists(fx, "e"));
	mir_store_stats(st, &ss);
	assert_int_equal(ss.evictions, 2);
	mir_store_unreserve(st, 200);
	assert_int_equal(mir_store_reserve_idle(st, 200, idle), 0);   /* fits: nothing goes */
	mir_store_unreserve(st, 200);

	assert_int_equal(mir_store_get(st, "d", 0, &d, &err), 0);     /* pinned, unread */
	sleep_ms(idle + 100);
	touch(st, "a");                         /* order: d e a; d pinned, e idle */
	assert_int_equal(mir_store_reserve_idle(st, 300, idle), 0);
	assert_false(exists(fx, "e"));
	assert_true(exists(fx, "a") && exists(fx, "d"));
	mir_store_unreserve(st, 300);
	assert_int_equal(mir_store_reserve_idle(st, 400, idle), HC_EIO);
	assert_int_equal(mir_store_reserve_idle(st, 501, 0), HC_EIO);  /* over the limit */
	close(d.fd);
	mir_store_release(st, d.entry);
	assert_int_equal(mir_store_reserve_idle(st, 400, idle), 0);   /* d idle and released */
	assert_false(exists(fx, "d"));
	mir_store_unreserve(st, 400);
	put(st, "f", 100, 0);
	sleep_ms(idle + 100);
	mir_store_close(st);

	/* The index keeps no read times: after a reopen every file counts as
	 * read at the reopen, whatever its age. */
	assert_int_equal(mir_store_open(fx->root, 200, 1, &st, &err), 0);
	assert_int_equal(mir_store_reserve_idle(st, 100, idle), HC_EIO);
	assert_true(exists(fx, "a") && exists(fx, "f"));
	assert_int_equal(mir_store_reserve_idle(st, 100, 0), 0);
	mir_store_unreserve(st, 100);
	mir_store_close(st);
}

/* DELETE of a link inside the store removes the link, never its target,
 * inside the store or out of it. */
static void
test_delete_link(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL;
	struct hc_err err = { 0, "" };
	char link[PATH_MAX * 2], outside[PATH_MAX * 2];
	struct stat sb;
	int fd;

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	put(st, "d/target", 10, 0);
	snprintf(link, sizeof(link), "%s/files/d/link", fx->root);
	assert_int_equal(symlink("target", link), 0);
	assert_int_equal(mir_store_delete(st, "d/link", &err), 0);
	assert_int_equal(lstat(link, &sb), -1);
	assert_true(exists(fx, "d/target"));
	snprintf(outside, sizeof(outside), "%s/outside", fx->root);
	fd = open(outside, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	snprintf(link, sizeof(link), "%s/files/out", fx->root);
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(mir_store_delete(st, "out", &err), 0);
	assert_int_equal(lstat(link, &sb), -1);
	assert_int_equal(access(outside, F_OK), 0);
	/* A link to a folder: the link goes, the folder and its files stay. */
	snprintf(link, sizeof(link), "%s/files/dl", fx->root);
	assert_int_equal(symlink("d", link), 0);
	assert_int_equal(mir_store_delete(st, "dl", &err), 0);
	assert_true(exists(fx, "d/target"));
	/* The file itself still goes, and its record with it. */
	assert_int_equal(mir_store_delete(st, "d/target", &err), 0);
	assert_false(exists(fx, "d/target"));
	assert_int_equal(mir_store_delete(st, "d/target", &err), HC_ENOTFOUND);
	assert_int_equal(mir_store_delete(st, "d", &err), HC_ENOTFOUND);
	mir_store_close(st);
}

static void
test_confinement(void **state)
{
	struct fixture *fx = *state;
	struct mir_store *st = NULL, *second = NULL;
	struct mir_file f;
	struct hc_err err = { 0, "" };
	char link[PATH_MAX * 2];

	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	{
		char target[PATH_MAX * 2];
		snprintf(target, sizeof(target), "%s/meta/lock", fx->root);
		snprintf(link, sizeof(link), "%s/files/out", fx->root);
		assert_int_equal(symlink(target, link), 0);
	}
	snprintf(link, sizeof(link), "%s/files/up", fx->root);
	assert_int_equal(symlink("../meta", link), 0);
	assert_int_equal(mir_store_get(st, "out", 1, &f, &err), HC_EDATA);
	assert_int_equal(mir_store_get(st, "up/lock", 1, &f, &err), HC_EDATA);
	assert_int_equal(mir_store_get(st, "none", 1, &f, &err), HC_ENOTFOUND);
	/* A FIFO is not a file, and opening it does not block. */
	snprintf(link, sizeof(link), "%s/files/fifo", fx->root);
	assert_int_equal(mkfifo(link, 0644), 0);
	assert_int_equal(mir_store_get(st, "fifo", 1, &f, &err), HC_ENOTFOUND);
	/* A file we may not read is a fault, not an absent file. */
	if (geteuid() != 0) {
		int fd;
		snprintf(link, sizeof(link), "%s/files/locked", fx->root);
		fd = open(link, O_CREAT | O_WRONLY, 0);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(mir_store_get(st, "locked", 1, &f, &err), HC_EIO);
	}
	assert_int_equal(mir_store_get(st, "up", 1, &f, &err), HC_EDATA);
	/* A peer holds its root alone. */
	assert_int_equal(mir_store_open(fx->root, 0, 1, &second, &err), HC_EUNAVAIL);
	assert_null(second);
	mir_store_close(st);
}

/* Verification: mir_store_check keeps a match and evicts a mismatch, never
 * takes a file without an origin digest for verified; mir_store_scrub_batch
 * orders by last verification. */
#define SHA_OTHER "0000000000000000000000000000000000000000000000000000000000000001"

/* Commits "abc" at path with the origin digest sha ("" for none). */
static void
put_abc(struct mir_store *st, const char *path, const char *sha)
{
	struct hc_err err = { 0, "" };
	char tmp[PATH_MAX];
	int fd = mir_store_tmp(st, tmp, sizeof(tmp), &err);

	assert_true(fd >= 0);
	assert_int_equal(hc_write_all(fd, "abc", 3), 0);
	assert_int_equal(mir_store_commit(st, path, tmp, fd, 3, sha, 0, NULL, &err), 0);
	close(fd);
}

/* mir_store_check of path with found as the hash of its bytes. */
static int
check(struct mir_store *st, const char *path, const char *found)
{
	struct hc_err err = { 0, "" };
	struct mir_file f;
	int rc = mir_store_get(st, path, 0, &f, &err);

	if (rc != 0)
		return rc;
	rc = mir_store_check(st, &f, found, &err);
	close(f.fd);
	mir_store_release(st, f.entry);
	return rc;
}

static void
test_check_and_batch(void **state)
{
	struct fixture *fx = *state;
	struct hc_err err = { 0, "" };
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	char (*paths)[MIR_PATH_MAX] = malloc(MIR_SCRUB_BATCH_MAX * sizeof(*paths));
	struct mir_file f;

	assert_non_null(paths);
	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	put_abc(st, "a", SHA_ABC);
	usleep(2000);
	put_abc(st, "b", SHA_ABC);
	put_abc(st, "c", "");
	/* The file without a digest is never in a batch; a before b. */
	assert_int_equal(mir_store_scrub_batch(st, paths, MIR_SCRUB_BATCH_MAX), 2);
	assert_string_equal(paths[0], "a");
	assert_string_equal(paths[1], "b");
	usleep(2000);
	assert_int_equal(check(st, "a", SHA_ABC), MIR_CHECK_OK);
	assert_int_equal(mir_store_scrub_batch(st, paths, 1), 1);
	assert_string_equal(paths[0], "b");
	/* A mismatch evicts; the found digest is never recorded. */
	assert_int_equal(check(st, "b", SHA_OTHER), MIR_CHECK_EVICTED);
	assert_false(exists(fx, "b"));
	assert_int_equal(mir_store_get(st, "b", 0, &f, &err), HC_ENOTFOUND);
	mir_store_stats(st, &stats);
	assert_int_equal(stats.corrupt_evictions, 1);
	assert_int_equal(check(st, "c", SHA_ABC), MIR_CHECK_UNVERIFIABLE);
	assert_true(exists(fx, "c"));
	mir_store_close(st);
	/* A restart forgets when files were verified: they count as never. */
	st = NULL;
	assert_int_equal(mir_store_open(fx->root, 0, 1, &st, &err), 0);
	assert_int_equal(mir_store_get(st, "a", 0, &f, &err), 0);
	assert_int_equal(f.verified_ms, 0);
	assert_string_equal(f.sha256, SHA_ABC);
	close(f.fd);
	mir_store_release(st, f.entry);
	mir_store_close(st);
	free(paths);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_digest_once_and_on_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_digest_stays_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_file_reverified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lru_pins_and_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lru_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_replay_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_record_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_after_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_keeps_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_numbers_strict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_unlinks_outside_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_pins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_max_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confinement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_and_batch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
