/*
 * A release archive as a libzip source read through HTTP Range requests.
 *
 * libzip asks for the end of the archive (the central directory), then for
 * a member's local header and data. Each read that misses the one cached
 * block fetches a new block at that offset: small at first (a directory
 * read costs little), doubling while reads stay sequential (a large member
 * streams in few requests). An upstream that ignores ranges (a 200 to the
 * first ranged request) is received whole, once, into a tmp file of the
 * store, and read from there.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mirror/tarsrc.h"
#include "mirror/zipsrc.h"

#define MOD "mirror"
/* First block: a small release's whole directory fits, a big one's end. */
#define ZS_BLOCK_MIN (64 * 1024)
/* Largest block fetched at once while a member streams sequentially. */
#define ZS_BLOCK_MAX (8 * 1024 * 1024)
/* Redirects followed from the release URL (GitHub uses one). */
#define ZS_REDIRECTS_MAX 5
/* A range cut short by a dropped connection is asked again from where it
 * stopped this many times. */
#define ZS_RESUMES_MAX 3
/* Without Retry-After or X-RateLimit-Reset, a rate-limited upstream is left
 * alone this long; a longer wait than ZS_RETRY_MAX_S is capped. */
#define ZS_RETRY_DEFAULT_S 60
#define ZS_RETRY_MAX_S 3600
/* An Authorization line: the token file holds at most 4 KiB. */
#define ZS_AUTH_MAX (4096 + 32)
/* Values past this are X-RateLimit-Reset epoch seconds, not a delay. */
#define ZS_EPOCH_MIN 1000000000LL

struct mir_zipsrc {
	const struct mir_zipsrc_config *cfg;
	char url[HC_HTTP_LOCATION_MAX];  /* after redirects */
	int send_token;                 /* url's host is the configured one */
	uint64_t size, pos;
	int whole_fd;                   /* -1, or the archive read whole */
	char whole_tmp[PATH_MAX];
	unsigned char *blk;             /* the cached block, grown on demand */
	uint64_t blk_off;
	size_t blk_len, blk_cap, window;
	uint64_t fetched;
	zip_error_t zerr;
	struct hc_err why;
};

/* Where one ranged transfer writes: the block, at most cap bytes. */
struct zs_sink {
	struct mir_zipsrc *s;
	size_t cap;
	int whole;                      /* writing to whole_fd (a 200) */
	uint64_t whole_bytes;
	int failed;
};

static int
zs_on_body(void *ctx, const void *data, size_t len)
{
	struct zs_sink *k = ctx;
	struct mir_zipsrc *s = k->s;

	if (k->whole) {
		if (k->whole_bytes + len > s->cfg->max_bytes ||
		    hc_write_all(s->whole_fd, data, len) != 0) {
			k->failed = 1;
			return 1;
		}
		k->whole_bytes += len;
		return 0;
	}
	if (s->blk_len + len > k->cap) {
		k->failed = 1;  /* more than the range asked for */
		return 1;
	}
	memcpy(s->blk + s->blk_len, data, len);
	s->blk_len += len;
	return 0;
}

/* On the probe: a 200 means no range support, so the body is the archive
 * and goes to a tmp file; a redirect or an error body is dropped. */
static int
zs_on_headers(void *ctx, const struct hc_http_response *r)
{
	struct zs_sink *k = ctx;
	struct mir_zipsrc *s = k->s;
	struct hc_err err = { 0, "" };
	int fd;

	if (r->status != 200 || k->cap == 0)
		return 0;
	if (r->content_length > 0 && (uint64_t)r->content_length > s->cfg->max_bytes)
		return 1;
	fd = mir_store_tmp(s->cfg->store, s->whole_tmp, sizeof(s->whole_tmp), &err);
	if (fd < 0) {
		hc_log(HC_LOG_WARN, MOD, "upstream: %s", err.msg);
		return 1;
	}
	s->whole_fd = fd;
	k->whole = 1;
	return 0;
}

/* One GET of url with the range from-to (to <= 0: none), the token when
 * allowed, the body to sink. */
