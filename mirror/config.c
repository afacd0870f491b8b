/* mirror.yaml: the schema of docs/architecture.md section 8 and the listen address. */
#include <sys/socket.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/mirror.h"

#define MIR_OFF(member) offsetof(struct mir_config, member)
/* An idle connection held longer than an hour is a leak, not a setting. */
#define MIR_TIMEOUT_S_MAX 3600
/* Each connection is a socket and a few KiB (no thread): beyond this many
 * clients on one mirror the box is the problem. */
#define MIR_CONNECTIONS_MAX 16384

static const char *const mir_mode_names[] = { "origin", "peer", NULL };
static const char *const mir_level_names[] = { "debug", "info", "warn", "error", NULL };

static int
mir_check_listen(const char *value, char *what, size_t what_size)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (hc_parse_listen(value, &ss, &len, NULL) == 0)
		return 0;
	hc_snprintf(what, what_size,
	            "'%s' is not a listen address such as 127.0.0.1:8080, [::1]:8080 or :8080",
	            value);
	return HC_ECONFIG;
}

static int
mir_check_listen_or_empty(const char *value, char *what, size_t what_size)
{
	return *value == '\0' ? 0 : mir_check_listen(value, what, what_size);
}

int
mir_check_origin_url(const char *value, char *what, size_t what_size)
{
	char shown[MIR_URL_SHOWN_MAX];

	if (hc_cfg_check_url(value, what, what_size) == 0)
		return 0;
	/* The common message quotes the URL, credentials and all. */
	mir_url_redact(value, shown, sizeof(shown));
	hc_snprintf(what, what_size, "'%s' is not an http or https URL with a host", shown);
	return HC_ECONFIG;
}

/* A year: a hit verified longer ago than that has not been verified. */
#define MIR_VERIFY_MAX_AGE_S_MAX (366LL * 86400)
/* A drain longer than this outlives any stop timeout of a service manager. */
#define MIR_GRACE_S_MAX 3600

static const struct hc_cfg_field mir_acme_schema[] = {
	{ .key = "listen", .type = HC_CFG_STRING, .offset = MIR_OFF(acme.listen),
	  .check = mir_check_listen_or_empty },
	{ .key = "webroot", .type = HC_CFG_STRING, .offset = MIR_OFF(acme.webroot) },
	{ .key = NULL },
};

static const struct hc_cfg_field mir_tls_schema[] = {
	{ .key = "cert", .type = HC_CFG_STRING, .offset = MIR_OFF(tls.cert) },
	{ .key = "key", .type = HC_CFG_STRING, .offset = MIR_OFF(tls.key) },
	{ .key = "ca_file", .type = HC_CFG_STRING, .offset = MIR_OFF(tls.ca_file) },
	{ .key = NULL },
};

static const char *const mir_import_names[] = { "on_first_use", "on_request_only", NULL };

static const struct hc_cfg_field mir_upstream_schema[] = {
	{ .key = "archive_url", .type = HC_CFG_STRING, .offset = MIR_OFF(tools_upstream.archive_url),
	  .check = mir_check_origin_url },
	{ .key = "manifest_url", .type = HC_CFG_STRING,
	  .offset = MIR_OFF(tools_upstream.manifest_url), .check = mir_check_origin_url },
	{ .key = "token_file", .type = HC_CFG_STRING, .offset = MIR_OFF(tools_upstream.token_file) },
	{ .key = "max_archive_bytes", .type = HC_CFG_SIZE,
	  .offset = MIR_OFF(tools_upstream.max_archive_bytes), .def = "64G", .min = 1, .max = 0 },
	{ .key = "import", .type = HC_CFG_ENUM, .offset = MIR_OFF(tools_upstream.import),
	  .def = "on_first_use", .enum_values = mir_import_names },
	{ .key = NULL },
};

/* Pre-warm fills at once beyond this compete with clients for the origin. */
#define MIR_PREWARM_CONCURRENCY_MAX 64
/* The origin caps its long-poll at 30 s (MIR_JOURNAL_WAIT_MAX_S). */
#define MIR_PREWARM_WAIT_S_MAX 30
/* A file read within protect_s is never evicted for a pre-warm; a year is
 * past any read pattern worth protecting, more is a typo. */
#define MIR_PREWARM_PROTECT_S_MAX (366LL * 24 * 3600)

