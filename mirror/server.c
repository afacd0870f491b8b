/*
 * The HTTP side of hydra-mirror on libmicrohttpd: routes, hits, PUT and
 * DELETE on the origin, health, metrics and the lifecycle. Responses are
 * made by respond.c, misses on a peer by fill.c, the tools tree by tools.c,
 * slow and idle clients are kept in check by guard.c.
 *
 * Serving core: libmicrohttpd's epoll thread pool (one thread per online
 * core), never a thread per connection. A pool thread never blocks: bodies
 * waiting for a fill or the egress bucket park their connection, and the
 * set-up that waits on the network (misses, upstream, verify, the journal's
 * long poll) runs on a park worker while the connection is suspended
 * (park.h). Shutdown resumes every parked connection before the daemons
 * stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "mirror/access.h"
#include "mirror/acme.h"
#include "mirror/fill.h"
#include "mirror/journal.h"
#include "mirror/prewarm.h"
#include "mirror/guard.h"
#include "mirror/park.h"
#include "mirror/tools.h"
#include "mirror/upstream.h"
#include "mirror/verify.h"

#define SRV_FILES_PREFIX "/api/v1/peer/files/"
#define SRV_TOOLS_PREFIX "/api/v1/tools/"
/* Pool thread stacks: no libcurl runs on them (the park's workers do). */
#define SRV_STACK_SIZE ((size_t)1 << 20)
/* Park workers: each runs one blocking set-up (an origin round trip, a
 * hash, a long poll) at a time; more queue. */
#define SRV_PARK_WORKERS 16
/* Pool threads when the number of online cores cannot be read. */
#define SRV_THREADS_FALLBACK 2
/* A connection's memory in libmicrohttpd (request head, reply headers),
 * all of it touched (it is zeroed between requests): 10,000 idle
 * keep-alive connections must stay under 64 MiB of RSS (measured: 60 MiB
 * with 4 KiB), and a head of 2 KiB still fits. */
#define SRV_CONN_MEMORY ((size_t)4 << 10)
/* Connections the kernel queues for accept while every pool thread is busy. */
#define SRV_BACKLOG 4096
/* Largest PEM file accepted for the certificate or the key. */
#define SRV_PEM_MAX ((size_t)1 << 20)
/* The index is written at most this often while files are being read. */
#define SRV_FLUSH_PERIOD_MS 1000
/* The metrics page: a few hundred lines of counters, plus one line per
 * tool (at most TOOLS_COUNTED_MAX in tools.c). */
#define SRV_METRICS_MAX ((size_t)4 << 20)
/* Listeners replaced by a certificate reload that still serve their
 * connections; a reload beyond this waits for them to end. */
#define SRV_RETIRED_MAX 8
/* While the origin is unreachable, it is asked this often whether it is back. */
#define SRV_PROBE_PERIOD_MS 5000
/* Health turns degraded when less than this part of the disk is free. */
#define SRV_DISK_LOW_PERCENT 5
/* Upper bounds (seconds) of the request duration histogram. */
static const double srv_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                      10, 30, 60, 300 };
#define SRV_BUCKETS (sizeof(srv_buckets) / sizeof(srv_buckets[0]))

/* The routes the histogram tells apart. */
enum srv_route { SRV_ROUTE_FILES, SRV_ROUTE_TOOLS, SRV_ROUTE_HEALTH, SRV_ROUTE_METRICS,
                 SRV_ROUTE_OTHER, SRV_ROUTES };
static const char *const srv_route_names[SRV_ROUTES] = {
	"files", "tools", "health", "metrics", "other",
};

/* ------------------------------------------------------------ requests */

enum srv_put_state {
	SRV_PUT_NONE = 0,   /* not a PUT, or not started */
	SRV_PUT_WRITING,    /* body going to the temp file */
	SRV_PUT_FULL,       /* disk full: the rest of the body is discarded, 507 */
	SRV_PUT_FAILED,     /* other write error: 500 */
	SRV_PUT_DONE,
};

/* The set-ups a park worker runs, since they wait on the network, a long
 * poll or a hash. */
enum srv_job { SRV_JOB_NONE = 0, SRV_JOB_FILL_GET, SRV_JOB_FILL_HEAD, SRV_JOB_UPSTREAM,
               SRV_JOB_IMPORT, SRV_JOB_VERIFY, SRV_JOB_PEER_API };

/* One request, made when its URI arrives, freed when it completes. The
 * response layer, fills and tools see only its base. */
struct srv_req {
	struct mir_req base;
	char *uri;                      /* raw, still percent-encoded */
	int seen;                       /* the handler has been called once */
	int64_t t0_ms;                  /* the URI arrived */
	char addr[64];                  /* client address, numeric */
	char method[16], version[16];
	char *referer, *agent;          /* copied for the access log, may be NULL */
	const char *outcome;            /* hit, miss, fill or bypass */
	enum srv_route route;
	enum srv_put_state put_state;
	int put_fd;
	char put_tmp[PATH_MAX];
	char put_path[MIR_PATH_MAX];
	char put_expect[HC_SHA256_HEX_LEN + 1];
	struct hc_buf post;             /* POST /api/v1/peer/prewarm body, capped */
	int post_over;                  /* it went past the cap */
	char put_hex[HC_SHA256_HEX_LEN + 1];  /* what arrived, once whole */
	struct hc_sha256 *put_sha;
	uint64_t put_bytes;
	/* A set-up run by a park worker (srv_offload): what, and its result
	 * once done, queued at the handler's next call. */
	struct mir_server *srv;
	struct MHD_Connection *conn;
	enum srv_job job;
	int job_done;
	enum MHD_Result job_ret;
	int job_head;
	char job_path[MIR_PATH_MAX];
	/* GET /api/v1/peer/changes with a wait: polled on the park's timer
	 * until this time, so a long poll holds no thread. */
	int64_t poll_until_ms;
	struct mir_park_wait poll_wait;
};

struct mir_server {
	const struct mir_config *cfg;   /* as started: listen, root, mode never change */
	struct MHD_Daemon *d;           /* the listener accepting now */
	struct MHD_Daemon *retired[SRV_RETIRED_MAX]; /* replaced, serving what they had */
	int listen_fd;                  /* ours once quiesced out of a daemon, else -1 */
	struct sockaddr_storage ss;
	struct mir_acme *acme;
	struct mir_access *access;
	pthread_mutex_t live_mu;        /* token, certificate and listeners */
	int port;                       /* bound at start; a reload keeps the socket */
	int64_t started_ms;
	atomic_uint_least64_t in_flight; /* requests between URI and completion */
	atomic_uint_least64_t hist[SRV_ROUTES][SRV_BUCKETS + 1];
	atomic_uint_least64_t hist_us[SRV_ROUTES];
	atomic_uint_least64_t hist_n[SRV_ROUTES];
	unsigned char key_digest[SHA256_DIGEST_LENGTH]; /* of the key in use */
	struct mir_store *store;
	struct mir_resp rs;
	struct mir_fills *fills;        /* peers only */
	struct mir_journal *journal;    /* origins only: the publish journal */
	struct mir_prewarm *prewarm;    /* peers with prewarm.enabled */
	struct mir_tools *tools;
	struct mir_upstream *upstream;  /* origins with tools_upstream only */
	struct mir_guard *guard;
	struct mir_park *park;          /* parked connections and set-up workers */
	unsigned threads;               /* pool threads of each listener */
	unsigned char token_digest[SHA256_DIGEST_LENGTH];
	int has_token;
	char *tls_cert, *tls_key;
	char origin_shown[MIR_URL_SHOWN_MAX]; /* origin_url without credentials */

	/* index writer */
	int64_t probe_ms;               /* last origin probe */
	pthread_t flusher;
	int flusher_started;
	pthread_mutex_t flush_mu;
	pthread_cond_t flush_cv;
	int flush_stop;

	atomic_uint_least64_t hits, misses, bytes_served;

	/* integrity (peers): the scrubber, POST verify, hits verified as sent */
	struct mir_verify *verify;
	atomic_int_least64_t verify_max_age_ms; /* reloadable */
};

static enum MHD_Result
srv_method_not_allowed(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
                       const char *allow)
{
	const char *const headers[] = { MHD_HTTP_HEADER_ALLOW, allow, NULL };

	return mir_resp_json(&s->rs, c, r, MHD_HTTP_METHOD_NOT_ALLOWED,
	                     "{\"error\": \"method not allowed\"}\n", headers);
}

/* ------------------------------------------------------------ offloaded set-up */

static void srv_job_run(void *arg);

/* Runs job on a park worker while c is suspended: its answer is kept in
 * the request and queued at the handler's next call (srv_handle). 503
 * when the workers' queue is full. */
static enum MHD_Result
srv_offload(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
            enum srv_job job, const char *path, int head)
{
	q->srv = s;
	q->conn = c;
	q->job = job;
	q->job_head = head;
	q->job_done = 0;
	if (hc_strlcpy(q->job_path, path, sizeof(q->job_path)) != 0)
		return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_BAD_REQUEST, "path too long");
	q->base.deferring = 1;
	if (mir_park_offload(s->park, c, srv_job_run, q) == 0)
		return MHD_YES;
	q->base.deferring = 0;
	q->job = SRV_JOB_NONE;
	hc_log(HC_LOG_WARN, "mirror", "%s %s: every set-up worker is busy", q->method, q->uri);
	return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_SERVICE_UNAVAILABLE, "busy");
}

/* ------------------------------------------------------------ files */

