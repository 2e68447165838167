/* scalerd's web console and the calls made for it and for scalerctl top:
 *   GET /                 → /ui/
 *   GET /ui/...           the page, compiled in (src/admin/ui/), open to
 *                         every reader so that it can load and ask for the
 *                         token; served with Content-Security-Policy
 *                         default-src 'self'
 *   GET /ui/auth          what the page must ask a token for (also open)
 *   GET /zones[?zone=Z]   every zone as GET /status shows it, each server
 *                         with its state in the zone's balancer
 *   GET /history[?zone=Z][&since=T]   the zones' recent server counts and
 *                         metric averages (console_api.c)
 *   GET /cluster          the election's nodes, each as it says it is, and
 *                         whether Redis answers
 * /zones and /history are the primary's to answer: a backup forwards them
 * to the primary it knows (once: a forwarded call is never forwarded again)
 * or says who that is. */
#include "config.h"

#include "console.h"

#include "admin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"
#include "daemon.h"
#include "host.h"
#include "http_server.h"
#include "log.h"
#include "redis_conn.h"

#define CONSOLE_CALL_TIMEOUT 1.0 /* seconds a balancer or a peer may take */
#define CONSOLE_STATS_WINDOW "5" /* seconds of request statistics per server */
#define FORWARDED_HEADER "X-Scaler-Forwarded"

struct console_asset {
	const char *path;
	const char *type;
	const char *data;
	size_t len;
};
extern const struct console_asset console_assets[]; /* ui-assets.c, generated */

static const char *const console_public[] = {"/", "/ui", "/ui/*", NULL};

void console_setup(struct http_server *srv)
{
	http_server_set_public_paths(srv, console_public);
}

/* ---- the page ------------------------------------------------------------- */

static void console_asset(struct http_exchange *x, const char *path)
{
	static const char *const headers[] = {
	    "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; "
	    "base-uri 'none'; form-action 'none'",
	    "X-Content-Type-Options: nosniff", "Referrer-Policy: no-referrer",
	    "Cache-Control: no-cache", NULL};
	const char *name = strcmp(path, "/ui/") == 0 ? "/ui/index.html" : path;

	for (const struct console_asset *a = console_assets; a->path; a++)
		if (strcmp(a->path, name) == 0) {
			http_reply(x, 200, a->type, a->data, a->len, headers);
			return;
		}
	http_reply_error(x, 404, "no such file: %s", path);
}

/* What the page must ask for: reads and actions "open" (no token), "public"
 * (reads only) or "token". Open to every reader, like the page. */
static void console_auth(struct daemon *d, struct http_exchange *x)
{
	const char *reads = !d->conf->token ? "open" : d->conf->public_reads ? "public" : "token";
	http_reply_json(
	    x, 200,
	    json_pack("{s:s, s:s}", "reads", reads, "actions", d->conf->token ? "token" : "open"));
}

static void console_redirect(struct http_exchange *x)
{
	static const char *const headers[] = {"Location: /ui/", NULL};
	static const char body[] = "the console is at /ui/\n";
	http_reply(x, 302, "text/plain", body, sizeof(body) - 1, headers);
}

/* ---- calls to balancers and peers ------------------------------------------ */

/* The body of an answer: JSON, or NULL with err filled. New reference. */
static json_t *console_answer(const struct scaler_http_response *resp, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (resp->status == 0) {
		snprintf(err, errlen, "no answer: %s", resp->error ? resp->error : "failed");
		return NULL;
	}
	j = resp->body ? json_loadb(resp->body, resp->body_len, 0, &je) : NULL;
	if (resp->status != 200) {
		const char *e = json_string_value(json_object_get(j, "error"));
		snprintf(err, errlen, "HTTP %ld%s%s", resp->status, e ? ": " : "", e ? e : "");
		json_decref(j);
		return NULL;
	}
	if (!j)
		snprintf(err, errlen, "the answer is not JSON");
	return j;
}

