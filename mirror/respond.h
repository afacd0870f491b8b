/*
 * Private to mirror/: the response layer every request handler uses
 * (server.c, fill.c, tools.c). It knows how a file response is made
 * (headers, ranges, digests, ETags), queues responses while counting their
 * status codes, and paces bodies through the egress token bucket. It knows
 * nothing of routes, fills or the tools tree, so the handlers above it never
 * call each other.
 */
#ifndef MIRROR_RESPOND_H
#define MIRROR_RESPOND_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "mirror/mirror.h"
#include "mirror/park.h"

/* Status codes counted one by one in /metrics. */
#define MIR_CODES_MAX 600
/* Room for a quoted digest or a weak size-mtime ETag. */
#define MIR_ETAG_MAX (HC_SHA256_HEX_LEN + 8)

/* What a response needs from the server, shared by every connection. */
struct mir_resp {
	atomic_uint_least64_t egress_rate; /* bytes per second, 0: unlimited; reloadable */
	int tls;                        /* no sendfile, no corking */
	atomic_int stopping;            /* paced and waiting bodies end early */
	atomic_int draining;            /* responses close their connection */
	pthread_mutex_t bucket_mu;      /* the egress token bucket */
	double tokens;
	int64_t bucket_ms;
	atomic_uint_least64_t codes[MIR_CODES_MAX];
	struct mir_park *park;          /* where paced and waiting bodies park */
};

/* One request, as far as its response goes. The server makes it when the
 * URI arrives and frees it when the request completes. */
struct mir_req {
	int cork_fd;                    /* socket corked for this response, or -1 */
	unsigned status;
	uint64_t body_len;              /* counted as served when it completes */
	struct mir_entry *pin;          /* stored file being sent, released at the end */
	/* Set while a park worker prepares the answer: mir_resp_queue keeps
	 * the response here, and the access handler queues it when libmicrohttpd
	 * calls it again after the resume (a worker may not queue it). */
	int deferring;
	struct MHD_Response *held;
	unsigned held_status;
};

/* A file to answer with, whatever it came from. sha256 is the origin's
 * verified digest or "" when the origin gave none (never one the mirror
 * computed itself): such a file goes out without digest headers and with a
 * weak ETag made of its size and mtime. */
struct mir_resp_file {
	uint64_t size;
	int64_t mtime_s;                /* 0: unknown */
	const char *sha256;
};

void mir_resp_init(struct mir_resp *rs, uint64_t egress_rate, int tls);
void mir_resp_destroy(struct mir_resp *rs);
/* Ends paced and waiting bodies (shutdown). */
void mir_resp_stop(struct mir_resp *rs);
int mir_resp_stopping(struct mir_resp *rs);
/* From now on every response closes its connection after it (a drain). */
void mir_resp_drain(struct mir_resp *rs);
/* Paces bodies that start from now on at rate bytes per second (0: none). */
void mir_resp_set_rate(struct mir_resp *rs, uint64_t rate);

/* Queues resp (destroyed here; NULL gives MHD_NO) and counts its status. */
enum MHD_Result mir_resp_queue(struct mir_resp *rs, struct MHD_Connection *c,
                               struct mir_req *r, unsigned status,
                               struct MHD_Response *resp);
/* A short JSON error body {"error": why}; why holds no quote or backslash. */
enum MHD_Result mir_resp_error(struct mir_resp *rs, struct MHD_Connection *c,
                               struct mir_req *r, unsigned status, const char *why);
/* A JSON body with extra headers (name, value pairs ending at NULL). */
enum MHD_Result mir_resp_json(struct mir_resp *rs, struct MHD_Connection *c,
                              struct mir_req *r, unsigned status, const char *body,
                              const char *const *headers);

/* The ETag of f into out (MIR_ETAG_MAX): the quoted digest, else a weak
 * one from size and mtime. */
void mir_resp_etag(const struct mir_resp_file *f, char *out, size_t size);
/* Which bytes of f the request asks for (Range, If-Range): FULL gives
 * 0 and the size. */
enum mir_range mir_resp_range(struct MHD_Connection *c, const struct mir_resp_file *f,
                              uint64_t *start, uint64_t *len);
/* Queues the answer for range k of f: 416, or 200/206 with the file headers
 * and body (len bytes from start; taken), or no body when body is NULL
 * (HEAD: only the length is sent). */
enum MHD_Result mir_resp_file_send(struct mir_resp *rs, struct MHD_Connection *c,
                                   struct mir_req *r, const struct mir_resp_file *f,
                                   enum mir_range k, uint64_t start, uint64_t len,
                                   struct MHD_Response *body);
/* 416 with Content-Range: bytes *\/size. */
enum MHD_Result mir_resp_416(struct mir_resp *rs, struct MHD_Connection *c,
                             struct mir_req *r, uint64_t size);
/* Answers GET or HEAD from a stored file; takes its fd and its pin. */
enum MHD_Result mir_resp_stored(struct mir_resp *rs, struct MHD_Connection *c,
                                struct mir_req *r, struct mir_file *f, int head);
/* The same for a hit whose last verification is too old: the whole file is
 * hashed while the asked bytes are sent, and the last byte is held back
 * until it matches sf's digest; on a mismatch st evicts it and the
 * connection is aborted before its Content-Length (HEAD, 416 and empty
 * bodies are answered as mir_resp_stored does). */
enum MHD_Result mir_resp_stored_checked(struct mir_resp *rs, struct mir_store *st,
                                        struct MHD_Connection *c, struct mir_req *r,
                                        struct mir_file *f, int head);
/* A body block read from fd at off, for a content reader: the bytes read
 * (up to n), or MHD_CONTENT_READER_END_WITH_ERROR. */
ssize_t mir_resp_read_at(int fd, char *buf, size_t n, uint64_t off);
/* Up to want bytes the egress bucket grants a body of connection c now
 * (want itself when unpaced or stopping); 0 when none: c was parked on w
 * until the bucket has them, and the content reader returns 0. */
size_t mir_resp_pace(struct mir_resp *rs, struct MHD_Connection *c, struct mir_park_wait *w,
                     size_t want);
/* Queues what a park worker kept in r (mir_req.deferring) on c: the
 * handler's answer at its call after the resume. */
enum MHD_Result mir_resp_queue_held(struct MHD_Connection *c, struct mir_req *r);

#endif
