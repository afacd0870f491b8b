/*
 * discovery: picks the body a head streams from (docs/architecture.md sections 6 and 7).
 *
 * The eligible list comes from the cluster already ranked; each body is
 * probed LAN first, then WireGuard, and the first answer wins. The choice is
 * cached in state_dir, a body whose stream fails to launch is demoted to the
 * end of the list, and the stream supervisor runs the Moonlight command.
 */
#ifndef DISCOVERY_H
#define DISCOVERY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hc.h"

/* A cluster answers for one district: a few dozen bodies. More than this is a
 * broken or hostile server; the rest of the (ranked) list is ignored. */
#define DISC_MAX_BODIES 64
/* LAN and WireGuard per body. */
#define DISC_MAX_CANDIDATES (2 * DISC_MAX_BODIES)
/* Node ids, names, districts, venues and owners are short labels. */
#define DISC_LABEL_MAX 128
/* Longest textual IPv6 address plus its terminator. */
#define DISC_IP_MAX 46
/* The eligible list of DISC_MAX_BODIES bodies fits well inside this. */
#define DISC_ELIGIBLE_MAX_BYTES (1024 * 1024)
/* Why a probe or a launch failed, as logged. */
#define DISC_REASON_MAX 256

enum disc_mode { DISC_MODE_SEQUENTIAL, DISC_MODE_PARALLEL };
/* How a cross-venue list is ordered before the failover loop (issue 20):
 * by the round trips this head measures (Phase 2, the default), or as the
 * server ranked it (Phase 1, kept for rollback). Other lists are never
 * re-ranked: quickroute stays a gate. */
enum disc_rank { DISC_RANK_LATENCY, DISC_RANK_SERVER };

struct disc_list;
struct disc_rtt;
enum disc_transport { DISC_LAN, DISC_WG };

/* Filled by the caller (the agent maps its ag_config onto it). Strings are
 * borrowed and must outlive every call that takes the config. */
struct disc_config {
	const char *cluster_url;   /* "http://127.0.0.1:8080" */
	const char *head_id;       /* sent as head_id; "" or NULL: not sent */
	const char *district;
	const char *venue;
	int port;                  /* the probe port on every body (47990) */
	int probe_timeout_ms;      /* one TCP connect */
	enum disc_mode mode;
	enum disc_rank rank;
	int launch_window_s;       /* an exit sooner is a stream-launch failure */
	const char *state_dir;     /* cache and demotion files */
	struct hc_http_config http;/* for the eligible-list GET */
	/* Phase 2 measurements: NULL uses disc_measure_tcp (tests pass their
	 * own). */
	int (*measure)(void *ctx, const struct disc_config *cfg,
	               const struct disc_list *list, struct disc_rtt *out,
	               struct hc_err *err);
	void *measure_ctx;
	/* Set non-zero (from a signal handler) to stop probing within
	 * DISC_CANCEL_SLICE_MS; the call then returns HC_EUNAVAIL. May be NULL. */
	volatile sig_atomic_t *cancel;
};

/* How often a probe wakes up to look at cfg->cancel. */
#define DISC_CANCEL_SLICE_MS 100

struct disc_body {
	char node_id[DISC_LABEL_MAX];
	char name[DISC_LABEL_MAX];
	char district[DISC_LABEL_MAX];
	char venue[DISC_LABEL_MAX];
	char owner[DISC_LABEL_MAX];
	char lan_ip[DISC_IP_MAX];  /* "" when the body has no LAN address */
	char wg_ip[DISC_IP_MAX];   /* "" when the body has no WireGuard address */
	int same_venue;
	int demoted;               /* moved to the end after a launch failure */
};

struct disc_list {
	size_t n;
	size_t total;              /* bodies the server sent (may exceed n) */
	int cross_venue;           /* the cross-venue partition: ranked by latency */
	int gated;                 /* the quickroute partition: other venues were not
	                              considered, and are worth asking for when every
	                              body here is unreachable */
	size_t tried_before;       /* bodies of an earlier list of this discovery,
	                              counted in the exhausted line */
	struct disc_body bodies[DISC_MAX_BODIES];
};

