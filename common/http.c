/*
 * The HTTP client core: c-ares resolution pinned into libcurl, limits, stall
 * detection, the headers the programs care about, and one failure class per
 * outcome.
 */
#include <ares.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/hc.h"

#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
/* A resolve entry: host, port and up to HC_DNS_MAX_ADDRS bracketed addresses. */
#define HTTP_RESOLVE_MAX (HC_HOST_MAX + 16 + HC_DNS_MAX_ADDRS * 66)
/* Our own header lines (Range, If-Range, User-Agent) are short. */
#define HTTP_HEADER_LINE_MAX 512
/* Receive buffer: large reads mean fewer syscalls and sink calls on
 * multi-gigabyte builds, at a cost of this many bytes per transfer. */
#define HTTP_RECV_BUFFER (256 * 1024)

/* The stall window is sampled in this many steps: a stall is seen at most
 * one step (plus libcurl's idle wake-up, about a second) after the window
 * it spans. Two more samples than steps keep one at least a window old. */
#define STALL_STEPS 32
#define STALL_RING (STALL_STEPS + 2)

/* With reuse_connections, each thread keeps one curl handle: its connection
 * cache (one connection per host, curl's default of 5 hosts) and TLS
 * session cache live from one request to the next. Freed at thread exit. */
static pthread_key_t http_handle_key;
static pthread_once_t http_handle_once = PTHREAD_ONCE_INIT;
static int http_handle_key_ok;

struct http_sample {
	int64_t ms;
	curl_off_t bytes;
};

struct http_xfer {
	const struct hc_http_config *cfg;
	const struct hc_http_request *req;
	struct hc_http_response *resp;
	CURL *curl;
	int headers_done;
	int aborted_by_headers;
	int http_error;
	int sink_failed;
	int stalled;
	int cancelled;
	/* Byte counts sampled for the stall check, oldest overwritten first. */
	struct http_sample stall_ring[STALL_RING];
	size_t stall_next, stall_n;
};

const char *
hc_fail_name(enum hc_fail f)
{
	switch (f) {
	case HC_FAIL_NONE:            return "none";
	case HC_FAIL_DNS_NXDOMAIN:    return "dns_nxdomain";
	case HC_FAIL_DNS_TIMEOUT:     return "dns_timeout";
	case HC_FAIL_DNS_ERROR:       return "dns_error";
	case HC_FAIL_CONNECT_REFUSED: return "connect_refused";
	case HC_FAIL_CONNECT_TIMEOUT: return "connect_timeout";
	case HC_FAIL_TLS:             return "tls";
	case HC_FAIL_TIMEOUT:         return "timeout";
	case HC_FAIL_STALL:           return "stall";
	case HC_FAIL_HTTP_STATUS:     return "http_status";
	case HC_FAIL_IO:              return "io";
	case HC_FAIL_ABORTED:         return "aborted";
	}
	return "unknown";
}

enum hc_fail
hc_http_classify(int curl_code, long os_errno, int connected)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		return HC_FAIL_NONE;
	case CURLE_COULDNT_RESOLVE_HOST:
		return HC_FAIL_DNS_NXDOMAIN;
	case CURLE_COULDNT_CONNECT:
		if (os_errno == ETIMEDOUT)
			return HC_FAIL_CONNECT_TIMEOUT;
		return HC_FAIL_CONNECT_REFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return connected ? HC_FAIL_TIMEOUT : HC_FAIL_CONNECT_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED:
		return HC_FAIL_TLS;
	case CURLE_WRITE_ERROR:
		return HC_FAIL_IO;
	case CURLE_ABORTED_BY_CALLBACK:
		return HC_FAIL_ABORTED;
	default:
		/* Resets, short bodies, bad framing: the transfer broke mid-way. */
		return connected ? HC_FAIL_ABORTED : HC_FAIL_CONNECT_REFUSED;
	}
}

void
hc_http_response_init(struct hc_http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	resp->range_start = -1;
	resp->range_total = -1;
	resp->fail = HC_FAIL_NONE;
}

int
hc_http_global_init(struct hc_err *err)
{
	int ar;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return hc_err_set(err, HC_ESOFTWARE, "curl_global_init failed");
	ar = ares_library_init(ARES_LIB_INIT_ALL);
	if (ar != ARES_SUCCESS)
		return hc_err_set(err, HC_ESOFTWARE, "c-ares init: %s", ares_strerror(ar));
	return 0;
}

static void
http_handle_destroy(void *curl)
{
	curl_easy_cleanup(curl);
}

