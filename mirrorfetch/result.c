/* The --json reports: an install's (docs/architecture.md section 5) and a sync's
 * (docs/sync.md). The one place results are printed. */
#include <json-c/json.h>

#include "mirrorfetch/mirrorfetch.h"

/* The version of the --json objects: a reader checks it before the fields. */
#define RESULT_SCHEMA 1

/* The fields every --json object starts with: schema, status, and on
 * failure the message as error. */
static void
result_head(struct json_object *o, int status, const char *status_text, const char *error)
{
	json_object_object_add(o, "schema", json_object_new_int(RESULT_SCHEMA));
	json_object_object_add(o, "status", json_object_new_string(
		status_text != NULL ? status_text : hc_status_name(status)));
	if (status != 0)
		json_object_object_add(o, "error", json_object_new_string(
			error != NULL ? error : ""));
}

void
mf_result_print_json(const struct mf_result *res, int status, const char *error, FILE *out)
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
	result_head(o, status, status == 0 && res->already_installed ? "already installed" : NULL,
	            error);
	json_object_object_add(o, "path", json_object_new_string(res->path));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res->bytes));
	json_object_object_add(o, "sha256", json_object_new_string(res->sha256));
	json_object_object_add(o, "source_url", json_object_new_string(res->source_url));
	json_object_object_add(o, "fallback", json_object_new_boolean(res->fallback));
	json_object_object_add(o, "digest_source", json_object_new_string(
		res->digest_source != NULL ? res->digest_source : "none"));
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

void
mf_sync_result_print_json(const struct mf_sync_result *res, int status, const char *error,
                          FILE *out)
{
	struct json_object *o = json_object_new_object();
	struct json_object *transfers = json_object_new_array();
	size_t i;

	if (o == NULL || transfers == NULL) {
		json_object_put(o);
		json_object_put(transfers);
		fputs("{\"status\": \"nomem\"}\n", out);
		return;
	}
	result_head(o, status, NULL, error);
	json_object_object_add(o, "dir", json_object_new_string(res->dir));
	json_object_object_add(o, "tool_id", json_object_new_string(res->tool_id));
	json_object_object_add(o, "tool_version", json_object_new_string(res->tool_version));
	json_object_object_add(o, "manifest_hash", json_object_new_string(res->manifest_hash));
	json_object_object_add(o, "files", json_object_new_int64((int64_t)res->files));
	json_object_object_add(o, "unchanged", json_object_new_int64((int64_t)res->unchanged));
	json_object_object_add(o, "from_index", json_object_new_int64((int64_t)res->from_index));
	json_object_object_add(o, "hashed", json_object_new_int64((int64_t)res->hashed));
	json_object_object_add(o, "downloaded", json_object_new_int64((int64_t)res->downloaded));
	json_object_object_add(o, "reused_staged",
	                       json_object_new_int64((int64_t)res->reused_staged));
	json_object_object_add(o, "deleted", json_object_new_int64((int64_t)res->deleted));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)res->bytes));
	json_object_object_add(o, "total_bytes", json_object_new_int64((int64_t)res->total_bytes));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64(res->elapsed_ms));
	json_object_object_add(o, "failed_path", json_object_new_string(res->failed_path));
	for (i = 0; i < res->n_transfers; i++) {
		const struct mf_sync_transfer *t = &res->transfers[i];
		struct json_object *j = json_object_new_object();
		if (j == NULL)
			break;
		json_object_object_add(j, "path", json_object_new_string(t->path != NULL ? t->path : ""));
		json_object_object_add(j, "bytes", json_object_new_int64((int64_t)t->bytes));
		json_object_object_add(j, "host", json_object_new_string(t->host));
		json_object_object_add(j, "fallback", json_object_new_boolean(t->fallback));
		json_object_object_add(j, "ms", json_object_new_int64(t->ms));
		json_object_array_add(transfers, j);
	}
	json_object_object_add(o, "transfers", transfers);
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}
