/*
 * Name resolution with c-ares: the configured servers (with ports), A and
 * AAAA, and one deadline for the whole lookup, so a dead DNS server costs at
 * most timeout_ms and is reported as such.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "common/hc.h"

/* Default lookup budget when the config gives none. */
#define DNS_DEFAULT_TIMEOUT_MS 1000
/* c-ares retries within the budget; two tries survive one lost UDP packet. */
#define DNS_TRIES 2
/* How often a waiting lookup looks at its cancel flag. */
#define DNS_CANCEL_SLICE_MS 100

struct dns_query {
	int done;
	int status;
	struct hc_dns_result *out;
};

static void
dns_on_result(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;
	struct ares_addrinfo_node *node;

	(void)timeouts;
	q->done = 1;
	q->status = status;
	if (status != ARES_SUCCESS || res == NULL) {
		ares_freeaddrinfo(res);
		return;
	}
	for (node = res->nodes; node != NULL && q->out->n < HC_DNS_MAX_ADDRS;
	     node = node->ai_next) {
		const void *addr;
		if (node->ai_family == AF_INET)
			addr = &((const struct sockaddr_in *)(const void *)node->ai_addr)->sin_addr;
		else if (node->ai_family == AF_INET6)
			addr = &((const struct sockaddr_in6 *)(const void *)node->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(node->ai_family, addr, q->out->addrs[q->out->n],
		              sizeof(q->out->addrs[0])) != NULL)
			q->out->n++;
	}
	ares_freeaddrinfo(res);
	if (q->out->n == 0)
		q->status = ARES_ENODATA;
}

static int
dns_is_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Drives the channel until the query is done or the deadline passes. */
static void
dns_wait(ares_channel ch, struct dns_query *q, int64_t deadline, volatile int *cancel)
{
	while (!q->done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp, maxtv;
		int64_t left = deadline - hc_now_ms();
		int bits, n = 0, i, wait_ms;

		if (left <= 0 || (cancel != NULL && *cancel)) {
			ares_cancel(ch);  /* calls dns_on_result with ARES_ECANCELLED */
			break;
		}
		if (cancel != NULL && left > DNS_CANCEL_SLICE_MS)
			left = DNS_CANCEL_SLICE_MS;
		bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;
			/* c-ares' own macros shift a signed 1 into the sign bit. */
			if ((unsigned)bits & (1u << i))
				ev |= POLLIN;
			if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
		maxtv.tv_sec = left / 1000;
		maxtv.tv_usec = (left % 1000) * 1000;
		tvp = ares_timeout(ch, &maxtv, &tv);
		wait_ms = (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000);
		if (poll(pfd, (nfds_t)n, wait_ms) < 0 && errno != EINTR)
			break;
		if (n == 0) {
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (i = 0; i < n; i++) {
			ares_socket_t r = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ?
			                  pfd[i].fd : ARES_SOCKET_BAD;
			ares_socket_t w = (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD;
			ares_process_fd(ch, r, w);
		}
		/* Also lets c-ares notice its own retry timeouts. */
		ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
}

int
hc_dns_resolve(const struct hc_dns_config *cfg, const char *host,
               struct hc_dns_result *out, enum hc_fail *fail, struct hc_err *err)
{
	struct ares_options opts;
	struct ares_addrinfo_hints hints;
	struct dns_query q = { 0, ARES_ETIMEOUT, out };
	ares_channel ch = NULL;
	int timeout_ms = cfg != NULL && cfg->timeout_ms > 0 ? cfg->timeout_ms :
	                 DNS_DEFAULT_TIMEOUT_MS;
	int64_t deadline = hc_now_ms() + timeout_ms;
	int rc = 0, ar;

	memset(out, 0, sizeof(*out));
	*fail = HC_FAIL_NONE;
	if (dns_is_literal(host)) {
		out->n = 1;
		return hc_strlcpy(out->addrs[0], host, sizeof(out->addrs[0])) == 0 ? 0 :
		       hc_err_set(err, HC_EDATA, "address too long: %s", host);
	}
	memset(&opts, 0, sizeof(opts));
	opts.timeout = timeout_ms / DNS_TRIES > 0 ? timeout_ms / DNS_TRIES : 1;
	opts.tries = DNS_TRIES;
	ar = ares_init_options(&ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (ar != ARES_SUCCESS) {
		rc = hc_err_set(err, HC_ESOFTWARE, "c-ares init: %s", ares_strerror(ar));
		ch = NULL;
		goto done;
	}
	if (cfg != NULL && cfg->servers != NULL && *cfg->servers != '\0') {
		ar = ares_set_servers_ports_csv(ch, cfg->servers);
		if (ar != ARES_SUCCESS) {
			rc = hc_err_set(err, HC_ECONFIG, "dns servers '%s': %s", cfg->servers,
			                ares_strerror(ar));
			goto done;
		}
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	ares_getaddrinfo(ch, host, NULL, &hints, dns_on_result, &q);
	dns_wait(ch, &q, deadline, cfg != NULL ? cfg->cancel : NULL);

	switch (q.status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		*fail = HC_FAIL_DNS_NXDOMAIN;
		rc = hc_err_set(err, HC_EUNAVAIL, "lookup %s: no such host", host);
		break;
	case ARES_ETIMEOUT:
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		*fail = HC_FAIL_DNS_TIMEOUT;
		rc = hc_err_set(err, HC_EUNAVAIL, "lookup %s: timeout", host);
		break;
	default:
		*fail = HC_FAIL_DNS_ERROR;
		rc = hc_err_set(err, HC_EUNAVAIL, "lookup %s: %s", host,
		                ares_strerror(q.status));
		break;
	}
done:
	if (ch != NULL)
		ares_destroy(ch);
	return rc;
}
