/*
 * Private to mirror/: the origin's publish journal (journal.c), what peers
 * follow to pre-warm. It knows files and sequence numbers, nothing of HTTP.
 */
#ifndef MIRROR_JOURNAL_H
#define MIRROR_JOURNAL_H

#include "mirror/mirror.h"

/* Entries kept, in memory and on disk: a peer further behind than this
 * resyncs by listing, which costs one request per page, not per entry. */
#define MIR_JOURNAL_KEEP 16384
/* Most entries in one answer: bounds its size (paths are at most
 * HC_PATH_MAX) and lets a far-behind peer start filling early. */
#define MIR_JOURNAL_PAGE 1000
/* Longest long-poll: a proxy between peer and origin may cut a request
 * that stays silent for longer. */
#define MIR_JOURNAL_WAIT_MAX_S 30
/* The journal id: 16 random bytes in hex. */
#define MIR_JOURNAL_ID_LEN 32

enum mir_journal_op { MIR_JOURNAL_PUT = 'P', MIR_JOURNAL_DELETE = 'D' };

struct mir_journal;

/* Opens {root}/meta/journal (creating it, with a new id, when it is absent
 * or unreadable), drops torn or malformed lines, and takes
 * {root}/meta/journal.lock: HC_EUNAVAIL when another origin on the same
 * root keeps the journal. Free with mir_journal_close. */
int mir_journal_open(const char *root, struct mir_journal **out, struct hc_err *err);
/* Wakes every waiter and frees. NULL is a no-op. */
void mir_journal_close(struct mir_journal *j);
/* Ends the waits in mir_journal_changes now and from now on (shutdown). */
void mir_journal_stop(struct mir_journal *j);

/* Appends one entry durably (write and fdatasync) and wakes the waiters.
 * sha256: hex, or "" for a deletion. 0, HC_EIO or HC_ENOMEM. */
int mir_journal_append(struct mir_journal *j, enum mir_journal_op op, const char *path,
                       uint64_t size, const char *sha256, struct hc_err *err);
/* mir_journal_append for a publication that already happened: a failure
 * is logged (WARN), not returned, since the file stays stored and reaches
 * peers on a client's miss or at a list resync. NULL j (no journal: a
 * peer, or an origin sharing its root) is a no-op. */
void mir_journal_note(struct mir_journal *j, enum mir_journal_op op, const char *path,
                      uint64_t size, const char *sha256);

/* The entries after since, at most max (capped at MIR_JOURNAL_PAGE), as
 * JSON text into *json (caller frees):
 * {"journal_id", "first_seq", "last_seq", "entries": [{"seq", "time",
 * "op": "put"|"delete", "path", "size", "sha256"}]}. When there are none
 * it waits up to wait_ms for one first. first_seq above since + 1 means the
 * peer missed entries and must list. 0 or HC_ENOMEM. */
int mir_journal_changes(struct mir_journal *j, uint64_t since, int64_t wait_ms, size_t max,
                        char **json, struct hc_err *err);

/* Files a list answer names at most: a page a peer fills in minutes. */
#define MIR_LIST_PAGE 1000
/* Files under one prefix a listing sorts at most, to page them in order. */
#define MIR_LIST_SCAN_MAX 200000

/* The regular files below {root}/files whose path starts with prefix,
 * after the path after ("" from the start), in byte order, at most
 * MIR_LIST_PAGE, as JSON into *json (caller frees): {"files": [{"path",
 * "size"}], "next": PATH or null}. HC_EDATA when more than
 * MIR_LIST_SCAN_MAX files match, HC_EIO when the store cannot be read. */
int mir_journal_list(const char *root, const char *prefix, const char *after, char **json,
                     struct hc_err *err);

/* One regular file of a store, as mir_journal_scan finds it. */
struct mir_journal_file {
	char *path;                     /* beneath {root}/files */
	uint64_t size;
};

/* Every regular file below {root}/files whose path starts with prefix, in
 * byte order, into *files and *n (caller frees with mir_journal_scan_free).
 * 0, HC_EDATA when more than MIR_LIST_SCAN_MAX match, HC_EIO or HC_ENOMEM;
 * on error *files is NULL and *n 0. */
int mir_journal_scan(const char *root, const char *prefix, struct mir_journal_file **files,
                     size_t *n, struct hc_err *err);
/* NULL is a no-op. */
void mir_journal_scan_free(struct mir_journal_file *files, size_t n);

struct mir_journal_stats {
	uint64_t first_seq, last_seq;
	char id[MIR_JOURNAL_ID_LEN + 1];
};
void mir_journal_stats(struct mir_journal *j, struct mir_journal_stats *out);

#endif
