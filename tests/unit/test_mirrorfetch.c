/* mirrorfetch: the seed's rewrite rule and origin matching, the progress
 * line's fitting, the sources a run found down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mirrorfetch/internal.h"
#include "mirrorfetch/mirrorfetch.h"

#define ORIGIN "mirror-a.experiencenet.com"
#define PATTERN "https://{district}.hydramirror.experiencenet.com"

/* mf_rewrite_url over a URL parsed here; the candidates' URLs in out. */
static int
rewrite(const char *url, const char *district, const char *pattern, char out[2][MF_URL_MAX],
        size_t *n, struct hc_err *err)
{
	struct mf_candidates c;
	struct hc_url u;
	size_t i;
	int rc;

	*n = 0;
	rc = hc_url_parse(url, &u, err);
	if (rc != 0)
		return rc;
	rc = mf_rewrite_url(&u, url, district, ORIGIN, pattern, &c, err);
	hc_url_free(&u);
	for (i = 0; rc == 0 && i < c.n; i++) {
		snprintf(out[i], MF_URL_MAX, "%s", c.c[i].url);
		/* Each candidate carries its URL parsed, for the requests. */
		assert_string_equal(c.c[i].u.host, c.c[i].host);
	}
	if (rc == 0)
		*n = c.n;
	mf_candidates_free(&c);
	return rc;
}

/* 1 when url parses and is on ORIGIN. */
static int
is_origin(const char *url)
{
	struct hc_url u;
	int yes;

	if (hc_url_parse(url, &u, NULL) != 0)
		return 0;
	yes = mf_is_origin(&u, ORIGIN);
	hc_url_free(&u);
	return yes;
}

static void
test_rewrite_origin_url(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(rewrite(
	    "https://mirror-a.experiencenet.com/api/v1/peer/files/exp/build-42.zip?v=3",
	    "bxl1", PATTERN, out, &n, &err), 0);
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
	assert_int_equal(rewrite("https://MIRROR-A.ExperienceNet.com/b.zip", "bxl1", PATTERN, out,
	                         &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0], "https://bxl1.hydramirror.experiencenet.com/b.zip");
	assert_true(is_origin("https://MIRROR-A.experiencenet.com/x"));
	assert_false(is_origin("https://mirror-b.experiencenet.com/x"));
	assert_false(is_origin("https://mirror-a.experiencenet.com.evil/x"));
}

static void
test_no_district_means_origin_alone(void **state)
{
	char out[2][MF_URL_MAX];
	struct hc_err err;
	size_t n = 0;

	(void)state;
	assert_int_equal(rewrite("https://mirror-a.experiencenet.com/b.zip", "", PATTERN, out, &n,
	                         &err), 0);
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
	assert_int_equal(rewrite("https://cdn.example.com/mirror-a.experiencenet.com/b.zip",
	                                "bxl1", PATTERN, out, &n, &err), 0);
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
	assert_int_equal(rewrite("http://mirror-a.experiencenet.com:8080/f", "gnt2",
	                         "http://{district}.m.example:9090/", out, &n,
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
	assert_int_equal(rewrite("not a url", "bxl1", PATTERN, out, &n, &err),
	                 HC_EDATA);
	assert_int_equal(rewrite("https://mirror-a.experiencenet.com/b", "bxl1", "{district}", out,
	                         &n, &err), HC_ECONFIG);
	assert_string_equal(err.msg, "mirror.url_pattern gives 'bxl1/b', not a URL");
}

/* The district callback of test_candidates_for: counts its calls. */
static int
fixed_district(void *ctx, const char **district, struct hc_err *err)
{
	(void)err;
	(*(int *)ctx)++;
	*district = "bxl1";
	return 0;
}

/* One parse gives the candidates and their hosts; the district is asked
 * for only for origin URLs; a bad URL is a usage error naming it. */
static void
test_candidates_for(void **state)
{
	struct mf_config cfg;
	struct mf_candidates c;
	struct hc_err err = { 0, "" };
	int calls = 0;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.origin_host = ORIGIN;
	cfg.url_pattern = PATTERN;
	assert_int_equal(mf_candidates_for(&cfg, "https://mirror-a.experiencenet.com/b.zip",
	                                   fixed_district, &calls, &c, &err), 0);
	assert_int_equal(calls, 1);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.c[0].host, "bxl1.hydramirror.experiencenet.com");
	assert_string_equal(c.c[1].host, "mirror-a.experiencenet.com");
	assert_string_equal(c.c[1].u.path_query, "/b.zip");
	mf_candidates_free(&c);
	assert_int_equal(mf_candidates_for(&cfg, "http://127.0.0.1:8080/b.zip", fixed_district,
	                                   &calls, &c, &err), 0);
	assert_int_equal(calls, 1);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.c[0].host, "127.0.0.1");
	assert_int_equal(c.c[0].u.port, 8080);
	mf_candidates_free(&c);
	assert_int_equal(mf_candidates_for(&cfg, "ftp://h/x", fixed_district, &calls, &c, &err),
	                 HC_EUSAGE);
	assert_int_equal(err.status, HC_EUSAGE);
	assert_non_null(strstr(err.msg, "ftp://h/x"));
	assert_int_equal(mf_candidates_for(&cfg, "http://127.0.0.1:99999/x", fixed_district,
	                                   &calls, &c, &err), HC_EUSAGE);
	assert_int_equal(c.n, 0);
}

