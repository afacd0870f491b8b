/* See yaml_common.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz/lib/support.h"
#include "fuzz/lib/yaml.h"

/* A dump of a config under the loader's 4 MiB limit stays under this. */
#define FZ_DUMP_MAX (16u << 20)

void
fz_check_config_error(int rc, const struct hc_err *err, const char *name)
{
	size_t n = strlen(name);
	const char *p = err->msg + n;
	int fields;

	if (rc == HC_ENOMEM)
		return;
	if (rc != HC_ECONFIG)
		fz_fail("a refused config is not HC_ECONFIG");
	if (strncmp(err->msg, name, n) != 0 || *p != ':')
		fz_fail("config error does not start with the file name");
	for (fields = 0; fields < 2; fields++) {
		p++;
		if (*p < '1' || *p > '9')
			fz_fail("config error has no line:col");
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p != ':')
			fz_fail("config error has no line:col");
	}
}

static char *
fz_dump(const struct hc_cfg_field *schema, const void *obj, size_t *len)
{
	struct hc_err err = { 0, "" };
	char *text = NULL;
	off_t end;
	int fd;

	fd = memfd_create("fuzz-dump", MFD_CLOEXEC);
	if (fd < 0)
		fz_fail("memfd_create");
	if (hc_cfg_dump(schema, obj, fd, &err) != 0)
		fz_fail("hc_cfg_dump failed on a loaded config");
	end = lseek(fd, 0, SEEK_CUR);
	if (end < 0 || (size_t)end > FZ_DUMP_MAX)
		fz_fail("dump size");
	text = malloc((size_t)end + 1);
	if (text == NULL || pread(fd, text, (size_t)end, 0) != end)
		fz_fail("reading the dump back");
	text[end] = '\0';
	*len = (size_t)end;
	close(fd);
	return text;
}

void
fz_check_config_roundtrip(const struct hc_cfg_field *schema, const void *obj,
                          size_t obj_size)
{
	struct hc_err err = { 0, "" };
	char *first, *second;
	size_t len1, len2;
	void *fresh;
	int rc;

	first = fz_dump(schema, obj, &len1);
	fresh = calloc(1, obj_size);
	if (fresh == NULL)
		fz_fail("out of memory");
	if (hc_cfg_defaults(schema, fresh, &err) != 0)
		fz_fail("defaults");
	rc = hc_cfg_load_buffer(schema, fresh, "dump.yaml", first, len1, &err);
	if (rc == HC_ENOMEM)
		goto done;
	if (rc != 0) {
		fprintf(stderr, "dump:\n%s\nreload: %s\n", first, err.msg);
		fz_fail("the dump of a loaded config does not load");
	}
	second = fz_dump(schema, fresh, &len2);
	if (len1 != len2 || memcmp(first, second, len1) != 0)
		fz_fail("the dump of a reloaded dump differs");
	free(second);
done:
	hc_cfg_free(schema, fresh);
	free(fresh);
	free(first);
}
