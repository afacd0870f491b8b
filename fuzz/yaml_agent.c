/* agent.yaml through the agent's schema (ag_config_schema). */
#include <string.h>

#include "agent/agent.h"
#include "fuzz/lib/support.h"
#include "fuzz/lib/yaml.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct ag_config cfg;
	int rc;

	fz_quiet();
	memset(&cfg, 0, sizeof(cfg));
	if (hc_cfg_defaults(ag_config_schema, &cfg, &err) != 0)
		fz_fail("agent defaults");
	rc = hc_cfg_load_buffer(ag_config_schema, &cfg, "agent.yaml", (const char *)data,
	                        size, &err);
	if (rc != 0)
		fz_check_config_error(rc, &err, "agent.yaml");
	else
		fz_check_config_roundtrip(ag_config_schema, &cfg, sizeof(cfg));
	ag_config_free(&cfg);
	return 0;
}
