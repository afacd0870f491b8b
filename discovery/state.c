/*
 * What discovery keeps in state_dir: the cached choice and the bodies demoted
 * after a stream-launch failure. Both are small JSON files replaced
 * atomically, so a crash leaves the old file or the new one.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "discovery/discovery.h"

#define CACHE_FILE "discovery-cache.json"
#define DEMOTED_FILE "discovery-demoted.json"
/* Both files are a few hundred bytes; anything near this is not ours. */
#define STATE_FILE_MAX (256 * 1024)

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
state_path(const char *state_dir, const char *name, char *out, size_t size,
           struct hc_err *err)
{
	if (state_dir == NULL || *state_dir == '\0')
		return hc_err_set(err, HC_ECONFIG, "state_dir is not set");
	if (hc_snprintf(out, size, "%s/%s", state_dir, name) != 0)
		return hc_err_set(err, HC_ECANTCREAT, "state_dir path too long: %s", state_dir);
	return 0;
}

/* Serialises obj into path atomically, creating state_dir. Takes obj. */
static int
write_json(const char *state_dir, const char *path, struct json_object *obj,
           struct hc_err *err)
{
	const char *text;
	int rc;

	if (obj == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = hc_mkdir_p(state_dir, 0755, err);
	if (rc == 0) {
		text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY);
		if (text == NULL)
			rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		else
			rc = hc_atomic_write(path, text, strlen(text), 0644, err);
	}
	json_object_put(obj);
	return rc;
}

static int
add(struct json_object *obj, const char *key, struct json_object *v)
{
	if (v == NULL)
		return -1;
	return json_object_object_add(obj, key, v);
}

