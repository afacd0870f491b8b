/*
 * The connection guard (guard.h). libmicrohttpd's own timeout is an idle
 * timeout: a client sending one header byte a second never trips it. The
 * guard keeps every connection in a list with the time it began to wait
 * for a head, and a watch thread ends those that waited too long by
 * shutting their socket down, which makes libmicrohttpd close them.
 *
 * The socket is only touched between the STARTED and CLOSED notifications,
 * under the guard's lock: libmicrohttpd closes it after CLOSED, so the fd
 * cannot have been reused by then.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mirror/guard.h"

/* How often the watch looks: a tenth of the head timeout. */
#define GUARD_PERIOD_MS (MIR_HEAD_TIMEOUT_S * 100)

struct guard_conn {
	struct guard_conn *prev, *next;
	struct mir_guard *g;
	int fd;
	int64_t since_ms;               /* opened, or last response ended */
	int in_request;                 /* head arrived, response not yet ended */
	int served;                     /* a request was answered: keep-alive */
	int cut;                        /* shut down by the watch */
};

struct mir_guard {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct guard_conn *list;
	long long count, max;
	/* Connections admitted by mir_guard_admit and not yet closed: the
	 * limit over every pool thread and listener (libmicrohttpd splits its
	 * own limit between the threads of a pool). */
	atomic_llong admitted;
	atomic_ullong refused;
	int stop;
	pthread_t thread;
	int started;
};

static struct guard_conn *
guard_conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

void
mir_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                 enum MHD_ConnectionNotificationCode code)
{
	struct mir_guard *g = cls;
	struct guard_conn *k = *socket_context;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		k = calloc(1, sizeof(*k));
		if (k == NULL || ci == NULL) {
			free(k);  /* unguarded: libmicrohttpd's idle timeout still holds */
			return;
		}
		k->g = g;
		k->fd = ci->connect_fd;
		k->since_ms = hc_now_ms();
		pthread_mutex_lock(&g->mu);
		k->next = g->list;
		if (g->list != NULL)
			g->list->prev = k;
		g->list = k;
		g->count++;
		pthread_mutex_unlock(&g->mu);
		*socket_context = k;
		return;
	}
	if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		atomic_fetch_sub(&g->admitted, 1);
	if (k == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		g->list = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	g->count--;
	pthread_mutex_unlock(&g->mu);
	free(k);
	*socket_context = NULL;
}

enum MHD_Result
mir_guard_admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct mir_guard *g = cls;

	(void)addr;
	(void)addrlen;
	if (atomic_fetch_add(&g->admitted, 1) < g->max)
		return MHD_YES;
	atomic_fetch_sub(&g->admitted, 1);
	atomic_fetch_add(&g->refused, 1);
	return MHD_NO;
}

void
mir_guard_count_refusal(struct mir_guard *g)
{
	if (g != NULL)
		atomic_fetch_add(&g->refused, 1);
}

unsigned long long
mir_guard_refused(struct mir_guard *g)
{
	return g != NULL ? atomic_load(&g->refused) : 0;
}

void
mir_guard_head_done(struct MHD_Connection *c)
{
	struct guard_conn *k = guard_conn_of(c);

	if (k == NULL)
		return;
	pthread_mutex_lock(&k->g->mu);
	k->in_request = 1;
	pthread_mutex_unlock(&k->g->mu);
}

void
mir_guard_request_done(struct MHD_Connection *c)
{
	struct guard_conn *k = guard_conn_of(c);

	if (k == NULL)
		return;
	pthread_mutex_lock(&k->g->mu);
	k->in_request = 0;
	k->served = 1;
	k->since_ms = hc_now_ms();
	pthread_mutex_unlock(&k->g->mu);
}

/* One look at every connection; returns how many were cut. Caller holds
 * g->mu. */
static long long
guard_sweep(struct mir_guard *g)
{
	/* Short of connections: a quarter of them left. */
	int pressed = g->count > g->max - g->max / 4;
	int64_t now = hc_now_ms();
	struct guard_conn *k;
	long long cut = 0;

	for (k = g->list; k != NULL; k = k->next) {
		if (k->in_request || k->cut || (k->served && !pressed))
			continue;
		if (now - k->since_ms < (int64_t)MIR_HEAD_TIMEOUT_S * 1000)
			continue;
		(void)shutdown(k->fd, SHUT_RDWR);
		k->cut = 1;
		cut++;
	}
	return cut;
}

static void *
guard_watch(void *arg)
{
	struct mir_guard *g = arg;
	long long cut;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		hc_cond_wait_ms(&g->cv, &g->mu, GUARD_PERIOD_MS);
		cut = guard_sweep(g);
		if (cut > 0)
			hc_log(HC_LOG_INFO, "mirror", "closed %lld connections that sent no whole request "
			       "head within %d s (%lld open)", cut, MIR_HEAD_TIMEOUT_S, g->count);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int
mir_guard_start(long long max_connections, struct mir_guard **out, struct hc_err *err)
{
	struct mir_guard *g = calloc(1, sizeof(*g));

	*out = NULL;
	if (g == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->max = max_connections;
	atomic_init(&g->admitted, 0);
	atomic_init(&g->refused, 0);
	if (pthread_create(&g->thread, NULL, guard_watch, g) != 0) {
		mir_guard_stop(g);
		return hc_err_set(err, HC_ESOFTWARE, "cannot start the connection guard");
	}
	g->started = 1;
	*out = g;
	return 0;
}

void
mir_guard_stop(struct mir_guard *g)
{
	if (g == NULL)
		return;
	if (g->started) {
		pthread_mutex_lock(&g->mu);
		g->stop = 1;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->thread, NULL);
	}
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

long long
mir_guard_open(struct mir_guard *g)
{
	long long n;

	if (g == NULL)
		return 0;
	pthread_mutex_lock(&g->mu);
	n = g->count;
	pthread_mutex_unlock(&g->mu);
	return n;
}
