/*
 * The checks json-c does not make on request bodies (issue 19 item 13):
 * the text is valid UTF-8, no string holds a NUL (json-c would hand out a
 * string cut short at it) and no object names a key twice (json-c silently
 * keeps the last). Also the UTF-8 repair that keeps every error body valid
 * JSON when it quotes a client's bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

/* Nesting the scan follows; hc_json_parse refuses deeper text anyway. */
#define CLU_JSON_DEPTH_MAX 32
/* Keys one body may hold: a 4096-byte body fits about 680 of the shortest
 * ("a":1,); more is refused rather than scanned quadratically. */
#define CLU_JSON_KEYS_MAX 1024

/* Length of the UTF-8 sequence starting at s (at most len bytes), or 0 when
 * it is not a valid one: no overlong forms, surrogates or code points past
 * U+10FFFF (RFC 3629). */
static size_t
clu_utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	}
	return n;
}

size_t
clu_utf8_valid_len(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t off = 0, n;

	while (off < len) {
		n = clu_utf8_seq(u + off, len - off);
		if (n == 0)
			break;
		off += n;
	}
	return off;
}

void
clu_utf8_repair(const char *in, char *out, size_t size)
{
	static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
	const unsigned char *u = (const unsigned char *)in;
	size_t len = strlen(in), off = 0, w = 0, n;

	if (size == 0)
		return;
	while (off < len) {
		n = clu_utf8_seq(u + off, len - off);
		if (n == 0) {
			if (w + 3 >= size)
				break;
			memcpy(out + w, replacement, 3);
			w += 3;
			off++;
			continue;
		}
		if (w + n >= size)
			break;
		memcpy(out + w, in + off, n);
		w += n;
		off += n;
	}
	out[w] = '\0';
}

/* One open object or array of the scan. */
struct clu_level {
	int object;        /* 1: object, 0: array */
	int want_key;      /* object: the next string is a key */
	size_t id;         /* distinguishes objects for duplicate keys */
	long key;          /* index into keys of the member being read, or -1 */
};

struct clu_scan {
	const char *text;
	size_t len, pos;
	struct clu_level stack[CLU_JSON_DEPTH_MAX];
	size_t depth, next_id;
	struct hc_buf names;                   /* decoded keys, NUL-separated */
	size_t key_obj[CLU_JSON_KEYS_MAX];     /* owning object of each key */
	size_t key_off[CLU_JSON_KEYS_MAX];     /* its offset in names */
	size_t nkeys;
	int nul;           /* the last string held a NUL */
};

static int
clu_hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i, d;

	for (i = 0; i < 4; i++) {
		d = hc_hex_value((unsigned char)p[i]);
		if (d < 0)
			return -1;
		v = v * 16 + (unsigned)d;
	}
	*out = v;
	return 0;
}

/* Appends code point cp as UTF-8 to b. */
static int
clu_put_cp(struct hc_buf *b, unsigned cp)
{
	unsigned char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | (cp >> 6));
		u[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xE0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | (cp >> 18));
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return hc_buf_add(b, u, n);
}

/* Decodes the string at s->pos (just past its opening quote) into b and
 * moves past its closing quote; sets s->nul when it holds U+0000. The text
 * was accepted by json-c, so only bounds are checked here. */
