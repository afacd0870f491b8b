/* hydra-mirror: command line, configuration, signals. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mirror/mirror.h"

#define MIR_DEFAULT_CONFIG "/etc/hydra-mirror/mirror.yaml"
/* An admin token file is one line; anything bigger is the wrong file. */
#define MIR_TOKEN_FILE_MAX 4096
/* How often a drain looks whether its transfers ended (and for a second
 * signal). */
#define MIR_DRAIN_POLL_MS 100

static const char mir_usage[] =
"NAME\n"
"    hydra-mirror - file mirror: the origin, or a district read-through cache\n"
"\n"
"SYNOPSIS\n"
"    hydra-mirror [--config FILE] [OPTIONS]\n"
"    hydra-mirror --check-config|-t [--config FILE] [OPTIONS]\n"
"    hydra-mirror -h|--help|-V|--version\n"
"\n"
"DESCRIPTION\n"
"    Serves {root}/files/{path} as /api/v1/peer/files/{path} with byte ranges,\n"
"    a strong ETag, Last-Modified, X-File-SHA256 and Repr-Digest. In origin\n"
"    mode it accepts PUT and DELETE with the admin bearer token. In peer mode a\n"
"    miss is filled from the origin once, streamed to every waiting client, and\n"
"    kept under an LRU limit. See docs/mirror.md.\n"
"\n"
"OPTIONS\n"
"    Each option overrides the key of the same name in the config file.\n"
"\n"
"    --config FILE                 YAML config (default " MIR_DEFAULT_CONFIG ",\n"
"                                  used only when it exists)\n"
"    -t, --check-config            load the config, print the effective settings,\n"
"                                  exit 0 or 78\n"
"    --listen ADDR:PORT            listen address: 127.0.0.1:8080, [::1]:8080, :8080\n"
"    --root DIR                    store root: files/, meta/, tmp/ below it\n"
"    --mode origin|peer            role (default origin)\n"
"    --origin-url URL              peer: the origin to fill misses from\n"
"    --district NAME               district reported by /api/v1/health\n"
"    --max-bytes SIZE              peer: LRU limit of the store, e.g. 10G (0: none)\n"
"    --admin-token-file FILE       origin: bearer token for PUT and DELETE\n"
"    --tls-cert FILE               PEM certificate chain: serve HTTPS\n"
"    --tls-key FILE                PEM private key\n"
"    --tls-ca-file FILE            peer: CA bundle to verify an https origin\n"
"    --max-egress-bytes-per-s SIZE global egress limit, e.g. 100M (0: none)\n"
"    --keep-versions K             keep the newest K versions of each tool under\n"
"                                  /api/v1/tools/, remove older ones (0: all)\n"
"    --connection-timeout S        close connections idle for S seconds\n"
"    --max-connections N           refuse connections beyond N\n"
"    --max-connections-per-ip N    refuse connections beyond N from one address\n"
"    --access-log FILE             combined log plus request time and cache\n"
"                                  outcome, one line per request (-: stderr)\n"
"    --log-level LEVEL             debug, info, warn or error\n"
"    -h, --help                    this text\n"
"    -V, --version                 print the version\n"
"\n"
"SIGNALS\n"
"    SIGHUP             re-read the config, apply max_egress_bytes_per_s, log_level,\n"
"                       the admin token, the TLS certificate and key, access_log;\n"
"                       keep every connection. A config that does not load, or\n"
"                       changes listen, root or mode, is refused and logged.\n"
"    SIGTERM, SIGINT    stop accepting, let transfers finish for up to\n"
"                       shutdown_grace_s, write the index, exit 0. A second\n"
"                       signal stops at once.\n"
"\n"
"EXIT STATUS\n"
"    0 ok, 64 usage, 69 cannot listen, 74 I/O error, 78 bad configuration.\n";

enum {
	OPT_CONFIG = 256, OPT_LISTEN, OPT_ROOT, OPT_MODE, OPT_ORIGIN_URL, OPT_DISTRICT,
	OPT_MAX_BYTES, OPT_TOKEN_FILE, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA, OPT_EGRESS,
	OPT_TIMEOUT, OPT_MAX_CONN, OPT_LOG_LEVEL, OPT_HELP, OPT_VERSION, OPT_KEEP_VERSIONS,
	OPT_MAX_CONN_IP, OPT_ACCESS_LOG, OPT_CHECK,
};
/* getopt_long's short options: -h, -V, -t and nothing else. */
static const char mir_short[] = "hVt";