/* A peer's hit that has a digest and was not verified within
 * verify_max_age_s is hashed while it is sent. */
static int
srv_verify_stale(struct mir_server *s, const struct mir_file *f)
{
	int64_t age = atomic_load(&s->verify_max_age_ms);

	return f->sha256[0] != '\0' && (f->verified_ms == 0 || hc_now_ms() - f->verified_ms >= age);
}

static enum MHD_Result
srv_get_file(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
             const char *path, int head)
{
	struct mir_req *r = &q->base;
	struct mir_file f;
	struct hc_err err = { 0, "" };
	int rc;

	rc = mir_store_get(s->store, path, 1, &f, &err);
	if (rc == 0) {
		atomic_fetch_add(&s->hits, 1);
		q->outcome = "hit";
		mir_tools_count(s->tools, path, 1);
		if (s->verify != NULL && srv_verify_stale(s, &f))
			return mir_resp_stored_checked(&s->rs, s->store, c, r, &f, head);
		return mir_resp_stored(&s->rs, c, r, &f, head);
	}
	if (rc == HC_EDATA)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	if (rc != HC_ENOTFOUND) {
		hc_log(HC_LOG_WARN, "mirror", "GET %s: %s", path, err.msg);
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	atomic_fetch_add(&s->misses, 1);
	mir_tools_count(s->tools, path, 0);
	q->outcome = head || s->cfg->mode == MIR_MODE_ORIGIN ? "miss" : "fill";
	if (s->upstream != NULL && mir_upstream_handles(path)) {
		q->outcome = "fill";
		return srv_offload(s, c, q, SRV_JOB_UPSTREAM, path, head);
	}
	if (s->cfg->mode == MIR_MODE_ORIGIN)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
	return srv_offload(s, c, q, head ? SRV_JOB_FILL_HEAD : SRV_JOB_FILL_GET, path, head);
}

/* ------------------------------------------------------------ origin writes */

static int
srv_authorized(struct mir_server *s, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char digest[SHA256_DIGEST_LENGTH];
	int ok;

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	/* Comparing digests hides the token's length as well as its bytes. */
	SHA256((const unsigned char *)h, strlen(h), digest);
	pthread_mutex_lock(&s->live_mu);
	ok = s->has_token && CRYPTO_memcmp(digest, s->token_digest, sizeof(digest)) == 0;
	pthread_mutex_unlock(&s->live_mu);
	return ok;
}

static enum MHD_Result
srv_unauthorized(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r)
{
	const char *const headers[] = { MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer", NULL };

	return mir_resp_json(&s->rs, c, r, MHD_HTTP_UNAUTHORIZED,
	                     "{\"error\": \"unauthorized\"}\n", headers);
}

static enum MHD_Result
srv_put_begin(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
              const char *path)
{
	const char *v;
	struct hc_err err = { 0, "" };
	long long clen = -1;

	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-File-SHA256");
	if (v != NULL) {
		if (!hc_sha256_hex_valid(v))
			return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_BAD_REQUEST, "bad X-File-SHA256");
		hc_hex_lower(q->put_expect, v, HC_SHA256_HEX_LEN);
	} else {
		v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Repr-Digest");
		if (v != NULL && hc_sha256_from_repr_digest(v, q->put_expect) != 0)
			return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_BAD_REQUEST, "bad Repr-Digest");
	}
	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (v != NULL && hc_parse_int(v, 0, INT64_MAX, &clen) == 0 &&
	    (uint64_t)clen > mir_store_free_bytes(s->store)) {
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: %lld bytes do not fit on the disk", path,
		       clen);
		return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_INSUFFICIENT_STORAGE, "disk full");
	}
	if (hc_strlcpy(q->put_path, path, sizeof(q->put_path)) != 0)
		return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_BAD_REQUEST, "path too long");
	q->put_sha = hc_sha256_new();
	if (q->put_sha == NULL)
		return MHD_NO;
	q->put_fd = mir_store_tmp(s->store, q->put_tmp, sizeof(q->put_tmp), &err);
	if (q->put_fd < 0) {
		q->put_tmp[0] = '\0';
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: %s", path, err.msg);
		return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	q->put_state = SRV_PUT_WRITING;
	return MHD_YES;
}

static void
srv_put_drop(struct srv_req *q)
{
	if (q->put_fd >= 0)
		close(q->put_fd);
	q->put_fd = -1;
	if (q->put_tmp[0] != '\0')
		unlink(q->put_tmp);
	q->put_tmp[0] = '\0';
}

/* The whole body arrived: checks the digest sent along and commits. */
static enum MHD_Result
srv_put_finish(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q)
{
	char hex[HC_SHA256_HEX_LEN + 1], etag[HC_SHA256_HEX_LEN + 3], body[256];
	const char *const headers[] = { MHD_HTTP_HEADER_ETAG, etag, "X-File-SHA256", hex, NULL };
	struct hc_err err = { 0, "" };
	int rc, full;

	q->put_state = SRV_PUT_DONE;
	hc_sha256_hex(q->put_sha, hex);
	hc_strlcpy(q->put_hex, hex, sizeof(q->put_hex));
	if (q->put_expect[0] != '\0' && strcmp(hex, q->put_expect) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: digest mismatch: sent %s, received %s",
		       q->put_path, q->put_expect, hex);
		srv_put_drop(q);
		return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_UNPROCESSABLE_CONTENT,
		                      "sha256 mismatch");
	}
	rc = mir_store_commit(s->store, q->put_path, q->put_tmp, q->put_fd, q->put_bytes,
	                      hex, 0, NULL, &err);
	full = errno == ENOSPC || errno == EDQUOT;
	q->put_tmp[0] = '\0';  /* renamed, or removed by the commit */
	close(q->put_fd);
	q->put_fd = -1;
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: %s", q->put_path, err.msg);
		if (rc == HC_EDATA)
			return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_BAD_REQUEST, "bad path");
		return mir_resp_error(&s->rs, c, &q->base, full ? MHD_HTTP_INSUFFICIENT_STORAGE :
		                      MHD_HTTP_INTERNAL_SERVER_ERROR,
		                      full ? "disk full" : "store error");
	}
	hc_log(HC_LOG_INFO, "mirror", "stored %s (%" PRIu64 " bytes, sha256 %s)", q->put_path,
	       q->put_bytes, hex);
	mir_journal_note(s->journal, MIR_JOURNAL_PUT, q->put_path, q->put_bytes, hex);
	hc_snprintf(body, sizeof(body), "{\"size\": %" PRIu64 ", \"sha256\": \"%s\"}\n",
	            q->put_bytes, hex);
	hc_snprintf(etag, sizeof(etag), "\"%s\"", hex);
	return mir_resp_json(&s->rs, c, &q->base, MHD_HTTP_CREATED, body, headers);
}

/* A piece of the body, or its end (*size 0). */
static enum MHD_Result
srv_put_data(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
             const char *data, size_t *size)
{
	if (*size > 0) {
		if (q->put_state == SRV_PUT_WRITING) {
			if (hc_write_all(q->put_fd, data, *size) != 0) {
				int e = errno;
				q->put_state = (e == ENOSPC || e == EDQUOT) ? SRV_PUT_FULL : SRV_PUT_FAILED;
				hc_log(HC_LOG_WARN, "mirror", "PUT %s: write: %s", q->put_path, strerror(e));
				srv_put_drop(q);
			} else {
				hc_sha256_update(q->put_sha, data, *size);
				q->put_bytes += *size;
			}
		}
		*size = 0;
		return MHD_YES;
	}
	if (q->put_state == SRV_PUT_FULL)
		return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_INSUFFICIENT_STORAGE,
		                      "disk full");
	if (q->put_state != SRV_PUT_WRITING)
		return mir_resp_error(&s->rs, c, &q->base, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                      "write failed");
	return srv_put_finish(s, c, q);
}

static enum MHD_Result
srv_delete(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
           const char *path)
{
	struct hc_err err = { 0, "" };
	struct MHD_Response *resp;
	int rc = mir_store_delete(s->store, path, &err);

	if (rc == HC_ENOTFOUND)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
	if (rc == HC_EDATA)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "mirror", "DELETE %s: %s", path, err.msg);
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	hc_log(HC_LOG_INFO, "mirror", "deleted %s", path);
	mir_journal_note(s->journal, MIR_JOURNAL_DELETE, path, 0, "");
	resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	return mir_resp_queue(&s->rs, c, r, MHD_HTTP_NO_CONTENT, resp);
}

/* ------------------------------------------------------------ health, metrics */

