/*
 * hydra-agent install: the candidate loop. Bytes stream into PATH.part while
 * SHA-256 runs over them; a source that fails mid-transfer hands over to the
 * next one with a Range request and the hash state carried on; only a file
 * whose digest matches is renamed to PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

/* The side file that says which source and which file the part came from. */
#define PART_META_SUFFIX ".meta"
/* A meta file holds an ETag and a digest: a few hundred bytes. */
#define PART_META_MAX 1024
/* With defer_sync, a file smaller than this keeps no meta: one durable
 * meta costs two fsyncs, more than fetching such a file again. */
#define PART_META_MIN_SIZE (8 * 1024 * 1024)

struct install {
	const struct mf_config *cfg;
	struct mf_result *res;
	const struct mf_fetch_target *t;
	const char *out_path;                     /* t->display */
	const char *part_path;                    /* t->part_display */
	char meta_name[PATH_MAX];                 /* beside the part, in t->part_dirfd */
	int fd;
	struct hc_sha256 *hash;
	struct mf_writer *writer;                 /* writes and hashes behind the network */
	uint64_t have;                            /* bytes in the part file once flushed */
	char expect[HC_SHA256_HEX_LEN + 1];       /* --sha256 or the origin's, or "" */
	struct mf_origin_probe origin;            /* the origin's HEAD, with a district */
	/* What the bytes in the part file are a prefix of. */
	char prefix_host[HC_HOST_MAX];
	char prefix_etag[HC_HTTP_HEADER_VALUE_MAX];
	char prefix_sha[HC_SHA256_HEX_LEN + 1];
	/* The attempt under way. */
	const char *host;
	uint64_t range_from;
	char advertised[HC_SHA256_HEX_LEN + 1];
	int changed;
	int spliced;      /* this response continues bytes an earlier one wrote */
	int64_t unsatisfied_total; /* a 416's total, -1 when no 416 came */
	int bad_range;
	int size_mismatch; /* the source's byte count is not t->size */
	uint64_t size_seen;
	int write_errno;
	enum hc_fail last_fail;   /* the failure class of the last GET */
	/* Progress. */
	enum mf_progress_mode progress;
	uint64_t total;
	uint64_t attempt_start_bytes;
	int64_t attempt_start_ms;
	struct mf_bar bar;
};

/* The district lookup of one install. */
struct install_lookup {
	const struct mf_config *cfg;
	char district[MF_DISTRICT_MAX];
};

void
mf_format_bytes(double v, char *out, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;

	while (v >= 1024.0 && u < sizeof(units) / sizeof(units[0]) - 1) {
		v /= 1024.0;
		u++;
	}
	if (hc_snprintf(out, size, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]) != 0)
		out[0] = '\0';
}

static void
install_draw(struct install *in, int final)
{
	char done[32], total[32], rate[32], left[160];
	int64_t ms = hc_now_ms() - in->attempt_start_ms;
	double bps;
	long eta = -1;
	int rc;

	if (in->progress != MF_PROGRESS_BAR)
		return;
	bps = ms > 0 ? (double)(in->have - in->attempt_start_bytes) * 1000.0 / (double)ms : 0;
	mf_format_bytes((double)in->have, done, sizeof(done));
	mf_format_bytes((double)in->total, total, sizeof(total));
	mf_format_bytes(bps, rate, sizeof(rate));
	if (bps > 0 && in->total > in->have)
		eta = (long)((double)(in->total - in->have) / bps);
	if (in->total > 0)
		rc = hc_snprintf(left, sizeof(left), "%5.1f%%  %s / %s  %s/s  ETA %lds",
		                 100.0 * (double)in->have / (double)in->total, done, total, rate,
		                 eta < 0 ? 0 : eta);
	else
		rc = hc_snprintf(left, sizeof(left), "%s  %s/s", done, rate);
	if (rc == 0)
		mf_bar_draw(&in->bar, left, in->host, final);
}

/* Empties the part file and the hash. The writer must be flushed. On error
 * the install cannot go on. */
static int
install_discard(struct install *in, struct hc_err *err)
{
	/* Truncate first: on failure the part, the hash and have still agree. */
	if (ftruncate(in->fd, 0) != 0) {
		in->write_errno = errno;
		return hc_err_set(err, HC_EIO, "truncate %s: %s", in->part_path, strerror(errno));
	}
	if (hc_sha256_reset(in->hash) != 0) {
		in->write_errno = EIO;
		return hc_err_set(err, HC_ESOFTWARE, "sha256 reset failed");
	}
	mf_writer_rewind(in->writer, 0);
	in->have = 0;
	in->prefix_host[0] = '\0';
	in->prefix_etag[0] = '\0';
	in->prefix_sha[0] = '\0';
	unlinkat(in->t->part_dirfd, in->meta_name, 0);
	return 0;
}

