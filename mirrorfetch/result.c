/* The --json report of an install (DESIGN.md section 5). */
#include <json-c/json.h>

#include "mirrorfetch/mirrorfetch.h"

void
mf_result_print_json(const struct mf_result *res, int status, FILE *out)
{
	struct json_object *o = json_object_new_object();
	struct json_object *attempts = json_object_new_array();
	size_t i;

	if (o == NULL || attempts == NULL) {
		json_object_put(o);
		json_object_put(attempts);
		fputs("{\"status\": \"nomem\"}\n", out);
		return;
	}
	json_object_object_add(o, "status", json_object_new_string(hc_status_name(status)));
	json_object_object_add(o, "path", json_object_new_string(res->path));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res->bytes));
	json_object_object_add(o, "sha256", json_object_new_string(res->sha256));
	json_object_object_add(o, "source_url", json_object_new_string(res->source_url));
	json_object_object_add(o, "fallback", json_object_new_boolean(res->fallback));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64(res->elapsed_ms));
	for (i = 0; i < res->n_attempts; i++) {
		const struct mf_attempt *a = &res->attempts[i];
		struct json_object *j = json_object_new_object();
		if (j == NULL)
			break;
		json_object_object_add(j, "url", json_object_new_string(a->url));
		json_object_object_add(j, "host", json_object_new_string(a->host));
		json_object_object_add(j, "result", json_object_new_string(a->result));
		json_object_object_add(j, "http_status", json_object_new_int64(a->http_status));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)a->bytes));
		json_object_object_add(j, "ms", json_object_new_int64(a->ms));
		json_object_array_add(attempts, j);
	}
	json_object_object_add(o, "attempts", attempts);
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}
