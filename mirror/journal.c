/*
 * The origin's publish journal: {root}/meta/journal holds the line
 * "hydra-mirror-journal 1 ID", then one line per publication,
 * "SEQ TIME P|D SIZE SHA256|- PATH" (PATH percent-encoded, so it holds no
 * space or newline). Sequence numbers only grow; the id is new whenever the
 * file had to be started over, which tells a following peer its position
 * means nothing here. The last MIR_JOURNAL_KEEP entries live in a ring in
 * memory; the file is rewritten from it at open and when it has grown to
 * twice that.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mirror/journal.h"

#define JNL_MAGIC "hydra-mirror-journal 1 "
/* A line: numbers, a digest and a path encoded at worst three bytes per byte. */
#define JNL_LINE_MAX (3 * HC_PATH_MAX + 160)
/* How long one wait step lasts before the stop flag is looked at again. */
#define JNL_POLL_MS 1000
/* Folders below files/ a listing descends: deeper is not a publication. */
#define JNL_WALK_DEPTH_MAX 64

struct jnl_entry {
	uint64_t seq;
	int64_t time_s;
	char op;
	uint64_t size;
	char sha256[HC_SHA256_HEX_LEN + 1];
	char *path;                     /* decoded */
};

struct mir_journal {
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* an entry was appended, or stop */
	struct jnl_entry *ring;         /* MIR_JOURNAL_KEEP slots, seq % KEEP */
	uint64_t last_seq;
	size_t count;                   /* entries held, at most KEEP */
	size_t lines;                   /* entry lines in the file */
	char id[MIR_JOURNAL_ID_LEN + 1];
	char path[PATH_MAX];
	int fd;                         /* the file, appended to */
	int lock_fd;
	int stop;
};

static struct jnl_entry *
jnl_slot(struct mir_journal *j, uint64_t seq)
{
	return &j->ring[seq % MIR_JOURNAL_KEEP];
}

/* Adds the entry after the last one. A gap in the sequence (lines lost
 * from the file) forgets what came before it: the entries held are always
 * the contiguous run last_seq - count + 1 .. last_seq, and a peer behind
 * the gap lists. */
static void
jnl_put(struct mir_journal *j, const struct jnl_entry *e, char *path)
{
	struct jnl_entry *slot = jnl_slot(j, e->seq);

	if (e->seq != j->last_seq + 1)
		j->count = 0;
	free(slot->path);
	*slot = *e;
	slot->path = path;
	j->last_seq = e->seq;
	if (j->count < MIR_JOURNAL_KEEP)
		j->count++;
}

