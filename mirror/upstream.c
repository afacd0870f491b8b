/*
 * Tools misses on an origin, answered from the tool's upstream release
 * (issue 16): tools/ID/VERSION/files/MEMBER is read out of the release ZIP
 * through ranges (zipsrc.c), checked (name, size, compression ratio,
 * CRC-32, and the manifest's SHA-256 when upstream publishes one) and
 * stored by a job thread per miss. A small member is answered from the
 * store once it is in; one from UP_STREAM_MIN on streams to the client as
 * it is written, the last byte held back until it verified, as fills do.
 * With import: on_first_use the first member
 * also starts a background import of the whole version; manifest.json is
 * written last, so a version's manifest appears only once every member is
 * in. POST .../import does the same on purpose. A manifest.json miss
 * waits for the import at most UP_MANIFEST_WAIT_MS, then answers 503. A
 * version whose manifest left the store (the admin DELETE) is imported
 * again on its next miss.
 *
 * One lock per version serializes the on-demand jobs of that version,
 * so concurrent misses share one directory read (the archive stays open
 * for UP_DIR_KEEP_MS); the import reads its own copy of the directory so a
 * worker's small member never waits behind a large one.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirror/tarsrc.h"
#include "mirror/upstream.h"
#include "mirror/zipsrc.h"

#define MOD "mirror"
#define UP_TOOLS "tools/"
#define UP_FILES "files/"
#define UP_MANIFEST "manifest.json"
/* Longest tool_id or version: route segments, not prose. */
#define UP_NAME_MAX 128
/* Versions tracked at once; past it an idle one is dropped (a client
 * probing random versions cannot grow the table; when every one is busy,
 * 503). */
#define UP_VERSIONS_MAX 4096
/* Entries of one archive looked at; a larger directory is refused. */
#define UP_ENTRIES_MAX 200000
/* A member expanding more than UP_RATIO_MAX times is a ZIP bomb, once it is
 * past UP_RATIO_FLOOR (small text files of one repeated byte do compress
 * that well, and cost nothing). */
#define UP_RATIO_MAX 200
#define UP_RATIO_FLOOR (1024 * 1024)
/* A manifest is at most this large (docs/sync.md). */
#define UP_MANIFEST_MAX (64 * 1024 * 1024)
/* A token file holds one line. */
#define UP_TOKEN_MAX 4096
/* How long an opened directory is reused by later misses of the version:
 * release hosts sign their redirect URLs for a few minutes. */
#define UP_DIR_KEEP_MS 60000
#define UP_COPY_CHUNK (64 * 1024)
/* Members from this size on go to the client while they are extracted
 * (the last byte held back until they verify); smaller ones are stored
 * first and answered with their digest. */
#define UP_STREAM_MIN (1024 * 1024)
/* How often a waiting body looks at shutdown. */
#define UP_POLL_MS 200
#define UP_CONNECT_TIMEOUT_MS 10000
#define UP_DNS_TIMEOUT_MS 5000
/* A transfer slower than this for UP_STALL_S is given up. */
#define UP_STALL_BYTES_PER_S 1024
#define UP_STALL_S 30
/* A manifest.json miss waits this long for the version's import; a longer
 * one (a large release) is answered 503 with Retry-After
 * UP_MANIFEST_RETRY_S, so no worker's request is held for a whole
 * archive transfer. */
#define UP_MANIFEST_WAIT_MS 10000
#define UP_MANIFEST_RETRY_S 10

struct up_version {
	char id[UP_NAME_MAX], ver[UP_NAME_MAX];
	struct mir_upstream *up;
	pthread_mutex_t mu;             /* on-demand readers, one at a time */
	char url[HC_HTTP_LOCATION_MAX];
	char manifest_url[HC_HTTP_LOCATION_MAX];
	struct mir_zipsrc_config zcfg;
	zip_t *za;
	struct mir_zipsrc *src;
	int64_t opened_ms;
	int manifest_loaded;
	char *manifest_text;            /* upstream's, NULL: none published */
	struct json_object *manifest;
	char base[HC_HTTP_HEADER_VALUE_MAX]; /* scheme://host for generated URLs */
	int import_state;               /* 0 none, 1 running, 2 done (under up->mu) */
	pthread_cond_t import_cv;       /* import_state left 1 (with up->mu) */
	int waiters;                    /* on-demand readers queued on mu (under up->mu) */
	int refs;                       /* requests, jobs, the import (under up->mu) */
	pthread_t thread;
	int thread_started;
	struct up_version *next;
};

struct mir_upstream {
	const struct mir_config *cfg;
	struct mir_store *store;
	struct mir_journal *journal;    /* what is stored is published, NULL: none */
	struct mir_resp *rs;
	struct hc_http_config http;
	char *token;
	pthread_mutex_t mu;             /* versions, import states, not_before_ms */
	struct up_version *versions;
	size_t n_versions;
	int64_t not_before_ms;          /* rate limited until then */
	volatile int cancel;
	int jobs;                       /* job threads running (under mu) */
	pthread_cond_t jobs_cv;
	/* for /metrics */
	atomic_uint_least64_t members, refused, rate_limited, imports, archive_bytes;
};

/* A member as it went into the store, for a generated manifest. */
struct up_member {
	char *path;
	char sha256[HC_SHA256_HEX_LEN + 1];
	uint64_t size;
};

/* ------------------------------------------------------------ names */

static int
up_segment_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n >= UP_NAME_MAX || (n <= 2 && strncmp(s, "..", n) == 0))
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* Splits "tools/ID/VERSION/rest" into id, ver and rest. 0 or -1. */
static int
up_split(const char *path, char *id, char *ver, const char **rest)
{
	const char *p, *a, *b;

	if (strncmp(path, UP_TOOLS, strlen(UP_TOOLS)) != 0)
		return -1;
	p = path + strlen(UP_TOOLS);
	a = strchr(p, '/');
	if (a == NULL)
		return -1;
	b = strchr(a + 1, '/');
	if (b == NULL || !up_segment_ok(p, (size_t)(a - p)) ||
	    !up_segment_ok(a + 1, (size_t)(b - a - 1)))
		return -1;
	memcpy(id, p, (size_t)(a - p));
	id[a - p] = '\0';
	memcpy(ver, a + 1, (size_t)(b - a - 1));
	ver[b - a - 1] = '\0';
	*rest = b + 1;
	return 0;
}

int
mir_upstream_handles(const char *path)
{
	char id[UP_NAME_MAX], ver[UP_NAME_MAX];
	const char *rest;

	if (up_split(path, id, ver, &rest) != 0)
		return 0;
	return strcmp(rest, UP_MANIFEST) == 0 ||
	       (strncmp(rest, UP_FILES, strlen(UP_FILES)) == 0 && rest[strlen(UP_FILES)] != '\0');
}

int
mir_upstream_is_import(const char *path)
{
	char id[UP_NAME_MAX], ver[UP_NAME_MAX];
	const char *rest;

	return up_split(path, id, ver, &rest) == 0 && strcmp(rest, "import") == 0;
}

const char *
mir_upstream_name_refused(const char *name)
{
	const char *seg;

	if (name[0] == '\0')
		return "an empty name";
	if (name[0] == '/')
		return "an absolute path";
	if (strchr(name, '\\') != NULL)
		return "a backslash";
	if (strlen(name) >= 2 && name[1] == ':')
		return "a drive letter";
	for (seg = name; seg != NULL; seg = strchr(seg, '/') != NULL ? strchr(seg, '/') + 1 : NULL)
		if (strncmp(seg, "..", 2) == 0 && (seg[2] == '/' || seg[2] == '\0'))
			return "a '..' segment";
	return NULL;
}

/* Every entry of the archive is looked at before any is used: one
 * hostile name refuses the whole release, so a version is never half made
 * of what a tampered archive offered. */
