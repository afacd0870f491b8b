/*
 * Pre-warm on publish: one follower thread long-polls the origin's journal
 * (GET /api/v1/peer/changes) and queues what was published under the
 * configured prefixes; a few worker threads fill the queue through the
 * same fills as clients. The position ({root}/meta/prewarm: the journal id
 * and the last entry applied) is written only once a batch has been filled,
 * so a peer stopped mid-batch does it again after a restart (files already
 * here cost a lookup). A journal id that differs from the saved one, or a
 * position the origin no longer holds, is caught up by listing the origin.
 * A peer that never followed starts at the origin's end: pre-warm is about
 * what is published from now on (POST /api/v1/peer/prewarm for older ones).
 * A pre-warm fill makes room only by evicting files not read within
 * prewarm.protect_s (mir_store_reserve_idle): a file that does not fit
 * otherwise is skipped (counted as skipped for space).
 */
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mirror/journal.h"
#include "mirror/prewarm.h"

/* Paths waiting for a worker: a journal page, a list page or a POST fits. */
#define PW_QUEUE_MAX 4096
/* An answer of changes or list: a page of paths of at most HC_PATH_MAX. */
#define PW_BODY_MAX ((size_t)8 << 20)
/* After a failed request to the origin, the follower waits this long. */
#define PW_RETRY_MS 2000
/* Beyond the long-poll, how long the origin may take to answer. */
#define PW_SLACK_MS 15000
#define PW_CONNECT_TIMEOUT_MS 10000
#define PW_DNS_TIMEOUT_MS 5000
/* Pages of one list resync: MIR_LIST_SCAN_MAX files in pages. */
#define PW_LIST_PAGES_MAX (MIR_LIST_SCAN_MAX / MIR_LIST_PAGE + 1)
#define PW_STATE_MAGIC "hydra-mirror-prewarm 1"
/* How often a waiting thread looks at the stop flag. */
#define PW_POLL_MS 1000

struct pw_item {
	char *path;
	uint64_t size;
	int size_known;
	char sha256[HC_SHA256_HEX_LEN + 1]; /* the journal's, "" when not known */
};

struct mir_prewarm {
	struct mir_store *store;
	struct mir_fills *fills;
	char *origin_base;
	char shown[MIR_URL_SHOWN_MAX];
	struct hc_http_config http;
	char state_path[PATH_MAX];
	char *root;                     /* the store's, for a resync's sweep */
	struct hc_strlist prefixes;
	uint64_t rate;
	int64_t protect_ms;             /* prewarm.protect_s */
	long long wait_s;
	pthread_mutex_t mu;             /* everything below */
	pthread_cond_t cv;              /* queue, busy or stop changed */
	struct pw_item queue[PW_QUEUE_MAX];
	size_t head, len;
	int busy;
	int64_t budget_ms;              /* when the next pre-warm fill may start */
	int stop;
	volatile int cancel;            /* ends the follower's request */
	char id[MIR_JOURNAL_ID_LEN + 1];
	pthread_t follower;
	int follower_started;
	pthread_t *workers;
	int nworkers;
	atomic_uint_least64_t position, origin_seq, done, failed, skipped_space, deleted;
	atomic_uint_least64_t resyncs;
	atomic_int following;
};

/* ------------------------------------------------------------ state */

/* Reads the line pw_save_state writes, newline included, from text (len
 * bytes) into id (MIR_JOURNAL_ID_LEN + 1 bytes) and seq. 0 or HC_EDATA. */
static int
pw_parse_state(const char *text, size_t len, char *id, uint64_t *seq)
{
	const char *p = text;

	if (strncmp(text, PW_STATE_MAGIC, strlen(PW_STATE_MAGIC)) != 0)
		return HC_EDATA;
	p += strlen(PW_STATE_MAGIC);
	if (hc_scan_sep(&p, ' ') != 0 || hc_scan_word(&p, id, MIR_JOURNAL_ID_LEN + 1) != 0 ||
	    !hc_is_lower_hex(id, MIR_JOURNAL_ID_LEN) || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_u64(&p, seq) != 0 || hc_scan_sep(&p, '\n') != 0 || p != text + len)
		return HC_EDATA;
	return 0;
}