/* The journal's (origin) or the pre-warm's (peer) gauges and counters. */
static int
srv_prewarm_metrics(struct mir_server *s, struct hc_buf *b)
{
	struct mir_journal_stats js;
	struct mir_prewarm_stats ps;
	unsigned i;
	int rc = 0;

	mir_journal_stats(s->journal, &js);
	mir_prewarm_stats(s->prewarm, &ps);
	const struct { const char *name, *type, *help; uint64_t value; int on; } m[] = {
		{ "hydra_mirror_journal_last_seq", "gauge", "Last entry of the publish journal.",
		  js.last_seq, s->journal != NULL },
		{ "hydra_mirror_journal_first_seq", "gauge", "Oldest entry the journal keeps.",
		  js.first_seq, s->journal != NULL },
		{ "hydra_mirror_prewarm_position", "gauge", "Last journal entry applied.",
		  ps.position, s->prewarm != NULL },
		{ "hydra_mirror_prewarm_lag_entries", "gauge",
		  "Journal entries the origin has that are not applied yet.",
		  ps.origin_seq > ps.position ? ps.origin_seq - ps.position : 0, s->prewarm != NULL },
		{ "hydra_mirror_prewarm_following", "gauge",
		  "1 when the last journal request was answered.", (uint64_t)ps.following,
		  s->prewarm != NULL },
		{ "hydra_mirror_prewarm_queued", "gauge", "Pre-warm fills waiting or running.",
		  ps.queued, s->prewarm != NULL },
		{ "hydra_mirror_prewarm_fills_total", "counter", "Files pre-warmed.", ps.done,
		  s->prewarm != NULL },
		{ "hydra_mirror_prewarm_failures_total", "counter", "Pre-warm fills that failed.",
		  ps.failed, s->prewarm != NULL },
		{ "hydra_mirror_prewarm_skipped_space_total", "counter",
		  "Files not pre-warmed because they did not fit without evicting.",
		  ps.skipped_space, s->prewarm != NULL },
		{ "hydra_mirror_prewarm_deleted_total", "counter",
		  "Files removed because the origin deleted them.", ps.deleted, s->prewarm != NULL },
		{ "hydra_mirror_prewarm_resyncs_total", "counter",
		  "Times the journal did not follow the position and the origin was listed.",
		  ps.resyncs, s->prewarm != NULL },
	};

	for (i = 0; i < sizeof(m) / sizeof(m[0]) && rc == 0; i++)
		if (m[i].on)
			rc = hc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
			                   m[i].name, m[i].help, m[i].name, m[i].type, m[i].name,
			                   m[i].value);
	return rc;
}

/* The journal or pre-warm part of /api/v1/health, added to o. */
static void
srv_prewarm_health(struct mir_server *s, struct json_object *o)
{
	struct mir_journal_stats js;
	struct mir_prewarm_stats ps;
	struct json_object *x;

	if (s->journal == NULL && s->prewarm == NULL)
		return;
	x = json_object_new_object();
	if (x == NULL)
		return;
	if (s->journal != NULL) {
		mir_journal_stats(s->journal, &js);
		json_object_object_add(x, "id", json_object_new_string(js.id));
		json_object_object_add(x, "last_seq", json_object_new_int64((int64_t)js.last_seq));
		json_object_object_add(o, "journal", x);
		return;
	}
	mir_prewarm_stats(s->prewarm, &ps);
	json_object_object_add(x, "following", json_object_new_boolean(ps.following));
	json_object_object_add(x, "position", json_object_new_int64((int64_t)ps.position));
	json_object_object_add(x, "lag", json_object_new_int64(
		(int64_t)(ps.origin_seq > ps.position ? ps.origin_seq - ps.position : 0)));
	json_object_object_add(x, "done", json_object_new_int64((int64_t)ps.done));
	json_object_object_add(x, "failed", json_object_new_int64((int64_t)ps.failed));
	json_object_object_add(x, "skipped_space",
	                       json_object_new_int64((int64_t)ps.skipped_space));
	json_object_object_add(o, "prewarm", x);
}

/* Why the mirror is degraded, appended to reasons; none: healthy. */
static void
srv_health_reasons(struct mir_server *s, const struct mir_fills_stats *fs,
                   struct json_object *reasons)
{
	struct statvfs vfs;

	if (s->cfg->mode == MIR_MODE_PEER && !fs->origin_reachable)
		json_object_array_add(reasons, json_object_new_string("origin unreachable"));
	if (fs->pinned_full)
		json_object_array_add(reasons, json_object_new_string("store full of pinned files"));
	if (statvfs(s->cfg->root, &vfs) == 0 && vfs.f_blocks > 0 &&
	    (uint64_t)vfs.f_bavail * 100 < (uint64_t)vfs.f_blocks * SRV_DISK_LOW_PERCENT)
		json_object_array_add(reasons, json_object_new_string("disk nearly full"));
}

static enum MHD_Result
srv_health(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r)
{
	struct mir_store_stats st;
	struct mir_fills_stats fs;
	struct json_object *o = json_object_new_object(), *cache = json_object_new_object();
	struct json_object *reasons = json_object_new_array(), *origin = json_object_new_object();
	struct MHD_Response *resp = NULL;
	const char *text;

	if (o == NULL || cache == NULL || reasons == NULL || origin == NULL) {
		json_object_put(o);
		json_object_put(cache);
		json_object_put(reasons);
		json_object_put(origin);
		return MHD_NO;
	}
	mir_store_stats(s->store, &st);
	mir_fills_stats(s->fills, &fs);
	srv_health_reasons(s, &fs, reasons);
	json_object_object_add(o, "status", json_object_new_string(
		json_object_array_length(reasons) == 0 ? "healthy" : "degraded"));
	json_object_object_add(o, "reasons", reasons);
	json_object_object_add(o, "version", json_object_new_string(HC_VERSION));
	json_object_object_add(o, "uptime_s",
	                       json_object_new_int64((hc_now_ms() - s->started_ms) / 1000));
	json_object_object_add(o, "role", json_object_new_string(
		s->cfg->mode == MIR_MODE_PEER ? "peer" : "origin"));
	json_object_object_add(o, "district", json_object_new_string(
		s->cfg->district != NULL ? s->cfg->district : ""));
	json_object_object_add(o, "origin_url", json_object_new_string(s->origin_shown));
	json_object_object_add(origin, "reachable", json_object_new_boolean(fs.origin_reachable));
	json_object_object_add(origin, "last_error", json_object_new_string(fs.origin_error));
	json_object_object_add(o, "origin", origin);
	json_object_object_add(cache, "bytes", json_object_new_int64((int64_t)st.bytes));
	json_object_object_add(cache, "max_bytes", json_object_new_int64((int64_t)st.max_bytes));
	json_object_object_add(cache, "files", json_object_new_int64((int64_t)st.files));
	json_object_object_add(cache, "unverified_files",
	                       json_object_new_int64((int64_t)st.unverified));
	json_object_object_add(cache, "hits", json_object_new_int64(
		(int64_t)atomic_load(&s->hits)));
	json_object_object_add(cache, "misses", json_object_new_int64(
		(int64_t)atomic_load(&s->misses)));
	json_object_object_add(o, "cache", cache);
	srv_prewarm_health(s, o);
	/* NOSLASHESCAPE: origin_url reads as written, not https:\/\/... */
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                      JSON_C_TO_STRING_NOSLASHESCAPE);
	resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
	                                       MHD_RESPMEM_MUST_COPY);
	json_object_put(o);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return mir_resp_queue(&s->rs, c, r, MHD_HTTP_OK, resp);
}

/* The request duration histogram, by route. */
static int
srv_metrics_histogram(struct mir_server *s, struct hc_buf *b)
{
	const char *name = "hydra_mirror_request_duration_seconds";
	uint64_t cum;
	unsigned r, i;
	int rc;

	rc = hc_buf_printf(b, "# HELP %s Time from a request's head to its last byte, by "
	                   "route.\n# TYPE %s histogram\n", name, name);
	for (r = 0; r < SRV_ROUTES && rc == 0; r++) {
		cum = 0;
		for (i = 0; i <= SRV_BUCKETS && rc == 0; i++) {
			cum += atomic_load(&s->hist[r][i]);
			if (i < SRV_BUCKETS)
				rc = hc_buf_printf(b, "%s_bucket{route=\"%s\",le=\"%g\"} %" PRIu64 "\n",
				                   name, srv_route_names[r], srv_buckets[i], cum);
			else
				rc = hc_buf_printf(b, "%s_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64
				                   "\n", name, srv_route_names[r], cum);
		}
		if (rc == 0)
			rc = hc_buf_printf(b, "%s_sum{route=\"%s\"} %.6f\n%s_count{route=\"%s\"} %"
			                   PRIu64 "\n", name, srv_route_names[r],
			                   (double)atomic_load(&s->hist_us[r]) / 1e6, name,
			                   srv_route_names[r], atomic_load(&s->hist_n[r]));
	}
	return rc;
}

/* The integrity counters (peers verify; an origin shows zeros). */
static int
srv_metrics_verify(struct mir_server *s, struct hc_buf *b)
{
	struct mir_verify_stats vs = { 0, 0, 0 };
	struct mir_store_stats st;
	unsigned i;
	int rc = 0;

	mir_store_stats(s->store, &st);
	if (s->verify != NULL)
		mir_verify_stats(s->verify, &vs);
	const struct { const char *name, *help; uint64_t value; } m[] = {
		{ "hydra_mirror_corrupt_evictions_total",
		  "Stored files removed for not matching the origin's digest.",
		  st.corrupt_evictions },
		{ "hydra_mirror_scrubbed_bytes_total", "Bytes hashed by the scrubber.",
		  vs.scrubbed_bytes },
		{ "hydra_mirror_verifications_total",
		  "Stored files hashed by the scrubber or for POST verify.", vs.verifications },
		{ "hydra_mirror_verify_requests_total",
		  "POST verify requests admitted (coalesced ones too).", vs.requests },
	};

	for (i = 0; i < sizeof(m) / sizeof(m[0]) && rc == 0; i++)
		rc = hc_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
		                   m[i].name, m[i].help, m[i].name, m[i].name, m[i].value);
	return rc;
}