static int
up_check_names(zip_t *za, const char *url, struct hc_err *err)
{
	zip_int64_t n = zip_get_num_entries(za, 0), i;

	if (n < 0 || n > UP_ENTRIES_MAX)
		return hc_err_set(err, HC_EDATA, "%s: %lld entries (at most %d)", url, (long long)n,
		                  UP_ENTRIES_MAX);
	for (i = 0; i < n; i++) {
		const char *name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
		zip_uint8_t opsys;
		zip_uint32_t attr;
		const char *why;

		if (name == NULL)
			return hc_err_set(err, HC_EDATA, "%s: entry %lld has no name", url, (long long)i);
		why = mir_upstream_name_refused(name);
		if (why == NULL && zip_file_get_external_attributes(za, (zip_uint64_t)i, 0, &opsys,
		                                                    &attr) == 0 &&
		    opsys == ZIP_OPSYS_UNIX && ((attr >> 16) & S_IFMT) == S_IFLNK)
			why = "a symlink entry";
		if (why != NULL)
			return hc_err_set(err, HC_EDATA, "%s: member '%s' refused: %s", url, name, why);
	}
	return 0;
}

/* ------------------------------------------------------------ versions */

/* tmpl with {tool_id} and {version} replaced, percent-encoded. */
static int
up_expand(const char *tmpl, const char *id, const char *ver, char *out, size_t size)
{
	char enc[UP_NAME_MAX * 3 + 1];
	size_t o = 0;
	const char *p = tmpl;

	while (*p != '\0') {
		const char *val = NULL;
		size_t skip = 1, n;
		if (strncmp(p, "{tool_id}", 9) == 0) {
			val = id;
			skip = 9;
		} else if (strncmp(p, "{version}", 9) == 0) {
			val = ver;
			skip = 9;
		}
		if (val != NULL && hc_query_encode(val, enc, sizeof(enc)) != 0)
			return -1;
		n = val != NULL ? strlen(enc) : 1;
		if (o + n >= size)
			return -1;
		memcpy(out + o, val != NULL ? enc : p, n);
		o += n;
		p += skip;
	}
	out[o] = '\0';
	return 0;
}

static void
up_version_close(struct up_version *v)
{
	mir_zipsrc_close(v->za, v->src);
	v->za = NULL;
	v->src = NULL;
}

/* Frees a version no one uses; an import thread of it has ended (its last
 * step dropped its reference) and is joined. */
static void
up_version_free(struct up_version *v)
{
	if (v->thread_started)
		pthread_join(v->thread, NULL);
	up_version_close(v);
	json_object_put(v->manifest);
	free(v->manifest_text);
	pthread_mutex_destroy(&v->mu);
	pthread_cond_destroy(&v->import_cv);
	free(v);
}

/* Drops one version no one uses, to make room. 1 when one went. Caller
 * holds up->mu. */
static int
up_version_evict(struct mir_upstream *up)
{
	struct up_version **pp, *v;

	for (pp = &up->versions; *pp != NULL; pp = &(*pp)->next) {
		v = *pp;
		if (v->refs > 0)
			continue;
		*pp = v->next;
		up->n_versions--;
		up_version_free(v);
		return 1;
	}
	return 0;
}

static void
up_version_put(struct up_version *v)
{
	pthread_mutex_lock(&v->up->mu);
	v->refs--;
	pthread_mutex_unlock(&v->up->mu);
}

/* The version's record, made on first use, with a reference (drop it with
 * up_version_put). NULL when the table is full of busy versions. */
static struct up_version *
up_version_get(struct mir_upstream *up, const char *id, const char *ver)
{
	const char *murl = up->cfg->tools_upstream.manifest_url;
	struct up_version *v;

	pthread_mutex_lock(&up->mu);
	for (v = up->versions; v != NULL; v = v->next)
		if (strcmp(v->id, id) == 0 && strcmp(v->ver, ver) == 0)
			break;
	if (v == NULL && up->n_versions >= UP_VERSIONS_MAX)
		(void)up_version_evict(up);
	if (v == NULL && up->n_versions < UP_VERSIONS_MAX) {
		v = calloc(1, sizeof(*v));
		if (v != NULL &&
		    (up_expand(up->cfg->tools_upstream.archive_url, id, ver, v->url,
		               sizeof(v->url)) != 0 ||
		     (murl != NULL && up_expand(murl, id, ver, v->manifest_url,
		                                sizeof(v->manifest_url)) != 0))) {
			free(v);
			v = NULL;
		}
		if (v != NULL) {
			hc_strlcpy(v->id, id, sizeof(v->id));
			hc_strlcpy(v->ver, ver, sizeof(v->ver));
			v->up = up;
			pthread_mutex_init(&v->mu, NULL);
			pthread_cond_init(&v->import_cv, NULL);
			v->zcfg.http = &up->http;
			v->zcfg.url = v->url;
			v->zcfg.token = up->token;
			v->zcfg.max_bytes = up->cfg->tools_upstream.max_archive_bytes;
			v->zcfg.store = up->store;
			v->zcfg.cancel = &up->cancel;
			v->zcfg.tar = mir_tarsrc_is_tar(v->url);
			v->next = up->versions;
			up->versions = v;
			up->n_versions++;
		}
	}
	if (v != NULL)
		v->refs++;
	pthread_mutex_unlock(&up->mu);
	return v;
}

/* Remembers a rate limit: every miss is answered 503 until it passes. */
static void
up_rate_limited(struct mir_upstream *up, int retry_s, const char *why)
{
	pthread_mutex_lock(&up->mu);
	up->not_before_ms = hc_now_ms() + (int64_t)retry_s * 1000;
	pthread_mutex_unlock(&up->mu);
	atomic_fetch_add(&up->rate_limited, 1);
	hc_log(HC_LOG_WARN, MOD, "upstream rate limit: %s; answering 503 with Retry-After %d",
	       why, retry_s);
}

/* Closes the archives of other versions left open past UP_DIR_KEEP_MS, so
 * directories (and whole copies in tmp) do not pile up. A version in use
 * is skipped: trylock, since the caller holds its own version's lock. */
static void
up_sweep(struct mir_upstream *up, struct up_version *self)
{
	int64_t now = hc_now_ms();
	struct up_version *v;

	pthread_mutex_lock(&up->mu);
	for (v = up->versions; v != NULL; v = v->next) {
		if (v == self || v->za == NULL || pthread_mutex_trylock(&v->mu) != 0)
			continue;
		if (v->za != NULL && now - v->opened_ms >= UP_DIR_KEEP_MS)
			up_version_close(v);
		pthread_mutex_unlock(&v->mu);
	}
	pthread_mutex_unlock(&up->mu);
}

/* The archive of v open for reading (caller holds v->mu): reused while
 * fresh. */
static int
up_version_open(struct up_version *v, struct hc_err *err)
{
	int retry_s = 0, rc;

	if (v->za != NULL && hc_now_ms() - v->opened_ms < UP_DIR_KEEP_MS)
		return 0;
	up_version_close(v);
	up_sweep(v->up, v);
	rc = mir_zipsrc_open(&v->zcfg, &v->za, &v->src, &retry_s, err);
	if (rc == HC_EUNAVAIL && retry_s > 0)
		up_rate_limited(v->up, retry_s, err->msg);
	if (rc == 0)
		rc = up_check_names(v->za, v->url, err);
	if (rc != 0) {
		up_version_close(v);
		return rc;
	}
	v->opened_ms = hc_now_ms();
	return 0;
}

/* ------------------------------------------------------------ manifest */

/* Fetches the release's manifest.json once per version when one is
 * configured (caller holds v->mu). None published (404) is no error. */
