/* hydra-mirror single byte ranges (RFC 9110 section 14) and its config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mirror/mirror.h"

static void
expect(const char *value, uint64_t size, enum mir_range want, uint64_t wstart,
       uint64_t wlen)
{
	uint64_t start = 12345, len = 12345;
	enum mir_range got = mir_range_parse(value, size, &start, &len);

	if (got != want)
		fail_msg("'%s' of %llu: got %d, want %d", value ? value : "(null)",
		         (unsigned long long)size, got, want);
	if (want == MIR_RANGE_PARTIAL && (start != wstart || len != wlen))
		fail_msg("'%s' of %llu: got %llu+%llu, want %llu+%llu", value,
		         (unsigned long long)size, (unsigned long long)start,
		         (unsigned long long)len, (unsigned long long)wstart,
		         (unsigned long long)wlen);
}

static void
test_partial(void **state)
{
	(void)state;
	expect("bytes=0-0", 100, MIR_RANGE_PARTIAL, 0, 1);
	expect("bytes=0-99", 100, MIR_RANGE_PARTIAL, 0, 100);
	expect("bytes=10-19", 100, MIR_RANGE_PARTIAL, 10, 10);
	expect("bytes=90-", 100, MIR_RANGE_PARTIAL, 90, 10);
	expect("bytes=90-1000", 100, MIR_RANGE_PARTIAL, 90, 10);
	expect("bytes=-10", 100, MIR_RANGE_PARTIAL, 90, 10);
	expect("bytes=-1000", 100, MIR_RANGE_PARTIAL, 0, 100);
	expect("bytes = 5-6 ", 100, MIR_RANGE_PARTIAL, 5, 2);
	expect("bytes=5 - 6", 100, MIR_RANGE_FULL, 0, 0);
	expect("BYTES=1-2", 100, MIR_RANGE_PARTIAL, 1, 2);
	expect("bytes=99-99", 100, MIR_RANGE_PARTIAL, 99, 1);
	expect("bytes=0-18446744073709551615", 100, MIR_RANGE_PARTIAL, 0, 100);
}

static void
test_unsatisfiable(void **state)
{
	(void)state;
	expect("bytes=100-", 100, MIR_RANGE_UNSATISFIABLE, 0, 0);
	expect("bytes=100-200", 100, MIR_RANGE_UNSATISFIABLE, 0, 0);
	expect("bytes=-0", 100, MIR_RANGE_UNSATISFIABLE, 0, 0);
	expect("bytes=0-", 0, MIR_RANGE_UNSATISFIABLE, 0, 0);
	expect("bytes=-5", 0, MIR_RANGE_UNSATISFIABLE, 0, 0);
}

static void
test_ignored(void **state)
{
	(void)state;
	expect(NULL, 100, MIR_RANGE_FULL, 0, 0);
	expect("", 100, MIR_RANGE_FULL, 0, 0);
	expect("items=0-1", 100, MIR_RANGE_FULL, 0, 0);
	expect("bytes=0-1,5-6", 100, MIR_RANGE_FULL, 0, 0);
	expect("bytes=5-1", 100, MIR_RANGE_FULL, 0, 0);
	expect("bytes=a-b", 100, MIR_RANGE_FULL, 0, 0);
	expect("bytes=-", 100, MIR_RANGE_FULL, 0, 0);
	expect("bytes=1-2x", 100, MIR_RANGE_FULL, 0, 0);
	expect("bytes=99999999999999999999-", 100, MIR_RANGE_FULL, 0, 0);
	expect("bytes=--5", 100, MIR_RANGE_FULL, 0, 0);
}

static int
load(struct mir_config *cfg, const char *text, struct hc_err *err)
{
	assert_int_equal(mir_config_defaults(cfg, err), 0);
	return hc_cfg_load_buffer(mir_config_schema, cfg, "mirror.yaml", text,
	                          strlen(text), err);
}

static void
test_config(void **state)
{
	struct mir_config cfg;
	struct hc_err err = { 0, "" };
	const char *text =
		"listen: \"[::1]:9000\"\n"
		"root: /srv/mirror\n"
		"mode: peer\n"
		"origin_url: https://mirror-a.experiencenet.com\n"
		"district: bxl1\n"
		"max_bytes: 10G\n"
		"tls: {cert: /c.pem, key: /k.pem}\n"
		"max_egress_bytes_per_s: 100M\n";

	(void)state;
	assert_int_equal(load(&cfg, text, &err), 0);
	assert_string_equal(cfg.listen, "[::1]:9000");
	assert_int_equal(cfg.mode, MIR_MODE_PEER);
	assert_true(cfg.max_bytes == 10ULL << 30);
	assert_true(cfg.max_egress_bytes_per_s == 100ULL << 20);
	assert_string_equal(cfg.tls.key, "/k.pem");
	assert_int_equal(cfg.connection_timeout_s, 60);
	assert_int_equal(mir_config_check(&cfg, &err), 0);
	mir_config_free(&cfg);

	assert_int_equal(load(&cfg, "mode: peer\n", &err), 0);
	assert_int_equal(mir_config_check(&cfg, &err), HC_ECONFIG);
	assert_string_equal(err.msg, "origin_url: required in peer mode");
	mir_config_free(&cfg);

	assert_int_equal(load(&cfg, "tls: {cert: /c.pem}\n", &err), 0);
	assert_int_equal(mir_config_check(&cfg, &err), HC_ECONFIG);
	mir_config_free(&cfg);

	assert_int_equal(load(&cfg, "listen: nowhere\n", &err), HC_ECONFIG);
	assert_non_null(strstr(err.msg, "mirror.yaml:1:9"));
	mir_config_free(&cfg);

	assert_int_equal(load(&cfg, "mode: cache\n", &err), HC_ECONFIG);
	mir_config_free(&cfg);
	assert_int_equal(load(&cfg, "district: \"b x\"\n", &err), HC_ECONFIG);
	mir_config_free(&cfg);
	assert_int_equal(load(&cfg, "max_bytes: lots\n", &err), HC_ECONFIG);
	mir_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_unsatisfiable),
		cmocka_unit_test(test_ignored),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
