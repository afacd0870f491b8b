/* discovery: eligible-list parsing, the failover choice of both modes on a
 * table of fleet layouts, the cache and demotion files, {ip} substitution. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "discovery/discovery.h"

/* A fresh directory for one test, named into dir. */
static void
make_tmpdir(char *dir, size_t size)
{
	assert_int_equal(hc_strlcpy(dir, "/tmp/test_discovery.XXXXXX", size), 0);
	assert_non_null(mkdtemp(dir));
}

/* ------------------------------------------------------------ parsing */

static const char *const good_list =
	"{\"bodies\": ["
	"{\"node_id\": \"node-74f9fbf2\", \"name\": \"boom-pickle-38\", \"district\": \"bxl1\","
	" \"venue\": \"rupelmonde\", \"owner\": \"visit.flanders\", \"lan_ip\": \"127.11.0.24\","
	" \"wg_ip\": \"127.10.100.24\", \"status\": \"online\", \"drained\": false,"
	" \"idle\": true, \"vram_mb\": 24576, \"same_venue\": true,"
	" \"latency_ms\": 3, \"tags\": [\"new\", {\"x\": 1}]},"
	"{\"node_id\": \"node-4c2be4b0\", \"name\": \"cosmic-pretzel-98\", \"lan_ip\": \"\","
	" \"wg_ip\": \"127.10.100.12\", \"same_venue\": false},"
	"{\"node_id\": \"node-6\", \"name\": \"six\", \"lan_ip\": \"::1\", \"wg_ip\": null,"
	" \"same_venue\": false}"
	"], \"generated_at\": \"2026-11-22T18:32:00Z\"}";

static void
test_parse_ok_extra_fields(void **state)
{
	struct disc_list *l = malloc(sizeof(*l));
	struct hc_err err = { 0, "" };

	(void)state;
	assert_non_null(l);
	assert_int_equal(disc_parse_eligible(good_list, strlen(good_list), l, &err), 0);
	assert_int_equal(l->n, 3);
	assert_string_equal(l->bodies[0].node_id, "node-74f9fbf2");
	assert_string_equal(l->bodies[0].name, "boom-pickle-38");
	assert_string_equal(l->bodies[0].lan_ip, "127.11.0.24");
	assert_string_equal(l->bodies[0].wg_ip, "127.10.100.24");
	assert_string_equal(l->bodies[0].owner, "visit.flanders");
	assert_int_equal(l->bodies[0].same_venue, 1);
	assert_string_equal(l->bodies[1].lan_ip, "");
	assert_string_equal(l->bodies[1].wg_ip, "127.10.100.12");
	assert_string_equal(l->bodies[1].district, "");
	assert_int_equal(l->bodies[1].same_venue, 0);
	assert_string_equal(l->bodies[2].lan_ip, "::1");
	assert_string_equal(l->bodies[2].wg_ip, "");
	/* No partition field: nothing says other venues were left out. */
	assert_int_equal(l->gated, 0);
	free(l);
}

/* The quickroute partition is a gate: the client learns it from the answer. */
static void
test_parse_partition(void **state)
{
	static const char q[] = "{\"bodies\": [], \"partition\": \"quickroute\"}";
	static const char x[] = "{\"bodies\": [], \"partition\": \"cross_venue\"}";
	static const char bad[] = "{\"bodies\": [], \"partition\": 3}";
	struct disc_list *l = malloc(sizeof(*l));
	struct hc_err err = { 0, "" };

	(void)state;
	assert_non_null(l);
	assert_int_equal(disc_parse_eligible(q, strlen(q), l, &err), 0);
	assert_int_equal(l->gated, 1);
	assert_int_equal(disc_parse_eligible(x, strlen(x), l, &err), 0);
	assert_int_equal(l->gated, 0);
	assert_int_equal(disc_parse_eligible(bad, strlen(bad), l, &err), HC_EDATA);
	assert_string_equal(err.msg,
	                    "eligible list: field 'partition': expected a string, got an integer");
	free(l);
}

static void
expect_parse_error(const char *text, const char *want)
{
	struct disc_list *l = malloc(sizeof(*l));
	struct hc_err err = { 0, "" };

	assert_non_null(l);
	assert_int_equal(disc_parse_eligible(text, strlen(text), l, &err), HC_EDATA);
	if (strstr(err.msg, want) == NULL)
		fail_msg("error '%s' does not contain '%s'", err.msg, want);
	free(l);
}

