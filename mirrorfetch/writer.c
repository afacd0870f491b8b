/*
 * The part-file writer: the network thread copies what it receives into a
 * bounded ring of large buffers; a writer thread pwrites each buffer and a
 * hasher thread feeds the same buffer to SHA-256, so hashing, the copy into
 * the page cache and the transfer all overlap. A buffer is reused once both
 * have passed it. Bytes are written and hashed in the order they were pushed.
 *
 * libcurl hands its write callback at most 16 KiB at a time; the ring fills
 * a buffer with many of them before handing it on, so the threads meet once
 * per WRITER_SLOT_SIZE bytes, not once per callback (issue 18: one wake-up
 * per 16 KiB cost more than the hashing).
 *
 * Write-back: every WRITER_WRITEBACK_EVERY bytes the new window is handed to
 * the kernel (SYNC_FILE_RANGE_WRITE), and the window before it, written back
 * by then, is waited for and dropped from the page cache, so the final
 * fdatasync has at most two windows left and a multi-gigabyte install does
 * not push everything else out of the cache.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirrorfetch/mirrorfetch.h"

/* One pwrite and one hash update per slot; the ring bounds memory at
 * WRITER_SLOTS * WRITER_SLOT_SIZE (2 MiB), inside the 16 MiB RSS target
 * with room for libcurl and TLS. */
#define WRITER_SLOT_SIZE (256 * 1024)
#define WRITER_SLOTS 8
/* The write-back window: large enough that the disk sees long runs, small
 * enough that the dirty pages of one install stay a small share of memory. */
#define WRITER_WRITEBACK_EVERY (32 * 1024 * 1024)

struct writer_slot {
	char *data;
	size_t len;
};

/* A consumer thread: the writer or the hasher. done counts the slots it has
 * finished; it works on slot done % WRITER_SLOTS while done < published. */
struct writer_consumer {
	struct mf_writer *w;
	pthread_t thread;
	int started;
	uint64_t done;
	int (*work)(struct mf_writer *w, const struct writer_slot *s);
};

struct mf_writer {
	int fd;
	struct hc_sha256 *hash;
	uint64_t offset;          /* where the writer puts its next byte */
	uint64_t wb_from;         /* first byte not yet handed to write-back */
	uint64_t drop_from;       /* first byte not yet waited for and dropped */
	pthread_mutex_t lock;
	pthread_cond_t work;      /* a slot was published, or stopping */
	pthread_cond_t space;     /* a consumer finished a slot, or failed */
	struct writer_slot slots[WRITER_SLOTS];
	uint64_t published;       /* slots handed to the consumers */
	size_t fill;              /* bytes in slot published % WRITER_SLOTS, not yet handed on */
	struct writer_consumer writer, hasher;
	int stopping;
	int error;                /* errno of the first failure, sticky */
};

/* Called by the writer thread only: hands the newest full window to the
 * kernel and retires the one before it. Only hints: a filesystem without
 * them still gets the final fdatasync, which is what makes the file durable. */
static void
writer_writeback(struct mf_writer *w)
{
	if (w->offset - w->wb_from < WRITER_WRITEBACK_EVERY)
		return;
	if (w->wb_from > w->drop_from) {
		(void)sync_file_range(w->fd, (off_t)w->drop_from, (off_t)(w->wb_from - w->drop_from),
		                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
		                      SYNC_FILE_RANGE_WAIT_AFTER);
		(void)posix_fadvise(w->fd, (off_t)w->drop_from, (off_t)(w->wb_from - w->drop_from),
		                    POSIX_FADV_DONTNEED);
		w->drop_from = w->wb_from;
	}
	(void)sync_file_range(w->fd, (off_t)w->wb_from, (off_t)(w->offset - w->wb_from),
	                      SYNC_FILE_RANGE_WRITE);
	w->wb_from = w->offset;
}

