/*
 * Per-file manifests (the seed's delta update format): parsing with every
 * entry validated before anything is written, the canonical form that
 * manifest_hash covers, and the generator behind `hydra-agent manifest`.
 * docs/sync.md is the reference for the format and the canonical form.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mirrorfetch/mirrorfetch.h"

#define MOD "mirrorfetch"
/* Folders deeper than this under DIR are refused by the generator; real
 * tool trees are a handful of levels deep. */
#define MANIFEST_WALK_DEPTH_MAX 64
/* A canonical line is a path, a digest, a size and a URL. */
#define MANIFEST_LINE_MAX (MF_MANIFEST_PATH_MAX + MF_URL_MAX + HC_SHA256_HEX_LEN + 32)

void
mf_manifest_free(struct mf_manifest *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++) {
		free(m->files[i].path);
		free(m->files[i].url);
	}
	free(m->files);
	free(m->manifest_version);
	free(m->tool_id);
	free(m->tool_version);
	free(m);
}

static int
manifest_has_control(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

int
mf_manifest_check_path(const char *path, size_t len, char *why, size_t why_size)
{
	const char *seg = path, *end = path + len;

	why[0] = '\0';
	if (len == 0)
		return hc_snprintf(why, why_size, "empty path"), HC_EDATA;
	if (memchr(path, '\0', len) != NULL)
		return hc_snprintf(why, why_size, "NUL byte in path"), HC_EDATA;
	if (len >= MF_MANIFEST_PATH_MAX)
		return hc_snprintf(why, why_size, "path longer than %d bytes",
		                   MF_MANIFEST_PATH_MAX - 1), HC_EDATA;
	if (path[0] == '/')
		return hc_snprintf(why, why_size, "absolute path"), HC_EDATA;
	if (memchr(path, '\\', len) != NULL)
		return hc_snprintf(why, why_size, "backslash in path"), HC_EDATA;
	if (manifest_has_control(path, len))
		return hc_snprintf(why, why_size, "control character in path"), HC_EDATA;
	while (seg <= end) {
		const char *slash = memchr(seg, '/', (size_t)(end - seg));
		size_t slen = (size_t)((slash != NULL ? slash : end) - seg);

		if (slen == 0)
			return hc_snprintf(why, why_size, "empty path segment"), HC_EDATA;
		if (slen == 1 && seg[0] == '.')
			return hc_snprintf(why, why_size, "'.' segment in path"), HC_EDATA;
		if (slen == 2 && seg[0] == '.' && seg[1] == '.')
			return hc_snprintf(why, why_size, "path escapes the directory ('..' segment)"),
			       HC_EDATA;
		/* The index, the staging folder and their temp files live there. */
		if (seg == path && slen >= 7 && strncmp(seg, ".hydra-", 7) == 0)
			return hc_snprintf(why, why_size, "reserved name (.hydra-*) in path"), HC_EDATA;
		if (slash == NULL)
			break;
		seg = slash + 1;
	}
	return 0;
}

/* tool_id and tool_version: one URL path segment each. */
static int
manifest_check_name(const char *s, size_t len, char *why, size_t why_size)
{
	if (len == 0)
		return hc_snprintf(why, why_size, "empty"), HC_EDATA;
	if (len >= MF_MANIFEST_NAME_MAX)
		return hc_snprintf(why, why_size, "longer than %d bytes", MF_MANIFEST_NAME_MAX - 1),
		       HC_EDATA;
	if (memchr(s, '\0', len) != NULL || manifest_has_control(s, len))
		return hc_snprintf(why, why_size, "control character"), HC_EDATA;
	if (memchr(s, '/', len) != NULL || memchr(s, '\\', len) != NULL)
		return hc_snprintf(why, why_size, "slash or backslash"), HC_EDATA;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return hc_snprintf(why, why_size, "'.' or '..'"), HC_EDATA;
	return 0;
}

static int
manifest_cmp_files(const void *a, const void *b)
{
	const struct mf_manifest_file *x = a, *y = b;

	return strcmp(x->path, y->path);
}

/* ------------------------------------------------------------ canonical form */

int
mf_manifest_canonical(const struct mf_manifest *m, char **out, size_t *len,
                      struct hc_err *err)
{
	struct hc_buf b;
	size_t i;
	int rc;

	*out = NULL;
	*len = 0;
	/* Every line is bounded by the validated fields: the cap is never the
	 * limit for a parsed manifest. */
	hc_buf_init(&b, (size_t)MF_MANIFEST_FILES_MAX * MANIFEST_LINE_MAX);
	rc = hc_buf_printf(&b, "manifest_version\t%s\ntool_id\t%s\ntool_version\t%s\n",
	                   m->manifest_version, m->tool_id, m->tool_version);
	for (i = 0; rc == 0 && i < m->n; i++) {
		const struct mf_manifest_file *f = &m->files[i];
		rc = hc_buf_printf(&b, "%s\t%s\t%" PRIu64 "\t%s\n", f->path, f->sha256, f->size,
		                   f->url);
	}
	if (rc != 0) {
		hc_buf_free(&b);
		return hc_err_set(err, rc, rc == HC_ENOMEM ? "out of memory" :
		                  "manifest: canonical form too long");
	}
	if (b.p == NULL && hc_buf_add(&b, "", 0) != 0)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	*len = b.len;
	*out = hc_buf_take(&b);
	return 0;
}

int
mf_manifest_hash(const struct mf_manifest *m, char hex[HC_SHA256_HEX_LEN + 1],
                 struct hc_err *err)
{
	struct hc_sha256 *h = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = mf_manifest_canonical(m, &text, &len, err);
	if (rc != 0)
		return rc;
	h = hc_sha256_new();
	if (h == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	if (hc_sha256_update(h, text, len) != 0 || hc_sha256_hex(h, hex) != 0)
		rc = hc_err_set(err, HC_ESOFTWARE, "sha256 failed");
done:
	hc_sha256_free(h);
	free(text);
	return rc;
}

/* ------------------------------------------------------------ parsing */

/* A string field that is one name (tool_id, tool_version, manifest_version). */
static int
manifest_get_name(struct json_object *o, const char *field, char **out, struct hc_err *err)
{
	struct json_object *v = NULL;
	char why[128];
	const char *s;
	size_t len;

	if (!json_object_object_get_ex(o, field, &v) || v == NULL)
		return hc_err_set(err, HC_EDATA, "manifest: missing field '%s'", field);
	if (!json_object_is_type(v, json_type_string))
		return hc_err_set(err, HC_EDATA, "manifest: field '%s' is not a string", field);
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (manifest_check_name(s, len, why, sizeof(why)) != 0)
		return hc_err_set(err, HC_EDATA, "manifest: field '%s': %s", field, why);
	*out = hc_strdup(s);
	if (*out == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	return 0;
}

/* One entry of files[]; i is its position, for messages. */
static int
manifest_parse_file(struct json_object *e, size_t i, struct mf_manifest_file *f,
                    struct hc_err *err)
{
	struct json_object *v = NULL;
	struct hc_err sub = { 0, "" };
	struct hc_url u;
	char why[128];
	const char *path, *sha, *url;
	long long size;
	size_t len;

	if (!json_object_is_type(e, json_type_object))
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] is not an object", i);
	if (!json_object_object_get_ex(e, "path", &v) || v == NULL ||
	    !json_object_is_type(v, json_type_string))
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu]: missing or non-string "
		                  "'path'", i);
	path = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (mf_manifest_check_path(path, len, why, sizeof(why)) != 0)
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] path \"%.*s\": %s", i,
		                  (int)strnlen(path, 200), path, why);
	if (hc_json_get_string(e, "sha256", &sha, &sub) != 0)
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] \"%s\": %s", i, path, sub.msg);
	if (!hc_sha256_hex_valid(sha))
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] \"%s\": sha256 '%.80s' is not "
		                  "64 hex digits", i, path, sha);
	if (hc_json_get_int(e, "size", &size, &sub) != 0)
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] \"%s\": %s", i, path, sub.msg);
	if (size < 0)
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] \"%s\": negative size %lld", i,
		                  path, size);
	if (hc_json_get_string(e, "url", &url, &sub) != 0)
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] \"%s\": %s", i, path, sub.msg);
	if (strlen(url) >= MF_URL_MAX || manifest_has_control(url, strlen(url)) ||
	    strchr(url, ' ') != NULL || hc_url_parse(url, &u, &sub) != 0)
		return hc_err_set(err, HC_EDATA, "manifest: files[%zu] \"%s\": url '%.200s' is not an "
		                  "http(s) URL", i, path, url);
	hc_url_free(&u);
	f->path = hc_strdup(path);
	f->url = hc_strdup(url);
	if (f->path == NULL || f->url == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	hc_hex_lower(f->sha256, sha, HC_SHA256_HEX_LEN);
	f->size = (uint64_t)size;
	f->index = i;
	return 0;
}

