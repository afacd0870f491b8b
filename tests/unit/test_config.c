/* The strict config loader: defaults, every error kind with its exact
 * file:line:col, and the agent schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "agent/agent.h"

static int
load(struct ag_config *cfg, const char *text, struct hc_err *err)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	rc = hc_cfg_defaults(ag_config_schema, cfg, err);
	assert_int_equal(rc, 0);
	return hc_cfg_load_buffer(ag_config_schema, cfg, "agent.yaml", text,
	                          strlen(text), err);
}

static void
expect_error(const char *text, const char *want)
{
	struct ag_config cfg;
	struct hc_err err = { 0, "" };
	int rc = load(&cfg, text, &err);

	assert_int_equal(rc, HC_ECONFIG);
	assert_string_equal(err.msg, want);
	ag_config_free(&cfg);
}

static void
test_defaults(void **state)
{
	struct ag_config cfg;
	struct hc_err err = { 0, "" };

	(void)state;
	assert_int_equal(load(&cfg, "", &err), 0);
	assert_string_equal(cfg.state_dir, "/var/lib/hydra-agent");
	assert_string_equal(cfg.mirror.origin_host, "mirror-a.experiencenet.com");
	assert_string_equal(cfg.mirror.url_pattern,
	                    "https://{district}.hydramirror.experiencenet.com");
	assert_int_equal(cfg.mirror.head_timeout_ms, 2000);
	assert_int_equal(cfg.mirror.stall.bytes_per_s, 65536);
	assert_int_equal(cfg.mirror.stall.seconds, 10);
	assert_int_equal(cfg.dns.timeout_ms, 1000);
	assert_int_equal(cfg.dns.servers.n, 0);
	assert_int_equal(cfg.discovery.port, 47990);
	assert_int_equal(cfg.discovery.mode, AG_MODE_SEQUENTIAL);
	assert_string_equal(cfg.tls.ca_file, "");
	ag_config_free(&cfg);
}

static void
test_valid_file(void **state)
{
	struct ag_config cfg;
	struct hc_err err = { 0, "" };
	const char *text =
		"node_id: node-74adf4f8\n"
		"tls: {ca_file: /etc/ca.pem}\n"
		"dns: {servers: [\"127.0.0.1:5353\", \"[::1]:53\"], timeout_ms: 250}\n"
		"district:\n"
		"  static: bxl1\n"
		"mirror:\n"
		"  stall: {bytes_per_s: 1M, seconds: 3}\n"
		"discovery:\n"
		"  mode: parallel\n"
		"  port: 1234\n";

	(void)state;
	assert_int_equal(load(&cfg, text, &err), 0);
	assert_string_equal(cfg.node_id, "node-74adf4f8");
	assert_string_equal(cfg.tls.ca_file, "/etc/ca.pem");
	assert_int_equal(cfg.dns.servers.n, 2);
	assert_string_equal(cfg.dns.servers.items[1], "[::1]:53");
	assert_int_equal(cfg.dns.timeout_ms, 250);
	assert_string_equal(cfg.district.static_district, "bxl1");
	assert_int_equal(cfg.mirror.stall.bytes_per_s, 1048576);
	assert_int_equal(cfg.mirror.stall.seconds, 3);
	assert_int_equal(cfg.discovery.mode, AG_MODE_PARALLEL);
	assert_int_equal(cfg.discovery.port, 1234);
	/* Untouched keys keep their defaults. */
	assert_int_equal(cfg.mirror.head_timeout_ms, 2000);
	{
		char *servers = ag_config_dns_servers(&cfg);
		assert_non_null(servers);
		assert_string_equal(servers, "127.0.0.1:5353,[::1]:53");
		free(servers);
	}
	ag_config_free(&cfg);
}

static void
test_unknown_key(void **state)
{
	(void)state;
	expect_error("node_id: a\nmirrr: 1\n", "agent.yaml:2:1: unknown key 'mirrr'");
	expect_error("mirror:\n  origin_host: x\n  stal: {}\n",
	             "agent.yaml:3:3: unknown key 'stal' in mirror");
}

static void
test_wrong_type(void **state)
{
	(void)state;
	expect_error("mirror:\n  head_timeout_ms: abc\n",
	             "agent.yaml:2:20: mirror.head_timeout_ms: expected an integer, got 'abc'");
	expect_error("mirror:\n  head_timeout_ms: \"5\"\n",
	             "agent.yaml:2:20: mirror.head_timeout_ms: expected an integer, got a quoted string");
	expect_error("dns: {servers: 5}\n",
	             "agent.yaml:1:16: dns.servers: expected a list of strings");
	expect_error("tls: 3\n", "agent.yaml:1:6: tls: expected a mapping");
	expect_error("node_id: [a]\n",
	             "agent.yaml:1:10: node_id: expected a string, got a list");
}

static void
test_out_of_range(void **state)
{
	(void)state;
	expect_error("discovery:\n  port: 70000\n",
	             "agent.yaml:2:9: discovery.port: 70000 is out of range [1, 65535]");
	expect_error("discovery:\n  mode: random\n",
	             "agent.yaml:2:9: discovery.mode: 'random' is not one of: sequential parallel");
	expect_error("district: {static: \"bxl 1\"}\n",
	             "agent.yaml:1:20: district.static: 'bxl 1' is not a DNS label (letters, digits, '-')");
	expect_error("dns: {servers: [\"nowhere\"]}\n",
	             "agent.yaml:1:17: dns.servers: item 0: 'nowhere' is not an address such as "
	             "127.0.0.1, 127.0.0.1:5353 or [::1]:53");
}

