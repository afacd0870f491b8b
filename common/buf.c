/* Growable buffers and arrays with a hard cap: one way to grow for everyone. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hc.h"

/* The first allocation: small enough for a header or a short JSON answer. */
#define BUF_FIRST_CAP 256

void
hc_buf_init(struct hc_buf *b, size_t max)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

/* Makes room for extra more bytes and the NUL. On error b is unchanged. */
static int
buf_grow(struct hc_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > b->max - b->len)
		return HC_EDATA;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap != 0 ? b->cap : BUF_FIRST_CAP;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	/* Never allocate far past what the cap allows. */
	if (b->max < SIZE_MAX && cap > b->max + 1)
		cap = b->max + 1;
	p = realloc(b->p, cap);
	if (p == NULL)
		return HC_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
hc_buf_add(struct hc_buf *b, const void *data, size_t len)
{
	int rc = buf_grow(b, len);

	if (rc != 0)
		return rc;
	if (len > 0)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int
hc_buf_printf(struct hc_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return HC_ESOFTWARE;
	rc = buf_grow(b, (size_t)n);
	if (rc != 0)
		return rc;
	va_start(ap, fmt);
	(void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
hc_buf_reset(struct hc_buf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

const char *
hc_buf_str(const struct hc_buf *b)
{
	return b->p != NULL ? b->p : "";
}

char *
hc_buf_take(struct hc_buf *b)
{
	char *p = b->p;

	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

void
hc_buf_free(struct hc_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

int
hc_array_reserve(void **items, size_t *cap, size_t need, size_t elem_size,
                 size_t max)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	if (need > max)
		return HC_EDATA;
	ncap = *cap != 0 ? *cap : 16;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > max)
		ncap = max;
	if (elem_size != 0 && ncap > SIZE_MAX / elem_size)
		return HC_ENOMEM;
	p = realloc(*items, ncap * elem_size);
	if (p == NULL)
		return HC_ENOMEM;
	*items = p;
	*cap = ncap;
	return 0;
}
