/*
 * Sync transfers: the manifest download and the fetch workers. Each file is
 * fetched by mf_fetch_at (the install path: district rewrite, HEAD probe,
 * fallback, resume) into staging, its part file in a tree of its own.
 *
 * Why threads and not the libcurl multi interface: each transfer is the
 * install path itself (probe, candidate loop, resume, writer thread); a
 * thread per job reuses it unchanged instead of re-expressing that state
 * machine as callbacks, and per-file transfers are few and large or many
 * and tiny, where a thread per job costs nothing measurable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

/* Progress redraws at most this often. */
#define PROGRESS_PERIOD_MS 250
/* A part file's name: the staged name and this suffix. */
#define PART_SUFFIX ".part"

/* The district, looked up the first time an origin URL needs it; the
 * workers share one answer. */
static int
transfer_district(void *ctx, const char **district, struct hc_err *err)
{
	struct mf_sync *s = ctx;
	int rc = 0;

	pthread_mutex_lock(&s->district_mu);
	if (!s->district_known) {
		rc = mf_district_lookup(s->cfg, s->district, err);
		if (rc == 0)
			s->district_known = 1;
	}
	/* Read under the lock: another worker may be writing both right now. */
	*district = s->district_known ? s->district : "";
	pthread_mutex_unlock(&s->district_mu);
	return rc;
}

/* A manifest body: too_big says the cap, not memory, ended it. */
struct transfer_body {
	struct hc_buf b;
	int too_big;
};

static int
transfer_body_sink(void *ctx, const void *data, size_t len)
{
	struct transfer_body *body = ctx;
	int rc = hc_buf_add(&body->b, data, len);

	if (rc == HC_EDATA)
		body->too_big = 1;
	return rc != 0 ? -1 : 0;
}

/* GET the manifest from the first of cand that has it. */
static int
transfer_fetch_candidates(struct mf_sync *s, const struct mf_candidates *cand, char **text,
                          size_t *len, struct hc_err *err)
{
	struct hc_err why = { 0, "" };
	struct transfer_body body;
	size_t i;
	int rc;

	hc_buf_init(&body.b, MF_MANIFEST_MAX);
	for (i = 0; i < cand->n; i++) {
		struct hc_http_request req = { 0 };
		struct hc_http_response resp;

		if (i + 1 < cand->n && mf_source_skipped(s->cfg->sources, cand->c[i].host,
		                                        cand->c[i].u.port))
			continue;
		hc_buf_reset(&body.b);
		body.too_big = 0;
		req.url = cand->c[i].url;
		req.parsed = &cand->c[i].u;
		req.sink = transfer_body_sink;
		req.ctx = &body;
		req.fail_on_http_error = 1;
		hc_log(HC_LOG_INFO, MF_MOD, "downloading %s", cand->c[i].url);
		rc = hc_http_request(&s->cfg->http, &req, &resp, &why);
		if (body.too_big) {
			hc_buf_free(&body.b);
			return hc_err_set(err, HC_EDATA, "manifest %s: larger than %zu bytes",
			                  cand->c[i].url, MF_MANIFEST_MAX);
		}
		if (rc == 0 && resp.status == 200) {
			if (body.b.p == NULL && hc_buf_add(&body.b, "", 0) != 0) {
				hc_buf_free(&body.b);
				return hc_err_set(err, HC_ENOMEM, "out of memory");
			}
			*len = body.b.len;
			*text = hc_buf_take(&body.b);
			return 0;
		}
		if (rc == 0)
			hc_err_set(&why, HC_EUNAVAIL, "HTTP %ld", resp.status);
		if (i + 1 < cand->n && mf_source_failed(s->cfg->sources, cand->c[i].host,
		                                       cand->c[i].u.port, resp.fail))
			continue;
		if (i + 1 < cand->n && cand->c[i].extra)
			hc_log(HC_LOG_WARN, MF_MOD, "mirror %s unavailable (%s), trying the next "
			       "source", cand->c[i].host, why.msg);
		else if (i + 1 < cand->n)
			hc_log(HC_LOG_WARN, MF_MOD, "district mirror %s unavailable (%s), falling back "
			       "to %s", cand->c[i].host, why.msg, s->cfg->origin_host);
		else
			hc_log(HC_LOG_WARN, MF_MOD, "source %s failed: %s", cand->c[i].host, why.msg);
	}
	hc_buf_free(&body.b);
	return hc_err_set(err, HC_EUNAVAIL, "no source could deliver the manifest %s: %s",
	                  s->opt->manifest, why.msg);
}

