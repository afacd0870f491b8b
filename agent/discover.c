/* hydra-agent discover, invalidate and stream (docs/architecture.md section 6). */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "discovery/discovery.h"

/* Launches the stream supervisor tries when --max-attempts is not given. */
#define AG_STREAM_DEFAULT_ATTEMPTS 5
/* More attempts than this, with the backoff cap, is hours of retrying. */
#define AG_STREAM_MAX_ATTEMPTS 1000

/* Maps the agent config onto discovery's. *dns_owned holds the DNS server
 * list the config points to; caller frees it. */
static int
disc_config_from(const struct ag_ctx *ctx, struct disc_config *dc, char **dns_owned,
                 struct hc_err *err)
{
	const struct ag_config *c = &ctx->cfg;
	int rc;

	memset(dc, 0, sizeof(*dc));
	rc = ag_config_http(c, &dc->http, dns_owned, err);
	if (rc != 0)
		return rc;
	dc->cluster_url = c->discovery.cluster_url;
	dc->head_id = c->discovery.head_id != NULL && *c->discovery.head_id != '\0' ?
	              c->discovery.head_id : c->node_id;
	dc->district = c->discovery.district;
	dc->venue = c->discovery.venue;
	dc->port = (int)c->discovery.port;
	dc->probe_timeout_ms = (int)c->discovery.probe_timeout_ms;
	dc->mode = c->discovery.mode == AG_MODE_PARALLEL ? DISC_MODE_PARALLEL :
	           DISC_MODE_SEQUENTIAL;
	dc->rank = c->discovery.rank == AG_RANK_SERVER ? DISC_RANK_SERVER : DISC_RANK_LATENCY;
	dc->launch_window_s = (int)c->discovery.launch_window_s;
	dc->state_dir = c->state_dir;
	return 0;
}

static int
json_add(struct json_object *o, const char *key, struct json_object *v)
{
	return v == NULL ? -1 : json_object_object_add(o, key, v);
}

/* The probes as a JSON array; NULL when out of memory. */
static struct json_object *
json_probes(const struct disc_choice *ch)
{
	struct json_object *probes = json_object_new_array();
	size_t i;
	int bad = probes == NULL;

	for (i = 0; !bad && i < ch->nprobes; i++) {
		const struct disc_probe_record *p = &ch->probes[i];
		struct json_object *e = json_object_new_object();

		bad |= e == NULL;
		if (bad)
			break;
		bad |= json_add(e, "node_id", json_object_new_string(p->node_id)) != 0;
		bad |= json_add(e, "ip", json_object_new_string(p->ip)) != 0;
		bad |= json_add(e, "transport",
		                json_object_new_string(disc_transport_name(p->transport))) != 0;
		bad |= json_add(e, "result",
		                json_object_new_string(disc_probe_result_name(p->result))) != 0;
		bad |= json_add(e, "ms", json_object_new_int64(p->ms)) != 0;
		if (p->rtt_ms >= 0)
			bad |= json_add(e, "rtt_ms", json_object_new_double(
			                (double)(int64_t)(p->rtt_ms * 100 + 0.5) / 100)) != 0;
		bad |= json_object_array_add(probes, e) != 0;
	}
	if (bad) {
		json_object_put(probes);
		return NULL;
	}
	return probes;
}

/* Prints the choice, or with failure set the failure (its message in
 * "error"), as one JSON object with "schema": 1 on stdout, so a caller
 * reading --json always gets an object. */
static int
print_json(const struct disc_choice *ch, const struct hc_err *failure, struct hc_err *err)
{
	struct json_object *o = json_object_new_object();
	int bad = o == NULL;
	int rc = 0;

	if (!bad) {
		bad |= json_add(o, "schema", json_object_new_int(AG_JSON_SCHEMA)) != 0;
		bad |= json_add(o, "status", json_object_new_string(
		                failure != NULL ? "failed" : "ok")) != 0;
	}
	if (!bad && failure != NULL) {
		bad |= json_add(o, "error", json_object_new_string(failure->msg)) != 0;
	} else if (!bad) {
		bad |= json_add(o, "node_id", json_object_new_string(ch->body.node_id)) != 0;
		bad |= json_add(o, "name", json_object_new_string(ch->body.name)) != 0;
		bad |= json_add(o, "ip", json_object_new_string(ch->ip)) != 0;
		bad |= json_add(o, "transport",
		                json_object_new_string(disc_transport_name(ch->transport))) != 0;
		bad |= json_add(o, "same_venue", json_object_new_boolean(ch->body.same_venue)) != 0;
		bad |= json_add(o, "cached", json_object_new_boolean(ch->cached)) != 0;
		bad |= json_add(o, "ranking", json_object_new_string(
		                ch->ranking == DISC_RANK_LATENCY ? "latency" : "server")) != 0;
	}
	if (!bad) {
		bad |= json_add(o, "elapsed_ms", json_object_new_int64(ch->elapsed_ms)) != 0;
		bad |= json_add(o, "probes", json_probes(ch)) != 0;
	}
	if (bad)
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
	else
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return rc;
}

