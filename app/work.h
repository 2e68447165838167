/* The /work pool: CPU burns run on worker threads so that the loop thread
 * keeps answering /health_check and /stats whatever the /work load. Jobs
 * wait on the loop side until a thread is free, so one whose client left is
 * dropped before it costs anything; past `max_in_flight` (running plus
 * waiting) nothing more is accepted. */
#ifndef SCALER_APP_WORK_H
#define SCALER_APP_WORK_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct work_pool;

/* Asked on the loop thread just before a waiting job starts: 0 drops it.
 * ctx is the pool's, arg the job's. */
typedef int (*work_wanted_fn)(void *ctx, void *arg);
/* On the loop thread once a job ends: ms as submitted, cpu_ms spent (< 0:
 * dropped, never run), wait_ms spent waiting for a thread. */
typedef void (*work_done_fn)(void *ctx, void *arg, double ms, double cpu_ms, double wait_ms);

struct work_counters {
	int threads, max_in_flight;
	int running, waiting;
	uint64_t done, refused, dropped;
};

struct work_pool *work_pool_new(struct ev_loop *loop, int threads, int max_in_flight,
                                work_wanted_fn wanted, work_done_fn done, void *ctx, char *err,
                                size_t errlen);
/* Stops the threads (a burn in progress is cut short) and forgets every job
 * without calling back: call it before the exchanges the jobs refer to go. */
void work_pool_free(struct work_pool *pool);

/* Queues a burn of `ms` CPU milliseconds. -1 when max_in_flight jobs are
 * already running or waiting (after dropping those no longer wanted). */
int work_submit(struct work_pool *pool, double ms, void *arg);

void work_pool_counters(const struct work_pool *pool, struct work_counters *c);

/* The default thread count: the CPUs this process may run on, at most 64. */
int work_default_threads(void);

#endif
