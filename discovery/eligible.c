/* The eligible-list client: GET, and a parser strict on what the loop needs. */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery.h"

/* Longest eligible-list URL: cluster URL plus three escaped labels. */
/* Room for the base, three parameters and DISC_MAX_BODIES excluded ids. */
#define ELIGIBLE_URL_MAX 16384
/* The GET is one small JSON answer; a cluster slower than this is down. */
#define ELIGIBLE_TIMEOUT_MS 10000

static int
copy_field(struct json_object *obj, const char *field, int required, char *dst,
           size_t size, struct hc_err *err)
{
	const char *v = NULL;
	int rc;

	rc = required ? hc_json_get_string(obj, field, &v, err)
	              : hc_json_opt_string(obj, field, &v, err);
	if (rc != 0)
		return rc;
	if (v == NULL)
		return 0;
	if (hc_strlcpy(dst, v, size) != 0)
		return hc_err_set(err, HC_EDATA, "field '%s': longer than %zu bytes", field,
		                  size - 1);
	return 0;
}

/* lan_ip and wg_ip must be present; "" or null means "no address". */
static int
copy_ip(struct json_object *obj, const char *field, char *dst, struct hc_err *err)
{
	struct json_object *v = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	const char *s;

	if (!json_object_object_get_ex(obj, field, &v))
		return hc_err_set(err, HC_EDATA, "missing field '%s'", field);
	dst[0] = '\0';
	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return hc_err_set(err, HC_EDATA, "field '%s': expected a string", field);
	s = json_object_get_string(v);
	if (*s == '\0')
		return 0;
	if (inet_pton(AF_INET, s, buf) != 1 && inet_pton(AF_INET6, s, buf) != 1)
		return hc_err_set(err, HC_EDATA, "field '%s': '%.64s' is not an IP address",
		                  field, s);
	return hc_strlcpy(dst, s, DISC_IP_MAX) == 0 ? 0 :
	       hc_err_set(err, HC_EDATA, "field '%s': too long", field);
}

static int
parse_body(struct json_object *o, struct disc_body *b, struct hc_err *err)
{
	int rc;

	memset(b, 0, sizeof(*b));
	if (!json_object_is_type(o, json_type_object))
		return hc_err_set(err, HC_EDATA, "not an object");
	rc = copy_field(o, "node_id", 1, b->node_id, sizeof(b->node_id), err);
	if (rc == 0 && b->node_id[0] == '\0')
		rc = hc_err_set(err, HC_EDATA, "field 'node_id': empty");
	if (rc == 0)
		rc = copy_field(o, "name", 1, b->name, sizeof(b->name), err);
	if (rc == 0)
		rc = copy_ip(o, "lan_ip", b->lan_ip, err);
	if (rc == 0)
		rc = copy_ip(o, "wg_ip", b->wg_ip, err);
	if (rc == 0)
		rc = hc_json_get_bool(o, "same_venue", &b->same_venue, err);
	if (rc == 0)
		rc = copy_field(o, "district", 0, b->district, sizeof(b->district), err);
	if (rc == 0)
		rc = copy_field(o, "venue", 0, b->venue, sizeof(b->venue), err);
	if (rc == 0)
		rc = copy_field(o, "owner", 0, b->owner, sizeof(b->owner), err);
	return rc;
}

int
disc_parse_eligible(const char *text, size_t len, struct disc_list *out,
                    struct hc_err *err)
{
	struct json_object *root = NULL, *arr = NULL;
	const char *partition = "";
	size_t i, n;
	int rc;

	out->n = 0;
	out->total = 0;
	out->gated = 0;
	out->cross_venue = 0;
	out->tried_before = 0;
	rc = hc_json_parse(text, len, &root, err);
	if (rc != 0) {
		hc_err_prefix(err, "eligible list");
		return rc;
	}
	rc = hc_json_get_array(root, "bodies", &arr, err);
	if (rc == 0)
		rc = hc_json_opt_string(root, "partition", &partition, err);
	if (rc != 0) {
		hc_err_prefix(err, "eligible list");
		goto done;
	}
	out->gated = strcmp(partition, "quickroute") == 0;
	out->cross_venue = strcmp(partition, "cross_venue") == 0;
	n = json_object_array_length(arr);
	out->total = n;
	for (i = 0; i < n && i < DISC_MAX_BODIES; i++) {
		rc = parse_body(json_object_array_get_idx(arr, i), &out->bodies[i], err);
		if (rc != 0) {
			hc_err_prefix(err, "eligible list: bodies[%zu]", i);
			goto done;
		}
		out->n = i + 1;
	}
done:
	json_object_put(root);
	return rc;
}