/* Records what the part file is a prefix of, so a rerun after a crash can
 * resume with If-Range. Losing it only costs a restart: errors are ignored. */
static void
install_save_meta(struct install *in)
{
	char text[PART_META_MAX];

	/* A small file is fetched again faster than its meta is made durable;
	 * its part is still checked against the digest it must have. */
	if (in->t->defer_sync && in->t->has_size && in->t->size < PART_META_MIN_SIZE &&
	    in->expect[0] != '\0')
		return;

	if (hc_snprintf(text, sizeof(text), "%s\n%s\n%s\n", in->prefix_host,
	                in->prefix_etag, in->prefix_sha) != 0)
		return;
	(void)hc_atomic_write_at(in->t->part_dirfd, in->meta_name, text, strlen(text), 0644, NULL);
}

static void
install_load_meta(struct install *in)
{
	char *text = NULL, *line, *next;
	char *fields[3] = { NULL, NULL, NULL };
	size_t len = 0, i;

	if (mf_read_at(in->t->part_dirfd, in->meta_name, PART_META_MAX, &text, &len, NULL) != 0)
		return;
	line = text;
	for (i = 0; i < 3 && line != NULL; i++) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		fields[i] = line;
		line = next;
	}
	if (fields[2] != NULL) {
		hc_strlcpy(in->prefix_host, fields[0], sizeof(in->prefix_host));
		hc_strlcpy(in->prefix_etag, fields[1], sizeof(in->prefix_etag));
		if (hc_sha256_hex_valid(fields[2]))
			hc_hex_lower(in->prefix_sha, fields[2], HC_SHA256_HEX_LEN);
	}
	free(text);
}

/* With a size to hold the file to, a source announcing another total is
 * not the file: 1 and the mismatch noted. total -1: not announced. */
static int
install_size_differs(struct install *in, int64_t total)
{
	if (!in->t->has_size || total < 0 || (uint64_t)total == in->t->size)
		return 0;
	in->size_mismatch = 1;
	in->size_seen = (uint64_t)total;
	return 1;
}

static int
install_on_headers(void *ctx, const struct hc_http_response *r)
{
	struct install *in = ctx;
	const char *reference = in->expect[0] != '\0' ? in->expect : in->prefix_sha;

	/* hc_http_request hands over a valid lower-case digest or "". */
	hc_strlcpy(in->advertised, r->sha256, sizeof(in->advertised));
	if (install_size_differs(in, r->status == 206 ? r->range_total :
	                         r->status == 200 ? r->content_length : -1))
		return -1;
	if (r->status == 206) {
		if ((uint64_t)r->range_start != in->range_from) {
			in->bad_range = 1;
			return -1;
		}
		/* The source serves another file than the one the prefix came from. */
		if (in->advertised[0] != '\0' && reference[0] != '\0' &&
		    strcmp(in->advertised, reference) != 0) {
			in->changed = 1;
			return -1;
		}
		in->total = r->range_total > 0 ? (uint64_t)r->range_total : 0;
		in->spliced = in->range_from > 0;
	} else if (r->status == 200) {
		/* Range ignored or If-Range did not match: a whole new file. */
		if (in->have > 0 && install_discard(in, NULL) != 0)
			return -1;
		in->total = r->content_length > 0 ? (uint64_t)r->content_length : 0;
	} else {
		/* 416 to a resume: the part already holds the whole file (a crash
		 * between the last byte and the rename), or more than the file
		 * now has. Either way nothing more comes from this response. */
		if (r->status == 416 && in->range_from > 0)
			in->unsatisfied_total = r->range_total;
		return -1;
	}
	if (in->have == 0) {
		hc_strlcpy(in->prefix_host, in->host, sizeof(in->prefix_host));
		hc_strlcpy(in->prefix_etag, r->etag, sizeof(in->prefix_etag));
		hc_strlcpy(in->prefix_sha, in->advertised, sizeof(in->prefix_sha));
		install_save_meta(in);
	}
	in->attempt_start_bytes = in->have;
	return 0;
}

static int
install_sink(void *ctx, const void *data, size_t len)
{
	struct install *in = ctx;
	int rc;

	/* More bytes than the file has: stop before writing them. */
	if (in->t->has_size && len > in->t->size - in->have) {
		in->size_mismatch = 1;
		in->size_seen = in->have + len;
		return -1;
	}
	rc = mf_writer_push(in->writer, data, len);
	if (rc != 0) {
		in->write_errno = rc;
		return -1;
	}
	in->have += len;
	if (in->cfg->rx_bytes != NULL)
		atomic_fetch_add(in->cfg->rx_bytes, (uint_least64_t)len);
	install_draw(in, 0);
	return 0;
}

