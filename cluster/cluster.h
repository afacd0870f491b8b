/*
 * cluster: the fleet model, the body-selection partition policy (docs/architecture.md
 * section 9) and the HTTP API hydra-cluster-sim serves them with.
 *
 * Ownership: a struct clu_fleet owns its nodes and their strings. Pointers to
 * nodes (clu_fleet_node, clu_fleet_find, struct clu_pick) stay valid until the
 * next clu_fleet_move or clu_fleet_set_state on that node, or clu_fleet_free.
 */
#ifndef CLUSTER_H
#define CLUSTER_H

#include <stddef.h>

#include "common/hc.h"

struct json_object;

/* ------------------------------------------------------------------ fleet */

enum clu_role { CLU_ROLE_HEAD, CLU_ROLE_BODY };
enum clu_status { CLU_STATUS_ONLINE, CLU_STATUS_OFFLINE };

/* One entry of the fleet file's `nodes:` list. The types are those the
 * strict loader fills: strings, int for enums and booleans, long long. */
struct clu_node {
	char *id;          /* "node-74f9fbf2", unique in the fleet */
	char *name;        /* "boom-pickle-38" */
	int role;          /* enum clu_role */
	char *district;    /* DNS label: "bxl1", "bxl1-test" */
	char *venue;       /* DNS label: "rupelmonde" */
	char *owner;       /* organisation: "visit.flanders" */
	char *lan_ip;      /* numeric IPv4 or IPv6 */
	char *wg_ip;       /* numeric IPv4 or IPv6, WireGuard */
	int status;        /* enum clu_status */
	int drained;       /* bool: kept out of selection by an operator */
	int idle;          /* bool: no stream running */
	long long vram_mb;
};

struct clu_fleet; /* opaque */

/* Loads a fleet file with the strict loader: unknown, missing, duplicate and
 * mistyped keys, bad enum values, malformed ids and IPs and duplicate node
 * ids are errors "path:line:col: what". *out is set only on success; caller
 * frees with clu_fleet_free. 0, HC_ECONFIG, HC_ENOMEM. */
int clu_fleet_load_file(const char *path, struct clu_fleet **out,
                        struct hc_err *err);
/* The same from a buffer; name stands for the path in messages. */
int clu_fleet_load_buffer(const char *name, const char *buf, size_t len,
                          struct clu_fleet **out, struct hc_err *err);
void clu_fleet_free(struct clu_fleet *fleet);

size_t clu_fleet_count(const struct clu_fleet *fleet);
/* The i-th node in file order (i < clu_fleet_count). */
const struct clu_node *clu_fleet_node(const struct clu_fleet *fleet, size_t i);
/* The node with this id, or NULL. */
const struct clu_node *clu_fleet_find(const struct clu_fleet *fleet,
                                      const char *id);

/* Moves node id to district and venue (venue NULL: keep the current one).
 * HC_ENOTFOUND for an unknown id, HC_EDATA for a value that is not a DNS
 * label, HC_ENOMEM. On error nothing is changed. */
int clu_fleet_move(struct clu_fleet *fleet, const char *id, const char *district,
                   const char *venue, struct hc_err *err);

/* Sets status (enum clu_status, or -1 to keep) and drained (0, 1, or -1 to
 * keep) of node id. HC_ENOTFOUND, HC_EDATA. On error nothing is changed. */
int clu_fleet_set_state(struct clu_fleet *fleet, const char *id, int status,
                        int drained, struct hc_err *err);

/* The fleet as YAML that clu_fleet_load_buffer reads back to the same fleet
 * (comments of the original file are not kept). Caller frees *out. */
int clu_fleet_to_yaml(const struct clu_fleet *fleet, char **out, size_t *len,
                      struct hc_err *err);
/* Writes clu_fleet_to_yaml to path with hc_atomic_write (mode 0644). */
int clu_fleet_save(const struct clu_fleet *fleet, const char *path,
                   struct hc_err *err);

/* Value rules shared by the fleet file and the HTTP API. Each returns 0 when
 * value is acceptable, else writes why into what (the hc_cfg_field.check
 * contract). */
int clu_check_node_id(const char *value, char *what, size_t what_size);
int clu_check_place(const char *value, char *what, size_t what_size); /* district, venue */

