/*
 * Private to mirror/: what server.c and fill.c share. Not an interface;
 * other modules include mirror/mirror.h only.
 */
#ifndef MIRROR_INTERNAL_H
#define MIRROR_INTERNAL_H

#include <limits.h>
#include <microhttpd.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>

#include "mirror/mirror.h"

/* Status codes counted one by one in /metrics. */
#define MIR_CODES_MAX 600

enum mir_put_state {
	MIR_PUT_NONE = 0,   /* not a PUT, or not started */
	MIR_PUT_WRITING,    /* body going to the temp file */
	MIR_PUT_FULL,       /* disk full: the rest of the body is discarded, 507 */
	MIR_PUT_FAILED,     /* other write error: 500 */
	MIR_PUT_DONE,
};

/* One request, made when its URI arrives, freed when it completes. */
struct mir_req {
	char *uri;                      /* raw, still percent-encoded */
	int seen;                       /* the handler has been called once */
	int cork_fd;                    /* socket corked for this response, or -1 */
	unsigned status;
	uint64_t body_len;              /* counted as served when it completes */
	struct mir_entry *pin;          /* stored file being sent */
	enum mir_put_state put_state;
	int put_fd;
	char put_tmp[PATH_MAX];
	char put_path[MIR_PATH_MAX];
	char put_expect[HC_SHA256_HEX_LEN + 1];
	struct hc_sha256 *put_sha;
	uint64_t put_bytes;
};

struct mir_fill;
struct mir_tools;

struct mir_server {
	const struct mir_config *cfg;
	struct MHD_Daemon *d;
	struct mir_store *store;
	unsigned char token_digest[SHA256_DIGEST_LENGTH];
	int has_token;
	int tls;
	char *tls_cert, *tls_key;
	atomic_int stopping;

	/* fills (fill.c) */
	pthread_mutex_t fill_mu;
	pthread_cond_t fill_cv;         /* a fill thread ended */
	struct mir_fill *fills;
	int fill_threads;
	char *origin_base;              /* origin_url without a trailing '/' */
	struct hc_http_config http;

	/* egress token bucket */
	pthread_mutex_t bucket_mu;
	double tokens;
	int64_t bucket_ms;

	/* index writer */
	pthread_t flusher;
	int flusher_started;
	pthread_mutex_t flush_mu;
	pthread_cond_t flush_cv;
	int flush_stop;

	/* metrics */
	atomic_uint_least64_t codes[MIR_CODES_MAX];
	atomic_uint_least64_t hits, misses, bytes_served, origin_bytes;
	atomic_uint_least64_t fills_started, fills_failed;
	atomic_int fills_in_flight;

	/* the tools tree (tools.c) */
	struct mir_tools *tools;
};

/* server.c */
enum MHD_Result mir_srv_queue(struct mir_server *s, struct MHD_Connection *c,
                              struct mir_req *r, unsigned status,
                              struct MHD_Response *resp);
enum MHD_Result mir_srv_error(struct mir_server *s, struct MHD_Connection *c,
                              struct mir_req *r, unsigned status, const char *why);
enum MHD_Result mir_srv_416(struct mir_server *s, struct MHD_Connection *c,
                            struct mir_req *r, uint64_t size);
void mir_srv_file_headers(struct MHD_Response *resp, const char *sha256,
                          const char *etag, int64_t mtime_s);
void mir_srv_content_range(struct MHD_Response *resp, uint64_t start, uint64_t len,
                           uint64_t size);
void mir_srv_etag(const char *sha256, char *out, size_t size);
enum mir_range mir_srv_range(struct MHD_Connection *c, const char *etag,
                             const char *last_modified, uint64_t size,
                             uint64_t *start, uint64_t *len);
/* Answers GET or HEAD from a stored file; takes its fd and its pin. */
enum MHD_Result mir_srv_send_file(struct mir_server *s, struct MHD_Connection *c,
                                  struct mir_req *r, struct mir_file *f, int head);
ssize_t mir_srv_no_body(void *cls, uint64_t pos, char *buf, size_t max);
/* Blocks until the egress bucket grants up to want bytes; returns the grant. */
size_t mir_srv_egress_take(struct mir_server *s, size_t want);

/* fill.c */
int mir_fill_init(struct mir_server *s, struct hc_err *err);
enum MHD_Result mir_fill_get(struct mir_server *s, struct MHD_Connection *c,
                             struct mir_req *r, const char *path);
enum MHD_Result mir_fill_head(struct mir_server *s, struct MHD_Connection *c,
                              struct mir_req *r, const char *path);
/* Aborts every fill and wakes every reader (shutdown). */
void mir_fill_cancel_all(struct mir_server *s);
/* Waits until every fill thread has ended. */
void mir_fill_wait_all(struct mir_server *s);
void mir_fill_cleanup(struct mir_server *s);

/* tools.c: the tools tree of delta sync. Start after the store is open,
 * stop before it closes. */
int mir_tools_start(struct mir_server *s, struct hc_err *err);
void mir_tools_stop(struct mir_server *s);
/* Counts a request for the store path (only "tools/ID/..." paths count). */
void mir_tools_count(struct mir_server *s, const char *path, int hit);
/* Per-tool counters as Prometheus text. Caller frees; NULL when out of memory. */
char *mir_tools_metrics(struct mir_server *s);
/* 1 when path is "tools/ID/VERSION", a whole version: anything but a
 * regular file there (a file is deleted as a file). */
int mir_tools_is_version(struct mir_server *s, const char *path);
/* The admin DELETE of a whole version (authorization already checked). */
enum MHD_Result mir_tools_delete_version(struct mir_server *s, struct MHD_Connection *c,
                                         struct mir_req *r, const char *path);

#endif
