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

#include "mirrorfetch/mirrorfetch.h"

#define MOD "mirrorfetch"
/* The side file that says which source and which file the part came from. */
#define PART_META_SUFFIX ".meta"
/* Progress redraws at most this often. */
#define PROGRESS_PERIOD_MS 100
/* A meta file holds an ETag and a digest: a few hundred bytes. */
#define PART_META_MAX 1024

struct install {
	const struct mf_config *cfg;
	struct mf_result *res;
	const char *out_path;
	char part_path[PATH_MAX];
	char meta_path[PATH_MAX];
	int fd;
	struct hc_sha256 *hash;
	struct mf_writer *writer;                 /* writes and hashes behind the network */
	uint64_t have;                            /* bytes in the part file once flushed */
	char expect[HC_SHA256_HEX_LEN + 1];       /* --sha256, or "" */
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
	int write_errno;
	/* Progress. */
	enum mf_progress_mode progress;
	uint64_t total;
	uint64_t attempt_start_bytes;
	int64_t attempt_start_ms;
	int64_t last_draw_ms;
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
	char done[32], total[32], rate[32], line[256];
	int64_t now = hc_now_ms();
	int64_t ms = now - in->attempt_start_ms;
	double bps;
	long eta = -1;
	int n;

	if (in->progress != MF_PROGRESS_BAR)
		return;
	if (!final && now - in->last_draw_ms < PROGRESS_PERIOD_MS)
		return;
	in->last_draw_ms = now;
	bps = ms > 0 ? (double)(in->have - in->attempt_start_bytes) * 1000.0 / (double)ms : 0;
	mf_format_bytes((double)in->have, done, sizeof(done));
	mf_format_bytes((double)in->total, total, sizeof(total));
	mf_format_bytes(bps, rate, sizeof(rate));
	if (bps > 0 && in->total > in->have)
		eta = (long)((double)(in->total - in->have) / bps);
	if (in->total > 0)
		n = snprintf(line, sizeof(line), "\r%5.1f%%  %s / %s  %s/s  ETA %lds  %s  ",
		             100.0 * (double)in->have / (double)in->total, done, total, rate,
		             eta < 0 ? 0 : eta, in->host);
	else
		n = snprintf(line, sizeof(line), "\r%s  %s/s  %s  ", done, rate, in->host);
	if (n > 0)
		(void)hc_write_all(STDERR_FILENO, line, (size_t)n < sizeof(line) ?
		                   (size_t)n : sizeof(line) - 1);
	if (final)
		(void)hc_write_all(STDERR_FILENO, "\n", 1);
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
	unlink(in->meta_path);
	return 0;
}

/* Records what the part file is a prefix of, so a rerun after a crash can
 * resume with If-Range. Losing it only costs a restart: errors are ignored. */
static void
install_save_meta(struct install *in)
{
	char text[PART_META_MAX];

	if (hc_snprintf(text, sizeof(text), "%s\n%s\n%s\n", in->prefix_host,
	                in->prefix_etag, in->prefix_sha) != 0)
		return;
	(void)hc_atomic_write(in->meta_path, text, strlen(text), 0644, NULL);
}

