/*
 * Parked connections (park.h). One lock guards everything here: the
 * producers' wait lists, the timer heap (every parked connection is in it,
 * since every wait is bounded) and the worker queue. Resumes happen under
 * that lock, and a wait leaves every structure before its resume, so a
 * connection is never resumed twice for one suspension nor after its
 * response was freed.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/park.h"

/* Parked connections at most: far beyond max_connections' largest sane
 * value, and a bound on the heap's memory. */
#define PARK_MAX ((size_t)1 << 20)
/* Set-up jobs waiting for a worker at most; past it a request is answered
 * 503 by its caller instead of queueing without end. */
#define PARK_QUEUE_MAX 4096
/* The timer thread looks at least this often (when nothing is parked). */
#define PARK_IDLE_MS 1000

struct park_job {
	struct park_job *next;
	struct MHD_Connection *c;
	void (*fn)(void *);
	void *arg;
};

struct mir_park {
	pthread_mutex_t mu;
	pthread_cond_t timer_cv;        /* an earlier due time, or stop */
	pthread_cond_t work_cv;         /* a job queued, or stop */
	struct mir_park_wait **heap;    /* 1-based min-heap on due_ms */
	size_t n, cap;
	struct park_job *head, *tail;
	size_t queued;
	int stopping;
	pthread_t timer;
	int timer_started;
	pthread_t *workers;
	unsigned nworkers;
};

/* ------------------------------------------------------------ the heap */

static void
park_heap_set(struct mir_park *p, size_t i, struct mir_park_wait *w)
{
	p->heap[i] = w;
	w->slot = i;
}

static void
park_heap_up(struct mir_park *p, size_t i)
{
	struct mir_park_wait *w = p->heap[i];

	while (i > 1 && p->heap[i / 2]->due_ms > w->due_ms) {
		park_heap_set(p, i, p->heap[i / 2]);
		i /= 2;
	}
	park_heap_set(p, i, w);
}

static void
park_heap_down(struct mir_park *p, size_t i)
{
	struct mir_park_wait *w = p->heap[i];
	size_t k;

	for (;;) {
		k = 2 * i;
		if (k > p->n)
			break;
		if (k < p->n && p->heap[k + 1]->due_ms < p->heap[k]->due_ms)
			k++;
		if (p->heap[k]->due_ms >= w->due_ms)
			break;
		park_heap_set(p, i, p->heap[k]);
		i = k;
	}
	park_heap_set(p, i, w);
}

/* Takes w out of the heap and off its list. Caller holds p->mu. */
static void
park_unlink(struct mir_park *p, struct mir_park_wait *w)
{
	struct mir_park_wait **pp, *last;
	size_t i = w->slot;

	if (i == 0)
		return;
	last = p->heap[p->n];
	p->n--;
	if (i <= p->n) {
		/* The last one takes the hole, then moves up or down. */
		park_heap_set(p, i, last);
		park_heap_up(p, i);
		park_heap_down(p, last->slot);
	}
	w->slot = 0;
	for (pp = w->list; pp != NULL && *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->list = NULL;
	w->next = NULL;
}

/* Takes w out and resumes its connection. Caller holds p->mu. */
static void
park_fire(struct mir_park *p, struct mir_park_wait *w)
{
	park_unlink(p, w);
	MHD_resume_connection(w->c);
}

/* ------------------------------------------------------------ threads */

static void *
park_timer(void *arg)
{
	struct mir_park *p = arg;
	int64_t now, wait;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		now = hc_now_ms();
		while (p->n > 0 && p->heap[1]->due_ms <= now)
			park_fire(p, p->heap[1]);
		wait = p->n > 0 ? p->heap[1]->due_ms - now : PARK_IDLE_MS;
		if (wait > PARK_IDLE_MS)
			wait = PARK_IDLE_MS;
		hc_cond_wait_ms(&p->timer_cv, &p->mu, (int)(wait > 0 ? wait : 1));
	}
	while (p->n > 0)
		park_fire(p, p->heap[1]);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void *
park_worker(void *arg)
{
	struct mir_park *p = arg;
	struct park_job *job;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->work_cv, &p->mu);
		job = p->head;
		if (job == NULL)
			break;  /* stopping with nothing left */
		p->head = job->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->mu);
		job->fn(job->arg);
		MHD_resume_connection(job->c);
		free(job);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ------------------------------------------------------------ interface */