/* The options of discover, read from argv. */
struct discover_opts {
	int as_json, use_cache, help;
	int mode, rank;       /* -1: the config's */
};

/* 0, or HC_EUSAGE naming the option that is wrong. */
static int
discover_parse(int argc, char **argv, struct discover_opts *o, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "mode", required_argument, NULL, 'm' },
		{ "rank", required_argument, NULL, 'r' },
		{ "no-cache", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct discover_opts){ .use_cache = 1, .mode = -1, .rank = -1 };
	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'j':
			o->as_json = 1;
			break;
		case 'n':
			o->use_cache = 0;
			break;
		case 'm':
			if (strcmp(optarg, "sequential") == 0)
				o->mode = DISC_MODE_SEQUENTIAL;
			else if (strcmp(optarg, "parallel") == 0)
				o->mode = DISC_MODE_PARALLEL;
			else
				return hc_err_set(err, HC_EUSAGE, "discover: --mode: '%s' is not "
				                  "sequential or parallel", optarg);
			break;
		case 'r':
			if (strcmp(optarg, "latency") == 0)
				o->rank = DISC_RANK_LATENCY;
			else if (strcmp(optarg, "server") == 0)
				o->rank = DISC_RANK_SERVER;
			else
				return hc_err_set(err, HC_EUSAGE, "discover: --rank: '%s' is not "
				                  "latency or server", optarg);
			break;
		case 'h':
			o->help = 1;
			return 0;
		default:
			return hc_err_set(err, HC_EUSAGE, "discover: unknown option (see --help)");
		}
	}
	if (optind != argc)
		return hc_err_set(err, HC_EUSAGE, "discover: unexpected argument '%s'",
		                  argv[optind]);
	return 0;
}

static int
discover_run(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err)
{
	struct discover_opts o;
	struct disc_config dc;
	struct disc_choice *ch = NULL;
	char *dns = NULL;
	int64_t started;
	int rc;

	rc = discover_parse(argc, argv, &o, err);
	if (rc != 0)
		return rc;
	if (o.help) {
		fputs(ag_cmd_discover.usage, stdout);
		return 0;
	}
	rc = disc_config_from(ctx, &dc, &dns, err);
	if (rc != 0)
		goto done;
	if (o.mode >= 0)
		dc.mode = (enum disc_mode)o.mode;
	if (o.rank >= 0)
		dc.rank = (enum disc_rank)o.rank;
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	started = hc_now_ms();
	rc = disc_discover(&dc, o.use_cache, ch, err);
	if (rc != 0) {
		/* The object goes out on failure too; the status stays the failure's. */
		if (o.as_json && rc != HC_ENOMEM) {
			ch->elapsed_ms = hc_now_ms() - started;
			(void)print_json(ch, err, NULL);
		}
		goto done;
	}
	if (o.as_json)
		rc = print_json(ch, NULL, err);
	else
		printf("%s\n", ch->ip);
done:
	free(ch);
	free(dns);
	return rc;
}

static int
invalidate_run(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *reason = NULL;
	int had = 0;
	int c, rc;

	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'r':
			reason = optarg;
			break;
		case 'h':
			fputs(ag_cmd_invalidate.usage, stdout);
			return 0;
		default:
			return hc_err_set(err, HC_EUSAGE, "invalidate: unknown option (see --help)");
		}
	}
	if (optind != argc)
		return hc_err_set(err, HC_EUSAGE, "invalidate: unexpected argument '%s'",
		                  argv[optind]);
	if (reason == NULL || *reason == '\0')
		return hc_err_set(err, HC_EUSAGE, "invalidate: --reason TEXT is required");
	rc = disc_cache_invalidate(ctx->cfg.state_dir, reason, &had, err);
	if (rc == 0 && !had)
		printf("no cached body\n");
	return rc;
}

