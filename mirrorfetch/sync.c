/*
 * hydra-agent sync: bring a folder up to a per-file manifest. The whole
 * manifest is validated before anything is written; the index says which
 * files are unchanged without hashing them (index.c, plan.c); what is
 * missing or changed is fetched into DIR/.hydra-staging (transfer.c); only
 * when every file is verified are they renamed into place (swap.c).
 * docs/sync.md is the reference; this file runs the phases in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

/* Makes and opens DIR (trailing slashes dropped into dir, for messages) and
 * takes its lock: one sync per folder at a time, the lock going with the
 * process. */
static int
sync_open_dir(struct mf_sync *s, char *dir, size_t size, struct hc_err *err)
{
	const char *given = s->opt->dir;
	size_t len = strlen(given);

	while (len > 1 && given[len - 1] == '/')
		len--;
	if (len == 0 || hc_snprintf(dir, size, "%.*s", (int)len, given) != 0)
		return hc_err_set(err, HC_EUSAGE, "--dir: empty or too long");
	s->dir = dir;
	if (hc_mkdir_p(dir, 0755, err) != 0)
		return HC_ECANTCREAT;
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "open %s: %s", dir, strerror(errno));
	if (flock(s->dir_fd, LOCK_EX | LOCK_NB) != 0)
		return hc_err_set(err, HC_EIO, "%s: another sync holds the folder", dir);
	if (hc_atomic_sweep_at(s->dir_fd, MF_SYNC_INDEX) > 0)
		hc_log(HC_LOG_INFO, MF_MOD, "%s: removed the index temp files of an interrupted sync",
		       dir);
	return 0;
}

/* Opens staging when it exists; our reserved name, so anything but a real
 * folder there is removed, and no download is written through a link. */
static int
sync_open_staging(struct mf_sync *s, int create, struct hc_err *err)
{
	int rc;

	if (s->staging_fd >= 0)
		return 0;
	rc = mf_dir_beneath(s->dir_fd, MF_SYNC_STAGING, create, 1, &s->staging_fd, s->dir, err);
	return rc == HC_ENOTFOUND && !create ? 0 : rc;
}

/* Writes the index for every item whose file in DIR is known to be right,
 * when this run learnt something (hashes, swapped files). */
static int
sync_save_index(struct mf_sync *s, struct hc_err *err)
{
	struct mf_index idx = { NULL, 0, 0 };
	struct mf_sync_result *res = s->res;
	size_t i;
	int rc = 0;

	if (res->hashed == 0 && res->from_index == s->index.n && s->n_fetch == 0 &&
	    res->reused_staged == 0)
		return 0;
	for (i = 0; i < s->m->n && rc == 0; i++)
		if (s->items[i].indexed)
			rc = mf_index_add(&idx, s->items[i].f->path, s->items[i].f->sha256,
			                  &s->items[i].st, err);
	if (rc == 0)
		rc = mf_index_save(&idx, s->dir_fd, MF_SYNC_INDEX, err);
	mf_index_free(&idx);
	return rc;
}

/* Staged files are committed without an fsync each (defer_sync); one
 * syncfs of their filesystem makes every one durable, data and names,
 * before the swap renames them into DIR. */
static int
sync_durable_staging(struct mf_sync *s, struct hc_err *err)
{
	if (s->staging_fd < 0)
		return 0;
	if (syncfs(s->staging_fd) != 0)
		return hc_err_set(err, HC_EIO, "syncfs %s/%s: %s", s->dir, MF_SYNC_STAGING,
		                  strerror(errno));
	return 0;
}

