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

/* Copies the current entry's content (name already written as o). */
static int
ts_copy(struct archive *a, struct archive *w, const char *name, int64_t declared,
        uint64_t *total, uint64_t tar_bytes, uint64_t max_bytes, unsigned char *buf,
        struct hc_err *err)
{
	uint64_t got = 0;
	la_ssize_t n;

	for (;;) {
		n = archive_read_data(a, buf, TS_CHUNK);
		if (n == 0)
			break;
		if (n < 0)
			return hc_err_set(err, HC_EDATA, "member '%s': %s", name,
			                  archive_error_string(a));
		got += (uint64_t)n;
		*total += (uint64_t)n;
		if (got > (uint64_t)declared)
			return hc_err_set(err, HC_EDATA, "member '%s' larger than its declared %" PRId64
			                  " bytes", name, declared);
		if (*total > max_bytes)
			return hc_err_set(err, HC_EDATA, "content past max_archive_bytes");
		if (*total > MIR_TARSRC_RATIO_FLOOR &&
		    *total / MIR_TARSRC_RATIO_MAX > tar_bytes)
			return hc_err_set(err, HC_EDATA, "content past %d times the archive's %" PRIu64
			                  " bytes (a bomb)", MIR_TARSRC_RATIO_MAX, tar_bytes);
		if (archive_write_data(w, buf, (size_t)n) != n)
			return hc_err_set(err, HC_EIO, "write: %s", archive_error_string(w));
	}
	if (got != (uint64_t)declared)
		return hc_err_set(err, HC_EDATA, "member '%s' cut short (%" PRIu64 " of %" PRId64
		                  " bytes)", name, got, declared);
	return 0;
}

/* One entry of a to w: a file is copied, a directory dropped, anything
 * else refused. */
static int
ts_entry(struct archive *a, struct archive *w, struct archive_entry *e, uint64_t *total,
         uint64_t tar_bytes, uint64_t max_bytes, unsigned char *buf, struct hc_err *err)
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
	if (archive_write_header(w, o) != ARCHIVE_OK)
		rc = hc_err_set(err, HC_EIO, "member '%s': %s", name, archive_error_string(w));
	else
		rc = ts_copy(a, w, name, archive_entry_size(e), total, tar_bytes, max_bytes, buf, err);
	archive_entry_free(o);
	return rc;
}

int
mir_tarsrc_to_zip(int tar_fd, uint64_t tar_bytes, int zip_fd, uint64_t max_bytes,
                  struct hc_err *err)
{
	unsigned char *buf = malloc(TS_CHUNK);
	struct archive *a = NULL, *w = NULL;
	struct archive_entry *e;
	uint64_t total = 0;
	int rc = 0, r, i;

	if (buf == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	if (lseek(tar_fd, 0, SEEK_SET) != 0) {
		rc = hc_err_set(err, HC_EIO, "seek: %s", strerror(errno));
		goto done;
	}
	a = archive_read_new();
	w = archive_write_new();
	if (a == NULL || w == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_open_fd(a, tar_fd, TS_CHUNK) != ARCHIVE_OK) {
		rc = hc_err_set(err, HC_EDATA, "not a .tar.gz: %s", archive_error_string(a));
		goto done;
	}
	if (archive_write_set_format_zip(w) != ARCHIVE_OK ||
	    archive_write_zip_set_compression_store(w) != ARCHIVE_OK ||
	    archive_write_open_fd(w, zip_fd) != ARCHIVE_OK) {
		rc = hc_err_set(err, HC_EIO, "zip writer: %s", archive_error_string(w));
		goto done;
	}
	for (i = 0; rc == 0; i++) {
		if (i >= TS_ENTRIES_MAX) {
			rc = hc_err_set(err, HC_EDATA, "more than %d entries", TS_ENTRIES_MAX);
			break;
		}
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			rc = hc_err_set(err, HC_EDATA, "entry %d: %s", i, archive_error_string(a));
			break;
		}
		rc = ts_entry(a, w, e, &total, tar_bytes, max_bytes, buf, err);
	}
	if (rc == 0 && archive_write_close(w) != ARCHIVE_OK)
		rc = hc_err_set(err, HC_EIO, "zip writer: %s", archive_error_string(w));
done:
	archive_write_free(w);
	archive_read_free(a);
	free(buf);
	return rc;
}
