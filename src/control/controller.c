/* The control loop. While this node is primary, every zone is evaluated
 * each `interval`: metrics → policy → clamp/cooldown/pin → driver → store →
 * balancer. Zones are independent: each has its own timer and its own
 * in-flight work, so a slow driver call in one zone delays no other.
 *
 * Order of operations that loses nothing (reconciliation repairs a crash
 * between any two steps):
 *   create: record "starting" → driver create → record address/ref →
 *           healthy → record "serving" → push to the balancer
 *   delete: record "deleting" → take out of the balancer → drain →
 *           driver remove → delete the record
 * Every store write is fenced by the epoch; a refused write deposes us. */
#include "config.h"

#include "controller.h"

#include <ev.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "daemon.h"
#include "host.h"
#include "log.h"
#include "plugin.h"
#include "reconcile.h"
#include "store.h"

#define START_TIMEOUT 30.0 /* a new server must pass a health check within this */
#define START_POLL 0.2     /* health check period while a server starts */
#define HEALTH_TIMEOUT 2.0
#define MONITOR_PUSH_EVERY 10.0

enum cserver_state { CS_STARTING, CS_SERVING, CS_DELETING };

struct cserver {
	struct store_server rec;
	double metric;
	int metric_valid;
	struct flow *owner; /* the create/delete flow working on it, NULL when idle */
};

struct czone {
	struct controller *c;
	char name[CONF_NAME_MAX];
	const struct conf_zone *cz; /* in the config in force */
	struct plugin_instance policy;
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

	unsigned long evaluations, ups, downs, holds, creates, deletes, create_errors,
	    delete_errors;
	struct czone *next;
};

struct controller {
	struct daemon *d;
	int active;
	uint64_t epoch;
	unsigned gen; /* bumped at every start/stop: late callbacks of an older term are dropped */
	struct czone *zones;
	ev_timer monitor_push;
	struct reconcile *reconcile; /* run in progress */
	struct rc_zones *rc_zones;   /* zone lists handed to runs, kept until exit */

	unsigned long driver_calls[3], driver_errors[3];
	double driver_seconds[3];
	unsigned long metric_queries, metric_errors;
	double metric_seconds;
	unsigned long fenced;
};

/* A reconciliation run reads its zone list until its last operation ends,
 * which may be after it was cancelled, so lists live until controller_free. */
struct rc_zones {
	struct rc_zones *next;
	const struct scaler_zone *zones[];
};

enum { OP_CREATE, OP_REMOVE, OP_LIST };
static const char *const op_names[] = {"create", "remove", "list"};

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct ev_loop *ctl_loop(const struct controller *c)
{
	return c->d->loop;
}

static struct store *ctl_store(const struct controller *c)
{
	return c->d->host->store;
}

static const struct scaler_host *ctl_host(const struct controller *c)
{
	return &c->d->host->pub;
}

/* ---- zones ------------------------------------------------------------------ */

static void czone_unref(struct czone *z);
static void czone_evaluate(struct czone *z);
static void czone_load(struct czone *z);

static struct czone *czone_find(struct controller *c, const char *name)
{
	for (struct czone *z = c->zones; z; z = z->next)
		if (!z->removed && strcmp(z->name, name) == 0)
			return z;
	return NULL;
}

/* Monotonic seconds: policy windows must not move with the wall clock. */
static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int controller_check_policies(const struct conf *conf, const struct scaler_host *host)
{
	char err[1024];
	int failed = 0;
	struct plugin_instance pi;

	/* the global policy group is checked even with no zone */
	if (plugin_instance_new(&pi, conf->plugin_dir, SCALER_KIND_POLICY, conf->policy.name, host,
	                        conf->policy.group, err, sizeof(err)) < 0) {
		log_err("%s", err);
		failed = 1;
	} else {
		plugin_instance_free(&pi);
	}
	for (size_t i = 0; i < conf->nzones; i++) {
		const struct conf_zone *cz = &conf->zones[i];
		if (!cz->policy)
			continue;
		if (plugin_instance_new(&pi, conf->plugin_dir, SCALER_KIND_POLICY,
		                        cz->policy_plugin, host, cz->policy_conf, err,
		                        sizeof(err)) < 0) {
			log_err("zone %s: %s", cz->name, err);
			failed = 1;
		} else {
			plugin_instance_free(&pi);
		}
	}
	return failed ? -1 : 0;
}

static void czone_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	czone_evaluate(t->data);
}

static int czone_setup(struct czone *z, const struct conf *conf, const struct conf_zone *cz)
{
	char err[1024];
	struct plugin_instance pi;
	const struct scaler_plugin *cur = z->policy.plugin ? z->policy.plugin->desc : NULL;

	/* the same policy plugin keeps its history (windows, streaks) when it
	 * can apply the new settings itself */
	int kept = cur && strcmp(z->policy.plugin->name, cz->policy_plugin) == 0 && cur->reload &&
	           cur->reload(z->policy.ctx, cz->policy_conf) == 0;
	if (!kept) {
		if (plugin_instance_new(&pi, conf->plugin_dir, SCALER_KIND_POLICY,
		                        cz->policy_plugin, ctl_host(z->c), cz->policy_conf, err,
		                        sizeof(err)) < 0) {
			log_err("zone %s: %s", cz->name, err);
			return -1;
		}
		plugin_instance_free(&z->policy);
		z->policy = pi;
	}
	z->cz = cz;
	int active = ev_is_active(&z->tick);
	ev_timer_stop(ctl_loop(z->c), &z->tick);
	ev_timer_set(&z->tick, cz->interval, cz->interval);
	if (active)
		ev_timer_start(ctl_loop(z->c), &z->tick);
	return 0;
}

static struct czone *czone_new(struct controller *c, const struct conf *conf,
                               const struct conf_zone *cz)
{
	struct czone *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->c = c;
	snprintf(z->name, sizeof(z->name), "%s", cz->name);
	z->pin_count = -1;
	z->last_up = z->last_down = -1e9;
	ev_timer_init(&z->tick, czone_tick, cz->interval, cz->interval);
	z->tick.data = z;
	z->refs = 1; /* the controller's own reference */
	if (czone_setup(z, conf, cz) < 0) {
		free(z);
		return NULL;
	}
	z->next = c->zones;
	c->zones = z;
	return z;
}

static void czone_destroy(struct czone *z)
{
	struct controller *c = z->c;
	for (struct czone **pp = &c->zones; *pp; pp = &(*pp)->next)
		if (*pp == z) {
			*pp = z->next;
			break;
		}
	ev_timer_stop(ctl_loop(c), &z->tick);
	plugin_instance_free(&z->policy);
	free(z->srv);
	free(z);
}

static void czone_unref(struct czone *z)
{
	if (--z->refs == 0)
		czone_destroy(z);
}

/* ---- servers of a zone ---------------------------------------------------------- */

static struct cserver *czone_server(struct czone *z, const char *id)
{
	for (size_t i = 0; i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.srv.id, id) == 0)
			return &z->srv[i];
	return NULL;
}

static struct cserver *czone_server_by_address(struct czone *z, const char *address)
{
	size_t n = strlen(address);
	while (n > 0 && address[n - 1] == '/')
		n--;
	for (size_t i = 0; i < z->nsrv; i++)
		if (strncmp(z->srv[i].rec.srv.address, address, n) == 0 &&
		    z->srv[i].rec.srv.address[n] == '\0')
			return &z->srv[i];
	return NULL;
}

