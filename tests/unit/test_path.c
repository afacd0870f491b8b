/* Paths in URLs: decoding, confinement, encoding (common/path.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/hc.h"

static int
decode(const char *raw, char *out, size_t size)
{
	return hc_path_decode(raw, strlen(raw), out, size);
}

static void
test_accepts(void **state)
{
	char out[HC_PATH_MAX];

	(void)state;
	assert_int_equal(decode("builds/exp1/build.zip", out, sizeof(out)), 0);
	assert_string_equal(out, "builds/exp1/build.zip");
	assert_int_equal(decode("a%20b/c%2Bd.zip", out, sizeof(out)), 0);
	assert_string_equal(out, "a b/c+d.zip");
	assert_int_equal(decode("100%25.zip", out, sizeof(out)), 0);
	assert_string_equal(out, "100%.zip");
	assert_int_equal(decode("..hidden/x...y", out, sizeof(out)), 0);
	assert_string_equal(out, "..hidden/x...y");
	assert_int_equal(decode("caf%C3%A9", out, sizeof(out)), 0);
	assert_string_equal(out, "caf\xc3\xa9");
}

static void
test_refuses(void **state)
{
	static const char *const bad[] = {
		"", "/etc/passwd", "%2fetc/passwd", "..", "../x", "a/../b", "a/..",
		"%2e%2e/x", "%2E%2E/x", ".%2e/x", "a/%2e%2e", "a/./b", ".", "a//b", "a/",
		"a\\b", "a%5cb", "..%5c..", "a%00b", "a%0ab", "a%7fb", "a%", "a%2", "a%zz",
		"a%252e%252e/b", "a%252fb", "a%255cb", "a%2500", "a%2525",
	};
	char out[HC_PATH_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (decode(bad[i], out, sizeof(out)) != HC_EDATA)
			fail_msg("accepted '%s'", bad[i]);
	}
}

static void
test_nul_inside_length(void **state)
{
	char out[HC_PATH_MAX];
	const char raw[] = { 'a', '\0', 'b' };

	(void)state;
	assert_int_equal(hc_path_decode(raw, sizeof(raw), out, sizeof(out)), HC_EDATA);
}

static void
test_length_limits(void **state)
{
	char out[8], *big;

	(void)state;
	assert_int_equal(decode("abcdefg", out, sizeof(out)), 0);
	assert_int_equal(decode("abcdefgh", out, sizeof(out)), HC_EDATA);
	big = malloc(HC_PATH_MAX + 1);
	assert_non_null(big);
	memset(big, 'a', HC_PATH_MAX);
	big[HC_PATH_MAX] = '\0';
	{
		char *o = malloc(HC_PATH_MAX * 2);
		assert_non_null(o);
		assert_int_equal(decode(big, o, HC_PATH_MAX * 2), HC_EDATA);
		free(o);
	}
	free(big);
}

static void
test_encode(void **state)
{
	char out[64], back[64];

	(void)state;
	assert_int_equal(hc_path_encode("a b/c+d%.zip", out, sizeof(out)), 0);
	assert_string_equal(out, "a%20b/c%2Bd%25.zip");
	assert_int_equal(decode(out, back, sizeof(back)), 0);
	assert_string_equal(back, "a b/c+d%.zip");
	assert_int_equal(hc_path_encode("abc", out, 3), HC_ESOFTWARE);
	assert_int_equal(hc_path_encode("abc", out, 4), 0);
	assert_int_equal(hc_path_encode(" ", out, 3), HC_ESOFTWARE);
}

static void
test_query_encode(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(hc_query_encode("node a/b&c=d", out, sizeof(out)), 0);
	assert_string_equal(out, "node%20a%2Fb%26c%3Dd");
	assert_int_equal(hc_query_encode("", out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(hc_query_encode("/", out, 3), HC_ESOFTWARE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_nul_inside_length),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_query_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