/* GET url with this node's token; NULL when the call cannot start. */
static struct scaler_http_call *console_get(struct daemon *d, const char *url, const char *fwd,
                                            scaler_http_cb cb, void *arg)
{
	static const char bearer[] = "Authorization: Bearer ";
	char *auth = NULL, forwarded[128];
	size_t authlen = 0;
	const char *headers[3] = {NULL, NULL, NULL};
	size_t n = 0;

	if (d->conf->token) {
		/* sized for the token, however long the configuration allows it */
		authlen = sizeof(bearer) + strlen(d->conf->token);
		if (!(auth = malloc(authlen)))
			return NULL;
		snprintf(auth, authlen, "%s%s", bearer, d->conf->token);
		headers[n++] = auth;
	}
	if (fwd) {
		snprintf(forwarded, sizeof(forwarded), "%s: %s", FORWARDED_HEADER, fwd);
		headers[n++] = forwarded;
	}
	struct scaler_http_request req = {
	    .method = "GET", .url = url, .headers = headers, .timeout = CONSOLE_CALL_TIMEOUT};
	struct scaler_http_call *call = d->host->pub.http_request(&req, cb, arg);
	if (auth) {
		explicit_bzero(auth, authlen);
		free(auth);
	}
	return call;
}

/* ---- a backup forwards to the primary ----------------------------------------- */

struct forward {
	struct http_exchange *x;
	char primary[256];
};

static void forward_done(void *arg, const struct scaler_http_response *resp)
{
	struct forward *f = arg;
	if (resp->status == 0)
		http_reply_json(f->x, 502,
		                json_pack("{s:s, s:s}", "error",
		                          "this node is a backup and the primary did not answer",
		                          "primary", f->primary));
	else if (resp->status == 401 || resp->status == 403)
		/* not the client's token: this node's, which the primary does not take */
		http_reply_json(f->x, 502,
		                json_pack("{s:s, s:s}", "error",
		                          "this node is a backup and the primary refused its token "
		                          "(the nodes' tokens differ)",
		                          "primary", f->primary));
	else
		http_reply(f->x, (int)resp->status, "application/json",
		           resp->body ? resp->body : "", resp->body ? resp->body_len : 0, NULL);
	free(f);
}

/* 1 when this node answers the call itself (it is the primary), else 0
 * after forwarding it or saying who the primary is. */
static int console_local_or_forward(struct daemon *d, struct http_exchange *x,
                                    const struct http_request *req)
{
	char url[2048];
	struct forward *f;

	if (d->role == ROLE_PRIMARY)
		return 1;
	/* the call goes on with this node's token: only for a client that gave
	 * it here (with node.public_reads here and not on the primary, anyone
	 * could read the primary's data through this node otherwise) */
	if (!d->primary_url[0] || http_request_header(req, FORWARDED_HEADER) ||
	    !http_request_has_token(req, d->conf->token)) {
		http_reply_json(x, 503,
		                json_pack("{s:s, s:s?}", "error",
		                          d->primary_url[0] ? "this node is not the primary"
		                                            : "this node is a backup and knows no "
		                                              "primary yet",
		                          "primary", d->primary_url[0] ? d->primary_url : NULL));
		return 0;
	}
	snprintf(url, sizeof(url), "%s%s%s%s", d->primary_url, req->path, req->query[0] ? "?" : "",
	         req->query);
	if (!(f = calloc(1, sizeof(*f)))) {
		http_reply_error(x, 500, "out of memory");
		return 0;
	}
	f->x = x;
	snprintf(f->primary, sizeof(f->primary), "%s", d->primary_url);
	if (!console_get(d, url, d->conf->node_id, forward_done, f)) {
		free(f);
		http_reply_error(x, 502, "cannot call the primary at %s", d->primary_url);
	}
	return 0;
}

/* ---- GET /zones ------------------------------------------------------------------ */

struct zones_call;

/* One fan-out to the zones' balancers, answering every GET /zones with the
 * same zone filter that came while it was in flight: N consoles open on a
 * node cost the balancers two calls per zone, not 2N. */
struct zones_req {
	struct daemon *d;
	struct zones_req *next; /* in d->zones_fanouts */
	char *zone;             /* the filter, NULL for every zone */
	struct zones_waiter {
		struct http_exchange *x;
		struct zones_waiter *next;
	} * waiters; /* the GET /zones that joined it */
	struct http_exchange *x;
	json_t *zones; /* controller_zones_json, filtered */
	size_t pending;
	size_t ncalls;
	struct zones_call {
		struct zones_req *r;
		json_t *zone;  /* borrowed from zones */
		int stats;     /* GET /stats, else GET /servers?state=all */
		json_t *reply; /* the answer, NULL on failure */
		char err[200];
	} calls[];
};

