/* Becoming primary: reconcile Redis with what the driver lists, read each
 * zone's servers, finish what a previous primary left half-way, fill zones
 * to their minimum and start evaluating; sweep for orphans every
 * reconcile_interval while primary; and stop at once when deposed. */
#include "config.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "reconcile.h"

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

void czone_load(struct czone *z)
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
	ctl_sweep_arm(c);
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

/* The configured zones as the reconciliation wants them (names only: it
 * copies them). Free both. NULL when out of memory. */
static struct scaler_zone *ctl_zone_list(struct controller *c, const struct scaler_zone ***zp)
{
	size_t n = c->d->conf->nzones;
	struct scaler_zone *zones = calloc(n + 1, sizeof(*zones));
	*zp = calloc(n + 1, sizeof(**zp));
	if (!zones || !*zp) {
		free(zones);
		free(*zp);
		*zp = NULL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		zones[i].name = c->d->conf->zones[i].name;
		(*zp)[i] = &zones[i];
	}
	return zones;
}

/* ---- the orphan sweep (see reconcile.h) ------------------------------------------------------ */

static void ctl_seen_set(struct controller *c, const struct reconcile_seen *seen)
{
	free(c->seen.v);
	c->seen.v = NULL;
	c->seen.n = 0;
	if (!seen || !seen->n || !(c->seen.v = malloc(seen->n * sizeof(*seen->v))))
		return;
	memcpy(c->seen.v, seen->v, seen->n * sizeof(*seen->v));
	c->seen.n = seen->n;
}

/* An orphan the sweep recorded `serving`: the zone's flows and balancer
 * learn of it now (its zone was loaded before the sweep started). */
static void ctl_sweep_adopted(void *arg, const struct store_server *rec)
{
	struct controller *c = arg;
	struct czone *z = c->active ? czone_find(c, rec->srv.zone) : NULL;
	if (!z || !z->loaded || czone_server(z, rec->srv.id))
		return;
	if (!czone_server_add(z, rec)) {
		log_err("zone %s: out of memory adding adopted server %s", z->name, rec->srv.id);
		return;
	}
	czone_push(z, rec->srv.address, NULL);
}

static void ctl_swept(void *arg, const struct reconcile_summary *sum)
{
	struct controller *c = arg;
	c->sweep = NULL;
	if (!c->active)
		return;
	if (sum->status == RECONCILE_STALE) {
		ctl_fenced(c, sum->err);
		return;
	}
	ctl_seen_set(c, sum->seen);
	if (sum->status != RECONCILE_OK)
		log_warn("orphan sweep: %s",
		         sum->err[0] ? sum->err : reconcile_status_name(sum->status));
	else if (sum->adopted || sum->orphans_removed)
		log_info("orphan sweep: %zu orphan(s) adopted, %zu removed", sum->adopted,
		         sum->orphans_removed);
	ctl_sweep_arm(c);
}

static void ctl_sweep_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct controller *c = w->data;
	(void)loop;
	(void)revents;
	if (!c->active || c->reconcile || c->sweep)
		return; /* stopped, or taking over: armed again when that is done */
	for (struct czone *z = c->zones; z; z = z->next)
		if (!z->removed && !z->loaded) {
			/* an adopted server must not miss the zone's first read */
			ctl_sweep_arm(c);
			return;
		}
	const struct scaler_zone **zp = NULL;
	struct scaler_zone *zones = ctl_zone_list(c, &zp);
	if (zones)
		c->sweep = reconcile_sweep(ctl_store(c), &c->d->driver, zp, c->d->conf->nzones,
		                           c->epoch, &c->seen, ctl_reconcile_health, c,
		                           ctl_sweep_adopted, ctl_swept, c);
	free(zones);
	free(zp);
	if (!c->sweep) {
		log_warn("orphan sweep could not start; trying again later");
		ctl_sweep_arm(c);
	}
}

void ctl_sweep_arm(struct controller *c)
{
	double every = c->d->conf->reconcile_interval;
	if (c->sweep || c->reconcile)
		return; /* armed again when the run ends */
	ev_timer_stop(ctl_loop(c), &c->sweep_timer);
	if (!c->active || every <= 0 || !ctl_store(c))
		return;
	ev_timer_init(&c->sweep_timer, ctl_sweep_timer, every, 0.);
	c->sweep_timer.data = c;
	ev_timer_start(ctl_loop(c), &c->sweep_timer);
}

void ctl_sweep_stop(struct controller *c)
{
	if (c->sweep) {
		reconcile_cancel(c->sweep);
		c->sweep = NULL;
	}
	ev_timer_stop(ctl_loop(c), &c->sweep_timer);
	ctl_seen_set(c, NULL);
}

void controller_start(struct controller *c, uint64_t epoch)
{
	if (c->reconcile) {
		reconcile_cancel(c->reconcile);
		c->reconcile = NULL;
	}
	ctl_sweep_stop(c); /* never with the takeover; what it saw is of an older term */
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

	const struct scaler_zone **zp = NULL;
	struct scaler_zone *zones = ctl_zone_list(c, &zp);
	if (zones)
		c->reconcile = reconcile_start(ctl_store(c), &c->d->driver, zp, c->d->conf->nzones,
		                               epoch, ctl_reconcile_health, c, ctl_reconciled, c);
	free(zones);
	free(zp);
	if (!c->reconcile) {
		log_warn("reconciliation could not start; continuing with the recorded state");
		ctl_load(c);
		ctl_sweep_arm(c);
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
	ctl_sweep_stop(c);
	ev_timer_stop(ctl_loop(c), &c->monitor_push);
	for (struct czone *z = c->zones; z; z = z->next) {
		ev_timer_stop(ctl_loop(c), &z->tick);
		z->loaded = 0;
	}
}
