/* Files: atomic replacement, directory fsync, whole-file reads, mkdir -p. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hc.h"

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

int
hc_atomic_write(const char *path, const void *data, size_t len, mode_t mode,
                struct hc_err *err)
{
	char tmp[PATH_MAX];
	int fd = -1;
	int rc;

	if (hc_snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "path too long: %s", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, HC_ECANTCREAT, "create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0) {
		rc = hc_err_set(err, HC_EIO, "chmod %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (hc_write_all(fd, data, len) != 0) {
		rc = hc_err_set(err, HC_EIO, "write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fsync(fd) != 0) {
		rc = hc_err_set(err, HC_EIO, "fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = hc_err_set(err, HC_EIO, "close %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = hc_err_set(err, HC_EIO, "rename %s: %s", path, strerror(errno));
		goto fail;
	}
	return hc_fsync_dir(path, err);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
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
