#include "config.h"

#include "reconcile.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin.h"
#include "store.h"

enum rt_kind {
	RT_ORPHAN,     /* server without record: adopt when healthy, else remove */
	RT_PROMOTE,    /* `starting` record, server runs: `serving` when healthy */
	RT_DROP,       /* record without a running server: remove what is left, delete it */
	RT_FINISH_DEL, /* `deleting` record: remove the server, delete the record */
};

struct reconcile {
	struct store *store;
	const struct scaler_driver_ops *ops;
	void *driver_ctx;
	char driver_name[32];
	char (*zones)[64]; /* the configured zones' names (copies) */
	size_t nzones;
	int sweep;                    /* a periodic orphan sweep (see reconcile_sweep) */
	struct reconcile_seen prev;   /* sweep: the candidates of the previous sweep (a copy) */
	struct reconcile_seen seen;   /* sweep: the candidates of this one */
	reconcile_adopt_fn adopted;   /* sweep: told of each orphan adopted */
	struct scaler_server *listed; /* the driver's list, read first */
	size_t nlisted;
	uint64_t epoch;
	reconcile_health_fn health;
	void *health_arg;
	reconcile_cb cb;
	void *arg;

	struct store_server *records;
	size_t nrecords;
	int *zone_count; /* records per zone, for the events' from/to */
	size_t pending;  /* tasks in flight + the listing stage */
	int cancelled, stale;
	struct reconcile_summary sum;
};

struct rt_task {
	struct reconcile *r;
	enum rt_kind kind;
	size_t zone;
	struct store_server rec;  /* the record (built from srv for orphans) */
	struct scaler_server srv; /* the driver's view, when it has one */
	int have_srv;
	const char *action; /* for the event */
};

static void rec_finish_if_done(struct reconcile *r);

const char *reconcile_status_name(enum reconcile_status st)
{
	switch (st) {
	case RECONCILE_OK:
		return "ok";
	case RECONCILE_ERR:
		return "error";
	case RECONCILE_STALE:
		return "stale";
	}
	return "unknown";
}

