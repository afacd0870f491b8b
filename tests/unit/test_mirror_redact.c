/*
 * mir_url_redact: the userinfo of an origin_url never shows, whatever the
 * URL looks like, and nothing else of it changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mirror/mirror.h"

static void
check(const char *url, const char *want)
{
	char out[MIR_URL_SHOWN_MAX];

	mir_url_redact(url, out, sizeof(out));
	assert_string_equal(out, want);
}

static void
test_redact_userinfo(void **state)
{
	(void)state;
	check("http://user:pw@host:8080/", "http://***@host:8080/");
	check("https://token@mirror-a.example/base", "https://***@mirror-a.example/base");
	/* A password holding '@' (unencoded): everything up to the last one goes. */
	check("http://u:p@ss@host/", "http://***@host/");
}

static void
test_redact_leaves_the_rest(void **state)
{
	(void)state;
	check("http://host:8080/", "http://host:8080/");
	check("http://host/a@b", "http://host/a@b");       /* '@' in the path */
	check("http://host?x=a@b", "http://host?x=a@b");   /* and in the query */
	check("", "");
}

static void
test_redact_too_long(void **state)
{
	char url[MIR_URL_SHOWN_MAX + 16], out[32];

	(void)state;
	memset(url, 'a', sizeof(url) - 1);
	url[sizeof(url) - 1] = '\0';
	memcpy(url, "http://u:p@", 11);
	mir_url_redact(url, out, sizeof(out));
	assert_string_equal(out, "");   /* cut, never half a secret */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact_userinfo),
		cmocka_unit_test(test_redact_leaves_the_rest),
		cmocka_unit_test(test_redact_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
