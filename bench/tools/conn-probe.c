/* conn-probe: connection-level load for bench/mirror.sh (issue 18, row 4).
 *
 *   conn-probe hold HOST PORT PATH N SECONDS
 *   conn-probe latency HOST PORT PATH K
 *
 * hold: opens N keep-alive connections to HOST:PORT, at most CP_INFLIGHT
 * being set up at once, does one GET PATH on each and reads its whole answer,
 * then keeps every connection open without a further request. Prints
 * `ready held=H failed=F ms=T` once each connection has its answer or has
 * failed (within CP_SETUP_MS), then holds until SIGTERM or SIGINT or SECONDS
 * have passed, counting the connections the server closes meanwhile, and
 * prints `done held=H closed=C`. Exits 0 when every connection was held to
 * the end, 1 when some failed or were closed, 64 on a bad command line.
 *
 * latency: K GETs of PATH one after the other, each on a fresh connection,
 * each timed from connect() to the last byte of the body. Prints
 * `latency n=K ok=O failed=F p50_ms=X p99_ms=Y max_ms=Z`; a GET that fails
 * or takes longer than CP_REQUEST_MS counts as CP_REQUEST_MS. Exits 0 when
 * every GET got its answer, 1 otherwise.
 *
 * HOST must be an IPv4 address in 127.0.0.0/8. A GET succeeds on a 200 with a
 * Content-Length and that many body bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/hc.h"

/* Connections being set up at once: below the listen backlogs of nginx and
 * libmicrohttpd, so no SYN is dropped and retried a second later. */
#define CP_INFLIGHT 128
/* Every connection of hold gets its answer within this, or counts as failed. */
#define CP_SETUP_MS 120000
/* One GET of latency, connect to last byte: 100x the target's 50 ms. */
#define CP_REQUEST_MS 5000
/* The largest N and K: more than a 16-bit port range could ever carry. */
#define CP_CONNS_MAX 60000
#define CP_SECONDS_MAX 3600
/* A response head larger than this is not a file answer. */
#define CP_HEAD_MAX 8192
#define CP_REQ_MAX 1024
/* Reads one readiness event may do before others get their turn. */
#define CP_READS_PER_EVENT 64
#define CP_EVENTS 256
/* Descriptors besides the connections: epoll, signalfd, stdio, margin. */
#define CP_FD_SPARE 16
/* The epoll tag of the signalfd; connections use their index. */
#define CP_TAG_SIGNAL UINT32_MAX

enum cp_phase { CP_CONNECTING, CP_SENDING, CP_HEAD, CP_BODY, CP_DONE, CP_HELD, CP_GONE };

/* One GET on one connection. head is allocated only while the head is read. */
struct cp_req {
	int fd;
	enum cp_phase phase;
	size_t sent;
	char *head;
	size_t head_len;
	long long body_left;
};

/* A request and the place to read bodies into, shared by every connection. */
struct cp_ctx {
	struct sockaddr_in addr;
	char req[CP_REQ_MAX];
	size_t req_len;
	char scratch[65536];
};

static int
cp_usage(void)
{
	fprintf(stderr, "usage: conn-probe hold HOST PORT PATH N SECONDS\n"
	                "       conn-probe latency HOST PORT PATH K\n");
	return 64;
}

