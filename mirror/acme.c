/* The ACME http-01 challenge listener (acme.h). */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirror/acme.h"

/* Validation servers open a handful of connections; more is not ACME. */
#define ACME_CONNECTIONS_MAX 64
#define ACME_TIMEOUT_S 10

struct mir_acme {
	struct MHD_Daemon *d;
	char *webroot;
};

int
mir_acme_token_valid(const char *token)
{
	size_t n = strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                         "0123456789-_");

	return n > 0 && n <= MIR_ACME_TOKEN_MAX && token[n] == '\0';
}

static enum MHD_Result
acme_answer(struct MHD_Connection *c, unsigned status, const char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        status == MHD_HTTP_OK ? "application/octet-stream" :
	                        "text/plain");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Reads webroot/token into buf (a regular file, no link, at most
 * MIR_ACME_FILE_MAX bytes). Its length, or -1 when there is none to serve. */
static ssize_t
acme_read(const char *webroot, const char *token, char *buf, size_t size)
{
	struct stat st;
	ssize_t n = -1;
	int dfd = -1, fd = -1;

	dfd = open(webroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		goto done;
	fd = openat(dfd, token, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)size)
		goto done;
	n = read(fd, buf, size);
done:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return n;
}

static enum MHD_Result
acme_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
            const char *version, const char *upload_data, size_t *upload_data_size,
            void **con_cls)
{
	static const char not_found[] = "not found\n";
	struct mir_acme *a = cls;
	const size_t plen = strlen(MIR_ACME_PREFIX);
	char body[MIR_ACME_FILE_MAX];
	const char *token;
	ssize_t n;

	(void)version;
	(void)upload_data;
	if (*con_cls == NULL) {
		*con_cls = a;  /* the head arrived; answer on the next call */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return acme_answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "", 0);
	if (strncmp(url, MIR_ACME_PREFIX, plen) != 0 || !mir_acme_token_valid(url + plen))
		return acme_answer(c, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1);
	token = url + plen;
	n = acme_read(a->webroot, token, body, sizeof(body));
	if (n < 0)
		return acme_answer(c, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1);
	hc_log(HC_LOG_INFO, "mirror", "acme challenge %s served", token);
	return acme_answer(c, MHD_HTTP_OK, body, (size_t)n);
}

int
mir_acme_start(const char *listen, const char *webroot, struct mir_acme **out,
               struct hc_err *err)
{
	struct mir_acme *a = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	char bound[160];
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;

	*out = NULL;
	if (hc_parse_listen(listen, &ss, &sslen, err) != 0)
		return hc_err_prefix(err, "acme.listen");
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	a->webroot = hc_strdup(webroot);
	if (a->webroot == NULL) {
		free(a);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->d = MHD_start_daemon(flags, 0, NULL, NULL, acme_handle, a,
	                        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)ACME_CONNECTIONS_MAX,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)ACME_TIMEOUT_S,
	                        MHD_OPTION_END);
	if (a->d == NULL) {
		mir_acme_stop(a);
		return hc_err_set(err, HC_EUNAVAIL, "cannot listen on %s (acme.listen)", listen);
	}
	info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
	if (hc_sockaddr_format(&ss, info != NULL ? (int)info->port : -1, bound,
	                       sizeof(bound)) != 0)
		hc_strlcpy(bound, listen, sizeof(bound));
	hc_log(HC_LOG_INFO, "mirror", "acme challenges on http://%s from %s", bound, webroot);
	*out = a;
	return 0;
}

void
mir_acme_stop(struct mir_acme *a)
{
	if (a == NULL)
		return;
	if (a->d != NULL)
		MHD_stop_daemon(a->d);
	free(a->webroot);
	free(a);
}
