/*
 * The store: files under {root}/files, their metadata in {root}/meta/index,
 * uploads and fills in progress under {root}/tmp.
 *
 * The index keeps, per file, the SHA-256 computed once (on PUT, on fill, or
 * at the first scan), the size and mtime it was computed for (a file changed
 * behind our back is hashed again), and an access sequence number that gives
 * the LRU order and survives a restart.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mirror/mirror.h"

#define STORE_INDEX_MAGIC "hydra-mirror-index 1\n"
/* An index line is at most a path plus five numbers and a digest. */
#define STORE_LINE_MAX (MIR_PATH_MAX + 160)
/* The index of a store of a million files stays well under this. */
#define STORE_INDEX_MAX ((size_t)1 << 30)
#define STORE_BUCKETS_MIN 1024
/* Written in place of a digest the origin did not give. */
#define STORE_NO_DIGEST "-"

/* openat2 answers EAGAIN when a rename races the resolution; a few tries
 * get past a race, a steady stream of renames is an error. */
#define STORE_OPEN_TRIES 8
/* nftw: folders held open while walking the store. */
#define STORE_WALK_FDS 32

struct mir_entry {
	struct mir_entry *next;      /* hash chain */
	char *path;
	uint64_t size;
	int64_t mtime_s;
	long mtime_ns;
	char sha256[HC_SHA256_HEX_LEN + 1];
	uint64_t seq;                /* last access; smallest is evicted first */
	int pins;
	int removed;                 /* out of the table; freed at the last release */
};

struct mir_store {
	pthread_mutex_t mu;
	pthread_mutex_t flush_mu;    /* one index writer at a time */
	char files_dir[PATH_MAX];
	char files_real[PATH_MAX];
	char tmp_dir[PATH_MAX];
	char index_path[PATH_MAX];
	int files_fd;                /* files_dir, for openat2 beneath it */
	int lock_fd;                 /* meta/lock, held while the store is open */
	struct mir_entry **buckets;
	size_t nbuckets, n;
	uint64_t bytes, reserved, max_bytes, evictions, next_seq;
	uint64_t unverified;         /* entries with no origin digest */
	int exclusive;               /* a peer: never digests its own bytes */
	int dirty;
};

static uint64_t
store_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct mir_entry *
store_find(struct mir_store *st, const char *path)
{
	struct mir_entry *e = st->buckets[store_hash(path) % st->nbuckets];

	for (; e != NULL; e = e->next)
		if (strcmp(e->path, path) == 0)
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
			size_t k = store_hash(e->path) % nb;
			next = e->next;
			e->next = b[k];
			b[k] = e;
		}
	}
	free(st->buckets);
	st->buckets = b;
	st->nbuckets = nb;
}

static void
store_insert(struct mir_store *st, struct mir_entry *e)
{
	size_t k;

	if (st->n >= st->nbuckets * 2)
		store_grow(st);
	k = store_hash(e->path) % st->nbuckets;
	e->next = st->buckets[k];
	st->buckets[k] = e;
	st->n++;
	st->bytes += e->size;
	if (e->sha256[0] == '\0')
		st->unverified++;
}

static void
store_entry_free(struct mir_entry *e)
{
	if (e == NULL)
		return;
	free(e->path);
	free(e);
}