static void
test_parse_missing_fields_named(void **state)
{
	(void)state;
	expect_parse_error("{\"bodies\": [{\"node_id\": \"a\", \"name\": \"a\", \"lan_ip\": \"\","
	                   " \"wg_ip\": \"\", \"same_venue\": true}, {\"node_id\": \"b\","
	                   " \"name\": \"b\", \"lan_ip\": \"127.0.0.2\", \"same_venue\": true}]}",
	                   "bodies[1]: missing field 'wg_ip'");
	expect_parse_error("{\"bodies\": [{\"name\": \"a\", \"lan_ip\": \"\", \"wg_ip\": \"\","
	                   " \"same_venue\": true}]}", "bodies[0]: missing field 'node_id'");
	expect_parse_error("{\"bodies\": [{\"node_id\": \"a\", \"name\": \"a\", \"wg_ip\": \"\","
	                   " \"same_venue\": true}]}", "missing field 'lan_ip'");
	expect_parse_error("{\"bodies\": [{\"node_id\": \"a\", \"name\": \"a\", \"lan_ip\": \"\","
	                   " \"wg_ip\": \"\"}]}", "missing field 'same_venue'");
	expect_parse_error("{\"bodies\": [{\"node_id\": \"a\", \"lan_ip\": \"\", \"wg_ip\": \"\","
	                   " \"same_venue\": true}]}", "missing field 'name'");
	expect_parse_error("{\"nodes\": []}", "missing field 'bodies'");
	expect_parse_error("{\"bodies\": [{\"node_id\": \"a\", \"name\": \"a\", \"lan_ip\": \"\","
	                   " \"wg_ip\": \"\", \"same_venue\": \"yes\"}]}",
	                   "field 'same_venue': expected a boolean");
	expect_parse_error("{\"bodies\": [{\"node_id\": \"a\", \"name\": \"a\","
	                   " \"lan_ip\": \"bxl1.example\", \"wg_ip\": \"\", \"same_venue\": true}]}",
	                   "field 'lan_ip': 'bxl1.example' is not an IP address");
	expect_parse_error("{\"bodies\": [{\"node_id\": 7, \"name\": \"a\", \"lan_ip\": \"\","
	                   " \"wg_ip\": \"\", \"same_venue\": true}]}",
	                   "field 'node_id': expected a string");
	expect_parse_error("{\"bodies\": [", "invalid JSON");
	expect_parse_error("{\"bodies\": [3]}", "bodies[0]: not an object");
}

static void
test_parse_bounded(void **state)
{
	struct disc_list *l = malloc(sizeof(*l));
	struct hc_err err = { 0, "" };
	size_t cap = 64 + (DISC_MAX_BODIES + 10) * 128, len = 0, i;
	char *text = malloc(cap);

	(void)state;
	assert_non_null(l);
	assert_non_null(text);
	len += (size_t)snprintf(text + len, cap - len, "{\"bodies\": [");
	for (i = 0; i < DISC_MAX_BODIES + 10; i++)
		len += (size_t)snprintf(text + len, cap - len,
		                        "%s{\"node_id\": \"n%zu\", \"name\": \"x\", \"lan_ip\": "
		                        "\"127.0.0.1\", \"wg_ip\": \"\", \"same_venue\": true}",
		                        i == 0 ? "" : ",", i);
	len += (size_t)snprintf(text + len, cap - len, "]}");
	assert_true(len < cap);
	assert_int_equal(disc_parse_eligible(text, len, l, &err), 0);
	assert_int_equal(l->n, DISC_MAX_BODIES);
	assert_int_equal(l->total, DISC_MAX_BODIES + 10);
	assert_string_equal(l->bodies[DISC_MAX_BODIES - 1].node_id, "n63");
	free(text);
	free(l);
}

static void
test_eligible_url(void **state)
{
	struct disc_config cfg;
	struct hc_err err = { 0, "" };
	char url[512];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.cluster_url = "http://127.0.0.1:8080/";
	cfg.district = "bxl1";
	cfg.venue = "cloud seven";
	cfg.head_id = "node-74adf4f8";
	assert_int_equal(disc_eligible_url(&cfg, NULL, url, sizeof(url), &err), 0);
	assert_string_equal(url, "http://127.0.0.1:8080/api/v1/bodies/eligible?district=bxl1"
	                    "&venue=cloud%20seven&head_id=node-74adf4f8");
	cfg.district = "";
	cfg.venue = NULL;
	assert_int_equal(disc_eligible_url(&cfg, NULL, url, sizeof(url), &err), 0);
	assert_string_equal(url, "http://127.0.0.1:8080/api/v1/bodies/eligible?head_id=node-74adf4f8");
	assert_int_equal(disc_eligible_url(&cfg, NULL, url, 20, &err), HC_EDATA);
	{
		/* Bodies found unreachable go back as one comma-separated list. */
		struct disc_list *tried = calloc(1, sizeof(*tried));
		assert_non_null(tried);
		tried->n = 2;
		hc_strlcpy(tried->bodies[0].node_id, "node-74f9fbf2", DISC_LABEL_MAX);
		hc_strlcpy(tried->bodies[1].node_id, "node 2", DISC_LABEL_MAX);
		assert_int_equal(disc_eligible_url(&cfg, tried, url, sizeof(url), &err), 0);
		assert_string_equal(url, "http://127.0.0.1:8080/api/v1/bodies/eligible?"
		                    "head_id=node-74adf4f8&exclude=node-74f9fbf2,node%202");
		cfg.head_id = NULL;
		assert_int_equal(disc_eligible_url(&cfg, tried, url, sizeof(url), &err), 0);
		assert_string_equal(url, "http://127.0.0.1:8080/api/v1/bodies/eligible?"
		                    "exclude=node-74f9fbf2,node%202");
		free(tried);
	}
}

