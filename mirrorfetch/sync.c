/*
 * hydra-agent sync: bring a folder up to a per-file manifest. The whole
 * manifest is validated before anything is written; the index
 * (DIR/.hydra-index) says which files are unchanged without hashing them;
 * what is missing or changed is fetched into DIR/.hydra-staging by mf_fetch
 * (the install path: district rewrite, HEAD probe, fallback, resume) on
 * several threads, and only when every file is verified are they renamed
 * into place. docs/sync.md is the reference.
 *
 * Why threads and not the libcurl multi interface: each transfer is the
 * install path itself (probe, candidate loop, resume, writer thread); a
 * thread per job reuses it unchanged instead of re-expressing that state
 * machine as callbacks, and per-file transfers are few and large or many
 * and tiny, where a thread per job costs nothing measurable.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mirrorfetch/mirrorfetch.h"

/* Under staging: the part files of downloads in progress. */
#define SYNC_PARTS_DIR ".hydra-parts"
#define MOD "mirrorfetch"
#define INDEX_MAGIC "hydra-index 1\n"
/* An index line: digest, four numbers and a path. */
#define INDEX_LINE_MAX (MF_MANIFEST_PATH_MAX + HC_SHA256_HEX_LEN + 128)
/* The index never lists more files than a manifest may hold. */
#define INDEX_MAX ((size_t)MF_MANIFEST_FILES_MAX * INDEX_LINE_MAX)
/* Progress redraws at most this often. */
#define PROGRESS_PERIOD_MS 250
/* nftw: folders held open while removing a tree. */
#define RMTREE_FDS 16

enum sync_action {
	SYNC_KEEP,      /* DIR already holds it */
	SYNC_STAGED,    /* a verified copy waits in staging */
	SYNC_FETCH,     /* download into staging */
};

/* What planning still has to hash for an item. */
enum sync_check {
	CHECK_NONE,
	CHECK_DIR,      /* DIR/path has the right size but no index entry says so */
	CHECK_STAGED,   /* a copy of the right size waits in staging */
};

struct sync_item {
	const struct mf_manifest_file *f;
	enum sync_action action;
	int indexed;             /* st is valid for the index */
	struct stat st;
	enum sync_check check;
	int matched;             /* the hash of the checked copy is the manifest's */
	int done;                /* fetched and verified */
};

struct index_entry {
	char *path;
	char sha256[HC_SHA256_HEX_LEN + 1];
	uint64_t size;
	int64_t mtime_ns, ctime_ns;
	uint64_t ino;
};

struct sync {
	const struct mf_config *cfg;
	const struct mf_sync_options *opt;
	struct mf_sync_result *res;
	struct mf_manifest *m;
	char dir[PATH_MAX];
	char staging[PATH_MAX];
	char index_path[PATH_MAX];
	char district[MF_DISTRICT_MAX];
	int district_known;
	struct index_entry *index;
	size_t n_index;
	struct sync_item *items;
	size_t n_fetch;
	/* Workers. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next;             /* next item to look at */
	size_t running;          /* workers not yet ended */
	int stop;                /* a fetch failed: start no more */
	int fail_status;
	char fail_msg[HC_ERR_MAX];
	atomic_uint_least64_t rx;
	uint64_t done_bytes;
	size_t done_files;
};

/* ------------------------------------------------------------ small helpers */

static int64_t
sync_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int
sync_join(char *out, size_t size, const char *a, const char *b)
{
	return hc_snprintf(out, size, "%s/%s", a, b);
}

static int
sync_rmtree_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf path, without following symlinks. */
static int
sync_rmtree(const char *path, struct hc_err *err)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : hc_err_set(err, HC_EIO, "stat %s: %s", path,
		                                        strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) != 0)
			return hc_err_set(err, HC_EIO, "remove %s: %s", path, strerror(errno));
		return 0;
	}
	if (nftw(path, sync_rmtree_one, RMTREE_FDS, FTW_DEPTH | FTW_PHYS) != 0)
		return hc_err_set(err, HC_EIO, "remove %s: %s", path, strerror(errno));
	return 0;
}

static int
sync_same_stat(const struct index_entry *e, const struct stat *st)
{
	return e->size == (uint64_t)st->st_size && e->mtime_ns == sync_ns(&st->st_mtim) &&
	       e->ctime_ns == sync_ns(&st->st_ctim) && e->ino == (uint64_t)st->st_ino;
}

/* ------------------------------------------------------------ the index */

static int
sync_cmp_index(const void *a, const void *b)
{
	const struct index_entry *x = a, *y = b;

	return strcmp(x->path, y->path);
}

static void
sync_index_free(struct sync *s)
{
	size_t i;

	for (i = 0; i < s->n_index; i++)
		free(s->index[i].path);
	free(s->index);
	s->index = NULL;
	s->n_index = 0;
}

/* Loads DIR/.hydra-index. A missing or damaged index only costs hashing:
 * it is never an error. */
