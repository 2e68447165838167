/* driver "swarm": servers are Docker Swarm services, through the Engine API
 * of a Swarm manager (never the CLI); several managers may be listed and
 * the driver moves on to the next when one does not answer or cannot serve.
 *
 * One service per server. Scaling a replicated service down removes its
 * highest slots, never the server scaler chose (the least loaded, the one
 * already drained), so each server is a service of one replica named
 * scaler-<cluster>-<server-id>: create is POST /services/create, remove is
 * DELETE of exactly that service. Its task runs with restart condition
 * "none": when a task dies or its node is lost, Swarm leaves it be and
 * scaler replaces the server (after the balancer's dead report, or at
 * reconciliation), so there are never two replacements. A server's address
 * never changes during its life: it is the address of its task's node and
 * the port the driver gave it (host networking; no routing mesh).
 *
 * Placement: `constraints` go to Swarm as they are ("{zone}" becomes the
 * zone's name). Swarm's own spread preference counts the tasks of one
 * service, which is always one here, so the driver spreads `preferences`
 * itself: it counts the zone's running servers in each group of ready nodes
 * (those the constraints admit), picks the group with the fewest, and pins
 * the new service to it with one more constraint. Swarm still places the
 * task within the group and has the last word on every constraint.
 *
 * Settings (driver group):
 *   managers        array of "unix:///path" or "tcp://host:port" (default the local socket)
 *   tls_ca, tls_cert, tls_key   TLS for tcp:// (https, client certificate)
 *   image           required; nodes pull it (a registry they all reach)
 *   command, env    as the docker driver (PORT, ZONE, SERVER_ID are always set;
 *                   HOST=0.0.0.0 unless env sets HOST)
 *   constraints     array of "KEY==VALUE" / "KEY!=VALUE" (Swarm's syntax)
 *   preferences     array of "spread=KEY", e.g. "spread=node.labels.rack"
 *   cpus, memory    limits; reserve_cpus, reserve_memory: reservations
 *   stop_timeout    seconds between SIGTERM and SIGKILL, default 10
 *   start_timeout   seconds for a task to run (image pull included), default 60
 *   api_timeout     seconds per API request, default 10 (then the next manager) */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>
#include <jansson.h>
#include <scaler/plugin.h>

#include "engine.h"

#define SW_NAME "swarm"
#define SW_POLL 0.25 /* seconds between looks at a task that starts or stops */
/* Docker's Swarm executor waits 2 s ("gossip converge") before it signals a
 * task's container to stop; with the dispatch, a removal takes 3 s or so. */
#define SW_STOP_DELAY 5.0
#define SW_CLEAN_FOR 30.0 /* seconds a failed create keeps trying to remove its service */

struct sw;
struct sw_op;
typedef void (*sw_step)(struct sw_op *op, const struct eng_reply *r);

enum sw_kind { SW_CREATE, SW_REMOVE, SW_LIST };

struct sw_op {
	struct eng_op base; /* first: the callback, the call in flight, the error */
	struct sw *sw;
	enum sw_kind kind;
	sw_step next;
	double deadline;
	/* the listings of create and list */
	json_t *services, *tasks, *nodes;
	/* create */
	int port_min, port_max;
	int port;          /* reserved while creating */
	json_t *pins;      /* spread values chosen, one per preference */
	char service[128]; /* create, remove: the service's id */
	char name[64];     /* its name */
	char fail[768];    /* create: why, while the service is being removed */
};

struct sw {
	const struct scaler_host *host;
	struct eng *eng;
	char *image;
	json_t *args;        /* array or NULL */
	json_t *env;         /* array of "K=V" */
	json_t *constraints; /* array of "KEY==VALUE", may hold {zone} */
	json_t *spreads;     /* array of keys ("node.labels.rack") */
	double cpus, reserve_cpus;
	long long memory, reserve_memory;
	double stop_timeout, start_timeout, api_timeout;
	struct eng_op *ops;
};

static const char *const sw_known[] = {"plugin",       "managers",
                                       "tls_ca",       "tls_cert",
                                       "tls_key",      "image",
                                       "command",      "env",
                                       "constraints",  "preferences",
                                       "cpus",         "memory",
                                       "reserve_cpus", "reserve_memory",
                                       "stop_timeout", "start_timeout",
                                       "api_timeout",  NULL};

/* ---- config --------------------------------------------------------------- */

/* "KEY==VALUE" or "KEY!=VALUE": the key, operator and value; -1 otherwise */
static int sw_constraint_split(const char *c, char *key, size_t klen, int *eq, const char **value)
{
	const char *op = strstr(c, "==");
	const char *ne = strstr(c, "!=");
	size_t n;
	if (!op || (ne && ne < op))
		op = ne;
	if (!op)
		return -1;
	*eq = op[0] == '=';
	while (isspace((unsigned char)*c))
		c++;
	n = (size_t)(op - c);
	while (n && isspace((unsigned char)c[n - 1]))
		n--;
	*value = op + 2;
	while (isspace((unsigned char)**value))
		(*value)++;
	if (!n || n >= klen || !**value)
		return -1;
	snprintf(key, klen, "%.*s", (int)n, c);
	return 0;
}