static const struct option mir_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "origin-url", required_argument, NULL, OPT_ORIGIN_URL },
	{ "district", required_argument, NULL, OPT_DISTRICT },
	{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
	{ "admin-token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ca-file", required_argument, NULL, OPT_TLS_CA },
	{ "max-egress-bytes-per-s", required_argument, NULL, OPT_EGRESS },
	{ "connection-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
	{ "max-connections-per-ip", required_argument, NULL, OPT_MAX_CONN_IP },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "keep-versions", required_argument, NULL, OPT_KEEP_VERSIONS },
	{ "access-log", required_argument, NULL, OPT_ACCESS_LOG },
	{ "check-config", no_argument, NULL, OPT_CHECK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static int
mir_set(char **slot, const char *value, struct hc_err *err)
{
	char *copy = hc_strdup(value);

	if (copy == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	free(*slot);
	*slot = copy;
	return 0;
}

/* Applies one flag over the loaded config. 0 or HC_EUSAGE. */
static int
mir_apply(struct mir_config *cfg, int opt, const char *v, struct hc_err *err)
{
	char what[256];
	long long n;
	uint64_t size;
	enum hc_log_level level;

	switch (opt) {
	case OPT_LISTEN:
		return mir_set(&cfg->listen, v, err);
	case OPT_ROOT:
		return mir_set(&cfg->root, v, err);
	case OPT_MODE:
		if (strcmp(v, "origin") == 0)
			cfg->mode = MIR_MODE_ORIGIN;
		else if (strcmp(v, "peer") == 0)
			cfg->mode = MIR_MODE_PEER;
		else
			return hc_err_set(err, HC_EUSAGE, "--mode: expected origin or peer");
		return 0;
	case OPT_ORIGIN_URL:
		if (mir_check_origin_url(v, what, sizeof(what)) != 0)
			return hc_err_set(err, HC_EUSAGE, "--origin-url: %s", what);
		return mir_set(&cfg->origin_url, v, err);
	case OPT_DISTRICT:
		if (hc_cfg_check_dns_label(v, what, sizeof(what)) != 0)
			return hc_err_set(err, HC_EUSAGE, "--district: %s", what);
		return mir_set(&cfg->district, v, err);
	case OPT_MAX_BYTES:
		if (hc_parse_size(v, &size) != 0)
			return hc_err_set(err, HC_EUSAGE, "--max-bytes: '%s' is not a size", v);
		cfg->max_bytes = size;
		return 0;
	case OPT_TOKEN_FILE:
		return mir_set(&cfg->admin_token_file, v, err);
	case OPT_ACCESS_LOG:
		return mir_set(&cfg->access_log, v, err);
	case OPT_TLS_CERT:
		return mir_set(&cfg->tls.cert, v, err);
	case OPT_TLS_KEY:
		return mir_set(&cfg->tls.key, v, err);
	case OPT_TLS_CA:
		return mir_set(&cfg->tls.ca_file, v, err);
	case OPT_EGRESS:
		if (hc_parse_size(v, &size) != 0)
			return hc_err_set(err, HC_EUSAGE,
			                  "--max-egress-bytes-per-s: '%s' is not a size", v);
		cfg->max_egress_bytes_per_s = size;
		return 0;
	case OPT_TIMEOUT:
		if (hc_parse_int(v, 1, 3600, &n) != 0)
			return hc_err_set(err, HC_EUSAGE, "--connection-timeout: 1 to 3600 seconds");
		cfg->connection_timeout_s = n;
		return 0;
	case OPT_MAX_CONN:
		if (hc_parse_int(v, 1, 16384, &n) != 0)
			return hc_err_set(err, HC_EUSAGE, "--max-connections: 1 to 16384");
		cfg->max_connections = n;
		return 0;
	case OPT_MAX_CONN_IP:
		if (hc_parse_int(v, 1, 16384, &n) != 0)
			return hc_err_set(err, HC_EUSAGE, "--max-connections-per-ip: 1 to 16384");
		cfg->max_connections_per_ip = n;
		return 0;
	case OPT_KEEP_VERSIONS:
		if (hc_parse_int(v, 0, MIR_KEEP_VERSIONS_MAX, &n) != 0)
			return hc_err_set(err, HC_EUSAGE, "--keep-versions: 0 to %d",
			                  MIR_KEEP_VERSIONS_MAX);
		cfg->keep_versions = n;
		return 0;
	case OPT_LOG_LEVEL:
		if (hc_log_level_parse(v, &level) != 0)
			return hc_err_set(err, HC_EUSAGE, "--log-level: debug, info, warn or error");
		cfg->log_level = (int)level;
		return 0;
	default:
		return hc_err_set(err, HC_EUSAGE, "unknown option");
	}
}

/* Reads the token file (first line, blanks trimmed) into a new buffer the
 * caller wipes and frees. A file that is missing, unreadable or too big is
 * a configuration error (HC_ECONFIG); one others may read is used with a
 * warning. */
static int
mir_read_token(const char *path, char **out, struct hc_err *err)
{
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	*out = NULL;
	rc = hc_read_file(path, MIR_TOKEN_FILE_MAX, &text, &len, err);
	if (rc != 0) {
		hc_err_prefix(err, "admin_token_file");
		return rc == HC_ENOMEM ? rc : HC_ECONFIG;
	}
	if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		hc_log(HC_LOG_WARN, "mirror", "admin_token_file %s has mode %04o: group or others "
		       "can read the token (chmod 600 it)", path, (unsigned)(st.st_mode & 07777));
	len = strcspn(text, "\r\n");
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	text[len] = '\0';
	if (len == 0) {
		explicit_bzero(text, len);
		free(text);
		return hc_err_set(err, HC_ECONFIG, "admin_token_file %s: empty", path);
	}
	*out = text;
	return 0;
}

/* The configuration: defaults, then the file (path, or the default file
 * when it exists), then the flags of argv, then the checks. 0 or the
 * status with err naming file:line:col or the flag. cfg is set either way
 * (free it with mir_config_free). */
static int
mir_load(int argc, char **argv, const char *path, struct mir_config *cfg, struct hc_err *err)
{
	int opt, rc;

	rc = mir_config_defaults(cfg, err);
	if (rc != 0)
		return rc;
	if (path != NULL) {
		rc = mir_config_load(cfg, path, err);
		if (rc != 0)
			return rc;
	}
	optind = 1;
	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, mir_short, mir_options, NULL);
		if (opt == -1)
			break;
		if (opt == OPT_CONFIG || opt == 't' || opt == OPT_CHECK)
			continue;
		rc = mir_apply(cfg, opt, optarg, err);
		if (rc != 0)
			return rc;
	}
	return mir_config_check(cfg, err);
}

/* The token named by cfg, or NULL when none is configured. */
static int
mir_token(const struct mir_config *cfg, char **token, struct hc_err *err)
{
	*token = NULL;
	if (cfg->admin_token_file == NULL || *cfg->admin_token_file == '\0')
		return 0;
	return mir_read_token(cfg->admin_token_file, token, err);
}

static void
mir_wipe(char **token)
{
	if (*token != NULL) {
		explicit_bzero(*token, strlen(*token));
		free(*token);
	}
	*token = NULL;
}

/* SIGHUP: loads the configuration again and applies it, or keeps the one in
 * force and says why. systemd hears RELOADING=1 and READY=1 around it. */
static void
mir_reload(struct mir_server *srv, int argc, char **argv, const char *path)
{
	struct mir_config next;
	struct hc_err err = { 0, "" };
	struct timespec ts;
	char state[64], *token = NULL;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* MONOTONIC_USEC lets Type=notify-reload units match the reload too. */
	if (hc_snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%lld",
	                (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000) != 0)
		hc_strlcpy(state, "RELOADING=1", sizeof(state));
	hc_notify(state);
	rc = mir_load(argc, argv, path, &next, &err);
	if (rc == 0)
		rc = mir_token(&next, &token, &err);
	if (rc == 0)
		rc = mir_server_reload(srv, &next, token, &err);
	if (rc == 0) {
		/* Said before the new level applies: always seen at the old one. */
		hc_log(HC_LOG_INFO, "mirror", "reloaded %s", path != NULL ? path : "(no config file)");
		(void)hc_log_open(NULL, (enum hc_log_level)next.log_level, 1, &err);
	} else {
		hc_log(HC_LOG_ERROR, "mirror", "reload refused: %s", err.msg);
	}
	mir_wipe(&token);
	mir_config_free(&next);
	hc_notify("READY=1");
}

/* SIGTERM or SIGINT: refuses new connections and lets the requests in
 * progress end for up to grace_s seconds; a second signal ends the wait. */
static void
mir_drain(struct mir_server *srv, const sigset_t *sigs, long long grace_s)
{
	const struct timespec poll = { 0, MIR_DRAIN_POLL_MS * 1000000L };
	int64_t deadline = hc_now_ms() + grace_s * 1000;
	uint64_t left;
	int sig;

	hc_notify("STOPPING=1");
	mir_server_quiesce(srv);
	left = mir_server_in_flight(srv);
	hc_log(HC_LOG_INFO, "mirror", "draining %llu transfers", (unsigned long long)left);
	while (left > 0 && hc_now_ms() < deadline) {
		sig = sigtimedwait(sigs, NULL, &poll);
		if (sig == SIGTERM || sig == SIGINT) {
			hc_log(HC_LOG_WARN, "mirror", "signal %d again: stopping now", sig);
			return;
		}
		left = mir_server_in_flight(srv);
	}
	if (left > 0)
		hc_log(HC_LOG_WARN, "mirror", "shutdown_grace_s %lld passed: closing %llu "
		       "transfers", grace_s, (unsigned long long)left);
}

/* Serves until SIGTERM or SIGINT, reloading on SIGHUP. Wipes and frees
 * *token once the server holds its digest. 0, or the status that kept the
 * server from starting. */
static int
mir_serve(const struct mir_config *cfg, char **token, int argc, char **argv,
          const char *path, struct hc_err *err)
{
	struct mir_server *srv = NULL;
	sigset_t sigs;
	int rc, sig = 0;

	rc = hc_http_global_init(err);
	if (rc != 0)
		return rc;
	/* Every thread inherits this mask; only the main thread takes the signals. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	rc = mir_server_start(cfg, *token, &srv, err);
	mir_wipe(token);
	if (rc == 0) {
		hc_notify("READY=1");
		for (;;) {
			if (sigwait(&sigs, &sig) != 0 || sig != SIGHUP)
				break;
			mir_reload(srv, argc, argv, path);
		}
		hc_log(HC_LOG_INFO, "mirror", "signal %d: shutting down", sig);
		mir_drain(srv, &sigs, cfg->shutdown_grace_s);
		mir_server_stop(srv);
	}
	hc_http_global_cleanup();
	if (rc == 0)
		hc_log(HC_LOG_INFO, "mirror", "stopped");
	return rc;
}

/* --check-config: the effective configuration on stdout. */
static int
mir_check(const struct mir_config *cfg, struct hc_err *err)
{
	char *token = NULL;
	int rc = mir_token(cfg, &token, err);

	mir_wipe(&token);
	if (rc == 0)
		rc = hc_cfg_dump(mir_config_schema, cfg, STDOUT_FILENO, err);
	return rc;
}

int
main(int argc, char **argv)
{
	struct mir_config cfg;
	struct hc_err err = { 0, "" };
	const char *config_path = NULL;
	char *token = NULL;
	int opt, rc, check = 0;

	memset(&cfg, 0, sizeof(cfg));
	/* First pass: --help, --version and --config, before the file is read. */
	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, mir_short, mir_options, NULL);
		if (opt == -1)
			break;
		if (opt == OPT_HELP || opt == 'h') {
			fputs(mir_usage, stdout);
			return 0;
		}
		if (opt == OPT_VERSION || opt == 'V') {
			printf("hydra-mirror %s\n", HC_VERSION);
			return 0;
		}
		if (opt == OPT_CHECK || opt == 't')
			check = 1;
		if (opt == OPT_CONFIG)
			config_path = optarg;
		if (opt == '?' || opt == ':') {
			fprintf(stderr, "hydra-mirror: bad option %s (see --help)\n",
			        argv[optind - 1]);
			return hc_status_exit_code(HC_EUSAGE);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hydra-mirror: unexpected argument %s (see --help)\n", argv[optind]);
		return hc_status_exit_code(HC_EUSAGE);
	}
	if (config_path == NULL && access(MIR_DEFAULT_CONFIG, F_OK) == 0)
		config_path = MIR_DEFAULT_CONFIG;
	rc = mir_load(argc, argv, config_path, &cfg, &err);
	if (rc == 0 && check) {
		rc = mir_check(&cfg, &err);
		if (rc == 0) {
			mir_config_free(&cfg);
			return 0;
		}
	}
	if (rc != 0)
		goto fail;
	rc = hc_log_open(NULL, (enum hc_log_level)cfg.log_level, 1, &err);
	if (rc == 0)
		rc = mir_token(&cfg, &token, &err);
	if (rc == 0)
		rc = mir_serve(&cfg, &token, argc, argv, config_path, &err);
	if (rc != 0)
		goto fail;
	mir_config_free(&cfg);
	hc_log_close();
	return 0;
fail:
	mir_wipe(&token);
	fprintf(stderr, "hydra-mirror: %s\n", err.msg);
	mir_config_free(&cfg);
	hc_log_close();
	return hc_status_exit_code(rc);
}
