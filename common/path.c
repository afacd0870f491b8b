/* Relative paths in URLs: one decoder that confines them below a root and
 * one encoder, for the mirror and every client. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/hc.h"

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
hc_path_decode(const char *raw, size_t raw_len, char *out, size_t size)
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
		if (o + 1 >= size || o + 1 >= HC_PATH_MAX)
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

/* Percent-encodes s into out; keep_slash leaves '/' as it is. */
static int
path_percent_encode(const char *s, int keep_slash, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		           c == '~' || (keep_slash && c == '/');
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

int
hc_path_encode(const char *path, char *out, size_t size)
{
	return path_percent_encode(path, 1, out, size);
}

int
hc_query_encode(const char *value, char *out, size_t size)
{
	return path_percent_encode(value, 0, out, size);
}
