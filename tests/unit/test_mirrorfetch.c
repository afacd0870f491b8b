/* mirrorfetch: the seed's rewrite rule and origin matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mirrorfetch/mirrorfetch.h"

#define ORIGIN "mirror-a.experiencenet.com"
#define PATTERN "https://{district}.hydramirror.experiencenet.com"

static void
test_rewrite_origin_url(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(mf_rewrite_url(
	    "https://mirror-a.experiencenet.com/api/v1/peer/files/exp/build-42.zip?v=3",
	    "bxl1", ORIGIN, PATTERN, out, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0],
	    "https://bxl1.hydramirror.experiencenet.com/api/v1/peer/files/exp/build-42.zip?v=3");
	assert_string_equal(out[1],
	    "https://mirror-a.experiencenet.com/api/v1/peer/files/exp/build-42.zip?v=3");
}

static void
test_rewrite_host_case_insensitive(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(mf_rewrite_url("https://MIRROR-A.ExperienceNet.com/b.zip", "bxl1",
	                                ORIGIN, PATTERN, out, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "https://bxl1.hydramirror.experiencenet.com/b.zip");
	assert_true(mf_is_origin_url("https://MIRROR-A.experiencenet.com/x", ORIGIN));
	assert_false(mf_is_origin_url("https://mirror-b.experiencenet.com/x", ORIGIN));
	assert_false(mf_is_origin_url("https://mirror-a.experiencenet.com.evil/x", ORIGIN));
}

static void
test_no_district_means_origin_alone(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(mf_rewrite_url("https://mirror-a.experiencenet.com/b.zip", "",
	                                ORIGIN, PATTERN, out, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out[0], "https://mirror-a.experiencenet.com/b.zip");
}

static void
test_other_host_untouched(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(mf_rewrite_url("https://cdn.example.com/mirror-a.experiencenet.com/b.zip",
	                                "bxl1", ORIGIN, PATTERN, out, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out[0], "https://cdn.example.com/mirror-a.experiencenet.com/b.zip");
}

static void
test_pattern_with_port_and_slash(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(mf_rewrite_url("http://mirror-a.experiencenet.com:8080/f", "gnt2",
	                                ORIGIN, "http://{district}.m.example:9090/", out, &n,
	                                &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "http://gnt2.m.example:9090/f");
	assert_string_equal(out[1], "http://mirror-a.experiencenet.com:8080/f");
}

static void
test_bad_inputs(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(mf_rewrite_url("not a url", "bxl1", ORIGIN, PATTERN, out, &n, &err),
	                 HC_EDATA);
	assert_int_equal(mf_rewrite_url("https://mirror-a.experiencenet.com/b", "bxl1", ORIGIN,
	                                "{district}", out, &n, &err), HC_ECONFIG);
	assert_string_equal(err.msg, "mirror.url_pattern gives 'bxl1/b', not a URL");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rewrite_origin_url),
		cmocka_unit_test(test_rewrite_host_case_insensitive),
		cmocka_unit_test(test_no_district_means_origin_alone),
		cmocka_unit_test(test_other_host_untouched),
		cmocka_unit_test(test_pattern_with_port_and_slash),
		cmocka_unit_test(test_bad_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
