/*
 * The HTTP core against real servers: dnsmasq on a loopback port for names,
 * a UDP socket that never answers for DNS timeouts, nginx for HTTP and for
 * HTTPS with certificates from a test CA made at run time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hc.h"
#include "tests/support/harness.h"

#define BODY_LEN (256 * 1024)
/* Generous next to the 300 ms budget the DNS timeout test gives c-ares. */
#define DNS_TIMEOUT_BUDGET_MS 300
#define SERVER_READY_MS 10000

struct env {
	char dir[PATH_MAX];
	char ca[PATH_MAX];
	char dns_servers[64];
	char silent_dns[64];
	int silent_fd;
	int http_port, https_port, wrong_port, closed_port;
	struct th_proc dnsmasq, nginx;
	char *body;
};

static struct env E;

static int
env_path(char *out, const char *name)
{
	return hc_snprintf(out, PATH_MAX, "%s/%s", E.dir, name);
}

static int
start_dnsmasq(void)
{
	char port[32], log[PATH_MAX];
	int dns_port = th_free_port();
	char *argv[] = {
		"dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts",
		"--pid-file", "--listen-address=127.0.0.1", "--bind-interfaces",
		"--user=root", port, "--local=/experiencenet.com/",
		"--host-record=mirror.experiencenet.com,127.0.0.1",
		"--host-record=other.experiencenet.com,127.0.0.1", NULL,
	};

	if (dns_port < 0 || hc_snprintf(port, sizeof(port), "--port=%d", dns_port) != 0)
		return -1;
	env_path(log, "dnsmasq.log");
	if (th_spawn(&E.dnsmasq, log, argv) != 0 || th_wait_tcp(dns_port, SERVER_READY_MS) != 0)
		return -1;
	return hc_snprintf(E.dns_servers, sizeof(E.dns_servers), "127.0.0.1:%d", dns_port);
}