static struct cserver *czone_server_add(struct czone *z, const struct store_server *rec)
{
	struct cserver *s = czone_server(z, rec->srv.id);
	if (s) {
		s->rec = *rec;
		return s;
	}
	if (z->nsrv == z->capsrv) {
		size_t cap = z->capsrv ? z->capsrv * 2 : 8;
		struct cserver *n = realloc(z->srv, cap * sizeof(*n));
		if (!n)
			return NULL;
		z->srv = n;
		z->capsrv = cap;
	}
	s = &z->srv[z->nsrv++];
	memset(s, 0, sizeof(*s));
	s->rec = *rec;
	return s;
}

static void czone_server_forget(struct czone *z, const char *id)
{
	for (size_t i = 0; i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.srv.id, id) == 0) {
			z->srv[i] = z->srv[--z->nsrv];
			return;
		}
}

static int czone_count(const struct czone *z, const char *state)
{
	int n = 0;
	for (size_t i = 0; i < z->nsrv; i++)
		if (!state || strcmp(z->srv[i].rec.state, state) == 0)
			n++;
	return n;
}

/* servers that count toward the zone's size: starting or serving */
static int czone_size(const struct czone *z)
{
	return czone_count(z, "starting") + czone_count(z, "serving");
}

/* ---- events ---------------------------------------------------------------------- */

struct ctl_event {
	struct controller *c;
	unsigned gen;
};

static void ctl_fenced(struct controller *c, const char *err);

static void ctl_event_done(void *arg, enum store_status st, const char *err)
{
	struct ctl_event *e = arg;
	if (st == STORE_STALE && e->gen == e->c->gen && e->c->active)
		ctl_fenced(e->c, err);
	else if (st != STORE_OK && st != STORE_STALE)
		log_warn("could not record an event: %s", err ? err : store_status_name(st));
	free(e);
}

static void czone_event(struct czone *z, const char *kind, int from, int to, const char *rule,
                        const char *reason, json_t *extra)
{
	struct store *s = ctl_store(z->c);
	json_t *x = extra ? extra : json_object();
	json_object_set_new(x, "rule", json_string(rule ? rule : ""));
	json_object_set_new(x, "node", json_string(z->c->d->conf->node_id));
	json_object_set_new(x, "epoch", json_integer((json_int_t)z->c->epoch));
	log_info("zone %s: %s %d -> %d: %s", z->name, kind, from, to, reason);
	struct ctl_event *e = s ? calloc(1, sizeof(*e)) : NULL;
	if (e) {
		e->c = z->c;
		e->gen = z->c->gen;
		/* fenced: an event a deposed primary tries to record is refused
		 * like its writes (and deposes it) */
		if (store_event_add_fenced(s, z->c->epoch, z->name, kind, from, to, reason, x,
		                           ctl_event_done, e) < 0)
			free(e);
	}
	json_decref(x);
}

static void czone_decision(struct czone *z, const char *kind, int from, int to, const char *rule,
                           const char *reason)
{
	z->last.time = unix_now();
	z->last.from = from;
	z->last.to = to;
	snprintf(z->last.kind, sizeof(z->last.kind), "%s", kind);
	snprintf(z->last.rule, sizeof(z->last.rule), "%s", rule ? rule : "");
	snprintf(z->last.reason, sizeof(z->last.reason), "%s", reason);
}

/* ---- fencing ----------------------------------------------------------------------- */

static void ctl_fenced(struct controller *c, const char *err)
{
	struct daemon *d = c->d;
	uint64_t cur = store_stale_current(err);
	c->fenced++;
	log_err(
	    "a state store write was refused as stale (epoch %llu, current %llu): stepping down",
	    (unsigned long long)c->epoch, (unsigned long long)cur);
	const struct scaler_election_ops *eo = d->election.plugin->desc->ops.election;
	controller_stop(c, "fenced by a newer epoch");
	d->role = ROLE_BACKUP;
	if (eo->fenced)
		eo->fenced(d->election.ctx, cur);
}

/* ---- balancer pushes ------------------------------------------------------------------ */

static void ctl_push_done(void *arg, int status, const char *err)
{
	char *what = arg;
	if (status != 0)
		log_warn(
		    "balancer push (%s) failed: %s; the worker also restores from the state store",
		    what, err ? err : "error");
	else
		log_debug("balancer push (%s) done", what);
	free(what);
}

static void czone_push(struct czone *z, const char *add, const char *del)
{
	struct daemon *d = z->c->d;
	const struct scaler_balancer_ops *bo = d->balancer.plugin->desc->ops.balancer;
	const char *adds[1] = {add}, *dels[1] = {del};
	char *what = NULL;
	if (!bo->push_servers)
		return;
	if (asprintf(&what, "zone %s: %s %s", z->name, add ? "add" : "delete", add ? add : del) < 0)
		what = NULL;
	if (bo->push_servers(d->balancer.ctx, &z->cz->pub, adds, add ? 1 : 0, dels, del ? 1 : 0,
	                     ctl_push_done, what) < 0) {
		log_warn("zone %s: could not push to the balancer", z->name);
		free(what);
	}
}

static void czone_push_all(struct czone *z)
{
	struct daemon *d = z->c->d;
	const struct scaler_balancer_ops *bo = d->balancer.plugin->desc->ops.balancer;
	const char **adds = calloc(z->nsrv + 1, sizeof(char *));
	size_t n = 0;
	if (!adds || !bo->push_servers) {
		free(adds);
		return;
	}
	for (size_t i = 0; i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.state, "serving") == 0)
			adds[n++] = z->srv[i].rec.srv.address;
	char *what = strdup(z->name);
	if (bo->push_servers(d->balancer.ctx, &z->cz->pub, adds, n, NULL, 0, ctl_push_done, what) <
	    0)
		free(what);
	free(adds);
}

static void ctl_push_monitor_all(struct controller *c)
{
	struct daemon *d = c->d;
	const struct scaler_balancer_ops *bo = d->balancer.plugin->desc->ops.balancer;
	if (!c->active || !bo->push_monitor)
		return;
	for (struct czone *z = c->zones; z; z = z->next) {
		if (z->removed)
			continue;
		char *what = NULL;
		if (asprintf(&what, "zone %s: monitor", z->name) < 0)
			what = NULL;
		if (bo->push_monitor(d->balancer.ctx, &z->cz->pub, d->conf->admin_url, c->epoch,
		                     ctl_push_done, what) < 0)
			free(what);
	}
}

/* Every few seconds the primary repeats the primary's URL and each zone's
 * full server set to the balancers, so a balancer that lost both (a worker
 * restarted while Redis was down) converges without waiting for a change. */
static void ctl_on_monitor_push(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct controller *c = t->data;
	(void)loop;
	(void)revents;
	ctl_push_monitor_all(c);
	for (struct czone *z = c->zones; z; z = z->next)
		if (!z->removed && z->loaded)
			czone_push_all(z);
}

/* ---- flows: create and delete one server ------------------------------------------------- */

struct flow {
	struct czone *z;
	unsigned gen;
	struct store_server rec;
	double t0;       /* driver call start, for latency */
	double started;  /* flow start */
	double deadline; /* health wait */
	ev_timer timer;
	struct scaler_http_call *call;
	int drain;           /* delete: wait drain_timeout first */
	char prev_state[16]; /* in-memory state before the write in progress */
	void (*retry)(struct flow *f);
	int refill; /* delete: evaluate the zone afterwards (refill to min) */
	char why[128];
};

static struct flow *flow_new(struct czone *z)
{
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->z = z;
	f->gen = z->c->gen;
	f->started = ev_time();
	z->refs++;
	ev_timer_init(&f->timer, NULL, 0., 0.);
	f->timer.data = f;
	return f;
}

static void flow_free(struct flow *f)
{
	struct cserver *s;
	ev_timer_stop(ctl_loop(f->z->c), &f->timer);
	if (f->call)
		ctl_host(f->z->c)->http_cancel(f->call);
	if ((s = czone_server(f->z, f->rec.srv.id)) && s->owner == f)
		s->owner = NULL;
	czone_unref(f->z);
	free(f);
}

