/* The cluster's eligible-list answer through disc_parse_eligible, then the
 * failover order built from it. */
#include <arpa/inet.h>
#include <string.h>

#include "discovery/discovery.h"
#include "fuzz/lib/support.h"

static void
check_ip(const char *ip)
{
	unsigned char addr[16];

	if (strnlen(ip, DISC_IP_MAX) == DISC_IP_MAX)
		fz_fail("an address is not terminated");
	if (*ip != '\0' && inet_pton(AF_INET, ip, addr) != 1 &&
	    inet_pton(AF_INET6, ip, addr) != 1)
		fz_fail("an accepted address is not an IP literal");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct disc_list list;
	static struct disc_candidate cands[DISC_MAX_CANDIDATES];
	struct hc_err err = { 0, "" };
	size_t i, n;
	int rc;

	fz_quiet();
	rc = disc_parse_eligible((const char *)data, size, &list, &err);
	if (rc != 0) {
		if (rc != HC_EDATA && rc != HC_ENOMEM)
			fz_fail("disc_parse_eligible: unexpected status");
		return 0;
	}
	if (list.n > DISC_MAX_BODIES || list.n > list.total)
		fz_fail("more bodies kept than allowed or sent");
	for (i = 0; i < list.n; i++) {
		const struct disc_body *b = &list.bodies[i];
		if (strnlen(b->node_id, DISC_LABEL_MAX) == DISC_LABEL_MAX ||
		    strnlen(b->name, DISC_LABEL_MAX) == DISC_LABEL_MAX)
			fz_fail("a label is not terminated");
		check_ip(b->lan_ip);
		check_ip(b->wg_ip);
	}
	n = disc_candidates(&list, cands);
	if (n > DISC_MAX_CANDIDATES)
		fz_fail("too many candidates");
	for (i = 0; i < n; i++) {
		if (cands[i].body >= list.n || cands[i].ip == NULL || *cands[i].ip == '\0')
			fz_fail("a candidate without a body or an address");
	}
	return 0;
}
