/* common/: log line format, the journal stream test, URL parsing, failure
 * classification, atomic writes, SHA-256 and Repr-Digest, JSON field errors,
 * number parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hc.h"

static size_t
format_line(char *buf, size_t size, int64_t ms, enum hc_log_level level,
            const char *module, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = hc_log_format(buf, size, ms, level, module, fmt, ap);
	va_end(ap);
	return n;
}

static void
test_log_format(void **state)
{
	char buf[HC_LOG_LINE_MAX];
	/* 2026-11-22T18:32:00.123Z */
	int64_t ms = 1795372320123LL;
	size_t n;

	(void)state;
	n = format_line(buf, sizeof(buf), ms, HC_LOG_INFO, "discovery",
	                "routing via LAN: %s", "127.11.0.24");
	assert_string_equal(buf,
	    "2026-11-22T18:32:00.123Z INFO discovery: routing via LAN: 127.11.0.24\n");
	assert_int_equal(n, strlen(buf));
	format_line(buf, sizeof(buf), ms - 123, HC_LOG_WARN, "mirrorfetch", "x");
	assert_string_equal(buf, "2026-11-22T18:32:00.000Z WARN mirrorfetch: x\n");
	/* An embedded newline cannot forge a second line. */
	format_line(buf, sizeof(buf), ms, HC_LOG_ERROR, "agent", "a\nb");
	assert_string_equal(buf, "2026-11-22T18:32:00.123Z ERROR agent: a b\n");
}

static void
test_log_truncation(void **state)
{
	char buf[48];
	size_t n;

	(void)state;
	n = format_line(buf, sizeof(buf), 0, HC_LOG_INFO, "m",
	                "%s", "a very long message that cannot fit in the buffer");
	assert_int_equal(n, sizeof(buf) - 1);
	assert_int_equal(buf[n - 1], '\n');
	assert_memory_equal(buf + n - 4, "...", 3);
	assert_int_equal(strncmp(buf, "1970-01-01T00:00:00.000Z INFO m: a very", 39), 0);
}

static void
test_log_levels(void **state)
{
	enum hc_log_level l;

	(void)state;
	assert_int_equal(hc_log_level_parse("debug", &l), 0);
	assert_int_equal(l, HC_LOG_DEBUG);
	assert_int_equal(hc_log_level_parse("ERROR", &l), 0);
	assert_int_equal(l, HC_LOG_ERROR);
	assert_int_equal(hc_log_level_parse("verbose", &l), HC_EDATA);
}

static void
test_log_file_append(void **state)
{
	char path[] = "/tmp/hc-log-test.XXXXXX";
	char *text = NULL;
	size_t len = 0;
	struct hc_err err;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "old\n", 4), 4);
	close(fd);
	assert_int_equal(hc_log_open(path, HC_LOG_INFO, 0, &err), 0);
	hc_log(HC_LOG_DEBUG, "agent", "hidden");
	hc_log(HC_LOG_INFO, "agent", "shown %d", 42);
	hc_log_close();
	assert_int_equal(hc_read_file(path, 4096, &text, &len, &err), 0);
	assert_int_equal(strncmp(text, "old\n", 4), 0);
	assert_non_null(strstr(text, " INFO agent: shown 42\n"));
	assert_null(strstr(text, "hidden"));
	free(text);
	unlink(path);
}

/* The line hc_log writes to stderr (a temp file) when JOURNAL_STREAM is
 * fmt filled with that file's device and inode; caller frees. */