/* Takes e out of the table; it is freed now or at its last release. */
static void
store_detach(struct mir_store *st, struct mir_entry *e)
{
	struct mir_entry **pp = &st->buckets[store_hash(e->path) % st->nbuckets];

	for (; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	st->n--;
	st->bytes -= e->size;
	if (e->sha256[0] == '\0')
		st->unverified--;
	st->dirty = 1;
	if (e->pins > 0)
		e->removed = 1;
	else
		store_entry_free(e);
}

static struct mir_entry *
store_entry_new(const char *path, const struct stat *sb, const char *sha256)
{
	struct mir_entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->path = hc_strdup(path);
	if (e->path == NULL) {
		free(e);
		return NULL;
	}
	e->size = (uint64_t)sb->st_size;
	e->mtime_s = (int64_t)sb->st_mtim.tv_sec;
	e->mtime_ns = sb->st_mtim.tv_nsec;
	if (sha256[0] != '\0')
		hc_hex_lower(e->sha256, sha256, HC_SHA256_HEX_LEN);
	return e;
}

static int
store_same_file(const struct mir_entry *e, const struct stat *sb)
{
	return e->size == (uint64_t)sb->st_size && e->mtime_s == (int64_t)sb->st_mtim.tv_sec &&
	       e->mtime_ns == sb->st_mtim.tv_nsec;
}

/* A path we can write into the index: no control characters. */
static int
store_path_ok(const char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* ------------------------------------------------------------ start-up */

static int
store_clean_tmp(struct mir_store *st, struct hc_err *err)
{
	DIR *d = opendir(st->tmp_dir);
	struct dirent *de;
	int removed = 0;

	if (d == NULL)
		return hc_err_set(err, HC_EIO, "open %s: %s", st->tmp_dir, strerror(errno));
	for (;;) {
		de = readdir(d);
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
		else
			hc_log(HC_LOG_WARN, "mirror", "cannot remove stale temp file %s/%s: %s",
			       st->tmp_dir, de->d_name, strerror(errno));
	}
	closedir(d);
	if (removed > 0)
		hc_log(HC_LOG_INFO, "mirror", "removed %d stale temp files from %s", removed,
		       st->tmp_dir);
	return 0;
}

/* A peer owns its root: a second server there would delete its temp files,
 * evict behind its back and overwrite its index, so it locks exclusively.
 * Origins may share a read-mostly root (two ports on one store); only the
 * first one removes stale temp files (*alone). Also removes index temp
 * files a crash left in meta/. */
static int
store_lock(struct mir_store *st, const char *meta, int exclusive, int *alone,
           struct hc_err *err)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	*alone = 0;
	if (hc_snprintf(path, sizeof(path), "%s/lock", meta) != 0)
		return hc_err_set(err, HC_ECONFIG, "root too long");
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
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
	d = opendir(meta);
	if (d == NULL)
		return 0;
	for (;;) {
		de = readdir(d);
		if (de == NULL)
			break;
		if (strncmp(de->d_name, "index.tmp.", 10) == 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	return 0;
}

/* Entries read from the index, waiting for the scan to confirm them. */
struct store_loaded {
	struct mir_entry **items;
	size_t n, cap;
};

static void
store_loaded_free(struct store_loaded *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		store_entry_free(l->items[i]);
	free(l->items);
}

static int
store_load_index(struct mir_store *st, struct store_loaded *out, struct hc_err *err)
{
	char *text = NULL, *line, *end;
	size_t len = 0;
	struct hc_err rerr = { 0, "" };
	int rc;

	rc = hc_read_file(st->index_path, STORE_INDEX_MAX, &text, &len, &rerr);
	if (rc == HC_ENOTFOUND)
		return 0;
	if (rc != 0)
		return hc_err_set(err, rc, "%s", rerr.msg);
	if (strncmp(text, STORE_INDEX_MAGIC, strlen(STORE_INDEX_MAGIC)) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "%s: not an index, rebuilding it", st->index_path);
		free(text);
		return 0;
	}
	line = text + strlen(STORE_INDEX_MAGIC);
	for (; *line != '\0'; line = end + 1) {
		unsigned long long seq, size;
		long long mtime_s;
		long mtime_ns;
		char sha[HC_SHA256_HEX_LEN + 1];
		int used = 0;
		struct mir_entry *e;

		end = strchr(line, '\n');
		if (end == NULL)
			break;  /* a torn last line is dropped */
		*end = '\0';
		if (sscanf(line, "%llu %llu %lld %ld %64s %n", &seq, &size, &mtime_s,
		           &mtime_ns, sha, &used) != 5 || used == 0 || line[used] == '\0')
			continue;
		if (strcmp(sha, STORE_NO_DIGEST) == 0)
			sha[0] = '\0';
		else if (!hc_sha256_hex_valid(sha))
			continue;
		if (out->n == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 256;
			struct mir_entry **items = realloc(out->items, cap * sizeof(*items));
			if (items == NULL) {
				free(text);
				return hc_err_set(err, HC_ENOMEM, "out of memory");
			}
			out->items = items;
			out->cap = cap;
		}
		e = calloc(1, sizeof(*e));
		if (e != NULL)
			e->path = hc_strdup(line + used);
		if (e == NULL || e->path == NULL) {
			free(e);
			free(text);
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		}
		e->seq = seq;
		e->size = size;
		e->mtime_s = mtime_s;
		e->mtime_ns = mtime_ns;
		hc_strlcpy(e->sha256, sha, sizeof(e->sha256));
		out->items[out->n++] = e;
		if (seq > st->next_seq)
			st->next_seq = seq;
	}
	free(text);
	return 0;
}

/* nftw has no context argument: the scan in progress (start-up only). */
static struct {
	struct mir_store *st;
	struct mir_entry **loaded;   /* by path, from store_loaded */
	size_t nloaded;
	size_t hashed, kept;
	int rc;
	struct hc_err *err;
} store_scan;

static int
store_loaded_cmp(const void *a, const void *b)
{
	const struct mir_entry *x = *(const struct mir_entry *const *)a;
	const struct mir_entry *y = *(const struct mir_entry *const *)b;

	return strcmp(x->path, y->path);
}

static int
store_scan_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
	struct mir_store *st = store_scan.st;
	const char *rel;
	struct mir_entry key, *keyp = &key, **found, *e;
	char hex[HC_SHA256_HEX_LEN + 1];
	struct hc_err herr = { 0, "" };

	(void)ftw;
	if (type != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	rel = fpath + strlen(st->files_dir) + 1;
	if (!store_path_ok(rel)) {
		hc_log(HC_LOG_WARN, "mirror", "skipping a file with a control character in its name");
		return 0;
	}
	key.path = (char *)rel;
	found = store_scan.nloaded > 0 ?
	        bsearch(&keyp, store_scan.loaded, store_scan.nloaded, sizeof(keyp),
	                store_loaded_cmp) : NULL;
	if (found != NULL && (store_same_file(*found, sb) ||
	                      (st->exclusive && (*found)->sha256[0] != '\0'))) {
		e = store_entry_new(rel, sb, (*found)->sha256);
		if (e == NULL) {
			store_scan.rc = hc_err_set(store_scan.err, HC_ENOMEM, "out of memory");
			return 1;
		}
		/* A peer's file changed since its fill keeps the size and mtime
		 * of its record, so that the first get verifies it. */
		e->size = (*found)->size;
		e->mtime_s = (*found)->mtime_s;
		e->mtime_ns = (*found)->mtime_ns;
		e->seq = (*found)->seq;
		store_scan.kept++;
		store_insert(st, e);
		return 0;
	}
	if (st->exclusive) {
		/* A peer has no digest for bytes the origin did not vouch for. */
		e = store_entry_new(rel, sb, "");
		if (e == NULL) {
			store_scan.rc = hc_err_set(store_scan.err, HC_ENOMEM, "out of memory");
			return 1;
		}
		e->seq = found != NULL ? (*found)->seq : ++st->next_seq;
		store_insert(st, e);
		st->dirty = 1;
		return 0;
	}
	if (hc_sha256_file(fpath, hex, &herr) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "cannot hash %s: %s", fpath, herr.msg);
		return 0;
	}
	store_scan.hashed++;
	e = store_entry_new(rel, sb, hex);
	if (e == NULL) {
		store_scan.rc = hc_err_set(store_scan.err, HC_ENOMEM, "out of memory");
		return 1;
	}
	if (found != NULL)
		e->seq = (*found)->seq;
	store_insert(st, e);
	st->dirty = 1;
	return 0;
}

static int
store_scan_files(struct mir_store *st, struct store_loaded *l, struct hc_err *err)
{
	/* qsort wants a real array even for zero items; an empty index has none. */
	if (l->n > 1)
		qsort(l->items, l->n, sizeof(*l->items), store_loaded_cmp);
	store_scan.st = st;
	store_scan.loaded = l->items;
	store_scan.nloaded = l->n;
	store_scan.hashed = 0;
	store_scan.kept = 0;
	store_scan.rc = 0;
	store_scan.err = err;
	if (nftw(st->files_dir, store_scan_one, STORE_WALK_FDS, FTW_PHYS) != 0 &&
	    store_scan.rc == 0)
		return hc_err_set(err, HC_EIO, "scan %s: %s", st->files_dir, strerror(errno));
	if (store_scan.rc != 0)
		return store_scan.rc;
	if (store_scan.kept != l->n)
		st->dirty = 1;  /* files gone since the index was written */
	hc_log(HC_LOG_INFO, "mirror", "store %s: %zu files, %" PRIu64 " bytes, %zu hashed now",
	       st->files_dir, st->n, st->bytes, store_scan.hashed);
	return 0;
}

int
mir_store_open(const char *root, uint64_t max_bytes, int exclusive,
               struct mir_store **out, struct hc_err *err)
{
	int alone = 0;
	struct mir_store *st = NULL;
	struct store_loaded loaded = { NULL, 0, 0 };
	char meta[PATH_MAX];
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
	st->lock_fd = -1;
	st->nbuckets = STORE_BUCKETS_MIN;
	st->buckets = calloc(st->nbuckets, sizeof(*st->buckets));
	if (st->buckets == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto fail;
	}
	if (hc_snprintf(st->files_dir, sizeof(st->files_dir), "%s/files", root) != 0 ||
	    hc_snprintf(st->tmp_dir, sizeof(st->tmp_dir), "%s/tmp", root) != 0 ||
	    hc_snprintf(meta, sizeof(meta), "%s/meta", root) != 0 ||
	    hc_snprintf(st->index_path, sizeof(st->index_path), "%s/meta/index", root) != 0) {
		rc = hc_err_set(err, HC_ECONFIG, "root too long: %s", root);
		goto fail;
	}
	rc = hc_mkdir_p(st->files_dir, 0755, err);
	if (rc == 0)
		rc = hc_mkdir_p(st->tmp_dir, 0700, err);
	if (rc == 0)
		rc = hc_mkdir_p(meta, 0755, err);
	if (rc != 0)
		goto fail;
	st->files_fd = open(st->files_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->files_fd < 0) {
		rc = hc_err_set(err, HC_EIO, "open %s: %s", st->files_dir, strerror(errno));
		goto fail;
	}
	if (realpath(st->files_dir, st->files_real) == NULL) {
		rc = hc_err_set(err, HC_EIO, "realpath %s: %s", st->files_dir, strerror(errno));
		goto fail;
	}
	rc = store_lock(st, meta, exclusive, &alone, err);
	if (rc != 0)
		goto fail;
	if (alone)
		rc = store_clean_tmp(st, err);
	if (rc == 0)
		rc = store_load_index(st, &loaded, err);
	if (rc == 0)
		rc = store_scan_files(st, &loaded, err);
	if (rc != 0)
		goto fail;
	store_loaded_free(&loaded);
	if (mir_store_flush(st, err) != 0)
		hc_log(HC_LOG_WARN, "mirror", "%s", err->msg);
	*out = st;
	return 0;
fail:
	store_loaded_free(&loaded);
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
	if (st->buckets != NULL && mir_store_flush(st, &err) != 0)
		hc_log(HC_LOG_WARN, "mirror", "%s", err.msg);
	for (i = 0; st->buckets != NULL && i < st->nbuckets; i++) {
		struct mir_entry *e = st->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			store_entry_free(e);
		}
	}
	free(st->buckets);
	if (st->files_fd >= 0)
		close(st->files_fd);
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
store_open_beneath(struct mir_store *st, const char *path, int *fd, struct hc_err *err)
{
	struct open_how how;
	long r;
	int tries = 0;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
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
 * newer commit, not a link put in its place). Caller holds mu. */
static void
store_remove_if_same(struct mir_store *st, const char *rel, const struct stat *sb)
{
	struct stat now;

	if (fstatat(st->files_fd, rel, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == sb->st_dev && now.st_ino == sb->st_ino &&
	    unlinkat(st->files_fd, rel, 0) != 0)
		hc_log(HC_LOG_WARN, "mirror", "remove %s: %s", rel, strerror(errno));
}

/* Brings the record of rel up to date with the open file fd (sb), which
 * differs from it or has none. Caller holds mu; it is dropped while hashing.
 * A peer checks a changed file against the origin's digest and removes it
 * when it no longer matches (HC_ENOTFOUND, so that it is filled again); a
 * file it has no digest for stays unverified. An origin digests its own
 * files. On success *ep is the current entry, mu held. */
static int
store_refresh(struct mir_store *st, int fd, const char *rel, const struct stat *sb,
              struct mir_entry **ep, struct hc_err *err)
{
	char hex[HC_SHA256_HEX_LEN + 1] = "", want[HC_SHA256_HEX_LEN + 1] = "";
	struct mir_entry *e = *ep;
	int rc, hash = !st->exclusive;

	if (e != NULL)
		memcpy(want, e->sha256, sizeof(want));
	if (st->exclusive && want[0] != '\0')
		hash = 1;
	if (hash) {
		pthread_mutex_unlock(&st->mu);
		rc = store_hash_fd(fd, sb, hex, err);
		pthread_mutex_lock(&st->mu);
		if (rc != 0)
			return rc;
	}
	e = store_find(st, rel);
	if (st->exclusive && want[0] != '\0' && strcmp(hex, want) != 0) {
		hc_log(HC_LOG_WARN, "mirror", "%s changed on disk: expected sha256 %s, found %s; "
		       "removed", rel, want, hex);
		store_remove_if_same(st, rel, sb);
		if (e != NULL && strcmp(e->sha256, want) == 0)
			store_detach(st, e);
		return hc_err_set(err, HC_ENOTFOUND, "%s: failed verification", rel);
	}
	if (e != NULL)
		store_detach(st, e);
	e = store_entry_new(rel, sb, hex);
	if (e == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	e->seq = ++st->next_seq;
	store_insert(st, e);
	st->dirty = 1;
	*ep = e;
	return 0;
}

int
mir_store_get(struct mir_store *st, const char *path, int touch, struct mir_file *out,
              struct hc_err *err)
{
	char real[PATH_MAX];
	const char *rel;
	struct stat sb;
	struct mir_entry *e;
	int fd = -1, rc;

	out->fd = -1;
	out->entry = NULL;
	rc = store_open_beneath(st, path, &fd, err);
	if (rc == 0) {
		rel = path;
	} else if (rc == HC_ESOFTWARE) {
		/* No openat2 in this kernel: resolve, check, then open. */
		rc = store_resolve(st, path, real, &rel, err);
		if (rc != 0)
			return rc;
		fd = open(real, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return store_open_status(errno, err);
	} else {
		return rc;
	}
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
	}
	e->pins++;
	if (touch) {
		e->seq = ++st->next_seq;
		st->dirty = 1;
	}
	out->fd = fd;
	out->size = e->size;
	out->mtime_s = e->mtime_s;
	memcpy(out->sha256, e->sha256, sizeof(out->sha256));
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
	if (e->pins == 0 && e->removed)
		store_entry_free(e);
	pthread_mutex_unlock(&st->mu);
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

int
mir_store_commit(struct mir_store *st, const char *path, const char *tmp, int fd,
                 uint64_t size, const char *sha256, uint64_t reserved,
                 struct mir_entry **pin, struct hc_err *err)
{
	char full[PATH_MAX];
	struct stat sb;
	struct mir_entry *e, *old;
	const char *base;
	int pfd = -1, rc;

	if (pin != NULL)
		*pin = NULL;
	if (sha256[0] != '\0' && !hc_sha256_hex_valid(sha256)) {
		rc = hc_err_set(err, HC_EDATA, "not a SHA-256 digest: %s", sha256);
		goto fail;
	}
	if (hc_snprintf(full, sizeof(full), "%s/%s", st->files_dir, path) != 0) {
		rc = hc_err_set(err, HC_EDATA, "path too long");
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
	e = store_entry_new(path, &sb, sha256);
	if (e == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto fail;
	}
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	/* The rename and the index change in one section: two commits to one
	 * path cannot leave the index with the digest of the file that lost,
	 * and an eviction of the old entry cannot unlink the new file. */
	pthread_mutex_lock(&st->mu);
	if (renameat(AT_FDCWD, tmp, pfd, base) != 0) {
		rc = hc_err_set(err, HC_EIO, "rename to %s: %s", full, strerror(errno));
		pthread_mutex_unlock(&st->mu);
		store_entry_free(e);
		goto fail;
	}
	old = store_find(st, path);
	if (old != NULL)
		store_detach(st, old);
	e->seq = ++st->next_seq;
	store_insert(st, e);
	if (pin != NULL) {
		e->pins++;
		*pin = e;
	}
	st->reserved -= reserved <= st->reserved ? reserved : st->reserved;
	st->dirty = 1;
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

/* The least recently used unpinned entry, or NULL. Caller holds mu. */
static struct mir_entry *
store_lru(struct mir_store *st)
{
	struct mir_entry *best = NULL;
	size_t i;

	for (i = 0; i < st->nbuckets; i++) {
		struct mir_entry *e = st->buckets[i];
		for (; e != NULL; e = e->next)
			if (e->pins == 0 && (best == NULL || e->seq < best->seq))
				best = e;
	}
	return best;
}

int
mir_store_reserve(struct mir_store *st, uint64_t size)
{
	int rc = 0;

	pthread_mutex_lock(&st->mu);
	if (st->max_bytes == 0) {
		st->reserved += size;
		goto done;
	}
	if (size > st->max_bytes) {
		rc = HC_EIO;
		goto done;
	}
	while (st->bytes + st->reserved + size > st->max_bytes) {
		struct mir_entry *e = store_lru(st);
		char full[PATH_MAX];
		if (e == NULL) {
			rc = HC_EIO;
			goto done;
		}
		if (hc_snprintf(full, sizeof(full), "%s/%s", st->files_dir, e->path) == 0 &&
		    unlink(full) != 0 && errno != ENOENT)
			hc_log(HC_LOG_WARN, "mirror", "evict %s: %s", e->path, strerror(errno));
		hc_log(HC_LOG_INFO, "mirror", "evicted %s (%" PRIu64 " bytes)", e->path, e->size);
		st->evictions++;
		store_detach(st, e);
	}
	st->reserved += size;
done:
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

int
mir_store_delete(struct mir_store *st, const char *path, struct hc_err *err)
{
	char real[PATH_MAX];
	const char *rel;
	struct mir_entry *e;
	struct stat sb;
	int rc;

	rc = store_resolve(st, path, real, &rel, err);
	if (rc != 0)
		return rc;
	if (lstat(real, &sb) != 0 || !S_ISREG(sb.st_mode))
		return hc_err_set(err, HC_ENOTFOUND, "not a regular file");
	if (unlink(real) != 0)
		return hc_err_set(err, HC_EIO, "unlink: %s", strerror(errno));
	(void)hc_fsync_dir(real, NULL);
	pthread_mutex_lock(&st->mu);
	e = store_find(st, rel);
	if (e != NULL)
		store_detach(st, e);
	pthread_mutex_unlock(&st->mu);
	return 0;
}

int
mir_store_flush(struct mir_store *st, struct hc_err *err)
{
	char *buf = NULL;
	size_t len = 0, cap = 0, i;
	int rc = 0;

	pthread_mutex_lock(&st->flush_mu);
	pthread_mutex_lock(&st->mu);
	if (!st->dirty) {
		pthread_mutex_unlock(&st->mu);
		goto done;
	}
	cap = strlen(STORE_INDEX_MAGIC) + st->n * 128 + 1;
	buf = malloc(cap);
	if (buf == NULL) {
		pthread_mutex_unlock(&st->mu);
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	len = (size_t)snprintf(buf, cap, "%s", STORE_INDEX_MAGIC);
	for (i = 0; i < st->nbuckets; i++) {
		struct mir_entry *e = st->buckets[i];
		for (; e != NULL; e = e->next) {
			char line[STORE_LINE_MAX];
			int n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 " %" PRId64 " %ld %s %s\n",
			                 e->seq, e->size, e->mtime_s, e->mtime_ns,
			                 e->sha256[0] != '\0' ? e->sha256 : STORE_NO_DIGEST, e->path);
			if (n < 0 || (size_t)n >= sizeof(line))
				continue;
			if (len + (size_t)n + 1 > cap) {
				size_t ncap = (cap + (size_t)n) * 2;
				char *nb = realloc(buf, ncap);
				if (nb == NULL) {
					pthread_mutex_unlock(&st->mu);
					rc = hc_err_set(err, HC_ENOMEM, "out of memory");
					goto done;
				}
				buf = nb;
				cap = ncap;
			}
			memcpy(buf + len, line, (size_t)n);
			len += (size_t)n;
		}
	}
	st->dirty = 0;
	pthread_mutex_unlock(&st->mu);
	rc = hc_atomic_write(st->index_path, buf, len, 0644, err);
	if (rc != 0) {
		pthread_mutex_lock(&st->mu);
		st->dirty = 1;
		pthread_mutex_unlock(&st->mu);
	}
done:
	pthread_mutex_unlock(&st->flush_mu);
	free(buf);
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
