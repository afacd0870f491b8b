/*
 * hydra-cluster-sim's HTTP side: libmicrohttpd with its own polling thread
 * (epoll where available) hands each complete request to clu_api_handle.
 *
 * Slow and idle clients must not lock anyone out (issue 19): a connection
 * gets CLU_REQUEST_TIMEOUT_MS to deliver a whole request (head and body),
 * one address holds at most CLU_PER_IP_LIMIT connections, and connections
 * still waiting for their request never fill the server: past
 * CLU_PENDING_MAX the oldest of them is closed to make room. libmicrohttpd
 * only has an inactivity timeout (a byte a second resets it), so a reaper
 * thread closes late requests by shutting their sockets down;
 * libmicrohttpd then sees the end of the stream and releases the
 * connection in its own thread.
 */
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "cluster/cluster.h"

/* A request is a head of a few hundred bytes and a body of at most
 * CLU_BODY_MAX sent at once; a client that has not finished one in this
 * time is slow on purpose or broken. */
#define CLU_REQUEST_TIMEOUT_MS 3000
/* How often late requests are looked for: one is closed at most this much
 * after its deadline. */
#define CLU_REAP_INTERVAL_MS 250
/* Inactivity of any connection; CLU_REQUEST_TIMEOUT_MS is the tighter bound
 * while a request arrives, and the API answers at once. */
#define CLU_CONN_TIMEOUT_S 10
/* Connections in total: a fleet's heads and operators need a few dozen; the
 * rest absorbs a flood of slow clients while they wait to be closed. */
#define CLU_CONN_LIMIT 1024
/* Connections waiting for a request; the CLU_CONN_LIMIT - CLU_PENDING_MAX slots
 * above it are kept for connections being answered and being torn down, so
 * a new client is always accepted. */
#define CLU_PENDING_MAX 768
/* Connections from one address: a head polls with one, an operator's curl
 * and a test harness with a handful. */
#define CLU_PER_IP_LIMIT 32
/* libmicrohttpd warns once per refused connection; a flood of them must
 * not flood the log too: at most this many of its lines a second, the rest
 * counted and reported in one line. */
#define CLU_MHD_LOG_PER_S 10
/* Open files the server may need: its connections plus the fleet file, the
 * log, the listening socket and libmicrohttpd's own descriptors. */
#define CLU_FD_NEED (CLU_CONN_LIMIT + 64)

/* One accepted connection; on the pending list while it owes a request. */
struct clu_sock {
	int fd;
	int64_t since_ms;       /* when it started waiting for its request */
	int pending;            /* on the list */
	int cut;                /* shut down by us: never listed again */
	struct clu_sock *prev, *next;
};

struct clu_server {
	struct MHD_Daemon *daemon;
	struct clu_api *api;
	int port;
	pthread_mutex_t mu;     /* guards the pending list and stop */
	pthread_cond_t wake;
	pthread_t reaper;
	int reaper_started;
	int stop;
	struct clu_sock *oldest, *newest; /* pending, oldest first */
	size_t npending;
	unsigned long closed_late, closed_for_room; /* since the last log line */
	int64_t log_window_ms;  /* start of the current second of MHD lines */
	unsigned int log_lines; /* MHD lines logged in it */
	unsigned long log_dropped;
};

/* One request in progress: its body, bounded by CLU_BODY_MAX. */
struct clu_conn {
	struct hc_buf body;   /* the first CLU_BODY_MAX bytes */
	size_t len;           /* bytes received, may exceed CLU_BODY_MAX (not kept) */
};

struct clu_params {
	struct clu_param items[CLU_PARAMS_MAX + 1];
	size_t n;         /* may reach CLU_PARAMS_MAX + 1: "too many" */
};

/* --------------------------------------------------------- pending requests */

/* Appends k to the pending list (srv->mu held). */
static void
clu_pending_add(struct clu_server *srv, struct clu_sock *k)
{
	k->since_ms = hc_now_ms();
	k->pending = 1;
	k->next = NULL;
	k->prev = srv->newest;
	if (srv->newest != NULL)
		srv->newest->next = k;
	else
		srv->oldest = k;
	srv->newest = k;
	srv->npending++;
}

