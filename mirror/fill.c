/*
 * Peer fills: a miss starts one transfer from the origin per path. It writes
 * a temp file in the store while every waiting client reads that file as it
 * grows, so the first byte goes out as soon as it arrives. The last byte of
 * each response (of a range too) is held back until the origin's digest has
 * been checked, and an empty body waits for it: a client never sees
 * a clean end of a body that turned out wrong or short, since its response
 * carries Content-Length and the connection is aborted instead. Only a
 * verified file becomes visible in the store, with the origin's digest or
 * none (never one computed here). A file the store or the disk cannot hold
 * streams through a window in memory instead of the temp file.
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror/fill.h"

/* How often a waiting reader looks at the shutdown flag. */
#define FILL_POLL_MS 1000
/* An origin that sends less than this for FILL_STALL_S is given up on. */
#define FILL_STALL_BYTES_PER_S 1024
#define FILL_STALL_S 30
#define FILL_CONNECT_TIMEOUT_MS 10000
#define FILL_DNS_TIMEOUT_MS 5000
/* A probe of an unreachable origin must not hold the index writer long. */
#define FILL_PROBE_TIMEOUT_MS 2000
/* Blocks handed to libmicrohttpd per read of a fill. */
#define FILL_BLOCK_SIZE (64 * 1024)
/* A fill that streams through (the store cannot hold the file) keeps only
 * this much of it, in memory: a reader further behind holds the origin
 * back, and a client asking for the file once the window has moved on
 * starts a fill of its own. */
#define FILL_WINDOW ((size_t)1 << 20)
/* The origin's route for a file. */
#define FILL_ROUTE "/api/v1/peer/files/"

/* In the order a fill goes through them (fill_wait_past compares). */
enum fill_state { FILL_WAIT_HEADERS, FILL_STREAMING, FILL_DONE, FILL_FAILED };

struct mir_fills {
	struct mir_store *store;
	struct mir_resp *rs;
	char *origin_base;              /* origin_url without a trailing '/' */
	char shown_base[MIR_URL_SHOWN_MAX]; /* the same without credentials, for logs */
	struct hc_http_config http;
	int require_origin_digest;
	pthread_mutex_t mu;             /* the list and the thread count */
	pthread_cond_t cv;              /* a fill thread ended */
	struct mir_fill *list;
	int threads;
	atomic_uint_least64_t started, failed, origin_bytes;
	atomic_uint_least64_t failed_by[MIR_FILL_FAIL_COUNT];
	atomic_int in_flight;
	atomic_int pinned_full;         /* the last fill found no room among pinned files */
	pthread_mutex_t origin_mu;      /* the two fields below */
	int origin_down;
	char origin_error[MIR_ORIGIN_ERROR_MAX];
};

struct mir_fill {
	struct mir_fill *next;
	struct mir_fills *fl;
	char *path;
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* headers, bytes or the end arrived */
	int refs;                       /* the fill thread and each reader */
	enum fill_state state;
	long origin_status;             /* why it failed: 404 or anything else */
	enum mir_fill_fail fail;        /* the class of the failure, for metrics */
	uint64_t size, written, reserved;
	int cache;                      /* 0: stream through, keep nothing */
	/* A pre-warm's fill evicts only files idle this long; -1: a client's
	 * fill, which evicts the least recently used whatever their age. */
	int64_t idle_ms;
	char *ring;                     /* stream-through: bytes base..written, else NULL */
	uint64_t base;
	struct fill_reader *readers;    /* registered bodies, and where each stands */
	struct mir_park_wait *waiters;  /* readers parked for bytes or the end */
	int registered;
	char sha256[HC_SHA256_HEX_LEN + 1];   /* the origin's, may be "" */
	int fd;
	char tmp[PATH_MAX];
	/* The committed entry, pinned while a reader may still send it. */
	struct mir_entry *pin;
	struct hc_sha256 *h;
	volatile int cancel;
};

struct fill_reader {
	struct fill_reader *next;
	struct mir_fill *f;
	struct MHD_Connection *c;
	struct mir_park_wait wait;      /* parked for bytes, or by the egress bucket */
	uint64_t start, len;
	uint64_t at;                    /* next byte it sends (under f->mu) */
	/* Stream-through: the held-back last byte, kept here so the window can
	 * move on while the digest is not yet checked. */
	int stashed;
	char last;
};

/* ------------------------------------------------------------ fills */