/* ------------------------------------------------------------ eligible list */

/* Parses the eligible-list JSON of docs/architecture.md section 6 into out. Unknown
 * fields are ignored; a missing or mistyped required field (node_id, name,
 * lan_ip, wg_ip, same_venue) is HC_EDATA with a message naming it, such as
 * "bodies[1]: missing field 'wg_ip'". lan_ip and wg_ip may be "" or null (no
 * address) but otherwise must be IP literals. Bodies past DISC_MAX_BODIES
 * are dropped (out->total tells). On error out is unspecified. */
int disc_parse_eligible(const char *text, size_t len, struct disc_list *out,
                        struct hc_err *err);

/* GET {cluster_url}/api/v1/bodies/eligible?district=&venue=&head_id= and
 * parse it. exclude (NULL: none) lists bodies found unreachable, sent as
 * &exclude=ID,ID so the cluster looks past them. HC_EUNAVAIL when the cluster
 * cannot be reached or answers an HTTP error, HC_EDATA on a bad body. */
int disc_fetch_eligible(const struct disc_config *cfg, const struct disc_list *exclude,
                        struct disc_list *out, struct hc_err *err);

/* Builds the query URL into url. 0 or HC_EDATA when it does not fit. */
int disc_eligible_url(const struct disc_config *cfg, const struct disc_list *exclude,
                      char *url, size_t size, struct hc_err *err);

/* ------------------------------------------------------------ probes */

enum disc_probe_result {
	DISC_PROBE_PENDING = 0,    /* not finished (parallel mode gave up on it) */
	DISC_PROBE_OK,
	DISC_PROBE_REFUSED,
	DISC_PROBE_TIMEOUT,
	DISC_PROBE_UNREACHABLE,
	DISC_PROBE_ERROR,
};

/* "ok", "refused", "timeout", ... Never NULL. */
const char *disc_probe_result_name(enum disc_probe_result r);

/* One non-blocking TCP connect to ip:port, closed at once, bounded by
 * timeout_ms (and by *cancel when non-NULL). Returns DISC_PROBE_OK or the
 * failure kind; why gets a short reason ("connection refused"). */
enum disc_probe_result disc_probe_tcp(const char *ip, int port, int timeout_ms,
                                      volatile sig_atomic_t *cancel,
                                      char *why, size_t why_size);

/* The pieces of disc_probe_tcp, for probes run many at a time: starts a
 * non-blocking connect (DISC_PROBE_PENDING with *fd open, else a final
 * result with *fd -1), and reads the outcome once fd is writable (closes
 * it). */
enum disc_probe_result disc_connect_start(const char *ip, int port, int *fd,
                                          char *why, size_t why_size);
enum disc_probe_result disc_connect_finish(int *fd, char *why, size_t why_size);

/* ------------------------------------------------------------ choice */

/* One address to probe: a body's LAN or WireGuard IP, in failover order. */
struct disc_candidate {
	size_t body;               /* index into the list */
	enum disc_transport transport;
	const char *ip;            /* points into the list */
};

/* The failover order of docs/architecture.md section 6: for each body in list order its
 * LAN address, then its WireGuard address; a missing address is skipped.
 * Returns the number of candidates written (at most DISC_MAX_CANDIDATES). */
size_t disc_candidates(const struct disc_list *list, struct disc_candidate *out);

/* The decision rule both modes share, given what is known so far about each
 * candidate (in failover order): the index of the first candidate that
 * answered when every candidate before it has failed; DISC_UNDECIDED while a
 * better candidate is still pending; DISC_NONE when all failed. */
#define DISC_UNDECIDED (-1)
#define DISC_NONE (-2)
long disc_decide(const enum disc_probe_result *results, size_t n);

struct disc_probe_record {
	char node_id[DISC_LABEL_MAX];
	char ip[DISC_IP_MAX];
	enum disc_transport transport;
	enum disc_probe_result result;
	int64_t ms;
	double rtt_ms;             /* median measured round trip, < 0: not measured */
};