/* After sorting: no path twice, and no path that is a folder of another. */
static int
manifest_check_tree(const struct mf_manifest *m, struct hc_err *err)
{
	size_t i;

	for (i = 0; i + 1 < m->n; i++) {
		if (strcmp(m->files[i].path, m->files[i + 1].path) == 0)
			return hc_err_set(err, HC_EDATA, "manifest: files[%zu] and files[%zu] both have "
			                  "path \"%s\"", m->files[i].index, m->files[i + 1].index,
			                  m->files[i].path);
	}
	for (i = 0; i < m->n; i++) {
		char prefix[MF_MANIFEST_PATH_MAX];
		const char *p = m->files[i].path, *slash;

		for (slash = strchr(p, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
			struct mf_manifest_file key, *hit;
			memcpy(prefix, p, (size_t)(slash - p));
			prefix[slash - p] = '\0';
			key.path = prefix;
			hit = bsearch(&key, m->files, m->n, sizeof(*m->files), manifest_cmp_files);
			if (hit != NULL)
				return hc_err_set(err, HC_EDATA, "manifest: files[%zu] path \"%s\": its folder "
				                  "\"%s\" is also listed as a file (files[%zu])",
				                  m->files[i].index, p, prefix, hit->index);
		}
	}
	return 0;
}

/* manifest_version, tool_id and tool_version into m. */
static int
manifest_parse_header(struct json_object *root, struct mf_manifest *m, struct hc_err *err)
{
	int rc;

	rc = manifest_get_name(root, "manifest_version", &m->manifest_version, err);
	if (rc == 0 && strcmp(m->manifest_version, "1") != 0 &&
	    strncmp(m->manifest_version, "1.", 2) != 0)
		rc = hc_err_set(err, HC_EDATA, "manifest: manifest_version '%s' is not 1.x",
		                m->manifest_version);
	if (rc == 0)
		rc = manifest_get_name(root, "tool_id", &m->tool_id, err);
	if (rc == 0)
		rc = manifest_get_name(root, "tool_version", &m->tool_version, err);
	return rc;
}

/* Every entry of files[] into m, sorted by path and checked as a tree. */
static int
manifest_parse_files(struct json_object *root, struct mf_manifest *m, struct hc_err *err)
{
	struct json_object *files = NULL;
	size_t n, i;
	int rc;

	if (!json_object_object_get_ex(root, "files", &files) || files == NULL ||
	    !json_object_is_type(files, json_type_array))
		return hc_err_set(err, HC_EDATA, "manifest: missing or non-array 'files'");
	n = json_object_array_length(files);
	if (n > MF_MANIFEST_FILES_MAX)
		return hc_err_set(err, HC_EDATA, "manifest: %zu files, more than %d", n,
		                  MF_MANIFEST_FILES_MAX);
	m->files = calloc(n > 0 ? n : 1, sizeof(*m->files));
	if (m->files == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		rc = manifest_parse_file(json_object_array_get_idx(files, i), i, &m->files[i], err);
		m->n = i + 1;  /* so that free sees what this entry allocated */
		if (rc != 0)
			return rc;
	}
	qsort(m->files, m->n, sizeof(*m->files), manifest_cmp_files);
	return manifest_check_tree(m, err);
}

/* manifest_hash is given, well formed, and the hash of m's canonical form. */
static int
manifest_check_hash(struct json_object *root, struct mf_manifest *m, struct hc_err *err)
{
	struct json_object *v = NULL;
	char got[HC_SHA256_HEX_LEN + 1];
	const char *hash;
	int rc;

	if (!json_object_object_get_ex(root, "manifest_hash", &v) || v == NULL ||
	    !json_object_is_type(v, json_type_string))
		return hc_err_set(err, HC_EDATA, "manifest: missing or non-string 'manifest_hash'");
	hash = json_object_get_string(v);
	if (!hc_sha256_hex_valid(hash))
		return hc_err_set(err, HC_EDATA, "manifest: manifest_hash '%.80s' is not 64 hex "
		                  "digits", hash);
	hc_hex_lower(m->manifest_hash, hash, HC_SHA256_HEX_LEN);
	rc = mf_manifest_hash(m, got, err);
	if (rc != 0)
		return rc;
	if (strcmp(got, m->manifest_hash) != 0)
		return hc_err_set(err, HC_EDATA, "manifest: manifest_hash mismatch: the manifest "
		                  "says %s, its content hashes to %s", m->manifest_hash, got);
	return 0;
}

int
mf_manifest_parse(const char *text, size_t len, struct mf_manifest **out, struct hc_err *err)
{
	struct json_object *root = NULL;
	struct mf_manifest *m = NULL;
	int rc;

	*out = NULL;
	rc = hc_json_parse(text, len, &root, err);
	if (rc != 0)
		return hc_err_prefix(err, "manifest");
	if (!json_object_is_type(root, json_type_object)) {
		rc = hc_err_set(err, HC_EDATA, "manifest: not a JSON object");
		goto done;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	rc = manifest_parse_header(root, m, err);
	if (rc == 0)
		rc = manifest_parse_files(root, m, err);
	if (rc == 0)
		rc = manifest_check_hash(root, m, err);
	if (rc == 0) {
		*out = m;
		m = NULL;
	}
done:
	mf_manifest_free(m);
	json_object_put(root);
	return rc;
}

/* ------------------------------------------------------------ output */

char *
mf_manifest_to_json(const struct mf_manifest *m)
{
	struct json_object *o = json_object_new_object(), *files = json_object_new_array();
	char *text = NULL;
	size_t i;

	if (o == NULL || files == NULL) {
		json_object_put(o);
		json_object_put(files);
		return NULL;
	}
	json_object_object_add(o, "manifest_version", json_object_new_string(m->manifest_version));
	json_object_object_add(o, "tool_id", json_object_new_string(m->tool_id));
	json_object_object_add(o, "tool_version", json_object_new_string(m->tool_version));
	for (i = 0; i < m->n; i++) {
		const struct mf_manifest_file *f = &m->files[i];
		struct json_object *e = json_object_new_object();
		if (e == NULL)
			goto done;
		json_object_object_add(e, "path", json_object_new_string(f->path));
		json_object_object_add(e, "sha256", json_object_new_string(f->sha256));
		json_object_object_add(e, "size", json_object_new_int64((int64_t)f->size));
		json_object_object_add(e, "url", json_object_new_string(f->url));
		json_object_array_add(files, e);
	}
	json_object_object_add(o, "files", files);
	files = NULL;
	json_object_object_add(o, "manifest_hash", json_object_new_string(m->manifest_hash));
	text = hc_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                JSON_C_TO_STRING_SPACED |
	                                                JSON_C_TO_STRING_NOSLASHESCAPE));
done:
	json_object_put(files);
	json_object_put(o);
	return text;
}

