/* The control loop. While this node is primary, every zone is evaluated
 * each `interval`: metrics → policy → clamp/cooldown/pin → driver → store →
 * balancer. Zones are independent: each has its own timer and its own
 * in-flight work, so a slow driver call in one zone delays no other.
 *
 * This file: the zones and their servers as the controller knows them,
 * events, fencing, pushes to the balancers, and reload. Evaluation is in
 * evaluate.c, creating and deleting servers in flows.c, becoming primary in
 * primary.c (control.h). Every store write is fenced by the epoch; a refused
 * write deposes us. */
#include "config.h"

#include <ev.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "history.h"
#include "log.h"
#include "reconcile.h"

#define MONITOR_PUSH_EVERY 10.0

double ctl_unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- zones ------------------------------------------------------------------ */

struct czone *czone_find(struct controller *c, const char *name)
{
	for (struct czone *z = c->zones; z; z = z->next)
		if (!z->removed && strcmp(z->name, name) == 0)
			return z;
	return NULL;
}

/* Monotonic seconds: policy windows must not move with the wall clock. */
double ctl_mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The policy's bind (ABI 1.3) with the zone's metric names: 0 and the
 * windows it reads them over; -1 after logging when it refuses them or takes
 * one metric and the zone has several. */
static int ctl_bind(const struct plugin_instance *policy, const struct conf_zone *cz, int *binds,
                    double *windows, size_t *nwindows)
{
	/* the host's copy of the ops: bind is NULL for a plugin built before 1.3 */
	const struct scaler_policy_ops *po = &policy->plugin->ops.policy;
	const char *names[CONF_METRICS_MAX];
	for (size_t i = 0; i < cz->nmetrics; i++)
		names[i] = cz->metrics_list[i].name;
	*nwindows = 0;
	*binds = po->bind != NULL;
	if (!*binds) {
		if (cz->nmetrics > 1) {
			conf_error(cz->metrics ? cz->metrics : cz->group,
			           "zone %s: policy \"%s\" takes one metric; the zone has %zu "
			           "(\"target\" and \"concurrency\" take several)",
			           cz->name, policy->plugin->name, cz->nmetrics);
			return -1;
		}
		return 0;
	}
	if (po->bind(policy->ctx, names, cz->nmetrics, windows, nwindows) < 0)
		return -1;
	if (*nwindows > SCALER_POLICY_WINDOWS_MAX)
		*nwindows = SCALER_POLICY_WINDOWS_MAX;
	for (size_t i = 0; i < *nwindows; i++)
		if (!(windows[i] > 0)) {
			log_err("zone %s: policy \"%s\" asked for a window of %g s", cz->name,
			        policy->plugin->name, windows[i]);
			return -1;
		}
	return 0;
}

/* A zone whose metrics come from its builtin balancer (metrics plugin
 * "balancer") reads them over windows that balancer must keep: refused here,
 * at scalerd -t, rather than missing at every evaluation. The two plugins
 * are scaler's own, so the host knows where stats_history is (default 60). */
static int ctl_stats_window_check(const struct conf_zone *cz, const double *windows, size_t nw)
{
	int uses = 0;
	for (size_t i = 0; i < cz->nmetrics; i++)
		uses |= strcmp(cz->metrics_list[i].plugin.name, "balancer") == 0;
	if (!uses || strcmp(cz->balancer_plugin, "builtin") != 0)
		return 0;
	int history = 60;
	const config_setting_t *hs =
	    cz->balancer_conf ? config_setting_get_member(cz->balancer_conf, "stats_history")
	                      : NULL;
	if (hs && config_setting_type(hs) == CONFIG_TYPE_INT)
		history = config_setting_get_int(hs);
	const config_setting_t *at = hs ? hs : cz->balancer_conf ? cz->balancer_conf : cz->group;
	double longest = 0;
	for (size_t i = 0; i < nw; i++)
		if (windows[i] > longest)
			longest = windows[i];
	if (history <= 0) {
		conf_error(
		    at,
		    "zone %s scales on the balancer's figures (metrics plugin \"balancer\"), "
		    "but its balancer keeps none (stats_history = 0)",
		    cz->name);
		return -1;
	}
	if (longest > history) {
		conf_error(
		    at,
		    "zone %s: its policy reads the balancer's figures over %g s, longer than "
		    "the %d s its balancer keeps: raise stats_history to at least %.0f",
		    cz->name, longest, history, ceil(longest));
		return -1;
	}
	return 0;
}

