/*
 * TCP connect probes and the failover loop, sequential and parallel.
 *
 * Both modes walk the same loop (run_loop) so they log the same lines and
 * make the same choice; they differ only in where a probe result comes from:
 * a probe made on the spot, or one of the probes started all at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "discovery/discovery.h"

const char *
disc_probe_result_name(enum disc_probe_result r)
{
	switch (r) {
	case DISC_PROBE_PENDING:     return "abandoned";
	case DISC_PROBE_OK:          return "ok";
	case DISC_PROBE_REFUSED:     return "refused";
	case DISC_PROBE_TIMEOUT:     return "timeout";
	case DISC_PROBE_UNREACHABLE: return "unreachable";
	case DISC_PROBE_ERROR:       return "error";
	}
	return "error";
}

const char *
disc_transport_name(enum disc_transport t)
{
	return t == DISC_LAN ? "lan" : "wireguard";
}

static enum disc_probe_result
classify_errno(int e)
{
	switch (e) {
	case 0:            return DISC_PROBE_OK;
	case ECONNREFUSED: return DISC_PROBE_REFUSED;
	case ETIMEDOUT:    return DISC_PROBE_TIMEOUT;
	case EHOSTUNREACH:
	case ENETUNREACH:  return DISC_PROBE_UNREACHABLE;
	default:           return DISC_PROBE_ERROR;
	}
}

enum disc_probe_result
disc_connect_start(const char *ip, int port, int *fd, char *why, size_t why_size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s;

	*fd = -1;
	if (hc_sockaddr_from_ip(ip, port, &ss, &len) != 0) {
		hc_snprintf(why, why_size, "not an IP address");
		return DISC_PROBE_ERROR;
	}
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		hc_snprintf(why, why_size, "socket: %s", strerror(errno));
		return DISC_PROBE_ERROR;
	}
	if (connect(s, (struct sockaddr *)&ss, len) == 0) {
		close(s);
		hc_snprintf(why, why_size, "connected");
		return DISC_PROBE_OK;
	}
	if (errno != EINPROGRESS) {
		int e = errno;
		close(s);
		hc_snprintf(why, why_size, "%s", strerror(e));
		return classify_errno(e);
	}
	*fd = s;
	return DISC_PROBE_PENDING;
}

enum disc_probe_result
disc_connect_finish(int *fd, char *why, size_t why_size)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(*fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
		e = errno;
	close(*fd);
	*fd = -1;
	hc_snprintf(why, why_size, "%s", e == 0 ? "connected" : strerror(e));
	return classify_errno(e);
}

static int
cancelled(volatile sig_atomic_t *cancel)
{
	return cancel != NULL && *cancel != 0;
}

enum disc_probe_result
disc_probe_tcp(const char *ip, int port, int timeout_ms, volatile sig_atomic_t *cancel,
               char *why, size_t why_size)
{
	enum disc_probe_result r;
	int64_t deadline = hc_now_ms() + timeout_ms;
	int fd = -1;

	r = disc_connect_start(ip, port, &fd, why, why_size);
	while (r == DISC_PROBE_PENDING) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int64_t left = deadline - hc_now_ms();
		int n;

		if (cancelled(cancel)) {
			hc_snprintf(why, why_size, "cancelled");
			r = DISC_PROBE_ERROR;
			break;
		}
		if (left <= 0) {
			hc_snprintf(why, why_size, "no answer within %d ms", timeout_ms);
			r = DISC_PROBE_TIMEOUT;
			break;
		}
		n = poll(&p, 1, (int)(left < DISC_CANCEL_SLICE_MS ? left : DISC_CANCEL_SLICE_MS));
		if (n < 0 && errno != EINTR) {
			hc_snprintf(why, why_size, "poll: %s", strerror(errno));
			r = DISC_PROBE_ERROR;
			break;
		}
		if (n > 0)
			r = disc_connect_finish(&fd, why, why_size);
	}
	if (fd >= 0)
		close(fd);
	return r;
}

size_t
disc_candidates(const struct disc_list *list, struct disc_candidate *out)
{
	size_t i, n = 0;

	for (i = 0; i < list->n && i < DISC_MAX_BODIES; i++) {
		const struct disc_body *b = &list->bodies[i];
		if (b->lan_ip[0] != '\0')
			out[n++] = (struct disc_candidate){ i, DISC_LAN, b->lan_ip };
		if (b->wg_ip[0] != '\0')
			out[n++] = (struct disc_candidate){ i, DISC_WG, b->wg_ip };
	}
	return n;
}

long
disc_decide(const enum disc_probe_result *results, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (results[i] == DISC_PROBE_OK)
			return (long)i;
		if (results[i] == DISC_PROBE_PENDING)
			return DISC_UNDECIDED;
	}
	return DISC_NONE;
}

/* Where run_loop gets the result of candidate i (probing ip now, or looking
 * up a probe already made). */
