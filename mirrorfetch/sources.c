/*
 * What one run (a sync's files, an install's candidates) has learnt about
 * its sources: a host that failed at the connection level is skipped by the
 * run's next files for MF_SOURCE_BACKOFF_MS, and its failure is logged once,
 * not once per file.
 */
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
sources_find(struct mf_sources *s, const char *host)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcasecmp(s->hosts[i].host, host) == 0)
			return &s->hosts[i];
	return NULL;
}

int
mf_source_skipped(struct mf_sources *s, const char *host)
{
	const struct mf_source_state *e;
	int skip;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->mu);
	e = sources_find(s, host);
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
mf_source_failed(struct mf_sources *s, const char *host, enum hc_fail f)
{
	struct mf_source_state *e;
	int64_t now = hc_now_ms();
	int quiet = 0;

	if (s == NULL || !sources_connection_level(f))
		return 0;
	pthread_mutex_lock(&s->mu);
	e = sources_find(s, host);
	if (e == NULL && s->n < MF_SOURCES_MAX) {
		e = &s->hosts[s->n++];
		hc_strlcpy(e->host, host, sizeof(e->host));
	}
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
