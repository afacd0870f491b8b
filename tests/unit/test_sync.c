/* mirrorfetch: manifest parsing, validation and the canonical hash of sync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirrorfetch/mirrorfetch.h"

/* Three entries, out of order, one upper-case digest, one size above 4 GiB.
 * The hash was computed independently with Python from docs/sync.md. */
#define GOOD_HASH "ef2915924bb883fab7b326dd34ad49dc70afc9463f32aef251224eea474df8bf"
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define SHA_Z "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char good_files[] =
	"{\"path\": \"tools/b.bin\", \"sha256\": \"" SHA_B "\", \"size\": 0,"
	" \"url\": \"http://127.0.0.1:9/api/v1/tools/t/1.0/files/tools/b.bin\"},"
	"{\"path\": \"a.txt\", \"sha256\": \"" SHA_A "\", \"size\": 12,"
	" \"url\": \"http://127.0.0.1:9/api/v1/tools/t/1.0/files/a.txt\"},"
	"{\"path\": \"z/y x.dat\", \"sha256\": \"" SHA_Z "\", \"size\": 4981532736,"
	" \"url\": \"https://hq.example/api/v1/tools/t/1.0/files/z/y%20x.dat\"}";

static const char good_canonical[] =
	"manifest_version\t1.0\ntool_id\tt\ntool_version\t1.0\n"
	"a.txt\t" SHA_A "\t12\thttp://127.0.0.1:9/api/v1/tools/t/1.0/files/a.txt\n"
	"tools/b.bin\tbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\t0\t"
	"http://127.0.0.1:9/api/v1/tools/t/1.0/files/tools/b.bin\n"
	"z/y x.dat\t" SHA_Z "\t4981532736\thttps://hq.example/api/v1/tools/t/1.0/files/z/y%20x.dat\n";

/* A manifest around files (JSON array members) with hash. Caller frees. */
static char *
doc(const char *files, const char *hash)
{
	size_t size = strlen(files) + 512;
	char *text = malloc(size);

	assert_non_null(text);
	snprintf(text, size, "{\"manifest_version\": \"1.0\", \"tool_id\": \"t\", "
	         "\"tool_version\": \"1.0\", \"files\": [%s], \"manifest_hash\": \"%s\"}",
	         files, hash);
	return text;
}

/* One file entry with this path (a JSON string literal, quotes included). */
static char *
entry(const char *path_json, const char *sha, const char *size)
{
	char *text = malloc(1024);

	assert_non_null(text);
	snprintf(text, 1024, "{\"path\": %s, \"sha256\": \"%s\", \"size\": %s, "
	         "\"url\": \"http://127.0.0.1:9/x\"}", path_json, sha, size);
	return text;
}

/* Parses text and expects HC_EDATA with every one of the needles in the message. */
static void
refused(const char *text, const char *needle1, const char *needle2)
{
	struct mf_manifest *m = (struct mf_manifest *)1;
	struct hc_err err = { 0, "" };

	assert_int_equal(mf_manifest_parse(text, strlen(text), &m, &err), HC_EDATA);
	assert_null(m);
	if (strstr(err.msg, needle1) == NULL || (needle2 != NULL && strstr(err.msg, needle2) == NULL))
		fail_msg("message '%s' lacks '%s' / '%s'", err.msg, needle1,
		         needle2 != NULL ? needle2 : "");
}

static void
refused_entry(const char *path_json, const char *sha, const char *size, const char *needle1,
              const char *needle2)
{
	char *e = entry(path_json, sha, size);
	char *files = malloc(strlen(e) + 200);
	char *text;

	assert_non_null(files);
	/* A good entry first, so that the bad one is files[1]. */
	snprintf(files, strlen(e) + 200, "{\"path\": \"ok\", \"sha256\": \"" SHA_A "\", "
	         "\"size\": 1, \"url\": \"http://127.0.0.1:9/ok\"},%s", e);
	text = doc(files, GOOD_HASH);
	refused(text, needle1, needle2);
	free(text);
	free(files);
	free(e);
}

