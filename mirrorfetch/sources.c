/*
 * What one run (a sync's files, an install's candidates) has learnt about
 * its sources: a host that failed at the connection level is skipped by the
 * run's next files for MF_SOURCE_BACKOFF_MS, and its failure is logged once,
 * not once per file; and how much each mirror has queued and how fast it
 * delivered, so that a sync spreads its files over the mirrors.
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "mirrorfetch/internal.h"

void
mf_sources_init(struct mf_sources *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
}

void
mf_sources_destroy(struct mf_sources *s)
{
	pthread_mutex_destroy(&s->mu);
}

/* The entry of host, or NULL. Called with s->mu held. */
static struct mf_source_state *
sources_find(struct mf_sources *s, const char *host, int port)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->hosts[i].port == port && strcasecmp(s->hosts[i].host, host) == 0)
			return &s->hosts[i];
	return NULL;
}

/* The entry of host, added when there is room; NULL past MF_SOURCES_MAX.
 * Called with s->mu held. */
static struct mf_source_state *
sources_get(struct mf_sources *s, const char *host, int port)
{
	struct mf_source_state *e = sources_find(s, host, port);

	if (e == NULL && s->n < MF_SOURCES_MAX) {
		e = &s->hosts[s->n++];
		hc_strlcpy(e->host, host, sizeof(e->host));
		e->port = port;
	}
	return e;
}

int
mf_source_skipped(struct mf_sources *s, const char *host, int port)
{
	const struct mf_source_state *e;
	int skip;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->mu);
	e = sources_find(s, host, port);
	skip = e != NULL && hc_now_ms() < e->down_until_ms;
	pthread_mutex_unlock(&s->mu);
	return skip;
}

/* 1 for the failures that say the host is not there (name, connection,
 * TLS, time), as opposed to an answer about one file. */
static int
sources_connection_level(enum hc_fail f)
{
	switch (f) {
	case HC_FAIL_DNS_NXDOMAIN:
	case HC_FAIL_DNS_TIMEOUT:
	case HC_FAIL_DNS_ERROR:
	case HC_FAIL_CONNECT_REFUSED:
	case HC_FAIL_CONNECT_TIMEOUT:
	case HC_FAIL_TLS:
	case HC_FAIL_TIMEOUT:
	case HC_FAIL_STALL:
		return 1;
	default:
		return 0;
	}
}

int
mf_source_failed(struct mf_sources *s, const char *host, int port, enum hc_fail f)
{
	struct mf_source_state *e;
	int64_t now = hc_now_ms();
	int quiet = 0;

	if (s == NULL || !sources_connection_level(f))
		return 0;
	pthread_mutex_lock(&s->mu);
	e = sources_get(s, host, port);
	if (e != NULL) {
		/* Another file of the run already found it down and said so. */
		quiet = now < e->down_until_ms;
		if (!quiet)
			e->down_until_ms = now + MF_SOURCE_BACKOFF_MS;
	}
	pthread_mutex_unlock(&s->mu);
	if (e != NULL && !quiet)
		hc_log(HC_LOG_INFO, MF_MOD, "%s is skipped by this run for %d s", host,
		       MF_SOURCE_BACKOFF_MS / 1000);
	return quiet;
}

void
mf_source_assign(struct mf_sources *s, const char *host, int port, uint64_t size, int assign)
{
	struct mf_source_state *e;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	e = sources_get(s, host, port);
	if (e != NULL && assign)
		e->outstanding += size;
	else if (e != NULL)
		e->outstanding -= size < e->outstanding ? size : e->outstanding;
	pthread_mutex_unlock(&s->mu);
}

void
mf_source_measured(struct mf_sources *s, const char *host, int port, uint64_t bytes,
                   int64_t ms)
{
	struct mf_source_state *e;

	if (s == NULL || bytes < MF_SOURCE_RATE_MIN_BYTES || ms <= 0)
		return;
	pthread_mutex_lock(&s->mu);
	e = sources_get(s, host, port);
	if (e != NULL) {
		e->rx_bytes += bytes;
		e->rx_ms += ms;
	}
	pthread_mutex_unlock(&s->mu);
}

/* The mean throughput of the measured hosts, bytes per ms; 1 when none is. */
static double
sources_mean_rate(const struct mf_sources *s)
{
	double sum = 0;
	size_t i, n = 0;

	for (i = 0; i < s->n; i++) {
		if (s->hosts[i].rx_ms > 0) {
			sum += (double)s->hosts[i].rx_bytes / (double)s->hosts[i].rx_ms;
			n++;
		}
	}
	return n > 0 && sum > 0 ? sum / (double)n : 1.0;
}

/* How long host would take to finish its queue plus size bytes, in units
 * only comparable within one call; a host in back-off costs the most.
 * Called with s->mu held. */
static double
sources_cost(struct mf_sources *s, const struct mf_candidate *c, uint64_t size, double mean,
             int64_t now)
{
	const struct mf_source_state *e = sources_find(s, c->host, c->u.port);
	double rate = mean;

	if (e == NULL)
		return (double)size / rate;
	if (now < e->down_until_ms)
		return HUGE_VAL;
	if (e->rx_ms > 0 && e->rx_bytes > 0)
		rate = (double)e->rx_bytes / (double)e->rx_ms;
	return ((double)e->outstanding + (double)size) / rate;
}

void
mf_sources_order(struct mf_sources *s, struct mf_candidates *cand, uint64_t size)
{
	double cost[MF_CANDIDATES_MAX];
	size_t i, j, mirrors;
	double mean;
	int64_t now = hc_now_ms();

	if (s == NULL || cand->n < 3)
		return;
	mirrors = cand->n - 1;
	pthread_mutex_lock(&s->mu);
	mean = sources_mean_rate(s);
	for (i = 0; i < mirrors; i++)
		cost[i] = sources_cost(s, &cand->c[i], size, mean, now);
	pthread_mutex_unlock(&s->mu);
	/* Insertion sort: a handful of entries, and stable. */
	for (i = 1; i < mirrors; i++) {
		struct mf_candidate c = cand->c[i];
		double k = cost[i];

		for (j = i; j > 0 && cost[j - 1] > k; j--) {
			cand->c[j] = cand->c[j - 1];
			cost[j] = cost[j - 1];
		}
		cand->c[j] = c;
		cost[j] = k;
	}
}
