/*
 * Private to mirror/: a peer's pre-warm (prewarm.c). It follows the origin's
 * publish journal and fills what is published through the fills (fill.h),
 * so a client arriving meanwhile joins that fill. It sees the store and the
 * fills, nothing else of the server.
 */
#ifndef MIRROR_PREWARM_H
#define MIRROR_PREWARM_H

#include "mirror/fill.h"

/* Paths one POST may name: a release is a few hundred files. */
#define MIR_PREWARM_POST_MAX 1000

struct mir_prewarm;

/* What the pre-warm is told at start; strings are copied. */
struct mir_prewarm_config {
	const char *root;               /* {root}/meta/prewarm keeps the position */
	const char *origin_url;
	const char *ca_file;
	const struct hc_strlist *prefixes; /* only paths under these; none: all */
	long long concurrency;          /* pre-warm fills at once */
	uint64_t origin_bytes_per_s;    /* pre-warm's own budget, 0: none */
	long long wait_s;               /* long-poll asked of the origin */
	long long protect_s;            /* a fill evicts only files unread this long */
};

struct mir_prewarm_stats {
	uint64_t position;              /* last journal entry applied */
	uint64_t origin_seq;            /* the origin's last, as last seen */
	uint64_t done, failed, skipped_space, deleted, resyncs, queued;
	int following;                  /* the last changes request was answered */
};

/* Loads the position and starts following. 0, HC_ENOMEM or HC_ESOFTWARE. */
int mir_prewarm_start(const struct mir_prewarm_config *cfg, struct mir_store *store,
                      struct mir_fills *fills, struct mir_prewarm **out,
                      struct hc_err *err);
/* Queues paths (decoded, checked) to fill now. 0, or HC_EUNAVAIL when the
 * queue has no room for all of them (none queued). */
int mir_prewarm_request(struct mir_prewarm *pw, char *const *paths, size_t n,
                        struct hc_err *err);
/* Ends following and the workers (after their fill ends) and frees. The
 * fills must be cancelled first so that no worker waits long. NULL: no-op. */
void mir_prewarm_stop(struct mir_prewarm *pw);
/* Wakes the follower's long-poll and the workers (shutdown begins). */
void mir_prewarm_cancel(struct mir_prewarm *pw);
void mir_prewarm_stats(struct mir_prewarm *pw, struct mir_prewarm_stats *out);

#endif