/* Plan, fetch, swap, --delete; the index is saved even after a failure. */
static int
sync_phases(struct mf_sync *s, struct hc_err *err)
{
	struct mf_sync_result *res = s->res;
	struct hc_err ierr = { 0, "" };
	int rc, irc;

	rc = sync_open_staging(s, 0, err);
	if (rc != 0)
		return rc;
	mf_index_load(&s->index, s->dir_fd, MF_SYNC_INDEX);
	rc = mf_plan(s, err);
	if (rc != 0)
		return rc;
	hc_log(HC_LOG_INFO, MF_MOD, "sync %s: %zu files unchanged (%zu from the index, %zu "
	       "hashed), %zu reused from staging, %zu to download", s->dir, res->unchanged,
	       res->from_index, res->hashed, res->reused_staged, s->n_fetch);
	if (s->n_fetch > 0)
		rc = sync_open_staging(s, 1, err);
	if (rc == 0)
		rc = mf_transfer_all(s, err);
	if (rc == 0)
		rc = sync_durable_staging(s, err);
	if (rc == 0)
		rc = mf_swap(s, err);
	if (rc == 0 && s->opt->delete_extra)
		rc = mf_swap_delete_extra(s, err);
	/* What was learnt (hashes, swapped files) is kept even after a failure. */
	irc = sync_save_index(s, &ierr);
	if (irc != 0 && rc == 0)
		rc = hc_err_set(err, irc, "%s", ierr.msg);
	else if (irc != 0)
		hc_log(HC_LOG_WARN, MF_MOD, "index: %s", ierr.msg);
	if (rc != 0)
		return rc;
	if (s->staging_fd >= 0) {
		close(s->staging_fd);
		s->staging_fd = -1;
	}
	return mf_remove_tree_at(s->dir_fd, MF_SYNC_STAGING, MF_SYNC_STAGING, err);
}

int
mf_sync(const struct mf_config *cfg, const struct mf_sync_options *opt,
        struct mf_sync_result *res, struct hc_err *err)
{
	struct mf_sync s;
	struct mf_config fetch_cfg = *cfg;
	struct mf_sources sources;
	char dir[PATH_MAX];
	int64_t start = hc_now_ms();
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&s, 0, sizeof(s));
	s.cfg = &fetch_cfg;
	s.opt = opt;
	s.res = res;
	s.dir = opt->dir;
	s.dir_fd = -1;
	s.staging_fd = -1;
	pthread_mutex_init(&s.mu, NULL);
	pthread_mutex_init(&s.district_mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	atomic_init(&s.rx, 0);
	fetch_cfg.rx_bytes = &s.rx;
	/* Each worker keeps its connections: at most --jobs per source. */
	fetch_cfg.http.reuse_connections = 1;
	mf_sources_init(&sources);
	fetch_cfg.sources = &sources;
	hc_strlcpy(res->dir, opt->dir, sizeof(res->dir));
	if (opt->jobs < 1 || opt->jobs > MF_SYNC_JOBS_MAX) {
		rc = hc_err_set(err, HC_EUSAGE, "--jobs: %d is not in 1..%d", opt->jobs,
		                MF_SYNC_JOBS_MAX);
		goto done;
	}
	if (opt->dir[0] == '\0') {
		rc = hc_err_set(err, HC_EUSAGE, "--dir: empty or too long");
		goto done;
	}
	/* Nothing is written anywhere before the manifest is known to be good. */
	rc = mf_transfer_manifest(&s, err);
	if (rc != 0)
		goto done;
	hc_strlcpy(res->tool_id, s.m->tool_id, sizeof(res->tool_id));
	hc_strlcpy(res->tool_version, s.m->tool_version, sizeof(res->tool_version));
	hc_strlcpy(res->manifest_hash, s.m->manifest_hash, sizeof(res->manifest_hash));
	res->files = s.m->n;
	rc = sync_open_dir(&s, dir, sizeof(dir), err);
	if (rc != 0)
		goto done;
	hc_log(HC_LOG_INFO, MF_MOD, "sync %s: %s %s, %zu files, manifest_hash %s", s.dir,
	       s.m->tool_id, s.m->tool_version, s.m->n, s.m->manifest_hash);
	rc = sync_phases(&s, err);
	if (rc != 0)
		goto done;
	res->downloaded = res->n_transfers;
	res->elapsed_ms = hc_now_ms() - start;
	hc_log(HC_LOG_INFO, MF_MOD, "sync complete: %s %zu files, %zu downloaded, %" PRIu64
	       " bytes in %" PRId64 " ms", s.dir, res->files, res->downloaded, res->bytes,
	       res->elapsed_ms);
done:
	res->downloaded = res->n_transfers;
	res->elapsed_ms = hc_now_ms() - start;
	if (s.staging_fd >= 0)
		close(s.staging_fd);
	if (s.dir_fd >= 0)
		close(s.dir_fd);
	free(s.items);
	mf_index_free(&s.index);
	mf_manifest_free(s.m);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.district_mu);
	pthread_mutex_destroy(&s.mu);
	mf_sources_destroy(&sources);
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
