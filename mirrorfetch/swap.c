/*
 * The swap: verified files move from staging into DIR, one renameat each,
 * only once every file of the manifest is verified. Then --delete removes
 * what the manifest does not list. Every folder of DIR is opened relative
 * to the one above it without following a link, so nothing is written or
 * removed outside DIR.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

/* The folder of DIR the last file went into, kept open for the next file
 * of the same folder and fsynced when the swap moves on. */
struct swap_parent {
	char rel[MF_MANIFEST_PATH_MAX];
	int fd;
	int staged_fd;
};

/* Opens or makes the folder seg in cur, the last segment of the first
 * rel_len bytes of rel (for messages). A file or link in the way is
 * removed with --delete, else refused. The fd or a negative status. */
static int
swap_step(struct mf_sync *s, int cur, const char *seg, const char *rel, int rel_len,
          struct hc_err *err)
{
	struct stat st;
	int fd;

	if (fstatat(cur, seg, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			if (!s->opt->delete_extra)
				return hc_err_set(err, HC_ECANTCREAT, "%s/%.*s is in the way (not a "
				                  "folder); --delete would remove it", s->dir, rel_len, rel);
			if (unlinkat(cur, seg, 0) != 0)
				return hc_err_set(err, HC_EIO, "remove %s/%.*s: %s", s->dir, rel_len, rel,
				                  strerror(errno));
			s->res->deleted++;
		}
	} else if (errno != ENOENT) {
		return hc_err_set(err, HC_EIO, "stat %s/%.*s: %s", s->dir, rel_len, rel,
		                  strerror(errno));
	}
	if (mkdirat(cur, seg, 0755) == 0) {
		/* The new folder's entry must survive a crash with the files in it. */
		if (fsync(cur) != 0)
			return hc_err_set(err, HC_EIO, "fsync %s: %s", s->dir, strerror(errno));
	} else if (errno != EEXIST) {
		return hc_err_set(err, HC_ECANTCREAT, "mkdir %s/%.*s: %s", s->dir, rel_len, rel,
		                  strerror(errno));
	}
	fd = openat(cur, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "open %s/%.*s: %s", s->dir, rel_len, rel,
		                  strerror(errno));
	return fd;
}

/* Opens the folder parent of DIR (relative, "" for DIR), making the
 * folders on the way. parent is shorter than MF_MANIFEST_PATH_MAX. */
static int
swap_open_parent(struct mf_sync *s, const char *parent, int *out, struct hc_err *err)
{
	const char *p = parent;
	int cur;

	*out = -1;
	cur = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return hc_err_set(err, HC_ECANTCREAT, "open %s: %s", s->dir, strerror(errno));
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		char seg[MF_MANIFEST_PATH_MAX];
		int fd;

		memcpy(seg, p, n);
		seg[n] = '\0';
		fd = swap_step(s, cur, seg, parent, (int)(p - parent) + (int)n, err);
		close(cur);
		if (fd < 0)
			return fd;
		cur = fd;
		p += n + (slash != NULL);
	}
	*out = cur;
	return 0;
}

/* Moves on to the folder of the next file: fsyncs and closes the last one. */
static int
swap_enter(struct mf_sync *s, struct swap_parent *sp, const char *parent, struct hc_err *err)
{
	int rc;

	if (sp->fd >= 0 && strcmp(sp->rel, parent) == 0)
		return 0;
	if (sp->fd >= 0) {
		rc = fsync(sp->fd);
		close(sp->fd);
		sp->fd = -1;
		if (rc != 0)
			return hc_err_set(err, HC_EIO, "fsync %s/%s: %s", s->dir, sp->rel,
			                  strerror(errno));
	}
	if (sp->staged_fd >= 0)
		close(sp->staged_fd);
	sp->staged_fd = -1;
	rc = swap_open_parent(s, parent, &sp->fd, err);
	if (rc == 0)
		rc = mf_dir_beneath(s->staging_fd, parent, 0, 0, &sp->staged_fd, MF_SYNC_STAGING,
		                    err);
	if (rc == HC_ENOTFOUND)
		rc = hc_err_set(err, HC_EIO, "%s/%s/%s: gone", s->dir, MF_SYNC_STAGING, parent);
	if (rc == 0)
		hc_strlcpy(sp->rel, parent, sizeof(sp->rel));
	return rc;
}

/* Moves one staged file over DIR/path; a folder in its place is removed
 * with --delete. The replaced file's mode is kept: the manifest carries
 * none, and a tool's executables stay executable. */
static int
swap_one(struct mf_sync *s, struct swap_parent *sp, struct mf_sync_item *it, const char *base,
         struct hc_err *err)
{
	struct stat old, staged;
	int rc, have_old;