const char *clu_role_name(int role);     /* "head", "body" */
const char *clu_status_name(int status); /* "online", "offline" */
/* "online" or "offline" into *out. 0 or HC_EDATA. */
int clu_status_parse(const char *text, int *out);

/* ------------------------------------------------------------------ latency */

/* Body selection Phase 2 (issue 20): round trips heads measured to bodies. */

/* A report is one sample per body and transport a head probed: at most
 * DISC_MAX_BODIES (64) bodies on two transports, with room to spare. */
#define CLU_LATENCY_SAMPLES_MAX 256
/* A TCP connect round trip above a minute is no measurement. */
#define CLU_RTT_MAX_MS 60000
/* Estimates this close rank as equal, so the server's order (idle, VRAM)
 * decides among them: below the jitter of a connect. */
#define CLU_RTT_TIE_MS 2

enum clu_transport { CLU_TRANSPORT_LAN, CLU_TRANSPORT_WG };

struct clu_rtt_sample {
	const char *node_id;  /* a body of the fleet; borrowed */
	int transport;        /* enum clu_transport */
	double rtt_ms;
};

struct clu_latency; /* opaque: the estimates per (head, body) */

int clu_latency_new(struct clu_latency **out, struct hc_err *err);
void clu_latency_free(struct clu_latency *lat);
/* Parses the "samples" array of a report against fleet into out (room for
 * CLU_LATENCY_SAMPLES_MAX); node_id then points into the fleet. HC_EDATA
 * naming the field ("samples[2].rtt_ms: ...") for a missing or mistyped
 * field, an unknown body, a transport other than lan or wg, a round trip
 * outside 0..CLU_RTT_MAX_MS, none or too many samples. */
int clu_latency_parse(const struct clu_fleet *fleet, struct json_object *samples,
                      struct clu_rtt_sample *out, size_t *n, struct hc_err *err);
/* Folds a parsed report of head_id into the estimates at now_ms (hc_now_ms):
 * per body the lowest of its samples, weighed into a decaying estimate.
 * head_id and the samples' ids must be the fleet's strings. 0 or HC_ENOMEM
 * (then nothing new is stored). */
int clu_latency_report(struct clu_latency *lat, const char *head_id,
                       const struct clu_rtt_sample *s, size_t n, int64_t now_ms,
                       struct hc_err *err);
/* The estimate of (head, body) at now_ms: 0 with *rtt_ms, HC_ENOTFOUND
 * when there is none or it went stale. lat may be NULL (none). */
int clu_latency_get(const struct clu_latency *lat, const char *head_id,
                    const char *body_id, int64_t now_ms, double *rtt_ms);

/* ------------------------------------------------------------------ policy */

/* GET /api/v1/bodies/eligible. Without head_id, district and venue are
 * required and select strictly. With head_id, the head's own district, venue
 * and owner from the fleet decide; district and venue are not used. */
struct clu_query {
	const char *district;
	const char *venue;
	const char *head_id;   /* NULL: strict venue */
	/* Bodies the head could not reach: left out of every partition, so a
	 * quickroute that is all unreachable gives way to cross-venue. */
	const char *const *exclude;
	size_t nexclude;
	/* Phase 2: the heads' measurements (NULL: none) at now_ms; they rank
	 * the cross-venue partition and fill clu_pick.rtt_ms. */
	const struct clu_latency *latency;
	int64_t now_ms;
};

/* Ids one query may exclude: as many bodies as a head looks at, each at most
 * a node id long (64) plus its comma. */
#define CLU_EXCLUDE_MAX 64
#define CLU_EXCLUDE_BUF (CLU_EXCLUDE_MAX * 65)

/* Which partition produced the list. */
enum clu_partition {
	CLU_PART_STRICT_VENUE, /* no head_id: bodies of the query's district and venue */
	CLU_PART_QUICKROUTE,   /* head's district, venue and owner */
	CLU_PART_CROSS_VENUE,  /* head's district, same owner, any venue */
	CLU_PART_NONE,         /* head_id given and both partitions empty */
};

struct clu_pick {
	const struct clu_node *node;
	int same_venue;        /* body is in the head's (or the query's) venue */
	int has_rtt;           /* the head's estimate of this body is known */
	double rtt_ms;
};

