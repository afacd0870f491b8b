/*
 * mir: hydra-mirror, the file server that runs as the origin (mirror-a) or as
 * a district read-through cache (peer). docs/architecture.md section 8 is the contract;
 * docs/mirror.md is the operator's reference.
 */
#ifndef MIRROR_H
#define MIRROR_H

#include <stdint.h>
#include <sys/socket.h>

#include "common/hc.h"

/* ------------------------------------------------------------------ config */

/* keep_versions above this is a typo, not a retention policy. */
#define MIR_KEEP_VERSIONS_MAX 100000

enum mir_mode { MIR_MODE_ORIGIN = 0, MIR_MODE_PEER = 1 };

struct mir_config {
	char *listen;                  /* "127.0.0.1:8080", "[::1]:8080", ":8080" */
	char *root;                    /* {root}/files is the store */
	int mode;                      /* enum mir_mode */
	char *origin_url;              /* peer: where misses are filled from */
	char *district;                /* reported by /api/v1/health */
	uint64_t max_bytes;            /* peer: LRU bound on the store, 0: none */
	char *admin_token_file;        /* origin: PUT and DELETE bearer token */
	struct {
		char *cert;            /* PEM; with key: serve HTTPS */
		char *key;
		char *ca_file;         /* peer: CA bundle for an https origin, "": system */
	} tls;
	uint64_t max_egress_bytes_per_s; /* 0: unlimited */
	long long keep_versions;         /* newest versions kept per tool, 0: all */
	long long connection_timeout_s;  /* idle connections are closed after this */
	long long max_connections;       /* further connections are refused */
	long long max_connections_per_ip; /* from one client address */
	int log_level;                   /* enum hc_log_level */
	int require_origin_digest;       /* peer: refuse files the origin sends no digest for */
	long long shutdown_grace_s;      /* SIGTERM: how long transfers may finish */
	char *access_log;                /* combined log file, "-": stderr, "": none */
	struct {
		char *listen;          /* plain HTTP listener for challenges, "": none */
		char *webroot;         /* folder of challenge files */
	} acme;
	struct {                         /* origin: tools misses from upstream releases */
		char *archive_url;       /* template with {tool_id} {version}, "": off */
		char *manifest_url;      /* template, "": the release has none */
		char *token_file;        /* bearer token for private releases */
		uint64_t max_archive_bytes;
		int import;              /* 0: on_first_use, 1: on_request_only */
	} tools_upstream;
	struct {
		int enabled;           /* peer: follow the origin's publish journal */
		struct hc_strlist prefixes; /* only paths under these; none: all */
		long long concurrency; /* pre-warm fills at once */
		uint64_t max_origin_bytes_per_s; /* pre-warm's own budget, 0: none */
		long long wait_s;      /* long-poll asked of the origin */
		long long protect_s;   /* files read within this are never evicted for it */
	} prewarm;
	uint64_t scrub_bytes_per_s;      /* peer: background re-hash rate, 0: off */
	long long verify_max_age_s;      /* peer: older hits are hashed as they are sent */
};

extern const struct hc_cfg_field mir_config_schema[];

/* Sets the defaults. 0 or HC_ENOMEM. Free with mir_config_free. */
int mir_config_defaults(struct mir_config *cfg, struct hc_err *err);
/* Loads path over what is in cfg. 0, HC_ECONFIG or HC_EIO. */
int mir_config_load(struct mir_config *cfg, const char *path, struct hc_err *err);
/* Checks the settings together (peer needs origin_url, cert needs key...).
 * 0 or HC_ECONFIG. */
int mir_config_check(const struct mir_config *cfg, struct hc_err *err);
void mir_config_free(struct mir_config *cfg);
/* Names the keys that differ between old and next and need a restart
 * (listen, root, mode, acme.listen, tls turned on or off, any prewarm key) into what: 0 when
 * none, else HC_ECONFIG. */
int mir_config_restart_keys(const struct mir_config *old, const struct mir_config *next,
                            char *what, size_t what_size);
/* Longest origin_url shown in health and logs; a longer one shows as "". */
#define MIR_URL_SHOWN_MAX 1024
/* The origin_url check: an http(s) URL, the message never showing its
 * userinfo. hc_cfg_field.check signature. */
int mir_check_origin_url(const char *value, char *what, size_t what_size);
/* url as it may be shown (health, logs, errors): any userinfo
 * ("user:password@") becomes "***@". out is "" when it does not fit. */
void mir_url_redact(const char *url, char *out, size_t size);

/* ------------------------------------------------------------------ paths */