/* The counters of the server itself, the store and the fills. */
static int
srv_metrics_text(struct mir_server *s, struct hc_buf *b)
{
	struct mir_store_stats st;
	struct mir_fills_stats fs;
	unsigned i;
	int rc;

	mir_store_stats(s->store, &st);
	mir_fills_stats(s->fills, &fs);
	const struct { const char *name, *type, *help; uint64_t value; } m[] = {
		{ "hydra_mirror_hits_total", "counter", "File requests answered from the store.",
		  atomic_load(&s->hits) },
		{ "hydra_mirror_misses_total", "counter", "File requests for files not in the store.",
		  atomic_load(&s->misses) },
		{ "hydra_mirror_bytes_served_total", "counter",
		  "Body bytes of completed file responses.", atomic_load(&s->bytes_served) },
		{ "hydra_mirror_origin_bytes_total", "counter", "Body bytes received from the origin.",
		  fs.origin_bytes },
		{ "hydra_mirror_origin_fills_total", "counter", "Fills started from the origin.",
		  fs.started },
		{ "hydra_mirror_origin_fill_failures_total", "counter", "Fills that failed.",
		  fs.failed },
		{ "hydra_mirror_evictions_total", "counter", "Files evicted to stay under max_bytes.",
		  st.evictions },
		{ "hydra_mirror_fills_in_flight", "gauge", "Fills from the origin in progress.",
		  fs.in_flight },
		{ "hydra_mirror_store_bytes", "gauge", "Bytes in the store.", st.bytes },
		{ "hydra_mirror_store_files", "gauge", "Files in the store.", st.files },
		{ "hydra_mirror_store_max_bytes", "gauge", "Retention limit of the store (0: none).",
		  st.max_bytes },
		{ "hydra_mirror_store_unverified_files", "gauge",
		  "Files in the store the origin sent no digest for.", st.unverified },
		{ "hydra_mirror_connections_open", "gauge", "Client connections open.",
		  (uint64_t)mir_guard_open(s->guard) },
		{ "hydra_mirror_connections_refused_total", "counter",
		  "Client connections refused over max_connections.",
		  mir_guard_refused(s->guard) },
		{ "hydra_mirror_uptime_seconds", "gauge", "Seconds since the start.",
		  (uint64_t)((hc_now_ms() - s->started_ms) / 1000) },
	};

	rc = hc_buf_printf(b, "# HELP hydra_mirror_requests_total Responses sent, by status code.\n"
	                   "# TYPE hydra_mirror_requests_total counter\n");
	for (i = 100; i < MIR_CODES_MAX && rc == 0; i++) {
		uint64_t n = atomic_load(&s->rs.codes[i]);
		if (n > 0)
			rc = hc_buf_printf(b, "hydra_mirror_requests_total{code=\"%u\"} %" PRIu64 "\n",
			                   i, n);
	}
	for (i = 0; i < sizeof(m) / sizeof(m[0]) && rc == 0; i++)
		rc = hc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", m[i].name,
		                   m[i].help, m[i].name, m[i].type, m[i].name, m[i].value);
	if (rc == 0)
		rc = hc_buf_printf(b, "# HELP hydra_mirror_build_info The running version.\n"
		                   "# TYPE hydra_mirror_build_info gauge\n"
		                   "hydra_mirror_build_info{version=\"%s\"} 1\n"
		                   "# HELP hydra_mirror_origin_fill_failures_by_reason_total "
		                   "Fills that failed, by reason.\n"
		                   "# TYPE hydra_mirror_origin_fill_failures_by_reason_total counter\n",
		                   HC_VERSION);
	for (i = 0; i < MIR_FILL_FAIL_COUNT && rc == 0; i++)
		rc = hc_buf_printf(b, "hydra_mirror_origin_fill_failures_by_reason_total"
		                   "{reason=\"%s\"} %" PRIu64 "\n", mir_fill_fail_names[i],
		                   fs.failed_by[i]);
	if (rc == 0)
		rc = srv_metrics_histogram(s, b);
	if (rc == 0)
		rc = mir_upstream_metrics(s->upstream, b);
	if (rc == 0)
		rc = srv_prewarm_metrics(s, b);
	if (rc == 0)
		rc = srv_metrics_verify(s, b);
	return rc != 0 ? rc : mir_tools_metrics(s->tools, b);
}

static enum MHD_Result
srv_metrics(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r)
{
	struct hc_buf b;
	struct MHD_Response *resp;
	size_t len;
	char *text;

	hc_buf_init(&b, SRV_METRICS_MAX);
	if (srv_metrics_text(s, &b) != 0) {
		hc_buf_free(&b);
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                      "metrics too large");
	}
	len = b.len;
	text = hc_buf_take(&b);
	resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "text/plain; version=0.0.4; charset=utf-8");
	return mir_resp_queue(&s->rs, c, r, MHD_HTTP_OK, resp);
}

/* ------------------------------------------------------------ routing */

/* The numeric address of the client of c into out. */
static void
srv_client_addr(struct MHD_Connection *c, char *out, size_t size)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	socklen_t len;

	hc_strlcpy(out, "-", size);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	      sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, len, out, (socklen_t)size, NULL, 0,
	                NI_NUMERICHOST) != 0)
		hc_strlcpy(out, "-", size);
}

static void *
srv_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct mir_server *s = cls;
	struct srv_req *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->put_fd = -1;
	q->base.cork_fd = -1;
	q->t0_ms = hc_now_ms();
	q->outcome = "bypass";
	q->route = SRV_ROUTE_OTHER;
	q->uri = hc_strdup(uri);
	if (q->uri == NULL) {
		free(q);
		return NULL;
	}
	srv_client_addr(c, q->addr, sizeof(q->addr));
	atomic_fetch_add(&s->in_flight, 1);
	return q;
}

/* What the handler learns at its first call and the access log needs. */
static void
srv_req_note(struct srv_req *q, struct MHD_Connection *c, const char *method,
             const char *version)
{
	const char *v;

	if (hc_strlcpy(q->method, method, sizeof(q->method)) != 0)
		hc_strlcpy(q->method, "-", sizeof(q->method));
	if (hc_strlcpy(q->version, version, sizeof(q->version)) != 0)
		hc_strlcpy(q->version, "-", sizeof(q->version));
	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_REFERER);
	q->referer = v != NULL ? hc_strdup(v) : NULL;
	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
	q->agent = v != NULL ? hc_strdup(v) : NULL;
}

/* Writes and removal, and refused writes, with who asked: never the token. */
static void
srv_audit(const struct srv_req *q, unsigned status)
{
	int write = strcmp(q->method, MHD_HTTP_METHOD_GET) != 0 &&
	            strcmp(q->method, MHD_HTTP_METHOD_HEAD) != 0 && q->method[0] != '\0';
	int refused = status == 401 || status == 403 || status == 405 || status == 422 ||
	              status == 507;
	const char *digest = q->put_hex[0] != '\0' ? q->put_hex :
	                     q->put_expect[0] != '\0' ? q->put_expect : "-";

	if (!write && !refused)
		return;
	hc_log(HC_LOG_INFO, "mirror", "audit: %s %s %s: %u, %" PRIu64 " bytes, sha256 %s",
	       q->addr, q->method, q->uri, status, q->put_bytes, digest);
}

/* Counts the request in the histogram and writes its access log line. */
static void
srv_account(struct mir_server *s, const struct srv_req *q, int ok)
{
	int64_t us = (hc_now_ms() - q->t0_ms) * 1000;
	double secs = (double)us / 1e6;
	struct mir_access_rec rec;
	unsigned i = 0;

	while (i < SRV_BUCKETS && secs > srv_buckets[i])
		i++;
	atomic_fetch_add(&s->hist[q->route][i], 1);
	atomic_fetch_add(&s->hist_us[q->route], (uint64_t)(us > 0 ? us : 0));
	atomic_fetch_add(&s->hist_n[q->route], 1);
	srv_audit(q, q->base.status);
	memset(&rec, 0, sizeof(rec));
	rec.addr = q->addr;
	rec.epoch_s = (int64_t)time(NULL);
	rec.method = q->method;
	rec.uri = q->uri;
	rec.version = q->version;
	rec.status = q->base.status;
	rec.bytes = ok ? q->base.body_len : 0;
	rec.referer = q->referer;
	rec.agent = q->agent;
	rec.seconds = secs;
	rec.outcome = q->outcome;
	mir_access_write(s->access, &rec);
}

/* A client that sent its request and then the end of its stream waits for
 * the server to close: libmicrohttpd's edge-triggered epoll loop saw that
 * end with the request's bytes and does not look at the socket again, so
 * the connection would stay until connection_timeout_s. Shut it down after
 * the answer (already in the kernel's buffer) when the client ended its
 * side: one non-blocking peek per request. */
static void
srv_close_if_ended(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;
	char b;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL && recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		(void)shutdown(ci->connect_fd, SHUT_RDWR);
}

