/*
 * Body selection Phase 2 on the head (issue 20): cross-venue bodies ranked
 * by the TCP connect round trips this head measures, not by the server's
 * proxy (idle, VRAM). Every sample of every address starts at once, so the
 * measurement costs one probe round.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "discovery/discovery.h"

/* Sockets of one measurement: every address of a full list, each sampled. */
#define DISC_RTT_SOCKETS (DISC_MAX_CANDIDATES * DISC_RTT_SAMPLES)

/* Microseconds on the monotonic clock: a connect on a LAN takes well under
 * a millisecond, so hc_now_ms is too coarse to compare them. */
static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct rtt_run {
	struct disc_candidate cands[DISC_MAX_CANDIDATES];
	size_t ncand, nsock;
	int fd[DISC_RTT_SOCKETS];
	int done[DISC_RTT_SOCKETS];          /* finished, answered or not */
	double ms[DISC_RTT_SOCKETS];         /* round trip when it answered, else -1 */
	int64_t start_us[DISC_RTT_SOCKETS];
	struct pollfd pfd[DISC_RTT_SOCKETS];
	size_t idx[DISC_RTT_SOCKETS];
	double waited_ms;                    /* how long the measurement ran */
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of candidate c's answered samples, or -1 when none answered. */
static double
median_of(const struct rtt_run *r, size_t c)
{
	double v[DISC_RTT_SAMPLES];
	size_t i, n = 0;

	for (i = 0; i < DISC_RTT_SAMPLES; i++) {
		if (r->ms[c * DISC_RTT_SAMPLES + i] >= 0)
			v[n++] = r->ms[c * DISC_RTT_SAMPLES + i];
	}
	if (n == 0)
		return -1;
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Whether every sample of candidate c is finished. */
static int
cand_done(const struct rtt_run *r, size_t c)
{
	size_t i;

	for (i = 0; i < DISC_RTT_SAMPLES; i++) {
		if (!r->done[c * DISC_RTT_SAMPLES + i])
			return 0;
	}
	return 1;
}

/* How long waiting can still change the choice, in ms (0: stop). Once some
 * address is complete with a median m, whatever answers after m +
 * DISC_RTT_MARGIN_MS is slower than that and could not be chosen. */
static int64_t
worth_waiting_ms(const struct rtt_run *r, int64_t start_us)
{
	double best = -1, m, elapsed_ms = (double)(now_us() - start_us) / 1000.0;
	size_t c;
	int pending = 0;

	for (c = 0; c < r->ncand; c++) {
		if (!cand_done(r, c)) {
			pending = 1;
			continue;
		}
		m = median_of(r, c);
		if (m >= 0 && (best < 0 || m < best))
			best = m;
	}
	if (!pending)
		return 0;
	if (best < 0)
		return INT64_MAX;
	/* +1: poll's granularity is a millisecond; never wait 0 by rounding. */
	return best + DISC_RTT_MARGIN_MS < elapsed_ms ? 0 :
	       (int64_t)(best + DISC_RTT_MARGIN_MS - elapsed_ms) + 1;
}

static void
rtt_start(struct rtt_run *r, const struct disc_config *cfg)
{
	char why[DISC_REASON_MAX];
	size_t c, i, k;

	for (c = 0; c < r->ncand; c++) {
		for (i = 0; i < DISC_RTT_SAMPLES; i++) {
			k = c * DISC_RTT_SAMPLES + i;
			r->ms[k] = -1;
			r->start_us[k] = now_us();
			if (disc_connect_start(r->cands[c].ip, cfg->port, &r->fd[k], why,
			                       sizeof(why)) != DISC_PROBE_PENDING) {
				/* Loopback can answer at once; that is a round trip of ~0. */
				r->done[k] = 1;
				r->ms[k] = r->fd[k] < 0 && strcmp(why, "connected") == 0 ?
				           (double)(now_us() - r->start_us[k]) / 1000.0 : -1;
			}
		}
	}
	r->nsock = r->ncand * DISC_RTT_SAMPLES;
}

/* The kernel's round trip of fd's handshake (TCP_INFO tcpi_rtt, its first
 * sample being SYN to SYN-ACK), or -1. Preferred over our own clock: it
 * does not grow when this process is slow to be scheduled, so a busy head
 * still ranks its bodies by the network. */
static double
handshake_ms(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_rtt) + sizeof(ti.tcpi_rtt) ||
	    ti.tcpi_state != TCP_ESTABLISHED || ti.tcpi_rtt == 0)
		return -1;
	return (double)ti.tcpi_rtt / 1000.0;
}

/* One poll over the pending sockets, at most wait_ms. */
static int
rtt_poll(struct rtt_run *r, int wait_ms, struct hc_err *err)
{
	char why[DISC_REASON_MAX];
	size_t i, np = 0;
	int got;

	for (i = 0; i < r->nsock; i++) {
		if (r->done[i])
			continue;
		r->pfd[np] = (struct pollfd){ .fd = r->fd[i], .events = POLLOUT };
		r->idx[np++] = i;
	}
	got = poll(r->pfd, np, wait_ms);
	if (got < 0 && errno != EINTR)
		return hc_err_set(err, HC_ESOFTWARE, "poll: %s", strerror(errno));
	for (i = 0; got > 0 && i < np; i++) {
		size_t k = r->idx[i];
		int64_t t = now_us();
		double kernel_ms;

		if (r->pfd[i].revents == 0)
			continue;
		r->done[k] = 1;
		kernel_ms = handshake_ms(r->fd[k]);
		if (disc_connect_finish(&r->fd[k], why, sizeof(why)) == DISC_PROBE_OK)
			r->ms[k] = kernel_ms >= 0 ? kernel_ms :
			           (double)(t - r->start_us[k]) / 1000.0;
	}
	return 0;
}