typedef enum disc_probe_result (*result_fn)(void *ctx, size_t i, const char *ip,
                                            char *why, size_t why_size, int64_t *ms);

static void
record(struct disc_choice *out, const struct disc_body *b, const char *ip,
       enum disc_transport t, enum disc_probe_result r, int64_t ms)
{
	struct disc_probe_record *p;

	if (out->nprobes >= sizeof(out->probes) / sizeof(out->probes[0]))
		return;
	p = &out->probes[out->nprobes++];
	hc_strlcpy(p->node_id, b->node_id, sizeof(p->node_id));
	hc_strlcpy(p->ip, ip, sizeof(p->ip));
	p->transport = t;
	p->result = r;
	p->ms = ms;
	p->rtt_ms = -1;
}

static void
choose(struct disc_choice *out, const struct disc_body *b, const char *ip,
       enum disc_transport t)
{
	out->body = *b;
	hc_strlcpy(out->ip, ip, sizeof(out->ip));
	out->transport = t;
	hc_log(HC_LOG_INFO, "discovery", "routing via %s: %s",
	       t == DISC_LAN ? "LAN" : "WireGuard", ip);
}

/* The failover loop of the seed: LAN, then WireGuard, then the next body. */
static int
run_loop(const struct disc_list *list, result_fn get, void *ctx,
         volatile sig_atomic_t *cancel, struct disc_choice *out, struct hc_err *err)
{
	char why[DISC_REASON_MAX];
	size_t i, c = 0;
	int64_t ms;

	out->eligible = list->n;
	for (i = 0; i < list->n; i++) {
		const struct disc_body *b = &list->bodies[i];
		enum disc_probe_result r;

		/* A stop request is not the bodies' fault: no failover lines. */
		if (cancelled(cancel))
			return hc_err_set(err, HC_EUNAVAIL, "discovery cancelled");
		if (b->lan_ip[0] == '\0' && b->wg_ip[0] == '\0') {
			hc_log(HC_LOG_WARN, "discovery",
			       "body %s has no LAN or WireGuard address, trying next", b->node_id);
			continue;
		}
		if (b->lan_ip[0] != '\0') {
			why[0] = '\0';
			r = get(ctx, c++, b->lan_ip, why, sizeof(why), &ms);
			record(out, b, b->lan_ip, DISC_LAN, r, ms);
			if (r != DISC_PROBE_OK && cancelled(cancel))
				return hc_err_set(err, HC_EUNAVAIL, "discovery cancelled");
			if (r == DISC_PROBE_OK) {
				choose(out, b, b->lan_ip, DISC_LAN);
				return 0;
			}
			if (b->wg_ip[0] != '\0')
				hc_log(HC_LOG_INFO, "discovery",
				       "LAN host %s not reachable, falling back to WireGuard",
				       b->lan_ip);
			else
				hc_log(HC_LOG_INFO, "discovery",
				       "LAN host %s not reachable (%s), body %s has no WireGuard address",
				       b->lan_ip, why, b->node_id);
		} else {
			hc_log(HC_LOG_INFO, "discovery",
			       "body %s has no LAN address, probing WireGuard", b->node_id);
		}
		if (b->wg_ip[0] != '\0') {
			why[0] = '\0';
			r = get(ctx, c++, b->wg_ip, why, sizeof(why), &ms);
			record(out, b, b->wg_ip, DISC_WG, r, ms);
			if (r != DISC_PROBE_OK && cancelled(cancel))
				return hc_err_set(err, HC_EUNAVAIL, "discovery cancelled");
			if (r == DISC_PROBE_OK) {
				choose(out, b, b->wg_ip, DISC_WG);
				return 0;
			}
		}
		hc_log(HC_LOG_INFO, "discovery",
		       "body %s unreachable on LAN and WireGuard, trying next", b->node_id);
	}
	if (list->gated) {
		/* Not the end: the cluster only gave the head's own venue. */
		hc_log(HC_LOG_INFO, "discovery", "no reachable body among %zu in the head's "
		       "venue, asking the cluster for the rest of the district", list->n);
		return hc_err_set(err, HC_EUNAVAIL, "no reachable body among %zu eligible",
		                  list->n);
	}
	hc_log(HC_LOG_ERROR, "discovery", "no reachable body among %zu eligible",
	       list->n + list->tried_before);
	return hc_err_set(err, HC_EUNAVAIL, "no reachable body among %zu eligible",
	                  list->n + list->tried_before);
}