static void
pw_load_state(struct mir_prewarm *pw)
{
	struct hc_err err = { 0, "" };
	char *text = NULL, id[MIR_JOURNAL_ID_LEN + 1];
	uint64_t seq;
	size_t len;

	if (hc_read_file(pw->state_path, 256, &text, &len, &err) != 0)
		return;
	if (pw_parse_state(text, len, id, &seq) == 0) {
		memcpy(pw->id, id, sizeof(pw->id));
		atomic_store(&pw->position, seq);
	} else {
		hc_log(HC_LOG_WARN, "mirror", "%s: unreadable; following from the origin's end",
		       pw->state_path);
	}
	free(text);
}

static void
pw_save_state(struct mir_prewarm *pw)
{
	struct hc_err err = { 0, "" };
	char line[128];

	if (hc_snprintf(line, sizeof(line), PW_STATE_MAGIC " %s %" PRIu64 "\n", pw->id,
	                (uint64_t)atomic_load(&pw->position)) != 0 ||
	    hc_atomic_write(pw->state_path, line, strlen(line), 0644, &err) != 0)
		hc_log(HC_LOG_WARN, "mirror", "prewarm: cannot save the position: %s", err.msg);
}

/* ------------------------------------------------------------ queue */

static int
pw_wanted(const struct mir_prewarm *pw, const char *path)
{
	size_t i;

	if (pw->prefixes.n == 0)
		return 1;
	for (i = 0; i < pw->prefixes.n; i++)
		if (strncmp(path, pw->prefixes.items[i], strlen(pw->prefixes.items[i])) == 0)
			return 1;
	return 0;
}

/* Queues one path, waiting for room. size and sha256 ("" or NULL: not
 * known) are what the origin says the file is, to tell a copy here that is
 * out of date. 0, HC_ENOMEM, or HC_EUNAVAIL when stopping. Caller holds
 * pw->mu. */
static int
pw_push_locked(struct mir_prewarm *pw, const char *path, uint64_t size, int size_known,
               const char *sha256)
{
	struct pw_item *it;
	char *copy;

	while (!pw->stop && pw->len == PW_QUEUE_MAX)
		hc_cond_wait_ms(&pw->cv, &pw->mu, PW_POLL_MS);
	if (pw->stop)
		return HC_EUNAVAIL;
	copy = hc_strdup(path);
	if (copy == NULL)
		return HC_ENOMEM;
	it = &pw->queue[(pw->head + pw->len) % PW_QUEUE_MAX];
	it->path = copy;
	it->size = size;
	it->size_known = size_known;
	it->sha256[0] = '\0';
	if (sha256 != NULL && hc_sha256_hex_valid(sha256))
		hc_hex_lower(it->sha256, sha256, HC_SHA256_HEX_LEN);
	pw->len++;
	pthread_cond_broadcast(&pw->cv);
	return 0;
}

static int
pw_push(struct mir_prewarm *pw, const char *path, uint64_t size, int size_known,
        const char *sha256)
{
	int rc;

	pthread_mutex_lock(&pw->mu);
	rc = pw_push_locked(pw, path, size, size_known, sha256);
	pthread_mutex_unlock(&pw->mu);
	return rc;
}

/* Waits until the queue is empty and no worker is busy. 0, or HC_EUNAVAIL
 * when stopping first. */
static int
pw_drain(struct mir_prewarm *pw)
{
	int stop;

	pthread_mutex_lock(&pw->mu);
	while (!pw->stop && (pw->len > 0 || pw->busy > 0))
		hc_cond_wait_ms(&pw->cv, &pw->mu, PW_POLL_MS);
	stop = pw->stop;
	pthread_mutex_unlock(&pw->mu);
	return stop ? HC_EUNAVAIL : 0;
}

int
mir_prewarm_request(struct mir_prewarm *pw, char *const *paths, size_t n,
                    struct hc_err *err)
{
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&pw->mu);
	if (pw->stop || PW_QUEUE_MAX - pw->len < n) {
		pthread_mutex_unlock(&pw->mu);
		return hc_err_set(err, HC_EUNAVAIL, "the pre-warm queue is full");
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = pw_push_locked(pw, paths[i], 0, 0, NULL);
	pthread_mutex_unlock(&pw->mu);
	if (rc != 0)
		return hc_err_set(err, rc, "cannot queue %s", paths[i - 1]);
	return 0;
}