static void
http_handle_key_init(void)
{
	http_handle_key_ok = pthread_key_create(&http_handle_key, http_handle_destroy) == 0;
}

/* The calling thread's kept handle, reset for a new request; a new one the
 * first time. NULL when out of memory. *kept is 1 when the handle must not
 * be cleaned up by the caller. */
static CURL *
http_handle(int reuse, int *kept)
{
	CURL *curl;

	*kept = 0;
	if (!reuse)
		return curl_easy_init();
	(void)pthread_once(&http_handle_once, http_handle_key_init);
	if (!http_handle_key_ok)
		return curl_easy_init();
	curl = pthread_getspecific(http_handle_key);
	if (curl != NULL) {
		/* Options go; connections, DNS and TLS sessions stay. */
		curl_easy_reset(curl);
		*kept = 1;
		return curl;
	}
	curl = curl_easy_init();
	if (curl != NULL && pthread_setspecific(http_handle_key, curl) == 0)
		*kept = 1;
	return curl;
}

/* Closes the connections the calling thread kept (reuse_connections); other
 * threads' go at their exit, through the key's destructor. */
static void
http_thread_done(void)
{
	CURL *curl;

	if (!http_handle_key_ok)
		return;
	curl = pthread_getspecific(http_handle_key);
	if (curl == NULL)
		return;
	(void)pthread_setspecific(http_handle_key, NULL);
	curl_easy_cleanup(curl);
}

void
hc_http_global_cleanup(void)
{
	http_thread_done();
	ares_library_cleanup();
	curl_global_cleanup();
}

/* Copies a header value without surrounding blanks or CRLF. */
static void
http_header_value(const char *v, size_t len, char *out, size_t size)
{
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
	                   v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(out, v, len);
	out[len] = '\0';
}

/* Digits of one Content-Range number: INT64_MAX has 19. */
#define HTTP_RANGE_DIGITS_MAX 19

/* The number in s up to the first of stop, which must follow it; *next
 * points past stop ("" for stop '\0'). -1 on anything else, an overflow
 * included: a header is untrusted input. */
static int
http_range_number(const char *s, char stop, long long *out, const char **next)
{
	char digits[HTTP_RANGE_DIGITS_MAX + 1];
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9') {
		if (n == HTTP_RANGE_DIGITS_MAX)
			return -1;
		digits[n] = s[n];
		n++;
	}
	if (n == 0 || s[n] != stop)
		return -1;
	digits[n] = '\0';
	*next = stop != '\0' ? s + n + 1 : s + n;
	return hc_parse_int(digits, 0, INT64_MAX, out) == 0 ? 0 : -1;
}

/* "bytes 100-199/1000" gives start and total; a 416 (an asterisk for the
 * range, then "/1000") gives only the total. Anything else gives nothing. */
static void
http_parse_content_range(const char *v, struct hc_http_response *resp)
{
	long long start, end, total;
	const char *p;

	if (strncmp(v, "bytes ", 6) != 0)
		return;
	p = v + 6;
	if (strncmp(p, "*/", 2) == 0) {
		if (http_range_number(p + 2, '\0', &total, &p) == 0)
			resp->range_total = total;
		return;
	}
	if (http_range_number(p, '-', &start, &p) == 0 &&
	    http_range_number(p, '/', &end, &p) == 0 &&
	    http_range_number(p, '\0', &total, &p) == 0 && end >= start && total > end) {
		resp->range_start = start;
		resp->range_total = total;
	}
}

static int
http_header_done(struct http_xfer *x)
{
	long status = 0;

	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	/* 1xx are interim: the real header block follows. */
	if (status >= 100 && status < 200)
		return 0;
	x->resp->status = status;
	x->headers_done = 1;
	if (x->req->fail_on_http_error && status >= 400)
		x->http_error = 1;
	if (x->req->on_headers != NULL && x->req->on_headers(x->req->ctx, x->resp) != 0) {
		x->aborted_by_headers = 1;
		return -1;
	}
	return 0;
}