/* Longest store path accepted, decoded: the common limit for paths in URLs.
 * Paths are decoded and confined with hc_path_decode (common/hc.h). */
#define MIR_PATH_MAX HC_PATH_MAX

enum mir_range {
	MIR_RANGE_FULL = 0,        /* no Range, or one we ignore: send all (200) */
	MIR_RANGE_PARTIAL = 1,     /* one satisfiable range: 206 */
	MIR_RANGE_UNSATISFIABLE = 2, /* 416 with Content-Range: bytes *\/size */
};

/* Interprets a Range header value (NULL when absent) for a representation
 * of size bytes. Multiple ranges and malformed values are ignored (FULL),
 * as RFC 9110 allows. On PARTIAL, *start and *len are the single range. */
enum mir_range mir_range_parse(const char *value, uint64_t size,
                               uint64_t *start, uint64_t *len);

/* ------------------------------------------------------------------ server */

struct mir_server;

/* Starts serving with cfg (which must outlive the server). token is the
 * admin token (may be NULL in peer mode); the server keeps a copy and wipes
 * it on stop. On success logs the readiness line. */
int mir_server_start(const struct mir_config *cfg, const char *token,
                     struct mir_server **out, struct hc_err *err);

/* The port the server listens on (the kernel's choice for "ADDR:0"), or -1
 * when it cannot be told. This function cannot fail. */
int mir_server_port(const struct mir_server *s);

/* Applies what can change while serving from next (the same listen, root
 * and mode as the config the server started with, which stays in use):
 * the egress rate, the admin token (NULL: none), the TLS certificate and
 * key (new connections get them, open ones go on), the access log (opened
 * again, also after logrotate). Nothing changes when it fails: HC_ECONFIG
 * naming the key, or the status of the file that could not be read. */
int mir_server_reload(struct mir_server *s, const struct mir_config *next,
                      const char *token, struct hc_err *err);

/* Stops accepting: new connections are refused, responses from now on
 * close their connection, requests in progress go on. */
void mir_server_quiesce(struct mir_server *s);
/* Requests between their head and their last byte. */
uint64_t mir_server_in_flight(struct mir_server *s);

/* Stops accepting, aborts fills, waits for connections, persists the store
 * index and frees everything. mir_server_stop(NULL) is a no-op. */
void mir_server_stop(struct mir_server *s);

/* ------------------------------------------------------------------ store */

/*
 * The store: {root}/files holds the files, {root}/meta/index the metadata
 * (the origin's SHA-256 or none, size and mtime of each file, and the LRU
 * order) as a journal, {root}/tmp the uploads and fills in progress.
 * Touch and eviction are O(1). Thread-safe.
 */
struct mir_store;
struct mir_entry;

struct mir_store_stats {
	uint64_t bytes, files, max_bytes, evictions;
	uint64_t unverified;           /* files with no digest from the origin */
	uint64_t corrupt_evictions;    /* removed for not matching the origin's digest */
};

/* An open stored file, pinned (never evicted) until mir_store_release. */
struct mir_file {
	int fd;                        /* owned by the caller */
	uint64_t size;
	int64_t mtime_s;
	char sha256[HC_SHA256_HEX_LEN + 1];  /* "" when the origin gave none */
	int64_t verified_ms;           /* hc_now_ms when its bytes last matched sha256,
	                                * 0: not since the server started */
	struct mir_entry *entry;       /* pin handle */
};

/* Opens the store at root: creates the folders, removes stale temp files,
 * loads the index. exclusive (peers): refuse a root another server uses,
 * trust the index without walking files/, and never digest local bytes;
 * otherwise (origins) share the root with other origins, and walk files/
 * hashing the files the index does not describe (they are the origin's own
 * publication). HC_EUNAVAIL when the root is taken. */
int mir_store_open(const char *root, uint64_t max_bytes, int exclusive,
                   struct mir_store **out, struct hc_err *err);
/* Flushes the index and frees. NULL is a no-op. */
void mir_store_close(struct mir_store *st);

/* Opens the stored file at the decoded path and pins it; touch: move it to
 * the young end of the LRU. A file whose size or mtime changed since its
 * commit is checked first: a peer hashes it against the recorded digest
 * and on a mismatch removes it and answers HC_ENOTFOUND (a WARN names it),
 * as it does a changed file it has no digest for; a file it has no record
 * of is served as unverified (no digest); an origin digests it again.
 * HC_ENOTFOUND when absent (or not a regular file), HC_EDATA when it
 * resolves outside the store. */
int mir_store_get(struct mir_store *st, const char *path, int touch,
                  struct mir_file *out, struct hc_err *err);
/* Unpins. NULL entry is a no-op. */
void mir_store_release(struct mir_store *st, struct mir_entry *e);

