/*
 * The tools tree of the store ({root}/files/tools/{tool_id}/{version}/...),
 * served as /api/v1/tools/... for delta sync: hits and misses per tool for
 * /metrics, the admin DELETE of a whole version, and the purge that keeps
 * the newest keep_versions versions of each tool.
 *
 * "Newest" is version order as sort -V gives it (strverscmp: 0.10 after
 * 0.9), not upload time: re-uploading an old version does not make it new.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mirror/internal.h"

#define MOD "mirror"
#define TOOLS_DIR "tools"
/* Distinct tools counted one by one in /metrics; requests for more (a
 * client probing random names) are counted under TOOLS_OTHER, so the
 * table and the metrics page stay bounded. */
#define TOOLS_COUNTED_MAX 1024
#define TOOLS_OTHER "_other"
/* Versions of one tool looked at per purge; beyond that the rest wait for
 * the next round. */
#define TOOLS_VERSIONS_MAX 4096
/* A version folder is a few levels deep; deeper trees are not walked. */
#define TOOLS_DEPTH_MAX 64
/* How often the purge looks for versions beyond keep_versions. */
#define TOOLS_PURGE_PERIOD_MS 1000

struct tool_counter {
	char *id;
	uint64_t hits, misses;
};

struct mir_tools {
	pthread_mutex_t mu;
	struct tool_counter *counters;
	size_t n;
	struct tool_counter other;
	/* purge thread */
	pthread_t thread;
	int thread_started;
	pthread_cond_t cv;
	int stop;
	uint64_t purged_versions;
};

/* ------------------------------------------------------------ counters */

/* The tool_id of a store path "tools/ID/...", copied into out; 0 or -1. */
static int
tools_id_of(const char *path, char *out, size_t size)
{
	const char *id, *slash;

	if (strncmp(path, TOOLS_DIR "/", strlen(TOOLS_DIR) + 1) != 0)
		return -1;
	id = path + strlen(TOOLS_DIR) + 1;
	slash = strchr(id, '/');
	if (slash == NULL || slash == id || (size_t)(slash - id) >= size)
		return -1;
	memcpy(out, id, (size_t)(slash - id));
	out[slash - id] = '\0';
	return 0;
}

void
mir_tools_count(struct mir_server *s, const char *path, int hit)
{
	struct mir_tools *t = s->tools;
	struct tool_counter *c = NULL;
	char id[MIR_PATH_MAX];
	size_t i;

	if (t == NULL || tools_id_of(path, id, sizeof(id)) != 0)
		return;
	pthread_mutex_lock(&t->mu);
	for (i = 0; i < t->n; i++) {
		if (strcmp(t->counters[i].id, id) == 0) {
			c = &t->counters[i];
			break;
		}
	}
	if (c == NULL && t->n < TOOLS_COUNTED_MAX) {
		char *copy = hc_strdup(id);
		void *p = copy != NULL ? realloc(t->counters, (t->n + 1) * sizeof(*t->counters)) :
		          NULL;
		if (p != NULL) {
			t->counters = p;
			c = &t->counters[t->n++];
			c->id = copy;
			c->hits = 0;
			c->misses = 0;
		} else {
			free(copy);
		}
	}
	if (c == NULL)
		c = &t->other;
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&t->mu);
}

/* Appends a label value with Prometheus escaping. */
static int
tools_label(char **buf, size_t *len, size_t *cap, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*len + 3 > *cap) {
			size_t ncap = *cap * 2 + 64;
			char *p = realloc(*buf, ncap);
			if (p == NULL)
				return -1;
			*buf = p;
			*cap = ncap;
		}
		if (*v == '\\' || *v == '"')
			(*buf)[(*len)++] = '\\';
		(*buf)[(*len)++] = *v;
	}
	return 0;
}

static int
tools_append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t l = strlen(s);

	if (*len + l + 1 > *cap) {
		size_t ncap = (*cap + l) * 2 + 64;
		char *p = realloc(*buf, ncap);
		if (p == NULL)
			return -1;
		*buf = p;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, l + 1);
	*len += l;
	return 0;
}

