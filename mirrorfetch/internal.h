/*
 * mirrorfetch's private part: what the files of an install and a sync share.
 * Not an interface: only the files of mirrorfetch and its unit tests
 * include it.
 *
 *   beneath.c  opening, making and removing paths below a folder fd, no link
 *              followed (every path under a synced DIR goes through it)
 *   index.c    DIR/.hydra-index: which files are known right without hashing
 *   plan.c     what each manifest entry needs: keep, reuse from staging, fetch
 *   transfer.c the manifest download and the fetch workers
 *   swap.c     staged files into DIR, --delete, the staging cleanup
 *   origin.c   the origin's digest beside the district probe, mismatch reports
 *   sources.c  the hosts a run found down, skipped for a back-off
 *   progress.c the progress bar, fitted to the terminal, out of the log's way
 *   sync.c     mf_sync: the phases in order
 */
#ifndef MIRRORFETCH_INTERNAL_H
#define MIRRORFETCH_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>

#include "mirrorfetch/mirrorfetch.h"

#define MF_MOD "mirrorfetch"
/* Under staging: the part files of downloads in progress. */
#define MF_SYNC_PARTS_DIR ".hydra-parts"
/* Names that start so at the top of DIR are the sync's own state. */
#define MF_SYNC_RESERVED_PREFIX ".hydra-"
/* Folders below DIR deeper than this are refused: a manifest path is under
 * MF_MANIFEST_PATH_MAX bytes, so it has fewer segments than half of that. */
#define MF_SYNC_DEPTH_MAX (MF_MANIFEST_PATH_MAX / 2)

/* ------------------------------------------------------------------ beneath */

/* Opens rel (relative, '/'-separated) below dirfd without following any
 * link and without leaving dirfd: openat2 with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS, or O_NOFOLLOW at each step where openat2 is missing.
 * flags as for openat; O_CLOEXEC is added. The fd, or -1 with errno (ELOOP
 * or ENOTDIR for a link on the way). With O_PATH the fallback may hand back
 * a final link itself: callers check the type with fstat. */
int mf_open_beneath(int dirfd, const char *rel, int flags, mode_t mode);

/* Opens the folder rel below dirfd into *out ("" is dirfd itself, dup'ed).
 * With create, missing folders are made (0755) and fsynced into their
 * parent; with replace too, an entry in the way that is not a folder (a
 * link, a file) is removed first. what names dirfd in messages. 0,
 * HC_ENOTFOUND (absent, without create), HC_ECANTCREAT. */
int mf_dir_beneath(int dirfd, const char *rel, int create, int replace, int *out,
                   const char *what, struct hc_err *err);

/* Removes the entry name of dirfd and, for a folder, all it holds; no link
 * is followed (a link is removed, never its target). Absent is fine. 0,
 * HC_EIO or HC_EDATA (deeper than MF_SYNC_DEPTH_MAX). */
int mf_remove_tree_at(int dirfd, const char *name, const char *what, struct hc_err *err);

/* Reads the regular file name in dirfd (a link is not followed) up to max
 * bytes into *out, NUL added; caller frees. HC_ENOTFOUND, HC_EDATA (larger
 * than max, or not a regular file), HC_EIO. */
int mf_read_at(int dirfd, const char *name, size_t max, char **out, size_t *len,
               struct hc_err *err);

/* Splits rel at its last '/': the folder part into parent ("" when none),
 * and *base points at the last segment within rel. 0 or HC_EDATA when
 * parent is too small. */
int mf_split_path(const char *rel, char *parent, size_t size, const char **base);

/* ------------------------------------------------------------------ fetch */

/* Where mf_fetch_at puts one file: the part file part_name in part_dirfd
 * (its meta beside it), renamed to name in dirfd once verified. */
struct mf_fetch_target {
	int dirfd;
	const char *name;
	int part_dirfd;
	const char *part_name;
	const char *display;        /* the file's path in logs and results */
	const char *part_display;   /* the part file's, in messages */
	const char *expect_sha256;  /* NULL or "": the source's digest decides */
	int has_size;               /* size is the byte count the file must have */
	uint64_t size;
	/* The caller makes the final name durable itself (sync: one syncfs
	 * before the swap): the commit starts write-back and renames, without
	 * an fsync per file, and only a part worth resuming keeps a meta file. */
	int defer_sync;
};

/* The candidate loop of mf_install for one file, for a target given by
 * folder fds; with cand->n > 1 every candidate but the last is HEAD-probed
 * first and logged as a district mirror on failure. The final name only
 * ever holds a verified file; the bytes so far live in the part file and
 * are resumed. Safe on several threads for different targets. A part or
 * final name that is a link or not a regular file is refused with
 * HC_ECANTCREAT before anything is written or downloaded. With has_size, a
 * source that sends another byte count fails like a digest mismatch. */
int mf_fetch_at(const struct mf_config *cfg, const struct mf_candidates *cand,
                const struct mf_fetch_target *t, enum mf_progress_mode progress,
                struct mf_result *res, struct hc_err *err);