/* ------------------------------------------------------------ workers */

/* Waits for the pre-warm's egress budget. 0, or HC_EUNAVAIL when stopping. */
static int
pw_budget_wait(struct mir_prewarm *pw)
{
	int64_t left;
	int stop;

	pthread_mutex_lock(&pw->mu);
	for (;;) {
		left = pw->budget_ms - hc_now_ms();
		if (pw->stop || left <= 0)
			break;
		hc_cond_wait_ms(&pw->cv, &pw->mu, (int)(left < PW_POLL_MS ? left : PW_POLL_MS));
	}
	stop = pw->stop;
	pthread_mutex_unlock(&pw->mu);
	return stop ? HC_EUNAVAIL : 0;
}

/* Spends size bytes of the budget: the next fill starts once the origin
 * bytes so far fit the rate on average. */
static void
pw_budget_charge(struct mir_prewarm *pw, uint64_t size)
{
	int64_t now = hc_now_ms();

	if (pw->rate == 0)
		return;
	pthread_mutex_lock(&pw->mu);
	if (pw->budget_ms < now)
		pw->budget_ms = now;
	pw->budget_ms += (int64_t)(size * 1000 / pw->rate);
	pthread_mutex_unlock(&pw->mu);
}

/* 1 when size bytes fit on the disk as it stands: eviction frees room
 * under max_bytes, not on a disk other data fills. */
static int
pw_fits_disk(struct mir_prewarm *pw, uint64_t size)
{
	return size <= mir_store_free_bytes(pw->store);
}

/* 1 when the copy f here is the file the origin announced in it: the same
 * size and, when both digests are known, the same digest. A republished
 * path (the same name, new bytes) is not current. */
static int
pw_current(const struct pw_item *it, const struct mir_file *f)
{
	if (it->size_known && f->size != it->size)
		return 0;
	if (it->sha256[0] != '\0' && f->sha256[0] != '\0' && strcmp(it->sha256, f->sha256) != 0)
		return 0;
	return 1;
}

static void
pw_fill_one(struct mir_prewarm *pw, const struct pw_item *it)
{
	struct hc_err err = { 0, "" };
	struct mir_file f;
	int64_t t0;
	int rc;

	if (mir_store_get(pw->store, it->path, 0, &f, &err) == 0) {
		int current = pw_current(it, &f);

		close(f.fd);
		mir_store_release(pw->store, f.entry);
		if (current)
			return;
		hc_log(HC_LOG_INFO, "mirror", "prewarm: %s changed on the origin; filling it again",
		       it->path);
		if (mir_store_delete(pw->store, it->path, &err) != 0) {
			atomic_fetch_add(&pw->failed, 1);
			hc_log(HC_LOG_WARN, "mirror", "prewarm %s failed: %s", it->path, err.msg);
			return;
		}
	}
	if (it->size_known && !pw_fits_disk(pw, it->size)) {
		atomic_fetch_add(&pw->skipped_space, 1);
		hc_log(HC_LOG_INFO, "mirror", "prewarm %s skipped: %" PRIu64 " bytes do not fit "
		       "on the disk", it->path, it->size);
		return;
	}
	if (pw_budget_wait(pw) != 0)
		return;
	t0 = hc_now_ms();
	rc = mir_fills_prefetch(pw->fills, it->path, pw->protect_ms, &err);
	if (rc == 0) {
		/* Evicted at once by a client's miss, it was still transferred. */
		f.size = it->size;
		if (mir_store_get(pw->store, it->path, 0, &f, &err) == 0) {
			close(f.fd);
			mir_store_release(pw->store, f.entry);
		}
		pw_budget_charge(pw, f.size);
		atomic_fetch_add(&pw->done, 1);
		hc_log(HC_LOG_INFO, "mirror", "prewarmed %s (%" PRIu64 " bytes) in %" PRId64 " ms",
		       it->path, f.size, hc_now_ms() - t0);
	} else if (rc == HC_EIO) {
		atomic_fetch_add(&pw->skipped_space, 1);
		hc_log(HC_LOG_INFO, "mirror", "prewarm %s skipped: %s", it->path, err.msg);
	} else if (rc == HC_ENOTFOUND) {
		hc_log(HC_LOG_INFO, "mirror", "prewarm %s: gone from the origin", it->path);
	} else {
		atomic_fetch_add(&pw->failed, 1);
		hc_log(HC_LOG_WARN, "mirror", "prewarm %s failed: %s", it->path, err.msg);
	}
}