int
disc_eligible_url(const struct disc_config *cfg, const struct disc_list *exclude,
                  char *url, size_t size, struct hc_err *err)
{
	const char *names[3] = { "district", "venue", "head_id" };
	const char *values[3] = { cfg->district, cfg->venue, cfg->head_id };
	char esc[3 * DISC_LABEL_MAX + 1];
	size_t base, used, i;
	char sep = '?';

	if (cfg->cluster_url == NULL || *cfg->cluster_url == '\0')
		return hc_err_set(err, HC_ECONFIG, "discovery.cluster_url is not set");
	base = strlen(cfg->cluster_url);
	while (base > 0 && cfg->cluster_url[base - 1] == '/')
		base--;
	if (hc_snprintf(url, size, "%.*s/api/v1/bodies/eligible", (int)base,
	                cfg->cluster_url) != 0)
		return hc_err_set(err, HC_EDATA, "eligible-list URL too long");
	for (i = 0; i < 3; i++) {
		if (values[i] == NULL || *values[i] == '\0')
			continue;
		if (hc_query_encode(values[i], esc, sizeof(esc)) != 0)
			return hc_err_set(err, HC_EDATA, "%s too long", names[i]);
		used = strlen(url);
		if (hc_snprintf(url + used, size - used, "%c%s=%s", sep, names[i], esc) != 0)
			return hc_err_set(err, HC_EDATA, "eligible-list URL too long");
		sep = '&';
	}
	for (i = 0; exclude != NULL && i < exclude->n; i++) {
		if (hc_query_encode(exclude->bodies[i].node_id, esc, sizeof(esc)) != 0)
			return hc_err_set(err, HC_EDATA, "node id too long");
		used = strlen(url);
		if (hc_snprintf(url + used, size - used, "%s%s", i == 0 ?
		                (sep == '?' ? "?exclude=" : "&exclude=") : ",", esc) != 0)
			return hc_err_set(err, HC_EDATA, "eligible-list URL too long");
	}
	return 0;
}

/* Collects the body; a sink that fails (too big, out of memory) ends the
 * transfer and leaves the reason in rc. */
struct body_buf {
	struct hc_buf b;
	int rc;
};

static int
body_sink(void *ctx, const void *data, size_t len)
{
	struct body_buf *bb = ctx;

	bb->rc = hc_buf_add(&bb->b, data, len);
	return bb->rc != 0;
}

int
disc_fetch_eligible(const struct disc_config *cfg, const struct disc_list *exclude,
                    struct disc_list *out, struct hc_err *err)
{
	char url[ELIGIBLE_URL_MAX];
	struct hc_http_config http = cfg->http;
	struct hc_http_response resp;
	struct hc_http_request req;
	struct body_buf buf;
	int rc;

	rc = disc_eligible_url(cfg, exclude, url, sizeof(url), err);
	if (rc != 0)
		return rc;
	hc_buf_init(&buf.b, DISC_ELIGIBLE_MAX_BYTES);
	buf.rc = 0;
	if (http.total_timeout_ms == 0)
		http.total_timeout_ms = ELIGIBLE_TIMEOUT_MS;
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.sink = body_sink;
	req.ctx = &buf;
	req.fail_on_http_error = 1;
	/* sig_atomic_t is int on the platforms this runs on. */
	req.cancel = (volatile int *)cfg->cancel;
	hc_log(HC_LOG_DEBUG, "discovery", "GET %s", url);
	rc = hc_http_request(&http, &req, &resp, err);
	if (buf.rc == HC_EDATA) {
		rc = hc_err_set(err, HC_EDATA, "eligible list larger than %d bytes",
		                DISC_ELIGIBLE_MAX_BYTES);
		goto done;
	}
	if (buf.rc != 0) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory reading the eligible list");
		goto done;
	}
	if (rc != 0) {
		hc_err_prefix(err, "eligible list %s", url);
		goto done;
	}
	rc = disc_parse_eligible(hc_buf_str(&buf.b), buf.b.len, out, err);
	if (rc == 0 && out->total > out->n)
		hc_log(HC_LOG_WARN, "discovery",
		       "eligible list has %zu bodies, using the first %d", out->total,
		       DISC_MAX_BODIES);
done:
	hc_buf_free(&buf.b);
	return rc;
}
