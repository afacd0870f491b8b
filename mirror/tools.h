/*
 * Private to mirror/: the tools tree of delta sync (tools.c), as the server
 * uses it. It sees the store, its root, the publish journal and the
 * response layer only.
 */
#ifndef MIRROR_TOOLS_H
#define MIRROR_TOOLS_H

#include "mirror/journal.h"
#include "mirror/respond.h"

struct mir_tools;

/* Starts the tools tree of the store at root (which, like store, journal
 * and rs, must outlive it); keep_versions > 0 starts the purge. Every file
 * a version DELETE or the purge removes is journaled as a deletion
 * (journal NULL: none). Stop it before the store and the journal close. */
int mir_tools_start(const char *root, long long keep_versions, struct mir_store *store,
                    struct mir_journal *journal, struct mir_resp *rs, struct mir_tools **out,
                    struct hc_err *err);
/* NULL is a no-op. */
void mir_tools_stop(struct mir_tools *t);
/* Counts a request for the store path (only "tools/ID/..." paths count). */
void mir_tools_count(struct mir_tools *t, const char *path, int hit);
/* Appends the per-tool counters as Prometheus text. 0 or the hc_buf_add
 * status. */
int mir_tools_metrics(struct mir_tools *t, struct hc_buf *b);
/* 1 when path is "tools/ID/VERSION", a whole version: anything but a
 * regular file there (a file is deleted as a file). */
int mir_tools_is_version(struct mir_tools *t, const char *path);
/* The admin DELETE of a whole version (authorization already checked). */
enum MHD_Result mir_tools_delete_version(struct mir_tools *t, struct MHD_Connection *c,
                                         struct mir_req *r, const char *path);

#endif