static size_t
http_on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct http_xfer *x = arg;
	struct hc_http_response *resp = x->resp;
	size_t len = size * nitems;
	char value[HC_HTTP_HEADER_VALUE_MAX];
	const char *colon;
	size_t name_len;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new response (after 1xx): forget what the previous block said. */
		uint64_t keep_bytes = resp->body_bytes;
		hc_http_response_init(resp);
		resp->body_bytes = keep_bytes;
		return len;
	}
	if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n'))
		return http_header_done(x) == 0 ? len : 0;
	colon = memchr(buf, ':', len);
	if (colon == NULL)
		return len;
	name_len = (size_t)(colon - buf);
	http_header_value(colon + 1, len - name_len - 1, value, sizeof(value));
	if (name_len == 14 && strncasecmp(buf, "Content-Length", 14) == 0) {
		long long n;
		if (hc_parse_int(value, 0, INT64_MAX, &n) == 0)
			resp->content_length = n;
	} else if (name_len == 13 && strncasecmp(buf, "Content-Range", 13) == 0) {
		http_parse_content_range(value, resp);
	} else if (name_len == 4 && strncasecmp(buf, "ETag", 4) == 0) {
		hc_strlcpy(resp->etag, value, sizeof(resp->etag));
	} else if (name_len == 8 && strncasecmp(buf, "Location", 8) == 0) {
		/* A cut URL would lead elsewhere: one too long is dropped whole. */
		if (len - name_len - 1 < sizeof(resp->location))
			http_header_value(colon + 1, len - name_len - 1, resp->location,
			                  sizeof(resp->location));
	} else if ((name_len == 11 && strncasecmp(buf, "Retry-After", 11) == 0) ||
	           (name_len == 17 && strncasecmp(buf, "X-RateLimit-Reset", 17) == 0 &&
	            resp->retry_after[0] == '\0')) {
		hc_strlcpy(resp->retry_after, value, sizeof(resp->retry_after));
	} else if (name_len == 13 && strncasecmp(buf, "Accept-Ranges", 13) == 0) {
		resp->accept_ranges = strcasecmp(value, "bytes") == 0;
	} else if (name_len == 13 && strncasecmp(buf, "X-File-SHA256", 13) == 0) {
		if (hc_sha256_hex_valid(value))
			hc_hex_lower(resp->sha256, value, HC_SHA256_HEX_LEN);
	} else if (name_len == 11 && strncasecmp(buf, "Repr-Digest", 11) == 0) {
		/* X-File-SHA256 wins when both are present. */
		if (resp->sha256[0] == '\0')
			(void)hc_sha256_from_repr_digest(value, resp->sha256);
	}
	return len;
}

static size_t
http_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_xfer *x = arg;
	size_t len = size * nmemb;

	if (x->http_error)
		return 0;  /* do not download an error page we will not read */
	if (x->req->sink != NULL && x->req->sink(x->req->ctx, data, len) != 0) {
		x->sink_failed = 1;
		return 0;
	}
	x->resp->body_bytes += len;
	return len;
}

/*
 * 1 when fewer than stall_bytes_per_s * stall_seconds bytes came in the
 * last stall_seconds (a sliding window: a transfer that slows down is
 * caught stall_seconds after it did, not after the next fixed window).
 */
static int
http_stalled(struct http_xfer *x, curl_off_t dlnow, int64_t now)
{
	const struct hc_http_config *cfg = x->cfg;
	int64_t window, step;
	const struct http_sample *base = NULL;
	size_t i;

	if (cfg->stall_bytes_per_s == 0 || cfg->stall_seconds <= 0)
		return 0;
	window = (int64_t)cfg->stall_seconds * 1000;
	step = window / STALL_STEPS > 0 ? window / STALL_STEPS : 1;
	if (x->stall_n == 0 ||
	    now - x->stall_ring[(x->stall_next + STALL_RING - 1) % STALL_RING].ms >= step) {
		x->stall_ring[x->stall_next].ms = now;
		x->stall_ring[x->stall_next].bytes = dlnow;
		x->stall_next = (x->stall_next + 1) % STALL_RING;
		if (x->stall_n < STALL_RING)
			x->stall_n++;
	}
	/* The newest sample at least a window old is where the window starts. */
	for (i = 1; i <= x->stall_n; i++) {
		const struct http_sample *s = &x->stall_ring[(x->stall_next + STALL_RING - i) %
		                                             STALL_RING];
		if (now - s->ms >= window) {
			base = s;
			break;
		}
	}
	if (base == NULL)
		return 0;
	return (uint64_t)(dlnow - base->bytes) * 1000 <
	       cfg->stall_bytes_per_s * (uint64_t)(now - base->ms);
}

static int
http_on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                 curl_off_t ultotal, curl_off_t ulnow)
{
	struct http_xfer *x = arg;

	(void)dltotal;
	(void)ultotal;
	(void)ulnow;
	if (x->req->cancel != NULL && *x->req->cancel) {
		x->cancelled = 1;
		return 1;
	}
	if (http_stalled(x, dlnow, hc_now_ms())) {
		x->stalled = 1;
		return 1;
	}
	return 0;
}