static void
srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
	struct mir_server *s = cls;
	struct srv_req *q = *con_cls;

	mir_guard_request_done(c);
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		srv_close_if_ended(c);
	if (q == NULL)
		return;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		atomic_fetch_add(&s->bytes_served, q->base.body_len);
	srv_account(s, q, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (q->base.cork_fd >= 0) {
		int zero = 0;
		(void)setsockopt(q->base.cork_fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
	}
	if (q->base.held != NULL)
		MHD_destroy_response(q->base.held);
	mir_park_cancel(s->park, &q->poll_wait);
	srv_put_drop(q);
	hc_buf_free(&q->post);
	hc_sha256_free(q->put_sha);
	mir_store_release(s->store, q->base.pin);
	free(q->uri);
	free(q->referer);
	free(q->agent);
	free(q);
	*con_cls = NULL;
	atomic_fetch_sub(&s->in_flight, 1);
}

/* The decoded store path of a file route into path (size MIR_PATH_MAX):
 * 1 when raw (raw_len bytes, no query) names a file, 0 when it is another
 * route, -1 when it is a file route with a bad path. */
static int
srv_file_path(const char *raw, size_t raw_len, char *path, size_t size)
{
	const size_t files = strlen(SRV_FILES_PREFIX), tools = strlen(SRV_TOOLS_PREFIX);
	const char *rest;
	size_t off = 0;

	if (raw_len >= files && strncmp(raw, SRV_FILES_PREFIX, files) == 0) {
		rest = raw + files;
	} else if (raw_len > tools && strncmp(raw, SRV_TOOLS_PREFIX, tools) == 0) {
		/* The tools tree is the same store under tools/. */
		rest = raw + tools;
		memcpy(path, "tools/", 6);
		off = 6;
	} else {
		return 0;
	}
	if (rest == raw + raw_len ||
	    hc_path_decode(rest, raw_len - (size_t)(rest - raw), path + off, size - off) != 0)
		return -1;
	return 1;
}

static int
srv_is(const char *raw, size_t raw_len, const char *route)
{
	return raw_len == strlen(route) && strncmp(raw, route, raw_len) == 0;
}

/* ------------------------------------------------------------ verify */

#define SRV_VERIFY_PREFIX "/api/v1/peer/verify/"

static int
srv_is_verify(const char *raw, size_t raw_len)
{
	size_t n = strlen(SRV_VERIFY_PREFIX);

	return raw_len >= n && strncmp(raw, SRV_VERIFY_PREFIX, n) == 0;
}

/* {"path": path, "status": status} */
static enum MHD_Result
srv_verify_answer(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
                  const char *path, const char *status)
{
	const char *const headers[] = { MHD_HTTP_HEADER_CACHE_CONTROL, "no-store", NULL };
	struct json_object *o = json_object_new_object();
	enum MHD_Result ret;

	if (o == NULL)
		return MHD_NO;
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "status", json_object_new_string(status));
	ret = mir_resp_json(&s->rs, c, r, MHD_HTTP_OK,
	                    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE),
	                    headers);
	json_object_put(o);
	return ret;
}

/* POST /api/v1/peer/verify/{path}: a client says a file is bad. Nothing it
 * says is trusted: the file is hashed here, against the origin's digest. */
static enum MHD_Result
srv_verify(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
           const char *method, size_t raw_len)
{
	const size_t n = strlen(SRV_VERIFY_PREFIX);
	struct mir_req *r = &q->base;
	struct hc_err err = { 0, "" };
	char path[MIR_PATH_MAX];
	int rc;

	q->route = SRV_ROUTE_FILES;
	if (s->verify == NULL)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_NOT_FOUND, "not a peer");
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return srv_method_not_allowed(s, c, r, "POST");
	if (raw_len == n || hc_path_decode(q->uri + n, raw_len - n, path, sizeof(path)) != 0)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	if (!mir_verify_admit(s->verify, q->addr))
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_TOO_MANY_REQUESTS,
		                      "too many verify requests from this address");
	rc = mir_verify_path(s->verify, path, &err);
	if (rc >= 0) {
		hc_log(HC_LOG_INFO, "mirror", "verify %s asked by %s: %s", path, q->addr,
		       mir_verify_names[rc]);
		return srv_verify_answer(s, c, r, path, mir_verify_names[rc]);
	}
	if (rc == HC_EDATA)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	if (rc == HC_EUNAVAIL)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "busy");
	hc_log(HC_LOG_WARN, "mirror", "verify %s: %s", path, err.msg);
	return mir_resp_error(&s->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
}

/* A request for a file, by method: reads for everyone, writes with the
 * admin token on an origin. */
static enum MHD_Result
srv_file_request(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
                 const char *method, const char *path)
{
	struct mir_req *r = &q->base;
	int head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	int put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
	int del = strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;

	if (head || strcmp(method, MHD_HTTP_METHOD_GET) == 0)
		return srv_get_file(s, c, q, path, head);
	if (s->upstream != NULL && mir_upstream_is_import(path)) {
		if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
			return srv_method_not_allowed(s, c, r, "POST");
		if (!srv_authorized(s, c))
			return srv_unauthorized(s, c, r);
		return srv_offload(s, c, q, SRV_JOB_IMPORT, path, 0);
	}
	if (s->cfg->mode != MIR_MODE_ORIGIN)
		return srv_method_not_allowed(s, c, r, "GET, HEAD");
	if (!put && !del)
		return srv_method_not_allowed(s, c, r, "GET, HEAD, PUT, DELETE");
	if (!srv_authorized(s, c))
		return srv_unauthorized(s, c, r);
	if (del && mir_tools_is_version(s->tools, path))
		return mir_tools_delete_version(s->tools, c, r, path);
	if (del)
		return srv_delete(s, c, r, path);
	return srv_put_begin(s, c, q, path);
}

/* ------------------------------------------------------------ journal, pre-warm */

#define SRV_CHANGES_ROUTE "/api/v1/peer/changes"
#define SRV_LIST_ROUTE "/api/v1/peer/list"
#define SRV_PREWARM_ROUTE "/api/v1/peer/prewarm"
/* A parked long poll looks at the journal this often: a new entry reaches
 * a following peer within it. */
#define SRV_CHANGES_POLL_MS 100
/* A POST of MIR_PREWARM_POST_MAX paths of at most HC_PATH_MAX bytes fits. */
#define SRV_PREWARM_BODY_MAX ((size_t)MIR_PREWARM_POST_MAX * (HC_PATH_MAX + 8))

/* Answers 200 with JSON text (taken, freed here). */
static enum MHD_Result
srv_json_text(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r, char *text)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return mir_resp_queue(&s->rs, c, r, MHD_HTTP_OK, resp);
}

/* A numeric query argument in [min, max] into *v; absent: def. 0 or -1. */
static int
srv_query_int(struct MHD_Connection *c, const char *name, long long min, long long max,
              long long def, long long *v)
{
	const char *text = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	*v = def;
	return text == NULL ? 0 : hc_parse_int(text, min, max, v) == 0 ? 0 : -1;
}

/* GET /api/v1/peer/changes?since=SEQ&wait=S: a long wait is cut to the cap,
 * not refused, so a peer configured for more still follows. While nothing
 * follows since, the connection is parked and looks again every
 * SRV_CHANGES_POLL_MS until the wait is over or the server drains. */
static enum MHD_Result
srv_changes(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q)
{
	struct mir_req *r = &q->base;
	struct hc_err err = { 0, "" };
	struct mir_journal_stats js;
	long long since, wait, limit;
	char *text = NULL;
	int64_t now, left;

	if (s->journal == NULL)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_NOT_FOUND, "no publish journal here");
	if (srv_query_int(c, "since", 0, INT64_MAX, 0, &since) != 0 ||
	    srv_query_int(c, "wait", 0, INT64_MAX, 0, &wait) != 0 ||
	    srv_query_int(c, "limit", 1, MIR_JOURNAL_PAGE, MIR_JOURNAL_PAGE, &limit) != 0)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST,
		                      "since, wait and limit are numbers");
	if (wait > MIR_JOURNAL_WAIT_MAX_S)
		wait = MIR_JOURNAL_WAIT_MAX_S;
	now = hc_now_ms();
	if (q->poll_until_ms == 0)
		q->poll_until_ms = now + wait * 1000;
	left = q->poll_until_ms - now;
	mir_journal_stats(s->journal, &js);
	if (js.last_seq == (uint64_t)since && left > 0 && !atomic_load(&s->rs.draining) &&
	    mir_park_suspend(s->park, &q->poll_wait, c, NULL,
	                     left < SRV_CHANGES_POLL_MS ? left : SRV_CHANGES_POLL_MS) == 0)
		return MHD_YES;
	if (mir_journal_changes(s->journal, (uint64_t)since, 0, (size_t)limit, &text,
	                        &err) != 0)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return srv_json_text(s, c, r, text);
}

/* GET /api/v1/peer/list?prefix=P&after=PATH: one page of what the origin holds. */
static enum MHD_Result
srv_list(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r)
{
	const char *prefix = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "prefix");
	const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
	struct hc_err err = { 0, "" };
	char *text = NULL;
	int rc;

	if (s->cfg->mode != MIR_MODE_ORIGIN)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_NOT_FOUND, "only an origin lists");
	prefix = prefix != NULL ? prefix : "";
	after = after != NULL ? after : "";
	if (strlen(prefix) >= HC_PATH_MAX || strlen(after) >= HC_PATH_MAX)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST, "prefix or after too long");
	rc = mir_journal_list(s->cfg->root, prefix, after, &text, &err);
	if (rc == HC_EDATA)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_CONTENT_TOO_LARGE,
		                      "too many files under this prefix: list a narrower one");
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "mirror", "list %s: %s", prefix, err.msg);
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	return srv_json_text(s, c, r, text);
}

/* The paths of a POST body (a JSON array of store paths), each checked as
 * a GET's is, into paths (n of MIR_PREWARM_POST_MAX; they point into o). */