/* Check the metrics in `list` (n of them): -1 after reporting each that
 * cannot be made, at its `plugin` setting. */
static int ctl_metrics_check(const struct conf *conf, const struct conf_metric *list, size_t n,
                             const struct scaler_host *host)
{
	struct plugin_instance pi;
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		const struct conf_metric *m = &list[i];
		if (plugin_instance_new(
		        &pi, conf->plugin_dir, SCALER_KIND_METRICS, m->plugin.name, host,
		        m->plugin.group,
		        plugin_setting(m->plugin.group, conf_plugin_dir_setting(conf)), NULL,
		        0) < 0)
			failed = 1;
		else
			plugin_instance_free(&pi);
	}
	return failed ? -1 : 0;
}

int controller_check_policies(const struct conf *conf, const struct scaler_host *host)
{
	int failed = 0;
	struct plugin_instance pi;

	/* the global groups are checked even with no zone */
	int global_ok =
	    plugin_instance_new(&pi, conf->plugin_dir, SCALER_KIND_POLICY, conf->policy.name, host,
	                        conf->policy.group,
	                        plugin_setting(conf->policy.group, conf_plugin_dir_setting(conf)),
	                        NULL, 0) == 0;
	if (global_ok)
		plugin_instance_free(&pi);
	else
		failed = 1;
	if (ctl_metrics_check(conf, conf->metrics, conf->nmetrics, host) < 0)
		failed = 1;
	for (size_t i = 0; i < conf->nzones; i++) {
		const struct conf_zone *cz = &conf->zones[i];
		/* a zone's own metrics group; names of global ones are checked above */
		if (cz->metrics && config_setting_is_group(cz->metrics) &&
		    ctl_metrics_check(conf, cz->metrics_list, cz->nmetrics, host) < 0)
			failed = 1;
		if (!cz->policy && !global_ok)
			continue;
		/* the zone's policy, bound to the zone's metrics */
		if (plugin_instance_new(&pi, conf->plugin_dir, SCALER_KIND_POLICY,
		                        cz->policy_plugin, host, cz->policy_conf,
		                        plugin_setting(cz->policy, NULL), NULL, 0) < 0) {
			failed = 1;
			continue;
		}
		double windows[SCALER_POLICY_WINDOWS_MAX];
		size_t nw;
		int binds;
		if (ctl_bind(&pi, cz, &binds, windows, &nw) < 0)
			failed = 1;
		else if (ctl_stats_window_check(cz, binds ? windows : &cz->window, binds ? nw : 1) <
		         0)
			failed = 1;
		plugin_instance_free(&pi);
	}
	return failed ? -1 : 0;
}

static void czone_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	czone_evaluate(t->data);
}

void ctl_conf_set(struct conf **ref, const struct conf *conf)
{
	struct conf *old = *ref;
	*ref = conf_ref(conf);
	conf_free(old);
}

void czone_metrics_retired_free(struct czone *z)
{
	if (z->evaluating)
		return;
	for (size_t i = 0; i < z->nretired; i++) {
		plugin_instance_free(&z->retired[i]);
		conf_free(z->retired_confs[i]);
	}
	free(z->retired);
	free(z->retired_confs);
	z->retired = NULL;
	z->retired_confs = NULL;
	z->nretired = 0;
}

/* A metric instance goes (with the reference to its config): now, or once
 * the evaluation in flight is back. */
static void czone_metric_retire(struct czone *z, struct czone_metric *m)
{
	struct plugin_instance *r = NULL;
	struct conf **rc = NULL;
	if (!m->pi.plugin)
		return;
	if (z->evaluating) {
		r = realloc(z->retired, (z->nretired + 1) * sizeof(*r));
		if (r)
			z->retired = r;
		rc = r ? realloc(z->retired_confs, (z->nretired + 1) * sizeof(*rc)) : NULL;
		if (rc)
			z->retired_confs = rc;
	}
	if (!r || !rc) {
		/* nothing can call it back: fini cancels its queries */
		plugin_instance_free(&m->pi);
		conf_free(m->conf);
		m->conf = NULL;
		return;
	}
	z->retired[z->nretired] = m->pi;
	z->retired_confs[z->nretired++] = m->conf;
	memset(&m->pi, 0, sizeof(m->pi));
	m->conf = NULL;
}