/* A bound UDP socket that never reads: queries to it time out. */
static int
start_silent_dns(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	E.silent_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (E.silent_fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(E.silent_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(E.silent_fd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	return hc_snprintf(E.silent_dns, sizeof(E.silent_dns), "127.0.0.1:%d",
	                   ntohs(sa.sin_port));
}

static int
start_nginx(void)
{
	char conf[PATH_MAX], log[PATH_MAX], www[PATH_MAX], file[PATH_MAX];
	char text[4096];
	int n;
	char *argv[] = { "nginx", "-p", E.dir, "-c", conf, "-e", log, NULL };

	env_path(conf, "nginx.conf");
	env_path(log, "nginx-error.log");
	env_path(www, "www");
	if (mkdir(www, 0755) != 0)
		return -1;
	hc_snprintf(file, sizeof(file), "%s/www/build.bin", E.dir);
	if (th_write_file(file, E.body, BODY_LEN) != 0)
		return -1;
	hc_snprintf(file, sizeof(file), "%s/www/slow", E.dir);
	if (mkdir(file, 0755) != 0)
		return -1;
	hc_snprintf(file, sizeof(file), "%s/www/slow/build.bin", E.dir);
	if (th_write_file(file, E.body, BODY_LEN) != 0)
		return -1;
	E.http_port = th_free_port();
	E.https_port = th_free_port();
	E.wrong_port = th_free_port();
	n = snprintf(text, sizeof(text),
	    "daemon off; master_process off; worker_processes 1; user root;\n"
	    "pid %s/nginx.pid; error_log %s/nginx-error.log;\n"
	    "events { worker_connections 64; }\n"
	    "http {\n"
	    "  log_format ua '$request|$http_user_agent|$http_range|$http_if_range';\n"
	    "  access_log %s/access.log ua;\n"
	    "  client_body_temp_path %s/t1; proxy_temp_path %s/t2; fastcgi_temp_path %s/t3;\n"
	    "  uwsgi_temp_path %s/t4; scgi_temp_path %s/t5;\n"
	    "  server { listen 127.0.0.1:%d; root %s;\n"
	    "           location /slow/ { limit_rate 1024; }\n"
	    "           location /range/huge { add_header Content-Range\n"
	    "               \"bytes 0-0/99999999999999999999\"; return 200 x; }\n"
	    "           location /range/junk { add_header Content-Range\n"
	    "               \"bytes 0-0/100junk\"; return 200 x; } }\n"
	    "  server { listen 127.0.0.1:%d ssl; root %s;\n"
	    "           ssl_certificate %s/mirror.experiencenet.com.pem;\n"
	    "           ssl_certificate_key %s/mirror.experiencenet.com.key; }\n"
	    "  server { listen 127.0.0.1:%d ssl; root %s;\n"
	    "           ssl_certificate %s/wrong.example.pem;\n"
	    "           ssl_certificate_key %s/wrong.example.key; }\n"
	    "}\n",
	    E.dir, E.dir, E.dir, E.dir, E.dir, E.dir, E.dir, E.dir,
	    E.http_port, www, E.https_port, www, E.dir, E.dir, E.wrong_port, www, E.dir,
	    E.dir);
	if (n < 0 || (size_t)n >= sizeof(text) || th_write_file(conf, text, (size_t)n) != 0)
		return -1;
	if (th_spawn(&E.nginx, log, argv) != 0)
		return -1;
	if (th_wait_tcp(E.http_port, SERVER_READY_MS) != 0 ||
	    th_wait_tcp(E.https_port, SERVER_READY_MS) != 0 ||
	    th_wait_tcp(E.wrong_port, SERVER_READY_MS) != 0)
		return -1;
	return 0;
}

static int
setup(void **state)
{
	char *gen[] = { "sh", "tests/support/gen-certs.sh", E.dir,
	                "mirror.experiencenet.com", "wrong.example", NULL };
	struct hc_err err;
	size_t i;

	(void)state;
	E.silent_fd = -1;
	E.dnsmasq.pid = -1;
	E.nginx.pid = -1;
	if (!th_have("dnsmasq") || !th_have("nginx") || !th_have("openssl")) {
		fprintf(stderr, "dnsmasq, nginx or openssl missing: run make deps\n");
		return -1;
	}
	if (th_tmpdir(E.dir) != 0 || hc_http_global_init(&err) != 0)
		return -1;
	E.body = malloc(BODY_LEN);
	if (E.body == NULL)
		return -1;
	for (i = 0; i < BODY_LEN; i++)
		E.body[i] = (char)(i * 7 + i / 251);
	env_path(E.ca, "ca.pem");
	if (th_run(gen) != 0)
		return -1;
	E.closed_port = th_free_port();
	if (start_dnsmasq() != 0 || start_silent_dns() != 0 || start_nginx() != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	th_stop(&E.nginx);
	th_stop(&E.dnsmasq);
	if (E.silent_fd >= 0)
		close(E.silent_fd);
	if (getenv("KEEP") == NULL)
		th_rm_rf(E.dir);
	free(E.body);
	hc_http_global_cleanup();
	return 0;
}

struct buf {
	char *data;
	size_t len, cap;
	size_t fail_after;   /* 0: never fail */
};

static int
buf_sink(void *ctx, const void *data, size_t len)
{
	struct buf *b = ctx;

	if (b->fail_after > 0 && b->len + len > b->fail_after)
		return -1;
	if (b->len + len > b->cap)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static void
http_config(struct hc_http_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->dns.servers = E.dns_servers;
	cfg->dns.timeout_ms = 2000;
	cfg->ca_file = E.ca;
	cfg->connect_timeout_ms = 2000;
	cfg->total_timeout_ms = 20000;
}

static void
test_dns_resolves_through_dnsmasq(void **state)
{
	struct hc_dns_config dns = { E.dns_servers, 2000, NULL };
	struct hc_dns_result res;
	enum hc_fail fail;
	struct hc_err err;

	(void)state;
	assert_int_equal(hc_dns_resolve(&dns, "mirror.experiencenet.com", &res, &fail, &err), 0);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.addrs[0], "127.0.0.1");
	assert_int_equal(fail, HC_FAIL_NONE);
}

static void
test_dns_nxdomain(void **state)
{
	struct hc_dns_config dns = { E.dns_servers, 2000, NULL };
	struct hc_dns_result res;
	enum hc_fail fail;
	struct hc_err err;

	(void)state;
	assert_int_equal(hc_dns_resolve(&dns, "bxl1.hydramirror.experiencenet.com", &res,
	                                &fail, &err), HC_EUNAVAIL);
	assert_int_equal(fail, HC_FAIL_DNS_NXDOMAIN);
	assert_string_equal(err.msg, "lookup bxl1.hydramirror.experiencenet.com: no such host");
}

static void
test_dns_timeout(void **state)
{
	struct hc_dns_config dns = { E.silent_dns, DNS_TIMEOUT_BUDGET_MS, NULL };
	struct hc_dns_result res;
	enum hc_fail fail;
	struct hc_err err;
	int64_t start = hc_now_ms(), took;

	(void)state;
	assert_int_equal(hc_dns_resolve(&dns, "mirror.experiencenet.com", &res, &fail, &err),
	                 HC_EUNAVAIL);
	took = hc_now_ms() - start;
	assert_int_equal(fail, HC_FAIL_DNS_TIMEOUT);
	assert_string_equal(err.msg, "lookup mirror.experiencenet.com: timeout");
	/* The budget holds: not a c-ares default of seconds per try. */
	assert_true(took < 5 * DNS_TIMEOUT_BUDGET_MS);
}

/* A stop request ends a lookup at once instead of after its whole budget. */
static void
test_dns_cancel(void **state)
{
	volatile int stop = 1;
	struct hc_dns_config dns = { E.silent_dns, 20000, &stop };
	struct hc_dns_result res;
	enum hc_fail fail;
	struct hc_err err;
	int64_t start = hc_now_ms();

	(void)state;
	assert_int_equal(hc_dns_resolve(&dns, "mirror.experiencenet.com", &res, &fail, &err),
	                 HC_EUNAVAIL);
	assert_int_equal(fail, HC_FAIL_DNS_TIMEOUT);
	/* 20 s budget; a cancelled lookup returns within a slice. */
	assert_true(hc_now_ms() - start < 2000);
}

static void
test_http_get_head_range(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct buf b = { malloc(BODY_LEN), 0, BODY_LEN, 0 };
	struct hc_err err;
	char url[256];

	(void)state;
	assert_non_null(b.data);
	http_config(&cfg);
	snprintf(url, sizeof(url), "http://mirror.experiencenet.com:%d/build.bin", E.http_port);
	req.url = url;
	req.sink = buf_sink;
	req.ctx = &b;
	req.fail_on_http_error = 1;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.content_length, BODY_LEN);
	assert_int_equal(b.len, BODY_LEN);
	assert_memory_equal(b.data, E.body, BODY_LEN);
	assert_string_equal(resp.primary_ip, "127.0.0.1");
	assert_true(resp.etag[0] == '"');

	/* HEAD: headers only. */
	b.len = 0;
	req.method = "HEAD";
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.content_length, BODY_LEN);
	assert_int_equal(b.len, 0);

	/* Range with If-Range carrying the ETag: 206 from the offset. */
	req.method = "GET";
	req.range_from = 1000;
	req.if_range = resp.etag;
	{
		char etag[HC_HTTP_HEADER_VALUE_MAX];
		memcpy(etag, resp.etag, sizeof(etag));
		req.if_range = etag;
		assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), 0);
	}
	assert_int_equal(resp.status, 206);
	assert_int_equal(resp.range_start, 1000);
	assert_int_equal(resp.range_total, BODY_LEN);
	assert_int_equal(b.len, BODY_LEN - 1000);
	assert_memory_equal(b.data, E.body + 1000, BODY_LEN - 1000);
	free(b.data);
}

