/* One directory walk for everyone: relative to folder fds, never through a
 * link, bounded in depth. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/hc.h"

struct walk {
	hc_walk_fn fn;
	void *ctx;
	int max_depth;
	int post;
	const char *root_name;
	char rel[HC_PATH_MAX];
};

static int walk_dir(struct walk *w, int dfd, size_t rel_len, int depth,
                    struct hc_err *err);

/* Reports one entry of folder dfd, whose path from the root is already in
 * w->rel, and descends into it when it is a folder. 0 or the first error. */
static int
walk_entry(struct walk *w, int dfd, const char *name, int depth,
           struct hc_err *err)
{
	struct hc_walk_entry e;
	struct stat st;
	int rc, cfd;

	/* An entry removed since readdir is no longer part of the tree. */
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;
		return hc_err_set(err, HC_EIO, "stat %s/%s: %s", w->root_name, w->rel,
		                  strerror(errno));
	}
	e.dirfd = dfd;
	e.name = name;
	e.rel = w->rel;
	e.st = &st;
	e.depth = depth;
	e.post = 0;
	rc = w->fn(w->ctx, &e, err);
	if (rc < 0)
		return rc;
	if (!S_ISDIR(st.st_mode) || rc == HC_WALK_SKIP)
		return 0;
	if (depth + 1 > w->max_depth)
		return hc_err_set(err, HC_EDATA, "%s/%s: folders nested deeper than %d",
		                  w->root_name, w->rel, w->max_depth);
	cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0)
		return hc_err_set(err, HC_EIO, "open %s/%s: %s", w->root_name, w->rel,
		                  strerror(errno));
	rc = walk_dir(w, cfd, strlen(w->rel), depth + 1, err);
	if (rc < 0 || !w->post)
		return rc;
	/* The child reset w->rel to this entry's path on its way out. */
	e.post = 1;
	rc = w->fn(w->ctx, &e, err);
	return rc < 0 ? rc : 0;
}

/* Visits the entries of the open folder dfd whose path from the root is
 * w->rel (rel_len bytes, "" for the root). Takes ownership of dfd. */
static int
walk_dir(struct walk *w, int dfd, size_t rel_len, int depth, struct hc_err *err)
{
	DIR *d = NULL;
	struct dirent *de;
	int rc = 0;

	d = fdopendir(dfd);
	if (d == NULL) {
		rc = hc_err_set(err, HC_EIO, "open %s/%s: %s", w->root_name, w->rel,
		                strerror(errno));
		close(dfd);
		return rc;
	}
	for (;;) {
		size_t n;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				rc = hc_err_set(err, HC_EIO, "read %s/%s: %s", w->root_name,
				                w->rel, strerror(errno));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n = strlen(de->d_name);
		if (rel_len + 1 + n >= sizeof(w->rel)) {
			rc = hc_err_set(err, HC_EDATA, "%s/%s/%s: path too long", w->root_name,
			                w->rel, de->d_name);
			break;
		}
		if (rel_len > 0)
			w->rel[rel_len] = '/';
		memcpy(w->rel + rel_len + (rel_len > 0), de->d_name, n + 1);
		rc = walk_entry(w, dirfd(d), de->d_name, depth, err);
		w->rel[rel_len] = '\0';
		if (rc < 0)
			break;
	}
	w->rel[rel_len] = '\0';
	closedir(d);
	return rc < 0 ? rc : 0;
}

int
hc_walk(int root_fd, const char *root_name, int max_depth, int post,
        hc_walk_fn fn, void *ctx, struct hc_err *err)
{
	struct walk w;
	int dfd;

	w.fn = fn;
	w.ctx = ctx;
	w.max_depth = max_depth;
	w.post = post;
	w.root_name = root_name != NULL ? root_name : ".";
	w.rel[0] = '\0';
	/* fdopendir takes the fd it is given and readdir moves its offset: walk
	 * a duplicate so the caller's fd stays as it was. */
	dfd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hc_err_set(err, HC_EIO, "open %s: %s", w.root_name, strerror(errno));
	return walk_dir(&w, dfd, 0, 0, err);
}
