/*
 * hc: the core shared by hydra-agent, hydra-mirror and hydra-cluster-sim.
 *
 * Conventions for every function here:
 *  - a function that can fail returns 0 on success or a negative HC_E* status
 *    and, when given an err, writes a one-line human message into it;
 *  - only main() maps statuses to exit codes (hc_status_exit_code);
 *  - x_free(NULL) is a no-op.
 */
#ifndef HC_H
#define HC_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#define HC_VERSION "0.1.0"

/* ------------------------------------------------------------------ status */

enum hc_status {
	HC_OK = 0,
	HC_EUSAGE = -1,      /* bad command line */
	HC_EDATA = -2,       /* bad input data (JSON, manifest, digest mismatch) */
	HC_EUNAVAIL = -3,    /* no source or service reachable */
	HC_ECANTCREAT = -4,  /* cannot create an output file */
	HC_EIO = -5,         /* read or write error, disk full included */
	HC_ECONFIG = -6,     /* bad configuration */
	HC_ENOMEM = -7,      /* allocation failed */
	HC_ESOFTWARE = -8,   /* internal error */
	HC_ENOTFOUND = -9,   /* the thing asked for does not exist */
	HC_ENOINPUT = -10,   /* an input file the user named does not exist */
};

/* A message long enough for a URL, a path and a reason. */
#define HC_ERR_MAX 1024

struct hc_err {
	int status;
	char msg[HC_ERR_MAX];
};

/* Writes the formatted message into err (when non-NULL), records status and
 * returns it, so that a failure reads `return hc_err_set(err, HC_EIO, ...)`.
 * A message longer than HC_ERR_MAX is cut and ends with "...". */