/* Fills ctx with HOST:PORT (loopback only) and the GET of path. */
static int
cp_ctx_init(struct cp_ctx *ctx, const char *host, const char *port, const char *path,
            int keep_alive, struct hc_err *err)
{
	long long p;

	memset(&ctx->addr, 0, sizeof(ctx->addr));
	ctx->addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &ctx->addr.sin_addr) != 1)
		return hc_err_set(err, HC_EUSAGE, "%s: not an IPv4 address", host);
	if ((ntohl(ctx->addr.sin_addr.s_addr) >> 24) != 127)
		return hc_err_set(err, HC_EUSAGE, "%s: not in 127.0.0.0/8", host);
	if (hc_parse_int(port, 1, 65535, &p) != 0)
		return hc_err_set(err, HC_EUSAGE, "%s: not a port", port);
	ctx->addr.sin_port = htons((uint16_t)p);
	if (path[0] != '/')
		return hc_err_set(err, HC_EUSAGE, "%s: the path starts with /", path);
	if (hc_snprintf(ctx->req, sizeof(ctx->req),
	                "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: conn-probe\r\n%s\r\n",
	                path, host, port, keep_alive ? "" : "Connection: close\r\n") != 0)
		return hc_err_set(err, HC_EUSAGE, "%s: path too long", path);
	ctx->req_len = strlen(ctx->req);
	return 0;
}

/* Starts a non-blocking connect for r and registers it with ep under tag. */
static int
cp_start(const struct cp_ctx *ctx, int ep, uint32_t tag, struct cp_req *r, struct hc_err *err)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = tag };
	int one = 1;

	r->fd = -1;
	r->phase = CP_CONNECTING;
	r->sent = 0;
	r->head_len = 0;
	r->body_left = -1;
	r->head = malloc(CP_HEAD_MAX);
	if (r->head == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0)
		return hc_err_set(err, HC_EIO, "socket: %s", strerror(errno));
	/* The request goes out in one segment, as a browser's would. */
	setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(r->fd, (const struct sockaddr *)&ctx->addr, sizeof(ctx->addr)) != 0 &&
	    errno != EINPROGRESS)
		return hc_err_set(err, HC_EUNAVAIL, "connect: %s", strerror(errno));
	if (epoll_ctl(ep, EPOLL_CTL_ADD, r->fd, &ev) != 0)
		return hc_err_set(err, HC_EIO, "epoll_ctl: %s", strerror(errno));
	return 0;
}

/* Releases what r holds; safe to call twice. */
static void
cp_close(struct cp_req *r)
{
	free(r->head);
	r->head = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->phase = CP_GONE;
}

/* Parses a complete head: a 200 with a Content-Length. Sets body_left. */
static int
cp_parse_head(struct cp_req *r, size_t head_end, struct hc_err *err)
{
	const char *line = r->head;
	const char *end = r->head + head_end;
	long long len = -1;

	if (strncmp(line, "HTTP/1.1 200 ", 13) != 0 && strncmp(line, "HTTP/1.0 200 ", 13) != 0)
		return hc_err_set(err, HC_EDATA, "answer is not a 200: %.*s",
		                  (int)strcspn(line, "\r\n"), line);
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));

		if (nl == NULL)
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			char num[32];
			size_t n = (size_t)(nl - (line + 15));

			if (n >= sizeof(num))
				return hc_err_set(err, HC_EDATA, "Content-Length too long");
			memcpy(num, line + 15, n);
			num[n] = '\0';
			num[strcspn(num, "\r")] = '\0';
			if (hc_parse_int(num + strspn(num, " \t"), 0, INT64_MAX, &len) != 0)
				return hc_err_set(err, HC_EDATA, "bad Content-Length");
		}
		line = nl + 1;
	}
	if (len < 0)
		return hc_err_set(err, HC_EDATA, "answer has no Content-Length");
	r->body_left = len;
	return 0;
}

/* Takes n bytes read in the head phase: appends, and once the head is whole
 * parses it and counts what follows as body. */
static int
cp_take_head(struct cp_req *r, const char *buf, size_t n, struct hc_err *err)
{
	size_t room = CP_HEAD_MAX - 1 - r->head_len;
	size_t take = n < room ? n : room;
	char *mark;
	size_t head_end;
	size_t extra;

	memcpy(r->head + r->head_len, buf, take);
	r->head_len += take;
	r->head[r->head_len] = '\0';
	mark = strstr(r->head, "\r\n\r\n");
	if (mark == NULL) {
		if (take < n || r->head_len == CP_HEAD_MAX - 1)
			return hc_err_set(err, HC_EDATA, "response head over %d bytes", CP_HEAD_MAX);
		return 0;
	}
	head_end = (size_t)(mark - r->head) + 4;
	if (cp_parse_head(r, head_end, err) != 0)
		return err->status;
	extra = r->head_len - head_end + (n - take);
	if ((long long)extra > r->body_left)
		return hc_err_set(err, HC_EDATA, "more bytes than Content-Length");
	r->body_left -= (long long)extra;
	free(r->head);
	r->head = NULL;
	r->phase = r->body_left == 0 ? CP_DONE : CP_BODY;
	return 0;
}