/* Builds "host:port:addr1,[v6addr]" for CURLOPT_RESOLVE. */
static int
http_resolve_entry(const struct hc_url *u, const struct hc_dns_result *dns,
                   char *out, size_t size)
{
	size_t used, i;

	if (hc_snprintf(out, size, "%s:%d:", u->host, u->port) != 0)
		return HC_EDATA;
	used = strlen(out);
	for (i = 0; i < dns->n; i++) {
		int v6 = strchr(dns->addrs[i], ':') != NULL;
		if (hc_snprintf(out + used, size - used, "%s%s%s%s", i > 0 ? "," : "",
		                v6 ? "[" : "", dns->addrs[i], v6 ? "]" : "") != 0)
			return HC_EDATA;
		used += strlen(out + used);
	}
	return 0;
}

static int
http_report(struct http_xfer *x, CURLcode cc, const char *curl_msg,
            const struct hc_url *u, struct hc_err *err)
{
	const struct hc_http_config *cfg = x->cfg;
	struct hc_http_response *resp = x->resp;
	curl_off_t connect_us = 0;
	long os_errno = 0;

	curl_easy_getinfo(x->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
	curl_easy_getinfo(x->curl, CURLINFO_OS_ERRNO, &os_errno);
	if (x->http_error) {
		resp->fail = HC_FAIL_HTTP_STATUS;
		return hc_err_set(err, HC_EUNAVAIL, "HTTP %ld", resp->status);
	}
	if (x->sink_failed) {
		resp->fail = HC_FAIL_IO;
		return hc_err_set(err, HC_EIO, "%s: writing the body failed", u->host);
	}
	if (x->stalled) {
		resp->fail = HC_FAIL_STALL;
		return hc_err_set(err, HC_EUNAVAIL,
		                  "%s: stalled below %" PRIu64 " bytes/s for %d s", u->host,
		                  cfg->stall_bytes_per_s, cfg->stall_seconds);
	}
	if (x->cancelled || x->aborted_by_headers) {
		resp->fail = HC_FAIL_ABORTED;
		return hc_err_set(err, HC_EUNAVAIL, "%s: aborted", u->host);
	}
	resp->fail = hc_http_classify(cc, os_errno, connect_us > 0 || x->headers_done);
	switch (resp->fail) {
	case HC_FAIL_CONNECT_REFUSED:
		return hc_err_set(err, HC_EUNAVAIL, "connect %s:%d: %s", u->host, u->port,
		                  os_errno != 0 ? strerror((int)os_errno) : curl_msg);
	case HC_FAIL_CONNECT_TIMEOUT:
		return hc_err_set(err, HC_EUNAVAIL, "connect %s:%d: timeout", u->host,
		                  u->port);
	case HC_FAIL_TLS:
		return hc_err_set(err, HC_EUNAVAIL, "TLS %s: %s", u->host, curl_msg);
	case HC_FAIL_TIMEOUT:
		return hc_err_set(err, HC_EUNAVAIL, "%s: timeout after %d ms", u->host,
		                  cfg->total_timeout_ms);
	default:
		return hc_err_set(err, HC_EUNAVAIL, "%s: %s", u->host, curl_msg);
	}
}

/* The request's header lines: If-Range for a resume, then the extra ones.
 * On error *out is freed and NULL. */
static int
http_headers(const struct hc_http_request *req, struct curl_slist **out, struct hc_err *err)
{
	char line[HTTP_HEADER_LINE_MAX];
	struct curl_slist *tmp;
	size_t i;

	*out = NULL;
	if (req->range_from > 0 && req->if_range != NULL && *req->if_range != '\0') {
		if (hc_snprintf(line, sizeof(line), "If-Range: %s", req->if_range) != 0)
			return hc_err_set(err, HC_EDATA, "If-Range value too long");
		tmp = curl_slist_append(*out, line);
		if (tmp == NULL)
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		*out = tmp;
	}
	for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
		tmp = curl_slist_append(*out, req->headers[i]);
		if (tmp == NULL) {
			curl_slist_free_all(*out);
			*out = NULL;
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		}
		*out = tmp;
	}
	return 0;
}

/* Every option of one transfer on x->curl (libcurl copies the strings). */
static int
http_options(struct http_xfer *x, const char *method, struct curl_slist *resolve,
             struct curl_slist *headers, char *curl_msg, struct hc_err *err)
{
	const struct hc_http_config *cfg = x->cfg;
	const struct hc_http_request *req = x->req;
	char range[HTTP_HEADER_LINE_MAX];

