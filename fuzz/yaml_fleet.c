/* A fleet file through clu_fleet_load_buffer (the fleet schema is private to
 * cluster/fleet.c); a loaded fleet must save to YAML that loads back to the
 * same YAML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "fuzz/lib/support.h"
#include "fuzz/lib/yaml.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hc_err err = { 0, "" };
	struct clu_fleet *fleet = NULL, *again = NULL;
	char *y1 = NULL, *y2 = NULL;
	size_t n1 = 0, n2 = 0;
	int rc;

	fz_quiet();
	rc = clu_fleet_load_buffer("fleet.yaml", (const char *)data, size, &fleet, &err);
	if (rc != 0) {
		fz_check_config_error(rc, &err, "fleet.yaml");
		return 0;
	}
	if (clu_fleet_to_yaml(fleet, &y1, &n1, &err) != 0)
		fz_fail("clu_fleet_to_yaml failed on a loaded fleet");
	if (clu_fleet_load_buffer("saved.yaml", y1, n1, &again, &err) != 0) {
		fprintf(stderr, "saved:\n%s\nreload: %s\n", y1, err.msg);
		fz_fail("a saved fleet does not load");
	}
	if (clu_fleet_count(again) != clu_fleet_count(fleet))
		fz_fail("a saved fleet reloads with another node count");
	if (clu_fleet_to_yaml(again, &y2, &n2, &err) != 0 || n1 != n2 ||
	    memcmp(y1, y2, n1) != 0)
		fz_fail("a reloaded fleet saves differently");
	free(y1);
	free(y2);
	clu_fleet_free(again);
	clu_fleet_free(fleet);
	return 0;
}
