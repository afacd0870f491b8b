/* Files: atomic replacement, directory fsync, whole-file reads, mkdir -p. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hc.h"

/* Temp names tried by hc_atomic_write_at before giving up: a collision
 * needs a leftover of the same pid and counter. */
#define ATOMIC_WRITE_TRIES 16

int
hc_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return HC_EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
hc_fsync_dir(const char *path, struct hc_err *err)
{
	char copy[PATH_MAX];
	struct stat st;
	const char *dir;
	int fd = -1;
	int rc = 0;

	if (hc_strlcpy(copy, path, sizeof(copy)) != 0)
		return hc_err_set(err, HC_EIO, "path too long: %s", path);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		dir = copy;
	else
		dir = dirname(copy);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, HC_EIO, "open %s: %s", dir, strerror(errno));
	if (fsync(fd) != 0)
		rc = hc_err_set(err, HC_EIO, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}

/* Creates name.tmp.PID.N in dirfd (O_EXCL, no link followed) into *fd and
 * tmp. The name keeps name's prefix, so a leftover is recognised by whoever
 * owns name. 0 or HC_ECANTCREAT. */
static int
atomic_temp_at(int dirfd, const char *name, mode_t mode, char *tmp, size_t size, int *fd,
               struct hc_err *err)
{
	static atomic_uint counter;
	int i;

	*fd = -1;
	for (i = 0; i < ATOMIC_WRITE_TRIES && *fd < 0; i++) {
		if (hc_snprintf(tmp, size, "%s.tmp.%ld.%u", name, (long)getpid(),
		                atomic_fetch_add(&counter, 1)) != 0)
			return hc_err_set(err, HC_ECANTCREAT, "path too long: %s", name);
		*fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (*fd < 0 && errno != EEXIST)
			return hc_err_set(err, HC_ECANTCREAT, "create %s: %s", tmp, strerror(errno));
	}
	if (*fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "create a temp file for %s: %s", name,
		                  strerror(errno));
	return 0;
}

int
hc_atomic_write_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                   struct hc_err *err)
{
	char tmp[PATH_MAX];
	int fd = -1;
	int rc;

	rc = atomic_temp_at(dirfd, name, mode, tmp, sizeof(tmp), &fd, err);
	if (rc != 0)
		return rc;
	/* The mode asked for, not what the umask leaves of it. */
	if (fchmod(fd, mode) != 0) {
		rc = hc_err_set(err, HC_EIO, "chmod %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (hc_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		rc = hc_err_set(err, HC_EIO, "write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = hc_err_set(err, HC_EIO, "close %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) != 0) {
		rc = hc_err_set(err, HC_EIO, "rename %s: %s", name, strerror(errno));
		goto fail;
	}
	if (fsync(dirfd) != 0)
		return hc_err_set(err, HC_EIO, "fsync the folder of %s: %s", name, strerror(errno));
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return rc;
}

int
hc_atomic_write(const char *path, const void *data, size_t len, mode_t mode,
                struct hc_err *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int dirfd, rc;

	/* "b" lives in ".", "/b" in "/", "a/b" in "a". */
	if (hc_snprintf(dir, sizeof(dir), "%.*s", slash == NULL || slash == path ? 1 :
	                (int)(slash - path), slash == NULL ? "." : path) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "path too long: %s", path);
	if (slash != NULL && slash[1] == '\0')
		return hc_err_set(err, HC_ECANTCREAT, "%s: names a folder, not a file", path);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* Named as the temp file that could not be made beside path. */
	if (dirfd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "create %s.tmp.*: %s", path, strerror(errno));
	rc = hc_atomic_write_at(dirfd, slash != NULL ? slash + 1 : path, data, len, mode, err);
	if (rc != 0)
		hc_err_prefix(err, "%s", dir);
	close(dirfd);
	return rc;
}

int
hc_read_file(const char *path, size_t max, char **out, size_t *len,
             struct hc_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = -1;
	int rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, errno == ENOENT ? HC_ENOTFOUND : HC_EIO,
		                  "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = hc_err_set(err, HC_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = hc_err_set(err, HC_EIO, "%s: not a regular file", path);
		goto done;
	}
	if ((uint64_t)st.st_size > max) {
		rc = hc_err_set(err, HC_EDATA, "%s: larger than %zu bytes", path, max);
		goto done;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = hc_err_set(err, HC_EIO, "read %s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
done:
	free(buf);
	close(fd);
	return rc;
}

int
hc_mkdir_p(const char *path, mode_t mode, struct hc_err *err)
{
	char copy[PATH_MAX];
	char *p;

	if (hc_strlcpy(copy, path, sizeof(copy)) != 0)
		return hc_err_set(err, HC_EIO, "path too long: %s", path);
	for (p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) != 0 && errno != EEXIST)
			return hc_err_set(err, HC_EIO, "mkdir %s: %s", copy, strerror(errno));
		*p = '/';
	}
	if (mkdir(copy, mode) != 0 && errno != EEXIST)
		return hc_err_set(err, HC_EIO, "mkdir %s: %s", copy, strerror(errno));
	return 0;
}

struct sweep {
	const char *prefix;
	size_t len;
	int removed;
};

static int
sweep_one(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct sweep *sw = ctx;

	(void)err;
	if (!S_ISDIR(e->st->st_mode) && strncmp(e->name, sw->prefix, sw->len) == 0 &&
	    unlinkat(e->dirfd, e->name, 0) == 0)
		sw->removed++;
	/* One folder, never below it. */
	return HC_WALK_SKIP;
}

int
hc_atomic_sweep_at(int dirfd, const char *name)
{
	char prefix[HC_PATH_MAX];
	struct sweep sw;

	if (hc_snprintf(prefix, sizeof(prefix), "%s.tmp.", name) != 0)
		return 0;
	sw.prefix = prefix;
	sw.len = strlen(prefix);
	sw.removed = 0;
	(void)hc_walk(dirfd, ".", 0, 0, sweep_one, &sw, NULL);
	return sw.removed;
}