int
disc_cache_store(const char *state_dir, const struct disc_cached *c, struct hc_err *err)
{
	char path[PATH_MAX];
	struct json_object *o;
	int bad = 0;
	int rc;

	rc = state_path(state_dir, CACHE_FILE, path, sizeof(path), err);
	if (rc != 0)
		return rc;
	o = json_object_new_object();
	if (o == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	bad |= add(o, "node_id", json_object_new_string(c->node_id));
	bad |= add(o, "name", json_object_new_string(c->name));
	bad |= add(o, "ip", json_object_new_string(c->ip));
	bad |= add(o, "transport", json_object_new_string(disc_transport_name(c->transport)));
	bad |= add(o, "same_venue", json_object_new_boolean(c->same_venue));
	bad |= add(o, "chosen_at_ms",
	           json_object_new_int64(c->chosen_at_ms != 0 ? c->chosen_at_ms : wall_ms()));
	if (bad != 0) {
		json_object_put(o);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	rc = write_json(state_dir, path, o, err);
	if (rc != 0)
		hc_err_prefix(err, "body cache");
	return rc;
}

static int
get_label(struct json_object *o, const char *field, char *dst, size_t size,
          struct hc_err *err)
{
	const char *v;
	int rc = hc_json_get_string(o, field, &v, err);

	if (rc != 0)
		return rc;
	if (hc_strlcpy(dst, v, size) != 0)
		return hc_err_set(err, HC_EDATA, "field '%s': too long", field);
	return 0;
}

int
disc_cache_load(const char *state_dir, struct disc_cached *out, struct hc_err *err)
{
	char path[PATH_MAX];
	struct json_object *o = NULL;
	const char *transport = NULL;
	long long at = 0;
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = state_path(state_dir, CACHE_FILE, path, sizeof(path), err);
	if (rc != 0)
		return rc;
	rc = hc_read_file(path, STATE_FILE_MAX, &text, &len, err);
	if (rc != 0)
		return rc;
	rc = hc_json_parse(text, len, &o, err);
	if (rc == 0)
		rc = get_label(o, "node_id", out->node_id, sizeof(out->node_id), err);
	if (rc == 0)
		rc = get_label(o, "name", out->name, sizeof(out->name), err);
	if (rc == 0)
		rc = get_label(o, "ip", out->ip, sizeof(out->ip), err);
	if (rc == 0)
		rc = hc_json_get_string(o, "transport", &transport, err);
	if (rc == 0) {
		if (strcmp(transport, "lan") == 0)
			out->transport = DISC_LAN;
		else if (strcmp(transport, "wireguard") == 0)
			out->transport = DISC_WG;
		else
			rc = hc_err_set(err, HC_EDATA, "field 'transport': '%.32s' is not lan "
			                "or wireguard", transport);
	}
	if (rc == 0)
		rc = hc_json_get_bool(o, "same_venue", &out->same_venue, err);
	if (rc == 0)
		rc = hc_json_get_int(o, "chosen_at_ms", &at, err);
	if (rc == 0 && out->node_id[0] == '\0')
		rc = hc_err_set(err, HC_EDATA, "field 'node_id': empty");
	out->chosen_at_ms = at;
	if (rc != 0)
		hc_err_prefix(err, "%s", path);
	json_object_put(o);
	free(text);
	return rc;
}

int
disc_cache_invalidate(const char *state_dir, const char *reason, int *had,
                      struct hc_err *err)
{
	struct disc_cached c;
	struct hc_err lerr = { 0, "" };
	char path[PATH_MAX];
	int rc;

	if (had != NULL)
		*had = 0;
	rc = state_path(state_dir, CACHE_FILE, path, sizeof(path), err);
	if (rc != 0)
		return rc;
	rc = disc_cache_load(state_dir, &c, &lerr);
	if (rc == HC_ENOTFOUND)
		return 0;
	/* A corrupt cache is dropped all the same; it is named by its file. */
	if (rc != 0)
		hc_strlcpy(c.node_id, "(unreadable cache)", sizeof(c.node_id));
	if (unlink(path) != 0 && errno != ENOENT)
		return hc_err_set(err, HC_EIO, "remove %s: %s", path, strerror(errno));
	rc = hc_fsync_dir(path, err);
	if (rc != 0)
		return rc;
	hc_log(HC_LOG_INFO, "discovery", "cached body %s invalidated: %s", c.node_id, reason);
	if (had != NULL)
		*had = 1;
	return 0;
}

struct demotion {
	char node_id[DISC_LABEL_MAX];
	int64_t at_ms;
};

struct demotions {
	size_t n;
	struct demotion d[DISC_MAX_DEMOTED];
};

/* Loads the demotions still in force. A missing file is none. */
static int
demotions_load(const char *state_dir, struct demotions *out, struct hc_err *err)
{
	char path[PATH_MAX];
	struct json_object *o = NULL, *arr = NULL;
	char *text = NULL;
	size_t len = 0, i, n;
	int64_t now = wall_ms();
	int rc;

	out->n = 0;
	rc = state_path(state_dir, DEMOTED_FILE, path, sizeof(path), err);
	if (rc != 0)
		return rc;
	rc = hc_read_file(path, STATE_FILE_MAX, &text, &len, err);
	if (rc == HC_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	rc = hc_json_parse(text, len, &o, err);
	if (rc == 0)
		rc = hc_json_get_array(o, "demoted", &arr, err);
	n = rc == 0 ? json_object_array_length(arr) : 0;
	for (i = 0; rc == 0 && i < n && out->n < DISC_MAX_DEMOTED; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);
		struct demotion *d = &out->d[out->n];
		long long at = 0;

		rc = get_label(e, "node_id", d->node_id, sizeof(d->node_id), err);
		if (rc == 0)
			rc = hc_json_get_int(e, "at_ms", &at, err);
		/* A time before 1970 is no time we wrote (and now - at would overflow). */
		if (rc == 0 && at < 0)
			rc = hc_err_set(err, HC_EDATA, "field 'at_ms': %lld is negative", at);
		if (rc != 0) {
			hc_err_prefix(err, "demoted[%zu]", i);
			break;
		}
		d->at_ms = at;
		if (now - d->at_ms < DISC_DEMOTE_TTL_MS)
			out->n++;
	}
	if (rc != 0) {
		hc_err_prefix(err, "%s", path);
		out->n = 0;
	}
	json_object_put(o);
	free(text);
	return rc;
}

static int
demotions_store(const char *state_dir, const struct demotions *ds, struct hc_err *err)
{
	char path[PATH_MAX];
	struct json_object *o = NULL, *arr = NULL;
	size_t i;
	int rc;

	rc = state_path(state_dir, DEMOTED_FILE, path, sizeof(path), err);
	if (rc != 0)
		return rc;
	o = json_object_new_object();
	arr = json_object_new_array();
	if (o == NULL || arr == NULL || json_object_object_add(o, "demoted", arr) != 0) {
		json_object_put(arr);
		json_object_put(o);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	for (i = 0; i < ds->n; i++) {
		struct json_object *e = json_object_new_object();
		int bad = e == NULL;

		if (!bad) {
			bad |= add(e, "node_id", json_object_new_string(ds->d[i].node_id)) != 0;
			bad |= add(e, "at_ms", json_object_new_int64(ds->d[i].at_ms)) != 0;
			bad |= json_object_array_add(arr, e) != 0;
		}
		if (bad) {
			json_object_put(o);
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		}
	}
	rc = write_json(state_dir, path, o, err);
	if (rc != 0)
		hc_err_prefix(err, "demotions");
	return rc;
}

static void
demotions_remove(struct demotions *ds, const char *node_id)
{
	size_t i, o = 0;

	for (i = 0; i < ds->n; i++) {
		if (strcmp(ds->d[i].node_id, node_id) != 0)
			ds->d[o++] = ds->d[i];
	}
	ds->n = o;
}

int
disc_demote(const char *state_dir, const char *node_id, struct hc_err *err)
{
	struct demotions ds;
	struct hc_err lerr = { 0, "" };
	int rc;

	/* A corrupt file must not stop the demotion; it is rewritten. */
	if (demotions_load(state_dir, &ds, &lerr) != 0) {
		hc_log(HC_LOG_WARN, "discovery", "ignoring demotions: %s", lerr.msg);
		ds.n = 0;
	}
	demotions_remove(&ds, node_id);
	if (ds.n == DISC_MAX_DEMOTED) {
		memmove(&ds.d[0], &ds.d[1], (ds.n - 1) * sizeof(ds.d[0]));
		ds.n--;
	}
	if (hc_strlcpy(ds.d[ds.n].node_id, node_id, DISC_LABEL_MAX) != 0)
		return hc_err_set(err, HC_EDATA, "node id too long");
	ds.d[ds.n].at_ms = wall_ms();
	ds.n++;
	rc = demotions_store(state_dir, &ds, err);
	if (rc == 0)
		hc_log(HC_LOG_INFO, "discovery",
		       "body %s demoted: it goes last in the next discovery", node_id);
	return rc;
}

int
disc_undemote(const char *state_dir, const char *node_id, struct hc_err *err)
{
	struct demotions ds;
	size_t before;
	int rc;

	rc = demotions_load(state_dir, &ds, err);
	if (rc != 0)
		return rc;
	before = ds.n;
	demotions_remove(&ds, node_id);
	if (ds.n == before)
		return 0;
	return demotions_store(state_dir, &ds, err);
}

void
disc_apply_demotions(const char *state_dir, struct disc_list *list)
{
	struct demotions ds;
	struct hc_err err = { 0, "" };
	struct disc_list *tmp = NULL;
	size_t i, j, o = 0;

	for (i = 0; i < list->n; i++)
		list->bodies[i].demoted = 0;
	if (demotions_load(state_dir, &ds, &err) != 0) {
		hc_log(HC_LOG_WARN, "discovery", "ignoring demotions: %s", err.msg);
		return;
	}
	if (ds.n == 0)
		return;
	tmp = malloc(sizeof(*tmp));
	if (tmp == NULL) {
		hc_log(HC_LOG_WARN, "discovery", "ignoring demotions: out of memory");
		return;
	}
	*tmp = *list;
	for (j = 0; j < ds.n; j++) {
		for (i = 0; i < tmp->n; i++) {
			if (strcmp(tmp->bodies[i].node_id, ds.d[j].node_id) == 0)
				tmp->bodies[i].demoted = 1;
		}
	}
	for (i = 0; i < tmp->n; i++) {
		if (!tmp->bodies[i].demoted)
			list->bodies[o++] = tmp->bodies[i];
	}
	/* The file is in failure order, so the latest failure ends up last. */
	for (j = 0; j < ds.n; j++) {
		for (i = 0; i < tmp->n; i++) {
			if (tmp->bodies[i].demoted &&
			    strcmp(tmp->bodies[i].node_id, ds.d[j].node_id) == 0) {
				list->bodies[o++] = tmp->bodies[i];
				tmp->bodies[i].demoted = 0;
				hc_log(HC_LOG_INFO, "discovery",
				       "body %s probed last: its last stream launch failed",
				       tmp->bodies[i].node_id);
			}
		}
	}
	free(tmp);
}