/* ------------------------------------------------------------ layouts */

/*
 * A fleet layout: per body two characters, LAN then WireGuard, each 'o'
 * (answers), 'r' (refused), 't' (times out) or '-' (no such address),
 * bodies separated by ','. want_body -1 means no body is reachable.
 */
struct layout {
	const char *bodies;
	long want_body;
	enum disc_transport want_t;
};

static const struct layout layouts[] = {
	{ "oo", 0, DISC_LAN },
	{ "ro", 0, DISC_WG },
	{ "tt,oo", 1, DISC_LAN },
	{ "rr,rr", -1, DISC_LAN },
	{ "-o,oo", 0, DISC_WG },
	{ "r-,-o", 1, DISC_WG },
	{ "--,ro", 1, DISC_WG },
	{ "tr,rt,to,oo", 2, DISC_WG },
	{ "tt,tt,tt,tt,tt,tt,tt,oo", 7, DISC_LAN },
	{ "to,oo", 0, DISC_WG },
	{ "tt,tt,tt", -1, DISC_LAN },
	{ "", -1, DISC_LAN },
	{ "r-,o-", 1, DISC_LAN },
	{ "-t,-o,oo", 1, DISC_WG },
	{ "ot,oo,oo", 0, DISC_LAN },
	{ "--,--", -1, DISC_LAN },
};
#define NLAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

/* Builds the list (body i: LAN 127.77.i.1, WG 127.77.i.2) and the result of
 * each address, indexed like disc_candidates. */
static void
build_layout(const struct layout *ly, struct disc_list *l, char *res, size_t *nres)
{
	const char *p = ly->bodies;
	size_t b = 0;

	memset(l, 0, sizeof(*l));
	*nres = 0;
	while (*p != '\0') {
		struct disc_body *body = &l->bodies[b];
		snprintf(body->node_id, sizeof(body->node_id), "body-%zu", b);
		snprintf(body->name, sizeof(body->name), "name-%zu", b);
		if (p[0] != '-') {
			snprintf(body->lan_ip, sizeof(body->lan_ip), "127.77.%zu.1", b);
			res[(*nres)++] = p[0];
		}
		if (p[1] != '-') {
			snprintf(body->wg_ip, sizeof(body->wg_ip), "127.77.%zu.2", b);
			res[(*nres)++] = p[1];
		}
		b++;
		p += 2;
		if (*p == ',')
			p++;
	}
	l->n = l->total = b;
}

static enum disc_probe_result
result_of(char c)
{
	return c == 'o' ? DISC_PROBE_OK : c == 'r' ? DISC_PROBE_REFUSED : DISC_PROBE_TIMEOUT;
}

/* A prober answering from the layout: looks the IP up among the candidates. */
struct table_prober {
	struct disc_candidate cands[DISC_MAX_CANDIDATES];
	size_t n;
	const char *res;
	size_t calls;
};

static enum disc_probe_result
table_probe(void *ctx, const char *ip, int port, int timeout_ms,
            volatile sig_atomic_t *cancel, char *why, size_t why_size)
{
	struct table_prober *t = ctx;
	size_t i;

	(void)port;
	(void)timeout_ms;
	(void)cancel;
	t->calls++;
	for (i = 0; i < t->n; i++) {
		if (strcmp(t->cands[i].ip, ip) == 0) {
			snprintf(why, why_size, "table");
			return result_of(t->res[i]);
		}
	}
	fail_msg("probe of %s, which is not in the layout", ip);
	return DISC_PROBE_ERROR;
}

/* The index of the expected choice among the candidates, or DISC_NONE. */
static long
want_candidate(const struct layout *ly, const struct disc_candidate *c, size_t n)
{
	size_t i;

	if (ly->want_body < 0)
		return DISC_NONE;
	for (i = 0; i < n; i++) {
		if ((long)c[i].body == ly->want_body && c[i].transport == ly->want_t)
			return (long)i;
	}
	fail_msg("layout '%s': expected candidate missing", ly->bodies);
	return DISC_NONE;
}

