/* json-c helpers whose errors name the field that was missing or mistyped. */
#include <json-c/json.h>
#include <string.h>

#include "common/hc.h"

/* Response bodies the programs parse are small; this bounds a hostile one. */
#define JSON_DEPTH_MAX 32

const char *
hc_json_type_label(struct json_object *v)
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
		                  want_label, hc_json_type_label(v));
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
	*out = obj;
	obj = NULL;
done:
	json_object_put(obj);
	json_tokener_free(tok);
	return rc;
}