/* The zone's metric instances for cz: kept when the same plugin takes the
 * settings (unchanged or reloaded), made otherwise; -1 (nothing changed)
 * when one cannot be made. */
static int czone_metrics_setup(struct czone *z, const struct conf *conf, const struct conf_zone *cz)
{
	struct czone_metric next[CONF_METRICS_MAX];
	int used[CONF_METRICS_MAX] = {0};
	memset(next, 0, sizeof(next));
	for (size_t i = 0; i < cz->nmetrics; i++) {
		const struct conf_metric *m = &cz->metrics_list[i];
		struct czone_metric *n = &next[i];
		snprintf(n->name, sizeof(n->name), "%s", m->name);
		n->group = m->plugin.group;
		for (size_t k = 0; k < z->nmetrics && !n->pi.plugin; k++) {
			struct czone_metric *o = &z->metrics[k];
			if (used[k] || strcmp(o->name, m->name) ||
			    strcmp(o->pi.plugin->name, m->plugin.name))
				continue;
			const struct scaler_plugin *d = o->pi.plugin->desc;
			if (conf_setting_equal(o->group, m->plugin.group)) {
				/* unchanged: it keeps pointing into its config */
				n->pi = o->pi;
				n->group = o->group;
				n->conf = conf_ref(o->conf);
				used[k] = 1;
			} else if (d->reload && d->reload(o->pi.ctx, m->plugin.group) == 0) {
				n->pi = o->pi;
				n->conf = conf_ref(conf);
				used[k] = 1;
			}
		}
		if (!n->pi.plugin &&
		    plugin_instance_new(
		        &n->pi, conf->plugin_dir, SCALER_KIND_METRICS, m->plugin.name,
		        ctl_host(z->c), m->plugin.group,
		        plugin_setting(m->plugin.group, conf_plugin_dir_setting(conf)), NULL,
		        0) < 0) {
			for (size_t k = 0; k < i; k++) {
				int kept = 0;
				for (size_t o = 0; o < z->nmetrics; o++)
					kept |= used[o] && z->metrics[o].pi.ctx == next[k].pi.ctx;
				if (!kept)
					plugin_instance_free(&next[k].pi);
				conf_free(next[k].conf);
			}
			return -1;
		}
		if (!n->conf)
			n->conf = conf_ref(conf);
		const struct scaler_metrics_ops *mo = &n->pi.plugin->ops.metrics;
		const char *unit = mo->unit ? mo->unit(n->pi.ctx) : NULL;
		n->unit = unit ? unit : "";
	}
	for (size_t k = 0; k < z->nmetrics; k++) {
		if (!used[k])
			czone_metric_retire(z, &z->metrics[k]);
		conf_free(z->metrics[k].conf); /* a kept one took its own reference */
	}
	memcpy(z->metrics, next, sizeof(next));
	z->nmetrics = cz->nmetrics;
	return 0;
}

static int czone_setup(struct czone *z, const struct conf *conf, const struct conf_zone *cz)
{
	struct plugin_instance pi;
	const struct scaler_plugin *cur = z->policy.plugin ? z->policy.plugin->desc : NULL;

	if (czone_metrics_setup(z, conf, cz) < 0)
		return -1;
	/* the same policy plugin keeps its history (windows, streaks) when it
	 * can apply the new settings itself */
	int kept = cur && strcmp(z->policy.plugin->name, cz->policy_plugin) == 0 && cur->reload &&
	           cur->reload(z->policy.ctx, cz->policy_conf) == 0;
	if (!kept) {
		if (plugin_instance_new(&pi, conf->plugin_dir, SCALER_KIND_POLICY,
		                        cz->policy_plugin, ctl_host(z->c), cz->policy_conf,
		                        plugin_setting(cz->policy ? cz->policy : conf->policy.group,
		                                       conf_plugin_dir_setting(conf)),
		                        NULL, 0) < 0)
			return -1;
		plugin_instance_free(&z->policy);
		z->policy = pi;
	}
	ctl_conf_set(&z->policy_conf, conf); /* made with, or reloaded to, this config's group */
	if (ctl_bind(&z->policy, cz, &z->binds, z->windows, &z->nwindows) < 0)
		log_err("zone %s: the policy refused the zone's metrics; it decides on the first "
		        "metric only",
		        cz->name);
	z->cz = cz;
	ctl_conf_set(&z->conf, conf);
	int active = ev_is_active(&z->tick);
	ev_timer_stop(ctl_loop(z->c), &z->tick);
	ev_timer_set(&z->tick, cz->interval, cz->interval);
	if (active)
		ev_timer_start(ctl_loop(z->c), &z->tick);
	return 0;
}