struct seq_ctx {
	const struct disc_config *cfg;
	disc_prober probe;
	void *probe_ctx;
};

static enum disc_probe_result
seq_get(void *arg, size_t i, const char *ip, char *why, size_t why_size, int64_t *ms)
{
	struct seq_ctx *s = arg;
	int64_t start = hc_now_ms();
	enum disc_probe_result r;

	(void)i;
	r = s->probe(s->probe_ctx, ip, s->cfg->port, s->cfg->probe_timeout_ms,
	             s->cfg->cancel, why, why_size);
	*ms = hc_now_ms() - start;
	hc_log(HC_LOG_DEBUG, "discovery", "probe %s:%d: %s (%s)", ip, s->cfg->port,
	       disc_probe_result_name(r), why);
	return r;
}

static enum disc_probe_result
tcp_prober(void *ctx, const char *ip, int port, int timeout_ms,
           volatile sig_atomic_t *cancel, char *why, size_t why_size)
{
	(void)ctx;
	return disc_probe_tcp(ip, port, timeout_ms, cancel, why, why_size);
}

static void
choice_init(struct disc_choice *out)
{
	memset(out, 0, sizeof(*out));
}

int
disc_choose_sequential(const struct disc_config *cfg, const struct disc_list *list,
                       disc_prober probe, void *probe_ctx, struct disc_choice *out,
                       struct hc_err *err)
{
	struct seq_ctx s = { cfg, probe != NULL ? probe : tcp_prober, probe_ctx };
	int64_t start = hc_now_ms();
	int rc;

	choice_init(out);
	rc = run_loop(list, seq_get, &s, cfg->cancel, out, err);
	out->elapsed_ms = hc_now_ms() - start;
	return rc;
}

struct par_ctx {
	struct disc_candidate cands[DISC_MAX_CANDIDATES];
	enum disc_probe_result results[DISC_MAX_CANDIDATES];
	char why[DISC_MAX_CANDIDATES][DISC_REASON_MAX];
	int64_t ms[DISC_MAX_CANDIDATES];
};

static enum disc_probe_result
par_get(void *arg, size_t i, const char *ip, char *why, size_t why_size, int64_t *ms)
{
	struct par_ctx *p = arg;

	(void)ip;
	hc_strlcpy(why, p->why[i], why_size);
	*ms = p->ms[i];
	return p->results[i];
}

/* Marks every probe still pending as timed out (they all started together,
 * so all of them are out of time) and closes its socket. */
static void
par_expire(struct par_ctx *p, int *fds, size_t n, int64_t start, int timeout_ms)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p->results[i] != DISC_PROBE_PENDING)
			continue;
		close(fds[i]);
		fds[i] = -1;
		p->results[i] = DISC_PROBE_TIMEOUT;
		p->ms[i] = hc_now_ms() - start;
		hc_snprintf(p->why[i], DISC_REASON_MAX, "no answer within %d ms", timeout_ms);
	}
}

