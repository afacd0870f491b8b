/* The access log (access.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mirror/access.h"

/* The escaped URI keeps this much; the head limit of libmicrohttpd is larger. */
#define ACCESS_URI_MAX 4096
/* Referer and User-Agent: enough to tell clients apart. */
#define ACCESS_HEADER_MAX 1024

struct mir_access {
	pthread_mutex_t mu;             /* fd swaps and writes */
	int fd;                         /* -1: off */
	int own;                        /* fd is ours to close (not stderr) */
};

/* value, escaped as nginx does, into out (size bytes); "-" for NULL or "".
 * A value cut to fit ends in "...". */
static void
access_escape(const char *value, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)value;
	size_t n = 0;

	if (value == NULL || *value == '\0') {
		hc_strlcpy(out, "-", size);
		return;
	}
	for (; *p != '\0'; p++) {
		if (n + 8 > size) {
			memcpy(out + n, "...", 3);
			n += 3;
			break;
		}
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		} else {
			out[n++] = (char)*p;
		}
	}
	out[n] = '\0';
}

size_t
mir_access_format(char *buf, size_t size, const struct mir_access_rec *r)
{
	char uri[ACCESS_URI_MAX], referer[ACCESS_HEADER_MAX], agent[ACCESS_HEADER_MAX];
	char method[32], version[32], when[64];
	time_t t = (time_t)r->epoch_s;
	struct tm tm;
	int n;

	access_escape(r->uri, uri, sizeof(uri));
	access_escape(r->referer, referer, sizeof(referer));
	access_escape(r->agent, agent, sizeof(agent));
	access_escape(r->method, method, sizeof(method));
	access_escape(r->version, version, sizeof(version));
	gmtime_r(&t, &tm);
	if (strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm) == 0)
		hc_strlcpy(when, "01/Jan/1970:00:00:00 +0000", sizeof(when));
	n = snprintf(buf, size, "%s - - [%s] \"%s %s %s\" %u %" PRIu64 " \"%s\" \"%s\" %.3f %s\n",
	             r->addr != NULL && *r->addr != '\0' ? r->addr : "-", when, method, uri,
	             version, r->status, r->bytes, referer, agent, r->seconds,
	             r->outcome != NULL ? r->outcome : "bypass");
	if (n < 0 || size == 0)
		return 0;
	if ((size_t)n >= size) {
		/* Cannot happen with the field limits above; keep the line a line. */
		buf[size - 2] = '\n';
		return size - 1;
	}
	return (size_t)n;
}

/* The fd for path, and whether it is ours to close. */
static int
access_open_fd(const char *path, int *fd, int *own, struct hc_err *err)
{
	*fd = -1;
	*own = 0;
	if (path == NULL || *path == '\0')
		return 0;
	if (strcmp(path, "-") == 0) {
		*fd = STDERR_FILENO;
		return 0;
	}
	*fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (*fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "access_log %s: %s", path, strerror(errno));
	*own = 1;
	return 0;
}

int
mir_access_open(const char *path, struct mir_access **out, struct hc_err *err)
{
	struct mir_access *a = calloc(1, sizeof(*a));
	int rc;

	*out = NULL;
	if (a == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = access_open_fd(path, &a->fd, &a->own, err);
	if (rc != 0) {
		free(a);
		return rc;
	}
	pthread_mutex_init(&a->mu, NULL);
	*out = a;
	return 0;
}

int
mir_access_reopen(struct mir_access *a, const char *path, struct hc_err *err)
{
	int fd, own, old_fd, old_own, rc;

	rc = access_open_fd(path, &fd, &own, err);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&a->mu);
	old_fd = a->fd;
	old_own = a->own;
	a->fd = fd;
	a->own = own;
	pthread_mutex_unlock(&a->mu);
	if (old_own)
		close(old_fd);
	return 0;
}

int
mir_access_enabled(struct mir_access *a)
{
	int on;

	if (a == NULL)
		return 0;
	pthread_mutex_lock(&a->mu);
	on = a->fd >= 0;
	pthread_mutex_unlock(&a->mu);
	return on;
}

void
mir_access_write(struct mir_access *a, const struct mir_access_rec *r)
{
	char line[MIR_ACCESS_LINE_MAX];
	size_t len;

	if (!mir_access_enabled(a))
		return;
	len = mir_access_format(line, sizeof(line), r);
	pthread_mutex_lock(&a->mu);
	if (a->fd >= 0)
		(void)hc_write_all(a->fd, line, len);
	pthread_mutex_unlock(&a->mu);
}

void
mir_access_free(struct mir_access *a)
{
	if (a == NULL)
		return;
	if (a->own)
		close(a->fd);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