static const struct hc_cfg_field mir_prewarm_schema[] = {
	{ .key = "enabled", .type = HC_CFG_BOOL, .offset = MIR_OFF(prewarm.enabled),
	  .def = "false" },
	{ .key = "prefixes", .type = HC_CFG_STRLIST, .offset = MIR_OFF(prewarm.prefixes) },
	{ .key = "concurrency", .type = HC_CFG_INT, .offset = MIR_OFF(prewarm.concurrency),
	  .def = "2", .min = 1, .max = MIR_PREWARM_CONCURRENCY_MAX },
	{ .key = "max_origin_bytes_per_s", .type = HC_CFG_SIZE,
	  .offset = MIR_OFF(prewarm.max_origin_bytes_per_s), .def = "0", .min = 0, .max = 0 },
	{ .key = "wait_s", .type = HC_CFG_INT, .offset = MIR_OFF(prewarm.wait_s),
	  .def = "25", .min = 1, .max = MIR_PREWARM_WAIT_S_MAX },
	{ .key = "protect_s", .type = HC_CFG_INT, .offset = MIR_OFF(prewarm.protect_s),
	  .def = "3600", .min = 0, .max = MIR_PREWARM_PROTECT_S_MAX },
	{ .key = NULL },
};

const struct hc_cfg_field mir_config_schema[] = {
	{ .key = "listen", .type = HC_CFG_STRING, .offset = MIR_OFF(listen),
	  .def = "127.0.0.1:8080", .check = mir_check_listen },
	{ .key = "root", .type = HC_CFG_STRING, .offset = MIR_OFF(root),
	  .def = "/var/lib/hydra-mirror" },
	{ .key = "mode", .type = HC_CFG_ENUM, .offset = MIR_OFF(mode), .def = "origin",
	  .enum_values = mir_mode_names },
	{ .key = "origin_url", .type = HC_CFG_STRING, .offset = MIR_OFF(origin_url),
	  .check = mir_check_origin_url },
	{ .key = "district", .type = HC_CFG_STRING, .offset = MIR_OFF(district),
	  .check = hc_cfg_check_dns_label },
	{ .key = "max_bytes", .type = HC_CFG_SIZE, .offset = MIR_OFF(max_bytes),
	  .def = "0", .min = 0, .max = 0 },
	{ .key = "admin_token_file", .type = HC_CFG_STRING,
	  .offset = MIR_OFF(admin_token_file) },
	{ .key = "tls", .type = HC_CFG_MAP, .children = mir_tls_schema },
	{ .key = "max_egress_bytes_per_s", .type = HC_CFG_SIZE,
	  .offset = MIR_OFF(max_egress_bytes_per_s), .def = "0", .min = 0, .max = 0 },
	{ .key = "keep_versions", .type = HC_CFG_INT, .offset = MIR_OFF(keep_versions),
	  .def = "0", .min = 0, .max = MIR_KEEP_VERSIONS_MAX },
	{ .key = "connection_timeout_s", .type = HC_CFG_INT,
	  .offset = MIR_OFF(connection_timeout_s), .def = "60", .min = 1,
	  .max = MIR_TIMEOUT_S_MAX },
	{ .key = "max_connections", .type = HC_CFG_INT, .offset = MIR_OFF(max_connections),
	  .def = "1024", .min = 1, .max = MIR_CONNECTIONS_MAX },
	{ .key = "max_connections_per_ip", .type = HC_CFG_INT,
	  .offset = MIR_OFF(max_connections_per_ip), .def = "256", .min = 1,
	  .max = MIR_CONNECTIONS_MAX },
	{ .key = "require_origin_digest", .type = HC_CFG_BOOL,
	  .offset = MIR_OFF(require_origin_digest), .def = "false" },
	{ .key = "shutdown_grace_s", .type = HC_CFG_INT, .offset = MIR_OFF(shutdown_grace_s),
	  .def = "30", .min = 0, .max = MIR_GRACE_S_MAX },
	{ .key = "access_log", .type = HC_CFG_STRING, .offset = MIR_OFF(access_log) },
	{ .key = "acme", .type = HC_CFG_MAP, .children = mir_acme_schema },
	{ .key = "tools_upstream", .type = HC_CFG_MAP, .children = mir_upstream_schema },
	{ .key = "prewarm", .type = HC_CFG_MAP, .children = mir_prewarm_schema },
	{ .key = "log_level", .type = HC_CFG_ENUM, .offset = MIR_OFF(log_level),
	  .def = "info", .enum_values = mir_level_names },
	{ .key = "scrub_bytes_per_s", .type = HC_CFG_SIZE, .offset = MIR_OFF(scrub_bytes_per_s),
	  .def = "32M", .min = 0, .max = 0 },
	{ .key = "verify_max_age_s", .type = HC_CFG_INT, .offset = MIR_OFF(verify_max_age_s),
	  .def = "86400", .min = 0, .max = MIR_VERIFY_MAX_AGE_S_MAX },
	{ .key = NULL },
};

int
mir_config_defaults(struct mir_config *cfg, struct hc_err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	return hc_cfg_defaults(mir_config_schema, cfg, err);
}

int
mir_config_load(struct mir_config *cfg, const char *path, struct hc_err *err)
{
	return hc_cfg_load_file(mir_config_schema, cfg, path, err);
}

