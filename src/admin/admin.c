/* scalerd's admin API (node.admin): status, servers, events, reload,
 * scale, drain, dead reports, wake-ups of zones at zero, Prometheus metrics
 * and election messages. */
#include "config.h"

#include "admin.h"
#include "admin_body.h"

#include <ctype.h>
#include <limits.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console.h"
#include "controller.h"
#include "daemon.h"
#include "host.h"
#include "http_server.h"
#include "log.h"
#include "store.h"
#include "supervise.h"

#define EVENTS_MAX 500
#define EVENTS_WAIT_MAX 60.0

const char *admin_query(const struct http_request *req, const char *name, char *buf, size_t len,
                        int *bad)
{
	const char *v = http_request_query(req, name, buf, len);
	size_t n = strlen(name);
	if (!v) {
		for (const char *q = req->query; q && *q;) {
			if (strncmp(q, name, n) == 0 && (q[n] == '=' || q[n] == '&' || !q[n]))
				*bad = 1;
			q = strchr(q, '&');
			q = q ? q + 1 : NULL;
		}
	}
	return v;
}

/* The digits at *p as a number Redis takes (at most 2^64 - 1). */
static int admin_u64_part(const char **p)
{
	const char *s = *p;
	unsigned long long v = 0;

	if (!isdigit((unsigned char)*s))
		return 0;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*p = s;
	return 1;
}

/* Redis stream ids: "$" or MS[-SEQ], each part a 64-bit unsigned number */
static int admin_stream_id_valid(const char *id)
{
	const char *p = id;

	if (strcmp(id, "$") == 0)
		return 1;
	if (!admin_u64_part(&p))
		return 0;
	if (*p == '-') {
		p++;
		if (!admin_u64_part(&p))
			return 0;
	}
	return *p == '\0';
}

static const char *role_name(enum daemon_role r)
{
	return r == ROLE_PRIMARY ? "primary" : "backup";
}

static json_t *admin_plugin_json(const struct plugin_instance *pi)
{
	if (!pi->plugin)
		return json_null();
	return json_pack("{s:s, s:s, s:s, s:s}", "kind", plugin_kind_name(pi->plugin->kind), "name",
	                 pi->plugin->name, "version",
	                 pi->plugin->desc->version ? pi->plugin->desc->version : "", "path",
	                 pi->plugin->path);
}

json_t *admin_zones_json(struct daemon *d)
{
	json_t *zones = controller_zones_json(d->ctl);
	size_t i;
	json_t *z;
	json_array_foreach(zones, i, z)
	{
		const char *name = json_string_value(json_object_get(z, "name"));
		const struct conf_zone *cz = name ? conf_zone_find(d->conf, name) : NULL;
		/* the zone serves HTTPS on its listen address (the balancer's tls group) */
		json_object_set_new(
		    z, "tls",
		    json_boolean(cz && cz->balancer_conf &&
		                 config_setting_get_member(cz->balancer_conf, "tls")));
		if (name && conf_hosts_zone(d->conf, name)) {
			pid_t pids[CONF_WORKERS_MAX];
			int n = supervisor_zone_pids(d->sup, name, pids, CONF_WORKERS_MAX);
			json_t *arr = json_array();
			for (int k = 0; k < n && k < CONF_WORKERS_MAX; k++)
				json_array_append_new(arr, json_integer(pids[k]));
			json_object_set_new(z, "balancer_pid", json_integer(n > 0 ? pids[0] : 0));
			json_object_set_new(z, "balancer_pids", arr);
			json_object_set_new(z, "balancer_restarts",
			                    json_integer(supervisor_zone_restarts(d->sup, name)));
		}
	}
	return zones;
}

