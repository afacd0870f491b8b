/*
 * Verification of stored files against the origin's digests. A path being
 * hashed has a slot; a second request for it waits on the slot for the
 * same result instead of hashing again. The scrubber hashes at its rate
 * until someone waits on its slot, then at full speed. Hashing happens
 * with no store lock held; the store decides under its lock (it may have
 * replaced the file meanwhile) and evicts on a mismatch.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror/verify.h"

/* Bytes hashed per read: small enough to pace finely and to notice a stop. */
#define VERIFY_CHUNK ((size_t)256 * 1024)
/* The scrubber sleeps in steps no shorter than this (fewer wakeups). */
#define VERIFY_PACE_MIN_MS 10
/* How often an idle or disabled scrubber looks again. */
#define VERIFY_IDLE_MS 1000
/* How often a waiter looks at the stop flag. */
#define VERIFY_POLL_MS 1000
/* A report arriving this soon after a hash of the same file found it good
 * takes that answer: reports of one rot come in bursts from many bodies, and
 * the file cannot have changed unseen in so short a time but by hand. */
#define VERIFY_REUSE_MS 2000

const char *const mir_verify_names[] = { "ok", "evicted", "absent", "unverified" };

struct verify_slot {
	char path[MIR_PATH_MAX];
	int used;
	int done;
	int result;
	int waiters;                    /* requests waiting for result */
	int urgent;                     /* someone waits: hash unpaced */
	int64_t done_ms;                /* when done was set */
};

struct verify_client {
	char addr[64];
	double tokens;
	int64_t last_ms;
};

struct mir_verify {
	struct mir_store *store;
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* a slot is done, or stop, or a new rate */
	struct verify_slot slots[MIR_VERIFY_INFLIGHT_MAX];
	struct verify_client *clients;  /* MIR_VERIFY_CLIENTS_MAX */
	size_t nclients;
	uint64_t rate;                  /* scrub bytes per second (mu) */
	int stopping;                   /* (mu) */
	pthread_t scrubber;
	int scrubber_started;
	atomic_uint_least64_t scrubbed, verifications, requests;
};

/* Sleeps off the scrub debt of n more bytes at the current rate, unless a
 * waiter made the slot urgent. 0, or HC_EUNAVAIL when stopping. */
static int
verify_pace(struct mir_verify *v, struct verify_slot *slot, size_t n, double *debt_ms)
{
	int rc = 0;

	pthread_mutex_lock(&v->mu);
	if (v->rate > 0 && !slot->urgent)
		*debt_ms += (double)n * 1000.0 / (double)v->rate;
	while (!v->stopping && !slot->urgent && *debt_ms >= VERIFY_PACE_MIN_MS) {
		int64_t t0 = hc_now_ms();

		hc_cond_wait_ms(&v->cv, &v->mu, (int)*debt_ms);
		*debt_ms -= (double)(hc_now_ms() - t0);
	}
	if (slot->urgent)
		*debt_ms = 0;
	if (v->stopping)
		rc = HC_EUNAVAIL;
	pthread_mutex_unlock(&v->mu);
	return rc;
}

/* The SHA-256 of the open file f into hex; a file shorter than its record
 * hashes what it has (the store then finds it changed). paced: the
 * scrubber's rate applies and its bytes are counted. */
static int
verify_hash(struct mir_verify *v, struct verify_slot *slot, const struct mir_file *f,
            int paced, char hex[HC_SHA256_HEX_LEN + 1], struct hc_err *err)
{
	struct hc_sha256 *h = hc_sha256_new();
	char *buf = malloc(VERIFY_CHUNK);
	double debt_ms = 0;
	uint64_t off = 0;
	int rc = 0;

	if (h == NULL || buf == NULL) {
		rc = hc_err_set(err, HC_ENOMEM, "out of memory");
		goto done;
	}
	while (off < f->size) {
		size_t want = f->size - off < VERIFY_CHUNK ? (size_t)(f->size - off) : VERIFY_CHUNK;
		ssize_t got = pread(f->fd, buf, want, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = hc_err_set(err, HC_EIO, "read: %s", strerror(errno));
			goto done;
		}
		if (got == 0)
			break;
		rc = hc_sha256_update(h, buf, (size_t)got);
		if (rc != 0)
			goto done;
		off += (uint64_t)got;
		if (paced) {
			atomic_fetch_add(&v->scrubbed, (uint64_t)got);
			rc = verify_pace(v, slot, (size_t)got, &debt_ms);
			if (rc != 0) {
				hc_err_set(err, rc, "stopping");
				goto done;
			}
		}
	}
	rc = hc_sha256_hex(h, hex);
done:
	hc_sha256_free(h);
	free(buf);
	return rc;
}

