/* Creating and deleting one server, in the order of operations that loses
 * nothing (reconciliation repairs a crash between any two steps):
 *   create: record "starting" → driver create → record address/ref →
 *           healthy → record "serving" → push to the balancer
 *   delete: record "deleting" → take out of the balancer → drain →
 *           driver remove → delete the record
 * A flow owns its server until it ends; every store write is fenced. */
#include "config.h"

#include <ev.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"

struct flow {
	struct czone *z;
	struct conf *conf; /* the zone's config, which the driver call may read */
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
	f->conf = conf_ref(z->conf);
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
	conf_free(f->conf);
	free(f);
}

/* 1 when the flow's term is over (deposed/stopped, zone removed). */
static int flow_stale(const struct flow *f)
{
	return f->gen != f->z->c->gen || !f->z->c->active || f->z->removed;
}

static const struct scaler_driver_ops *ctl_driver(const struct controller *c)
{
	return &c->d->driver.plugin->ops.driver;
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
	f->rec.updated = ctl_unix_now();
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
static void create_serving_recorded(void *arg, enum store_status st, const char *err);
static void delete_check_epoch(struct flow *f);

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
	/* requests wait at the balancer for the first server: check it often */
	int waiting = czone_waking(f->z) && czone_count(f->z, "serving") == 0;
	ev_timer_set(&f->timer, waiting ? START_POLL_WAKING : START_POLL, 0.);
	ev_timer_start(ctl_loop(f->z->c), &f->timer);
}

static void create_health_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	create_health_check(t->data);
}

const char *ctl_health_path(const struct conf_zone *cz)
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

void czone_create(struct czone *z)
{
	struct flow *f = flow_new(z);
	if (!f)
		return;
	struct controller *c = z->c;
	ctl_server_id(z->name, f->rec.srv.id, sizeof(f->rec.srv.id));
	snprintf(f->rec.srv.zone, sizeof(f->rec.srv.zone), "%s", z->name);
	snprintf(f->rec.driver, sizeof(f->rec.driver), "%s", c->d->driver.plugin->name);
	f->rec.srv.created = ctl_unix_now();
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

int czone_delete(struct czone *z, struct cserver *s, int drain, int refill)
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
struct cserver *czone_victim(struct czone *z)
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

/* ---- resuming a previous primary's flow ---------------------------------------------------- */

/* A record a previous primary left half-way (reconciliation could not
 * settle it, e.g. a server still starting): finish its flow. */
void czone_resume(struct czone *z, struct cserver *s)
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