static void rec_error(struct reconcile *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rec_error(struct reconcile *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(SCALER_LOG_ERR, "reconcile", "%s", msg);
	r->sum.errors++;
	if (!r->sum.err[0])
		snprintf(r->sum.err, sizeof(r->sum.err), "%s", msg);
}

static void rec_stale(struct reconcile *r, const char *err)
{
	if (!r->stale)
		log_msg(SCALER_LOG_WARNING, "reconcile", "stopping: %s", err ? err : "stale epoch");
	r->stale = 1;
	if (!r->sum.err[0])
		snprintf(r->sum.err, sizeof(r->sum.err), "%s", err ? err : "stale epoch");
}

static void rec_free(struct reconcile *r)
{
	free(r->records);
	free(r->zone_count);
	free(r->zones);
	free(r->prev.v);
	free(r->seen.v);
	free(r->listed);
	free(r);
}

static void rec_finish_if_done(struct reconcile *r)
{
	if (r->pending)
		return;
	if (!r->cancelled && r->cb) {
		if (r->stale)
			r->sum.status = RECONCILE_STALE;
		else if (r->sum.status == RECONCILE_OK && r->sum.errors)
			r->sum.status = RECONCILE_ERR;
		/* a sweep that found nothing to do says so at debug level only */
		int quiet = r->sweep && !r->sum.adopted && !r->sum.orphans_removed && !r->seen.n;
		log_msg(
		    r->sum.status != RECONCILE_OK ? SCALER_LOG_WARNING
		    : quiet                       ? SCALER_LOG_DEBUG
		                                  : SCALER_LOG_INFO,
		    "reconcile",
		    "%s: %zu records, %zu servers; adopted %zu, orphans removed %zu, promoted %zu, "
		    "records dropped %zu, deletions finished %zu, still starting %zu, %s%zu, "
		    "errors %zu",
		    reconcile_status_name(r->sum.status), r->sum.records, r->sum.servers,
		    r->sum.adopted, r->sum.orphans_removed, r->sum.promoted, r->sum.records_dropped,
		    r->sum.deletions_finished, r->sum.still_starting,
		    r->sweep ? "orphan candidates " : "ignored ",
		    r->sweep ? r->seen.n : r->sum.ignored, r->sum.errors);
		r->sum.seen = r->sweep ? &r->seen : NULL;
		r->cb(r->arg, &r->sum);
	}
	rec_free(r);
}

static void rt_done(struct rt_task *t)
{
	struct reconcile *r = t->r;
	free(t);
	r->pending--;
	rec_finish_if_done(r);
}

/* ---- steps of one correction -------------------------------------------- */

static void rt_event_cb(void *arg, enum store_status st, const char *err)
{
	struct rt_task *t = arg;
	if (st != STORE_OK)
		log_msg(SCALER_LOG_WARNING, "reconcile", "cannot record the event for %s: %s",
		        t->rec.srv.id, err ? err : "error");
	rt_done(t);
}

/* The correction is made: count it, tell the event stream. */
static void rt_event(struct rt_task *t, int delta)
{
	struct reconcile *r = t->r;
	if (r->cancelled) {
		/* the caller may have freed the zones (and the store) already */
		rt_done(t);
		return;
	}
	const char *zone = r->zones[t->zone];
	int from = r->zone_count[t->zone], to = from + delta;
	char reason[256];
	r->zone_count[t->zone] = to;
	snprintf(reason, sizeof(reason), "%s server %s%s", t->action, t->rec.srv.id,
	         r->sweep ? " (listed without a record by two orphan sweeps in a row)" : "");
	log_msg(SCALER_LOG_NOTICE, "reconcile", "zone %s: %s", zone, reason);
	json_t *extra = json_pack("{s:s, s:s, s:s, s:I, s:b}", "server", t->rec.srv.id, "action",
	                          t->action, "address", t->rec.srv.address, "epoch",
	                          (json_int_t)r->epoch, "sweep", r->sweep);
	int rc =
	    store_event_add(r->store, zone, "reconcile", from, to, reason, extra, rt_event_cb, t);
	json_decref(extra);
	if (rc < 0) {
		log_msg(SCALER_LOG_WARNING, "reconcile", "cannot record the event for %s",
		        t->rec.srv.id);
		rt_done(t);
	}
}

static void rt_put_cb(void *arg, enum store_status st, const char *err)
{
	struct rt_task *t = arg;
	struct reconcile *r = t->r;
	if (st == STORE_STALE) {
		rec_stale(r, err);
		rt_done(t);
		return;
	}
	if (st != STORE_OK) {
		rec_error(r, "cannot record server %s as serving: %s", t->rec.srv.id,
		          err ? err : "error");
		rt_done(t);
		return;
	}
	if (t->kind == RT_ORPHAN) {
		r->sum.adopted++;
		if (r->adopted && !r->cancelled)
			r->adopted(r->arg, &t->rec);
		rt_event(t, +1);
	} else {
		r->sum.promoted++;
		rt_event(t, 0);
	}
}

static void rt_put_serving(struct rt_task *t)
{
	struct reconcile *r = t->r;
	if (r->stale || r->cancelled) {
		rt_done(t);
		return;
	}
	snprintf(t->rec.state, sizeof(t->rec.state), "serving");
	if (t->have_srv) {
		/* the driver knows best where the server is */
		if (t->srv.address[0])
			snprintf(t->rec.srv.address, sizeof(t->rec.srv.address), "%s",
			         t->srv.address);
		if (t->srv.ref[0])
			snprintf(t->rec.srv.ref, sizeof(t->rec.srv.ref), "%s", t->srv.ref);
	}
	if (store_server_put(r->store, r->epoch, &t->rec, rt_put_cb, t) < 0) {
		rec_error(r, "cannot record server %s: Redis is not connected", t->rec.srv.id);
		rt_done(t);
	}
}

static void rt_del_cb(void *arg, enum store_status st, const char *err)
{
	struct rt_task *t = arg;
	struct reconcile *r = t->r;
	if (st == STORE_STALE) {
		rec_stale(r, err);
		rt_done(t);
		return;
	}
	if (st != STORE_OK) {
		rec_error(r, "cannot delete the record of server %s: %s", t->rec.srv.id,
		          err ? err : "error");
		rt_done(t);
		return;
	}
	if (t->kind == RT_FINISH_DEL)
		r->sum.deletions_finished++;
	else
		r->sum.records_dropped++;
	rt_event(t, -1);
}

static void rt_del_record(struct rt_task *t)
{
	struct reconcile *r = t->r;
	if (r->stale || r->cancelled) {
		rt_done(t);
		return;
	}
	if (store_server_del(r->store, r->epoch, t->rec.srv.zone, t->rec.srv.id, rt_del_cb, t) <
	    0) {
		rec_error(r, "cannot delete the record of server %s: Redis is not connected",
		          t->rec.srv.id);
		rt_done(t);
	}
}

static void rt_removed_cb(void *arg, int status, const struct scaler_server *srv, const char *err)
{
	struct rt_task *t = arg;
	struct reconcile *r = t->r;
	if (status != 0) {
		rec_error(r, "cannot remove server %s: %s", t->rec.srv.id, err ? err : "error");
		rt_done(t);
		return;
	}
	if (t->kind == RT_ORPHAN) {
		r->sum.orphans_removed++;
		rt_event(t, 0);
		return;
	}
	rt_del_record(t);
}

/* Removal is not fenced by Redis: make sure this node is still primary
 * right before asking the driver. */
static void rt_guard_cb(void *arg, enum store_status st, uint64_t epoch, const char *err)
{
	struct rt_task *t = arg;
	struct reconcile *r = t->r;
	char msg[160];
	if (st != STORE_OK) {
		rec_error(r, "cannot check the epoch before removing server %s: %s", t->rec.srv.id,
		          err ? err : "error");
		rt_done(t);
		return;
	}
	if (epoch != r->epoch) {
		snprintf(msg, sizeof(msg),
		         "epoch %" PRIu64 " is stale, current epoch is %" PRIu64
		         " (before removing server %s)",
		         r->epoch, epoch, t->rec.srv.id);
		rec_stale(r, msg);
		rt_done(t);
		return;
	}
	if (r->stale || r->cancelled) {
		rt_done(t);
		return;
	}
	if (r->ops->remove(r->driver_ctx, &t->srv, rt_removed_cb, t) < 0) {
		rec_error(r, "cannot remove server %s: the driver refused", t->rec.srv.id);
		rt_done(t);
	}
}

static void rt_remove(struct rt_task *t)
{
	struct reconcile *r = t->r;
	if (r->stale || r->cancelled) {
		rt_done(t);
		return;
	}
	if (store_epoch_get(r->store, rt_guard_cb, t) < 0) {
		rec_error(r, "cannot remove server %s: Redis is not connected", t->rec.srv.id);
		rt_done(t);
	}
}

static void rt_health_cb(void *arg, int healthy)
{
	struct rt_task *t = arg;
	struct reconcile *r = t->r;
	if (r->stale || r->cancelled) {
		rt_done(t);
		return;
	}
	if (t->kind == RT_ORPHAN) {
		t->action = healthy ? "adopted orphan" : "removed unhealthy orphan";
		if (healthy)
			rt_put_serving(t);
		else
			rt_remove(t);
		return;
	}
	/* RT_PROMOTE */
	if (healthy) {
		rt_put_serving(t);
	} else {
		log_msg(SCALER_LOG_INFO, "reconcile",
		        "server %s is starting and not healthy yet; leaving it to the controller",
		        t->rec.srv.id);
		r->sum.still_starting++;
		rt_done(t);
	}
}

static void rt_start(struct rt_task *t)
{
	struct reconcile *r = t->r;
	switch (t->kind) {
	case RT_ORPHAN:
	case RT_PROMOTE:
		if (!t->srv.running) {
			rt_health_cb(t, 0);
			return;
		}
		if (!r->health || r->health(r->health_arg, &t->srv, rt_health_cb, t) < 0)
			rt_health_cb(t, 0);
		return;
	case RT_DROP:
	case RT_FINISH_DEL:
		/* a stopped container still exists: remove it before the record */
		if (t->have_srv)
			rt_remove(t);
		else
			rt_del_record(t);
		return;
	}
}

/* ---- planning ----------------------------------------------------------- */

static long rec_zone_index(const struct reconcile *r, const char *zone)
{
	for (size_t i = 0; i < r->nzones; i++)
		if (strcmp(r->zones[i], zone) == 0)
			return (long)i;
	return -1;
}

static struct rt_task *rec_task(struct reconcile *r, enum rt_kind kind, size_t zone,
                                const char *action)
{
	struct rt_task *t = calloc(1, sizeof(*t));
	if (!t) {
		rec_error(r, "out of memory");
		return NULL;
	}
	t->r = r;
	t->kind = kind;
	t->zone = zone;
	t->action = action;
	r->pending++;
	return t;
}

static int rec_seen_has(const struct reconcile_seen *s, const struct scaler_server *srv)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].id, srv->id) == 0 && strcmp(s->v[i].zone, srv->zone) == 0)
			return 1;
	return 0;
}

