/*
 * hydra-cluster-sim's HTTP side: libmicrohttpd with its own polling thread
 * (epoll where available) hands each complete request to clu_api_handle.
 */
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

/* Slow or idle clients are dropped after this; the API answers at once. */
#define CLU_CONN_TIMEOUT_S 10
/* Concurrent connections: a test fleet's heads and an operator's curl. */
#define CLU_CONN_LIMIT 256

struct clu_server {
	struct MHD_Daemon *daemon;
	struct clu_api *api;
	int port;
};

/* One request in progress: its body, bounded by CLU_BODY_MAX. */
struct clu_conn {
	char body[CLU_BODY_MAX];
	size_t len;       /* bytes received, may exceed CLU_BODY_MAX (not kept) */
};

struct clu_params {
	struct clu_param items[CLU_PARAMS_MAX + 1];
	size_t n;         /* may reach CLU_PARAMS_MAX + 1: "too many" */
};

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
	const char *cl;
	long long declared;

	(void)version;
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			return MHD_NO;
		*con_cls = c;
		/* A declared body over the limit is refused before it is read. */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl == NULL || hc_parse_int(cl, 0, LLONG_MAX, &declared) != 0 ||
		    declared <= CLU_BODY_MAX)
			return MHD_YES;
		c->len = (size_t)declared;
	} else if (*upload_data_size > 0) {
		/* Keep the first CLU_BODY_MAX bytes; count the rest for the 413. */
		if (c->len < CLU_BODY_MAX) {
			size_t room = CLU_BODY_MAX - c->len;
			size_t take = *upload_data_size < room ? *upload_data_size : room;
			memcpy(c->body + c->len, upload_data, take);
		}
		if (c->len + *upload_data_size < c->len)
			c->len = (size_t)-1;
		else
			c->len += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	memset(&params, 0, sizeof(params));
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, clu_collect_param, &params);
	req.method = method;
	req.path = url;
	req.params = params.items;
	req.nparams = params.n;
	req.body = c->len > 0 && c->len <= CLU_BODY_MAX ? c->body : NULL;
	req.body_len = c->len;
	if (clu_api_handle(srv->api, &req, &resp) != 0)
		return MHD_NO;
	return clu_send(conn, method, url, &resp);
}

static void
clu_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void
clu_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[HC_LOG_LINE_MAX];
	size_t len;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	hc_log(HC_LOG_WARN, "cluster", "libmicrohttpd: %s", line);
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
	srv->api = api;
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, clu_handler, srv,
	                               MHD_OPTION_EXTERNAL_LOGGER, clu_mhd_log, srv,
	                               MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	                               MHD_OPTION_CONNECTION_TIMEOUT,
	                               (unsigned int)CLU_CONN_TIMEOUT_S,
	                               MHD_OPTION_CONNECTION_LIMIT,
	                               (unsigned int)CLU_CONN_LIMIT,
	                               MHD_OPTION_NOTIFY_COMPLETED, clu_completed, srv,
	                               MHD_OPTION_END);
	if (srv->daemon == NULL) {
		free(srv);
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
	MHD_stop_daemon(srv->daemon);
	free(srv);
}