/* 1 when the flow's term is over (deposed/stopped, zone removed). */
static int flow_stale(const struct flow *f)
{
	return f->gen != f->z->c->gen || !f->z->c->active || f->z->removed;
}

static const struct scaler_driver_ops *ctl_driver(const struct controller *c)
{
	return c->d->driver.plugin->desc->ops.driver;
}

static void ctl_driver_stat(struct controller *c, int op, double t0, int failed)
{
	c->driver_calls[op]++;
	c->driver_seconds[op] += ev_time() - t0;
	if (failed)
		c->driver_errors[op]++;
}

/* Write the flow's record with a new state. The server counts in its new
 * state at once (so decisions do not double up), except "serving": it
 * takes measurements and traffic only once Redis has it. */
static void flow_record(struct flow *f, const char *state, store_cb cb)
{
	struct controller *c = f->z->c;
	struct cserver *s = czone_server(f->z, f->rec.srv.id);
	snprintf(f->prev_state, sizeof(f->prev_state), "%s", s ? s->rec.state : "");
	snprintf(f->rec.state, sizeof(f->rec.state), "%s", state);
	f->rec.updated = unix_now();
	s = czone_server_add(f->z, &f->rec);
	if (s) {
		s->owner = f;
		if (strcmp(state, "serving") == 0)
			snprintf(s->rec.state, sizeof(s->rec.state), "%s",
			         f->prev_state[0] ? f->prev_state : "starting");
	}
	if (store_server_put(ctl_store(c), c->epoch, &f->rec, cb, f) < 0)
		cb(f, STORE_ERR, "state store unreachable");
}

/* the write did not happen: memory goes back to what Redis has */
static void flow_unrecord(struct flow *f)
{
	struct cserver *s = czone_server(f->z, f->rec.srv.id);
	if (!s)
		return;
	if (!f->prev_state[0])
		czone_server_forget(f->z, f->rec.srv.id);
	else
		snprintf(s->rec.state, sizeof(s->rec.state), "%s", f->prev_state);
}

static void flow_retry_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct flow *f = t->data;
	(void)loop;
	(void)revents;
	if (flow_stale(f)) {
		flow_free(f);
		return;
	}
	f->retry(f);
}

/* Redis did not take a write a flow cannot do without: try again in a
 * second while this node is primary; the flow keeps owning the server. */
static void flow_retry_later(struct flow *f, void (*again)(struct flow *f), const char *what,
                             const char *err)
{
	log_warn("zone %s: %s of %s not recorded (%s); retrying in 1 s", f->z->name, what,
	         f->rec.srv.id, err ? err : "state store error");
	f->retry = again;
	ev_set_cb(&f->timer, flow_retry_timer);
	ev_timer_set(&f->timer, 1.0, 0.);
	ev_timer_start(ctl_loop(f->z->c), &f->timer);
}

static void flow_delete_record(struct flow *f, store_cb cb)
{
	struct controller *c = f->z->c;
	if (store_server_del(ctl_store(c), c->epoch, f->rec.srv.zone, f->rec.srv.id, cb, f) < 0)
		cb(f, STORE_ERR, "state store unreachable");
}

/* create: starting → driver → address → healthy → serving → balancer */

static void create_health_check(struct flow *f);
static void flow_record_gone(void *arg, enum store_status st, const char *err);

static void create_abandon_removed(void *arg, int status, const struct scaler_server *srv,
                                   const char *err)
{
	struct flow *f = arg;
	(void)srv;
	ctl_driver_stat(f->z->c, OP_REMOVE, f->t0, status != 0);
	if (status != 0) {
		/* the record stays "starting": reconciliation removes the server later */
		log_err("zone %s: could not remove server %s that failed to start: %s", f->z->name,
		        f->rec.srv.id, err ? err : "error");
		flow_free(f);
		return;
	}
	if (flow_stale(f)) {
		flow_free(f);
		return;
	}
	czone_server_forget(f->z, f->rec.srv.id);
	flow_delete_record(f, flow_record_gone);
}

static void flow_write_gone(struct flow *f)
{
	flow_delete_record(f, flow_record_gone);
}

static void flow_record_gone(void *arg, enum store_status st, const char *err)
{
	struct flow *f = arg;
	if (st == STORE_STALE) {
		ctl_fenced(f->z->c, err);
	} else if (st != STORE_OK) {
		if (!flow_stale(f)) {
			flow_retry_later(f, flow_write_gone, "the removal", err);
			return;
		}
		log_warn(
		    "zone %s: could not delete the record of %s: %s (reconciliation repairs it)",
		    f->z->name, f->rec.srv.id, err ? err : store_status_name(st));
	}
	int refill = f->refill;
	struct czone *z = f->z;
	z->refs++;
	flow_free(f);
	if (refill && st == STORE_OK && z->c->active && !z->removed && !z->evaluating)
		czone_evaluate(z);
	czone_unref(z);
}

static void create_fail(struct flow *f, const char *why)
{
	struct czone *z = f->z;
	z->create_errors++;
	czone_event(z, "create_failed", czone_size(z), czone_size(z) - 1, "driver", why,
	            json_pack("{s:s}", "server", f->rec.srv.id));
	if (f->rec.srv.ref[0]) {
		/* it exists: remove it so nothing half-created stays behind */
		f->t0 = ev_time();
		if (ctl_driver(z->c)->remove(z->c->d->driver.ctx, &f->rec.srv,
		                             create_abandon_removed, f) == 0)
			return;
	}
	czone_server_forget(z, f->rec.srv.id);
	flow_delete_record(f, flow_record_gone);
}

static void create_serving_recorded(void *arg, enum store_status st, const char *err);

static void create_write_serving(struct flow *f)
{
	flow_record(f, "serving", create_serving_recorded);
}

static void create_serving_recorded(void *arg, enum store_status st, const char *err)
{
	struct flow *f = arg;
	if (st == STORE_STALE) {
		ctl_fenced(f->z->c, err);
		flow_free(f);
		return;
	}
	if (st != STORE_OK) {
		if (flow_stale(f)) {
			/* still "starting" in Redis: the next primary finishes it */
			flow_free(f);
			return;
		}
		flow_retry_later(f, create_write_serving, "the serving state", err);
		return;
	}
	struct cserver *s = czone_server(f->z, f->rec.srv.id);
	if (s)
		snprintf(s->rec.state, sizeof(s->rec.state), "serving");
	czone_push(f->z, f->rec.srv.address, NULL);
	czone_event(f->z, "server_ready", czone_count(f->z, "serving") - 1,
	            czone_count(f->z, "serving"), "healthy",
	            "new server passed its health check and joined the balancer",
	            json_pack("{s:s, s:s, s:f}", "server", f->rec.srv.id, "address",
	                      f->rec.srv.address, "start_seconds", ev_time() - f->started));
	flow_free(f);
}

static void create_health_done(void *arg, const struct scaler_http_response *resp)
{
	struct flow *f = arg;
	f->call = NULL;
	if (flow_stale(f)) {
		flow_free(f);
		return;
	}
	if (resp->status >= 200 && resp->status < 300) {
		create_write_serving(f);
		return;
	}
	if (ev_time() > f->deadline) {
		char why[512];
		snprintf(why, sizeof(why),
		         "server %s at %s did not pass a health check within %.0f s (%s)",
		         f->rec.srv.id, f->rec.srv.address, START_TIMEOUT,
		         resp->error ? resp->error : "unhealthy");
		create_fail(f, why);
		return;
	}
	ev_timer_set(&f->timer, START_POLL, 0.);
	ev_timer_start(ctl_loop(f->z->c), &f->timer);
}

static void create_health_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	create_health_check(t->data);
}