/* A sweep: the first sighting of an orphan is only remembered. */
static void rec_seen_add(struct reconcile *r, const struct scaler_server *srv)
{
	struct reconcile_seen *s = &r->seen;
	void *v = realloc(s->v, (s->n + 1) * sizeof(*s->v));
	if (!v) {
		rec_error(r, "out of memory");
		return;
	}
	s->v = v;
	snprintf(s->v[s->n].zone, sizeof(s->v[s->n].zone), "%s", srv->zone);
	snprintf(s->v[s->n].id, sizeof(s->v[s->n].id), "%s", srv->id);
	s->n++;
	log_msg(SCALER_LOG_INFO, "reconcile",
	        "zone %s: server %s is listed without a record; acting on it if the next sweep "
	        "still finds it so",
	        srv->zone, srv->id);
}

static void rec_plan(struct reconcile *r, const struct scaler_server *srvs, size_t n)
{
	struct rt_task **tasks = calloc(r->nrecords + n + 1, sizeof(*tasks));
	size_t ntasks = 0;
	if (!tasks) {
		rec_error(r, "out of memory");
		return;
	}
	for (size_t i = 0; i < r->nrecords; i++) {
		const struct store_server *rec = &r->records[i];
		long z = rec_zone_index(r, rec->srv.zone);
		const struct scaler_server *srv = NULL;
		struct rt_task *t = NULL;
		if (z < 0) {
			r->sum.ignored++;
			continue;
		}
		r->sum.records++;
		r->zone_count[z]++;
		if (r->sweep) /* records belong to the controller's flows */
			continue;
		for (size_t j = 0; j < n && !srv; j++)
			if (strcmp(srvs[j].id, rec->srv.id) == 0)
				srv = &srvs[j];
		if (strcmp(rec->state, "deleting") == 0)
			t = rec_task(r, RT_FINISH_DEL, (size_t)z, "finished deleting");
		else if (!srv || !srv->running)
			t = rec_task(r, RT_DROP, (size_t)z,
			             srv ? "dropped the record of stopped"
			                 : "dropped the record of vanished");
		else if (strcmp(rec->state, "starting") == 0)
			t = rec_task(r, RT_PROMOTE, (size_t)z, "promoted to serving");
		if (!t)
			continue;
		t->rec = *rec;
		if (srv) {
			t->srv = *srv;
			t->have_srv = 1;
		} else {
			t->srv = rec->srv;
		}
		tasks[ntasks++] = t;
	}
	for (size_t j = 0; j < n; j++) {
		const struct scaler_server *srv = &srvs[j];
		long z = rec_zone_index(r, srv->zone);
		int known = 0;
		if (z < 0) {
			r->sum.ignored++;
			continue;
		}
		r->sum.servers++;
		for (size_t i = 0; i < r->nrecords && !known; i++)
			known = strcmp(r->records[i].srv.id, srv->id) == 0;
		if (known)
			continue;
		if (r->sweep && !rec_seen_has(&r->prev, srv)) {
			rec_seen_add(r, srv);
			continue;
		}
		struct rt_task *t = rec_task(r, RT_ORPHAN, (size_t)z, "adopted orphan");
		if (!t)
			continue;
		t->srv = *srv;
		t->have_srv = 1;
		t->rec.srv = *srv;
		t->rec.srv.running = 0;
		snprintf(t->rec.driver, sizeof(t->rec.driver), "%s", r->driver_name);
		snprintf(t->rec.state, sizeof(t->rec.state), "starting");
		tasks[ntasks++] = t;
	}
	/* start them all only once planned: a task may finish at once */
	for (size_t i = 0; i < ntasks; i++)
		rt_start(tasks[i]);
	free(tasks);
}