/* Takes k off the pending list if it is on it (srv->mu held). */
static void
clu_pending_del(struct clu_server *srv, struct clu_sock *k)
{
	if (!k->pending)
		return;
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		srv->oldest = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	else
		srv->newest = k->prev;
	k->prev = k->next = NULL;
	k->pending = 0;
	srv->npending--;
}

/* Closes k's connection from outside libmicrohttpd (srv->mu held). The
 * socket is still open: libmicrohttpd closes it only after telling
 * clu_notify_conn, which takes srv->mu. */
static void
clu_pending_cut(struct clu_server *srv, struct clu_sock *k)
{
	clu_pending_del(srv, k);
	k->cut = 1;
	(void)shutdown(k->fd, SHUT_RDWR);
}

/* libmicrohttpd's connection start and end: keeps the pending list, and
 * makes room by closing the oldest pending connection when it is full. */
static void
clu_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                enum MHD_ConnectionNotificationCode code)
{
	struct clu_server *srv = cls;
	struct clu_sock *k = *socket_context;
	const union MHD_ConnectionInfo *info;

	pthread_mutex_lock(&srv->mu);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		k = calloc(1, sizeof(*k));
		if (k != NULL && info != NULL) {
			k->fd = info->connect_fd;
			while (srv->npending >= CLU_PENDING_MAX) {
				clu_pending_cut(srv, srv->oldest);
				srv->closed_for_room++;
			}
			clu_pending_add(srv, k);
		} else {
			/* Not tracked: without its fd it cannot be timed out, so
			 * it is not kept at all. */
			free(k);
			k = NULL;
			if (info != NULL)
				(void)shutdown(info->connect_fd, SHUT_RDWR);
		}
		*socket_context = k;
	} else if (k != NULL) {
		clu_pending_del(srv, k);
		free(k);
		*socket_context = NULL;
	}
	pthread_mutex_unlock(&srv->mu);
}

/* The connection of conn delivered a whole request (in 1) or was answered
 * and now owes the next one (in 0). */
static void
clu_request_state(struct clu_server *srv, struct MHD_Connection *conn, int in)
{
	const union MHD_ConnectionInfo *info;
	struct clu_sock *k;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (info == NULL || info->socket_context == NULL)
		return;
	k = info->socket_context;
	pthread_mutex_lock(&srv->mu);
	if (in)
		clu_pending_del(srv, k);
	else if (!k->pending && !k->cut)
		clu_pending_add(srv, k);
	pthread_mutex_unlock(&srv->mu);
}

/* The reaper thread: closes requests older than CLU_REQUEST_TIMEOUT_MS and says
 * once a reap round how many connections were closed and why. */
static void *
clu_reaper(void *arg)
{
	struct clu_server *srv = arg;
	unsigned long late, room;

	pthread_mutex_lock(&srv->mu);
	while (!srv->stop) {
		int64_t cutoff = hc_now_ms() - CLU_REQUEST_TIMEOUT_MS;
		size_t n = 0;

		/* Bounded: the list holds at most CLU_PENDING_MAX entries. */
		while (srv->oldest != NULL && srv->oldest->since_ms <= cutoff &&
		       n++ < CLU_PENDING_MAX) {
			clu_pending_cut(srv, srv->oldest);
			srv->closed_late++;
		}
		late = srv->closed_late;
		room = srv->closed_for_room;
		srv->closed_late = srv->closed_for_room = 0;
		if (late > 0 || room > 0) {
			pthread_mutex_unlock(&srv->mu);
			hc_log(HC_LOG_DEBUG, "cluster", "closed %lu connections without a "
			       "whole request after %d ms and %lu to make room for new ones",
			       late, CLU_REQUEST_TIMEOUT_MS, room);
			pthread_mutex_lock(&srv->mu);
			continue;
		}
		hc_cond_wait_ms(&srv->wake, &srv->mu, CLU_REAP_INTERVAL_MS);
	}
	pthread_mutex_unlock(&srv->mu);
	return NULL;
}

/* Raises the soft open-file limit to CLU_FD_NEED when it is lower and the
 * hard limit allows; a lower limit only means fewer connections fit. */