static const char *ctl_health_path(const struct conf_zone *cz)
{
	const char *path = "/health_check";
	if (cz->balancer_conf)
		config_setting_lookup_string(cz->balancer_conf, "health_path", &path);
	return path;
}

static void create_health_check(struct flow *f)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", f->rec.srv.address, ctl_health_path(f->z->cz));
	struct scaler_http_request req = {.method = "GET", .url = url, .timeout = HEALTH_TIMEOUT};
	f->call = ctl_host(f->z->c)->http_request(&req, create_health_done, f);
	if (!f->call)
		create_fail(f, "cannot start a health check");
}

static void create_address_recorded(void *arg, enum store_status st, const char *err)
{
	struct flow *f = arg;
	if (st == STORE_STALE) {
		ctl_fenced(f->z->c, err);
		flow_free(f);
		return;
	}
	if (flow_stale(f)) {
		flow_free(f);
		return;
	}
	f->deadline = ev_time() + START_TIMEOUT;
	ev_set_cb(&f->timer, create_health_timer);
	create_health_check(f);
}

static void create_driver_done(void *arg, int status, const struct scaler_server *srv,
                               const char *err)
{
	struct flow *f = arg;
	ctl_driver_stat(f->z->c, OP_CREATE, f->t0, status != 0);
	if (status != 0 || !srv) {
		char why[512];
		snprintf(why, sizeof(why), "driver could not create server %s: %s", f->rec.srv.id,
		         err ? err : "error");
		log_err("zone %s: %s", f->z->name, why);
		if (flow_stale(f)) {
			flow_free(f);
			return;
		}
		create_fail(f, why);
		return;
	}
	snprintf(f->rec.srv.address, sizeof(f->rec.srv.address), "%s", srv->address);
	snprintf(f->rec.srv.ref, sizeof(f->rec.srv.ref), "%s", srv->ref);
	f->z->creates++;
	if (flow_stale(f)) {
		/* deposed meanwhile: the record says "starting" with no address;
		 * the next primary's reconciliation adopts or removes it */
		flow_free(f);
		return;
	}
	flow_record(f, "starting", create_address_recorded);
}

static void create_starting_recorded(void *arg, enum store_status st, const char *err)
{
	struct flow *f = arg;
	struct czone *z = f->z;
	if (st == STORE_STALE) {
		ctl_fenced(z->c, err);
		czone_server_forget(z, f->rec.srv.id);
		flow_free(f);
		return;
	}
	if (st != STORE_OK || flow_stale(f)) {
		/* no record, no action */
		log_warn("zone %s: not creating %s: %s", z->name, f->rec.srv.id,
		         st != STORE_OK ? (err ? err : "state store error") : "no longer primary");
		czone_server_forget(z, f->rec.srv.id);
		flow_free(f);
		return;
	}
	struct scaler_server_spec spec = {.zone = &z->cz->pub, .server_id = f->rec.srv.id};
	f->t0 = ev_time();
	if (ctl_driver(z->c)->create(z->c->d->driver.ctx, &spec, create_driver_done, f) < 0)
		create_driver_done(f, -1, NULL, "the driver refused the request");
}

static void ctl_server_id(const char *zone, char *out, size_t len)
{
	unsigned char r[4] = {0};
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, r, sizeof(r)) != (ssize_t)sizeof(r)) {
		unsigned long x = (unsigned long)ev_time() * 1000003UL ^ (unsigned long)getpid();
		memcpy(r, &x, sizeof(r));
	}
	if (fd >= 0)
		close(fd);
	snprintf(out, len, "%s-%02x%02x%02x%02x", zone, r[0], r[1], r[2], r[3]);
}

static void czone_create(struct czone *z)
{
	struct flow *f = flow_new(z);
	if (!f)
		return;
	struct controller *c = z->c;
	ctl_server_id(z->name, f->rec.srv.id, sizeof(f->rec.srv.id));
	snprintf(f->rec.srv.zone, sizeof(f->rec.srv.zone), "%s", z->name);
	snprintf(f->rec.driver, sizeof(f->rec.driver), "%s", c->d->driver.plugin->name);
	f->rec.srv.created = unix_now();
	flow_record(f, "starting", create_starting_recorded);
}

/* delete: deleting → balancer delete → drain → driver remove → record gone */

static void delete_driver_done(void *arg, int status, const struct scaler_server *srv,
                               const char *err)
{
	struct flow *f = arg;
	(void)srv;
	ctl_driver_stat(f->z->c, OP_REMOVE, f->t0, status != 0);
	if (status != 0) {
		f->z->delete_errors++;
		log_err(
		    "zone %s: driver could not remove server %s: %s (stays \"deleting\"; retried "
		    "by reconciliation)",
		    f->z->name, f->rec.srv.id, err ? err : "error");
		czone_event(f->z, "delete_failed", 0, 0, "driver", err ? err : "driver error",
		            json_pack("{s:s}", "server", f->rec.srv.id));
		flow_free(f);
		return;
	}
	f->z->deletes++;
	czone_server_forget(f->z, f->rec.srv.id);
	if (flow_stale(f)) {
		flow_free(f);
		return;
	}
	flow_delete_record(f, flow_record_gone);
}

static void delete_check_epoch(struct flow *f);

static void delete_epoch_checked(void *arg, enum store_status st, uint64_t epoch, const char *err)
{
	struct flow *f = arg;
	if (flow_stale(f)) {
		flow_free(f);
		return;
	}
	if (st == STORE_OK && epoch != f->z->c->epoch) {
		char why[128];
		snprintf(why, sizeof(why), "current epoch is %llu", (unsigned long long)epoch);
		ctl_fenced(f->z->c, why);
		flow_free(f);
		return;
	}
	if (st != STORE_OK) {
		flow_retry_later(f, delete_check_epoch, "the epoch check before removing", err);
		return;
	}
	f->t0 = ev_time();
	if (ctl_driver(f->z->c)->remove(f->z->c->d->driver.ctx, &f->rec.srv, delete_driver_done,
	                                f) < 0)
		delete_driver_done(f, -1, NULL, "the driver refused the request");
}

/* Removing a server is the one step Redis cannot fence: read the epoch
 * again right before it, so a primary deposed during the drain removes
 * nothing. */
static void delete_check_epoch(struct flow *f)
{
	if (store_epoch_get(ctl_store(f->z->c), delete_epoch_checked, f) < 0)
		delete_epoch_checked(f, STORE_ERR, 0, "state store unreachable");
}

static void delete_after_drain(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct flow *f = t->data;
	(void)loop;
	(void)revents;
	if (flow_stale(f)) {
		flow_free(f);
		return;
	}
	delete_check_epoch(f);
}

static void delete_recorded(void *arg, enum store_status st, const char *err)
{
	struct flow *f = arg;
	if (st == STORE_STALE) {
		ctl_fenced(f->z->c, err);
		flow_free(f);
		return;
	}
	if (st != STORE_OK || flow_stale(f)) {
		log_warn("zone %s: not deleting %s: %s", f->z->name, f->rec.srv.id,
		         st != STORE_OK ? (err ? err : "state store error") : "no longer primary");
		if (st != STORE_OK)
			flow_unrecord(f); /* the next evaluation decides again */
		flow_free(f);
		return;
	}
	if (f->rec.srv.address[0])
		czone_push(f->z, NULL, f->rec.srv.address);
	double wait = f->drain ? f->z->c->d->conf->drain_timeout : 0.;
	ev_set_cb(&f->timer, delete_after_drain);
	ev_timer_set(&f->timer, wait, 0.);
	ev_timer_start(ctl_loop(f->z->c), &f->timer);
}

