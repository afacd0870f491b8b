/*
 * The part-file writer: a second thread writes and hashes what the network
 * thread receives, so SHA-256 and the copy into the page cache overlap with
 * the transfer instead of following it. Bytes are written and hashed in the
 * order they were pushed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirrorfetch/mirrorfetch.h"

/* A slot holds one receive buffer's worth; the ring bounds memory at
 * WRITER_SLOTS * WRITER_SLOT_SIZE (4 MiB), well inside the RSS target. */
#define WRITER_SLOT_SIZE (256 * 1024)
#define WRITER_SLOTS 16
/* Start the kernel's writeback every so often, so the final fsync has
 * little left to do. */
#define WRITER_WRITEBACK_EVERY (32 * 1024 * 1024)

struct writer_slot {
	char *data;
	size_t len;
};

struct mf_writer {
	int fd;
	struct hc_sha256 *hash;
	uint64_t offset;          /* where the next written byte goes */
	uint64_t writeback_from;  /* first byte not yet handed to writeback */
	pthread_t thread;
	int thread_started;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct writer_slot slots[WRITER_SLOTS];
	size_t head, count;       /* ring: slots[head] is the oldest filled */
	int busy;                 /* the worker holds a slot it took out */
	int stopping;
	int error;                /* errno of the first failed write, sticky */
};

static void
writer_writeback(struct mf_writer *w)
{
	if (w->offset - w->writeback_from < WRITER_WRITEBACK_EVERY)
		return;
	/* Only a hint: a filesystem without it still gets the final fsync. */
	(void)sync_file_range(w->fd, (off_t)w->writeback_from,
	                      (off_t)(w->offset - w->writeback_from), SYNC_FILE_RANGE_WRITE);
	w->writeback_from = w->offset;
}

static int
writer_write(struct mf_writer *w, const char *p, size_t len)
{
	const char *start = p;
	size_t left = len;

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
	if (hc_sha256_update(w->hash, start, len) != 0)
		return EIO;
	writer_writeback(w);
	return 0;
}

static void *
writer_main(void *arg)
{
	struct mf_writer *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct writer_slot *s;
		int rc, failed;

		while (w->count == 0 && !w->stopping)
			pthread_cond_wait(&w->changed, &w->lock);
		if (w->count == 0 && w->stopping)
			break;
		s = &w->slots[w->head];
		w->busy = 1;
		failed = w->error;
		pthread_mutex_unlock(&w->lock);
		/* After a failure the rest is drained unwritten: the part is void. */
		rc = failed == 0 ? writer_write(w, s->data, s->len) : 0;
		pthread_mutex_lock(&w->lock);
		if (rc != 0 && w->error == 0)
			w->error = rc;
		w->head = (w->head + 1) % WRITER_SLOTS;
		w->count--;
		w->busy = 0;
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
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
	w->writeback_from = offset;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	for (i = 0; i < WRITER_SLOTS; i++) {
		w->slots[i].data = malloc(WRITER_SLOT_SIZE);
		if (w->slots[i].data == NULL) {
			mf_writer_free(w);
			return hc_err_set(err, HC_ENOMEM, "out of memory");
		}
	}
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		mf_writer_free(w);
		return hc_err_set(err, HC_ESOFTWARE, "cannot start the writer thread");
	}
	w->thread_started = 1;
	*out = w;
	return 0;
}

int
mf_writer_push(struct mf_writer *w, const void *data, size_t len)
{
	const char *p = data;
	int rc = 0;

	pthread_mutex_lock(&w->lock);
	while (len > 0 && w->error == 0) {
		size_t take = len < WRITER_SLOT_SIZE ? len : WRITER_SLOT_SIZE;
		struct writer_slot *s;

		while (w->count == WRITER_SLOTS && w->error == 0)
			pthread_cond_wait(&w->changed, &w->lock);
		if (w->error != 0)
			break;
		s = &w->slots[(w->head + w->count) % WRITER_SLOTS];
		memcpy(s->data, p, take);
		s->len = take;
		w->count++;
		pthread_cond_broadcast(&w->changed);
		p += take;
		len -= take;
	}
	if (w->error != 0)
		rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int
mf_writer_flush(struct mf_writer *w)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	while (w->count > 0 || w->busy)
		pthread_cond_wait(&w->changed, &w->lock);
	rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void
mf_writer_rewind(struct mf_writer *w, uint64_t offset)
{
	pthread_mutex_lock(&w->lock);
	w->offset = offset;
	w->writeback_from = offset;
	pthread_mutex_unlock(&w->lock);
}

void
mf_writer_free(struct mf_writer *w)
{
	size_t i;

	if (w == NULL)
		return;
	if (w->thread_started) {
		pthread_mutex_lock(&w->lock);
		w->stopping = 1;
		pthread_cond_broadcast(&w->changed);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	for (i = 0; i < WRITER_SLOTS; i++)
		free(w->slots[i].data);
	pthread_cond_destroy(&w->changed);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
