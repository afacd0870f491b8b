/*
 * The HTTP side of hydra-mirror on libmicrohttpd: routes, file responses
 * (sendfile over plain HTTP), PUT and DELETE on the origin, health, metrics,
 * the egress token bucket. Peer fills live in fill.c.
 *
 * Thread per connection, chosen by measurement (bench/mirror.sh, 2 vCPU):
 * the epoll thread pool was ahead on 64 KiB files but further behind nginx
 * on 1 MiB files (libmicrohttpd sends 128 KiB per loop turn there), and only
 * a thread of its own lets a response wait for a fill by blocking.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mirror/internal.h"

#define SRV_FILES_PREFIX "/api/v1/peer/files/"
#define SRV_TOOLS_PREFIX "/api/v1/tools/"
/* Thread stacks: the deepest path is a HEAD to the origin through libcurl. */
#define SRV_STACK_SIZE ((size_t)1 << 20)
/* Largest PEM file accepted for the certificate or the key. */
#define SRV_PEM_MAX ((size_t)1 << 20)
/* The index is written at most this often while files are being read. */
#define SRV_FLUSH_PERIOD_MS 1000
/* Blocks read per call when a response is paced or read from a fill. */
#define SRV_BLOCK_SIZE (64 * 1024)

/* ------------------------------------------------------------ helpers */