static void
test_sequential_table(void **state)
{
	struct disc_list *l = malloc(sizeof(*l));
	struct table_prober *t = malloc(sizeof(*t));
	struct disc_choice *ch = malloc(sizeof(*ch));
	struct disc_config cfg;
	struct hc_err err = { 0, "" };
	char res[DISC_MAX_CANDIDATES];
	size_t i, nres;

	(void)state;
	assert_non_null(l);
	assert_non_null(t);
	assert_non_null(ch);
	memset(&cfg, 0, sizeof(cfg));
	cfg.port = 47990;
	cfg.probe_timeout_ms = 1000;
	for (i = 0; i < NLAYOUTS; i++) {
		long want;
		int rc;

		build_layout(&layouts[i], l, res, &nres);
		memset(t, 0, sizeof(*t));
		t->n = disc_candidates(l, t->cands);
		t->res = res;
		assert_int_equal(t->n, nres);
		want = want_candidate(&layouts[i], t->cands, t->n);
		rc = disc_choose_sequential(&cfg, l, table_probe, t, ch, &err);
		if (want == DISC_NONE) {
			assert_int_equal(rc, HC_EUNAVAIL);
			assert_int_equal(t->calls, t->n);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(ch->ip, t->cands[want].ip);
		assert_int_equal(ch->transport, layouts[i].want_t);
		assert_string_equal(ch->body.node_id, l->bodies[layouts[i].want_body].node_id);
		/* Sequential probes exactly the candidates up to its choice. */
		assert_int_equal(t->calls, (size_t)want + 1);
		assert_int_equal(ch->nprobes, (size_t)want + 1);
	}
	free(ch);
	free(t);
	free(l);
}

/* Parallel mode in simulation: results arrive in many orders; after each
 * arrival, disc_decide must name the sequential choice exactly when it is
 * certain (every better candidate failed and it answered), and not before. */
static void
test_parallel_decision_table(void **state)
{
	struct disc_list *l = malloc(sizeof(*l));
	struct disc_candidate *cands = malloc(DISC_MAX_CANDIDATES * sizeof(*cands));
	enum disc_probe_result known[DISC_MAX_CANDIDATES];
	size_t order[DISC_MAX_CANDIDATES];
	char res[DISC_MAX_CANDIDATES];
	uint32_t seed = 12345;
	size_t i, k, j, n, nres;
	int perm;

	(void)state;
	assert_non_null(l);
	assert_non_null(cands);
	for (i = 0; i < NLAYOUTS; i++) {
		long want;

		build_layout(&layouts[i], l, res, &nres);
		n = disc_candidates(l, cands);
		want = want_candidate(&layouts[i], cands, n);
		for (perm = 0; perm < 24; perm++) {
			for (k = 0; k < n; k++)
				order[k] = perm == 1 ? n - 1 - k : k;
			/* Timeouts come last in reality; the rule must not care. */
			for (k = n; perm >= 2 && k > 1; k--) {
				size_t tmp;
				seed = seed * 1103515245u + 12345u;
				j = (seed >> 8) % k;
				tmp = order[k - 1];
				order[k - 1] = order[j];
				order[j] = tmp;
			}
			for (k = 0; k < n; k++)
				known[k] = DISC_PROBE_PENDING;
			assert_int_equal(disc_decide(known, n),
			                 n == 0 ? DISC_NONE : DISC_UNDECIDED);
			for (k = 0; k < n; k++) {
				long got, expect;
				int certain = 1;

				known[order[k]] = result_of(res[order[k]]);
				if (want == DISC_NONE) {
					certain = k == n - 1;
				} else {
					for (j = 0; j <= (size_t)want; j++)
						certain &= known[j] != DISC_PROBE_PENDING;
				}
				expect = certain ? want : DISC_UNDECIDED;
				got = disc_decide(known, n);
				if (got != expect)
					fail_msg("layout '%s' order %d step %zu: decide %ld, want %ld",
					         layouts[i].bodies, perm, k, got, expect);
			}
		}
	}
	free(cands);
	free(l);
}

/* ------------------------------------------------------------ real probes */

static int
listen_on(const char *ip, int port)
{
	struct sockaddr_in sa;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A port free on 127.0.0.1 now (the kernel's pick), closed again. */
static int
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = listen_on("127.0.0.1", 0);

	assert_true(fd >= 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void
test_probe_tcp(void **state)
{
	char why[128];
	int port = free_port();
	int fd;
	int64_t start;

	(void)state;
	start = hc_now_ms();
	assert_int_equal(disc_probe_tcp("127.0.0.1", port, 1000, NULL, why, sizeof(why)),
	                 DISC_PROBE_REFUSED);
	/* A closed loopback port answers at once, far inside the timeout. */
	assert_true(hc_now_ms() - start < 200);
	fd = listen_on("127.0.0.1", port);
	assert_true(fd >= 0);
	assert_int_equal(disc_probe_tcp("127.0.0.1", port, 1000, NULL, why, sizeof(why)),
	                 DISC_PROBE_OK);
	close(fd);
	assert_int_equal(disc_probe_tcp("not-an-ip", port, 1000, NULL, why, sizeof(why)),
	                 DISC_PROBE_ERROR);
	assert_string_equal(why, "not an IP address");
}

/* Log lines of a file with their timestamps cut off. Caller frees. */
static char *
log_messages(const char *path)
{
	char *text = NULL, *out, *line, *o;
	size_t len = 0;

	assert_int_equal(hc_read_file(path, 1 << 20, &text, &len, NULL), 0);
	out = calloc(1, len + 1);
	assert_non_null(out);
	o = out;
	for (line = text; *line != '\0';) {
		char *nl = strchr(line, '\n');
		char *msg = strchr(line, ' ');
		size_t n;

		if (nl == NULL)
			nl = line + strlen(line);
		if (msg != NULL && msg < nl) {
			n = (size_t)(nl - msg);
			memcpy(o, msg, n);
			o += n;
			*o++ = '\n';
		}
		line = *nl != '\0' ? nl + 1 : nl;
	}
	free(text);
	return out;
}

/* The layouts again, with real listeners on 127.77.x.y ('t' becomes a
 * refusal: a timeout needs packet drops, which the integration test has). */
static void
test_real_sequential_vs_parallel(void **state)
{
	char dir[32];
	char seq_log[64], par_log[64];
	struct disc_list *l = malloc(sizeof(*l));
	struct disc_candidate *cands = malloc(DISC_MAX_CANDIDATES * sizeof(*cands));
	struct disc_choice *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct disc_config cfg;
	struct hc_err err = { 0, "" };
	char res[DISC_MAX_CANDIDATES];
	int fds[DISC_MAX_CANDIDATES];
	size_t i, k, n, nres;

	(void)state;
	assert_non_null(l);
	assert_non_null(cands);
	assert_non_null(a);
	assert_non_null(b);
	make_tmpdir(dir, sizeof(dir));
	snprintf(seq_log, sizeof(seq_log), "%s/seq.log", dir);
	snprintf(par_log, sizeof(par_log), "%s/par.log", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.probe_timeout_ms = 2000;
	for (i = 0; i < NLAYOUTS; i++) {
		char *ms, *mp;
		int rs, rp;

		cfg.port = free_port();
		build_layout(&layouts[i], l, res, &nres);
		n = disc_candidates(l, cands);
		for (k = 0; k < n; k++) {
			fds[k] = res[k] == 'o' ? listen_on(cands[k].ip, cfg.port) : -1;
			if (res[k] == 'o' && fds[k] < 0)
				skip();
		}
		unlink(seq_log);
		unlink(par_log);
		assert_int_equal(hc_log_open(seq_log, HC_LOG_INFO, 0, &err), 0);
		rs = disc_choose_sequential(&cfg, l, NULL, NULL, a, &err);
		assert_int_equal(hc_log_open(par_log, HC_LOG_INFO, 0, &err), 0);
		rp = disc_choose_parallel(&cfg, l, b, &err);
		hc_log_close();
		for (k = 0; k < n; k++) {
			if (fds[k] >= 0)
				close(fds[k]);
		}
		assert_int_equal(rs, rp);
		assert_int_equal(rs, layouts[i].want_body < 0 ? HC_EUNAVAIL : 0);
		if (rs == 0) {
			assert_string_equal(a->ip, b->ip);
			assert_string_equal(a->body.node_id, b->body.node_id);
			assert_string_equal(a->body.node_id, l->bodies[layouts[i].want_body].node_id);
			assert_int_equal(a->transport, layouts[i].want_t);
			assert_int_equal(b->transport, layouts[i].want_t);
		}
		/* Parallel reports every probe it started. */
		assert_int_equal(b->nprobes, n);
		ms = log_messages(seq_log);
		mp = log_messages(par_log);
		assert_string_equal(ms, mp);
		free(ms);
		free(mp);
	}
	unlink(seq_log);
	unlink(par_log);
	rmdir(dir);
	free(a);
	free(b);
	free(cands);
	free(l);
}

static void
test_log_lines_exact(void **state)
{
	char dir[32];
	char path[64];
	struct disc_list *l = malloc(sizeof(*l));
	struct table_prober *t = malloc(sizeof(*t));
	struct disc_choice *ch = malloc(sizeof(*ch));
	struct disc_config cfg;
	struct hc_err err = { 0, "" };
	char res[DISC_MAX_CANDIDATES];
	size_t nres;
	char *msgs;
	const struct layout ly = { "rr,ro", 1, DISC_WG };

	(void)state;
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.port = 47990;
	cfg.probe_timeout_ms = 1000;
	build_layout(&ly, l, res, &nres);
	memset(t, 0, sizeof(*t));
	t->n = disc_candidates(l, t->cands);
	t->res = res;
	assert_int_equal(hc_log_open(path, HC_LOG_INFO, 0, &err), 0);
	assert_int_equal(disc_choose_sequential(&cfg, l, table_probe, t, ch, &err), 0);
	res[3] = 'r';
	assert_int_equal(disc_choose_sequential(&cfg, l, table_probe, t, ch, &err), HC_EUNAVAIL);
	hc_log_close();
	msgs = log_messages(path);
	assert_string_equal(msgs,
		" INFO discovery: LAN host 127.77.0.1 not reachable, falling back to WireGuard\n"
		" INFO discovery: body body-0 unreachable on LAN and WireGuard, trying next\n"
		" INFO discovery: LAN host 127.77.1.1 not reachable, falling back to WireGuard\n"
		" INFO discovery: routing via WireGuard: 127.77.1.2\n"
		" INFO discovery: LAN host 127.77.0.1 not reachable, falling back to WireGuard\n"
		" INFO discovery: body body-0 unreachable on LAN and WireGuard, trying next\n"
		" INFO discovery: LAN host 127.77.1.1 not reachable, falling back to WireGuard\n"
		" INFO discovery: body body-1 unreachable on LAN and WireGuard, trying next\n"
		" ERROR discovery: no reachable body among 2 eligible\n");
	free(msgs);
	unlink(path);
	rmdir(dir);
	free(ch);
	free(t);
	free(l);
}

/* ------------------------------------------------------------ latency */

/* A list of n bodies "b0".."bN" with rtt[i] as LAN median (< 0: none). */
static void
rtt_list(struct disc_list *l, struct disc_rtt *r, const double *rtt, size_t n)
{
	size_t i;

	memset(l, 0, sizeof(*l));
	l->n = n;
	l->cross_venue = 1;
	for (i = 0; i < DISC_MAX_BODIES; i++)
		r->lan_ms[i] = r->wg_ms[i] = -1;
	for (i = 0; i < n; i++) {
		snprintf(l->bodies[i].node_id, sizeof(l->bodies[i].node_id), "b%zu", i);
		snprintf(l->bodies[i].lan_ip, sizeof(l->bodies[i].lan_ip), "127.78.0.%zu", i + 1);
		r->lan_ms[i] = rtt[i];
	}
}

static void
rtt_order(const struct disc_list *l, char *out, size_t size)
{
	size_t i, len;

	out[0] = '\0';
	for (i = 0; i < l->n; i++) {
		len = strlen(out);
		snprintf(out + len, size - len, "%s%s", i > 0 ? " " : "", l->bodies[i].node_id);
	}
}

/* Issue 20: lowest median first; within DISC_RTT_MARGIN_MS the server's
 * order; unmeasured after measured; demoted last whatever they measured. */
static void
test_rank_by_rtt(void **state)
{
	struct disc_list *l = malloc(sizeof(*l));
	struct disc_rtt *r = malloc(sizeof(*r));
	char order[128];

	(void)state;
	/* 40 ms ranked first by the server, 5 ms second: 5 ms wins. */
	rtt_list(l, r, (const double[]){ 40, 5 }, 2);
	disc_rank_by_rtt(l, r);
	rtt_order(l, order, sizeof(order));
	assert_string_equal(order, "b1 b0");
	assert_true(r->lan_ms[0] == 5 && r->lan_ms[1] == 40); /* medians move along */
	/* Equal, or within the margin: the server's order stands. */
	rtt_list(l, r, (const double[]){ 20, 20, 20 }, 3);
	disc_rank_by_rtt(l, r);
	rtt_order(l, order, sizeof(order));
	assert_string_equal(order, "b0 b1 b2");
	rtt_list(l, r, (const double[]){ 6.5, 5 }, 2);
	disc_rank_by_rtt(l, r);
	rtt_order(l, order, sizeof(order));
	assert_string_equal(order, "b0 b1");
	rtt_list(l, r, (const double[]){ 7.5, 5 }, 2);
	disc_rank_by_rtt(l, r);
	rtt_order(l, order, sizeof(order));
	assert_string_equal(order, "b1 b0");
	/* Unreachable after measured, demoted last. */
	rtt_list(l, r, (const double[]){ -1, 60, 1, 30, 10 }, 5);
	l->bodies[2].demoted = 1;
	disc_rank_by_rtt(l, r);
	rtt_order(l, order, sizeof(order));
	assert_string_equal(order, "b4 b3 b1 b0 b2");
	/* The best of LAN and WireGuard counts. */
	rtt_list(l, r, (const double[]){ 30, 20 }, 2);
	r->wg_ms[0] = 3;
	assert_true(disc_rtt_best(r, 0) == 3);
	disc_rank_by_rtt(l, r);
	rtt_order(l, order, sizeof(order));
	assert_string_equal(order, "b0 b1");
	free(r);
	free(l);
}

/* disc_measure_tcp against real listeners on 127.78.x: an address that
 * listens has a median, one that refuses has none, nothing waits for the
 * timeout when every address has answered, and the measurement is logged. */
static void
test_measure_tcp(void **state)
{
	struct disc_list *l = malloc(sizeof(*l));
	struct disc_rtt *r = malloc(sizeof(*r));
	struct disc_config cfg;
	struct hc_err err = { 0, "" };
	char dir[32], path[64];
	int fds[2], port = free_port();
	int64_t start;
	char *msgs;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.port = port;
	cfg.probe_timeout_ms = 5000;
	rtt_list(l, r, (const double[]){ -1, -1 }, 2);
	snprintf(l->bodies[0].wg_ip, sizeof(l->bodies[0].wg_ip), "127.78.1.1");
	fds[0] = listen_on("127.78.0.1", port);
	fds[1] = listen_on("127.78.0.2", port);
	if (fds[0] < 0 || fds[1] < 0) {
		if (fds[0] >= 0)
			close(fds[0]);
		free(r);
		free(l);
		skip();
	}
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
	assert_int_equal(hc_log_open(path, HC_LOG_DEBUG, 0, &err), 0);
	start = hc_now_ms();
	assert_int_equal(disc_measure_tcp(NULL, &cfg, l, r, &err), 0);
	/* Loopback answers in well under a second; 5 s would be the timeout. */
	assert_true(hc_now_ms() - start < 1000);
	hc_log_close();
	assert_true(r->lan_ms[0] >= 0 && r->lan_ms[0] < 1000);
	assert_true(r->lan_ms[1] >= 0 && r->lan_ms[1] < 1000);
	assert_true(r->wg_ms[0] < 0); /* 127.78.1.1 refuses */
	assert_true(r->wg_ms[1] < 0); /* no address */
	msgs = log_messages(path);
	assert_non_null(strstr(msgs, "DEBUG discovery: measured b0 via LAN: "));
	assert_non_null(strstr(msgs, "DEBUG discovery: measured b0 via WireGuard: no answer"));
	assert_non_null(strstr(msgs, "DEBUG discovery: measured b1 via LAN: "));
	free(msgs);
	unlink(path);
	rmdir(dir);
	close(fds[0]);
	close(fds[1]);
	free(r);
	free(l);
}

/* ------------------------------------------------------------ state */

static void
test_cache_round_trip(void **state)
{
	char dir[32];
	char sub[96], path[128], logp[128];
	struct disc_cached c, got;
	struct hc_err err = { 0, "" };
	char *msgs;
	int had = -1;
	FILE *f;

	(void)state;
	make_tmpdir(dir, sizeof(dir));
	/* state_dir need not exist yet. */
	snprintf(sub, sizeof(sub), "%s/state", dir);
	snprintf(path, sizeof(path), "%s/discovery-cache.json", sub);
	snprintf(logp, sizeof(logp), "%s/log", dir);
	assert_int_equal(disc_cache_load(sub, &got, &err), HC_ENOTFOUND);
	memset(&c, 0, sizeof(c));
	hc_strlcpy(c.node_id, "node-4c2be4b0", sizeof(c.node_id));
	hc_strlcpy(c.name, "cosmic-pretzel-98", sizeof(c.name));
	hc_strlcpy(c.ip, "127.10.100.12", sizeof(c.ip));
	c.transport = DISC_WG;
	c.same_venue = 0;
	c.chosen_at_ms = 1795000000123LL;
	assert_int_equal(disc_cache_store(sub, &c, &err), 0);
	assert_int_equal(disc_cache_load(sub, &got, &err), 0);
	assert_string_equal(got.node_id, c.node_id);
	assert_string_equal(got.name, c.name);
	assert_string_equal(got.ip, c.ip);
	assert_int_equal(got.transport, DISC_WG);
	assert_int_equal(got.same_venue, 0);
	assert_true(got.chosen_at_ms == c.chosen_at_ms);
	c.transport = DISC_LAN;
	c.same_venue = 1;
	assert_int_equal(disc_cache_store(sub, &c, &err), 0);
	assert_int_equal(disc_cache_load(sub, &got, &err), 0);
	assert_int_equal(got.transport, DISC_LAN);
	assert_int_equal(got.same_venue, 1);

	assert_int_equal(hc_log_open(logp, HC_LOG_INFO, 0, &err), 0);
	assert_int_equal(disc_cache_invalidate(sub, "operator asked", &had, &err), 0);
	assert_int_equal(had, 1);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(disc_cache_invalidate(sub, "again", &had, &err), 0);
	assert_int_equal(had, 0);
	hc_log_close();
	msgs = log_messages(logp);
	assert_string_equal(msgs, " INFO discovery: cached body node-4c2be4b0 invalidated: "
	                    "operator asked\n");
	free(msgs);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"node_id\": \"x\", \"name\": \"x\", \"ip\": \"127.0.0.1\", \"transport\": \"lan\"}", f);
	fclose(f);
	assert_int_equal(disc_cache_load(sub, &got, &err), HC_EDATA);
	assert_non_null(strstr(err.msg, "missing field 'same_venue'"));
	unlink(path);
	unlink(logp);
	rmdir(sub);
	rmdir(dir);
}

static void
test_demotions(void **state)
{
	char dir[32];
	char path[96];
	struct disc_list *l = malloc(sizeof(*l));
	struct hc_err err = { 0, "" };
	const char *order;
	char got[64];
	size_t i;
	FILE *f;

	(void)state;
	assert_non_null(l);
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/discovery-demoted.json", dir);
	memset(l, 0, sizeof(*l));
	l->n = 4;
	for (i = 0; i < 4; i++)
		snprintf(l->bodies[i].node_id, sizeof(l->bodies[i].node_id), "n%zu", i + 1);
	disc_apply_demotions(dir, l);
	assert_string_equal(l->bodies[0].node_id, "n1");
	assert_int_equal(disc_demote(dir, "n1", &err), 0);
	assert_int_equal(disc_demote(dir, "n3", &err), 0);
	disc_apply_demotions(dir, l);
	got[0] = '\0';
	for (i = 0; i < l->n; i++) {
		size_t used = strlen(got);
		snprintf(got + used, sizeof(got) - used, "%s%s", l->bodies[i].node_id,
		         l->bodies[i].demoted ? "* " : " ");
	}
	order = "n2 n4 n1* n3* ";
	assert_string_equal(got, order);
	/* A second failure of n1 makes it the most recent: last. */
	assert_int_equal(disc_demote(dir, "n1", &err), 0);
	disc_apply_demotions(dir, l);
	assert_string_equal(l->bodies[2].node_id, "n3");
	assert_string_equal(l->bodies[3].node_id, "n1");
	assert_int_equal(disc_undemote(dir, "n3", &err), 0);
	assert_int_equal(disc_undemote(dir, "n9", &err), 0);
	disc_apply_demotions(dir, l);
	assert_string_equal(l->bodies[3].node_id, "n1");
	assert_int_equal(l->bodies[3].demoted, 1);
	assert_int_equal(l->bodies[2].demoted, 0);
	/* A corrupt file demotes nothing and is replaced by the next demotion. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"demoted\": 5}", f);
	fclose(f);
	disc_apply_demotions(dir, l);
	assert_int_equal(l->bodies[3].demoted, 0);
	assert_int_equal(disc_demote(dir, "n2", &err), 0);
	disc_apply_demotions(dir, l);
	assert_string_equal(l->bodies[3].node_id, "n2");
	unlink(path);
	rmdir(dir);
	free(l);
}

static void
test_subst_ip(void **state)
{
	char *s;

	(void)state;
	s = disc_subst_ip("{ip}", "127.10.100.12");
	assert_string_equal(s, "127.10.100.12");
	free(s);
	s = disc_subst_ip("--host={ip}:47990/{ip}", "::1");
	assert_string_equal(s, "--host=::1:47990/::1");
	free(s);
	s = disc_subst_ip("stream {i} {ip", "1.2.3.4");
	assert_string_equal(s, "stream {i} {ip");
	free(s);
	s = disc_subst_ip("", "1.2.3.4");
	assert_string_equal(s, "");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok_extra_fields),
		cmocka_unit_test(test_parse_missing_fields_named),
		cmocka_unit_test(test_parse_bounded),
		cmocka_unit_test(test_eligible_url),
		cmocka_unit_test(test_parse_partition),
		cmocka_unit_test(test_sequential_table),
		cmocka_unit_test(test_parallel_decision_table),
		cmocka_unit_test(test_probe_tcp),
		cmocka_unit_test(test_real_sequential_vs_parallel),
		cmocka_unit_test(test_log_lines_exact),
		cmocka_unit_test(test_cache_round_trip),
		cmocka_unit_test(test_demotions),
		cmocka_unit_test(test_subst_ip),
		cmocka_unit_test(test_rank_by_rtt),
		cmocka_unit_test(test_measure_tcp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
