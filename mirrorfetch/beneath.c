/*
 * Paths below a folder fd, no link followed: a synced DIR may hold links
 * planted by someone who can write it but not elsewhere, and the agent runs
 * as root. Each helper here refuses or replaces a link instead of going
 * through it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mirrorfetch/internal.h"

/* openat2 where the kernel has it. -1 with ENOSYS where it does not (older
 * kernels, valgrind, seccomp filters that answer EPERM). */
static int
beneath_openat2(int dirfd, const char *rel, int flags, mode_t mode)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? mode : 0;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
	return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

/* The fallback: each folder on the way with O_NOFOLLOW | O_DIRECTORY, the
 * last segment with O_NOFOLLOW. rel has no "." or ".." segment (manifest
 * paths are checked), so no step can leave dirfd. */
static int
beneath_stepwise(int dirfd, const char *rel, int flags, mode_t mode)
{
	char seg[HC_PATH_MAX];
	const char *p = rel, *slash;
	int cur = dirfd, fd, saved;

	for (slash = strchr(p, '/'); slash != NULL; slash = strchr(p, '/')) {
		size_t n = (size_t)(slash - p);
		if (n == 0 || n >= sizeof(seg)) {
			fd = -1;
			errno = ENAMETOOLONG;
			goto done;
		}
		memcpy(seg, p, n);
		seg[n] = '\0';
		fd = openat(cur, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cur != dirfd)
			close(cur);
		if (fd < 0)
			return -1;
		cur = fd;
		p = slash + 1;
	}
	fd = openat(cur, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
done:
	saved = errno;
	if (cur != dirfd)
		close(cur);
	errno = saved;
	return fd;
}

int
mf_open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
	/* Set once openat2 answered ENOSYS or EPERM: the answer does not change
	 * within a process, and asking again costs a syscall per file. */
	static atomic_int no_openat2;
	int fd;

	if (rel[0] == '/' || rel[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (!atomic_load(&no_openat2)) {
		fd = beneath_openat2(dirfd, rel, flags, mode);
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
			return fd;
		atomic_store(&no_openat2, 1);
	}
	return beneath_stepwise(dirfd, rel, flags, mode);
}

/* Opens the folder name in dirfd, making it first when asked; with
 * replace, a non-folder in the way is removed. The fd or a negative status. */
static int
beneath_dir_step(int dirfd, const char *name, int create, int replace, int *made)
{
	int fd, tries;

	for (tries = 0; tries < 2; tries++) {
		if (create && mkdirat(dirfd, name, 0755) == 0)
			*made = 1;
		else if (create && errno != EEXIST)
			return HC_ECANTCREAT;
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == ENOENT)
			return create ? HC_ECANTCREAT : HC_ENOTFOUND;
		/* Another worker may have removed the same entry first. */
		if (!replace || (errno != ELOOP && errno != ENOTDIR) ||
		    (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT))
			return HC_ECANTCREAT;
	}
	return HC_ECANTCREAT;
}

int
mf_dir_beneath(int dirfd, const char *rel, int create, int replace, int *out,
               const char *what, struct hc_err *err)
{
	char seg[HC_PATH_MAX];
	const char *p = rel;
	int cur, depth = 0;

	*out = -1;
	cur = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return hc_err_set(err, HC_ECANTCREAT, "open %s: %s", what, strerror(errno));
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		int made = 0, fd;

		if (n == 0 || n >= sizeof(seg) || ++depth > MF_SYNC_DEPTH_MAX) {
			close(cur);
			return hc_err_set(err, HC_ECANTCREAT, "%s/%s: bad or too long path", what, rel);
		}
		memcpy(seg, p, n);
		seg[n] = '\0';
		fd = beneath_dir_step(cur, seg, create, replace, &made);
		if (fd >= 0 && made && fsync(cur) != 0) {
			close(fd);
			fd = HC_ECANTCREAT;
		}
		if (fd < 0) {
			int saved = errno;
			close(cur);
			if (fd == HC_ENOTFOUND)
				return fd;
			return hc_err_set(err, fd, "%s/%.*s: %s", what, (int)(p - rel + (ptrdiff_t)n),
			                  rel, saved == ELOOP || saved == ENOTDIR ?
			                  "a link or a file where a folder belongs" : strerror(saved));
		}
		close(cur);
		cur = fd;
		p += n + (slash != NULL);
	}
	*out = cur;
	return 0;
}

struct remove_ctx {
	const char *what;
};

/* Post-order: a folder is removed after its contents. */
static int
beneath_remove_one(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct remove_ctx *r = ctx;
	int is_dir = S_ISDIR(e->st->st_mode);

	if (is_dir && !e->post)
		return 0;
	if (unlinkat(e->dirfd, e->name, is_dir ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT)
		return hc_err_set(err, HC_EIO, "remove %s/%s: %s", r->what, e->rel, strerror(errno));
	return 0;
}

int
mf_remove_tree_at(int dirfd, const char *name, const char *what, struct hc_err *err)
{
	struct remove_ctx r = { what };
	struct stat st;
	int fd, rc;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : hc_err_set(err, HC_EIO, "stat %s: %s", what,
		                                        strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return hc_err_set(err, HC_EIO, "open %s: %s", what, strerror(errno));
		rc = hc_walk(fd, what, MF_SYNC_DEPTH_MAX, 1, beneath_remove_one, &r, err);
		close(fd);
		if (rc != 0)
			return rc;
	}
	if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT)
		return hc_err_set(err, HC_EIO, "remove %s: %s", what, strerror(errno));
	return 0;
}

int
mf_read_at(int dirfd, const char *name, size_t max, char **out, size_t *len,
           struct hc_err *err)
{
	struct hc_buf b;
	struct stat st;
	char chunk[65536];
	int fd, rc = 0;

	*out = NULL;
	*len = 0;
	hc_buf_init(&b, max);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return HC_ENOTFOUND;
		return hc_err_set(err, errno == ELOOP ? HC_EDATA : HC_EIO, "open %s: %s", name,
		                  errno == ELOOP ? "a link" : strerror(errno));
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = hc_err_set(err, HC_EDATA, "%s: not a regular file", name);
		goto done;
	}
	/* A regular file ends: each read either returns bytes or ends the loop,
	 * and the cap bounds the bytes. */
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = hc_err_set(err, HC_EIO, "read %s: %s", name, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		rc = hc_buf_add(&b, chunk, (size_t)n);
		if (rc != 0) {
			rc = hc_err_set(err, rc, "%s: larger than %zu bytes or out of memory", name, max);
			goto done;
		}
	}
	if (b.p == NULL && hc_buf_add(&b, "", 0) != 0) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	*len = b.len;
	*out = hc_buf_take(&b);
done:
	hc_buf_free(&b);
	close(fd);
	return rc;
}

int
mf_split_path(const char *rel, char *parent, size_t size, const char **base)
{
	const char *slash = strrchr(rel, '/');

	*base = slash != NULL ? slash + 1 : rel;
	if (slash == NULL) {
		parent[0] = '\0';
		return 0;
	}
	return hc_snprintf(parent, size, "%.*s", (int)(slash - rel), rel) != 0 ? HC_EDATA : 0;
}
