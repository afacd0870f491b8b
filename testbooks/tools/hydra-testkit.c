/*
 * hydra-testkit: small helpers that shell tests, testbooks and the demo share.
 *
 *   hydra-testkit free-port [ADDR]          print a TCP and UDP port free on ADDR
 *   hydra-testkit wait-tcp ADDR PORT MS     exit 0 once ADDR:PORT accepts, 1 on timeout
 *   hydra-testkit wait-log FILE TEXT MS     exit 0 once FILE contains TEXT, 1 on timeout
 *   hydra-testkit listen ADDR PORT          accept TCP connections and hold them open
 *                                           until the peer closes (a stand-in body)
 *
 * Waiting is polling with a deadline, never a fixed sleep.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/hc.h"

/* Polling period while waiting: short next to any readiness we wait for. */
#define TESTKIT_POLL_MS 20
/* Longest wait a caller may ask for: ten minutes. */
#define TESTKIT_WAIT_MAX_MS 600000
/* Connections a stand-in body holds at once; more are closed on accept. */
#define TESTKIT_LISTEN_MAX_CONNS 64

static int
testkit_free_port(const char *addr)
{
	struct hc_err err = { 0, "" };
	int port = -1;

	if (hc_free_port(addr, &port, &err) != 0) {
		fprintf(stderr, "hydra-testkit: %s\n", err.msg);
		return 1;
	}
	printf("%d\n", port);
	return 0;
}

static int
testkit_try_connect(const char *addr, int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int ok;

	if (fd < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	ok = inet_pton(AF_INET, addr, &sa.sin_addr) == 1 &&
	     connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int
testkit_file_contains(const char *path, const char *text)
{
	char *buf = NULL;
	size_t len = 0;
	int found;

	/* Test logs are small; 64 MiB bounds a runaway one. */
	if (hc_read_file(path, 64u << 20, &buf, &len, NULL) != 0)
		return 0;
	found = memmem(buf, len, text, strlen(text)) != NULL;
	free(buf);
	return found;
}

static int
testkit_wait(const char *what, int (*ready)(const char *, const char *, int),
             const char *a, const char *b, int port, const char *ms_text)
{
	long long ms;
	int64_t deadline;

	if (hc_parse_int(ms_text, 0, TESTKIT_WAIT_MAX_MS, &ms) != 0) {
		fprintf(stderr, "hydra-testkit: bad timeout '%s'\n", ms_text);
		return 2;
	}
	deadline = hc_now_ms() + ms;
	for (;;) {
		if (ready(a, b, port))
			return 0;
		if (hc_now_ms() >= deadline)
			break;
		poll(NULL, 0, TESTKIT_POLL_MS);
	}
	fprintf(stderr, "hydra-testkit: %s not ready after %lld ms\n", what, ms);
	return 1;
}

static int
testkit_ready_tcp(const char *addr, const char *unused, int port)
{
	(void)unused;
	return testkit_try_connect(addr, port);
}

static int
testkit_ready_log(const char *path, const char *text, int unused)
{
	(void)unused;
	return testkit_file_contains(path, text);
}

static int
testkit_listen(const char *addr, int port)
{
	struct pollfd p[1 + TESTKIT_LISTEN_MAX_CONNS];
	struct sockaddr_in sa;
	char buf[4096];
	size_t n = 1, i;
	int one = 1;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "hydra-testkit: bad address '%s'\n", addr);
		return 2;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
		fprintf(stderr, "hydra-testkit: listen %s:%d: %s\n", addr, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	printf("listening on %s:%d\n", addr, port);
	fflush(stdout);
	p[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
	for (;;) {
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "hydra-testkit: poll: %s\n", strerror(errno));
			return 1;
		}
		for (i = n; i-- > 1;) {
			if (p[i].revents == 0)
				continue;
			if (read(p[i].fd, buf, sizeof(buf)) <= 0) {
				close(p[i].fd);
				p[i] = p[--n];
			}
		}
		if (p[0].revents & POLLIN) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0 && n < 1 + TESTKIT_LISTEN_MAX_CONNS)
				p[n++] = (struct pollfd){ .fd = c, .events = POLLIN };
			else if (c >= 0)
				close(c);
		}
	}
}

int
main(int argc, char **argv)
{
	long long port;

	if (argc >= 2 && strcmp(argv[1], "free-port") == 0 && argc <= 3)
		return testkit_free_port(argc == 3 ? argv[2] : "127.0.0.1");
	if (argc == 5 && strcmp(argv[1], "wait-tcp") == 0) {
		if (hc_parse_int(argv[3], 1, 65535, &port) != 0) {
			fprintf(stderr, "hydra-testkit: bad port '%s'\n", argv[3]);
			return 2;
		}
		return testkit_wait(argv[2], testkit_ready_tcp, argv[2], NULL, (int)port,
		                    argv[4]);
	}
	if (argc == 5 && strcmp(argv[1], "wait-log") == 0)
		return testkit_wait(argv[2], testkit_ready_log, argv[2], argv[3], 0, argv[4]);
	if (argc == 4 && strcmp(argv[1], "listen") == 0) {
		if (hc_parse_int(argv[3], 1, 65535, &port) != 0) {
			fprintf(stderr, "hydra-testkit: bad port '%s'\n", argv[3]);
			return 2;
		}
		return testkit_listen(argv[2], (int)port);
	}
	fprintf(stderr,
	        "usage: hydra-testkit free-port [ADDR]\n"
	        "       hydra-testkit wait-tcp ADDR PORT TIMEOUT_MS\n"
	        "       hydra-testkit wait-log FILE TEXT TIMEOUT_MS\n"
	        "       hydra-testkit listen ADDR PORT\n");
	return 2;
}
