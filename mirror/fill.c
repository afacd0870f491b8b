/*
 * Peer fills: a miss starts one transfer from the origin per path. It writes
 * a temp file in the store while every waiting client reads that file as it
 * grows, so the first byte goes out as soon as it arrives. The last byte of
 * each response (of a range too) is held back until the origin's digest has
 * been checked, and an empty body waits for it: a client never sees
 * a clean end of a body that turned out wrong or short, since its response
 * carries Content-Length and the connection is aborted instead. Only a
 * verified file becomes visible in the store.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror/internal.h"

/* How often a waiting reader looks at the shutdown flag. */
#define FILL_POLL_MS 1000
/* An origin that sends less than this for FILL_STALL_S is given up on. */
#define FILL_STALL_BYTES_PER_S 1024
#define FILL_STALL_S 30
#define FILL_CONNECT_TIMEOUT_MS 10000
#define FILL_DNS_TIMEOUT_MS 5000
/* Blocks handed to libmicrohttpd per read of a fill. */
#define FILL_BLOCK_SIZE (64 * 1024)

enum fill_state { FILL_WAIT_HEADERS, FILL_STREAMING, FILL_DONE, FILL_FAILED };

struct mir_fill {
	struct mir_fill *next;
	struct mir_server *s;
	char *path;
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* headers, bytes or the end arrived */
	int refs;                       /* the fill thread and each reader */
	enum fill_state state;
	long origin_status;             /* why it failed: 404 or anything else */
	uint64_t size, written, reserved;
	int cache;                      /* 0: stream through, keep nothing */
	char sha256[HC_SHA256_HEX_LEN + 1];   /* the origin's, may be "" */
	char etag[HC_HTTP_HEADER_VALUE_MAX];
	int fd;
	char tmp[PATH_MAX];
	/* The committed entry, pinned while a reader may still send it. */
	struct mir_entry *pin;
	struct hc_sha256 *h;
	volatile int cancel;
};

struct fill_reader {
	struct mir_fill *f;
	uint64_t start, len;
};

