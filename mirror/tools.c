/*
 * The tools tree of the store ({root}/files/tools/{tool_id}/{version}/...),
 * served as /api/v1/tools/... for delta sync: hits and misses per tool for
 * /metrics, the admin DELETE of a whole version, and the purge that keeps
 * the newest keep_versions versions of each tool.
 *
 * "Newest" is version order as sort -V gives it (strverscmp: 0.10 after
 * 0.9), not upload time: re-uploading an old version does not make it new.
 */
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

#include "mirror/tools.h"

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
	struct mir_store *store;
	struct mir_journal *journal;    /* origins: removals are publications, NULL: none */
	struct mir_resp *rs;
	const char *root;
	long long keep_versions;
	pthread_mutex_t mu;
	struct tool_counter *counters;
	size_t n, cap;
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
mir_tools_count(struct mir_tools *t, const char *path, int hit)
{
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
	if (c == NULL && hc_array_reserve((void **)&t->counters, &t->cap, t->n + 1,
	                                  sizeof(*t->counters), TOOLS_COUNTED_MAX) == 0) {
		char *copy = hc_strdup(id);
		if (copy != NULL) {
			c = &t->counters[t->n++];
			c->id = copy;
			c->hits = 0;
			c->misses = 0;
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
tools_label(struct hc_buf *b, const char *v)
{
	int rc = 0;

	for (; *v != '\0' && rc == 0; v++) {
		if (*v == '\\' || *v == '"')
			rc = hc_buf_add(b, "\\", 1);
		if (rc == 0)
			rc = hc_buf_add(b, v, 1);
	}
	return rc;
}

/* One counter family: its help, then one line per tool. Caller holds mu. */
static int
tools_family(struct mir_tools *t, struct hc_buf *b, const char *name, const char *help,
             int misses)
{
	size_t i;
	int rc = hc_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);

	for (i = 0; i <= t->n && rc == 0; i++) {
		const struct tool_counter *c = i < t->n ? &t->counters[i] : &t->other;
		if (i == t->n && c->hits == 0 && c->misses == 0)
			break;
		rc = hc_buf_printf(b, "%s{tool=\"", name);
		if (rc == 0)
			rc = tools_label(b, i < t->n ? c->id : TOOLS_OTHER);
		if (rc == 0)
			rc = hc_buf_printf(b, "\"} %" PRIu64 "\n", misses ? c->misses : c->hits);
	}
	return rc;
}

int
mir_tools_metrics(struct mir_tools *t, struct hc_buf *b)
{
	int rc;

	if (t == NULL)
		return 0;
	pthread_mutex_lock(&t->mu);
	rc = tools_family(t, b, "hydra_mirror_tool_hits_total",
	                  "Requests under /api/v1/tools/ answered from the store, by tool_id.", 0);
	if (rc == 0)
		rc = tools_family(t, b, "hydra_mirror_tool_misses_total",
		                  "Requests under /api/v1/tools/ for files not in the store, by "
		                  "tool_id.", 1);
	if (rc == 0)
		rc = hc_buf_printf(b, "# HELP hydra_mirror_tool_versions_purged_total Tool versions "
		                   "removed by keep_versions or the admin DELETE.\n"
		                   "# TYPE hydra_mirror_tool_versions_purged_total counter\n"
		                   "hydra_mirror_tool_versions_purged_total %" PRIu64 "\n",
		                   t->purged_versions);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* ------------------------------------------------------------ removing a version */

struct tools_rm {
	struct mir_tools *t;
	const char *rel;                /* store path of the walk's root */
	uint64_t files;
};

/* One entry of a version being removed: a file through the store, so the
 * index follows; a folder once it is empty; anything else (a link) as
 * itself, never what it points to. */
static int
tools_rm_entry(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct tools_rm *rm = ctx;
	char child[MIR_PATH_MAX];
	int rc;

	if (S_ISDIR(e->st->st_mode)) {
		if (e->post && unlinkat(e->dirfd, e->name, AT_REMOVEDIR) != 0 && errno != ENOENT)
			return hc_err_set(err, HC_EIO, "rmdir %s/%s: %s", rm->rel, e->rel,
			                  strerror(errno));
		return 0;
	}
	if (!S_ISREG(e->st->st_mode)) {
		if (unlinkat(e->dirfd, e->name, 0) != 0 && errno != ENOENT)
			return hc_err_set(err, HC_EIO, "remove %s/%s: %s", rm->rel, e->rel,
			                  strerror(errno));
		return 0;
	}
	if (hc_snprintf(child, sizeof(child), "%s/%s", rm->rel, e->rel) != 0)
		return hc_err_set(err, HC_EIO, "%s/%s: path too long", rm->rel, e->rel);
	rc = mir_store_delete(rm->t->store, child, err);
	if (rc == 0) {
		rm->files++;
		mir_journal_note(rm->t->journal, MIR_JOURNAL_DELETE, child, 0, "");
	}
	return rc == HC_ENOTFOUND ? 0 : rc;  /* gone meanwhile */
}

/* Opens the folder rel of the store with no symlink on the way and every
 * step beneath files/ (dfd: the files folder). Returns the fd, or
 * HC_ENOTFOUND, or HC_EDATA for a link or a way out. */
static int
tools_open_beneath(struct mir_tools *t, int dfd, const char *rel, struct hc_err *err)
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
	if (hc_snprintf(full, sizeof(full), "%s/files/%s", t->root, rel) != 0 ||
	    hc_snprintf(want, sizeof(want), "%s/files", t->root) != 0 ||
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
tools_remove_version(struct mir_tools *t, const char *rel, uint64_t *files,
                     struct hc_err *err)
{
	char files_dir[PATH_MAX], parent[MIR_PATH_MAX];
	struct tools_rm rm;
	struct stat st;
	char *slash;
	int files_fd = -1, pfd = -1, vfd = -1, rc;

	*files = 0;
	hc_strlcpy(parent, rel, sizeof(parent));
	slash = strrchr(parent, '/');
	if (slash == NULL)
		return hc_err_set(err, HC_ENOTFOUND, "%s: no such version", rel);
	*slash = '\0';
	if (hc_snprintf(files_dir, sizeof(files_dir), "%s/files", t->root) != 0)
		return hc_err_set(err, HC_EIO, "%s: path too long", rel);
	files_fd = open(files_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (files_fd < 0) {
		rc = hc_err_set(err, HC_EIO, "open %s: %s", files_dir, strerror(errno));
		goto done;
	}
	rc = tools_open_beneath(t, files_fd, parent, err);
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
	rm.t = t;
	rm.rel = rel;
	rm.files = 0;
	rc = hc_walk(vfd, rel, TOOLS_DEPTH_MAX, 1, tools_rm_entry, &rm, err);
	*files = rm.files;
	if (rc == 0 && unlinkat(pfd, slash + 1, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = hc_err_set(err, HC_EIO, "rmdir %s: %s", rel, strerror(errno));
	pthread_mutex_lock(&t->mu);
	t->purged_versions++;
	pthread_mutex_unlock(&t->mu);
done:
	if (vfd >= 0)
		close(vfd);
	if (pfd >= 0)
		close(pfd);
	if (files_fd >= 0)
		close(files_fd);
	return rc;
}

int
mir_tools_is_version(struct mir_tools *t, const char *path)
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
	if (hc_snprintf(full, sizeof(full), "%s/files/%s", t->root, path) == 0 &&
	    lstat(full, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	return 1;
}

enum MHD_Result
mir_tools_delete_version(struct mir_tools *t, struct MHD_Connection *c, struct mir_req *r,
                         const char *path)
{
	struct hc_err err = { 0, "" };
	char body[MIR_PATH_MAX + 128];
	uint64_t files = 0;
	int rc = tools_remove_version(t, path, &files, &err);

	if (rc == HC_ENOTFOUND)
		return mir_resp_error(t->rs, c, r, MHD_HTTP_NOT_FOUND, "not found");
	if (rc == HC_EDATA) {
		hc_log(HC_LOG_WARN, MOD, "DELETE %s: %s", path, err.msg);
		return mir_resp_error(t->rs, c, r, MHD_HTTP_BAD_REQUEST, "bad path");
	}
	if (rc != 0) {
		hc_log(HC_LOG_WARN, MOD, "DELETE %s: %s", path, err.msg);
		return mir_resp_error(t->rs, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "store error");
	}
	hc_log(HC_LOG_INFO, MOD, "deleted %s (%" PRIu64 " files)", path, files);
	/* The path passed hc_path_decode: no quote, backslash or control byte. */
	if (hc_snprintf(body, sizeof(body), "{\"deleted\": \"%s\", \"files\": %" PRIu64 "}\n",
	                path, files) != 0)
		hc_strlcpy(body, "{}\n", sizeof(body));
	return mir_resp_json(t->rs, c, r, MHD_HTTP_OK, body, NULL);
}

/* ------------------------------------------------------------ purge */

static int
tools_cmp_version(const void *a, const void *b)
{
	return strverscmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the real folders (not links, not hidden) directly in a folder,
 * up to TOOLS_VERSIONS_MAX; the rest wait for the next round. */
struct tools_names {
	char **v;
	size_t n, cap;
};

static int
tools_add_name(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct tools_names *names = ctx;
	char *copy;

	(void)err;
	if (!S_ISDIR(e->st->st_mode) || e->name[0] == '.')
		return HC_WALK_SKIP;
	if (hc_array_reserve((void **)&names->v, &names->cap, names->n + 1, sizeof(char *),
	                     TOOLS_VERSIONS_MAX) != 0)
		return HC_WALK_SKIP;
	copy = hc_strdup(e->name);
	if (copy != NULL)
		names->v[names->n++] = copy;
	return HC_WALK_SKIP;
}

static void
tools_names_free(struct tools_names *names)
{
	size_t i;

	for (i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
}

/* Keeps the newest keep versions of the tool folder id (in tools_fd),
 * removes the others. */
static void
tools_purge_tool(struct mir_tools *t, int tools_fd, const char *id)
{
	struct tools_names names = { NULL, 0, 0 };
	struct hc_err err = { 0, "" };
	size_t i;
	int fd = openat(tools_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	(void)hc_walk(fd, id, 0, 0, tools_add_name, &names, &err);
	close(fd);
	if (names.n > 0)
		qsort(names.v, names.n, sizeof(names.v[0]), tools_cmp_version);
	for (i = 0; i + (size_t)t->keep_versions < names.n; i++) {
		char rel[MIR_PATH_MAX];
		uint64_t files = 0;

		if (hc_snprintf(rel, sizeof(rel), TOOLS_DIR "/%s/%s", id, names.v[i]) != 0)
			continue;
		if (tools_remove_version(t, rel, &files, &err) != 0)
			hc_log(HC_LOG_WARN, MOD, "purge %s: %s", rel, err.msg);
		else
			hc_log(HC_LOG_INFO, MOD, "purged %s (%" PRIu64 " files): keeping the newest %lld "
			       "versions of %s", rel, files, t->keep_versions, id);
	}
	tools_names_free(&names);
}

static void
tools_purge(struct mir_tools *t)
{
	struct tools_names ids = { NULL, 0, 0 };
	struct hc_err err = { 0, "" };
	char full[PATH_MAX];
	size_t i;
	int fd;

	if (hc_snprintf(full, sizeof(full), "%s/files/" TOOLS_DIR, t->root) != 0)
		return;
	fd = open(full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)hc_walk(fd, full, 0, 0, tools_add_name, &ids, &err);
	for (i = 0; i < ids.n; i++)
		tools_purge_tool(t, fd, ids.v[i]);
	close(fd);
	tools_names_free(&ids);
}

static void *
tools_purger(void *arg)
{
	struct mir_tools *t = arg;

	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		pthread_mutex_unlock(&t->mu);
		tools_purge(t);
		pthread_mutex_lock(&t->mu);
		if (!t->stop)
			hc_cond_wait_ms(&t->cv, &t->mu, TOOLS_PURGE_PERIOD_MS);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

int
mir_tools_start(const char *root, long long keep_versions, struct mir_store *store,
                struct mir_journal *journal, struct mir_resp *rs, struct mir_tools **out,
                struct hc_err *err)
{
	struct mir_tools *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	t->root = root;
	t->keep_versions = keep_versions;
	t->store = store;
	t->journal = journal;
	t->rs = rs;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	if (keep_versions > 0) {
		if (pthread_create(&t->thread, NULL, tools_purger, t) != 0) {
			mir_tools_stop(t);
			return hc_err_set(err, HC_ESOFTWARE, "cannot start the version purge");
		}
		t->thread_started = 1;
		hc_log(HC_LOG_INFO, MOD, "keeping the newest %lld versions of each tool",
		       keep_versions);
	}
	*out = t;
	return 0;
}

void
mir_tools_stop(struct mir_tools *t)
{
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
}
