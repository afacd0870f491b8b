/* The fleet file (docs/architecture.md section 9): schema, loading, changes, saving. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cluster/cluster.h"

/* Ids go into URL paths and log lines; 64 bytes is far above "node-74f9fbf2". */
#define CLU_ID_MAX 64
/* Owners and names are labels for humans, not documents. */
#define CLU_TEXT_MAX 128
/* A fleet file bigger than this is a mistake (hc_cfg has the same bound). */
#define CLU_FLEET_FILE_MAX (4 * 1024 * 1024)
/* One VRAM figure in MiB; 16 TiB is far beyond any single GPU host. */
#define CLU_VRAM_MB_MAX (16LL * 1024 * 1024)

struct clu_fleet {
	struct hc_cfg_seq nodes; /* of struct clu_node */
};

static const char *const clu_role_names[] = { "head", "body", NULL };
static const char *const clu_status_names[] = { "online", "offline", NULL };

static int
clu_token_ok(const char *value, size_t max, const char *extra)
{
	size_t len = strlen(value), i;

	if (len == 0 || len > max || !isalnum((unsigned char)value[0]))
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)value[i];
		if (!isalnum(ch) && strchr(extra, ch) == NULL)
			return 0;
	}
	return 1;
}

int
clu_check_node_id(const char *value, char *what, size_t what_size)
{
	if (clu_token_ok(value, CLU_ID_MAX, "-_."))
		return 0;
	hc_snprintf(what, what_size,
	            "'%s' is not a node id (1 to %d letters, digits, '-', '_', '.')",
	            value, CLU_ID_MAX);
	return HC_EDATA;
}

int
clu_check_place(const char *value, char *what, size_t what_size)
{
	if (hc_is_dns_label(value))
		return 0;
	hc_snprintf(what, what_size, "'%s' is not a DNS label (letters, digits, '-')",
	            value);
	return HC_EDATA;
}

static int
clu_check_owner(const char *value, char *what, size_t what_size)
{
	if (clu_token_ok(value, CLU_TEXT_MAX, "-_."))
		return 0;
	hc_snprintf(what, what_size,
	            "'%s' is not an owner (1 to %d letters, digits, '-', '_', '.')",
	            value, CLU_TEXT_MAX);
	return HC_EDATA;
}

static int
clu_check_name(const char *value, char *what, size_t what_size)
{
	size_t len = strlen(value), i;

	for (i = 0; i < len; i++) {
		if (iscntrl((unsigned char)value[i]))
			break;
	}
	if (len > 0 && len <= CLU_TEXT_MAX && i == len)
		return 0;
	hc_snprintf(what, what_size, "a name is 1 to %d characters without control "
	            "characters", CLU_TEXT_MAX);
	return HC_EDATA;
}

static int
clu_check_ip(const char *value, char *what, size_t what_size)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, value, addr) == 1 || inet_pton(AF_INET6, value, addr) == 1)
		return 0;
	hc_snprintf(what, what_size, "'%s' is not an IP address", value);
	return HC_EDATA;
}

/* Schema checks: the loader runs them on the "" default too, so they let ""
 * through; clu_check_loaded refuses an empty value that was written out. */
static int
clu_cfg_node_id(const char *value, char *what, size_t what_size)
{
	return *value == '\0' ? 0 : clu_check_node_id(value, what, what_size);
}

static int
clu_cfg_place(const char *value, char *what, size_t what_size)
{
	return *value == '\0' ? 0 : clu_check_place(value, what, what_size);
}

static int
clu_cfg_owner(const char *value, char *what, size_t what_size)
{
	return *value == '\0' ? 0 : clu_check_owner(value, what, what_size);
}

static int
clu_cfg_name(const char *value, char *what, size_t what_size)
{
	return *value == '\0' ? 0 : clu_check_name(value, what, what_size);
}

static int
clu_cfg_ip(const char *value, char *what, size_t what_size)
{
	return *value == '\0' ? 0 : clu_check_ip(value, what, what_size);
}

#define CLU_NODE_OFF(member) offsetof(struct clu_node, member)

