/*
 * Private to mirror/: the access log. One line per request in nginx's
 * combined format followed by the request time in seconds and the cache
 * outcome, so goaccess and any combined-log parser read it:
 *
 *   127.0.0.1 - - [02/Dec/2026:15:42:42 +0000] "GET /x HTTP/1.1" 200 5 "-" "curl/8" 0.001 hit
 *
 * It knows nothing of routes or the server; server.c fills the record.
 */
#ifndef MIRROR_ACCESS_H
#define MIRROR_ACCESS_H

#include <stdint.h>

#include "mirror/mirror.h"

/* A line: the URI, referer and agent are cut to fit and escaped. */
#define MIR_ACCESS_LINE_MAX 8192

struct mir_access_rec {
	const char *addr;               /* client address, numeric */
	int64_t epoch_s;                /* when the request ended */
	const char *method, *uri, *version;
	unsigned status;
	uint64_t bytes;                 /* body bytes sent */
	const char *referer, *agent;    /* NULL: "-" */
	double seconds;                 /* from the URI's arrival to the end */
	const char *outcome;            /* hit, miss, fill or bypass */
};

struct mir_access;

/* Formats r as one line ending in '\n' into buf (MIR_ACCESS_LINE_MAX):
 * '"', '\\' and bytes outside printable ASCII become \xHH as nginx writes
 * them, so a request cannot forge a line or a field. Returns the length. */
size_t mir_access_format(char *buf, size_t size, const struct mir_access_rec *r);

/* Opens the log: path "" or NULL logs nothing, "-" is stderr, anything else
 * a file opened for appending without following a link. 0, HC_ENOMEM or
 * HC_ECANTCREAT. */
int mir_access_open(const char *path, struct mir_access **out, struct hc_err *err);
/* Opens path again (after logrotate moved it, or a new path from a reload)
 * and swaps it in; on error the old file stays in use. */
int mir_access_reopen(struct mir_access *a, const char *path, struct hc_err *err);
/* Writes one line; a write error is dropped (logging never fails a request). */
void mir_access_write(struct mir_access *a, const struct mir_access_rec *r);
/* 1 when lines go somewhere. */
int mir_access_enabled(struct mir_access *a);
void mir_access_free(struct mir_access *a);

#endif