/* Files the medians of r into out and logs them. */
static void
rtt_collect(const struct rtt_run *r, const struct disc_list *list, struct disc_rtt *out)
{
	size_t c;
	double m;

	for (c = 0; c < DISC_MAX_BODIES; c++) {
		out->lan_ms[c] = -1;
		out->wg_ms[c] = -1;
	}
	for (c = 0; c < r->ncand; c++) {
		const struct disc_candidate *k = &r->cands[c];

		m = median_of(r, c);
		if (k->transport == DISC_LAN)
			out->lan_ms[k->body] = m;
		else
			out->wg_ms[k->body] = m;
		if (m >= 0)
			hc_log(HC_LOG_DEBUG, "discovery", "measured %s via %s: %.2f ms",
			       list->bodies[k->body].node_id,
			       k->transport == DISC_LAN ? "LAN" : "WireGuard", m);
		else if (cand_done(r, c))
			hc_log(HC_LOG_DEBUG, "discovery", "measured %s via %s: no answer",
			       list->bodies[k->body].node_id,
			       k->transport == DISC_LAN ? "LAN" : "WireGuard");
		else
			hc_log(HC_LOG_DEBUG, "discovery", "measured %s via %s: over %.2f ms "
			       "(slower than the best, not waited for)",
			       list->bodies[k->body].node_id,
			       k->transport == DISC_LAN ? "LAN" : "WireGuard", r->waited_ms);
	}
}

int
disc_measure_tcp(void *ctx, const struct disc_config *cfg, const struct disc_list *list,
                 struct disc_rtt *out, struct hc_err *err)
{
	struct rtt_run *r;
	int64_t start, left, worth;
	size_t i;
	int rc = 0;

	(void)ctx;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	r->ncand = disc_candidates(list, r->cands);
	start = now_us();
	rtt_start(r, cfg);
	/* Bounded by probe_timeout_ms: left shrinks every round. */
	for (;;) {
		worth = worth_waiting_ms(r, start);
		left = cfg->probe_timeout_ms - (now_us() - start) / 1000;
		if (worth == 0 || left <= 0) {
			/* Handshakes that finished while we were not looking still
			 * count: their round trip is the kernel's. */
			rc = rtt_poll(r, 0, err);
			break;
		}
		if (cfg->cancel != NULL && *cfg->cancel) {
			rc = hc_err_set(err, HC_EUNAVAIL, "discovery cancelled");
			break;
		}
		if (worth < left)
			left = worth;
		rc = rtt_poll(r, (int)(left < DISC_CANCEL_SLICE_MS ? left : DISC_CANCEL_SLICE_MS),
		              err);
		if (rc != 0)
			break;
	}
	r->waited_ms = (double)(now_us() - start) / 1000.0;
	for (i = 0; i < r->nsock; i++) {
		if (!r->done[i] && r->fd[i] >= 0)
			close(r->fd[i]);
	}
	if (rc == 0)
		rtt_collect(r, list, out);
	free(r);
	return rc;
}

double
disc_rtt_best(const struct disc_rtt *rtt, size_t body)
{
	double lan = rtt->lan_ms[body], wg = rtt->wg_ms[body];

	if (lan < 0)
		return wg;
	if (wg < 0)
		return lan;
	return lan < wg ? lan : wg;
}

/* Moves body from to position to (to <= from), shifting the ones between. */
static void
move_body(struct disc_list *list, struct disc_rtt *rtt, size_t from, size_t to)
{
	struct disc_body b = list->bodies[from];
	double lan = rtt->lan_ms[from], wg = rtt->wg_ms[from];

	memmove(&list->bodies[to + 1], &list->bodies[to], (from - to) * sizeof(b));
	memmove(&rtt->lan_ms[to + 1], &rtt->lan_ms[to], (from - to) * sizeof(lan));
	memmove(&rtt->wg_ms[to + 1], &rtt->wg_ms[to], (from - to) * sizeof(wg));
	list->bodies[to] = b;
	rtt->lan_ms[to] = lan;
	rtt->wg_ms[to] = wg;
}

void
disc_rank_by_rtt(struct disc_list *list, struct disc_rtt *rtt)
{
	size_t placed = 0, i, pick;
	double best, m;

	/* Measured, not demoted: a selection within the margin of the best. */
	for (;;) {
		best = -1;
		for (i = placed; i < list->n; i++) {
			m = disc_rtt_best(rtt, i);
			if (!list->bodies[i].demoted && m >= 0 && (best < 0 || m < best))
				best = m;
		}
		if (best < 0)
			break;
		for (pick = placed; pick < list->n; pick++) {
			m = disc_rtt_best(rtt, pick);
			if (!list->bodies[pick].demoted && m >= 0 && m <= best + DISC_RTT_MARGIN_MS)
				break;
		}
		move_body(list, rtt, pick, placed++);
	}
	/* Then the unmeasured ones; the demoted ones stay last. */
	for (i = placed; i < list->n; i++) {
		if (!list->bodies[i].demoted)
			move_body(list, rtt, i, placed++);
	}
}