static const struct hc_cfg_field clu_node_schema[] = {
	{ .key = "id", .type = HC_CFG_STRING, .offset = CLU_NODE_OFF(id),
	  .required = 1, .check = clu_cfg_node_id },
	{ .key = "name", .type = HC_CFG_STRING, .offset = CLU_NODE_OFF(name),
	  .required = 1, .check = clu_cfg_name },
	{ .key = "role", .type = HC_CFG_ENUM, .offset = CLU_NODE_OFF(role),
	  .required = 1, .enum_values = clu_role_names },
	{ .key = "district", .type = HC_CFG_STRING, .offset = CLU_NODE_OFF(district),
	  .required = 1, .check = clu_cfg_place },
	{ .key = "venue", .type = HC_CFG_STRING, .offset = CLU_NODE_OFF(venue),
	  .required = 1, .check = clu_cfg_place },
	{ .key = "owner", .type = HC_CFG_STRING, .offset = CLU_NODE_OFF(owner),
	  .required = 1, .check = clu_cfg_owner },
	/* A body is probed at both; a head is never probed and may have neither
	 * (clu_check_loaded says so for bodies). */
	{ .key = "lan_ip", .type = HC_CFG_STRING, .offset = CLU_NODE_OFF(lan_ip),
	  .check = clu_cfg_ip },
	{ .key = "wg_ip", .type = HC_CFG_STRING, .offset = CLU_NODE_OFF(wg_ip),
	  .check = clu_cfg_ip },
	{ .key = "status", .type = HC_CFG_ENUM, .offset = CLU_NODE_OFF(status),
	  .required = 1, .enum_values = clu_status_names },
	{ .key = "drained", .type = HC_CFG_BOOL, .offset = CLU_NODE_OFF(drained),
	  .def = "false" },
	{ .key = "idle", .type = HC_CFG_BOOL, .offset = CLU_NODE_OFF(idle),
	  .def = "false" },
	{ .key = "vram_mb", .type = HC_CFG_INT, .offset = CLU_NODE_OFF(vram_mb),
	  .def = "0", .min = 0, .max = CLU_VRAM_MB_MAX },
	{ .key = NULL },
};

static const struct hc_cfg_field clu_fleet_schema[] = {
	{ .key = "nodes", .type = HC_CFG_SEQ, .offset = offsetof(struct clu_fleet, nodes),
	  .children = clu_node_schema, .elem_size = sizeof(struct clu_node),
	  .required = 1 },
	{ .key = NULL },
};

const char *
clu_role_name(int role)
{
	return role == CLU_ROLE_HEAD ? "head" : "body";
}

const char *
clu_status_name(int status)
{
	return status == CLU_STATUS_ONLINE ? "online" : "offline";
}

int
clu_status_parse(const char *text, int *out)
{
	if (strcmp(text, "online") == 0) {
		*out = CLU_STATUS_ONLINE;
		return 0;
	}
	if (strcmp(text, "offline") == 0) {
		*out = CLU_STATUS_OFFLINE;
		return 0;
	}
	return HC_EDATA;
}

static struct clu_node *
clu_nodes(const struct clu_fleet *fleet)
{
	return fleet->nodes.items;
}

size_t
clu_fleet_count(const struct clu_fleet *fleet)
{
	return fleet->nodes.n;
}

const struct clu_node *
clu_fleet_node(const struct clu_fleet *fleet, size_t i)
{
	return i < fleet->nodes.n ? &clu_nodes(fleet)[i] : NULL;
}

static struct clu_node *
clu_find_mut(struct clu_fleet *fleet, const char *id)
{
	size_t i;

	for (i = 0; i < fleet->nodes.n; i++) {
		if (strcmp(clu_nodes(fleet)[i].id, id) == 0)
			return &clu_nodes(fleet)[i];
	}
	return NULL;
}

const struct clu_node *
clu_fleet_find(const struct clu_fleet *fleet, const char *id)
{
	return clu_find_mut((struct clu_fleet *)fleet, id);
}

void
clu_fleet_free(struct clu_fleet *fleet)
{
	if (fleet == NULL)
		return;
	hc_cfg_free(clu_fleet_schema, fleet);
	free(fleet);
}

/*
 * Finds where nodes[index].key's value starts in the YAML text, so that a
 * check made after loading (duplicate ids) still reports file:line:col.
 * Returns 0 and 1-based line and column, or -1 when it cannot be found.
 */