/* Advances r on a readiness event: connect, send, read. Returns 1 when the
 * answer is complete (phase CP_DONE), 0 to wait for more, negative on error. */
static int
cp_step(struct cp_ctx *ctx, int ep, uint32_t tag, struct cp_req *r, struct hc_err *err)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = tag };
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	int i;

	if (r->phase == CP_CONNECTING) {
		if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr != 0)
			return hc_err_set(err, HC_EUNAVAIL, "connect: %s", strerror(soerr));
		r->phase = CP_SENDING;
	}
	if (r->phase == CP_SENDING) {
		ssize_t w = send(r->fd, ctx->req + r->sent, ctx->req_len - r->sent, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w < 0)
			return hc_err_set(err, HC_EIO, "send: %s", strerror(errno));
		r->sent += (size_t)w;
		if (r->sent < ctx->req_len)
			return 0;
		r->phase = CP_HEAD;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, r->fd, &ev) != 0)
			return hc_err_set(err, HC_EIO, "epoll_ctl: %s", strerror(errno));
		return 0;
	}
	for (i = 0; i < CP_READS_PER_EVENT && r->phase != CP_DONE; i++) {
		ssize_t n = recv(r->fd, ctx->scratch, sizeof(ctx->scratch), 0);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return hc_err_set(err, HC_EIO, "recv: %s", strerror(errno));
		if (n == 0)
			return hc_err_set(err, HC_EIO, "server closed before the end of the answer");
		if (r->phase == CP_HEAD) {
			if (cp_take_head(r, ctx->scratch, (size_t)n, err) != 0)
				return err->status;
		} else if ((long long)n > r->body_left) {
			return hc_err_set(err, HC_EDATA, "more bytes than Content-Length");
		} else {
			r->body_left -= n;
			if (r->body_left == 0)
				r->phase = CP_DONE;
		}
	}
	return r->phase == CP_DONE ? 1 : 0;
}

/* Raises the soft descriptor limit to the hard one; checks that need fit. */
static int
cp_fd_room(long long need, struct hc_err *err)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return hc_err_set(err, HC_EIO, "getrlimit: %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return hc_err_set(err, HC_EIO, "setrlimit: %s", strerror(errno));
	if (rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur < need)
		return hc_err_set(err, HC_EUSAGE, "%lld descriptors needed, the limit is %llu",
		                  need, (unsigned long long)rl.rlim_cur);
	return 0;
}

/* A signalfd for SIGTERM and SIGINT, which are blocked from now on. */
static int
cp_signalfd(int ep, int *out, struct hc_err *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = CP_TAG_SIGNAL };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return hc_err_set(err, HC_EIO, "sigprocmask: %s", strerror(errno));
	*out = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (*out < 0)
		return hc_err_set(err, HC_EIO, "signalfd: %s", strerror(errno));
	if (epoll_ctl(ep, EPOLL_CTL_ADD, *out, &ev) != 0)
		return hc_err_set(err, HC_EIO, "epoll_ctl: %s", strerror(errno));
	return 0;
}

/* Milliseconds left until deadline_us, at least 0, at most cap. */
static int
cp_wait_ms(int64_t deadline_us, int cap)
{
	int64_t left = (deadline_us - hc_now_us() + 999) / 1000;

	if (left < 0)
		return 0;
	return left < cap ? (int)left : cap;
}