/* Hashes and checks path (the slot's owner does this once). */
static int
verify_run(struct mir_verify *v, struct verify_slot *slot, int paced, struct hc_err *err)
{
	char hex[HC_SHA256_HEX_LEN + 1];
	struct mir_file f;
	int rc;

	rc = mir_store_get(v->store, slot->path, 0, &f, err);
	if (rc == HC_ENOTFOUND)
		return MIR_VERIFY_ABSENT;
	if (rc != 0)
		return rc;
	if (f.sha256[0] == '\0') {
		rc = MIR_VERIFY_UNVERIFIED;
		goto done;
	}
	atomic_fetch_add(&v->verifications, 1);
	rc = verify_hash(v, slot, &f, paced, hex, err);
	if (rc != 0)
		goto done;
	rc = mir_store_check(v->store, &f, hex, err);
	if (rc == MIR_CHECK_OK)
		rc = MIR_VERIFY_OK;
	else if (rc == MIR_CHECK_EVICTED)
		rc = MIR_VERIFY_EVICTED;
	else if (rc == MIR_CHECK_UNVERIFIABLE)
		rc = MIR_VERIFY_UNVERIFIED;
	else if (rc == HC_ENOTFOUND)
		rc = MIR_VERIFY_ABSENT;
done:
	close(f.fd);
	mir_store_release(v->store, f.entry);
	return rc;
}

/* Finds the slot of path (a hash in flight, or one that found the file good
 * within VERIFY_REUSE_MS) or takes a free one; *owner says which. NULL when
 * every slot is taken. Caller holds mu. */
static struct verify_slot *
verify_slot_get(struct mir_verify *v, const char *path, int *owner)
{
	struct verify_slot *free_slot = NULL;
	int64_t now = hc_now_ms();
	size_t i;

	for (i = 0; i < MIR_VERIFY_INFLIGHT_MAX; i++) {
		struct verify_slot *sl = &v->slots[i];
		int same = sl->used && strcmp(sl->path, path) == 0;

		if (same && (!sl->done ||
		             (sl->result == 0 && now - sl->done_ms < VERIFY_REUSE_MS))) {
			*owner = 0;
			return sl;
		}
		if ((!sl->used || (sl->done && sl->waiters == 0)) && free_slot == NULL)
			free_slot = sl;
	}
	if (free_slot == NULL)
		return NULL;
	hc_strlcpy(free_slot->path, path, sizeof(free_slot->path));
	free_slot->used = 1;
	free_slot->done = 0;
	free_slot->waiters = 0;
	free_slot->urgent = 0;
	*owner = 1;
	return free_slot;
}

/* Verifies path once however many ask at the same time. */
static int
verify_coalesced(struct mir_verify *v, const char *path, int paced, struct hc_err *err)
{
	struct verify_slot *slot;
	int owner = 0, rc;

	if (strlen(path) >= MIR_PATH_MAX)
		return hc_err_set(err, HC_EDATA, "path too long");
	pthread_mutex_lock(&v->mu);
	slot = v->stopping ? NULL : verify_slot_get(v, path, &owner);
	if (slot == NULL) {
		pthread_mutex_unlock(&v->mu);
		return hc_err_set(err, HC_EUNAVAIL, "too many verifications at once");
	}
	if (!owner) {
		slot->waiters++;
		slot->urgent = 1;
		pthread_cond_broadcast(&v->cv);
		while (!slot->done && !v->stopping)
			hc_cond_wait_ms(&v->cv, &v->mu, VERIFY_POLL_MS);
		rc = slot->done ? slot->result : hc_err_set(err, HC_EUNAVAIL, "stopping");
		if (slot->done && rc < 0)
			hc_err_set(err, rc, "%s: verification failed", path);
		slot->waiters--;
		pthread_mutex_unlock(&v->mu);
		return rc;
	}
	pthread_mutex_unlock(&v->mu);
	rc = verify_run(v, slot, paced, err);
	pthread_mutex_lock(&v->mu);
	slot->result = rc;
	slot->done = 1;
	slot->done_ms = hc_now_ms();
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	return rc;
}

int
mir_verify_path(struct mir_verify *v, const char *path, struct hc_err *err)
{
	atomic_fetch_add(&v->requests, 1);
	return verify_coalesced(v, path, 0, err);
}

