/* common/: the capped buffer, array growth, hex lower-casing, the field
 * scanners, the timed wait and the link-safe directory walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hc.h"

static void
test_buf_cap(void **state)
{
	struct hc_buf b;
	char big[300];

	(void)state;
	hc_buf_init(&b, 8);
	assert_string_equal(hc_buf_str(&b), "");
	assert_int_equal(hc_buf_add(&b, "abcd", 4), 0);
	assert_int_equal(hc_buf_add(&b, "efgh", 4), 0);
	assert_string_equal(hc_buf_str(&b), "abcdefgh");
	/* One byte past the cap is refused and changes nothing. */
	assert_int_equal(hc_buf_add(&b, "i", 1), HC_EDATA);
	assert_int_equal(b.len, 8);
	assert_string_equal(hc_buf_str(&b), "abcdefgh");
	/* A length that would wrap size_t is refused, not added. */
	assert_int_equal(hc_buf_add(&b, "x", SIZE_MAX), HC_EDATA);
	assert_int_equal(b.len, 8);
	hc_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(hc_buf_str(&b), "");
	hc_buf_free(&b);
	hc_buf_free(&b);

	/* Growth past the first allocation keeps every byte. */
	memset(big, 'z', sizeof(big));
	hc_buf_init(&b, 1000);
	assert_int_equal(hc_buf_add(&b, big, sizeof(big)), 0);
	assert_int_equal(hc_buf_add(&b, big, sizeof(big)), 0);
	assert_int_equal(hc_buf_add(&b, big, sizeof(big)), 0);
	assert_int_equal(b.len, 900);
	assert_int_equal(hc_buf_add(&b, big, sizeof(big)), HC_EDATA);
	assert_int_equal(strspn(hc_buf_str(&b), "z"), 900);
	hc_buf_free(&b);
}

static void
test_buf_printf_take(void **state)
{
	struct hc_buf b;
	char *s;

	(void)state;
	hc_buf_init(&b, 16);
	assert_int_equal(hc_buf_printf(&b, "%s=%d", "files", 42), 0);
	assert_int_equal(hc_buf_printf(&b, ";"), 0);
	assert_string_equal(hc_buf_str(&b), "files=42;");
	assert_int_equal(hc_buf_printf(&b, "%s", "0123456789"), HC_EDATA);
	assert_string_equal(hc_buf_str(&b), "files=42;");
	s = hc_buf_take(&b);
	assert_string_equal(s, "files=42;");
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	free(s);
	assert_null(hc_buf_take(&b));
	hc_buf_free(&b);
}

static void
test_array_reserve(void **state)
{
	int *items = NULL;
	size_t cap = 0, i;

	(void)state;
	assert_int_equal(hc_array_reserve((void **)&items, &cap, 1, sizeof(*items), 100), 0);
	assert_true(cap >= 1);
	for (i = 0; i < 100; i++) {
		assert_int_equal(hc_array_reserve((void **)&items, &cap, i + 1, sizeof(*items), 100), 0);
		items[i] = (int)i;
	}
	assert_true(cap <= 100);
	assert_int_equal(items[99], 99);
	assert_int_equal(hc_array_reserve((void **)&items, &cap, 101, sizeof(*items), 100),
	                 HC_EDATA);
	assert_int_equal(items[50], 50);
	/* An element count whose byte size overflows is refused. */
	assert_int_not_equal(hc_array_reserve((void **)&items, &cap, SIZE_MAX / 2, 16,
	                                      SIZE_MAX), 0);
	assert_int_equal(items[0], 0);
	free(items);
}

