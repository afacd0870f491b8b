/*
 * The fill's state machine, driven through a real peer (mir_server_start in
 * this process) in front of a scripted origin (libmicrohttpd, also here)
 * whose answers the test holds back and releases: WAIT_HEADERS, STREAMING
 * with readers joining, DONE then a hit, FAILED on a 404, a 500 and a wrong
 * digest, and nothing cached after a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hc.h"
#include "mirror/mirror.h"
#include "tests/support/harness.h"

/* The file the origin streams: large enough to arrive in many pieces. */
#define BODY_LEN (256 * 1024)
/* Bytes the origin sends before it waits for the gate. */
#define BEFORE_GATE (64 * 1024)
/* Longest any wait in this test may take: far beyond a loopback fill. */
#define WAIT_MS 10000
#define CLIENTS 3

static struct {
	char dir[PATH_MAX];
	struct MHD_Daemon *origin;
	struct mir_server *peer;
	struct mir_config cfg;
	int peer_port;
	unsigned char body[BODY_LEN];
	char sha[HC_SHA256_HEX_LEN + 1];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int gate_open;
	atomic_int requests[4];         /* gate, bad, missing, broken */
} E;

enum { P_GATE, P_BAD, P_MISSING, P_BROKEN };

static const char *const names[] = { "gate.bin", "bad.bin", "missing.bin", "broken.bin" };

/* ------------------------------------------------------------ the origin */

static ssize_t
origin_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	if (pos >= BODY_LEN)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (pos >= BEFORE_GATE) {
		pthread_mutex_lock(&E.mu);
		while (!E.gate_open)
			hc_cond_wait_ms(&E.cv, &E.mu, 100);
		pthread_mutex_unlock(&E.mu);
	}
	if (max > BODY_LEN - pos)
		max = (size_t)(BODY_LEN - pos);
	if (pos < BEFORE_GATE && max > BEFORE_GATE - pos)
		max = (size_t)(BEFORE_GATE - pos);
	memcpy(buf, E.body + pos, max);
	return (ssize_t)max;
}