struct disc_choice {
	struct disc_body body;
	char ip[DISC_IP_MAX];
	enum disc_transport transport;
	int cached;                /* came from the cache (re-probed) */
	int64_t elapsed_ms;
	size_t eligible;           /* bodies in the list (0 when cached) */
	enum disc_rank ranking;    /* the order the failover loop followed */
	size_t nprobes;
	struct disc_probe_record probes[DISC_MAX_CANDIDATES + 1];
};

/* A probe function, so the loop can be driven by a table in tests. */
typedef enum disc_probe_result (*disc_prober)(void *ctx, const char *ip, int port,
                                              int timeout_ms,
                                              volatile sig_atomic_t *cancel,
                                              char *why, size_t why_size);

/* The sequential failover loop over list with probe (disc_probe_tcp when
 * NULL), logging the lines of docs/architecture.md section 7. 0 with *out filled, or
 * HC_EUNAVAIL after logging "no reachable body among <n> eligible". */
int disc_choose_sequential(const struct disc_config *cfg, const struct disc_list *list,
                           disc_prober probe, void *probe_ctx,
                           struct disc_choice *out, struct hc_err *err);

/* Every probe at once (non-blocking sockets under one poll); returns the
 * choice disc_choose_sequential would make, as soon as every better candidate
 * has failed, and logs the same lines it would. Same results. */
int disc_choose_parallel(const struct disc_config *cfg, const struct disc_list *list,
                         struct disc_choice *out, struct hc_err *err);

/* "lan" or "wireguard". */
const char *disc_transport_name(enum disc_transport t);

/* ------------------------------------------------------------ latency */

/* Connects per address and measurement: the median of three is not thrown
 * by one handshake that met a busy moment. */
#define DISC_RTT_SAMPLES 3
/* Bodies whose medians are within this of the best keep the server's order
 * (idle, then VRAM): closer than that is connect jitter, not distance. */
#define DISC_RTT_MARGIN_MS 2.0

/* Median connect round trips of each body of a list, in ms; < 0 where no
 * sample answered (or the address is missing). */
struct disc_rtt {
	double lan_ms[DISC_MAX_BODIES];
	double wg_ms[DISC_MAX_BODIES];
};

/* The default disc_config.measure. Measures every LAN and WireGuard
 * address of list with DISC_RTT_SAMPLES
 * TCP connects each, all started at once and bounded by probe_timeout_ms
 * (and cfg->cancel). Stops early once every address still pending is
 * already slower than the best median plus DISC_RTT_MARGIN_MS: it could not
 * be chosen. Logs "measured <id> via <LAN|WireGuard>: <rtt> ms" at debug.
 * 0, HC_ENOMEM, HC_EUNAVAIL when cancelled. */
int disc_measure_tcp(void *ctx, const struct disc_config *cfg,
                     const struct disc_list *list, struct disc_rtt *out,
                     struct hc_err *err);

/* Reorders list by measured latency: repeatedly the first body (in current
 * order) whose best median is within DISC_RTT_MARGIN_MS of the lowest left;
 * then the unmeasured bodies, then demoted ones, each in current order.
 * rtt is permuted along. */
void disc_rank_by_rtt(struct disc_list *list, struct disc_rtt *rtt);

/* Sends what was measured for list (rtt aligned with it) to the cluster,
 * POST {cluster_url}/api/v1/heads/{head_id}/latency, bounded in time. Best
 * effort: a failure is logged as a WARN and changes nothing. Nothing is sent
 * when nothing was measured. This function cannot fail. */
void disc_report_latency(const struct disc_config *cfg, const struct disc_list *list,
                         const struct disc_rtt *rtt);

/* The lower of a body's two medians, < 0 when neither was measured. */
double disc_rtt_best(const struct disc_rtt *rtt, size_t body);

/* ------------------------------------------------------------ state */

