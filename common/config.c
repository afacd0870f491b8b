/*
 * Strict, schema-driven YAML loading on libyaml. Every error names the file,
 * the line and column (1-based) of the offending node, and the dotted key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/hc.h"

/* Config files are small; a bigger one is a mistake, not a config. This
 * bounds buffers as well as files. */
#define CFG_FILE_MAX (4 * 1024 * 1024)
/* Fields of one mapping; duplicate detection uses a fixed array of flags. */
#define CFG_FIELDS_MAX 64
/* Dotted key paths in messages ("mirror.stall.seconds", "nodes[3].id"). */
#define CFG_KEY_MAX 256
/* Nesting bound: schemas are a few levels deep, input is not trusted. It is
 * checked on libyaml's event stream before a document is built, because
 * building one costs time quadratic in its nesting depth. */
#define CFG_DEPTH_MAX 16
/* Values the loader visits in one document: a fleet of 15,000 nodes of 16
 * fields is far above any real config, and the bound caps the work aliases
 * can multiply (each use of an alias is visited again). */
#define CFG_VALUES_MAX 250000

struct cfg_ctx {
	const char *name;
	yaml_document_t *doc;
	struct hc_err *err;
	size_t values;     /* visited so far, bounded by CFG_VALUES_MAX */
};

static int cfg_load_map(struct cfg_ctx *c, const struct hc_cfg_field *schema,
                        void *obj, yaml_node_t *node, const char *key, int depth);
static void cfg_free_fields(const struct hc_cfg_field *schema, void *obj);

