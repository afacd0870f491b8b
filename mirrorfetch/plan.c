/*
 * Sync planning: for each manifest entry, is DIR already right (the index,
 * else a hash), does a verified copy wait in staging, or must it be
 * fetched. Nothing is written here. Every file is looked at through
 * mf_open_beneath, so a link in DIR or staging is never followed: it is
 * simply not the file, and the file is fetched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

struct plan_pool {
	struct mf_sync *s;
	enum mf_sync_check check;
	size_t next;
};

/* 1 when rel below root is a regular file of size bytes; its stat in *st. */
static int
plan_regular_of_size(int root, const char *rel, uint64_t size, struct stat *st)
{
	int fd, ok;

	if (root < 0)
		return 0;
	fd = mf_open_beneath(root, rel, O_PATH, 0);
	if (fd < 0)
		return 0;
	ok = fstat(fd, st) == 0 && S_ISREG(st->st_mode) && (uint64_t)st->st_size == size;
	close(fd);
	return ok;
}

/* 1 when rel below root hashes to sha256. A file that cannot be read is
 * logged and is not a match. */
static int
plan_hash_matches(int root, const char *what, const char *rel, const char *sha256)
{
	struct hc_sha256 *h = hc_sha256_new();
	char hex[HC_SHA256_HEX_LEN + 1];
	struct hc_err err = { 0, "" };
	int fd = -1, match = 0;

	if (h == NULL)
		return 0;
	fd = mf_open_beneath(root, rel, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		hc_log(HC_LOG_WARN, MF_MOD, "open %s/%s: %s", what, rel, strerror(errno));
	else if (hc_sha256_fd(h, fd, -1, &err) != 0 || hc_sha256_hex(h, hex) != 0)
		hc_log(HC_LOG_WARN, MF_MOD, "%s/%s: %s", what, rel, err.msg);
	else
		match = strcmp(hex, sha256) == 0;
	if (fd >= 0)
		close(fd);
	hc_sha256_free(h);
	return match;
}

/* Hashes the copies planning asked for (DIR or staging), several at once. */
static void *
plan_hash_worker(void *arg)
{
	struct plan_pool *pool = arg;
	struct mf_sync *s = pool->s;
	int dir = pool->check == MF_CHECK_DIR;

	for (;;) {
		struct mf_sync_item *it = NULL;

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
		it->matched = plan_hash_matches(dir ? s->dir_fd : s->staging_fd,
		                                dir ? s->dir : MF_SYNC_STAGING, it->f->path,
		                                it->f->sha256);
	}
	return NULL;
}

/* Runs the hashes of one kind on up to opt->jobs threads. */
static void
plan_hash_all(struct mf_sync *s, enum mf_sync_check check)
{
	struct plan_pool pool = { s, check, 0 };
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
		if (pthread_create(&threads[i], NULL, plan_hash_worker, &pool) != 0)
			break;
		started++;
	}
	/* This thread hashes too, so a failed thread start only costs speed. */
	plan_hash_worker(&pool);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
}

/* First pass: KEEP from the index, CHECK_DIR when DIR has the right size. */
static void
plan_from_index(struct mf_sync *s)
{
	size_t i;

	for (i = 0; i < s->m->n; i++) {
		struct mf_sync_item *it = &s->items[i];
		const struct mf_manifest_file *f = &s->m->files[i];
		const struct mf_index_entry *e;
		struct stat st;

		it->f = f;
		it->action = MF_SYNC_FETCH;
		s->res->total_bytes += f->size;
		if (!plan_regular_of_size(s->dir_fd, f->path, f->size, &st))
			continue;
		e = mf_index_find(&s->index, f->path);
		if (e == NULL || !mf_index_same_stat(e, &st)) {
			it->check = MF_CHECK_DIR;
			it->st = st;
		} else if (strcmp(e->sha256, f->sha256) == 0) {
			it->action = MF_SYNC_KEEP;
			it->indexed = 1;
			it->st = st;
			s->res->from_index++;
			s->res->unchanged++;
		}
	}
}

/* Second pass, after DIR's hashes: KEEP the matches, and ask for the hash
 * of a staged copy of the right size for the rest. */
static void
plan_after_dir_hashes(struct mf_sync *s)
{
	size_t i;

	for (i = 0; i < s->m->n; i++) {
		struct mf_sync_item *it = &s->items[i];
		struct stat st;

		if (it->check == MF_CHECK_DIR && it->matched) {
			it->action = MF_SYNC_KEEP;
			it->indexed = 1;
			s->res->unchanged++;
			continue;
		}
		it->check = MF_CHECK_NONE;
		it->matched = 0;
		if (it->action == MF_SYNC_KEEP)
			continue;
		/* A verified copy an interrupted run left in staging. */
		if (plan_regular_of_size(s->staging_fd, it->f->path, it->f->size, &st))
			it->check = MF_CHECK_STAGED;
	}
}

int
mf_plan(struct mf_sync *s, struct hc_err *err)
{
	size_t i;

	s->items = calloc(s->m->n > 0 ? s->m->n : 1, sizeof(*s->items));
	if (s->items == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	plan_from_index(s);
	plan_hash_all(s, MF_CHECK_DIR);
	plan_after_dir_hashes(s);
	plan_hash_all(s, MF_CHECK_STAGED);
	for (i = 0; i < s->m->n; i++) {
		struct mf_sync_item *it = &s->items[i];

		if (it->action == MF_SYNC_KEEP)
			continue;
		if (it->check == MF_CHECK_STAGED && it->matched) {
			it->action = MF_SYNC_STAGED;
			s->res->reused_staged++;
		} else {
			s->n_fetch++;
		}
	}
	return 0;
}