static char *
log_line_with_journal_stream(const char *fmt)
{
	char path[] = "/tmp/hc-log-journal.XXXXXX", value[96];
	char *text = NULL;
	size_t len = 0;
	struct hc_err err;
	struct stat st;
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(snprintf(value, sizeof(value), fmt, (unsigned long long)st.st_dev,
	                     (unsigned long long)st.st_ino) < (int)sizeof(value));
	assert_int_equal(setenv("JOURNAL_STREAM", value, 1), 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	assert_int_equal(hc_log_open(NULL, HC_LOG_INFO, 1, &err), 0);
	hc_log(HC_LOG_INFO, "agent", "hello");
	hc_log_close();
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(fd);
	unsetenv("JOURNAL_STREAM");
	assert_int_equal(hc_read_file(path, 4096, &text, &len, &err), 0);
	unlink(path);
	return text;
}

/* JOURNAL_STREAM naming stderr, exactly "DEV:INO", gives priority prefixes;
 * a sign or a space sscanf skipped, or trailing bytes, is not the journal. */
static void
test_log_journal_stream(void **state)
{
	static const char *const bad[] = {
		"+%llu:%llu", " %llu:%llu", "%llu: %llu", "%llu:+%llu", "%llu:%llu ",
		"%llu %llu",
	};
	char *text;
	size_t i;

	(void)state;
	text = log_line_with_journal_stream("%llu:%llu");
	assert_string_equal(text, "<6>INFO agent: hello\n");
	free(text);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		text = log_line_with_journal_stream(bad[i]);
		if (strstr(text, " INFO agent: hello\n") == NULL || text[0] == '<')
			fail_msg("%s: %s", bad[i], text);
		free(text);
	}
}

/* The log opens neither through a planted link nor into a FIFO (which would
 * block the open), and says which it refused. */
static void
test_log_file_refuses_link_and_fifo(void **state)
{
	char dir[] = "/tmp/hc-log-dir.XXXXXX";
	char link_path[64], fifo_path[64], target[64];
	struct stat st;
	struct hc_err err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_true(snprintf(link_path, sizeof(link_path), "%s/agent.log", dir) <
	            (int)sizeof(link_path));
	assert_true(snprintf(fifo_path, sizeof(fifo_path), "%s/fifo.log", dir) <
	            (int)sizeof(fifo_path));
	assert_true(snprintf(target, sizeof(target), "%s/target", dir) < (int)sizeof(target));
	assert_int_equal(symlink(target, link_path), 0);
	assert_int_equal(hc_log_open(link_path, HC_LOG_INFO, 0, &err), HC_ECANTCREAT);
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(mkfifo(fifo_path, 0600), 0);
	assert_int_equal(hc_log_open(fifo_path, HC_LOG_INFO, 0, &err), HC_ECANTCREAT);
	assert_non_null(strstr(err.msg, "not a regular file or a device"));
	unlink(link_path);
	unlink(fifo_path);
	rmdir(dir);
}

static void
test_url_parse(void **state)
{
	struct hc_url u;
	struct hc_err err;

	(void)state;
	assert_int_equal(hc_url_parse("https://Mirror-A.ExperienceNet.com/api/v1/peer/files/b.zip?x=1",
	                              &u, &err), 0);
	assert_string_equal(u.scheme, "https");
	assert_string_equal(u.host, "mirror-a.experiencenet.com");
	assert_int_equal(u.port, 443);
	assert_string_equal(u.path_query, "/api/v1/peer/files/b.zip?x=1");
	hc_url_free(&u);

	assert_int_equal(hc_url_parse("http://127.0.0.1:8080", &u, &err), 0);
	assert_int_equal(u.port, 8080);
	assert_string_equal(u.path_query, "/");
	hc_url_free(&u);

	assert_int_equal(hc_url_parse("http://[::1]:9/x", &u, &err), 0);
	assert_string_equal(u.host, "::1");
	hc_url_free(&u);

	assert_int_equal(hc_url_parse("ftp://example.com/x", &u, &err), HC_EDATA);
	assert_string_equal(err.msg, "URL 'ftp://example.com/x': scheme must be http or https");
	assert_int_equal(hc_url_parse("not a url", &u, &err), HC_EDATA);
	assert_non_null(strstr(err.msg, "URL 'not a url'"));
	hc_url_free(&u);
}