static void
test_http_status_and_user_agent(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct hc_err err;
	char url[256], log[PATH_MAX];
	char *text = NULL;
	size_t len;

	(void)state;
	http_config(&cfg);
	snprintf(url, sizeof(url), "http://mirror.experiencenet.com:%d/missing.zip", E.http_port);
	req.url = url;
	req.fail_on_http_error = 1;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), HC_EUNAVAIL);
	assert_int_equal(resp.fail, HC_FAIL_HTTP_STATUS);
	assert_int_equal(resp.status, 404);
	assert_string_equal(err.msg, "HTTP 404");
	/* nginx writes its access log line after the response has gone out, so
	 * the line may lag the client: poll for it. */
	env_path(log, "access.log");
	{
		int64_t deadline = hc_now_ms() + SERVER_READY_MS;
		int found = 0;

		while (!found && hc_now_ms() < deadline) {
			if (hc_read_file(log, 1 << 20, &text, &len, &err) == 0) {
				found = strstr(text, "GET /missing.zip HTTP/1.1|hydra-agent/"
				               HC_VERSION "|") != NULL;
				free(text);
				text = NULL;
			}
			if (!found)
				poll(NULL, 0, 20);
		}
		assert_true(found);
	}
}

static void
test_https_with_test_ca(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct buf b = { malloc(BODY_LEN), 0, BODY_LEN, 0 };
	struct hc_err err;
	char url[256];

	(void)state;
	assert_non_null(b.data);
	http_config(&cfg);
	snprintf(url, sizeof(url), "https://mirror.experiencenet.com:%d/build.bin", E.https_port);
	req.url = url;
	req.sink = buf_sink;
	req.ctx = &b;
	req.fail_on_http_error = 1;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(b.len, BODY_LEN);
	assert_memory_equal(b.data, E.body, BODY_LEN);
	free(b.data);
}

