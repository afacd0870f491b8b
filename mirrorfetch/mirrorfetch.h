/*
 * mirrorfetch: install a build through the body's district mirror, falling
 * back to the origin, with streaming SHA-256 verification and resume
 * (docs/architecture.md section 5).
 */
#ifndef MIRRORFETCH_H
#define MIRRORFETCH_H

#include <stdatomic.h>
#include <stdio.h>

#include "common/hc.h"

/* A district is a DNS label: at most 63 characters. */
#define MF_DISTRICT_MAX 64
/* Mirrors given beside the district (mirror.extra_sources, --source): a
 * handful of redundant mirrors, not a list to crawl. */
#define MF_EXTRA_SOURCES_MAX 6
/* Sources tried for one file: the district mirror, the extra sources and
 * the origin. */
#define MF_CANDIDATES_MAX (MF_EXTRA_SOURCES_MAX + 2)
/* Attempts for one install: each candidate, plus one retry of a source whose
 * content changed under a resumed transfer. */
#define MF_ATTEMPTS_MAX (2 * MF_CANDIDATES_MAX)
#define MF_URL_MAX 2048
/* Longest node id put into a URL: ids are short names; a longer one is a
 * configuration mistake, reported as such. */
#define MF_NODE_ID_MAX 256

struct mf_sources;

struct mf_config {
	const char *node_id;
	const char *state_dir;           /* last known district lives here */
	const char *district_config_url; /* "" or NULL: no API */
	const char *district_static;     /* "" or NULL: ask the API */
	const char *origin_host;
	const char *url_pattern;         /* "https://{district}.hydramirror.example" */
	int head_timeout_ms;
	struct hc_http_config http;      /* DNS, CA, connect timeout, stall limits */
	atomic_uint_least64_t *rx_bytes; /* NULL, or a counter every body byte received
	                                    is added to (live progress of a sync) */
	struct mf_sources *sources;      /* NULL, or the hosts this run found down */
	const char *const *extra_sources;/* base URLs tried after the district, in order */
	size_t n_extra_sources;          /* at most MF_EXTRA_SOURCES_MAX */
};

/* A check for hc_cfg_field.check and --source: value is a mirror's base URL,
 * http(s)://HOST[:PORT] with at most a trailing '/', no path or query. 0, or
 * HC_ECONFIG with why in what. */
int mf_source_check(const char *value, char *what, size_t what_size);

enum mf_progress_mode { MF_PROGRESS_NONE, MF_PROGRESS_BAR };

struct mf_attempt {
	char url[MF_URL_MAX];
	char host[HC_HOST_MAX];
	const char *result;   /* "ok", "sha256_mismatch", "changed", or hc_fail_name() */
	long http_status;
	uint64_t bytes;       /* body bytes received from this source */
	int64_t ms;
};

struct mf_result {
	char path[MF_URL_MAX];
	uint64_t bytes;
	char sha256[HC_SHA256_HEX_LEN + 1];
	char source_url[MF_URL_MAX];
	char source_host[HC_HOST_MAX];
	int fallback;         /* the file did not come (only) from the first candidate */
	const char *digest_source; /* "argument", "origin", "mirror", "none"; NULL before */
	int already_installed;     /* --sha256 matched what PATH held: nothing fetched */
	int64_t elapsed_ms;
	size_t n_attempts;
	struct mf_attempt attempts[MF_ATTEMPTS_MAX];
};

/*
 * The body's district: district_static when set, else the district API
 * (remembered in state_dir), else the last remembered answer when the API is
 * down. *out is "" when no district is known, or when the one found is not a
 * valid DNS label (that is logged). This function only fails on a bad
 * config_url; a failing API is logged and falls back.
 */
int mf_district_lookup(const struct mf_config *cfg, char out[MF_DISTRICT_MAX],
                       struct hc_err *err);

/* One source of a file: its URL and that URL's host, parsed once; every
 * request to it hands u over (hc_http_request.parsed). */
struct mf_candidate {
	char url[MF_URL_MAX];
	char host[HC_HOST_MAX];
	struct hc_url u;
	int extra;            /* one of cfg->extra_sources, not the district */
};

struct mf_candidates {
	struct mf_candidate c[MF_CANDIDATES_MAX];
	size_t n;
};

/* 1 when u's host is origin_host (case-insensitive). */
int mf_is_origin(const struct hc_url *u, const char *origin_host);

/*
 * The candidates for url (already parsed into u), in order: when district is
 * non-empty and u's host equals origin_host (case-insensitive), url_pattern
 * with {district} substituted plus url's path and query, then url itself;
 * otherwise url alone. out->n is 1 or 2. 0 or HC_EDATA / HC_ECONFIG.
 */