static int
clu_locate(const char *buf, size_t len, size_t index, const char *key,
           size_t *line, size_t *col)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root, *seq = NULL, *item;
	yaml_node_pair_t *p;
	int rc = -1;

	if (!yaml_parser_initialize(&parser))
		return -1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_parser_delete(&parser);
		return -1;
	}
	root = yaml_document_get_root_node(&doc);
	if (root == NULL || root->type != YAML_MAPPING_NODE)
		goto done;
	for (p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&doc, p->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, "nodes") == 0)
			seq = yaml_document_get_node(&doc, p->value);
	}
	if (seq == NULL || seq->type != YAML_SEQUENCE_NODE ||
	    index >= (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start))
		goto done;
	item = yaml_document_get_node(&doc, seq->data.sequence.items.start[index]);
	if (item == NULL || item->type != YAML_MAPPING_NODE)
		goto done;
	for (p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&doc, p->value);
		if (k != NULL && v != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0) {
			*line = v->start_mark.line + 1;
			*col = v->start_mark.column + 1;
			rc = 0;
			break;
		}
	}
done:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

/* Reports a problem found after loading at nodes[index].key's position. */
static int
clu_loaded_fail(const char *name, const char *buf, size_t len, size_t index,
                const char *key, struct hc_err *err, const char *what)
{
	size_t line, col;

	/* A key left out has no place of its own: name its node's. */
	if (clu_locate(buf, len, index, key, &line, &col) == 0 ||
	    clu_locate(buf, len, index, "id", &line, &col) == 0)
		return hc_err_set(err, HC_ECONFIG, "%s:%zu:%zu: nodes[%zu].%s: %s", name,
		                  line, col, index, key, what);
	return hc_err_set(err, HC_ECONFIG, "%s: nodes[%zu].%s: %s", name, index, key,
	                  what);
}

/* What the schema cannot say: required strings written as "" (a body's
 * addresses among them), and a node id used twice (the second use is
 * named). */
static int
clu_check_loaded(const struct clu_fleet *fleet, const char *name,
                 const char *buf, size_t len, struct hc_err *err)
{
	char what[HC_ERR_MAX];
	size_t i, j;

	for (j = 0; j < fleet->nodes.n; j++) {
		const struct clu_node *n = &clu_nodes(fleet)[j];
		const struct { const char *key; const char *value; } strs[] = {
			{ "id", n->id }, { "name", n->name }, { "district", n->district },
			{ "venue", n->venue }, { "owner", n->owner }, { "lan_ip", n->lan_ip },
			{ "wg_ip", n->wg_ip },
		};
		for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
			int address = strcmp(strs[i].key, "lan_ip") == 0 ||
			              strcmp(strs[i].key, "wg_ip") == 0;
			if (*strs[i].value != '\0' || (address && n->role == CLU_ROLE_HEAD))
				continue;
			return clu_loaded_fail(name, buf, len, j, strs[i].key, err,
			                       address ? "a body needs one (a head may leave it out)" :
			                       "must not be empty");
		}
		/* Quadratic, but fleets are hundreds of nodes and this runs once. */
		for (i = 0; i < j; i++) {
			if (strcmp(clu_nodes(fleet)[i].id, n->id) != 0)
				continue;
			hc_snprintf(what, sizeof(what), "duplicate id '%s' (first used by "
			            "nodes[%zu])", n->id, i);
			return clu_loaded_fail(name, buf, len, j, "id", err, what);
		}
	}
	return 0;
}

int
clu_fleet_load_buffer(const char *name, const char *buf, size_t len,
                      struct clu_fleet **out, struct hc_err *err)
{
	struct clu_fleet *fleet;
	int rc;

