/* json-c helpers whose errors name the field that was missing or mistyped. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/hc.h"

/* Response bodies the programs parse are small; this bounds a hostile one. */
#define JSON_DEPTH_MAX 32
/* Objects one text may hold: a manifest of MF_MANIFEST_FILES_MAX files has
 * one per file; a text has at most one per two bytes anyway. */
#define JSON_OBJECTS_MAX ((size_t)1 << 22)

/* The keys of each object of a text, in the order the objects open. */
struct json_keys {
	size_t *count;   /* keys written in the object */
	size_t *offset;  /* where its '{' is */
	size_t n, cap_count, cap_offset;
};

static const char *
json_type_label(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:    return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double:  return "a number";
	case json_type_int:     return "an integer";
	case json_type_object:  return "an object";
	case json_type_array:   return "an array";
	case json_type_string:  return "a string";
	}
	return "something else";
}

static int
json_field(struct json_object *obj, const char *field, enum json_type want,
           const char *want_label, int optional, struct json_object **out,
           struct hc_err *err)
{
	struct json_object *v = NULL;

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return hc_err_set(err, HC_EDATA, "field '%s': the enclosing value is not an object",
		                  field);
	if (!json_object_object_get_ex(obj, field, &v) || v == NULL) {
		if (optional) {
			*out = NULL;
			return 0;
		}
		return hc_err_set(err, HC_EDATA, "missing field '%s'", field);
	}
	if (!json_object_is_type(v, want))
		return hc_err_set(err, HC_EDATA, "field '%s': expected %s, got %s", field,
		                  want_label, json_type_label(v));
	*out = v;
	return 0;
}

/* Callers read strings as C strings: one with "\u0000" inside would be
 * taken cut short ("node-1\u0000x" as "node-1"), so it is refused. */
static int
json_string_value(struct json_object *v, const char *field, const char **out,
                  struct hc_err *err)
{
	const char *s = json_object_get_string(v);

	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return hc_err_set(err, HC_EDATA, "field '%s': contains a NUL character", field);
	*out = s;
	return 0;
}

int
hc_json_get_string(struct json_object *obj, const char *field, const char **out,
                   struct hc_err *err)
{
	struct json_object *v;
	int rc = json_field(obj, field, json_type_string, "a string", 0, &v, err);

	if (rc == 0)
		rc = json_string_value(v, field, out, err);
	return rc;
}

int
hc_json_opt_string(struct json_object *obj, const char *field, const char **out,
                   struct hc_err *err)
{
	struct json_object *v = NULL;
	int rc = json_field(obj, field, json_type_string, "a string", 1, &v, err);

	if (rc == 0 && v != NULL)
		rc = json_string_value(v, field, out, err);
	return rc;
}

int
hc_json_get_int(struct json_object *obj, const char *field, long long *out,
                struct hc_err *err)
{
	struct json_object *v;
	int rc = json_field(obj, field, json_type_int, "an integer", 0, &v, err);

	if (rc == 0)
		*out = (long long)json_object_get_int64(v);
	return rc;
}

int
hc_json_get_bool(struct json_object *obj, const char *field, int *out,
                 struct hc_err *err)
{
	struct json_object *v;
	int rc = json_field(obj, field, json_type_boolean, "a boolean", 0, &v, err);

	if (rc == 0)
		*out = json_object_get_boolean(v) ? 1 : 0;
	return rc;
}

int
hc_json_get_array(struct json_object *obj, const char *field,
                  struct json_object **out, struct hc_err *err)
{
	return json_field(obj, field, json_type_array, "an array", 0, out, err);
}

/* Appends an object opening at off with no key yet. 0 or a status. */
static int
json_keys_open(struct json_keys *k, size_t off)
{
	int rc = hc_array_reserve((void **)&k->count, &k->cap_count, k->n + 1,
	                          sizeof(*k->count), JSON_OBJECTS_MAX);

	if (rc == 0)
		rc = hc_array_reserve((void **)&k->offset, &k->cap_offset, k->n + 1,
		                      sizeof(*k->offset), JSON_OBJECTS_MAX);
	if (rc != 0)
		return rc;
	k->count[k->n] = 0;
	k->offset[k->n] = off;
	k->n++;
	return 0;
}

/*
 * Counts the keys each object of a text json-c accepted actually writes.
 * The text is valid and at most JSON_DEPTH_MAX deep, so a scan for
 * strings, brackets and commas is enough.
 */
