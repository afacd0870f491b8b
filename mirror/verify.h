/*
 * Private to mirror/: checking stored files against the origin's digests
 * (verify.c). One verification per path at a time, requests for a path
 * being verified wait for that result; a scrubber thread re-hashes the
 * store at a bounded rate, least recently verified first; and a per
 * client-address budget for the reports clients send. It sees the store
 * only, never HTTP.
 */
#ifndef MIRROR_VERIFY_H
#define MIRROR_VERIFY_H

#include "mirror/mirror.h"

/* Reports one client address may send: a burst of this many, then one
 * every MIR_VERIFY_REFILL_MS. An agent sends one per mismatch it sees, so a
 * body installing a whole release from a rotten district stays under it. */
#define MIR_VERIFY_BURST 10
#define MIR_VERIFY_REFILL_MS 2000
/* Client addresses remembered for that budget; the least recently seen
 * one is forgotten first (it gets a full burst back). */
#define MIR_VERIFY_CLIENTS_MAX 1024
/* Paths being verified at once; a request beyond that is refused (busy). */
#define MIR_VERIFY_INFLIGHT_MAX 64

/* What a verification found. */
enum mir_verify_status {
	MIR_VERIFY_OK = 0,          /* matches the origin's digest */
	MIR_VERIFY_EVICTED = 1,     /* did not: removed */
	MIR_VERIFY_ABSENT = 2,      /* not in the store (or removed as changed on disk) */
	MIR_VERIFY_UNVERIFIED = 3,  /* the origin gave no digest: nothing to check */
};

extern const char *const mir_verify_names[];

struct mir_verify;

struct mir_verify_stats {
	uint64_t scrubbed_bytes;        /* hashed by the scrubber */
	uint64_t verifications;         /* files hashed, by anyone */
	uint64_t requests;              /* verifications asked for (coalesced ones too) */
};

/* Starts the scrubber over st at scrub_rate bytes per second (0: it
 * sleeps until a reload sets a rate). 0, HC_ENOMEM or HC_ESOFTWARE. */
int mir_verify_start(struct mir_store *st, uint64_t scrub_rate, struct mir_verify **out,
                     struct hc_err *err);
/* Verifications in progress end early (as if the file were absent) and
 * the scrubber stops. Call once no request can start a new one, then
 * mir_verify_free. NULL is a no-op. */
void mir_verify_stop(struct mir_verify *v);
void mir_verify_free(struct mir_verify *v);
void mir_verify_set_rate(struct mir_verify *v, uint64_t scrub_rate);

/* Hashes the stored file at the decoded path now (joining a verification
 * of it already running) and evicts it on a mismatch: a mir_verify_status,
 * or HC_EDATA (path outside the store), HC_EUNAVAIL (too many at once, or
 * stopping), HC_EIO. */
int mir_verify_path(struct mir_verify *v, const char *path, struct hc_err *err);

/* Takes one report from the budget of client address addr: 1 when
 * allowed, 0 when over it. */
int mir_verify_admit(struct mir_verify *v, const char *addr);

void mir_verify_stats(struct mir_verify *v, struct mir_verify_stats *out);

#endif