static void admin_status(struct daemon *d, struct http_exchange *x)
{
	json_t *plugins = json_array();
	const struct plugin_instance *pis[3 + 16] = {&d->driver, &d->election, &d->balancer};
	size_t npis = 3 + controller_metrics_plugins(d->ctl, pis + 3, 16);
	for (size_t i = 0; i < npis; i++)
		json_array_append_new(plugins, admin_plugin_json(pis[i]));

	json_t *election = NULL;
	const struct scaler_election_ops *eo =
	    d->election.plugin ? &d->election.plugin->ops.election : NULL;
	if (eo && eo->status_json) {
		char *s = eo->status_json(d->election.ctx);
		if (s) {
			election = json_loads(s, 0, NULL);
			free(s);
		}
	}
	json_t *zones = admin_zones_json(d);
	json_t *primary = d->primary_epoch
	                      ? json_pack("{s:s, s:s, s:I}", "id", d->primary_id, "url",
	                                  d->primary_url, "epoch", (json_int_t)d->primary_epoch)
	                      : json_null();
	json_t *st = json_pack(
	    "{s:{s:s, s:s, s:s, s:I, s:o, s:s}, s:{s:s, s:f, s:I, s:I}, s:o, s:o, s:o}", "node",
	    "id", d->conf->node_id, "url", d->conf->admin_url, "role", role_name(d->role), "epoch",
	    (json_int_t)(d->role == ROLE_PRIMARY ? d->epoch : d->primary_epoch), "primary", primary,
	    "version", PACKAGE_VERSION, "config", "path", d->conf_path, "loaded_at", d->loaded_at,
	    "reloads", (json_int_t)d->reloads, "reload_failures", (json_int_t)d->reload_failures,
	    "plugins", plugins, "election", election ? election : json_null(), "zones", zones);
	http_reply_json(x, 200, st);
}

/* ---- events (long-poll) ---------------------------------------------------- */

/* A long-poll with nothing new yet waits in a list. The waiting polls share
 * one look at the stream: every EVENTS_TICK the newest event id is read
 * once, and only a poll whose position is behind it reads again. Redis
 * work is one read per tick plus one per poll and new event, however many
 * polls wait (and a connection has one poll at a time). */
#define EVENTS_TICK 0.25

struct events_poll {
	struct daemon *d;
	struct http_exchange *x;
	char zone[64];
	char after[64]; /* the stream position this poll has seen up to */
	double deadline;
	ev_timer timeout;
	struct events_poll *prev, *next; /* in ev_waiting */
	int waiting;
};

static struct {
	struct events_poll *head;
	ev_timer tick;
	int looking; /* a look at the newest id is in flight */
	struct daemon *d;
} ev_waiting;

static void events_unwait(struct events_poll *p)
{
	if (!p->waiting)
		return;
	if (p->prev)
		p->prev->next = p->next;
	else
		ev_waiting.head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	p->waiting = 0;
	ev_timer_stop(p->d->loop, &p->timeout);
	if (!ev_waiting.head)
		ev_timer_stop(p->d->loop, &ev_waiting.tick);
}

static void events_poll_free(struct events_poll *p)
{
	events_unwait(p);
	ev_timer_stop(p->d->loop, &p->timeout);
	free(p);
}

static void events_reply(struct events_poll *p, json_t *events)
{
	http_reply_json(p->x, 200,
	                json_pack("{s:o, s:s}", "events",
	                          events ? json_incref(events) : json_array(), "last", p->after));
	events_poll_free(p);
}

/* Stream ids as Redis orders them: "5" is "5-0". */
static int events_id_same(const char *a, const char *b)
{
	size_t na = strcspn(a, "-"), nb = strcspn(b, "-");
	const char *sa = a[na] ? a + na + 1 : "0", *sb = b[nb] ? b + nb + 1 : "0";
	return na == nb && strncmp(a, b, na) == 0 && strcmp(sa, sb) == 0;
}

static void events_try(struct events_poll *p);
static void events_tick(struct ev_loop *loop, ev_timer *t, int revents);

static void events_wait(struct events_poll *p)
{
	struct ev_loop *loop = p->d->loop;

	p->next = ev_waiting.head;
	if (p->next)
		p->next->prev = p;
	ev_waiting.head = p;
	p->waiting = 1;
	ev_timer_set(&p->timeout, p->deadline - ev_now(loop), 0.);
	ev_timer_start(loop, &p->timeout);
	if (!ev_is_active(&ev_waiting.tick)) {
		ev_waiting.d = p->d;
		ev_timer_init(&ev_waiting.tick, events_tick, EVENTS_TICK, EVENTS_TICK);
		ev_timer_start(loop, &ev_waiting.tick);
	}
}