size_t
mir_srv_egress_take(struct mir_server *s, size_t want)
{
	uint64_t rate = s->cfg->max_egress_bytes_per_s;
	size_t chunk;

	if (rate == 0 || want == 0)
		return want;
	/* Small grants at low rates, whole blocks at high ones. */
	chunk = rate / 20 > 0 ? (size_t)(rate / 20) : 1;
	if (chunk > want)
		chunk = want;
	pthread_mutex_lock(&s->bucket_mu);
	for (;;) {
		int64_t now = hc_now_ms();
		/* A tenth of a second of burst keeps the rate honest from the start. */
		double cap = (double)rate / 10.0 > (double)chunk ? (double)rate / 10.0 : (double)chunk;
		s->tokens += (double)(now - s->bucket_ms) * (double)rate / 1000.0;
		if (s->tokens > cap)
			s->tokens = cap;
		s->bucket_ms = now;
		if (s->tokens >= (double)chunk || atomic_load(&s->stopping))
			break;
		pthread_mutex_unlock(&s->bucket_mu);
		{
			struct timespec ts = { 0, 5 * 1000000L };
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&s->bucket_mu);
	}
	s->tokens -= (double)chunk;
	pthread_mutex_unlock(&s->bucket_mu);
	return chunk;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static void
srv_http_date(int64_t t, char *out, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	if (strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		out[0] = '\0';
}

enum MHD_Result
mir_srv_queue(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
              unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	if (status < MIR_CODES_MAX)
		atomic_fetch_add(&s->codes[status], 1);
	if (r != NULL)
		r->status = status;
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A short JSON error body. */
enum MHD_Result
mir_srv_error(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
              unsigned status, const char *why)
{
	char body[256];
	struct MHD_Response *resp;

	hc_snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", why);
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return mir_srv_queue(s, c, r, status, resp);
}

static enum MHD_Result
srv_method_not_allowed(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
                       const char *allow)
{
	char body[] = "{\"error\": \"method not allowed\"}\n";
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return mir_srv_queue(s, c, r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

/* Adds the headers every file response carries. etag may be "". */
void
mir_srv_file_headers(struct MHD_Response *resp, const char *sha256, const char *etag,
                     int64_t mtime_s)
{
	char value[HC_HTTP_HEADER_VALUE_MAX];

	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	if (etag != NULL && *etag != '\0')
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	if (mtime_s > 0) {
		srv_http_date(mtime_s, value, sizeof(value));
		if (value[0] != '\0')
			MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, value);
	}
	if (sha256 != NULL && hc_sha256_hex_valid(sha256)) {
		MHD_add_response_header(resp, "X-File-SHA256", sha256);
		if (hc_sha256_to_repr_digest(sha256, value, sizeof(value)) == 0)
			MHD_add_response_header(resp, "Repr-Digest", value);
	}
}

void
mir_srv_etag(const char *sha256, char *out, size_t size)
{
	if (hc_snprintf(out, size, "\"%s\"", sha256) != 0)
		out[0] = '\0';
}

enum mir_range
mir_srv_range(struct MHD_Connection *c, const char *etag, const char *last_modified,
              uint64_t size, uint64_t *start, uint64_t *len)
{
	const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                                MHD_HTTP_HEADER_RANGE);
	const char *if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                                   MHD_HTTP_HEADER_IF_RANGE);
	enum mir_range k;

	/* If-Range that does not name this representation: send it all. */
	if (range != NULL && if_range != NULL) {
		int same = (etag != NULL && *etag != '\0' && strcmp(if_range, etag) == 0) ||
		           (last_modified != NULL && *last_modified != '\0' &&
		            strcmp(if_range, last_modified) == 0);
		if (!same)
			range = NULL;
	}
	k = mir_range_parse(range, size, start, len);
	if (k == MIR_RANGE_FULL) {
		*start = 0;
		*len = size;
	}
	return k;
}

enum MHD_Result
mir_srv_416(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
            uint64_t size)
{
	char value[64];
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	hc_snprintf(value, sizeof(value), "bytes */%" PRIu64, size);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, value);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	return mir_srv_queue(s, c, r, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
}

void
mir_srv_content_range(struct MHD_Response *resp, uint64_t start, uint64_t len,
                      uint64_t size)
{
	char value[96];

	hc_snprintf(value, sizeof(value), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start,
	            start + len - 1, size);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, value);
}

/* A response body never read (HEAD): only its size matters. */
ssize_t
mir_srv_no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	(void)buf;
	(void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* ------------------------------------------------------------ hits */

struct srv_fd_reader {
	struct mir_server *s;
	int fd;
	uint64_t start;
};

static ssize_t
srv_fd_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct srv_fd_reader *rd = cls;
	size_t want = mir_srv_egress_take(rd->s, max);
	ssize_t n;

	do {
		n = pread(rd->fd, buf, want, (off_t)(rd->start + pos));
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void
srv_fd_free(void *cls)
{
	struct srv_fd_reader *rd = cls;

	close(rd->fd);
	free(rd);
}

/* Corks the socket until the response completes (srv_completed uncorks):
 * the headers and the file then leave in full segments instead of a small
 * header packet first. Measured: about 1.5x requests per second on 1 MiB
 * files over loopback. */
static void
srv_cork(struct MHD_Connection *c, struct mir_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	int one = 1;

	if (ci != NULL &&
	    setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) == 0)
		r->cork_fd = ci->connect_fd;
}

/* Answers from a stored file; takes the fd and the pin. */
enum MHD_Result
mir_srv_send_file(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
              struct mir_file *f, int head)
{
	char etag[HC_SHA256_HEX_LEN + 3], lm[64];
	uint64_t start, len;
	enum mir_range k;
	struct MHD_Response *resp = NULL;

	r->pin = f->entry;
	mir_srv_etag(f->sha256, etag, sizeof(etag));
	srv_http_date(f->mtime_s, lm, sizeof(lm));
	k = mir_srv_range(c, etag, lm, f->size, &start, &len);
	if (k == MIR_RANGE_UNSATISFIABLE) {
		close(f->fd);
		return mir_srv_416(s, c, r, f->size);
	}
	if (s->cfg->max_egress_bytes_per_s == 0 || head) {
		if (!head && !s->tls)
			srv_cork(c, r);
		resp = MHD_create_response_from_fd_at_offset64(len, f->fd, start);
		if (resp == NULL)
			close(f->fd);
	} else {
		struct srv_fd_reader *rd = malloc(sizeof(*rd));
		if (rd == NULL) {
			close(f->fd);
			return MHD_NO;
		}
		rd->s = s;
		rd->fd = f->fd;
		rd->start = start;
		resp = MHD_create_response_from_callback(len, SRV_BLOCK_SIZE, srv_fd_read, rd,
		                                         srv_fd_free);
		if (resp == NULL)
			srv_fd_free(rd);
	}
	if (resp == NULL)
		return MHD_NO;
	mir_srv_file_headers(resp, f->sha256, etag, f->mtime_s);
	if (k == MIR_RANGE_PARTIAL)
		mir_srv_content_range(resp, start, len, f->size);
	r->body_len = head ? 0 : len;
	return mir_srv_queue(s, c, r, k == MIR_RANGE_PARTIAL ? MHD_HTTP_PARTIAL_CONTENT :
	                     MHD_HTTP_OK, resp);
}

static enum MHD_Result
srv_get_file(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
             const char *path, int head)
{
	struct mir_file f;
	struct hc_err err = { 0, "" };
	int rc;

	rc = mir_store_get(s->store, path, 1, &f, &err);
	if (rc == 0) {
		atomic_fetch_add(&s->hits, 1);
		mir_tools_count(s, path, 1);
		return mir_srv_send_file(s, c, r, &f, head);
	}
	if (rc == HC_EDATA)
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	if (rc != HC_ENOTFOUND) {
		hc_log(HC_LOG_WARN, "mirror", "GET %s: %s", path, err.msg);
		return mir_srv_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	atomic_fetch_add(&s->misses, 1);
	mir_tools_count(s, path, 0);
	if (s->cfg->mode == MIR_MODE_ORIGIN)
		return mir_srv_error(s, c, r, MHD_HTTP_NOT_FOUND, "not found");
	return head ? mir_fill_head(s, c, r, path) : mir_fill_get(s, c, r, path);
}

/* ------------------------------------------------------------ origin writes */

static int
srv_authorized(struct mir_server *s, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char digest[SHA256_DIGEST_LENGTH];

	if (!s->has_token || h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	/* Comparing digests hides the token's length as well as its bytes. */
	SHA256((const unsigned char *)h, strlen(h), digest);
	return CRYPTO_memcmp(digest, s->token_digest, sizeof(digest)) == 0;
}

static enum MHD_Result
srv_unauthorized(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r)
{
	char body[] = "{\"error\": \"unauthorized\"}\n";
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return mir_srv_queue(s, c, r, MHD_HTTP_UNAUTHORIZED, resp);
}

static enum MHD_Result
srv_put_begin(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
              const char *path)
{
	const char *v;
	struct hc_err err = { 0, "" };
	long long clen = -1;

	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-File-SHA256");
	if (v != NULL) {
		if (!hc_sha256_hex_valid(v))
			return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad X-File-SHA256");
		hc_hex_lower(r->put_expect, v, HC_SHA256_HEX_LEN);
	} else {
		v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Repr-Digest");
		if (v != NULL && hc_sha256_from_repr_digest(v, r->put_expect) != 0)
			return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad Repr-Digest");
	}
	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (v != NULL && hc_parse_int(v, 0, INT64_MAX, &clen) == 0 &&
	    (uint64_t)clen > mir_store_free_bytes(s->store)) {
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: %lld bytes do not fit on the disk", path,
		       clen);
		return mir_srv_error(s, c, r, MHD_HTTP_INSUFFICIENT_STORAGE, "disk full");
	}
	if (hc_strlcpy(r->put_path, path, sizeof(r->put_path)) != 0)
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "path too long");
	r->put_sha = hc_sha256_new();
	if (r->put_sha == NULL)
		return MHD_NO;
	r->put_fd = mir_store_tmp(s->store, r->put_tmp, sizeof(r->put_tmp), &err);
	if (r->put_fd < 0) {
		r->put_tmp[0] = '\0';
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: %s", path, err.msg);
		return mir_srv_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	r->put_state = MIR_PUT_WRITING;
	return MHD_YES;
}

static void
srv_put_drop(struct mir_req *r)
{
	if (r->put_fd >= 0)
		close(r->put_fd);
	r->put_fd = -1;
	if (r->put_tmp[0] != '\0')
		unlink(r->put_tmp);
	r->put_tmp[0] = '\0';
}

static enum MHD_Result
srv_put_data(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
             const char *data, size_t *size)
{
	char hex[HC_SHA256_HEX_LEN + 1], etag[HC_SHA256_HEX_LEN + 3], body[256];
	struct hc_err err = { 0, "" };
	struct MHD_Response *resp;
	int rc;

	if (*size > 0) {
		if (r->put_state == MIR_PUT_WRITING) {
			if (hc_write_all(r->put_fd, data, *size) != 0) {
				int e = errno;
				r->put_state = (e == ENOSPC || e == EDQUOT) ? MIR_PUT_FULL : MIR_PUT_FAILED;
				hc_log(HC_LOG_WARN, "mirror", "PUT %s: write: %s", r->put_path, strerror(e));
				srv_put_drop(r);
			} else {
				hc_sha256_update(r->put_sha, data, *size);
				r->put_bytes += *size;
			}
		}
		*size = 0;
		return MHD_YES;
	}
	if (r->put_state == MIR_PUT_FULL)
		return mir_srv_error(s, c, r, MHD_HTTP_INSUFFICIENT_STORAGE, "disk full");
	if (r->put_state != MIR_PUT_WRITING)
		return mir_srv_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "write failed");
	r->put_state = MIR_PUT_DONE;
	hc_sha256_hex(r->put_sha, hex);
	if (r->put_expect[0] != '\0' && strcmp(hex, r->put_expect) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: digest mismatch: sent %s, received %s",
		       r->put_path, r->put_expect, hex);
		srv_put_drop(r);
		return mir_srv_error(s, c, r, MHD_HTTP_UNPROCESSABLE_CONTENT, "sha256 mismatch");
	}
	rc = mir_store_commit(s->store, r->put_path, r->put_tmp, r->put_fd, r->put_bytes,
	                      hex, 0, NULL, &err);
	r->put_tmp[0] = '\0';  /* renamed, or removed by the commit */
	close(r->put_fd);
	r->put_fd = -1;
	if (rc != 0) {
		int full = errno == ENOSPC || errno == EDQUOT;
		hc_log(HC_LOG_WARN, "mirror", "PUT %s: %s", r->put_path, err.msg);
		if (rc == HC_EDATA)
			return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
		return mir_srv_error(s, c, r, full ? MHD_HTTP_INSUFFICIENT_STORAGE :
		                     MHD_HTTP_INTERNAL_SERVER_ERROR, full ? "disk full" : "store error");
	}
	hc_log(HC_LOG_INFO, "mirror", "stored %s (%" PRIu64 " bytes, sha256 %s)", r->put_path,
	       r->put_bytes, hex);
	hc_snprintf(body, sizeof(body), "{\"size\": %" PRIu64 ", \"sha256\": \"%s\"}\n",
	            r->put_bytes, hex);
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	mir_srv_etag(hex, etag, sizeof(etag));
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(resp, "X-File-SHA256", hex);
	return mir_srv_queue(s, c, r, MHD_HTTP_CREATED, resp);
}

static enum MHD_Result
srv_delete(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
           const char *path)
{
	struct hc_err err = { 0, "" };
	struct MHD_Response *resp;
	int rc = mir_store_delete(s->store, path, &err);

	if (rc == HC_ENOTFOUND)
		return mir_srv_error(s, c, r, MHD_HTTP_NOT_FOUND, "not found");
	if (rc == HC_EDATA)
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "mirror", "DELETE %s: %s", path, err.msg);
		return mir_srv_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	hc_log(HC_LOG_INFO, "mirror", "deleted %s", path);
	resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	return mir_srv_queue(s, c, r, MHD_HTTP_NO_CONTENT, resp);
}