static void *
pw_worker(void *arg)
{
	struct mir_prewarm *pw = arg;
	struct pw_item it;

	for (;;) {
		pthread_mutex_lock(&pw->mu);
		while (!pw->stop && pw->len == 0)
			hc_cond_wait_ms(&pw->cv, &pw->mu, PW_POLL_MS);
		if (pw->stop) {
			pthread_mutex_unlock(&pw->mu);
			return NULL;
		}
		it = pw->queue[pw->head];
		pw->head = (pw->head + 1) % PW_QUEUE_MAX;
		pw->len--;
		pw->busy++;
		pthread_cond_broadcast(&pw->cv);
		pthread_mutex_unlock(&pw->mu);
		pw_fill_one(pw, &it);
		free(it.path);
		pthread_mutex_lock(&pw->mu);
		pw->busy--;
		pthread_cond_broadcast(&pw->cv);
		pthread_mutex_unlock(&pw->mu);
	}
}

/* ------------------------------------------------------------ the follower */

static int
pw_sink(void *ctx, const void *data, size_t len)
{
	return hc_buf_add(ctx, data, len) != 0;
}

/* GETs base + route + query into a JSON object (caller puts). */
static int
pw_get_json(struct mir_prewarm *pw, const char *query, int64_t timeout_ms,
            struct json_object **out, struct hc_err *err)
{
	struct hc_http_config http = pw->http;
	struct hc_http_request req = { 0 };
	struct hc_http_response resp;
	struct hc_buf url, body;
	int rc;

	*out = NULL;
	hc_buf_init(&url, strlen(pw->origin_base) + strlen(query) + 1);
	hc_buf_init(&body, PW_BODY_MAX);
	rc = hc_buf_printf(&url, "%s%s", pw->origin_base, query);
	if (rc != 0) {
		rc = hc_err_set(err, HC_ESOFTWARE, "URL too long");
		goto done;
	}
	http.total_timeout_ms = (int)timeout_ms;
	req.url = hc_buf_str(&url);
	req.sink = pw_sink;
	req.ctx = &body;
	req.cancel = &pw->cancel;
	req.fail_on_http_error = 1;
	hc_http_response_init(&resp);
	rc = hc_http_request(&http, &req, &resp, err);
	if (rc == 0)
		rc = hc_json_parse(hc_buf_str(&body), body.len, out, err);
done:
	hc_buf_free(&url);
	hc_buf_free(&body);
	return rc;
}

/* Waits ms, or less when stopping. */
static void
pw_pause(struct mir_prewarm *pw, int ms)
{
	int64_t end = hc_now_ms() + ms;

	pthread_mutex_lock(&pw->mu);
	while (!pw->stop && hc_now_ms() < end)
		hc_cond_wait_ms(&pw->cv, &pw->mu, ms);
	pthread_mutex_unlock(&pw->mu);
}

/* What this peer held under one prefix before the origin was listed, and
 * which of it the listing named. */
struct pw_sweep {
	struct mir_journal_file *files;
	size_t n;
	unsigned char *named;           /* n flags */
};

static int
pw_file_cmp(const void *key, const void *item)
{
	return strcmp(key, ((const struct mir_journal_file *)item)->path);
}

/* Queues every file of one prefix the origin lists and marks it in sw.
 * *complete: the listing reached its end (no page left unread). */