static void
test_hex_lower(void **state)
{
	char out[HC_SHA256_HEX_LEN + 1];
	const char *upper = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789";

	(void)state;
	hc_hex_lower(out, upper, HC_SHA256_HEX_LEN);
	assert_string_equal(out,
	    "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	assert_true(hc_sha256_hex_valid(out));
}

/* The value a failing scanner must leave in its output. */
#define SCAN_UNTOUCHED 77

/* s is refused by hc_scan_i64 (sign) or hc_scan_u64, which leave the
 * cursor and the output alone. */
static void
scan_number_refuses(const char *s, int sign)
{
	const char *p = s;
	uint64_t u = SCAN_UNTOUCHED;
	int64_t i = SCAN_UNTOUCHED;

	assert_int_equal(sign ? hc_scan_i64(&p, &i) : hc_scan_u64(&p, &u), HC_EDATA);
	assert_ptr_equal(p, s);
	assert_true(u == SCAN_UNTOUCHED && i == SCAN_UNTOUCHED);
}

/* Digits only, up to UINT64_MAX: no sign, no white space, no wrap. */
static void
test_scan_u64(void **state)
{
	const char *s = "42 7", *p = s;
	uint64_t v = 0;

	(void)state;
	assert_int_equal(hc_scan_u64(&p, &v), 0);
	assert_int_equal(v, 42);
	assert_ptr_equal(p, s + 2);
	p = "0";
	assert_int_equal(hc_scan_u64(&p, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(*p, '\0');
	p = "18446744073709551615";
	assert_int_equal(hc_scan_u64(&p, &v), 0);
	assert_true(v == UINT64_MAX);
	scan_number_refuses("18446744073709551616", 0);
	scan_number_refuses("99999999999999999999999", 0);
	scan_number_refuses("-1", 0);
	scan_number_refuses("+1", 0);
	scan_number_refuses(" 1", 0);
	scan_number_refuses("\t1", 0);
	scan_number_refuses("", 0);
	scan_number_refuses("x1", 0);
}

/* An optional '-', digits, within INT64_MIN..INT64_MAX. */
static void
test_scan_i64(void **state)
{
	const char *p;
	int64_t v = 0;

	(void)state;
	p = "-9223372036854775808";
	assert_int_equal(hc_scan_i64(&p, &v), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(*p, '\0');
	p = "9223372036854775807";
	assert_int_equal(hc_scan_i64(&p, &v), 0);
	assert_true(v == INT64_MAX);
	p = "-17 x";
	assert_int_equal(hc_scan_i64(&p, &v), 0);
	assert_int_equal(v, -17);
	assert_string_equal(p, " x");
	p = "0";
	assert_int_equal(hc_scan_i64(&p, &v), 0);
	assert_int_equal(v, 0);
	scan_number_refuses("-9223372036854775809", 1);
	scan_number_refuses("9223372036854775808", 1);
	scan_number_refuses("+1", 1);
	scan_number_refuses("-", 1);
	scan_number_refuses("--1", 1);
	scan_number_refuses(" -1", 1);
	scan_number_refuses("\t1", 1);
	scan_number_refuses("", 1);
}

/* A word ends at a space or control byte, must fit, and is not empty; a
 * separator is exactly the one byte asked for. */
static void
test_scan_word_sep(void **state)
{
	const char *s, *p;
	char w[4] = "old";

	(void)state;
	s = "abc def";
	p = s;
	assert_int_equal(hc_scan_word(&p, w, sizeof(w)), 0);
	assert_string_equal(w, "abc");
	assert_int_equal(hc_scan_sep(&p, ' '), 0);
	assert_string_equal(p, "def");
	/* Too long for w, empty, or starting with white space: refused, untouched. */
	s = "abcd";
	p = s;
	assert_int_equal(hc_scan_word(&p, w, sizeof(w)), HC_EDATA);
	assert_ptr_equal(p, s);
	assert_string_equal(w, "abc");
	s = "";
	p = s;
	assert_int_equal(hc_scan_word(&p, w, sizeof(w)), HC_EDATA);
	assert_ptr_equal(p, s);
	s = " ab";
	p = s;
	assert_int_equal(hc_scan_word(&p, w, sizeof(w)), HC_EDATA);
	assert_ptr_equal(p, s);
	/* A tab ends a word and is no separator; neither is a second space. */
	s = "a\tb";
	p = s;
	assert_int_equal(hc_scan_word(&p, w, sizeof(w)), 0);
	assert_string_equal(w, "a");
	assert_int_equal(hc_scan_sep(&p, ' '), HC_EDATA);
	assert_ptr_equal(p, s + 1);
	s = "  x";
	p = s;
	assert_int_equal(hc_scan_sep(&p, ' '), 0);
	assert_int_equal(hc_scan_word(&p, w, sizeof(w)), HC_EDATA);
	assert_ptr_equal(p, s + 1);
	p = "";
	assert_int_equal(hc_scan_sep(&p, ' '), HC_EDATA);
	assert_int_equal(hc_scan_sep(&p, '\0'), HC_EDATA);
	/* Bytes past ASCII belong to a word (UTF-8 names). */
	p = "\xc3\xa9";
	assert_int_equal(hc_scan_word(&p, w, sizeof(w)), 0);
	assert_string_equal(w, "\xc3\xa9");
}

/* hc_now_us reads the clock of hc_now_ms, a thousand times finer: read
 * between two hc_now_ms calls it falls between them, and it never goes back. */
static void
test_now_us_matches_now_ms(void **state)
{
	int64_t ms_before, us, ms_after, us_next;

	(void)state;
	ms_before = hc_now_ms();
	us = hc_now_us();
	ms_after = hc_now_ms();
	us_next = hc_now_us();
	assert_in_range(us / 1000, ms_before, ms_after);
	assert_true(us_next >= us);
}

static void
test_is_lower_hex(void **state)
{
	(void)state;
	assert_int_equal(hc_is_lower_hex("0123456789abcdef", 16), 1);
	assert_int_equal(hc_is_lower_hex("", 0), 1);
	assert_int_equal(hc_is_lower_hex("0123456789ABCDEF", 16), 0);
	assert_int_equal(hc_is_lower_hex("0123456789abcdeg", 16), 0);
	assert_int_equal(hc_is_lower_hex("0123456789abcde", 16), 0);
	assert_int_equal(hc_is_lower_hex("0123456789abcdef0", 16), 0);
	assert_int_equal(hc_is_lower_hex("01234567 9abcdef", 16), 0);
	assert_int_equal(hc_is_lower_hex(NULL, 0), 0);
}

static void
test_cond_wait_times_out(void **state)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	int64_t t0, waited;

	(void)state;
	pthread_mutex_lock(&mu);
	t0 = hc_now_ms();
	hc_cond_wait_ms(&cv, &mu, 50);
	waited = hc_now_ms() - t0;
	pthread_mutex_unlock(&mu);
	/* Nobody signals: it returns after about 50 ms, well before 5 s. */
	assert_true(waited >= 40);
	assert_true(waited < 5000);
}

struct walk_seen {
	char names[32][HC_PATH_MAX];
	int post[32];
	int n;
	int skip_b;
};

static int
walk_record(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct walk_seen *w = ctx;

	(void)err;
	assert_true(w->n < 32);
	hc_strlcpy(w->names[w->n], e->rel, sizeof(w->names[0]));
	w->post[w->n] = e->post;
	w->n++;
	if (w->skip_b && !e->post && strcmp(e->rel, "b") == 0)
		return HC_WALK_SKIP;
	return 0;
}

static int
walk_find(const struct walk_seen *w, const char *name, int post)
{
	int i;

	for (i = 0; i < w->n; i++)
		if (strcmp(w->names[i], name) == 0 && w->post[i] == post)
			return i;
	return -1;
}

static void
make_tree(char *dir, char *outside)
{
	char p[512];

	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(outside));
	snprintf(p, sizeof(p), "%s/a", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/a/f", dir);
	assert_int_equal(hc_atomic_write(p, "x", 1, 0644, NULL), 0);
	snprintf(p, sizeof(p), "%s/b", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/b/g", dir);
	assert_int_equal(hc_atomic_write(p, "y", 1, 0644, NULL), 0);
	snprintf(p, sizeof(p), "%s/secret", outside);
	assert_int_equal(hc_atomic_write(p, "z", 1, 0644, NULL), 0);
	/* A link to a folder outside: reported, never entered. */
	snprintf(p, sizeof(p), "%s/link", dir);
	assert_int_equal(symlink(outside, p), 0);
}

static void
remove_tree(const char *dir, const char *outside)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, outside);
	assert_int_equal(system(cmd), 0);
}

static void
test_walk(void **state)
{
	char dir[] = "/tmp/hc-walk.XXXXXX", outside[] = "/tmp/hc-walk-out.XXXXXX";
	struct walk_seen *w = calloc(1, sizeof(*w));
	struct hc_err err = { 0, "" };
	int fd, i;

	(void)state;
	assert_non_null(w);
	make_tree(dir, outside);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);

	assert_int_equal(hc_walk(fd, dir, 8, 1, walk_record, w, &err), 0);
	assert_int_equal(w->n, 7); /* a, a/f, a(post), b, b/g, b(post), link */
	assert_true(walk_find(w, "a/f", 0) > walk_find(w, "a", 0));
	assert_true(walk_find(w, "a", 1) > walk_find(w, "a/f", 0));
	assert_true(walk_find(w, "b/g", 0) >= 0);
	assert_true(walk_find(w, "link", 0) >= 0);
	for (i = 0; i < w->n; i++)
		assert_null(strstr(w->names[i], "secret"));

	/* SKIP leaves a folder's contents out; no post visit without post. */
	memset(w, 0, sizeof(*w));
	w->skip_b = 1;
	assert_int_equal(hc_walk(fd, dir, 8, 0, walk_record, w, &err), 0);
	assert_int_equal(walk_find(w, "b/g", 0), -1);
	assert_int_equal(walk_find(w, "a", 1), -1);
	assert_true(walk_find(w, "a/f", 0) >= 0);

	/* Deeper than allowed: HC_EDATA naming the folder. */
	memset(w, 0, sizeof(*w));
	assert_int_equal(hc_walk(fd, dir, 0, 0, walk_record, w, &err), HC_EDATA);
	assert_non_null(strstr(err.msg, "nested deeper than 0"));

	/* The caller's fd is left open and where it was. */
	assert_int_equal(fcntl(fd, F_GETFD) >= 0, 1);
	close(fd);
	remove_tree(dir, outside);
	free(w);
}

static int
walk_stop(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	int *calls = ctx;

	(void)e;
	(*calls)++;
	return hc_err_set(err, HC_EIO, "stop here");
}

static void
test_walk_stops_on_error(void **state)
{
	char dir[] = "/tmp/hc-walk.XXXXXX", outside[] = "/tmp/hc-walk-out.XXXXXX";
	struct hc_err err = { 0, "" };
	int fd, calls = 0;

	(void)state;
	make_tree(dir, outside);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(hc_walk(fd, dir, 8, 0, walk_stop, &calls, &err), HC_EIO);
	assert_int_equal(calls, 1);
	assert_string_equal(err.msg, "stop here");
	close(fd);
	remove_tree(dir, outside);
}

/* Only name's own leftovers go; other files, folders and names stay. */
static void
test_atomic_sweep(void **state)
{
	char dir[] = "/tmp/hc-sweep.XXXXXX", p[512];
	const char *files[] = { "idx.tmp.1.0", "idx.tmp.99.7", "idx", "idx.tmpx", "other.tmp.1.0" };
	size_t i;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		assert_int_equal(hc_atomic_write(p, "x", 1, 0644, NULL), 0);
	}
	snprintf(p, sizeof(p), "%s/idx.tmp.dir", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(hc_atomic_sweep_at(fd, "idx"), 2);
	assert_int_equal(hc_atomic_sweep_at(fd, "idx"), 0);
	assert_int_equal(faccessat(fd, "idx.tmp.1.0", F_OK, 0), -1);
	assert_int_equal(faccessat(fd, "idx", F_OK, 0), 0);
	assert_int_equal(faccessat(fd, "idx.tmpx", F_OK, 0), 0);
	assert_int_equal(faccessat(fd, "other.tmp.1.0", F_OK, 0), 0);
	assert_int_equal(faccessat(fd, "idx.tmp.dir", F_OK, 0), 0);
	close(fd);
	snprintf(p, sizeof(p), "rm -rf '%s'", dir);
	assert_int_equal(system(p), 0);
}

/* The port hc_free_port gives can be bound for TCP and for UDP at once; a
 * name that is not an IPv4 address is refused with what was wrong. */
static void
test_free_port(void **state)
{
	struct sockaddr_in sa;
	struct hc_err err = { 0, "" };
	int port = -1, tcp, udp;

	(void)state;
	assert_int_equal(hc_free_port("127.0.0.1", &port, &err), 0);
	assert_true(port > 0 && port < 65536);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	tcp = socket(AF_INET, SOCK_STREAM, 0);
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(tcp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(bind(udp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(tcp);
	close(udp);
	assert_int_equal(hc_free_port("localhost", &port, &err), HC_EDATA);
	assert_non_null(strstr(err.msg, "localhost: not an IPv4 address"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_buf_printf_take),
		cmocka_unit_test(test_array_reserve),
		cmocka_unit_test(test_hex_lower),
		cmocka_unit_test(test_scan_u64),
		cmocka_unit_test(test_scan_i64),
		cmocka_unit_test(test_scan_word_sep),
		cmocka_unit_test(test_now_us_matches_now_ms),
		cmocka_unit_test(test_is_lower_hex),
		cmocka_unit_test(test_cond_wait_times_out),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_walk_stops_on_error),
		cmocka_unit_test(test_atomic_sweep),
		cmocka_unit_test(test_free_port),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