static int sw_conf_placement(struct sw *sw, const config_setting_t *conf)
{
	const config_setting_t *s;
	size_t i;
	json_t *v;
	char key[256];
	const char *value;
	int eq;
	if ((s = conf ? config_setting_get_member(conf, "constraints") : NULL)) {
		sw->constraints = eng_conf_strings(sw->host, s, 0, 0);
		if (!sw->constraints)
			return -1;
		json_array_foreach(sw->constraints, i, v)
		{
			if (sw_constraint_split(json_string_value(v), key, sizeof(key), &eq,
			                        &value) < 0)
				return sw->host->conf_error(
				    config_setting_get_elem(s, (unsigned)i),
				    "expected \"KEY==VALUE\" or \"KEY!=VALUE\" (e.g. "
				    "\"node.labels.zone=={zone}\"), got \"%s\"",
				    json_string_value(v));
		}
	} else {
		sw->constraints = json_array();
	}
	sw->spreads = json_array();
	if ((s = conf ? config_setting_get_member(conf, "preferences") : NULL)) {
		json_t *prefs = eng_conf_strings(sw->host, s, 0, 0);
		if (!prefs)
			return -1;
		json_array_foreach(prefs, i, v)
		{
			const char *p = json_string_value(v);
			if (strncmp(p, "spread=", 7) != 0 || !p[7] || strpbrk(p + 7, " =!{}")) {
				sw->host->conf_error(config_setting_get_elem(s, (unsigned)i),
				                     "expected \"spread=KEY\" (e.g. "
				                     "\"spread=node.labels.rack\"), got \"%s\"",
				                     p);
				json_decref(prefs);
				return -1;
			}
			json_array_append_new(sw->spreads, json_string(p + 7));
		}
		json_decref(prefs);
	}
	return 0;
}

static void sw_fini(void *ctx);

static int sw_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	struct sw *sw = calloc(1, sizeof(*sw));
	const config_setting_t *s;
	const char *v;
	int bad = 0;
	if (!sw)
		return -1;
	sw->host = host;
	if (conf && host->conf_check_known(conf, sw_known) < 0)
		goto fail;
	sw->eng =
	    eng_new(host, conf, "managers", 1, "unix:///var/run/docker.sock", "Swarm manager");
	if (!sw->eng)
		goto fail;
	v = eng_conf_string(host, conf, "image", &bad);
	if (bad)
		goto fail;
	if (!v) {
		if (conf)
			host->conf_error(conf, "image: required (the image of the servers)");
		else
			host->log(SCALER_LOG_ERR, SW_NAME, "driver swarm: image is required");
		goto fail;
	}
	sw->image = strdup(v);
	if ((s = conf ? config_setting_get_member(conf, "command") : NULL) &&
	    !(sw->args = eng_conf_strings(host, s, 0, 0)))
		goto fail;
	if ((s = conf ? config_setting_get_member(conf, "env") : NULL))
		sw->env = eng_conf_strings(host, s, 1, 0);
	else
		sw->env = json_array();
	if (!sw->env || sw_conf_placement(sw, conf) < 0)
		goto fail;
	if (host->conf_number(conf, "cpus", 0, 0.01, 1024, &sw->cpus) < 0 ||
	    host->conf_number(conf, "reserve_cpus", 0, 0.01, 1024, &sw->reserve_cpus) < 0 ||
	    (sw->memory = eng_conf_bytes(host, conf, "memory", 6 << 20)) < 0 ||
	    (sw->reserve_memory = eng_conf_bytes(host, conf, "reserve_memory", 1 << 20)) < 0 ||
	    host->conf_number(conf, "stop_timeout", 10, 0, 3600, &sw->stop_timeout) < 0 ||
	    host->conf_number(conf, "start_timeout", 60, 1, 3600, &sw->start_timeout) < 0 ||
	    host->conf_number(conf, "api_timeout", 10, 0.1, 3600, &sw->api_timeout) < 0)
		goto fail;
	*ctx = sw;
	return 0;
fail:
	sw_fini(sw);
	return -1;
}

/* ---- requests ------------------------------------------------------------- */

static void sw_eng_cb(void *arg, const struct eng_reply *r)
{
	struct sw_op *op = arg;
	op->base.call = NULL;
	op->next(op, r);
}

/* One API call; -1 (op not finished) when it cannot start. */
static int sw_call(struct sw_op *op, const char *method, const char *path, json_t *body,
                   sw_step next)
{
	op->next = next;
	op->base.call =
	    eng_request(op->sw->eng, method, path, body, op->sw->api_timeout, sw_eng_cb, op);
	return op->base.call ? 0 : -1;
}

static void sw_call_or_fail(struct sw_op *op, const char *method, const char *path, sw_step next)
{
	if (sw_call(op, method, path, NULL, next) < 0)
		eng_op_fail(&op->base, "cannot send %s %s to a Swarm manager", method, path);
}

/* GET path?filters={"KEY":[VALUE]} */
static int sw_get_filtered(struct sw_op *op, const char *path, const char *key, const char *value,
                           sw_step next)
{
	json_t *filters = json_pack("{s:[s]}", key, value);
	op->next = next;
	op->base.call =
	    eng_get_filtered(op->sw->eng, path, filters, op->sw->api_timeout, sw_eng_cb, op);
	json_decref(filters);
	return op->base.call ? 0 : -1;
}

static void sw_wait(struct sw_op *op, void (*cb)(struct ev_loop *, ev_timer *, int))
{
	ev_set_cb(&op->base.timer, cb);
	ev_timer_set(&op->base.timer, SW_POLL, 0.);
	ev_timer_start(op->sw->host->loop, &op->base.timer);
}

static struct sw_op *sw_op_new(struct sw *sw, enum sw_kind kind, void *arg)
{
	struct sw_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	eng_op_init(&op->base, sw->host, SW_NAME, &sw->ops, arg);
	op->sw = sw;
	op->kind = kind;
	op->port = -1;
	return op;
}

/* the listings an op holds */
static void sw_op_release(struct eng_op *b)
{
	struct sw_op *op = (struct sw_op *)b;
	json_decref(op->services);
	json_decref(op->tasks);
	json_decref(op->nodes);
	json_decref(op->pins);
	op->services = op->tasks = op->nodes = op->pins = NULL;
}

static void sw_done(struct sw_op *op, int status, const struct scaler_server *srvs, size_t n)
{
	sw_op_release(&op->base);
	eng_op_done(&op->base, status, srvs, n);
}

static void sw_fail(struct sw_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sw_fail(struct sw_op *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->base.err, sizeof(op->base.err), fmt, ap);
	va_end(ap);
	sw_done(op, -1, NULL, 0);
}

/* Service names are DNS labels: scaler-<cluster>-<server> when that is
 * one, else a readable part and a hash of both. */