static struct mf_attempt *
install_new_attempt(struct install *in, const char *url, const char *host)
{
	struct mf_attempt *a;

	if (in->res->n_attempts >= MF_ATTEMPTS_MAX)
		return NULL;
	a = &in->res->attempts[in->res->n_attempts++];
	memset(a, 0, sizeof(*a));
	hc_strlcpy(a->url, url, sizeof(a->url));
	hc_strlcpy(a->host, host, sizeof(a->host));
	a->result = "ok";
	return a;
}

/* HEAD-probes a district candidate. 0 when it answers 200; sha256 is then
 * the digest it advertises, or "". *fail is the failure class. */
static int
install_probe(struct install *in, const struct mf_candidate *c, struct mf_attempt *a,
              char sha256[HC_SHA256_HEX_LEN + 1], enum hc_fail *fail, struct hc_err *why)
{
	struct hc_http_config http = in->cfg->http;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	int rc;

	http.total_timeout_ms = in->cfg->head_timeout_ms;
	if (http.connect_timeout_ms == 0 || http.connect_timeout_ms > in->cfg->head_timeout_ms)
		http.connect_timeout_ms = in->cfg->head_timeout_ms;
	req.method = "HEAD";
	req.url = c->url;
	req.parsed = &c->u;
	rc = hc_http_request(&http, &req, &resp, why);
	a->http_status = resp.status;
	a->ms = resp.elapsed_ms;
	*fail = resp.fail;
	if (rc != 0) {
		a->result = hc_fail_name(resp.fail);
		return rc;
	}
	if (resp.status != 200) {
		a->result = hc_fail_name(HC_FAIL_HTTP_STATUS);
		return hc_err_set(why, HC_EUNAVAIL, "HEAD returned HTTP %ld", resp.status);
	}
	hc_strlcpy(sha256, resp.sha256, HC_SHA256_HEX_LEN + 1);
	return 0;
}

/*
 * Decides, once the district c answered its HEAD with digest advertised,
 * what the file is checked against: the origin's digest when the origin
 * answered (a district that disagrees with it is not used: 1 after the
 * mismatch is reported), else the district's own, with a warning. 0 when
 * the district may serve the file.
 */
static int
install_reference(struct install *in, const struct mf_candidate *c, const char *advertised,
                  struct mf_attempt *a, struct hc_err *why)
{
	struct mf_origin_probe *o = &in->origin;

	if (in->expect[0] != '\0')
		return 0;
	mf_origin_probe_wait(o);
	if (o->sha256[0] == '\0') {
		in->res->digest_source = "mirror";
		hc_log(HC_LOG_WARN, MF_MOD, "digest for %s from %s only: origin unreachable (%s)",
		       in->out_path, c->host, o->why.msg);
		return 0;
	}
	if (advertised[0] != '\0' && strcmp(advertised, o->sha256) != 0) {
		a->result = "sha256_mismatch";
		hc_err_set(why, HC_EDATA, "its sha256 %s is not the origin's %s", advertised,
		           o->sha256);
		mf_report_mismatch(in->cfg, c, in->out_path);
		return 1;
	}
	hc_strlcpy(in->expect, o->sha256, sizeof(in->expect));
	in->res->digest_source = "origin";
	return 0;
}

enum get_outcome { GET_OK, GET_SOURCE_FAILED, GET_MISMATCH, GET_CHANGED, GET_LOCAL_ERROR };

/* Resets the per-attempt state and fills req for a GET of c, resuming at
 * the bytes the part file holds. */
static void
install_get_prepare(struct install *in, const struct mf_candidate *c,
                    struct hc_http_request *req)
{
	in->host = c->host;
	in->range_from = in->have;
	in->changed = 0;
	in->spliced = 0;
	in->unsatisfied_total = -1;
	in->bad_range = 0;
	in->size_mismatch = 0;
	in->write_errno = 0;
	in->advertised[0] = '\0';
	in->attempt_start_ms = hc_now_ms();
	in->attempt_start_bytes = in->have;
	req->url = c->url;
	req->parsed = &c->u;
	req->sink = install_sink;
	req->on_headers = install_on_headers;
	req->ctx = in;
	req->fail_on_http_error = 1;
	if (in->have > 0) {
		req->range_from = (int64_t)in->have;
		/* An ETag only identifies a file on the server that issued it. */
		if (strcasecmp(in->prefix_host, c->host) == 0 && in->prefix_etag[0] == '"')
			req->if_range = in->prefix_etag;
		hc_log(HC_LOG_INFO, MF_MOD, "resuming at %" PRIu64 " bytes from %s", in->have, c->host);
	}
}

/* What a finished transfer means before the digest is looked at: GET_OK
 * when the part now holds the whole file as far as the transfer can tell. */
static enum get_outcome
install_get_transfer_verdict(struct install *in, int rc, const struct hc_http_response *resp,
                             struct mf_attempt *a, struct hc_err *why)
{
	const char *host = in->host;