static void events_done(void *arg, enum store_status st, json_t *events, const char *last_id)
{
	struct events_poll *p = arg;
	if (!http_exchange_alive(p->x)) {
		http_reply(p->x, 499, "text/plain", "", 0, NULL);
		events_poll_free(p);
		return;
	}
	if (st != STORE_OK && st != STORE_NOTFOUND) {
		http_reply_error(p->x, 503, "state store unreachable");
		events_poll_free(p);
		return;
	}
	/* "$" resolves to the newest id once, and events of other zones move
	 * the position too: nothing is read twice, nothing is skipped */
	if (last_id && *last_id)
		snprintf(p->after, sizeof(p->after), "%s", last_id);
	if ((events && json_array_size(events) > 0) || ev_now(p->d->loop) >= p->deadline)
		events_reply(p, events);
	else
		events_wait(p);
}

static void events_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct events_poll *p = t->data;
	(void)loop;
	(void)revents;
	if (http_exchange_alive(p->x))
		events_reply(p, NULL);
	else {
		http_reply(p->x, 499, "text/plain", "", 0, NULL);
		events_poll_free(p);
	}
}

/* The newest id is known: polls behind it read again. */
static void events_looked(void *arg, enum store_status st, json_t *events, const char *last_id)
{
	(void)arg;
	(void)events;
	ev_waiting.looking = 0;
	if (st != STORE_OK || !last_id)
		return; /* the next tick looks again; the polls' own reads report errors */
	struct events_poll *p = ev_waiting.head, *next;
	for (; p; p = next) {
		next = p->next;
		if (!http_exchange_alive(p->x)) {
			http_reply(p->x, 499, "text/plain", "", 0, NULL);
			events_poll_free(p);
		} else if (!events_id_same(p->after, last_id)) {
			events_unwait(p);
			events_try(p);
		}
	}
}

static void events_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct store *s = ev_waiting.d->host->store;
	(void)loop;
	(void)t;
	(void)revents;
	if (ev_waiting.looking || !s)
		return;
	if (store_events_read(s, NULL, "$", 1, events_looked, NULL) == 0)
		ev_waiting.looking = 1;
}

static void events_try(struct events_poll *p)
{
	struct store *s = p->d->host->store;
	if (!s || store_events_read(s, p->zone[0] ? p->zone : NULL, p->after, EVENTS_MAX,
	                            events_done, p) < 0) {
		http_reply_error(p->x, 503, "state store unreachable");
		events_poll_free(p);
	}
}

/* ?last=N: the newest N events, and the id to long-poll after. */
static void events_tail_done(void *arg, enum store_status st, json_t *events, const char *last_id)
{
	struct http_exchange *x = arg;
	if (st != STORE_OK && st != STORE_NOTFOUND)
		http_reply_error(x, 503, "state store unreachable");
	else
		http_reply_json(x, 200,
		                json_pack("{s:o, s:s}", "events",
		                          events ? json_incref(events) : json_array(), "last",
		                          last_id ? last_id : "0-0"));
}