static void
test_good_manifest(void **state)
{
	struct mf_manifest *m = NULL;
	struct hc_err err = { 0, "" };
	char *text = doc(good_files, GOOD_HASH);
	char *canon = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(mf_manifest_parse(text, strlen(text), &m, &err), 0);
	assert_int_equal(m->n, 3);
	assert_string_equal(m->tool_id, "t");
	/* Sorted by path, digests lower-cased, original positions kept. */
	assert_string_equal(m->files[0].path, "a.txt");
	assert_int_equal(m->files[0].index, 1);
	assert_string_equal(m->files[1].path, "tools/b.bin");
	assert_string_equal(m->files[1].sha256,
	                    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_true(m->files[2].size == 4981532736ULL);
	assert_int_equal(mf_manifest_canonical(m, &canon, &len, &err), 0);
	assert_int_equal(len, strlen(good_canonical));
	assert_memory_equal(canon, good_canonical, len);
	free(canon);
	mf_manifest_free(m);
	free(text);
}

/* The hash does not depend on the order of entries, keys or whitespace. */
static void
test_hash_stable(void **state)
{
	static const char shuffled[] =
		"{\n  \"manifest_hash\": \"" GOOD_HASH "\",\n  \"files\": [\n"
		"{\"url\": \"https://hq.example/api/v1/tools/t/1.0/files/z/y%20x.dat\","
		" \"size\": 4981532736, \"sha256\": \"" SHA_Z "\", \"path\": \"z/y x.dat\"},"
		"{\"size\": 12, \"path\": \"a.txt\", \"sha256\": \"" SHA_A "\","
		" \"url\": \"http://127.0.0.1:9/api/v1/tools/t/1.0/files/a.txt\"},"
		"{\"path\": \"tools/b.bin\", \"sha256\": \"" SHA_B "\", \"size\": 0,"
		" \"url\": \"http:\\/\\/127.0.0.1:9/api/v1/tools/t/1.0/files/tools/b.bin\"}],\n"
		"  \"tool_version\": \"1.0\", \"tool_id\": \"t\", \"manifest_version\": \"1.0\"}\n";
	struct mf_manifest *m = NULL;
	struct hc_err err = { 0, "" };
	char hex[HC_SHA256_HEX_LEN + 1];
	char *again;

	(void)state;
	assert_int_equal(mf_manifest_parse(shuffled, strlen(shuffled), &m, &err), 0);
	assert_int_equal(mf_manifest_hash(m, hex, &err), 0);
	assert_string_equal(hex, GOOD_HASH);
	/* What we print parses back to the same hash. */
	again = mf_manifest_to_json(m);
	assert_non_null(again);
	mf_manifest_free(m);
	m = NULL;
	assert_int_equal(mf_manifest_parse(again, strlen(again), &m, &err), 0);
	assert_string_equal(m->manifest_hash, GOOD_HASH);
	mf_manifest_free(m);
	free(again);
}

static void
test_hash_mismatch(void **state)
{
	char *text = doc(good_files, "ef2915924bb883fab7b326dd34ad49dc70afc9463f32aef251224eea474df8b0");

	(void)state;
	refused(text, "manifest_hash mismatch", GOOD_HASH);
	free(text);
	/* One byte of content changed under a good hash. */
	{
		char *files = hc_strdup(good_files);
		char *p = strstr(files, "\"size\": 12");
		p[9] = '3';
		text = doc(files, GOOD_HASH);
		refused(text, "manifest_hash mismatch", NULL);
		free(text);
		free(files);
	}
	text = doc(good_files, "c9b10a4d4e8646c9");
	refused(text, "manifest_hash 'c9b10a4d4e8646c9' is not 64 hex digits", NULL);
	free(text);
}

static void
test_paths_refused(void **state)
{
	(void)state;
	refused_entry("\"../etc/passwd\"", SHA_A, "1", "files[1] path \"../etc/passwd\"",
	              "escapes the directory");
	refused_entry("\"a/../../b\"", SHA_A, "1", "files[1] path \"a/../../b\"",
	              "escapes the directory");
	refused_entry("\"/etc/passwd\"", SHA_A, "1", "files[1] path \"/etc/passwd\"",
	              "absolute path");
	refused_entry("\"a\\\\b\"", SHA_A, "1", "files[1]", "backslash");
	refused_entry("\"a\\u0000b\"", SHA_A, "1", "files[1]", "NUL byte");
	refused_entry("\"a\\nb\"", SHA_A, "1", "files[1]", "control character");
	refused_entry("\"\"", SHA_A, "1", "files[1]", "empty path");
	refused_entry("\"a//b\"", SHA_A, "1", "files[1] path \"a//b\"", "empty path segment");
	refused_entry("\"a/\"", SHA_A, "1", "files[1] path \"a/\"", "empty path segment");
	refused_entry("\"./a\"", SHA_A, "1", "files[1]", "'.' segment");
	refused_entry("\".hydra-index\"", SHA_A, "1", "files[1] path \".hydra-index\"",
	              "reserved");
	refused_entry("\".hydra-staging/x\"", SHA_A, "1", "files[1]", "reserved");
	refused_entry("42", SHA_A, "1", "files[1]", "'path'");
}

static void
test_fields_refused(void **state)
{
	(void)state;
	refused_entry("\"neg\"", SHA_A, "-5", "files[1] \"neg\"", "negative size -5");
	refused_entry("\"frac\"", SHA_A, "1.5", "files[1] \"frac\"", "size");
	refused_entry("\"str\"", SHA_A, "\"12\"", "files[1] \"str\"", "size");
	refused_entry("\"short\"", "abc", "1", "files[1] \"short\"", "sha256 'abc' is not 64 hex");
	refused_entry("\"nothex\"",
	              "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg", "1",
	              "files[1] \"nothex\"", "not 64 hex");
	{
		char *text = doc("{\"path\": \"f\", \"sha256\": \"" SHA_A "\", \"size\": 1, "
		                 "\"url\": \"ftp://127.0.0.1/f\"}", GOOD_HASH);
		refused(text, "files[0] \"f\"", "is not an http(s) URL");
		free(text);
	}
	{
		char *text = doc("{\"path\": \"f\", \"sha256\": \"" SHA_A "\", \"size\": 1}",
		                 GOOD_HASH);
		refused(text, "files[0] \"f\"", "missing field 'url'");
		free(text);
	}
	refused("{\"manifest_version\": \"2.0\", \"tool_id\": \"t\", \"tool_version\": \"1\", "
	        "\"files\": [], \"manifest_hash\": \"" GOOD_HASH "\"}", "manifest_version '2.0'",
	        NULL);
	refused("{\"manifest_version\": \"1.0\", \"tool_id\": \"a/b\", \"tool_version\": \"1\", "
	        "\"files\": [], \"manifest_hash\": \"" GOOD_HASH "\"}", "tool_id", "slash");
	refused("{\"manifest_version\": \"1.0\", \"tool_id\": \"t\", \"tool_version\": \"1\", "
	        "\"files\": []}", "manifest_hash", NULL);
	refused("[1, 2]", "not a JSON object", NULL);
	refused("{\"manifest_version\": ", "invalid JSON", NULL);
}

static void
test_tree_refused(void **state)
{
	char *text;

	(void)state;
	text = doc("{\"path\": \"x\", \"sha256\": \"" SHA_A "\", \"size\": 1, \"url\": \"http://h/1\"},"
	           "{\"path\": \"y\", \"sha256\": \"" SHA_A "\", \"size\": 1, \"url\": \"http://h/2\"},"
	           "{\"path\": \"x\", \"sha256\": \"" SHA_Z "\", \"size\": 2, \"url\": \"http://h/3\"}",
	           GOOD_HASH);
	refused(text, "files[0] and files[2] both have path \"x\"", NULL);
	free(text);
	/* "a-b" sorts between "a" and "a/b": the folder check is not adjacent-only. */
	text = doc("{\"path\": \"a/b\", \"sha256\": \"" SHA_A "\", \"size\": 1, \"url\": \"http://h/1\"},"
	           "{\"path\": \"a-b\", \"sha256\": \"" SHA_A "\", \"size\": 1, \"url\": \"http://h/2\"},"
	           "{\"path\": \"a\", \"sha256\": \"" SHA_A "\", \"size\": 1, \"url\": \"http://h/3\"}",
	           GOOD_HASH);
	refused(text, "files[0] path \"a/b\"", "\"a\" is also listed as a file (files[2])");
	free(text);
}

static void
test_check_path(void **state)
{
	char why[128];

	(void)state;
	assert_int_equal(mf_manifest_check_path("a/b/c.txt", 9, why, sizeof(why)), 0);
	assert_int_equal(mf_manifest_check_path(".config/x", 9, why, sizeof(why)), 0);
	assert_int_equal(mf_manifest_check_path("a/.hydra-index", 14, why, sizeof(why)), 0);
	assert_int_equal(mf_manifest_check_path("..a", 3, why, sizeof(why)), 0);
	assert_int_equal(mf_manifest_check_path("a/..", 4, why, sizeof(why)), HC_EDATA);
	assert_int_equal(mf_manifest_check_path("..", 2, why, sizeof(why)), HC_EDATA);
	assert_int_equal(mf_manifest_check_path("a\0b", 3, why, sizeof(why)), HC_EDATA);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The generator lists, hashes, sorts, encodes and skips its own state. */
static void
test_from_dir(void **state)
{
	char dir[] = "/tmp/test_sync.XXXXXX";
	char path[512];
	struct mf_manifest *m = NULL, *back = NULL;
	struct hc_err err = { 0, "" };
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub dir", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/.hydra-staging", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub dir/%s", dir, "b%.txt");
	write_file(path, "hello\n");
	snprintf(path, sizeof(path), "%s/a", dir);
	write_file(path, "");
	snprintf(path, sizeof(path), "%s/.hydra-index", dir);
	write_file(path, "hydra-index 1\n");
	assert_int_equal(mf_manifest_from_dir(dir, "z-image", "0.5.2",
	                                      "https://hq.example/api/v1/tools/", &m, &err), 0);
	assert_int_equal(m->n, 2);
	assert_string_equal(m->files[0].path, "a");
	assert_string_equal(m->files[0].sha256,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_string_equal(m->files[1].path, "sub dir/b%.txt");
	assert_int_equal(m->files[1].size, 6);
	/* The seed's base (ending in /api/v1/tools/) is not doubled. */
	assert_string_equal(m->files[1].url,
	                    "https://hq.example/api/v1/tools/z-image/0.5.2/files/sub%20dir/b%25.txt");
	text = mf_manifest_to_json(m);
	assert_non_null(text);
	assert_int_equal(mf_manifest_parse(text, strlen(text), &back, &err), 0);
	assert_string_equal(back->manifest_hash, m->manifest_hash);
	free(text);
	mf_manifest_free(back);
	mf_manifest_free(m);
	m = NULL;
	assert_int_equal(mf_manifest_from_dir(dir, "a/b", "1", "http://h", &m, &err), HC_EUSAGE);
	assert_int_equal(mf_manifest_from_dir(dir, "t", "1", "ftp://h", &m, &err), HC_EUSAGE);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_manifest),
		cmocka_unit_test(test_hash_stable),
		cmocka_unit_test(test_hash_mismatch),
		cmocka_unit_test(test_paths_refused),
		cmocka_unit_test(test_fields_refused),
		cmocka_unit_test(test_tree_refused),
		cmocka_unit_test(test_check_path),
		cmocka_unit_test(test_from_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
