/*
 * Replays inputs through a fuzz target without libFuzzer, so the corpora
 * run in `make check` with gcc: each argument is a file, or a folder whose
 * files are replayed in name order. Prints "replayed N inputs"; a broken
 * property aborts and the sanitizers (SANITIZE=1) report.
 */
#include <limits.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/hc.h"
#include "fuzz/lib/support.h"

/* The largest input worth replaying; libFuzzer's default -max_len is 4 KiB,
 * the seeds are smaller still. */
#define REPLAY_INPUT_MAX (8u << 20)

static int
replay_file(const char *path)
{
	struct hc_err err = { 0, "" };
	char *buf = NULL;
	size_t len = 0;

	if (hc_read_file(path, REPLAY_INPUT_MAX, &buf, &len, &err) != 0) {
		fprintf(stderr, "replay: %s\n", err.msg);
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	free(buf);
	return 0;
}

static int
replay_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int
main(int argc, char **argv)
{
	size_t n = 0;
	int i, status = 0;

	for (i = 1; i < argc; i++) {
		struct dirent **names = NULL;
		struct stat st;
		int k, count;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: not found\n", argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			status |= replay_file(argv[i]);
			n++;
			continue;
		}
		count = scandir(argv[i], &names, NULL, replay_cmp);
		if (count < 0) {
			fprintf(stderr, "replay: %s: cannot list\n", argv[i]);
			return 1;
		}
		for (k = 0; k < count; k++) {
			char path[PATH_MAX];

			if (names[k]->d_name[0] != '.' &&
			    hc_snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name) == 0) {
				status |= replay_file(path);
				n++;
			}
			free(names[k]);
		}
		free(names);
	}
	printf("replayed %zu inputs\n", n);
	return status != 0 ? 1 : 0;
}