static int
pw_list_prefix(struct mir_prewarm *pw, const char *prefix, struct pw_sweep *sw,
               size_t *queued, int *complete, struct hc_err *err)
{
	char q[3 * HC_PATH_MAX + 64], pe[3 * HC_PATH_MAX], ae[3 * HC_PATH_MAX];
	char after[HC_PATH_MAX] = "";
	struct json_object *o = NULL, *files, *x, *next;
	const struct mir_journal_file *mine;
	const char *path;
	long long size;
	size_t i, n, page;
	int rc = 0;

	*complete = 0;
	for (page = 0; rc == 0 && page < PW_LIST_PAGES_MAX; page++) {
		if (hc_query_encode(prefix, pe, sizeof(pe)) != 0 ||
		    hc_query_encode(after, ae, sizeof(ae)) != 0 ||
		    hc_snprintf(q, sizeof(q), "/api/v1/peer/list?prefix=%s&after=%s", pe, ae) != 0)
			return hc_err_set(err, HC_EDATA, "prefix too long");
		rc = pw_get_json(pw, q, PW_SLACK_MS, &o, err);
		if (rc == 0)
			rc = hc_json_get_array(o, "files", &files, err);
		n = rc == 0 ? json_object_array_length(files) : 0;
		for (i = 0; rc == 0 && i < n; i++) {
			x = json_object_array_get_idx(files, i);
			rc = hc_json_get_string(x, "path", &path, err);
			if (rc == 0)
				rc = hc_json_get_int(x, "size", &size, err);
			if (rc != 0)
				break;
			mine = bsearch(path, sw->files, sw->n, sizeof(*sw->files), pw_file_cmp);
			if (mine != NULL)
				sw->named[mine - sw->files] = 1;
			if (pw_wanted(pw, path)) {
				rc = pw_push(pw, path, (uint64_t)size, 1, NULL);
				(*queued)++;
			}
		}
		next = NULL;
		if (rc == 0 && (!json_object_object_get_ex(o, "next", &next) || next == NULL ||
		                hc_strlcpy(after, json_object_get_string(next), sizeof(after)) != 0))
			next = NULL;
		json_object_put(o);
		o = NULL;
		if (rc == 0 && next == NULL)
			*complete = 1;
		if (next == NULL)
			break;
	}
	return rc;
}

/* Deletes what this peer held under the prefix (a wanted one: sw was
 * scanned under it) and the whole listing did not name: deleted on the
 * origin while the peer was not following. Files
 * filled after the peer looked at its store are not in sw, so a file
 * published since the listing is never taken for a deleted one. */
static void
pw_sweep(struct mir_prewarm *pw, const struct pw_sweep *sw, size_t *deleted)
{
	struct hc_err err = { 0, "" };
	size_t i;

	for (i = 0; i < sw->n; i++) {
		if (sw->named[i])
			continue;
		if (mir_store_delete(pw->store, sw->files[i].path, &err) != 0) {
			hc_log(HC_LOG_WARN, "mirror", "prewarm: cannot delete %s: %s",
			       sw->files[i].path, err.msg);
			continue;
		}
		atomic_fetch_add(&pw->deleted, 1);
		(*deleted)++;
		hc_log(HC_LOG_INFO, "mirror", "prewarm: deleted %s (not on the origin)",
		       sw->files[i].path);
	}
}

/* Lists one prefix of the origin, queues what it names, and deletes what
 * this peer holds there that it does not name. A listing that fails or
 * stops short deletes nothing. */
static int
pw_resync_prefix(struct mir_prewarm *pw, const char *prefix, size_t *queued, size_t *deleted,
                 struct hc_err *err)
{
	struct hc_err scan_err = { 0, "" };
	struct pw_sweep sw = { NULL, 0, NULL };
	int rc, complete = 0, sweep = 1;

	if (mir_journal_scan(pw->root, prefix, &sw.files, &sw.n, &scan_err) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "prewarm: no sweep of '%s': %s", prefix, scan_err.msg);
		sweep = 0;
	}
	sw.named = calloc(sw.n > 0 ? sw.n : 1, 1);
	if (sw.named == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	rc = pw_list_prefix(pw, prefix, &sw, queued, &complete, err);
	if (rc == 0 && sweep && complete)
		pw_sweep(pw, &sw, deleted);
done:
	free(sw.named);
	mir_journal_scan_free(sw.files, sw.n);
	return rc;
}

