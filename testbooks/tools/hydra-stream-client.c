/*
 * hydra-stream-client: the stand-in for Moonlight in tests and testbooks.
 *
 *   hydra-stream-client IP PORT [CONNECT_TIMEOUT_MS]
 *
 * Connects to IP:PORT and holds the connection: exits 0 on SIGTERM or SIGINT,
 * 3 when the peer closes, and 1 at once (within the timeout, default 2000 ms)
 * when it cannot connect, the way Moonlight quits when pairing fails.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/hc.h"

#define CLIENT_DEFAULT_TIMEOUT_MS 2000
/* Ten minutes: beyond any connect a test waits for. */
#define CLIENT_TIMEOUT_MAX_MS 600000

/* How long a stop signal can go unnoticed. */
#define CLIENT_SIGNAL_SLICE_MS 200

static volatile sig_atomic_t client_stop;

static void
client_on_signal(int sig)
{
	client_stop = sig;
}

static int
client_connect(const char *ip, int port, int timeout_ms, char *why, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct pollfd p;
	int e = 0;
	socklen_t elen = sizeof(e);
	int fd;

	if (hc_sockaddr_from_ip(ip, port, &ss, &len) != 0) {
		hc_snprintf(why, size, "not an IP address");
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		hc_snprintf(why, size, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		hc_snprintf(why, size, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&p, 1, timeout_ms) <= 0) {
		hc_snprintf(why, size, "no answer within %d ms", timeout_ms);
		close(fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
		e = errno;
	if (e != 0) {
		hc_snprintf(why, size, "%s", strerror(e));
		close(fd);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	long long port, timeout = CLIENT_DEFAULT_TIMEOUT_MS;
	char why[256] = "";
	char buf[4096];
	int fd;

	if (argc < 3 || argc > 4 || hc_parse_int(argv[2], 1, 65535, &port) != 0 ||
	    (argc == 4 && hc_parse_int(argv[3], 1, CLIENT_TIMEOUT_MAX_MS, &timeout) != 0)) {
		fprintf(stderr, "usage: hydra-stream-client IP PORT [CONNECT_TIMEOUT_MS]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = client_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = client_connect(argv[1], (int)port, (int)timeout, why, sizeof(why));
	if (fd < 0) {
		fprintf(stderr, "hydra-stream-client: connect %s:%lld: %s\n", argv[1], port, why);
		return 1;
	}
	fprintf(stderr, "hydra-stream-client: streaming from %s:%lld\n", argv[1], port);
	while (!client_stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		/* A slice, so a signal landing just before poll is seen soon. */
		if (poll(&p, 1, CLIENT_SIGNAL_SLICE_MS) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
			fprintf(stderr, "hydra-stream-client: %s:%lld closed the stream\n", argv[1],
			        port);
			close(fd);
			return 3;
		}
	}
	fprintf(stderr, "hydra-stream-client: stopped by signal %d\n", (int)client_stop);
	close(fd);
	return 0;
}