static int
jnl_new_id(char *id, struct hc_err *err)
{
	unsigned char raw[MIR_JOURNAL_ID_LEN / 2];
	size_t i;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return hc_err_set(err, HC_ESOFTWARE, "getrandom: %s", strerror(errno));
	for (i = 0; i < sizeof(raw); i++)
		hc_snprintf(id + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* One entry line, as jnl_format writes it with its newline, into e and its
 * decoded path (caller frees). 0, HC_EDATA or HC_ENOMEM. */
static int
jnl_parse(const char *line, struct jnl_entry *e, char **path)
{
	char op[2], sha[HC_SHA256_HEX_LEN + 1], enc[JNL_LINE_MAX], dec[HC_PATH_MAX];
	const char *p = line;
	uint64_t seq, size;
	int64_t t;

	if (hc_scan_u64(&p, &seq) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_i64(&p, &t) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_word(&p, op, sizeof(op)) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_u64(&p, &size) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_word(&p, sha, sizeof(sha)) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_word(&p, enc, sizeof(enc)) != 0 || hc_scan_sep(&p, '\n') != 0 || *p != '\0')
		return HC_EDATA;
	/* The answer carries seq and size as JSON int64, and a seq at the top
	 * of uint64_t would wrap the held run's last_seq + 1. */
	if (seq > INT64_MAX || size > INT64_MAX ||
	    (op[0] != MIR_JOURNAL_PUT && op[0] != MIR_JOURNAL_DELETE) ||
	    hc_path_decode(enc, strlen(enc), dec, sizeof(dec)) != 0)
		return HC_EDATA;
	if (strcmp(sha, "-") == 0)
		sha[0] = '\0';
	else if (!hc_sha256_hex_valid(sha))
		return HC_EDATA;
	memset(e, 0, sizeof(*e));
	e->seq = seq;
	e->time_s = t;
	e->op = op[0];
	e->size = size;
	hc_hex_lower(e->sha256, sha, strlen(sha));
	*path = hc_strdup(dec);
	return *path != NULL ? 0 : HC_ENOMEM;
}

/* 1 when line is the head line jnl_rewrite writes: the magic, exactly
 * MIR_JOURNAL_ID_LEN lower-case hex digits as jnl_new_id makes them, the
 * newline (cut off here). Any other line is not this program's journal. */
static int
jnl_head_valid(char *line)
{
	size_t n = strlen(line);

	if (strncmp(line, JNL_MAGIC, strlen(JNL_MAGIC)) != 0 || line[n - 1] != '\n')
		return 0;
	line[n - 1] = '\0';
	return hc_is_lower_hex(line + strlen(JNL_MAGIC), MIR_JOURNAL_ID_LEN);
}

/* Reads what the file holds into the ring; an absent or foreign file leaves
 * the journal empty with a new id. */
static int
jnl_load(struct mir_journal *j, struct hc_err *err)
{
	char line[JNL_LINE_MAX];
	struct jnl_entry e;
	char *path;
	FILE *f = fopen(j->path, "re");
	size_t skipped = 0;
	int rc = 0;

	if (f == NULL || fgets(line, sizeof(line), f) == NULL || !jnl_head_valid(line)) {
		if (f != NULL) {
			hc_log(HC_LOG_WARN, "mirror", "%s: not a journal; starting a new one", j->path);
			fclose(f);
		}
		return jnl_new_id(j->id, err);
	}
	memcpy(j->id, line + strlen(JNL_MAGIC), MIR_JOURNAL_ID_LEN);
	j->id[MIR_JOURNAL_ID_LEN] = '\0';
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		/* A torn last line (no newline), an overlong or malformed one, or
		 * one out of order is dropped: the rewrite after loading leaves it
		 * out. */
		path = NULL;
		if (jnl_parse(line, &e, &path) != 0 || e.seq <= j->last_seq) {
			free(path);
			skipped++;
			continue;
		}
		jnl_put(j, &e, path);
	}
	fclose(f);
	if (skipped > 0)
		hc_log(HC_LOG_WARN, "mirror", "%s: dropped %zu torn or malformed lines", j->path,
		       skipped);
	return rc;
}

static int
jnl_format(const struct jnl_entry *e, struct hc_buf *b)
{
	char enc[JNL_LINE_MAX];

	if (hc_path_encode(e->path, enc, sizeof(enc)) != 0)
		return HC_EDATA;
	return hc_buf_printf(b, "%" PRIu64 " %" PRId64 " %c %" PRIu64 " %s %s\n", e->seq,
	                     e->time_s, e->op, e->size, e->sha256[0] != '\0' ? e->sha256 : "-",
	                     enc);
}

/* Writes the file anew from the ring and reopens it for appending. */
static int
jnl_rewrite(struct mir_journal *j, struct hc_err *err)
{
	struct hc_buf b;
	uint64_t seq;
	int rc, fd;

	hc_buf_init(&b, (size_t)MIR_JOURNAL_KEEP * JNL_LINE_MAX);
	rc = hc_buf_printf(&b, "%s%s\n", JNL_MAGIC, j->id);
	for (seq = j->last_seq - j->count + 1; rc == 0 && seq <= j->last_seq && j->count > 0;
	     seq++)
		rc = jnl_format(jnl_slot(j, seq), &b);
	if (rc != 0) {
		hc_buf_free(&b);
		return hc_err_set(err, HC_EIO, "%s: cannot format the journal", j->path);
	}
	rc = hc_atomic_write(j->path, b.p, b.len, 0644, err);
	hc_buf_free(&b);
	if (rc != 0)
		return rc;
	fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return hc_err_set(err, HC_EIO, "%s: %s", j->path, strerror(errno));
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->lines = j->count;
	return 0;
}

int
mir_journal_open(const char *root, struct mir_journal **out, struct hc_err *err)
{
	struct mir_journal *j = calloc(1, sizeof(*j));
	char lock[PATH_MAX];
	int rc;

	*out = NULL;
	if (j == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	j->fd = -1;
	j->lock_fd = -1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->ring = calloc(MIR_JOURNAL_KEEP, sizeof(*j->ring));
	if (j->ring == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto fail;
	}
	if (hc_snprintf(j->path, sizeof(j->path), "%s/meta/journal", root) != 0 ||
	    hc_snprintf(lock, sizeof(lock), "%s/meta/journal.lock", root) != 0) {
		rc = hc_err_set(err, HC_ECONFIG, "root: too long");
		goto fail;
	}
	j->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (j->lock_fd < 0) {
		rc = hc_err_set(err, HC_EIO, "%s: %s", lock, strerror(errno));
		goto fail;
	}
	if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = hc_err_set(err, HC_EUNAVAIL, "%s: another origin keeps the journal", lock);
		goto fail;
	}
	rc = jnl_load(j, err);
	if (rc == 0)
		rc = jnl_rewrite(j, err);
	if (rc != 0)
		goto fail;
	*out = j;
	return 0;
fail:
	mir_journal_close(j);
	return rc;
}

void
mir_journal_stop(struct mir_journal *j)
{
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->mu);
	j->stop = 1;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

void
mir_journal_close(struct mir_journal *j)
{
	size_t i;

	if (j == NULL)
		return;
	if (j->ring != NULL)
		for (i = 0; i < MIR_JOURNAL_KEEP; i++)
			free(j->ring[i].path);
	free(j->ring);
	if (j->fd >= 0)
		close(j->fd);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

int
mir_journal_append(struct mir_journal *j, enum mir_journal_op op, const char *path,
                   uint64_t size, const char *sha256, struct hc_err *err)
{
	struct jnl_entry e = { 0 };
	struct hc_buf b;
	char *copy = hc_strdup(path);
	int rc;

	if (copy == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	e.time_s = (int64_t)time(NULL);
	e.op = (char)op;
	e.size = size;
	e.path = copy;
	hc_strlcpy(e.sha256, sha256 != NULL ? sha256 : "", sizeof(e.sha256));
	hc_buf_init(&b, JNL_LINE_MAX);
	pthread_mutex_lock(&j->mu);
	e.seq = j->last_seq + 1;
	rc = jnl_format(&e, &b);
	if (rc == 0 && (hc_write_all(j->fd, b.p, b.len) != 0 || fdatasync(j->fd) != 0))
		rc = hc_err_set(err, HC_EIO, "%s: %s", j->path, strerror(errno));
	else if (rc != 0)
		rc = hc_err_set(err, HC_EIO, "%s: cannot format %s", j->path, path);
	if (rc == 0) {
		jnl_put(j, &e, copy);
		copy = NULL;
		j->lines++;
		if (j->lines >= 2 * MIR_JOURNAL_KEEP)
			rc = jnl_rewrite(j, err);
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	hc_buf_free(&b);
	free(copy);
	return rc;
}

void
mir_journal_note(struct mir_journal *j, enum mir_journal_op op, const char *path,
                 uint64_t size, const char *sha256)
{
	struct hc_err err = { 0, "" };

	if (j != NULL && mir_journal_append(j, op, path, size, sha256, &err) != 0)
		hc_log(HC_LOG_WARN, "mirror", "journal: %s", err.msg);
}

static const char *
jnl_op_name(char op)
{
	return op == MIR_JOURNAL_DELETE ? "delete" : "put";
}

/* The answer for entries after since, at most max. Caller holds j->mu. */
static int
jnl_answer(struct mir_journal *j, uint64_t since, size_t max, char **json,
           struct hc_err *err)
{
	struct json_object *o = json_object_new_object(), *list = json_object_new_array(), *x;
	uint64_t first = j->last_seq - j->count + 1, seq;
	const struct jnl_entry *e;
	size_t n = 0;

	if (o == NULL || list == NULL) {
		json_object_put(o);
		json_object_put(list);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	json_object_object_add(o, "journal_id", json_object_new_string(j->id));
	json_object_object_add(o, "first_seq", json_object_new_int64((int64_t)first));
	json_object_object_add(o, "last_seq", json_object_new_int64((int64_t)j->last_seq));
	for (seq = since + 1 > first ? since + 1 : first; seq <= j->last_seq && n < max; seq++) {
		e = jnl_slot(j, seq);
		x = json_object_new_object();
		if (x == NULL)
			break;
		json_object_object_add(x, "seq", json_object_new_int64((int64_t)e->seq));
		json_object_object_add(x, "time", json_object_new_int64(e->time_s));
		json_object_object_add(x, "op", json_object_new_string(jnl_op_name(e->op)));
		json_object_object_add(x, "path", json_object_new_string(e->path));
		json_object_object_add(x, "size", json_object_new_int64((int64_t)e->size));
		json_object_object_add(x, "sha256", json_object_new_string(e->sha256));
		json_object_array_add(list, x);
		n++;
	}
	json_object_object_add(o, "entries", list);
	*json = hc_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return *json != NULL ? 0 : hc_err_set(err, HC_ENOMEM, "out of memory");
}

int
mir_journal_changes(struct mir_journal *j, uint64_t since, int64_t wait_ms, size_t max,
                    char **json, struct hc_err *err)
{
	int64_t deadline = hc_now_ms() + wait_ms, left;
	int rc;

	*json = NULL;
	if (max == 0 || max > MIR_JOURNAL_PAGE)
		max = MIR_JOURNAL_PAGE;
	pthread_mutex_lock(&j->mu);
	/* A since beyond the end (a peer that followed an older journal with
	 * the same id cannot exist, so this is a stale position) answers at
	 * once: the peer sees last_seq below its position and resyncs. */
	while (!j->stop && since == j->last_seq) {
		left = deadline - hc_now_ms();
		if (left <= 0)
			break;
		hc_cond_wait_ms(&j->cv, &j->mu, (int)(left < JNL_POLL_MS ? left : JNL_POLL_MS));
	}
	rc = jnl_answer(j, since, max, json, err);
	pthread_mutex_unlock(&j->mu);
	return rc;
}

void
mir_journal_stats(struct mir_journal *j, struct mir_journal_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->mu);
	out->last_seq = j->last_seq;
	out->first_seq = j->last_seq - j->count + 1;
	memcpy(out->id, j->id, sizeof(out->id));
	pthread_mutex_unlock(&j->mu);
}

/* ------------------------------------------------------------ listing */

struct jnl_list {
	const char *prefix, *after;
	struct mir_journal_file *items;
	size_t n, cap;
};

static int
jnl_list_visit(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct jnl_list *l = ctx;
	size_t plen = strlen(l->prefix);

	if (!S_ISREG(e->st->st_mode))
		return 0;
	if (strncmp(e->rel, l->prefix, plen) != 0 || strcmp(e->rel, l->after) <= 0)
		return 0;
	if (hc_array_reserve((void **)&l->items, &l->cap, l->n + 1, sizeof(*l->items),
	                     MIR_LIST_SCAN_MAX) != 0)
		return hc_err_set(err, HC_EDATA, "more than %d files under '%s'",
		                  MIR_LIST_SCAN_MAX, l->prefix);
	l->items[l->n].path = hc_strdup(e->rel);
	if (l->items[l->n].path == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	l->items[l->n].size = (uint64_t)e->st->st_size;
	l->n++;
	return 0;
}

static int
jnl_file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mir_journal_file *)a)->path,
	              ((const struct mir_journal_file *)b)->path);
}

/* Walks {root}/files into l, sorted. On error l holds what was found. */
static int
jnl_scan(const char *root, struct jnl_list *l, struct hc_err *err)
{
	char files[PATH_MAX];
	int fd, rc;

	if (hc_snprintf(files, sizeof(files), "%s/files", root) != 0)
		return hc_err_set(err, HC_ECONFIG, "root: too long");
	fd = open(files, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return hc_err_set(err, HC_EIO, "%s: %s", files, strerror(errno));
	rc = hc_walk(fd, files, JNL_WALK_DEPTH_MAX, 0, jnl_list_visit, l, err);
	close(fd);
	if (rc == 0)
		qsort(l->items, l->n, sizeof(*l->items), jnl_file_cmp);
	return rc;
}

static int
jnl_list_json(const struct jnl_list *l, char **json, struct hc_err *err)
{
	struct json_object *o = json_object_new_object(), *files = json_object_new_array(), *x;
	size_t i, n = l->n < MIR_LIST_PAGE ? l->n : MIR_LIST_PAGE;

	if (o == NULL || files == NULL) {
		json_object_put(o);
		json_object_put(files);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		x = json_object_new_object();
		if (x == NULL)
			break;
		json_object_object_add(x, "path", json_object_new_string(l->items[i].path));
		json_object_object_add(x, "size", json_object_new_int64((int64_t)l->items[i].size));
		json_object_array_add(files, x);
	}
	json_object_object_add(o, "files", files);
	json_object_object_add(o, "next", l->n > n ?
	                       json_object_new_string(l->items[n - 1].path) : NULL);
	*json = hc_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return *json != NULL ? 0 : hc_err_set(err, HC_ENOMEM, "out of memory");
}

int
mir_journal_list(const char *root, const char *prefix, const char *after, char **json,
                 struct hc_err *err)
{
	struct jnl_list l = { prefix, after, NULL, 0, 0 };
	int rc;

	*json = NULL;
	rc = jnl_scan(root, &l, err);
	if (rc == 0)
		rc = jnl_list_json(&l, json, err);
	mir_journal_scan_free(l.items, l.n);
	return rc;
}

int
mir_journal_scan(const char *root, const char *prefix, struct mir_journal_file **files,
                 size_t *n, struct hc_err *err)
{
	struct jnl_list l = { prefix, "", NULL, 0, 0 };
	int rc;

	*files = NULL;
	*n = 0;
	rc = jnl_scan(root, &l, err);
	if (rc != 0) {
		mir_journal_scan_free(l.items, l.n);
		return rc;
	}
	*files = l.items;
	*n = l.n;
	return 0;
}

void
mir_journal_scan_free(struct mir_journal_file *files, size_t n)
{
	size_t i;

	if (files == NULL)
		return;
	for (i = 0; i < n; i++)
		free(files[i].path);
	free(files);
}