/* The listing stage is over (r->pending counted it). */
static void rec_listed_done(struct reconcile *r)
{
	r->pending--;
	rec_finish_if_done(r);
}

static void rec_records_cb(void *arg, enum store_status st, const struct store_server *servers,
                           size_t n)
{
	struct reconcile *r = arg;
	if (st != STORE_OK || r->cancelled) {
		if (st != STORE_OK)
			rec_error(r, "cannot read the server records from Redis");
		rec_listed_done(r);
		return;
	}
	if (n) {
		r->records = malloc(n * sizeof(*servers));
		if (!r->records) {
			rec_error(r, "out of memory");
			rec_listed_done(r);
			return;
		}
		memcpy(r->records, servers, n * sizeof(*servers));
	}
	r->nrecords = n;
	rec_plan(r, r->listed, r->nlisted);
	rec_listed_done(r);
}

/* The driver first, the records after: a server is recorded `starting`
 * before its create begins, so every server of this list whose create began
 * before the listing has its record in what is read next. The other order
 * would take a server created between the two reads for an orphan. */
static void rec_list_cb(void *arg, int status, const struct scaler_server *srvs, size_t n,
                        const char *err)
{
	struct reconcile *r = arg;
	if (status != 0) {
		rec_error(r, "the driver cannot list its servers: %s", err ? err : "error");
		rec_listed_done(r);
		return;
	}
	if (r->cancelled) {
		rec_listed_done(r);
		return;
	}
	if (n) {
		r->listed = malloc(n * sizeof(*srvs));
		if (!r->listed) {
			rec_error(r, "out of memory");
			rec_listed_done(r);
			return;
		}
		memcpy(r->listed, srvs, n * sizeof(*srvs));
	}
	r->nlisted = n;
	if (store_servers_list(r->store, NULL, rec_records_cb, r) < 0) {
		rec_error(r, "cannot read the server records: Redis is not connected");
		rec_listed_done(r);
	}
}

