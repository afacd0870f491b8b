/*
 * hc_path_decode, the decoder every store path goes through. A decoded path
 * stays below its root, and encoding it then decoding gives it back.
 */
#include <string.h>

#include "common/hc.h"
#include "fuzz/lib/support.h"

static void
check_confined(const char *p)
{
	const char *seg = p;
	size_t i, len = strlen(p);

	if (len == 0 || len >= HC_PATH_MAX || p[0] == '/')
		fz_fail("a decoded path is empty, too long or absolute");
	for (i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c != '\0' && (c < 0x20 || c == 0x7f || c == '\\'))
			fz_fail("a decoded path holds a control byte or a backslash");
		if (c == '/' || c == '\0') {
			size_t n = (size_t)(p + i - seg);
			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				fz_fail("a decoded path has an empty, . or .. segment");
			seg = p + i + 1;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[HC_PATH_MAX], enc[3 * HC_PATH_MAX], again[HC_PATH_MAX];

	fz_quiet();
	if (hc_path_decode((const char *)data, size, out, sizeof(out)) != 0)
		return 0;
	check_confined(out);
	if (hc_path_encode(out, enc, sizeof(enc)) != 0)
		fz_fail("a decoded path does not encode");
	if (hc_path_decode(enc, strlen(enc), again, sizeof(again)) != 0 ||
	    strcmp(again, out) != 0)
		fz_fail("encoding then decoding a path changes it");
	if (hc_query_encode(out, enc, sizeof(enc)) != 0 || strchr(enc, '/') != NULL)
		fz_fail("a query encoding keeps a '/'");
	return 0;
}
