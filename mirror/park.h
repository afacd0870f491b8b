/*
 * Private to mirror/: parking connections of libmicrohttpd's epoll thread
 * pool (park.c). A pool thread never blocks: a content reader with no bytes
 * to send suspends its connection on a wait (woken by the producer of the
 * bytes or by a timer), and set-up work that must block (origin round
 * trips, long polls, hashing) runs on a small worker pool while the
 * connection is suspended. It sees connections only, never requests.
 *
 * Order: a connection is suspended first, then put on a producer's list
 * under the producer's own lock; the producer wakes the list under that
 * same lock, so a resume never comes before its suspend.
 */
#ifndef MIRROR_PARK_H
#define MIRROR_PARK_H

#include <microhttpd.h>

#include "mirror/mirror.h"

struct mir_park;

/* One parked connection: lives in the reader state of a response (or the
 * request) and is parked at most once at a time. Set up with
 * mir_park_wait_init; opaque to its users. */
struct mir_park_wait {
	struct mir_park_wait *next;     /* on the producer's list */
	struct mir_park_wait **list;    /* that list's head, or NULL */
	struct MHD_Connection *c;
	int64_t due_ms;
	size_t slot;                    /* in the timer heap; 0: not parked */
};

/* Starts the timer thread and workers worker threads.
 * 0 or HC_ENOMEM / HC_ESOFTWARE. */
int mir_park_start(unsigned workers, struct mir_park **out, struct hc_err *err);
/* Resumes every parked connection and refuses to park more, lets the
 * workers finish their queue, and joins every thread. Call before
 * MHD_stop_daemon. NULL is a no-op. */
void mir_park_stop(struct mir_park *p);
/* After mir_park_stop and once no producer wakes anymore. */
void mir_park_free(struct mir_park *p);

void mir_park_wait_init(struct mir_park_wait *w);
/* Suspends c (from its access handler or content reader) and parks w on
 * *list (list NULL: the timer only) until mir_park_wake(list) or ms
 * elapsed, whichever comes first: then c is resumed and the caller is
 * called again. The caller holds the lock that guards what list waits for.
 * 0, or -1 when the park is stopping (c is not suspended: fail it). */
int mir_park_suspend(struct mir_park *p, struct mir_park_wait *w, struct MHD_Connection *c,
                     struct mir_park_wait **list, int64_t ms);
/* Resumes every connection parked on *list; caller holds the producer's
 * lock. p NULL is a no-op. */
void mir_park_wake(struct mir_park *p, struct mir_park_wait **list);
/* Takes w off its list and the timer without resuming (its response is
 * being freed). A no-op when w is not parked. */
void mir_park_cancel(struct mir_park *p, struct mir_park_wait *w);
/* Suspends c and runs fn(arg) on a worker, then resumes c: the access
 * handler is called again and answers with what fn prepared. 0, or -1
 * when the queue is full or the park stopping (c is not suspended). */
int mir_park_offload(struct mir_park *p, struct MHD_Connection *c, void (*fn)(void *),
                     void *arg);

#endif