/* One poll over the pending probes, at most wait_ms; files what finished. */
static int
par_poll(struct par_ctx *p, int *fds, size_t n, int64_t start, int wait_ms,
         struct hc_err *err)
{
	struct pollfd pfd[DISC_MAX_CANDIDATES];
	size_t idx[DISC_MAX_CANDIDATES];
	size_t i, np = 0;
	int got;

	for (i = 0; i < n; i++) {
		if (p->results[i] != DISC_PROBE_PENDING)
			continue;
		pfd[np] = (struct pollfd){ .fd = fds[i], .events = POLLOUT };
		idx[np++] = i;
	}
	got = poll(pfd, np, wait_ms);
	if (got < 0 && errno != EINTR)
		return hc_err_set(err, HC_ESOFTWARE, "poll: %s", strerror(errno));
	for (i = 0; got > 0 && i < np; i++) {
		if (pfd[i].revents == 0)
			continue;
		p->results[idx[i]] = disc_connect_finish(&fds[idx[i]], p->why[idx[i]],
		                                         DISC_REASON_MAX);
		p->ms[idx[i]] = hc_now_ms() - start;
	}
	return 0;
}

/* Waits until the decision rule can tell (every probe bounded by
 * probe_timeout_ms), or a cancel. 0 or an error already set in err. */
static int
par_wait(const struct disc_config *cfg, struct par_ctx *p, int *fds, size_t n,
         int64_t start, struct hc_err *err)
{
	int64_t deadline = start + cfg->probe_timeout_ms, left;
	int rc;

	while (disc_decide(p->results, n) == DISC_UNDECIDED) {
		if (cancelled(cfg->cancel))
			return hc_err_set(err, HC_EUNAVAIL, "discovery cancelled");
		left = deadline - hc_now_ms();
		if (left <= 0) {
			par_expire(p, fds, n, start, cfg->probe_timeout_ms);
			continue;
		}
		rc = par_poll(p, fds, n, start,
		              (int)(left < DISC_CANCEL_SLICE_MS ? left : DISC_CANCEL_SLICE_MS), err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
disc_choose_parallel(const struct disc_config *cfg, const struct disc_list *list,
                     struct disc_choice *out, struct hc_err *err)
{
	struct par_ctx *p = NULL;
	struct disc_candidate *cands;
	int fds[DISC_MAX_CANDIDATES];
	int64_t start = hc_now_ms();
	size_t n, i;
	int rc = 0;

	choice_init(out);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	cands = p->cands;
	n = disc_candidates(list, cands);
	for (i = 0; i < n; i++) {
		p->results[i] = disc_connect_start(cands[i].ip, cfg->port, &fds[i], p->why[i],
		                                   DISC_REASON_MAX);
		p->ms[i] = hc_now_ms() - start;
	}
	rc = par_wait(cfg, p, fds, n, start, err);
	if (rc != 0)
		goto done;
	for (i = 0; i < n; i++) {
		if (p->results[i] == DISC_PROBE_PENDING)
			p->ms[i] = hc_now_ms() - start;
		hc_log(HC_LOG_DEBUG, "discovery", "probe %s:%d: %s (%s)", cands[i].ip,
		       cfg->port, disc_probe_result_name(p->results[i]), p->why[i]);
	}
	rc = run_loop(list, par_get, p, NULL, out, err);
	/* Report every probe, the abandoned ones included, not only those the
	 * loop looked at. */
	out->nprobes = 0;
	for (i = 0; i < n; i++)
		record(out, &list->bodies[cands[i].body], cands[i].ip, cands[i].transport,
		       p->results[i], p->ms[i]);
done:
	for (i = 0; i < n; i++) {
		if (p->results[i] == DISC_PROBE_PENDING && fds[i] >= 0)
			close(fds[i]);
	}
	free(p);
	out->elapsed_ms = hc_now_ms() - start;
	return rc;
}