static int
zs_get(struct mir_zipsrc *s, hc_http_sink sink, void *ctx, hc_http_on_headers on_headers,
       int64_t from, int64_t to, struct hc_http_response *resp, struct hc_err *err)
{
	char auth[ZS_AUTH_MAX];
	const char *headers[2] = { NULL, NULL };
	struct hc_http_request req;

	memset(&req, 0, sizeof(req));
	req.url = s->url;
	req.range_from = from;
	req.range_to = to;
	req.sink = sink;
	req.on_headers = on_headers;
	req.ctx = ctx;
	req.cancel = s->cfg->cancel;
	if (s->send_token && s->cfg->token != NULL && *s->cfg->token != '\0') {
		if (hc_snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->cfg->token) != 0)
			return hc_err_set(err, HC_ECONFIG, "token too long");
		headers[0] = auth;
		req.headers = headers;
	}
	hc_http_response_init(resp);
	return hc_http_request(s->cfg->http, &req, resp, err);
}

/* Seconds a rate-limited answer asks us to wait (Retry-After in seconds,
 * or X-RateLimit-Reset as epoch seconds), within [1, ZS_RETRY_MAX_S]. */
static int
zs_retry_seconds(const char *v)
{
	long long n;

	if (hc_parse_int(v, 0, INT64_MAX, &n) != 0)
		return ZS_RETRY_DEFAULT_S;
	if (n >= ZS_EPOCH_MIN)
		n -= (long long)time(NULL);
	if (n < 1)
		n = 1;
	return n > ZS_RETRY_MAX_S ? ZS_RETRY_MAX_S : (int)n;
}

/* The next URL after a redirect to loc: absolute, or a path on this host.
 * The token stays only while the host is the configured one. */
static int
zs_follow(struct mir_zipsrc *s, const char *loc, struct hc_err *err)
{
	struct hc_url first = { .path_query = NULL }, next = { .path_query = NULL };
	char abs[HC_HTTP_LOCATION_MAX];
	int rc;

	if (loc[0] == '\0')
		return hc_err_set(err, HC_EUNAVAIL, "a redirect without a usable Location");
	if (loc[0] == '/') {
		const char *p = strstr(s->url, "://");
		size_t host_end = p == NULL ? 0 : (size_t)(p + 3 - s->url) + strcspn(p + 3, "/?#");
		if (p == NULL || loc[1] == '/' ||
		    hc_snprintf(abs, sizeof(abs), "%.*s%s", (int)host_end, s->url, loc) != 0)
			return hc_err_set(err, HC_EUNAVAIL, "a redirect to an unusable Location");
	} else if (hc_strlcpy(abs, loc, sizeof(abs)) != 0) {
		return hc_err_set(err, HC_EUNAVAIL, "a redirect Location too long");
	}
	rc = hc_url_parse(s->cfg->url, &first, err);
	if (rc == 0)
		rc = hc_url_parse(abs, &next, err);
	if (rc == 0) {
		s->send_token = s->send_token && strcmp(first.host, next.host) == 0 &&
		                first.port == next.port && strcmp(first.scheme, next.scheme) == 0;
		hc_strlcpy(s->url, abs, sizeof(s->url));
	} else {
		rc = hc_err_set(err, HC_EUNAVAIL, "a redirect to a bad URL");
	}
	hc_url_free(&first);
	hc_url_free(&next);
	return rc;
}

/* Classifies a probe answer that is not the archive. */
static int
zs_refused(struct mir_zipsrc *s, const struct hc_http_response *resp, int *retry_s,
           struct hc_err *err)
{
	if (resp->status == 429 || (resp->status == 403 && resp->retry_after[0] != '\0')) {
		*retry_s = zs_retry_seconds(resp->retry_after);
		return hc_err_set(err, HC_EUNAVAIL, "%s: rate limited (HTTP %ld), retry in %d s",
		                  s->url, resp->status, *retry_s);
	}
	if (resp->status == 404)
		return hc_err_set(err, HC_ENOTFOUND, "%s: HTTP 404", s->url);
	return hc_err_set(err, HC_EUNAVAIL, "%s: HTTP %ld", s->url, resp->status);
}

