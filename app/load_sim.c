#include "config.h"

#include "load_sim.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The burner works in slices: within each slice it spins until the thread has
 * used target% of the slice in CPU time, then sleeps to the slice's end. */
#define SIM_SLICE_NS 100000000L /* 100 ms */

struct load_sim {
	enum load_profile profile; /* loop thread only */
	double target;             /* loop thread's copy */
	int holding;               /* reached the plateau */
	unsigned rand_state;

	_Atomic long target_ns; /* CPU time per slice, read by the burner */
	_Atomic int stop;
	pthread_t thread;
};

static const char *const sim_names[] = {
    [LOAD_STOP] = "stop",
    [LOAD_LOW] = "low",
    [LOAD_HIGH] = "high",
};

const char *load_profile_name(enum load_profile p)
{
	return (unsigned)p < sizeof(sim_names) / sizeof(sim_names[0]) ? sim_names[p] : "?";
}

int load_profile_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof(sim_names) / sizeof(sim_names[0]); i++)
		if (strcmp(name, sim_names[i]) == 0)
			return (int)i;
	return -1;
}

static double sim_now(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double load_burn_ms(double ms, const _Atomic int *stop)
{
	double cpu0 = sim_now(CLOCK_THREAD_CPUTIME_ID);
	double wall_end = sim_now(CLOCK_MONOTONIC) + 2 * ms / 1000.0;
	volatile unsigned long sink = 0;

	for (;;) {
		for (int i = 0; i < 20000; i++)
			sink += (unsigned long)i * 2654435761u;
		double used = sim_now(CLOCK_THREAD_CPUTIME_ID) - cpu0;
		if (used * 1000.0 >= ms || sim_now(CLOCK_MONOTONIC) >= wall_end ||
		    (stop && atomic_load(stop)))
			return used * 1000.0;
	}
}

static void sim_ts_add(struct timespec *ts, long ns)
{
	ts->tv_nsec += ns;
	while (ts->tv_nsec >= 1000000000L) {
		ts->tv_nsec -= 1000000000L;
		ts->tv_sec++;
	}
}

static long sim_ts_diff_ns(const struct timespec *a, const struct timespec *b)
{
	return (long)(a->tv_sec - b->tv_sec) * 1000000000L + (a->tv_nsec - b->tv_nsec);
}

static void *sim_burner(void *arg)
{
	struct load_sim *sim = arg;
	struct timespec slice_end;
	volatile unsigned long sink = 0;
	long debt = 0; /* CPU time a busy machine kept us from burning, made up later */

	clock_gettime(CLOCK_MONOTONIC, &slice_end);
	while (!atomic_load(&sim->stop)) {
		struct timespec cpu0, cpu, now;
		long target = atomic_load(&sim->target_ns);
		long want = target > 0 ? target + debt : 0, used = 0;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
		sim_ts_add(&slice_end, SIM_SLICE_NS);
		while (want > 0) {
			for (int i = 0; i < 5000; i++)
				sink += (unsigned long)i * 2654435761u;
			clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
			clock_gettime(CLOCK_MONOTONIC, &now);
			used = sim_ts_diff_ns(&cpu, &cpu0);
			if (used >= want || sim_ts_diff_ns(&now, &slice_end) >= 0)
				break;
		}
		/* at most one slice of debt: a long-starved process does not then spin flat out */
		debt = want > used ? want - used : 0;
		if (debt > SIM_SLICE_NS)
			debt = SIM_SLICE_NS;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (sim_ts_diff_ns(&now, &slice_end) > SIM_SLICE_NS)
			slice_end = now; /* fell far behind (suspended?): do not try to catch up */
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &slice_end, NULL) == EINTR)
			;
	}
	return NULL;
}

/* uniform in lo..hi inclusive */
static int sim_rand(struct load_sim *sim, int lo, int hi)
{
	return lo + (int)(rand_r(&sim->rand_state) % (unsigned)(hi - lo + 1));
}

static void sim_publish(struct load_sim *sim)
{
	atomic_store(&sim->target_ns, (long)(sim->target / 100.0 * SIM_SLICE_NS));
}

static void sim_start_ramp(struct load_sim *sim, enum load_profile p)
{
	sim->profile = p;
	sim->holding = 0;
	sim->target = p == LOAD_LOW ? 50.0 : 0.0;
	sim_publish(sim);
}

struct load_sim *load_sim_new(enum load_profile initial, char *err, size_t errlen)
{
	struct load_sim *sim = calloc(1, sizeof(*sim));
	sigset_t all, old;
	int rc;

	if (!sim) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sim->rand_state = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)sim;
	sim_start_ramp(sim, initial);

	/* signals belong to the loop thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&sim->thread, NULL, sim_burner, sim);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the CPU burner thread: %s", strerror(rc));
		free(sim);
		return NULL;
	}
	return sim;
}

void load_sim_free(struct load_sim *sim)
{
	if (!sim)
		return;
	atomic_store(&sim->stop, 1);
	pthread_join(sim->thread, NULL);
	free(sim);
}

int load_sim_set_profile(struct load_sim *sim, enum load_profile p)
{
	if (p == sim->profile)
		return 0;
	sim_start_ramp(sim, p);
	return 1;
}

enum load_profile load_sim_profile(const struct load_sim *sim)
{
	return sim->profile;
}

double load_sim_target(const struct load_sim *sim)
{
	return sim->target;
}

void load_sim_tick(struct load_sim *sim)
{
	switch (sim->profile) {
	case LOAD_STOP:
		sim->target = 0;
		break;
	case LOAD_HIGH:
		if (!sim->holding) {
			sim->target += sim_rand(sim, 1, 5);
			if (sim->target >= 70)
				sim->holding = 1;
		}
		if (sim->holding)
			sim->target = sim_rand(sim, 70, 75);
		break;
	case LOAD_LOW:
		if (!sim->holding) {
			sim->target -= sim_rand(sim, 1, 5);
			if (sim->target <= 10)
				sim->holding = 1;
		}
		if (sim->holding)
			sim->target = sim_rand(sim, 1, 10);
		break;
	}
	sim_publish(sim);
}