static int
srv_prewarm_paths(struct json_object *o, const char **paths, size_t *n)
{
	char enc[3 * HC_PATH_MAX], dec[HC_PATH_MAX];
	struct json_object *x;
	size_t i, len;

	if (!json_object_is_type(o, json_type_array))
		return -1;
	len = json_object_array_length(o);
	if (len > MIR_PREWARM_POST_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		x = json_object_array_get_idx(o, i);
		if (!json_object_is_type(x, json_type_string))
			return -1;
		paths[i] = json_object_get_string(x);
		if (hc_path_encode(paths[i], enc, sizeof(enc)) != 0 ||
		    hc_path_decode(enc, strlen(enc), dec, sizeof(dec)) != 0 ||
		    strcmp(dec, paths[i]) != 0)
			return -1;
	}
	*n = len;
	return 0;
}

/* POST /api/v1/peer/prewarm, once its body has arrived. */
static enum MHD_Result
srv_prewarm_answer(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q)
{
	const char **paths = NULL;
	struct mir_req *r = &q->base;
	struct hc_err err = { 0, "" };
	struct json_object *o = NULL;
	char body[64];
	size_t n = 0;
	int rc;

	if (s->prewarm == NULL)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_NOT_FOUND, "pre-warm is not enabled");
	if (!srv_authorized(s, c))
		return srv_unauthorized(s, c, r);
	if (q->post_over)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
	if (hc_json_parse(hc_buf_str(&q->post), q->post.len, &o, &err) != 0)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST, "body is not JSON");
	paths = calloc(MIR_PREWARM_POST_MAX, sizeof(*paths));
	rc = paths != NULL ? srv_prewarm_paths(o, paths, &n) : HC_ENOMEM;
	if (rc == 0)
		rc = mir_prewarm_request(s->prewarm, (char *const *)paths, n, &err);
	free(paths);
	json_object_put(o);
	if (rc == HC_ENOMEM)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	if (rc == HC_EUNAVAIL)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                      "pre-warm queue full");
	if (rc != 0)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST,
		                      "expected a JSON array of at most 1000 store paths");
	hc_log(HC_LOG_INFO, "mirror", "prewarm: %zu paths queued by %s", n, q->addr);
	hc_snprintf(body, sizeof(body), "{\"queued\": %zu}\n", n);
	return mir_resp_json(&s->rs, c, r, MHD_HTTP_ACCEPTED, body, NULL);
}

/* A piece of a POST /api/v1/peer/prewarm body, or its end (*size 0). */
static enum MHD_Result
srv_prewarm_post(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
                 const char *data, size_t *size)
{
	if (*size == 0)
		return srv_prewarm_answer(s, c, q);
	if (q->post.max == 0)
		hc_buf_init(&q->post, SRV_PREWARM_BODY_MAX);
	if (!q->post_over && hc_buf_add(&q->post, data, *size) != 0)
		q->post_over = 1;
	*size = 0;
	return MHD_YES;
}

/* The journal and pre-warm routes; 0 when uri is none of them. */
static int
srv_peer_route(const char *uri, size_t raw_len)
{
	return srv_is(uri, raw_len, SRV_CHANGES_ROUTE) || srv_is(uri, raw_len, SRV_LIST_ROUTE) ||
	       srv_is(uri, raw_len, SRV_PREWARM_ROUTE);
}

static enum MHD_Result
srv_peer_api(struct mir_server *s, struct MHD_Connection *c, struct srv_req *q,
             const char *method, size_t raw_len)
{
	struct mir_req *r = &q->base;
	int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;

	if (srv_is(q->uri, raw_len, SRV_PREWARM_ROUTE))
		return srv_method_not_allowed(s, c, r, "POST");
	if (!get)
		return srv_method_not_allowed(s, c, r, "GET");
	return srv_is(q->uri, raw_len, SRV_CHANGES_ROUTE) ? srv_changes(s, c, q) :
	       srv_list(s, c, r);
}

/* Opens an origin's journal; one that another origin on the same root
 * keeps leaves s->journal NULL, and this origin serves unfollowed. */
static int
srv_open_journal(struct mir_server *s, struct hc_err *err)
{
	int rc = mir_journal_open(s->cfg->root, &s->journal, err);

	if (rc == HC_EUNAVAIL) {
		hc_log(HC_LOG_WARN, "mirror", "%s: peers cannot follow this origin", err->msg);
		rc = 0;
	}
	return rc;
}

/* Starts the pre-warm (peers that want it). */
static int
srv_open_prewarm(struct mir_server *s, struct hc_err *err)
{
	const struct mir_config *cfg = s->cfg;
	struct mir_prewarm_config pc;

	if (cfg->mode == MIR_MODE_ORIGIN || !cfg->prewarm.enabled)
		return 0;
	pc.root = cfg->root;
	pc.origin_url = cfg->origin_url;
	pc.ca_file = cfg->tls.ca_file;
	pc.prefixes = &cfg->prewarm.prefixes;
	pc.concurrency = cfg->prewarm.concurrency;
	pc.origin_bytes_per_s = cfg->prewarm.max_origin_bytes_per_s;
	pc.wait_s = cfg->prewarm.wait_s;
	pc.protect_s = cfg->prewarm.protect_s;
	return mir_prewarm_start(&pc, s->store, s->fills, &s->prewarm, err);
}

/* A park worker's run of q's set-up (srv_offload). */
static void
srv_job_run(void *arg)
{
	struct srv_req *q = arg;
	struct mir_server *s = q->srv;
	struct MHD_Connection *c = q->conn;
	struct mir_req *r = &q->base;
	const char *path = q->job_path;
	size_t raw_len = strcspn(q->uri, "?#");
	enum MHD_Result ret = MHD_NO;

	switch (q->job) {
	case SRV_JOB_FILL_GET:
		ret = mir_fills_get(s->fills, c, r, path);
		break;
	case SRV_JOB_FILL_HEAD:
		ret = mir_fills_head(s->fills, c, r, path);
		break;
	case SRV_JOB_UPSTREAM:
		ret = mir_upstream_get(s->upstream, c, r, path, q->job_head);
		break;
	case SRV_JOB_IMPORT:
		ret = mir_upstream_import(s->upstream, c, r, path);
		break;
	case SRV_JOB_VERIFY:
		ret = srv_verify(s, c, q, q->method, raw_len);
		break;
	case SRV_JOB_PEER_API:
		ret = srv_peer_api(s, c, q, q->method, raw_len);
		break;
	case SRV_JOB_NONE:
		break;
	}
	q->job_ret = ret;
	q->job_done = 1;
	r->deferring = 0;
}

static enum MHD_Result
srv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **con_cls)
{
	struct mir_server *s = cls;
	struct srv_req *q = *con_cls;
	struct mir_req *r;
	char path[MIR_PATH_MAX];
	size_t raw_len;
	int read_only, kind;

	(void)url;
	if (q == NULL)
		return MHD_NO;
	r = &q->base;
	if (q->job != SRV_JOB_NONE) {
		/* Called again after the resume: the worker's answer. */
		if (!q->job_done || q->job_ret == MHD_NO)
			return MHD_NO;
		return mir_resp_queue_held(c, r);
	}
	if (q->put_state != SRV_PUT_NONE)
		return srv_put_data(s, c, q, upload_data, upload_data_size);
	if (q->method[0] == '\0')
		srv_req_note(q, c, method, version);
	/* libmicrohttpd keeps the connection alive only for a response queued
	 * after the first call; a PUT is judged at once so that a refused
	 * upload is not read. */
	if (!q->seen)
		mir_guard_head_done(c);
	if (!q->seen && strcmp(method, MHD_HTTP_METHOD_PUT) != 0) {
		q->seen = 1;
		return MHD_YES;
	}
	q->seen = 1;
	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 &&
	    srv_is(q->uri, strcspn(q->uri, "?#"), SRV_PREWARM_ROUTE))
		return srv_prewarm_post(s, c, q, upload_data, upload_data_size);
	if (*upload_data_size > 0) {
		*upload_data_size = 0;  /* a body we do not want: drop it */
		return MHD_YES;
	}
	raw_len = strcspn(q->uri, "?#");
	read_only = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	            strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (srv_is(q->uri, raw_len, "/api/v1/health") || srv_is(q->uri, raw_len, "/metrics")) {
		q->route = q->uri[1] == 'm' ? SRV_ROUTE_METRICS : SRV_ROUTE_HEALTH;
		if (!read_only)
			return srv_method_not_allowed(s, c, r, "GET, HEAD");
		return q->uri[1] == 'm' ? srv_metrics(s, c, r) : srv_health(s, c, r);
	}
	if (srv_is_verify(q->uri, raw_len))
		return srv_offload(s, c, q, SRV_JOB_VERIFY, "", 0);
	/* The journal's long poll parks on its own; a listing walks the store. */
	if (srv_is(q->uri, raw_len, SRV_CHANGES_ROUTE))
		return srv_peer_api(s, c, q, method, raw_len);
	if (srv_peer_route(q->uri, raw_len))
		return srv_offload(s, c, q, SRV_JOB_PEER_API, "", 0);
	kind = srv_file_path(q->uri, raw_len, path, sizeof(path));
	if (kind == 0)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_NOT_FOUND, "no such route");
	q->route = strncmp(q->uri, SRV_TOOLS_PREFIX, strlen(SRV_TOOLS_PREFIX)) == 0 ?
	           SRV_ROUTE_TOOLS : SRV_ROUTE_FILES;
	if (kind < 0)
		return mir_resp_error(&s->rs, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	return srv_file_request(s, c, q, method, path);
}

static void
srv_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct mir_server *s = cls;
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	/* libmicrohttpd tells of a connection turned away over max_connections
	 * only in words (and of one over the per-address limit not at all). */
	if (strstr(line, "reached connection limit") != NULL)
		mir_guard_count_refusal(s->guard);
	hc_log(HC_LOG_WARN, "mirror", "libmicrohttpd: %s", line);
}

