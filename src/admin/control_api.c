/* The control loop as the admin API shows and drives it: GET /status zones,
 * GET /servers, PUT /report (dead servers, outlier events), POST /scale, POST /drain, POST /wake
 * and the controller's counters in GET /metrics (src/admin/admin.c routes the requests). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"

static const char *const op_names[] = {"create", "remove", "list"};

static json_t *cserver_json(const struct cserver *s)
{
	json_t *j = store_server_to_json(&s->rec);
	json_object_set_new(j, "metric", s->metric_valid ? json_real(s->metric) : json_null());
	return j;
}

size_t controller_metrics_plugins(struct controller *c, const struct plugin_instance **out,
                                  size_t max)
{
	size_t n = 0;
	for (struct czone *z = c->zones; z; z = z->next)
		for (size_t i = 0; !z->removed && i < z->nmetrics; i++) {
			size_t k = 0;
			while (k < n && strcmp(out[k]->plugin->name, z->metrics[i].pi.plugin->name))
				k++;
			if (k == n && n < max)
				out[n++] = &z->metrics[i].pi;
		}
	return n;
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
		json_t *metrics = json_array();
		for (size_t k = 0; k < cz->nmetrics; k++)
			json_array_append_new(metrics, json_pack("{s:s, s:s}", "name",
			                                         cz->metrics_list[k].name, "plugin",
			                                         cz->metrics_list[k].plugin.name));
		json_t *zj = json_pack(
		    "{s:s, s:s, s:s, s:i, s:i, s:f, s:b, s:o, s:o, s:f, s:o, s:o, s:o}", "name",
		    cz->name, "listen", cz->listen, "admin", cz->admin, "min", cz->min, "max",
		    cz->max, "interval", cz->interval, "dry_run", cz->dry_run, "servers", servers,
		    "last_decision", last, "cooldown_remaining", cd, "pinned", pin, "policy",
		    json_string(cz->policy_plugin), "metrics", metrics);
		/* woken from zero: seconds left of the raised min */
		double woken = z && czone_waking(z) ? z->wake_until - now : 0;
		json_object_set_new(zj, "woken", woken > 0 ? json_real(woken) : json_null());
		json_array_append_new(arr, zj);
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

/* The zone an admin call names, or NULL with *status and *reply filled:
 * 404 for an unknown zone, 503 when this node is not the primary (or, with
 * loaded, has not read the zone's servers yet). */
static struct czone *ctl_api_zone(struct controller *c, const char *zone, int loaded,
                                  json_t **reply, int *status)
{
	struct czone *z = czone_find(c, zone);
	if (!z) {
		*reply = json_pack("{s:s}", "error", "unknown zone");
		*status = 404;
		return NULL;
	}
	if (!c->active || (loaded && !z->loaded)) {
		*status = ctl_not_primary(c, reply);
		return NULL;
	}
	return z;
}

/* ---- PUT /report: the primary checks before it deletes ---------------------- */

/* A balancer's word is not enough to delete a server (a token holder could
 * name any healthy one): the primary checks each reported server itself,
 * GET <address><health path> as a new server is checked, and deletes only
 * those that fail. The reply lists them by what happened. */
struct report;

struct report_check {
	struct report *r;
	char address[256];
	struct scaler_http_call *call;
};

struct report {
	struct czone *z;
	unsigned gen;
	controller_reply_cb done;
	void *arg;
	json_t *deleted, *alive, *unknown, *busy;
	size_t pending, n;
	struct report_check checks[];
};

static void report_finish(struct report *r)
{
	r->done(r->arg, 200,
	        json_pack("{s:o, s:o, s:o, s:o}", "deleted", r->deleted, "alive", r->alive,
	                  "unknown", r->unknown, "in_progress", r->busy));
	czone_unref(r->z);
	free(r);
}

