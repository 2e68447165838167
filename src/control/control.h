/* Inside the control loop (src/control/): the state the controller keeps
 * per zone and per server, shared by its parts —
 *   controller.c  zones, servers, events, fencing, balancer pushes, reload
 *   evaluate.c    one evaluation: metrics → policy → bounds, cooldowns, pins
 *   flows.c       creating and deleting one server, in the order that loses
 *                 nothing (see reconcile.h)
 *   primary.c     becoming primary: reconcile, load the zones, start, stop
 * and by the admin API's view of it (src/admin/control_api.c). Not for
 * anything else: the rest of scalerd uses controller.h. */
#ifndef SCALER_CONTROL_H
#define SCALER_CONTROL_H

#include <ev.h>
#include <jansson.h>
#include <stdint.h>

#include "conf.h"
#include "controller.h"
#include "daemon.h"
#include "host.h"
#include "plugin.h"
#include "reconcile.h"
#include "store.h"

#define START_TIMEOUT 30.0     /* a new server must pass a health check within this */
#define START_POLL 0.2         /* health check period while a server starts */
#define START_POLL_WAKING 0.02 /* the same while requests wait for the zone's first server */
#define HEALTH_TIMEOUT 2.0

/* driver operations, for the counters */
enum { OP_CREATE, OP_REMOVE, OP_LIST };

struct flow;
struct history;

struct cserver {
	struct store_server rec;
	double metric;
	int metric_valid;
	struct flow *owner; /* the create/delete flow working on it, NULL when idle */
};

/* One metric of a zone: its own instance of the metrics plugin. */
struct czone_metric {
	char name[CONF_NAME_MAX];
	struct plugin_instance pi;
	const config_setting_t *group; /* what it was made (or last reloaded) with */
	struct conf *conf;             /* the config group belongs to (a reference) */
	const char *unit;              /* the plugin's unit(), "" without */
};

struct czone {
	struct controller *c;
	char name[CONF_NAME_MAX];
	const struct conf_zone *cz; /* in the config in force */
	/* References to the configs the zone points into: cz's, and the one the
	 * policy's group is in (older while an unchanged group keeps it). A
	 * config stays loaded while something points into it. */
	struct conf *conf, *policy_conf;
	struct plugin_instance policy;
	struct czone_metric metrics[CONF_METRICS_MAX];
	size_t nmetrics;
	int binds; /* the policy has bind(): it reads every metric, over these windows */
	double windows[SCALER_POLICY_WINDOWS_MAX];
	size_t nwindows;
	/* metric instances replaced while an evaluation may still wait for
	 * them: finished once none is in flight */
	struct plugin_instance *retired;
	struct conf **retired_confs; /* the config each of them points into */
	size_t nretired;
	ev_timer tick;
	int refs;    /* flows in flight that point here */
	int removed; /* gone from the config: free when refs drops to 0 */
	int evaluating;
	int loaded;  /* servers read from the store this term */
	int loading; /* that read is in flight */

	struct cserver *srv;
	size_t nsrv, capsrv;

	double last_up, last_down; /* ev_now of the last scale action, cooldowns */
	struct {
		double time;
		int from, to;
		char kind[24];
		char rule[64];
		char reason[256];
	} last;
	char last_hold[64]; /* rule of the last hold event, so holds are not repeated */
	int pin_count;      /* -1: not pinned */
	double pin_until;   /* unix time, 0: until unpinned */
	double wake_until;  /* ev_now: woken from zero, min is at least 1 until then */

	unsigned long evaluations, ups, downs, holds, creates, deletes, create_errors,
	    delete_errors, wakes;
	/* the console's history of the zone (src/admin/console_api.c) */
	struct history *hist;
	unsigned hist_gen;   /* the term it was recorded in */
	double hist_started; /* unix time of its first sample */
	const char *hist_why;
	struct czone *next;
};

struct controller {
	struct daemon *d;
	int active;
	uint64_t epoch;
	unsigned gen; /* bumped at every start/stop: late callbacks of an older term are dropped */
	struct czone *zones;
	ev_timer monitor_push;
	struct reconcile *reconcile; /* takeover reconciliation in progress */
	struct reconcile *sweep;     /* orphan sweep in progress (never with the above) */
	ev_timer sweep_timer;        /* the next sweep, every reconcile_interval */
	struct reconcile_seen seen;  /* orphans the last sweep saw, for the next */

