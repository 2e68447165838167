#include "config.h"

#include "work.h"
#include "load_sim.h"
#include "log.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORK_THREADS_DEFAULT_MAX 64

struct work_job {
	struct work_job *next;
	void *arg;
	double ms;
	double queued;  /* monotonic seconds */
	double wait_ms; /* set when it starts */
	double cpu_ms;  /* set by the thread */
};

struct work_list {
	struct work_job *head, *tail;
};

struct work_pool {
	struct ev_loop *loop;
	ev_async wake; /* a thread finished a job */
	work_wanted_fn wanted;
	work_done_fn done;
	void *ctx;
	int nthreads, max_in_flight;

	/* loop thread only */
	struct work_list waiting;
	int nwaiting, running;
	uint64_t ndone, refused, dropped;

	/* shared with the threads, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct work_list todo, finished;
	_Atomic int stop;
	pthread_t *threads;
	int started;
};

static double work_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void work_list_push(struct work_list *l, struct work_job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct work_job *work_list_pop(struct work_list *l)
{
	struct work_job *j = l->head;

	if (j) {
		l->head = j->next;
		if (!l->head)
			l->tail = NULL;
	}
	return j;
}

static void work_list_free(struct work_list *l)
{
	struct work_job *j;

	while ((j = work_list_pop(l)))
		free(j);
}

static void *work_thread(void *arg)
{
	struct work_pool *pool = arg;
	struct sched_param sp = {0};

	/* sched(7): SCHED_BATCH marks a CPU-bound thread, mildly disfavoured
	 * at wakeups, without lowering its share; the loop thread stays normal */
	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	pthread_mutex_lock(&pool->mu);
	for (;;) {
		struct work_job *j;

		while (!atomic_load(&pool->stop) && !pool->todo.head)
			pthread_cond_wait(&pool->cv, &pool->mu);
		if (atomic_load(&pool->stop))
			break;
		j = work_list_pop(&pool->todo);
		pthread_mutex_unlock(&pool->mu);
		j->cpu_ms = load_burn_ms(j->ms, &pool->stop);
		pthread_mutex_lock(&pool->mu);
		work_list_push(&pool->finished, j);
		ev_async_send(pool->loop, &pool->wake);
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* Hand waiting jobs to free threads, dropping those no longer wanted. */
static void work_dispatch(struct work_pool *pool)
{
	int handed = 0;

	while (pool->running < pool->nthreads && pool->waiting.head) {
		struct work_job *j = work_list_pop(&pool->waiting);

		pool->nwaiting--;
		j->wait_ms = (work_now() - j->queued) * 1000.0;
		if (!pool->wanted(pool->ctx, j->arg)) {
			pool->dropped++;
			pool->done(pool->ctx, j->arg, j->ms, -1, j->wait_ms);
			free(j);
			continue;
		}
		pool->running++;
		pthread_mutex_lock(&pool->mu);
		work_list_push(&pool->todo, j);
		pthread_mutex_unlock(&pool->mu);
		handed++;
	}
	if (handed == 1)
		pthread_cond_signal(&pool->cv);
	else if (handed > 1)
		pthread_cond_broadcast(&pool->cv);
}

static void work_on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	struct work_pool *pool = w->data;
	struct work_list fin;
	struct work_job *j;

	pthread_mutex_lock(&pool->mu);
	fin = pool->finished;
	pool->finished.head = pool->finished.tail = NULL;
	pthread_mutex_unlock(&pool->mu);
	while ((j = work_list_pop(&fin))) {
		pool->running--;
		pool->ndone++;
		pool->done(pool->ctx, j->arg, j->ms, j->cpu_ms, j->wait_ms);
		free(j);
	}
	work_dispatch(pool);
}

/* Waiting jobs whose clients left still count against the bound: drop them
 * before refusing anybody. */
static void work_purge(struct work_pool *pool)
{
	struct work_list keep = {NULL, NULL};
	struct work_job *j;

	while ((j = work_list_pop(&pool->waiting))) {
		if (pool->wanted(pool->ctx, j->arg)) {
			work_list_push(&keep, j);
			continue;
		}
		pool->nwaiting--;
		pool->dropped++;
		pool->done(pool->ctx, j->arg, j->ms, -1, (work_now() - j->queued) * 1000.0);
		free(j);
	}
	pool->waiting = keep;
}

int work_submit(struct work_pool *pool, double ms, void *arg)
{
	struct work_job *j;

	if (pool->running + pool->nwaiting >= pool->max_in_flight)
		work_purge(pool);
	if (pool->running + pool->nwaiting >= pool->max_in_flight) {
		pool->refused++;
		return -1;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		pool->refused++;
		return -1;
	}
	j->arg = arg;
	j->ms = ms;
	j->queued = work_now();
	work_list_push(&pool->waiting, j);
	pool->nwaiting++;
	work_dispatch(pool);
	return 0;
}

void work_pool_counters(const struct work_pool *pool, struct work_counters *c)
{
	c->threads = pool->nthreads;
	c->max_in_flight = pool->max_in_flight;
	c->running = pool->running;
	c->waiting = pool->nwaiting;
	c->done = pool->ndone;
	c->refused = pool->refused;
	c->dropped = pool->dropped;
}

int work_default_threads(void)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = 1;
	return n > WORK_THREADS_DEFAULT_MAX ? WORK_THREADS_DEFAULT_MAX : n;
}

struct work_pool *work_pool_new(struct ev_loop *loop, int threads, int max_in_flight,
                                work_wanted_fn wanted, work_done_fn done, void *ctx, char *err,
                                size_t errlen)
{
	struct work_pool *pool = calloc(1, sizeof(*pool));
	sigset_t all, old;
	int rc = 0;

	if (!pool || !(pool->threads = calloc((size_t)threads, sizeof(pthread_t)))) {
		free(pool);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pool->loop = loop;
	pool->wanted = wanted;
	pool->done = done;
	pool->ctx = ctx;
	pool->nthreads = threads;
	pool->max_in_flight = max_in_flight;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	ev_async_init(&pool->wake, work_on_wake);
	pool->wake.data = pool;
	ev_async_start(loop, &pool->wake);

	/* signals belong to the loop thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; pool->started < threads; pool->started++) {
		rc = pthread_create(&pool->threads[pool->started], NULL, work_thread, pool);
		if (rc != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start /work thread %d of %d: %s", pool->started + 1,
		         threads, strerror(rc));
		work_pool_free(pool);
		return NULL;
	}
	return pool;
}

void work_pool_free(struct work_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	atomic_store(&pool->stop, 1);
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	for (int i = 0; i < pool->started; i++)
		pthread_join(pool->threads[i], NULL);
	ev_async_stop(pool->loop, &pool->wake);
	work_list_free(&pool->waiting);
	work_list_free(&pool->todo);
	work_list_free(&pool->finished);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool->threads);
	free(pool);
}
