/*
 * systemd readiness: a thin wrapper over libsystemd's sd_notify so that a
 * Type=notify unit knows when a server listens, reloads and stops.
 */
#include <systemd/sd-daemon.h>

#include "common/hc.h"

/* Without NOTIFY_SOCKET (not started by systemd) sd_notify returns 0 and
 * nothing is sent: a server calls this unconditionally. A failure to reach
 * the manager is not the caller's error to handle, so it is dropped. */
void
hc_notify(const char *state)
{
	if (state == NULL || *state == '\0')
		return;
	(void)sd_notify(0, state);
}