static int czone_delete(struct czone *z, struct cserver *s, int drain, int refill)
{
	if (s->owner)
		return -1;
	struct flow *f = flow_new(z);
	if (!f)
		return -1;
	f->rec = s->rec;
	f->drain = drain;
	f->refill = refill;
	flow_record(f, "deleting", delete_recorded);
	return 0;
}

/* the server to remove when scaling in: the least loaded, newest on a tie */
static struct cserver *czone_victim(struct czone *z)
{
	struct cserver *best = NULL;
	for (size_t i = 0; i < z->nsrv; i++) {
		struct cserver *s = &z->srv[i];
		if (s->owner || strcmp(s->rec.state, "serving") != 0)
			continue;
		if (!best || (s->metric_valid && best->metric_valid && s->metric < best->metric) ||
		    ((!s->metric_valid || !best->metric_valid || s->metric == best->metric) &&
		     s->rec.srv.created > best->rec.srv.created))
			best = s;
	}
	return best;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

struct eval {
	struct czone *z;
	unsigned gen;
	double t0;
	struct scaler_server *servers;
	size_t n;
};

static int czone_pin_active(struct czone *z)
{
	if (z->pin_count < 0)
		return 0;
	if (z->pin_until > 0 && unix_now() >= z->pin_until) {
		czone_event(z, "unpin", z->pin_count, z->pin_count, "pin expired",
		            "the pinned count expired; the policy decides again", NULL);
		z->pin_count = -1;
		return 0;
	}
	return 1;
}

static void czone_hold(struct czone *z, int cur, const char *rule, const char *reason, int blocked)
{
	z->holds++;
	czone_decision(z, "hold", cur, cur, rule, reason);
	log_debug("zone %s: hold at %d: %s (%s)", z->name, cur, reason, rule);
	/* a hold that blocked an action is an event, once per distinct cause */
	if (blocked && strcmp(z->last_hold, rule) != 0) {
		czone_event(z, "hold", cur, cur, rule, reason, NULL);
		snprintf(z->last_hold, sizeof(z->last_hold), "%s", rule);
	}
	if (!blocked)
		z->last_hold[0] = '\0';
}

/* Create or remove servers to go from cur to want (victims: least loaded,
 * newest on a tie; drained first). */
static void czone_resize(struct czone *z, int cur, int want)
{
	for (int i = cur; i < want; i++)
		czone_create(z);
	for (int i = want; i < cur; i++) {
		struct cserver *v = czone_victim(z);
		if (!v || czone_delete(z, v, 1, 0) < 0)
			break;
	}
}

static void czone_act(struct czone *z, int cur, int want, const char *rule, const char *reason,
                      json_t *values, int any_missing)
{
	const struct conf_zone *cz = z->cz;
	double now = ev_now(ctl_loop(z->c));
	char why[512], base[300];

	/* the policy's sentence, without its full stop, so a cause can follow */
	snprintf(base, sizeof(base), "%s", reason);
	size_t bl = strlen(base);
	if (bl && base[bl - 1] == '.')
		base[bl - 1] = '\0';

	if (want == cur) {
		czone_hold(z, cur, rule, reason, 0);
		json_decref(values);
		return;
	}
	if (want > cur && now - z->last_up < cz->cooldown_up) {
		snprintf(why, sizeof(why), "%s; scale-up cooldown: %.1f s left", base,
		         cz->cooldown_up - (now - z->last_up));
		czone_hold(z, cur, "cooldown_up", why, 1);
		json_decref(values);
		return;
	}
	if (want < cur) {
		if (any_missing) {
			snprintf(why, sizeof(why),
			         "%s; not scaling down while a server's metric is missing", base);
			czone_hold(z, cur, "metrics missing", why, 1);
			json_decref(values);
			return;
		}
		if (now - z->last_down < cz->cooldown_down) {
			snprintf(why, sizeof(why), "%s; scale-down cooldown: %.1f s left", base,
			         cz->cooldown_down - (now - z->last_down));
			czone_hold(z, cur, "cooldown_down", why, 1);
			json_decref(values);
			return;
		}
	}
	const char *kind = want > cur ? "scale_up" : "scale_down";
	z->last_hold[0] = '\0';
	czone_decision(z, kind, cur, want, rule, reason);
	if (cz->dry_run) {
		czone_event(z, "dry_run", cur, want, rule, reason,
		            json_pack("{s:s, s:o}", "would", kind, "values", values));
		return;
	}
	czone_event(z, kind, cur, want, rule, reason, json_pack("{s:o}", "values", values));
	if (want > cur) {
		z->ups++;
		z->last_up = now;
	} else {
		z->downs++;
		z->last_down = now;
	}
	czone_resize(z, cur, want);
}

static void eval_free(struct eval *e)
{
	e->z->evaluating = 0;
	czone_unref(e->z);
	free(e->servers);
	free(e);
}

static void eval_metrics_done(void *arg, int status, const struct scaler_metrics_result *res,
                              const char *err)
{
	struct eval *e = arg;
	struct czone *z = e->z;
	struct controller *c = z->c;
	char reason[512];

	c->metric_queries++;
	c->metric_seconds += ev_time() - e->t0;
	if (status != 0)
		c->metric_errors++;
	if (e->gen != c->gen || !c->active || z->removed) {
		eval_free(e);
		return;
	}
	int cur = czone_size(z);
	int min = z->cz->min, max = z->cz->max;
	json_t *values = json_object();
	int any_missing = status != 0;

	if (status == 0 && res) {
		for (size_t i = 0; i < res->n; i++) {
			struct cserver *s = czone_server(z, res->values[i].server_id);
			if (res->values[i].missing)
				any_missing = 1;
			if (s) {
				s->metric_valid = !res->values[i].missing;
				s->metric = res->values[i].value;
			}
			json_object_set_new(
			    values, res->values[i].server_id,
			    res->values[i].missing ? json_null() : json_real(res->values[i].value));
		}
		if (res->n < e->n)
			any_missing = 1;
	}

	if (czone_pin_active(z)) {
		int want = z->pin_count < min ? min : z->pin_count > max ? max : z->pin_count;
		snprintf(reason, sizeof(reason), "pinned at %d by an operator", z->pin_count);
		/* a pin is an operator's order: no cooldown, no metrics needed */
		if (want != cur && z->cz->dry_run) {
			czone_decision(z, "dry_run", cur, want, "pinned", reason);
			czone_event(
			    z, "dry_run", cur, want, "pinned", reason,
			    json_pack("{s:s}", "would", want > cur ? "scale_up" : "scale_down"));
		} else if (want != cur) {
			czone_decision(z, want > cur ? "scale_up" : "scale_down", cur, want,
			               "pinned", reason);
			czone_event(z, want > cur ? "scale_up" : "scale_down", cur, want, "pinned",
			            reason, NULL);
			czone_resize(z, cur, want);
		} else {
			czone_hold(z, cur, "pinned", reason, 0);
		}
		json_decref(values);
		eval_free(e);
		return;
	}

	if (status != 0 || !res || !res->average_valid) {
		snprintf(reason, sizeof(reason), "no usable metrics (%s); holding at %d",
		         status != 0 ? (err ? err : "query failed")
		                     : "every server's metric is missing",
		         cur);
		log_debug("zone %s: evaluation: %s", z->name, reason);
		czone_hold(z, cur, "metrics missing", reason, 1);
		json_decref(values);
		eval_free(e);
		return;
	}

	struct scaler_policy_input in = {.current = cur,
	                                 .min = min,
	                                 .max = max,
	                                 .average = res->average,
	                                 .average_valid = 1,
	                                 .now = mono_now()};
	struct scaler_policy_decision out = {.desired = cur};
	if (z->policy.plugin->desc->ops.policy->decide(z->policy.ctx, &in, &out) < 0) {
		czone_hold(z, cur, "policy error", "the policy plugin failed", 1);
		json_decref(values);
		eval_free(e);
		return;
	}
	int want = out.desired;
	log_debug("zone %s: evaluation: %d server(s), average %.2f over %zu value(s); policy %s: "
	          "%d -> %d (%s)",
	          z->name, cur, res->average, res->n, z->policy.plugin->name, cur, out.desired,
	          out.reason);
	snprintf(reason, sizeof(reason), "%s", out.reason[0] ? out.reason : out.rule);
	if (want > max) {
		if (cur >= max) {
			char why[600];
			snprintf(why, sizeof(why), "%s; already at max (%d)", reason, max);
			czone_hold(z, cur, "max reached", why, 1);
			json_decref(values);
			eval_free(e);
			return;
		}
		want = max;
	}
	if (want < min)
		want = min;
	json_object_set_new(values, "_average", json_real(res->average));
	czone_act(z, cur, want, out.rule[0] ? out.rule : z->policy.plugin->name, reason, values,
	          any_missing);
	eval_free(e);
}

/* A zone outside its bounds goes back within them whatever the metrics say. */
static void czone_bound(struct czone *z, int cur, int to, const char *rule, const char *kind,
                        const char *would, const char *reason)
{
	czone_decision(z, kind, cur, to, rule, reason);
	if (z->cz->dry_run) {
		czone_event(z, "dry_run", cur, to, rule, reason,
		            json_pack("{s:s}", "would", would));
		return;
	}
	czone_event(z, kind, cur, to, rule, reason, NULL);
	czone_resize(z, cur, to);
}

static void czone_evaluate(struct czone *z)
{
	struct controller *c = z->c;
	if (!c->active || z->removed || z->evaluating || c->reconcile)
		return;
	if (!z->loaded) {
		czone_load(z);
		return;
	}
	z->evaluations++;
	int cur = czone_size(z);

	/* wait for servers still starting or being deleted before deciding more */
	for (size_t i = 0; i < z->nsrv; i++)
		if (z->srv[i].owner)
			return;
	char reason[128];
	if (cur < z->cz->min && !czone_pin_active(z)) {
		snprintf(reason, sizeof(reason), "below the zone's minimum (%d < %d)", cur,
		         z->cz->min);
		czone_bound(z, cur, z->cz->min, "min", "fill", "fill", reason);
		return;
	}
	if (cur > z->cz->max && !czone_pin_active(z)) {
		/* max was lowered by a reload */
		snprintf(reason, sizeof(reason), "above the zone's maximum (%d > %d)", cur,
		         z->cz->max);
		czone_bound(z, cur, z->cz->max, "max", "scale_down", "trim", reason);
		return;
	}

	struct eval *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->z = z;
	e->gen = c->gen;
	e->t0 = ev_time();
	e->servers = calloc(z->nsrv + 1, sizeof(*e->servers));
	for (size_t i = 0; e->servers && i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.state, "serving") == 0)
			e->servers[e->n++] = z->srv[i].rec.srv;
	z->refs++;
	z->evaluating = 1;
	if (e->n == 0) {
		/* nothing to measure: only the pin or the minimum can act */
		eval_metrics_done(e, -1, NULL, "no serving server to measure");
		return;
	}
	const struct scaler_metrics_ops *mo = c->d->metrics.plugin->desc->ops.metrics;
	if (mo->query(c->d->metrics.ctx, &z->cz->pub, e->servers, e->n, z->cz->window,
	              eval_metrics_done, e) < 0)
		eval_metrics_done(e, -1, NULL, "the metrics plugin refused the query");
}