#define BAR_LEFT " 42.0%  3.4 MiB / 8.0 MiB  12.3 MiB/s  ETA 1s"
#define BAR_HOST "bxl1.hydramirror.experiencenet.com"

/* The bar never wraps at 80 columns: the host gives way first. */
static void
test_bar_fit(void **state)
{
	char out[MF_BAR_MAX];

	(void)state;
	mf_bar_fit(BAR_LEFT, BAR_HOST, 200, out, sizeof(out));
	assert_string_equal(out, BAR_LEFT "  " BAR_HOST);
	mf_bar_fit(BAR_LEFT, BAR_HOST, 79, out, sizeof(out));
	assert_true(strlen(out) <= 79);
	assert_memory_equal(out, BAR_LEFT "  bxl1.hydra", strlen(BAR_LEFT "  bxl1.hydra"));
	assert_string_equal(out + strlen(out) - 2, "..");
	assert_int_equal(strlen(out), 79);
	/* Too narrow for any host: the left part is cut. */
	mf_bar_fit(BAR_LEFT, BAR_HOST, 20, out, sizeof(out));
	assert_int_equal(strlen(out), 20);
	assert_memory_equal(out, BAR_LEFT, 20);
	/* No host yet: the left part alone. */
	mf_bar_fit(BAR_LEFT, "", 79, out, sizeof(out));
	assert_string_equal(out, BAR_LEFT);
	/* A width past the buffer is the buffer. */
	mf_bar_fit(BAR_LEFT, BAR_HOST, 1000, out, 16);
	assert_int_equal(strlen(out), 15);
}

/* A connection-level failure marks a host down once (the caller logs that
 * one), then the run skips it quietly; an HTTP answer marks nothing. */
static void
test_sources(void **state)
{
	struct mf_sources s;

	(void)state;
	mf_sources_init(&s);
	assert_int_equal(mf_source_skipped(&s, "bxl1.example"), 0);
	assert_int_equal(mf_source_failed(&s, "bxl1.example", HC_FAIL_HTTP_STATUS), 0);
	assert_int_equal(mf_source_skipped(&s, "bxl1.example"), 0);
	assert_int_equal(mf_source_failed(&s, "bxl1.example", HC_FAIL_CONNECT_REFUSED), 0);
	assert_int_equal(mf_source_skipped(&s, "BXL1.example"), 1);
	assert_int_equal(mf_source_failed(&s, "bxl1.example", HC_FAIL_STALL), 1);
	assert_int_equal(mf_source_skipped(&s, "origin.example"), 0);
	assert_int_equal(mf_source_skipped(NULL, "bxl1.example"), 0);
	assert_int_equal(mf_source_failed(NULL, "bxl1.example", HC_FAIL_TLS), 0);
	mf_sources_destroy(&s);
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
		cmocka_unit_test(test_candidates_for),
		cmocka_unit_test(test_bar_fit),
		cmocka_unit_test(test_sources),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
