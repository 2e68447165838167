/* The load simulation: a CPU target that follows the chosen profile, and a
 * thread that really burns that share of one core so that /proc, cgroups and
 * any metrics source see what the app reports. */
#ifndef SCALER_APP_LOAD_SIM_H
#define SCALER_APP_LOAD_SIM_H

#include <stddef.h>

enum load_profile {
	LOAD_STOP = 0, /* 0 % */
	LOAD_LOW,      /* starts at 50 %, falls 1-5 points a second, holds at 1-10 % */
	LOAD_HIGH,     /* starts at 0 %, rises 1-5 points a second, holds at 70-75 % */
};

struct load_sim;

/* Starts the burner thread. NULL with err filled on failure. */
struct load_sim *load_sim_new(enum load_profile initial, char *err, size_t errlen);
/* Stops and joins the burner thread. */
void load_sim_free(struct load_sim *sim);

/* Switch profile; the ramp starts over only when the profile changes.
 * Returns 1 when it changed, 0 when it was already the profile. */
int load_sim_set_profile(struct load_sim *sim, enum load_profile p);
enum load_profile load_sim_profile(const struct load_sim *sim);
/* The CPU percent the burner aims at now. */
double load_sim_target(const struct load_sim *sim);
/* Advance the ramp by one second (called once a second on the loop). */
void load_sim_tick(struct load_sim *sim);

const char *load_profile_name(enum load_profile p);
/* -1 when the name is not a profile */
int load_profile_parse(const char *name);

/* Spend about `ms` milliseconds of this thread's CPU time (bounded by twice
 * that in wall time, so a starved process still answers), or less when
 * *stop (optional) becomes non-zero. Returns the CPU milliseconds spent. */
double load_burn_ms(double ms, const _Atomic int *stop);

#endif