static void
test_classify(void **state)
{
	(void)state;
	assert_int_equal(hc_http_classify(CURLE_OK, 0, 1), HC_FAIL_NONE);
	assert_int_equal(hc_http_classify(CURLE_COULDNT_CONNECT, ECONNREFUSED, 0),
	                 HC_FAIL_CONNECT_REFUSED);
	assert_int_equal(hc_http_classify(CURLE_COULDNT_CONNECT, ETIMEDOUT, 0),
	                 HC_FAIL_CONNECT_TIMEOUT);
	assert_int_equal(hc_http_classify(CURLE_OPERATION_TIMEDOUT, 0, 0),
	                 HC_FAIL_CONNECT_TIMEOUT);
	assert_int_equal(hc_http_classify(CURLE_OPERATION_TIMEDOUT, 0, 1), HC_FAIL_TIMEOUT);
	assert_int_equal(hc_http_classify(CURLE_PEER_FAILED_VERIFICATION, 0, 1), HC_FAIL_TLS);
	assert_int_equal(hc_http_classify(CURLE_SSL_CONNECT_ERROR, 0, 1), HC_FAIL_TLS);
	assert_int_equal(hc_http_classify(CURLE_WRITE_ERROR, 0, 1), HC_FAIL_IO);
	assert_int_equal(hc_http_classify(CURLE_ABORTED_BY_CALLBACK, 0, 1), HC_FAIL_ABORTED);
	assert_int_equal(hc_http_classify(CURLE_PARTIAL_FILE, 0, 1), HC_FAIL_ABORTED);
	assert_int_equal(hc_http_classify(CURLE_COULDNT_RESOLVE_HOST, 0, 0),
	                 HC_FAIL_DNS_NXDOMAIN);
	assert_string_equal(hc_fail_name(HC_FAIL_DNS_TIMEOUT), "dns_timeout");
	assert_string_equal(hc_fail_name(HC_FAIL_CONNECT_REFUSED), "connect_refused");
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
test_atomic_write(void **state)
{
	char dir[] = "/tmp/hc-atomic.XXXXXX";
	char path[256], missing[256];
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	struct hc_err err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.json", dir);
	assert_int_equal(hc_atomic_write(path, "one", 3, 0600, &err), 0);
	assert_int_equal(hc_atomic_write(path, "second", 6, 0640, &err), 0);
	assert_int_equal(hc_read_file(path, 100, &text, &len, &err), 0);
	assert_string_equal(text, "second");
	free(text);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	/* No temp file left behind. */
	assert_int_equal(count_entries(dir), 1);
	/* A directory that does not exist: an error, nothing created. */
	snprintf(missing, sizeof(missing), "%s/nope/state.json", dir);
	assert_int_equal(hc_atomic_write(missing, "x", 1, 0600, &err), HC_ECANTCREAT);
	assert_non_null(strstr(err.msg, "nope/state.json.tmp."));
	assert_int_equal(count_entries(dir), 1);
	/* Too large for the caller's limit. */
	assert_int_equal(hc_read_file(path, 3, &text, &len, &err), HC_EDATA);
	unlink(path);
	rmdir(dir);
}

static void
test_sha256(void **state)
{
	struct hc_sha256 *h = hc_sha256_new();
	char hex[HC_SHA256_HEX_LEN + 1];
	char repr[128];

	(void)state;
	assert_non_null(h);
	assert_int_equal(hc_sha256_update(h, "ab", 2), 0);
	/* Finishing works on a copy: the stream can go on. */
	assert_int_equal(hc_sha256_hex(h, hex), 0);
	assert_string_equal(hex, "fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603");
	assert_int_equal(hc_sha256_update(h, "c", 1), 0);
	assert_int_equal(hc_sha256_hex(h, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(hc_sha256_reset(h), 0);
	assert_int_equal(hc_sha256_hex(h, hex), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hc_sha256_free(h);
	hc_sha256_free(NULL);

	assert_int_equal(hc_sha256_to_repr_digest(
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", repr,
	    sizeof(repr)), 0);
	assert_string_equal(repr, "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:");
	assert_int_equal(hc_sha256_from_repr_digest(
	    "sha-512=:AAAA:, sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:", hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(hc_sha256_from_repr_digest("sha-512=:AAAA:", hex), HC_EDATA);
	assert_int_equal(hc_sha256_from_repr_digest("sha-256=:short=:", hex), HC_EDATA);
	assert_true(hc_sha256_hex_valid("BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	assert_false(hc_sha256_hex_valid("ba78"));
}

static void
test_json_fields(void **state)
{
	const char *text = "{\"district\": \"bxl1\", \"vram_mb\": \"lots\", \"idle\": true}";
	struct json_object *obj = NULL;
	struct hc_err err;
	const char *s = NULL;
	long long n = 0;
	int b = 0;

	(void)state;
	assert_int_equal(hc_json_parse(text, strlen(text), &obj, &err), 0);
	assert_int_equal(hc_json_get_string(obj, "district", &s, &err), 0);
	assert_string_equal(s, "bxl1");
	assert_int_equal(hc_json_get_bool(obj, "idle", &b, &err), 0);
	assert_int_equal(b, 1);
	assert_int_equal(hc_json_get_int(obj, "vram_mb", &n, &err), HC_EDATA);
	assert_string_equal(err.msg, "field 'vram_mb': expected an integer, got a string");
	assert_int_equal(hc_json_get_string(obj, "venue", &s, &err), HC_EDATA);
	assert_string_equal(err.msg, "missing field 'venue'");
	s = "unchanged";
	assert_int_equal(hc_json_opt_string(obj, "venue", &s, &err), 0);
	assert_string_equal(s, "unchanged");
	json_object_put(obj);

	assert_int_equal(hc_json_parse("{\"a\": 1} x", 10, &obj, &err), HC_EDATA);
	assert_string_equal(err.msg, "invalid JSON at offset 9: unexpected character");
	assert_int_equal(hc_json_parse("{\"a\": ", 6, &obj, &err), HC_EDATA);
	assert_string_equal(err.msg, "invalid JSON: unexpected end of input");
	assert_int_equal(hc_json_parse("{\"a\": 1}\n", 9, &obj, &err), 0);
	json_object_put(obj);
}

static void
test_numbers_and_labels(void **state)
{
	uint64_t sz;
	long long v;

	(void)state;
	assert_int_equal(hc_parse_size("10G", &sz), 0);
	assert_true(sz == 10ULL << 30);
	assert_int_equal(hc_parse_size("512MiB", &sz), 0);
	assert_true(sz == 512ULL << 20);
	assert_int_equal(hc_parse_size("123", &sz), 0);
	assert_true(sz == 123);
	assert_int_equal(hc_parse_size("-1", &sz), HC_EDATA);
	assert_int_equal(hc_parse_size("10X", &sz), HC_EDATA);
	assert_int_equal(hc_parse_size("99999999999T", &sz), HC_EDATA);
	assert_int_equal(hc_parse_int("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(hc_parse_int("101", 0, 100, &v), HC_EDATA);
	assert_int_equal(hc_parse_int("4x", 0, 100, &v), HC_EDATA);
	assert_int_equal(hc_parse_int(" 4", 0, 100, &v), HC_EDATA);
	assert_true(hc_is_dns_label("bxl1"));
	assert_true(hc_is_dns_label("bxl1-test"));
	assert_false(hc_is_dns_label("-bxl1"));
	assert_false(hc_is_dns_label("bxl1.evil"));
	assert_false(hc_is_dns_label(""));
	assert_false(hc_is_dns_label("a_b"));
}

static void
test_err_helpers(void **state)
{
	struct hc_err err;
	char small[4];

	(void)state;
	assert_int_equal(hc_err_set(&err, HC_EIO, "write %s", "x"), HC_EIO);
	assert_int_equal(hc_err_prefix(&err, "install"), HC_EIO);
	assert_string_equal(err.msg, "install: write x");
	assert_int_equal(hc_status_exit_code(HC_EIO), 74);
	assert_int_equal(hc_status_exit_code(HC_ECONFIG), 78);
	assert_int_equal(hc_status_exit_code(HC_EUNAVAIL), 69);
	assert_int_equal(hc_status_exit_code(HC_EDATA), 65);
	assert_int_equal(hc_status_exit_code(HC_ECANTCREAT), 73);
	assert_int_equal(hc_status_exit_code(HC_EUSAGE), 64);
	assert_int_equal(hc_snprintf(small, sizeof(small), "%s", "abcd"), HC_ESOFTWARE);
	assert_string_equal(small, "abc");
	assert_int_equal(hc_strlcpy(small, "ab", sizeof(small)), 0);
	assert_string_equal(small, "ab");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_format),
		cmocka_unit_test(test_log_truncation),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_file_append),
		cmocka_unit_test(test_log_file_refuses_link_and_fifo),
		cmocka_unit_test(test_log_journal_stream),
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_atomic_write),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_json_fields),
		cmocka_unit_test(test_numbers_and_labels),
		cmocka_unit_test(test_err_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