	fleet = calloc(1, sizeof(*fleet));
	if (fleet == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = hc_cfg_defaults(clu_fleet_schema, fleet, err);
	if (rc != 0)
		goto fail;
	rc = hc_cfg_load_buffer(clu_fleet_schema, fleet, name, buf, len, err);
	if (rc != 0)
		goto fail;
	rc = clu_check_loaded(fleet, name, buf, len, err);
	if (rc != 0)
		goto fail;
	*out = fleet;
	return 0;
fail:
	clu_fleet_free(fleet);
	return rc;
}

int
clu_fleet_load_file(const char *path, struct clu_fleet **out, struct hc_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = hc_read_file(path, CLU_FLEET_FILE_MAX, &buf, &len, err);
	if (rc != 0) {
		if (rc == HC_ENOTFOUND || rc == HC_EDATA)
			rc = HC_ECONFIG;
		if (err != NULL)
			err->status = rc;
		return rc;
	}
	rc = clu_fleet_load_buffer(path, buf, len, out, err);
	free(buf);
	return rc;
}

int
clu_fleet_move(struct clu_fleet *fleet, const char *id, const char *district,
               const char *venue, struct hc_err *err)
{
	struct clu_node *n = clu_find_mut(fleet, id);
	char what[HC_ERR_MAX];
	char *d = NULL, *v = NULL;

	if (n == NULL)
		return hc_err_set(err, HC_ENOTFOUND, "unknown node '%s'", id);
	if (clu_check_place(district, what, sizeof(what)) != 0)
		return hc_err_set(err, HC_EDATA, "district: %s", what);
	if (venue != NULL && clu_check_place(venue, what, sizeof(what)) != 0)
		return hc_err_set(err, HC_EDATA, "venue: %s", what);
	d = hc_strdup(district);
	v = hc_strdup(venue != NULL ? venue : n->venue);
	if (d == NULL || v == NULL) {
		free(d);
		free(v);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	free(n->district);
	free(n->venue);
	n->district = d;
	n->venue = v;
	return 0;
}

int
clu_fleet_set_state(struct clu_fleet *fleet, const char *id, int status,
                    int drained, struct hc_err *err)
{
	struct clu_node *n = clu_find_mut(fleet, id);

	if (n == NULL)
		return hc_err_set(err, HC_ENOTFOUND, "unknown node '%s'", id);
	if (status != -1 && status != CLU_STATUS_ONLINE && status != CLU_STATUS_OFFLINE)
		return hc_err_set(err, HC_EDATA, "status: %d is not online or offline", status);
	if (drained < -1 || drained > 1)
		return hc_err_set(err, HC_EDATA, "drained: %d is not a boolean", drained);
	if (status != -1)
		n->status = status;
	if (drained != -1)
		n->drained = drained;
	return 0;
}

int
clu_fleet_to_yaml(const struct clu_fleet *fleet, char **out, size_t *len,
                  struct hc_err *err)
{
	static const char header[] =
		"# Fleet of hydra-cluster-sim (docs/architecture.md section 9), written by --save.\n";
	struct hc_buf text;
	char chunk[8192];
	ssize_t n;
	int fd = -1;
	int rc;

	/* Bounded like the file it will be read back from. */
	hc_buf_init(&text, CLU_FLEET_FILE_MAX);
	/* hc_cfg_dump writes to a descriptor; an anonymous memory file keeps the
	 * whole text in memory for the atomic write. */
	fd = memfd_create("clu-fleet", MFD_CLOEXEC);
	if (fd < 0)
		return hc_err_set(err, HC_EIO, "memfd_create: %s", strerror(errno));
	rc = hc_cfg_dump(clu_fleet_schema, fleet, fd, err);
	if (rc != 0)
		goto done;
	if (lseek(fd, 0, SEEK_SET) != 0) {
		rc = hc_err_set(err, HC_EIO, "memfd: %s", strerror(errno));
		goto done;
	}
	rc = hc_buf_add(&text, header, sizeof(header) - 1);
	/* Bounded: hc_buf_add fails past CLU_FLEET_FILE_MAX. */
	while (rc == 0) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = hc_err_set(err, HC_EIO, "memfd read: %s", strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		rc = hc_buf_add(&text, chunk, (size_t)n);
	}
	if (rc != 0) {
		rc = hc_err_set(err, rc, rc == HC_ENOMEM ? "out of memory" :
		                "fleet larger than %d bytes", CLU_FLEET_FILE_MAX);
		goto done;
	}
	*len = text.len;
	*out = hc_buf_take(&text);
done:
	hc_buf_free(&text);
	close(fd);
	return rc;
}

int
clu_fleet_save(const struct clu_fleet *fleet, const char *path, struct hc_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = clu_fleet_to_yaml(fleet, &text, &len, err);
	if (rc != 0)
		return rc;
	rc = hc_atomic_write(path, text, len, 0644, err);
	free(text);
	return rc;
}