/* The cached choice: state_dir/discovery-cache.json. */
struct disc_cached {
	char node_id[DISC_LABEL_MAX];
	char name[DISC_LABEL_MAX];
	char ip[DISC_IP_MAX];
	enum disc_transport transport;
	int same_venue;
	int64_t chosen_at_ms;      /* wall clock, epoch milliseconds */
};

/* Writes the choice atomically (creating state_dir); chosen_at_ms 0 means
 * now. 0, HC_ECANTCREAT or HC_EIO. */
int disc_cache_store(const char *state_dir, const struct disc_cached *c,
                     struct hc_err *err);
/* 0 with *out filled, HC_ENOTFOUND when there is none, HC_EDATA when the
 * file is corrupt (the message names what is wrong). */
int disc_cache_load(const char *state_dir, struct disc_cached *out,
                    struct hc_err *err);
/* Drops the cache. When there was one, logs "cached body <id> invalidated:
 * <reason>" and sets *had (when non-NULL). 0 or HC_EIO. */
int disc_cache_invalidate(const char *state_dir, const char *reason, int *had,
                          struct hc_err *err);

/* A demoted body stays at the end of the list for this long unless a stream
 * on it outlives the launch window first: long enough to cover the
 * supervisor's retries, short enough that a fixed body comes back. */
#define DISC_DEMOTE_TTL_MS (30LL * 60 * 1000)
/* Demotions remembered at once; the oldest go first when full. */
#define DISC_MAX_DEMOTED DISC_MAX_BODIES

/* Records a stream-launch failure of node_id (state_dir/discovery-demoted.json,
 * atomic). Its latest failure is what orders it among demoted bodies. */
int disc_demote(const char *state_dir, const char *node_id, struct hc_err *err);
/* Forgets node_id's demotion (a stream on it outlived the window). */
int disc_undemote(const char *state_dir, const char *node_id, struct hc_err *err);
/* Moves the demoted bodies of list to its end (least recently failed first),
 * keeping the server's order otherwise, and marks them. A missing or corrupt
 * file demotes nothing (a corrupt one is logged). */
void disc_apply_demotions(const char *state_dir, struct disc_list *list);

/* ------------------------------------------------------------ discover */

/* The whole discovery: the cached body when it answers one probe (else it is
 * invalidated and logged), otherwise the eligible list with demotions
 * applied and the configured mode. A fresh choice is cached. use_cache 0
 * skips reading the cache (the choice is still stored). 0, HC_EUNAVAIL when
 * no body answers or the cluster cannot be reached, HC_EDATA on a bad list. */
int disc_discover(const struct disc_config *cfg, int use_cache,
                  struct disc_choice *out, struct hc_err *err);

/* ------------------------------------------------------------ stream */

/* First wait after a launch failure; doubled per failure up to the cap. */
#define DISC_BACKOFF_BASE_MS 500
#define DISC_BACKOFF_MAX_MS 30000
/* After forwarding SIGTERM/SIGINT, how long the child gets before SIGKILL. */
#define DISC_STOP_GRACE_MS 5000
/* Arguments of the stream command. */
#define DISC_MAX_ARGS 256

/* Replaces every "{ip}" in arg with ip. Caller frees. NULL when out of memory. */
char *disc_subst_ip(const char *arg, const char *ip);

/* Supervises argv (argv[argc] == NULL): discovers a body, runs argv with
 * "{ip}" substituted (fork and execvp, no shell), and treats an exit within
 * cfg->launch_window_s as a stream-launch failure: invalidate the cache,
 * demote the body, back off, discover and launch again, up to max_attempts
 * launches. A stream that outlives the window is not restarted: its exit
 * ends the supervisor (0 for status 0, else HC_EUNAVAIL). SIGTERM and SIGINT
 * are forwarded to the child ("stopMoonlight: <reason>") and end it with 0.
 * Installs handlers for SIGTERM, SIGINT and SIGCHLD for its duration. */
int disc_stream(const struct disc_config *cfg, int max_attempts, int argc,
                char *const *argv, struct hc_err *err);

#endif