static void
install_load_meta(struct install *in)
{
	char *text = NULL, *line, *next;
	char *fields[3] = { NULL, NULL, NULL };
	size_t len = 0, i;

	if (hc_read_file(in->meta_path, PART_META_MAX, &text, &len, NULL) != 0)
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

static int
install_on_headers(void *ctx, const struct hc_http_response *r)
{
	struct install *in = ctx;
	const char *reference = in->expect[0] != '\0' ? in->expect : in->prefix_sha;

	/* hc_http_request hands over a valid lower-case digest or "". */
	hc_strlcpy(in->advertised, r->sha256, sizeof(in->advertised));
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
	int rc = mf_writer_push(in->writer, data, len);

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

/* HEAD-probes a district candidate. 0 when it answers 200. */
static int
install_probe(struct install *in, const char *url, struct mf_attempt *a,
              struct hc_err *why)
{
	struct hc_http_config http = in->cfg->http;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	int rc;

	http.total_timeout_ms = in->cfg->head_timeout_ms;
	if (http.connect_timeout_ms == 0 || http.connect_timeout_ms > in->cfg->head_timeout_ms)
		http.connect_timeout_ms = in->cfg->head_timeout_ms;
	req.method = "HEAD";
	req.url = url;
	rc = hc_http_request(&http, &req, &resp, why);
	a->http_status = resp.status;
	a->ms = resp.elapsed_ms;
	if (rc != 0) {
		a->result = hc_fail_name(resp.fail);
		return rc;
	}
	if (resp.status != 200) {
		a->result = hc_fail_name(HC_FAIL_HTTP_STATUS);
		return hc_err_set(why, HC_EUNAVAIL, "HEAD returned HTTP %ld", resp.status);
	}
	return 0;
}

enum get_outcome { GET_OK, GET_SOURCE_FAILED, GET_MISMATCH, GET_CHANGED, GET_LOCAL_ERROR };

/* One GET from url, appending to the part file. why says what went wrong. */
static enum get_outcome
install_get(struct install *in, const char *url, const char *host, struct mf_attempt *a,
            struct hc_err *why)
{
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	char got[HC_SHA256_HEX_LEN + 1];
	const char *want;
	int rc, flush_errno;

	in->host = host;
	in->range_from = in->have;
	in->changed = 0;
	in->spliced = 0;
	in->unsatisfied_total = -1;
	in->bad_range = 0;
	in->write_errno = 0;
	in->advertised[0] = '\0';
	in->attempt_start_ms = hc_now_ms();
	in->attempt_start_bytes = in->have;
	req.url = url;
	req.sink = install_sink;
	req.on_headers = install_on_headers;
	req.ctx = in;
	req.fail_on_http_error = 1;
	if (in->have > 0) {
		req.range_from = (int64_t)in->have;
		/* An ETag only identifies a file on the server that issued it. */
		if (strcasecmp(in->prefix_host, host) == 0 && in->prefix_etag[0] == '"')
			req.if_range = in->prefix_etag;
		hc_log(HC_LOG_INFO, MOD, "resuming at %" PRIu64 " bytes from %s", in->have, host);
	}
	hc_log(HC_LOG_INFO, MOD, "downloading %s", url);
	rc = hc_http_request(&in->cfg->http, &req, &resp, why);
	/* Everything received is in the part file and the hash from here on. */
	flush_errno = mf_writer_flush(in->writer);
	if (flush_errno != 0 && in->write_errno == 0)
		in->write_errno = flush_errno;
	a->http_status = resp.status;
	a->bytes = resp.body_bytes;
	a->ms = resp.elapsed_ms;
	if (in->progress == MF_PROGRESS_BAR && resp.body_bytes > 0)
		install_draw(in, 1);
	if (in->write_errno != 0) {
		a->result = "io";
		hc_err_set(why, HC_EIO, "write %s: %s", in->part_path, strerror(in->write_errno));
		return GET_LOCAL_ERROR;
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
		hc_log(HC_LOG_INFO, MOD, "%s already holds all %" PRIu64 " bytes",
		       in->part_path, in->have);
		in->spliced = 1;
		a->result = "ok";
	} else if (rc != 0) {
		a->result = hc_fail_name(resp.fail);
		return GET_SOURCE_FAILED;
	} else if (in->total > 0 && in->have != in->total) {
		/* A 206 that stops short of the end is not the file. The bytes
		 * are good as far as they go: the next source resumes them. */
		a->result = "short";
		hc_err_set(why, HC_EUNAVAIL, "%s sent %" PRIu64 " of %" PRIu64 " bytes", host,
		           in->have, in->total);
		return GET_SOURCE_FAILED;
	}
	if (hc_sha256_hex(in->hash, got) != 0) {
		hc_err_set(why, HC_ESOFTWARE, "sha256 failed");
		return GET_LOCAL_ERROR;
	}
	want = in->expect[0] != '\0' ? in->expect :
	       in->advertised[0] != '\0' ? in->advertised : in->prefix_sha;
	if (want[0] == '\0') {
		hc_log(HC_LOG_WARN, MOD, "%s sent no X-File-SHA256 or Repr-Digest and no "
		       "--sha256 was given: %s is not verified", host, in->out_path);
	} else if (strcmp(got, want) != 0) {
		a->result = "sha256_mismatch";
		if (in->spliced) {
			/* The prefix may be what is wrong (a stale part file): this
			 * source deserves one try from zero before it is blamed. */
			hc_err_set(why, HC_EDATA, "sha256 mismatch after resuming at %" PRIu64
			           " bytes from %s", in->range_from, host);
			return GET_CHANGED;
		}
		hc_err_set(why, HC_EDATA, "sha256 mismatch: got %s, want %s", got, want);
		return GET_MISMATCH;
	}
	hc_strlcpy(in->res->sha256, got, sizeof(in->res->sha256));
	return GET_OK;
}

/* fsync, rename PATH.part to PATH, fsync the directory. */
static int
install_commit(struct install *in, struct hc_err *err)
{
	if (fsync(in->fd) != 0)
		return hc_err_set(err, HC_EIO, "fsync %s: %s", in->part_path, strerror(errno));
	if (rename(in->part_path, in->out_path) != 0)
		return hc_err_set(err, HC_EIO, "rename %s: %s", in->out_path, strerror(errno));
	unlink(in->meta_path);
	return hc_fsync_dir(in->out_path, err);
}

/* Opens the part file (part_path, or PATH.part), re-hashing what an earlier
 * run left in it. */
static int
install_open_part(struct install *in, const char *part_path, struct hc_err *err)
{
	struct stat st;
	int fd, rc;

	if ((part_path != NULL ?
	     hc_snprintf(in->part_path, sizeof(in->part_path), "%s", part_path) :
	     hc_snprintf(in->part_path, sizeof(in->part_path), "%s.part", in->out_path)) != 0 ||
	    hc_snprintf(in->meta_path, sizeof(in->meta_path), "%s" PART_META_SUFFIX,
	                in->part_path) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "path too long: %s", in->out_path);
	fd = open(in->part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "cannot create %s: %s", in->part_path,
		                  strerror(errno));
	/* Two installs to one PATH would truncate each other's bytes. The loser
	 * leaves the part alone: in->fd stays -1, so nothing is cleaned up. */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return hc_err_set(err, HC_EIO, "%s is being written by another install",
		                  in->part_path);
	}
	in->fd = fd;
	if (fstat(in->fd, &st) != 0)
		return hc_err_set(err, HC_EIO, "stat %s: %s", in->part_path, strerror(errno));
	if (st.st_size == 0)
		return 0;
	rc = hc_sha256_fd(in->hash, in->fd, st.st_size, err);
	if (rc != 0)
		return hc_err_prefix(err, "%s", in->part_path);
	in->have = (uint64_t)st.st_size;
	install_load_meta(in);
	hc_log(HC_LOG_INFO, MOD, "found %s with %" PRIu64 " bytes, resuming", in->part_path,
	       in->have);
	return 0;
}

int
mf_fetch(const struct mf_config *cfg, char candidates[][MF_URL_MAX], size_t n,
         const char *out_path, const char *part_path, const char *expect_sha256,
         enum mf_progress_mode progress, struct mf_result *res, struct hc_err *err)
{
	struct install in;
	struct hc_err why = { 0, "" };
	int64_t start = hc_now_ms();
	int mismatches = 0, source_failures = 0;
	size_t i;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&in, 0, sizeof(in));
	in.cfg = cfg;
	in.res = res;
	in.out_path = out_path;
	in.fd = -1;
	in.progress = progress;
	hc_strlcpy(res->path, out_path, sizeof(res->path));
	if (n == 0)
		return hc_err_set(err, HC_ESOFTWARE, "no candidate URL for %s", out_path);
	if (expect_sha256 != NULL && *expect_sha256 != '\0') {
		if (!hc_sha256_hex_valid(expect_sha256))
			return hc_err_set(err, HC_EUSAGE, "--sha256: '%s' is not 64 hex digits",
			                  expect_sha256);
		hc_hex_lower(in.expect, expect_sha256, HC_SHA256_HEX_LEN);
	}
	in.hash = hc_sha256_new();
	if (in.hash == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = install_open_part(&in, part_path, err);
	if (rc != 0)
		goto done;
	rc = mf_writer_new(in.fd, in.hash, in.have, &in.writer, err);
	if (rc != 0)
		goto done;

	for (i = 0; i < n; i++) {
		struct hc_url u;
		char host[HC_HOST_MAX];
		int is_district = n > 1 && i + 1 < n;
		struct mf_attempt *a;
		enum get_outcome outcome;

		if (hc_url_parse(candidates[i], &u, err) != 0) {
			rc = HC_EDATA;
			goto done;
		}
		hc_strlcpy(host, u.host, sizeof(host));
		hc_url_free(&u);
		a = install_new_attempt(&in, candidates[i], host);
		if (a == NULL)
			break;
		if (is_district && install_probe(&in, candidates[i], a, &why) != 0) {
			source_failures++;
			hc_log(HC_LOG_WARN, MOD, "district mirror %s unavailable (%s), falling back to %s",
			       host, why.msg, cfg->origin_host);
			continue;
		}
		outcome = install_get(&in, candidates[i], host, a, &why);
		if (outcome == GET_CHANGED) {
			/* Start this source again from zero, once. */
			rc = install_discard(&in, err);
			if (rc != 0)
				goto done;
			hc_log(HC_LOG_WARN, MOD, "%s, restarting from zero", why.msg);
			a = install_new_attempt(&in, candidates[i], host);
			if (a == NULL)
				break;
			outcome = install_get(&in, candidates[i], host, a, &why);
		}
		if (outcome == GET_OK) {
			rc = install_commit(&in, err);
			if (rc != 0)
				goto done;
			hc_strlcpy(res->source_url, candidates[i], sizeof(res->source_url));
			hc_strlcpy(res->source_host, host, sizeof(res->source_host));
			res->bytes = in.have;
			res->fallback = i > 0;
			res->elapsed_ms = hc_now_ms() - start;
			hc_log(HC_LOG_INFO, MOD, "download complete: %s %" PRIu64 " bytes sha256 %s "
			       "from %s in %" PRId64 " ms", out_path, res->bytes, res->sha256, host,
			       res->elapsed_ms);
			rc = 0;
			goto done;
		}
		if (outcome == GET_LOCAL_ERROR) {
			rc = hc_err_set(err, why.status, "%s", why.msg);
			/* A full disk needs the space back more than it needs the part. */
			if (in.write_errno == ENOSPC) {
				unlink(in.part_path);
				unlink(in.meta_path);
			}
			goto done;
		}
		if (outcome == GET_MISMATCH || outcome == GET_CHANGED) {
			mismatches++;
			rc = install_discard(&in, err);
			if (rc != 0)
				goto done;
		} else {
			source_failures++;
		}
		if (is_district)
			hc_log(HC_LOG_WARN, MOD, "district mirror %s unavailable (%s), falling back to %s",
			       host, why.msg, cfg->origin_host);
		else
			hc_log(HC_LOG_WARN, MOD, "source %s failed: %s", host, why.msg);
	}
	if (mismatches > 0 && source_failures == 0)
		rc = hc_err_set(err, HC_EDATA, "checksum failed on every source: %s", why.msg);
	else
		rc = hc_err_set(err, HC_EUNAVAIL, "no source could deliver %s: %s", candidates[n - 1],
		                why.msg);
done:
	/* A part with bytes is kept for the next run to resume; an empty one is not. */
	if (rc != 0 && in.fd >= 0 && in.have == 0) {
		unlink(in.part_path);
		unlink(in.meta_path);
	}
	res->elapsed_ms = hc_now_ms() - start;
	mf_writer_free(in.writer);
	if (in.fd >= 0)
		close(in.fd);
	hc_sha256_free(in.hash);
	return rc;
}

int
mf_install(const struct mf_config *cfg, const char *url, const char *out_path,
           const char *expect_sha256, enum mf_progress_mode progress,
           struct mf_result *res, struct hc_err *err)
{
	char district[MF_DISTRICT_MAX] = "";
	char candidates[2][MF_URL_MAX];
	size_t n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	hc_strlcpy(res->path, out_path, sizeof(res->path));
	if (expect_sha256 != NULL && *expect_sha256 != '\0' && !hc_sha256_hex_valid(expect_sha256))
		return hc_err_set(err, HC_EUSAGE, "--sha256: '%s' is not 64 hex digits",
		                  expect_sha256);
	if (mf_is_origin_url(url, cfg->origin_host)) {
		rc = mf_district_lookup(cfg, district, err);
		if (rc != 0)
			return rc;
	}
	rc = mf_rewrite_url(url, district, cfg->origin_host, cfg->url_pattern, candidates, &n,
	                    err);
	if (rc != 0)
		return rc;
	return mf_fetch(cfg, candidates, n, out_path, NULL, expect_sha256, progress, res, err);
}