static void
test_malformed(void **state)
{
	(void)state;
	expect_error("mirror: [\n",
	             "agent.yaml:2:1: YAML syntax error: did not find expected node content "
	             "while parsing a flow node");
	expect_error("node_id: a\nnode_id: b\n", "agent.yaml:2:1: duplicate key 'node_id'");
}

/* A document of depth levels: "node_id: " then depth '[' and as many ']'. */
static char *
nested(size_t depth)
{
	static const char head[] = "node_id: ";
	size_t n = sizeof(head) - 1;
	char *text = malloc(n + 2 * depth + 2);

	assert_non_null(text);
	memcpy(text, head, n);
	memset(text + n, '[', depth);
	memset(text + n + depth, ']', depth);
	text[n + 2 * depth] = '\n';
	text[n + 2 * depth + 1] = '\0';
	return text;
}

/* Issue 19 item 12: libyaml builds a document in time quadratic in its
 * depth (100,000 levels took minutes); the loader refuses the 17th level
 * before building anything, so this takes milliseconds, even under
 * valgrind. */
static void
test_deep_nesting(void **state)
{
	struct ag_config cfg;
	struct hc_err err = { 0, "" };
	struct timespec t0, t1;
	char *text = nested(100000);
	double s;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(load(&cfg, text, &err), HC_ECONFIG);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_string_equal(err.msg, "agent.yaml:1:25: nested more than 16 levels deep");
	s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* Fixed: well under 0.5 s under valgrind; before: minutes. The root mapping is the first level. */
	assert_true(s < 10.0);
	ag_config_free(&cfg);
	free(text);
	/* Mappings count as well, deep inside a known key. */
	expect_error("mirror: {stall: {seconds: {a: {a: {a: {a: {a: {a: {a: {a: {a: {a: "
	             "{a: {a: {a: {a: 1}}}}}}}}}}}}}}}}\n",
	             "agent.yaml:1:79: nested more than 16 levels deep");
	/* 16 levels is not refused for its depth: the schema says what is wrong. */
	text = nested(15);
	expect_error(text, "agent.yaml:1:10: node_id: expected a string, got a list");
	free(text);
}

/* A buffer larger than a config file may be is refused before parsing. */
static void
test_too_large(void **state)
{
	size_t len = 4 * 1024 * 1024 + 1;
	char *text = malloc(len + 1);
	char want[128];

	(void)state;
	assert_non_null(text);
	memset(text, ' ', len);
	text[len] = '\0';
	snprintf(want, sizeof(want), "agent.yaml:1:1: %zu bytes, more than the %d a config may hold",
	         len, 4 * 1024 * 1024);
	expect_error(text, want);
	free(text);
}

/* A schema with a list of mappings, where an alias is worth several values. */
struct pair { char *a, *b; };
struct pairs { struct hc_cfg_seq items; };
static const struct hc_cfg_field pair_schema[] = {
	{ .key = "a", .type = HC_CFG_STRING, .offset = offsetof(struct pair, a) },
	{ .key = "b", .type = HC_CFG_STRING, .offset = offsetof(struct pair, b) },
	{ .key = NULL },
};
static const struct hc_cfg_field pairs_schema[] = {
	{ .key = "items", .type = HC_CFG_SEQ, .offset = offsetof(struct pairs, items),
	  .children = pair_schema, .elem_size = sizeof(struct pair) },
	{ .key = NULL },
};

/* Each use of an alias is visited again: 130,000 uses of a mapping of two
 * strings are 260,000 values, past the bound, refused with a message. */
static void
test_alias_amplification(void **state)
{
	static const char head[] = "items:\n- &x {a: 1, b: 2}\n";
	size_t n = 130000, len = sizeof(head) - 1 + n * 5;
	char *text = malloc(len + 1), *p;
	struct pairs doc;
	struct hc_err err = { 0, "" };
	size_t i;

	(void)state;
	assert_non_null(text);
	memcpy(text, head, sizeof(head) - 1);
	p = text + sizeof(head) - 1;
	for (i = 0; i < n; i++, p += 5)
		memcpy(p, "- *x\n", 5);
	*p = '\0';
	memset(&doc, 0, sizeof(doc));
	assert_int_equal(hc_cfg_load_buffer(pairs_schema, &doc, "pairs.yaml", text, len, &err),
	                 HC_ECONFIG);
	assert_non_null(strstr(err.msg, ": more than 250000 values in the document"));
	assert_int_equal(doc.items.n, 0);
	hc_cfg_free(pairs_schema, &doc);
	free(text);
}

static void
test_missing_file(void **state)
{
	struct ag_config cfg;
	struct hc_err err = { 0, "" };

	(void)state;
	assert_int_equal(ag_config_load(&cfg, "/nonexistent/agent.yaml", 1, &err), HC_ENOINPUT);
	assert_string_equal(err.msg, "--config /nonexistent/agent.yaml: No such file or directory");
	/* Not named by the user: the defaults stand. */
	assert_int_equal(ag_config_load(&cfg, "/nonexistent/agent.yaml", 0, &err), 0);
	assert_int_equal(cfg.discovery.port, 47990);
	ag_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_valid_file),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_alias_amplification),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
