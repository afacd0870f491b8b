/* agent.yaml: the schema of docs/architecture.md section 4 and its loading. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "mirrorfetch/mirrorfetch.h"

#define AG_OFF(member) offsetof(struct ag_config, member)
/* Connecting to a mirror takes milliseconds; ten seconds means it is not there. */
#define AG_CONNECT_TIMEOUT_MS 10000
/* Timeouts above ten minutes are typos, not settings. */
#define AG_TIMEOUT_MS_MAX 600000

static const struct hc_cfg_field ag_tls_schema[] = {
	{ .key = "ca_file", .type = HC_CFG_STRING, .offset = AG_OFF(tls.ca_file) },
	{ .key = NULL },
};

static const struct hc_cfg_field ag_dns_schema[] = {
	{ .key = "servers", .type = HC_CFG_STRLIST, .offset = AG_OFF(dns.servers),
	  .check = hc_cfg_check_host_port },
	{ .key = "timeout_ms", .type = HC_CFG_INT, .offset = AG_OFF(dns.timeout_ms),
	  .def = "1000", .min = 1, .max = AG_TIMEOUT_MS_MAX },
	{ .key = NULL },
};

static const struct hc_cfg_field ag_district_schema[] = {
	{ .key = "config_url", .type = HC_CFG_STRING, .offset = AG_OFF(district.config_url),
	  .check = hc_cfg_check_url },
	{ .key = "static", .type = HC_CFG_STRING, .offset = AG_OFF(district.static_district),
	  .check = hc_cfg_check_dns_label },
	{ .key = NULL },
};

static const struct hc_cfg_field ag_stall_schema[] = {
	{ .key = "bytes_per_s", .type = HC_CFG_SIZE,
	  .offset = AG_OFF(mirror.stall.bytes_per_s), .def = "65536", .min = 0, .max = 0 },
	{ .key = "seconds", .type = HC_CFG_INT, .offset = AG_OFF(mirror.stall.seconds),
	  .def = "10", .min = 1, .max = 3600 },
	{ .key = NULL },
};

static const struct hc_cfg_field ag_mirror_schema[] = {
	{ .key = "origin_host", .type = HC_CFG_STRING, .offset = AG_OFF(mirror.origin_host),
	  .def = "mirror-a.experiencenet.com" },
	{ .key = "url_pattern", .type = HC_CFG_STRING, .offset = AG_OFF(mirror.url_pattern),
	  .def = "https://{district}.hydramirror.experiencenet.com" },
	{ .key = "extra_sources", .type = HC_CFG_STRLIST,
	  .offset = AG_OFF(mirror.extra_sources), .max = MF_EXTRA_SOURCES_MAX,
	  .check = mf_source_check },
	{ .key = "head_timeout_ms", .type = HC_CFG_INT,
	  .offset = AG_OFF(mirror.head_timeout_ms), .def = "2000", .min = 1,
	  .max = AG_TIMEOUT_MS_MAX },
	{ .key = "stall", .type = HC_CFG_MAP, .children = ag_stall_schema },
	{ .key = NULL },
};

static const char *const ag_mode_names[] = { "sequential", "parallel", NULL };
/* In the order of enum ag_discovery_rank. */
static const char *const ag_rank_names[] = { "latency", "server", NULL };

static const struct hc_cfg_field ag_discovery_schema[] = {
	{ .key = "cluster_url", .type = HC_CFG_STRING,
	  .offset = AG_OFF(discovery.cluster_url), .def = "https://cluster.example",
	  .check = hc_cfg_check_url },
	{ .key = "head_id", .type = HC_CFG_STRING, .offset = AG_OFF(discovery.head_id) },
	{ .key = "district", .type = HC_CFG_STRING, .offset = AG_OFF(discovery.district) },
	{ .key = "venue", .type = HC_CFG_STRING, .offset = AG_OFF(discovery.venue) },
	{ .key = "port", .type = HC_CFG_INT, .offset = AG_OFF(discovery.port),
	  .def = "47990", .min = 1, .max = 65535 },
	{ .key = "probe_timeout_ms", .type = HC_CFG_INT,
	  .offset = AG_OFF(discovery.probe_timeout_ms), .def = "1000", .min = 1,
	  .max = AG_TIMEOUT_MS_MAX },
	{ .key = "mode", .type = HC_CFG_ENUM, .offset = AG_OFF(discovery.mode),
	  .def = "sequential", .enum_values = ag_mode_names },
	{ .key = "rank", .type = HC_CFG_ENUM, .offset = AG_OFF(discovery.rank),
	  .def = "latency", .enum_values = ag_rank_names },
	{ .key = "launch_window_s", .type = HC_CFG_INT,
	  .offset = AG_OFF(discovery.launch_window_s), .def = "10", .min = 1, .max = 3600 },
	{ .key = NULL },
};