/* ------------------------------------------------------------ health, metrics */

static enum MHD_Result
srv_health(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r)
{
	struct mir_store_stats st;
	struct json_object *o = json_object_new_object(), *cache = json_object_new_object();
	struct MHD_Response *resp = NULL;
	const char *text;

	if (o == NULL || cache == NULL) {
		json_object_put(o);
		json_object_put(cache);
		return MHD_NO;
	}
	mir_store_stats(s->store, &st);
	json_object_object_add(o, "status", json_object_new_string("healthy"));
	json_object_object_add(o, "role", json_object_new_string(
		s->cfg->mode == MIR_MODE_PEER ? "peer" : "origin"));
	json_object_object_add(o, "district", json_object_new_string(
		s->cfg->district != NULL ? s->cfg->district : ""));
	json_object_object_add(o, "origin_url", json_object_new_string(
		s->cfg->origin_url != NULL ? s->cfg->origin_url : ""));
	json_object_object_add(cache, "bytes", json_object_new_int64((int64_t)st.bytes));
	json_object_object_add(cache, "max_bytes", json_object_new_int64((int64_t)st.max_bytes));
	json_object_object_add(cache, "files", json_object_new_int64((int64_t)st.files));
	json_object_object_add(cache, "hits", json_object_new_int64(
		(int64_t)atomic_load(&s->hits)));
	json_object_object_add(cache, "misses", json_object_new_int64(
		(int64_t)atomic_load(&s->misses)));
	json_object_object_add(o, "cache", cache);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
	                                       MHD_RESPMEM_MUST_COPY);
	json_object_put(o);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return mir_srv_queue(s, c, r, MHD_HTTP_OK, resp);
}

