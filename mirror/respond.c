/*
 * The response layer (respond.h): status counting, JSON bodies, file
 * responses with their ranges, digests and ETags, and the egress token
 * bucket that paces file bodies.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mirror/respond.h"

/* Blocks read per call when a response is paced. */
#define RESP_BLOCK_SIZE (64 * 1024)

void
mir_resp_init(struct mir_resp *rs, uint64_t egress_rate, int tls)
{
	size_t i;

	atomic_init(&rs->egress_rate, egress_rate);
	rs->tls = tls;
	atomic_init(&rs->stopping, 0);
	atomic_init(&rs->draining, 0);
	pthread_mutex_init(&rs->bucket_mu, NULL);
	rs->tokens = 0;
	rs->bucket_ms = hc_now_ms();
	for (i = 0; i < MIR_CODES_MAX; i++)
		atomic_init(&rs->codes[i], 0);
}

void
mir_resp_destroy(struct mir_resp *rs)
{
	pthread_mutex_destroy(&rs->bucket_mu);
}

void
mir_resp_stop(struct mir_resp *rs)
{
	atomic_store(&rs->stopping, 1);
}

int
mir_resp_stopping(struct mir_resp *rs)
{
	return atomic_load(&rs->stopping);
}

void
mir_resp_drain(struct mir_resp *rs)
{
	atomic_store(&rs->draining, 1);
}

void
mir_resp_set_rate(struct mir_resp *rs, uint64_t rate)
{
	atomic_store(&rs->egress_rate, rate);
}