int
mir_park_start(unsigned workers, struct mir_park **out, struct hc_err *err)
{
	struct mir_park *p = calloc(1, sizeof(*p));
	unsigned i;

	*out = NULL;
	if (p == NULL)
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->timer_cv, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	p->workers = calloc(workers, sizeof(*p->workers));
	if (p->workers == NULL) {
		mir_park_free(p);
		return hc_err_set(err, HC_ENOMEM, "out of memory");
	}
	if (pthread_create(&p->timer, NULL, park_timer, p) != 0)
		goto fail;
	p->timer_started = 1;
	for (i = 0; i < workers; i++) {
		if (pthread_create(&p->workers[i], NULL, park_worker, p) != 0)
			goto fail;
		p->nworkers++;
	}
	*out = p;
	return 0;
fail:
	mir_park_stop(p);
	mir_park_free(p);
	return hc_err_set(err, HC_ESOFTWARE, "cannot start the connection park's threads");
}

void
mir_park_stop(struct mir_park *p)
{
	unsigned i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->timer_cv);
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	if (p->timer_started)
		pthread_join(p->timer, NULL);
	p->timer_started = 0;
	for (i = 0; i < p->nworkers; i++)
		pthread_join(p->workers[i], NULL);
	p->nworkers = 0;
}

void
mir_park_free(struct mir_park *p)
{
	if (p == NULL)
		return;
	free(p->heap);
	free(p->workers);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->timer_cv);
	pthread_cond_destroy(&p->work_cv);
	free(p);
}

void
mir_park_wait_init(struct mir_park_wait *w)
{
	memset(w, 0, sizeof(*w));
}

int
mir_park_suspend(struct mir_park *p, struct mir_park_wait *w, struct MHD_Connection *c,
                 struct mir_park_wait **list, int64_t ms)
{
	int rc = -1;

	pthread_mutex_lock(&p->mu);
	if (p->stopping || w->slot != 0 ||
	    hc_array_reserve((void **)&p->heap, &p->cap, p->n + 2, sizeof(*p->heap),
	                     PARK_MAX + 1) != 0)
		goto done;
	MHD_suspend_connection(c);
	w->c = c;
	w->due_ms = hc_now_ms() + ms;
	w->list = list;
	w->next = NULL;
	if (list != NULL) {
		w->next = *list;
		*list = w;
	}
	p->n++;
	park_heap_set(p, p->n, w);
	park_heap_up(p, p->n);
	if (w->slot == 1)
		pthread_cond_signal(&p->timer_cv);
	rc = 0;
done:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void
mir_park_wake(struct mir_park *p, struct mir_park_wait **list)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	while (*list != NULL)
		park_fire(p, *list);
	pthread_mutex_unlock(&p->mu);
}

void
mir_park_cancel(struct mir_park *p, struct mir_park_wait *w)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	park_unlink(p, w);
	pthread_mutex_unlock(&p->mu);
}

int
mir_park_offload(struct mir_park *p, struct MHD_Connection *c, void (*fn)(void *),
                 void *arg)
{
	struct park_job *job = malloc(sizeof(*job));
	int rc = -1;

	if (job == NULL)
		return -1;
	job->next = NULL;
	job->c = c;
	job->fn = fn;
	job->arg = arg;
	pthread_mutex_lock(&p->mu);
	if (!p->stopping && p->nworkers > 0 && p->queued < PARK_QUEUE_MAX) {
		MHD_suspend_connection(c);
		if (p->tail != NULL)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		p->queued++;
		pthread_cond_signal(&p->work_cv);
		job = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&p->mu);
	free(job);
	return rc;
}