/* ------------------------------------------------------------ lifecycle */

/* Stops the listeners a certificate reload replaced once their last
 * connection has ended. */
static void
srv_reap(struct mir_server *s)
{
	struct MHD_Daemon *done[SRV_RETIRED_MAX];
	const union MHD_DaemonInfo *info;
	int i, n = 0;

	pthread_mutex_lock(&s->live_mu);
	for (i = 0; i < SRV_RETIRED_MAX; i++) {
		if (s->retired[i] == NULL)
			continue;
		info = MHD_get_daemon_info(s->retired[i], MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (info != NULL && info->num_connections == 0) {
			done[n++] = s->retired[i];
			s->retired[i] = NULL;
		}
	}
	pthread_mutex_unlock(&s->live_mu);
	for (i = 0; i < n; i++)
		MHD_stop_daemon(done[i]);
}

/* Writes the index, ends drained listeners, and asks an unreachable origin
 * whether it is back, once a period each. */
static void *
srv_flusher(void *arg)
{
	struct mir_server *s = arg;
	struct hc_err err = { 0, "" };

	pthread_mutex_lock(&s->flush_mu);
	while (!s->flush_stop) {
		hc_cond_wait_ms(&s->flush_cv, &s->flush_mu, SRV_FLUSH_PERIOD_MS);
		pthread_mutex_unlock(&s->flush_mu);
		if (mir_store_flush(s->store, &err) != 0)
			hc_log(HC_LOG_WARN, "mirror", "index: %s", err.msg);
		srv_reap(s);
		if (hc_now_ms() - s->probe_ms >= SRV_PROBE_PERIOD_MS) {
			s->probe_ms = hc_now_ms();
			mir_fills_probe(s->fills);
		}
		pthread_mutex_lock(&s->flush_mu);
	}
	pthread_mutex_unlock(&s->flush_mu);
	return NULL;
}

static int
srv_read_pem(const char *path, char **out, struct hc_err *err)
{
	size_t len;
	int rc = hc_read_file(path, SRV_PEM_MAX, out, &len, err);

	if (rc != 0)
		return hc_err_prefix(err, "tls");
	return 0;
}

static void
srv_wipe(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
	*p = NULL;
}

/* Sets the admin token (NULL: none, writes refused). */
static int
srv_load_token(struct mir_server *s, const char *token, struct hc_err *err)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	size_t n = token != NULL ? strlen(token) : 0;

	if (token != NULL && n == 0)
		return hc_err_set(err, HC_ECONFIG, "admin token is empty");
	memset(digest, 0, sizeof(digest));
	if (token != NULL)
		SHA256((const unsigned char *)token, n, digest);
	pthread_mutex_lock(&s->live_mu);
	s->has_token = token != NULL;
	memcpy(s->token_digest, digest, sizeof(digest));
	pthread_mutex_unlock(&s->live_mu);
	explicit_bzero(digest, sizeof(digest));
	return 0;
}

/* Checks that cert (PEM chain) and key (PEM) parse and belong together,
 * so that a reload never trades a working listener for a broken one. */
static int
srv_tls_check(const char *cert, const char *key, struct hc_err *err)
{
	BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int rc = 0;

	if (cb == NULL || kb == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (x == NULL) {
		rc = hc_err_set(err, HC_ECONFIG, "tls.cert: no PEM certificate");
		goto done;
	}
	k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	if (k == NULL) {
		rc = hc_err_set(err, HC_ECONFIG, "tls.key: no PEM private key");
		goto done;
	}
	if (X509_check_private_key(x, k) != 1)
		rc = hc_err_set(err, HC_ECONFIG, "tls: the key does not match the certificate");
done:
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}

/* Reads the certificate and the key of cfg into *cert and *key and checks
 * them; nothing when TLS is off. */
static int
srv_load_tls(const struct mir_config *cfg, char **cert, char **key, struct hc_err *err)
{
	int rc;

	*cert = NULL;
	*key = NULL;
	if (cfg->tls.cert == NULL || *cfg->tls.cert == '\0')
		return 0;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return hc_err_set(err, HC_ECONFIG, "tls: libmicrohttpd was built without TLS");
	rc = srv_read_pem(cfg->tls.cert, cert, err);
	if (rc == 0)
		rc = srv_read_pem(cfg->tls.key, key, err);
	if (rc == 0)
		rc = srv_tls_check(*cert, *key, err);
	if (rc != 0) {
		free(*cert);
		*cert = NULL;
		srv_wipe(key);
	}
	return rc;
}

/* Opens what the handlers use: the store, then the fills and the tools tree
 * on top of it. */
static int
srv_open_parts(struct mir_server *s, struct hc_err *err)
{
	const struct mir_config *cfg = s->cfg;
	int peer = cfg->mode == MIR_MODE_PEER;
	int rc;

	rc = mir_store_open(cfg->root, peer ? cfg->max_bytes : 0, peer, &s->store, err);
	if (rc == 0 && peer) {
		struct mir_fills_config fc = { cfg->origin_url, cfg->tls.ca_file,
		                               cfg->require_origin_digest };
		rc = mir_fills_new(&fc, s->store, &s->rs, &s->fills, err);
	}
	if (rc == 0 && peer)
		rc = mir_verify_start(s->store, cfg->scrub_bytes_per_s, &s->verify, err);
	/* Before the tools and upstream modules: their imports and deletions
	 * are publications too. */
	if (rc == 0 && !peer)
		rc = srv_open_journal(s, err);
	if (rc == 0)
		rc = mir_tools_start(cfg->root, cfg->keep_versions, s->store, s->journal, &s->rs,
		                     &s->tools, err);
	if (rc == 0 && !peer)
		rc = mir_upstream_new(cfg, s->store, s->journal, &s->rs, &s->upstream, err);
	if (rc == 0)
		rc = mir_guard_start(cfg->max_connections, &s->guard, err);
	if (rc == 0)
		rc = mir_park_start(SRV_PARK_WORKERS, &s->park, err);
	s->rs.park = s->park;
	if (rc == 0)
		rc = mir_access_open(cfg->access_log, &s->access, err);
	if (rc == 0 && pthread_create(&s->flusher, NULL, srv_flusher, s) != 0)
		rc = hc_err_set(err, HC_ESOFTWARE, "cannot start the index writer");
	if (rc == 0)
		s->flusher_started = 1;
	return rc;
}

/* Starts a libmicrohttpd listener with cert and key (NULL: plain HTTP) on
 * listen_fd, or on s->ss when listen_fd is -1. NULL when it cannot. */
static struct MHD_Daemon *
srv_daemon(struct mir_server *s, int listen_fd, const char *cert, const char *key)
{
	const struct mir_config *cfg = s->cfg;
	struct MHD_OptionItem opts[4];
	size_t n = 0;
	/* ITC: a listener can be quiesced for a reload or a drain, and parked
	 * connections resumed from other threads. */
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
	                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
	/* libmicrohttpd splits its limit between the pool threads; the guard
	 * holds the real one (mir_guard_admit), so each thread may take all. */
	unsigned long long limit = (unsigned long long)cfg->max_connections * s->threads;

	if (limit > UINT_MAX)
		limit = UINT_MAX;
	if (cert != NULL) {
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert };
	}
	if (listen_fd >= 0)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL };
	else
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &s->ss };
	opts[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	if (s->ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (cert != NULL)
		flags |= MHD_USE_TLS;
	return MHD_start_daemon(flags, 0, mir_guard_admit, s->guard, srv_handle, s,
	                        MHD_OPTION_EXTERNAL_LOGGER, srv_mhd_log, s,
	                        MHD_OPTION_URI_LOG_CALLBACK, srv_uri_log, s,
	                        MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
	                        MHD_OPTION_NOTIFY_CONNECTION, mir_guard_notify, s->guard,
	                        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                        (unsigned int)cfg->max_connections_per_ip,
	                        MHD_OPTION_CONNECTION_TIMEOUT,
	                        (unsigned int)cfg->connection_timeout_s,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)limit,
	                        MHD_OPTION_THREAD_POOL_SIZE, s->threads,
	                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, SRV_CONN_MEMORY,
	                        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)SRV_BACKLOG,
	                        MHD_OPTION_THREAD_STACK_SIZE, SRV_STACK_SIZE,
	                        MHD_OPTION_ARRAY, opts,
	                        MHD_OPTION_END);
}

/* Hands the listening socket from the current listener to a new one with
 * cert and key: connections of the old one go on until they end (srv_reap
 * stops it then), new ones get the new certificate. Under live_mu. */
static int
srv_swap_listener(struct mir_server *s, const char *cert, const char *key,
                  struct hc_err *err)
{
	struct MHD_Daemon *d;
	int slot, fd;