static void
test_https_wrong_name_is_tls(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct hc_err err;
	char url[256];

	(void)state;
	http_config(&cfg);
	/* The name resolves, the certificate is for wrong.example. */
	snprintf(url, sizeof(url), "https://mirror.experiencenet.com:%d/build.bin", E.wrong_port);
	req.url = url;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), HC_EUNAVAIL);
	assert_int_equal(resp.fail, HC_FAIL_TLS);
	assert_int_equal(strncmp(err.msg, "TLS mirror.experiencenet.com: ", 30), 0);
}

static void
test_https_unknown_ca_is_tls(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct hc_err err;
	char url[256];

	(void)state;
	http_config(&cfg);
	cfg.ca_file = NULL;  /* the system store does not know the test CA */
	snprintf(url, sizeof(url), "https://mirror.experiencenet.com:%d/build.bin", E.https_port);
	req.url = url;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), HC_EUNAVAIL);
	assert_int_equal(resp.fail, HC_FAIL_TLS);
}

static void
test_connect_refused(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct hc_err err;
	char url[256], want[256];

	(void)state;
	http_config(&cfg);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/build.bin", E.closed_port);
	req.url = url;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), HC_EUNAVAIL);
	assert_int_equal(resp.fail, HC_FAIL_CONNECT_REFUSED);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%d: Connection refused", E.closed_port);
	assert_string_equal(err.msg, want);
}

static void
test_stall_detected(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct hc_err err;
	char url[256];

	(void)state;
	http_config(&cfg);
	cfg.stall_bytes_per_s = 64 * 1024;  /* nginx sends 1 KiB/s on /slow/ */
	cfg.stall_seconds = 1;
	snprintf(url, sizeof(url), "http://mirror.experiencenet.com:%d/slow/build.bin",
	         E.http_port);
	req.url = url;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), HC_EUNAVAIL);
	assert_int_equal(resp.fail, HC_FAIL_STALL);
	assert_string_equal(err.msg,
	    "mirror.experiencenet.com: stalled below 65536 bytes/s for 1 s");
	assert_true(resp.body_bytes < BODY_LEN);
}

static void
test_sink_failure_is_io(void **state)
{
	struct hc_http_config cfg;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct buf b = { malloc(BODY_LEN), 0, BODY_LEN, 1000 };
	struct hc_err err;
	char url[256];

	(void)state;
	assert_non_null(b.data);
	http_config(&cfg);
	snprintf(url, sizeof(url), "http://mirror.experiencenet.com:%d/build.bin", E.http_port);
	req.url = url;
	req.sink = buf_sink;
	req.ctx = &b;
	assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), HC_EIO);
	assert_int_equal(resp.fail, HC_FAIL_IO);
	free(b.data);
}

/* A Content-Range that overflows or trails junk says nothing: neither a
 * clamped total nor the digits before the junk may reach the resume logic. */
static void
test_bad_content_range_ignored(void **state)
{
	static const char *const paths[] = { "/range/huge", "/range/junk" };
	struct hc_http_config cfg;
	struct hc_http_response resp;
	struct hc_err err;
	char url[256];
	size_t i;

	(void)state;
	http_config(&cfg);
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct hc_http_request req = { 0 };

		snprintf(url, sizeof(url), "http://mirror.experiencenet.com:%d%s", E.http_port,
		         paths[i]);
		req.url = url;
		assert_int_equal(hc_http_request(&cfg, &req, &resp, &err), 0);
		assert_int_equal(resp.status, 200);
		assert_int_equal(resp.range_start, -1);
		assert_int_equal(resp.range_total, -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_resolves_through_dnsmasq),
		cmocka_unit_test(test_dns_nxdomain),
		cmocka_unit_test(test_dns_timeout),
		cmocka_unit_test(test_dns_cancel),
		cmocka_unit_test(test_http_get_head_range),
		cmocka_unit_test(test_http_status_and_user_agent),
		cmocka_unit_test(test_https_with_test_ca),
		cmocka_unit_test(test_https_wrong_name_is_tls),
		cmocka_unit_test(test_https_unknown_ca_is_tls),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_stall_detected),
		cmocka_unit_test(test_sink_failure_is_io),
		cmocka_unit_test(test_bad_content_range_ignored),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
