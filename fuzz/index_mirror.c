/*
 * The mirror store's index ({root}/meta/index) holding the input, opened as
 * an origin's store (an origin digests what its index does not describe
 * rightly) over two files: whatever the index says, both files are served
 * with their real size and a digest, and closing writes an index that opens.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/lib/support.h"
#include "mirror/mirror.h"

static char root[PATH_MAX];

/* Writes dir/name unless it is there: an unchanged file keeps its mtime, so
 * an index line can describe it rightly. */
static void
keep_file(const char *dir, const char *name, const char *data, size_t len)
{
	char path[PATH_MAX];
	struct stat st;

	if (hc_snprintf(path, sizeof(path), "%s/%s", dir, name) != 0)
		fz_fail("store path");
	if (lstat(path, &st) != 0 || (size_t)st.st_size != len)
		fz_write(dir, name, data, len);
}

static void
setup(void)
{
	struct hc_err err = { 0, "" };
	struct mir_store *st = NULL;
	char dir[PATH_MAX];

	if (root[0] == '\0') {
		if (hc_snprintf(root, sizeof(root), "%s/store", fz_scratch()) != 0 ||
		    mir_store_open(root, 0, 0, &st, &err) != 0)
			fz_fail("cannot create the store");
		mir_store_close(st);
	}
	if (hc_snprintf(dir, sizeof(dir), "%s/files/dir", root) != 0 ||
	    hc_mkdir_p(dir, 0755, &err) != 0)
		fz_fail("cannot create a store folder");
	keep_file(dir, "b.bin", "second file\n", 12);
	if (hc_snprintf(dir, sizeof(dir), "%s/files", root) != 0)
		fz_fail("store path");
	keep_file(dir, "a.bin", "hello", 5);
}

static void
check_file(struct mir_store *st, const char *path, uint64_t size)
{
	struct hc_err err = { 0, "" };
	struct mir_file f;

	if (mir_store_get(st, path, 1, &f, &err) != 0)
		fz_fail("a stored file is not found after loading the index");
	if (f.size != size || !hc_sha256_hex_valid(f.sha256))
		fz_fail("a stored file has the wrong size or no digest");
	close(f.fd);
	mir_store_release(st, f.entry);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct mir_store *st = NULL;
	char meta[PATH_MAX];

	fz_quiet();
	setup();
	if (hc_snprintf(meta, sizeof(meta), "%s/meta", root) != 0)
		fz_fail("store path");
	fz_write(meta, "index", data, size);
	if (mir_store_open(root, 0, 0, &st, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		fz_fail("a store does not open because of its index");
	}
	check_file(st, "a.bin", 5);
	check_file(st, "dir/b.bin", 12);
	mir_store_close(st);
	st = NULL;
	if (mir_store_open(root, 0, 0, &st, &err) != 0)
		fz_fail("a store does not open with the index it wrote");
	mir_store_close(st);
	return 0;
}
