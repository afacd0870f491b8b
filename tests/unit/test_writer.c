/* The part-file writer (mirrorfetch/writer.c): bytes pushed in pieces of
 * every size come out written and hashed in order, a piece smaller than a
 * slot is not lost at flush or free, a failed write is sticky, and a rewind
 * starts over. Real files in a temp folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirrorfetch/mirrorfetch.h"

/* Several slots' worth plus an odd tail, so the ring wraps and the last
 * slot is partly filled. */
#define DATA_LEN (3 * 1024 * 1024 + 7)

struct fixture {
	char path[64];
	unsigned char *data;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint32_t x = 12345;
	size_t i;
	int fd;

	if (f == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "/tmp/test_writer.XXXXXX");
	fd = mkstemp(f->path);
	if (fd < 0)
		return -1;
	close(fd);
	f->data = malloc(DATA_LEN);
	if (f->data == NULL)
		return -1;
	for (i = 0; i < DATA_LEN; i++) {
		x = x * 1103515245u + 12345u;
		f->data[i] = (unsigned char)(x >> 16);
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	free(f->data);
	free(f);
	return 0;
}

static void
hex_of(const void *p, size_t len, char hex[HC_SHA256_HEX_LEN + 1])
{
	struct hc_sha256 *h = hc_sha256_new();

	assert_non_null(h);
	assert_int_equal(hc_sha256_update(h, p, len), 0);
	assert_int_equal(hc_sha256_hex(h, hex), 0);
	hc_sha256_free(h);
}

/* The file at path holds exactly len bytes equal to want. */
static void
assert_file(const char *path, const unsigned char *want, size_t len)
{
	unsigned char *got = malloc(len + 1);
	int fd = open(path, O_RDONLY);
	size_t have = 0;
	ssize_t n;

	assert_non_null(got);
	assert_true(fd >= 0);
	/* One byte more than expected is asked for: a longer file shows. */
	while (have < len + 1) {
		n = read(fd, got + have, len + 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	assert_int_equal(have, len);
	assert_memory_equal(got, want, len);
	free(got);
}

/* Flushes w, then the hash h holds the digest of want and the file at path
 * holds want alone; frees w and h and closes fd. */
static void
assert_finished(const char *path, int fd, struct mf_writer *w, struct hc_sha256 *h,
                const unsigned char *want, size_t len)
{
	char want_hex[HC_SHA256_HEX_LEN + 1], got_hex[HC_SHA256_HEX_LEN + 1];

	assert_int_equal(mf_writer_flush(w), 0);
	assert_int_equal(hc_sha256_hex(h, got_hex), 0);
	hex_of(want, len, want_hex);
	assert_string_equal(got_hex, want_hex);
	assert_file(path, want, len);
	mf_writer_free(w);
	hc_sha256_free(h);
	close(fd);
}

/* Pieces of 1 byte, curl's 16 KiB, odd sizes and more than a slot. */
static void
test_writer_order(void **state)
{
	static const size_t pieces[] = { 1, 16384, 100000, 300000, 7, 65536, 1048576 + 3 };
	struct fixture *f = *state;
	struct hc_sha256 *h = hc_sha256_new();
	struct mf_writer *w = NULL;
	struct hc_err err = { 0, "" };
	size_t off = 0, i = 0;
	int fd = open(f->path, O_WRONLY);

	assert_true(fd >= 0);
	assert_non_null(h);
	assert_int_equal(mf_writer_new(fd, h, 0, &w, &err), 0);
	while (off < DATA_LEN) {
		size_t n = pieces[i++ % (sizeof(pieces) / sizeof(pieces[0]))];

		if (n > DATA_LEN - off)
			n = DATA_LEN - off;
		assert_int_equal(mf_writer_push(w, f->data + off, n), 0);
		off += n;
	}
	assert_finished(f->path, fd, w, h, f->data, DATA_LEN);
}

/* A resume: the writer starts after a prefix the caller already hashed. */
static void
test_writer_offset(void **state)
{
	struct fixture *f = *state;
	struct hc_sha256 *h = hc_sha256_new();
	struct mf_writer *w = NULL;
	struct hc_err err = { 0, "" };
	int fd = open(f->path, O_WRONLY);
	const size_t prefix = 1000;

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, f->data, prefix, 0), (ssize_t)prefix);
	assert_int_equal(hc_sha256_update(h, f->data, prefix), 0);
	assert_int_equal(mf_writer_new(fd, h, prefix, &w, &err), 0);
	assert_int_equal(mf_writer_push(w, f->data + prefix, DATA_LEN - prefix), 0);
	assert_finished(f->path, fd, w, h, f->data, DATA_LEN);
}

/* Less than a slot, then free without a flush: the bytes are written. */
static void
test_writer_free_writes_pending(void **state)
{
	struct fixture *f = *state;
	struct hc_sha256 *h = hc_sha256_new();
	struct mf_writer *w = NULL;
	struct hc_err err = { 0, "" };
	int fd = open(f->path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(mf_writer_new(fd, h, 0, &w, &err), 0);
	assert_int_equal(mf_writer_push(w, f->data, 5000), 0);
	mf_writer_free(w);
	assert_file(f->path, f->data, 5000);
	hc_sha256_free(h);
	close(fd);
}

/* A write that fails (a read-only fd) is reported by flush and by every
 * later push. */
static void
test_writer_error_sticky(void **state)
{
	struct fixture *f = *state;
	struct hc_sha256 *h = hc_sha256_new();
	struct mf_writer *w = NULL;
	struct hc_err err = { 0, "" };
	int fd = open(f->path, O_RDONLY), rc;

	assert_true(fd >= 0);
	assert_int_equal(mf_writer_new(fd, h, 0, &w, &err), 0);
	(void)mf_writer_push(w, f->data, DATA_LEN);
	assert_int_equal(mf_writer_flush(w), EBADF);
	rc = mf_writer_push(w, f->data, 10);
	assert_int_equal(rc, EBADF);
	mf_writer_free(w);
	hc_sha256_free(h);
	close(fd);
}

/* Flush, truncate, reset the hash, rewind: the next bytes start the file. */
static void
test_writer_rewind(void **state)
{
	struct fixture *f = *state;
	struct hc_sha256 *h = hc_sha256_new();
	struct mf_writer *w = NULL;
	struct hc_err err = { 0, "" };
	int fd = open(f->path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(mf_writer_new(fd, h, 0, &w, &err), 0);
	assert_int_equal(mf_writer_push(w, f->data, 700000), 0);
	assert_int_equal(mf_writer_flush(w), 0);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(hc_sha256_reset(h), 0);
	mf_writer_rewind(w, 0);
	assert_int_equal(mf_writer_push(w, f->data + 5, 300001), 0);
	assert_finished(f->path, fd, w, h, f->data + 5, 300001);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_writer_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_free_writes_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_error_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_rewind, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