static void czone_free_parts(struct czone *z);

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
		czone_free_parts(z);
		free(z);
		return NULL;
	}
	z->next = c->zones;
	c->zones = z;
	return z;
}

/* What a zone owns: its plugin instances and the configs they point into. */
static void czone_free_parts(struct czone *z)
{
	plugin_instance_free(&z->policy);
	for (size_t i = 0; i < z->nmetrics; i++) {
		plugin_instance_free(&z->metrics[i].pi);
		conf_free(z->metrics[i].conf);
	}
	z->evaluating = 0;
	czone_metrics_retired_free(z);
	conf_free(z->policy_conf);
	conf_free(z->conf);
	free(z->srv);
	history_free(z->hist);
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
	czone_free_parts(z);
	free(z);
}

void czone_unref(struct czone *z)
{
	if (--z->refs == 0)
		czone_destroy(z);
}

/* ---- servers of a zone ---------------------------------------------------------- */

struct cserver *czone_server(struct czone *z, const char *id)
{
	for (size_t i = 0; i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.srv.id, id) == 0)
			return &z->srv[i];
	return NULL;
}

struct cserver *czone_server_by_address(struct czone *z, const char *address)
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

struct cserver *czone_server_add(struct czone *z, const struct store_server *rec)
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

void czone_server_forget(struct czone *z, const char *id)
{
	for (size_t i = 0; i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.srv.id, id) == 0) {
			z->srv[i] = z->srv[--z->nsrv];
			return;
		}
}

int czone_count(const struct czone *z, const char *state)
{
	int n = 0;
	for (size_t i = 0; i < z->nsrv; i++)
		if (!state || strcmp(z->srv[i].rec.state, state) == 0)
			n++;
	return n;
}

/* servers that count toward the zone's size: starting or serving */
int czone_size(const struct czone *z)
{
	return czone_count(z, "starting") + czone_count(z, "serving");
}

int czone_min(const struct czone *z)
{
	return z->cz->min < 1 && czone_waking(z) ? 1 : z->cz->min;
}

int czone_waking(const struct czone *z)
{
	return z->wake_until > ev_now(ctl_loop(z->c));
}

/* ---- events ---------------------------------------------------------------------- */

struct ctl_event {
	struct controller *c;
	unsigned gen;
};

static void ctl_event_done(void *arg, enum store_status st, const char *err)
{
	struct ctl_event *e = arg;
	if (st == STORE_STALE && e->gen == e->c->gen && e->c->active)
		ctl_fenced(e->c, err);
	else if (st != STORE_OK && st != STORE_STALE)
		log_warn("could not record an event: %s", err ? err : store_status_name(st));
	free(e);
}