/* Headers, bytes or the end arrived: wakes the threads waiting on f->cv
 * and resumes the parked readers. Caller holds f->mu. */
static void
fill_signal(struct mir_fill *f)
{
	pthread_cond_broadcast(&f->cv);
	mir_park_wake(f->fl->rs->park, &f->waiters);
}

const char *const mir_fill_fail_names[MIR_FILL_FAIL_COUNT] = {
	"unreachable", "status", "short_body", "digest", "other",
};

/* Records whether the origin answered at all; why is the error when not. */
static void
fill_note_origin(struct mir_fills *fl, int answered, const char *why)
{
	pthread_mutex_lock(&fl->origin_mu);
	if (answered && fl->origin_down)
		hc_log(HC_LOG_INFO, "mirror", "origin %s answers again", fl->shown_base);
	fl->origin_down = !answered;
	if (answered)
		fl->origin_error[0] = '\0';
	else if (hc_strlcpy(fl->origin_error, why, sizeof(fl->origin_error)) != 0)
		memcpy(fl->origin_error + sizeof(fl->origin_error) - 4, "...", 4);
	pthread_mutex_unlock(&fl->origin_mu);
}

int
mir_fills_new(const struct mir_fills_config *cfg, struct mir_store *store,
              struct mir_resp *rs, struct mir_fills **out, struct hc_err *err)
{
	struct mir_fills *fl = calloc(1, sizeof(*fl));
	size_t n;