/* Replaces the .tar.gz read whole by the ZIP tarsrc.c makes of it. */
static int
zs_untar(struct mir_zipsrc *s, struct hc_err *err)
{
	char tmp[PATH_MAX];
	struct stat st;
	int fd, rc;

	fd = mir_store_tmp(s->cfg->store, tmp, sizeof(tmp), err);
	if (fd < 0)
		return fd;
	rc = mir_tarsrc_to_zip(s->whole_fd, s->size, fd, s->cfg->max_bytes, err);
	if (rc == 0 && fstat(fd, &st) != 0)
		rc = hc_err_set(err, HC_EIO, "%s: %s", tmp, strerror(errno));
	if (rc != 0) {
		close(fd);
		unlink(tmp);
		return hc_err_prefix(err, "%s", s->url);
	}
	close(s->whole_fd);
	unlink(s->whole_tmp);
	s->whole_fd = fd;
	(void)hc_strlcpy(s->whole_tmp, tmp, sizeof(s->whole_tmp));
	hc_log(HC_LOG_INFO, MOD, "upstream %s: .tar.gz read whole (%" PRIu64 " bytes), "
	       "%lld bytes as a ZIP", s->url, s->size, (long long)st.st_size);
	s->size = (uint64_t)st.st_size;
	return 0;
}

/* The first request: follows redirects, learns the size and range support,
 * keeps the first block (or the whole archive). */
static int
zs_probe(struct mir_zipsrc *s, int *retry_s, struct hc_err *err)
{
	struct hc_http_response resp;
	struct zs_sink k;
	int hops, rc;

	for (hops = 0; hops <= ZS_REDIRECTS_MAX; hops++) {
		memset(&k, 0, sizeof(k));
		k.s = s;
		k.cap = ZS_BLOCK_MIN;
		s->blk_len = 0;
		rc = zs_get(s, zs_on_body, &k, zs_on_headers, 0, s->cfg->tar ? 0 : ZS_BLOCK_MIN - 1,
		            &resp, err);
		if (rc != 0 && k.failed && k.whole)
			return hc_err_set(err, HC_EDATA, "%s: larger than max_archive_bytes or "
			                  "cannot be kept in tmp", s->url);
		if (rc != 0) {
			err->status = HC_EUNAVAIL;  /* whatever broke, upstream failed us */
			return HC_EUNAVAIL;
		}
		if (resp.status >= 300 && resp.status < 400) {
			rc = zs_follow(s, resp.location, err);
			if (rc != 0)
				return rc;
			continue;
		}
		if (resp.status == 200 && k.whole) {
			s->size = k.whole_bytes;
			s->fetched = k.whole_bytes;
			if (!s->cfg->tar)
				hc_log(HC_LOG_INFO, MOD, "upstream %s: no range support, read whole "
				       "(%" PRIu64 " bytes)", s->url, s->size);
			return s->cfg->tar ? zs_untar(s, err) : 0;
		}
		if (resp.status != 206)
			return zs_refused(s, &resp, retry_s, err);
		if (resp.range_start != 0 || resp.range_total < 0)
			return hc_err_set(err, HC_EDATA, "%s: a 206 without a usable Content-Range",
			                  s->url);
		if ((uint64_t)resp.range_total > s->cfg->max_bytes)
			return hc_err_set(err, HC_EDATA, "%s: %" PRId64 " bytes, past max_archive_bytes",
			                  s->url, resp.range_total);
		s->size = (uint64_t)resp.range_total;
		s->blk_off = 0;
		s->fetched = s->blk_len;
		return 0;
	}
	return hc_err_set(err, HC_EUNAVAIL, "%s: more than %d redirects", s->cfg->url,
	                  ZS_REDIRECTS_MAX);
}

/* Room for n bytes in the block (its content is dropped). */
static int
zs_block_room(struct mir_zipsrc *s, size_t n)
{
	unsigned char *p;

	s->blk_len = 0;
	if (s->blk_cap >= n)
		return 0;
	p = realloc(s->blk, n);
	if (p == NULL)
		return HC_ENOMEM;
	s->blk = p;
	s->blk_cap = n;
	return 0;
}