/* Holds n connections; see the file comment. Returns 0 or a status. */
static int
cp_hold(struct cp_ctx *ctx, long long n, long long seconds, int *clean, struct hc_err *err)
{
	struct epoll_event evs[CP_EVENTS];
	struct cp_req *c = NULL;
	struct hc_err first = { 0 };
	int ep = -1, sfd = -1, stop = 0, rc = 0;
	long long next = 0, inflight = 0, held = 0, failed = 0, closed = 0, i;
	int64_t t0 = hc_now_us(), deadline;

	*clean = 0;
	if (cp_fd_room(n + CP_FD_SPARE, err) != 0)
		return err->status;
	c = calloc((size_t)n, sizeof(*c));
	if (c == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		c[i].fd = -1;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		rc = hc_err_set(err, HC_EIO, "epoll_create1: %s", strerror(errno));
		goto done;
	}
	rc = cp_signalfd(ep, &sfd, err);
	if (rc != 0)
		goto done;
	deadline = t0 + (int64_t)CP_SETUP_MS * 1000;
	while (!stop && held + failed + closed < n && hc_now_us() < deadline) {
		int k, got;

		while (inflight < CP_INFLIGHT && next < n) {
			if (cp_start(ctx, ep, (uint32_t)next, &c[next], &first) != 0) {
				cp_close(&c[next]);
				failed++;
			} else {
				inflight++;
			}
			next++;
		}
		got = epoll_wait(ep, evs, CP_EVENTS, cp_wait_ms(deadline, 1000));
		if (got < 0 && errno != EINTR) {
			rc = hc_err_set(err, HC_EIO, "epoll_wait: %s", strerror(errno));
			goto done;
		}
		for (k = 0; k < got; k++) {
			uint32_t tag = evs[k].data.u32;
			struct cp_req *r;
			struct hc_err e = { 0 };
			int s;

			if (tag == CP_TAG_SIGNAL) {
				stop = 1;
				continue;
			}
			r = &c[tag];
			if (r->phase == CP_HELD) {
				cp_close(r);
				held--;
				closed++;
				continue;
			}
			if (r->phase == CP_GONE)
				continue;
			s = cp_step(ctx, ep, tag, r, &e);
			if (s == 1) {
				r->phase = CP_HELD;
				held++;
				inflight--;
			} else if (s < 0) {
				if (first.status == 0)
					first = e;
				cp_close(r);
				failed++;
				inflight--;
			}
		}
	}
	/* What has no answer by the deadline counts as failed. */
	for (i = 0; i < next; i++)
		if (c[i].phase != CP_HELD && c[i].phase != CP_GONE) {
			cp_close(&c[i]);
			failed++;
		}
	failed += n - next;
	printf("ready held=%lld failed=%lld ms=%lld\n", held, failed,
	       (long long)((hc_now_us() - t0) / 1000));
	if (first.status != 0)
		printf("first failure: %s\n", first.msg);
	fflush(stdout);
	deadline = hc_now_us() + (int64_t)seconds * 1000000;
	while (!stop && hc_now_us() < deadline) {
		int k, got = epoll_wait(ep, evs, CP_EVENTS, cp_wait_ms(deadline, 1000));

		if (got < 0 && errno != EINTR) {
			rc = hc_err_set(err, HC_EIO, "epoll_wait: %s", strerror(errno));
			goto done;
		}
		for (k = 0; k < got; k++) {
			uint32_t tag = evs[k].data.u32;

			if (tag == CP_TAG_SIGNAL) {
				stop = 1;
			} else if (c[tag].phase == CP_HELD) {
				/* Input on a held connection: a close or an unasked byte. */
				cp_close(&c[tag]);
				held--;
				closed++;
			}
		}
	}
	printf("done held=%lld closed=%lld\n", held, closed);
	*clean = failed == 0 && closed == 0;
done:
	if (c != NULL)
		for (i = 0; i < n; i++)
			cp_close(&c[i]);
	free(c);
	if (sfd >= 0)
		close(sfd);
	if (ep >= 0)
		close(ep);
	return rc;
}