int
mir_fill_init(struct mir_server *s, struct hc_err *err)
{
	const struct mir_config *cfg = s->cfg;
	size_t n;

	if (cfg->mode != MIR_MODE_PEER)
		return 0;
	s->origin_base = hc_strdup(cfg->origin_url);
	if (s->origin_base == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	n = strlen(s->origin_base);
	while (n > 0 && s->origin_base[n - 1] == '/')
		s->origin_base[--n] = '\0';
	s->http.dns.servers = NULL;
	s->http.dns.timeout_ms = FILL_DNS_TIMEOUT_MS;
	s->http.ca_file = cfg->tls.ca_file;
	s->http.connect_timeout_ms = FILL_CONNECT_TIMEOUT_MS;
	s->http.stall_bytes_per_s = FILL_STALL_BYTES_PER_S;
	s->http.stall_seconds = FILL_STALL_S;
	return 0;
}

void
mir_fill_cleanup(struct mir_server *s)
{
	free(s->origin_base);
	s->origin_base = NULL;
}

static void
fill_unref(struct mir_fill *f)
{
	int last;

	pthread_mutex_lock(&f->mu);
	last = --f->refs == 0;
	pthread_mutex_unlock(&f->mu);
	if (!last)
		return;
	mir_store_release(f->s->store, f->pin);
	if (f->fd >= 0)
		close(f->fd);
	hc_sha256_free(f->h);
	free(f->path);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

/* origin_base + route + encoded path. Caller frees. */
static char *
fill_url(struct mir_server *s, const char *path)
{
	size_t size = strlen(s->origin_base) + strlen("/api/v1/peer/files/") +
	              3 * strlen(path) + 1;
	char *url = malloc(size);
	size_t n;

	if (url == NULL)
		return NULL;
	n = (size_t)snprintf(url, size, "%s/api/v1/peer/files/", s->origin_base);
	if (hc_path_encode(path, url + n, size - n) != 0) {
		free(url);
		return NULL;
	}
	return url;
}

static int
fill_on_headers(void *ctx, const struct hc_http_response *resp)
{
	struct mir_fill *f = ctx;
	struct mir_server *s = f->s;
	int cache = 0;

	if (resp->status != 200 || resp->content_length < 0) {
		pthread_mutex_lock(&f->mu);
		f->origin_status = resp->status != 200 ? resp->status : 502;
		pthread_mutex_unlock(&f->mu);
		return 1;
	}
	if (mir_store_reserve(s->store, (uint64_t)resp->content_length) == 0)
		cache = 1;
	else
		hc_log(HC_LOG_WARN, "mirror",
		       "no room for %s (%" PRId64 " bytes) among pinned files: streaming it through "
		       "without caching", f->path, resp->content_length);
	pthread_mutex_lock(&f->mu);
	f->size = (uint64_t)resp->content_length;
	f->cache = cache;
	f->reserved = cache ? f->size : 0;
	hc_strlcpy(f->sha256, resp->sha256, sizeof(f->sha256));
	hc_strlcpy(f->etag, resp->etag, sizeof(f->etag));
	f->state = FILL_STREAMING;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static int
fill_sink(void *ctx, const void *data, size_t len)
{
	struct mir_fill *f = ctx;

	/* Only this thread writes written: reading it unlocked here is safe. */
	if (f->written + len > f->size)
		return 1;
	if (hc_write_all(f->fd, data, len) != 0)
		return 1;
	hc_sha256_update(f->h, data, len);
	pthread_mutex_lock(&f->mu);
	f->written += len;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	atomic_fetch_add(&f->s->origin_bytes, len);
	return 0;
}

static void *
fill_main(void *arg)
{
	struct mir_fill *f = arg;
	struct mir_server *s = f->s;
	struct hc_http_request req;
	struct hc_http_response resp;
	struct hc_err err = { 0, "" }, cerr = { 0, "" };
	char hex[HC_SHA256_HEX_LEN + 1] = "";
	char *url = fill_url(s, f->path);
	int64_t t0 = hc_now_ms();
	int ok = 0, rc;
	struct mir_fill **pp;

	if (url == NULL) {
		hc_err_set(&err, HC_ENOMEM, "out of memory");
		goto end;
	}
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.sink = fill_sink;
	req.on_headers = fill_on_headers;
	req.ctx = f;
	req.cancel = &f->cancel;
	req.fail_on_http_error = 1;
	hc_log(HC_LOG_INFO, "mirror", "fill %s from %s", f->path, url);
	rc = hc_http_request(&s->http, &req, &resp, &err);
	if (rc == 0) {
		if (f->state != FILL_STREAMING || f->written != f->size) {
			hc_err_set(&err, HC_EUNAVAIL, "origin sent %" PRIu64 " of %" PRIu64 " bytes",
			           f->written, f->size);
		} else if (hc_sha256_hex(f->h, hex) != 0) {
			hc_err_set(&err, HC_ESOFTWARE, "sha256 failed");
		} else if (f->sha256[0] != '\0' && strcmp(hex, f->sha256) != 0) {
			hc_err_set(&err, HC_EDATA, "digest mismatch: origin says %s, got %s",
			           f->sha256, hex);
		} else {
			if (f->sha256[0] == '\0')
				hc_log(HC_LOG_WARN, "mirror", "origin sent no digest for %s", f->path);
			ok = 1;
		}
	}
end:
	free(url);
	/* The slow part of the commit, outside the lock every miss takes; the
	 * commit's own fsync then has nothing left to write and reports errors. */
	if (ok && f->cache)
		(void)fsync(f->fd);
	pthread_mutex_lock(&s->fill_mu);
	if (ok && f->cache) {
		/* Visible in the store and gone from the fills in one step. */
		if (mir_store_commit(s->store, f->path, f->tmp, f->fd, f->size, hex, f->reserved,
		                     &f->pin, &cerr) != 0)
			hc_log(HC_LOG_WARN, "mirror", "cannot cache %s: %s", f->path, cerr.msg);
	} else {
		unlink(f->tmp);
		mir_store_unreserve(s->store, f->reserved);
	}
	for (pp = &s->fills; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	atomic_fetch_sub(&s->fills_in_flight, 1);
	pthread_mutex_unlock(&s->fill_mu);

	pthread_mutex_lock(&f->mu);
	f->state = ok ? FILL_DONE : FILL_FAILED;
	if (!ok && f->origin_status == 0)
		f->origin_status = 502;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (ok) {
		hc_log(HC_LOG_INFO, "mirror", "filled %s: %" PRIu64 " bytes sha256 %s in %" PRId64
		       " ms%s", f->path, f->size, hex, hc_now_ms() - t0,
		       f->cache ? "" : " (not cached)");
	} else {
		atomic_fetch_add(&s->fills_failed, 1);
		hc_log(f->origin_status == 404 ? HC_LOG_INFO : HC_LOG_WARN, "mirror",
		       "fill %s failed: %s", f->path, err.msg);
	}
	fill_unref(f);
	pthread_mutex_lock(&s->fill_mu);
	s->fill_threads--;
	pthread_cond_broadcast(&s->fill_cv);
	pthread_mutex_unlock(&s->fill_mu);
	return NULL;
}

/* Starts a fill for path with one reference for the caller. Caller holds
 * fill_mu. NULL on failure (err says why). */
static struct mir_fill *
fill_start(struct mir_server *s, const char *path, struct hc_err *err)
{
	struct mir_fill *f = calloc(1, sizeof(*f));
	pthread_attr_t attr;
	pthread_t t;
	int started;

	if (f == NULL) {
		hc_err_set(err, HC_ENOMEM, "out of memory");
		return NULL;
	}
	f->s = s;
	f->fd = -1;
	f->refs = 2;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->path = hc_strdup(path);
	f->h = hc_sha256_new();
	if (f->path == NULL || f->h == NULL) {
		hc_err_set(err, HC_ENOMEM, "out of memory");
		goto fail;
	}
	f->fd = mir_store_tmp(s->store, f->tmp, sizeof(f->tmp), err);
	if (f->fd < 0)
		goto fail;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	started = pthread_create(&t, &attr, fill_main, f) == 0;
	pthread_attr_destroy(&attr);
	if (!started) {
		unlink(f->tmp);
		hc_err_set(err, HC_ESOFTWARE, "cannot start a fill thread");
		goto fail;
	}
	f->next = s->fills;
	s->fills = f;
	s->fill_threads++;
	atomic_fetch_add(&s->fills_in_flight, 1);
	atomic_fetch_add(&s->fills_started, 1);
	return f;
fail:
	f->refs = 1;
	fill_unref(f);
	return NULL;
}

static ssize_t
fill_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct fill_reader *rd = cls;
	struct mir_fill *f = rd->f;
	struct mir_server *s = f->s;
	uint64_t at = rd->start + pos, end = rd->start + rd->len, avail;
	size_t n;
	ssize_t got;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		if (f->state == FILL_FAILED || atomic_load(&s->stopping)) {
			pthread_mutex_unlock(&f->mu);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		avail = f->written < end ? f->written : end;
		/* Hold the last byte of the response back until the digest is
		 * checked: a range ending before the end of the file too. */
		if (f->state != FILL_DONE && avail >= end)
			avail = end - 1;
		if (at < avail)
			break;
		if (f->state == FILL_DONE) {
			pthread_mutex_unlock(&f->mu);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		hc_cond_wait_ms(&f->cv, &f->mu, FILL_POLL_MS);
	}
	pthread_mutex_unlock(&f->mu);
	n = max;
	if (n > avail - at)
		n = (size_t)(avail - at);
	if (n > end - at)
		n = (size_t)(end - at);
	n = mir_srv_egress_take(s, n);
	do {
		got = pread(f->fd, buf, n, (off_t)at);
	} while (got < 0 && errno == EINTR);
	if (got <= 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return got;
}

static void
fill_reader_free(void *cls)
{
	struct fill_reader *rd = cls;

	fill_unref(rd->f);
	free(rd);
}

/* Sends the headers of a file known from the origin; a body read from f
 * when f is given (it takes the caller's reference), else none (HEAD). */
static enum MHD_Result
fill_respond(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
             struct mir_fill *f, uint64_t size, const char *sha256, const char *origin_etag,
             int head)
{
	char etag[HC_HTTP_HEADER_VALUE_MAX];
	uint64_t start, len;
	enum mir_range k;
	struct MHD_Response *resp;

	if (hc_sha256_hex_valid(sha256))
		mir_srv_etag(sha256, etag, sizeof(etag));
	else
		hc_strlcpy(etag, origin_etag, sizeof(etag));
	k = mir_srv_range(c, etag, NULL, size, &start, &len);
	if (k == MIR_RANGE_UNSATISFIABLE) {
		if (f != NULL)
			fill_unref(f);
		return mir_srv_416(s, c, r, size);
	}
	if (f != NULL && !head && len == 0) {
		/* No last byte to hold back: answer once the digest is checked. */
		enum fill_state state;

		pthread_mutex_lock(&f->mu);
		while (f->state != FILL_DONE && f->state != FILL_FAILED &&
		       !atomic_load(&s->stopping))
			hc_cond_wait_ms(&f->cv, &f->mu, FILL_POLL_MS);
		state = f->state;
		pthread_mutex_unlock(&f->mu);
		fill_unref(f);
		if (state != FILL_DONE)
			return MHD_NO;
		f = NULL;
	}
	if (f != NULL && !head) {
		struct fill_reader *rd = malloc(sizeof(*rd));
		if (rd == NULL) {
			fill_unref(f);
			return MHD_NO;
		}
		rd->f = f;
		rd->start = start;
		rd->len = len;
		resp = MHD_create_response_from_callback(len, FILL_BLOCK_SIZE, fill_read, rd,
		                                         fill_reader_free);
		if (resp == NULL) {
			fill_reader_free(rd);
			return MHD_NO;
		}
		r->body_len = len;
	} else {
		if (f != NULL)
			fill_unref(f);
		resp = MHD_create_response_from_callback(len, FILL_BLOCK_SIZE, mir_srv_no_body,
		                                         NULL, NULL);
		if (resp == NULL)
			return MHD_NO;
	}
	mir_srv_file_headers(resp, sha256, etag, 0);
	if (k == MIR_RANGE_PARTIAL)
		mir_srv_content_range(resp, start, len, size);
	return mir_srv_queue(s, c, r, k == MIR_RANGE_PARTIAL ? MHD_HTTP_PARTIAL_CONTENT :
	                     MHD_HTTP_OK, resp);
}

/* The fill for path, joined (one more reference), or NULL. Caller holds
 * fill_mu. */
static struct mir_fill *
fill_join(struct mir_server *s, const char *path)
{
	struct mir_fill *f;

	for (f = s->fills; f != NULL; f = f->next) {
		if (strcmp(f->path, path) == 0) {
			pthread_mutex_lock(&f->mu);
			f->refs++;
			pthread_mutex_unlock(&f->mu);
			return f;
		}
	}
	return NULL;
}

enum MHD_Result
mir_fill_get(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
             const char *path)
{
	struct mir_fill *f;
	struct mir_file file;
	struct hc_err err = { 0, "" };
	enum fill_state state;
	long status;
	uint64_t size;
	char sha[HC_SHA256_HEX_LEN + 1], etag[HC_HTTP_HEADER_VALUE_MAX];

	pthread_mutex_lock(&s->fill_mu);
	if (atomic_load(&s->stopping)) {
		pthread_mutex_unlock(&s->fill_mu);
		return mir_srv_error(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
	}
	/* A fill may have finished since the caller looked. */
	if (mir_store_get(s->store, path, 1, &file, &err) == 0) {
		pthread_mutex_unlock(&s->fill_mu);
		return mir_srv_send_file(s, c, r, &file, 0);
	}
	f = fill_join(s, path);
	if (f == NULL)
		f = fill_start(s, path, &err);
	pthread_mutex_unlock(&s->fill_mu);
	if (f == NULL) {
		hc_log(HC_LOG_WARN, "mirror", "fill %s: %s", path, err.msg);
		return mir_srv_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	pthread_mutex_lock(&f->mu);
	while (f->state == FILL_WAIT_HEADERS && !atomic_load(&s->stopping))
		hc_cond_wait_ms(&f->cv, &f->mu, FILL_POLL_MS);
	state = f->state;
	status = f->origin_status;
	size = f->size;
	memcpy(sha, f->sha256, sizeof(sha));
	memcpy(etag, f->etag, sizeof(etag));
	pthread_mutex_unlock(&f->mu);
	if (state == FILL_WAIT_HEADERS || state == FILL_FAILED) {
		fill_unref(f);
		if (status == 404)
			return mir_srv_error(s, c, r, MHD_HTTP_NOT_FOUND, "not found");
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_GATEWAY, "origin failed");
	}
	return fill_respond(s, c, r, f, size, sha, etag, 0);
}

enum MHD_Result
mir_fill_head(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
              const char *path)
{
	struct mir_fill *f;
	struct hc_http_request req;
	struct hc_http_response resp;
	struct hc_err err = { 0, "" };
	char *url;
	int rc;

	pthread_mutex_lock(&s->fill_mu);
	f = fill_join(s, path);
	pthread_mutex_unlock(&s->fill_mu);
	if (f != NULL) {
		uint64_t size;
		char sha[HC_SHA256_HEX_LEN + 1], etag[HC_HTTP_HEADER_VALUE_MAX];
		int known;

		pthread_mutex_lock(&f->mu);
		known = f->state == FILL_STREAMING || f->state == FILL_DONE;
		size = f->size;
		memcpy(sha, f->sha256, sizeof(sha));
		memcpy(etag, f->etag, sizeof(etag));
		pthread_mutex_unlock(&f->mu);
		if (known)
			return fill_respond(s, c, r, f, size, sha, etag, 1);
		fill_unref(f);
	}
	url = fill_url(s, path);
	if (url == NULL)
		return MHD_NO;
	memset(&req, 0, sizeof(req));
	req.method = "HEAD";
	req.url = url;
	rc = hc_http_request(&s->http, &req, &resp, &err);
	free(url);
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "mirror", "HEAD %s at the origin: %s", path, err.msg);
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_GATEWAY, "origin failed");
	}
	if (resp.status == 404)
		return mir_srv_error(s, c, r, MHD_HTTP_NOT_FOUND, "not found");
	if (resp.status != 200 || resp.content_length < 0)
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_GATEWAY, "origin failed");
	return fill_respond(s, c, r, NULL, (uint64_t)resp.content_length, resp.sha256,
	                    resp.etag, 1);
}

void
mir_fill_cancel_all(struct mir_server *s)
{
	struct mir_fill *f;

	pthread_mutex_lock(&s->fill_mu);
	for (f = s->fills; f != NULL; f = f->next) {
		f->cancel = 1;
		pthread_mutex_lock(&f->mu);
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
	}
	pthread_mutex_unlock(&s->fill_mu);
}

void
mir_fill_wait_all(struct mir_server *s)
{
	pthread_mutex_lock(&s->fill_mu);
	while (s->fill_threads > 0)
		hc_cond_wait_ms(&s->fill_cv, &s->fill_mu, FILL_POLL_MS);
	pthread_mutex_unlock(&s->fill_mu);
}