/* Fills the block with n bytes at off, resuming a cut transfer. */
static int
zs_fetch(struct mir_zipsrc *s, uint64_t off, size_t n)
{
	struct hc_http_response resp;
	struct zs_sink k;
	int tries, rc = 0;

	if (zs_block_room(s, n) != 0)
		return hc_err_set(&s->why, HC_ENOMEM, "out of memory");
	s->blk_off = off;
	s->blk_len = 0;
	for (tries = 0; tries <= ZS_RESUMES_MAX && s->blk_len < n; tries++) {
		size_t before = s->blk_len;
		memset(&k, 0, sizeof(k));
		k.s = s;
		k.cap = n;
		rc = zs_get(s, zs_on_body, &k, NULL, (int64_t)(off + before), (int64_t)(off + n - 1),
		            &resp, &s->why);
		s->fetched += s->blk_len - before;
		if (rc == 0 && resp.status != 206)
			return hc_err_set(&s->why, HC_EDATA, "%s: HTTP %ld to a range request",
			                  s->url, resp.status);
		if (rc == 0 && resp.range_start != (int64_t)(off + before))
			return hc_err_set(&s->why, HC_EDATA, "%s: a 206 for the wrong range", s->url);
		if (rc == 0 && s->blk_len < n)
			return hc_err_set(&s->why, HC_EDATA, "%s: range at %" PRIu64 " cut short",
			                  s->url, off);
		/* Only a transfer that delivered something and then broke is resumed
		 * (a broken body and our own cancel both read HC_FAIL_ABORTED). */
		if (rc != 0 && (k.failed || resp.fail == HC_FAIL_IO || *s->cfg->cancel ||
		                s->blk_len == before))
			return rc;
		if (rc != 0)
			hc_log(HC_LOG_INFO, MOD, "upstream %s: connection lost at %" PRIu64
			       ", resuming by range", s->url, off + s->blk_len);
	}
	return s->blk_len == n ? 0 : rc != 0 ? rc : HC_EUNAVAIL;
}

/* The source's READ: len bytes at pos, from the block or a new fetch. */
static zip_int64_t
zs_read(struct mir_zipsrc *s, unsigned char *out, uint64_t len)
{
	uint64_t done = 0;

	if (s->pos >= s->size)
		return 0;
	if (len > s->size - s->pos)
		len = s->size - s->pos;
	if (s->whole_fd >= 0) {
		ssize_t n = pread(s->whole_fd, out, (size_t)len, (off_t)s->pos);
		if (n < 0) {
			hc_err_set(&s->why, HC_EIO, "read %s: %s", s->whole_tmp, strerror(errno));
			zip_error_set(&s->zerr, ZIP_ER_READ, errno);
			return -1;
		}
		s->pos += (uint64_t)n;
		return n;
	}
	while (done < len) {
		uint64_t n;
		if (s->pos >= s->blk_off && s->pos < s->blk_off + s->blk_len) {
			n = s->blk_off + s->blk_len - s->pos;
			if (n > len - done)
				n = len - done;
			memcpy(out + done, s->blk + (s->pos - s->blk_off), (size_t)n);
			s->pos += n;
			done += n;
			continue;
		}
		/* Sequential reads double the window, a jump starts it over. */
		if (s->pos == s->blk_off + s->blk_len)
			s->window = s->window * 2 > ZS_BLOCK_MAX ? ZS_BLOCK_MAX : s->window * 2;
		else
			s->window = ZS_BLOCK_MIN;
		n = s->window > len - done ? s->window : len - done;
		if (n > ZS_BLOCK_MAX)
			n = ZS_BLOCK_MAX;
		if (n > s->size - s->pos)
			n = s->size - s->pos;
		if (zs_fetch(s, s->pos, (size_t)n) != 0) {
			zip_error_set(&s->zerr, ZIP_ER_READ, EIO);
			return -1;
		}
	}
	return (zip_int64_t)done;
}

static zip_int64_t
zs_callback(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	struct mir_zipsrc *s = ud;
	zip_int64_t off;

	switch (cmd) {
	case ZIP_SOURCE_OPEN:
		s->pos = 0;
		return 0;
	case ZIP_SOURCE_READ:
		return zs_read(s, data, len);
	case ZIP_SOURCE_CLOSE:
	case ZIP_SOURCE_FREE:
		return 0;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = data;
		if (len < sizeof(*st))
			return -1;
		zip_stat_init(st);
		st->size = s->size;
		st->valid |= ZIP_STAT_SIZE;
		return sizeof(*st);
	}
	case ZIP_SOURCE_ERROR:
		return zip_error_to_data(&s->zerr, data, len);
	case ZIP_SOURCE_SEEK:
		off = zip_source_seek_compute_offset(s->pos, s->size, data, len, &s->zerr);
		if (off < 0)
			return -1;
		s->pos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL:
		return (zip_int64_t)s->pos;
	case ZIP_SOURCE_SUPPORTS:
		return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ,
		                                      ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
		                                      ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE,
		                                      ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL,
		                                      ZIP_SOURCE_SUPPORTS, -1);
	default:
		zip_error_set(&s->zerr, ZIP_ER_OPNOTSUPP, 0);
		return -1;
	}
}