	if (in->write_errno != 0) {
		a->result = "io";
		hc_err_set(why, HC_EIO, "write %s: %s", in->part_path, strerror(in->write_errno));
		return GET_LOCAL_ERROR;
	}
	if (in->size_mismatch) {
		a->result = "size_mismatch";
		hc_err_set(why, HC_EDATA, "size mismatch: %s has %s%" PRIu64 " bytes, want %" PRIu64,
		           host, in->size_seen > in->have ? "" : "at least ", in->size_seen,
		           in->t->size);
		return GET_MISMATCH;
	}
	if (in->changed) {
		a->result = "changed";
		hc_err_set(why, HC_EDATA, "%s serves a different file (sha256 %s) than the "
		           "partial download", host, in->advertised);
		return GET_CHANGED;
	}
	if (in->bad_range) {
		a->result = "bad_range";
		hc_err_set(why, HC_EUNAVAIL, "%s answered a range other than bytes=%" PRIu64 "-",
		           host, in->range_from);
		return GET_SOURCE_FAILED;
	}
	if (in->unsatisfied_total >= 0) {
		if ((uint64_t)in->unsatisfied_total != in->have) {
			a->result = "changed";
			hc_err_set(why, HC_EDATA, "%s has %" PRId64 " bytes, the partial download "
			           "%" PRIu64, host, in->unsatisfied_total, in->have);
			return GET_CHANGED;
		}
		/* The part is whole: only its digest is left to check. */
		hc_log(HC_LOG_INFO, MF_MOD, "%s already holds all %" PRIu64 " bytes",
		       in->part_path, in->have);
		in->spliced = 1;
		a->result = "ok";
		return GET_OK;
	}
	if (rc != 0) {
		a->result = hc_fail_name(resp->fail);
		return GET_SOURCE_FAILED;
	}
	if (in->total > 0 && in->have != in->total) {
		/* A 206 that stops short of the end is not the file. The bytes
		 * are good as far as they go: the next source resumes them. */
		a->result = "short";
		hc_err_set(why, HC_EUNAVAIL, "%s sent %" PRIu64 " of %" PRIu64 " bytes", host,
		           in->have, in->total);
		return GET_SOURCE_FAILED;
	}
	if (in->t->has_size && in->have != in->t->size) {
		a->result = "size_mismatch";
		hc_err_set(why, HC_EDATA, "size mismatch: %s sent %" PRIu64 " bytes, want %" PRIu64,
		           host, in->have, in->t->size);
		return GET_MISMATCH;
	}
	return GET_OK;
}

/* Compares the digest of the part with --sha256, else the source's, else
 * the one the prefix came with. */
static enum get_outcome
install_get_verify(struct install *in, struct mf_attempt *a, struct hc_err *why)
{
	char got[HC_SHA256_HEX_LEN + 1];
	const char *want;

	if (hc_sha256_hex(in->hash, got) != 0) {
		hc_err_set(why, HC_ESOFTWARE, "sha256 failed");
		return GET_LOCAL_ERROR;
	}
	want = in->expect[0] != '\0' ? in->expect :
	       in->advertised[0] != '\0' ? in->advertised : in->prefix_sha;
	if (want[0] == '\0') {
		hc_log(HC_LOG_WARN, MF_MOD, "%s sent no X-File-SHA256 or Repr-Digest and no "
		       "--sha256 was given: %s is not verified", in->host, in->out_path);
	} else if (strcmp(got, want) != 0) {
		a->result = "sha256_mismatch";
		if (in->spliced) {
			/* The prefix may be what is wrong (a stale part file): this
			 * source deserves one try from zero before it is blamed. */
			hc_err_set(why, HC_EDATA, "sha256 mismatch after resuming at %" PRIu64
			           " bytes from %s", in->range_from, in->host);
			return GET_CHANGED;
		}
		hc_err_set(why, HC_EDATA, "sha256 mismatch: got %s, want %s", got, want);
		return GET_MISMATCH;
	}
	hc_strlcpy(in->res->sha256, got, sizeof(in->res->sha256));
	return GET_OK;
}

/* One GET from c, appending to the part file. why says what went wrong. */
static enum get_outcome
install_get(struct install *in, const struct mf_candidate *c, struct mf_attempt *a,
            struct hc_err *why)
{
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	enum get_outcome outcome;
	int rc, flush_errno;

	install_get_prepare(in, c, &req);
	hc_log(HC_LOG_INFO, MF_MOD, "downloading %s", c->url);
	rc = hc_http_request(&in->cfg->http, &req, &resp, why);
	/* Everything received is in the part file and the hash from here on. */
	flush_errno = mf_writer_flush(in->writer);
	if (flush_errno != 0 && in->write_errno == 0)
		in->write_errno = flush_errno;
	in->last_fail = resp.fail;
	a->http_status = resp.status;
	a->bytes = resp.body_bytes;
	a->ms = resp.elapsed_ms;
	if (in->progress == MF_PROGRESS_BAR && resp.body_bytes > 0)
		install_draw(in, 1);
	outcome = install_get_transfer_verdict(in, rc, &resp, a, why);
	if (outcome != GET_OK)
		return outcome;
	return install_get_verify(in, a, why);
}