static void
sync_index_load(struct sync *s)
{
	char *text = NULL, *line, *next;
	size_t len = 0, cap = 0, lines = 0;
	struct hc_err err = { 0, "" };
	int rc;

	rc = hc_read_file(s->index_path, INDEX_MAX, &text, &len, &err);
	if (rc != 0) {
		if (rc != HC_ENOTFOUND)
			hc_log(HC_LOG_WARN, MOD, "index ignored: %s", err.msg);
		return;
	}
	if (strncmp(text, INDEX_MAGIC, strlen(INDEX_MAGIC)) != 0) {
		hc_log(HC_LOG_WARN, MOD, "index ignored: %s is not a hydra index", s->index_path);
		free(text);
		return;
	}
	for (line = text + strlen(INDEX_MAGIC); *line != '\0' && lines < MF_MANIFEST_FILES_MAX;
	     line = next, lines++) {
		struct index_entry e;
		unsigned long long size, ino;
		long long mt, ct;
		int off = 0;
		char sha[HC_SHA256_HEX_LEN + 1];

		next = strchr(line, '\n');
		if (next == NULL)
			break;  /* a cut last line: ignore it */
		*next++ = '\0';
		if (sscanf(line, "%64s %llu %lld %lld %llu %n", sha, &size, &mt, &ct, &ino, &off) != 5 ||
		    off == 0 || !hc_sha256_hex_valid(sha) || line[off] == '\0')
			continue;
		if (s->n_index == cap) {
			size_t ncap = cap > 0 ? cap * 2 : 256;
			void *p = realloc(s->index, ncap * sizeof(*s->index));
			if (p == NULL)
				break;
			s->index = p;
			cap = ncap;
		}
		memset(&e, 0, sizeof(e));
		e.path = hc_strdup(line + off);
		if (e.path == NULL)
			break;
		hc_strlcpy(e.sha256, sha, sizeof(e.sha256));
		e.size = size;
		e.mtime_ns = mt;
		e.ctime_ns = ct;
		e.ino = ino;
		s->index[s->n_index++] = e;
	}
	free(text);
	qsort(s->index, s->n_index, sizeof(*s->index), sync_cmp_index);
}

static const struct index_entry *
sync_index_find(const struct sync *s, const char *path)
{
	struct index_entry key;

	if (s->n_index == 0)
		return NULL;
	key.path = (char *)path;
	return bsearch(&key, s->index, s->n_index, sizeof(*s->index), sync_cmp_index);
}

