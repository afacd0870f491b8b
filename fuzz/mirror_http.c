/*
 * hydra-mirror's request handling, through a socket on loopback: the server
 * has no public entry that takes a request without one. One origin serves a
 * store holding a.txt, with a secret file beside the store. Input: the raw
 * bytes of one connection (request head and body). The server answers with
 * a status line or closes, never sends the secret, and answers the next
 * client.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fuzz/lib/support.h"
#include "mirror/mirror.h"

/* A server taking thousands of connections a second may refuse one while it
 * reaps closed ones: the health check is tried this often, this far apart
 * (a second in all) before the server counts as stuck. */
#define FZ_HEALTH_TRIES 20
#define FZ_HEALTH_PAUSE_US 50000
/* One answer of the store's small files, headers included, fits well. */
#define FZ_ANSWER_MAX (256 * 1024)
/* A request that gets no answer within this is a hang worth reporting
 * (libFuzzer's -timeout stops the run); an answer comes in milliseconds. */
#define FZ_IO_TIMEOUT_S 5

static const char secret[] = "TOP-SECRET-7c0ffee";
static const char token[] = "fuzz-token-0123456789abcdef";
static struct mir_config cfg;
static struct mir_server *srv;
static int port;

/* Runs before the scratch folder goes (atexit runs in reverse order). */
static void
stop_server(void)
{
	mir_server_stop(srv);
	srv = NULL;
	mir_config_free(&cfg);
}

static void
setup(void)
{
	struct hc_err err = { 0, "" };
	char root[PATH_MAX], files[PATH_MAX], listen[64];

	if (srv != NULL)
		return;
	if (hc_snprintf(root, sizeof(root), "%s/root", fz_scratch()) != 0 ||
	    hc_snprintf(files, sizeof(files), "%s/files/tools", root) != 0 ||
	    hc_mkdir_p(files, 0755, &err) != 0)
		fz_fail("cannot create the store");
	fz_write(files, "a.txt", "hello\n", 6);
	fz_write(fz_scratch(), "secret", secret, sizeof(secret) - 1);
	fz_write(root, "secret", secret, sizeof(secret) - 1);
	if (hc_free_port("127.0.0.1", &port, &err) != 0)
		fz_fail(err.msg);
	if (mir_config_defaults(&cfg, &err) != 0 ||
	    hc_snprintf(listen, sizeof(listen), "127.0.0.1:%d", port) != 0)
		fz_fail("mirror config");
	free(cfg.listen);
	free(cfg.root);
	cfg.listen = hc_strdup(listen);
	cfg.root = hc_strdup(root);
	cfg.mode = MIR_MODE_ORIGIN;
	if (cfg.listen == NULL || cfg.root == NULL || mir_server_start(&cfg, token, &srv, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		fz_fail("cannot start the mirror");
	}
	atexit(stop_server);
}

/* Sends data on a fresh connection, closes the sending side and reads the
 * answer (at most FZ_ANSWER_MAX bytes) into buf. Returns its length, or 0
 * when the connection was refused. */
static size_t
exchange(const void *data, size_t size, char *buf)
{
	struct timeval tv = { FZ_IO_TIMEOUT_S, 0 };
	/* Close with a reset: thousands of connections a second would otherwise
	 * leave as many in TIME_WAIT and use up the machine's loopback ports. */
	struct linger reset = { 1, 0 };
	struct sockaddr_in a;
	size_t got = 0, sent = 0;
	int fd;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) != 0)
		fz_fail("cannot make a client socket");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return 0;
	}
	while (sent < size) {
		ssize_t n = send(fd, (const char *)data + sent, size - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break;  /* the server may answer and close before reading all */
		sent += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	while (got < FZ_ANSWER_MAX) {
		ssize_t n = recv(fd, buf + got, FZ_ANSWER_MAX - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return got;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char health[] = "GET /api/v1/health HTTP/1.1\r\nHost: m\r\n\r\n";
	static char buf[FZ_ANSWER_MAX];
	size_t n;
	int tries;

	fz_quiet();
	setup();
	n = exchange(data, size, buf);
	if (n > 0 && (n < 12 || memcmp(buf, "HTTP/1.", 7) != 0))
		fz_fail("an answer that does not start with a status line");
	if (memmem(buf, n, secret, sizeof(secret) - 1) != NULL)
		fz_fail("the mirror sent a file from outside its store");
	for (tries = 0; tries < FZ_HEALTH_TRIES; tries++) {
		n = exchange(health, sizeof(health) - 1, buf);
		if (n >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0)
			return 0;
		usleep(FZ_HEALTH_PAUSE_US);
	}
	fprintf(stderr, "health answer (%zu bytes): %.*s\n", n, (int)(n < 200 ? n : 200), buf);
	fz_fail("the mirror stopped answering its health check");
}