/* ---- becoming primary ------------------------------------------------------------------------ */

/* A record a previous primary left half-way (reconciliation could not
 * settle it, e.g. a server still starting): finish its flow. */
static void czone_resume(struct czone *z, struct cserver *s)
{
	struct flow *f;
	if (s->owner || !(f = flow_new(z)))
		return;
	f->rec = s->rec;
	s->owner = f;
	if (strcmp(s->rec.state, "deleting") == 0) {
		log_info("zone %s: finishing the deletion of %s", z->name, s->rec.srv.id);
		delete_recorded(f, STORE_OK, NULL);
	} else if (!s->rec.srv.address[0]) {
		log_info("zone %s: dropping %s, recorded before it was created", z->name,
		         s->rec.srv.id);
		czone_server_forget(z, s->rec.srv.id);
		flow_delete_record(f, flow_record_gone);
	} else {
		log_info("zone %s: waiting for %s, started by a previous primary", z->name,
		         s->rec.srv.id);
		f->deadline = ev_time() + START_TIMEOUT;
		ev_set_cb(&f->timer, create_health_timer);
		create_health_check(f);
	}
}

struct zone_load {
	struct czone *z;
	unsigned gen;
};

/* The zone's records, read when this node becomes primary (after
 * reconciliation) or when a reload adds the zone; retried by the zone's
 * tick until it succeeds. */
static void czone_loaded(void *arg, enum store_status st, const struct store_server *srv, size_t n)
{
	struct zone_load *l = arg;
	struct czone *z = l->z;
	struct controller *c = z->c;
	z->loading = 0;
	if (l->gen != c->gen || !c->active || z->removed) {
		czone_unref(z);
		free(l);
		return;
	}
	free(l);
	if (st != STORE_OK && st != STORE_NOTFOUND) {
		log_err("zone %s: cannot read its servers from the state store; retrying", z->name);
		czone_unref(z);
		return;
	}
	z->nsrv = 0;
	for (size_t i = 0; i < n; i++)
		czone_server_add(z, &srv[i]);
	z->loaded = 1;
	for (size_t i = z->nsrv; i-- > 0;) /* backwards: resuming may forget one */
		if (strcmp(z->srv[i].rec.state, "serving") != 0)
			czone_resume(z, &z->srv[i]);
	czone_push_all(z);
	czone_evaluate(z); /* fills to min at once */
	czone_unref(z);
}

static void czone_load(struct czone *z)
{
	struct zone_load *l;
	if (z->loading || !(l = calloc(1, sizeof(*l))))
		return;
	l->z = z;
	l->gen = z->c->gen;
	z->refs++;
	z->loading = 1;
	if (store_servers_list(ctl_store(z->c), z->name, czone_loaded, l) < 0) {
		z->loading = 0;
		z->refs--;
		free(l);
	}
}

static void ctl_load(struct controller *c)
{
	for (struct czone *z = c->zones; z; z = z->next) {
		if (z->removed)
			continue;
		ev_timer_start(ctl_loop(c), &z->tick);
		czone_load(z);
	}
}

static void ctl_reconciled(void *arg, const struct reconcile_summary *sum)
{
	struct controller *c = arg;
	c->reconcile = NULL;
	if (!c->active)
		return;
	if (sum->status == RECONCILE_STALE) {
		ctl_fenced(c, sum->err);
		return;
	}
	if (sum->status != RECONCILE_OK)
		log_warn("reconciliation did not finish (%s); continuing with the recorded state",
		         sum->err[0] ? sum->err : reconcile_status_name(sum->status));
	else
		log_info(
		    "reconciliation: %zu record(s), %zu server(s): %zu adopted, %zu orphan(s) "
		    "removed, %zu stale record(s) dropped, %zu promoted, %zu deletion(s) finished",
		    sum->records, sum->servers, sum->adopted, sum->orphans_removed,
		    sum->records_dropped, sum->promoted, sum->deletions_finished);
	ctl_load(c);
}

struct ctl_health {
	void (*done)(void *arg, int healthy);
	void *arg;
};

static void ctl_reconcile_health_done(void *arg, const struct scaler_http_response *resp)
{
	struct ctl_health *r = arg;
	r->done(r->arg, resp->status >= 200 && resp->status < 300);
	free(r);
}

