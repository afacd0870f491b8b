/*
 * hydra-cluster-sim: the cluster and district control API (docs/architecture.md
 * section 9) over a fleet YAML file, with the body-selection partition
 * policy. main() is the only place that turns a status into an exit code.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

static void
usage(FILE *out)
{
	fputs("usage: hydra-cluster-sim --fleet FILE --listen ADDR:PORT [--save]\n"
	      "                         [--log-level LEVEL] [--log-file FILE]\n"
	      "       hydra-cluster-sim -h|--help | -V|--version\n"
	      "\n"
	      "Serves the cluster API of a fleet file: body config, eligible bodies\n"
	      "(quickroute, then cross-venue same owner ranked by the round trips\n"
	      "heads report), node moves and state.\n"
	      "\n"
	      "options:\n"
	      "  --fleet FILE       fleet YAML: nodes: [{id, name, role, district, venue,\n"
	      "                     owner, lan_ip, wg_ip, status, drained, idle, vram_mb}]\n"
	      "  --listen ADDR:PORT 127.0.0.1:8080, [::1]:8080; port 0 picks a free one\n"
	      "  --save             write every change back to the fleet file (atomically)\n"
	      "  --log-level LEVEL  debug, info, warn or error (default info)\n"
	      "  --log-file FILE    append log lines to FILE as well as stderr\n"
	      "\n"
	      "SIGTERM or SIGINT stops it. Exit codes follow sysexits(3): 64 usage,\n"
	      "69 cannot listen, 78 bad fleet file.\n", out);
}

/* Loads the fleet, serves it until SIGTERM or SIGINT. Returns the exit code. */
static int
run(const char *fleet_path, const char *listen, int save, const char *log_file,
    enum hc_log_level level)
{
	struct clu_fleet *fleet = NULL;
	struct clu_api *api = NULL;
	struct clu_server *srv = NULL;
	struct hc_err err = { 0, "" };
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	char where[128];
	sigset_t stop;
	int sig = 0, rc;

	if (hc_parse_listen(listen, &ss, &sslen, &err) != 0) {
		fprintf(stderr, "hydra-cluster-sim: --listen: %s\n", err.msg);
		return 64;
	}
	rc = hc_log_open(log_file, level, 1, &err);
	if (rc != 0) {
		fprintf(stderr, "hydra-cluster-sim: %s\n", err.msg);
		return hc_status_exit_code(rc);
	}

	/* Block the stop signals before libmicrohttpd starts its thread, so that
	 * only sigwait below sees them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = clu_fleet_load_file(fleet_path, &fleet, &err);
	if (rc != 0)
		goto fail;
	rc = clu_api_new(fleet, save ? fleet_path : NULL, &api, &err);
	if (rc != 0)
		goto fail;
	fleet = NULL; /* owned by api */
	rc = clu_server_start(api, listen, &srv, &err);
	if (rc != 0)
		goto fail;
	if (hc_sockaddr_format(&ss, clu_server_port(srv), where, sizeof(where)) != 0)
		hc_strlcpy(where, listen, sizeof(where));
	hc_log(HC_LOG_INFO, "cluster", "hydra-cluster-sim listening on %s", where);
	hc_log(HC_LOG_INFO, "cluster", "fleet %s%s", fleet_path,
	       save ? " (changes are saved to it)" : " (changes stay in memory)");

	if (sigwait(&stop, &sig) != 0)
		sig = SIGTERM;
	hc_log(HC_LOG_INFO, "cluster", "hydra-cluster-sim stopping on %s",
	       sig == SIGINT ? "SIGINT" : "SIGTERM");
	clu_server_stop(srv);
	clu_api_free(api);
	hc_log_close();
	return 0;
fail:
	hc_log(HC_LOG_ERROR, "cluster", "%s", err.msg);
	clu_server_stop(srv);
	clu_api_free(api);
	clu_fleet_free(fleet);
	hc_log_close();
	return hc_status_exit_code(rc);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fleet", required_argument, NULL, 'f' },
		{ "listen", required_argument, NULL, 'L' },
		{ "save", no_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-file", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fleet_path = NULL, *listen = NULL, *log_file = NULL;
	enum hc_log_level level = HC_LOG_INFO;
	int save = 0, opt;

	for (;;) {
		opt = getopt_long(argc, argv, "hV", opts, NULL);
		if (opt == -1)
			break;
		switch (opt) {
		case 'f': fleet_path = optarg; break;
		case 'L': listen = optarg; break;
		case 's': save = 1; break;
		case 'o': log_file = optarg; break;
		case 'l':
			if (hc_log_level_parse(optarg, &level) != 0) {
				fprintf(stderr, "hydra-cluster-sim: --log-level: '%s' is not debug, "
				        "info, warn or error\n", optarg);
				return 64;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hydra-cluster-sim %s\n", HC_VERSION); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hydra-cluster-sim: unexpected argument '%s'\n", argv[optind]);
		return 64;
	}
	if (fleet_path == NULL || listen == NULL) {
		fprintf(stderr, "hydra-cluster-sim: --fleet and --listen are required\n");
		usage(stderr);
		return 64;
	}
	return run(fleet_path, listen, save, log_file, level);
}
