/* store-bench: the mirror's store alone, for bench/store.sh.
 *
 *   store-bench DIR N
 *
 * Builds a peer store in DIR with N entries recorded without file data
 * (mir_store_record) plus STORE_BENCH_REAL small real files, then measures
 * with the real store code: a hit (get with touch, release) on the real
 * files, an eviction (reserve that evicts the oldest entry, then a new
 * record in its place), a restart (close, then open replaying the index),
 * a restart after a crash (a torn last record), the compaction that
 * rewrites the index after it (the first flush) with the slowest hit made
 * meanwhile by another thread, and the process's peak RSS. Prints one line
 * of key=value pairs. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mirror/mirror.h"

/* Real files the hits go to: enough to leave the CPU caches, few enough to
 * create in a moment. */
#define STORE_BENCH_REAL 1000
/* Operations are timed in rounds and the fastest round counts: the machine
 * is shared, and a slower round measures the neighbours, not the store. */
#define STORE_BENCH_ROUNDS 9
#define STORE_BENCH_HITS 40000
#define STORE_BENCH_EVICTIONS 20000
/* Bytes each recorded entry claims. */
#define STORE_BENCH_SIZE 1000
/* Operations between flushes: a server flushes about once a second. */
#define STORE_BENCH_FLUSH_EVERY 10000
#define STORE_BENCH_SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* The time of clock in ns. */
static int64_t
clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* A field of /proc/self/status in KiB, 0 when absent. */
static long
status_kib(const char *key)
{
	char line[256];
	long v = 0;
	size_t n = strlen(key);
	FILE *fp = fopen("/proc/self/status", "r");

	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(fp);
	return v;
}

/* Time spent in flushes, kept apart from the operations' own cost (a
 * server flushes once a second whatever the rate). */
static int64_t flush_ns;

static int
flush_now(struct mir_store *st, struct hc_err *err)
{
	int64_t t0 = now_ns();
	int rc = mir_store_flush(st, err);

	flush_ns += now_ns() - t0;
	return rc;
}

static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int
fail(const char *what, const struct hc_err *err)
{
	fprintf(stderr, "store-bench: %s: %s\n", what, err->msg);
	return 1;
}

/* Creates the real files under root/files/r/ before the store opens. */
static int
make_real(const char *root)
{
	char path[PATH_MAX];
	unsigned i;

	if (hc_snprintf(path, sizeof(path), "%s/files/r", root) != 0 ||
	    (mkdir(path, 0755) != 0 && access(path, F_OK) != 0))
		return 1;
	for (i = 0; i < STORE_BENCH_REAL; i++) {
		int fd;
		if (hc_snprintf(path, sizeof(path), "%s/files/r/%04u", root, i) != 0)
			return 1;
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || hc_write_all(fd, "x", 1) != 0)
			return 1;
		close(fd);
	}
	return 0;
}

/* A get with touch and its release on real file i. */
static int
hit(struct mir_store *st, unsigned i, int touch, struct mir_file *keep, struct hc_err *err)
{
	char path[32];
	struct mir_file f;
	int rc;

	snprintf(path, sizeof(path), "r/%04u", i);
	rc = mir_store_get(st, path, touch, &f, err);
	if (rc != 0)
		return rc;
	close(f.fd);
	if (keep != NULL)
		*keep = f;
	else
		mir_store_release(st, f.entry);
	return 0;
}

/* Records the real files with the digest of their one byte: their first
 * get checks them (a peer trusts no file without a record). */
static int
record_real(struct mir_store *st, struct hc_err *err)
{
	char path[32], hex[HC_SHA256_HEX_LEN + 1];
	struct hc_sha256 *h = hc_sha256_new();
	unsigned i;
	int rc;

	if (h == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	rc = hc_sha256_update(h, "x", 1);
	if (rc == 0)
		rc = hc_sha256_hex(h, hex);
	hc_sha256_free(h);
	for (i = 0; i < STORE_BENCH_REAL && rc == 0; i++) {
		snprintf(path, sizeof(path), "r/%04u", i);
		rc = mir_store_record(st, path, 1, hex, 0, err);
	}
	return rc;
}

static int
record_all(struct mir_store *st, unsigned long n, struct hc_err *err)
{
	char path[32];
	unsigned long i;

	if (record_real(st, err) != 0)
		return 1;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "d/%03lu/f%07lu", i % 1000, i);
		if (mir_store_record(st, path, STORE_BENCH_SIZE, STORE_BENCH_SHA, 0, err) != 0)
			return 1;
		if (i % STORE_BENCH_FLUSH_EVERY == 0 && mir_store_flush(st, err) != 0)
			return 1;
	}
	return mir_store_flush(st, err) != 0;
}