static int
stream_run(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err)
{
	static const struct option opts[] = {
		{ "max-attempts", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct disc_config dc;
	long long attempts = AG_STREAM_DEFAULT_ATTEMPTS;
	char *dns = NULL;
	int c, rc;

	optind = 1;
	/* '+': the command's own options are not ours. */
	for (;;) {
		c = getopt_long(argc, argv, "+h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'a':
			if (hc_parse_int(optarg, 1, AG_STREAM_MAX_ATTEMPTS, &attempts) != 0)
				return hc_err_set(err, HC_EUSAGE, "stream: --max-attempts: '%s' is "
				                  "not a number from 1 to %d", optarg,
				                  AG_STREAM_MAX_ATTEMPTS);
			break;
		case 'h':
			fputs(ag_cmd_stream.usage, stdout);
			return 0;
		default:
			return hc_err_set(err, HC_EUSAGE, "stream: unknown option (see --help)");
		}
	}
	if (optind >= argc)
		return hc_err_set(err, HC_EUSAGE, "stream: no command given (stream -- CMD ARGS...)");
	rc = disc_config_from(ctx, &dc, &dns, err);
	if (rc == 0)
		rc = disc_stream(&dc, (int)attempts, argc - optind, argv + optind, err);
	free(dns);
	return rc;
}

const struct ag_command ag_cmd_discover = {
	.name = "discover",
	.summary = "pick the body to stream from and print its IP",
	.usage =
	"usage: hydra-agent [--config FILE] discover [--json] [--mode MODE] [--rank RANK]\n"
	"                                           [--no-cache]\n"
	"\n"
	"Uses the cached body when it answers one probe; otherwise asks the cluster\n"
	"for the eligible bodies (discovery.cluster_url, head_id, district, venue) and\n"
	"probes each one on discovery.port, LAN first, then WireGuard, then the next\n"
	"body. A cross-venue list is first put in the order of the TCP connect round\n"
	"trips measured to each body (3 samples per address, all at once). Prints the\n"
	"chosen IP and caches the choice in state_dir.\n"
	"\n"
	"  --json        print one JSON object (schema 1): status \"ok\", node_id, name,\n"
	"                ip, transport, same_venue, cached, elapsed_ms, ranking and every\n"
	"                probe (with rtt_ms when measured); on failure status \"failed\",\n"
	"                error, elapsed_ms and the probes made\n"
	"  --mode MODE   sequential or parallel, overriding discovery.mode\n"
	"  --rank RANK   latency or server (the cluster's order, as in Phase 1),\n"
	"                overriding discovery.rank\n"
	"  --no-cache    ignore the cached body (the new choice is still cached)\n"
	"\n"
	"Exit status: 0, 64 usage, 65 when the cluster's answer is malformed,\n"
	"66 when the --config file is missing, 69 when no body answers or the\n"
	"cluster is unreachable, 78 on a bad config.\n",
	.run = discover_run,
	.needs_log = 1,
};

const struct ag_command ag_cmd_invalidate = {
	.name = "invalidate",
	.summary = "drop the cached body",
	.usage =
	"usage: hydra-agent [--config FILE] invalidate --reason TEXT\n"
	"\n"
	"Removes the cached body from state_dir and logs\n"
	"'cached body <node_id> invalidated: TEXT'. The next discovery asks the\n"
	"cluster again. Prints 'no cached body' when there was none.\n"
	"\n"
	"Exit status: 0, 64 usage, 66 when the --config file is missing, 74 when\n"
	"the cache cannot be removed, 78 on a bad config.\n",
	.run = invalidate_run,
	.needs_log = 1,
};

const struct ag_command ag_cmd_stream = {
	.name = "stream",
	.summary = "discover a body and run the stream command against it",
	.usage =
	"usage: hydra-agent [--config FILE] stream [--max-attempts N] -- CMD ARGS...\n"
	"\n"
	"Discovers a body and runs CMD (no shell) with every '{ip}' in its arguments\n"
	"replaced by the body's IP. An exit within discovery.launch_window_s is a\n"
	"stream-launch failure: the cached body is invalidated, the body is demoted\n"
	"to the end of the list, and discovery and launch run again after a backoff\n"
	"(0.5 s, doubling, at most 30 s), up to N launches (default 5). A stream that\n"
	"outlives the window is never restarted; its exit ends the command.\n"
	"SIGTERM and SIGINT are forwarded to CMD (logged as stopMoonlight).\n"
	"\n"
	"Exit status: 0 when stopped by a signal or when CMD exits 0 after the window;\n"
	"69 when every attempt failed or the stream ended with a non-zero status;\n"
	"64 when CMD cannot be run; 66 when the --config file is missing; 78 on a\n"
	"bad config.\n",
	.run = stream_run,
	.needs_log = 1,
};