static int
clu_scan_string(struct clu_scan *s, struct hc_buf *b)
{
	static const char esc_in[] = "\"\\/bfnrt";
	static const char esc_out[] = "\"\\/\b\f\n\r\t";
	unsigned cp, lo;
	const char *e;
	char c;

	s->nul = 0;
	while (s->pos < s->len) {
		c = s->text[s->pos++];
		if (c == '"')
			return 0;
		if (c != '\\') {
			if (hc_buf_add(b, &c, 1) != 0)
				return HC_EDATA;
			continue;
		}
		if (s->pos >= s->len)
			break;
		c = s->text[s->pos++];
		e = strchr(esc_in, c);
		if (c != 'u' && c != '\0' && e != NULL) {
			if (hc_buf_add(b, &esc_out[e - esc_in], 1) != 0)
				return HC_EDATA;
			continue;
		}
		if (c != 'u' || s->pos + 4 > s->len || clu_hex4(s->text + s->pos, &cp) != 0)
			break;
		s->pos += 4;
		if (cp >= 0xD800 && cp <= 0xDBFF && s->pos + 6 <= s->len &&
		    s->text[s->pos] == '\\' && s->text[s->pos + 1] == 'u' &&
		    clu_hex4(s->text + s->pos + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			s->pos += 6;
		}
		if (cp == 0)
			s->nul = 1;
		if (clu_put_cp(b, cp) != 0)
			return HC_EDATA;
	}
	return HC_EDATA;
}

/* The key of the member being read at the innermost object, for messages. */
static const char *
clu_scan_field(const struct clu_scan *s)
{
	size_t d;

	for (d = s->depth; d > 0; d--) {
		if (s->stack[d - 1].object && s->stack[d - 1].key >= 0)
			return s->names.p + s->key_off[s->stack[d - 1].key];
	}
	return NULL;
}

/* A key just decoded into names at off: refused when it holds a NUL or was
 * already given in the same object. */
static int
clu_scan_key(struct clu_scan *s, struct clu_level *top, size_t off,
             struct hc_err *err)
{
	const char *name = s->names.p + off;
	size_t i;

	if (s->nul)
		return hc_err_set(err, HC_EDATA, "a field name contains a NUL character");
	if (s->nkeys == CLU_JSON_KEYS_MAX)
		return hc_err_set(err, HC_EDATA, "more than %d fields", CLU_JSON_KEYS_MAX);
	for (i = 0; i < s->nkeys; i++) {
		if (s->key_obj[i] == top->id && strcmp(s->names.p + s->key_off[i], name) == 0)
			return hc_err_set(err, HC_EDATA, "field '%s' given twice", name);
	}
	s->key_obj[s->nkeys] = top->id;
	s->key_off[s->nkeys] = off;
	top->key = (long)s->nkeys++;
	top->want_key = 0;
	return 0;
}

/* One string of the text: a key or a value. */
static int
clu_scan_one_string(struct clu_scan *s, struct hc_err *err)
{
	struct clu_level *top = s->depth > 0 ? &s->stack[s->depth - 1] : NULL;
	struct hc_buf value;
	const char *field;
	size_t off = s->names.len;
	int rc;

	if (top != NULL && top->object && top->want_key) {
		rc = clu_scan_string(s, &s->names);
		if (rc == 0)
			rc = hc_buf_add(&s->names, "", 1);
		if (rc != 0)
			return hc_err_set(err, HC_EDATA, "invalid JSON string");
		return clu_scan_key(s, top, off, err);
	}
	hc_buf_init(&value, s->len + 1);
	rc = clu_scan_string(s, &value);
	hc_buf_free(&value);
	if (rc != 0)
		return hc_err_set(err, HC_EDATA, "invalid JSON string");
	if (!s->nul)
		return 0;
	field = clu_scan_field(s);
	if (field == NULL)
		return hc_err_set(err, HC_EDATA, "a string contains a NUL character");
	return hc_err_set(err, HC_EDATA, "field '%s': contains a NUL character", field);
}

int
clu_json_strict(const char *text, size_t len, struct hc_err *err)
{
	struct clu_scan *s;
	size_t valid = clu_utf8_valid_len(text, len);
	int rc = 0;
	char c;

	if (valid < len)
		return hc_err_set(err, HC_EDATA, "invalid UTF-8 at offset %zu", valid);
	if (memchr(text, '\0', len) != NULL)
		return hc_err_set(err, HC_EDATA, "a NUL byte at offset %zu",
		                  (size_t)((const char *)memchr(text, '\0', len) - text));
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	s->text = text;
	s->len = len;
	/* Decoded keys are never longer than the text; +1 per key for its NUL. */
	hc_buf_init(&s->names, 2 * len + 1);
	while (rc == 0 && s->pos < s->len) {
		c = text[s->pos++];
		if (c == '{' || c == '[') {
			if (s->depth == CLU_JSON_DEPTH_MAX) {
				rc = hc_err_set(err, HC_EDATA, "nested deeper than %d",
				                CLU_JSON_DEPTH_MAX);
				break;
			}
			s->stack[s->depth].object = c == '{';
			s->stack[s->depth].want_key = c == '{';
			s->stack[s->depth].id = s->next_id++;
			s->stack[s->depth].key = -1;
			s->depth++;
		} else if ((c == '}' || c == ']') && s->depth > 0) {
			s->depth--;
		} else if (c == ',' && s->depth > 0 && s->stack[s->depth - 1].object) {
			s->stack[s->depth - 1].want_key = 1;
		} else if (c == '"') {
			rc = clu_scan_one_string(s, err);
		}
	}
	hc_buf_free(&s->names);
	free(s);
	return rc;
}