/* ------------------------------------------------------------------ origin */

/* The origin's HEAD of one file, run on its own thread beside the district
 * probe so that it costs no wall time when the origin answers. */
struct mf_origin_probe {
	const struct mf_config *cfg;
	const struct mf_candidate *origin;
	pthread_t thread;
	int started;
	char sha256[HC_SHA256_HEX_LEN + 1]; /* "" unless the origin gave its digest */
	struct hc_err why;                  /* why sha256 is "" */
};

/* Starts a HEAD of origin's URL bounded by cfg->head_timeout_ms; origin
 * must outlive the probe. 0, or -1 with p->why set (then there is nothing
 * to wait for). */
int mf_origin_probe_start(const struct mf_config *cfg, const struct mf_candidate *origin,
                          struct mf_origin_probe *p);
/* Waits for the HEAD; p->sha256 is then the origin's digest or "". Safe to
 * call twice, and on a probe that did not start. */
void mf_origin_probe_wait(struct mf_origin_probe *p);

/* Tells the mirror of c that the bytes it sent for display did not match:
 * POST /api/v1/peer/verify/{path}, bounded by head_timeout_ms. Best effort:
 * the outcome is logged and never changes the caller's. */
void mf_report_mismatch(const struct mf_config *cfg, const struct mf_candidate *c,
                        const char *display);

/* ------------------------------------------------------------------ sources */

/* A host that failed at the connection level is asked again after this
 * long: long enough that a sync of many files against a dead district
 * pays its timeout once, short enough that a long run sees it come back. */
#define MF_SOURCE_BACKOFF_MS 30000
/* Hosts one run remembers: every candidate a file can have; past this,
 * hosts are simply not remembered (never skipped, not balanced). */
#define MF_SOURCES_MAX MF_CANDIDATES_MAX

/* A source is its host and port: two mirrors on one host are two sources. */
struct mf_source_state {
	char host[HC_HOST_MAX];
	int port;
	int64_t down_until_ms;
	uint64_t outstanding;    /* bytes of the files assigned to it and not done */
	uint64_t rx_bytes;       /* body bytes it sent in this run */
	int64_t rx_ms;           /* time its transfers took, summed */
};

struct mf_sources {
	pthread_mutex_t mu;
	struct mf_source_state hosts[MF_SOURCES_MAX];
	size_t n;
};

void mf_sources_init(struct mf_sources *s);
void mf_sources_destroy(struct mf_sources *s);
/* 1 when host failed at the connection level less than
 * MF_SOURCE_BACKOFF_MS ago in this run. s may be NULL (never skipped). */
int mf_source_skipped(struct mf_sources *s, const char *host, int port);
/* Records a failure of host with class f. A connection-level one marks it
 * down for MF_SOURCE_BACKOFF_MS. 1 when it was already down: the caller
 * stays quiet, the failure was logged once. s may be NULL. */
int mf_source_failed(struct mf_sources *s, const char *host, int port, enum hc_fail f);

/* Orders the mirrors of cand (every candidate but the last, the origin) for
 * a file of size bytes: least (outstanding + size) / throughput first, where
 * throughput is what each host delivered per transfer-millisecond in this
 * run (hosts not yet measured count as the mean of those measured, or all
 * alike); hosts in back-off go last; ties keep the configured order. The
 * origin stays last: it is the fallback, not a member of the rotation. s may
 * be NULL (order kept). This function cannot fail. */
void mf_sources_order(struct mf_sources *s, struct mf_candidates *cand, uint64_t size);
/* Adds size bytes to host's outstanding bytes (assign) or takes them off
 * (assign 0). s may be NULL. */
void mf_source_assign(struct mf_sources *s, const char *host, int port, uint64_t size,
                      int assign);
/* Transfers shorter than this measure a source's latency more than its
 * throughput: they are not counted (a 64 KiB file on loopback takes a few
 * ms, half of them the request). */
#define MF_SOURCE_RATE_MIN_BYTES ((uint64_t)1 << 20)
/* Records that host sent bytes in ms milliseconds of one transfer; ignored
 * below MF_SOURCE_RATE_MIN_BYTES. */
void mf_source_measured(struct mf_sources *s, const char *host, int port, uint64_t bytes,
                        int64_t ms);

/* ------------------------------------------------------------------ progress */

/* Longest progress line, and so the widest terminal it fills. */
#define MF_BAR_MAX 256

/* One progress bar on stderr. Not active until mf_bar_begin. */
struct mf_bar {
	pthread_mutex_t mu;
	int active;
	int shown;               /* text is on the screen */
	char text[MF_BAR_MAX];   /* as drawn, fitted */
	int64_t last_ms;
};

/* Takes stderr: log lines erase the bar and redraw it (the one log hook),
 * SIGWINCH forces a redraw. One bar at a time; mf_bar_end gives it back. */
void mf_bar_begin(struct mf_bar *b);
/* Draws "left  tail" fitted to the terminal, at most every 100 ms unless
 * force. Safe on any thread. A bar never begun draws nothing. */