static void
clu_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= CLU_FD_NEED)
		return;
	rl.rlim_cur = rl.rlim_max < CLU_FD_NEED ? rl.rlim_max : CLU_FD_NEED;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		hc_log(HC_LOG_WARN, "cluster", "cannot raise the open file limit to %d",
		       CLU_FD_NEED);
}

/* ------------------------------------------------------------ requests */

static enum MHD_Result
clu_collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                  const char *value)
{
	struct clu_params *p = cls;

	(void)kind;
	if (p->n > CLU_PARAMS_MAX)
		return MHD_NO;
	p->items[p->n].key = key;
	p->items[p->n].value = value != NULL ? value : "";
	p->n++;
	return MHD_YES;
}

static enum MHD_Result
clu_send(struct MHD_Connection *conn, const char *method, const char *url,
         struct clu_response *r)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;

	mr = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
	if (mr == NULL) {
		clu_response_free(r);
		return MHD_NO;
	}
	r->body = NULL; /* owned by mr now */
	if (MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
	                            "application/json") != MHD_YES ||
	    (r->allow != NULL &&
	     MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, r->allow) != MHD_YES)) {
		MHD_destroy_response(mr);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, (unsigned int)r->status, mr);
	MHD_destroy_response(mr);
	hc_log(r->status >= 500 ? HC_LOG_ERROR : HC_LOG_DEBUG, "cluster", "%s %s %d",
	       method, url, r->status);
	return ret;
}

/* Counts and keeps (up to CLU_BODY_MAX) one piece of a request body.
 * MHD_NO when out of memory. */
static enum MHD_Result
clu_take_body(struct clu_conn *c, const char *data, size_t size)
{
	if (c->len < CLU_BODY_MAX) {
		size_t room = CLU_BODY_MAX - c->len;

		if (hc_buf_add(&c->body, data, size < room ? size : room) != 0)
			return MHD_NO;
	}
	c->len = c->len + size < c->len ? (size_t)-1 : c->len + size;
	return MHD_YES;
}

/* The first call for a request: the head is in. A declared body over the
 * limit is refused before it is read. */
static enum MHD_Result
clu_begin(struct MHD_Connection *conn, void **con_cls)
{
	struct clu_conn *c;
	const char *cl;
	long long declared;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return MHD_NO;
	hc_buf_init(&c->body, CLU_BODY_MAX);
	*con_cls = c;
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL && hc_parse_int(cl, 0, LLONG_MAX, &declared) == 0 &&
	    declared > CLU_BODY_MAX)
		c->len = (size_t)declared;
	return MHD_YES;
}

static enum MHD_Result
clu_handler(void *cls, struct MHD_Connection *conn, const char *url,
            const char *method, const char *version, const char *upload_data,
            size_t *upload_data_size, void **con_cls)
{
	struct clu_server *srv = cls;
	struct clu_conn *c = *con_cls;
	struct clu_params params;
	struct clu_request req;
	struct clu_response resp;
	enum MHD_Result ret;

	(void)version;
	if (c == NULL) {
		ret = clu_begin(conn, con_cls);
		c = *con_cls;
		if (ret != MHD_YES || c->len <= CLU_BODY_MAX)
			return ret;
	} else if (*upload_data_size > 0) {
		ret = clu_take_body(c, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return ret;
	}
	clu_request_state(srv, conn, 1);
	memset(&params, 0, sizeof(params));
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, clu_collect_param, &params);
	req.method = method;
	req.path = url;
	req.params = params.items;
	req.nparams = params.n;
	req.body = c->len > 0 && c->len <= CLU_BODY_MAX ? hc_buf_str(&c->body) : NULL;
	req.body_len = c->len;
	if (clu_api_handle(srv->api, &req, &resp) != 0)
		return MHD_NO;
	return clu_send(conn, method, url, &resp);
}

static void
clu_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
	struct clu_conn *c = *con_cls;

	(void)toe;
	if (c != NULL) {
		hc_buf_free(&c->body);
		free(c);
		*con_cls = NULL;
	}
	clu_request_state(cls, conn, 0);
}