static void sw_service_name(const char *cluster, const char *server, char *out, size_t len)
{
	char raw[200];
	size_t n;
	int ok;
	snprintf(raw, sizeof(raw), "scaler-%s-%s", cluster, server);
	n = strlen(raw);
	ok = n <= 63 && isalnum((unsigned char)raw[n - 1]);
	for (size_t i = 0; i < n && ok; i++)
		ok = isalnum((unsigned char)raw[i]) || raw[i] == '-';
	if (ok) {
		snprintf(out, len, "%s", raw);
		return;
	}
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)raw[i]) * 16777619u;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)raw[i]))
			raw[i] = '-';
	snprintf(out, len, "%.54s-%08x", raw, (unsigned)h);
}

/* ---- nodes, tasks, placement --------------------------------------------- */

static json_t *sw_path(json_t *j, const char *a, const char *b, const char *c)
{
	j = json_object_get(j, a);
	if (b)
		j = json_object_get(j, b);
	if (c)
		j = json_object_get(j, c);
	return j;
}

static const char *sw_str(json_t *j, const char *a, const char *b, const char *c)
{
	const char *v = json_string_value(sw_path(j, a, b, c));
	return v ? v : "";
}

/* The value of KEY on node n ("" when it has no such label); NULL when the
 * key is one the driver does not know (Swarm alone judges it). */
static const char *sw_node_value(json_t *n, const char *key)
{
	if (strcasecmp(key, "node.id") == 0)
		return sw_str(n, "ID", NULL, NULL);
	if (strcasecmp(key, "node.hostname") == 0)
		return sw_str(n, "Description", "Hostname", NULL);
	if (strcasecmp(key, "node.role") == 0)
		return sw_str(n, "Spec", "Role", NULL);
	if (strcasecmp(key, "node.platform.os") == 0)
		return sw_str(n, "Description", "Platform", "OS");
	if (strcasecmp(key, "node.platform.arch") == 0)
		return sw_str(n, "Description", "Platform", "Architecture");
	if (strncasecmp(key, "node.labels.", 12) == 0)
		return sw_str(sw_path(n, "Spec", "Labels", NULL), key + 12, NULL, NULL);
	if (strncasecmp(key, "engine.labels.", 14) == 0)
		return sw_str(sw_path(n, "Description", "Engine", "Labels"), key + 14, NULL, NULL);
	return NULL;
}

static int sw_node_ready(json_t *n)
{
	return strcmp(sw_str(n, "Status", "State", NULL), "ready") == 0 &&
	       strcmp(sw_str(n, "Spec", "Availability", NULL), "active") == 0;
}

/* 1 when node n may take a task under `constraints` as far as the driver can tell */
static int sw_node_admits(json_t *n, json_t *constraints)
{
	size_t i;
	json_t *c;
	json_array_foreach(constraints, i, c)
	{
		char key[256];
		const char *want, *have;
		int eq;
		if (sw_constraint_split(json_string_value(c), key, sizeof(key), &eq, &want) < 0 ||
		    !(have = sw_node_value(n, key)))
			continue;
		if ((strcasecmp(have, want) == 0) != eq)
			return 0;
	}
	return 1;
}

/* 1 when Swarm has given node n up (its tasks run nowhere scaler can count on) */
static int sw_node_lost(json_t *n)
{
	const char *state = sw_str(n, "Status", "State", NULL);
	return strcmp(state, "down") == 0 || strcmp(state, "disconnected") == 0;
}

/* 1 when task t is over: it will not run (again) */
static int sw_task_ended(json_t *t)
{
	static const char *const ended[] = {"complete", "shutdown", "failed", "rejected",
	                                    "orphaned", "remove",   NULL};
	const char *state = sw_str(t, "Status", "State", NULL);
	for (const char *const *e = ended; *e; e++)
		if (strcmp(state, *e) == 0)
			return 1;
	return 0;
}

static json_t *sw_node_by_id(json_t *nodes, const char *id)
{
	size_t i;
	json_t *n;
	json_array_foreach(nodes, i, n)
	{
		if (strcmp(sw_str(n, "ID", NULL, NULL), id) == 0)
			return n;
	}
	return NULL;
}

/* The task of service `sid` that is meant to run (DesiredState running), NULL when none. */
static json_t *sw_service_task(json_t *tasks, const char *sid)
{
	size_t i;
	json_t *t;
	json_array_foreach(tasks, i, t)
	{
		if (strcmp(sw_str(t, "ServiceID", NULL, NULL), sid) == 0 &&
		    strcmp(sw_str(t, "DesiredState", NULL, NULL), "running") == 0)
			return t;
	}
	return NULL;
}

/* The group (value of `key`) among the candidate nodes that holds the
 * fewest of the zone's servers, counting its running ones and the creates
 * in flight (preference k of each); a tie goes to the group with more nodes
 * per server. NULL when no candidate has a value the driver can read.
 * `groups` gets {value: [servers, nodes]}. */