static int
mir_has(const char *s)
{
	return s != NULL && *s != '\0';
}

static int
mir_same(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/* The pre-warm is started once with its settings: a change needs a restart. */
static int
mir_same_prewarm(const struct mir_config *old, const struct mir_config *next)
{
	size_t i;

	if (old->prewarm.enabled != next->prewarm.enabled ||
	    old->prewarm.concurrency != next->prewarm.concurrency ||
	    old->prewarm.wait_s != next->prewarm.wait_s ||
	    old->prewarm.protect_s != next->prewarm.protect_s ||
	    old->prewarm.max_origin_bytes_per_s != next->prewarm.max_origin_bytes_per_s ||
	    old->prewarm.prefixes.n != next->prewarm.prefixes.n)
		return 0;
	for (i = 0; i < old->prewarm.prefixes.n; i++)
		if (strcmp(old->prewarm.prefixes.items[i], next->prewarm.prefixes.items[i]) != 0)
			return 0;
	return 1;
}

int
mir_config_restart_keys(const struct mir_config *old, const struct mir_config *next,
                        char *what, size_t what_size)
{
	struct hc_buf b;
	int rc = 0;

	hc_buf_init(&b, what_size);
	if (!mir_same(old->listen, next->listen))
		rc = hc_buf_printf(&b, " listen");
	if (rc == 0 && !mir_same(old->root, next->root))
		rc = hc_buf_printf(&b, " root");
	if (rc == 0 && old->mode != next->mode)
		rc = hc_buf_printf(&b, " mode");
	if (rc == 0 && !mir_same(old->acme.listen, next->acme.listen))
		rc = hc_buf_printf(&b, " acme.listen");
	if (rc == 0 && mir_has(old->tls.cert) != mir_has(next->tls.cert))
		rc = hc_buf_printf(&b, " tls.cert");
	if (rc == 0 && !mir_same_prewarm(old, next))
		rc = hc_buf_printf(&b, " prewarm");
	if (b.len == 0) {
		hc_buf_free(&b);
		return 0;
	}
	hc_snprintf(what, what_size, "%s need%s a restart", hc_buf_str(&b) + 1,
	            strchr(hc_buf_str(&b) + 1, ' ') != NULL ? "" : "s");
	hc_buf_free(&b);
	return HC_ECONFIG;
}

int
mir_config_check(const struct mir_config *cfg, struct hc_err *err)
{
	int has_cert = cfg->tls.cert != NULL && *cfg->tls.cert != '\0';
	int has_key = cfg->tls.key != NULL && *cfg->tls.key != '\0';
	struct sockaddr_storage ss;
	socklen_t len;

	if (cfg->root == NULL || *cfg->root == '\0')
		return hc_err_set(err, HC_ECONFIG, "root: must not be empty");
	if (cfg->mode == MIR_MODE_PEER &&
	    (cfg->origin_url == NULL || *cfg->origin_url == '\0'))
		return hc_err_set(err, HC_ECONFIG, "origin_url: required in peer mode");
	if (has_cert != has_key)
		return hc_err_set(err, HC_ECONFIG, "tls: cert and key go together");
	if (mir_has(cfg->acme.listen) && !mir_has(cfg->acme.webroot))
		return hc_err_set(err, HC_ECONFIG, "acme.listen: needs acme.webroot");
	if (mir_has(cfg->acme.listen) && hc_parse_listen(cfg->acme.listen, &ss, &len, err) != 0)
		return hc_err_set(err, HC_ECONFIG, "acme.listen: '%s' is not ip:port",
		                  cfg->acme.listen);
	if (cfg->prewarm.enabled && cfg->mode != MIR_MODE_PEER)
		return hc_err_set(err, HC_ECONFIG, "prewarm.enabled: only a peer pre-warms");
	if (hc_parse_listen(cfg->listen, &ss, &len, err) != 0)
		return hc_err_set(err, HC_ECONFIG, "listen: '%s' is not ip:port",
		                  cfg->listen != NULL ? cfg->listen : "");
	return 0;
}

void
mir_config_free(struct mir_config *cfg)
{
	if (cfg == NULL)
		return;
	hc_cfg_free(mir_config_schema, cfg);
}

void
mir_url_redact(const char *url, char *out, size_t size)
{
	const char *auth, *end, *at = NULL, *p;
	int rc;

	auth = strstr(url, "://");
	auth = auth != NULL ? auth + 3 : url;
	end = auth + strcspn(auth, "/?#");
	/* The last '@' before the path ends the userinfo: a password may hold '@'. */
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		rc = hc_strlcpy(out, url, size);
	else
		rc = hc_snprintf(out, size, "%.*s***%s", (int)(auth - url), url, at);
	if (rc != 0 && size > 0)
		out[0] = '\0';
}
