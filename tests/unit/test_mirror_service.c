/*
 * The service side of hydra-mirror (issue 13) that needs no server: access
 * log lines in nginx's combined format, escaped so that a request cannot
 * forge a field or a line; the ACME token charset; the config keys a reload
 * refuses to change; the new config keys and their limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mirror/access.h"
#include "mirror/acme.h"

static void
test_access_line(void **state)
{
	char line[MIR_ACCESS_LINE_MAX];
	struct mir_access_rec r = {
		.addr = "127.0.0.1", .epoch_s = 1796225000, .method = "GET",
		.uri = "/api/v1/peer/files/b/x.bin", .version = "HTTP/1.1", .status = 206,
		.bytes = 1000, .referer = NULL, .agent = "hydra-agent/0.1.0",
		.seconds = 0.0125, .outcome = "hit",
	};
	size_t n;

	(void)state;
	n = mir_access_format(line, sizeof(line), &r);
	assert_int_equal(n, strlen(line));
	assert_string_equal(line, "127.0.0.1 - - [02/Dec/2026:15:23:20 +0000] "
	                    "\"GET /api/v1/peer/files/b/x.bin HTTP/1.1\" 206 1000 \"-\" "
	                    "\"hydra-agent/0.1.0\" 0.013 hit\n");
}

static void
test_access_escapes(void **state)
{
	char line[MIR_ACCESS_LINE_MAX];
	struct mir_access_rec r = {
		.addr = "::1", .epoch_s = 0, .method = "GET", .uri = "/a\"b\\c",
		.version = "HTTP/1.0", .status = 400, .bytes = 0, .referer = "x\ny",
		.agent = "\"evil\" 200", .seconds = 0, .outcome = "bypass",
	};

	(void)state;
	mir_access_format(line, sizeof(line), &r);
	assert_non_null(strstr(line, "\"GET /a\\x22b\\x5Cc HTTP/1.0\""));
	assert_non_null(strstr(line, "\"x\\x0Ay\""));
	assert_non_null(strstr(line, "\"\\x22evil\\x22 200\""));
	/* One line: the only newline ends it. */
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

static void
test_access_long_fields_cut(void **state)
{
	static char uri[20000], line[MIR_ACCESS_LINE_MAX];
	struct mir_access_rec r = {
		.addr = "127.0.0.1", .method = "GET", .uri = uri, .version = "HTTP/1.1",
		.status = 414, .outcome = "bypass",
	};
	size_t n;

	(void)state;
	memset(uri, '"', sizeof(uri) - 1);
	n = mir_access_format(line, sizeof(line), &r);
	assert_true(n < sizeof(line));
	assert_int_equal(line[n - 1], '\n');
	assert_non_null(strstr(line, "\\x22... HTTP/1.1\""));
	assert_non_null(strstr(line, "\" 414 0 \"-\" \"-\" 0.000 bypass\n"));
}

static void
test_acme_tokens(void **state)
{
	char big[MIR_ACME_TOKEN_MAX + 2];

	(void)state;
	assert_true(mir_acme_token_valid("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
	assert_true(mir_acme_token_valid("a-b_c"));
	assert_false(mir_acme_token_valid(""));
	assert_false(mir_acme_token_valid(".."));
	assert_false(mir_acme_token_valid("a/b"));
	assert_false(mir_acme_token_valid("a.b"));
	assert_false(mir_acme_token_valid("a%2fb"));
	assert_false(mir_acme_token_valid("a b"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(mir_acme_token_valid(big));
	big[MIR_ACME_TOKEN_MAX] = '\0';
	assert_true(mir_acme_token_valid(big));
}

static void
load(struct mir_config *cfg, const char *yaml)
{
	struct hc_err err = { 0, "" };

	assert_int_equal(mir_config_defaults(cfg, &err), 0);
	assert_int_equal(hc_cfg_load_buffer(mir_config_schema, cfg, "t.yaml", yaml,
	                                    strlen(yaml), &err), 0);
}

static void
test_restart_keys(void **state)
{
	struct mir_config a, b;
	char what[256];

	(void)state;
	load(&a, "listen: 127.0.0.1:1\nroot: /r\nmax_bytes: 1G\n");
	load(&b, "listen: 127.0.0.1:1\nroot: /r\nmax_bytes: 2G\nlog_level: debug\n"
	         "access_log: /x\nmax_egress_bytes_per_s: 5M\n");
	assert_int_equal(mir_config_restart_keys(&a, &b, what, sizeof(what)), 0);
	mir_config_free(&b);
	load(&b, "listen: 127.0.0.1:2\nroot: /r\nmode: peer\n");
	assert_int_equal(mir_config_restart_keys(&a, &b, what, sizeof(what)), HC_ECONFIG);
	assert_string_equal(what, "listen mode need a restart");
	mir_config_free(&b);
	load(&b, "listen: 127.0.0.1:1\nroot: /other\n");
	assert_int_equal(mir_config_restart_keys(&a, &b, what, sizeof(what)), HC_ECONFIG);
	assert_string_equal(what, "root needs a restart");
	mir_config_free(&b);
	mir_config_free(&a);
}

static void
test_new_keys(void **state)
{
	struct mir_config cfg;
	struct hc_err err = { 0, "" };
	const char *bad = "root: /r\nshutdown_grace_s: 99999\n";

	(void)state;
	load(&cfg, "root: /r\nacme:\n  listen: 127.0.0.1:80\n  webroot: /w\n"
	           "access_log: \"-\"\n");
	assert_int_equal(cfg.shutdown_grace_s, 30);
	assert_string_equal(cfg.acme.listen, "127.0.0.1:80");
	assert_string_equal(cfg.access_log, "-");
	assert_int_equal(mir_config_check(&cfg, &err), 0);
	mir_config_free(&cfg);
	load(&cfg, "root: /r\nacme:\n  listen: 127.0.0.1:80\n");
	assert_int_equal(mir_config_check(&cfg, &err), HC_ECONFIG);
	assert_string_equal(err.msg, "acme.listen: needs acme.webroot");
	mir_config_free(&cfg);
	assert_int_equal(mir_config_defaults(&cfg, &err), 0);
	assert_int_equal(hc_cfg_load_buffer(mir_config_schema, &cfg, "t.yaml", bad, strlen(bad),
	                                    &err), HC_ECONFIG);
	assert_non_null(strstr(err.msg, "t.yaml:2:"));
	mir_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_access_line),
		cmocka_unit_test(test_access_escapes),
		cmocka_unit_test(test_access_long_fields_cut),
		cmocka_unit_test(test_acme_tokens),
		cmocka_unit_test(test_restart_keys),
		cmocka_unit_test(test_new_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