/* One operation of a round; ctx is the round's state. */
typedef int (*bench_op)(struct mir_store *st, void *ctx, struct hc_err *err);

/* The fastest of STORE_BENCH_ROUNDS rounds of ops operations, in ns per
 * operation, the flushes made every STORE_BENCH_FLUSH_EVERY left out (their
 * time stays in flush_ns for the last round); -1 on error. */
static double
best_round(struct mir_store *st, unsigned ops, bench_op op, void *ctx, struct hc_err *err)
{
	double best = -1, t;
	int64_t t0;
	unsigned round, i;

	for (round = 0; round < STORE_BENCH_ROUNDS; round++) {
		if (mir_store_flush(st, err) != 0)
			return -1;
		flush_ns = 0;
		t0 = now_ns();
		for (i = 1; i <= ops; i++) {
			if (op(st, ctx, err) != 0)
				return -1;
			if (i % STORE_BENCH_FLUSH_EVERY == 0 && flush_now(st, err) != 0)
				return -1;
		}
		t = (double)(now_ns() - t0 - flush_ns) / ops;
		if (best < 0 || t < best)
			best = t;
	}
	return best;
}

/* A hit on a random real file; ctx: the random state. */
static int
hit_op(struct mir_store *st, void *ctx, struct hc_err *err)
{
	return hit(st, (unsigned)(next_rand(ctx) % STORE_BENCH_REAL), 1, NULL, err);
}

static double
bench_hits(struct mir_store *st, struct hc_err *err)
{
	uint64_t seed = 88172645463325252ULL;
	unsigned i;

	for (i = 0; i < STORE_BENCH_REAL; i++)  /* checks them */
		if (hit(st, i, 1, NULL, err) != 0)
			return -1;
	return best_round(st, STORE_BENCH_HITS, hit_op, &seed, err);
}

/* An eviction and a new record in its place; ctx: the next record's number. */
static int
evict_op(struct mir_store *st, void *ctx, struct hc_err *err)
{
	unsigned *next = ctx;
	char path[32];

	if (mir_store_reserve(st, STORE_BENCH_SIZE) != 0)
		return hc_err_set(err, HC_EIO, "reserve failed");
	snprintf(path, sizeof(path), "n/%07u", (*next)++);
	return mir_store_record(st, path, STORE_BENCH_SIZE, STORE_BENCH_SHA, STORE_BENCH_SIZE,
	                        err);
}

/* Evictions with the real files pinned, so that only recorded entries go. */
static double
bench_evictions(struct mir_store *st, struct hc_err *err)
{
	static struct mir_file pinned[STORE_BENCH_REAL];
	struct mir_store_stats stats;
	double best;
	unsigned i, next = 0;

	for (i = 0; i < STORE_BENCH_REAL; i++)
		if (hit(st, i, 0, &pinned[i], err) != 0)
			return -1;
	best = best_round(st, STORE_BENCH_EVICTIONS, evict_op, &next, err);
	for (i = 0; i < STORE_BENCH_REAL; i++)
		mir_store_release(st, pinned[i].entry);
	if (best < 0)
		return -1;
	mir_store_stats(st, &stats);
	if (stats.evictions < (uint64_t)STORE_BENCH_ROUNDS * STORE_BENCH_EVICTIONS) {
		hc_err_set(err, HC_ESOFTWARE, "only %" PRIu64 " evictions", stats.evictions);
		return -1;
	}
	return best;
}

/* Hits made by a second thread while a compaction runs. */
struct hitter {
	struct mir_store *st;
	atomic_int stop;
	int64_t slowest_ns;
	int failed;
};

static void *
hitter_main(void *arg)
{
	struct hitter *h = arg;
	struct hc_err err = { 0, "" };
	uint64_t seed = 2463534242ULL;

	while (!atomic_load(&h->stop)) {
		int64_t t0 = now_ns(), t;

		if (hit_op(h->st, &seed, &err) != 0) {
			h->failed = 1;
			break;
		}
		t = now_ns() - t0;
		if (t > h->slowest_ns)
			h->slowest_ns = t;
	}
	return NULL;
}

/* Times a flush that compacts, with hits going on in another thread; the
 * slowest of those hits goes to *slowest_ns. */
static int64_t
timed_compaction(struct mir_store *st, int64_t *slowest_ns, struct hc_err *err)
{
	struct hitter h = { st, 0, 0, 0 };
	pthread_t t;
	int64_t t0;
	int rc;

	if (pthread_create(&t, NULL, hitter_main, &h) != 0)
		return hc_err_set(err, HC_ESOFTWARE, "cannot start a thread");
	t0 = now_ns();
	rc = mir_store_flush(st, err);
	t0 = now_ns() - t0;
	atomic_store(&h.stop, 1);
	pthread_join(t, NULL);
	*slowest_ns = h.slowest_ns;
	if (rc == 0 && h.failed)
		rc = hc_err_set(err, HC_EIO, "a hit failed during the compaction");
	return rc != 0 ? rc : t0;
}