/* What hashing a stored file found (mir_store_check). */
enum mir_check {
	MIR_CHECK_OK = 0,          /* matches the origin's digest: verified now */
	MIR_CHECK_EVICTED = 1,     /* does not: removed (a WARN names both digests) */
	MIR_CHECK_UNVERIFIABLE = 2, /* the origin gave no digest to check against */
};

/* Records what hashing the pinned file f found (found: SHA-256 hex of its
 * bytes) against the origin's digest recorded for it. Never trusts found
 * as a digest: on a mismatch the file is removed (to be filled again) and
 * counted in corrupt_evictions. A mir_check value, or HC_ENOTFOUND when
 * the entry was replaced or removed meanwhile, HC_EIO. */
int mir_store_check(struct mir_store *st, const struct mir_file *f, const char *found,
                    struct hc_err *err);

/* Most paths mir_store_scrub_batch returns at once: one walk of the table
 * under the lock picks them, so a batch costs O(files) per that many. */
#define MIR_SCRUB_BATCH_MAX 64

/* Copies into paths the store paths of up to max files that have an
 * origin digest, least recently verified first (never verified since the
 * start counts as oldest). Returns how many. */
size_t mir_store_scrub_batch(struct mir_store *st, char (*paths)[MIR_PATH_MAX], size_t max);

/* Creates a temp file in the store's tmp folder. The name goes to tmp
 * (size PATH_MAX). Returns the fd or a negative status. */
int mir_store_tmp(struct mir_store *st, char *tmp, size_t size,
                  struct hc_err *err);

/* Makes the temp file visible at path with its metadata: fsync, rename,
 * fsync of the directory. sha256: the origin's digest (hex), or "" when the
 * origin gave none: then the file stays without one (unverified) across
 * restarts, never digested from the local bytes. reserved: bytes earlier
 * reserved for it. HC_EDATA for a sha256 that is neither. pin:
 * when not NULL, receives the new entry pinned (release it with
 * mir_store_release), NULL on error. On error the temp file is removed and
 * nothing is visible. */
int mir_store_commit(struct mir_store *st, const char *path, const char *tmp,
                     int fd, uint64_t size, const char *sha256,
                     uint64_t reserved, struct mir_entry **pin,
                     struct hc_err *err);

/* Records path as committed (size bytes, the origin's sha256 or "") with
 * no file written: for tools that place files themselves and for the
 * store's benchmark. A file absent at path reads as absent (and drops the
 * record); a file present is checked as a changed one on its first get.
 * The record reaches the index at the next flush. reserved as for
 * mir_store_commit. HC_EDATA for a bad path or digest. */
int mir_store_record(struct mir_store *st, const char *path, uint64_t size,
                     const char *sha256, uint64_t reserved, struct hc_err *err);

/* Makes room for size more bytes by evicting least recently used unpinned
 * files. 0 when reserved (undo with mir_store_unreserve), or HC_EIO when
 * the store cannot hold it. No limit: always 0. */
int mir_store_reserve(struct mir_store *st, uint64_t size);
/* mir_store_reserve for a pre-warm: evicts only unpinned files stored or
 * last read more than idle_ms ago (files loaded at start-up count as read
 * then), least recently used first. 0 when reserved, HC_EIO when those are
 * not enough (nothing is evicted then), HC_ENOMEM. */
int mir_store_reserve_idle(struct mir_store *st, uint64_t size, int64_t idle_ms);
void mir_store_unreserve(struct mir_store *st, uint64_t size);

/* Sets the retention limit (0: none) and evicts least recently used
 * unpinned files down to it. 0, or HC_EIO when pinned files alone keep the
 * store over the new limit (they go as soon as they are released and room
 * is needed). */
int mir_store_set_max_bytes(struct mir_store *st, uint64_t max_bytes);

/* Removes the file or the link at path (a link itself, never what it
 * points to). 0, HC_ENOTFOUND (absent, or a folder), HC_EDATA (its folder
 * resolves outside the store) or HC_EIO. */
int mir_store_delete(struct mir_store *st, const char *path, struct hc_err *err);

/* Appends what changed to the index (a journal), or rewrites it whole when
 * it grew past a few records per file. Called about once a second. 0,
 * HC_EIO or HC_ENOMEM; what was not written is written by a later call. */
int mir_store_flush(struct mir_store *st, struct hc_err *err);

void mir_store_stats(struct mir_store *st, struct mir_store_stats *out);

/* Bytes free for unprivileged writers on the store's file system. */
uint64_t mir_store_free_bytes(struct mir_store *st);

#endif