/* Waits ms or until stopped or the rate changes. 1 when stopping. */
static int
verify_idle(struct mir_verify *v, int ms)
{
	int stop;

	pthread_mutex_lock(&v->mu);
	if (!v->stopping)
		hc_cond_wait_ms(&v->cv, &v->mu, ms);
	stop = v->stopping;
	pthread_mutex_unlock(&v->mu);
	return stop;
}

/* The scrubber: batches of the least recently verified files, forever. */
static void *
verify_scrubber(void *arg)
{
	struct mir_verify *v = arg;
	char (*paths)[MIR_PATH_MAX] = malloc(MIR_SCRUB_BATCH_MAX * sizeof(*paths));
	struct hc_err err = { 0, "" };
	size_t n, i;
	uint64_t rate;
	int rc;

	if (paths == NULL) {
		hc_log(HC_LOG_ERROR, "mirror", "scrubber: out of memory; not scrubbing");
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&v->mu);
		rate = v->rate;
		pthread_mutex_unlock(&v->mu);
		n = rate > 0 ? mir_store_scrub_batch(v->store, paths, MIR_SCRUB_BATCH_MAX) : 0;
		if (n == 0 && verify_idle(v, VERIFY_IDLE_MS))
			break;
		for (i = 0; i < n; i++) {
			pthread_mutex_lock(&v->mu);
			rate = v->rate;
			pthread_mutex_unlock(&v->mu);
			if (rate == 0)
				break;  /* turned off by a reload */
			rc = verify_coalesced(v, paths[i], 1, &err);
			if (rc == HC_EUNAVAIL && verify_idle(v, 0))
				goto done;
			if (rc < 0 && rc != HC_EUNAVAIL)
				hc_log(HC_LOG_WARN, "mirror", "scrub %s: %s", paths[i], err.msg);
		}
	}
done:
	free(paths);
	return NULL;
}

int
mir_verify_start(struct mir_store *st, uint64_t scrub_rate, struct mir_verify **out,
                 struct hc_err *err)
{
	struct mir_verify *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (v == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	v->clients = calloc(MIR_VERIFY_CLIENTS_MAX, sizeof(*v->clients));
	if (v->clients == NULL) {
		free(v);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	v->store = st;
	v->rate = scrub_rate;
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	if (pthread_create(&v->scrubber, NULL, verify_scrubber, v) != 0) {
		mir_verify_free(v);
		return hc_err_set(err, HC_ESOFTWARE, "cannot start the scrubber thread");
	}
	v->scrubber_started = 1;
	*out = v;
	return 0;
}

void
mir_verify_stop(struct mir_verify *v)
{
	if (v == NULL)
		return;
	pthread_mutex_lock(&v->mu);
	v->stopping = 1;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	if (v->scrubber_started)
		pthread_join(v->scrubber, NULL);
	v->scrubber_started = 0;
}

void
mir_verify_free(struct mir_verify *v)
{
	if (v == NULL)
		return;
	mir_verify_stop(v);
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
	free(v->clients);
	free(v);
}

void
mir_verify_set_rate(struct mir_verify *v, uint64_t scrub_rate)
{
	pthread_mutex_lock(&v->mu);
	v->rate = scrub_rate;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

int
mir_verify_admit(struct mir_verify *v, const char *addr)
{
	struct verify_client *c = NULL;
	int64_t now = hc_now_ms();
	size_t i, oldest = 0;
	int ok;

	pthread_mutex_lock(&v->mu);
	for (i = 0; i < v->nclients; i++) {
		if (strcmp(v->clients[i].addr, addr) == 0) {
			c = &v->clients[i];
			break;
		}
		if (v->clients[i].last_ms < v->clients[oldest].last_ms)
			oldest = i;
	}
	if (c == NULL) {
		c = v->nclients < MIR_VERIFY_CLIENTS_MAX ? &v->clients[v->nclients++] :
		    &v->clients[oldest];
		hc_strlcpy(c->addr, addr, sizeof(c->addr));
		c->tokens = MIR_VERIFY_BURST;
		c->last_ms = now;
	}
	c->tokens += (double)(now - c->last_ms) / MIR_VERIFY_REFILL_MS;
	if (c->tokens > MIR_VERIFY_BURST)
		c->tokens = MIR_VERIFY_BURST;
	c->last_ms = now;
	ok = c->tokens >= 1.0;
	if (ok)
		c->tokens -= 1.0;
	pthread_mutex_unlock(&v->mu);
	return ok;
}

void
mir_verify_stats(struct mir_verify *v, struct mir_verify_stats *out)
{
	out->scrubbed_bytes = atomic_load(&v->scrubbed);
	out->verifications = atomic_load(&v->verifications);
	out->requests = atomic_load(&v->requests);
}