char *
mir_tools_metrics(struct mir_server *s)
{
	static const char *const names[2] = { "hydra_mirror_tool_hits_total",
	                                      "hydra_mirror_tool_misses_total" };
	static const char *const helps[2] = {
		"Requests under /api/v1/tools/ answered from the store, by tool_id.",
		"Requests under /api/v1/tools/ for files not in the store, by tool_id.",
	};
	struct mir_tools *t = s->tools;
	char *buf = NULL, num[64];
	size_t len = 0, cap = 0, i;
	int k, failed = 0;

	if (t == NULL)
		return NULL;
	pthread_mutex_lock(&t->mu);
	for (k = 0; k < 2 && !failed; k++) {
		char head[256];
		hc_snprintf(head, sizeof(head), "# HELP %s %s\n# TYPE %s counter\n", names[k],
		            helps[k], names[k]);
		failed |= tools_append(&buf, &len, &cap, head);
		for (i = 0; i <= t->n && !failed; i++) {
			const struct tool_counter *c = i < t->n ? &t->counters[i] : &t->other;
			uint64_t v = k == 0 ? c->hits : c->misses;
			if (i == t->n && c->hits == 0 && c->misses == 0)
				break;
			failed |= tools_append(&buf, &len, &cap, names[k]);
			failed |= tools_append(&buf, &len, &cap, "{tool=\"");
			failed |= tools_label(&buf, &len, &cap, i < t->n ? c->id : TOOLS_OTHER);
			hc_snprintf(num, sizeof(num), "\"} %" PRIu64 "\n", v);
			failed |= tools_append(&buf, &len, &cap, num);
		}
	}
	if (!failed) {
		hc_snprintf(num, sizeof(num), "%" PRIu64 "\n", t->purged_versions);
		failed |= tools_append(&buf, &len, &cap,
		                       "# HELP hydra_mirror_tool_versions_purged_total Tool versions "
		                       "removed by keep_versions or the admin DELETE.\n"
		                       "# TYPE hydra_mirror_tool_versions_purged_total counter\n"
		                       "hydra_mirror_tool_versions_purged_total ");
		failed |= tools_append(&buf, &len, &cap, num);
	}
	pthread_mutex_unlock(&t->mu);
	if (failed) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ------------------------------------------------------------ removing a version */

/* Removes every file under the folder open at dfd (store path rel) through
 * the store, so the index follows, then the folders below it. Never follows
 * a symlink: a link is removed as a link. A file the store refuses (it
 * resolves outside) stops the walk with that status. Takes dfd. */
static int
tools_remove_tree(struct mir_server *s, int dfd, const char *rel, int depth, uint64_t *files,
                  struct hc_err *err)
{
	DIR *d = NULL;
	struct dirent *de;
	int rc = 0;

	if (depth > TOOLS_DEPTH_MAX) {
		close(dfd);
		return hc_err_set(err, HC_EIO, "%s: nested deeper than %d", rel, TOOLS_DEPTH_MAX);
	}
	d = fdopendir(dfd);
	if (d == NULL) {
		rc = hc_err_set(err, HC_EIO, "open %s: %s", rel, strerror(errno));
		close(dfd);
		return rc;
	}
	for (;;) {
		char child[MIR_PATH_MAX];
		struct stat st;
		int cfd;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				rc = hc_err_set(err, HC_EIO, "read %s: %s", rel, strerror(errno));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (hc_snprintf(child, sizeof(child), "%s/%s", rel, de->d_name) != 0) {
			rc = hc_err_set(err, HC_EIO, "%s/%s: path too long", rel, de->d_name);
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0)
				rc = hc_err_set(err, HC_EIO, "open %s: %s", child, strerror(errno));
			else
				rc = tools_remove_tree(s, cfd, child, depth + 1, files, err);
			if (rc == 0 && unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) != 0 &&
			    errno != ENOENT)
				rc = hc_err_set(err, HC_EIO, "rmdir %s: %s", child, strerror(errno));
		} else if (S_ISREG(st.st_mode)) {
			rc = mir_store_delete(s->store, child, err);
			if (rc == 0)
				(*files)++;
			else if (rc == HC_ENOTFOUND)
				rc = 0;  /* gone meanwhile */
		} else if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno != ENOENT) {
			rc = hc_err_set(err, HC_EIO, "remove %s: %s", child, strerror(errno));
		}
		if (rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

/* Opens the folder rel of the store with no symlink on the way and every
 * step beneath files/ (dfd: the files folder). Returns the fd, or
 * HC_ENOTFOUND, or HC_EDATA for a link or a way out. */
static int
tools_open_beneath(struct mir_server *s, int dfd, const char *rel, struct hc_err *err)
{
	struct open_how how;
	char full[PATH_MAX], real[PATH_MAX], want[PATH_MAX];
	long r;
	int fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	do {
		r = syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	} while (r < 0 && (errno == EINTR || errno == EAGAIN));
	if (r >= 0)
		return (int)r;
	if (errno == ENOENT || errno == ENOTDIR)
		return hc_err_set(err, HC_ENOTFOUND, "%s: no such version", rel);
	if (errno != ENOSYS)
		return hc_err_set(err, HC_EDATA, "%s: %s", rel, strerror(errno));
	/* No openat2 in this kernel: the real path must be the path itself. */
	if (hc_snprintf(full, sizeof(full), "%s/files/%s", s->cfg->root, rel) != 0 ||
	    hc_snprintf(want, sizeof(want), "%s/files", s->cfg->root) != 0 ||
	    realpath(want, real) == NULL ||
	    hc_snprintf(want, sizeof(want), "%s/%s", real, rel) != 0)
		return hc_err_set(err, HC_EIO, "%s: path too long", rel);
	if (realpath(full, real) == NULL)
		return hc_err_set(err, HC_ENOTFOUND, "%s: no such version", rel);
	if (strcmp(real, want) != 0)
		return hc_err_set(err, HC_EDATA, "%s: leads through a link", rel);
	fd = open(real, how.flags | O_NOFOLLOW);
	if (fd < 0)
		return hc_err_set(err, errno == ENOTDIR ? HC_ENOTFOUND : HC_EDATA, "%s: %s", rel,
		                  strerror(errno));
	return fd;
}

/* Removes tools/ID/VERSION. HC_ENOTFOUND when it is not a folder, HC_EDATA
 * when it (or tools/ID) is a link or a file in it resolves outside. */
static int
tools_remove_version(struct mir_server *s, const char *rel, uint64_t *files,
                     struct hc_err *err)
{
	char files_dir[PATH_MAX], parent[MIR_PATH_MAX];
	struct stat st;
	char *slash;
	int files_fd = -1, pfd = -1, vfd = -1, rc;

	*files = 0;
	hc_strlcpy(parent, rel, sizeof(parent));
	slash = strrchr(parent, '/');
	if (slash == NULL)
		return hc_err_set(err, HC_ENOTFOUND, "%s: no such version", rel);
	*slash = '\0';
	if (hc_snprintf(files_dir, sizeof(files_dir), "%s/files", s->cfg->root) != 0)
		return hc_err_set(err, HC_EIO, "%s: path too long", rel);
	files_fd = open(files_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (files_fd < 0) {
		rc = hc_err_set(err, HC_EIO, "open %s: %s", files_dir, strerror(errno));
		goto done;
	}
	rc = tools_open_beneath(s, files_fd, parent, err);
	if (rc < 0)
		goto done;
	pfd = rc;
	if (fstatat(pfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) != 0)
		st.st_mode = 0;
	if (!S_ISDIR(st.st_mode)) {
		if (S_ISLNK(st.st_mode))
			rc = hc_err_set(err, HC_EDATA, "%s: a link", rel);
		else
			rc = hc_err_set(err, HC_ENOTFOUND, "%s: no such version", rel);
		goto done;
	}
	/* O_NOFOLLOW: a folder swapped for a link since fstatat is refused. */
	vfd = openat(pfd, slash + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (vfd < 0) {
		rc = hc_err_set(err, HC_EDATA, "%s: %s", rel, strerror(errno));
		goto done;
	}
	rc = tools_remove_tree(s, vfd, rel, 0, files, err);
	vfd = -1;
	if (rc == 0 && unlinkat(pfd, slash + 1, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = hc_err_set(err, HC_EIO, "rmdir %s: %s", rel, strerror(errno));
	if (s->tools != NULL) {
		pthread_mutex_lock(&s->tools->mu);
		s->tools->purged_versions++;
		pthread_mutex_unlock(&s->tools->mu);
	}
done:
	if (pfd >= 0)
		close(pfd);
	if (files_fd >= 0)
		close(files_fd);
	return rc;
}

int
mir_tools_is_version(struct mir_server *s, const char *path)
{
	char full[PATH_MAX];
	struct stat st;
	const char *p;
	int slashes = 0;

	if (strncmp(path, TOOLS_DIR "/", strlen(TOOLS_DIR) + 1) != 0)
		return 0;
	for (p = path; *p != '\0'; p++)
		if (*p == '/')
			slashes++;
	if (slashes != 2)
		return 0;
	if (hc_snprintf(full, sizeof(full), "%s/files/%s", s->cfg->root, path) == 0 &&
	    lstat(full, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	return 1;
}

enum MHD_Result
mir_tools_delete_version(struct mir_server *s, struct MHD_Connection *c, struct mir_req *r,
                         const char *path)
{
	struct hc_err err = { 0, "" };
	struct MHD_Response *resp;
	char body[MIR_PATH_MAX + 128];
	uint64_t files = 0;
	int rc = tools_remove_version(s, path, &files, &err);

	if (rc == HC_ENOTFOUND)
		return mir_srv_error(s, c, r, MHD_HTTP_NOT_FOUND, "not found");
	if (rc == HC_EDATA) {
		hc_log(HC_LOG_WARN, MOD, "DELETE %s: %s", path, err.msg);
		return mir_srv_error(s, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	}
	if (rc != 0) {
		hc_log(HC_LOG_WARN, MOD, "DELETE %s: %s", path, err.msg);
		return mir_srv_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	hc_log(HC_LOG_INFO, MOD, "deleted %s (%" PRIu64 " files)", path, files);
	/* The path passed hc_path_decode: no quote, backslash or control byte. */
	if (hc_snprintf(body, sizeof(body), "{\"deleted\": \"%s\", \"files\": %" PRIu64 "}\n",
	                path, files) != 0)
		hc_strlcpy(body, "{}\n", sizeof(body));
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return mir_srv_queue(s, c, r, MHD_HTTP_OK, resp);
}

/* ------------------------------------------------------------ purge */

/* A real folder (not a symlink) named name inside parent. */
static int
tools_is_dir(const char *parent, const struct dirent *de)
{
	char full[PATH_MAX];
	struct stat st;

	if (de->d_name[0] == '.')
		return 0;
	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_DIR;
	if (hc_snprintf(full, sizeof(full), "%s/%s", parent, de->d_name) != 0)
		return 0;
	return lstat(full, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
tools_cmp_version(const void *a, const void *b)
{
	return strverscmp(*(char *const *)a, *(char *const *)b);
}

/* Keeps the newest keep versions of tool id, removes the others. */
static void
tools_purge_tool(struct mir_server *s, const char *id, long long keep)
{
	char full[PATH_MAX];
	char *names[TOOLS_VERSIONS_MAX];
	size_t n = 0, i;
	DIR *d;
	struct dirent *de;

	if (hc_snprintf(full, sizeof(full), "%s/files/" TOOLS_DIR "/%s", s->cfg->root, id) != 0)
		return;
	d = opendir(full);
	if (d == NULL)
		return;
	while (n < TOOLS_VERSIONS_MAX) {
		de = readdir(d);
		if (de == NULL)
			break;
		if (!tools_is_dir(full, de))
			continue;
		names[n] = hc_strdup(de->d_name);
		if (names[n] != NULL)
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), tools_cmp_version);
	for (i = 0; i + (size_t)keep < n; i++) {
		char rel[MIR_PATH_MAX];
		struct hc_err err = { 0, "" };
		uint64_t files = 0;

		if (hc_snprintf(rel, sizeof(rel), TOOLS_DIR "/%s/%s", id, names[i]) != 0)
			continue;
		if (tools_remove_version(s, rel, &files, &err) != 0)
			hc_log(HC_LOG_WARN, MOD, "purge %s: %s", rel, err.msg);
		else
			hc_log(HC_LOG_INFO, MOD, "purged %s (%" PRIu64 " files): keeping the newest %lld "
			       "versions of %s", rel, files, keep, id);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
}

static void
tools_purge(struct mir_server *s)
{
	char full[PATH_MAX];
	DIR *d;
	struct dirent *de;

	if (hc_snprintf(full, sizeof(full), "%s/files/" TOOLS_DIR, s->cfg->root) != 0)
		return;
	d = opendir(full);
	if (d == NULL)
		return;
	for (;;) {
		de = readdir(d);
		if (de == NULL)
			break;
		if (!tools_is_dir(full, de))
			continue;
		tools_purge_tool(s, de->d_name, s->cfg->keep_versions);
	}
	closedir(d);
}

static void *
tools_purger(void *arg)
{
	struct mir_server *s = arg;
	struct mir_tools *t = s->tools;

	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		pthread_mutex_unlock(&t->mu);
		tools_purge(s);
		pthread_mutex_lock(&t->mu);
		if (!t->stop)
			hc_cond_wait_ms(&t->cv, &t->mu, TOOLS_PURGE_PERIOD_MS);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

int
mir_tools_start(struct mir_server *s, struct hc_err *err)
{
	struct mir_tools *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	s->tools = t;
	if (s->cfg->keep_versions > 0) {
		if (pthread_create(&t->thread, NULL, tools_purger, s) != 0)
			return hc_err_set(err, HC_ESOFTWARE, "cannot start the version purge");
		t->thread_started = 1;
		hc_log(HC_LOG_INFO, MOD, "keeping the newest %lld versions of each tool",
		       s->cfg->keep_versions);
	}
	return 0;
}

void
mir_tools_stop(struct mir_server *s)
{
	struct mir_tools *t = s->tools;
	size_t i;

	if (t == NULL)
		return;
	if (t->thread_started) {
		pthread_mutex_lock(&t->mu);
		t->stop = 1;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->thread, NULL);
	}
	for (i = 0; i < t->n; i++)
		free(t->counters[i].id);
	free(t->counters);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
	s->tools = NULL;
}