static int
zs_text_sink(void *ctx, const void *data, size_t len)
{
	return hc_buf_add(ctx, data, len) != 0;
}

int
mir_zipsrc_fetch(const struct mir_zipsrc_config *cfg, struct hc_buf *out, int *retry_s,
                 struct hc_err *err)
{
	struct hc_http_response resp;
	struct mir_zipsrc *s = calloc(1, sizeof(*s));
	int hops, rc = HC_EUNAVAIL;

	*retry_s = 0;
	if (s == NULL || hc_strlcpy(s->url, cfg->url, sizeof(s->url)) != 0) {
		free(s);
		return hc_err_set(err, HC_ENOMEM, "out of memory or URL too long");
	}
	s->cfg = cfg;
	s->send_token = 1;
	for (hops = 0; hops <= ZS_REDIRECTS_MAX; hops++) {
		hc_buf_reset(out);
		rc = zs_get(s, zs_text_sink, out, NULL, 0, 0, &resp, err);
		if (rc == 0 && resp.status >= 300 && resp.status < 400) {
			rc = zs_follow(s, resp.location, err);
			if (rc == 0)
				continue;
		} else if (rc == 0 && resp.status != 200) {
			rc = zs_refused(s, &resp, retry_s, err);
		}
		break;
	}
	if (hops > ZS_REDIRECTS_MAX)
		rc = hc_err_set(err, HC_EUNAVAIL, "%s: more than %d redirects", cfg->url,
		                ZS_REDIRECTS_MAX);
	free(s);
	return rc;
}

int
mir_zipsrc_open(const struct mir_zipsrc_config *cfg, zip_t **za, struct mir_zipsrc **out,
                int *retry_s, struct hc_err *err)
{
	struct mir_zipsrc *s = calloc(1, sizeof(*s));
	zip_source_t *zs = NULL;
	zip_error_t ze;
	int rc;

	*za = NULL;
	*out = NULL;
	*retry_s = 0;
	if (s == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->whole_fd = -1;
	s->send_token = 1;
	s->window = ZS_BLOCK_MIN;
	zip_error_init(&s->zerr);
	if (zs_block_room(s, ZS_BLOCK_MIN) != 0 ||
	    hc_strlcpy(s->url, cfg->url, sizeof(s->url)) != 0) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory or URL too long");
		goto fail;
	}
	rc = zs_probe(s, retry_s, err);
	if (rc != 0)
		goto fail;
	zip_error_init(&ze);
	zs = zip_source_function_create(zs_callback, s, &ze);
	if (zs != NULL)
		*za = zip_open_from_source(zs, ZIP_RDONLY, &ze);
	if (*za == NULL) {
		rc = hc_err_set(err, HC_EDATA, "%s: not a readable ZIP (%s%s%s)", s->url,
		                zip_error_strerror(&ze), s->why.msg[0] != '\0' ? ": " : "",
		                s->why.msg);
		zip_error_fini(&ze);
		zip_source_free(zs);
		goto fail;
	}
	zip_error_fini(&ze);
	*out = s;
	return 0;
fail:
	mir_zipsrc_close(NULL, s);
	return rc;
}

const char *
mir_zipsrc_why(const struct mir_zipsrc *src)
{
	return src->why.msg;
}

uint64_t
mir_zipsrc_fetched(const struct mir_zipsrc *src)
{
	return src->fetched;
}

int
mir_zipsrc_ranged(const struct mir_zipsrc *src)
{
	return src->whole_fd < 0;
}

const char *
mir_zipsrc_url(const struct mir_zipsrc *src)
{
	return src->url;
}

void
mir_zipsrc_trim(struct mir_zipsrc *src)
{
	if (src == NULL)
		return;
	free(src->blk);
	src->blk = NULL;
	src->blk_cap = 0;
	src->blk_len = 0;
	src->window = ZS_BLOCK_MIN;
}

void
mir_zipsrc_close(zip_t *za, struct mir_zipsrc *src)
{
	if (za != NULL)
		zip_discard(za);
	if (src == NULL)
		return;
	if (src->whole_fd >= 0) {
		close(src->whole_fd);
		unlink(src->whole_tmp);
	}
	zip_error_fini(&src->zerr);
	free(src->blk);
	free(src);
}