static const char *sw_spread_pick(struct sw_op *op, const char *key, size_t k, json_t *cand,
                                  json_t *groups)
{
	const char *best = NULL, *v;
	json_t *n, *s, *g, *bg = NULL;
	size_t j;
	json_array_foreach(cand, j, n)
	{
		if (!(v = sw_node_value(n, key)))
			continue;
		if (!(g = json_object_get(groups, v)))
			json_object_set_new(groups, v, g = json_pack("[i, i]", 0, 0));
		json_array_set_new(g, 1,
		                   json_integer(json_integer_value(json_array_get(g, 1)) + 1));
	}
	json_array_foreach(op->services, j, s)
	{
		json_t *t = sw_service_task(op->tasks, sw_str(s, "ID", NULL, NULL));
		json_t *node = t ? sw_node_by_id(op->nodes, sw_str(t, "NodeID", NULL, NULL)) : NULL;
		v = node ? sw_node_value(node, key) : NULL;
		g = v && strcmp(sw_str(s, "Spec", "Labels", "scaler.zone"), op->base.srv.zone) == 0
		        ? json_object_get(groups, v)
		        : NULL;
		if (g)
			json_array_set_new(
			    g, 0, json_integer(json_integer_value(json_array_get(g, 0)) + 1));
	}
	for (const struct eng_op *b = op->sw->ops; b; b = b->next) {
		const struct sw_op *o = (const struct sw_op *)b;
		g = o != op && o->kind == SW_CREATE && o->pins &&
		            strcmp(o->base.srv.zone, op->base.srv.zone) == 0
		        ? json_object_get(groups, json_string_value(json_array_get(o->pins, k)))
		        : NULL;
		if (g)
			json_array_set_new(
			    g, 0, json_integer(json_integer_value(json_array_get(g, 0)) + 1));
	}
	json_object_foreach(groups, v, g)
	{
		json_int_t servers = json_integer_value(json_array_get(g, 0));
		json_int_t nodes = json_integer_value(json_array_get(g, 1));
		json_int_t bs = bg ? json_integer_value(json_array_get(bg, 0)) : 0;
		json_int_t bn = bg ? json_integer_value(json_array_get(bg, 1)) : 1;
		if (!bg || servers < bs || (servers == bs && servers * bn < bs * nodes)) {
			best = v;
			bg = g;
		}
	}
	return best;
}

/* The constraints of a new server: the configured ones ({zone} replaced)
 * and, per spread key, one that pins it to the group sw_spread_pick chose. */
static json_t *sw_placement(struct sw_op *op)
{
	struct sw *sw = op->sw;
	json_t *cons = json_array(), *cand = json_array(), *c;
	size_t i, k;
	json_array_foreach(sw->constraints, i, c)
	{
		char buf[512], *z;
		snprintf(buf, sizeof(buf), "%s", json_string_value(c));
		while ((z = strstr(buf, "{zone}"))) {
			char rest[512];
			snprintf(rest, sizeof(rest), "%s", z + 6);
			snprintf(z, sizeof(buf) - (size_t)(z - buf), "%s%s", op->base.srv.zone,
			         rest);
		}
		json_array_append_new(cons, json_string(buf));
	}
	json_array_foreach(op->nodes, i, c)
	{
		if (sw_node_ready(c) && sw_node_admits(c, cons))
			json_array_append(cand, c);
	}
	op->pins = json_array();
	json_array_foreach(sw->spreads, k, c)
	{
		const char *key = json_string_value(c), *gv;
		json_t *groups = json_object(), *g;
		const char *best = sw_spread_pick(op, key, k, cand, groups);
		char buf[512];
		if (!best) { /* nothing fits, or a key the driver cannot read: Swarm decides */
			json_decref(groups);
			break;
		}
		json_array_append_new(op->pins, json_string(best));
		if (best[0]) {
			snprintf(buf, sizeof(buf), "%s==%s", key, best);
			json_array_append_new(cons, json_string(buf));
		}
		json_object_foreach(groups, gv, g)
		{
			/* nodes without the label: not any value the others have */
			if (!best[0] && gv[0]) {
				snprintf(buf, sizeof(buf), "%s!=%s", key, gv);
				json_array_append_new(cons, json_string(buf));
			}
		}
		/* the next key spreads within the chosen group */
		for (size_t j = json_array_size(cand); j-- > 0;)
			if (strcmp(sw_node_value(json_array_get(cand, j), key), best) != 0)
				json_array_remove(cand, j);
		json_decref(groups);
	}
	json_decref(cand);
	return cons;
}

/* A service of this cluster (with the tasks and nodes listed) as a server;
 * -1 when it does not carry scaler's labels. */
static int sw_service_server(struct sw_op *op, json_t *s, struct scaler_server *srv)
{
	json_t *labels = sw_path(s, "Spec", "Labels", NULL);
	const char *sid = sw_str(labels, "scaler.server", NULL, NULL);
	const char *zone = sw_str(labels, "scaler.zone", NULL, NULL);
	const char *id = sw_str(s, "ID", NULL, NULL);
	json_t *t, *node;
	memset(srv, 0, sizeof(*srv));
	if (!*id || !*sid || !*zone || strlen(sid) >= sizeof(srv->id) ||
	    strlen(zone) >= sizeof(srv->zone) || strlen(id) >= sizeof(srv->ref))
		return -1;
	snprintf(srv->id, sizeof(srv->id), "%s", sid);
	snprintf(srv->zone, sizeof(srv->zone), "%s", zone);
	snprintf(srv->ref, sizeof(srv->ref), "%s", id);
	srv->created = atof(sw_str(labels, "scaler.created", NULL, NULL));
	t = sw_service_task(op->tasks, id);
	node = t ? sw_node_by_id(op->nodes, sw_str(t, "NodeID", NULL, NULL)) : NULL;
	if (node && *sw_str(node, "Status", "Addr", NULL))
		snprintf(srv->address, sizeof(srv->address), "http://%s:%s",
		         sw_str(node, "Status", "Addr", NULL),
		         sw_str(labels, "scaler.port", NULL, NULL));
	/* a node that is down or gone runs nothing scaler can count on */
	srv->running = t && node && strcmp(sw_str(t, "Status", "State", NULL), "running") == 0 &&
	               !sw_node_lost(node);
	return 0;
}

/* ---- listings: services of this cluster, tasks meant to run, nodes -------- */

static void sw_listed_nodes(struct sw_op *op, const struct eng_reply *r);
static void sw_listed_tasks(struct sw_op *op, const struct eng_reply *r);
static void sw_listed(struct sw_op *op);

static void sw_listed_services(struct sw_op *op, const struct eng_reply *r)
{
	if (r->status != 200 || !json_is_array(r->json)) {
		sw_fail(op, "cannot list services: %s", r->message);
		return;
	}
	op->services = json_incref(r->json);
	if (sw_get_filtered(op, "/tasks", "desired-state", "running", sw_listed_tasks) < 0)
		sw_fail(op, "cannot send GET /tasks to a Swarm manager");
}