/* The check of one reported server is over: act on what it found. */
static void report_checked(void *arg, const struct scaler_http_response *resp)
{
	struct report_check *k = arg;
	struct report *r = k->r;
	struct czone *z = r->z;
	struct cserver *s;

	k->call = NULL;
	if (r->gen != z->c->gen || !z->c->active || z->removed) {
		json_array_append_new(r->busy, json_string(k->address)); /* no longer ours to act */
	} else if (resp->status >= 200 && resp->status < 300) {
		log_notice("zone %s: %s was reported dead but passes its health check from here; "
		           "kept",
		           z->name, k->address);
		json_array_append_new(r->alive, json_string(k->address));
	} else if (!(s = czone_server_by_address(z, k->address))) {
		json_array_append_new(r->unknown, json_string(k->address));
	} else if (s->owner || strcmp(s->rec.state, "deleting") == 0) {
		json_array_append_new(r->busy, json_string(k->address));
	} else {
		char reason[400];
		snprintf(reason, sizeof(reason),
		         "the balancer reported the server dead and it failed the primary's own "
		         "health check (%s); deleting and refilling to min",
		         resp->status  ? "unhealthy"
		         : resp->error ? resp->error
		                       : "no answer");
		czone_event(
		    z, "replace", czone_size(z), czone_size(z) - 1, "dead report", reason,
		    json_pack("{s:s, s:s}", "server", s->rec.srv.id, "address", k->address));
		json_array_append_new(r->deleted, json_string(s->rec.srv.id));
		czone_delete(z, s, 0, 1);
	}
	if (--r->pending == 0)
		report_finish(r);
}

void controller_report(struct controller *c, const char *zone, json_t *dead,
                       controller_reply_cb done, void *arg)
{
	struct czone *z = czone_find(c, zone);
	json_t *reply = NULL;

	if (!z) {
		done(arg, 404, json_pack("{s:s}", "error", "unknown zone"));
		return;
	}
	if (!c->active || !z->loaded) {
		int st = ctl_not_primary(c, &reply);
		done(arg, st, reply);
		return;
	}
	size_t n = json_array_size(dead);
	struct report *r = calloc(1, sizeof(*r) + n * sizeof(r->checks[0]));
	if (!r) {
		done(arg, 500, json_pack("{s:s}", "error", "out of memory"));
		return;
	}
	r->z = z;
	r->gen = c->gen;
	r->done = done;
	r->arg = arg;
	r->deleted = json_array();
	r->alive = json_array();
	r->unknown = json_array();
	r->busy = json_array();
	z->refs++;
	r->pending = 1; /* held until every check has started */
	size_t i;
	json_t *v;
	json_array_foreach(dead, i, v)
	{
		const char *addr = json_string_value(v);
		struct cserver *s = czone_server_by_address(z, addr);
		int seen = 0;
		for (size_t k = 0; k < r->n && !seen; k++)
			seen = strcmp(r->checks[k].address, addr) == 0;
		if (seen)
			continue; /* named twice: checked once */
		if (!s) {
			log_warn("zone %s: dead report names an unknown server %s; ignored", zone,
			         addr);
			json_array_append_new(r->unknown, json_string(addr));
			continue;
		}
		if (s->owner || strcmp(s->rec.state, "deleting") == 0) {
			json_array_append_new(r->busy, json_string(addr));
			continue;
		}
		struct report_check *k = &r->checks[r->n++];
		char url[512];
		k->r = r;
		snprintf(k->address, sizeof(k->address), "%s", addr);
		snprintf(url, sizeof(url), "%s%s", s->rec.srv.address, ctl_health_path(z->cz));
		struct scaler_http_request req = {
		    .method = "GET", .url = url, .timeout = HEALTH_TIMEOUT};
		r->pending++;
		k->call = ctl_host(c)->http_request(&req, report_checked, k);
		if (!k->call) {
			struct scaler_http_response failed = {.error =
			                                          "cannot start a health check"};
			report_checked(k, &failed);
		}
	}
	if (--r->pending == 0)
		report_finish(r);
}

