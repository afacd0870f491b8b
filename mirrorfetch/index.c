/*
 * DIR/.hydra-index: one line per file known right, so that a sync of an
 * unchanged folder hashes nothing (docs/sync.md, "The index"). Line format:
 * "<sha256> <size> <mtime ns> <ctime ns> <inode> <path>\n" after a magic
 * line.
 */
#include <stdlib.h>
#include <string.h>

#include "mirrorfetch/internal.h"

#define INDEX_MAGIC "hydra-index 1\n"
/* An index line: digest, four numbers and a path. */
#define INDEX_LINE_MAX (MF_MANIFEST_PATH_MAX + HC_SHA256_HEX_LEN + 128)
/* The index never lists more files than a manifest may hold. */
#define INDEX_MAX ((size_t)MF_MANIFEST_FILES_MAX * INDEX_LINE_MAX)

static int64_t
index_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int
index_cmp(const void *a, const void *b)
{
	const struct mf_index_entry *x = a, *y = b;

	return strcmp(x->path, y->path);
}

void
mf_index_free(struct mf_index *idx)
{
	size_t i;

	for (i = 0; i < idx->n; i++)
		free(idx->entries[i].path);
	free(idx->entries);
	idx->entries = NULL;
	idx->n = 0;
	idx->cap = 0;
}

/* Parses one line (NUL-terminated, no newline), as mf_index_save writes it,
 * into idx. 0 when taken or skipped as damaged; HC_ENOMEM or HC_EDATA end
 * the load. */
static int
index_parse_line(struct mf_index *idx, const char *line)
{
	struct mf_index_entry *e;
	const char *p = line;
	uint64_t size, ino;
	int64_t mt, ct;
	char sha[HC_SHA256_HEX_LEN + 1];
	int rc;

	/* The path is the rest of the line: it may hold spaces. */
	if (hc_scan_word(&p, sha, sizeof(sha)) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_u64(&p, &size) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_i64(&p, &mt) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_i64(&p, &ct) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_u64(&p, &ino) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    *p == '\0' || !hc_sha256_hex_valid(sha))
		return 0;
	rc = hc_array_reserve((void **)&idx->entries, &idx->cap, idx->n + 1,
	                      sizeof(*idx->entries), MF_MANIFEST_FILES_MAX);
	if (rc != 0)
		return rc;
	e = &idx->entries[idx->n];
	memset(e, 0, sizeof(*e));
	e->path = hc_strdup(p);
	if (e->path == NULL)
		return HC_ENOMEM;
	hc_hex_lower(e->sha256, sha, HC_SHA256_HEX_LEN);
	e->size = size;
	e->mtime_ns = mt;
	e->ctime_ns = ct;
	e->ino = ino;
	idx->n++;
	return 0;
}

void
mf_index_load(struct mf_index *idx, int dirfd, const char *name)
{
	char *text = NULL, *line, *next;
	size_t len = 0, lines = 0;
	struct hc_err err = { 0, "" };
	int rc;

	mf_index_free(idx);
	rc = mf_read_at(dirfd, name, INDEX_MAX, &text, &len, &err);
	if (rc != 0) {
		if (rc != HC_ENOTFOUND)
			hc_log(HC_LOG_WARN, MF_MOD, "index ignored: %s", err.msg);
		return;
	}
	if (strncmp(text, INDEX_MAGIC, strlen(INDEX_MAGIC)) != 0) {
		hc_log(HC_LOG_WARN, MF_MOD, "index ignored: %s is not a hydra index", name);
		free(text);
		return;
	}
	for (line = text + strlen(INDEX_MAGIC); *line != '\0' && lines < MF_MANIFEST_FILES_MAX;
	     line = next, lines++) {
		next = strchr(line, '\n');
		if (next == NULL)
			break;  /* a cut last line: ignore it */
		*next++ = '\0';
		if (index_parse_line(idx, line) != 0)
			break;
	}
	free(text);
	/* An index with no entry is a valid one: qsort and bsearch never see NULL. */
	if (idx->n > 0)
		qsort(idx->entries, idx->n, sizeof(*idx->entries), index_cmp);
}

const struct mf_index_entry *
mf_index_find(const struct mf_index *idx, const char *path)
{
	struct mf_index_entry key;

	if (idx->n == 0)
		return NULL;
	key.path = (char *)path;
	return bsearch(&key, idx->entries, idx->n, sizeof(*idx->entries), index_cmp);
}

int
mf_index_same_stat(const struct mf_index_entry *e, const struct stat *st)
{
	return e->size == (uint64_t)st->st_size && e->mtime_ns == index_ns(&st->st_mtim) &&
	       e->ctime_ns == index_ns(&st->st_ctim) && e->ino == (uint64_t)st->st_ino;
}

int
mf_index_add(struct mf_index *idx, const char *path, const char *sha256,
             const struct stat *st, struct hc_err *err)
{
	struct mf_index_entry *e;
	int rc;

	rc = hc_array_reserve((void **)&idx->entries, &idx->cap, idx->n + 1,
	                      sizeof(*idx->entries), MF_MANIFEST_FILES_MAX);
	if (rc != 0)
		return hc_err_set(err, rc, "index: more than %d entries or out of memory",
		                  MF_MANIFEST_FILES_MAX);
	e = &idx->entries[idx->n];
	memset(e, 0, sizeof(*e));
	e->path = hc_strdup(path);
	if (e->path == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	hc_strlcpy(e->sha256, sha256, sizeof(e->sha256));
	e->size = (uint64_t)st->st_size;
	e->mtime_ns = index_ns(&st->st_mtim);
	e->ctime_ns = index_ns(&st->st_ctim);
	e->ino = (uint64_t)st->st_ino;
	idx->n++;
	return 0;
}

int
mf_index_save(const struct mf_index *idx, int dirfd, const char *name, struct hc_err *err)
{
	struct hc_buf b;
	size_t i;
	int rc;

	hc_buf_init(&b, INDEX_MAX);
	rc = hc_buf_add(&b, INDEX_MAGIC, strlen(INDEX_MAGIC));
	for (i = 0; rc == 0 && i < idx->n; i++) {
		const struct mf_index_entry *e = &idx->entries[i];
		rc = hc_buf_printf(&b, "%s %llu %lld %lld %llu %s\n", e->sha256,
		                   (unsigned long long)e->size, (long long)e->mtime_ns,
		                   (long long)e->ctime_ns, (unsigned long long)e->ino, e->path);
	}
	if (rc != 0)
		rc = hc_err_set(err, rc, "index: larger than %zu bytes or out of memory", INDEX_MAX);
	else
		rc = hc_atomic_write_at(dirfd, name, b.p, b.len, 0644, err);
	hc_buf_free(&b);
	return rc;
}