static int
writer_write(struct mf_writer *w, const struct writer_slot *s)
{
	const char *p = s->data;
	size_t left = s->len;

	while (left > 0) {
		ssize_t n = pwrite(w->fd, p, left, (off_t)w->offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		p += n;
		left -= (size_t)n;
		w->offset += (uint64_t)n;
	}
	writer_writeback(w);
	return 0;
}

static int
writer_hash(struct mf_writer *w, const struct writer_slot *s)
{
	return hc_sha256_update(w->hash, s->data, s->len) != 0 ? EIO : 0;
}

static void *
writer_consume(void *arg)
{
	struct writer_consumer *c = arg;
	struct mf_writer *w = c->w;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		const struct writer_slot *s;
		int rc, failed;

		while (c->done == w->published && !w->stopping)
			pthread_cond_wait(&w->work, &w->lock);
		if (c->done == w->published)
			break;
		s = &w->slots[c->done % WRITER_SLOTS];
		failed = w->error;
		pthread_mutex_unlock(&w->lock);
		/* After a failure the rest is drained untouched: the part is void. */
		rc = failed == 0 ? c->work(w, s) : 0;
		pthread_mutex_lock(&w->lock);
		if (rc != 0 && w->error == 0)
			w->error = rc;
		c->done++;
		pthread_cond_broadcast(&w->space);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Called with the lock held: the slot the producer may fill is free once
 * both consumers are past it. */
static int
writer_room(const struct mf_writer *w)
{
	uint64_t oldest = w->writer.done < w->hasher.done ? w->writer.done : w->hasher.done;

	return w->published - oldest < WRITER_SLOTS;
}

/* Called with the lock held: hands the slot being filled to the consumers. */
static void
writer_publish(struct mf_writer *w)
{
	w->slots[w->published % WRITER_SLOTS].len = w->fill;
	w->published++;
	w->fill = 0;
	pthread_cond_broadcast(&w->work);
}

static int
writer_start(struct mf_writer *w, struct writer_consumer *c,
             int (*work)(struct mf_writer *, const struct writer_slot *))
{
	c->w = w;
	c->work = work;
	if (pthread_create(&c->thread, NULL, writer_consume, c) != 0)
		return -1;
	c->started = 1;
	return 0;
}

int
mf_writer_new(int fd, struct hc_sha256 *hash, uint64_t offset, struct mf_writer **out,
              struct hc_err *err)
{
	struct mf_writer *w = calloc(1, sizeof(*w));
	size_t i;

	*out = NULL;
	if (w == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	w->fd = fd;
	w->hash = hash;
	w->offset = offset;
	w->wb_from = offset;
	w->drop_from = offset;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->space, NULL);
	for (i = 0; i < WRITER_SLOTS; i++) {
		w->slots[i].data = malloc(WRITER_SLOT_SIZE);
		if (w->slots[i].data == NULL) {
			mf_writer_free(w);
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		}
	}
	if (writer_start(w, &w->writer, writer_write) != 0 ||
	    writer_start(w, &w->hasher, writer_hash) != 0) {
		mf_writer_free(w);
		return hc_err_set(err, HC_ESOFTWARE, "cannot start the writer threads");
	}
	*out = w;
	return 0;
}

/* The copy into the slot happens without the lock: the slot being filled is
 * the producer's alone until it is published. */
int
mf_writer_push(struct mf_writer *w, const void *data, size_t len)
{
	const char *p = data;
	int rc;

	pthread_mutex_lock(&w->lock);
	while (len > 0 && w->error == 0) {
		size_t take;

		while (!writer_room(w) && w->error == 0)
			pthread_cond_wait(&w->space, &w->lock);
		if (w->error != 0)
			break;
		take = WRITER_SLOT_SIZE - w->fill;
		if (take > len)
			take = len;
		pthread_mutex_unlock(&w->lock);
		memcpy(w->slots[w->published % WRITER_SLOTS].data + w->fill, p, take);
		pthread_mutex_lock(&w->lock);
		w->fill += take;
		p += take;
		len -= take;
		if (w->fill == WRITER_SLOT_SIZE)
			writer_publish(w);
	}
	rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int
mf_writer_flush(struct mf_writer *w)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	if (w->fill > 0 && w->error == 0) {
		while (!writer_room(w) && w->error == 0)
			pthread_cond_wait(&w->space, &w->lock);
		if (w->error == 0)
			writer_publish(w);
	}
	if (w->error != 0)
		w->fill = 0;
	while (w->writer.done < w->published || w->hasher.done < w->published)
		pthread_cond_wait(&w->space, &w->lock);
	rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void
mf_writer_rewind(struct mf_writer *w, uint64_t offset)
{
	pthread_mutex_lock(&w->lock);
	w->offset = offset;
	w->wb_from = offset;
	w->drop_from = offset;
	pthread_mutex_unlock(&w->lock);
}

void
mf_writer_free(struct mf_writer *w)
{
	size_t i;

	if (w == NULL)
		return;
	/* Bytes still in the slot being filled are written like the rest. */
	if (w->writer.started && w->hasher.started)
		(void)mf_writer_flush(w);
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_broadcast(&w->work);
	pthread_mutex_unlock(&w->lock);
	if (w->writer.started)
		pthread_join(w->writer.thread, NULL);
	if (w->hasher.started)
		pthread_join(w->hasher.thread, NULL);
	for (i = 0; i < WRITER_SLOTS; i++)
		free(w->slots[i].data);
	pthread_cond_destroy(&w->space);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
