/* agent: hydra-agent's configuration (docs/architecture.md section 4) and subcommands. */
#ifndef AGENT_H
#define AGENT_H

#include "common/hc.h"

#define AG_DEFAULT_CONFIG "/etc/hydra-agent/agent.yaml"

/* The "schema" of every --json object: raised when a field changes meaning or
 * goes away, so hooks that parse the output can tell. */
#define AG_JSON_SCHEMA 1

enum ag_discovery_mode { AG_MODE_SEQUENTIAL, AG_MODE_PARALLEL };
enum ag_discovery_rank { AG_RANK_LATENCY, AG_RANK_SERVER };

struct ag_config {
	char *node_id;
	char *state_dir;
	char *log_file;
	struct {
		char *ca_file;
	} tls;
	struct {
		struct hc_strlist servers;
		long long timeout_ms;
	} dns;
	struct {
		char *config_url;
		char *static_district;
	} district;
	struct {
		char *origin_host;
		char *url_pattern;
		struct hc_strlist extra_sources; /* base URLs tried after the district */
		long long head_timeout_ms;
		struct {
			uint64_t bytes_per_s;
			long long seconds;
		} stall;
	} mirror;
	struct {
		char *cluster_url;
		char *head_id;
		char *district;
		char *venue;
		long long port;
		long long probe_timeout_ms;
		int mode;  /* enum ag_discovery_mode */
		int rank;  /* enum ag_discovery_rank: the cross-venue partition's order */
		long long launch_window_s;
	} discovery;
};

/* The schema of agent.yaml, for hc_cfg_*. */
extern const struct hc_cfg_field ag_config_schema[];

/* Fills cfg with the defaults, then loads path over them. A missing file is
 * an error only when must_exist (the user named it with --config). On error
 * cfg is freed. Caller frees with ag_config_free. */
int ag_config_load(struct ag_config *cfg, const char *path, int must_exist,
                   struct hc_err *err);
void ag_config_free(struct ag_config *cfg);

/* The DNS server list as c-ares wants it: "a:p,b:p". Caller frees. NULL when
 * out of memory. */
char *ag_config_dns_servers(const struct ag_config *cfg);

/* Fills http with the resolver and TLS settings of cfg (dns.*, tls.ca_file),
 * everything else zero. *servers_owned holds the server list http points
 * to: the caller frees it after the last request. 0 or HC_ENOMEM. */
int ag_config_http(const struct ag_config *cfg, struct hc_http_config *http,
                   char **servers_owned, struct hc_err *err);

struct mf_config;

/* Fills mf with everything install and sync take from cfg: district, mirror
 * rewrite, resolver, TLS, connect and stall limits. *servers_owned is the DNS
 * list mf points to: the caller frees it after the last use of mf.
 * 0 or HC_ENOMEM. */
int ag_config_mirrorfetch(const struct ag_config *cfg, struct mf_config *mf,
                          char **servers_owned, struct hc_err *err);

/* --source URL: checks that arg is a mirror's base URL (mf_source_check)
 * and appends it to list, which holds max. 0 or HC_EUSAGE naming it. */
int ag_source_arg(const char *arg, const char **list, size_t *n, size_t max,
                  struct hc_err *err);
/* Points mf's extra sources at merged (room for max): mirror.extra_sources
 * as ag_config_mirrorfetch set them, then the n_cli --source values. 0 or
 * HC_EUSAGE when there are more than max. */
int ag_mirrorfetch_sources(struct mf_config *mf, const char *const *cli, size_t n_cli,
                           const char **merged, size_t max, struct hc_err *err);

/* --progress auto|bar|none: *bar is 1 for a progress bar (auto: when stderr
 * is a terminal). 0 or HC_EUSAGE naming the bad value. */
int ag_progress_arg(const char *arg, int *bar, struct hc_err *err);

/* What every subcommand receives: the loaded config and global options. */
struct ag_ctx {
	struct ag_config cfg;
	const char *config_path;
	int config_given;
};

/* A subcommand: parses its own argv (argv[0] is its name) and returns a status;
 * main maps it to an exit code. */
struct ag_command {
	const char *name;
	const char *summary;
	const char *usage;   /* the subcommand's --help text */
	int (*run)(struct ag_ctx *ctx, int argc, char **argv, struct hc_err *err);
	int needs_log;       /* open log_file before running */
};

extern const struct ag_command ag_cmd_check_config;
extern const struct ag_command ag_cmd_discover;
extern const struct ag_command ag_cmd_invalidate;
extern const struct ag_command ag_cmd_stream;
extern const struct ag_command ag_cmd_install;
extern const struct ag_command ag_cmd_manifest;
extern const struct ag_command ag_cmd_sync;

#endif