static void sw_listed_tasks(struct sw_op *op, const struct eng_reply *r)
{
	if (r->status != 200 || !json_is_array(r->json)) {
		sw_fail(op, "cannot list tasks: %s", r->message);
		return;
	}
	op->tasks = json_incref(r->json);
	sw_call_or_fail(op, "GET", "/nodes", sw_listed_nodes);
}

static void sw_listed_nodes(struct sw_op *op, const struct eng_reply *r)
{
	if (r->status != 200 || !json_is_array(r->json)) {
		sw_fail(op, "cannot list nodes: %s", r->message);
		return;
	}
	op->nodes = json_incref(r->json);
	sw_listed(op);
}

/* GET the cluster's services, the tasks meant to run and the nodes, then sw_listed */
static int sw_fetch(struct sw_op *op)
{
	char label[300];
	snprintf(label, sizeof(label), "scaler.cluster=%s", op->sw->host->cluster);
	return sw_get_filtered(op, "/services", "label", label, sw_listed_services);
}

/* ---- list ----------------------------------------------------------------- */

static void sw_list_done(struct sw_op *op)
{
	size_t i, n = 0;
	json_t *s;
	struct scaler_server *srvs = calloc(json_array_size(op->services) + 1, sizeof(*srvs));
	if (!srvs) {
		sw_fail(op, "out of memory");
		return;
	}
	json_array_foreach(op->services, i, s)
	{
		if (sw_service_server(op, s, &srvs[n]) == 0)
			n++;
	}
	sw_done(op, 0, srvs, n);
	free(srvs);
}

/* ---- create --------------------------------------------------------------- */

static void sw_create_made(struct sw_op *op, const struct eng_reply *r);
static void sw_create_polled(struct sw_op *op, const struct eng_reply *r);
static void sw_create_poll(struct ev_loop *loop, ev_timer *w, int revents);

static int sw_port_taken(struct sw_op *op, int port)
{
	size_t i;
	json_t *s;
	json_array_foreach(op->services, i, s)
	{
		if (atoi(sw_str(s, "Spec", "Labels", "scaler.port")) == port)
			return 1;
	}
	for (const struct eng_op *b = op->sw->ops; b; b = b->next) {
		const struct sw_op *o = (const struct sw_op *)b;
		if (o != op && o->kind == SW_CREATE && o->port == port)
			return 1;
	}
	return 0;
}

static void sw_create_clean(struct sw_op *op);
static void sw_create_clean_later(struct ev_loop *loop, ev_timer *w, int revents);

/* Nothing half-created stays: the service goes, then the op fails with
 * `fail`. A Swarm without a leader (a manager coming back from a partition
 * can cost it one for a few seconds) refuses the removal: it is tried again
 * for SW_CLEAN_FOR seconds before the service is reported left behind. */
static void sw_create_cleaned(struct sw_op *op, const struct eng_reply *r)
{
	if (r->status == 200 || r->status == 404) {
		sw_fail(op, "%s", op->fail);
		return;
	}
	if (ev_now(op->sw->host->loop) < op->deadline) {
		op->sw->host->log(SCALER_LOG_WARNING, SW_NAME,
		                  "server %s: cannot remove service %s yet (%s); trying again",
		                  op->base.srv.id, op->name, r->message);
		ev_set_cb(&op->base.timer, sw_create_clean_later);
		ev_timer_set(&op->base.timer, 1.0, 0.);
		ev_timer_start(op->sw->host->loop, &op->base.timer);
		return;
	}
	sw_fail(op, "%s (service %s left behind: %s)", op->fail, op->name, r->message);
}

static void sw_create_clean(struct sw_op *op)
{
	char path[200];
	snprintf(path, sizeof(path), "/services/%s", op->service);
	if (sw_call(op, "DELETE", path, NULL, sw_create_cleaned) < 0)
		sw_fail(op, "%s (service %s left behind)", op->fail, op->name);
}

static void sw_create_clean_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sw_create_clean(w->data);
}

static void sw_create_fail(struct sw_op *op, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sw_create_fail(struct sw_op *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->fail, sizeof(op->fail), fmt, ap);
	va_end(ap);
	op->deadline = ev_now(op->sw->host->loop) + SW_CLEAN_FOR;
	sw_create_clean(op);
}

static int sw_env_has(json_t *env, const char *name)
{
	size_t i, n = strlen(name);
	json_t *e;
	json_array_foreach(env, i, e)
	{
		if (strncmp(json_string_value(e), name, n) == 0 && json_string_value(e)[n] == '=')
			return 1;
	}
	return 0;
}