int mf_rewrite_url(const struct hc_url *u, const char *url, const char *district,
                   const char *origin_host, const char *url_pattern,
                   struct mf_candidates *out, struct hc_err *err);

/* Frees what the candidates hold (their parsed URLs); n becomes 0. Safe on
 * candidates that failed to be made. This function cannot fail. */
void mf_candidates_free(struct mf_candidates *c);

/* Gives the district for an origin URL: *district is "" when none is known.
 * Called at most once per mf_candidates_for, only for origin URLs. */
typedef int (*mf_district_fn)(void *ctx, const char **district, struct hc_err *err);

/*
 * Parses url once and gives its candidates (mf_rewrite_url, then for an
 * origin URL cfg->extra_sources with url's path and query inserted before
 * the origin, in order; free them with mf_candidates_free, on error too),
 * asking district() only when url is on cfg->origin_host. A URL that is not an
 * absolute http(s) URL is HC_EUSAGE naming it: it came from the command
 * line (manifest entries are checked when the manifest is parsed).
 */
int mf_candidates_for(const struct mf_config *cfg, const char *url, mf_district_fn district,
                      void *ctx, struct mf_candidates *out, struct hc_err *err);

/*
 * Installs url at out_path: see docs/architecture.md section 5. expect_sha256 may be NULL.
 * out_path never holds a partial or unverified file; out_path.part holds the
 * bytes so far and is resumed by the next run. A bad url or an empty
 * out_path is HC_EUSAGE, and an out_path or part that is a link or not a
 * regular file HC_ECANTCREAT, both before any transfer. Returns 0,
 * HC_EUNAVAIL (no source reachable), HC_EDATA (checksum failed
 * everywhere), HC_ECANTCREAT, HC_EIO. res is filled in every case.
 */
int mf_install(const struct mf_config *cfg, const char *url, const char *out_path,
               const char *expect_sha256, enum mf_progress_mode progress,
               struct mf_result *res, struct hc_err *err);

/*
 * A pipelined writer for a part file: mf_writer_push copies bytes into a
 * bounded ring of large buffers (blocking when it is full); a writer thread
 * writes each buffer at the running offset while a hasher thread feeds the
 * same buffer to hash, both in order. The fd and hash stay
 * the caller's and must not be touched between a push and mf_writer_flush.
 */
struct mf_writer;
/* Starts the threads; writing begins at offset. 0, HC_ENOMEM or HC_ESOFTWARE. */
int mf_writer_new(int fd, struct hc_sha256 *hash, uint64_t offset,
                  struct mf_writer **out, struct hc_err *err);
/* 0, or the errno of the first failed write (sticky). */
int mf_writer_push(struct mf_writer *w, const void *data, size_t len);
/* Waits until every pushed byte is written and hashed (pushed bytes reach
 * the threads in slots; a flush hands on a slot not yet full). 0 or the errno. */
int mf_writer_flush(struct mf_writer *w);
/* After a flush: the next byte goes to offset (the caller truncated). */
void mf_writer_rewind(struct mf_writer *w, uint64_t offset);
/* Stops the threads; pushed bytes are written first. NULL is a no-op. */
void mf_writer_free(struct mf_writer *w);

/* "512 B", "1.5 MiB": v bytes for a progress line (powers of 1024). out is
 * "" when too small. This function cannot fail. */
void mf_format_bytes(double v, char *out, size_t size);

/* Writes res as the --json object of docs/install.md to out: schema 1, and
 * error (the message) when status is not 0. */
void mf_result_print_json(const struct mf_result *res, int status, const char *error,
                          FILE *out);

/* ------------------------------------------------------------------ manifests */

/* What `hydra-agent manifest` writes. */
#define MF_MANIFEST_VERSION "1.0"
/* Bounds on hostile input: a manifest text, its file count, one path, and
 * tool_id / tool_version. A tool of 100k files fits with room to spare. */
#define MF_MANIFEST_MAX ((size_t)64 << 20)
#define MF_MANIFEST_FILES_MAX 262144
#define MF_MANIFEST_PATH_MAX 1024
#define MF_MANIFEST_NAME_MAX 256

struct mf_manifest_file {
	char *path;                          /* relative, validated (mf_manifest_check_path) */
	char sha256[HC_SHA256_HEX_LEN + 1];  /* lower case */
	uint64_t size;
	char *url;                           /* http(s) */
	size_t index;                        /* position in the manifest's files[] */
};

struct mf_manifest {
	char *manifest_version;
	char *tool_id;
	char *tool_version;
	struct mf_manifest_file *files;      /* sorted by path, byte order */
	size_t n;
	char manifest_hash[HC_SHA256_HEX_LEN + 1]; /* lower case */
};

