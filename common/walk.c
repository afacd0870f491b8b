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

/* Visits the entries of the open folder d whose path from the root is
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
		struct hc_walk_entry e;
		struct stat st;
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
		/* An entry removed since readdir is no longer part of the tree. */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			w->rel[rel_len] = '\0';
			if (errno == ENOENT)
				continue;
			rc = hc_err_set(err, HC_EIO, "stat %s/%s: %s", w->root_name, w->rel,
			                strerror(errno));
			break;
		}
		e.dirfd = dirfd(d);
		e.name = de->d_name;
		e.rel = w->rel;
		e.st = &st;
		e.depth = depth;
		e.post = 0;
		rc = w->fn(w->ctx, &e, err);
		if (rc < 0)
			break;
		if (S_ISDIR(st.st_mode) && rc != HC_WALK_SKIP) {
			int cfd;

			if (depth + 1 > w->max_depth) {
				rc = hc_err_set(err, HC_EDATA, "%s/%s: folders nested deeper than %d",
				                w->root_name, w->rel, w->max_depth);
				break;
			}
			cfd = openat(dirfd(d), de->d_name,
			             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0) {
				rc = hc_err_set(err, HC_EIO, "open %s/%s: %s", w->root_name, w->rel,
				                strerror(errno));
				break;
			}
			rc = walk_dir(w, cfd, rel_len + (rel_len > 0) + n, depth + 1, err);
			if (rc < 0)
				break;
			if (w->post) {
				e.post = 1;
				rc = w->fn(w->ctx, &e, err);
				if (rc < 0)
					break;
			}
		}
		rc = 0;
		w->rel[rel_len] = '\0';
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