	curl_easy_setopt(x->curl, CURLOPT_URL, req->url);
	curl_easy_setopt(x->curl, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->curl, CURLOPT_ERRORBUFFER, curl_msg);
	curl_easy_setopt(x->curl, CURLOPT_USERAGENT, "hydra-agent/" HC_VERSION);
	curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->curl, CURLOPT_BUFFERSIZE, (long)HTTP_RECV_BUFFER);
	curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms :
	                        HTTP_DEFAULT_CONNECT_TIMEOUT_MS));
	if (cfg->total_timeout_ms > 0)
		curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, (long)cfg->total_timeout_ms);
	if (cfg->ca_file != NULL && *cfg->ca_file != '\0')
		curl_easy_setopt(x->curl, CURLOPT_CAINFO, cfg->ca_file);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(x->curl, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS,
		                 req->body != NULL ? (const char *)req->body : "");
		curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)(req->body != NULL ? req->body_len : 0));
	}
	if (req->range_to > 0 && req->range_from >= 0) {
		if (hc_snprintf(range, sizeof(range), "%" PRId64 "-%" PRId64, req->range_from,
		                req->range_to) != 0)
			return hc_err_set(err, HC_ESOFTWARE, "range too long");
		curl_easy_setopt(x->curl, CURLOPT_RANGE, range);
	} else if (req->range_from > 0) {
		if (hc_snprintf(range, sizeof(range), "%" PRId64 "-", req->range_from) != 0)
			return hc_err_set(err, HC_ESOFTWARE, "range too long");
		curl_easy_setopt(x->curl, CURLOPT_RANGE, range);
	}
	if (headers != NULL)
		curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(x->curl, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(x->curl, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_XFERINFOFUNCTION, http_on_progress);
	curl_easy_setopt(x->curl, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(x->curl, CURLOPT_NOPROGRESS, 0L);
	return 0;
}

int
hc_http_request(const struct hc_http_config *cfg, const struct hc_http_request *req,
                struct hc_http_response *resp, struct hc_err *err)
{
	struct http_xfer x;
	struct hc_url own = { .path_query = NULL };
	const struct hc_url *u = req->parsed;
	struct hc_dns_result dns;
	struct hc_dns_config dns_cfg;
	struct curl_slist *resolve = NULL, *headers = NULL;
	char entry[HTTP_RESOLVE_MAX];
	char curl_msg[CURL_ERROR_SIZE] = "";
	const char *method = req->method != NULL ? req->method : "GET";
	int64_t start = hc_now_ms();
	char *ip = NULL;
	CURLcode cc;
	int rc, kept = 0;

	hc_http_response_init(resp);
	memset(&x, 0, sizeof(x));
	x.cfg = cfg;
	x.req = req;
	x.resp = resp;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	    strcmp(method, "POST") != 0)
		return hc_err_set(err, HC_ESOFTWARE, "unsupported method %s", method);
	if (u == NULL) {
		rc = hc_url_parse(req->url, &own, err);
		if (rc != 0)
			return rc;
		u = &own;
	}
	dns_cfg = cfg->dns;
	dns_cfg.cancel = req->cancel;
	rc = hc_dns_resolve(&dns_cfg, u->host, &dns, &resp->fail, err);
	if (rc != 0)
		goto done;
	if (http_resolve_entry(u, &dns, entry, sizeof(entry)) != 0) {
		rc = hc_err_set(err, HC_ESOFTWARE, "resolve entry too long for %s", u->host);
		goto done;
	}
	x.curl = http_handle(cfg->reuse_connections, &kept);
	resolve = curl_slist_append(NULL, entry);
	if (x.curl == NULL || resolve == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	rc = http_headers(req, &headers, err);
	if (rc == 0)
		rc = http_options(&x, method, resolve, headers, curl_msg, err);
	if (rc != 0)
		goto done;
	cc = curl_easy_perform(x.curl);
	if (curl_easy_getinfo(x.curl, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != NULL)
		hc_strlcpy(resp->primary_ip, ip, sizeof(resp->primary_ip));
	if (cc != CURLE_OK || x.http_error) {
		if (curl_msg[0] == '\0')
			hc_strlcpy(curl_msg, curl_easy_strerror(cc), sizeof(curl_msg));
		rc = http_report(&x, cc, curl_msg, u, err);
	}
done:
	resp->elapsed_ms = hc_now_ms() - start;
	if (x.curl != NULL && kept)
		/* The pointers set for this request die with it. */
		curl_easy_reset(x.curl);
	else if (x.curl != NULL)
		curl_easy_cleanup(x.curl);
	curl_slist_free_all(resolve);
	curl_slist_free_all(headers);
	hc_url_free(&own);
	return rc;
}