static int
up_manifest_load(struct up_version *v, struct hc_err *err)
{
	struct mir_zipsrc_config mc = v->zcfg;
	struct hc_buf b;
	int retry_s = 0, rc;

	if (v->manifest_loaded || v->manifest_url[0] == '\0')
		return 0;
	hc_buf_init(&b, UP_MANIFEST_MAX);
	mc.url = v->manifest_url;
	rc = mir_zipsrc_fetch(&mc, &b, &retry_s, err);
	if (rc == HC_EUNAVAIL && retry_s > 0)
		up_rate_limited(v->up, retry_s, err->msg);
	if (rc == HC_ENOTFOUND) {
		v->manifest_loaded = 1;
		hc_buf_free(&b);
		return 0;
	}
	if (rc == 0) {
		v->manifest = json_tokener_parse(hc_buf_str(&b));
		if (v->manifest == NULL || !json_object_is_type(v->manifest, json_type_object))
			rc = hc_err_set(err, HC_EDATA, "not a JSON object");
	}
	if (rc == 0) {
		v->manifest_text = hc_buf_take(&b);
		v->manifest_loaded = v->manifest_text != NULL;
		rc = v->manifest_loaded ? 0 : hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	if (rc != 0) {
		json_object_put(v->manifest);
		v->manifest = NULL;
		hc_err_prefix(err, "manifest %s", v->manifest_url);
	}
	hc_buf_free(&b);
	return rc;
}

/* The manifest's digest and size for member, 0 when listed; -1 when not
 * (or no manifest). */
static int
up_manifest_lookup(struct up_version *v, const char *member, char *sha, uint64_t *size)
{
	struct json_object *files, *f, *x;
	size_t i, n;

	if (v->manifest == NULL || !json_object_object_get_ex(v->manifest, "files", &files) ||
	    !json_object_is_type(files, json_type_array))
		return -1;
	n = json_object_array_length(files);
	for (i = 0; i < n; i++) {
		f = json_object_array_get_idx(files, i);
		if (!json_object_object_get_ex(f, "path", &x) ||
		    strcmp(json_object_get_string(x), member) != 0)
			continue;
		if (!json_object_object_get_ex(f, "sha256", &x) ||
		    !hc_sha256_hex_valid(json_object_get_string(x)))
			return -1;
		hc_hex_lower(sha, json_object_get_string(x), HC_SHA256_HEX_LEN);
		*size = json_object_object_get_ex(f, "size", &x) ?
		        (uint64_t)json_object_get_int64(x) : UINT64_MAX;
		return 0;
	}
	return -1;
}

/* ------------------------------------------------------------ jobs */

enum up_job_state { UP_JOB_OPENING, UP_JOB_STREAMING, UP_JOB_DONE, UP_JOB_FAILED };

/* A member read on demand: its thread extracts it while the response
 * streams what is written so far. Two references: the thread and the
 * request (then its body). */
struct up_job {
	struct mir_upstream *up;
	struct up_version *v;
	char path[MIR_PATH_MAX];
	const char *member;             /* inside path */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	enum up_job_state state;
	int fd;                         /* the tmp file, for the body; -1 */
	uint64_t size, written;
	char sha256[HC_SHA256_HEX_LEN + 1]; /* the manifest's, known up front, or "" */
	int rc;
	struct hc_err err;
	struct mir_park_wait *waiters;  /* bodies parked for bytes or the end */
};

/* State or bytes changed: wakes the set-up waiting on job->cv and resumes
 * the parked bodies. Caller holds job->mu. */
static void
up_job_signal(struct up_job *job)
{
	pthread_cond_broadcast(&job->cv);
	mir_park_wake(job->up->rs->park, &job->waiters);
}

/* The member goes out as it is written: its size is known; sha256 is the
 * manifest's digest or "". */
static void
up_job_stream(struct up_job *job, int fd, uint64_t size, const char *sha256)
{
	if (job == NULL)
		return;
	pthread_mutex_lock(&job->mu);
	job->fd = dup(fd);
	if (job->fd >= 0) {
		job->size = size;
		hc_strlcpy(job->sha256, sha256, sizeof(job->sha256));
		job->state = UP_JOB_STREAMING;
		up_job_signal(job);
	}
	pthread_mutex_unlock(&job->mu);
}

static void
up_job_progress(struct up_job *job, uint64_t written)
{
	if (job == NULL)
		return;
	pthread_mutex_lock(&job->mu);
	job->written = written;
	up_job_signal(job);
	pthread_mutex_unlock(&job->mu);
}

/* ------------------------------------------------------------ members */

/* Checks what the directory says of entry idx before any byte is read. */
static int
up_member_precheck(struct up_version *v, zip_t *za, zip_int64_t idx, const char *member,
                   zip_stat_t *st, struct hc_err *err)
{
	if (zip_stat_index(za, (zip_uint64_t)idx, 0, st) != 0 ||
	    (st->valid & (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE)) !=
	    (ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE))
		return hc_err_set(err, HC_EDATA, "%s: no size in the directory", member);
	if (st->size > v->up->cfg->tools_upstream.max_archive_bytes)
		return hc_err_set(err, HC_EDATA, "%s: %" PRIu64 " bytes, past max_archive_bytes",
		                  member, (uint64_t)st->size);
	if (st->size > UP_RATIO_FLOOR && st->size / (st->comp_size > 0 ? st->comp_size : 1) >
	    UP_RATIO_MAX)
		return hc_err_set(err, HC_EDATA, "%s: compression ratio %" PRIu64 ":1 past %d:1 "
		                  "(a ZIP bomb?)", member,
		                  (uint64_t)(st->size / (st->comp_size > 0 ? st->comp_size : 1)),
		                  UP_RATIO_MAX);
	return 0;
}

/* Copies entry idx into fd while hashing it; libzip checks the CRC-32 at
 * the end. No more than the declared size is accepted. */
static int
up_member_copy(zip_t *za, struct mir_zipsrc *src, zip_int64_t idx, const char *member,
               uint64_t declared, int fd, char *sha, struct up_job *job, struct hc_err *err)
{
	struct hc_sha256 *h = hc_sha256_new();
	unsigned char *buf = malloc(UP_COPY_CHUNK);
	zip_file_t *zf = NULL;
	uint64_t total = 0;
	zip_int64_t n = 1;
	int rc = 0;

	if (h == NULL || buf == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
	if (zf == NULL) {
		rc = hc_err_set(err, HC_EDATA, "%s: %s", member, zip_strerror(za));
		goto done;
	}
	while (rc == 0 && n > 0) {
		n = zip_fread(zf, buf, UP_COPY_CHUNK);
		if (n < 0)
			rc = hc_err_set(err, HC_EDATA, "%s: %s%s%s", member, zip_file_strerror(zf),
			                mir_zipsrc_why(src)[0] != '\0' ? ": " : "", mir_zipsrc_why(src));
		else if (total + (uint64_t)n > declared)
			rc = hc_err_set(err, HC_EDATA, "%s: larger than its declared %" PRIu64 " bytes",
			                member, declared);
		else if (n > 0 && (hc_write_all(fd, buf, (size_t)n) != 0 ||
		                   hc_sha256_update(h, buf, (size_t)n) != 0))
			rc = hc_err_set(err, HC_EIO, "%s: write: %s", member, strerror(errno));
		else
			total += (uint64_t)n;
		if (rc == 0 && n > 0)
			up_job_progress(job, total);
	}
	if (rc == 0 && total != declared)
		rc = hc_err_set(err, HC_EDATA, "%s: %" PRIu64 " of %" PRIu64 " bytes", member, total,
		                declared);
	if (rc == 0 && hc_sha256_hex(h, sha) != 0)
		rc = hc_err_set(err, HC_ESOFTWARE, "sha256 failed");
done:
	if (zf != NULL)
		zip_fclose(zf);
	free(buf);
	hc_sha256_free(h);
	return rc;
}

/* Reads member of za into the store at path, verified. 0, HC_ENOTFOUND
 * (no such member), HC_EDATA (refused), HC_EIO. Nothing is stored on
 * error. *out (when not NULL) gets the digest and size. */
static int
up_member_store(struct up_version *v, zip_t *za, struct mir_zipsrc *src, const char *member,
                const char *path, struct up_member *out, struct up_job *job,
                struct hc_err *err)
{
	char tmp[PATH_MAX], sha[HC_SHA256_HEX_LEN + 1], want[HC_SHA256_HEX_LEN + 1];
	zip_int64_t idx = zip_name_locate(za, member, ZIP_FL_ENC_RAW);
	uint64_t want_size = UINT64_MAX;
	int have_want, fd = -1, rc;
	zip_stat_t st;

	/* A folder entry is no file: storing it would block the files under it. */
	if (idx < 0 || member[strlen(member) - 1] == '/')
		return hc_err_set(err, HC_ENOTFOUND, "%s: no such member in %s", member, v->url);
	rc = up_member_precheck(v, za, idx, member, &st, err);
	if (rc != 0)
		return rc;
	have_want = up_manifest_lookup(v, member, want, &want_size) == 0;
	if (have_want && want_size != UINT64_MAX && want_size != st.size)
		return hc_err_set(err, HC_EDATA, "%s: %" PRIu64 " bytes, the manifest says %" PRIu64,
		                  member, (uint64_t)st.size, want_size);
	fd = mir_store_tmp(v->up->store, tmp, sizeof(tmp), err);
	if (fd < 0)
		return fd;
	/* Large members stream; small ones are stored first, so their first
	 * answer carries the digest computed here, or a 502 when it fails. */
	if (job != NULL && st.size >= UP_STREAM_MIN) {
		hc_log(HC_LOG_INFO, MOD, "upstream streams %s (%" PRIu64 " bytes) while it is "
		       "extracted; the last byte waits for the check", path, (uint64_t)st.size);
		up_job_stream(job, fd, st.size, have_want ? want : "");
	}
	rc = up_member_copy(za, src, idx, member, st.size, fd, sha, job, err);
	if (rc == 0 && have_want && strcmp(sha, want) != 0)
		rc = hc_err_set(err, HC_EDATA, "%s: sha256 %s, the manifest says %s", member, sha,
		                want);
	if (rc == 0)
		rc = mir_store_commit(v->up->store, path, tmp, fd, st.size, sha, 0, NULL, err);
	else
		unlink(tmp);
	close(fd);
	if (rc == 0 && out != NULL) {
		hc_strlcpy(out->sha256, sha, sizeof(out->sha256));
		out->size = st.size;
	}
	if (rc == 0) {
		hc_log(HC_LOG_INFO, MOD, "upstream stored %s: %" PRIu64 " bytes sha256 %s (%s)", path,
		       (uint64_t)st.size, sha, have_want ? "the manifest's digest" : "CRC-32 checked");
		mir_journal_note(v->up->journal, MIR_JOURNAL_PUT, path, (uint64_t)st.size, sha);
	}
	return rc;
}

/* ------------------------------------------------------------ import */

static int
up_member_cmp(const void *a, const void *b)
{
	return strcmp(((const struct up_member *)a)->path, ((const struct up_member *)b)->path);
}

/* One file's entry of a generated manifest, and its canonical line. */
static int
up_manifest_entry(struct up_version *v, const struct up_member *m, struct json_object *files,
                  struct hc_buf *canon)
{
	char id[UP_NAME_MAX * 3 + 1], ver[UP_NAME_MAX * 3 + 1], p[MIR_PATH_MAX * 3 + 1];
	char url[HC_HTTP_LOCATION_MAX];
	struct json_object *o;

	if (hc_query_encode(v->id, id, sizeof(id)) != 0 ||
	    hc_query_encode(v->ver, ver, sizeof(ver)) != 0 ||
	    hc_path_encode(m->path, p, sizeof(p)) != 0 ||
	    hc_snprintf(url, sizeof(url), "%s/api/v1/tools/%s/%s/files/%s", v->base, id, ver, p) != 0)
		return HC_EDATA;
	o = json_object_new_object();
	if (o == NULL)
		return HC_ENOMEM;
	json_object_object_add(o, "path", json_object_new_string(m->path));
	json_object_object_add(o, "sha256", json_object_new_string(m->sha256));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)m->size));
	json_object_object_add(o, "url", json_object_new_string(url));
	json_object_array_add(files, o);
	return hc_buf_printf(canon, "%s\t%s\t%" PRIu64 "\t%s\n", m->path, m->sha256, m->size, url);
}