int controller_outlier_events(struct controller *c, const char *zone, json_t *events,
                              json_t **reply)
{
	int status;
	struct czone *z = ctl_api_zone(c, zone, 1, reply, &status);
	if (!z)
		return status;
	size_t i;
	json_t *e;
	json_array_foreach(events, i, e)
	{
		const char *kind = json_string_value(json_object_get(e, "kind"));
		const char *server = json_string_value(json_object_get(e, "server"));
		char reason[400];
		snprintf(reason, sizeof(reason), "%s %s: %s", server,
		         strcmp(kind, "eject") == 0 ? "ejected by the balancer"
		                                    : "back from ejection",
		         json_string_value(json_object_get(e, "reason")));
		json_t *extra = json_pack("{s:s}", "server", server);
		static const char *const numbers[] = {"duration", "ejected_for", "ejections",
		                                      "worker"};
		for (size_t k = 0; k < sizeof(numbers) / sizeof(numbers[0]); k++) {
			json_t *v = json_object_get(e, numbers[k]);
			if (json_is_number(v))
				json_object_set(extra, numbers[k], v);
		}
		czone_event(z, kind, czone_size(z), czone_size(z), "outlier", reason, extra);
	}
	return 200;
}

int controller_pin(struct controller *c, const char *zone, int count, double duration,
                   json_t **reply)
{
	int status;
	struct czone *z = ctl_api_zone(c, zone, 0, reply, &status);
	if (!z)
		return status;
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
	z->pin_until = duration > 0 ? ctl_unix_now() + duration : 0;
	snprintf(reason, sizeof(reason), "pinned at %d by an operator%s", count,
	         duration > 0 ? " for a while" : "");
	czone_event(z, "pin", czone_size(z), count, "operator", reason,
	            json_pack("{s:f}", "for", duration));
	czone_evaluate(z);
	*reply = json_pack("{s:s, s:i, s:o}", "zone", zone, "count", count, "until",
	                   z->pin_until > 0 ? json_real(z->pin_until) : json_null());
	return 200;
}

int controller_wake(struct controller *c, const char *zone, long held, uint64_t epoch,
                    json_t **reply)
{
	int status;
	struct czone *z = ctl_api_zone(c, zone, 1, reply, &status);
	if (!z)
		return status;
	if (epoch > c->epoch) {
		/* the balancer was told of a newer primary: this node is not it */
		*reply = json_pack("{s:s, s:I}", "error",
		                   "stale primary: the balancer knows a newer "
		                   "epoch",
		                   "epoch", (json_int_t)c->epoch);
		return 409;
	}
	int starting = czone_count(z, "starting"), serving = czone_count(z, "serving");
	z->wake_until = ev_now(ctl_loop(c)) + z->cz->idle_timeout;
	if (starting + serving == 0 && !c->reconcile && z->pin_count < 0) {
		char reason[256];
		snprintf(reason, sizeof(reason),
		         "%ld request(s) wait at the balancer with no server: waking the zone from "
		         "zero (at least one server for idle_timeout, %g s)",
		         held, z->cz->idle_timeout);
		z->wakes++;
		czone_decision(z, "wake", 0, 1, "wake", reason);
		if (z->cz->dry_run) {
			czone_event(z, "dry_run", 0, 1, "wake", reason,
			            json_pack("{s:s}", "would", "wake"));
		} else {
			czone_event(z, "wake", 0, 1, "wake", reason,
			            json_pack("{s:i}", "held", (int)held));
			czone_create(z);
			starting++;
		}
	}
	*reply =
	    json_pack("{s:s, s:i, s:i}", "zone", zone, "starting", starting, "serving", serving);
	return 202;
}

int controller_drain(struct controller *c, const char *zone, const char *server, json_t **reply)
{
	int status;
	struct czone *z = ctl_api_zone(c, zone, 0, reply, &status);
	if (!z)
		return status;
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
		fprintf(f, "scaler_decisions_total{zone=\"%s\",kind=\"wake\"} %lu\n", z->name,
		        z->wakes);
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
