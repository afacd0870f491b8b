/*
 * Strict fields of the project's own space-separated records (journals,
 * indexes, state files). sscanf is not used for them: its %llu takes "-1"
 * (wrapped), "+5" and leading white space and saturates on overflow, and
 * %s stops at any white space, so a damaged line could read as another
 * valid one. Each scanner takes exactly what the writers print.
 */
#include <stdint.h>
#include <string.h>

#include "common/hc.h"

/* Reads the decimal digits at s (at least one) as a value of at most max;
 * *end is set past them. On error nothing is changed. */
static int
scan_digits(const char *s, uint64_t max, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	unsigned d;

	if (*s < '0' || *s > '9')
		return HC_EDATA;
	for (; *s >= '0' && *s <= '9'; s++) {
		d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return HC_EDATA;
		v = v * 10 + d;
	}
	*out = v;
	*end = s;
	return 0;
}

int
hc_scan_u64(const char **p, uint64_t *out)
{
	return scan_digits(*p, UINT64_MAX, out, p);
}

int
hc_scan_i64(const char **p, int64_t *out)
{
	const char *s = *p;
	uint64_t v;
	int neg = *s == '-';

	/* INT64_MIN's magnitude is one more than INT64_MAX's. */
	if (scan_digits(s + neg, (uint64_t)INT64_MAX + (uint64_t)neg, &v, &s) != 0)
		return HC_EDATA;
	if (!neg)
		*out = (int64_t)v;
	else if (v == (uint64_t)INT64_MAX + 1)
		*out = INT64_MIN;
	else
		*out = -(int64_t)v;
	*p = s;
	return 0;
}

int
hc_scan_word(const char **p, char *dst, size_t size)
{
	const char *s = *p;
	size_t n = 0;

	/* A word byte is anything but a control byte, the space and DEL. */
	while ((unsigned char)s[n] > ' ' && s[n] != 0x7f)
		n++;
	if (n == 0 || n >= size)
		return HC_EDATA;
	memcpy(dst, s, n);
	dst[n] = '\0';
	*p = s + n;
	return 0;
}

int
hc_scan_sep(const char **p, char c)
{
	if (c == '\0' || **p != c)
		return HC_EDATA;
	(*p)++;
	return 0;
}