/* Writes the index for every item whose file in DIR is known to be right. */
static int
sync_index_save(struct sync *s, struct hc_err *err)
{
	struct hc_err sub = { 0, "" };
	char *buf = NULL;
	size_t len = 0, cap = 0, i;
	int rc = 0;

	for (i = 0; i <= s->m->n; i++) {
		char line[INDEX_LINE_MAX];
		size_t l;

		if (i == 0) {
			hc_strlcpy(line, INDEX_MAGIC, sizeof(line));
		} else {
			const struct sync_item *it = &s->items[i - 1];
			if (!it->indexed)
				continue;
			if (hc_snprintf(line, sizeof(line), "%s %llu %lld %lld %llu %s\n", it->f->sha256,
			                (unsigned long long)it->st.st_size,
			                (long long)sync_ns(&it->st.st_mtim),
			                (long long)sync_ns(&it->st.st_ctim),
			                (unsigned long long)it->st.st_ino, it->f->path) != 0)
				continue;
		}
		l = strlen(line);
		if (len + l > cap) {
			size_t ncap = cap > 0 ? cap * 2 : 65536;
			char *p;
			while (ncap < len + l)
				ncap *= 2;
			p = realloc(buf, ncap);
			if (p == NULL) {
				free(buf);
				return hc_err_set(err, HC_ENOMEM, "out of memory");
			}
			buf = p;
			cap = ncap;
		}
		memcpy(buf + len, line, l);
		len += l;
	}
	rc = hc_atomic_write(s->index_path, buf, len, 0644, &sub);
	if (rc != 0)
		rc = hc_err_set(err, rc, "%s", sub.msg);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------ the manifest */

static int
sync_is_url(const char *s)
{
	return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

static int
sync_district(struct sync *s, struct hc_err *err)
{
	int rc;

	if (s->district_known)
		return 0;
	rc = mf_district_lookup(s->cfg, s->district, err);
	if (rc == 0)
		s->district_known = 1;
	return rc;
}

/* The candidates for url, looking the district up the first time it matters. */
static int
sync_candidates(struct sync *s, const char *url, char out[2][MF_URL_MAX], size_t *n,
                struct hc_err *err)
{
	int rc = 0;

	if (mf_is_origin_url(url, s->cfg->origin_host))
		rc = sync_district(s, err);
	if (rc != 0)
		return rc;
	return mf_rewrite_url(url, s->district_known ? s->district : "", s->cfg->origin_host,
	                      s->cfg->url_pattern, out, n, err);
}

struct sync_body {
	char *data;
	size_t len, cap;
	int too_big;
};

static int
sync_body_sink(void *ctx, const void *data, size_t len)
{
	struct sync_body *b = ctx;

	if (len > MF_MANIFEST_MAX - b->len) {
		b->too_big = 1;
		return -1;
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 65536;
		char *p;
		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL)
			return -1;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

/* GET the manifest through the same candidates as files (district first). */
static int
sync_fetch_manifest(struct sync *s, char **text, size_t *len, struct hc_err *err)
{
	char candidates[2][MF_URL_MAX];
	struct hc_err why = { 0, "" };
	struct sync_body body = { NULL, 0, 0, 0 };
	size_t n = 0, i;
	int rc;

	rc = sync_candidates(s, s->opt->manifest, candidates, &n, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < n; i++) {
		struct hc_http_request req = { 0 };
		struct hc_http_response resp;
		struct hc_url u;

		body.len = 0;
		body.too_big = 0;
		req.url = candidates[i];
		req.sink = sync_body_sink;
		req.ctx = &body;
		req.fail_on_http_error = 1;
		hc_log(HC_LOG_INFO, MOD, "downloading %s", candidates[i]);
		rc = hc_http_request(&s->cfg->http, &req, &resp, &why);
		if (body.too_big) {
			free(body.data);
			return hc_err_set(err, HC_EDATA, "manifest %s: larger than %zu bytes",
			                  candidates[i], MF_MANIFEST_MAX);
		}
		if (rc == 0 && resp.status == 200) {
			if (body.data == NULL && sync_body_sink(&body, "", 0) != 0)
				return hc_err_set(err, HC_ENOMEM, "out of memory");
			*text = body.data;
			*len = body.len;
			return 0;
		}
		if (rc == 0)
			hc_err_set(&why, HC_EUNAVAIL, "HTTP %ld", resp.status);
		if (hc_url_parse(candidates[i], &u, NULL) == 0) {
			if (i + 1 < n)
				hc_log(HC_LOG_WARN, MOD, "district mirror %s unavailable (%s), falling back "
				       "to %s", u.host, why.msg, s->cfg->origin_host);
			else
				hc_log(HC_LOG_WARN, MOD, "source %s failed: %s", u.host, why.msg);
			hc_url_free(&u);
		}
	}
	free(body.data);
	return hc_err_set(err, HC_EUNAVAIL, "no source could deliver the manifest %s: %s",
	                  s->opt->manifest, why.msg);
}

static int
sync_load_manifest(struct sync *s, struct hc_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (sync_is_url(s->opt->manifest)) {
		rc = sync_fetch_manifest(s, &text, &len, err);
	} else {
		rc = hc_read_file(s->opt->manifest, MF_MANIFEST_MAX, &text, &len, err);
		if (rc == HC_ENOTFOUND)
			rc = HC_EUSAGE;
		if (rc != 0)
			hc_err_prefix(err, "--manifest");
	}
	if (rc != 0)
		return rc;
	rc = mf_manifest_parse(text, len, &s->m, err);
	free(text);
	if (rc == 0 && s->opt->manifest_hash != NULL &&
	    strcasecmp(s->opt->manifest_hash, s->m->manifest_hash) != 0)
		rc = hc_err_set(err, HC_EDATA, "manifest: manifest_hash %s is not the expected %s",
		                s->m->manifest_hash, s->opt->manifest_hash);
	return rc;
}

/* ------------------------------------------------------------ planning */

/* 1 when every folder on the way to path inside DIR is a real folder (no
 * symlink leads out of DIR), or does not exist yet. */
static int
sync_parents_real(const char *root, const char *path)
{
	char buf[PATH_MAX];
	const char *slash;

	for (slash = strchr(path, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		struct stat st;
		if (hc_snprintf(buf, sizeof(buf), "%s/%.*s", root, (int)(slash - path), path) != 0)
			return 0;
		if (lstat(buf, &st) != 0)
			return errno == ENOENT ? 1 : 0;
		if (!S_ISDIR(st.st_mode))
			return 0;
	}
	return 1;
}

struct sync_hash_pool {
	struct sync *s;
	enum sync_check check;
	size_t next;
};

/* Hashes the copies planning asked for (DIR or staging), several at once. */
static void *
sync_hash_worker(void *arg)
{
	struct sync_hash_pool *pool = arg;
	struct sync *s = pool->s;

	for (;;) {
		struct sync_item *it = NULL;
		char full[PATH_MAX], hex[HC_SHA256_HEX_LEN + 1];
		struct hc_err err = { 0, "" };

		pthread_mutex_lock(&s->mu);
		while (pool->next < s->m->n && s->items[pool->next].check != pool->check)
			pool->next++;
		if (pool->next < s->m->n) {
			it = &s->items[pool->next++];
			s->res->hashed++;
		}
		pthread_mutex_unlock(&s->mu);
		if (it == NULL)
			break;
		if (sync_join(full, sizeof(full), pool->check == CHECK_DIR ? s->dir : s->staging,
		              it->f->path) != 0)
			continue;
		if (hc_sha256_file(full, hex, &err) != 0)
			hc_log(HC_LOG_WARN, MOD, "%s", err.msg);
		else
			it->matched = strcmp(hex, it->f->sha256) == 0;
	}
	return NULL;
}

/* Runs the hashes of one kind on up to opt->jobs threads. */
static void
sync_hash_all(struct sync *s, enum sync_check check)
{
	struct sync_hash_pool pool = { s, check, 0 };
	pthread_t threads[MF_SYNC_JOBS_MAX];
	size_t want = 0, started = 0, i;

	for (i = 0; i < s->m->n; i++)
		if (s->items[i].check == check)
			want++;
	if (want == 0)
		return;
	if (want > (size_t)s->opt->jobs)
		want = (size_t)s->opt->jobs;
	for (i = 0; i + 1 < want; i++) {
		if (pthread_create(&threads[i], NULL, sync_hash_worker, &pool) != 0)
			break;
		started++;
	}
	/* This thread hashes too, so a failed thread start only costs speed. */
	sync_hash_worker(&pool);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
}

/* 1 when full is a regular file of size bytes; its stat in *st. */
static int
sync_regular_of_size(const char *full, uint64_t size, struct stat *st)
{
	return lstat(full, st) == 0 && S_ISREG(st->st_mode) && (uint64_t)st->st_size == size;
}

/*
 * Decides every item: KEEP when DIR holds it (index, else hash), STAGED when
 * a verified copy waits in staging, else FETCH. Hashing, the slow part of a
 * first sync over an existing folder, runs on opt->jobs threads.
 */
static int
sync_plan(struct sync *s, struct hc_err *err)
{
	size_t i;

	s->items = calloc(s->m->n > 0 ? s->m->n : 1, sizeof(*s->items));
	if (s->items == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	for (i = 0; i < s->m->n; i++) {
		struct sync_item *it = &s->items[i];
		const struct mf_manifest_file *f = &s->m->files[i];
		const struct index_entry *e;
		char full[PATH_MAX], staged[PATH_MAX];
		struct stat st;

		it->f = f;
		it->action = SYNC_FETCH;
		s->res->total_bytes += f->size;
		if (sync_join(full, sizeof(full), s->dir, f->path) != 0 ||
		    sync_join(staged, sizeof(staged), s->staging, f->path) != 0)
			return hc_err_set(err, HC_ECANTCREAT, "%s/%s: path too long", s->dir, f->path);
		if (!sync_parents_real(s->dir, f->path) || !sync_regular_of_size(full, f->size, &st))
			continue;
		e = sync_index_find(s, f->path);
		if (e == NULL || !sync_same_stat(e, &st)) {
			it->check = CHECK_DIR;
			it->st = st;
		} else if (strcmp(e->sha256, f->sha256) == 0) {
			it->action = SYNC_KEEP;
			it->indexed = 1;
			it->st = st;
			s->res->from_index++;
			s->res->unchanged++;
		}
	}
	sync_hash_all(s, CHECK_DIR);
	for (i = 0; i < s->m->n; i++) {
		struct sync_item *it = &s->items[i];
		char staged[PATH_MAX];
		struct stat st;

		if (it->check == CHECK_DIR && it->matched) {
			it->action = SYNC_KEEP;
			it->indexed = 1;
			s->res->unchanged++;
			continue;
		}
		it->check = CHECK_NONE;
		it->matched = 0;
		if (it->action == SYNC_KEEP)
			continue;
		/* A verified copy an interrupted run left in staging. */
		if (sync_join(staged, sizeof(staged), s->staging, it->f->path) == 0 &&
		    sync_parents_real(s->staging, it->f->path) &&
		    sync_regular_of_size(staged, it->f->size, &st))
			it->check = CHECK_STAGED;
	}
	sync_hash_all(s, CHECK_STAGED);
	for (i = 0; i < s->m->n; i++) {
		struct sync_item *it = &s->items[i];

		if (it->action == SYNC_KEEP)
			continue;
		if (it->check == CHECK_STAGED && it->matched) {
			it->action = SYNC_STAGED;
			s->res->reused_staged++;
		} else {
			s->n_fetch++;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ fetching */

static void
sync_record(struct sync *s, struct sync_item *it, const struct mf_result *r)
{
	struct mf_sync_transfer *t = &s->res->transfers[s->res->n_transfers];
	size_t a;

	t->path = hc_strdup(it->f->path);
	t->bytes = 0;
	for (a = 0; a < r->n_attempts; a++)
		t->bytes += r->attempts[a].bytes;
	hc_strlcpy(t->host, r->source_host, sizeof(t->host));
	t->fallback = r->fallback;
	t->ms = r->elapsed_ms;
	s->res->n_transfers++;
	s->res->bytes += t->bytes;
}

static void *
sync_worker(void *arg)
{
	struct sync *s = arg;
	struct mf_result *r = malloc(sizeof(*r));

	pthread_mutex_lock(&s->mu);
	if (r == NULL && !s->stop) {
		s->stop = 1;
		s->fail_status = HC_ENOMEM;
		hc_strlcpy(s->fail_msg, "out of memory", sizeof(s->fail_msg));
	}
	for (;;) {
		struct sync_item *it = NULL;
		char candidates[2][MF_URL_MAX], staged[PATH_MAX], parent[PATH_MAX];
		char part[PATH_MAX];
		struct hc_err err = { 0, "" };
		size_t n = 0, d;
		char *slash;
		int rc;

		while (s->next < s->m->n && s->items[s->next].action != SYNC_FETCH)
			s->next++;
		if (s->stop || s->next >= s->m->n)
			break;
		it = &s->items[s->next++];
		pthread_mutex_unlock(&s->mu);

		rc = sync_candidates(s, it->f->url, candidates, &n, &err);
		/* Part files live in a tree of their own: staged "x.part" must never
		 * be the part file of "x". Manifest paths cannot start with .hydra-. */
		if (rc == 0 && (sync_join(staged, sizeof(staged), s->staging, it->f->path) != 0 ||
		                hc_snprintf(part, sizeof(part), "%s/" SYNC_PARTS_DIR "/%s.part",
		                            s->staging, it->f->path) != 0))
			rc = hc_err_set(&err, HC_ECANTCREAT, "%s: path too long", it->f->path);
		for (d = 0; rc == 0 && d < 2; d++) {
			hc_strlcpy(parent, d == 0 ? staged : part, sizeof(parent));
			slash = strrchr(parent, '/');
			*slash = '\0';
			rc = hc_mkdir_p(parent, 0755, &err);
			if (rc != 0)
				rc = HC_ECANTCREAT;
		}
		if (rc == 0)
			rc = mf_fetch(s->cfg, candidates, n, staged, part, it->f->sha256,
			              MF_PROGRESS_NONE, r, &err);

		pthread_mutex_lock(&s->mu);
		if (rc == 0) {
			it->done = 1;
			s->done_files++;
			s->done_bytes += it->f->size;
			sync_record(s, it, r);
		} else if (!s->stop) {
			s->stop = 1;
			s->fail_status = rc;
			hc_strlcpy(s->res->failed_path, it->f->path, sizeof(s->res->failed_path));
			if (hc_snprintf(s->fail_msg, sizeof(s->fail_msg), "%s: %s", it->f->path,
			                err.msg) != 0)
				hc_strlcpy(s->fail_msg, err.msg, sizeof(s->fail_msg));
		}
		pthread_cond_broadcast(&s->cv);
	}
	s->running--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	free(r);
	return NULL;
}

/* Called with s->mu held: the counters are read under the lock. */
static void
sync_draw(struct sync *s, int64_t start, int final)
{
	char got[32], total[32], rate[32], line[256];
	uint64_t rx = atomic_load(&s->rx);
	int64_t ms = hc_now_ms() - start;
	int n;

	mf_format_bytes((double)rx, got, sizeof(got));
	mf_format_bytes((double)s->res->total_bytes, total, sizeof(total));
	mf_format_bytes(ms > 0 ? (double)rx * 1000.0 / (double)ms : 0, rate, sizeof(rate));
	n = snprintf(line, sizeof(line), "\rsync: %zu/%zu files to fetch, %s received (manifest %s), "
	             "%s/s  ", s->done_files, s->n_fetch, got, total, rate);
	if (n > 0)
		(void)hc_write_all(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n :
		                   sizeof(line) - 1);
	if (final)
		(void)hc_write_all(STDERR_FILENO, "\n", 1);
}

static int
sync_cmp_transfer(const void *a, const void *b)
{
	const struct mf_sync_transfer *x = a, *y = b;

	return strcmp(x->path != NULL ? x->path : "", y->path != NULL ? y->path : "");
}

static int
sync_fetch_all(struct sync *s, struct hc_err *err)
{
	pthread_t threads[MF_SYNC_JOBS_MAX];
	size_t started = 0, want, i;
	int64_t start = hc_now_ms();
	int rc = 0;

	if (s->n_fetch == 0)
		return 0;
	/* The district is looked up once, here, before the threads need it. */
	for (i = 0; i < s->m->n; i++) {
		if (s->items[i].action == SYNC_FETCH &&
		    mf_is_origin_url(s->items[i].f->url, s->cfg->origin_host)) {
			rc = sync_district(s, err);
			if (rc != 0)
				return rc;
			break;
		}
	}
	s->res->transfers = calloc(s->n_fetch, sizeof(*s->res->transfers));
	if (s->res->transfers == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = hc_mkdir_p(s->staging, 0755, err);
	if (rc != 0)
		return HC_ECANTCREAT;
	want = (size_t)s->opt->jobs;
	if (want > s->n_fetch)
		want = s->n_fetch;
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < want; i++) {
		if (pthread_create(&threads[i], NULL, sync_worker, s) != 0)
			break;
		started++;
		s->running++;
	}
	if (started == 0) {
		pthread_mutex_unlock(&s->mu);
		return hc_err_set(err, HC_ESOFTWARE, "cannot start a transfer thread");
	}
	while (s->running > 0) {
		if (s->opt->progress)
			sync_draw(s, start, 0);
		hc_cond_wait_ms(&s->cv, &s->mu, PROGRESS_PERIOD_MS);
	}
	if (s->opt->progress)
		sync_draw(s, start, 1);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	qsort(s->res->transfers, s->res->n_transfers, sizeof(*s->res->transfers),
	      sync_cmp_transfer);
	if (s->stop)
		return hc_err_set(err, s->fail_status, "%s", s->fail_msg);
	return 0;
}

/* ------------------------------------------------------------ swapping in */

/* Makes the folders on the way to path inside DIR, removing a file or
 * symlink in the way when delete_ok (it cannot be in the manifest: no path
 * is under another file's path). */
static int
sync_clear_way(struct sync *s, const char *path, struct hc_err *err)
{
	char buf[PATH_MAX];
	const char *slash;
	struct stat st;
	int rc;

	for (slash = strchr(path, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		if (hc_snprintf(buf, sizeof(buf), "%s/%.*s", s->dir, (int)(slash - path), path) != 0)
			return hc_err_set(err, HC_ECANTCREAT, "%s/%s: path too long", s->dir, path);
		if (lstat(buf, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				continue;
			if (!s->opt->delete_extra)
				return hc_err_set(err, HC_ECANTCREAT, "%s is in the way (not a folder); "
				                  "--delete would remove it", buf);
			if (unlink(buf) != 0)
				return hc_err_set(err, HC_EIO, "remove %s: %s", buf, strerror(errno));
			s->res->deleted++;
		} else if (errno != ENOENT) {
			return hc_err_set(err, HC_EIO, "stat %s: %s", buf, strerror(errno));
		}
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return hc_err_set(err, HC_ECANTCREAT, "mkdir %s: %s", buf, strerror(errno));
		/* The new folder's entry must survive a crash with the files in it. */
		if (strrchr(buf, '/') != NULL) {
			*strrchr(buf, '/') = '\0';
			if (hc_fsync_dir(buf, err) != 0)
				return HC_EIO;
		}
	}
	if (sync_join(buf, sizeof(buf), s->dir, path) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "%s/%s: path too long", s->dir, path);
	if (lstat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!s->opt->delete_extra)
			return hc_err_set(err, HC_ECANTCREAT, "%s is a folder where the manifest has a "
			                  "file; --delete would remove it", buf);
		rc = sync_rmtree(buf, err);
		if (rc != 0)
			return rc;
		s->res->deleted++;
	}
	return 0;
}

/* Renames every fetched or staged file into DIR, then fsyncs the folders. */
static int
sync_swap(struct sync *s, struct hc_err *err)
{
	char last_dir[PATH_MAX] = "";
	size_t i;
	int rc;

	for (i = 0; i < s->m->n; i++) {
		struct sync_item *it = &s->items[i];
		char from[PATH_MAX], to[PATH_MAX], parent[PATH_MAX];
		struct stat old;
		char *slash;

		if (it->action == SYNC_KEEP || (it->action == SYNC_FETCH && !it->done))
			continue;
		rc = sync_clear_way(s, it->f->path, err);
		if (rc != 0)
			return rc;
		if (sync_join(from, sizeof(from), s->staging, it->f->path) != 0 ||
		    sync_join(to, sizeof(to), s->dir, it->f->path) != 0)
			return hc_err_set(err, HC_ECANTCREAT, "%s: path too long", it->f->path);
		/* The manifest carries no mode: a replaced file keeps its own (a tool's
		 * executables stay executable). */
		if (lstat(to, &old) == 0 && S_ISREG(old.st_mode) &&
		    chmod(from, old.st_mode & 07777) != 0)
			return hc_err_set(err, HC_EIO, "chmod %s: %s", from, strerror(errno));
		if (rename(from, to) != 0)
			return hc_err_set(err, HC_EIO, "rename %s to %s: %s", from, to, strerror(errno));
		if (lstat(to, &it->st) == 0)
			it->indexed = 1;
		hc_strlcpy(parent, to, sizeof(parent));
		slash = strrchr(parent, '/');
		*slash = '\0';
		if (strcmp(parent, last_dir) != 0) {
			if (last_dir[0] != '\0' && hc_fsync_dir(last_dir, err) != 0)
				return HC_EIO;
			hc_strlcpy(last_dir, parent, sizeof(last_dir));
		}
	}
	if (last_dir[0] != '\0' && hc_fsync_dir(last_dir, err) != 0)
		return HC_EIO;
	return 0;
}

/* ------------------------------------------------------------ --delete */

static int
sync_cmp_path_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct mf_manifest_file *)elem)->path);
}

/* 1 when some manifest path starts with prefix + "/". */
static int
sync_is_folder_of_listed(const struct sync *s, const char *prefix)
{
	size_t lo = 0, hi = s->m->n, plen = strlen(prefix);

	/* The first path >= prefix + "/": paths sort bytewise. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *p = s->m->files[mid].path;
		int c = strncmp(p, prefix, plen);
		if (c < 0 || (c == 0 && (unsigned char)p[plen] < '/'))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->m->n && strncmp(s->m->files[lo].path, prefix, plen) == 0 &&
	       s->m->files[lo].path[plen] == '/';
}

/* Removes what rel (a folder inside DIR, "" for DIR) holds that the
 * manifest does not list; returns 1 in *empty when the folder ends empty. */
static int
sync_delete_walk(struct sync *s, const char *rel, int depth, int *empty, struct hc_err *err)
{
	char full[PATH_MAX];
	DIR *d = NULL;
	struct dirent *de;
	int rc = 0, left = 0;

	*empty = 0;
	if (depth > MF_MANIFEST_PATH_MAX / 2)
		return 0;
	if (rel[0] == '\0')
		hc_strlcpy(full, s->dir, sizeof(full));
	else if (sync_join(full, sizeof(full), s->dir, rel) != 0)
		return hc_err_set(err, HC_EIO, "%s/%s: path too long", s->dir, rel);
	d = opendir(full);
	if (d == NULL)
		return hc_err_set(err, HC_EIO, "open %s: %s", full, strerror(errno));
	for (;;) {
		char child_rel[PATH_MAX], child[PATH_MAX];
		struct stat st;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				rc = hc_err_set(err, HC_EIO, "read %s: %s", full, strerror(errno));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (rel[0] == '\0' && strncmp(de->d_name, ".hydra-", 7) == 0) {
			left++;
			continue;
		}
		if ((rel[0] == '\0' ? hc_strlcpy(child_rel, de->d_name, sizeof(child_rel)) :
		     hc_snprintf(child_rel, sizeof(child_rel), "%s/%s", rel, de->d_name)) != 0 ||
		    sync_join(child, sizeof(child), s->dir, child_rel) != 0) {
			left++;
			continue;
		}
		if (lstat(child, &st) != 0) {
			left++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub_empty = 0;
			rc = sync_delete_walk(s, child_rel, depth + 1, &sub_empty, err);
			if (rc != 0)
				break;
			if (sub_empty && !sync_is_folder_of_listed(s, child_rel) && rmdir(child) == 0)
				continue;
			left++;
			continue;
		}
		if (bsearch(child_rel, s->m->files, s->m->n, sizeof(*s->m->files),
		            sync_cmp_path_key) != NULL) {
			left++;
			continue;
		}
		if (unlink(child) != 0) {
			rc = hc_err_set(err, HC_EIO, "remove %s: %s", child, strerror(errno));
			break;
		}
		hc_log(HC_LOG_INFO, MOD, "deleted %s (not in the manifest)", child);
		s->res->deleted++;
	}
	closedir(d);
	*empty = rc == 0 && left == 0;
	return rc;
}

/* ------------------------------------------------------------ the whole sync */

int
mf_sync(const struct mf_config *cfg, const struct mf_sync_options *opt,
        struct mf_sync_result *res, struct hc_err *err)
{
	struct sync s;
	struct mf_config fetch_cfg = *cfg;
	int64_t start = hc_now_ms();
	int lock_fd = -1, empty = 0;
	size_t len;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&s, 0, sizeof(s));
	s.cfg = &fetch_cfg;
	s.opt = opt;
	s.res = res;
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	atomic_init(&s.rx, 0);
	fetch_cfg.rx_bytes = &s.rx;
	hc_strlcpy(res->dir, opt->dir, sizeof(res->dir));
	if (opt->jobs < 1 || opt->jobs > MF_SYNC_JOBS_MAX) {
		rc = hc_err_set(err, HC_EUSAGE, "--jobs: %d is not in 1..%d", opt->jobs,
		                MF_SYNC_JOBS_MAX);
		goto done;
	}
	len = strlen(opt->dir);
	while (len > 1 && opt->dir[len - 1] == '/')
		len--;
	if (len == 0 || hc_snprintf(s.dir, sizeof(s.dir), "%.*s", (int)len, opt->dir) != 0 ||
	    sync_join(s.staging, sizeof(s.staging), s.dir, MF_SYNC_STAGING) != 0 ||
	    sync_join(s.index_path, sizeof(s.index_path), s.dir, MF_SYNC_INDEX) != 0) {
		rc = hc_err_set(err, HC_EUSAGE, "--dir: empty or too long");
		goto done;
	}

	/* Nothing is written anywhere before the manifest is known to be good. */
	rc = sync_load_manifest(&s, err);
	if (rc != 0)
		goto done;
	hc_strlcpy(res->tool_id, s.m->tool_id, sizeof(res->tool_id));
	hc_strlcpy(res->tool_version, s.m->tool_version, sizeof(res->tool_version));
	hc_strlcpy(res->manifest_hash, s.m->manifest_hash, sizeof(res->manifest_hash));
	res->files = s.m->n;
	hc_log(HC_LOG_INFO, MOD, "sync %s: %s %s, %zu files, manifest_hash %s", s.dir,
	       s.m->tool_id, s.m->tool_version, s.m->n, s.m->manifest_hash);

	rc = hc_mkdir_p(s.dir, 0755, err);
	if (rc != 0) {
		rc = HC_ECANTCREAT;
		goto done;
	}
	/* One sync per folder at a time; the lock goes with the process. */
	lock_fd = open(s.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0) {
		rc = hc_err_set(err, HC_ECANTCREAT, "open %s: %s", s.dir, strerror(errno));
		goto done;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = hc_err_set(err, HC_EIO, "%s: another sync holds the folder", s.dir);
		goto done;
	}
	{
		struct stat st;
		/* Our reserved name: anything but a real folder there is replaced, so
		 * that no download is written through a symlink. */
		if (lstat(s.staging, &st) == 0 && !S_ISDIR(st.st_mode)) {
			rc = sync_rmtree(s.staging, err);
			if (rc != 0)
				goto done;
		}
	}
	sync_index_load(&s);
	rc = sync_plan(&s, err);
	if (rc != 0)
		goto done;
	hc_log(HC_LOG_INFO, MOD, "sync %s: %zu files unchanged (%zu from the index, %zu hashed), "
	       "%zu reused from staging, %zu to download", s.dir, res->unchanged, res->from_index,
	       res->hashed, res->reused_staged, s.n_fetch);

	rc = sync_fetch_all(&s, err);
	if (rc == 0)
		rc = sync_swap(&s, err);
	if (rc == 0 && opt->delete_extra)
		rc = sync_delete_walk(&s, "", 0, &empty, err);
	/* What was learnt (hashes, swapped files) is kept even after a failure. */
	if (res->hashed > 0 || res->from_index != s.n_index || s.n_fetch > 0 ||
	    res->reused_staged > 0) {
		struct hc_err ierr = { 0, "" };
		int irc = sync_index_save(&s, &ierr);
		if (irc != 0 && rc == 0)
			rc = hc_err_set(err, irc, "%s", ierr.msg);
		else if (irc != 0)
			hc_log(HC_LOG_WARN, MOD, "index: %s", ierr.msg);
	}
	if (rc != 0)
		goto done;
	rc = sync_rmtree(s.staging, err);
	if (rc != 0)
		goto done;
	res->downloaded = res->n_transfers;
	res->elapsed_ms = hc_now_ms() - start;
	hc_log(HC_LOG_INFO, MOD, "sync complete: %s %zu files, %zu downloaded, %" PRIu64
	       " bytes in %" PRId64 " ms", s.dir, res->files, res->downloaded, res->bytes,
	       res->elapsed_ms);
done:
	res->downloaded = res->n_transfers;
	res->elapsed_ms = hc_now_ms() - start;
	if (lock_fd >= 0)
		close(lock_fd);
	free(s.items);
	sync_index_free(&s);
	mf_manifest_free(s.m);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.mu);
	return rc;
}

void
mf_sync_result_free(struct mf_sync_result *res)
{
	size_t i;

	if (res == NULL)
		return;
	for (i = 0; i < res->n_transfers; i++)
		free(res->transfers[i].path);
	free(res->transfers);
	res->transfers = NULL;
	res->n_transfers = 0;
}

void
mf_sync_result_print_json(const struct mf_sync_result *res, int status, FILE *out)
{
	struct json_object *o = json_object_new_object();
	struct json_object *transfers = json_object_new_array();
	size_t i;

	if (o == NULL || transfers == NULL) {
		json_object_put(o);
		json_object_put(transfers);
		fputs("{\"status\": \"nomem\"}\n", out);
		return;
	}
	json_object_object_add(o, "status", json_object_new_string(hc_status_name(status)));
	json_object_object_add(o, "dir", json_object_new_string(res->dir));
	json_object_object_add(o, "tool_id", json_object_new_string(res->tool_id));
	json_object_object_add(o, "tool_version", json_object_new_string(res->tool_version));
	json_object_object_add(o, "manifest_hash", json_object_new_string(res->manifest_hash));
	json_object_object_add(o, "files", json_object_new_int64((int64_t)res->files));
	json_object_object_add(o, "unchanged", json_object_new_int64((int64_t)res->unchanged));
	json_object_object_add(o, "from_index", json_object_new_int64((int64_t)res->from_index));
	json_object_object_add(o, "hashed", json_object_new_int64((int64_t)res->hashed));
	json_object_object_add(o, "downloaded", json_object_new_int64((int64_t)res->downloaded));
	json_object_object_add(o, "reused_staged",
	                       json_object_new_int64((int64_t)res->reused_staged));
	json_object_object_add(o, "deleted", json_object_new_int64((int64_t)res->deleted));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res->bytes));
	json_object_object_add(o, "total_bytes", json_object_new_int64((int64_t)res->total_bytes));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64(res->elapsed_ms));
	json_object_object_add(o, "failed_path", json_object_new_string(res->failed_path));
	for (i = 0; i < res->n_transfers; i++) {
		const struct mf_sync_transfer *t = &res->transfers[i];
		struct json_object *j = json_object_new_object();
		if (j == NULL)
			break;
		json_object_object_add(j, "path", json_object_new_string(t->path != NULL ? t->path : ""));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)t->bytes));
		json_object_object_add(j, "host", json_object_new_string(t->host));
		json_object_object_add(j, "fallback", json_object_new_boolean(t->fallback));
		json_object_object_add(j, "ms", json_object_new_int64(t->ms));
		json_object_array_add(transfers, j);
	}
	json_object_object_add(o, "transfers", transfers);
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}