static int ctl_reconcile_health(void *ctx, const struct scaler_server *srv,
                                void (*done)(void *arg, int healthy), void *arg)
{
	struct controller *c = ctx;
	char url[512];
	struct ctl_health *r;
	if (!srv->address[0] || !(r = calloc(1, sizeof(*r))))
		return -1;
	r->done = done;
	r->arg = arg;
	const struct conf_zone *cz = conf_zone_find(c->d->conf, srv->zone);
	snprintf(url, sizeof(url), "%s%s", srv->address,
	         cz ? ctl_health_path(cz) : "/health_check");
	struct scaler_http_request req = {.method = "GET", .url = url, .timeout = HEALTH_TIMEOUT};
	if (!ctl_host(c)->http_request(&req, ctl_reconcile_health_done, r)) {
		free(r);
		return -1;
	}
	return 0;
}

void controller_start(struct controller *c, uint64_t epoch)
{
	if (c->reconcile) {
		reconcile_cancel(c->reconcile);
		c->reconcile = NULL;
	}
	for (struct czone *z = c->zones; z; z = z->next)
		z->loaded = 0;
	c->gen++;
	c->active = 1;
	c->epoch = epoch;
	if (!ctl_store(c)) {
		log_err("no state store: the control loop cannot run");
		return;
	}
	ctl_push_monitor_all(c);
	ev_timer_start(ctl_loop(c), &c->monitor_push);

	struct rc_zones *rz =
	    calloc(1, sizeof(*rz) + (c->d->conf->nzones + 1) * sizeof(rz->zones[0]));
	size_t nz = 0;
	for (size_t i = 0; rz && i < c->d->conf->nzones; i++)
		rz->zones[nz++] = &c->d->conf->zones[i].pub;
	if (rz) {
		rz->next = c->rc_zones;
		c->rc_zones = rz;
		c->reconcile = reconcile_start(ctl_store(c), &c->d->driver, rz->zones, nz, epoch,
		                               ctl_reconcile_health, c, ctl_reconciled, c);
	}
	if (!c->reconcile) {
		log_warn("reconciliation could not start; continuing with the recorded state");
		ctl_load(c);
	}
}

void controller_stop(struct controller *c, const char *reason)
{
	if (!c || !c->active)
		return;
	log_info("control loop stopped: %s", reason);
	c->active = 0;
	c->gen++;
	if (c->reconcile) {
		reconcile_cancel(c->reconcile);
		c->reconcile = NULL;
	}
	ev_timer_stop(ctl_loop(c), &c->monitor_push);
	for (struct czone *z = c->zones; z; z = z->next) {
		ev_timer_stop(ctl_loop(c), &z->tick);
		z->loaded = 0;
	}
}

/* ---- lifecycle and reload ----------------------------------------------------------------------
 */

struct controller *controller_new(struct daemon *d)
{
	struct controller *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->d = d;
	ev_timer_init(&c->monitor_push, ctl_on_monitor_push, MONITOR_PUSH_EVERY,
	              MONITOR_PUSH_EVERY);
	c->monitor_push.data = c;
	for (size_t i = 0; i < d->conf->nzones; i++)
		if (!czone_new(c, d->conf, &d->conf->zones[i])) {
			controller_free(c);
			return NULL;
		}
	return c;
}

void controller_free(struct controller *c)
{
	if (!c)
		return;
	ev_timer_stop(ctl_loop(c), &c->monitor_push);
	if (c->reconcile)
		reconcile_cancel(c->reconcile);
	while (c->rc_zones) {
		struct rc_zones *rz = c->rc_zones;
		c->rc_zones = rz->next;
		free(rz);
	}
	while (c->zones) {
		struct czone *z = c->zones;
		c->zones = z->next;
		ev_timer_stop(ctl_loop(c), &z->tick);
		plugin_instance_free(&z->policy);
		free(z->srv);
		free(z);
	}
	free(c);
}

void controller_reconfigure(struct controller *c, const struct conf *old, const struct conf *nc)
{
	(void)old;
	for (struct czone *z = c->zones, *next; z; z = next) {
		next = z->next; /* czone_unref may free and unlink z */
		if (z->removed)
			continue;
		const struct conf_zone *cz = conf_zone_find(nc, z->name);
		if (!cz) {
			log_info(
			    "zone %s removed: its servers stay until deleted by hand or re-added",
			    z->name);
			z->removed = 1;
			ev_timer_stop(ctl_loop(c), &z->tick);
			czone_unref(z); /* the controller's reference */
			continue;
		}
		if (czone_setup(z, nc, cz) < 0)
			log_err("zone %s: keeping the previous policy", z->name);
		z->cz = cz;
	}
	for (size_t i = 0; i < nc->nzones; i++) {
		if (czone_find(c, nc->zones[i].name))
			continue;
		struct czone *z = czone_new(c, nc, &nc->zones[i]);
		if (z && c->active && !c->reconcile) {
			ev_timer_start(ctl_loop(c), &z->tick);
			czone_load(z);
		}
	}
	if (c->active)
		ctl_push_monitor_all(c);
}

/* ---- admin API
 * ----------------------------------------------------------------------------------- */

static json_t *cserver_json(const struct cserver *s)
{
	json_t *j = store_server_to_json(&s->rec);
	json_object_set_new(j, "metric", s->metric_valid ? json_real(s->metric) : json_null());
	return j;
}

json_t *controller_zones_json(struct controller *c)
{
	json_t *arr = json_array();
	double now = ev_now(ctl_loop(c));
	for (size_t i = 0; i < c->d->conf->nzones; i++) {
		const struct conf_zone *cz = &c->d->conf->zones[i];
		struct czone *z = czone_find(c, cz->name);
		json_t *servers = json_array();
		json_t *last = json_null(), *pin = json_null();
		double cd = 0;
		if (z) {
			for (size_t k = 0; k < z->nsrv; k++)
				json_array_append_new(servers, cserver_json(&z->srv[k]));
			if (z->last.time > 0)
				last = json_pack("{s:f, s:s, s:i, s:i, s:s, s:s}", "time",
				                 z->last.time, "kind", z->last.kind, "from",
				                 z->last.from, "to", z->last.to, "rule",
				                 z->last.rule, "reason", z->last.reason);
			if (z->pin_count >= 0)
				pin = json_pack("{s:i, s:o}", "count", z->pin_count, "until",
				                z->pin_until > 0 ? json_real(z->pin_until)
				                                 : json_null());
			double up = cz->cooldown_up - (now - z->last_up);
			double down = cz->cooldown_down - (now - z->last_down);
			cd = up > down ? up : down;
			if (cd < 0)
				cd = 0;
		}
		json_array_append_new(
		    arr, json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:b, s:o, s:o, s:f, s:o, s:o}",
		                   "name", cz->name, "listen", cz->listen, "admin", cz->admin,
		                   "min", cz->min, "max", cz->max, "interval", cz->interval,
		                   "dry_run", cz->dry_run, "servers", servers, "last_decision",
		                   last, "cooldown_remaining", cd, "pinned", pin, "policy",
		                   json_string(cz->policy_plugin)));
	}
	return arr;
}

json_t *controller_servers_json(struct controller *c, const char *zone)
{
	if (zone && !conf_zone_find(c->d->conf, zone))
		return NULL;
	json_t *arr = json_array();
	for (struct czone *z = c->zones; z; z = z->next) {
		if (z->removed || (zone && strcmp(z->name, zone) != 0))
			continue;
		for (size_t k = 0; k < z->nsrv; k++)
			json_array_append_new(arr, cserver_json(&z->srv[k]));
	}
	return arr;
}

static int ctl_not_primary(struct controller *c, json_t **reply)
{
	struct daemon *d = c->d;
	*reply = json_pack("{s:s, s:s}", "error", "this node is not the primary", "primary",
	                   d->primary_url);
	return 503;
}

