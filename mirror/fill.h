/*
 * Private to mirror/: peer fills (fill.c), as the server uses them. A fill
 * sees the store, the response layer and its own settings, nothing else of
 * the server.
 */
#ifndef MIRROR_FILL_H
#define MIRROR_FILL_H

#include "mirror/respond.h"

struct mir_fills;

/* What the fills are told at start; strings are copied. */
struct mir_fills_config {
	const char *origin_url;         /* misses are filled from here */
	const char *ca_file;            /* CA bundle for an https origin, NULL or "": system */
	int require_origin_digest;      /* refuse a file the origin sends no digest for */
};

/* Counters for health and /metrics. */
/* Why fills failed, counted apart in /metrics. */
enum mir_fill_fail {
	MIR_FILL_FAIL_UNREACHABLE = 0,  /* no HTTP answer: DNS, connect, TLS, timeout */
	MIR_FILL_FAIL_STATUS,           /* the origin answered an error status */
	MIR_FILL_FAIL_SHORT,            /* the body ended early or stalled */
	MIR_FILL_FAIL_DIGEST,           /* the bytes do not match the origin's digest */
	MIR_FILL_FAIL_OTHER,            /* the store or the mirror itself */
	MIR_FILL_FAIL_COUNT,
};
extern const char *const mir_fill_fail_names[MIR_FILL_FAIL_COUNT];

/* The last error that kept a fill from reaching the origin, as logged. */
#define MIR_ORIGIN_ERROR_MAX 256

struct mir_fills_stats {
	uint64_t started, failed, in_flight, origin_bytes;
	uint64_t failed_by[MIR_FILL_FAIL_COUNT];
	int pinned_full;                /* the last fill found the store full of pinned files */
	int origin_reachable;           /* the last answer, fill or probe, came */
	char origin_error[MIR_ORIGIN_ERROR_MAX]; /* why not, "" when reachable */
};

/* Sets up fills against the origin; store and rs must outlive them.
 * 0 or HC_ENOMEM. Free with mir_fills_free. */
int mir_fills_new(const struct mir_fills_config *cfg, struct mir_store *store,
                  struct mir_resp *rs, struct mir_fills **out, struct hc_err *err);
/* Answers a GET for a path not in the store: from the store if a fill just
 * made it, else from a fill (joined or started). */
enum MHD_Result mir_fills_get(struct mir_fills *fl, struct MHD_Connection *c,
                              struct mir_req *r, const char *path);
/* Answers a HEAD for a path not in the store, from a fill or the origin. */
enum MHD_Result mir_fills_head(struct mir_fills *fl, struct MHD_Connection *c,
                               struct mir_req *r, const char *path);
/* Fills path with no client: joins the fill in progress or starts one,
 * and waits for its end. A fill it starts makes room only by evicting
 * files idle for more than idle_ms (mir_store_reserve_idle); one it joins
 * keeps its own rule. 0 once path is in the store (also when it already
 * was), HC_ENOTFOUND when the origin has no such file, HC_EIO when the
 * store cannot hold it (the fill goes on for the clients reading it, not
 * for this caller), HC_EUNAVAIL when the fill failed or the server is
 * stopping. The caller is a pre-warm: it does not count as a reader. */
int mir_fills_prefetch(struct mir_fills *fl, const char *path, int64_t idle_ms,
                       struct hc_err *err);
/* Aborts every fill and wakes every reader (shutdown). */
void mir_fills_cancel_all(struct mir_fills *fl);
/* Waits until every fill thread has ended. */
void mir_fills_wait_all(struct mir_fills *fl);
void mir_fills_stats(struct mir_fills *fl, struct mir_fills_stats *out);
/* While the origin is marked unreachable, asks it for its base URL (HEAD,
 * a short timeout) and marks it reachable on any HTTP answer, so health
 * recovers without waiting for a client's miss. Blocks up to a few seconds;
 * a no-op when reachable or fl is NULL. */
void mir_fills_probe(struct mir_fills *fl);
/* Call after mir_fills_wait_all. NULL is a no-op. */
void mir_fills_free(struct mir_fills *fl);

#endif