struct clu_eligible {
	struct clu_pick *picks; /* ranked best first; caller frees with clu_eligible_free */
	size_t n;
	enum clu_partition partition;
	const char *district;   /* the district and venue the policy used */
	const char *venue;
};

/*
 * The partition policy: a pure function of the fleet and the query.
 * Heads are never listed; bodies must be online and not drained. Order within
 * a partition: idle first, vram_mb descending, then node id; across venues,
 * bodies the head measured come first, by estimate in steps of
 * CLU_RTT_TIE_MS, the rest after them in that order.
 * Errors: HC_EDATA (district or venue missing without head_id; head_id names
 * a body), HC_ENOTFOUND (unknown head), HC_ENOMEM. On error *out is empty.
 */
int clu_policy_eligible(const struct clu_fleet *fleet, const struct clu_query *q,
                        struct clu_eligible *out, struct hc_err *err);
void clu_eligible_free(struct clu_eligible *e);
/* "strict_venue", "quickroute", "cross_venue", "none". */
const char *clu_partition_name(enum clu_partition p);

/* ------------------------------------------------------------------ api */

/* An HTTP request reduced to what the API looks at. Query parameters are
 * already URL-decoded; a parameter without '=' has value "". */
struct clu_param {
	const char *key;
	const char *value;
};

/* Query parameters one request may carry; more is a client bug. */
#define CLU_PARAMS_MAX 16
/* Request bodies are two small JSON fields; anything bigger is refused. */
#define CLU_BODY_MAX 4096

struct clu_request {
	const char *method;
	const char *path;                 /* without the query string */
	const struct clu_param *params;
	size_t nparams;
	const char *body;                 /* may be NULL when body_len is 0 */
	size_t body_len;
};

struct clu_response {
	int status;                       /* HTTP status */
	char *body;                       /* JSON text; caller frees */
	size_t body_len;
	const char *allow;                /* 405: the Allow header value, else NULL */
};

struct clu_api; /* opaque: the fleet behind a mutex */

/* Takes ownership of fleet. save_path: write the fleet there after each
 * change (NULL: keep changes in memory). Caller frees with clu_api_free. */
int clu_api_new(struct clu_fleet *fleet, const char *save_path,
                struct clu_api **out, struct hc_err *err);
void clu_api_free(struct clu_api *api);

/* Answers one request; safe to call from several threads. Always fills resp
 * (errors are JSON {"error": "..."} with a 4xx or 5xx status). Returns 0, or
 * HC_ENOMEM when not even an error body could be built. */
int clu_api_handle(struct clu_api *api, const struct clu_request *req,
                   struct clu_response *resp);
void clu_response_free(struct clu_response *resp);

/* ------------------------------------------------------------------ json */

/* Checks a request body json-c already accepted, for what json-c lets
 * through: invalid UTF-8, a NUL byte or a \u0000 in a string, a key given
 * twice in one object. 0, or HC_EDATA with err naming the field
 * ("field 'drained' given twice"), HC_ENOMEM. */
int clu_json_strict(const char *text, size_t len, struct hc_err *err);
/* Length of the longest valid UTF-8 prefix of s[0..len). */
size_t clu_utf8_valid_len(const char *s, size_t len);
/* Copies the string in to out (size > 0) as valid UTF-8, each invalid byte
 * replaced with U+FFFD, cut short at a character boundary to fit. */
void clu_utf8_repair(const char *in, char *out, size_t size);

/* ------------------------------------------------------------------ server */

struct clu_server; /* opaque: libmicrohttpd daemon serving a clu_api */

/* Starts serving api on listen ("127.0.0.1:8080", "[::1]:0"; port 0 picks a
 * free one). api must outlive the server. Caller stops with clu_server_stop.
 * HC_EUSAGE for a bad address, HC_EUNAVAIL when it cannot bind. */
int clu_server_start(struct clu_api *api, const char *listen,
                     struct clu_server **out, struct hc_err *err);
/* The bound port (useful with port 0). */
int clu_server_port(const struct clu_server *srv);
/* Stops accepting, finishes the requests in flight, frees srv. */
void clu_server_stop(struct clu_server *srv);

#endif