/* fdatasync, rename PATH.part to PATH, fsync the directory (with
 * defer_sync: write-back started and the rename alone). fdatasync
 * writes the data and the size (what reading the file back needs); the
 * writer has handed most of the data to write-back already. */
static int
install_commit(struct install *in, struct hc_err *err)
{
	if (in->t->defer_sync) {
		/* Only a hint: the caller's syncfs is what makes it durable. */
		(void)sync_file_range(in->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		if (renameat(in->t->part_dirfd, in->t->part_name, in->t->dirfd, in->t->name) != 0)
			return hc_err_set(err, HC_EIO, "rename %s: %s", in->out_path, strerror(errno));
		unlinkat(in->t->part_dirfd, in->meta_name, 0);
		return 0;
	}
	if (fdatasync(in->fd) != 0)
		return hc_err_set(err, HC_EIO, "fdatasync %s: %s", in->part_path, strerror(errno));
	if (renameat(in->t->part_dirfd, in->t->part_name, in->t->dirfd, in->t->name) != 0)
		return hc_err_set(err, HC_EIO, "rename %s: %s", in->out_path, strerror(errno));
	unlinkat(in->t->part_dirfd, in->meta_name, 0);
	if (fsync(in->t->dirfd) != 0)
		return hc_err_set(err, HC_EIO, "fsync the folder of %s: %s", in->out_path,
		                  strerror(errno));
	return 0;
}

/* Refuses a final name that exists and is not a regular file: a link
 * there would be replaced by the verified file but is the mark of someone
 * else's plan, and a folder cannot be replaced at all. */
static int
install_check_final(struct install *in, struct hc_err *err)
{
	struct stat st;

	if (fstatat(in->t->dirfd, in->t->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;
		return hc_err_set(err, HC_ECANTCREAT, "stat %s: %s", in->out_path, strerror(errno));
	}
	if (S_ISLNK(st.st_mode))
		return hc_err_set(err, HC_ECANTCREAT, "%s is a symbolic link; refusing to "
		                  "replace it", in->out_path);
	if (!S_ISREG(st.st_mode))
		return hc_err_set(err, HC_ECANTCREAT, "%s exists and is not a regular file",
		                  in->out_path);
	return 0;
}

/* Opens the part file without following a link: created with O_EXCL, or an
 * earlier run's regular file reopened. A link, FIFO, folder or other
 * non-regular file there is refused before a byte is written. */
static int
install_open_part_fd(struct install *in, int *created, struct hc_err *err)
{
	const struct mf_fetch_target *t = in->t;
	struct stat st;
	int fd;

	*created = 0;
	fd = openat(t->part_dirfd, t->part_name,
	            O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0) {
		*created = 1;
		return fd;
	}
	if (errno == EEXIST)
		fd = openat(t->part_dirfd, t->part_name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "cannot create %s: %s", in->part_path,
		                  errno == ELOOP ? "it is a symbolic link" :
		                  errno == EISDIR ? "it is a folder" : strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return hc_err_set(err, HC_ECANTCREAT, "cannot create %s: it exists and is not a "
		                  "regular file", in->part_path);
	}
	return fd;
}

/* Opens the part file, re-hashing what an earlier run left in it. */
static int
install_open_part(struct install *in, struct hc_err *err)
{
	struct stat st;
	int fd, rc, created;

	if (hc_snprintf(in->meta_name, sizeof(in->meta_name), "%s" PART_META_SUFFIX,
	                in->t->part_name) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "path too long: %s", in->out_path);
	rc = install_check_final(in, err);
	if (rc != 0)
		return rc;
	fd = install_open_part_fd(in, &created, err);
	if (fd < 0)
		return fd;
	/* Two installs to one PATH would truncate each other's bytes. The loser
	 * leaves the part alone: in->fd stays -1, so nothing is cleaned up. */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return hc_err_set(err, HC_EIO, "%s is being written by another install",
		                  in->part_path);
	}
	in->fd = fd;
	if (hc_atomic_sweep_at(in->t->part_dirfd, in->meta_name) > 0)
		hc_log(HC_LOG_INFO, MF_MOD, "removed the temp files of %s%s left by an interrupted "
		       "install", in->part_path, PART_META_SUFFIX);
	if (fstat(in->fd, &st) != 0)
		return hc_err_set(err, HC_EIO, "stat %s: %s", in->part_path, strerror(errno));
	/* A part longer than the file can be is not a prefix of it. */
	if (in->t->has_size && (uint64_t)st.st_size > in->t->size) {
		if (ftruncate(in->fd, 0) != 0)
			return hc_err_set(err, HC_EIO, "truncate %s: %s", in->part_path, strerror(errno));
		unlinkat(in->t->part_dirfd, in->meta_name, 0);
		return 0;
	}
	if (st.st_size == 0)
		return 0;
	rc = hc_sha256_fd(in->hash, in->fd, st.st_size, err);
	if (rc != 0)
		return hc_err_prefix(err, "%s", in->part_path);
	in->have = (uint64_t)st.st_size;
	install_load_meta(in);
	hc_log(HC_LOG_INFO, MF_MOD, "found %s with %" PRIu64 " bytes, resuming", in->part_path,
	       in->have);
	return 0;
}

/* What the candidate loop has met so far: it decides between "checksum
 * failed everywhere" and "no source". */
struct install_tally {
	int mismatches;
	int source_failures;
	struct hc_err why;
	struct hc_err mismatch_why;  /* the last checksum failure */
};

enum try_result { TRY_COMMITTED, TRY_NEXT, TRY_STOP };

/* Logs why candidate c was left, in the words of docs/architecture.md section 7. */
static void
install_log_fallback(const struct install *in, const struct mf_candidate *c,
                     int is_district, const struct hc_err *why)
{
	if (is_district && c->extra)
		hc_log(HC_LOG_WARN, MF_MOD, "mirror %s unavailable (%s), trying the next source",
		       c->host, why->msg);
	else if (is_district)
		hc_log(HC_LOG_WARN, MF_MOD, "district mirror %s unavailable (%s), falling back to %s",
		       c->host, why->msg, in->cfg->origin_host);
	else
		hc_log(HC_LOG_WARN, MF_MOD, "source %s failed: %s", c->host, why->msg);
}

/* The file is verified: into place, and the result says where it came from. */
static int
install_finish(struct install *in, const struct mf_candidate *c, int fallback, int is_last,
               int64_t start, struct hc_err *err)
{
	struct mf_result *res = in->res;
	int rc;

	rc = install_commit(in, err);
	if (rc != 0)
		return rc;
	/* Without a reference the source's own digest decided: the origin's
	 * when the source is the URL asked for (the last candidate), even after
	 * a district was first checked against its own. */
	if (res->digest_source == NULL ||
	    (is_last && strcmp(res->digest_source, "mirror") == 0))
		res->digest_source = res->sha256[0] == '\0' ? "none" : is_last ? "origin" : "mirror";
	hc_strlcpy(res->source_url, c->url, sizeof(res->source_url));
	hc_strlcpy(res->source_host, c->host, sizeof(res->source_host));
	res->bytes = in->have;
	res->fallback = fallback;
	res->elapsed_ms = hc_now_ms() - start;
	hc_log(HC_LOG_INFO, MF_MOD, "download complete: %s %" PRIu64 " bytes sha256 %s "
	       "from %s in %" PRId64 " ms", in->out_path, res->bytes, res->sha256, c->host,
	       res->elapsed_ms);
	return 0;
}

/*
 * Tries candidate c: a HEAD probe for a district mirror, the GET, and one
 * restart from zero when the source changed under a resume. TRY_COMMITTED
 * when the file is verified (not yet in place), TRY_NEXT to go on, TRY_STOP
 * when no attempt is left, or a negative status that ends the install.
 */
static int
install_try(struct install *in, const struct mf_candidate *c, int is_district,
            struct install_tally *t, struct hc_err *err)
{
	struct mf_attempt *a;
	enum get_outcome outcome;
	char advertised[HC_SHA256_HEX_LEN + 1] = "";
	enum hc_fail fail = HC_FAIL_NONE;
	int rc;

	a = install_new_attempt(in, c->url, c->host);
	if (a == NULL)
		return TRY_STOP;
	if (is_district && mf_source_skipped(in->cfg->sources, c->host, c->u.port)) {
		/* Found down by an earlier file of this run, and logged then. */
		a->result = "skipped";
		hc_err_set(&t->why, HC_EUNAVAIL, "%s failed earlier in this run", c->host);
		t->source_failures++;
		return TRY_NEXT;
	}
	if (is_district && install_probe(in, c, a, advertised, &fail, &t->why) != 0) {
		t->source_failures++;
		if (!mf_source_failed(in->cfg->sources, c->host, c->u.port, fail))
			install_log_fallback(in, c, 1, &t->why);
		return TRY_NEXT;
	}
	if (is_district && install_reference(in, c, advertised, a, &t->why) != 0) {
		t->mismatches++;
		t->mismatch_why = t->why;
		install_log_fallback(in, c, 1, &t->why);
		return TRY_NEXT;
	}
	outcome = install_get(in, c, a, &t->why);
	if (outcome == GET_CHANGED) {
		/* Start this source again from zero, once. */
		rc = install_discard(in, err);
		if (rc != 0)
			return rc;
		hc_log(HC_LOG_WARN, MF_MOD, "%s, restarting from zero", t->why.msg);
		a = install_new_attempt(in, c->url, c->host);
		if (a == NULL)
			return TRY_STOP;
		outcome = install_get(in, c, a, &t->why);
	}
	if (outcome == GET_OK)
		return TRY_COMMITTED;
	if (outcome == GET_LOCAL_ERROR) {
		/* A full disk needs the space back more than it needs the part. */
		if (in->write_errno == ENOSPC) {
			unlinkat(in->t->part_dirfd, in->t->part_name, 0);
			unlinkat(in->t->part_dirfd, in->meta_name, 0);
		}
		return hc_err_set(err, t->why.status, "%s", t->why.msg);
	}
	if (outcome == GET_MISMATCH || outcome == GET_CHANGED) {
		t->mismatches++;
		t->mismatch_why = t->why;
		rc = install_discard(in, err);
		if (rc != 0)
			return rc;
		if (is_district && outcome == GET_MISMATCH)
			mf_report_mismatch(in->cfg, c, in->out_path);
	} else {
		t->source_failures++;
		if (is_district && mf_source_failed(in->cfg->sources, c->host, c->u.port,
		                                     in->last_fail))
			return TRY_NEXT;
	}
	install_log_fallback(in, c, is_district, &t->why);
	return TRY_NEXT;
}

int
mf_fetch_at(const struct mf_config *cfg, const struct mf_candidates *cand,
            const struct mf_fetch_target *t, enum mf_progress_mode progress,
            struct mf_result *res, struct hc_err *err)
{
	struct install in;
	struct install_tally tally = { 0, 0, { 0, "" }, { 0, "" } };
	int64_t start = hc_now_ms();
	size_t i;
	int rc = 0, tried = TRY_NEXT;

	memset(res, 0, sizeof(*res));
	memset(&in, 0, sizeof(in));
	in.cfg = cfg;
	in.res = res;
	in.t = t;
	in.out_path = t->display;
	in.part_path = t->part_display;
	in.fd = -1;
	in.progress = progress;
	hc_strlcpy(res->path, t->display, sizeof(res->path));
	if (cand->n == 0)
		return hc_err_set(err, HC_ESOFTWARE, "no candidate URL for %s", t->display);
	if (t->expect_sha256 != NULL && *t->expect_sha256 != '\0') {
		if (!hc_sha256_hex_valid(t->expect_sha256))
			return hc_err_set(err, HC_EUSAGE, "--sha256: '%s' is not 64 hex digits",
			                  t->expect_sha256);
		hc_hex_lower(in.expect, t->expect_sha256, HC_SHA256_HEX_LEN);
	}
	in.hash = hc_sha256_new();
	if (in.hash == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = install_open_part(&in, err);
	if (rc != 0)
		goto done;
	rc = mf_writer_new(in.fd, in.hash, in.have, &in.writer, err);
	if (rc != 0)
		goto done;
	if (progress == MF_PROGRESS_BAR)
		mf_bar_begin(&in.bar);
	if (in.expect[0] != '\0')
		res->digest_source = "argument";
	else if (cand->n > 1)
		(void)mf_origin_probe_start(cfg, &cand->c[cand->n - 1], &in.origin);

	for (i = 0; i < cand->n && tried == TRY_NEXT; i++)
		tried = install_try(&in, &cand->c[i], cand->n > 1 && i + 1 < cand->n, &tally, err);
	if (tried == TRY_COMMITTED)
		rc = install_finish(&in, &cand->c[i - 1], i > 1, i == cand->n, start, err);
	else if (tried < 0)
		rc = tried;
	else if (tally.mismatches > 0)
		/* A source that sent wrong bytes says more than one that sent none. */
		rc = hc_err_set(err, HC_EDATA, "checksum failed on every source that answered: %s",
		                tally.mismatch_why.msg);
	else
		rc = hc_err_set(err, HC_EUNAVAIL, "no source could deliver %s: %s",
		                cand->c[cand->n - 1].url, tally.why.msg);
done:
	mf_origin_probe_wait(&in.origin);
	mf_bar_end(&in.bar);
	/* A part with bytes is kept for the next run to resume; an empty one is not. */
	if (rc != 0 && in.fd >= 0 && in.have == 0) {
		unlinkat(t->part_dirfd, t->part_name, 0);
		unlinkat(t->part_dirfd, in.meta_name, 0);
	}
	res->elapsed_ms = hc_now_ms() - start;
	mf_writer_free(in.writer);
	if (in.fd >= 0)
		close(in.fd);
	hc_sha256_free(in.hash);
	return rc;
}

/* The district of an install, asked for only when the URL is the origin's. */
static int
install_district(void *ctx, const char **district, struct hc_err *err)
{
	struct install_lookup *l = ctx;
	int rc;

	rc = mf_district_lookup(l->cfg, l->district, err);
	*district = l->district;
	return rc;
}

/* Opens the folder of out_path and fills t: PATH and PATH.part there. */
static int
install_target(const char *out_path, char *part_name, size_t part_size, char *part_display,
               size_t display_size, struct mf_fetch_target *t, struct hc_err *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(out_path, '/');

	memset(t, 0, sizeof(*t));
	t->dirfd = -1;
	t->part_dirfd = -1;
	t->display = out_path;
	t->name = slash != NULL ? slash + 1 : out_path;
	/* "b" lives in ".", "/b" in "/", "a/b" in "a". */
	if (hc_snprintf(dir, sizeof(dir), "%.*s", slash == NULL || slash == out_path ? 1 :
	                (int)(slash - out_path), slash == NULL ? "." : out_path) != 0 ||
	    hc_snprintf(part_name, part_size, "%s.part", t->name) != 0 ||
	    hc_snprintf(part_display, display_size, "%s.part", out_path) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "path too long: %s", out_path);
	if (t->name[0] == '\0')
		return hc_err_set(err, HC_ECANTCREAT, "%s: names a folder, not a file", out_path);
	t->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "cannot create %s: %s: %s", part_display, dir,
		                  strerror(errno));
	t->part_dirfd = t->dirfd;
	t->part_name = part_name;
	t->part_display = part_display;
	return 0;
}

/* 1 when out_path is a regular file (not a link) whose digest is want (lower
 * case): a rerun of the install hook then costs no transfer. Anything that
 * keeps it from being known is 0: the install goes on and decides. */
static int
install_already_there(const char *out_path, const char *want)
{
	struct hc_sha256 *h = NULL;
	char got[HC_SHA256_HEX_LEN + 1] = "";
	struct stat st;
	int fd, same = 0;

	fd = open(out_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto done;
	h = hc_sha256_new();
	if (h == NULL || hc_sha256_fd(h, fd, st.st_size, NULL) != 0 || hc_sha256_hex(h, got) != 0)
		goto done;
	same = strcmp(got, want) == 0;
done:
	hc_sha256_free(h);
	close(fd);
	return same;
}

int
mf_install(const struct mf_config *cfg, const char *url, const char *out_path,
           const char *expect_sha256, enum mf_progress_mode progress,
           struct mf_result *res, struct hc_err *err)
{
	struct mf_config run = *cfg;
	struct install_lookup l = { &run, "" };
	struct mf_candidates cand;
	struct mf_fetch_target t;
	char part_name[PATH_MAX], part_display[PATH_MAX];
	struct hc_url u = { .path_query = NULL };
	int rc;

	memset(res, 0, sizeof(*res));
	hc_strlcpy(res->path, out_path, sizeof(res->path));
	if (*out_path == '\0')
		return hc_err_set(err, HC_EUSAGE, "--out: empty path");
	if (expect_sha256 != NULL && *expect_sha256 != '\0' && !hc_sha256_hex_valid(expect_sha256))
		return hc_err_set(err, HC_EUSAGE, "--sha256: '%s' is not 64 hex digits",
		                  expect_sha256);
	if (expect_sha256 != NULL && *expect_sha256 != '\0') {
		/* A malformed --url stays a usage error even when nothing is fetched. */
		rc = hc_url_parse(url, &u, err);
		hc_url_free(&u);
		if (rc != 0) {
			hc_err_prefix(err, "URL '%s'", url);
			if (err != NULL)
				err->status = HC_EUSAGE;
			return HC_EUSAGE;
		}
		hc_hex_lower(res->sha256, expect_sha256, HC_SHA256_HEX_LEN);
		if (install_already_there(out_path, res->sha256)) {
			res->already_installed = 1;
			res->digest_source = "argument";
			hc_log(HC_LOG_INFO, MF_MOD, "already installed: %s sha256 %s", out_path,
			       res->sha256);
			return 0;
		}
		res->sha256[0] = '\0';
	}
	/* The district's HEAD and GET go over one connection. */
	run.http.reuse_connections = 1;
	rc = mf_candidates_for(&run, url, install_district, &l, &cand, err);
	if (rc != 0)
		return rc;
	/* cand is freed below on every path. */
	rc = install_target(out_path, part_name, sizeof(part_name), part_display,
	                    sizeof(part_display), &t, err);
	if (rc == 0) {
		t.expect_sha256 = expect_sha256;
		rc = mf_fetch_at(&run, &cand, &t, progress, res, err);
	}
	if (t.dirfd >= 0)
		close(t.dirfd);
	mf_candidates_free(&cand);
	return rc;
}