const struct hc_cfg_field ag_config_schema[] = {
	{ .key = "node_id", .type = HC_CFG_STRING, .offset = AG_OFF(node_id) },
	{ .key = "state_dir", .type = HC_CFG_STRING, .offset = AG_OFF(state_dir),
	  .def = "/var/lib/hydra-agent" },
	{ .key = "log_file", .type = HC_CFG_STRING, .offset = AG_OFF(log_file),
	  .def = "/var/log/hydrabody.log" },
	{ .key = "tls", .type = HC_CFG_MAP, .children = ag_tls_schema },
	{ .key = "dns", .type = HC_CFG_MAP, .children = ag_dns_schema },
	{ .key = "district", .type = HC_CFG_MAP, .children = ag_district_schema },
	{ .key = "mirror", .type = HC_CFG_MAP, .children = ag_mirror_schema },
	{ .key = "discovery", .type = HC_CFG_MAP, .children = ag_discovery_schema },
	{ .key = NULL },
};

void
ag_config_free(struct ag_config *cfg)
{
	if (cfg == NULL)
		return;
	hc_cfg_free(ag_config_schema, cfg);
}

int
ag_config_load(struct ag_config *cfg, const char *path, int must_exist,
               struct hc_err *err)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	rc = hc_cfg_defaults(ag_config_schema, cfg, err);
	if (rc != 0)
		goto fail;
	if (access(path, F_OK) != 0) {
		if (!must_exist)
			return 0;
		rc = hc_err_set(err, HC_ENOINPUT, "--config %s: %s", path, strerror(errno));
		goto fail;
	}
	rc = hc_cfg_load_file(ag_config_schema, cfg, path, err);
	if (rc != 0)
		goto fail;
	return 0;
fail:
	ag_config_free(cfg);
	return rc;
}

char *
ag_config_dns_servers(const struct ag_config *cfg)
{
	size_t i, len = 1, pos = 0;
	char *out;

	for (i = 0; i < cfg->dns.servers.n; i++)
		len += strlen(cfg->dns.servers.items[i]) + 1;
	out = malloc(len);
	if (out == NULL)
		return NULL;
	for (i = 0; i < cfg->dns.servers.n; i++) {
		size_t n = strlen(cfg->dns.servers.items[i]);
		if (i > 0)
			out[pos++] = ',';
		memcpy(out + pos, cfg->dns.servers.items[i], n);
		pos += n;
	}
	out[pos] = '\0';
	return out;
}

int
ag_config_http(const struct ag_config *cfg, struct hc_http_config *http,
               char **servers_owned, struct hc_err *err)
{
	memset(http, 0, sizeof(*http));
	*servers_owned = ag_config_dns_servers(cfg);
	if (*servers_owned == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	http->dns.servers = *servers_owned;
	http->dns.timeout_ms = (int)cfg->dns.timeout_ms;
	http->ca_file = cfg->tls.ca_file;
	return 0;
}

int
ag_config_mirrorfetch(const struct ag_config *cfg, struct mf_config *mf,
                      char **servers_owned, struct hc_err *err)
{
	int rc;

	memset(mf, 0, sizeof(*mf));
	rc = ag_config_http(cfg, &mf->http, servers_owned, err);
	if (rc != 0)
		return rc;
	mf->node_id = cfg->node_id;
	mf->state_dir = cfg->state_dir;
	mf->district_config_url = cfg->district.config_url;
	mf->district_static = cfg->district.static_district;
	mf->origin_host = cfg->mirror.origin_host;
	mf->url_pattern = cfg->mirror.url_pattern;
	mf->extra_sources = (const char *const *)cfg->mirror.extra_sources.items;
	mf->n_extra_sources = cfg->mirror.extra_sources.n;
	mf->head_timeout_ms = (int)cfg->mirror.head_timeout_ms;
	mf->http.connect_timeout_ms = AG_CONNECT_TIMEOUT_MS;
	mf->http.stall_bytes_per_s = cfg->mirror.stall.bytes_per_s;
	mf->http.stall_seconds = (int)cfg->mirror.stall.seconds;
	return 0;
}

int
ag_progress_arg(const char *arg, int *bar, struct hc_err *err)
{
	if (strcmp(arg, "bar") == 0)
		*bar = 1;
	else if (strcmp(arg, "auto") == 0)
		*bar = isatty(STDERR_FILENO);
	else if (strcmp(arg, "none") == 0)
		*bar = 0;
	else
		return hc_err_set(err, HC_EUSAGE, "--progress: '%s' is not auto, bar or none", arg);
	return 0;
}

int
ag_source_arg(const char *arg, const char **list, size_t *n, size_t max, struct hc_err *err)
{
	char why[HC_ERR_MAX];

	if (mf_source_check(arg, why, sizeof(why)) != 0)
		return hc_err_set(err, HC_EUSAGE, "--source: %s", why);
	if (*n >= max)
		return hc_err_set(err, HC_EUSAGE, "--source: more than %zu sources", max);
	list[(*n)++] = arg;
	return 0;
}

int
ag_mirrorfetch_sources(struct mf_config *mf, const char *const *cli, size_t n_cli,
                       const char **merged, size_t max, struct hc_err *err)
{
	size_t i, n = 0;

	if (mf->n_extra_sources + n_cli > max)
		return hc_err_set(err, HC_EUSAGE, "--source: %zu sources with mirror.extra_sources, "
		                  "at most %zu", mf->n_extra_sources + n_cli, max);
	for (i = 0; i < mf->n_extra_sources; i++)
		merged[n++] = mf->extra_sources[i];
	for (i = 0; i < n_cli; i++)
		merged[n++] = cli[i];
	mf->extra_sources = merged;
	mf->n_extra_sources = n;
	return 0;
}