/* The balancer's view of each server in its zone entry. */
static void zones_merge(json_t *zone, const struct zones_call *servers,
                        const struct zones_call *stats)
{
	json_t *mine = json_object_get(zone, "servers"), *others = json_array();
	json_t *bal = json_pack("{s:b}", "reachable", servers->reply != NULL);
	size_t i, k;
	json_t *b, *s;

	if (!servers->reply)
		json_object_set_new(bal, "error", json_string(servers->err));
	json_array_foreach(servers->reply, i, b)
	{
		const char *url = json_string_value(json_object_get(b, "url"));
		json_t *match = NULL;
		json_array_foreach(mine, k, s)
		{
			const char *a = json_string_value(json_object_get(s, "address"));
			if (url && a && strcmp(a, url) == 0)
				match = s;
		}
		json_t *st = NULL;
		json_array_foreach(json_object_get(stats->reply, "servers"), k, s)
		{
			const char *u = json_string_value(json_object_get(s, "url"));
			if (url && u && strcmp(u, url) == 0)
				st = s;
		}
		if (st) {
			json_object_set(b, "rps", json_object_get(st, "rps"));
			json_object_set(b, "in_flight", json_object_get(st, "in_flight"));
			json_object_set(b, "latency", json_object_get(st, "latency"));
		}
		if (match)
			json_object_set(match, "balancer", b);
		else
			json_array_append(others, b); /* static servers, or not in scalerd's view */
	}
	json_object_set_new(bal, "others", others);
	if (stats->reply) {
		json_object_set(bal, "held", json_object_get(stats->reply, "held"));
		json_object_set_new(bal, "stats_window", json_real(atof(CONSOLE_STATS_WINDOW)));
	}
	json_object_set_new(zone, "balancer", bal);
}

