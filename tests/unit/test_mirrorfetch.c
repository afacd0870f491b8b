/* mirrorfetch: the seed's rewrite rule and origin matching, extra sources,
 * the progress line's fitting, the sources a run found down and their
 * balancing. */
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

/* Extra sources go between the district and the origin, in order, with
 * the URL's path and query; only for origin URLs. */
static void
candidates_extra_sources(struct mf_config cfg)
{
	static const char *const extra[] = { "http://s1.example:8081/", "https://s2.example" };
	struct mf_candidates c;
	struct hc_err err = { 0, "" };
	int calls = 0;

	cfg.extra_sources = extra;
	cfg.n_extra_sources = 2;
	assert_int_equal(mf_candidates_for(&cfg, "https://mirror-a.experiencenet.com/t/b.zip?x=1",
	                                   fixed_district, &calls, &c, &err), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.c[0].host, "bxl1.hydramirror.experiencenet.com");
	assert_int_equal(c.c[0].extra, 0);
	assert_string_equal(c.c[1].url, "http://s1.example:8081/t/b.zip?x=1");
	assert_int_equal(c.c[1].u.port, 8081);
	assert_int_equal(c.c[1].extra, 1);
	assert_string_equal(c.c[2].url, "https://s2.example/t/b.zip?x=1");
	assert_string_equal(c.c[2].host, "s2.example");
	assert_string_equal(c.c[3].url, "https://mirror-a.experiencenet.com/t/b.zip?x=1");
	assert_string_equal(c.c[3].u.path_query, "/t/b.zip?x=1");
	mf_candidates_free(&c);
	assert_int_equal(mf_candidates_for(&cfg, "http://other.example/b.zip", fixed_district,
	                                   &calls, &c, &err), 0);
	assert_int_equal(c.n, 1);
	mf_candidates_free(&c);
}

/* A base URL is scheme, host and port: a path, query or other scheme is
 * refused with the value named. */
static void
test_source_check(void **state)
{
	char why[HC_ERR_MAX];

	(void)state;
	assert_int_equal(mf_source_check("http://s1.example", why, sizeof(why)), 0);
	assert_int_equal(mf_source_check("https://s1.example:8443/", why, sizeof(why)), 0);
	assert_int_equal(mf_source_check("http://[::1]:80", why, sizeof(why)), 0);
	assert_int_equal(mf_source_check("http://s1.example/x", why, sizeof(why)), HC_ECONFIG);
	assert_non_null(strstr(why, "http://s1.example/x"));
	assert_int_equal(mf_source_check("http://s1.example/?a", why, sizeof(why)), HC_ECONFIG);
	assert_int_equal(mf_source_check("http://s1.example?a", why, sizeof(why)), HC_ECONFIG);
	assert_int_equal(mf_source_check("ftp://s1.example", why, sizeof(why)), HC_ECONFIG);
	assert_int_equal(mf_source_check("", why, sizeof(why)), HC_ECONFIG);
	assert_int_equal(mf_source_check("s1.example", why, sizeof(why)), HC_ECONFIG);
}

/* Candidates a, b, c and the origin o, by host only. */
static void
order_fill(struct mf_candidates *c)
{
	static const char *const hosts[] = { "a", "b", "c", "o" };
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < 4; i++) {
		snprintf(c->c[i].host, sizeof(c->c[i].host), "%s", hosts[i]);
		c->c[i].u.port = 80;
	}
	c->n = 4;
}

static void
order_expect(struct mf_sources *s, uint64_t size, const char *want)
{
	struct mf_candidates c;
	char got[8];
	size_t i;

	order_fill(&c);
	mf_sources_order(s, &c, size);
	for (i = 0; i < c.n; i++)
		got[i] = c.c[i].host[0];
	got[c.n] = '\0';
	assert_string_equal(got, want);
}

/* Least outstanding bytes over throughput first, ties in configured order,
 * hosts in back-off last among the mirrors, the origin always last. */
static void
test_sources_order(void **state)
{
	struct mf_sources s;

	(void)state;
	mf_sources_init(&s);
	order_expect(&s, 100, "abco");
	order_expect(NULL, 100, "abco");
	mf_source_assign(&s, "a", 80, 100, 1);
	order_expect(&s, 100, "bcao");
	mf_source_assign(&s, "b", 80, 100, 1);
	mf_source_assign(&s, "c", 80, 50, 1);
	order_expect(&s, 100, "cabo");
	/* b is measured four times faster than a: its queue empties first. */
	mf_source_measured(&s, "a", 80, 1000, 1);
	order_expect(&s, 100, "cabo");
	mf_source_measured(&s, "a", 80, MF_SOURCE_RATE_MIN_BYTES, 100);
	mf_source_measured(&s, "b", 80, 4 * MF_SOURCE_RATE_MIN_BYTES, 100);
	mf_source_assign(&s, "c", 80, 20 * MF_SOURCE_RATE_MIN_BYTES, 1);
	order_expect(&s, 100, "baco");
	mf_source_assign(&s, "b", 80, 100, 0);
	mf_source_assign(&s, "b", 80, 1000, 0);
	order_expect(&s, 100, "baco");
	assert_int_equal(mf_source_failed(&s, "b", 80, HC_FAIL_CONNECT_REFUSED), 0);
	order_expect(&s, 100, "acbo");
	/* Another port on b's host is another source, not in back-off. */
	assert_int_equal(mf_source_skipped(&s, "b", 8080), 0);
	mf_sources_destroy(&s);
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
	candidates_extra_sources(cfg);
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
	assert_int_equal(mf_source_skipped(&s, "bxl1.example", 80), 0);
	assert_int_equal(mf_source_failed(&s, "bxl1.example", 80, HC_FAIL_HTTP_STATUS), 0);
	assert_int_equal(mf_source_skipped(&s, "bxl1.example", 80), 0);
	assert_int_equal(mf_source_failed(&s, "bxl1.example", 80, HC_FAIL_CONNECT_REFUSED), 0);
	assert_int_equal(mf_source_skipped(&s, "BXL1.example", 80), 1);
	assert_int_equal(mf_source_failed(&s, "bxl1.example", 80, HC_FAIL_STALL), 1);
	assert_int_equal(mf_source_skipped(&s, "origin.example", 80), 0);
	assert_int_equal(mf_source_skipped(NULL, "bxl1.example", 80), 0);
	assert_int_equal(mf_source_failed(NULL, "bxl1.example", 80, HC_FAIL_TLS), 0);
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
		cmocka_unit_test(test_source_check),
		cmocka_unit_test(test_sources_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