static void admin_events(struct daemon *d, struct http_exchange *x, const struct http_request *req)
{
	char zone[64], after[64], wait[32], last[16];
	struct events_poll *p;
	int bad = 0;
	const char *z = admin_query(req, "zone", zone, sizeof(zone), &bad);
	const char *a = admin_query(req, "after", after, sizeof(after), &bad);
	const char *wt = admin_query(req, "wait", wait, sizeof(wait), &bad);
	const char *l = admin_query(req, "last", last, sizeof(last), &bad);

	if (bad) {
		http_reply_error(
		    x, 400,
		    "invalid query: zone, after, wait or last is too long or badly encoded");
		return;
	}
	if (z && !conf_zone_find(d->conf, z)) {
		http_reply_error(x, 404, "unknown zone \"%s\"", z);
		return;
	}
	if (l) {
		char *end;
		long n = strtol(l, &end, 10);
		if (*end || end == l || n < 1 || n > EVENTS_MAX || a || wt) {
			http_reply_error(x, 400,
			                 "last: must be a number of events from 1 to %d, without "
			                 "after or wait",
			                 EVENTS_MAX);
			return;
		}
		struct store *s = d->host->store;
		if (!s || store_events_tail(s, z, (size_t)n, events_tail_done, x) < 0)
			http_reply_error(x, 503, "state store unreachable");
		return;
	}
	if (a && !admin_stream_id_valid(a)) {
		http_reply_error(
		    x, 400,
		    "after: must be \"$\" or an event id like 1700000000000-0 (numbers "
		    "below 2^64)");
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		http_reply_error(x, 500, "out of memory");
		return;
	}
	p->d = d;
	p->x = x;
	snprintf(p->zone, sizeof(p->zone), "%s", z ? z : "");
	snprintf(p->after, sizeof(p->after), "%s", a ? a : "0");
	double w = 0;
	if (wt) {
		char *end;
		w = strtod(wt, &end);
		if (*end || end == wt || !(w >= 0 && w <= EVENTS_WAIT_MAX)) {
			http_reply_error(x, 400, "wait: must be a number of seconds from 0 to %.0f",
			                 EVENTS_WAIT_MAX);
			free(p);
			return;
		}
	}
	p->deadline = ev_now(d->loop) + w;
	ev_timer_init(&p->timeout, events_timeout, 0., 0.);
	p->timeout.data = p;
	events_try(p);
}

/* ---- mutating endpoints ------------------------------------------------------ */

static void admin_reload(struct daemon *d, struct http_exchange *x)
{
	json_t *errs = json_array();
	if (daemon_reload(d, errs) == 0) {
		json_decref(errs);
		http_reply_json(x, 200, json_pack("{s:s}", "result", "reloaded"));
	} else {
		http_reply_json(
		    x, 400,
		    json_pack("{s:s, s:o}", "error",
		              "configuration refused; the running configuration stays in "
		              "force",
		              "errors", errs));
	}
}

static void admin_reply(struct http_exchange *x, int status, json_t *reply)
{
	if (!reply)
		reply = json_object();
	http_reply_json(x, status, reply);
}

static void admin_report_done(void *arg, int status, json_t *reply)
{
	admin_reply(arg, status, reply);
}

static void admin_report(struct daemon *d, struct http_exchange *x, json_t *body)
{
	struct admin_report_body b;
	char err[256];
	if (admin_body_report(body, &b, err, sizeof(err)) < 0) {
		http_reply_error(x, 400, "%s", err);
		return;
	}
	if (json_array_size(b.events) > 0) {
		json_t *reply = NULL;
		int st = controller_outlier_events(d->ctl, b.zone, b.events, &reply);
		if (st != 200) {
			admin_reply(x, st, reply);
			return;
		}
	}
	controller_report(d->ctl, b.zone, b.dead, admin_report_done, x);
}

static void admin_scale(struct daemon *d, struct http_exchange *x, json_t *body)
{
	struct admin_scale_body b;
	json_t *reply = NULL;
	char err[256];
	if (admin_body_scale(body, &b, err, sizeof(err)) < 0) {
		http_reply_error(x, 400, "%s", err);
		return;
	}
	int st = controller_pin(d->ctl, b.zone, b.count, b.duration, &reply);
	admin_reply(x, st, reply);
}

static void admin_drain(struct daemon *d, struct http_exchange *x, json_t *body)
{
	struct admin_drain_body b;
	json_t *reply = NULL;
	char err[256];
	if (admin_body_drain(body, &b, err, sizeof(err)) < 0) {
		http_reply_error(x, 400, "%s", err);
		return;
	}
	int st = controller_drain(d->ctl, b.zone, b.server, &reply);
	admin_reply(x, st, reply);
}

/* POST /wake from a balancer holding requests with no server alive. */
static void admin_wake(struct daemon *d, struct http_exchange *x, json_t *body)
{
	struct admin_wake_body b;
	json_t *reply = NULL;
	char err[256];
	if (admin_body_wake(body, &b, err, sizeof(err)) < 0) {
		http_reply_error(x, 400, "%s", err);
		return;
	}
	int st = controller_wake(d->ctl, b.zone, b.held, b.epoch, &reply);
	admin_reply(x, st, reply);
}

