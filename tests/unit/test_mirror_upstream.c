/* hydra-mirror upstream releases (issue 16): which member names are refused,
 * which store paths go upstream, the tools_upstream config keys, and which
 * archive URLs are read as .tar.gz. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mirror/tarsrc.h"
#include "mirror/upstream.h"

static void
refused(const char *name, const char *why)
{
	const char *got = mir_upstream_name_refused(name);

	if (got == NULL || strcmp(got, why) != 0)
		fail_msg("'%s': got '%s', want '%s'", name, got != NULL ? got : "(accepted)", why);
}

static void
test_names(void **state)
{
	(void)state;
	assert_null(mir_upstream_name_refused("src/main.py"));
	assert_null(mir_upstream_name_refused("models/"));
	assert_null(mir_upstream_name_refused("a..b/..c/d.."));
	refused("", "an empty name");
	refused("/etc/passwd", "an absolute path");
	refused("src\\main.py", "a backslash");
	refused("C:evil", "a drive letter");
	refused("../escape", "a '..' segment");
	refused("a/../../escape", "a '..' segment");
	refused("a/..", "a '..' segment");
}

static void
test_routes(void **state)
{
	(void)state;
	assert_int_equal(mir_upstream_handles("tools/demo/1.0/files/src/main.py"), 1);
	assert_int_equal(mir_upstream_handles("tools/demo/1.0/manifest.json"), 1);
	assert_int_equal(mir_upstream_handles("tools/demo/1.0/files/"), 0);
	assert_int_equal(mir_upstream_handles("tools/demo/1.0/other"), 0);
	assert_int_equal(mir_upstream_handles("tools/de mo/1.0/manifest.json"), 0);
	assert_int_equal(mir_upstream_handles("tools/demo/../manifest.json"), 0);
	assert_int_equal(mir_upstream_handles("builds/demo/1.0/manifest.json"), 0);
	assert_int_equal(mir_upstream_is_import("tools/demo/1.0/import"), 1);
	assert_int_equal(mir_upstream_is_import("tools/demo/1.0/files/import"), 0);
	assert_int_equal(mir_upstream_is_import("tools/demo/import"), 0);
}

static int
load(struct mir_config *cfg, const char *text, struct hc_err *err)
{
	assert_int_equal(mir_config_defaults(cfg, err), 0);
	return hc_cfg_load_buffer(mir_config_schema, cfg, "mirror.yaml", text, strlen(text), err);
}

static void
test_config(void **state)
{
	struct hc_err err = { 0, "" };
	struct mir_config cfg;

	(void)state;
	assert_int_equal(load(&cfg, "root: /x\n", &err), 0);
	assert_true(cfg.tools_upstream.archive_url == NULL || *cfg.tools_upstream.archive_url == '\0');
	assert_int_equal(cfg.tools_upstream.max_archive_bytes, 64ULL << 30);
	assert_int_equal(cfg.tools_upstream.import, 0);
	mir_config_free(&cfg);
	assert_int_equal(load(&cfg, "tools_upstream:\n"
	                      "  archive_url: \"https://h.example/{tool_id}-{version}.zip\"\n"
	                      "  max_archive_bytes: 2G\n  import: on_request_only\n", &err), 0);
	assert_string_equal(cfg.tools_upstream.archive_url, "https://h.example/{tool_id}-{version}.zip");
	assert_int_equal(cfg.tools_upstream.max_archive_bytes, 2ULL << 30);
	assert_int_equal(cfg.tools_upstream.import, 1);
	mir_config_free(&cfg);
	assert_int_equal(load(&cfg, "tools_upstream:\n  import: sometimes\n", &err), HC_ECONFIG);
	assert_non_null(strstr(err.msg, "mirror.yaml:2:11"));
	mir_config_free(&cfg);
	assert_int_equal(load(&cfg, "tools_upstream:\n  archive_url: \"ftp://x/a.zip\"\n", &err),
	                 HC_ECONFIG);
	mir_config_free(&cfg);
	assert_int_equal(load(&cfg, "tools_upstream:\n  max_archive_bytes: 0\n", &err), HC_ECONFIG);
	mir_config_free(&cfg);
}

/* The archive type comes from the URL's path suffix, not its query. */
static void
test_tar_suffix(void **state)
{
	(void)state;
	assert_int_equal(mir_tarsrc_is_tar("https://h/r/demo-1.0.tar.gz"), 1);
	assert_int_equal(mir_tarsrc_is_tar("https://h/r/demo-1.0.tgz?sig=abc"), 1);
	assert_int_equal(mir_tarsrc_is_tar("https://h/r/demo-1.0.zip"), 0);
	assert_int_equal(mir_tarsrc_is_tar("https://h/r/demo.zip?name=x.tar.gz"), 0);
	assert_int_equal(mir_tarsrc_is_tar("https://h/r/demo.tar"), 0);
	assert_int_equal(mir_tarsrc_is_tar("gz"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_tar_suffix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