static json_t *sw_create_spec(struct sw_op *op)
{
	struct sw *sw = op->sw;
	char buf[300], created[32];
	json_t *env = json_deep_copy(sw->env), *labels, *cs, *tt, *res;
	snprintf(buf, sizeof(buf), "ZONE=%s", op->base.srv.zone);
	json_array_append_new(env, json_string(buf));
	snprintf(buf, sizeof(buf), "SERVER_ID=%s", op->base.srv.id);
	json_array_append_new(env, json_string(buf));
	snprintf(buf, sizeof(buf), "PORT=%d", op->port);
	json_array_append_new(env, json_string(buf));
	/* the node's address is not known before Swarm places the task: the
	 * server listens on every address of its node unless env says where */
	if (!sw_env_has(sw->env, "HOST"))
		json_array_append_new(env, json_string("HOST=0.0.0.0"));
	snprintf(created, sizeof(created), "%.6f", op->base.srv.created);
	snprintf(buf, sizeof(buf), "%d", op->port);
	/* scaler.node: which scalerd made it, for whoever audits the cluster */
	labels = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "scaler.cluster", sw->host->cluster,
	                   "scaler.zone", op->base.srv.zone, "scaler.server", op->base.srv.id,
	                   "scaler.port", buf, "scaler.created", created, "scaler.node",
	                   sw->host->node_id);
	cs = json_pack("{s:s, s:o, s:O, s:I}", "Image", sw->image, "Env", env, "Labels", labels,
	               "StopGracePeriod", (json_int_t)llround(sw->stop_timeout * 1e9));
	if (sw->args)
		json_object_set(cs, "Args", sw->args);
	/* scalerd checks its servers itself; an image's HEALTHCHECK would hold
	 * a new task in "starting" until its first check (30 s apart, say) */
	json_object_set_new(cs, "Healthcheck", json_pack("{s:[s]}", "Test", "NONE"));
	res = json_pack("{s:{}, s:{}}", "Limits", "Reservations");
	if (sw->cpus > 0)
		json_object_set_new(json_object_get(res, "Limits"), "NanoCPUs",
		                    json_integer((json_int_t)llround(sw->cpus * 1e9)));
	if (sw->memory > 0)
		json_object_set_new(json_object_get(res, "Limits"), "MemoryBytes",
		                    json_integer(sw->memory));
	if (sw->reserve_cpus > 0)
		json_object_set_new(json_object_get(res, "Reservations"), "NanoCPUs",
		                    json_integer((json_int_t)llround(sw->reserve_cpus * 1e9)));
	if (sw->reserve_memory > 0)
		json_object_set_new(json_object_get(res, "Reservations"), "MemoryBytes",
		                    json_integer(sw->reserve_memory));
	/* restart condition none: only scaler replaces servers */
	tt = json_pack("{s:o, s:{s:s}, s:[{s:s}], s:{s:o}, s:o}", "ContainerSpec", cs,
	               "RestartPolicy", "Condition", "none", "Networks", "Target", "host",
	               "Placement", "Constraints", sw_placement(op), "Resources", res);
	return json_pack("{s:s, s:o, s:o, s:{s:{s:i}}}", "Name", op->name, "Labels", labels,
	                 "TaskTemplate", tt, "Mode", "Replicated", "Replicas", 1);
}

static void sw_listed(struct sw_op *op)
{
	json_t *s, *spec;
	size_t i;
	int span;
	if (op->kind == SW_LIST) {
		sw_list_done(op);
		return;
	}
	json_array_foreach(op->services, i, s)
	{
		if (strcmp(sw_str(s, "Spec", "Labels", "scaler.server"), op->base.srv.id) == 0) {
			sw_fail(op, "create server %s: it already exists (service %.12s)",
			        op->base.srv.id, sw_str(s, "ID", NULL, NULL));
			return;
		}
	}
	/* a free port at random: one a node keeps busy for itself is not retried in a row */
	span = op->port_max - op->port_min + 1;
	for (int k = 0, start = (int)(random() % span); k < span && op->port < 0; k++) {
		int port = op->port_min + (start + k) % span;
		if (!sw_port_taken(op, port))
			op->port = port;
	}
	if (op->port < 0) {
		sw_fail(op, "zone %s: no free port in %d-%d for server %s", op->base.srv.zone,
		        op->port_min, op->port_max, op->base.srv.id);
		return;
	}
	spec = sw_create_spec(op);
	if (!spec || sw_call(op, "POST", "/services/create", spec, sw_create_made) < 0)
		sw_fail(op, "create server %s: cannot send the request", op->base.srv.id);
	json_decref(spec);
}

static void sw_create_adopt(struct sw_op *op, const struct eng_reply *r)
{
	json_t *labels = sw_path(r->json, "Spec", "Labels", NULL);
	if (r->status != 200 ||
	    strcmp(sw_str(labels, "scaler.server", NULL, NULL), op->base.srv.id) != 0 ||
	    strcmp(sw_str(labels, "scaler.cluster", NULL, NULL), op->sw->host->cluster) != 0) {
		sw_fail(op, "create server %s: service %s already exists", op->base.srv.id,
		        op->name);
		return;
	}
	snprintf(op->service, sizeof(op->service), "%s", sw_str(r->json, "ID", NULL, NULL));
	op->deadline = ev_now(op->sw->host->loop) + op->sw->start_timeout;
	sw_wait(op, sw_create_poll);
}

/* No manager answered the create in time; one may have made the service
 * all the same. Found: it is adopted. Not found: the create failed. No
 * manager can say: it is removed by name (tried again for SW_CLEAN_FOR
 * seconds), so nothing half-created stays. */
static void sw_create_looked_up(struct sw_op *op, const struct eng_reply *r)
{
	if (r->status == 200) {
		sw_create_adopt(op, r);
		return;
	}
	if (r->status == 404) {
		sw_fail(op, "%s", op->fail);
		return;
	}
	snprintf(op->service, sizeof(op->service), "%s", op->name);
	op->deadline = ev_now(op->sw->host->loop) + SW_CLEAN_FOR;
	sw_create_clean(op);
}

static void sw_create_made(struct sw_op *op, const struct eng_reply *r)
{
	const char *id = sw_str(r->json, "ID", NULL, NULL);
	char path[200];
	if (r->status == 409 && r->failovers) {
		/* a manager that did not answer in time may have made it */
		snprintf(path, sizeof(path), "/services/%s", op->name);
		sw_call_or_fail(op, "GET", path, sw_create_adopt);
		return;
	}
	if (r->status == 0) {
		snprintf(op->fail, sizeof(op->fail), "create server %s: %s", op->base.srv.id,
		         r->message);
		snprintf(path, sizeof(path), "/services/%s", op->name);
		if (sw_call(op, "GET", path, NULL, sw_create_looked_up) < 0)
			sw_fail(op, "%s", op->fail);
		return;
	}
	if (r->status != 201) {
		sw_fail(op, "create server %s: %s", op->base.srv.id, r->message);
		return;
	}
	if (!*id || strlen(id) >= sizeof(op->service) ||
	    strspn(id, "0123456789abcdefghijklmnopqrstuvwxyz") != strlen(id)) {
		sw_fail(op, "create server %s: the Swarm manager returned no service id",
		        op->base.srv.id);
		return;
	}
	snprintf(op->service, sizeof(op->service), "%s", id);
	op->deadline = ev_now(op->sw->host->loop) + op->sw->start_timeout;
	sw_wait(op, sw_create_poll);
}