void czone_event(struct czone *z, const char *kind, int from, int to, const char *rule,
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

void czone_decision(struct czone *z, const char *kind, int from, int to, const char *rule,
                    const char *reason)
{
	z->last.time = ctl_unix_now();
	z->last.from = from;
	z->last.to = to;
	snprintf(z->last.kind, sizeof(z->last.kind), "%s", kind);
	snprintf(z->last.rule, sizeof(z->last.rule), "%s", rule ? rule : "");
	snprintf(z->last.reason, sizeof(z->last.reason), "%s", reason);
}

/* ---- fencing ----------------------------------------------------------------------- */

void ctl_fenced(struct controller *c, const char *err)
{
	struct daemon *d = c->d;
	uint64_t cur = store_stale_current(err);
	c->fenced++;
	log_err(
	    "a state store write was refused as stale (epoch %llu, current %llu): stepping down",
	    (unsigned long long)c->epoch, (unsigned long long)cur);
	const struct scaler_election_ops *eo = &d->election.plugin->ops.election;
	controller_stop(c, "fenced by a newer epoch");
	d->role = ROLE_BACKUP;
	if (eo->fenced)
		eo->fenced(d->election.ctx, cur);
}

/* ---- balancer pushes ------------------------------------------------------------------ */

/* A push in flight: the zone handed to the balancer plugin stays valid
 * until its callback, so the push holds the zone's config. */
struct ctl_push {
	struct conf *conf;
	char what[200];
};

static struct ctl_push *ctl_push_new(struct czone *z, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct ctl_push *ctl_push_new(struct czone *z, const char *fmt, ...)
{
	struct ctl_push *p = calloc(1, sizeof(*p));
	va_list ap;
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p->what, sizeof(p->what), fmt, ap);
	va_end(ap);
	p->conf = conf_ref(z->conf);
	return p;
}

static void ctl_push_free(struct ctl_push *p)
{
	if (p) {
		conf_free(p->conf);
		free(p);
	}
}

static void ctl_push_done(void *arg, int status, const char *err)
{
	struct ctl_push *p = arg;
	const char *what = p ? p->what : "?";
	if (status != 0)
		log_warn(
		    "balancer push (%s) failed: %s; the worker also restores from the state store",
		    what, err ? err : "error");
	else
		log_debug("balancer push (%s) done", what);
	ctl_push_free(p);
}

void czone_push(struct czone *z, const char *add, const char *del)
{
	struct daemon *d = z->c->d;
	const struct scaler_balancer_ops *bo = &d->balancer.plugin->ops.balancer;
	const char *adds[1] = {add}, *dels[1] = {del};
	if (!bo->push_servers)
		return;
	struct ctl_push *p =
	    ctl_push_new(z, "zone %s: %s %s", z->name, add ? "add" : "delete", add ? add : del);
	if (bo->push_servers(d->balancer.ctx, &z->cz->pub, adds, add ? 1 : 0, dels, del ? 1 : 0,
	                     ctl_push_done, p) < 0) {
		log_warn("zone %s: could not push to the balancer", z->name);
		ctl_push_free(p);
	}
}

void czone_push_all(struct czone *z)
{
	struct daemon *d = z->c->d;
	const struct scaler_balancer_ops *bo = &d->balancer.plugin->ops.balancer;
	const char **adds = calloc(z->nsrv + 1, sizeof(char *));
	size_t n = 0;
	if (!adds || !bo->push_servers) {
		free(adds);
		return;
	}
	for (size_t i = 0; i < z->nsrv; i++)
		if (strcmp(z->srv[i].rec.state, "serving") == 0)
			adds[n++] = z->srv[i].rec.srv.address;
	struct ctl_push *p = ctl_push_new(z, "%s", z->name);
	if (bo->push_servers(d->balancer.ctx, &z->cz->pub, adds, n, NULL, 0, ctl_push_done, p) < 0)
		ctl_push_free(p);
	free(adds);
}

void ctl_push_monitor_all(struct controller *c)
{
	struct daemon *d = c->d;
	const struct scaler_balancer_ops *bo = &d->balancer.plugin->ops.balancer;
	if (!c->active || !bo->push_monitor)
		return;
	for (struct czone *z = c->zones; z; z = z->next) {
		if (z->removed)
			continue;
		struct ctl_push *p = ctl_push_new(z, "zone %s: monitor", z->name);
		if (bo->push_monitor(d->balancer.ctx, &z->cz->pub, d->conf->admin_url, c->epoch,
		                     ctl_push_done, p) < 0)
			ctl_push_free(p);
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

/* ---- lifecycle and reload ---------------------------------------------------- */

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
	ctl_sweep_stop(c);
	while (c->zones) {
		struct czone *z = c->zones;
		c->zones = z->next;
		ev_timer_stop(ctl_loop(c), &z->tick);
		czone_free_parts(z);
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
		ctl_conf_set(&z->conf, nc);
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
	if (c->active) {
		ctl_push_monitor_all(c);
		ctl_sweep_arm(c);
	}
}
