/* mirror.yaml through the mirror's schema, then its cross-field checks. */
#include <string.h>

#include "fuzz/lib/support.h"
#include "fuzz/lib/yaml.h"
#include "mirror/mirror.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct mir_config cfg;
	int rc;

	fz_quiet();
	memset(&cfg, 0, sizeof(cfg));
	if (mir_config_defaults(&cfg, &err) != 0)
		fz_fail("mirror defaults");
	rc = hc_cfg_load_buffer(mir_config_schema, &cfg, "mirror.yaml", (const char *)data,
	                        size, &err);
	if (rc != 0) {
		fz_check_config_error(rc, &err, "mirror.yaml");
	} else {
		fz_check_config_roundtrip(mir_config_schema, &cfg, sizeof(cfg));
		rc = mir_config_check(&cfg, &err);
		if (rc != 0 && rc != HC_ECONFIG)
			fz_fail("mir_config_check returned something else than HC_ECONFIG");
	}
	mir_config_free(&cfg);
	return 0;
}