static struct reconcile *rec_new(struct store *store, const struct plugin_instance *driver,
                                 const struct scaler_zone *const *zones, size_t nzones,
                                 uint64_t epoch, reconcile_health_fn health, void *health_arg,
                                 reconcile_cb cb, void *arg)
{
	struct reconcile *r;
	if (!store || !driver || !driver->plugin || driver->plugin->kind != SCALER_KIND_DRIVER ||
	    (nzones && !zones))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->zone_count = calloc(nzones + 1, sizeof(*r->zone_count));
	r->zones = calloc(nzones + 1, sizeof(*r->zones));
	if (!r->zone_count || !r->zones) {
		rec_free(r);
		return NULL;
	}
	/* copies: the caller's zones may go with a reload while a cancelled
	 * run's last operations finish */
	for (size_t i = 0; i < nzones; i++)
		snprintf(r->zones[i], sizeof(r->zones[i]), "%s", zones[i]->name);
	r->store = store;
	r->ops = &driver->plugin->ops.driver;
	r->driver_ctx = driver->ctx;
	snprintf(r->driver_name, sizeof(r->driver_name), "%.31s", driver->plugin->name);
	r->nzones = nzones;
	r->epoch = epoch;
	r->health = health;
	r->health_arg = health_arg;
	r->cb = cb;
	r->arg = arg;
	return r;
}

static struct reconcile *rec_begin(struct reconcile *r)
{
	r->pending = 1; /* the listing stage: the driver's list, then the records */
	if (r->ops->list(r->driver_ctx, rec_list_cb, r) < 0) {
		rec_free(r);
		return NULL;
	}
	return r;
}

struct reconcile *reconcile_start(struct store *store, const struct plugin_instance *driver,
                                  const struct scaler_zone *const *zones, size_t nzones,
                                  uint64_t epoch, reconcile_health_fn health, void *health_arg,
                                  reconcile_cb cb, void *arg)
{
	struct reconcile *r =
	    rec_new(store, driver, zones, nzones, epoch, health, health_arg, cb, arg);
	return r ? rec_begin(r) : NULL;
}

struct reconcile *reconcile_sweep(struct store *store, const struct plugin_instance *driver,
                                  const struct scaler_zone *const *zones, size_t nzones,
                                  uint64_t epoch, const struct reconcile_seen *prev,
                                  reconcile_health_fn health, void *health_arg,
                                  reconcile_adopt_fn adopted, reconcile_cb cb, void *arg)
{
	struct reconcile *r =
	    rec_new(store, driver, zones, nzones, epoch, health, health_arg, cb, arg);
	if (!r)
		return NULL;
	r->sweep = 1;
	r->adopted = adopted;
	if (prev && prev->n) {
		r->prev.v = malloc(prev->n * sizeof(*prev->v));
		if (!r->prev.v) {
			rec_free(r);
			return NULL;
		}
		memcpy(r->prev.v, prev->v, prev->n * sizeof(*prev->v));
		r->prev.n = prev->n;
	}
	return rec_begin(r);
}

void reconcile_cancel(struct reconcile *r)
{
	if (r)
		r->cancelled = 1;
}
