/* Single byte ranges (RFC 9110 14.2), the only kind the mirror serves. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "mirror/mirror.h"

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