static void admin_election(struct daemon *d, struct http_exchange *x,
                           const struct http_request *req, const char *type)
{
	const struct scaler_election_ops *eo = &d->election.plugin->ops.election;
	int status = 404;
	char *reply = NULL;
	if (!eo->message) {
		http_reply_error(x, 404, "the election plugin takes no messages");
		return;
	}
	eo->message(d->election.ctx, type, req->body, req->body_len, &status, &reply);
	if (status < 100 || status > 599)
		status = 500;
	if (reply) {
		http_reply(x, status, "application/json", reply, strlen(reply), NULL);
		free(reply);
	} else {
		http_reply(x, status, "application/json", "{}", 2, NULL);
	}
}

static void admin_metrics(struct daemon *d, struct http_exchange *x)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		http_reply_error(x, 500, "out of memory");
		return;
	}
	fprintf(f, "# HELP scaler_up 1 while scalerd runs.\n# TYPE scaler_up gauge\nscaler_up 1\n");
	fprintf(f,
	        "# HELP scaler_primary 1 while this node is primary.\n# TYPE scaler_primary "
	        "gauge\nscaler_primary %d\n",
	        d->role == ROLE_PRIMARY);
	fprintf(f,
	        "# HELP scaler_epoch Leadership epoch this node knows.\n# TYPE scaler_epoch "
	        "gauge\nscaler_epoch %llu\n",
	        (unsigned long long)(d->role == ROLE_PRIMARY ? d->epoch : d->primary_epoch));
	fprintf(f,
	        "# HELP scaler_config_reloads_total Configuration reloads applied.\n# TYPE "
	        "scaler_config_reloads_total counter\nscaler_config_reloads_total %u\n",
	        d->reloads);
	fprintf(f,
	        "# HELP scaler_config_reload_failures_total Configuration reloads refused.\n# TYPE "
	        "scaler_config_reload_failures_total counter\n"
	        "scaler_config_reload_failures_total %u\n",
	        d->reload_failures);
	fprintf(f,
	        "# HELP scaler_config_generations Configurations held in memory: the one in force "
	        "and older ones a plugin or a call in flight still uses.\n"
	        "# TYPE scaler_config_generations gauge\nscaler_config_generations %zu\n",
	        conf_alive());
	fprintf(f,
	        "# HELP scaler_balancer_restarts_total Balancer worker restarts by zone.\n# TYPE "
	        "scaler_balancer_restarts_total counter\n");
	for (size_t i = 0; i < d->conf->nzones; i++)
		if (conf_hosts_zone(d->conf, d->conf->zones[i].name))
			fprintf(f, "scaler_balancer_restarts_total{zone=\"%s\"} %d\n",
			        d->conf->zones[i].name,
			        supervisor_zone_restarts(d->sup, d->conf->zones[i].name));
	/* election counters come from the plugin's status */
	const struct scaler_election_ops *eo =
	    d->election.plugin ? &d->election.plugin->ops.election : NULL;
	if (eo && eo->status_json) {
		char *s = eo->status_json(d->election.ctx);
		json_t *j = s ? json_loads(s, 0, NULL) : NULL;
		free(s);
		/* counters of the election plugins only grow; the rest are gauges */
		static const char *const counters[] = {
		    "elections",     "elections_won", "deposed", "messages_refused",
		    "checks_failed", "retries",       NULL};
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
		{
			int counter = 0;
			if (!json_is_number(v) && !json_is_boolean(v))
				continue;
			for (size_t i = 0; counters[i]; i++)
				counter |= strcmp(counters[i], k) == 0;
			double val = json_is_boolean(v) ? json_is_true(v) : json_number_value(v);
			if (counter)
				fprintf(f,
				        "# TYPE scaler_election_%s_total counter\n"
				        "scaler_election_%s_total %.17g\n",
				        k, k, val);
			else
				fprintf(
				    f,
				    "# TYPE scaler_election_%s gauge\nscaler_election_%s %.17g\n",
				    k, k, val);
		}
		json_decref(j);
	}
	controller_metrics(d->ctl, f);
	fclose(f);
	http_reply(x, 200, "text/plain; version=0.0.4", buf, len, NULL);
	free(buf);
}