/* The seed-format manifest of the members (sorted here), with its
 * manifest_hash (docs/sync.md), into out. */
static int
up_manifest_generate(struct up_version *v, struct up_member *m, size_t n, struct hc_buf *out,
                     struct hc_err *err)
{
	struct json_object *root = json_object_new_object(), *files = json_object_new_array();
	struct hc_sha256 *h = hc_sha256_new();
	char hash[HC_SHA256_HEX_LEN + 1];
	struct hc_buf canon;
	size_t i;
	int rc = root != NULL && files != NULL && h != NULL ? 0 : HC_ENOMEM;

	hc_buf_init(&canon, UP_MANIFEST_MAX);
	if (n > 0)
		qsort(m, n, sizeof(*m), up_member_cmp);
	if (rc == 0)
		rc = hc_buf_printf(&canon, "manifest_version\t1.0\ntool_id\t%s\ntool_version\t%s\n",
		                   v->id, v->ver);
	for (i = 0; i < n && rc == 0; i++)
		rc = up_manifest_entry(v, &m[i], files, &canon);
	if (rc == 0 && (hc_sha256_update(h, hc_buf_str(&canon), canon.len) != 0 ||
	                hc_sha256_hex(h, hash) != 0))
		rc = HC_ESOFTWARE;
	if (rc == 0) {
		json_object_object_add(root, "manifest_version", json_object_new_string("1.0"));
		json_object_object_add(root, "tool_id", json_object_new_string(v->id));
		json_object_object_add(root, "tool_version", json_object_new_string(v->ver));
		json_object_object_add(root, "files", files);
		files = NULL;
		json_object_object_add(root, "manifest_hash", json_object_new_string(hash));
		rc = hc_buf_printf(out, "%s\n", json_object_to_json_string_ext(
		                   root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	json_object_put(files);
	json_object_put(root);
	hc_sha256_free(h);
	hc_buf_free(&canon);
	return rc == 0 ? 0 : hc_err_set(err, rc, "cannot make the manifest of %s/%s", v->id, v->ver);
}

/* Stores manifest.json: upstream's text, or one generated from m. */
static int
up_manifest_store(struct up_version *v, struct up_member *m, size_t n, struct hc_err *err)
{
	char path[MIR_PATH_MAX], tmp[PATH_MAX], sha[HC_SHA256_HEX_LEN + 1];
	struct hc_sha256 *h = hc_sha256_new();
	struct hc_buf b;
	int fd = -1, rc = 0;

	hc_buf_init(&b, UP_MANIFEST_MAX);
	if (v->manifest_text != NULL)
		rc = hc_buf_add(&b, v->manifest_text, strlen(v->manifest_text));
	else
		rc = up_manifest_generate(v, m, n, &b, err);
	if (rc == 0 && (h == NULL || hc_sha256_update(h, hc_buf_str(&b), b.len) != 0 ||
	                hc_sha256_hex(h, sha) != 0))
		rc = hc_err_set(err, HC_ESOFTWARE, "sha256 failed");
	if (rc == 0 && hc_snprintf(path, sizeof(path), UP_TOOLS "%s/%s/" UP_MANIFEST, v->id,
	                           v->ver) != 0)
		rc = hc_err_set(err, HC_EDATA, "path too long");
	if (rc == 0) {
		fd = mir_store_tmp(v->up->store, tmp, sizeof(tmp), err);
		rc = fd < 0 ? fd : 0;
	}
	if (rc == 0 && hc_write_all(fd, hc_buf_str(&b), b.len) != 0) {
		rc = hc_err_set(err, HC_EIO, "write %s: %s", tmp, strerror(errno));
		unlink(tmp);
	}
	if (rc == 0)
		rc = mir_store_commit(v->up->store, path, tmp, fd, b.len, sha, 0, NULL, err);
	/* Last, as in the store: a peer pre-warms the manifest after its files. */
	if (rc == 0)
		mir_journal_note(v->up->journal, MIR_JOURNAL_PUT, path, b.len, sha);
	if (fd >= 0)
		close(fd);
	hc_sha256_free(h);
	hc_buf_free(&b);
	return rc;
}

/* Member i of za into m (from the store when already there). 0 with
 * m->path NULL for a folder entry. */
static int
up_import_entry(struct up_version *v, zip_t *za, struct mir_zipsrc *src, zip_uint64_t i,
                struct up_member *m, struct hc_err *err)
{
	const char *name = zip_get_name(za, i, ZIP_FL_ENC_RAW);
	char path[MIR_PATH_MAX];
	struct mir_file f;
	struct hc_err ignored = { 0, "" };

	m->path = NULL;
	if (name == NULL || name[0] == '\0' || name[strlen(name) - 1] == '/')
		return 0;
	if (hc_snprintf(path, sizeof(path), UP_TOOLS "%s/%s/" UP_FILES "%s", v->id, v->ver,
	                name) != 0)
		return hc_err_set(err, HC_EDATA, "%s: path too long", name);
	m->path = hc_strdup(name);
	if (m->path == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	if (mir_store_get(v->up->store, path, 0, &f, &ignored) == 0) {
		hc_strlcpy(m->sha256, f.sha256, sizeof(m->sha256));
		m->size = f.size;
		close(f.fd);
		mir_store_release(v->up->store, f.entry);
		return 0;
	}
	return up_member_store(v, za, src, name, path, m, NULL, err);
}

/* An upstream manifest must not list a file the archive lacks: the version
 * would look complete and fail every sync. m is sorted by path here. */
static int
up_manifest_covered(struct up_version *v, struct up_member *m, size_t n, struct hc_err *err)
{
	struct json_object *files, *f, *x;
	size_t i, count;

	if (v->manifest == NULL)
		return 0;
	if (!json_object_object_get_ex(v->manifest, "files", &files) ||
	    !json_object_is_type(files, json_type_array))
		return hc_err_set(err, HC_EDATA, "manifest %s: no files array", v->manifest_url);
	if (n > 0)
		qsort(m, n, sizeof(*m), up_member_cmp);
	count = json_object_array_length(files);
	for (i = 0; i < count; i++) {
		struct up_member key = { NULL, "", 0 };
		f = json_object_array_get_idx(files, i);
		if (!json_object_object_get_ex(f, "path", &x))
			return hc_err_set(err, HC_EDATA, "manifest %s: file %zu has no path",
			                  v->manifest_url, i);
		key.path = (char *)json_object_get_string(x);
		if (n == 0 || bsearch(&key, m, n, sizeof(*m), up_member_cmp) == NULL)
			return hc_err_set(err, HC_EDATA, "manifest %s lists %s, the archive has no such "
			                  "member", v->manifest_url, key.path);
	}
	return 0;
}

/* Imports every member of v the store lacks through its own read of the
 * archive, then manifest.json. */
static int
up_import(struct up_version *v, struct hc_err *err)
{
	struct up_member *m = NULL;
	struct mir_zipsrc *src = NULL;
	zip_t *za = NULL;
	size_t n = 0, cap = 0, i;
	zip_int64_t entries = 0, e;
	int64_t t0 = hc_now_ms();
	int retry_s = 0, rc;

	hc_log(HC_LOG_INFO, MOD, "upstream import tools/%s/%s from %s", v->id, v->ver, v->url);
	pthread_mutex_lock(&v->mu);
	rc = up_manifest_load(v, err);
	pthread_mutex_unlock(&v->mu);
	if (rc == 0)
		rc = mir_zipsrc_open(&v->zcfg, &za, &src, &retry_s, err);
	if (rc == HC_EUNAVAIL && retry_s > 0)
		up_rate_limited(v->up, retry_s, err->msg);
	if (rc == 0)
		rc = up_check_names(za, v->url, err);
	if (rc == 0)
		entries = zip_get_num_entries(za, 0);
	for (e = 0; e < entries && rc == 0; e++) {
		rc = hc_array_reserve((void **)&m, &cap, n + 1, sizeof(*m), UP_ENTRIES_MAX);
		if (rc != 0)
			rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		if (rc == 0)
			rc = up_import_entry(v, za, src, (zip_uint64_t)e, &m[n], err);
		if (m != NULL && m[n].path != NULL)
			n++;
	}
	if (rc == 0)
		rc = up_manifest_covered(v, m, n, err);
	if (rc == 0)
		rc = up_manifest_store(v, m, n, err);
	if (src != NULL)
		atomic_fetch_add(&v->up->archive_bytes, mir_zipsrc_fetched(src));
	if (rc == 0)
		atomic_fetch_add(&v->up->imports, 1);
	if (rc == 0)
		hc_log(HC_LOG_INFO, MOD, "upstream imported tools/%s/%s: %zu files, manifest %s, "
		       "%" PRIu64 " archive bytes fetched (%s) in %" PRId64 " ms", v->id, v->ver, n,
		       v->manifest_text != NULL ? "from upstream" : "generated",
		       mir_zipsrc_fetched(src), mir_zipsrc_ranged(src) ? "by range" : "whole",
		       hc_now_ms() - t0);
	for (i = 0; i < n; i++)
		free(m[i].path);
	free(m);
	mir_zipsrc_close(za, src);
	return rc;
}

static void *
up_import_thread(void *arg)
{
	struct up_version *v = arg;
	struct hc_err err = { 0, "" };
	int rc = up_import(v, &err);

	if (rc != 0)
		hc_log(HC_LOG_WARN, MOD, "upstream import tools/%s/%s failed: %s", v->id, v->ver,
		       err.msg);
	pthread_mutex_lock(&v->up->mu);
	v->import_state = rc == 0 ? 2 : 0;
	pthread_cond_broadcast(&v->import_cv);
	v->refs--;  /* the last step: from here the version may be dropped and this joined */
	pthread_mutex_unlock(&v->up->mu);
	return NULL;
}

/* Claims the import of v (state 0 to 1). 1 when claimed. A finished
 * earlier thread is joined first. */
static int
up_import_claim(struct up_version *v)
{
	int claimed;

	pthread_mutex_lock(&v->up->mu);
	claimed = v->import_state == 0 && !v->up->cancel;
	if (claimed)
		v->import_state = 1;
	pthread_mutex_unlock(&v->up->mu);
	if (claimed && v->thread_started) {
		pthread_join(v->thread, NULL);  /* it ended: the state went back to 0 */
		v->thread_started = 0;
	}
	return claimed;
}

static void
up_import_background(struct up_version *v)
{
	if (!up_import_claim(v))
		return;
	pthread_mutex_lock(&v->up->mu);
	v->refs++;
	pthread_mutex_unlock(&v->up->mu);
	if (pthread_create(&v->thread, NULL, up_import_thread, v) == 0) {
		v->thread_started = 1;
		return;
	}
	hc_log(HC_LOG_WARN, MOD, "upstream import tools/%s/%s: cannot start a thread", v->id,
	       v->ver);
	pthread_mutex_lock(&v->up->mu);
	v->import_state = 0;
	v->refs--;
	pthread_mutex_unlock(&v->up->mu);
}

/* ------------------------------------------------------------ requests */

/* Seconds until a rate limit passes, 0 when none holds. */
static int
up_wait_s(struct mir_upstream *up)
{
	int64_t left;

	pthread_mutex_lock(&up->mu);
	left = up->not_before_ms - hc_now_ms();
	pthread_mutex_unlock(&up->mu);
	return left > 0 ? (int)((left + 999) / 1000) : 0;
}

static enum MHD_Result
up_503(struct mir_upstream *up, struct MHD_Connection *c, struct mir_req *r, int wait_s,
       const char *why)
{
	char secs[32], body[128];
	const char *const headers[] = { MHD_HTTP_HEADER_RETRY_AFTER, secs, NULL };

	hc_snprintf(secs, sizeof(secs), "%d", wait_s);
	if (hc_snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", why) != 0)
		hc_strlcpy(body, "{}\n", sizeof(body));
	return mir_resp_json(up->rs, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, body, headers);
}

/* Answers from the store, or with the status rc stands for. */
static enum MHD_Result
up_answer(struct mir_upstream *up, struct MHD_Connection *c, struct mir_req *r,
          const char *path, int head, int rc, const struct hc_err *err)
{
	struct hc_err serr = { 0, "" };
	struct mir_file f;
	int wait_s;

	if (rc == 0) {
		rc = mir_store_get(up->store, path, 1, &f, &serr);
		if (rc == 0)
			return mir_resp_stored(up->rs, c, r, &f, head);
		err = &serr;
	}
	if (rc == HC_ENOTFOUND)
		return mir_resp_error(up->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
	hc_log(HC_LOG_WARN, MOD, "upstream %s refused: %s", path, err->msg);
	atomic_fetch_add(&up->refused, 1);
	wait_s = up_wait_s(up);
	if (wait_s > 0)
		return up_503(up, c, r, wait_s, "upstream rate limited");
	if (rc == HC_EUNAVAIL || rc == HC_EDATA)
		return mir_resp_error(up->rs, c, r, MHD_HTTP_BAD_GATEWAY, "upstream failed");
	return mir_resp_error(up->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
}

/* Remembers scheme://Host of the first request, for generated manifest
 * URLs. A Host with anything but host characters is not used: then the
 * listen address stands in (a manifest's URLs must be absolute). */
static void
up_note_base(struct mir_upstream *up, struct up_version *v, struct MHD_Connection *c)
{
	static const char host_chars[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]";
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *scheme = up->rs->tls ? "https" : "http";
	const char *listen = up->cfg->listen;

	pthread_mutex_lock(&up->mu);
	if (v->base[0] == '\0' && host != NULL && host[0] != '\0' &&
	    strspn(host, host_chars) == strlen(host))
		hc_snprintf(v->base, sizeof(v->base), "%s://%s", scheme, host);
	if (v->base[0] == '\0')
		hc_snprintf(v->base, sizeof(v->base), "%s://%s%s", scheme,
		            listen[0] == ':' ? "127.0.0.1" : "", listen);
	pthread_mutex_unlock(&up->mu);
}

/* Runs the import of v in this thread. 0, HC_EUNAVAIL when another import
 * of it is running, or the import's failure. */
static int
up_import_now(struct up_version *v, struct hc_err *err)
{
	int rc;

	if (!up_import_claim(v)) {
		pthread_mutex_lock(&v->up->mu);
		rc = v->import_state == 2 ? 0 : HC_EUNAVAIL;
		pthread_mutex_unlock(&v->up->mu);
		return rc == 0 ? 0 : hc_err_set(err, rc, "an import of tools/%s/%s is running",
		                                v->id, v->ver);
	}
	rc = up_import(v, err);
	pthread_mutex_lock(&v->up->mu);
	v->import_state = rc == 0 ? 2 : 0;
	pthread_cond_broadcast(&v->import_cv);
	pthread_mutex_unlock(&v->up->mu);
	return rc;
}

/* Reads one member on demand (caller holds v->mu). */
static int
up_fetch_member(struct up_version *v, const char *path, const char *member, struct up_job *job,
                struct hc_err *err)
{
	int64_t t0 = hc_now_ms();
	uint64_t before = 0;
	int rc;

	hc_log(HC_LOG_INFO, MOD, "upstream fetch %s from %s: not in the store", path, v->url);
	/* A directory read now counts towards this member; a reused one not. */
	if (v->za != NULL && t0 - v->opened_ms < UP_DIR_KEEP_MS)
		before = mir_zipsrc_fetched(v->src);
	rc = up_version_open(v, err);
	if (rc == 0)
		rc = up_manifest_load(v, err);
	if (rc != 0)
		return rc;
	rc = up_member_store(v, v->za, v->src, member, path, NULL, job, err);
	if (v->src != NULL)
		atomic_fetch_add(&v->up->archive_bytes, mir_zipsrc_fetched(v->src) - before);
	if (rc == 0)
		atomic_fetch_add(&v->up->members, 1);
	if (rc == 0)
		hc_log(HC_LOG_INFO, MOD, "upstream fetched %s: %" PRIu64 " archive bytes from %s "
		       "(%s) in %" PRId64 " ms", path, mir_zipsrc_fetched(v->src) - before,
		       mir_zipsrc_url(v->src), mir_zipsrc_ranged(v->src) ? "by range" : "whole",
		       hc_now_ms() - t0);
	if (rc != 0 && rc != HC_ENOTFOUND)
		up_version_close(v);  /* read the archive afresh next time */
	else
		mir_zipsrc_trim(v->src);
	return rc;
}

static void
up_job_unref(struct up_job *job)
{
	int last;

	pthread_mutex_lock(&job->mu);
	last = --job->refs == 0;
	pthread_mutex_unlock(&job->mu);
	if (!last)
		return;
	if (job->fd >= 0)
		close(job->fd);
	pthread_cond_destroy(&job->cv);
	pthread_mutex_destroy(&job->mu);
	free(job);
}

/* The job's thread: one on-demand reader of the version at a time (a miss
 * of the same member that held the lock before may have stored it). */
static void *
up_job_thread(void *arg)
{
	struct up_job *job = arg;
	struct up_version *v = job->v;
	struct mir_upstream *up = job->up;
	struct hc_err err = { 0, "" };
	struct mir_file f;
	int last, rc;

	pthread_mutex_lock(&up->mu);
	v->waiters++;
	pthread_mutex_unlock(&up->mu);
	pthread_mutex_lock(&v->mu);
	rc = mir_store_get(up->store, job->path, 0, &f, &err);
	if (rc == 0) {
		close(f.fd);
		mir_store_release(up->store, f.entry);
	} else {
		rc = up_fetch_member(v, job->path, job->member, job, &err);
	}
	pthread_mutex_lock(&up->mu);
	last = --v->waiters == 0;
	pthread_mutex_unlock(&up->mu);
	/* A whole copy in tmp may be as large as max_archive_bytes: it stays
	 * only while misses queue for it. */
	if (last && v->src != NULL && !mir_zipsrc_ranged(v->src))
		up_version_close(v);
	pthread_mutex_unlock(&v->mu);
	if (rc == 0 && up->cfg->tools_upstream.import == 0)
		up_import_background(v);
	pthread_mutex_lock(&job->mu);
	/* A streamed member's client sees only a cut connection: say why here
	 * (the others are answered, and logged, by their request). */
	if (rc != 0 && job->state == UP_JOB_STREAMING)
		hc_log(HC_LOG_WARN, MOD, "upstream %s refused: %s; its streaming clients are cut",
		       job->path, err.msg);
	if (rc != 0 && job->state == UP_JOB_STREAMING)
		atomic_fetch_add(&job->up->refused, 1);
	job->rc = rc;
	job->err = err;
	job->state = rc == 0 ? UP_JOB_DONE : UP_JOB_FAILED;
	up_job_signal(job);
	pthread_mutex_unlock(&job->mu);
	up_job_unref(job);
	pthread_mutex_lock(&up->mu);
	v->refs--;
	up->jobs--;
	pthread_cond_broadcast(&up->jobs_cv);
	pthread_mutex_unlock(&up->mu);
	return NULL;
}

/* Starts the job for member path of v; NULL when it cannot (the caller
 * answers 503). The caller holds one reference. */
static struct up_job *
up_job_start(struct mir_upstream *up, struct up_version *v, const char *path,
             size_t member_off)
{
	struct up_job *job = calloc(1, sizeof(*job));
	pthread_attr_t attr;
	pthread_t t;
	int ok;

	if (job == NULL)
		return NULL;
	job->up = up;
	job->v = v;
	job->fd = -1;
	job->refs = 2;
	hc_strlcpy(job->path, path, sizeof(job->path));
	job->member = job->path + member_off;
	pthread_mutex_init(&job->mu, NULL);
	pthread_cond_init(&job->cv, NULL);
	pthread_mutex_lock(&up->mu);
	up->jobs++;
	v->refs++;
	pthread_mutex_unlock(&up->mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&t, &attr, up_job_thread, job) == 0;
	pthread_attr_destroy(&attr);
	if (ok)
		return job;
	pthread_mutex_lock(&up->mu);
	up->jobs--;
	v->refs--;
	pthread_cond_broadcast(&up->jobs_cv);
	pthread_mutex_unlock(&up->mu);
	job->refs = 1;
	up_job_unref(job);
	return NULL;
}

/* Waits until job leaves state from, or shutdown; returns the state. */
static enum up_job_state
up_job_wait(struct up_job *job, enum up_job_state from)
{
	enum up_job_state state;

	pthread_mutex_lock(&job->mu);
	while (job->state <= from && !mir_resp_stopping(job->up->rs))
		hc_cond_wait_ms(&job->cv, &job->mu, UP_POLL_MS);
	state = job->state;
	pthread_mutex_unlock(&job->mu);
	return state;
}

/* A body reading bytes start..start+len of a job's member as they are
 * written, the last one held back until the member verified. */
struct up_body {
	struct up_job *job;
	struct MHD_Connection *c;
	struct mir_park_wait wait;      /* parked for bytes, or by the egress bucket */
	uint64_t start, len;
};

static ssize_t
up_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct up_body *b = cls;
	struct up_job *job = b->job;
	struct mir_resp *rs = job->up->rs;
	uint64_t at = b->start + pos, end = b->start + b->len, avail;
	size_t n;

	pthread_mutex_lock(&job->mu);
	for (;;) {
		if (job->state == UP_JOB_FAILED || mir_resp_stopping(rs)) {
			pthread_mutex_unlock(&job->mu);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		avail = job->written < end ? job->written : end;
		if (job->state != UP_JOB_DONE && avail >= end)
			avail = end - 1;
		if (at < avail)
			break;
		if (job->state == UP_JOB_DONE) {
			pthread_mutex_unlock(&job->mu);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		/* Parked until the job signals; the bound re-checks shutdown. */
		if (mir_park_suspend(rs->park, &b->wait, b->c, &job->waiters, UP_POLL_MS) != 0) {
			pthread_mutex_unlock(&job->mu);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		pthread_mutex_unlock(&job->mu);
		return 0;
	}
	pthread_mutex_unlock(&job->mu);
	n = max < avail - at ? max : (size_t)(avail - at);
	n = mir_resp_pace(rs, b->c, &b->wait, n);
	if (n == 0)
		return 0;
	return mir_resp_read_at(job->fd, buf, n, at);
}

static void
up_body_free(void *cls)
{
	struct up_body *b = cls;

	pthread_mutex_lock(&b->job->mu);
	mir_park_cancel(b->job->up->rs->park, &b->wait);
	pthread_mutex_unlock(&b->job->mu);
	up_job_unref(b->job);
	free(b);
}

/* Answers once job ended in state (the store has the member, or why not);
 * takes the caller's reference. */
static enum MHD_Result
up_job_finish(struct up_job *job, struct MHD_Connection *c, struct mir_req *r,
              const char *path, int head, enum up_job_state state)
{
	struct mir_upstream *up = job->up;
	struct hc_err err = { 0, "" };
	int rc;

	pthread_mutex_lock(&job->mu);
	rc = state == UP_JOB_DONE ? 0 : job->rc;
	err = job->err;
	pthread_mutex_unlock(&job->mu);
	if (state != UP_JOB_DONE && state != UP_JOB_FAILED)
		rc = hc_err_set(&err, HC_EUNAVAIL, "shutting down");
	up_job_unref(job);
	return up_answer(up, c, r, path, head, rc, &err);
}

/* Answers from a streaming job; takes the caller's reference. A HEAD, an
 * empty or unsatisfiable range waits for the stored member instead. */
static enum MHD_Result
up_job_respond(struct up_job *job, struct MHD_Connection *c, struct mir_req *r,
               const char *path, int head)
{
	struct mir_upstream *up = job->up;
	struct mir_resp_file rf = { job->size, 0, job->sha256 };
	struct MHD_Response *body;
	struct up_body *b;
	uint64_t start, len;
	enum mir_range k = mir_resp_range(c, &rf, &start, &len);

	b = head || len == 0 || k == MIR_RANGE_UNSATISFIABLE ? NULL : malloc(sizeof(*b));
	if (b == NULL)
		return up_job_finish(job, c, r, path, head, up_job_wait(job, UP_JOB_STREAMING));
	b->job = job;
	b->c = c;
	mir_park_wait_init(&b->wait);
	b->start = start;
	b->len = len;
	body = MHD_create_response_from_callback(len, UP_COPY_CHUNK, up_body_read, b,
	                                         up_body_free);
	if (body == NULL) {
		up_body_free(b);
		return MHD_NO;
	}
	return mir_resp_file_send(up->rs, c, r, &rf, k, start, len, body);
}

/* A member miss: its job streams it, or answers once it is stored. */
static enum MHD_Result
up_get_member(struct mir_upstream *up, struct up_version *v, struct MHD_Connection *c,
              struct mir_req *r, const char *path, size_t member_off, int head)
{
	struct up_job *job = up_job_start(up, v, path, member_off);
	enum up_job_state state;

	if (job == NULL)
		return up_503(up, c, r, 10, "cannot start a transfer");
	state = up_job_wait(job, UP_JOB_OPENING);
	if (state == UP_JOB_STREAMING)
		return up_job_respond(job, c, r, path, head);
	return up_job_finish(job, c, r, path, head, state);
}

/* A miss of an imported version means its files left the store (the admin
 * DELETE, the scrubber): the import is done again on the next chance. The
 * store is asked, so a miss racing the import's last write resets nothing. */
static void
up_forget_import(struct up_version *v)
{
	char manifest[MIR_PATH_MAX];
	struct hc_err err = { 0, "" };
	struct mir_file f;
	int imported;

	pthread_mutex_lock(&v->up->mu);
	imported = v->import_state == 2;
	pthread_mutex_unlock(&v->up->mu);
	if (!imported || hc_snprintf(manifest, sizeof(manifest), UP_TOOLS "%s/%s/" UP_MANIFEST,
	                             v->id, v->ver) != 0)
		return;
	if (mir_store_get(v->up->store, manifest, 0, &f, &err) == 0) {
		close(f.fd);
		mir_store_release(v->up->store, f.entry);
		return;
	}
	pthread_mutex_lock(&v->up->mu);
	if (v->import_state == 2)
		v->import_state = 0;
	pthread_mutex_unlock(&v->up->mu);
	hc_log(HC_LOG_INFO, MOD, "upstream tools/%s/%s left the store; the next miss imports it "
	       "again", v->id, v->ver);
}

/* A manifest.json miss with import: on_first_use: starts the import (or
 * joins the running one) and waits for it at most UP_MANIFEST_WAIT_MS. */
static enum MHD_Result
up_get_manifest(struct mir_upstream *up, struct up_version *v, struct MHD_Connection *c,
                struct mir_req *r, const char *path, int head)
{
	struct hc_err err = { 0, "" };
	int64_t until = hc_now_ms() + UP_MANIFEST_WAIT_MS, left;
	int state;

	up_import_background(v);
	pthread_mutex_lock(&up->mu);
	for (;;) {
		state = v->import_state;
		left = until - hc_now_ms();
		if (state != 1 || left <= 0 || up->cancel)
			break;
		hc_cond_wait_ms(&v->import_cv, &up->mu, (int)left);
	}
	pthread_mutex_unlock(&up->mu);
	if (state == 1)
		return up_503(up, c, r, UP_MANIFEST_RETRY_S, "import in progress");
	if (state == 2)
		return up_answer(up, c, r, path, head, 0, &err);
	hc_err_set(&err, HC_EUNAVAIL, "the import of tools/%s/%s failed (logged above)", v->id,
	           v->ver);
	return up_answer(up, c, r, path, head, HC_EUNAVAIL, &err);
}

enum MHD_Result
mir_upstream_get(struct mir_upstream *up, struct MHD_Connection *c, struct mir_req *r,
                 const char *path, int head)
{
	char id[UP_NAME_MAX], ver[UP_NAME_MAX];
	struct up_version *v;
	enum MHD_Result ret;
	const char *rest;
	int wait_s;

	if (up_split(path, id, ver, &rest) != 0)
		return mir_resp_error(up->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
	wait_s = up_wait_s(up);
	if (wait_s > 0)
		return up_503(up, c, r, wait_s, "upstream rate limited");
	v = up_version_get(up, id, ver);
	if (v == NULL)
		return up_503(up, c, r, 60, "too many upstream versions");
	up_note_base(up, v, c);
	up_forget_import(v);
	if (strcmp(rest, UP_MANIFEST) != 0)
		ret = up_get_member(up, v, c, r, path, (size_t)(rest - path) + strlen(UP_FILES),
		                    head);
	else if (up->cfg->tools_upstream.import != 0)
		ret = mir_resp_error(up->rs, c, r, MHD_HTTP_NOT_FOUND, "not imported");
	else
		ret = up_get_manifest(up, v, c, r, path, head);
	up_version_put(v);
	return ret;
}

enum MHD_Result
mir_upstream_import(struct mir_upstream *up, struct MHD_Connection *c, struct mir_req *r,
                    const char *path)
{
	char id[UP_NAME_MAX], ver[UP_NAME_MAX], manifest[MIR_PATH_MAX];
	struct hc_err err = { 0, "" };
	struct up_version *v;
	const char *rest;
	int rc;

	if (up_split(path, id, ver, &rest) != 0)
		return mir_resp_error(up->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
	v = up_version_get(up, id, ver);
	if (v == NULL)
		return up_503(up, c, r, 60, "too many upstream versions");
	up_note_base(up, v, c);
	up_forget_import(v);
	rc = up_import_now(v, &err);
	up_version_put(v);
	if (rc == HC_EUNAVAIL && up_wait_s(up) == 0 && strstr(err.msg, "is running") != NULL)
		return up_503(up, c, r, 10, "import in progress");
	if (hc_snprintf(manifest, sizeof(manifest), UP_TOOLS "%s/%s/" UP_MANIFEST, id, ver) != 0)
		return mir_resp_error(up->rs, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	return up_answer(up, c, r, manifest, 0, rc, &err);
}

/* ------------------------------------------------------------ lifecycle */

/* The token file's first line. */
static int
up_read_token(const char *file, char **out, struct hc_err *err)
{
	size_t len = 0;
	int rc;

	*out = NULL;
	if (file == NULL || *file == '\0')
		return 0;
	rc = hc_read_file(file, UP_TOKEN_MAX, out, &len, err);
	if (rc != 0) {
		err->status = HC_ECONFIG;
		return hc_err_prefix(err, "tools_upstream.token_file");
	}
	(*out)[strcspn(*out, "\r\n")] = '\0';
	return 0;
}

int
mir_upstream_new(const struct mir_config *cfg, struct mir_store *store,
                 struct mir_journal *journal, struct mir_resp *rs, struct mir_upstream **out,
                 struct hc_err *err)
{
	const char *tmpl = cfg->tools_upstream.archive_url;
	struct mir_upstream *up;
	int rc;

	*out = NULL;
	if (tmpl == NULL || *tmpl == '\0')
		return 0;
	up = calloc(1, sizeof(*up));
	if (up == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	up->cfg = cfg;
	up->store = store;
	up->journal = journal;
	up->rs = rs;
	up->http.dns.timeout_ms = UP_DNS_TIMEOUT_MS;
	up->http.ca_file = cfg->tls.ca_file;
	up->http.connect_timeout_ms = UP_CONNECT_TIMEOUT_MS;
	up->http.stall_bytes_per_s = UP_STALL_BYTES_PER_S;
	up->http.stall_seconds = UP_STALL_S;
	pthread_mutex_init(&up->mu, NULL);
	pthread_cond_init(&up->jobs_cv, NULL);
	rc = up_read_token(cfg->tools_upstream.token_file, &up->token, err);
	if (rc != 0) {
		mir_upstream_free(up);
		return rc;
	}
	hc_log(HC_LOG_INFO, MOD, "tools misses are read from upstream releases (%s), import %s",
	       tmpl, cfg->tools_upstream.import == 0 ? "on_first_use" : "on_request_only");
	*out = up;
	return 0;
}

/* One counter of mir_upstream_metrics. */
static int
up_counter(struct hc_buf *b, const char *name, const char *help, atomic_uint_least64_t *v)
{
	return hc_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help,
	                     name, name, (uint64_t)atomic_load(v));
}

int
mir_upstream_metrics(struct mir_upstream *up, struct hc_buf *b)
{
	int rc;

	if (up == NULL)
		return 0;
	rc = up_counter(b, "hydra_mirror_upstream_members_total",
	                "Tools members read on demand from upstream releases.", &up->members);
	if (rc == 0)
		rc = up_counter(b, "hydra_mirror_upstream_refused_total",
		                "Upstream reads refused (bad archive, name, ratio, digest) or failed.",
		                &up->refused);
	if (rc == 0)
		rc = up_counter(b, "hydra_mirror_upstream_rate_limited_total",
		                "Times upstream answered 429 or 403 with a wait.", &up->rate_limited);
	if (rc == 0)
		rc = up_counter(b, "hydra_mirror_upstream_imports_total",
		                "Tool versions imported whole.", &up->imports);
	if (rc == 0)
		rc = up_counter(b, "hydra_mirror_upstream_archive_bytes_total",
		                "Release archive bytes received from upstream.", &up->archive_bytes);
	return rc;
}

void
mir_upstream_cancel(struct mir_upstream *up)
{
	if (up == NULL)
		return;
	pthread_mutex_lock(&up->mu);
	up->cancel = 1;
	pthread_mutex_unlock(&up->mu);
}

void
mir_upstream_free(struct mir_upstream *up)
{
	struct up_version *v, *next;

	if (up == NULL)
		return;
	mir_upstream_cancel(up);
	/* Job threads end once their transfer sees cancel and their body is gone. */
	pthread_mutex_lock(&up->mu);
	while (up->jobs > 0)
		hc_cond_wait_ms(&up->jobs_cv, &up->mu, UP_POLL_MS);
	pthread_mutex_unlock(&up->mu);
	for (v = up->versions; v != NULL; v = next) {
		next = v->next;
		up_version_free(v);
	}
	if (up->token != NULL) {
		explicit_bzero(up->token, strlen(up->token));
		free(up->token);
	}
	pthread_cond_destroy(&up->jobs_cv);
	pthread_mutex_destroy(&up->mu);
	free(up);
}