static int
json_keys_scan(const char *text, size_t len, struct json_keys *k)
{
	struct { size_t obj; int is_obj, want_key; } st[JSON_DEPTH_MAX + 2];
	size_t i;
	int top = -1, rc;

	for (i = 0; i < len; i++) {
		switch (text[i]) {
		case '"':
			if (top >= 0 && st[top].is_obj && st[top].want_key) {
				k->count[st[top].obj]++;
				st[top].want_key = 0;
			}
			for (i++; i < len && text[i] != '"'; i++) {
				if (text[i] == '\\')
					i++;
			}
			break;
		case '{':
		case '[':
			if (top + 1 >= (int)(sizeof(st) / sizeof(st[0])))
				return HC_EDATA;
			top++;
			st[top].is_obj = text[i] == '{';
			st[top].want_key = st[top].is_obj;
			st[top].obj = k->n;
			if (st[top].is_obj) {
				rc = json_keys_open(k, i);
				if (rc != 0)
					return rc;
			}
			break;
		case '}':
		case ']':
			if (top >= 0)
				top--;
			break;
		case ',':
			if (top >= 0 && st[top].is_obj)
				st[top].want_key = 1;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * Walks obj in the order its text was written and compares each object's
 * size with the keys its text wrote (*next indexes k). json-c keeps the
 * last of repeated keys, so the first object whose sizes differ is the
 * first one repeating a key (or holding the dropped value of one): its
 * offset goes to *where. Returns 1 when a key is repeated. Recursion is
 * bounded by JSON_DEPTH_MAX, which json-c enforced.
 */
static int
json_keys_differ(struct json_object *obj, const struct json_keys *k, size_t *next,
                 size_t *where)
{
	size_t i, n;

	switch (json_object_get_type(obj)) {
	case json_type_object: {
		size_t me = (*next)++;
		if (me >= k->n || k->count[me] != (size_t)json_object_object_length(obj)) {
			*where = me < k->n ? k->offset[me] : 0;
			return 1;
		}
		json_object_object_foreach(obj, key, val) {
			(void)key;
			if (json_keys_differ(val, k, next, where))
				return 1;
		}
		return 0;
	}
	case json_type_array:
		n = json_object_array_length(obj);
		for (i = 0; i < n; i++) {
			if (json_keys_differ(json_object_array_get_idx(obj, i), k, next, where))
				return 1;
		}
		return 0;
	default:
		return 0;
	}
}

/* HC_EDATA naming the object when an object of the text repeats a key:
 * json-c would keep the last value silently, and two readers of one text
 * must not see two different documents. */
static int
json_check_unique_keys(const char *text, size_t len, struct json_object *obj,
                       struct hc_err *err)
{
	struct json_keys k = { NULL, NULL, 0, 0, 0 };
	size_t next = 0, where = 0;
	int rc;

	rc = json_keys_scan(text, len, &k);
	if (rc == HC_ENOMEM)
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
	else if (rc != 0)
		rc = hc_err_set(err, HC_EDATA, "invalid JSON: too many objects");
	else if (json_keys_differ(obj, &k, &next, &where) || next != k.n)
		rc = hc_err_set(err, HC_EDATA,
		                "invalid JSON at offset %zu: an object repeats a key", where);
	free(k.count);
	free(k.offset);
	return rc;
}

int
hc_json_parse(const char *text, size_t len, struct json_object **out,
              struct hc_err *err)
{
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL;
	enum json_tokener_error jerr;
	size_t end;
	int rc = 0;

	if (len > (size_t)INT32_MAX)
		return hc_err_set(err, HC_EDATA, "JSON text too large");
	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (tok == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	if (obj == NULL || jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			rc = hc_err_set(err, HC_EDATA, "invalid JSON: unexpected end of input");
		else
			rc = hc_err_set(err, HC_EDATA, "invalid JSON at offset %zu: %s",
			                json_tokener_get_parse_end(tok),
			                json_tokener_error_desc(jerr));
		goto done;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (text[end] != ' ' && text[end] != '\n' && text[end] != '\r' &&
		    text[end] != '\t') {
			rc = hc_err_set(err, HC_EDATA,
			                "invalid JSON: trailing data at offset %zu", end);
			goto done;
		}
	}
	rc = json_check_unique_keys(text, json_tokener_get_parse_end(tok), obj, err);
	if (rc != 0)
		goto done;
	*out = obj;
	obj = NULL;
done:
	json_object_put(obj);
	json_tokener_free(tok);
	return rc;
}