	unsigned long driver_calls[3], driver_errors[3];
	double driver_seconds[3];
	unsigned long metric_queries, metric_errors;
	double metric_seconds;
	unsigned long fenced;
};

static inline struct ev_loop *ctl_loop(const struct controller *c)
{
	return c->d->loop;
}

static inline struct store *ctl_store(const struct controller *c)
{
	return c->d->host->store;
}

static inline const struct scaler_host *ctl_host(const struct controller *c)
{
	return &c->d->host->pub;
}

/* ---- controller.c ---- */

double ctl_unix_now(void);
/* Monotonic seconds: policy windows must not move with the wall clock. */
double ctl_mono_now(void);
/* A zone of the config in force (NULL when unknown or removed). */
struct czone *czone_find(struct controller *c, const char *name);
/* Drop a reference (flows and reads in flight hold one): frees a removed
 * zone at the last. */
void czone_unref(struct czone *z);
struct cserver *czone_server(struct czone *z, const char *id);
struct cserver *czone_server_by_address(struct czone *z, const char *address);
/* Add or update the server of a record (NULL when out of memory). */
struct cserver *czone_server_add(struct czone *z, const struct store_server *rec);
void czone_server_forget(struct czone *z, const char *id);
/* Servers in `state` (NULL: all). */
int czone_count(const struct czone *z, const char *state);
/* servers that count toward the zone's size: starting or serving */
int czone_size(const struct czone *z);
/* The zone's min, or 1 while it is woken from zero (POST /wake). */
int czone_min(const struct czone *z);
/* 1 while the zone is woken from zero: a POST /wake less than its
 * idle_timeout ago. */
int czone_waking(const struct czone *z);
/* Log and record (fenced) an event of the zone; takes `extra` (may be NULL). */
void czone_event(struct czone *z, const char *kind, int from, int to, const char *rule,
                 const char *reason, json_t *extra);
/* Remember the zone's last decision (GET /status). */
void czone_decision(struct czone *z, const char *kind, int from, int to, const char *rule,
                    const char *reason);
/* *ref holds a reference to conf from now on (and drops the one it had). */
void ctl_conf_set(struct conf **ref, const struct conf *conf);
/* A write was refused as stale: step down. */
void ctl_fenced(struct controller *c, const char *err);
/* Tell the zone's balancer to add or delete one server (either may be NULL). */
void czone_push(struct czone *z, const char *add, const char *del);
/* Finish the zone's retired metric instances unless an evaluation runs. */
void czone_metrics_retired_free(struct czone *z);
/* Give the zone's balancer its whole set of serving servers. */
void czone_push_all(struct czone *z);
/* Tell every balancer who the primary is. */
void ctl_push_monitor_all(struct controller *c);

/* ---- flows.c ---- */

/* Start creating one server. */
void czone_create(struct czone *z);
/* Start deleting server s (drain: wait drain_timeout after taking it out of
 * the balancer; refill: evaluate the zone after). -1 when it is busy. */
int czone_delete(struct czone *z, struct cserver *s, int drain, int refill);
/* the server to remove when scaling in: the least loaded, newest on a tie */
struct cserver *czone_victim(struct czone *z);
/* Finish the flow a previous primary left half-way on server s. */
void czone_resume(struct czone *z, struct cserver *s);
/* The zone's health check path (its balancer group's health_path). */
const char *ctl_health_path(const struct conf_zone *cz);

/* ---- evaluate.c ---- */

/* Evaluate the zone now unless it is busy (an evaluation or a flow in
 * flight, not loaded yet, reconciliation running). */
void czone_evaluate(struct czone *z);

/* ---- src/admin/console_api.c ---- */

/* Record an evaluation in the zone's history: the servers counted and the
 * first window of each metric in pms (n = 0: none measured). */
void czone_history_sample(struct czone *z, int servers, const struct scaler_policy_metric *pms,
                          size_t n);

/* ---- primary.c ---- */

/* Read the zone's servers from the store, then resume, push and evaluate. */
void czone_load(struct czone *z);
/* (Re)arm the orphan sweep with the reconcile_interval in force (a reload
 * calls it); nothing when not primary, during the takeover, or when off. */
void ctl_sweep_arm(struct controller *c);
/* Stop the sweep: cancel a run, stop the timer, forget what it saw. */
void ctl_sweep_stop(struct controller *c);

#endif