/* ---- routing --------------------------------------------------------------------- */

static int method_is(const struct http_request *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

/* GET, or HEAD: the same answer without its body */
static int is_read(const struct http_request *req)
{
	return method_is(req, "GET") || method_is(req, "HEAD");
}

static void admin_handle(struct http_exchange *x, const struct http_request *req, void *arg)
{
	struct daemon *d = arg;
	const char *p = req->path;

	if (console_handle(d, x, req))
		return;
	if (strcmp(p, "/health_check") == 0) {
		if (!is_read(req)) {
			http_reply_error(x, 405, "use GET");
			return;
		}
		http_reply(x, 200, "text/plain", "ok\n", 3, NULL);
	} else if (strcmp(p, "/status") == 0) {
		if (!is_read(req)) {
			http_reply_error(x, 405, "use GET");
			return;
		}
		admin_status(d, x);
	} else if (strcmp(p, "/servers") == 0) {
		char zone[64];
		int bad = 0;
		if (!is_read(req)) {
			http_reply_error(x, 405, "use GET");
			return;
		}
		const char *z = admin_query(req, "zone", zone, sizeof(zone), &bad);
		if (bad) {
			http_reply_error(x, 400, "zone: too long or badly encoded");
			return;
		}
		json_t *j = controller_servers_json(d->ctl, z);
		if (!j) {
			http_reply_error(x, 404, "unknown zone \"%s\"", z);
			return;
		}
		http_reply_json(x, 200, j);
	} else if (strcmp(p, "/events") == 0) {
		if (!is_read(req)) {
			http_reply_error(x, 405, "use GET");
			return;
		}
		admin_events(d, x, req);
	} else if (strcmp(p, "/metrics") == 0) {
		if (!is_read(req)) {
			http_reply_error(x, 405, "use GET");
			return;
		}
		admin_metrics(d, x);
	} else if (strcmp(p, "/reload") == 0 || strcmp(p, "/report") == 0 ||
	           strcmp(p, "/scale") == 0 || strcmp(p, "/drain") == 0 ||
	           strcmp(p, "/wake") == 0) {
		int is_report = strcmp(p, "/report") == 0;
		if (!(is_report ? method_is(req, "PUT") : method_is(req, "POST"))) {
			http_reply_error(x, 405, "use %s", is_report ? "PUT" : "POST");
			return;
		}
		if (strcmp(p, "/reload") == 0) {
			admin_reload(d, x);
			return;
		}
		json_t *body = http_request_json(x, req);
		if (!body)
			return;
		if (!json_is_object(body))
			http_reply_error(x, 400, "the body must be a JSON object");
		else if (is_report)
			admin_report(d, x, body);
		else if (strcmp(p, "/scale") == 0)
			admin_scale(d, x, body);
		else if (strcmp(p, "/wake") == 0)
			admin_wake(d, x, body);
		else
			admin_drain(d, x, body);
		json_decref(body);
	} else if (strncmp(p, "/election/", 10) == 0 && p[10]) {
		if (!method_is(req, "POST")) {
			http_reply_error(x, 405, "use POST");
			return;
		}
		admin_election(d, x, req, p + 10);
	} else {
		http_reply_error(x, 404, "no such endpoint: %s", p);
	}
}

struct http_server *admin_start(struct daemon *d, char *err, size_t errlen)
{
	struct http_server_limits lim = {.max_header = 32 * 1024,
	                                 .max_body = 1024 * 1024,
	                                 .read_timeout = 10,
	                                 .idle_timeout = 60};
	struct http_server *srv =
	    http_server_new(d->loop, d->conf->admin_listen, &lim, admin_handle, d, err, errlen);
	/* the token guards every endpoint but /health_check (reads too, unless
	 * node.public_reads), through the rule every admin listener shares */
	if (srv && http_server_set_auth(srv, d->conf->token, d->conf->public_reads) < 0) {
		snprintf(err, errlen, "out of memory");
		http_server_free(srv);
		return NULL;
	}
	if (srv)
		console_setup(srv);
	return srv;
}