static enum MHD_Result
origin_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
              const char *version, const char *upload, size_t *upload_size, void **ctx)
{
	struct MHD_Response *resp;
	const char *name = strrchr(url, '/');
	enum MHD_Result ret;
	int i, which = -1;

	(void)cls;
	(void)method;
	(void)version;
	(void)upload;
	(void)upload_size;
	if (*ctx == NULL) {
		*ctx = c;
		return MHD_YES;
	}
	for (i = 0; i < 4 && name != NULL; i++)
		if (strcmp(name + 1, names[i]) == 0)
			which = i;
	if (which < 0 || which == P_MISSING || which == P_BROKEN) {
		if (which >= 0)
			atomic_fetch_add(&E.requests[which], 1);
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(c, which == P_BROKEN ? 500 : 404, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	atomic_fetch_add(&E.requests[which], 1);
	resp = MHD_create_response_from_callback(BODY_LEN, 32 * 1024, origin_read, NULL, NULL);
	/* bad.bin claims the digest of other bytes. */
	MHD_add_response_header(resp, "X-File-SHA256", which == P_BAD ?
	                        "0000000000000000000000000000000000000000000000000000000000000000" :
	                        E.sha);
	ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ------------------------------------------------------------ clients */

struct client {
	pthread_t t;
	const char *name;
	atomic_size_t got;
	unsigned char *buf;
	int rc;
	long status;
	char sha[HC_SHA256_HEX_LEN + 1];
};

static int
client_sink(void *ctx, const void *data, size_t len)
{
	struct client *cl = ctx;
	size_t got = atomic_load(&cl->got);

	if (got + len > BODY_LEN)
		return 1;
	memcpy(cl->buf + got, data, len);
	atomic_store(&cl->got, got + len);
	return 0;
}

static void *
client_main(void *arg)
{
	struct client *cl = arg;
	struct hc_http_config cfg;
	struct hc_http_request req;
	struct hc_http_response resp;
	struct hc_err err = { 0, "" };
	char url[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.dns.timeout_ms = 1000;
	cfg.total_timeout_ms = WAIT_MS;
	memset(&req, 0, sizeof(req));
	hc_snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/peer/files/%s", E.peer_port,
	            cl->name);
	req.url = url;
	req.sink = client_sink;
	req.ctx = cl;
	cl->rc = hc_http_request(&cfg, &req, &resp, &err);
	cl->status = resp.status;
	memcpy(cl->sha, resp.sha256, sizeof(cl->sha));
	return NULL;
}

static void
client_start(struct client *cl, const char *name)
{
	memset(cl, 0, sizeof(*cl));
	cl->name = name;
	cl->buf = malloc(BODY_LEN);
	assert_non_null(cl->buf);
	assert_int_equal(pthread_create(&cl->t, NULL, client_main, cl), 0);
}

/* One client to its end; free its buffer with client_free. */
static void
client_run(struct client *cl, const char *name)
{
	client_start(cl, name);
	pthread_join(cl->t, NULL);
}

static void
client_free(struct client *cl)
{
	free(cl->buf);
	cl->buf = NULL;
}

/* Polls until *v reaches want or WAIT_MS pass; returns the last value. */
static size_t
wait_at_least(atomic_size_t *v, size_t want)
{
	int64_t end = hc_now_ms() + WAIT_MS;

	while (atomic_load(v) < want && hc_now_ms() < end)
		usleep(10 * 1000);
	return atomic_load(v);
}

/* ------------------------------------------------------------ tests */

/* WAIT_HEADERS then STREAMING: the first bytes reach every client while
 * the origin still holds the rest back, all through one origin transfer;
 * a client arriving mid-stream joins it. DONE: every client gets the whole
 * file with the origin's digest, and the next request is a hit. */
static void
test_fill_streams_joins_and_completes(void **state)
{
	struct client cl[CLIENTS + 1], hit;
	int i;

	(void)state;
	for (i = 0; i < CLIENTS; i++)
		client_start(&cl[i], "gate.bin");
	for (i = 0; i < CLIENTS; i++)
		assert_true(wait_at_least(&cl[i].got, 1) > 0);
	client_start(&cl[CLIENTS], "gate.bin");
	assert_true(wait_at_least(&cl[CLIENTS].got, 1) > 0);
	for (i = 0; i <= CLIENTS; i++)
		assert_true(atomic_load(&cl[i].got) <= BEFORE_GATE);
	assert_int_equal(atomic_load(&E.requests[P_GATE]), 1);

	pthread_mutex_lock(&E.mu);
	E.gate_open = 1;
	pthread_cond_broadcast(&E.cv);
	pthread_mutex_unlock(&E.mu);
	for (i = 0; i <= CLIENTS; i++) {
		pthread_join(cl[i].t, NULL);
		assert_int_equal(cl[i].rc, 0);
		assert_int_equal(cl[i].status, 200);
		assert_int_equal(atomic_load(&cl[i].got), BODY_LEN);
		assert_memory_equal(cl[i].buf, E.body, BODY_LEN);
		assert_string_equal(cl[i].sha, E.sha);
		free(cl[i].buf);
	}
	client_run(&hit, "gate.bin");
	assert_int_equal(hit.status, 200);
	assert_int_equal(atomic_load(&hit.got), BODY_LEN);
	assert_string_equal(hit.sha, E.sha);
	client_free(&hit);
	assert_int_equal(atomic_load(&E.requests[P_GATE]), 1);
}

/* STREAMING then FAILED: bytes that do not match the origin's digest never
 * reach a clean end (the last byte is held back, the connection aborted)
 * and are not cached: the next request is another fill. */
static void
test_fill_wrong_digest_fails_and_caches_nothing(void **state)
{
	struct client cl;

	(void)state;
	pthread_mutex_lock(&E.mu);
	E.gate_open = 0;
	pthread_mutex_unlock(&E.mu);
	client_start(&cl, "bad.bin");
	assert_true(wait_at_least(&cl.got, 1) > 0);
	pthread_mutex_lock(&E.mu);
	E.gate_open = 1;
	pthread_cond_broadcast(&E.cv);
	pthread_mutex_unlock(&E.mu);
	pthread_join(cl.t, NULL);
	assert_int_equal(cl.status, 200);
	assert_int_not_equal(cl.rc, 0);
	assert_true(atomic_load(&cl.got) < BODY_LEN);
	client_free(&cl);
	/* A second fill, not a hit: cut the same way, or a 502 when it failed
	 * before this client looked; never a clean 200. */
	client_run(&cl, "bad.bin");
	assert_false(cl.rc == 0 && cl.status == 200);
	client_free(&cl);
	assert_int_equal(atomic_load(&E.requests[P_BAD]), 2);
}

/* WAIT_HEADERS then FAILED: a 404 from the origin is a 404, anything else
 * a 502; a failed fill leaves nothing to join, the next asks again. */
static void
test_fill_origin_errors(void **state)
{
	struct client cl;

	(void)state;
	client_run(&cl, "missing.bin");
	assert_int_equal(cl.status, 404);
	client_free(&cl);
	client_run(&cl, "broken.bin");
	assert_int_equal(cl.status, 502);
	client_free(&cl);
	client_run(&cl, "broken.bin");
	assert_int_equal(cl.status, 502);
	client_free(&cl);
	assert_int_equal(atomic_load(&E.requests[P_MISSING]), 1);
	assert_int_equal(atomic_load(&E.requests[P_BROKEN]), 2);
}

/* ------------------------------------------------------------ set-up */

static int
setup(void **state)
{
	struct hc_err err = { 0, "" };
	struct hc_sha256 *h;
	char listen[64], origin[96], root[PATH_MAX + 8];
	const union MHD_DaemonInfo *info;
	int origin_port, i;

	(void)state;
	pthread_mutex_init(&E.mu, NULL);
	pthread_cond_init(&E.cv, NULL);
	for (i = 0; i < BODY_LEN; i++)
		E.body[i] = (unsigned char)(i * 7 + i / 251);
	h = hc_sha256_new();
	if (h == NULL)
		return -1;
	hc_sha256_update(h, E.body, BODY_LEN);
	hc_sha256_hex(h, E.sha);
	hc_sha256_free(h);
	if (th_tmpdir(E.dir) != 0 || hc_http_global_init(&err) != 0)
		return -1;
	hc_log_open(NULL, HC_LOG_ERROR, 0, NULL); /* quiet: outcomes are asserted */
	/* Port 0 on both: the kernel's choice, so no other test can take it
	 * between a lookup and the bind. */
	E.origin = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
	                            0, NULL, NULL, origin_handle, NULL, MHD_OPTION_END);
	if (E.origin == NULL || mir_config_defaults(&E.cfg, &err) != 0)
		return -1;
	info = MHD_get_daemon_info(E.origin, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0)
		return -1;
	origin_port = info->port;
	hc_snprintf(listen, sizeof(listen), "127.0.0.1:0");
	hc_snprintf(origin, sizeof(origin), "http://127.0.0.1:%d/", origin_port);
	hc_snprintf(root, sizeof(root), "%s/peer", E.dir);
	free(E.cfg.listen);
	free(E.cfg.root);
	free(E.cfg.origin_url);
	E.cfg.listen = hc_strdup(listen);
	E.cfg.root = hc_strdup(root);
	E.cfg.origin_url = hc_strdup(origin);
	E.cfg.mode = MIR_MODE_PEER;
	if (E.cfg.listen == NULL || E.cfg.root == NULL || E.cfg.origin_url == NULL)
		return -1;
	if (mir_server_start(&E.cfg, NULL, &E.peer, &err) != 0)
		return -1;
	E.peer_port = mir_server_port(E.peer);
	return E.peer_port > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	pthread_mutex_lock(&E.mu);
	E.gate_open = 1;
	pthread_cond_broadcast(&E.cv);
	pthread_mutex_unlock(&E.mu);
	mir_server_stop(E.peer);
	if (E.origin != NULL)
		MHD_stop_daemon(E.origin);
	mir_config_free(&E.cfg);
	hc_http_global_cleanup();
	hc_log_close();
	th_rm_rf(E.dir);
	pthread_cond_destroy(&E.cv);
	pthread_mutex_destroy(&E.mu);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fill_streams_joins_and_completes),
		cmocka_unit_test(test_fill_wrong_digest_fails_and_caches_nothing),
		cmocka_unit_test(test_fill_origin_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