	*out = NULL;
	if (fl == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	fl->store = store;
	fl->rs = rs;
	fl->require_origin_digest = cfg->require_origin_digest;
	pthread_mutex_init(&fl->mu, NULL);
	pthread_cond_init(&fl->cv, NULL);
	pthread_mutex_init(&fl->origin_mu, NULL);
	fl->origin_base = hc_strdup(cfg->origin_url);
	if (fl->origin_base == NULL) {
		mir_fills_free(fl);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	n = strlen(fl->origin_base);
	while (n > 0 && fl->origin_base[n - 1] == '/')
		fl->origin_base[--n] = '\0';
	mir_url_redact(fl->origin_base, fl->shown_base, sizeof(fl->shown_base));
	fl->http.dns.servers = NULL;
	fl->http.dns.timeout_ms = FILL_DNS_TIMEOUT_MS;
	fl->http.ca_file = cfg->ca_file;
	fl->http.connect_timeout_ms = FILL_CONNECT_TIMEOUT_MS;
	fl->http.stall_bytes_per_s = FILL_STALL_BYTES_PER_S;
	fl->http.stall_seconds = FILL_STALL_S;
	*out = fl;
	return 0;
}

void
mir_fills_free(struct mir_fills *fl)
{
	if (fl == NULL)
		return;
	free(fl->origin_base);
	pthread_mutex_destroy(&fl->origin_mu);
	pthread_mutex_destroy(&fl->mu);
	pthread_cond_destroy(&fl->cv);
	free(fl);
}

void
mir_fills_stats(struct mir_fills *fl, struct mir_fills_stats *out)
{
	unsigned i;

	memset(out, 0, sizeof(*out));
	out->origin_reachable = 1;
	if (fl == NULL)
		return;
	out->started = atomic_load(&fl->started);
	out->failed = atomic_load(&fl->failed);
	out->in_flight = (uint64_t)atomic_load(&fl->in_flight);
	out->origin_bytes = atomic_load(&fl->origin_bytes);
	for (i = 0; i < MIR_FILL_FAIL_COUNT; i++)
		out->failed_by[i] = atomic_load(&fl->failed_by[i]);
	out->pinned_full = atomic_load(&fl->pinned_full);
	pthread_mutex_lock(&fl->origin_mu);
	out->origin_reachable = !fl->origin_down;
	hc_strlcpy(out->origin_error, fl->origin_error, sizeof(out->origin_error));
	pthread_mutex_unlock(&fl->origin_mu);
}

static void
fill_unref(struct mir_fill *f)
{
	int last;

	pthread_mutex_lock(&f->mu);
	last = --f->refs == 0;
	/* A stream-through fill may wait for this reader. */
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (!last)
		return;
	mir_store_release(f->fl->store, f->pin);
	free(f->ring);
	if (f->fd >= 0)
		close(f->fd);
	hc_sha256_free(f->h);
	free(f->path);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

/* base + route + encoded path. Caller frees. */
static char *
fill_url(const char *base, const char *path)
{
	struct hc_buf b;
	char enc[3 * MIR_PATH_MAX];

	hc_buf_init(&b, strlen(base) + sizeof(FILL_ROUTE) + sizeof(enc));
	if (hc_path_encode(path, enc, sizeof(enc)) != 0 ||
	    hc_buf_printf(&b, "%s" FILL_ROUTE "%s", base, enc) != 0) {
		hc_buf_free(&b);
		return NULL;
	}
	return hc_buf_take(&b);
}

/* ------------------------------------------------------------ the fill thread */

/* Trades the temp file for the in-memory window: nothing of a file the
 * store cannot hold goes to the disk. 0 or -1 (out of memory). */
static int
fill_go_through(struct mir_fill *f)
{
	char *ring = malloc(FILL_WINDOW);

	if (ring == NULL)
		return -1;
	close(f->fd);
	unlink(f->tmp);
	pthread_mutex_lock(&f->mu);
	f->fd = -1;
	f->tmp[0] = '\0';
	f->ring = ring;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* The origin's answer: WAIT_HEADERS becomes STREAMING, or the status is
 * kept for the readers and the transfer stops. */
static int
fill_on_headers(void *ctx, const struct hc_http_response *resp)
{
	struct mir_fill *f = ctx;
	struct mir_fills *fl = f->fl;
	int cache = 0, pinned = 0;

	if (resp->status != 200 || resp->content_length < 0) {
		pthread_mutex_lock(&f->mu);
		f->origin_status = resp->status != 200 ? resp->status : 502;
		pthread_mutex_unlock(&f->mu);
		return 1;
	}
	if (resp->sha256[0] == '\0' && fl->require_origin_digest) {
		hc_log(HC_LOG_WARN, "mirror", "fill %s refused: the origin sent no digest and "
		       "require_origin_digest is on", f->path);
		pthread_mutex_lock(&f->mu);
		f->origin_status = 502;
		pthread_mutex_unlock(&f->mu);
		return 1;
	}
	if ((uint64_t)resp->content_length > mir_store_free_bytes(fl->store))
		hc_log(HC_LOG_WARN, "mirror", "no room for %s (%" PRId64 " bytes) on the disk: "
		       "streaming it through without caching", f->path, resp->content_length);
	else if (f->idle_ms >= 0)
		cache = mir_store_reserve_idle(fl->store, (uint64_t)resp->content_length,
		                               f->idle_ms) == 0;
	else if (mir_store_reserve(fl->store, (uint64_t)resp->content_length) == 0)
		cache = 1;
	else
		pinned = 1;
	if (pinned)
		hc_log(HC_LOG_WARN, "mirror",
		       "no room for %s (%" PRId64 " bytes) among pinned files: streaming it through "
		       "without caching", f->path, resp->content_length);
	atomic_store(&fl->pinned_full, pinned);
	if (!cache && fill_go_through(f) != 0)
		return 1;
	pthread_mutex_lock(&f->mu);
	f->size = (uint64_t)resp->content_length;
	f->cache = cache;
	f->reserved = cache ? f->size : 0;
	hc_strlcpy(f->sha256, resp->sha256, sizeof(f->sha256));
	f->state = FILL_STREAMING;
	fill_signal(f);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* Moves the window's start up to the first byte a reader still needs.
 * While a reader holds a reference but has no body yet, its start is
 * unknown and the window stays. Caller holds f->mu. */
static void
fill_slide(struct mir_fill *f)
{
	struct fill_reader *rd;
	uint64_t low = f->written;

	if (f->refs - 1 > f->registered)
		return;
	for (rd = f->readers; rd != NULL; rd = rd->next)
		if (!rd->stashed && rd->at < rd->start + rd->len && rd->at < low)
			low = rd->at;
	if (low > f->base)
		f->base = low;
}

/* Copies len bytes (at most FILL_WINDOW) into the window once the readers
 * have made room. Caller holds f->mu. 0, or -1 when cancelled. */
static int
fill_ring_put(struct mir_fill *f, const char *data, size_t len)
{
	size_t off, first;

	for (;;) {
		fill_slide(f);
		if (f->written + len - f->base <= FILL_WINDOW)
			break;
		if (f->cancel || mir_resp_stopping(f->fl->rs))
			return -1;
		hc_cond_wait_ms(&f->cv, &f->mu, FILL_POLL_MS);
	}
	off = (size_t)(f->written % FILL_WINDOW);
	first = len < FILL_WINDOW - off ? len : FILL_WINDOW - off;
	memcpy(f->ring + off, data, first);
	memcpy(f->ring, data + first, len - first);
	return 0;
}

static int
fill_sink(void *ctx, const void *data, size_t len)
{
	struct mir_fill *f = ctx;
	const char *p = data;
	int rc = 0;

	/* Only this thread writes written: reading it unlocked here is safe. */
	if (f->written + len > f->size)
		return 1;
	if (f->ring == NULL && hc_write_all(f->fd, data, len) != 0)
		return 1;
	hc_sha256_update(f->h, data, len);
	atomic_fetch_add(&f->fl->origin_bytes, len);
	pthread_mutex_lock(&f->mu);
	while (len > 0 && rc == 0) {
		size_t n = len < FILL_WINDOW / 2 ? len : FILL_WINDOW / 2;
		if (f->ring != NULL)
			rc = fill_ring_put(f, p, n);
		if (rc == 0) {
			f->written += n;
			p += n;
			len -= n;
			fill_signal(f);
		}
	}
	pthread_mutex_unlock(&f->mu);
	return rc != 0;
}

/* Runs the transfer and checks what arrived: 1 when the whole file came
 * with a matching digest (hex: what arrived), else 0 with err saying why. */
static int
fill_fetch(struct mir_fill *f, char *hex, struct hc_err *err)
{
	struct hc_http_request req;
	struct hc_http_response resp;
	char *url = fill_url(f->fl->origin_base, f->path);
	char *shown = fill_url(f->fl->shown_base, f->path);
	int rc;

	f->fail = MIR_FILL_FAIL_OTHER;
	if (url == NULL || shown == NULL) {
		free(url);
		free(shown);
		hc_err_set(err, HC_ENOMEM, "out of memory");
		return 0;
	}
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.sink = fill_sink;
	req.on_headers = fill_on_headers;
	req.ctx = f;
	req.cancel = &f->cancel;
	req.fail_on_http_error = 1;
	hc_log(HC_LOG_INFO, "mirror", "fill %s from %s", f->path, shown);
	hc_http_response_init(&resp);
	rc = hc_http_request(&f->fl->http, &req, &resp, err);
	free(url);
	free(shown);
	fill_note_origin(f->fl, resp.status > 0, err->msg);
	f->fail = resp.status == 0 ? MIR_FILL_FAIL_UNREACHABLE :
	          resp.fail == HC_FAIL_HTTP_STATUS ? MIR_FILL_FAIL_STATUS : MIR_FILL_FAIL_SHORT;
	if (rc != 0)
		return 0;
	f->fail = MIR_FILL_FAIL_SHORT;
	if (f->state != FILL_STREAMING || f->written != f->size) {
		hc_err_set(err, HC_EUNAVAIL, "origin sent %" PRIu64 " of %" PRIu64 " bytes",
		           f->written, f->size);
		return 0;
	}
	f->fail = MIR_FILL_FAIL_OTHER;
	if (hc_sha256_hex(f->h, hex) != 0) {
		hc_err_set(err, HC_ESOFTWARE, "sha256 failed");
		return 0;
	}
	f->fail = MIR_FILL_FAIL_DIGEST;
	if (f->sha256[0] != '\0' && strcmp(hex, f->sha256) != 0) {
		hc_err_set(err, HC_EDATA, "digest mismatch: origin says %s, got %s", f->sha256,
		           hex);
		return 0;
	}
	if (f->sha256[0] == '\0')
		hc_log(HC_LOG_WARN, "mirror", "origin sent no digest for %s: served unverified, "
		       "without digest headers", f->path);
	return 1;
}

/* Commits or drops the temp file and takes f off the list, in one section
 * of the list lock: a miss sees the file in the store or the fill, never
 * neither. */
static void
fill_settle(struct mir_fill *f, int ok)
{
	struct mir_fills *fl = f->fl;
	struct hc_err cerr = { 0, "" };
	struct mir_fill **pp;

	/* The slow part of the commit, outside the lock every miss takes; the
	 * commit's own fsync then has nothing left to write and reports errors. */
	if (ok && f->cache)
		(void)fsync(f->fd);
	pthread_mutex_lock(&fl->mu);
	if (ok && f->cache) {
		/* The origin's digest, "" when it gave none: a digest of our own
		 * would later be presented as the origin's. */
		if (mir_store_commit(fl->store, f->path, f->tmp, f->fd, f->size, f->sha256,
		                     f->reserved, &f->pin, &cerr) != 0)
			hc_log(HC_LOG_WARN, "mirror", "cannot cache %s: %s", f->path, cerr.msg);
	} else {
		if (f->tmp[0] != '\0')
			unlink(f->tmp);
		mir_store_unreserve(fl->store, f->reserved);
	}
	for (pp = &fl->list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	atomic_fetch_sub(&fl->in_flight, 1);
	pthread_mutex_unlock(&fl->mu);
}

/* The fill thread: STREAMING (or FAILED at the headers), then DONE or
 * FAILED once the file is checked and settled. */
static void *
fill_main(void *arg)
{
	struct mir_fill *f = arg;
	struct mir_fills *fl = f->fl;
	struct hc_err err = { 0, "" };
	char hex[HC_SHA256_HEX_LEN + 1] = "";
	int64_t t0 = hc_now_ms();
	int ok;

	ok = fill_fetch(f, hex, &err);
	fill_settle(f, ok);
	pthread_mutex_lock(&f->mu);
	f->state = ok ? FILL_DONE : FILL_FAILED;
	if (!ok && f->origin_status == 0)
		f->origin_status = 502;
	fill_signal(f);
	pthread_mutex_unlock(&f->mu);
	if (ok) {
		hc_log(HC_LOG_INFO, "mirror", "filled %s: %" PRIu64 " bytes sha256 %s in %" PRId64
		       " ms%s%s", f->path, f->size, f->sha256[0] != '\0' ? hex : "none from the origin",
		       hc_now_ms() - t0, f->cache ? "" : " (not cached)",
		       f->sha256[0] != '\0' ? "" : " (unverified)");
	} else {
		atomic_fetch_add(&fl->failed, 1);
		atomic_fetch_add(&fl->failed_by[f->fail], 1);
		hc_log(f->origin_status == 404 ? HC_LOG_INFO : HC_LOG_WARN, "mirror",
		       "fill %s failed: %s", f->path, err.msg);
	}
	fill_unref(f);
	pthread_mutex_lock(&fl->mu);
	fl->threads--;
	pthread_cond_broadcast(&fl->cv);
	pthread_mutex_unlock(&fl->mu);
	return NULL;
}

/* Starts a fill for path with one reference for the caller; idle_ms as
 * in struct mir_fill. Caller holds fl->mu. NULL on failure (err says why). */
static struct mir_fill *
fill_start(struct mir_fills *fl, const char *path, int64_t idle_ms, struct hc_err *err)
{
	struct mir_fill *f = calloc(1, sizeof(*f));
	pthread_attr_t attr;
	pthread_t t;
	int started;

	if (f == NULL) {
		hc_err_set(err, HC_ENOMEM, "out of memory");
		return NULL;
	}
	f->fl = fl;
	f->fd = -1;
	f->refs = 2;
	f->idle_ms = idle_ms;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->path = hc_strdup(path);
	f->h = hc_sha256_new();
	if (f->path == NULL || f->h == NULL) {
		hc_err_set(err, HC_ENOMEM, "out of memory");
		goto fail;
	}
	f->fd = mir_store_tmp(fl->store, f->tmp, sizeof(f->tmp), err);
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
	f->next = fl->list;
	fl->list = f;
	fl->threads++;
	atomic_fetch_add(&fl->in_flight, 1);
	atomic_fetch_add(&fl->started, 1);
	return f;
fail:
	f->refs = 1;
	fill_unref(f);
	return NULL;
}

/* The fill for path, joined (one more reference), or NULL. A fill whose
 * stream-through window has moved past the start cannot be joined. Caller
 * holds fl->mu. */
static struct mir_fill *
fill_join(struct mir_fills *fl, const char *path)
{
	struct mir_fill *f;
	int joined;

	for (f = fl->list; f != NULL; f = f->next) {
		if (strcmp(f->path, path) != 0)
			continue;
		pthread_mutex_lock(&f->mu);
		joined = f->ring == NULL || f->base == 0;
		if (joined)
			f->refs++;
		pthread_mutex_unlock(&f->mu);
		if (joined)
			return f;
	}
	return NULL;
}

/* ------------------------------------------------------------ readers */

static ssize_t
fill_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct fill_reader *rd = cls;
	struct mir_fill *f = rd->f;
	struct mir_resp *rs = f->fl->rs;
	uint64_t at = rd->start + pos, end = rd->start + rd->len, avail;
	size_t n;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		if (f->state == FILL_FAILED || mir_resp_stopping(rs)) {
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
		if (f->ring != NULL && !rd->stashed && at == end - 1 && f->written >= end) {
			rd->last = f->ring[(end - 1) % FILL_WINDOW];
			rd->stashed = 1;
			pthread_cond_broadcast(&f->cv);
		}
		/* Parked until the fill signals; the bound re-checks shutdown. */
		if (mir_park_suspend(rs->park, &rd->wait, rd->c, &f->waiters, FILL_POLL_MS) != 0) {
			pthread_mutex_unlock(&f->mu);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		pthread_mutex_unlock(&f->mu);
		return 0;
	}
	pthread_mutex_unlock(&f->mu);
	n = max;
	if (n > avail - at)
		n = (size_t)(avail - at);
	n = mir_resp_pace(rs, rd->c, &rd->wait, n);
	if (n == 0)
		return 0;
	/* ring is set before STREAMING and stays: no lock needed to look. */
	if (f->ring != NULL && rd->stashed) {
		buf[0] = rd->last;      /* at is end - 1: nothing else is left */
		return 1;
	}
	if (f->ring != NULL) {
		size_t off = (size_t)(at % FILL_WINDOW);
		size_t first = n < FILL_WINDOW - off ? n : FILL_WINDOW - off;

		pthread_mutex_lock(&f->mu);
		memcpy(buf, f->ring + off, first);
		memcpy(buf + first, f->ring, n - first);
		rd->at = at + n;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		return (ssize_t)n;
	}
	return mir_resp_read_at(f->fd, buf, n, at);
}

static void
fill_reader_free(void *cls)
{
	struct fill_reader *rd = cls;
	struct mir_fill *f = rd->f;
	struct fill_reader **pp;

	pthread_mutex_lock(&f->mu);
	mir_park_cancel(f->fl->rs->park, &rd->wait);
	for (pp = &f->readers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == rd) {
			*pp = rd->next;
			f->registered--;
			break;
		}
	}
	pthread_mutex_unlock(&f->mu);
	fill_unref(f);
	free(rd);
}

/* Waits until f leaves the state from (or shutdown); returns the state. */
static enum fill_state
fill_wait_past(struct mir_fill *f, enum fill_state from)
{
	enum fill_state state;

	pthread_mutex_lock(&f->mu);
	while (f->state <= from && !mir_resp_stopping(f->fl->rs))
		hc_cond_wait_ms(&f->cv, &f->mu, FILL_POLL_MS);
	state = f->state;
	pthread_mutex_unlock(&f->mu);
	return state;
}

/* A body that reads range start..len of f as it arrives; takes the
 * caller's reference. NULL when out of memory (the reference is dropped). */
static struct MHD_Response *
fill_body(struct mir_fill *f, struct MHD_Connection *c, uint64_t start, uint64_t len)
{
	struct fill_reader *rd = malloc(sizeof(*rd));
	struct MHD_Response *resp;

	if (rd == NULL) {
		fill_unref(f);
		return NULL;
	}
	rd->f = f;
	rd->c = c;
	mir_park_wait_init(&rd->wait);
	rd->start = start;
	rd->len = len;
	rd->at = start;
	rd->stashed = 0;
	rd->last = 0;
	/* Registered at once: a stream-through window waits for it from now
	 * (it has not moved since this reader joined, see fill_join). */
	pthread_mutex_lock(&f->mu);
	rd->next = f->readers;
	f->readers = rd;
	f->registered++;
	pthread_mutex_unlock(&f->mu);
	resp = MHD_create_response_from_callback(len, FILL_BLOCK_SIZE, fill_read, rd,
	                                         fill_reader_free);
	if (resp == NULL)
		fill_reader_free(rd);
	return resp;
}

/* Answers from a fill whose headers arrived; takes the caller's reference.
 * HEAD sends the headers only. */
static enum MHD_Result
fill_respond(struct mir_fill *f, struct MHD_Connection *c, struct mir_req *r, int head)
{
	struct mir_resp *rs = f->fl->rs;
	char sha[HC_SHA256_HEX_LEN + 1];
	struct mir_resp_file rf = { 0, 0, sha };
	struct MHD_Response *body = NULL;
	uint64_t start, len;
	enum mir_range k;

	pthread_mutex_lock(&f->mu);
	rf.size = f->size;
	memcpy(sha, f->sha256, sizeof(sha));
	pthread_mutex_unlock(&f->mu);
	k = mir_resp_range(c, &rf, &start, &len);
	/* No last byte to hold back in an empty body: answer once the digest
	 * is checked. */
	if (k != MIR_RANGE_UNSATISFIABLE && !head && len == 0 &&
	    fill_wait_past(f, FILL_STREAMING) != FILL_DONE) {
		fill_unref(f);
		return MHD_NO;
	}
	if (k == MIR_RANGE_UNSATISFIABLE || head || len == 0) {
		fill_unref(f);
	} else {
		body = fill_body(f, c, start, len);
		if (body == NULL)
			return MHD_NO;
	}
	return mir_resp_file_send(rs, c, r, &rf, k, start, len, body);
}

enum MHD_Result
mir_fills_get(struct mir_fills *fl, struct MHD_Connection *c, struct mir_req *r,
              const char *path)
{
	struct mir_fill *f;
	struct mir_file file;
	struct hc_err err = { 0, "" };
	enum fill_state state;
	long status;

	pthread_mutex_lock(&fl->mu);
	if (mir_resp_stopping(fl->rs)) {
		pthread_mutex_unlock(&fl->mu);
		return mir_resp_error(fl->rs, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
	}
	/* A fill may have finished since the caller looked. */
	if (mir_store_get(fl->store, path, 1, &file, &err) == 0) {
		pthread_mutex_unlock(&fl->mu);
		return mir_resp_stored(fl->rs, c, r, &file, 0);
	}
	f = fill_join(fl, path);
	if (f == NULL)
		f = fill_start(fl, path, -1, &err);
	pthread_mutex_unlock(&fl->mu);
	if (f == NULL) {
		hc_log(HC_LOG_WARN, "mirror", "fill %s: %s", path, err.msg);
		return mir_resp_error(fl->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	state = fill_wait_past(f, FILL_WAIT_HEADERS);
	pthread_mutex_lock(&f->mu);
	status = f->origin_status;
	pthread_mutex_unlock(&f->mu);
	if (state == FILL_WAIT_HEADERS || state == FILL_FAILED) {
		fill_unref(f);
		if (status == 404)
			return mir_resp_error(fl->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
		return mir_resp_error(fl->rs, c, r, MHD_HTTP_BAD_GATEWAY, "origin failed");
	}
	return fill_respond(f, c, r, 0);
}

int
mir_fills_prefetch(struct mir_fills *fl, const char *path, int64_t idle_ms,
                   struct hc_err *err)
{
	struct mir_fill *f;
	struct mir_file file;
	enum fill_state state;
	uint64_t size;
	long status;
	int cache;

	pthread_mutex_lock(&fl->mu);
	if (mir_resp_stopping(fl->rs)) {
		pthread_mutex_unlock(&fl->mu);
		return hc_err_set(err, HC_EUNAVAIL, "shutting down");
	}
	if (mir_store_get(fl->store, path, 0, &file, err) == 0) {
		pthread_mutex_unlock(&fl->mu);
		close(file.fd);
		mir_store_release(fl->store, file.entry);
		return 0;
	}
	f = fill_join(fl, path);
	if (f == NULL)
		f = fill_start(fl, path, idle_ms, err);
	pthread_mutex_unlock(&fl->mu);
	if (f == NULL)
		return HC_EUNAVAIL;
	state = fill_wait_past(f, FILL_WAIT_HEADERS);
	pthread_mutex_lock(&f->mu);
	cache = f->cache;
	pthread_mutex_unlock(&f->mu);
	/* A fill streaming through waits for every reference to read its
	 * window: this one never reads, so it lets go at once. */
	if (state == FILL_STREAMING && !cache) {
		pthread_mutex_lock(&f->mu);
		size = f->size;
		pthread_mutex_unlock(&f->mu);
		fill_unref(f);
		return hc_err_set(err, HC_EIO, "no room for %" PRIu64 " bytes: the disk is full, "
		                  "or the files that could make room are pinned or were read "
		                  "within %" PRId64 " s", size, idle_ms / 1000);
	}
	if (state == FILL_STREAMING)
		state = fill_wait_past(f, FILL_STREAMING);
	pthread_mutex_lock(&f->mu);
	status = f->origin_status;
	pthread_mutex_unlock(&f->mu);
	fill_unref(f);
	if (state == FILL_DONE)
		return 0;
	if (status == 404)
		return hc_err_set(err, HC_ENOTFOUND, "%s: not on the origin", path);
	return hc_err_set(err, HC_EUNAVAIL, "fill %s failed", path);
}

/* A HEAD for a path no fill knows: asks the origin. */
static enum MHD_Result
fill_head_origin(struct mir_fills *fl, struct MHD_Connection *c, struct mir_req *r,
                 const char *path)
{
	struct hc_http_request req;
	struct hc_http_response resp;
	struct hc_err err = { 0, "" };
	struct mir_resp_file rf = { 0, 0, resp.sha256 };
	uint64_t start, len;
	enum mir_range k;
	char *url = fill_url(fl->origin_base, path);
	int rc;

	if (url == NULL)
		return MHD_NO;
	memset(&req, 0, sizeof(req));
	req.method = "HEAD";
	req.url = url;
	hc_http_response_init(&resp);
	rc = hc_http_request(&fl->http, &req, &resp, &err);
	free(url);
	fill_note_origin(fl, resp.status > 0, err.msg);
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "mirror", "HEAD %s at the origin: %s", path, err.msg);
		return mir_resp_error(fl->rs, c, r, MHD_HTTP_BAD_GATEWAY, "origin failed");
	}
	if (resp.status == 404)
		return mir_resp_error(fl->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
	if (resp.status != 200 || resp.content_length < 0)
		return mir_resp_error(fl->rs, c, r, MHD_HTTP_BAD_GATEWAY, "origin failed");
	if (resp.sha256[0] == '\0' && fl->require_origin_digest) {
		hc_log(HC_LOG_WARN, "mirror", "HEAD %s refused: the origin sent no digest and "
		       "require_origin_digest is on", path);
		return mir_resp_error(fl->rs, c, r, MHD_HTTP_BAD_GATEWAY, "origin sent no digest");
	}
	rf.size = (uint64_t)resp.content_length;
	k = mir_resp_range(c, &rf, &start, &len);
	return mir_resp_file_send(fl->rs, c, r, &rf, k, start, len, NULL);
}

enum MHD_Result
mir_fills_head(struct mir_fills *fl, struct MHD_Connection *c, struct mir_req *r,
               const char *path)
{
	struct mir_fill *f;
	int known;

	pthread_mutex_lock(&fl->mu);
	f = fill_join(fl, path);
	pthread_mutex_unlock(&fl->mu);
	if (f != NULL) {
		pthread_mutex_lock(&f->mu);
		known = f->state == FILL_STREAMING || f->state == FILL_DONE;
		pthread_mutex_unlock(&f->mu);
		if (known)
			return fill_respond(f, c, r, 1);
		fill_unref(f);
	}
	return fill_head_origin(fl, c, r, path);
}

void
mir_fills_cancel_all(struct mir_fills *fl)
{
	struct mir_fill *f;

	if (fl == NULL)
		return;
	pthread_mutex_lock(&fl->mu);
	for (f = fl->list; f != NULL; f = f->next) {
		f->cancel = 1;
		pthread_mutex_lock(&f->mu);
		fill_signal(f);
		pthread_mutex_unlock(&f->mu);
	}
	pthread_mutex_unlock(&fl->mu);
}

void
mir_fills_wait_all(struct mir_fills *fl)
{
	if (fl == NULL)
		return;
	pthread_mutex_lock(&fl->mu);
	while (fl->threads > 0)
		hc_cond_wait_ms(&fl->cv, &fl->mu, FILL_POLL_MS);
	pthread_mutex_unlock(&fl->mu);
}

void
mir_fills_probe(struct mir_fills *fl)
{
	struct hc_http_config http;
	struct hc_http_request req;
	struct hc_http_response resp;
	struct hc_err err = { 0, "" };
	struct hc_buf url;
	int down;

	if (fl == NULL)
		return;
	pthread_mutex_lock(&fl->origin_mu);
	down = fl->origin_down;
	pthread_mutex_unlock(&fl->origin_mu);
	if (!down)
		return;
	hc_buf_init(&url, strlen(fl->origin_base) + 2);
	if (hc_buf_printf(&url, "%s/", fl->origin_base) != 0) {
		hc_buf_free(&url);
		return;
	}
	http = fl->http;
	http.connect_timeout_ms = FILL_PROBE_TIMEOUT_MS;
	http.total_timeout_ms = FILL_PROBE_TIMEOUT_MS;
	memset(&req, 0, sizeof(req));
	req.method = "HEAD";
	req.url = hc_buf_str(&url);
	hc_http_response_init(&resp);
	(void)hc_http_request(&http, &req, &resp, &err);
	hc_buf_free(&url);
	if (resp.status > 0)
		fill_note_origin(fl, 1, "");
}