int controller_report(struct controller *c, const char *zone, json_t *dead, json_t **reply)
{
	struct czone *z = czone_find(c, zone);
	if (!z) {
		*reply = json_pack("{s:s}", "error", "unknown zone");
		return 404;
	}
	if (!c->active || !z->loaded)
		return ctl_not_primary(c, reply);
	json_t *deleted = json_array(), *unknown = json_array(), *busy = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(dead, i, v)
	{
		const char *addr = json_string_value(v);
		struct cserver *s = czone_server_by_address(z, addr);
		if (!s) {
			log_warn("zone %s: dead report names an unknown server %s; ignored", zone,
			         addr);
			json_array_append_new(unknown, json_string(addr));
			continue;
		}
		if (s->owner || strcmp(s->rec.state, "deleting") == 0) {
			json_array_append_new(busy, json_string(addr));
			continue;
		}
		czone_event(z, "replace", czone_size(z), czone_size(z) - 1, "dead report",
		            "the balancer reported the server dead; deleting and refilling to min",
		            json_pack("{s:s, s:s}", "server", s->rec.srv.id, "address", addr));
		json_array_append_new(deleted, json_string(s->rec.srv.id));
		czone_delete(z, s, 0, 1);
	}
	*reply = json_pack("{s:o, s:o, s:o}", "deleted", deleted, "unknown", unknown, "in_progress",
	                   busy);
	return 200;
}

int controller_pin(struct controller *c, const char *zone, int count, double duration,
                   json_t **reply)
{
	struct czone *z = czone_find(c, zone);
	if (!z) {
		*reply = json_pack("{s:s}", "error", "unknown zone");
		return 404;
	}
	if (!c->active)
		return ctl_not_primary(c, reply);
	if (count >= 0 && (count < z->cz->min || count > z->cz->max)) {
		*reply = json_pack("{s:s}", "error", "count must be within the zone's min..max");
		return 400;
	}
	char reason[128];
	if (count < 0) {
		snprintf(reason, sizeof(reason), "unpinned by an operator");
		czone_event(z, "unpin", czone_size(z), czone_size(z), "operator", reason, NULL);
		z->pin_count = -1;
		z->pin_until = 0;
		*reply = json_pack("{s:s, s:n}", "zone", zone, "count");
		return 200;
	}
	z->pin_count = count;
	z->pin_until = duration > 0 ? unix_now() + duration : 0;
	snprintf(reason, sizeof(reason), "pinned at %d by an operator%s", count,
	         duration > 0 ? " for a while" : "");
	czone_event(z, "pin", czone_size(z), count, "operator", reason,
	            json_pack("{s:f}", "for", duration));
	czone_evaluate(z);
	*reply = json_pack("{s:s, s:i, s:o}", "zone", zone, "count", count, "until",
	                   z->pin_until > 0 ? json_real(z->pin_until) : json_null());
	return 200;
}

int controller_drain(struct controller *c, const char *zone, const char *server, json_t **reply)
{
	struct czone *z = czone_find(c, zone);
	if (!z) {
		*reply = json_pack("{s:s}", "error", "unknown zone");
		return 404;
	}
	if (!c->active)
		return ctl_not_primary(c, reply);
	struct cserver *s = czone_server(z, server);
	if (!s) {
		*reply = json_pack("{s:s}", "error", "unknown server");
		return 404;
	}
	if (s->owner || strcmp(s->rec.state, "serving") != 0) {
		*reply = json_pack("{s:s, s:s}", "error", "the server is busy or not serving",
		                   "state", s->rec.state);
		return 409;
	}
	czone_event(z, "drain", czone_size(z), czone_size(z) - 1, "operator",
	            "drained by an operator; the zone is refilled to its minimum",
	            json_pack("{s:s}", "server", server));
	czone_delete(z, s, 1, 1);
	*reply = json_pack("{s:s, s:s}", "result", "draining", "server", server);
	return 202;
}

void controller_metrics(struct controller *c, FILE *f)
{
	fprintf(f, "# HELP scaler_evaluations_total Control loop evaluations by zone.\n"
	           "# TYPE scaler_evaluations_total counter\n");
	for (struct czone *z = c->zones; z; z = z->next)
		if (!z->removed)
			fprintf(f, "scaler_evaluations_total{zone=\"%s\"} %lu\n", z->name,
			        z->evaluations);
	fprintf(f, "# HELP scaler_decisions_total Decisions by zone and kind.\n"
	           "# TYPE scaler_decisions_total counter\n");
	for (struct czone *z = c->zones; z; z = z->next) {
		if (z->removed)
			continue;
		fprintf(f, "scaler_decisions_total{zone=\"%s\",kind=\"scale_up\"} %lu\n", z->name,
		        z->ups);
		fprintf(f, "scaler_decisions_total{zone=\"%s\",kind=\"scale_down\"} %lu\n", z->name,
		        z->downs);
		fprintf(f, "scaler_decisions_total{zone=\"%s\",kind=\"hold\"} %lu\n", z->name,
		        z->holds);
	}
	fprintf(f,
	        "# HELP scaler_servers Servers by zone and state.\n# TYPE scaler_servers gauge\n");
	for (struct czone *z = c->zones; z; z = z->next) {
		if (z->removed)
			continue;
		const char *states[] = {"starting", "serving", "deleting"};
		for (size_t i = 0; i < 3; i++)
			fprintf(f, "scaler_servers{zone=\"%s\",state=\"%s\"} %d\n", z->name,
			        states[i], czone_count(z, states[i]));
	}
	fprintf(f, "# HELP scaler_driver_calls_total Driver calls by operation.\n"
	           "# TYPE scaler_driver_calls_total counter\n");
	for (int i = 0; i < 3; i++)
		fprintf(f, "scaler_driver_calls_total{op=\"%s\"} %lu\n", op_names[i],
		        c->driver_calls[i]);
	fprintf(f, "# HELP scaler_driver_errors_total Failed driver calls by operation.\n"
	           "# TYPE scaler_driver_errors_total counter\n");
	for (int i = 0; i < 3; i++)
		fprintf(f, "scaler_driver_errors_total{op=\"%s\"} %lu\n", op_names[i],
		        c->driver_errors[i]);
	fprintf(f, "# HELP scaler_driver_call_seconds Driver call latency.\n"
	           "# TYPE scaler_driver_call_seconds summary\n");
	for (int i = 0; i < 3; i++) {
		fprintf(f, "scaler_driver_call_seconds_sum{op=\"%s\"} %.6f\n", op_names[i],
		        c->driver_seconds[i]);
		fprintf(f, "scaler_driver_call_seconds_count{op=\"%s\"} %lu\n", op_names[i],
		        c->driver_calls[i]);
	}
	fprintf(f,
	        "# HELP scaler_metric_queries_total Metrics queries.\n"
	        "# TYPE scaler_metric_queries_total counter\nscaler_metric_queries_total %lu\n",
	        c->metric_queries);
	fprintf(f,
	        "# HELP scaler_metric_errors_total Failed metrics queries.\n"
	        "# TYPE scaler_metric_errors_total counter\nscaler_metric_errors_total %lu\n",
	        c->metric_errors);
	fprintf(f,
	        "# HELP scaler_metric_query_seconds Metrics query latency.\n"
	        "# TYPE scaler_metric_query_seconds summary\n"
	        "scaler_metric_query_seconds_sum %.6f\nscaler_metric_query_seconds_count %lu\n",
	        c->metric_seconds, c->metric_queries);
	fprintf(f,
	        "# HELP scaler_fenced_writes_total State store writes refused as stale.\n"
	        "# TYPE scaler_fenced_writes_total counter\nscaler_fenced_writes_total %lu\n",
	        c->fenced);
}