struct srv_buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void
srv_bprintf(struct srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
srv_bprintf(struct srv_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = (b->cap + (size_t)n) * 2;
			char *p = realloc(b->p, cap);
			if (p == NULL) {
				b->failed = 1;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

static void
srv_metric(struct srv_buf *b, const char *name, const char *type, const char *help,
           uint64_t value)
{
	srv_bprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
	            name, value);
}

static enum MHD_Result
srv_metrics(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r)
{
	struct srv_buf b = { NULL, 0, 0, 0 };
	struct mir_store_stats st;
	struct MHD_Response *resp;
	unsigned i;

	b.cap = 4096;
	b.p = malloc(b.cap);
	if (b.p == NULL)
		return MHD_NO;
	mir_store_stats(s->store, &st);
	srv_bprintf(&b, "# HELP hydra_mirror_requests_total Responses sent, by status code.\n"
	            "# TYPE hydra_mirror_requests_total counter\n");
	for (i = 100; i < MIR_CODES_MAX; i++) {
		uint64_t n = atomic_load(&s->codes[i]);
		if (n > 0)
			srv_bprintf(&b, "hydra_mirror_requests_total{code=\"%u\"} %" PRIu64 "\n", i, n);
	}
	srv_metric(&b, "hydra_mirror_hits_total", "counter",
	           "File requests answered from the store.", atomic_load(&s->hits));
	srv_metric(&b, "hydra_mirror_misses_total", "counter",
	           "File requests for files not in the store.", atomic_load(&s->misses));
	srv_metric(&b, "hydra_mirror_bytes_served_total", "counter",
	           "Body bytes of completed file responses.", atomic_load(&s->bytes_served));
	srv_metric(&b, "hydra_mirror_origin_bytes_total", "counter",
	           "Body bytes received from the origin.", atomic_load(&s->origin_bytes));
	srv_metric(&b, "hydra_mirror_origin_fills_total", "counter",
	           "Fills started from the origin.", atomic_load(&s->fills_started));
	srv_metric(&b, "hydra_mirror_origin_fill_failures_total", "counter",
	           "Fills that failed.", atomic_load(&s->fills_failed));
	srv_metric(&b, "hydra_mirror_evictions_total", "counter",
	           "Files evicted to stay under max_bytes.", st.evictions);
	srv_metric(&b, "hydra_mirror_fills_in_flight", "gauge",
	           "Fills from the origin in progress.", (uint64_t)atomic_load(&s->fills_in_flight));
	srv_metric(&b, "hydra_mirror_store_bytes", "gauge", "Bytes in the store.", st.bytes);
	srv_metric(&b, "hydra_mirror_store_files", "gauge", "Files in the store.", st.files);
	srv_metric(&b, "hydra_mirror_store_max_bytes", "gauge",
	           "Retention limit of the store (0: none).", st.max_bytes);
	{
		char *tools = mir_tools_metrics(s);
		if (tools != NULL)
			srv_bprintf(&b, "%s", tools);
		free(tools);
	}
	if (b.failed) {
		free(b.p);
		return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(b.p);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "text/plain; version=0.0.4; charset=utf-8");
	return mir_srv_queue(s, c, r, MHD_HTTP_OK, resp);
}

/* ------------------------------------------------------------ routing */

static void *
srv_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct mir_req *r = calloc(1, sizeof(*r));

	(void)cls;
	(void)c;
	if (r == NULL)
		return NULL;
	r->put_fd = -1;
	r->cork_fd = -1;
	r->uri = hc_strdup(uri);
	if (r->uri == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

static void
srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
	struct mir_server *s = cls;
	struct mir_req *r = *con_cls;

	(void)c;
	if (r == NULL)
		return;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		atomic_fetch_add(&s->bytes_served, r->body_len);
	if (r->cork_fd >= 0) {
		int zero = 0;
		(void)setsockopt(r->cork_fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
	}
	srv_put_drop(r);
	hc_sha256_free(r->put_sha);
	mir_store_release(s->store, r->pin);
	free(r->uri);
	free(r);
	*con_cls = NULL;
}

static enum MHD_Result
srv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **con_cls)
{
	struct mir_server *s = cls;
	struct mir_req *r = *con_cls;
	char path[MIR_PATH_MAX];
	const char *raw, *rest;
	size_t raw_len, off = 0;
	int head, get, put, del, origin;

	(void)url;
	(void)version;
	if (r == NULL)
		return MHD_NO;
	if (r->put_state != MIR_PUT_NONE)
		return srv_put_data(s, c, r, upload_data, upload_data_size);
	/* libmicrohttpd keeps the connection alive only for a response queued
	 * after the first call; a PUT is judged at once so that a refused
	 * upload is not read. */
	if (!r->seen && strcmp(method, MHD_HTTP_METHOD_PUT) != 0) {
		r->seen = 1;
		return MHD_YES;
	}
	r->seen = 1;
	if (*upload_data_size > 0) {
		*upload_data_size = 0;  /* a body we do not want: drop it */
		return MHD_YES;
	}
	raw = r->uri;
	raw_len = strcspn(raw, "?#");
	head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
	del = strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;
	origin = s->cfg->mode == MIR_MODE_ORIGIN;

	if ((raw_len == strlen("/api/v1/health") && strncmp(raw, "/api/v1/health", raw_len) == 0) ||
	    (raw_len == strlen("/metrics") && strncmp(raw, "/metrics", raw_len) == 0)) {
		if (!get && !head)
			return srv_method_not_allowed(s, c, r, "GET, HEAD");
		return raw[1] == 'm' ? srv_metrics(s, c, r) : srv_health(s, c, r);
	}
	if (raw_len > strlen(SRV_FILES_PREFIX) &&
	    strncmp(raw, SRV_FILES_PREFIX, strlen(SRV_FILES_PREFIX)) == 0) {
		rest = raw + strlen(SRV_FILES_PREFIX);
	} else if (raw_len > strlen(SRV_TOOLS_PREFIX) &&
	           strncmp(raw, SRV_TOOLS_PREFIX, strlen(SRV_TOOLS_PREFIX)) == 0) {
		/* The tools tree is the same store under tools/. */
		rest = raw + strlen(SRV_TOOLS_PREFIX);
		memcpy(path, "tools/", 6);
		off = 6;
	} else if (raw_len == strlen(SRV_FILES_PREFIX) &&
	           strncmp(raw, SRV_FILES_PREFIX, raw_len) == 0) {
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	} else {
		return mir_srv_error(s, c, r, MHD_HTTP_NOT_FOUND, "no such route");
	}
	if (hc_path_decode(rest, raw_len - (size_t)(rest - raw), path + off,
	                    sizeof(path) - off) != 0)
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	if (get || head)
		return srv_get_file(s, c, r, path, head);
	if (!origin)
		return srv_method_not_allowed(s, c, r, "GET, HEAD");
	if (!put && !del)
		return srv_method_not_allowed(s, c, r, "GET, HEAD, PUT, DELETE");
	if (!srv_authorized(s, c))
		return srv_unauthorized(s, c, r);
	if (del && mir_tools_is_version(s, path))
		return mir_tools_delete_version(s, c, r, path);
	if (del)
		return srv_delete(s, c, r, path);
	return srv_put_begin(s, c, r, path);
}

static void
srv_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	hc_log(HC_LOG_WARN, "mirror", "libmicrohttpd: %s", line);
}

/* ------------------------------------------------------------ lifecycle */

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

static int
srv_load_token(struct mir_server *s, const char *token, struct hc_err *err)
{
	size_t n;

	if (token == NULL)
		return 0;
	n = strlen(token);
	if (n == 0)
		return hc_err_set(err, HC_ECONFIG, "admin token is empty");
	SHA256((const unsigned char *)token, n, s->token_digest);
	s->has_token = 1;
	return 0;
}

int
mir_server_start(const struct mir_config *cfg, const char *token, struct mir_server **out,
                 struct hc_err *err)
{
	struct mir_server *s = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	unsigned int flags;
	char bound[160];
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	s->cfg = cfg;
	pthread_mutex_init(&s->fill_mu, NULL);
	pthread_cond_init(&s->fill_cv, NULL);
	pthread_mutex_init(&s->bucket_mu, NULL);
	pthread_mutex_init(&s->flush_mu, NULL);
	pthread_cond_init(&s->flush_cv, NULL);
	s->bucket_ms = hc_now_ms();
	rc = hc_parse_listen(cfg->listen, &ss, &sslen, err);
	if (rc != 0) {
		rc = HC_ECONFIG;
		goto fail;
	}
	rc = srv_load_token(s, token, err);
	if (rc != 0)
		goto fail;
	if (cfg->mode == MIR_MODE_ORIGIN && !s->has_token)
		hc_log(HC_LOG_WARN, "mirror", "no admin token: PUT and DELETE are refused");
	rc = mir_fill_init(s, err);
	if (rc != 0)
		goto fail;
	rc = mir_store_open(cfg->root, cfg->mode == MIR_MODE_PEER ? cfg->max_bytes : 0,
	                    cfg->mode == MIR_MODE_PEER, &s->store, err);
	if (rc != 0)
		goto fail;
	rc = mir_tools_start(s, err);
	if (rc != 0)
		goto fail;
	if (cfg->tls.cert != NULL && *cfg->tls.cert != '\0') {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			rc = hc_err_set(err, HC_ECONFIG, "tls: libmicrohttpd was built without TLS");
			goto fail;
		}
		rc = srv_read_pem(cfg->tls.cert, &s->tls_cert, err);
		if (rc == 0)
			rc = srv_read_pem(cfg->tls.key, &s->tls_key, err);
		if (rc != 0)
			goto fail;
		s->tls = 1;
	}
	if (pthread_create(&s->flusher, NULL, srv_flusher, s) != 0) {
		rc = hc_err_set(err, HC_ESOFTWARE, "cannot start the index writer");
		goto fail;
	}
	s->flusher_started = 1;

	/* poll(2), not select(2): connections beyond fd 1024 must work. */
	flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	        MHD_USE_POLL | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (s->tls)
		flags |= MHD_USE_TLS;
	{
		struct MHD_OptionItem tls_opts[] = {
			{ MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key },
			{ MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert },
			{ MHD_OPTION_END, 0, NULL },
		};
		struct MHD_OptionItem no_opts[] = { { MHD_OPTION_END, 0, NULL } };

		s->d = MHD_start_daemon(flags, 0, NULL, NULL, srv_handle, s,
		                        MHD_OPTION_EXTERNAL_LOGGER, srv_mhd_log, s,
		                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		                        MHD_OPTION_URI_LOG_CALLBACK, srv_uri_log, s,
		                        MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
		                        MHD_OPTION_CONNECTION_TIMEOUT,
		                        (unsigned int)cfg->connection_timeout_s,
		                        MHD_OPTION_CONNECTION_LIMIT,
		                        (unsigned int)cfg->max_connections,
		                        MHD_OPTION_THREAD_STACK_SIZE, SRV_STACK_SIZE,
		                        MHD_OPTION_ARRAY, s->tls ? tls_opts : no_opts,
		                        MHD_OPTION_END);
	}
	if (s->tls_key != NULL) {
		explicit_bzero(s->tls_key, strlen(s->tls_key));
		free(s->tls_key);
		s->tls_key = NULL;
	}
	if (s->d == NULL) {
		rc = hc_err_set(err, HC_EUNAVAIL, "cannot listen on %s (in use, or bad TLS files)",
		                cfg->listen);
		goto fail;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	if (hc_sockaddr_format(&ss, info != NULL ? (int)info->port : -1, bound,
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

void
mir_server_stop(struct mir_server *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->stopping, 1);
	mir_fill_cancel_all(s);
	if (s->d != NULL)
		MHD_stop_daemon(s->d);
	mir_fill_wait_all(s);
	if (s->flusher_started) {
		pthread_mutex_lock(&s->flush_mu);
		s->flush_stop = 1;
		pthread_cond_broadcast(&s->flush_cv);
		pthread_mutex_unlock(&s->flush_mu);
		pthread_join(s->flusher, NULL);
	}
	mir_tools_stop(s);
	mir_store_close(s->store);
	mir_fill_cleanup(s);
	explicit_bzero(s->token_digest, sizeof(s->token_digest));
	if (s->tls_key != NULL) {
		explicit_bzero(s->tls_key, strlen(s->tls_key));
		free(s->tls_key);
	}
	free(s->tls_cert);
	pthread_mutex_destroy(&s->fill_mu);
	pthread_cond_destroy(&s->fill_cv);
	pthread_mutex_destroy(&s->bucket_mu);
	pthread_mutex_destroy(&s->flush_mu);
	pthread_cond_destroy(&s->flush_cv);
	free(s);
}
