/*
 * Private to mirror/: tools misses on an origin answered from the tool's
 * upstream release (upstream.c, issue 16). A release is one ZIP per
 * version; its central directory and then only the member asked for are
 * read through HTTP Range requests (libzip over a seekable HTTP source).
 * A .tar.gz release is read whole and rewritten as a ZIP (tarsrc.c).
 * It sees the store, its settings, the publish journal and the response
 * layer only.
 */
#ifndef MIRROR_UPSTREAM_H
#define MIRROR_UPSTREAM_H

#include "mirror/journal.h"
#include "mirror/respond.h"

struct mir_upstream;

/* Sets up upstream reads from cfg->tools_upstream (cfg, store, journal
 * and rs must outlive it). Every file stored from a release, manifest.json
 * included, is journaled as a publication (journal NULL: none). *out stays
 * NULL when no archive_url is configured. 0, HC_ECONFIG (bad template,
 * unreadable token file) or HC_ENOMEM. */
int mir_upstream_new(const struct mir_config *cfg, struct mir_store *store,
                     struct mir_journal *journal, struct mir_resp *rs,
                     struct mir_upstream **out, struct hc_err *err);
/* 1 when path is a store path upstream can answer:
 * "tools/ID/VERSION/files/MEMBER" or "tools/ID/VERSION/manifest.json". */
int mir_upstream_handles(const char *path);
/* Answers a GET or HEAD for such a path that the store lacks: fetches the
 * member from the release, stores it verified, serves it. */
enum MHD_Result mir_upstream_get(struct mir_upstream *up, struct MHD_Connection *c,
                                 struct mir_req *r, const char *path, int head);
/* Why an archive member name may not be stored ("a '..' segment", ...),
 * NULL when it may: a plain relative path that stays inside the version. */
const char *mir_upstream_name_refused(const char *name);
/* 1 when path is "tools/ID/VERSION/import", the admin import route. */
int mir_upstream_is_import(const char *path);
/* The admin POST .../import (authorization already checked): imports the
 * whole version now and answers when it is done. */
enum MHD_Result mir_upstream_import(struct mir_upstream *up, struct MHD_Connection *c,
                                    struct mir_req *r, const char *path);
/* Appends the upstream counters as Prometheus text. NULL appends nothing.
 * 0 or the hc_buf_printf status. */
int mir_upstream_metrics(struct mir_upstream *up, struct hc_buf *b);
/* Ends upstream transfers in progress (shutdown, before the daemon stops). */
void mir_upstream_cancel(struct mir_upstream *up);
/* Ends upstream transfers, waits for background imports, frees. NULL is a
 * no-op. */
void mir_upstream_free(struct mir_upstream *up);

#endif