int hc_err_set(struct hc_err *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with "prefix: ". Returns err->status. */
int hc_err_prefix(struct hc_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* sysexits.h code for a status: 0, 64, 65, 66, 69, 70, 73, 74, 78. */
int hc_status_exit_code(int status);

/* Short name of a status ("io", "config", ...). Never NULL. */
const char *hc_status_name(int status);

/* ------------------------------------------------------------------ strings */

/* snprintf that reports truncation: 0 when the whole string fit, HC_ESOFTWARE
 * when it was cut (dst still holds a terminated prefix). */
int hc_snprintf(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies src into dst (size bytes, terminated). 0, or HC_ESOFTWARE on cut. */
int hc_strlcpy(char *dst, const char *src, size_t size);

/* Duplicate or abort-free failure: returns NULL when out of memory. Caller
 * frees. hc_strdup(NULL) returns NULL. */
char *hc_strdup(const char *s);

/* Parses a size such as "1048576", "512K", "10G" (powers of 1024) into *out.
 * Returns 0 or HC_EDATA on anything else, including overflow. */
int hc_parse_size(const char *s, uint64_t *out);

/* Parses a decimal integer in [min, max]. Returns 0 or HC_EDATA. */
int hc_parse_int(const char *s, long long min, long long max, long long *out);

/*
 * Field scanners for the project's own records, read with a cursor *p that
 * each advances past what it took: exactly what the writers print, no sign
 * or space sscanf would skip, no silent overflow. Each returns 0 or HC_EDATA.
 * On error nothing is changed (neither *p nor the output).
 */
/* One or more decimal digits, at most UINT64_MAX. */
int hc_scan_u64(const char **p, uint64_t *out);
/* An optional '-' then one or more decimal digits, within int64_t. */
int hc_scan_i64(const char **p, int64_t *out);
/* One or more bytes other than control bytes, ' ' and DEL, copied into dst
 * (size bytes, terminated); a word that does not fit is an error. */
int hc_scan_word(const char **p, char *dst, size_t size);
/* Exactly the one byte c (not '\0'). */
int hc_scan_sep(const char **p, char c);

/* 1 when s is a valid DNS label (1-63 of [a-z0-9-], not starting or ending
 * with '-'; upper case accepted), else 0. */
int hc_is_dns_label(const char *s);

/* The value of one hex digit (either case), or -1. This function cannot fail. */
int hc_hex_value(int c);
/* 1 when s is exactly len lower-case hex digits (then its NUL), as ids
 * this project writes are; else 0. This function cannot fail. */
int hc_is_lower_hex(const char *s, size_t len);

/* Milliseconds from a monotonic clock. This function cannot fail. */
int64_t hc_now_ms(void);
/* Microseconds from the same clock. This function cannot fail. */
int64_t hc_now_us(void);

/* Copies len characters of src into dst lower-casing ASCII letters, then a
 * NUL (dst holds len + 1 bytes). For hex digests already checked by
 * hc_sha256_hex_valid, so that every digest compares as lower case. This
 * function cannot fail. */
void hc_hex_lower(char *dst, const char *src, size_t len);

/* Waits on cv (mu held) for at most ms milliseconds of wall-clock time;
 * returns when signalled, on timeout or spuriously, so callers re-check
 * their condition in a loop. This function cannot fail. */
void hc_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int ms);

/* ------------------------------------------------------------------ buffers */

/*
 * A growable byte buffer with a hard cap (in the spirit of curl's dynbuf).
 * Always NUL-terminated after its len bytes once anything was added, so text
 * can be read as a string. Start with hc_buf_init; release with hc_buf_free.
 */
struct hc_buf {
	char *p;       /* NULL until the first add */
	size_t len;    /* bytes held, not counting the NUL */
	size_t cap;    /* bytes allocated */
	size_t max;    /* len may never exceed this */
};

/* Sets b empty with the cap max (> 0). This function cannot fail. */
void hc_buf_init(struct hc_buf *b, size_t max);
/* Appends len bytes. 0, HC_EDATA when the result would pass the cap, or
 * HC_ENOMEM; on error b is unchanged. */
int hc_buf_add(struct hc_buf *b, const void *data, size_t len);
/* Appends formatted text; the same results as hc_buf_add. */
int hc_buf_printf(struct hc_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Empties b and keeps its memory. This function cannot fail. */
void hc_buf_reset(struct hc_buf *b);
/* The contents as a string ("" when nothing was added); invalidated by the
 * next add or free. */
const char *hc_buf_str(const struct hc_buf *b);
/* Hands the memory to the caller (caller frees; NULL when nothing was added)
 * and leaves b empty. */
char *hc_buf_take(struct hc_buf *b);
/* Releases the memory and leaves b empty. hc_buf_free on an empty b is a
 * no-op. */
void hc_buf_free(struct hc_buf *b);

/* Makes room for need elements of elem_size bytes in *items (capacity *cap),
 * doubling, never past max elements. 0, HC_EDATA past max, HC_ENOMEM
 * (overflow included); on error *items and *cap are unchanged. */
int hc_array_reserve(void **items, size_t *cap, size_t need, size_t elem_size,
                     size_t max);

/* ------------------------------------------------------------------ paths */

/* Longest relative path (bytes, NUL included) the store and its clients
 * accept: far beyond any build or tool layout, and short enough to live on
 * the stack. */
#define HC_PATH_MAX 1024

/* Decodes a percent-encoded relative path into out (size bytes) and checks
 * it stays below its root: no empty, "." or ".." segment, no leading '/',
 * no control byte, backslash or NUL, no second layer of encoding ("%2e",
 * "%2f", "%5c", "%25", "%00" after decoding), shorter than HC_PATH_MAX.
 * 0, or HC_EDATA for any of these. */
int hc_path_decode(const char *raw, size_t raw_len, char *out, size_t size);

/* Percent-encodes path for a URL: unreserved characters and '/' stay, every
 * other byte becomes %XX. 0, or HC_ESOFTWARE when out is too small. */
int hc_path_encode(const char *path, char *out, size_t size);

/* The same for one query value or path segment: '/' is encoded too. */
int hc_query_encode(const char *value, char *out, size_t size);

/* ------------------------------------------------------------------ walk */

/* One entry met by hc_walk. Pointers are valid during the callback only. */
struct hc_walk_entry {
	int dirfd;              /* the open folder holding the entry */
	const char *name;       /* the entry's name within dirfd */
	const char *rel;        /* its path from the walk's root, "a/b/c" */
	const struct stat *st;  /* from fstatat without following a link */
	int depth;              /* 0 for entries directly in the root */
	int post;               /* 1 on a folder's second visit, after its contents */
};

/* A callback returns 0 to go on, HC_WALK_SKIP on a folder's first visit to
 * leave its contents out, or a negative status to stop the walk with it. */
#define HC_WALK_SKIP 1
typedef int (*hc_walk_fn)(void *ctx, const struct hc_walk_entry *e,
                          struct hc_err *err);

/* Walks the tree below root_fd (not closed), depth first in directory order.
 * Folders are entered with O_NOFOLLOW, so a link is reported as an entry
 * and never followed. Each folder is visited before its contents and, with
 * post set, once more after them. A tree deeper than max_depth stops the
 * walk with HC_EDATA; an unreadable folder with HC_EIO. Returns 0 or the
 * first error. */
int hc_walk(int root_fd, const char *root_name, int max_depth, int post,
            hc_walk_fn fn, void *ctx, struct hc_err *err);

/* ------------------------------------------------------------------ logging */

enum hc_log_level { HC_LOG_DEBUG, HC_LOG_INFO, HC_LOG_WARN, HC_LOG_ERROR };

/* Longest line written; a longer message is cut and ends with "...". */
#define HC_LOG_LINE_MAX 4096

/* Opens the log. path may be NULL or "" for no file. The file is opened with
 * O_APPEND and every line goes out in one write(2), so several processes can
 * share it. to_stderr: also copy lines to stderr. Calling it again replaces
 * the previous setup. */
int hc_log_open(const char *path, enum hc_log_level level, int to_stderr,
                struct hc_err *err);
void hc_log_close(void);

/* Parses "debug", "info", "warn", "error". 0 or HC_EDATA. */
int hc_log_level_parse(const char *s, enum hc_log_level *out);

/* Writes `2026-11-22T18:32:00.123Z INFO module: message\n`. */
void hc_log(enum hc_log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void hc_vlog(enum hc_log_level level, const char *module, const char *fmt,
             va_list ap);

/* Formats one log line for the given wall-clock time into buf (always
 * terminated and ending in '\n'); returns its length. Used by hc_log and
 * by tests. This function cannot fail. */
size_t hc_log_format(char *buf, size_t size, int64_t epoch_ms,
                     enum hc_log_level level, const char *module,
                     const char *fmt, va_list ap);

/* Called around each line copied to stderr, by the thread that logs: with
 * before 1 just ahead of the line, with 0 just after it (a progress bar
 * erases itself, then redraws below the line). */
typedef void (*hc_log_stderr_hook)(int before, void *ctx);
/* Registers the one hook (fn NULL removes it). Waits for a line being
 * written. This function cannot fail. */
void hc_log_set_stderr_hook(hc_log_stderr_hook fn, void *ctx);

/* ------------------------------------------------------------------ config */

/*
 * A strict YAML loader driven by a table of fields. Each program describes its
 * schema once; the loader fills a struct the caller owns and rejects unknown
 * keys, duplicate keys, wrong types and out-of-range values with
 * "file:line:col: message".
 */
enum hc_cfg_type {
	HC_CFG_STRING,   /* char * (heap, freed by hc_cfg_free) */
	HC_CFG_INT,      /* long long in [min, max] */
	HC_CFG_BOOL,     /* int: true/false */
	HC_CFG_SIZE,     /* uint64_t: "10G", "512M", 123; in [min, max] */
	HC_CFG_ENUM,     /* int: index into enum_values */
	HC_CFG_STRLIST,  /* struct hc_strlist: a sequence of strings */
	HC_CFG_MAP,      /* a nested mapping described by children */
	HC_CFG_SEQ,      /* struct hc_cfg_seq: a sequence of mappings */
};

struct hc_strlist {
	char **items;
	size_t n;
};

struct hc_cfg_seq {
	void *items;     /* n elements of elem_size bytes */
	size_t n;
};

struct hc_cfg_field {
	const char *key;
	enum hc_cfg_type type;
	size_t offset;                       /* into the struct being filled */
	const char *def;                     /* default as YAML scalar text; NULL: empty/0 */
	long long min, max;                  /* INT and SIZE; STRLIST: max items (max 0: no limit) */
	const char *const *enum_values;      /* ENUM: NULL-terminated */
	const struct hc_cfg_field *children; /* MAP: offsets into the same struct;
	                                        SEQ: into each element; key == NULL ends */
	size_t elem_size;                    /* SEQ */
	int required;                        /* inside SEQ elements: must be given */
	/* STRING and each STRLIST item: returns 0 when value is acceptable, else
	 * writes why into what. NULL: any string. */
	int (*check)(const char *value, char *what, size_t what_size);
};

/* Checks for hc_cfg_field.check: an http(s) URL or empty; a DNS label or
 * empty; "ip", "ip:port" or "[ipv6]:port". */
int hc_cfg_check_url(const char *value, char *what, size_t what_size);
int hc_cfg_check_dns_label(const char *value, char *what, size_t what_size);
int hc_cfg_check_host_port(const char *value, char *what, size_t what_size);

/* Sets every field of obj to its default. 0 or HC_ENOMEM. */
int hc_cfg_defaults(const struct hc_cfg_field *schema, void *obj,
                    struct hc_err *err);

/* Loads path over the defaults already in obj. On error the message is
 * "path:line:col: what" and obj keeps what was set so far (free it with
 * hc_cfg_free). Returns 0, HC_ECONFIG, or HC_EIO when the file cannot be read. */
int hc_cfg_load_file(const struct hc_cfg_field *schema, void *obj,
                     const char *path, struct hc_err *err);

/* The same from a buffer; name is used in messages in place of a path. */
int hc_cfg_load_buffer(const struct hc_cfg_field *schema, void *obj,
                       const char *name, const char *buf, size_t len,
                       struct hc_err *err);

/* Writes obj as YAML (the effective config) to fd. 0 or HC_EIO. */
int hc_cfg_dump(const struct hc_cfg_field *schema, const void *obj, int fd,
                struct hc_err *err);

/* Frees every string, list and sequence the loader allocated in obj. */
void hc_cfg_free(const struct hc_cfg_field *schema, void *obj);

/* ------------------------------------------------------------------ json */

struct json_object;

/* Field getters that name the field in their error: "missing field 'district'",
 * "field 'vram_mb': expected integer". Strings returned point into obj and
 * are invalidated when obj is freed. Each returns 0 or HC_EDATA. */
int hc_json_get_string(struct json_object *obj, const char *field,
                       const char **out, struct hc_err *err);
int hc_json_get_int(struct json_object *obj, const char *field,
                    long long *out, struct hc_err *err);
int hc_json_get_bool(struct json_object *obj, const char *field, int *out,
                     struct hc_err *err);
int hc_json_get_array(struct json_object *obj, const char *field,
                      struct json_object **out, struct hc_err *err);
/* Optional variants: absent or null leaves *out unchanged and returns 0. */
int hc_json_opt_string(struct json_object *obj, const char *field,
                       const char **out, struct hc_err *err);

/* What v is, for "expected a string, got null": "null", "a boolean", "a
 * number", "an integer", "an object", "an array" or "a string". */
const char *hc_json_type_label(struct json_object *v);

/* Parses len bytes of JSON text into *out (caller puts with json_object_put).
 * HC_EDATA with json-c's reason and offset on bad input. */
int hc_json_parse(const char *text, size_t len, struct json_object **out,
                  struct hc_err *err);

/* ------------------------------------------------------------------ sha256 */

#define HC_SHA256_LEN 32
#define HC_SHA256_HEX_LEN 64

struct hc_sha256; /* opaque streaming SHA-256 on OpenSSL EVP */

/* Returns a new context or NULL when out of memory. Caller frees. */
struct hc_sha256 *hc_sha256_new(void);
void hc_sha256_free(struct hc_sha256 *h);
/* Restarts the digest from zero. 0 or HC_ESOFTWARE. */
int hc_sha256_reset(struct hc_sha256 *h);
int hc_sha256_update(struct hc_sha256 *h, const void *data, size_t len);
/* Writes 64 lower-case hex digits and a NUL into hex (65 bytes). The context
 * can go on receiving data afterwards: finishing works on a copy. */
int hc_sha256_hex(struct hc_sha256 *h, char hex[HC_SHA256_HEX_LEN + 1]);
/* Hashes the first limit bytes of fd from offset 0 (limit < 0: all) into h. */
int hc_sha256_fd(struct hc_sha256 *h, int fd, off_t limit, struct hc_err *err);
/* Hashes a whole file into hex. */
int hc_sha256_file(const char *path, char hex[HC_SHA256_HEX_LEN + 1],
                   struct hc_err *err);
/* 1 when s is 64 hex digits (either case). */
int hc_sha256_hex_valid(const char *s);
/* Decodes RFC 9530 "sha-256=:BASE64:" (among other digests) into hex.
 * 0, or HC_EDATA when no sha-256 member is present or it is malformed. */
int hc_sha256_from_repr_digest(const char *value, char hex[HC_SHA256_HEX_LEN + 1]);
/* Encodes hex as RFC 9530 "sha-256=:BASE64:" into out. 0 or HC_EDATA. */
int hc_sha256_to_repr_digest(const char *hex, char *out, size_t size);

/* ------------------------------------------------------------------ files */

/* Writes len bytes to path atomically: a temp file in the same directory,
 * fsync, rename over path, fsync of the directory. On error path is
 * unchanged and no temp file is left. mode is the new file's mode. */
int hc_atomic_write(const char *path, const void *data, size_t len,
                    mode_t mode, struct hc_err *err);

/* fsyncs the directory holding path (or path itself when it is a dir). */
int hc_fsync_dir(const char *path, struct hc_err *err);

/* hc_atomic_write for the entry name of the open folder dirfd: the temp
 * file name.tmp.PID.N is made beside it with O_EXCL and O_NOFOLLOW, renamed
 * over name with renameat (a link there is replaced, not followed), then
 * dirfd is fsynced. On error name is unchanged and no temp file is left.
 * 0, HC_ECANTCREAT (the temp file) or HC_EIO. */
int hc_atomic_write_at(int dirfd, const char *name, const void *data, size_t len,
                       mode_t mode, struct hc_err *err);

/* Removes the temp files of hc_atomic_write_at(dirfd, name) that a killed
 * process left ("name.tmp.*") and returns how many. Only for a caller
 * holding the lock that makes it the one writer of name, or it would remove
 * a live writer's file. Best effort: what cannot be removed is left for the
 * next run. This function cannot fail. */
int hc_atomic_sweep_at(int dirfd, const char *name);

/* Reads a whole file of at most max bytes into *out (NUL added, caller frees).
 * HC_ENOTFOUND when it does not exist, HC_EDATA when larger than max. */
int hc_read_file(const char *path, size_t max, char **out, size_t *len,
                 struct hc_err *err);

/* mkdir -p with mode. 0 or HC_EIO. */
int hc_mkdir_p(const char *path, mode_t mode, struct hc_err *err);

/* Writes all of buf to fd, retrying on EINTR and short writes. 0 or HC_EIO
 * (errno kept). */
int hc_write_all(int fd, const void *buf, size_t len);

/* ------------------------------------------------------------------ url */

#define HC_HOST_MAX 256

struct hc_url {
	char scheme[8];           /* "http" or "https" */
	char host[HC_HOST_MAX];   /* lower case, without IPv6 brackets */
	int port;                 /* explicit or the scheme's default */
	char *path_query;         /* "/a/b?x=1", never empty; caller frees via hc_url_free */
};

/* Parses an absolute http(s) URL. 0 or HC_EDATA naming what is wrong. */
int hc_url_parse(const char *text, struct hc_url *out, struct hc_err *err);
void hc_url_free(struct hc_url *u);

/* ------------------------------------------------------------------ failures */

/* Why a request did not give the caller what it asked for. */
enum hc_fail {
	HC_FAIL_NONE = 0,
	HC_FAIL_DNS_NXDOMAIN,
	HC_FAIL_DNS_TIMEOUT,
	HC_FAIL_DNS_ERROR,
	HC_FAIL_CONNECT_REFUSED,
	HC_FAIL_CONNECT_TIMEOUT,
	HC_FAIL_TLS,
	HC_FAIL_TIMEOUT,
	HC_FAIL_STALL,
	HC_FAIL_HTTP_STATUS,
	HC_FAIL_IO,
	HC_FAIL_ABORTED,
};

/* ------------------------------------------------------------------ dns */

#define HC_DNS_MAX_SERVERS 8
#define HC_DNS_MAX_ADDRS 16

struct hc_dns_config {
	const char *servers; /* "127.0.0.1:5353,[::1]:53" or NULL/"" for resolv.conf */
	int timeout_ms;      /* whole lookup budget */
	volatile int *cancel;/* non-zero from elsewhere ends the lookup (a timeout) */
};

struct hc_dns_result {
	size_t n;
	char addrs[HC_DNS_MAX_ADDRS][64]; /* numeric, IPv6 without brackets */
};

/* Resolves host (A and AAAA) with c-ares. An IP literal is returned as is.
 * Errors: HC_EUNAVAIL with *fail set to one of HC_FAIL_DNS_* and a message
 * "lookup HOST: no such host" or "lookup HOST: timeout". */
int hc_dns_resolve(const struct hc_dns_config *cfg, const char *host,
                   struct hc_dns_result *out, enum hc_fail *fail,
                   struct hc_err *err);

/* ------------------------------------------------------------------ http */

/* "dns_nxdomain", "connect_refused", ... Never NULL. */
const char *hc_fail_name(enum hc_fail f);

/* Maps a finished libcurl transfer to a failure class. curl_code is a
 * CURLcode, os_errno CURLINFO_OS_ERRNO, connected whether a connection was
 * established. Pure; used by hc_http_request and unit tests. */
enum hc_fail hc_http_classify(int curl_code, long os_errno, int connected);

struct hc_http_config {
	struct hc_dns_config dns;
	const char *ca_file;       /* NULL or "": system store */
	int connect_timeout_ms;    /* 0: 10000 */
	int total_timeout_ms;      /* 0: none */
	uint64_t stall_bytes_per_s;/* 0: no stall check */
	int stall_seconds;
	int reuse_connections;     /* keep this thread's connections for its next
	                              request; released at thread exit and, for
	                              the calling thread, by hc_http_global_cleanup */
};

/* Called for each chunk of body. Return 0 to go on, non-zero to abort the
 * transfer (the result is HC_FAIL_ABORTED, or HC_FAIL_IO when the callback
 * set *io_failed). */
typedef int (*hc_http_sink)(void *ctx, const void *data, size_t len);

/* Called once when the response headers are complete, before any body.
 * Return non-zero to abort. */
struct hc_http_response;
typedef int (*hc_http_on_headers)(void *ctx, const struct hc_http_response *r);

struct hc_http_request {
	const char *method;        /* "GET" (default), "HEAD", or "POST" */
	const void *body;          /* POST: body_len bytes sent (NULL: empty); the
	                              caller names its type in headers */
	size_t body_len;
	const char *url;
	const struct hc_url *parsed; /* NULL, or url already parsed: not parsed again */
	int64_t range_from;        /* >0: Range: bytes=N- */
	int64_t range_to;          /* >0: with range_from >= 0, Range: bytes=FROM-TO */
	const char *if_range;      /* with range_from: If-Range value (an ETag) */
	const char *const *headers;/* extra "Name: value" lines, NULL-terminated */
	hc_http_sink sink;         /* NULL: body discarded */
	hc_http_on_headers on_headers;
	void *ctx;
	volatile int *cancel;      /* set non-zero from elsewhere to abort */
	int fail_on_http_error;    /* status >= 400 is HC_FAIL_HTTP_STATUS */
};

#define HC_HTTP_HEADER_VALUE_MAX 256
/* A redirect target: release hosts sign their URLs, often past 1 KiB. */
#define HC_HTTP_LOCATION_MAX 4096

struct hc_http_response {
	long status;
	int64_t content_length;    /* -1 when absent */
	int64_t range_start;       /* from Content-Range, -1 when absent */
	int64_t range_total;       /* total from Content-Range (also on a 416),
	                              -1 when absent */
	char etag[HC_HTTP_HEADER_VALUE_MAX];
	char sha256[HC_SHA256_HEX_LEN + 1]; /* X-File-SHA256 or Repr-Digest */
	char location[HC_HTTP_LOCATION_MAX]; /* Location, "" when absent or too long */
	char retry_after[HC_HTTP_HEADER_VALUE_MAX]; /* Retry-After, else X-RateLimit-Reset */
	int accept_ranges;         /* Accept-Ranges: bytes was sent */
	char primary_ip[64];
	uint64_t body_bytes;       /* body bytes handed to the sink */
	int64_t elapsed_ms;
	enum hc_fail fail;
};

/*
 * Runs one request: resolves the URL's host with c-ares, pins the answer with
 * CURLOPT_RESOLVE (TLS still checks the real name), applies the limits of
 * cfg, streams the body to req->sink. Returns 0 when the transfer finished
 * (with fail_on_http_error, only for status < 400), else HC_EUNAVAIL (network
 * and HTTP failures) or HC_EIO (the sink failed); resp->fail says why and err
 * carries a message such as "lookup bxl1.example: no such host",
 * "connect 127.0.0.1:8443: connection refused", "HTTP 404".
 */
int hc_http_request(const struct hc_http_config *cfg,
                    const struct hc_http_request *req,
                    struct hc_http_response *resp, struct hc_err *err);

/* Sets every field of resp to "nothing seen yet". This function cannot fail. */
void hc_http_response_init(struct hc_http_response *resp);

/* curl_global_init and ares_library_init: once per process, before threads
 * start and before any hc_dns_resolve or hc_http_request. 0 or HC_ESOFTWARE. */
int hc_http_global_init(struct hc_err *err);
void hc_http_global_cleanup(void);

/* ------------------------------------------------------------------ net */

/* Parses a server listen address: "127.0.0.1:8080", "[::1]:8080", or
 * ":8080" (every IPv4 address). Port 0 asks the kernel for a free one.
 * 0 or HC_EDATA naming what is wrong. */
int hc_parse_listen(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                    struct hc_err *err);
/* A port free on the IPv4 address addr4 for both TCP and UDP right now, for
 * tests and benchmarks that start servers (nothing holds it: a race with
 * another process is the caller's to retry). 0, HC_EDATA for a bad address,
 * HC_EUNAVAIL when none was found. */
int hc_free_port(const char *addr4, int *port, struct hc_err *err);
/* Writes ss as "127.0.0.1:8080" or "[::1]:8080" into out; port >= 0
 * replaces the port in ss (the one actually bound). 0, HC_EDATA for another
 * family, HC_ESOFTWARE when out is too small. */
int hc_sockaddr_format(const struct sockaddr_storage *ss, int port, char *out,
                       size_t size);
/* Fills ss and *len from an IPv4 or IPv6 literal ("127.0.0.1", "::1", no
 * brackets) and a port. 0, or HC_EDATA when ip is not an IP literal or the
 * port is out of range; ss is zeroed either way. */
int hc_sockaddr_from_ip(const char *ip, int port, struct sockaddr_storage *ss,
                        socklen_t *len);

/* --------------------------------------------------------------- notify */

/* Tells systemd the service state ("READY=1", "RELOADING=1", "STOPPING=1",
 * "STATUS=..."), newline-separated assignments as sd_notify(3) takes them.
 * A no-op outside a Type=notify unit; never fails. */
void hc_notify(const char *state);

#endif
