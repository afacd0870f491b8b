/* Status codes, error messages and their mapping to sysexits. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "common/hc.h"

static void
err_cut_marker(char *msg, size_t size)
{
	/* A cut message says so, so nobody reads a clipped path as the real one. */
	if (size >= 4)
		memcpy(msg + size - 4, "...", 4);
}

int
hc_err_set(struct hc_err *err, int status, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL)
		return status;
	err->status = status;
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		err->msg[0] = '\0';
	else if ((size_t)n >= sizeof(err->msg))
		err_cut_marker(err->msg, sizeof(err->msg));
	return status;
}

int
hc_err_prefix(struct hc_err *err, const char *fmt, ...)
{
	char prefix[HC_ERR_MAX];
	char old[HC_ERR_MAX];
	va_list ap;
	int n;

	if (err == NULL)
		return HC_ESOFTWARE;
	va_start(ap, fmt);
	n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	if (n < 0)
		return err->status;
	memcpy(old, err->msg, sizeof(old));
	n = snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	if (n >= 0 && (size_t)n >= sizeof(err->msg))
		err_cut_marker(err->msg, sizeof(err->msg));
	return err->status;
}

int
hc_status_exit_code(int status)
{
	switch (status) {
	case HC_OK:         return 0;
	case HC_EUSAGE:     return EX_USAGE;
	case HC_EDATA:      return EX_DATAERR;
	case HC_EUNAVAIL:   return EX_UNAVAILABLE;
	case HC_ENOTFOUND:  return EX_UNAVAILABLE;
	case HC_ENOINPUT:   return EX_NOINPUT;
	case HC_ECANTCREAT: return EX_CANTCREAT;
	case HC_EIO:        return EX_IOERR;
	case HC_ECONFIG:    return EX_CONFIG;
	case HC_ENOMEM:     return EX_OSERR;
	default:            return EX_SOFTWARE;
	}
}

const char *
hc_status_name(int status)
{
	switch (status) {
	case HC_OK:         return "ok";
	case HC_EUSAGE:     return "usage";
	case HC_EDATA:      return "data";
	case HC_EUNAVAIL:   return "unavailable";
	case HC_ENOTFOUND:  return "not_found";
	case HC_ENOINPUT:   return "no_input";
	case HC_ECANTCREAT: return "cantcreat";
	case HC_EIO:        return "io";
	case HC_ECONFIG:    return "config";
	case HC_ENOMEM:     return "nomem";
	default:            return "software";
	}
}
