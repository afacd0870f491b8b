/*
 * mir_range_parse. Input: the representation's size in decimal, a newline,
 * then the Range header value. A partial answer is a non-empty range inside
 * the representation.
 */
#include <stdlib.h>

#include "fuzz/lib/support.h"
#include "mirror/mirror.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fz_cstr(data, size);
	char *f[2];
	uint64_t rsize, start = 0, len = 0;
	enum mir_range r;

	fz_split(text, '\n', f, 2);
	rsize = strtoull(f[0], NULL, 10);
	r = mir_range_parse(f[1], rsize, &start, &len);
	if (r == MIR_RANGE_PARTIAL &&
	    (len == 0 || start >= rsize || len > rsize - start))
		fz_fail("a partial range outside the representation");
	if (r != MIR_RANGE_FULL && r != MIR_RANGE_PARTIAL && r != MIR_RANGE_UNSATISFIABLE)
		fz_fail("an unknown range answer");
	(void)mir_range_parse(NULL, rsize, &start, &len);
	free(text);
	return 0;
}