	/* Planning saw a regular file here; make sure nothing swapped it since. */
	if (fstatat(sp->staged_fd, base, &staged, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(staged.st_mode))
		return hc_err_set(err, HC_EIO, "%s/%s/%s: not the verified file any more", s->dir,
		                  MF_SYNC_STAGING, it->f->path);
	have_old = fstatat(sp->fd, base, &old, AT_SYMLINK_NOFOLLOW) == 0;
	if (have_old && S_ISDIR(old.st_mode)) {
		if (!s->opt->delete_extra)
			return hc_err_set(err, HC_ECANTCREAT, "%s/%s is a folder where the manifest "
			                  "has a file; --delete would remove it", s->dir, it->f->path);
		rc = mf_remove_tree_at(sp->fd, base, it->f->path, err);
		if (rc != 0)
			return rc;
		s->res->deleted++;
	} else if (have_old && S_ISREG(old.st_mode) &&
	           fchmodat(sp->staged_fd, base, old.st_mode & 07777, 0) != 0) {
		return hc_err_set(err, HC_EIO, "chmod %s/%s: %s", MF_SYNC_STAGING, it->f->path,
		                  strerror(errno));
	}
	if (renameat(sp->staged_fd, base, sp->fd, base) != 0)
		return hc_err_set(err, HC_EIO, "rename %s/%s/%s to %s/%s: %s", s->dir,
		                  MF_SYNC_STAGING, it->f->path, s->dir, it->f->path, strerror(errno));
	if (fstatat(sp->fd, base, &it->st, AT_SYMLINK_NOFOLLOW) == 0)
		it->indexed = 1;
	return 0;
}

int
mf_swap(struct mf_sync *s, struct hc_err *err)
{
	struct swap_parent sp = { "", -1, -1 };
	size_t i;
	int rc = 0;

	for (i = 0; i < s->m->n && rc == 0; i++) {
		struct mf_sync_item *it = &s->items[i];
		char parent[MF_MANIFEST_PATH_MAX];
		const char *base;

		if (it->action == MF_SYNC_KEEP || (it->action == MF_SYNC_FETCH && !it->done))
			continue;
		if (mf_split_path(it->f->path, parent, sizeof(parent), &base) != 0)
			return hc_err_set(err, HC_ECANTCREAT, "%s: path too long", it->f->path);
		rc = swap_enter(s, &sp, parent, err);
		if (rc == 0)
			rc = swap_one(s, &sp, it, base, err);
	}
	if (sp.fd >= 0) {
		if (rc == 0 && fsync(sp.fd) != 0)
			rc = hc_err_set(err, HC_EIO, "fsync %s/%s: %s", s->dir, sp.rel, strerror(errno));
		close(sp.fd);
	}
	if (sp.staged_fd >= 0)
		close(sp.staged_fd);
	return rc;
}

/* ------------------------------------------------------------ --delete */

static int
swap_cmp_path_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct mf_manifest_file *)elem)->path);
}

/* 1 when some manifest path starts with prefix + "/". */
static int
swap_is_folder_of_listed(const struct mf_sync *s, const char *prefix)
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

/* One entry of DIR: the sync's own state is skipped, a listed file kept, an
 * unlisted one removed, and a folder left empty removed on its way out
 * unless a listed path lives below it. */
static int
swap_delete_one(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct mf_sync *s = ctx;
	int is_dir = S_ISDIR(e->st->st_mode);

	if (e->depth == 0 && strncmp(e->name, MF_SYNC_RESERVED_PREFIX,
	                             strlen(MF_SYNC_RESERVED_PREFIX)) == 0)
		return is_dir ? HC_WALK_SKIP : 0;
	if (is_dir) {
		/* A folder that still holds something stays. */
		if (e->post && !swap_is_folder_of_listed(s, e->rel))
			(void)unlinkat(e->dirfd, e->name, AT_REMOVEDIR);
		return 0;
	}
	if (bsearch(e->rel, s->m->files, s->m->n, sizeof(*s->m->files), swap_cmp_path_key) != NULL)
		return 0;
	if (unlinkat(e->dirfd, e->name, 0) != 0)
		return hc_err_set(err, HC_EIO, "remove %s/%s: %s", s->dir, e->rel, strerror(errno));
	hc_log(HC_LOG_INFO, MF_MOD, "deleted %s/%s (not in the manifest)", s->dir, e->rel);
	s->res->deleted++;
	return 0;
}

int
mf_swap_delete_extra(struct mf_sync *s, struct hc_err *err)
{
	int rc = hc_walk(s->dir_fd, s->dir, MF_SYNC_DEPTH_MAX, 1, swap_delete_one, s, err);

	/* A tree deeper or longer than any manifest path is a problem of DIR,
	 * not of the manifest (exit 73, not 65). */
	if (rc == HC_EDATA) {
		hc_err_prefix(err, "--delete");
		if (err != NULL)
			err->status = HC_ECANTCREAT;
		rc = HC_ECANTCREAT;
	}
	return rc;
}