	for (slot = 0; slot < SRV_RETIRED_MAX && s->retired[slot] != NULL; slot++)
		;
	if (slot == SRV_RETIRED_MAX)
		return hc_err_set(err, HC_EUNAVAIL, "tls: %d listeners of earlier reloads still "
		                  "serve connections; try again once they end", SRV_RETIRED_MAX);
	if (s->listen_fd >= 0)
		return hc_err_set(err, HC_EUNAVAIL, "tls: the server is stopping");
	fd = MHD_quiesce_daemon(s->d);
	if (fd < 0)
		return hc_err_set(err, HC_ESOFTWARE, "tls: cannot take the listening socket over");
	d = srv_daemon(s, fd, cert, key);
	if (d == NULL) {
		/* The old certificate still works: listen with it again. */
		d = srv_daemon(s, fd, s->tls_cert, s->tls_key);
		if (d == NULL) {
			s->listen_fd = fd;
			hc_log(HC_LOG_ERROR, "mirror", "tls: cannot listen again on %s: "
			       "restart hydra-mirror", s->cfg->listen);
		} else {
			s->retired[slot] = s->d;
			s->d = d;
		}
		return hc_err_set(err, HC_ECONFIG, "tls: libmicrohttpd refused the new "
		                  "certificate or key");
	}
	s->retired[slot] = s->d;
	s->d = d;
	return 0;
}

/* Puts cert and key (taken) in use when they differ from those in use. */
static int
srv_apply_tls(struct mir_server *s, char **cert, char **key, struct hc_err *err)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	int rc = 0;

	if (*cert == NULL)
		return 0;
	SHA256((const unsigned char *)*key, strlen(*key), digest);
	pthread_mutex_lock(&s->live_mu);
	if (strcmp(*cert, s->tls_cert) != 0 ||
	    CRYPTO_memcmp(digest, s->key_digest, sizeof(digest)) != 0) {
		rc = srv_swap_listener(s, *cert, *key, err);
		if (rc == 0) {
			free(s->tls_cert);
			srv_wipe(&s->tls_key);
			s->tls_cert = *cert;
			s->tls_key = *key;
			*cert = NULL;
			*key = NULL;
			memcpy(s->key_digest, digest, sizeof(digest));
			hc_log(HC_LOG_INFO, "mirror", "tls: new certificate in use for new "
			       "connections");
		}
	}
	pthread_mutex_unlock(&s->live_mu);
	explicit_bzero(digest, sizeof(digest));
	return rc;
}

int
mir_server_reload(struct mir_server *s, const struct mir_config *next, const char *token,
                  struct hc_err *err)
{
	char what[256], *cert = NULL, *key = NULL;
	int rc;

	if (mir_config_restart_keys(s->cfg, next, what, sizeof(what)) != 0)
		return hc_err_set(err, HC_ECONFIG, "%s", what);
	if (token != NULL && *token == '\0')
		return hc_err_set(err, HC_ECONFIG, "admin token is empty");
	rc = srv_load_tls(next, &cert, &key, err);
	if (rc == 0)
		rc = mir_access_reopen(s->access, next->access_log, err);
	if (rc == 0)
		rc = srv_apply_tls(s, &cert, &key, err);
	free(cert);
	srv_wipe(&key);
	if (rc != 0)
		return rc;
	mir_resp_set_rate(&s->rs, next->max_egress_bytes_per_s);
	if (s->verify != NULL)
		mir_verify_set_rate(s->verify, next->scrub_bytes_per_s);
	atomic_store(&s->verify_max_age_ms, next->verify_max_age_s * 1000);
	(void)srv_load_token(s, token, err);
	/* An origin keeps everything it publishes: only a peer has a limit. */
	if (s->cfg->mode == MIR_MODE_PEER &&
	    mir_store_set_max_bytes(s->store, next->max_bytes) != 0)
		hc_log(HC_LOG_WARN, "mirror", "max_bytes %" PRIu64 ": files being read or filled "
		       "keep the store over it until they are released", next->max_bytes);
	return 0;
}

void
mir_server_quiesce(struct mir_server *s)
{
	int fd;

	mir_resp_drain(&s->rs);
	/* A long-poll would hold the drain for its whole wait. */
	mir_journal_stop(s->journal);
	pthread_mutex_lock(&s->live_mu);
	if (s->d != NULL && s->listen_fd < 0) {
		fd = MHD_quiesce_daemon(s->d);
		/* A listening socket shut down refuses new connections at once,
		 * where one merely not accepted would queue them. */
		if (fd >= 0)
			(void)shutdown(fd, SHUT_RDWR);
		s->listen_fd = fd;
	}
	pthread_mutex_unlock(&s->live_mu);
	mir_acme_stop(s->acme);
	s->acme = NULL;
}

uint64_t
mir_server_in_flight(struct mir_server *s)
{
	return atomic_load(&s->in_flight);
}

/* Pool threads of a listener: one per online core. This function cannot fail. */
static unsigned
srv_pool_threads(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	return cores > 0 ? (unsigned)cores : SRV_THREADS_FALLBACK;
}

int
mir_server_start(const struct mir_config *cfg, const char *token, struct mir_server **out,
                 struct hc_err *err)
{
	struct mir_server *s = NULL;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	char bound[160];
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->listen_fd = -1;
	s->threads = srv_pool_threads();
	s->started_ms = hc_now_ms();
	s->probe_ms = s->started_ms;
	atomic_store(&s->verify_max_age_ms, cfg->verify_max_age_s * 1000);
	mir_url_redact(cfg->origin_url != NULL ? cfg->origin_url : "", s->origin_shown,
	               sizeof(s->origin_shown));
	pthread_mutex_init(&s->flush_mu, NULL);
	pthread_cond_init(&s->flush_cv, NULL);
	pthread_mutex_init(&s->live_mu, NULL);
	mir_resp_init(&s->rs, cfg->max_egress_bytes_per_s,
	              cfg->tls.cert != NULL && *cfg->tls.cert != '\0');
	if (hc_parse_listen(cfg->listen, &s->ss, &sslen, err) != 0) {
		rc = HC_ECONFIG;
		goto fail;
	}
	rc = srv_load_token(s, token, err);
	if (rc != 0)
		goto fail;
	if (cfg->mode == MIR_MODE_ORIGIN && !s->has_token)
		hc_log(HC_LOG_WARN, "mirror", "no admin token: PUT and DELETE are refused");
	rc = srv_open_parts(s, err);
	if (rc == 0)
		rc = srv_open_prewarm(s, err);
	if (rc == 0)
		rc = srv_load_tls(cfg, &s->tls_cert, &s->tls_key, err);
	if (rc != 0)
		goto fail;
	if (s->tls_key != NULL)
		SHA256((const unsigned char *)s->tls_key, strlen(s->tls_key), s->key_digest);
	s->d = srv_daemon(s, -1, s->tls_cert, s->tls_key);
	if (s->d == NULL) {
		rc = hc_err_set(err, HC_EUNAVAIL, "cannot listen on %s (in use, or bad TLS files)",
		                cfg->listen);
		goto fail;
	}
	if (cfg->acme.listen != NULL && *cfg->acme.listen != '\0') {
		rc = mir_acme_start(cfg->acme.listen, cfg->acme.webroot, &s->acme, err);
		if (rc != 0)
			goto fail;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info != NULL ? (int)info->port : -1;
	if (hc_sockaddr_format(&s->ss, s->port, bound,
	                       sizeof(bound)) != 0)
		hc_strlcpy(bound, cfg->listen, sizeof(bound));
	hc_log(HC_LOG_INFO, "mirror", "hydra-mirror listening on %s (%s)", bound,
	       cfg->mode == MIR_MODE_PEER ? "peer" : "origin");
	*out = s;
	return 0;
fail:
	mir_server_stop(s);
	return rc;
}

int
mir_server_port(const struct mir_server *s)
{
	return s->port;
}

void
mir_server_stop(struct mir_server *s)
{
	int i;

	if (s == NULL)
		return;
	/* The index writer first: it also stops old listeners (srv_reap), which
	 * are stopped here from now on. The store writes the index at close. */
	if (s->flusher_started) {
		pthread_mutex_lock(&s->flush_mu);
		s->flush_stop = 1;
		pthread_cond_broadcast(&s->flush_cv);
		pthread_mutex_unlock(&s->flush_mu);
		pthread_join(s->flusher, NULL);
	}
	mir_resp_stop(&s->rs);
	mir_journal_stop(s->journal);
	mir_prewarm_cancel(s->prewarm);
	mir_verify_stop(s->verify);
	mir_fills_cancel_all(s->fills);
	mir_upstream_cancel(s->upstream);
	mir_acme_stop(s->acme);
	/* libmicrohttpd may not stop a daemon with suspended connections:
	 * every parked one is resumed (and fails, the server stopping) and
	 * every set-up worker has answered before. */
	mir_park_stop(s->park);
	/* The old listeners first: the current one may own the socket they
	 * were quiesced from. */
	for (i = 0; i < SRV_RETIRED_MAX; i++)
		if (s->retired[i] != NULL)
			MHD_stop_daemon(s->retired[i]);
	if (s->d != NULL)
		MHD_stop_daemon(s->d);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	mir_prewarm_stop(s->prewarm);
	mir_fills_wait_all(s->fills);
	mir_guard_stop(s->guard);
	mir_upstream_free(s->upstream);
	mir_tools_stop(s->tools);
	/* After the imports and the purge, which append to it. */
	mir_journal_close(s->journal);
	mir_fills_free(s->fills);
	mir_park_free(s->park);
	mir_verify_free(s->verify);
	mir_store_close(s->store);
	mir_access_free(s->access);
	explicit_bzero(s->token_digest, sizeof(s->token_digest));
	explicit_bzero(s->key_digest, sizeof(s->key_digest));
	srv_wipe(&s->tls_key);
	free(s->tls_cert);
	mir_resp_destroy(&s->rs);
	pthread_mutex_destroy(&s->flush_mu);
	pthread_cond_destroy(&s->flush_cv);
	pthread_mutex_destroy(&s->live_mu);
	free(s);
}