/* Catches up with a journal the position does not fit: lists the origin,
 * fills what it lists, deletes what it no longer has, and follows from
 * last. */
static int
pw_resync(struct mir_prewarm *pw, const char *id, uint64_t last, struct hc_err *err)
{
	size_t i, queued = 0, deleted = 0;
	int rc = 0;

	hc_log(HC_LOG_INFO, "mirror", "prewarm: journal %s at %" PRIu64 " does not follow "
	       "position %s %" PRIu64 ": listing the origin", id, last,
	       pw->id[0] != '\0' ? pw->id : "-", (uint64_t)atomic_load(&pw->position));
	atomic_fetch_add(&pw->resyncs, 1);
	if (pw->prefixes.n == 0)
		rc = pw_resync_prefix(pw, "", &queued, &deleted, err);
	for (i = 0; rc == 0 && i < pw->prefixes.n; i++)
		rc = pw_resync_prefix(pw, pw->prefixes.items[i], &queued, &deleted, err);
	if (rc == 0)
		rc = pw_drain(pw);
	if (rc != 0)
		return rc;
	hc_strlcpy(pw->id, id, sizeof(pw->id));
	atomic_store(&pw->position, last);
	pw_save_state(pw);
	hc_log(HC_LOG_INFO, "mirror", "prewarm: resynced %zu files, deleted %zu; following "
	       "journal %s from %" PRIu64, queued, deleted, id, last);
	return 0;
}

/* Applies one journal entry: a deletion now, a publication queued. */
static int
pw_apply(struct mir_prewarm *pw, struct json_object *x, uint64_t *seq, struct hc_err *err)
{
	const char *op, *path, *sha;
	struct json_object *v;
	long long s, size;
	char dec[HC_PATH_MAX], enc[3 * HC_PATH_MAX];
	int rc;

	rc = hc_json_get_int(x, "seq", &s, err);
	if (rc == 0)
		rc = hc_json_get_string(x, "op", &op, err);
	if (rc == 0)
		rc = hc_json_get_string(x, "path", &path, err);
	if (rc == 0)
		rc = hc_json_get_int(x, "size", &size, err);
	if (rc != 0)
		return rc;
	/* The origin's paths pass the same check as a client's. */
	if (hc_path_encode(path, enc, sizeof(enc)) != 0 ||
	    hc_path_decode(enc, strlen(enc), dec, sizeof(dec)) != 0 || strcmp(dec, path) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "prewarm: journal entry %lld: bad path; skipped", s);
		*seq = (uint64_t)s;
		return 0;
	}
	*seq = (uint64_t)s;
	if (!pw_wanted(pw, path))
		return 0;
	if (strcmp(op, "delete") == 0) {
		if (mir_store_delete(pw->store, path, err) == 0) {
			atomic_fetch_add(&pw->deleted, 1);
			hc_log(HC_LOG_INFO, "mirror", "prewarm: deleted %s (deleted on the origin)",
			       path);
		}
		return 0;
	}
	sha = NULL;
	if (json_object_object_get_ex(x, "sha256", &v) && json_object_is_type(v, json_type_string))
		sha = json_object_get_string(v);
	return pw_push(pw, path, size < 0 ? 0 : (uint64_t)size, size >= 0, sha);
}