static void zones_finish(struct zones_req *r)
{
	for (size_t i = 0; i + 1 < r->ncalls; i += 2)
		zones_merge(r->calls[i].zone, &r->calls[i], &r->calls[i + 1]);
	for (size_t i = 0; i < r->ncalls; i++)
		json_decref(r->calls[i].reply);
	for (struct zones_req **p = &r->d->zones_fanouts; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	for (struct zones_waiter *w = r->waiters, *next; w; w = next) {
		next = w->next;
		http_reply_json(w->x, 200, json_pack("{s:O}", "zones", r->zones));
		free(w);
	}
	http_reply_json(r->x, 200, json_pack("{s:o}", "zones", r->zones));
	free(r->zone);
	free(r);
}

/* 1 when a fan-out for the same filter is in flight and x joined it. */
static int zones_join(struct daemon *d, struct http_exchange *x, const char *zone)
{
	for (struct zones_req *r = d->zones_fanouts; r; r = r->next) {
		if (zone ? !r->zone || strcmp(r->zone, zone) != 0 : r->zone != NULL)
			continue;
		struct zones_waiter *w = calloc(1, sizeof(*w));
		if (!w)
			return 0; /* it makes its own calls */
		w->x = x;
		w->next = r->waiters;
		r->waiters = w;
		return 1;
	}
	return 0;
}

static void zones_call_done(void *arg, const struct scaler_http_response *resp)
{
	struct zones_call *k = arg;
	k->reply = console_answer(resp, k->err, sizeof(k->err));
	if (k->reply && !json_is_object(k->reply) && !json_is_array(k->reply)) {
		json_decref(k->reply);
		k->reply = NULL;
		snprintf(k->err, sizeof(k->err), "the answer is not a JSON object or array");
	}
	if (--k->r->pending == 0)
		zones_finish(k->r);
}

static void console_zones(struct daemon *d, struct http_exchange *x, const char *zone)
{
	if (zones_join(d, x, zone))
		return;
	json_t *all = admin_zones_json(d), *zones = json_array(), *z;
	size_t i;

	json_array_foreach(all, i, z)
	{
		if (!zone || strcmp(json_string_value(json_object_get(z, "name")), zone) == 0)
			json_array_append(zones, z);
	}
	json_decref(all);
	size_t n = json_array_size(zones);
	struct zones_req *r = calloc(1, sizeof(*r) + 2 * n * sizeof(r->calls[0]));
	if (!r || (zone && !(r->zone = strdup(zone)))) {
		free(r);
		json_decref(zones);
		http_reply_error(x, 500, "out of memory");
		return;
	}
	r->d = d;
	r->next = d->zones_fanouts;
	d->zones_fanouts = r;
	r->x = x;
	r->zones = zones;
	r->ncalls = 2 * n;
	r->pending = 1; /* held until every call has started */
	json_array_foreach(zones, i, z)
	{
		const char *admin = json_string_value(json_object_get(z, "admin"));
		for (int stats = 0; stats < 2; stats++) {
			struct zones_call *k = &r->calls[2 * i + stats];
			char url[512];
			k->r = r;
			k->zone = z;
			k->stats = stats;
			snprintf(url, sizeof(url), "http://%s%s", admin ? admin : "",
			         stats ? "/stats?window=" CONSOLE_STATS_WINDOW
			               : "/servers?state=all");
			r->pending++;
			if (!admin || !*admin || !console_get(d, url, NULL, zones_call_done, k)) {
				struct scaler_http_response failed = {.error = "cannot call it"};
				zones_call_done(k, &failed);
			}
		}
	}
	if (--r->pending == 0)
		zones_finish(r);
}

/* ---- GET /cluster ---------------------------------------------------------------- */

struct cluster_req {
	struct http_exchange *x;
	json_t *nodes;
	size_t pending;
};

struct cluster_call {
	struct cluster_req *r;
	json_t *node; /* borrowed from r->nodes */
};

static void cluster_finish(struct cluster_req *r)
{
	http_reply_json(r->x, 200, json_pack("{s:o}", "nodes", r->nodes));
	free(r);
}

/* What a node's GET /status says of it. */
static void cluster_node_fill(json_t *node, json_t *status)
{
	json_t *n = json_object_get(status, "node"), *e = json_object_get(status, "election");
	static const char *const from_election[] = {"state", "last_transition", "primary_since",
	                                            NULL};
	json_object_set(node, "role", json_object_get(n, "role"));
	json_object_set(node, "epoch", json_object_get(n, "epoch"));
	json_object_set(node, "version", json_object_get(n, "version"));
	for (size_t i = 0; from_election[i]; i++) {
		json_t *v = json_object_get(e, from_election[i]);
		if (v)
			json_object_set(node, from_election[i], v);
	}
	json_t *redis_ok = json_object_get(e, "redis_ok");
	if (redis_ok)
		json_object_set(node, "redis", redis_ok);
}

static void cluster_call_done(void *arg, const struct scaler_http_response *resp)
{
	struct cluster_call *k = arg;
	char err[200];
	json_t *st = console_answer(resp, err, sizeof(err));

	json_object_set_new(k->node, "reachable", json_boolean(resp->status != 0));
	if (st)
		cluster_node_fill(k->node, st);
	else
		json_object_set_new(k->node, "error", json_string(err));
	json_decref(st);
	struct cluster_req *r = k->r;
	free(k);
	if (--r->pending == 0)
		cluster_finish(r);
}

/* This node's own entry, as a peer's is made from its GET /status. */
static json_t *cluster_self(struct daemon *d, json_t *election)
{
	json_t *me = json_pack("{s:s, s:s, s:b, s:b}", "id", d->conf->node_id, "url",
	                       d->conf->admin_url, "self", 1, "reachable", 1);
	json_t *st = json_pack("{s:{s:s, s:I, s:s}, s:O?}", "node", "role",
	                       d->role == ROLE_PRIMARY ? "primary" : "backup", "epoch",
	                       (json_int_t)(d->role == ROLE_PRIMARY ? d->epoch : d->primary_epoch),
	                       "version", PACKAGE_VERSION, "election", election);
	cluster_node_fill(me, st);
	json_decref(st);
	/* this node knows better than its election plugin */
	json_object_set_new(me, "redis",
	                    json_boolean(d->host->redis && redis_conn_connected(d->host->redis)));
	return me;
}

static void console_cluster(struct daemon *d, struct http_exchange *x)
{
	const struct scaler_election_ops *eo =
	    d->election.plugin ? &d->election.plugin->ops.election : NULL;
	char *s = eo && eo->status_json ? eo->status_json(d->election.ctx) : NULL;
	json_t *election = s ? json_loads(s, 0, NULL) : NULL;
	struct cluster_req *r = calloc(1, sizeof(*r));
	size_t i;
	json_t *p;

	free(s);
	if (!r) {
		json_decref(election);
		http_reply_error(x, 500, "out of memory");
		return;
	}
	r->x = x;
	r->nodes = json_array();
	json_array_append_new(r->nodes, cluster_self(d, election));
	r->pending = 1;
	/* the peers the election plugin names (bully's "peers") */
	json_array_foreach(json_object_get(election, "peers"), i, p)
	{
		const char *id = json_string_value(json_object_get(p, "id"));
		const char *url = json_string_value(json_object_get(p, "url"));
		char status[600];
		if (!id || !url || strcmp(id, d->conf->node_id) == 0)
			continue;
		json_t *node = json_pack("{s:s, s:s, s:b, s:b}", "id", id, "url", url, "self", 0,
		                         "reachable", 0);
		json_array_append_new(r->nodes, node);
		struct cluster_call *k = calloc(1, sizeof(*k));
		snprintf(status, sizeof(status), "%s/status", url);
		if (!k) {
			json_object_set_new(node, "error", json_string("out of memory"));
			continue;
		}
		k->r = r;
		k->node = node;
		r->pending++;
		if (!console_get(d, status, NULL, cluster_call_done, k)) {
			struct scaler_http_response failed = {.error = "cannot call it"};
			cluster_call_done(k, &failed);
		}
	}
	json_decref(election);
	if (--r->pending == 0)
		cluster_finish(r);
}

/* ---- routing --------------------------------------------------------------------- */

/* A query parameter; -1 after answering 400 when it is present but too
 * long or badly encoded. */
static int console_query(struct http_exchange *x, const struct http_request *req, const char *name,
                         char *buf, size_t len, const char **out)
{
	int bad = 0;
	*out = admin_query(req, name, buf, len, &bad);
	if (bad)
		http_reply_error(x, 400, "%s: too long or badly encoded", name);
	return bad ? -1 : 0;
}

int console_handle(struct daemon *d, struct http_exchange *x, const struct http_request *req)
{
	const char *p = req->path;
	int read = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
	char zone[128], since[64];
	const char *z = NULL, *sn = NULL;

	if (strcmp(p, "/") && strcmp(p, "/ui") && strncmp(p, "/ui/", 4) && strcmp(p, "/zones") &&
	    strcmp(p, "/history") && strcmp(p, "/cluster"))
		return 0;
	if (!read) {
		static const char *const allow[] = {"Allow: GET, HEAD", NULL};
		static const char body[] = "{\"error\":\"use GET\"}";
		http_reply(x, 405, "application/json", body, sizeof(body) - 1, allow);
		return 1;
	}
	if (strcmp(p, "/") == 0 || strcmp(p, "/ui") == 0) {
		console_redirect(x);
		return 1;
	}
	if (strcmp(p, "/ui/auth") == 0) {
		console_auth(d, x);
		return 1;
	}
	if (strncmp(p, "/ui/", 4) == 0) {
		console_asset(x, p);
		return 1;
	}
	if (strcmp(p, "/cluster") == 0) {
		console_cluster(d, x);
		return 1;
	}
	if (console_query(x, req, "zone", zone, sizeof(zone), &z) < 0 ||
	    console_query(x, req, "since", since, sizeof(since), &sn) < 0)
		return 1;
	if (z && !conf_zone_find(d->conf, z)) {
		http_reply_error(x, 404, "unknown zone \"%s\"", z);
		return 1;
	}
	double t = 0;
	if (sn) {
		char *end;
		t = strtod(sn, &end);
		if (end == sn || *end || !isfinite(t) || t < 0) {
			http_reply_error(x, 400, "since: must be a unix time in seconds");
			return 1;
		}
	}
	if (!console_local_or_forward(d, x, req))
		return 1;
	if (strcmp(p, "/zones") == 0) {
		console_zones(d, x, z);
		return 1;
	}
	json_t *h = controller_history_json(d->ctl, z, t);
	if (h)
		http_reply_json(x, 200, h);
	else
		http_reply_error(x, 404, "unknown zone \"%s\"", z);
	return 1;
}