static int
cfg_fail(struct cfg_ctx *c, yaml_mark_t mark, const char *key,
         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
cfg_fail(struct cfg_ctx *c, yaml_mark_t mark, const char *key,
         const char *fmt, ...)
{
	char what[HC_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (key != NULL && *key != '\0')
		return hc_err_set(c->err, HC_ECONFIG, "%s:%zu:%zu: %s: %s", c->name,
		                  mark.line + 1, mark.column + 1, key, what);
	return hc_err_set(c->err, HC_ECONFIG, "%s:%zu:%zu: %s", c->name,
	                  mark.line + 1, mark.column + 1, what);
}

static const char *
cfg_type_name(enum hc_cfg_type t)
{
	switch (t) {
	case HC_CFG_STRING:  return "a string";
	case HC_CFG_INT:     return "an integer";
	case HC_CFG_BOOL:    return "true or false";
	case HC_CFG_SIZE:    return "a size such as 512M or 10G";
	case HC_CFG_ENUM:    return "one of the listed values";
	case HC_CFG_STRLIST: return "a list of strings";
	case HC_CFG_MAP:     return "a mapping";
	case HC_CFG_SEQ:     return "a list of mappings";
	}
	return "a value";
}

static char **
cfg_str_slot(const struct hc_cfg_field *f, void *obj)
{
	return (char **)(void *)((char *)obj + f->offset);
}

static void *
cfg_slot(const struct hc_cfg_field *f, void *obj)
{
	return (char *)obj + f->offset;
}

/*
 * Sets a scalar field from text. On error nothing is changed and the message
 * (without position) is written into what.
 */
static int
cfg_set_scalar(const struct hc_cfg_field *f, void *obj, const char *text,
               char *what, size_t what_size)
{
	long long iv;
	uint64_t sv;
	char *copy;
	size_t i;

	switch (f->type) {
	case HC_CFG_STRING:
		if (f->check != NULL && f->check(text, what, what_size) != 0)
			return HC_ECONFIG;
		copy = hc_strdup(text);
		if (copy == NULL) {
			(void)hc_snprintf(what, what_size, "out of memory");
			return HC_ENOMEM;
		}
		free(*cfg_str_slot(f, obj));
		*cfg_str_slot(f, obj) = copy;
		return 0;
	case HC_CFG_INT:
		if (hc_parse_int(text, LLONG_MIN, LLONG_MAX, &iv) != 0) {
			(void)hc_snprintf(what, what_size, "expected an integer, got '%s'", text);
			return HC_ECONFIG;
		}
		if (iv < f->min || iv > f->max) {
			(void)hc_snprintf(what, what_size, "%lld is out of range [%lld, %lld]",
			                  iv, f->min, f->max);
			return HC_ECONFIG;
		}
		*(long long *)cfg_slot(f, obj) = iv;
		return 0;
	case HC_CFG_BOOL:
		if (strcmp(text, "true") == 0) {
			*(int *)cfg_slot(f, obj) = 1;
			return 0;
		}
		if (strcmp(text, "false") == 0) {
			*(int *)cfg_slot(f, obj) = 0;
			return 0;
		}
		(void)hc_snprintf(what, what_size, "expected true or false, got '%s'", text);
		return HC_ECONFIG;
	case HC_CFG_SIZE:
		if (hc_parse_size(text, &sv) != 0) {
			(void)hc_snprintf(what, what_size,
			                  "expected a size such as 512M or 10G, got '%s'", text);
			return HC_ECONFIG;
		}
		if ((long long)sv < f->min || (f->max > 0 && sv > (uint64_t)f->max)) {
			(void)hc_snprintf(what, what_size, "%s is out of range [%lld, %lld]", text,
			                  f->min, f->max);
			return HC_ECONFIG;
		}
		*(uint64_t *)cfg_slot(f, obj) = sv;
		return 0;
	case HC_CFG_ENUM:
		for (i = 0; f->enum_values[i] != NULL; i++) {
			if (strcmp(text, f->enum_values[i]) == 0) {
				*(int *)cfg_slot(f, obj) = (int)i;
				return 0;
			}
		}
		(void)hc_snprintf(what, what_size, "'%s' is not one of:", text);
		for (i = 0; f->enum_values[i] != NULL; i++) {
			size_t used = strlen(what);

			if (hc_snprintf(what + used, what_size - used, " %s", f->enum_values[i]) != 0)
				break;
		}
		return HC_ECONFIG;
	default:
		(void)hc_snprintf(what, what_size, "internal: not a scalar field");
		return HC_ESOFTWARE;
	}
}

static void
cfg_free_strlist(struct hc_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void
cfg_free_seq(const struct hc_cfg_field *f, struct hc_cfg_seq *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		cfg_free_fields(f->children, (char *)s->items + i * f->elem_size);
	free(s->items);
	s->items = NULL;
	s->n = 0;
}

static void
cfg_free_fields(const struct hc_cfg_field *schema, void *obj)
{
	const struct hc_cfg_field *f;

	for (f = schema; f->key != NULL; f++) {
		switch (f->type) {
		case HC_CFG_STRING:
			free(*cfg_str_slot(f, obj));
			*cfg_str_slot(f, obj) = NULL;
			break;
		case HC_CFG_STRLIST:
			cfg_free_strlist(cfg_slot(f, obj));
			break;
		case HC_CFG_MAP:
			cfg_free_fields(f->children, obj);
			break;
		case HC_CFG_SEQ:
			cfg_free_seq(f, cfg_slot(f, obj));
			break;
		default:
			break;
		}
	}
}

void
hc_cfg_free(const struct hc_cfg_field *schema, void *obj)
{
	if (schema == NULL || obj == NULL)
		return;
	cfg_free_fields(schema, obj);
}

int
hc_cfg_defaults(const struct hc_cfg_field *schema, void *obj, struct hc_err *err)
{
	const struct hc_cfg_field *f;
	char what[HC_ERR_MAX];
	int rc;

	for (f = schema; f->key != NULL; f++) {
		switch (f->type) {
		case HC_CFG_MAP:
			rc = hc_cfg_defaults(f->children, obj, err);
			if (rc != 0)
				return rc;
			break;
		case HC_CFG_STRLIST:
			cfg_free_strlist(cfg_slot(f, obj));
			break;
		case HC_CFG_SEQ:
			cfg_free_seq(f, cfg_slot(f, obj));
			break;
		case HC_CFG_STRING:
			rc = cfg_set_scalar(f, obj, f->def != NULL ? f->def : "", what,
			                    sizeof(what));
			if (rc != 0)
				return hc_err_set(err, rc, "default of %s: %s", f->key, what);
			break;
		default:
			if (f->def == NULL)
				break;
			rc = cfg_set_scalar(f, obj, f->def, what, sizeof(what));
			if (rc != 0)
				return hc_err_set(err, HC_ESOFTWARE, "default of %s: %s",
				                  f->key, what);
			break;
		}
	}
	return 0;
}

static int
cfg_key_join(char *out, size_t size, const char *prefix, const char *key)
{
	if (prefix == NULL || *prefix == '\0')
		return hc_snprintf(out, size, "%s", key);
	return hc_snprintf(out, size, "%s.%s", prefix, key);
}

static const char *
cfg_scalar(yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

static int
cfg_load_strlist(struct cfg_ctx *c, const struct hc_cfg_field *f, void *obj,
                 yaml_node_t *node, const char *key)
{
	struct hc_strlist *l = cfg_slot(f, obj);
	yaml_node_item_t *it;
	size_t n, i = 0;
	char **items = NULL;

	if (node->type != YAML_SEQUENCE_NODE)
		return cfg_fail(c, node->start_mark, key, "expected a list of strings");
	n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (f->max > 0 && n > (unsigned long long)f->max)
		return cfg_fail(c, node->start_mark, key, "%zu items, at most %lld", n, f->max);
	if (n > 0) {
		items = calloc(n, sizeof(*items));
		if (items == NULL)
			return hc_err_set(c->err, HC_ENOMEM, "out of memory");
	}
	for (it = node->data.sequence.items.start;
	     it < node->data.sequence.items.top; it++, i++) {
		yaml_node_t *item = yaml_document_get_node(c->doc, *it);
		if (++c->values > CFG_VALUES_MAX) {
			struct hc_strlist bad = { items, i };
			cfg_free_strlist(&bad);
			return cfg_fail(c, node->start_mark, key,
			                "more than %d values in the document", CFG_VALUES_MAX);
		}
		if (item == NULL || item->type != YAML_SCALAR_NODE) {
			struct hc_strlist bad = { items, i };
			cfg_free_strlist(&bad);
			return cfg_fail(c, item != NULL ? item->start_mark : node->start_mark,
			                key, "item %zu: expected a string", i);
		}
		if (f->check != NULL) {
			char what[HC_ERR_MAX];
			if (f->check(cfg_scalar(item), what, sizeof(what)) != 0) {
				struct hc_strlist bad = { items, i };
				cfg_free_strlist(&bad);
				return cfg_fail(c, item->start_mark, key, "item %zu: %s", i, what);
			}
		}
		items[i] = hc_strdup(cfg_scalar(item));
		if (items[i] == NULL) {
			struct hc_strlist bad = { items, i };
			cfg_free_strlist(&bad);
			return hc_err_set(c->err, HC_ENOMEM, "out of memory");
		}
	}
	cfg_free_strlist(l);
	l->items = items;
	l->n = n;
	return 0;
}

static int
cfg_check_required(struct cfg_ctx *c, const struct hc_cfg_field *schema,
                   const unsigned char *seen, yaml_node_t *node, const char *key)
{
	size_t i;

	for (i = 0; schema[i].key != NULL; i++) {
		if (schema[i].required && !seen[i])
			return cfg_fail(c, node->start_mark, key, "missing required key '%s'",
			                schema[i].key);
	}
	return 0;
}

static int
cfg_load_seq(struct cfg_ctx *c, const struct hc_cfg_field *f, void *obj,
             yaml_node_t *node, const char *key, int depth)
{
	struct hc_cfg_seq *s = cfg_slot(f, obj);
	struct hc_cfg_seq fresh = { NULL, 0 };
	char ikey[CFG_KEY_MAX];
	yaml_node_item_t *it;
	size_t n;
	int rc;

	if (node->type != YAML_SEQUENCE_NODE)
		return cfg_fail(c, node->start_mark, key, "expected a list of mappings");
	n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (f->max > 0 && n > (unsigned long long)f->max)
		return cfg_fail(c, node->start_mark, key, "%zu items, at most %lld", n, f->max);
	if (n > 0) {
		fresh.items = calloc(n, f->elem_size);
		if (fresh.items == NULL)
			return hc_err_set(c->err, HC_ENOMEM, "out of memory");
	}
	for (it = node->data.sequence.items.start;
	     it < node->data.sequence.items.top; it++) {
		void *elem = (char *)fresh.items + fresh.n * f->elem_size;
		yaml_node_t *item = yaml_document_get_node(c->doc, *it);

		fresh.n++;
		if (hc_snprintf(ikey, sizeof(ikey), "%s[%zu]", key, fresh.n - 1) != 0) {
			rc = cfg_fail(c, node->start_mark, key, "key path too long");
			goto fail;
		}
		rc = hc_cfg_defaults(f->children, elem, c->err);
		if (rc != 0)
			goto fail;
		if (item == NULL) {
			rc = cfg_fail(c, node->start_mark, ikey, "missing item");
			goto fail;
		}
		rc = cfg_load_map(c, f->children, elem, item, ikey, depth + 1);
		if (rc != 0)
			goto fail;
	}
	cfg_free_seq(f, s);
	*s = fresh;
	return 0;
fail:
	cfg_free_seq(f, &fresh);
	return rc;
}

static int
cfg_load_field(struct cfg_ctx *c, const struct hc_cfg_field *f, void *obj,
               yaml_node_t *val, const char *key, int depth)
{
	char what[HC_ERR_MAX];
	int rc;

	if (++c->values > CFG_VALUES_MAX)
		return cfg_fail(c, val->start_mark, key, "more than %d values in the document",
		                CFG_VALUES_MAX);
	switch (f->type) {
	case HC_CFG_MAP:
		return cfg_load_map(c, f->children, obj, val, key, depth + 1);
	case HC_CFG_SEQ:
		return cfg_load_seq(c, f, obj, val, key, depth);
	case HC_CFG_STRLIST:
		return cfg_load_strlist(c, f, obj, val, key);
	default:
		break;
	}
	if (val->type != YAML_SCALAR_NODE)
		return cfg_fail(c, val->start_mark, key, "expected %s, got a %s",
		                cfg_type_name(f->type),
		                val->type == YAML_MAPPING_NODE ? "mapping" : "list");
	/* A quoted "10" is a string that looks like a number, not a number. */
	if (f->type != HC_CFG_STRING &&
	    val->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return cfg_fail(c, val->start_mark, key, "expected %s, got a quoted string",
		                cfg_type_name(f->type));
	rc = cfg_set_scalar(f, obj, cfg_scalar(val), what, sizeof(what));
	if (rc == HC_ENOMEM)
		return hc_err_set(c->err, rc, "out of memory");
	if (rc != 0)
		return cfg_fail(c, val->start_mark, key, "%s", what);
	return 0;
}

static int
cfg_load_map(struct cfg_ctx *c, const struct hc_cfg_field *schema, void *obj,
             yaml_node_t *node, const char *prefix, int depth)
{
	unsigned char seen[CFG_FIELDS_MAX] = { 0 };
	char key[CFG_KEY_MAX];
	yaml_node_pair_t *p;
	size_t nfields = 0;
	int rc;

	while (schema[nfields].key != NULL)
		nfields++;
	if (nfields > CFG_FIELDS_MAX)
		return hc_err_set(c->err, HC_ESOFTWARE, "schema has too many fields");
	if (depth > CFG_DEPTH_MAX)
		return cfg_fail(c, node->start_mark, prefix, "nested too deeply");
	if (node->type == YAML_SCALAR_NODE && node->data.scalar.length == 0 &&
	    node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		return cfg_check_required(c, schema, seen, node, prefix);
	if (node->type != YAML_MAPPING_NODE)
		return cfg_fail(c, node->start_mark, prefix, "expected a mapping");

	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		size_t i;

		if (k == NULL || v == NULL)
			return cfg_fail(c, node->start_mark, prefix, "incomplete mapping");
		if (k->type != YAML_SCALAR_NODE)
			return cfg_fail(c, k->start_mark, prefix, "keys must be plain strings");
		for (i = 0; i < nfields; i++) {
			if (strcmp(schema[i].key, cfg_scalar(k)) == 0)
				break;
		}
		if (i == nfields) {
			if (prefix != NULL && *prefix != '\0')
				return cfg_fail(c, k->start_mark, NULL, "unknown key '%s' in %s",
				                cfg_scalar(k), prefix);
			return cfg_fail(c, k->start_mark, NULL, "unknown key '%s'",
			                cfg_scalar(k));
		}
		if (cfg_key_join(key, sizeof(key), prefix, schema[i].key) != 0)
			return cfg_fail(c, k->start_mark, prefix, "key path too long");
		if (seen[i])
			return cfg_fail(c, k->start_mark, NULL, "duplicate key '%s'", key);
		seen[i] = 1;
		rc = cfg_load_field(c, &schema[i], obj, v, key, depth);
		if (rc != 0)
			return rc;
	}
	return cfg_check_required(c, schema, seen, node, prefix);
}

static int
cfg_syntax_error(const char *name, const yaml_parser_t *parser, struct hc_err *err)
{
	const char *ctx = parser->context != NULL ? parser->context : "";

	return hc_err_set(err, HC_ECONFIG, "%s:%zu:%zu: YAML syntax error: %s%s%s",
	                  name, parser->problem_mark.line + 1,
	                  parser->problem_mark.column + 1,
	                  parser->problem != NULL ? parser->problem : "malformed",
	                  *ctx != '\0' ? " " : "", ctx);
}

/*
 * Reads the event stream of buf and refuses it when collections nest more
 * than CFG_DEPTH_MAX deep, stopping at the first level too deep so the cost
 * stays linear in len. Syntax errors are reported as the loader would.
 */
static int
cfg_check_depth(const char *name, const char *buf, size_t len, struct hc_err *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0, done = 0, rc = 0;

	if (!yaml_parser_initialize(&parser))
		return hc_err_set(err, HC_ENOMEM, "%s: cannot start the YAML parser", name);
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = cfg_syntax_error(name, &parser, err);
			break;
		}
		switch (ev.type) {
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++depth > CFG_DEPTH_MAX)
				rc = hc_err_set(err, HC_ECONFIG,
				                "%s:%zu:%zu: nested more than %d levels deep", name,
				                ev.start_mark.line + 1, ev.start_mark.column + 1,
				                CFG_DEPTH_MAX);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_DOCUMENT_END_EVENT:  /* only the first document is loaded */
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return rc;
}

int
hc_cfg_load_buffer(const struct hc_cfg_field *schema, void *obj, const char *name,
                   const char *buf, size_t len, struct hc_err *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	struct cfg_ctx c = { name, &doc, err, 0 };
	int have_parser = 0, have_doc = 0;
	int rc;

	if (len > CFG_FILE_MAX)
		return hc_err_set(err, HC_ECONFIG, "%s:1:1: %zu bytes, more than the %d a config may hold",
		                  name, len, CFG_FILE_MAX);
	rc = cfg_check_depth(name, buf, len, err);
	if (rc != 0)
		return rc;
	if (!yaml_parser_initialize(&parser))
		return hc_err_set(err, HC_ENOMEM, "%s: cannot start the YAML parser", name);
	have_parser = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = cfg_syntax_error(name, &parser, err);
		goto done;
	}
	have_doc = 1;
	root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		rc = 0;  /* an empty file keeps every default */
		goto done;
	}
	rc = cfg_load_map(&c, schema, obj, root, "", 0);
done:
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	return rc;
}

int
hc_cfg_load_file(const struct hc_cfg_field *schema, void *obj, const char *path,
                 struct hc_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = hc_read_file(path, CFG_FILE_MAX, &buf, &len, err);
	if (rc == HC_ENOTFOUND || rc == HC_EDATA)
		rc = HC_ECONFIG;
	if (rc != 0) {
		if (err != NULL)
			err->status = rc;
		return rc;
	}
	rc = hc_cfg_load_buffer(schema, obj, path, buf, len, err);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- checks */

int
hc_cfg_check_url(const char *value, char *what, size_t what_size)
{
	struct hc_url u;
	struct hc_err e;

	if (*value == '\0')
		return 0;
	if (hc_url_parse(value, &u, &e) != 0) {
		(void)hc_snprintf(what, what_size, "%s", e.msg);
		return HC_ECONFIG;
	}
	hc_url_free(&u);
	return 0;
}

int
hc_cfg_check_dns_label(const char *value, char *what, size_t what_size)
{
	if (*value == '\0' || hc_is_dns_label(value))
		return 0;
	(void)hc_snprintf(what, what_size, "'%s' is not a DNS label (letters, digits, '-')", value);
	return HC_ECONFIG;
}

int
hc_cfg_check_host_port(const char *value, char *what, size_t what_size)
{
	char host[HC_HOST_MAX];
	unsigned char addr[16];
	const char *port = NULL;
	long long portnum;
	size_t len;

	if (value[0] == '[') {
		const char *close = strchr(value, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			goto bad;
		len = (size_t)(close - value - 1);
		if (close[1] == ':')
			port = close + 2;
	} else {
		const char *colon = strchr(value, ':');
		len = colon != NULL ? (size_t)(colon - value) : strlen(value);
		if (colon != NULL)
			port = colon + 1;
	}
	if (len == 0 || len >= sizeof(host))
		goto bad;
	memcpy(host, value + (value[0] == '[' ? 1 : 0), len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1)
		goto bad;
	if (port != NULL && hc_parse_int(port, 1, 65535, &portnum) != 0)
		goto bad;
	return 0;
bad:
	(void)hc_snprintf(what, what_size,
	                  "'%s' is not an address such as 127.0.0.1, 127.0.0.1:5353 or [::1]:53",
	                  value);
	return HC_ECONFIG;
}

/* ---------------------------------------------------------------- dumping */

static int
cfg_dump_quoted(FILE *out, const char *s)
{
	const unsigned char *p;

	fputc('"', out);
	for (p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
	return 0;
}

static void
cfg_dump_fields(FILE *out, const struct hc_cfg_field *schema, const void *obj,
                int indent, int first_indent)
{
	const struct hc_cfg_field *f;
	const char *base = obj;
	size_t i;
	int pad = first_indent;

	for (f = schema; f->key != NULL; f++) {
		fprintf(out, "%*s%s:", pad, "", f->key);
		pad = indent;
		switch (f->type) {
		case HC_CFG_STRING:
			fputc(' ', out);
			cfg_dump_quoted(out, *(char *const *)(const void *)(base + f->offset));
			break;
		case HC_CFG_INT:
			fprintf(out, " %lld", *(const long long *)(const void *)(base + f->offset));
			break;
		case HC_CFG_BOOL:
			fprintf(out, " %s", *(const int *)(const void *)(base + f->offset) ?
			        "true" : "false");
			break;
		case HC_CFG_SIZE:
			fprintf(out, " %" PRIu64, *(const uint64_t *)(const void *)(base + f->offset));
			break;
		case HC_CFG_ENUM:
			fprintf(out, " %s",
			        f->enum_values[*(const int *)(const void *)(base + f->offset)]);
			break;
		case HC_CFG_STRLIST: {
			const struct hc_strlist *l = (const void *)(base + f->offset);
			fputs(" [", out);
			for (i = 0; i < l->n; i++) {
				if (i > 0)
					fputs(", ", out);
				cfg_dump_quoted(out, l->items[i]);
			}
			fputc(']', out);
			break;
		}
		case HC_CFG_MAP:
			fputc('\n', out);
			cfg_dump_fields(out, f->children, obj, indent + 2, indent + 2);
			continue;
		case HC_CFG_SEQ: {
			const struct hc_cfg_seq *s = (const void *)(base + f->offset);
			if (s->n == 0) {
				fputs(" []\n", out);
				continue;
			}
			fputc('\n', out);
			for (i = 0; i < s->n; i++) {
				fprintf(out, "%*s- ", indent, "");
				cfg_dump_fields(out, f->children,
				                (const char *)s->items + i * f->elem_size,
				                indent + 2, 0);
			}
			continue;
		}
		}
		fputc('\n', out);
	}
}

int
hc_cfg_dump(const struct hc_cfg_field *schema, const void *obj, int fd,
            struct hc_err *err)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	int rc = 0;

	out = open_memstream(&text, &len);
	if (out == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	cfg_dump_fields(out, schema, obj, 0, 0);
	if (fclose(out) != 0) {
		free(text);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	if (hc_write_all(fd, text, len) != 0)
		rc = hc_err_set(err, HC_EIO, "write: %s", strerror(errno));
	free(text);
	return rc;
}
