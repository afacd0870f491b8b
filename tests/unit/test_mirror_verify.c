/* hydra-mirror store verification: mir_store_check keeps a match and
 * evicts a mismatch, never takes a file without an origin digest for
 * verified, and mir_store_scrub_batch orders by last verification. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mirror/mirror.h"

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_OTHER "0000000000000000000000000000000000000000000000000000000000000001"

struct fixture {
	char root[PATH_MAX];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->root, sizeof(fx->root), "%s/mir-verify-XXXXXX",
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

static int
exists(const struct fixture *fx, const char *path)
{
	char full[PATH_MAX * 2];

	snprintf(full, sizeof(full), "%s/files/%s", fx->root, path);
	return access(full, F_OK) == 0;
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
		cmocka_unit_test_setup_teardown(test_check_and_batch, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
