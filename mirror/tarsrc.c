/*
 * A .tar.gz release rewritten as a stored ZIP, so upstream.c reads every
 * release one way (libzip) with one set of checks. libarchive does the
 * reading (gzip and tar) and the writing; this file only decides what may
 * pass. The copy costs the archive's content once more in the store's tmp
 * folder, bounded by max_archive_bytes.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror/tarsrc.h"

/* Entries of one archive looked at; a larger archive is refused (as
 * UP_ENTRIES_MAX for a ZIP's directory). */
#define TS_ENTRIES_MAX 200000
#define TS_CHUNK (64 * 1024)

/* One conversion: the tar read, the ZIP written, the limits and totals. */
struct ts_run {
	struct archive *a, *w;
	uint64_t tar_bytes, max_bytes;
	uint64_t total;                 /* content copied so far */
	unsigned char *buf;             /* TS_CHUNK bytes */
};

int
mir_tarsrc_is_tar(const char *url)
{
	size_t n = strcspn(url, "?#");

	return (n >= 7 && strncmp(url + n - 7, ".tar.gz", 7) == 0) ||
	       (n >= 4 && strncmp(url + n - 4, ".tgz", 4) == 0);
}

/* Why entry e may not be copied, NULL when it is a plain file. */
static const char *
ts_refused(struct archive_entry *e)
{
	if (archive_entry_hardlink(e) != NULL)
		return "a hard link entry";  /* a tar hard link has no file type of its own */
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return NULL;
	case AE_IFLNK:
		return "a symlink entry";
	default:
		return "not a regular file";
	}
}

/* Copies the current entry's content (its header already written). */
static int
ts_copy(struct ts_run *t, const char *name, int64_t declared, struct hc_err *err)
{
	uint64_t got = 0;
	la_ssize_t n;

	for (;;) {
		n = archive_read_data(t->a, t->buf, TS_CHUNK);
		if (n == 0)
			break;
		if (n < 0)
			return hc_err_set(err, HC_EDATA, "member '%s': %s", name,
			                  archive_error_string(t->a));
		got += (uint64_t)n;
		t->total += (uint64_t)n;
		if (got > (uint64_t)declared)
			return hc_err_set(err, HC_EDATA, "member '%s' larger than its declared %" PRId64
			                  " bytes", name, declared);
		if (t->total > t->max_bytes)
			return hc_err_set(err, HC_EDATA, "content past max_archive_bytes");
		if (t->total > MIR_TARSRC_RATIO_FLOOR &&
		    t->total / MIR_TARSRC_RATIO_MAX > t->tar_bytes)
			return hc_err_set(err, HC_EDATA, "content past %d times the archive's %" PRIu64
			                  " bytes (a bomb)", MIR_TARSRC_RATIO_MAX, t->tar_bytes);
		if (archive_write_data(t->w, t->buf, (size_t)n) != n)
			return hc_err_set(err, HC_EIO, "write: %s", archive_error_string(t->w));
	}
	if (got != (uint64_t)declared)
		return hc_err_set(err, HC_EDATA, "member '%s' cut short (%" PRIu64 " of %" PRId64
		                  " bytes)", name, got, declared);
	return 0;
}

/* One entry of the tar to the ZIP: a file is copied, a directory dropped,
 * anything else refused. */
static int
ts_entry(struct ts_run *t, struct archive_entry *e, struct hc_err *err)
{
	const char *name = archive_entry_pathname(e), *why;
	struct archive_entry *o = NULL;
	int rc;

	if (name == NULL)
		return hc_err_set(err, HC_EDATA, "an entry without a name");
	while (strncmp(name, "./", 2) == 0)
		name += 2;
	if (archive_entry_filetype(e) == AE_IFDIR || name[0] == '\0')
		return 0;
	why = ts_refused(e);
	if (why != NULL)
		return hc_err_set(err, HC_EDATA, "member '%s' refused: %s", name, why);
	if (archive_entry_size(e) < 0)
		return hc_err_set(err, HC_EDATA, "member '%s' without a size", name);
	o = archive_entry_new();
	if (o == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	archive_entry_set_pathname(o, name);
	archive_entry_set_filetype(o, AE_IFREG);
	archive_entry_set_perm(o, 0644);
	archive_entry_set_size(o, archive_entry_size(e));
	archive_entry_set_mtime(o, archive_entry_mtime(e), 0);
	if (archive_write_header(t->w, o) != ARCHIVE_OK)
		rc = hc_err_set(err, HC_EIO, "member '%s': %s", name, archive_error_string(t->w));
	else
		rc = ts_copy(t, name, archive_entry_size(e), err);
	archive_entry_free(o);
	return rc;
}

int
mir_tarsrc_to_zip(int tar_fd, uint64_t tar_bytes, int zip_fd, uint64_t max_bytes,
                  struct hc_err *err)
{
	struct ts_run t = { NULL, NULL, tar_bytes, max_bytes, 0, NULL };
	struct archive_entry *e;
	int rc = 0, r, i;

	t.buf = malloc(TS_CHUNK);
	if (t.buf == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	if (lseek(tar_fd, 0, SEEK_SET) != 0) {
		rc = hc_err_set(err, HC_EIO, "seek: %s", strerror(errno));
		goto done;
	}
	t.a = archive_read_new();
	t.w = archive_write_new();
	if (t.a == NULL || t.w == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	if (archive_read_support_filter_gzip(t.a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(t.a) != ARCHIVE_OK ||
	    archive_read_open_fd(t.a, tar_fd, TS_CHUNK) != ARCHIVE_OK) {
		rc = hc_err_set(err, HC_EDATA, "not a .tar.gz: %s", archive_error_string(t.a));
		goto done;
	}
	if (archive_write_set_format_zip(t.w) != ARCHIVE_OK ||
	    archive_write_zip_set_compression_store(t.w) != ARCHIVE_OK ||
	    archive_write_open_fd(t.w, zip_fd) != ARCHIVE_OK) {
		rc = hc_err_set(err, HC_EIO, "zip writer: %s", archive_error_string(t.w));
		goto done;
	}
	for (i = 0; rc == 0; i++) {
		if (i >= TS_ENTRIES_MAX) {
			rc = hc_err_set(err, HC_EDATA, "more than %d entries", TS_ENTRIES_MAX);
			break;
		}
		r = archive_read_next_header(t.a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			rc = hc_err_set(err, HC_EDATA, "entry %d: %s", i, archive_error_string(t.a));
			break;
		}
		rc = ts_entry(&t, e, err);
	}
	if (rc == 0 && archive_write_close(t.w) != ARCHIVE_OK)
		rc = hc_err_set(err, HC_EIO, "zip writer: %s", archive_error_string(t.w));
done:
	archive_write_free(t.w);
	archive_read_free(t.a);
	free(t.buf);
	return rc;
}