size_t
mir_resp_pace(struct mir_resp *rs, struct MHD_Connection *c, struct mir_park_wait *w,
              size_t want)
{
	uint64_t rate = atomic_load(&rs->egress_rate);
	size_t chunk;
	int64_t now, wait_ms;
	double cap;

	if (rate == 0 || want == 0 || atomic_load(&rs->stopping))
		return want;
	/* Small grants at low rates, whole blocks at high ones. */
	chunk = rate / 20 > 0 ? (size_t)(rate / 20) : 1;
	if (chunk > want)
		chunk = want;
	pthread_mutex_lock(&rs->bucket_mu);
	now = hc_now_ms();
	/* A tenth of a second of burst keeps the rate honest from the start. */
	cap = (double)rate / 10.0 > (double)chunk ? (double)rate / 10.0 : (double)chunk;
	rs->tokens += (double)(now - rs->bucket_ms) * (double)rate / 1000.0;
	if (rs->tokens > cap)
		rs->tokens = cap;
	rs->bucket_ms = now;
	if (rs->tokens >= (double)chunk) {
		rs->tokens -= (double)chunk;
		pthread_mutex_unlock(&rs->bucket_mu);
		return chunk;
	}
	/* Parked until the bucket holds a chunk, at the rate as it is now. */
	wait_ms = (int64_t)(((double)chunk - rs->tokens) * 1000.0 / (double)rate) + 1;
	pthread_mutex_unlock(&rs->bucket_mu);
	if (mir_park_suspend(rs->park, w, c, NULL, wait_ms) != 0)
		return want;
	return 0;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", or "" for an unknown time. */
static void
resp_http_date(int64_t t, char *out, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	out[0] = '\0';
	if (t <= 0)
		return;
	gmtime_r(&tt, &tm);
	if (strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		out[0] = '\0';
}

enum MHD_Result
mir_resp_queue(struct mir_resp *rs, struct MHD_Connection *c, struct mir_req *r,
               unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	if (status < MIR_CODES_MAX)
		atomic_fetch_add(&rs->codes[status], 1);
	if (r != NULL)
		r->status = status;
	if (atomic_load(&rs->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (r != NULL && r->deferring && r->held == NULL) {
		r->held = resp;
		r->held_status = status;
		return MHD_YES;
	}
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result
mir_resp_queue_held(struct MHD_Connection *c, struct mir_req *r)
{
	struct MHD_Response *resp = r->held;
	enum MHD_Result ret;

	r->held = NULL;
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, r->held_status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result
mir_resp_json(struct mir_resp *rs, struct MHD_Connection *c, struct mir_req *r,
              unsigned status, const char *body, const char *const *headers)
{
	struct MHD_Response *resp;
	size_t i;

	resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
	                                       MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	for (i = 0; headers != NULL && headers[i] != NULL; i += 2)
		MHD_add_response_header(resp, headers[i], headers[i + 1]);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return mir_resp_queue(rs, c, r, status, resp);
}

enum MHD_Result
mir_resp_error(struct mir_resp *rs, struct MHD_Connection *c, struct mir_req *r,
               unsigned status, const char *why)
{
	char body[256];

	hc_snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", why);
	return mir_resp_json(rs, c, r, status, body, NULL);
}

enum MHD_Result
mir_resp_416(struct mir_resp *rs, struct MHD_Connection *c, struct mir_req *r,
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
	return mir_resp_queue(rs, c, r, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
}

void
mir_resp_etag(const struct mir_resp_file *f, char *out, size_t size)
{
	int rc;

	if (f->sha256 != NULL && hc_sha256_hex_valid(f->sha256))
		rc = hc_snprintf(out, size, "\"%s\"", f->sha256);
	else
		/* Bytes no origin digest vouches for: weak, so a range is never
		 * stitched onto another copy by this tag alone. */
		rc = hc_snprintf(out, size, "W/\"%" PRIx64 "-%" PRIx64 "\"", f->size,
		                 (uint64_t)f->mtime_s);
	if (rc != 0)
		out[0] = '\0';
}

enum mir_range
mir_resp_range(struct MHD_Connection *c, const struct mir_resp_file *f, uint64_t *start,
               uint64_t *len)
{
	const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                                MHD_HTTP_HEADER_RANGE);
	const char *if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                                   MHD_HTTP_HEADER_IF_RANGE);
	char etag[MIR_ETAG_MAX], lm[64];
	enum mir_range k;

	/* If-Range that does not name this representation: send it all. A weak
	 * ETag never matches (RFC 9110 13.1.5). */
	if (range != NULL && if_range != NULL) {
		int same;

		mir_resp_etag(f, etag, sizeof(etag));
		resp_http_date(f->mtime_s, lm, sizeof(lm));
		same = (etag[0] == '"' && strcmp(if_range, etag) == 0) ||
		       (lm[0] != '\0' && strcmp(if_range, lm) == 0);
		if (!same)
			range = NULL;
	}
	k = mir_range_parse(range, f->size, start, len);
	if (k == MIR_RANGE_FULL) {
		*start = 0;
		*len = f->size;
	}
	return k;
}

/* The headers every file response carries. */
static void
resp_file_headers(struct MHD_Response *resp, const struct mir_resp_file *f)
{
	char value[HC_HTTP_HEADER_VALUE_MAX];

	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	mir_resp_etag(f, value, sizeof(value));
	if (value[0] != '\0')
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, value);
	resp_http_date(f->mtime_s, value, sizeof(value));
	if (value[0] != '\0')
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, value);
	if (f->sha256 != NULL && hc_sha256_hex_valid(f->sha256)) {
		MHD_add_response_header(resp, "X-File-SHA256", f->sha256);
		if (hc_sha256_to_repr_digest(f->sha256, value, sizeof(value)) == 0)
			MHD_add_response_header(resp, "Repr-Digest", value);
	}
}

/* A response body never read (HEAD): only its size matters. */
static ssize_t
resp_no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	(void)buf;
	(void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

enum MHD_Result
mir_resp_file_send(struct mir_resp *rs, struct MHD_Connection *c, struct mir_req *r,
                   const struct mir_resp_file *f, enum mir_range k, uint64_t start,
                   uint64_t len, struct MHD_Response *body)
{
	char value[96];

	if (k == MIR_RANGE_UNSATISFIABLE) {
		if (body != NULL)
			MHD_destroy_response(body);
		return mir_resp_416(rs, c, r, f->size);
	}
	if (body == NULL) {
		body = MHD_create_response_from_callback(len, RESP_BLOCK_SIZE, resp_no_body,
		                                         NULL, NULL);
		if (body == NULL)
			return MHD_NO;
		r->body_len = 0;
	} else {
		r->body_len = len;
	}
	resp_file_headers(body, f);
	if (k == MIR_RANGE_PARTIAL) {
		hc_snprintf(value, sizeof(value), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start,
		            start + len - 1, f->size);
		MHD_add_response_header(body, MHD_HTTP_HEADER_CONTENT_RANGE, value);
	}
	return mir_resp_queue(rs, c, r, k == MIR_RANGE_PARTIAL ? MHD_HTTP_PARTIAL_CONTENT :
	                      MHD_HTTP_OK, body);
}

/* ------------------------------------------------------------ stored files */

ssize_t
mir_resp_read_at(int fd, char *buf, size_t n, uint64_t off)
{
	ssize_t got;

	do {
		got = pread(fd, buf, n, (off_t)off);
	} while (got < 0 && errno == EINTR);
	if (got <= 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return got;
}

struct resp_fd_reader {
	struct mir_resp *rs;
	struct MHD_Connection *c;
	struct mir_park_wait wait;      /* for the egress bucket */
	int fd;
	uint64_t start;
};

static ssize_t
resp_fd_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct resp_fd_reader *rd = cls;
	size_t want = mir_resp_pace(rd->rs, rd->c, &rd->wait, max);

	if (want == 0)
		return 0;
	return mir_resp_read_at(rd->fd, buf, want, rd->start + pos);
}

static void
resp_fd_free(void *cls)
{
	struct resp_fd_reader *rd = cls;

	mir_park_cancel(rd->rs->park, &rd->wait);
	close(rd->fd);
	free(rd);
}

/* Corks the socket until the response completes (the server uncorks):
 * the headers and the file then leave in full segments instead of a small
 * header packet first. Measured: about 1.5x requests per second on 1 MiB
 * files over loopback. */
static void
resp_cork(struct MHD_Connection *c, struct mir_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	int one = 1;

	if (ci != NULL &&
	    setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) == 0)
		r->cork_fd = ci->connect_fd;
}

/* The body of a stored file: sendfile when unpaced over plain HTTP, else
 * reads of RESP_BLOCK_SIZE (paced when a rate is set). Over TLS
 * libmicrohttpd's own file responses read 4 KiB at a time, one TLS write
 * each: 64 KiB reads measured 1.4x the requests per second on 1 MiB files.
 * Takes fd. NULL when out of memory. */
static struct MHD_Response *
resp_fd_body(struct mir_resp *rs, struct MHD_Connection *c, struct mir_req *r, int fd,
             uint64_t start, uint64_t len)
{
	struct resp_fd_reader *rd;
	struct MHD_Response *resp;

	if (atomic_load(&rs->egress_rate) == 0 && !rs->tls) {
		resp_cork(c, r);
		resp = MHD_create_response_from_fd_at_offset64(len, fd, start);
		if (resp == NULL)
			close(fd);
		return resp;
	}
	rd = malloc(sizeof(*rd));
	if (rd == NULL) {
		close(fd);
		return NULL;
	}
	rd->rs = rs;
	rd->c = c;
	mir_park_wait_init(&rd->wait);
	rd->fd = fd;
	rd->start = start;
	resp = MHD_create_response_from_callback(len, RESP_BLOCK_SIZE, resp_fd_read, rd,
	                                         resp_fd_free);
	if (resp == NULL)
		resp_fd_free(rd);
	return resp;
}

enum MHD_Result
mir_resp_stored(struct mir_resp *rs, struct MHD_Connection *c, struct mir_req *r,
                struct mir_file *f, int head)
{
	struct mir_resp_file rf = { f->size, f->mtime_s, f->sha256 };
	struct MHD_Response *body = NULL;
	uint64_t start, len;
	enum mir_range k;

	r->pin = f->entry;
	k = mir_resp_range(c, &rf, &start, &len);
	if (k == MIR_RANGE_UNSATISFIABLE || head) {
		close(f->fd);
	} else {
		body = resp_fd_body(rs, c, r, f->fd, start, len);
		if (body == NULL)
			return MHD_NO;
	}
	return mir_resp_file_send(rs, c, r, &rf, k, start, len, body);
}

/* Blocks read per call when a hit is hashed as it is sent: larger than a
 * paced block, since the hash costs per call too. */
#define RESP_CHECK_BLOCK_SIZE (256 * 1024)
/* Bytes hashed ahead of the range per call: a few milliseconds of a pool
 * thread, so a range near the end of a large file does not hold the other
 * connections of that thread while its prefix is hashed. */
#define RESP_CHECK_STEP ((uint64_t)4 << 20)

/* A hit hashed while it is sent: the bytes before the range are hashed at
 * the first read, those of the range as they go out, and the last byte is
 * held back until the rest of the file is hashed and matches. */
struct resp_check_reader {
	struct mir_resp *rs;
	struct MHD_Connection *c;
	struct mir_park_wait wait;      /* egress bucket, or a yield between steps */
	struct mir_store *st;
	struct mir_file f;              /* fd owned here; the pin is the request's */
	uint64_t start, len;
	struct hc_sha256 *h;
	uint64_t hashed;                /* bytes of the file hashed, from 0 */
	char buf[RESP_CHECK_BLOCK_SIZE];
};

/* Hashes the file from rd->hashed towards upto, at most RESP_CHECK_STEP
 * bytes a call: 1 once there, 0 when more is left, -1 on a read error. */
static int
resp_check_hash_to(struct resp_check_reader *rd, uint64_t upto)
{
	uint64_t stop = upto - rd->hashed > RESP_CHECK_STEP ? rd->hashed + RESP_CHECK_STEP : upto;

	while (rd->hashed < stop) {
		size_t want = stop - rd->hashed < sizeof(rd->buf) ? (size_t)(stop - rd->hashed) :
		              sizeof(rd->buf);
		ssize_t got = mir_resp_read_at(rd->f.fd, rd->buf, want, rd->hashed);

		if (got < 0 || hc_sha256_update(rd->h, rd->buf, (size_t)got) != 0)
			return -1;
		rd->hashed += (uint64_t)got;
	}
	return rd->hashed >= upto;
}

/* Asks the store about the whole file, hashed: 0 when it matches (the
 * file is now verified), -1 when it does not (the store evicted it). */
static int
resp_check_verdict(struct resp_check_reader *rd)
{
	char hex[HC_SHA256_HEX_LEN + 1];
	struct hc_err err = { 0, "" };

	if (hc_sha256_hex(rd->h, hex) != 0)
		return -1;
	if (mir_store_check(rd->st, &rd->f, hex, &err) == MIR_CHECK_OK)
		return 0;
	if (err.msg[0] != '\0')
		hc_log(HC_LOG_WARN, "mirror", "%s", err.msg);
	return -1;
}

static ssize_t
resp_check_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct resp_check_reader *rd = cls;
	uint64_t off = rd->start + pos;
	/* Only the held-back last byte is left: the rest of the file first. */
	int last = pos + 1 >= rd->len;
	size_t want;
	ssize_t got;
	int rc;

	rc = resp_check_hash_to(rd, last ? rd->f.size : off);
	if (rc < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (rc == 0) {
		/* A pool thread hashes a step at a time: yield to the others. */
		if (mir_park_suspend(rd->rs->park, &rd->wait, rd->c, NULL, 0) != 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		return 0;
	}
	if (last && resp_check_verdict(rd) != 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	want = mir_resp_pace(rd->rs, rd->c, &rd->wait, max);
	if (want == 0)
		return 0;
	if (last)
		want = 1;
	else if (pos + want >= rd->len)
		want = (size_t)(rd->len - 1 - pos);  /* hold the last byte back */
	got = mir_resp_read_at(rd->f.fd, buf, want, off);
	if (got < 0)
		return got;
	if (off == rd->hashed && hc_sha256_update(rd->h, buf, (size_t)got) != 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (off == rd->hashed)
		rd->hashed += (uint64_t)got;
	return got;
}

static void
resp_check_free(void *cls)
{
	struct resp_check_reader *rd = cls;

	mir_park_cancel(rd->rs->park, &rd->wait);
	close(rd->f.fd);
	hc_sha256_free(rd->h);
	free(rd);
}

enum MHD_Result
mir_resp_stored_checked(struct mir_resp *rs, struct mir_store *st, struct MHD_Connection *c,
                        struct mir_req *r, struct mir_file *f, int head)
{
	struct mir_resp_file rf = { f->size, f->mtime_s, f->sha256 };
	struct resp_check_reader *rd;
	struct MHD_Response *body;
	uint64_t start, len;
	enum mir_range k;

	k = mir_resp_range(c, &rf, &start, &len);
	if (k == MIR_RANGE_UNSATISFIABLE || head || len == 0)
		return mir_resp_stored(rs, c, r, f, head);
	r->pin = f->entry;
	rd = calloc(1, sizeof(*rd));
	if (rd == NULL) {
		close(f->fd);
		return MHD_NO;
	}
	rd->rs = rs;
	rd->c = c;
	mir_park_wait_init(&rd->wait);
	rd->st = st;
	rd->f = *f;
	rd->start = start;
	rd->len = len;
	rd->h = hc_sha256_new();
	if (rd->h == NULL) {
		resp_check_free(rd);
		return MHD_NO;
	}
	body = MHD_create_response_from_callback(len, RESP_CHECK_BLOCK_SIZE, resp_check_read, rd,
	                                         resp_check_free);
	if (body == NULL) {
		resp_check_free(rd);
		return MHD_NO;
	}
	return mir_resp_file_send(rs, c, r, &rf, k, start, len, body);
}