void mf_bar_draw(struct mf_bar *b, const char *left, const char *tail, int force);
/* Ends the line the bar is on and gives stderr back. */
void mf_bar_end(struct mf_bar *b);
/* The line for width columns: tail shortened (ending in "..") before left
 * is cut. Never longer than width or size - 1. This function cannot fail. */
void mf_bar_fit(const char *left, const char *tail, size_t width, char *out, size_t size);

/* ------------------------------------------------------------------ index */

struct mf_index_entry {
	char *path;
	char sha256[HC_SHA256_HEX_LEN + 1];
	uint64_t size;
	int64_t mtime_ns, ctime_ns;
	uint64_t ino;
};

/* Entries sorted by path once loaded; an empty index has entries NULL. */
struct mf_index {
	struct mf_index_entry *entries;
	size_t n, cap;
};

/* Loads name in dirfd into idx (empty first). A missing or damaged index
 * only costs hashing: it is logged, never an error, and damaged lines are
 * skipped. */
void mf_index_load(struct mf_index *idx, int dirfd, const char *name);
/* The entry for path, or NULL. */
const struct mf_index_entry *mf_index_find(const struct mf_index *idx, const char *path);
/* 1 when st is the file e was recorded from (size, mtime, ctime, inode). */
int mf_index_same_stat(const struct mf_index_entry *e, const struct stat *st);
/* Appends an entry (path copied). 0, HC_ENOMEM or HC_EDATA past the bound. */
int mf_index_add(struct mf_index *idx, const char *path, const char *sha256,
                 const struct stat *st, struct hc_err *err);
/* Writes idx as name in dirfd atomically (hc_atomic_write_at). */
int mf_index_save(const struct mf_index *idx, int dirfd, const char *name,
                  struct hc_err *err);
void mf_index_free(struct mf_index *idx);

/* ------------------------------------------------------------------ sync */

enum mf_sync_action {
	MF_SYNC_KEEP,      /* DIR already holds it */
	MF_SYNC_STAGED,    /* a verified copy waits in staging */
	MF_SYNC_FETCH,     /* download into staging */
};

/* What planning still has to hash for an item. */
enum mf_sync_check {
	MF_CHECK_NONE,
	MF_CHECK_DIR,      /* DIR/path has the right size but no index entry says so */
	MF_CHECK_STAGED,   /* a copy of the right size waits in staging */
};

struct mf_sync_item {
	const struct mf_manifest_file *f;
	enum mf_sync_action action;
	int indexed;             /* st is valid for the index */
	struct stat st;
	enum mf_sync_check check;
	int matched;             /* the hash of the checked copy is the manifest's */
	int done;                /* fetched and verified */
};

/* One sync's state, shared by its phases. dir_fd and staging_fd are open
 * folders (staging_fd -1 until staging exists); every path below them is
 * opened through mf_open_beneath / mf_dir_beneath. */
struct mf_sync {
	const struct mf_config *cfg;
	const struct mf_sync_options *opt;
	struct mf_sync_result *res;
	struct mf_manifest *m;
	const char *dir;         /* DIR as given, without trailing slashes, for messages */
	int dir_fd;
	int staging_fd;
	char district[MF_DISTRICT_MAX];
	int district_known;
	pthread_mutex_t district_mu;
	struct mf_index index;
	struct mf_sync_item *items;
	size_t n_fetch;
	/* Workers. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next;             /* next item to look at */
	size_t running;          /* workers not yet ended */
	int stop;                /* a fetch failed: start no more */
	int fail_status;
	char fail_msg[HC_ERR_MAX];
	atomic_uint_least64_t rx;
	uint64_t done_bytes;
	size_t done_files;
	uint64_t fetch_bytes;    /* the sizes of the FETCH items: the bar's 100% */
	char last_host[HC_HOST_MAX]; /* who served the last file, for the bar */
};

/* Fills s->items and s->n_fetch: KEEP when DIR holds the file (index, else
 * hash), STAGED when a verified copy waits in staging, else FETCH. Hashing
 * runs on opt->jobs threads. Counts go into s->res. Writes nothing. */
int mf_plan(struct mf_sync *s, struct hc_err *err);

/* Gets the manifest (opt->manifest, a URL through the candidates or a file),
 * parses it and checks opt->manifest_hash; into s->m. */
int mf_transfer_manifest(struct mf_sync *s, struct hc_err *err);
/* Fetches every FETCH item into staging on opt->jobs threads; the first
 * failure stops the others and is returned. */
int mf_transfer_all(struct mf_sync *s, struct hc_err *err);

/* Renames every fetched or staged file into DIR, making the folders on the
 * way, then fsyncs the folders it changed. */
int mf_swap(struct mf_sync *s, struct hc_err *err);
/* --delete: removes what DIR holds that the manifest does not list. */
int mf_swap_delete_extra(struct mf_sync *s, struct hc_err *err);

#endif