static void sw_create_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sw_op *op = w->data;
	(void)loop;
	(void)revents;
	if (sw_get_filtered(op, "/tasks", "service", op->service, sw_create_polled) < 0)
		sw_create_fail(op, "create server %s: cannot ask for its task", op->base.srv.id);
}

static void sw_create_node(struct sw_op *op, const struct eng_reply *r)
{
	const char *addr = sw_str(r->json, "Status", "Addr", NULL);
	if (r->status != 200 || !*addr || strcmp(addr, "0.0.0.0") == 0) {
		sw_create_fail(op, "create server %s: no address for its node: %s", op->base.srv.id,
		               r->status == 200 ? "none recorded" : r->message);
		return;
	}
	snprintf(op->base.srv.address, sizeof(op->base.srv.address), "http://%s:%d", addr,
	         op->port);
	snprintf(op->base.srv.ref, sizeof(op->base.srv.ref), "%s", op->service);
	op->base.srv.running = 1;
	op->sw->host->log(SCALER_LOG_INFO, SW_NAME, "server %s started: service %.12s, %s",
	                  op->base.srv.id, op->service, op->base.srv.address);
	sw_done(op, 0, NULL, 0);
}

/* The service's task: running → its node's address; failed, rejected,
 * unplaceable or shut down → Swarm's words and the service goes. */
static void sw_create_polled(struct sw_op *op, const struct eng_reply *r)
{
	json_t *t = NULL, *e;
	size_t i;
	const char *state, *err;
	char path[200];
	json_array_foreach(r->status == 200 ? r->json : NULL, i, e)
	{
		t = e; /* one replica, one task: no restarts */
	}
	state = sw_str(t, "Status", "State", NULL);
	err = sw_str(t, "Status", "Err", NULL);
	if (r->status == 404) {
		/* someone removed it meanwhile (a new primary's reconciliation) */
		sw_fail(op, "create server %s: its service was removed while it started: %s",
		        op->base.srv.id, r->message);
		return;
	}
	if (r->status != 200)
		op->sw->host->log(SCALER_LOG_WARNING, SW_NAME, "server %s: cannot see its task: %s",
		                  op->base.srv.id, r->message);
	if (t && strcmp(state, "running") == 0 &&
	    strcmp(sw_str(t, "DesiredState", NULL, NULL), "running") == 0) {
		snprintf(path, sizeof(path), "/nodes/%s", sw_str(t, "NodeID", NULL, NULL));
		if (sw_call(op, "GET", path, NULL, sw_create_node) < 0)
			sw_create_fail(op, "create server %s: cannot ask for its node",
			               op->base.srv.id);
		return;
	}
	if (t && sw_task_ended(t)) {
		sw_create_fail(op, "create server %s: task %s: %s", op->base.srv.id, state,
		               *err ? err : sw_str(t, "Status", "Message", NULL));
		return;
	}
	if (t && strcmp(state, "pending") == 0 && *err) {
		sw_create_fail(op, "create server %s: Swarm cannot place it: %s", op->base.srv.id,
		               err);
		return;
	}
	if (t && strcmp(sw_str(t, "DesiredState", NULL, NULL), "running") != 0) {
		sw_create_fail(op,
		               "create server %s: Swarm shut its task down while it was %s "
		               "(its node is down)",
		               op->base.srv.id, state);
		return;
	}
	if (ev_now(op->sw->host->loop) > op->deadline) {
		sw_create_fail(op, "create server %s: its task did not run within %g s (%s%s%s)",
		               op->base.srv.id, op->sw->start_timeout, t ? state : "no task yet",
		               t ? ": " : "", t ? sw_str(t, "Status", "Message", NULL) : "");
		return;
	}
	sw_wait(op, sw_create_poll);
}

/* ---- remove --------------------------------------------------------------- */

static void sw_remove_deleted(struct sw_op *op, const struct eng_reply *r);
static void sw_remove_nodes(struct sw_op *op, const struct eng_reply *r);
static void sw_remove_polled(struct sw_op *op, const struct eng_reply *r);

static void sw_remove_gone(struct sw_op *op)
{
	op->base.srv.running = 0;
	op->sw->host->log(SCALER_LOG_INFO, SW_NAME, "server %s removed", op->base.srv.id);
	sw_done(op, 0, NULL, 0);
}

/* Only a service of this cluster, labelled with this server, is removed. */
static void sw_remove_inspected(struct sw_op *op, const struct eng_reply *r)
{
	json_t *labels = sw_path(r->json, "Spec", "Labels", NULL);
	const char *id = sw_str(r->json, "ID", NULL, NULL);
	char path[200];
	if (r->status == 404) {
		sw_remove_gone(op);
		return;
	}
	if (r->status != 200) {
		sw_fail(op, "remove server %s: %s", op->base.srv.id, r->message);
		return;
	}
	if (strcmp(sw_str(labels, "scaler.cluster", NULL, NULL), op->sw->host->cluster) != 0 ||
	    strcmp(sw_str(labels, "scaler.server", NULL, NULL), op->base.srv.id) != 0 || !*id ||
	    strlen(id) >= sizeof(op->service)) {
		sw_fail(op,
		        "remove server %s: service %.12s is not server %s of cluster %s; "
		        "leaving it alone",
		        op->base.srv.id, op->service, op->base.srv.id, op->sw->host->cluster);
		return;
	}
	snprintf(op->service, sizeof(op->service), "%s", id);
	snprintf(op->name, sizeof(op->name), "%s", sw_str(r->json, "Spec", "Name", NULL));
	snprintf(path, sizeof(path), "/services/%s", op->service);
	sw_call_or_fail(op, "DELETE", path, sw_remove_deleted);
}

