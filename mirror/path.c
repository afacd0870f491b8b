/* Request paths confined to the store, and single byte ranges. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "mirror/mirror.h"

/* After one decoding, "%2e", "%2f", "%5c", "%25" or "%00" left in a path is a
 * second layer of encoding aimed at whoever decodes again: refuse it. */
static int
path_double_encoded(const char *s)
{
	static const char *const bad[] = { "%2e", "%2f", "%5c", "%25", "%00" };
	size_t i;

	for (; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			if (strncasecmp(s, bad[i], 3) == 0)
				return 1;
	}
	return 0;
}

int
mir_path_decode(const char *raw, size_t raw_len, char *out, size_t size)
{
	size_t i, o = 0;
	const char *seg;

	if (raw_len == 0 || size == 0)
		return HC_EDATA;
	for (i = 0; i < raw_len; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= raw_len)
				return HC_EDATA;
			hi = hc_hex_value((unsigned char)raw[i + 1]);
			lo = hc_hex_value((unsigned char)raw[i + 2]);
			if (hi < 0 || lo < 0)
				return HC_EDATA;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return HC_EDATA;
		if (o + 1 >= size || o + 1 >= MIR_PATH_MAX)
			return HC_EDATA;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (out[0] == '/' || path_double_encoded(out))
		return HC_EDATA;
	seg = out;
	for (;;) {
		const char *slash = strchr(seg, '/');
		size_t n = slash != NULL ? (size_t)(slash - seg) : strlen(seg);
		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return HC_EDATA;
		if (slash == NULL)
			break;
		seg = slash + 1;
	}
	return 0;
}

int
mir_path_encode(const char *path, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *path != '\0'; path++) {
		unsigned char c = (unsigned char)*path;
		int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		           c == '~' || c == '/';
		if (o + (keep ? 1 : 3) >= size)
			return HC_ESOFTWARE;
		if (keep) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= size)
		return HC_ESOFTWARE;
	out[o] = '\0';
	return 0;
}

/* Reads decimal digits at *p into *out; 0, or -1 when there are none or
 * the value overflows. */
static int
range_number(const char **p, uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return 0;
}

static const char *
range_blanks(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

enum mir_range
mir_range_parse(const char *value, uint64_t size, uint64_t *start, uint64_t *len)
{
	const char *p;
	uint64_t a, b;

	if (value == NULL)
		return MIR_RANGE_FULL;
	p = range_blanks(value);
	if (strncasecmp(p, "bytes", 5) != 0)
		return MIR_RANGE_FULL;
	p = range_blanks(p + 5);
	if (*p != '=')
		return MIR_RANGE_FULL;
	p = range_blanks(p + 1);
	if (strchr(p, ',') != NULL)
		return MIR_RANGE_FULL;
	if (*p == '-') {
		p++;
		if (range_number(&p, &b) != 0 || *range_blanks(p) != '\0')
			return MIR_RANGE_FULL;
		if (b == 0 || size == 0)
			return MIR_RANGE_UNSATISFIABLE;
		if (b > size)
			b = size;
		*start = size - b;
		*len = b;
		return MIR_RANGE_PARTIAL;
	}
	if (range_number(&p, &a) != 0 || *p != '-')
		return MIR_RANGE_FULL;
	p++;
	if (*range_blanks(p) == '\0') {
		b = UINT64_MAX;
	} else if (range_number(&p, &b) != 0 || *range_blanks(p) != '\0' || b < a) {
		return MIR_RANGE_FULL;
	}
	if (a >= size)
		return MIR_RANGE_UNSATISFIABLE;
	if (b >= size)
		b = size - 1;
	*start = a;
	*len = b - a + 1;
	return MIR_RANGE_PARTIAL;
}
