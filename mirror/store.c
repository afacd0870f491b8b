/*
 * The store: files under {root}/files, their metadata in {root}/meta/index,
 * uploads and fills in progress under {root}/tmp.
 *
 * Each file has an entry, found by path in a hash table and kept on an
 * intrusive LRU list, oldest first: a touch moves it to the tail and the
 * victim of an eviction is the head, both O(1). A pinned entry met at the
 * head is parked on a second list until its last release puts it back at
 * the head, so each pin is passed over at most once.
 *
 * The entry keeps the origin's SHA-256 (none when the origin gave none; a
 * peer never digests its own bytes, an origin digests the files it has no
 * record of, its own publication), and the size and mtime it describes: a
 * peer checks a file changed since against that digest before serving it,
 * and removes a changed file it cannot check (to be filled again).
 *
 * meta/index is a journal: records for add, touch and remove, appended at
 * each flush; replaying it gives the table and the LRU order. It is
 * rewritten from the table (compacted) when it holds more than
 * STORE_COMPACT_FACTOR records per live file, and after a torn record; the
 * rewrite walks the LRU list behind a cursor node a batch per hold of the
 * lock, then appends the records made meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mirror/mirror.h"

#define STORE_INDEX_MAGIC "hydra-mirror-index 2\n"
/* The whole-file index of earlier versions, read once and then replaced. */
#define STORE_INDEX_MAGIC_V1 "hydra-mirror-index 1\n"
/* Rewrites of meta/index are written to meta/index.tmp.XXXXXX first. */
#define STORE_INDEX_TMP "index.tmp."
/* A record is at most a path plus four numbers and a digest. */
#define STORE_LINE_MAX (MIR_PATH_MAX + 160)
/* Bucket counts are powers of two; the table grows at one entry per
 * bucket, so that a lookup meets about one entry. */
#define STORE_BUCKETS_MIN 1024
/* Start-up sizes the table from the index: at least this many bytes per
 * record (an add record is about a hundred), never past STORE_BUCKETS_MAX
 * buckets (32 MiB) on the word of a file; the table grows past it as
 * usual. Sizing it once spares the rehashes of a million-file restart. */
#define STORE_INDEX_BYTES_PER_BUCKET 64
#define STORE_BUCKETS_MAX ((size_t)1 << 22)
/* "gone.PID.SEQ": the name an evicted file waits under in tmp/. */
#define STORE_GONE_NAME_MAX 64
/* Written in place of a digest the origin did not give. */
#define STORE_NO_DIGEST "-"
/* openat2 answers EAGAIN when a rename races the resolution; a few tries
 * get past a race, a steady stream of renames is an error. */
#define STORE_OPEN_TRIES 8
/* Folder depth of a walk: a path of MIR_PATH_MAX bytes has at most half
 * as many levels, and each level holds an fd. */
#define STORE_WALK_DEPTH (MIR_PATH_MAX / 2)
/* The journal is compacted past this many records per live file, plus
 * STORE_COMPACT_SLACK so that a small store is not rewritten at each flush.
 * Four keeps the file within a few times the table's size while rewrites
 * (half a second of work per million files) stay rare. */
#define STORE_COMPACT_FACTOR 4
#define STORE_COMPACT_SLACK 4096
/* A compaction formats this many entries per hold of the store lock (under
 * a millisecond: walking a large table in LRU order is a cache miss per
 * entry), so that requests go on while a large index is rewritten. */
#define STORE_COMPACT_BATCH 1024
/* Records waiting for the next flush (once a second in a server): past
 * this the journal is marked for a rewrite instead of growing memory. */
#define STORE_PENDING_MAX ((size_t)64 << 20)
/* Index reads and rewrites go through buffers of this size. */
#define STORE_IO_CHUNK ((size_t)1 << 20)
/* Entries in an index of the earlier format (one per line, never more). */
#define STORE_V1_MAX ((size_t)1 << 26)

/* A link of a circular doubly linked list with a sentinel. */
struct store_link {
	struct store_link *prev, *next;
};

enum {
	STORE_HAS_DIGEST = 1,  /* sha holds the origin's digest */
	STORE_REMOVED = 2,     /* out of the table; freed at the last release */
	STORE_PARKED = 4,      /* pinned, on the parked list */
	STORE_SEEN = 8         /* found by the start-up walk */
};

struct mir_entry {
	struct mir_entry *hnext;     /* hash chain */
	struct store_link lru;
	uint64_t size;
	int64_t mtime_s;
	int32_t mtime_ns;
	int32_t pins;
	uint32_t hash;               /* of path: chains compare it first */
	int64_t verified_ms;         /* hc_now_ms of the last match, 0: not since the start */
	/* hc_now_ms when it was stored or last read; files loaded at start-up
	 * count as read then (the index keeps no times). */
	int64_t touched_ms;
	unsigned char sha[HC_SHA256_LEN];
	unsigned char flags;
	char path[];
};

struct mir_store {
	pthread_mutex_t mu;
	pthread_mutex_t flush_mu;    /* one index writer at a time */
	char files_dir[PATH_MAX];
	char files_real[PATH_MAX];
	char tmp_dir[PATH_MAX];
	char meta_dir[PATH_MAX];
	char index_path[PATH_MAX];
	int files_fd;                /* files_dir, for openat2 beneath it */
	int tmp_fd;                  /* evicted files wait here to be unlinked */
	int lock_fd;                 /* meta/lock, held while the store is open */
	int journal_fd;              /* meta/index, appended (flush_mu) */
	struct mir_entry **buckets;
	size_t nbuckets, n;
	struct store_link lru;       /* oldest first */
	struct store_link parked;    /* pinned entries an eviction passed over */
	struct store_link cursor;    /* in lru while a compaction walks it */
	int compacting;              /* parked entries stay parked (mu) */
	int rewriting;               /* journal_fd is being replaced (mu) */
	struct hc_buf pending;       /* records not yet in the journal (mu) */
	uint64_t pending_records;    /* (mu) */
	uint64_t journal_records;    /* records in meta/index (mu) */
	uint64_t bytes, reserved, max_bytes, evictions, unverified, evict_seq;
	uint64_t corrupt;            /* files removed for not matching their digest */
	int exclusive;               /* a peer: never digests its own bytes */
	int compact;                 /* the journal misses records: rewrite it (mu) */
};

#define STORE_ENTRY(l) ((struct mir_entry *)(void *)((char *)(l) - offsetof(struct mir_entry, lru)))

static void
link_init(struct store_link *l)
{
	l->prev = l;
	l->next = l;
}