static int
cp_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0-100] of k sorted values. */
static double
cp_pct_ms(const int64_t *v, long long k, int p)
{
	long long rank = (k * p + 99) / 100;

	return (double)v[rank > 0 ? rank - 1 : 0] / 1000.0;
}

/* k sequential fresh-connection GETs; see the file comment. */
static int
cp_latency(struct cp_ctx *ctx, long long k, int *clean, struct hc_err *err)
{
	struct epoll_event evs[1];
	int64_t *us = NULL;
	struct hc_err first = { 0 };
	int ep = -1, rc = 0;
	long long i, failed = 0;

	*clean = 0;
	us = calloc((size_t)k, sizeof(*us));
	if (us == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		rc = hc_err_set(err, HC_EIO, "epoll_create1: %s", strerror(errno));
		goto done;
	}
	for (i = 0; i < k; i++) {
		struct cp_req r = { .fd = -1, .head = NULL };
		struct hc_err e = { 0 };
		int64_t t0 = hc_now_us(), deadline = t0 + (int64_t)CP_REQUEST_MS * 1000;
		int s = cp_start(ctx, ep, 0, &r, &e);

		while (s == 0 && hc_now_us() < deadline) {
			int got = epoll_wait(ep, evs, 1, cp_wait_ms(deadline, CP_REQUEST_MS));

			if (got < 0 && errno != EINTR)
				s = hc_err_set(&e, HC_EIO, "epoll_wait: %s", strerror(errno));
			else if (got > 0)
				s = cp_step(ctx, ep, 0, &r, &e);
		}
		if (s == 1) {
			us[i] = hc_now_us() - t0;
		} else {
			if (s == 0)
				hc_err_set(&e, HC_EUNAVAIL, "no answer within %d ms", CP_REQUEST_MS);
			if (first.status == 0)
				first = e;
			us[i] = (int64_t)CP_REQUEST_MS * 1000;
			failed++;
		}
		cp_close(&r);
	}
	qsort(us, (size_t)k, sizeof(*us), cp_cmp_i64);
	printf("latency n=%lld ok=%lld failed=%lld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", k,
	       k - failed, failed, cp_pct_ms(us, k, 50), cp_pct_ms(us, k, 99),
	       (double)us[k - 1] / 1000.0);
	if (first.status != 0)
		printf("first failure: %s\n", first.msg);
	*clean = failed == 0;
done:
	if (ep >= 0)
		close(ep);
	free(us);
	return rc;
}

int
main(int argc, char **argv)
{
	struct cp_ctx *ctx = NULL;
	struct hc_err err = { 0 };
	long long n = 0, seconds = 0;
	int rc, clean = 0, hold;

	if (argc < 2)
		return cp_usage();
	hold = strcmp(argv[1], "hold") == 0;
	if (hold ? argc != 7 : (strcmp(argv[1], "latency") != 0 || argc != 6))
		return cp_usage();
	if (hc_parse_int(argv[5], 1, CP_CONNS_MAX, &n) != 0 ||
	    (hold && hc_parse_int(argv[6], 0, CP_SECONDS_MAX, &seconds) != 0))
		return cp_usage();
	ctx = malloc(sizeof(*ctx));
	if (ctx == NULL) {
		fprintf(stderr, "conn-probe: out of memory\n");
		return hc_status_exit_code(HC_ENOMEM);
	}
	rc = cp_ctx_init(ctx, argv[2], argv[3], argv[4], hold, &err);
	if (rc == 0)
		rc = hold ? cp_hold(ctx, n, seconds, &clean, &err) : cp_latency(ctx, n, &clean, &err);
	free(ctx);
	fflush(stdout);
	if (rc != 0) {
		fprintf(stderr, "conn-probe: %s\n", err.msg);
		return hc_status_exit_code(rc);
	}
	return clean ? 0 : 1;
}