/* GET the manifest through the same candidates as files (district first). */
static int
transfer_fetch_manifest(struct mf_sync *s, char **text, size_t *len, struct hc_err *err)
{
	struct mf_candidates cand;
	int rc;

	rc = mf_candidates_for(s->cfg, s->opt->manifest, transfer_district, s, &cand, err);
	if (rc != 0)
		return rc;
	rc = transfer_fetch_candidates(s, &cand, text, len, err);
	mf_candidates_free(&cand);
	return rc;
}

static int
transfer_is_url(const char *s)
{
	return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

int
mf_transfer_manifest(struct mf_sync *s, struct hc_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (transfer_is_url(s->opt->manifest)) {
		rc = transfer_fetch_manifest(s, &text, &len, err);
	} else {
		rc = hc_read_file(s->opt->manifest, MF_MANIFEST_MAX, &text, &len, err);
		/* A file the user named that is not there: EX_NOINPUT (issue 14). */
		if (rc == HC_ENOTFOUND) {
			rc = HC_ENOINPUT;
			if (err != NULL)
				err->status = rc;
		}
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

static void
transfer_record(struct mf_sync *s, struct mf_sync_item *it, const struct mf_result *r)
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

/* Staging is ours: an entry planted where a staged or part file goes that
 * is not a regular file (a link, a folder) is removed, never written
 * through. */
static int
transfer_clear(int dirfd, const char *name, const char *what, struct hc_err *err)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISREG(st.st_mode))
		return 0;
	hc_log(HC_LOG_WARN, MF_MOD, "%s is not a regular file; removing it", what);
	return mf_remove_tree_at(dirfd, name, what, err);
}

/* mf_fetch_at with the mirrors of cand in the order that spreads the run's
 * load (mf_sources_order): the first one carries the file's bytes as
 * outstanding while it runs, and every source that sent bytes has its
 * throughput measured (an attempt is matched to its candidate by URL). */
static int
transfer_fetch_balanced(struct mf_sync *s, struct mf_candidates *cand,
                        const struct mf_fetch_target *t, struct mf_result *r,
                        struct hc_err *err)
{
	struct mf_sources *src = s->cfg->sources;
	const struct mf_candidate *first = &cand->c[0];
	size_t a, i;
	int rc;

	mf_sources_order(src, cand, t->size);
	mf_source_assign(src, first->host, first->u.port, t->size, 1);
	rc = mf_fetch_at(s->cfg, cand, t, MF_PROGRESS_NONE, r, err);
	mf_source_assign(src, first->host, first->u.port, t->size, 0);
	for (a = 0; a < r->n_attempts; a++)
		for (i = 0; i < cand->n; i++)
			if (strcmp(r->attempts[a].url, cand->c[i].url) == 0) {
				mf_source_measured(src, cand->c[i].host, cand->c[i].u.port,
				                   r->attempts[a].bytes, r->attempts[a].ms);
				break;
			}
	return rc;
}

/*
 * Fetches one item: staging/path, its part file in staging/.hydra-parts/
 * path.part (a tree of its own: staged "x.part" must never be the part
 * file of "x"; manifest paths cannot start with .hydra-). The folders on
 * the way are ours: a link or file planted there is replaced, never
 * followed.
 */
static int
transfer_one(struct mf_sync *s, const struct mf_sync_item *it, struct mf_result *r,
             struct hc_err *err)
{
	struct mf_candidates cand;
	struct mf_fetch_target t;
	char parent[MF_MANIFEST_PATH_MAX], parts_rel[MF_MANIFEST_PATH_MAX + 32];
	char part_name[MF_MANIFEST_PATH_MAX + sizeof(PART_SUFFIX)];
	char display[PATH_MAX], part_display[PATH_MAX];
	const char *base;
	int dfd = -1, pfd = -1, rc;

	rc = mf_candidates_for(s->cfg, it->f->url, transfer_district, s, &cand, err);
	if (rc != 0)
		return rc;
	if (mf_split_path(it->f->path, parent, sizeof(parent), &base) != 0 ||
	    hc_snprintf(parts_rel, sizeof(parts_rel), MF_SYNC_PARTS_DIR "%s%s",
	                parent[0] != '\0' ? "/" : "", parent) != 0 ||
	    hc_snprintf(part_name, sizeof(part_name), "%s" PART_SUFFIX, base) != 0 ||
	    hc_snprintf(display, sizeof(display), "%s/" MF_SYNC_STAGING "/%s", s->dir,
	                it->f->path) != 0 ||
	    hc_snprintf(part_display, sizeof(part_display), "%s/" MF_SYNC_STAGING "/"
	                MF_SYNC_PARTS_DIR "/%s" PART_SUFFIX, s->dir, it->f->path) != 0) {
		rc = hc_err_set(err, HC_ECANTCREAT, "%s: path too long", it->f->path);
		goto done;
	}
	rc = mf_dir_beneath(s->staging_fd, parent, 1, 1, &dfd, MF_SYNC_STAGING, err);
	if (rc == 0)
		rc = mf_dir_beneath(s->staging_fd, parts_rel, 1, 1, &pfd, MF_SYNC_STAGING, err);
	if (rc == 0)
		rc = transfer_clear(dfd, base, display, err);
	if (rc == 0)
		rc = transfer_clear(pfd, part_name, part_display, err);
	if (rc != 0)
		goto done;
	memset(&t, 0, sizeof(t));
	t.dirfd = dfd;
	t.name = base;
	t.part_dirfd = pfd;
	t.part_name = part_name;
	t.display = display;
	t.part_display = part_display;
	t.expect_sha256 = it->f->sha256;
	t.has_size = 1;
	t.size = it->f->size;
	t.defer_sync = 1;
	rc = transfer_fetch_balanced(s, &cand, &t, r, err);
done:
	if (dfd >= 0)
		close(dfd);
	if (pfd >= 0)
		close(pfd);
	mf_candidates_free(&cand);
	return rc;
}

/* Called with s->mu held: records the outcome of one item. */
static void
transfer_done(struct mf_sync *s, struct mf_sync_item *it, int rc, const struct mf_result *r,
              const struct hc_err *err)
{
	if (rc == 0) {
		it->done = 1;
		s->done_files++;
		s->done_bytes += it->f->size;
		hc_strlcpy(s->last_host, r->source_host, sizeof(s->last_host));
		transfer_record(s, it, r);
	} else if (!s->stop) {
		s->stop = 1;
		s->fail_status = rc;
		hc_strlcpy(s->res->failed_path, it->f->path, sizeof(s->res->failed_path));
		if (hc_snprintf(s->fail_msg, sizeof(s->fail_msg), "%s: %s", it->f->path,
		                err->msg) != 0)
			hc_strlcpy(s->fail_msg, err->msg, sizeof(s->fail_msg));
	}
	pthread_cond_broadcast(&s->cv);
}

static void *
transfer_worker(void *arg)
{
	struct mf_sync *s = arg;
	struct mf_result *r = malloc(sizeof(*r));

	pthread_mutex_lock(&s->mu);
	if (r == NULL && !s->stop) {
		s->stop = 1;
		s->fail_status = HC_ENOMEM;
		hc_strlcpy(s->fail_msg, "out of memory", sizeof(s->fail_msg));
	}
	for (;;) {
		struct mf_sync_item *it;
		struct hc_err err = { 0, "" };
		int rc;

		while (s->next < s->m->n && s->items[s->next].action != MF_SYNC_FETCH)
			s->next++;
		if (s->stop || s->next >= s->m->n)
			break;
		it = &s->items[s->next++];
		pthread_mutex_unlock(&s->mu);
		rc = transfer_one(s, it, r, &err);
		pthread_mutex_lock(&s->mu);
		transfer_done(s, it, rc, r, &err);
	}
	s->running--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	free(r);
	return NULL;
}

/* Called with s->mu held: the counters are read under the lock. Percent
 * and ETA are of the bytes to fetch; the source is the one that served the
 * last file. */
static void
transfer_draw(struct mf_sync *s, struct mf_bar *bar, int64_t start, int final)
{
	char got[32], total[32], rate[32], left[160];
	uint64_t rx = atomic_load(&s->rx), want = s->fetch_bytes;
	uint64_t shown = rx < want ? rx : want;
	int64_t ms = hc_now_ms() - start;
	double bps = ms > 0 ? (double)rx * 1000.0 / (double)ms : 0;
	long eta = bps > 0 && want > shown ? (long)((double)(want - shown) / bps) : 0;

	mf_format_bytes((double)shown, got, sizeof(got));
	mf_format_bytes((double)want, total, sizeof(total));
	mf_format_bytes(bps, rate, sizeof(rate));
	if (hc_snprintf(left, sizeof(left), "%5.1f%%  %s / %s  %s/s  ETA %lds  %zu/%zu files",
	                want > 0 ? 100.0 * (double)shown / (double)want : 100.0, got, total,
	                rate, eta, s->done_files, s->n_fetch) == 0)
		mf_bar_draw(bar, left, s->last_host, final);
}

static int
transfer_cmp(const void *a, const void *b)
{
	const struct mf_sync_transfer *x = a, *y = b;

	return strcmp(x->path != NULL ? x->path : "", y->path != NULL ? y->path : "");
}

/* Starts up to opt->jobs workers and waits for them, redrawing progress. */
static int
transfer_run_workers(struct mf_sync *s, struct hc_err *err)
{
	pthread_t threads[MF_SYNC_JOBS_MAX];
	struct mf_bar bar;
	size_t started = 0, want, i;
	int64_t start = hc_now_ms();

	want = (size_t)s->opt->jobs;
	if (want > s->n_fetch)
		want = s->n_fetch;
	for (i = 0; i < s->m->n; i++)
		if (s->items[i].action == MF_SYNC_FETCH)
			s->fetch_bytes += s->items[i].f->size;
	memset(&bar, 0, sizeof(bar));
	if (s->opt->progress)
		mf_bar_begin(&bar);
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < want; i++) {
		if (pthread_create(&threads[i], NULL, transfer_worker, s) != 0)
			break;
		started++;
		s->running++;
	}
	if (started == 0) {
		pthread_mutex_unlock(&s->mu);
		mf_bar_end(&bar);
		return hc_err_set(err, HC_ESOFTWARE, "cannot start a transfer thread");
	}
	while (s->running > 0) {
		transfer_draw(s, &bar, start, 0);
		hc_cond_wait_ms(&s->cv, &s->mu, PROGRESS_PERIOD_MS);
	}
	transfer_draw(s, &bar, start, 1);
	pthread_mutex_unlock(&s->mu);
	mf_bar_end(&bar);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	return 0;
}

int
mf_transfer_all(struct mf_sync *s, struct hc_err *err)
{
	int rc;

	if (s->n_fetch == 0)
		return 0;
	s->res->transfers = calloc(s->n_fetch, sizeof(*s->res->transfers));
	if (s->res->transfers == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = transfer_run_workers(s, err);
	if (rc != 0)
		return rc;
	if (s->res->n_transfers > 0)
		qsort(s->res->transfers, s->res->n_transfers, sizeof(*s->res->transfers),
		      transfer_cmp);
	if (s->stop)
		return hc_err_set(err, s->fail_status, "%s", s->fail_msg);
	return 0;
}