/* One answer of changes: follows it, or resyncs. */
static int
pw_step(struct mir_prewarm *pw, struct json_object *o, struct hc_err *err)
{
	struct json_object *entries, *x;
	long long first, last;
	const char *id;
	uint64_t pos = atomic_load(&pw->position), seq = pos;
	size_t i, n;
	int rc;

	rc = hc_json_get_string(o, "journal_id", &id, err);
	/* The id is saved in the position file and compared later: only what
	 * an origin writes is taken. */
	if (rc == 0 && !hc_is_lower_hex(id, MIR_JOURNAL_ID_LEN))
		rc = hc_err_set(err, HC_EDATA, "journal_id: not %d lower-case hex digits",
		                MIR_JOURNAL_ID_LEN);
	if (rc == 0)
		rc = hc_json_get_int(o, "first_seq", &first, err);
	if (rc == 0)
		rc = hc_json_get_int(o, "last_seq", &last, err);
	if (rc == 0)
		rc = hc_json_get_array(o, "entries", &entries, err);
	if (rc == 0 && (first < 0 || last < 0))
		rc = hc_err_set(err, HC_EDATA, "first_seq, last_seq: negative");
	if (rc != 0)
		return rc;
	atomic_store(&pw->origin_seq, (uint64_t)last);
	if (pw->id[0] == '\0') {
		hc_strlcpy(pw->id, id, sizeof(pw->id));
		atomic_store(&pw->position, (uint64_t)last);
		pw_save_state(pw);
		hc_log(HC_LOG_INFO, "mirror", "prewarm: following journal %s from %lld", id, last);
		return 0;
	}
	if (strcmp(id, pw->id) != 0 || pos + 1 < (uint64_t)first || pos > (uint64_t)last)
		return pw_resync(pw, id, (uint64_t)last, err);
	n = json_object_array_length(entries);
	for (i = 0; rc == 0 && i < n && i < MIR_JOURNAL_PAGE; i++) {
		x = json_object_array_get_idx(entries, i);
		rc = pw_apply(pw, x, &seq, err);
	}
	if (rc == 0)
		rc = pw_drain(pw);
	if (rc == 0 && seq != pos) {
		atomic_store(&pw->position, seq);
		pw_save_state(pw);
	}
	return rc;
}

static int
pw_stopping(struct mir_prewarm *pw)
{
	int stop;

	pthread_mutex_lock(&pw->mu);
	stop = pw->stop;
	pthread_mutex_unlock(&pw->mu);
	return stop;
}