static void
link_del(struct store_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

/* Inserts l after at. */
static void
link_add_after(struct store_link *at, struct store_link *l)
{
	l->prev = at;
	l->next = at->next;
	at->next->prev = l;
	at->next = l;
}

/* FNV-1a, folded to 32 bits. */
static uint32_t
store_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static struct mir_entry *
store_find(struct mir_store *st, const char *path)
{
	uint32_t h = store_hash(path);
	struct mir_entry *e = st->buckets[h & (st->nbuckets - 1)];

	for (; e != NULL; e = e->hnext)
		if (e->hash == h && strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

static void
store_grow(struct mir_store *st)
{
	size_t nb = st->nbuckets * 2, i;
	struct mir_entry **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return;  /* longer chains, still correct */
	for (i = 0; i < st->nbuckets; i++) {
		struct mir_entry *e = st->buckets[i], *next;
		for (; e != NULL; e = next) {
			size_t k = e->hash & (nb - 1);
			next = e->hnext;
			e->hnext = b[k];
			b[k] = e;
		}
	}
	free(st->buckets);
	st->buckets = b;
	st->nbuckets = nb;
}

/* Sizes the empty table for an index of size bytes. */
static void
store_presize(struct mir_store *st, uint64_t size)
{
	size_t want = STORE_BUCKETS_MIN;
	struct mir_entry **b;

	while (want < STORE_BUCKETS_MAX && want < size / STORE_INDEX_BYTES_PER_BUCKET)
		want *= 2;
	if (want <= st->nbuckets || st->n > 0)
		return;
	b = calloc(want, sizeof(*b));
	if (b == NULL)
		return;  /* grown as entries come */
	free(st->buckets);
	st->buckets = b;
	st->nbuckets = want;
}

/* Lower-case hex of the entry's digest, "" when it has none. */
static void
store_sha_hex(const struct mir_entry *e, char hex[HC_SHA256_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	hex[0] = '\0';
	if (!(e->flags & STORE_HAS_DIGEST))
		return;
	for (i = 0; i < HC_SHA256_LEN; i++) {
		hex[2 * i] = digits[e->sha[i] >> 4];
		hex[2 * i + 1] = digits[e->sha[i] & 15];
	}
	hex[HC_SHA256_HEX_LEN] = '\0';
}

/* Sets the entry's digest from hex, checked by the caller ("" for none). */
static void
store_sha_set(struct mir_entry *e, const char *hex)
{
	size_t i;

	e->flags &= (unsigned char)~STORE_HAS_DIGEST;
	if (hex[0] == '\0')
		return;
	for (i = 0; i < HC_SHA256_LEN; i++)
		e->sha[i] = (unsigned char)(hc_hex_value(hex[2 * i]) << 4 |
		                            hc_hex_value(hex[2 * i + 1]));
	e->flags |= STORE_HAS_DIGEST;
}

static struct mir_entry *
store_entry_new(const char *path, uint64_t size, int64_t mtime_s, long mtime_ns,
                const char *sha256)
{
	size_t len = strlen(path);
	struct mir_entry *e = calloc(1, sizeof(*e) + len + 1);

	if (e == NULL)
		return NULL;
	memcpy(e->path, path, len + 1);
	e->hash = store_hash(path);
	link_init(&e->lru);
	e->size = size;
	e->mtime_s = mtime_s;
	e->mtime_ns = (int32_t)mtime_ns;
	store_sha_set(e, sha256);
	return e;
}

static struct mir_entry *
store_entry_stat(const char *path, const struct stat *sb, const char *sha256)
{
	return store_entry_new(path, (uint64_t)sb->st_size, (int64_t)sb->st_mtim.tv_sec,
	                       sb->st_mtim.tv_nsec, sha256);
}

static int
store_same_file(const struct mir_entry *e, const struct stat *sb)
{
	return e->size == (uint64_t)sb->st_size && e->mtime_s == (int64_t)sb->st_mtim.tv_sec &&
	       e->mtime_ns == (int32_t)sb->st_mtim.tv_nsec;
}

/* A path we can write into the index: not empty, no control characters. */
static int
store_path_ok(const char *p)
{
	if (*p == '\0')
		return 0;
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* ------------------------------------------------------------ journal */

/* The journal lost a record (memory, or STORE_PENDING_MAX): the next flush
 * rewrites it from the table instead. Caller holds mu. */
static void
store_overflow(struct mir_store *st)
{
	st->compact = 1;
	hc_buf_reset(&st->pending);
	st->pending_records = 0;
}

/* Appends a touch ('T') or remove ('R') record for the next flush. Caller
 * holds mu. */
static void
store_note(struct mir_store *st, char kind, const char *path)
{
	if (st->compact)
		return;  /* the rewrite takes everything from the table */
	if (hc_buf_printf(&st->pending, "%c %s\n", kind, path) != 0)
		store_overflow(st);
	else
		st->pending_records++;
}

/* Formats the record of e of the given kind ('A' at the young end, 'P' at
 * the old end) into b: 0, HC_EDATA or HC_ENOMEM. */
static int
store_add_record(struct hc_buf *b, char kind, const struct mir_entry *e)
{
	char hex[HC_SHA256_HEX_LEN + 1];

	store_sha_hex(e, hex);
	return hc_buf_printf(b, "%c %" PRIu64 " %" PRId64 " %" PRId32 " %s %s\n", kind, e->size,
	                     e->mtime_s, e->mtime_ns, hex[0] != '\0' ? hex : STORE_NO_DIGEST,
	                     e->path);
}

/* ------------------------------------------------------------ the table */

/* Adds e to the table at the young end of the LRU, without a record. */
static void
store_insert(struct mir_store *st, struct mir_entry *e)
{
	size_t k;

	if (st->n >= st->nbuckets)
		store_grow(st);
	k = e->hash & (st->nbuckets - 1);
	e->hnext = st->buckets[k];
	st->buckets[k] = e;
	link_add_after(st->lru.prev, &e->lru);
	e->touched_ms = hc_now_ms();
	st->n++;
	st->bytes += e->size;
	if (!(e->flags & STORE_HAS_DIGEST))
		st->unverified++;
}

/* The same, with its record. */
static void
store_add(struct mir_store *st, struct mir_entry *e)
{
	store_insert(st, e);
	if (st->compact)
		return;
	if (store_add_record(&st->pending, 'A', e) != 0)
		store_overflow(st);
	else
		st->pending_records++;
}

/* Takes e out of the table and the lists, without a record; it is freed
 * now or at its last release. */
static void
store_take(struct mir_store *st, struct mir_entry *e)
{
	struct mir_entry **pp = &st->buckets[e->hash & (st->nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	link_del(&e->lru);
	st->n--;
	st->bytes -= e->size;
	if (!(e->flags & STORE_HAS_DIGEST))
		st->unverified--;
	if (e->pins > 0)
		e->flags = (unsigned char)((e->flags | STORE_REMOVED) & ~STORE_PARKED);
	else
		free(e);
}

/* The same, with a remove record. */
static void
store_forget(struct mir_store *st, struct mir_entry *e)
{
	store_note(st, 'R', e->path);
	store_take(st, e);
}

/* Moves e to the young end of the LRU. */
static void
store_move_young(struct mir_store *st, struct mir_entry *e)
{
	link_del(&e->lru);
	link_add_after(st->lru.prev, &e->lru);
	e->touched_ms = hc_now_ms();
	e->flags &= (unsigned char)~STORE_PARKED;
}

static void
store_touch(struct mir_store *st, struct mir_entry *e)
{
	store_move_young(st, e);
	store_note(st, 'T', e->path);
}

/* The least recently used unpinned entry, or NULL. Pinned entries met on
 * the way are parked, so each is passed over once per pin. Caller holds mu. */
static struct mir_entry *
store_victim(struct mir_store *st)
{
	struct store_link *l = st->lru.next, *next;

	for (; l != &st->lru; l = next) {
		struct mir_entry *e;

		next = l->next;
		if (l == &st->cursor)
			continue;
		e = STORE_ENTRY(l);
		if (e->pins == 0) {
			/* Evictions come in runs (a large fill makes room for
			 * itself): fetch the next victim while this one goes. */
			__builtin_prefetch(next);
			return e;
		}
		link_del(l);
		link_add_after(st->parked.prev, l);
		e->flags |= STORE_PARKED;
	}
	return NULL;
}

/* Puts a parked entry no longer pinned back at the old end: it was the
 * oldest when an eviction passed it over. */
static void
store_unpark(struct mir_store *st, struct mir_entry *e)
{
	link_del(&e->lru);
	link_add_after(&st->lru, &e->lru);
	e->flags &= (unsigned char)~STORE_PARKED;
}

/* ------------------------------------------------------------ start-up */

static int
store_clean_one(void *ctx, const struct hc_walk_entry *we, struct hc_err *err)
{
	int *removed = ctx;

	(void)err;
	if (S_ISDIR(we->st->st_mode))
		return HC_WALK_SKIP;
	if (unlinkat(we->dirfd, we->name, 0) == 0)
		(*removed)++;
	else
		hc_log(HC_LOG_WARN, "mirror", "cannot remove stale temp file %s: %s", we->rel,
		       strerror(errno));
	return 0;
}

static int
store_clean_tmp(struct mir_store *st, struct hc_err *err)
{
	int removed = 0, rc;

	rc = hc_walk(st->tmp_fd, st->tmp_dir, 0, 0, store_clean_one, &removed, err);
	if (rc != 0)
		return rc;
	if (removed > 0)
		hc_log(HC_LOG_INFO, "mirror", "removed %d stale temp files from %s", removed,
		       st->tmp_dir);
	return 0;
}

/* Removes the index temp files a crash left in meta/. */
static int
store_clean_meta_one(void *ctx, const struct hc_walk_entry *we, struct hc_err *err)
{
	(void)ctx;
	(void)err;
	if (S_ISDIR(we->st->st_mode))
		return HC_WALK_SKIP;
	if (strncmp(we->name, STORE_INDEX_TMP, strlen(STORE_INDEX_TMP)) == 0)
		(void)unlinkat(we->dirfd, we->name, 0);
	return 0;
}

/* A peer owns its root: a second server there would delete its temp files,
 * evict behind its back and write its index, so it locks exclusively.
 * Origins may share a read-mostly root (two ports on one store); only the
 * first one cleans up (*alone). */
static int
store_lock(struct mir_store *st, int exclusive, int *alone, struct hc_err *err)
{
	char path[PATH_MAX];
	struct hc_err werr = { 0, "" };
	int mfd;

	*alone = 0;
	if (hc_snprintf(path, sizeof(path), "%s/lock", st->meta_dir) != 0)
		return hc_err_set(err, HC_ECONFIG, "root too long");
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (st->lock_fd < 0)
		return hc_err_set(err, HC_EIO, "open %s: %s", path, strerror(errno));
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) == 0) {
		*alone = 1;
		if (!exclusive)
			(void)flock(st->lock_fd, LOCK_SH | LOCK_NB);
	} else if (exclusive || flock(st->lock_fd, LOCK_SH | LOCK_NB) != 0) {
		return hc_err_set(err, HC_EUNAVAIL, "%s: another hydra-mirror uses this root%s",
		                  path, exclusive ? "" : " as a peer");
	}
	if (!*alone)
		return 0;
	mfd = open(st->meta_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (mfd < 0)
		return 0;
	(void)hc_walk(mfd, st->meta_dir, 0, 0, store_clean_meta_one, NULL, &werr);
	close(mfd);
	return 0;
}

/* Parses "SIZE MTIME_S MTIME_NS SHA PATH" (an add record after its kind)
 * into a new entry; NULL for a malformed one or out of memory (*nomem).
 * Takes exactly what store_add_record writes: one space between fields,
 * no sign but mtime_s's '-', the path the rest of the line. */
static struct mir_entry *
store_parse_add(const char *p, int *nomem)
{
	char sha[HC_SHA256_HEX_LEN + 1];
	uint64_t size, mtime_ns;
	int64_t mtime_s;
	struct mir_entry *e;

	/* A size is a file's, so within off_t; a nanosecond field is below a second. */
	if (hc_scan_u64(&p, &size) != 0 || size > INT64_MAX || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_i64(&p, &mtime_s) != 0 || hc_scan_sep(&p, ' ') != 0 ||
	    hc_scan_u64(&p, &mtime_ns) != 0 || mtime_ns > 999999999 ||
	    hc_scan_sep(&p, ' ') != 0 || hc_scan_word(&p, sha, sizeof(sha)) != 0 ||
	    hc_scan_sep(&p, ' ') != 0)
		return NULL;
	if (strcmp(sha, STORE_NO_DIGEST) == 0)
		sha[0] = '\0';
	else if (!hc_sha256_hex_valid(sha))
		return NULL;
	if (!store_path_ok(p) || strlen(p) >= MIR_PATH_MAX)
		return NULL;
	e = store_entry_new(p, size, mtime_s, (long)mtime_ns, sha);
	if (e == NULL)
		*nomem = 1;
	return e;
}

/* Applies one journal record. 0, 1 for a malformed record, HC_ENOMEM. */
static int
store_replay(struct mir_store *st, char *line)
{
	struct mir_entry *e, *old;
	int nomem = 0;

	if (line[0] == '\0' || line[1] != ' ')
		return 1;
	switch (line[0]) {
	case 'A':
	case 'P':
		e = store_parse_add(line + 2, &nomem);
		if (e == NULL)
			return nomem ? HC_ENOMEM : 1;
		old = store_find(st, e->path);
		if (old != NULL)
			store_take(st, old);
		store_insert(st, e);
		if (line[0] == 'P') {
			link_del(&e->lru);
			link_add_after(&st->lru, &e->lru);
		}
		break;
	case 'T':
		e = store_find(st, line + 2);
		if (e != NULL)
			store_move_young(st, e);
		break;
	case 'R':
		e = store_find(st, line + 2);
		if (e != NULL)
			store_take(st, e);
		break;
	default:
		return 1;
	}
	st->journal_records++;
	return 0;
}

/* An entry of an index in the earlier format and its access number. */
struct store_v1 {
	uint64_t seq;
	struct mir_entry *e;
};

struct store_v1_list {
	struct store_v1 *items;
	size_t n, cap;
};

/* Reads "SEQ SIZE MTIME_S MTIME_NS SHA PATH" into l. 0, 1 (malformed),
 * HC_ENOMEM. */
static int
store_replay_v1(struct store_v1_list *l, const char *line)
{
	uint64_t seq;
	struct mir_entry *e;
	void *items = l->items;
	int nomem = 0, rc;

	if (hc_scan_u64(&line, &seq) != 0 || hc_scan_sep(&line, ' ') != 0)
		return 1;
	e = store_parse_add(line, &nomem);
	if (e == NULL)
		return nomem ? HC_ENOMEM : 1;
	rc = hc_array_reserve(&items, &l->cap, l->n + 1, sizeof(*l->items), STORE_V1_MAX);
	l->items = items;
	if (rc != 0) {
		free(e);
		return rc;
	}
	l->items[l->n].seq = seq;
	l->items[l->n].e = e;
	l->n++;
	return 0;
}

static int
store_v1_cmp(const void *a, const void *b)
{
	const struct store_v1 *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Inserts the entries of an earlier index, least recently used first. */
static void
store_v1_apply(struct mir_store *st, struct store_v1_list *l)
{
	size_t i;

	if (l->n > 1)
		qsort(l->items, l->n, sizeof(*l->items), store_v1_cmp);
	for (i = 0; i < l->n; i++) {
		struct mir_entry *old = store_find(st, l->items[i].e->path);
		if (old != NULL)
			store_take(st, old);
		store_insert(st, l->items[i].e);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* Where a journal being read stands. */
struct store_reader {
	int version;        /* 0 before the first line, then 1 or 2 */
	size_t bad;         /* malformed records skipped */
	struct store_v1_list v1;
};

/* One complete line (newline removed). 0 or HC_ENOMEM. */
static int
store_load_line(struct mir_store *st, struct store_reader *r, char *line)
{
	int rc;

	if (r->version == 0) {
		if (strncmp(line, STORE_INDEX_MAGIC, strlen(STORE_INDEX_MAGIC) - 1) == 0)
			r->version = 2;
		else if (strncmp(line, STORE_INDEX_MAGIC_V1, strlen(STORE_INDEX_MAGIC_V1) - 1) == 0)
			r->version = 1;
		else
			r->version = -1;
		return 0;
	}
	if (r->version < 0)
		return 0;
	rc = r->version == 1 ? store_replay_v1(&r->v1, line) : store_replay(st, line);
	if (rc > 0)
		r->bad++;
	return rc < 0 ? rc : 0;
}

/* A store with no index yet: an empty journal now, so that the first
 * commits can be written to it at once (else the first flush writes it). */
static int
store_new_index(struct mir_store *st)
{
	int fd = open(st->index_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0 || hc_write_all(fd, STORE_INDEX_MAGIC, strlen(STORE_INDEX_MAGIC)) != 0)
		st->compact = 1;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* Replays meta/index into the table, reading it in chunks so that a large
 * index costs no more memory than its table. A torn last record (a crash
 * in the middle of an append) and malformed records are skipped; either
 * makes the next flush rewrite the journal. */
static int
store_load(struct mir_store *st, struct hc_err *err)
{
	struct store_reader r = { 0, 0, { NULL, 0, 0 } };
	struct stat sb;
	char *buf = NULL;
	size_t have = 0;
	int fd = -1, rc = 0;

	fd = open(st->index_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return store_new_index(st);
	if (fd < 0) {
		st->compact = 1;
		return hc_err_set(err, HC_EIO, "open %s: %s", st->index_path, strerror(errno));
	}
	if (fstat(fd, &sb) == 0)
		store_presize(st, (uint64_t)sb.st_size);
	buf = malloc(STORE_IO_CHUNK + 1);
	if (buf == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	for (;;) {
		char *line = buf, *nl;
		ssize_t got = read(fd, buf + have, STORE_IO_CHUNK - have);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = hc_err_set(err, HC_EIO, "read %s: %s", st->index_path, strerror(errno));
			goto done;
		}
		if (got == 0)
			break;
		have += (size_t)got;
		buf[have] = '\0';
		for (;;) {
			nl = memchr(line, '\n', have - (size_t)(line - buf));
			if (nl == NULL)
				break;
			*nl = '\0';
			rc = store_load_line(st, &r, line);
			if (rc != 0) {
				rc = hc_err_set(err, rc, "%s: %s", st->index_path, rc == HC_ENOMEM ?
				                "out of memory" : "too many records");
				goto done;
			}
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == STORE_IO_CHUNK) {
			r.bad++;  /* no record is this long */
			have = 0;
		}
	}
	if (have > 0) {
		hc_log(HC_LOG_WARN, "mirror", "%s: ignoring a torn last record (%zu bytes)",
		       st->index_path, have);
		st->compact = 1;
	}
	if (r.version < 0)
		hc_log(HC_LOG_WARN, "mirror", "%s: not an index, rebuilding it", st->index_path);
	if (r.bad > 0)
		hc_log(HC_LOG_WARN, "mirror", "%s: skipped %zu malformed records", st->index_path,
		       r.bad);
	if (r.version != 2 || r.bad > 0)
		st->compact = 1;
	store_v1_apply(st, &r.v1);
done:
	for (have = 0; have < r.v1.n; have++)
		free(r.v1.items[have].e);
	free(r.v1.items);
	free(buf);
	close(fd);
	return rc;
}

/* The start-up walk of an origin's files/: keeps the records that still
 * describe their file, digests the others (files put there by hand are
 * the origin's own publication). */
struct store_scan {
	struct mir_store *st;
	size_t hashed;
};

static int store_hash_fd(int fd, const struct stat *sb, char hex[HC_SHA256_HEX_LEN + 1],
                         struct hc_err *err);

static int
store_scan_one(void *ctx, const struct hc_walk_entry *we, struct hc_err *err)
{
	struct store_scan *sc = ctx;
	struct mir_store *st = sc->st;
	struct mir_entry *e;
	char hex[HC_SHA256_HEX_LEN + 1];
	struct hc_err herr = { 0, "" };
	int fd, rc;

	if (!S_ISREG(we->st->st_mode))
		return 0;
	if (!store_path_ok(we->rel)) {
		hc_log(HC_LOG_WARN, "mirror", "skipping a file with a control character in its name");
		return 0;
	}
	e = store_find(st, we->rel);
	if (e != NULL && store_same_file(e, we->st)) {
		e->flags |= STORE_SEEN;
		return 0;
	}
	fd = openat(we->dirfd, we->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	rc = fd < 0 ? hc_err_set(&herr, HC_EIO, "%s", strerror(errno))
	            : store_hash_fd(fd, we->st, hex, &herr);
	if (fd >= 0)
		close(fd);
	if (rc != 0) {
		hc_log(HC_LOG_WARN, "mirror", "cannot hash %s/%s: %s", st->files_dir, we->rel,
		       herr.msg);
		return 0;
	}
	sc->hashed++;
	if (e != NULL)
		store_take(st, e);
	e = store_entry_stat(we->rel, we->st, hex);
	if (e == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	e->flags |= STORE_SEEN;
	store_add(st, e);
	return 0;
}

/* Drops the records of files the walk did not find. */
static void
store_drop_unseen(struct mir_store *st)
{
	struct store_link *l = st->lru.next, *next;

	for (; l != &st->lru; l = next) {
		struct mir_entry *e = STORE_ENTRY(l);

		next = l->next;
		if (e->flags & STORE_SEEN)
			e->flags &= (unsigned char)~STORE_SEEN;
		else
			store_forget(st, e);
	}
}

/* An origin walks files/ to find what changed while it was down; a peer
 * trusts its journal (a missing file is dropped when asked for), so that
 * a restart costs the index, not a walk of a million files. */
static int
store_scan_files(struct mir_store *st, struct hc_err *err)
{
	struct store_scan sc = { st, 0 };
	int rc;

	if (!st->exclusive) {
		rc = hc_walk(st->files_fd, st->files_dir, STORE_WALK_DEPTH, 0, store_scan_one, &sc,
		             err);
		if (rc != 0)
			return rc;
		store_drop_unseen(st);
	}
	hc_log(HC_LOG_INFO, "mirror", "store %s: %zu files, %" PRIu64 " bytes, %zu hashed now",
	       st->files_dir, st->n, st->bytes, sc.hashed);
	return 0;
}

static int
store_open_dirs(struct mir_store *st, const char *root, struct hc_err *err)
{
	int rc;

	if (hc_snprintf(st->files_dir, sizeof(st->files_dir), "%s/files", root) != 0 ||
	    hc_snprintf(st->tmp_dir, sizeof(st->tmp_dir), "%s/tmp", root) != 0 ||
	    hc_snprintf(st->meta_dir, sizeof(st->meta_dir), "%s/meta", root) != 0 ||
	    hc_snprintf(st->index_path, sizeof(st->index_path), "%s/meta/index", root) != 0)
		return hc_err_set(err, HC_ECONFIG, "root too long: %s", root);
	rc = hc_mkdir_p(st->files_dir, 0755, err);
	if (rc == 0)
		rc = hc_mkdir_p(st->tmp_dir, 0700, err);
	if (rc == 0)
		rc = hc_mkdir_p(st->meta_dir, 0755, err);
	if (rc != 0)
		return rc;
	st->files_fd = open(st->files_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->files_fd < 0)
		return hc_err_set(err, HC_EIO, "open %s: %s", st->files_dir, strerror(errno));
	st->tmp_fd = open(st->tmp_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (st->tmp_fd < 0)
		return hc_err_set(err, HC_EIO, "open %s: %s", st->tmp_dir, strerror(errno));
	if (realpath(st->files_dir, st->files_real) == NULL)
		return hc_err_set(err, HC_EIO, "realpath %s: %s", st->files_dir, strerror(errno));
	return 0;
}

static int
store_open_journal(struct mir_store *st, struct hc_err *err)
{
	if (st->journal_fd >= 0)
		close(st->journal_fd);
	st->journal_fd = open(st->index_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	                      O_CLOEXEC, 0644);
	if (st->journal_fd < 0)
		return hc_err_set(err, HC_EIO, "open %s: %s", st->index_path, strerror(errno));
	return 0;
}

int
mir_store_open(const char *root, uint64_t max_bytes, int exclusive,
               struct mir_store **out, struct hc_err *err)
{
	int alone = 0;
	struct mir_store *st = NULL;
	int rc;

	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->flush_mu, NULL);
	st->max_bytes = max_bytes;
	st->exclusive = exclusive;
	st->files_fd = -1;
	st->tmp_fd = -1;
	st->lock_fd = -1;
	st->journal_fd = -1;
	link_init(&st->lru);
	link_init(&st->parked);
	link_init(&st->cursor);
	hc_buf_init(&st->pending, STORE_PENDING_MAX);
	st->nbuckets = STORE_BUCKETS_MIN;
	st->buckets = calloc(st->nbuckets, sizeof(*st->buckets));
	if (st->buckets == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto fail;
	}
	rc = store_open_dirs(st, root, err);
	if (rc == 0)
		rc = store_lock(st, exclusive, &alone, err);
	if (rc == 0 && alone)
		rc = store_clean_tmp(st, err);
	if (rc == 0)
		rc = store_load(st, err);
	if (rc == 0)
		rc = store_scan_files(st, err);
	if (rc == 0)
		rc = store_open_journal(st, err);
	if (rc != 0)
		goto fail;
	/* A rewrite the index needs (a torn record, the earlier format) is
	 * left to the first flush, while the server already serves. */
	*out = st;
	return 0;
fail:
	mir_store_close(st);
	return rc;
}

void
mir_store_close(struct mir_store *st)
{
	struct hc_err err = { 0, "" };
	size_t i;

	if (st == NULL)
		return;
	if (st->journal_fd >= 0 && mir_store_flush(st, &err) != 0)
		hc_log(HC_LOG_WARN, "mirror", "%s", err.msg);
	for (i = 0; st->buckets != NULL && i < st->nbuckets; i++) {
		struct mir_entry *e = st->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	free(st->buckets);
	hc_buf_free(&st->pending);
	if (st->files_fd >= 0)
		close(st->files_fd);
	if (st->tmp_fd >= 0)
		close(st->tmp_fd);
	if (st->journal_fd >= 0)
		close(st->journal_fd);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->flush_mu);
	free(st);
}

/* ------------------------------------------------------------ serving */

/* Resolves the decoded path to its real file inside the store. rel points
 * into real. HC_ENOTFOUND or HC_EDATA (outside the store). */
static int
store_resolve(struct mir_store *st, const char *path, char *real, const char **rel,
              struct hc_err *err)
{
	char full[PATH_MAX];
	size_t n = strlen(st->files_real);

	if (hc_snprintf(full, sizeof(full), "%s/%s", st->files_dir, path) != 0)
		return hc_err_set(err, HC_EDATA, "path too long");
	if (realpath(full, real) == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return hc_err_set(err, HC_ENOTFOUND, "not found");
		return hc_err_set(err, HC_EIO, "resolve: %s", strerror(errno));
	}
	if (strncmp(real, st->files_real, n) != 0 || real[n] != '/')
		return hc_err_set(err, HC_EDATA, "path leads outside the store");
	*rel = real + n + 1;
	return 0;
}

/* The status of a failed open of a stored file: absent, a way out, or a
 * server fault (out of fds, no permission) that must not read as absent, or
 * a peer would fill again what it has. */
static int
store_open_status(int e, struct hc_err *err)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case ENAMETOOLONG:
	case ENXIO:  /* a socket */
		return hc_err_set(err, HC_ENOTFOUND, "not found");
	case EXDEV:
	case ELOOP:
		return hc_err_set(err, HC_EDATA, "path leads outside the store");
	default:
		return hc_err_set(err, HC_EIO, "open: %s", strerror(e));
	}
}

/* Opens path with every step of its resolution kept beneath the store (one
 * system call, no window between check and open). O_NONBLOCK: a FIFO must
 * not hold the request thread. HC_ENOTFOUND, HC_EDATA for a way out,
 * HC_EIO, HC_ESOFTWARE when the kernel lacks openat2. */
static int
store_open_beneath(struct mir_store *st, const char *path, int flags, int *fd,
                   struct hc_err *err)
{
	struct open_how how;
	long r;
	int tries = 0;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)flags;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	do {
		r = syscall(SYS_openat2, st->files_fd, path, &how, sizeof(how));
	} while (r < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < STORE_OPEN_TRIES)));
	if (r >= 0) {
		*fd = (int)r;
		return 0;
	}
	if (errno == ENOSYS)
		return HC_ESOFTWARE;
	return store_open_status(errno, err);
}

/* The SHA-256 of the open file fd of sb->st_size bytes, into hex. */
static int
store_hash_fd(int fd, const struct stat *sb, char hex[HC_SHA256_HEX_LEN + 1],
              struct hc_err *err)
{
	struct hc_sha256 *h = hc_sha256_new();
	int rc;

	if (h == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = hc_sha256_fd(h, fd, (off_t)sb->st_size, err);
	if (rc == 0)
		rc = hc_sha256_hex(h, hex);
	hc_sha256_free(h);
	return rc;
}

/* Removes the stored file rel when it is still the file sb describes (not a
 * newer commit, not a link put in its place). Caller holds mu, so no commit
 * can rename in between. 1 when that file is no longer at rel. */
static int
store_remove_if_same(struct mir_store *st, const char *rel, const struct stat *sb)
{
	struct stat now;

	if (fstatat(st->files_fd, rel, &now, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT;
	if (now.st_dev != sb->st_dev || now.st_ino != sb->st_ino)
		return 0;  /* a commit replaced it: its record is the new one */
	if (unlinkat(st->files_fd, rel, 0) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "remove %s: %s", rel, strerror(errno));
		return 0;
	}
	return 1;
}

/* A peer's file that its record does not vouch for (why): removed, and
 * absent, so that it is filled again from the origin. Caller holds mu. */
static int
store_untrusted(struct mir_store *st, const char *rel, const struct stat *sb,
                struct mir_entry *e, const char *why, struct hc_err *err)
{
	hc_log(HC_LOG_WARN, "mirror", "%s %s; removed", rel, why);
	st->corrupt++;
	if (store_remove_if_same(st, rel, sb) && e != NULL)
		store_forget(st, e);
	return hc_err_set(err, HC_ENOTFOUND, "%s: %s", rel, why);
}

/* Brings the record of rel up to date with the open file fd (sb), which
 * differs from it or has none. Caller holds mu; it is dropped while hashing.
 * A peer records a file it has no record of as unverified (no digest: it
 * never digests its own bytes), checks a changed file against the origin's
 * digest and removes it when it no longer matches, as it does a changed
 * file it has no digest for (HC_ENOTFOUND, so that it is filled again). An
 * origin digests its own files. On success *ep is the current entry, mu
 * held. */
static int
store_refresh(struct mir_store *st, int fd, const char *rel, const struct stat *sb,
              struct mir_entry **ep, struct hc_err *err)
{
	char hex[HC_SHA256_HEX_LEN + 1] = "", want[HC_SHA256_HEX_LEN + 1] = "";
	char why[2 * HC_SHA256_HEX_LEN + 64];
	struct mir_entry *e = *ep;
	int rc;

	if (e != NULL)
		store_sha_hex(e, want);
	if (st->exclusive && e != NULL && want[0] == '\0')
		return store_untrusted(st, rel, sb, e,
		                       "changed on disk and has no digest to check it against", err);
	if (!st->exclusive || e != NULL) {
		pthread_mutex_unlock(&st->mu);
		rc = store_hash_fd(fd, sb, hex, err);
		pthread_mutex_lock(&st->mu);
		if (rc != 0)
			return rc;
	}
	e = store_find(st, rel);
	if (st->exclusive && strcmp(hex, want) != 0) {
		(void)hc_snprintf(why, sizeof(why), "changed on disk: expected sha256 %s, found %s",
		                  want, hex);
		return store_untrusted(st, rel, sb, e, why, err);
	}
	if (e != NULL)
		store_take(st, e);
	e = store_entry_stat(rel, sb, hex);
	if (e == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	store_add(st, e);
	*ep = e;
	return 0;
}

/* After an open found nothing at path: drops its record when the file is
 * still absent (a peer trusts its journal at start-up, so a file removed
 * behind its back is noticed here). */
static void
store_drop_absent(struct mir_store *st, const char *path)
{
	struct mir_entry *e;
	struct stat sb;

	pthread_mutex_lock(&st->mu);
	e = store_find(st, path);
	if (e != NULL && fstatat(st->files_fd, path, &sb, AT_SYMLINK_NOFOLLOW) != 0 &&
	    errno == ENOENT)
		store_forget(st, e);
	pthread_mutex_unlock(&st->mu);
}

/* Opens path beneath the store with open flags: fd and rel (path, or its
 * resolution inside real without openat2). */
static int
store_open_file(struct mir_store *st, const char *path, int flags, char *real,
                const char **rel, int *fd, struct hc_err *err)
{
	int rc = store_open_beneath(st, path, flags, fd, err);

	if (rc == 0) {
		*rel = path;
		return 0;
	}
	if (rc != HC_ESOFTWARE)
		return rc;
	/* No openat2 in this kernel: resolve, check, then open. */
	rc = store_resolve(st, path, real, rel, err);
	if (rc != 0)
		return rc;
	*fd = open(real, flags | O_NOFOLLOW);
	if (*fd < 0)
		return store_open_status(errno, err);
	return 0;
}

int
mir_store_get(struct mir_store *st, const char *path, int touch, struct mir_file *out,
              struct hc_err *err)
{
	char real[PATH_MAX];
	const char *rel = path;
	struct stat sb;
	struct mir_entry *e;
	int fd = -1, rc;

	out->fd = -1;
	out->entry = NULL;
	rc = store_open_file(st, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, real, &rel, &fd, err);
	if (rc == HC_ENOTFOUND)
		store_drop_absent(st, path);
	if (rc != 0)
		return rc;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = hc_err_set(err, HC_ENOTFOUND, "not a regular file");
		goto fail;
	}
	if (!store_path_ok(rel)) {
		rc = hc_err_set(err, HC_EDATA, "control character in path");
		goto fail;
	}
	pthread_mutex_lock(&st->mu);
	e = store_find(st, rel);
	if (e == NULL || !store_same_file(e, &sb)) {
		rc = store_refresh(st, fd, rel, &sb, &e, err);
		if (rc != 0) {
			pthread_mutex_unlock(&st->mu);
			goto fail;
		}
	} else if (touch) {
		store_touch(st, e);
	}
	e->pins++;
	out->fd = fd;
	out->size = e->size;
	out->mtime_s = e->mtime_s;
	store_sha_hex(e, out->sha256);
	out->verified_ms = e->verified_ms;
	out->entry = e;
	pthread_mutex_unlock(&st->mu);
	return 0;
fail:
	close(fd);
	return rc;
}

void
mir_store_release(struct mir_store *st, struct mir_entry *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	e->pins--;
	if (e->pins == 0 && (e->flags & STORE_REMOVED)) {
		free(e);
	} else if (e->pins == 0 && (e->flags & STORE_PARKED) && !st->compacting) {
		store_unpark(st, e);
	}
	pthread_mutex_unlock(&st->mu);
}

/* ------------------------------------------------------------ verification */

int
mir_store_check(struct mir_store *st, const struct mir_file *f, const char *found,
                struct hc_err *err)
{
	char want[HC_SHA256_HEX_LEN + 1];
	struct mir_entry *e = f->entry;
	struct stat sb;
	int rc = MIR_CHECK_EVICTED;

	if (fstat(f->fd, &sb) != 0)
		return hc_err_set(err, HC_EIO, "%s: fstat: %s", e->path, strerror(errno));
	pthread_mutex_lock(&st->mu);
	if (e->flags & STORE_REMOVED) {
		rc = hc_err_set(err, HC_ENOTFOUND, "%s: replaced or removed meanwhile", e->path);
		goto done;
	}
	if (!(e->flags & STORE_HAS_DIGEST)) {
		rc = MIR_CHECK_UNVERIFIABLE;
		goto done;
	}
	store_sha_hex(e, want);
	if (strcmp(want, found) == 0 && store_same_file(e, &sb)) {
		e->verified_ms = hc_now_ms();
		rc = MIR_CHECK_OK;
		goto done;
	}
	hc_log(HC_LOG_WARN, "mirror", "%s corrupt: expected sha256 %s, found %s; evicted",
	       e->path, want, found);
	st->corrupt++;
	if (store_remove_if_same(st, e->path, &sb))
		store_forget(st, e);
done:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* The scrub batch as a max-heap on verified_ms: its top is the most
 * recently verified of the oldest found so far, the one to replace. */
static void
store_heap_down(struct mir_entry **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct mir_entry *t;

		if (l < n && h[l]->verified_ms > h[m]->verified_ms)
			m = l;
		if (r < n && h[r]->verified_ms > h[m]->verified_ms)
			m = r;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void
store_heap_up(struct mir_entry **h, size_t i)
{
	while (i > 0 && h[(i - 1) / 2]->verified_ms < h[i]->verified_ms) {
		struct mir_entry *t = h[i];

		h[i] = h[(i - 1) / 2];
		h[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

size_t
mir_store_scrub_batch(struct mir_store *st, char (*paths)[MIR_PATH_MAX], size_t max)
{
	struct mir_entry *h[MIR_SCRUB_BATCH_MAX];
	struct store_link *l;
	size_t n = 0, i;

	if (max > MIR_SCRUB_BATCH_MAX)
		max = MIR_SCRUB_BATCH_MAX;
	if (max == 0)
		return 0;
	pthread_mutex_lock(&st->mu);
	for (l = st->lru.next; l != &st->lru; l = l->next) {
		struct mir_entry *e;

		if (l == &st->cursor)
			continue;
		e = STORE_ENTRY(l);
		if (!(e->flags & STORE_HAS_DIGEST))
			continue;
		if (n < max) {
			h[n] = e;
			store_heap_up(h, n++);
		} else if (e->verified_ms < h[0]->verified_ms) {
			h[0] = e;
			store_heap_down(h, n, 0);
		}
	}
	/* Heap sort: the oldest ends first. */
	for (i = n; i > 1; i--) {
		struct mir_entry *t = h[0];

		h[0] = h[i - 1];
		h[i - 1] = t;
		store_heap_down(h, i - 1, 0);
	}
	for (i = 0; i < n; i++)
		hc_strlcpy(paths[i], h[i]->path, MIR_PATH_MAX);
	pthread_mutex_unlock(&st->mu);
	return n;
}

/* ------------------------------------------------------------ writing */

int
mir_store_tmp(struct mir_store *st, char *tmp, size_t size, struct hc_err *err)
{
	int fd;

	if (hc_snprintf(tmp, size, "%s/part.XXXXXX", st->tmp_dir) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "temp path too long");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, 0644) != 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return hc_err_set(err, HC_EIO, "chmod %s: %s", tmp, strerror(e));
	}
	return fd;
}

/* Opens the folder rel (a prefix of a store path) with every step of its
 * resolution kept beneath files/. Without openat2, opens it level by level
 * from dfd (the folder of its parent) following no link at all. Returns the
 * fd, HC_ENOTFOUND, HC_EDATA (a way out) or HC_EIO. */
static int
store_open_dir_beneath(struct mir_store *st, int dfd, const char *rel, const char *name,
                       struct hc_err *err)
{
	struct open_how how;
	long r;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	do {
		r = syscall(SYS_openat2, st->files_fd, rel, &how, sizeof(how));
	} while (r < 0 && (errno == EINTR || errno == EAGAIN));
	if (r < 0 && errno == ENOSYS)
		r = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r >= 0)
		return (int)r;
	switch (errno) {
	case ENOENT:
		return hc_err_set(err, HC_ENOTFOUND, "%s: not found", rel);
	case EXDEV:
	case ELOOP:
	case ENOTDIR:
		return hc_err_set(err, HC_EDATA, "path leads outside the store");
	default:
		return hc_err_set(err, HC_EIO, "open %s: %s", rel, strerror(errno));
	}
}

/* mkdir -p of the folder of path inside the store, one level at a time
 * from a folder already known to be beneath files/, so nothing is created
 * outside. Returns an fd of the folder, or HC_EDATA when a level resolves
 * outside, or HC_EIO (errno kept). */
static int
store_open_parent(struct mir_store *st, const char *path, struct hc_err *err)
{
	char prefix[MIR_PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t i, n, name;
	int dfd, next;

	dfd = fcntl(st->files_fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return hc_err_set(err, HC_EIO, "dup: %s", strerror(errno));
	if (slash == NULL)
		return dfd;
	n = (size_t)(slash - path);
	if (n >= sizeof(prefix)) {
		close(dfd);
		return hc_err_set(err, HC_EDATA, "path too long");
	}
	memcpy(prefix, path, n);
	prefix[n] = '\0';
	name = 0;
	for (i = 0; i <= n; i++) {
		char c = prefix[i];

		if (c != '/' && c != '\0')
			continue;
		prefix[i] = '\0';
		next = store_open_dir_beneath(st, dfd, prefix, prefix + name, err);
		if (next == HC_ENOTFOUND) {
			if (mkdirat(dfd, prefix + name, 0755) != 0 && errno != EEXIST) {
				int e = errno;
				next = hc_err_set(err, HC_EIO, "mkdir %s: %s", prefix, strerror(e));
				errno = e;
			} else {
				next = store_open_dir_beneath(st, dfd, prefix, prefix + name, err);
			}
		}
		prefix[i] = c;
		close(dfd);
		if (next < 0)
			return next;
		dfd = next;
		name = i + 1;
	}
	return dfd;
}

/* Checks that sha256 is "" or a digest. */
static int
store_sha_arg(const char *sha256, struct hc_err *err)
{
	if (sha256[0] != '\0' && !hc_sha256_hex_valid(sha256))
		return hc_err_set(err, HC_EDATA, "not a SHA-256 digest: %.80s", sha256);
	return 0;
}

/* Writes the pending records to the journal now, without an fsync: a
 * commit's record then survives the server being killed right after it.
 * Not while a compaction replaces the journal (its records go to the new
 * one). 0, or HC_EIO and the journal is to be rewritten. Caller holds mu. */
static int
store_write_pending(struct mir_store *st)
{
	if (st->rewriting || st->compact || st->journal_fd < 0 || st->pending.len == 0)
		return 0;
	if (hc_write_all(st->journal_fd, st->pending.p, st->pending.len) != 0) {
		store_overflow(st);
		return HC_EIO;
	}
	st->journal_records += st->pending_records;
	hc_buf_reset(&st->pending);
	st->pending_records = 0;
	return 0;
}

/* Puts e in the table in place of any entry at its path and takes back the
 * reservation made for it. Caller holds mu. */
static void
store_replace(struct mir_store *st, struct mir_entry *e, uint64_t reserved,
              struct mir_entry **pin)
{
	struct mir_entry *old = store_find(st, e->path);

	if (old != NULL)
		store_take(st, old);
	store_add(st, e);
	if (pin != NULL) {
		e->pins++;
		*pin = e;
	}
	st->reserved -= reserved <= st->reserved ? reserved : st->reserved;
}

int
mir_store_commit(struct mir_store *st, const char *path, const char *tmp, int fd,
                 uint64_t size, const char *sha256, uint64_t reserved,
                 struct mir_entry **pin, struct hc_err *err)
{
	char full[PATH_MAX];
	struct stat sb;
	struct mir_entry *e;
	const char *base;
	int pfd = -1, rc;

	if (pin != NULL)
		*pin = NULL;
	rc = store_sha_arg(sha256, err);
	if (rc != 0)
		goto fail;
	if (!store_path_ok(path) ||
	    hc_snprintf(full, sizeof(full), "%s/%s", st->files_dir, path) != 0) {
		rc = hc_err_set(err, HC_EDATA, "path too long or with a control character");
		goto fail;
	}
	if (fsync(fd) != 0) {
		rc = hc_err_set(err, HC_EIO, "fsync: %s", strerror(errno));
		goto fail;
	}
	if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != size) {
		rc = hc_err_set(err, HC_EIO, "temp file is not %" PRIu64 " bytes", size);
		goto fail;
	}
	rc = store_open_parent(st, path, err);
	if (rc < 0)
		goto fail;
	pfd = rc;
	rc = 0;
	e = store_entry_stat(path, &sb, sha256);
	if (e == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto fail;
	}
	/* The caller checked these bytes against the digest as they came. */
	if (e->flags & STORE_HAS_DIGEST)
		e->verified_ms = hc_now_ms();
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	/* The rename and the table change in one section: two commits to one
	 * path cannot leave the index with the digest of the file that lost,
	 * and an eviction of the old entry cannot remove the new file. */
	pthread_mutex_lock(&st->mu);
	if (renameat(AT_FDCWD, tmp, pfd, base) != 0) {
		rc = hc_err_set(err, HC_EIO, "rename to %s: %s", full, strerror(errno));
		pthread_mutex_unlock(&st->mu);
		free(e);
		goto fail;
	}
	store_replace(st, e, reserved, pin);
	(void)store_write_pending(st);
	pthread_mutex_unlock(&st->mu);
	(void)fsync(pfd);
	close(pfd);
	return 0;
fail:
	if (pfd >= 0)
		close(pfd);
	unlink(tmp);
	mir_store_unreserve(st, reserved);
	return rc;
}

int
mir_store_record(struct mir_store *st, const char *path, uint64_t size, const char *sha256,
                 uint64_t reserved, struct hc_err *err)
{
	struct mir_entry *e;
	int rc = store_sha_arg(sha256, err);

	if (rc == 0 && (!store_path_ok(path) || strlen(path) >= MIR_PATH_MAX))
		rc = hc_err_set(err, HC_EDATA, "path too long or with a control character");
	if (rc != 0) {
		mir_store_unreserve(st, reserved);
		return rc;
	}
	e = store_entry_new(path, size, 0, 0, sha256);
	if (e == NULL) {
		mir_store_unreserve(st, reserved);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&st->mu);
	store_replace(st, e, reserved, NULL);
	pthread_mutex_unlock(&st->mu);
	return 0;
}

/* Moves the entry name of folder dfd into tmp/ under a fresh name (out,
 * "" when there was nothing to move), to be unlinked outside the lock:
 * done under it, a commit to the same path afterwards is never removed.
 * 0, or the errno of the rename. Caller holds mu. */
static int
store_move_out(struct mir_store *st, int dfd, const char *name, char *out, size_t size)
{
	out[0] = '\0';
	/* The pid keeps apart the names of origins sharing a root. */
	if (hc_snprintf(out, size, "gone.%ld.%" PRIu64, (long)getpid(), ++st->evict_seq) != 0)
		return ENAMETOOLONG;
	if (renameat(dfd, name, st->tmp_fd, out) != 0) {
		out[0] = '\0';
		return errno;
	}
	return 0;
}

/* Unlinks what store_move_out moved (name "" is a no-op). */
static void
store_unlink_moved(struct mir_store *st, const char *name)
{
	if (name[0] != '\0' && unlinkat(st->tmp_fd, name, 0) != 0)
		hc_log(HC_LOG_WARN, "mirror", "remove %s/%s: %s", st->tmp_dir, name,
		       strerror(errno));
}

/* Evicts the unpinned entry e: its record goes and the file is moved into
 * tmp/ under the lock (a rename, so that a commit to the same path
 * afterwards is never removed), to be unlinked by the caller outside it
 * (freeing a large file's blocks takes long). name receives the name in
 * tmp/, "" when there is nothing to unlink; log: the log line. Caller
 * holds mu. */
static void
store_evict_entry(struct mir_store *st, struct mir_entry *e, char *name, size_t name_size,
                  char *log, size_t log_size)
{
	int rc = store_move_out(st, st->files_fd, e->path, name, name_size);

	if (rc != 0 && rc != ENOENT)
		hc_log(HC_LOG_WARN, "mirror", "evict %s: %s", e->path, strerror(rc));
	if (hc_snprintf(log, log_size, "evicted %s (%" PRIu64 " bytes)", e->path, e->size) != 0)
		hc_strlcpy(log, "evicted a file with a long name", log_size);
	st->evictions++;
	store_forget(st, e);
}

/* Evicts the least recently used unpinned file as store_evict_entry does.
 * HC_EIO when nothing can be evicted. Caller holds mu. */
static int
store_evict_one(struct mir_store *st, char *name, size_t name_size, char *log,
                size_t log_size)
{
	struct mir_entry *e = store_victim(st);

	name[0] = '\0';
	if (e == NULL)
		return HC_EIO;
	store_evict_entry(st, e, name, name_size, log, log_size);
	return 0;
}

/* Evicts until size more bytes fit under max_bytes. Called with st->mu
 * held; drops it around each unlink. 0, or HC_EIO when only pinned files
 * are left to evict. */
static int
store_evict_down(struct mir_store *st, uint64_t size)
{
	char name[STORE_GONE_NAME_MAX], log[MIR_PATH_MAX + 64];
	int rc = 0;

	while (st->max_bytes != 0 && st->bytes + st->reserved + size > st->max_bytes) {
		rc = store_evict_one(st, name, sizeof(name), log, sizeof(log));
		if (rc != 0)
			break;
		pthread_mutex_unlock(&st->mu);
		hc_log(HC_LOG_INFO, "mirror", "%s", log);
		store_unlink_moved(st, name);
		pthread_mutex_lock(&st->mu);
	}
	return rc;
}

int
mir_store_reserve(struct mir_store *st, uint64_t size)
{
	int rc = 0;

	pthread_mutex_lock(&st->mu);
	if (st->max_bytes != 0 && size > st->max_bytes)
		rc = HC_EIO;
	if (rc == 0)
		rc = store_evict_down(st, size);
	if (rc == 0)
		st->reserved += size;
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* The oldest unpinned entry last touched at or before cutoff_ms, from
 * after (NULL: the old end), or NULL. Touches move entries to the young
 * end, so touch times grow along the LRU; only entries an eviction passed
 * over while pinned go back to the old end out of that order, and they
 * are older than every entry they pass. The walk therefore ends at the
 * first entry touched after cutoff_ms: no older one can follow it that
 * this walk would miss, except among those passed-over entries, which
 * errs towards keeping files. Caller holds mu. */
static struct mir_entry *
store_idle_next(struct mir_store *st, struct store_link *after, int64_t cutoff_ms)
{
	struct store_link *l = after != NULL ? after->next : st->lru.next;

	for (; l != &st->lru; l = l->next) {
		struct mir_entry *e;

		if (l == &st->cursor)
			continue;
		e = STORE_ENTRY(l);
		if (e->touched_ms > cutoff_ms)
			return NULL;
		if (e->pins == 0)
			return e;
	}
	return NULL;
}

/* Bytes over max_bytes once size more are added, 0 when they fit. Caller
 * holds mu. */
static uint64_t
store_excess(const struct mir_store *st, uint64_t size)
{
	uint64_t want = st->bytes + st->reserved + size;

	return st->max_bytes != 0 && want > st->max_bytes ? want - st->max_bytes : 0;
}

/* Moves out, under the lock, the idle victims that free need bytes
 * (counted beforehand: n of them), and reserves size. names and logs
 * receive what to unlink and log outside the lock. Caller holds mu. */
static void
store_evict_idle(struct mir_store *st, uint64_t size, int64_t cutoff_ms, size_t n,
                 char (*names)[STORE_GONE_NAME_MAX], struct hc_buf *logs)
{
	char log[MIR_PATH_MAX + 64];
	struct mir_entry *e;
	size_t i;

	for (i = 0; i < n; i++) {
		e = store_idle_next(st, NULL, cutoff_ms);
		if (e == NULL)
			break;  /* counted under this same hold: cannot happen */
		store_evict_entry(st, e, names[i], sizeof(names[i]), log, sizeof(log));
		if (hc_buf_printf(logs, "%s\n", log) != 0)
			hc_log(HC_LOG_INFO, "mirror", "%s", log);
	}
	st->reserved += size;
}

/* Logs each line of b (store paths hold no newline) as its own line. */
static void
store_log_lines(struct hc_buf *b)
{
	const char *p = hc_buf_str(b), *end = p + b->len, *nl;

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		hc_log(HC_LOG_INFO, "mirror", "%.*s", (int)(nl - p), p);
	}
}

int
mir_store_reserve_idle(struct mir_store *st, uint64_t size, int64_t idle_ms)
{
	char (*names)[STORE_GONE_NAME_MAX] = NULL;
	int64_t cutoff_ms = hc_now_ms() - idle_ms;
	struct mir_entry *e = NULL;
	uint64_t need, freed = 0;
	struct hc_buf logs;
	size_t n = 0, i;
	int rc = 0;

	hc_buf_init(&logs, SIZE_MAX);
	pthread_mutex_lock(&st->mu);
	need = store_excess(st, size);
	if (st->max_bytes != 0 && size > st->max_bytes)
		rc = HC_EIO;
	/* Counted first, so that nothing is evicted when it is not enough. */
	while (rc == 0 && freed < need) {
		e = store_idle_next(st, e != NULL ? &e->lru : NULL, cutoff_ms);
		if (e == NULL)
			rc = HC_EIO;
		else {
			freed += e->size;
			n++;
		}
	}
	if (rc == 0 && n > 0) {
		names = calloc(n, sizeof(*names));
		if (names == NULL)
			rc = HC_ENOMEM;
	}
	if (rc == 0)
		store_evict_idle(st, size, cutoff_ms, n, names, &logs);
	pthread_mutex_unlock(&st->mu);
	store_log_lines(&logs);
	for (i = 0; names != NULL && i < n; i++)
		store_unlink_moved(st, names[i]);
	hc_buf_free(&logs);
	free(names);
	return rc;
}

int
mir_store_set_max_bytes(struct mir_store *st, uint64_t max_bytes)
{
	int rc;

	pthread_mutex_lock(&st->mu);
	st->max_bytes = max_bytes;
	rc = store_evict_down(st, 0);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

void
mir_store_unreserve(struct mir_store *st, uint64_t size)
{
	pthread_mutex_lock(&st->mu);
	st->reserved -= size <= st->reserved ? size : st->reserved;
	pthread_mutex_unlock(&st->mu);
}

/* Opens the folder holding path, kept beneath files/ (links inside the
 * store may be followed on the way, none out of it); *base: the last name.
 * Returns the fd or a negative status. */
static int
store_open_holder(struct mir_store *st, const char *path, const char **base,
                  struct hc_err *err)
{
	char parent[MIR_PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/'), *rel;
	size_t n;
	int fd = -1, rc;

	*base = slash != NULL ? slash + 1 : path;
	if (slash == NULL) {
		fd = fcntl(st->files_fd, F_DUPFD_CLOEXEC, 0);
		return fd >= 0 ? fd : hc_err_set(err, HC_EIO, "dup: %s", strerror(errno));
	}
	n = (size_t)(slash - path);
	if (n >= sizeof(parent))
		return hc_err_set(err, HC_EDATA, "path too long");
	memcpy(parent, path, n);
	parent[n] = '\0';
	rc = store_open_file(st, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC, real, &rel, &fd,
	                     err);
	return rc != 0 ? rc : fd;
}

int
mir_store_delete(struct mir_store *st, const char *path, struct hc_err *err)
{
	char gone[64];
	const char *base;
	struct mir_entry *e;
	struct stat sb;
	int pfd, rc = 0, moved = 0;

	pfd = store_open_holder(st, path, &base, err);
	if (pfd < 0)
		return pfd;
	/* The link itself, never what it points to; the check and the move in
	 * one section, so that a commit in between is not what goes. */
	pthread_mutex_lock(&st->mu);
	if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !(S_ISREG(sb.st_mode) || S_ISLNK(sb.st_mode)))
		rc = hc_err_set(err, HC_ENOTFOUND, "not a regular file");
	else
		moved = store_move_out(st, pfd, base, gone, sizeof(gone));
	if (moved != 0) {
		rc = hc_err_set(err, HC_EIO, "remove %s: %s", path, strerror(moved));
	} else if (rc == 0 && S_ISREG(sb.st_mode)) {
		e = store_find(st, path);
		if (e != NULL)
			store_forget(st, e);
	}
	pthread_mutex_unlock(&st->mu);
	if (rc == 0) {
		store_unlink_moved(st, gone);
		(void)fsync(pfd);
	}
	close(pfd);
	return rc;
}

/* Writes b to fd and empties it. 0 or HC_EIO. */
static int
store_write_buf(int fd, struct hc_buf *b)
{
	int rc = b->len > 0 && hc_write_all(fd, b->p, b->len) != 0 ? HC_EIO : 0;

	hc_buf_reset(b);
	return rc;
}

/* Formats up to STORE_COMPACT_BATCH entries after the cursor into out and
 * moves the cursor past them. 0, 1 at the end of the list, or a negative
 * status. Caller holds mu. */
static int
store_compact_batch(struct mir_store *st, struct hc_buf *out, uint64_t *records)
{
	size_t i;

	for (i = 0; i < STORE_COMPACT_BATCH; i++) {
		struct store_link *l = st->cursor.next;
		int rc;

		if (l == &st->lru)
			return 1;
		rc = store_add_record(out, 'A', STORE_ENTRY(l));
		if (rc != 0)
			return rc;
		(*records)++;
		link_del(&st->cursor);
		link_add_after(l, &st->cursor);
	}
	return 0;
}

/* Ends the walk (caller holds mu): the parked entries as 'P' records (to
 * the old end; in reverse, so that the first parked ends oldest), then the
 * records made while the walk went on, in order. Those and the walk give
 * the table: an entry touched or added behind the cursor is met again or
 * recorded, one removed is recorded, one parked is written here. failed:
 * the walk failed; only clean up. */
static int
store_compact_end(struct mir_store *st, int fd, struct hc_buf *out, uint64_t *records,
                  int failed)
{
	struct store_link *l, *prev;
	int rc = failed ? HC_EIO : 0;

	link_del(&st->cursor);
	for (l = st->parked.prev; l != &st->parked && rc == 0; l = l->prev) {
		if (out->len + STORE_LINE_MAX > out->max)
			rc = store_write_buf(fd, out);
		if (rc == 0)
			rc = store_add_record(out, 'P', STORE_ENTRY(l));
		(*records)++;
	}
	if (rc == 0 && st->compact)
		rc = HC_ENOMEM;  /* records were dropped during the walk */
	if (rc == 0)
		rc = store_write_buf(fd, out);
	if (rc == 0)
		rc = store_write_buf(fd, &st->pending);
	*records += st->pending_records;
	st->pending_records = 0;
	st->compacting = 0;
	for (l = st->parked.prev; l != &st->parked; l = prev) {
		prev = l->prev;
		if (STORE_ENTRY(l)->pins == 0)
			store_unpark(st, STORE_ENTRY(l));
	}
	if (rc != 0)
		store_overflow(st);
	return rc;
}

/* Walks the table into the temp file fd, STORE_COMPACT_BATCH entries per
 * hold of mu; *records: the records written. */
static int
store_compact_walk(struct mir_store *st, int fd, uint64_t *records)
{
	struct hc_buf out;
	int rc, end;

	hc_buf_init(&out, STORE_COMPACT_BATCH * STORE_LINE_MAX);
	rc = hc_buf_add(&out, STORE_INDEX_MAGIC, strlen(STORE_INDEX_MAGIC));
	pthread_mutex_lock(&st->mu);
	/* From here the walk and the records made meanwhile give the table. */
	hc_buf_reset(&st->pending);
	st->pending_records = 0;
	st->compact = 0;
	st->compacting = 1;
	st->rewriting = 1;
	link_add_after(&st->lru, &st->cursor);
	while (rc == 0) {
		rc = store_compact_batch(st, &out, records);
		if (rc != 0)
			break;
		pthread_mutex_unlock(&st->mu);
		rc = store_write_buf(fd, &out);
		pthread_mutex_lock(&st->mu);
	}
	end = store_compact_end(st, fd, &out, records, rc < 0);
	pthread_mutex_unlock(&st->mu);
	if (rc >= 0)
		rc = end;
	hc_buf_free(&out);
	return rc;
}

/* Rewrites the journal from the table, oldest first, so that a replay
 * gives the same order, into a temp file that replaces it. The store lock
 * is held a batch at a time, and not for the fsync. Caller holds flush_mu. */
static int
store_compact(struct mir_store *st, struct hc_err *err)
{
	char tmp[PATH_MAX];
	uint64_t records = 0;
	int fd = -1, rc = 0;

	if (hc_snprintf(tmp, sizeof(tmp), "%s/" STORE_INDEX_TMP "XXXXXX", st->meta_dir) != 0)
		return hc_err_set(err, HC_EIO, "index path too long");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, HC_EIO, "create %s: %s", tmp, strerror(errno));
	rc = store_compact_walk(st, fd, &records);
	if (rc == 0 && (fchmod(fd, 0644) != 0 || fsync(fd) != 0 ||
	                rename(tmp, st->index_path) != 0))
		rc = HC_EIO;
	if (rc != 0) {
		rc = hc_err_set(err, rc, "rewrite %s: %s", st->index_path,
		                rc == HC_EIO ? strerror(errno) : "out of memory");
		unlink(tmp);
	} else {
		(void)hc_fsync_dir(st->index_path, NULL);
		rc = store_open_journal(st, err);
	}
	pthread_mutex_lock(&st->mu);
	if (rc != 0)
		store_overflow(st);
	else
		st->journal_records = records;
	st->rewriting = 0;
	pthread_mutex_unlock(&st->mu);
	close(fd);
	return rc;
}

/* Appends the pending records to the journal, in order with those a
 * commit writes at once (one write to the page cache under mu; the fsync
 * outside it). Caller holds flush_mu. */
static int
store_append(struct mir_store *st, struct hc_err *err)
{
	int rc, wrote;

	pthread_mutex_lock(&st->mu);
	wrote = st->pending.len > 0;
	rc = store_write_pending(st);
	pthread_mutex_unlock(&st->mu);
	if (rc == 0 && wrote && fdatasync(st->journal_fd) != 0)
		rc = HC_EIO;
	if (rc != 0) {
		pthread_mutex_lock(&st->mu);
		st->compact = 1;  /* a part may be written: rewrite it whole */
		pthread_mutex_unlock(&st->mu);
		return hc_err_set(err, HC_EIO, "append to %s: %s", st->index_path,
		                  strerror(errno));
	}
	return 0;
}

int
mir_store_flush(struct mir_store *st, struct hc_err *err)
{
	int rc, compact;

	pthread_mutex_lock(&st->flush_mu);
	pthread_mutex_lock(&st->mu);
	compact = st->compact || st->journal_records + st->pending_records >
	                         STORE_COMPACT_FACTOR * (uint64_t)st->n + STORE_COMPACT_SLACK;
	pthread_mutex_unlock(&st->mu);
	rc = compact ? store_compact(st, err) : store_append(st, err);
	pthread_mutex_unlock(&st->flush_mu);
	return rc;
}

void
mir_store_stats(struct mir_store *st, struct mir_store_stats *out)
{
	pthread_mutex_lock(&st->mu);
	out->bytes = st->bytes;
	out->files = st->n;
	out->max_bytes = st->max_bytes;
	out->evictions = st->evictions;
	out->unverified = st->unverified;
	out->corrupt_evictions = st->corrupt;
	pthread_mutex_unlock(&st->mu);
}

uint64_t
mir_store_free_bytes(struct mir_store *st)
{
	struct statvfs vfs;

	if (statvfs(st->tmp_dir, &vfs) != 0)
		return UINT64_MAX;
	return (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}