static void sw_remove_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sw_op *op = w->data;
	(void)loop;
	(void)revents;
	sw_call_or_fail(op, "GET", "/nodes", sw_remove_nodes);
}

static void sw_remove_nodes(struct sw_op *op, const struct eng_reply *r)
{
	json_decref(op->nodes);
	op->nodes = r->status == 200 ? json_incref(r->json) : NULL;
	/* the service is gone, so its tasks are found by name ("<service>.<slot>") */
	if (sw_get_filtered(op, "/tasks", "name", op->name, sw_remove_polled) < 0)
		sw_remove_gone(op);
}

static void sw_remove_deleted(struct sw_op *op, const struct eng_reply *r)
{
	if (r->status != 200 && r->status != 404) {
		sw_fail(op, "remove server %s: %s", op->base.srv.id, r->message);
		return;
	}
	op->deadline = ev_now(op->sw->host->loop) + op->sw->stop_timeout + SW_STOP_DELAY;
	sw_wait(op, sw_remove_poll);
}

/* Done when no task of the service still runs on a node Swarm has not
 * given up (a node that is down keeps its task until it is back, when
 * Swarm stops it); past the stop timeout, done anyway. */
static void sw_remove_polled(struct sw_op *op, const struct eng_reply *r)
{
	json_t *t;
	size_t i;
	int live = 0;
	json_array_foreach(r->status == 200 ? r->json : NULL, i, t)
	{
		json_t *node = sw_node_by_id(op->nodes, sw_str(t, "NodeID", NULL, NULL));
		if (strcmp(sw_str(t, "ServiceID", NULL, NULL), op->service) == 0 &&
		    !sw_task_ended(t) && !(node && sw_node_lost(node)))
			live++;
	}
	if (r->status == 200 && op->nodes && !live) {
		sw_remove_gone(op);
		return;
	}
	if (ev_now(op->sw->host->loop) > op->deadline) {
		op->sw->host->log(SCALER_LOG_WARNING, SW_NAME,
		                  "server %s: service %.12s deleted; %s", op->base.srv.id,
		                  op->service,
		                  r->status == 200 ? "its task has not stopped yet (Swarm stops it)"
		                                   : r->message);
		sw_remove_gone(op);
		return;
	}
	sw_wait(op, sw_remove_poll);
}

/* ---- ops ------------------------------------------------------------------ */

static int sw_start(struct sw_op *op)
{
	char enc[200], path[220];
	int rc;
	if (op->kind == SW_REMOVE) {
		eng_urlencode(op->service, enc, sizeof(enc));
		snprintf(path, sizeof(path), "/services/%s", enc);
		rc = sw_call(op, "GET", path, NULL, sw_remove_inspected);
	} else {
		rc = sw_fetch(op);
	}
	if (rc < 0)
		eng_op_free(&op->base);
	return rc;
}

static int sw_create(void *ctx, const struct scaler_server_spec *spec, scaler_driver_cb cb,
                     void *arg)
{
	struct sw *sw = ctx;
	const struct scaler_zone *z = spec ? spec->zone : NULL;
	struct sw_op *op;
	if (!spec || !z || !z->name || !spec->server_id || !cb)
		return -1;
	op = sw_op_new(sw, SW_CREATE, arg);
	if (!op)
		return -1;
	op->base.cb = cb;
	int refused = eng_op_spec(&op->base, spec, 1);
	if (refused)
		return refused < 0 ? -1 : 0; /* refused: its callback comes later */
	sw_service_name(sw->host->cluster, spec->server_id, op->name, sizeof(op->name));
	op->port_min = z->port_min;
	op->port_max = z->port_max;
	return sw_start(op);
}

static int sw_remove(void *ctx, const struct scaler_server *srv, scaler_driver_cb cb, void *arg)
{
	struct sw *sw = ctx;
	struct sw_op *op;
	if (!srv || !srv->id[0])
		return -1;
	op = sw_op_new(sw, SW_REMOVE, arg);
	if (!op)
		return -1;
	op->base.cb = cb;
	op->base.srv = *srv;
	/* by service id when known, else by the name create gave it */
	if (srv->ref[0])
		snprintf(op->service, sizeof(op->service), "%s", srv->ref);
	else
		sw_service_name(sw->host->cluster, srv->id, op->service, sizeof(op->service));
	return sw_start(op);
}

static int sw_list(void *ctx, scaler_driver_list_cb cb, void *arg)
{
	struct sw *sw = ctx;
	struct sw_op *op;
	if (!cb)
		return -1;
	op = sw_op_new(sw, SW_LIST, arg);
	if (!op)
		return -1;
	op->base.list_cb = cb;
	return sw_start(op);
}

static void sw_fini(void *ctx)
{
	struct sw *sw = ctx;
	if (!sw)
		return;
	/* in-flight requests are cancelled; their callbacks are not called */
	while (sw->ops) {
		sw_op_release(sw->ops);
		eng_op_free(sw->ops);
	}
	eng_free(sw->eng);
	free(sw->image);
	json_decref(sw->args);
	json_decref(sw->env);
	json_decref(sw->constraints);
	json_decref(sw->spreads);
	free(sw);
}

/* New settings apply in place; calls in flight finish on their manager. */
static int sw_reload(void *ctx, const config_setting_t *conf)
{
	struct sw *sw = ctx, *n, old;
	if (sw_init(sw->host, conf, (void **)&n) < 0)
		return -1;
	old = *sw;
	*sw = *n;
	sw->ops = old.ops;
	eng_take(old.eng, sw->eng);
	sw->eng = old.eng;
	*n = old;
	n->ops = NULL;
	n->eng = NULL;
	sw_fini(n);
	return 0;
}

static const struct scaler_driver_ops sw_ops = {
    .size = sizeof(struct scaler_driver_ops),
    .create = sw_create,
    .remove = sw_remove,
    .list = sw_list,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_DRIVER, SW_NAME, PACKAGE_VERSION, sw_init, sw_reload, sw_fini,
                     driver, &sw_ops);