static void *
pw_follow(void *arg)
{
	struct mir_prewarm *pw = arg;
	struct hc_err err = { 0, "" };
	struct json_object *o;
	char q[128], told[sizeof(err.msg)] = "";
	int rc, was = 1;

	while (!pw_stopping(pw)) {
		hc_snprintf(q, sizeof(q), "/api/v1/peer/changes?since=%" PRIu64 "&wait=%lld",
		            (uint64_t)atomic_load(&pw->position), pw->wait_s);
		rc = pw_get_json(pw, q, pw->wait_s * 1000 + PW_SLACK_MS, &o, &err);
		if (rc == 0) {
			atomic_store(&pw->following, 1);
			rc = pw_step(pw, o, &err);
			json_object_put(o);
		}
		if (rc == 0) {
			was = 1;
			continue;
		}
		if (pw_stopping(pw))
			break;
		atomic_store(&pw->following, 0);
		/* Once per failure, and again when the reason changes: a retry
		 * every 2 s must not flood the log, nor hide a new cause. */
		/* was: a failure that left no message of its own (a full queue)
		 * is still told once. */
		if (was || strcmp(told, err.msg) != 0) {
			hc_log(HC_LOG_WARN, "mirror", "prewarm: cannot follow %s: %s", pw->shown,
			       err.msg);
			hc_strlcpy(told, err.msg, sizeof(told));
		}
		was = 0;
		pw_pause(pw, PW_RETRY_MS);
	}
	return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static int
pw_copy_prefixes(struct mir_prewarm *pw, const struct hc_strlist *from)
{
	size_t i;

	if (from == NULL || from->n == 0)
		return 0;
	pw->prefixes.items = calloc(from->n, sizeof(char *));
	if (pw->prefixes.items == NULL)
		return HC_ENOMEM;
	for (i = 0; i < from->n; i++) {
		pw->prefixes.items[i] = hc_strdup(from->items[i]);
		if (pw->prefixes.items[i] == NULL)
			return HC_ENOMEM;
		pw->prefixes.n++;
	}
	return 0;
}

static int
pw_init(struct mir_prewarm *pw, const struct mir_prewarm_config *cfg, struct hc_err *err)
{
	size_t n;

	if (hc_snprintf(pw->state_path, sizeof(pw->state_path), "%s/meta/prewarm",
	                cfg->root) != 0)
		return hc_err_set(err, HC_ECONFIG, "root: too long");
	pw->origin_base = hc_strdup(cfg->origin_url);
	pw->root = hc_strdup(cfg->root);
	if (pw->origin_base == NULL || pw->root == NULL ||
	    pw_copy_prefixes(pw, cfg->prefixes) != 0)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	n = strlen(pw->origin_base);
	while (n > 0 && pw->origin_base[n - 1] == '/')
		pw->origin_base[--n] = '\0';
	mir_url_redact(pw->origin_base, pw->shown, sizeof(pw->shown));
	pw->http.dns.timeout_ms = PW_DNS_TIMEOUT_MS;
	pw->http.ca_file = cfg->ca_file;
	pw->http.connect_timeout_ms = PW_CONNECT_TIMEOUT_MS;
	pw->rate = cfg->origin_bytes_per_s;
	pw->protect_ms = (int64_t)cfg->protect_s * 1000;
	pw->wait_s = cfg->wait_s;
	pw->workers = calloc((size_t)cfg->concurrency, sizeof(*pw->workers));
	if (pw->workers == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	pw_load_state(pw);
	return 0;
}

int
mir_prewarm_start(const struct mir_prewarm_config *cfg, struct mir_store *store,
                  struct mir_fills *fills, struct mir_prewarm **out, struct hc_err *err)
{
	struct mir_prewarm *pw = calloc(1, sizeof(*pw));
	int rc;

	*out = NULL;
	if (pw == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	pw->store = store;
	pw->fills = fills;
	pthread_mutex_init(&pw->mu, NULL);
	pthread_cond_init(&pw->cv, NULL);
	rc = pw_init(pw, cfg, err);
	if (rc != 0)
		goto fail;
	for (; pw->nworkers < cfg->concurrency; pw->nworkers++) {
		if (pthread_create(&pw->workers[pw->nworkers], NULL, pw_worker, pw) != 0) {
			rc = hc_err_set(err, HC_ESOFTWARE, "cannot start a pre-warm thread");
			goto fail;
		}
	}
	if (pthread_create(&pw->follower, NULL, pw_follow, pw) != 0) {
		rc = hc_err_set(err, HC_ESOFTWARE, "cannot start the pre-warm follower");
		goto fail;
	}
	pw->follower_started = 1;
	*out = pw;
	return 0;
fail:
	mir_prewarm_stop(pw);
	return rc;
}

void
mir_prewarm_cancel(struct mir_prewarm *pw)
{
	if (pw == NULL)
		return;
	pthread_mutex_lock(&pw->mu);
	pw->stop = 1;
	pw->cancel = 1;
	pthread_cond_broadcast(&pw->cv);
	pthread_mutex_unlock(&pw->mu);
}

void
mir_prewarm_stop(struct mir_prewarm *pw)
{
	size_t i;
	int w;

	if (pw == NULL)
		return;
	mir_prewarm_cancel(pw);
	if (pw->follower_started)
		pthread_join(pw->follower, NULL);
	for (w = 0; w < pw->nworkers; w++)
		pthread_join(pw->workers[w], NULL);
	for (i = 0; i < pw->len; i++)
		free(pw->queue[(pw->head + i) % PW_QUEUE_MAX].path);
	for (i = 0; i < pw->prefixes.n; i++)
		free(pw->prefixes.items[i]);
	free(pw->prefixes.items);
	free(pw->workers);
	free(pw->origin_base);
	free(pw->root);
	pthread_mutex_destroy(&pw->mu);
	pthread_cond_destroy(&pw->cv);
	free(pw);
}

void
mir_prewarm_stats(struct mir_prewarm *pw, struct mir_prewarm_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (pw == NULL)
		return;
	out->position = atomic_load(&pw->position);
	out->origin_seq = atomic_load(&pw->origin_seq);
	out->done = atomic_load(&pw->done);
	out->failed = atomic_load(&pw->failed);
	out->skipped_space = atomic_load(&pw->skipped_space);
	out->deleted = atomic_load(&pw->deleted);
	out->resyncs = atomic_load(&pw->resyncs);
	out->following = atomic_load(&pw->following);
	pthread_mutex_lock(&pw->mu);
	out->queued = pw->len + (uint64_t)pw->busy;
	pthread_mutex_unlock(&pw->mu);
}