/*
 * Parses and validates a manifest (docs/sync.md): every field, every entry
 * (path, sha256, size, url), no duplicate path, no path under another
 * file's path, and manifest_hash against the canonical form. On error
 * (HC_EDATA) the message names the entry, as "files[3] path \"../x\": ...",
 * and *out is NULL. Caller frees with mf_manifest_free.
 */
int mf_manifest_parse(const char *text, size_t len, struct mf_manifest **out,
                      struct hc_err *err);
void mf_manifest_free(struct mf_manifest *m);

/* 0 when path (len bytes, may hold NUL) is a safe relative path inside a
 * synced folder, else HC_EDATA with the reason in why. */
int mf_manifest_check_path(const char *path, size_t len, char *why, size_t why_size);

/* The canonical text manifest_hash covers (docs/sync.md); caller frees. */
int mf_manifest_canonical(const struct mf_manifest *m, char **out, size_t *len,
                          struct hc_err *err);
/* SHA-256 of the canonical text, lower-case hex. */
int mf_manifest_hash(const struct mf_manifest *m, char hex[HC_SHA256_HEX_LEN + 1],
                     struct hc_err *err);

/* Lists and hashes every regular file under dir (top-level .hydra-* skipped)
 * into a manifest whose URLs are
 * {base_url}/api/v1/tools/{tool_id}/{version}/files/{path}, percent-encoded.
 * HC_EUSAGE for bad arguments, HC_EDATA for a file name no manifest may
 * hold, HC_EIO. Caller frees. */
int mf_manifest_from_dir(const char *dir, const char *tool_id, const char *version,
                         const char *base_url, struct mf_manifest **out,
                         struct hc_err *err);

/* The manifest as JSON text (pretty, seed key order). Caller frees; NULL
 * when out of memory. */
char *mf_manifest_to_json(const struct mf_manifest *m);

/* ------------------------------------------------------------------ sync */

/* Transfers at once; each is a thread with its own connection. */
#define MF_SYNC_JOBS_MAX 64
#define MF_SYNC_JOBS_DEFAULT 4
/* DIR/MF_SYNC_INDEX and DIR/MF_SYNC_STAGING: the sync's own state. */
#define MF_SYNC_INDEX ".hydra-index"
#define MF_SYNC_STAGING ".hydra-staging"

struct mf_sync_options {
	const char *manifest;   /* http(s) URL or a file */
	const char *manifest_hash; /* NULL, or the manifest_hash the manifest must have
	                              (pins it: a mirror cannot serve another one) */
	const char *dir;
	int delete_extra;       /* --delete */
	int jobs;               /* 1..MF_SYNC_JOBS_MAX */
	int progress;           /* redraw a summary on stderr */
};

struct mf_sync_transfer {
	char *path;
	uint64_t bytes;         /* body bytes received for it */
	char host[HC_HOST_MAX]; /* who served the verified copy */
	int fallback;
	int64_t ms;
};

struct mf_sync_result {
	char dir[MF_URL_MAX];
	char tool_id[MF_MANIFEST_NAME_MAX];
	char tool_version[MF_MANIFEST_NAME_MAX];
	char manifest_hash[HC_SHA256_HEX_LEN + 1];
	size_t files;           /* in the manifest */
	size_t unchanged;       /* already right in DIR */
	size_t from_index;      /* of those, known from the index without hashing */
	size_t hashed;          /* files hashed to decide */
	size_t downloaded;
	size_t reused_staged;   /* verified copies left in staging by an earlier run */
	size_t deleted;
	uint64_t bytes;         /* body bytes received */
	uint64_t total_bytes;   /* sum of the manifest's sizes */
	int64_t elapsed_ms;
	char failed_path[MF_MANIFEST_PATH_MAX];
	struct mf_sync_transfer *transfers;
	size_t n_transfers;
};

/*
 * Brings opt->dir up to the manifest (docs/sync.md): validate the whole
 * manifest before writing anything, decide per file with the index, fetch
 * what is missing or changed into staging with mf_fetch on opt->jobs
 * threads, and only when every file is verified rename them into place.
 * Returns 0, HC_EDATA (bad manifest, checksum failed everywhere),
 * HC_EUNAVAIL (no source), HC_ECANTCREAT, HC_EIO. res is filled in every
 * case; free it with mf_sync_result_free.
 */
int mf_sync(const struct mf_config *cfg, const struct mf_sync_options *opt,
            struct mf_sync_result *res, struct hc_err *err);
void mf_sync_result_free(struct mf_sync_result *res);
/* Writes res as the --json object of docs/sync.md to out: schema 1, and
 * error (the message) when status is not 0. */
void mf_sync_result_print_json(const struct mf_sync_result *res, int status,
                               const char *error, FILE *out);

#endif
