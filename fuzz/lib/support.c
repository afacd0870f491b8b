/* Helpers of the fuzz targets; see support.h. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hc.h"
#include "fuzz/lib/support.h"

/* Deepest tree a target leaves in its scratch folder: a store path may be
 * HC_PATH_MAX bytes of one-byte folders (mirror_http PUTs such paths), below
 * the few folders of the store itself. */
#define FZ_SCRATCH_DEPTH (HC_PATH_MAX / 2 + 8)

static char scratch[PATH_MAX];

void
fz_fail(const char *what)
{
	fprintf(stderr, "fuzz: property broken: %s\n", what);
	abort();
}

void
fz_quiet(void)
{
	struct hc_err err;

	if (hc_log_open(NULL, HC_LOG_ERROR, 0, &err) != 0)
		fz_fail("cannot silence the log");
}

static int
fz_unlink_entry(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	(void)ctx;
	(void)err;
	if (S_ISDIR(e->st->st_mode)) {
		if (e->post)
			unlinkat(e->dirfd, e->name, AT_REMOVEDIR);
		return 0;
	}
	unlinkat(e->dirfd, e->name, 0);
	return 0;
}

static void
fz_scratch_remove(void)
{
	struct hc_err err;
	int fd;

	fd = open(scratch, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	hc_walk(fd, scratch, FZ_SCRATCH_DEPTH, 1, fz_unlink_entry, NULL, &err);
	close(fd);
	rmdir(scratch);
}

const char *
fz_scratch(void)
{
	const char *tmp = getenv("TMPDIR");

	if (scratch[0] != '\0')
		return scratch;
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	if (hc_snprintf(scratch, sizeof(scratch), "%s/hydra-fuzz.XXXXXX", tmp) != 0 ||
	    mkdtemp(scratch) == NULL)
		fz_fail("cannot create the scratch folder");
	atexit(fz_scratch_remove);
	return scratch;
}

void
fz_write(const char *dir, const char *name, const void *data, size_t size)
{
	char path[PATH_MAX];
	int fd;

	if (hc_snprintf(path, sizeof(path), "%s/%s", dir, name) != 0)
		fz_fail("scratch path too long");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || hc_write_all(fd, data, size) != 0)
		fz_fail("cannot write into the scratch folder");
	close(fd);
}

void
fz_remove(const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (hc_snprintf(path, sizeof(path), "%s/%s", dir, name) != 0)
		fz_fail("scratch path too long");
	unlink(path);
}

char *
fz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		fz_fail("out of memory");
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

size_t
fz_split(char *text, char sep, char **fields, size_t max)
{
	static char empty[] = "";
	size_t n = 0, i;
	char *p = text;

	while (n + 1 < max) {
		char *end = strchr(p, sep);
		if (end == NULL)
			break;
		*end = '\0';
		fields[n++] = p;
		p = end + 1;
	}
	fields[n++] = p;
	for (i = n; i < max; i++)
		fields[i] = empty;
	return n;
}