/* Whether one more libmicrohttpd line may be logged now; *dropped is set
 * to the number suppressed before it, once a new second begins. */
static int
clu_mhd_log_allowed(struct clu_server *srv, unsigned long *dropped)
{
	int64_t now = hc_now_ms();
	int ok;

	*dropped = 0;
	pthread_mutex_lock(&srv->mu);
	if (now - srv->log_window_ms >= 1000) {
		*dropped = srv->log_dropped;
		srv->log_dropped = 0;
		srv->log_window_ms = now;
		srv->log_lines = 0;
	}
	ok = srv->log_lines < CLU_MHD_LOG_PER_S;
	if (ok)
		srv->log_lines++;
	else
		srv->log_dropped++;
	pthread_mutex_unlock(&srv->mu);
	return ok;
}

static void
clu_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[HC_LOG_LINE_MAX];
	unsigned long dropped;
	size_t len;

	if (!clu_mhd_log_allowed(cls, &dropped))
		return;
	if (dropped > 0)
		hc_log(HC_LOG_WARN, "cluster", "libmicrohttpd: %lu more messages not "
		       "logged (at most %d a second)", dropped, CLU_MHD_LOG_PER_S);
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	hc_log(HC_LOG_WARN, "cluster", "libmicrohttpd: %s", line);
}

/* Frees srv after its daemon and reaper are stopped (either may be absent). */
static void
clu_server_free(struct clu_server *srv)
{
	if (srv->daemon != NULL)
		MHD_stop_daemon(srv->daemon);
	if (srv->reaper_started) {
		pthread_mutex_lock(&srv->mu);
		srv->stop = 1;
		pthread_cond_signal(&srv->wake);
		pthread_mutex_unlock(&srv->mu);
		pthread_join(srv->reaper, NULL);
	}
	pthread_cond_destroy(&srv->wake);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}

int
clu_server_start(struct clu_api *api, const char *listen, struct clu_server **out,
                 struct hc_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	struct clu_server *srv;
	const union MHD_DaemonInfo *info;
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

	if (hc_parse_listen(listen, &ss, &sslen, err) != 0) {
		if (err != NULL) {
			hc_err_prefix(err, "--listen");
			err->status = HC_EUSAGE;
		}
		return HC_EUSAGE;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	if (pthread_mutex_init(&srv->mu, NULL) != 0) {
		free(srv);
		return hc_err_set(err, HC_ESOFTWARE, "pthread_mutex_init failed");
	}
	if (pthread_cond_init(&srv->wake, NULL) != 0) {
		pthread_mutex_destroy(&srv->mu);
		free(srv);
		return hc_err_set(err, HC_ESOFTWARE, "pthread_cond_init failed");
	}
	srv->api = api;
	if (pthread_create(&srv->reaper, NULL, clu_reaper, srv) != 0) {
		clu_server_free(srv);
		return hc_err_set(err, HC_ESOFTWARE, "cannot start the reaper thread");
	}
	srv->reaper_started = 1;
	clu_raise_fd_limit();
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, clu_handler, srv,
	                               MHD_OPTION_EXTERNAL_LOGGER, clu_mhd_log, srv,
	                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	                               MHD_OPTION_CONNECTION_TIMEOUT,
	                               (unsigned int)CLU_CONN_TIMEOUT_S,
	                               MHD_OPTION_CONNECTION_LIMIT,
	                               (unsigned int)CLU_CONN_LIMIT,
	                               MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	                               (unsigned int)CLU_PER_IP_LIMIT,
	                               MHD_OPTION_NOTIFY_CONNECTION, clu_notify_conn, srv,
	                               MHD_OPTION_NOTIFY_COMPLETED, clu_completed, srv,
	                               MHD_OPTION_END);
	if (srv->daemon == NULL) {
		clu_server_free(srv);
		return hc_err_set(err, HC_EUNAVAIL, "cannot listen on %s", listen);
	}
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info != NULL ? info->port : 0;
	*out = srv;
	return 0;
}

int
clu_server_port(const struct clu_server *srv)
{
	return srv->port;
}

void
clu_server_stop(struct clu_server *srv)
{
	if (srv == NULL)
		return;
	clu_server_free(srv);
}