/* Leaves a torn record at the end of the index, as a crash would. */
static int
tear_index(const char *index)
{
	FILE *fp = fopen(index, "a");

	if (fp == NULL)
		return 1;
	fputs("T torn", fp);
	return fclose(fp) != 0;
}

/* CPU time of this thread in ns: on a shared machine, wall time also
 * counts the neighbours. */
static int64_t
cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* Opens the store at root; the wall time of the open in ns, its CPU time
 * in *cpu. */
static int64_t
timed_open(const char *root, uint64_t max_bytes, struct mir_store **st, int64_t *cpu,
           struct hc_err *err)
{
	int64_t t0 = now_ns(), c0 = cpu_ns();

	if (mir_store_open(root, max_bytes, 1, st, err) != 0)
		return -1;
	*cpu = cpu_ns() - c0;
	return now_ns() - t0;
}

int
main(int argc, char **argv)
{
	struct mir_store *st = NULL;
	struct mir_store_stats stats;
	struct hc_err err = { 0, "" };
	char files[PATH_MAX], index[PATH_MAX];
	unsigned long n;
	double hit_ns, evict_ns;
	int64_t hit_flush, evict_flush;
	int64_t restart_ns, torn_ns, compact_ns, slowest_ns = 0, restart_cpu = 0, torn_cpu;
	uint64_t max_bytes;
	struct stat sb;

	if (argc != 3 || (n = strtoul(argv[2], NULL, 10)) == 0) {
		fprintf(stderr, "usage: store-bench DIR N\n");
		return 64;
	}
	if (hc_log_open(NULL, HC_LOG_ERROR, 1, &err) != 0)
		return fail("log", &err);
	if (hc_snprintf(files, sizeof(files), "%s/files", argv[1]) != 0 ||
	    hc_snprintf(index, sizeof(index), "%s/meta/index", argv[1]) != 0 ||
	    hc_mkdir_p(files, 0755, &err) != 0 || make_real(argv[1]) != 0)
		return fail("set-up", &err);
	if (mir_store_open(argv[1], 0, 1, &st, &err) != 0 || record_all(st, n, &err) != 0)
		return fail("build", &err);
	hit_ns = bench_hits(st, &err);
	if (hit_ns < 0)
		return fail("hits", &err);
	hit_flush = flush_ns;
	mir_store_close(st);
	/* Reopened at capacity: from here each reservation evicts one entry. */
	st = NULL;
	max_bytes = (uint64_t)n * STORE_BENCH_SIZE + STORE_BENCH_REAL;
	restart_ns = timed_open(argv[1], max_bytes, &st, &restart_cpu, &err);
	if (restart_ns < 0)
		return fail("restart", &err);
	mir_store_stats(st, &stats);
	evict_ns = bench_evictions(st, &err);
	if (evict_ns < 0)
		return fail("evictions", &err);
	evict_flush = flush_ns;
	mir_store_close(st);
	st = NULL;
	if (tear_index(index) != 0) {
		hc_err_set(&err, HC_EIO, "cannot append to %s", index);
		return fail("tear", &err);
	}
	torn_ns = timed_open(argv[1], max_bytes, &st, &torn_cpu, &err);
	if (torn_ns < 0)
		return fail("restart after a torn record", &err);
	compact_ns = timed_compaction(st, &slowest_ns, &err);
	if (compact_ns < 0)
		return fail("compaction", &err);
	mir_store_close(st);
	printf("n=%lu files=%" PRIu64 " hit_ns=%.0f evict_ns=%.0f hit_flush_ns=%.0f "
	       "evict_flush_ns=%.0f restart_ms=%.0f restart_cpu_ms=%.0f torn_restart_ms=%.0f "
	       "compact_ms=%.0f compact_slowest_hit_us=%.0f rss_mib=%.1f index_mib=%.1f\n", n,
	       stats.files, hit_ns, evict_ns, (double)hit_flush / STORE_BENCH_HITS,
	       (double)evict_flush / STORE_BENCH_EVICTIONS,
	       (double)restart_ns / 1e6, (double)restart_cpu / 1e6, (double)torn_ns / 1e6,
	       (double)compact_ns / 1e6, (double)slowest_ns / 1e3,
	       (double)status_kib("VmHWM") / 1024,
	       stat(index, &sb) == 0 ? (double)sb.st_size / (1 << 20) : 0.0);
	return 0;
}