/* ------------------------------------------------------------ generator */

struct manifest_walk {
	const char *dir;
	struct mf_manifest_file *files;
	size_t n, cap;
	uint64_t bytes;
};

/* Lists and hashes one regular file, read through its folder's fd. */
static int
manifest_walk_add(struct manifest_walk *w, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct mf_manifest_file *f;
	struct hc_sha256 *h = NULL;
	char why[128];
	int fd = -1, rc;

	if (mf_manifest_check_path(e->rel, strlen(e->rel), why, sizeof(why)) != 0)
		return hc_err_set(err, HC_EDATA, "%s/%s: cannot be listed: %s", w->dir, e->rel, why);
	rc = hc_array_reserve((void **)&w->files, &w->cap, w->n + 1, sizeof(*w->files),
	                      MF_MANIFEST_FILES_MAX);
	if (rc != 0)
		return hc_err_set(err, rc, "%s: more than %d files or out of memory", w->dir,
		                  MF_MANIFEST_FILES_MAX);
	f = &w->files[w->n];
	memset(f, 0, sizeof(*f));
	h = hc_sha256_new();
	if (h == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	fd = openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = hc_err_set(err, HC_EIO, "open %s/%s: %s", w->dir, e->rel, strerror(errno));
		goto done;
	}
	rc = hc_sha256_fd(h, fd, -1, err);
	if (rc == 0 && hc_sha256_hex(h, f->sha256) != 0)
		rc = hc_err_set(err, HC_ESOFTWARE, "sha256 failed");
	if (rc != 0)
		goto done;
	f->path = hc_strdup(e->rel);
	if (f->path == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	f->size = (uint64_t)e->st->st_size;
	w->bytes += f->size;
	w->n++;
done:
	if (fd >= 0)
		close(fd);
	hc_sha256_free(h);
	return rc;
}

static int
manifest_walk_one(void *ctx, const struct hc_walk_entry *e, struct hc_err *err)
{
	struct manifest_walk *w = ctx;

	/* The sync state of a synced folder is not part of the tool. */
	if (e->depth == 0 && strncmp(e->name, ".hydra-", 7) == 0)
		return S_ISDIR(e->st->st_mode) ? HC_WALK_SKIP : 0;
	if (S_ISDIR(e->st->st_mode))
		return 0;
	if (S_ISREG(e->st->st_mode))
		return manifest_walk_add(w, e, err);
	hc_log(HC_LOG_WARN, MOD, "%s/%s: not a regular file or folder, not listed", w->dir,
	       e->rel);
	return 0;
}

/* {base}/api/v1/tools/{id}/{version}/files/{path}, each part percent-encoded.
 * A base that already ends in /api/v1/tools (the seed's form) is not doubled. */
static int
manifest_file_url(const char *base, const char *id, const char *version, const char *path,
                  char out[MF_URL_MAX])
{
	char eid[3 * MF_MANIFEST_NAME_MAX], ever[3 * MF_MANIFEST_NAME_MAX];
	char epath[3 * MF_MANIFEST_PATH_MAX];
	size_t blen = strlen(base);
	static const char route[] = "/api/v1/tools";
	const size_t rlen = sizeof(route) - 1;

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	if (blen >= rlen && strncmp(base + blen - rlen, route, rlen) == 0)
		blen -= rlen;
	if (hc_path_encode(id, eid, sizeof(eid)) != 0 ||
	    hc_path_encode(version, ever, sizeof(ever)) != 0 ||
	    hc_path_encode(path, epath, sizeof(epath)) != 0)
		return HC_EDATA;
	return hc_snprintf(out, MF_URL_MAX, "%.*s%s/%s/%s/files/%s", (int)blen, base, route, eid,
	                   ever, epath) != 0 ? HC_EDATA : 0;
}

/* Sorts the listed files and gives them their URLs and m its names. */
static int
manifest_fill(struct mf_manifest *m, const char *tool_id, const char *version,
              const char *base_url, struct hc_err *err)
{
	char url[MF_URL_MAX];
	size_t i;

	qsort(m->files, m->n, sizeof(*m->files), manifest_cmp_files);
	for (i = 0; i < m->n; i++) {
		m->files[i].index = i;
		if (manifest_file_url(base_url, tool_id, version, m->files[i].path, url) != 0)
			return hc_err_set(err, HC_EDATA, "%s: URL longer than %d bytes",
			                  m->files[i].path, MF_URL_MAX - 1);
		m->files[i].url = hc_strdup(url);
		if (m->files[i].url == NULL)
			return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	m->manifest_version = hc_strdup(MF_MANIFEST_VERSION);
	m->tool_id = hc_strdup(tool_id);
	m->tool_version = hc_strdup(version);
	if (m->manifest_version == NULL || m->tool_id == NULL || m->tool_version == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	return 0;
}

int
mf_manifest_from_dir(const char *dir, const char *tool_id, const char *version,
                     const char *base_url, struct mf_manifest **out, struct hc_err *err)
{
	struct manifest_walk w;
	struct mf_manifest *m = NULL;
	char why[128];
	struct hc_url u;
	char dir_name[HC_PATH_MAX * 4];
	size_t dir_len;
	int rc, root = -1;

	*out = NULL;
	memset(&w, 0, sizeof(w));
	if (manifest_check_name(tool_id, strlen(tool_id), why, sizeof(why)) != 0)
		return hc_err_set(err, HC_EUSAGE, "--tool-id '%s': %s", tool_id, why);
	if (manifest_check_name(version, strlen(version), why, sizeof(why)) != 0)
		return hc_err_set(err, HC_EUSAGE, "--version '%s': %s", version, why);
	if (hc_url_parse(base_url, &u, err) != 0) {
		hc_err_prefix(err, "--base-url '%s'", base_url);
		if (err != NULL)
			err->status = HC_EUSAGE;
		return HC_EUSAGE;
	}
	hc_url_free(&u);
	/* Messages name files as "DIR/path" with DIR as given, less trailing '/'. */
	dir_len = strlen(dir);
	while (dir_len > 1 && dir[dir_len - 1] == '/')
		dir_len--;
	if (hc_snprintf(dir_name, sizeof(dir_name), "%.*s", (int)dir_len, dir) != 0)
		return hc_err_set(err, HC_EUSAGE, "--dir: path too long");
	w.dir = dir_name;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		rc = hc_err_set(err, HC_EUSAGE, "--dir %s: not a folder", dir);
		goto done;
	}
	rc = hc_walk(root, dir_name, MANIFEST_WALK_DEPTH_MAX, 0, manifest_walk_one, &w, err);
	m->files = w.files;
	m->n = w.n;
	w.files = NULL;
	if (rc != 0)
		goto done;
	rc = manifest_fill(m, tool_id, version, base_url, err);
	if (rc != 0)
		goto done;
	rc = mf_manifest_hash(m, m->manifest_hash, err);
	if (rc != 0)
		goto done;
	hc_log(HC_LOG_INFO, MOD, "manifest: %s %s, %zu files, %" PRIu64 " bytes, manifest_hash %s",
	       tool_id, version, m->n, w.bytes, m->manifest_hash);
	*out = m;
	m = NULL;
done:
	if (root >= 0)
		close(root);
	free(w.files);
	mf_manifest_free(m);
	return rc;
}
