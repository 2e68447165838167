/* The zone balancer's admin API (seed-compatible):
 *   GET /health_check           200 ok
 *   GET /servers[?state=all]    alive URLs, or every server with its state
 *   PUT /servers                {"adds":[...],"deletes":[...]} (atomic)
 *   GET /monitor, PUT /monitor  the primary's URL {"url":...,"epoch":N}, taken
 *                               once the state store confirms the epoch
 *   GET /metrics                Prometheus text
 *   GET /stats?window=S         requests per server over the last S seconds
 *                               (stats.c): concurrency, rps, latency
 *   GET /events                 the last outlier ejections and returns (outlier.c)
 * With a token, everything but /health_check needs it (node.public_reads
 * opens GET and HEAD): the rule of every admin listener (http_server.h). */
#include "config.h"

#include "bal.h"
#include "http_server.h"
#include "net.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *adm_server_json(struct server *s)
{
	int active;
	uint64_t served;
	board_counts(s, &active, &served); /* over the zone's workers */
	json_t *o = json_pack(
	    "{s:s, s:s, s:i, s:f, s:s?, s:i, s:I, s:f}", "url", s->url, "state",
	    srv_state_name(s->state), "consecutive_failures", s->fails, "last_check", s->last_check,
	    "last_error", s->last_error[0] ? s->last_error : NULL, "active_connections", active,
	    "requests_served", (json_int_t)served, "weight", pick_weight(s, ev_now(s->b->loop)));
	if (o)
		outlier_server_json(s, o);
	return o;
}

static void adm_get_servers(struct bal *b, struct http_exchange *x, const struct http_request *req)
{
	char state[32];
	const char *st = http_request_query(req, "state", state, sizeof(state));
	json_t *arr = json_array();
	if (st && strcmp(st, "all") == 0) {
		for (struct server *s = b->servers; s; s = s->next)
			json_array_append_new(arr, adm_server_json(s));
	} else if (st && strcmp(st, "alive") != 0) {
		json_decref(arr);
		http_reply_error(x, 400, "state must be \"all\" or \"alive\" (got \"%s\")", st);
		return;
	} else {
		for (int i = 0; i < b->nalive; i++)
			json_array_append_new(arr, json_string(b->alive[i]->url));
	}
	http_reply_json(x, 200, arr);
}

/* Check one of the lists of PUT /servers; -1 after replying 400. */
static int adm_url_list(struct http_exchange *x, json_t *list, const char *key)
{
	char canon[256], host[256];
	int port;
	if (!list)
		return 0;
	if (!json_is_array(list)) {
		http_reply_error(x, 400, "\"%s\" must be an array of URLs", key);
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		if (!json_is_string(v)) {
			http_reply_error(x, 400, "\"%s\"[%zu] must be a string", key, i);
			return -1;
		}
		if (srv_url_parse(json_string_value(v), canon, sizeof(canon), host, sizeof(host),
		                  &port) < 0) {
			http_reply_error(x, 400,
			                 "\"%s\"[%zu]: invalid server URL \"%s\" (expected "
			                 "http://host:port)",
			                 key, i, json_string_value(v));
			return -1;
		}
	}
	return 0;
}

/* Above this many changes, PUT /servers logs one line instead of one each. */
#define ADM_LOG_EACH 16

static void adm_put_servers(struct bal *b, struct http_exchange *x, const struct http_request *req)
{
	json_t *body = http_request_json(x, req);
	if (!body)
		return;
	if (!json_is_object(body)) {
		json_decref(body);
		http_reply_error(x, 400,
		                 "the body must be a JSON object {\"adds\":[...],"
		                 "\"deletes\":[...]}");
		return;
	}
	const char *key;
	json_t *val;
	json_object_foreach(body, key, val)
	{
		if (strcmp(key, "adds") && strcmp(key, "deletes") && strcmp(key, "removes")) {
			http_reply_error(
			    x, 400, "unknown key \"%s\" (expected \"adds\", \"deletes\")", key);
			json_decref(body);
			return;
		}
	}
	json_t *adds = json_object_get(body, "adds");
	json_t *dels = json_object_get(body, "deletes");
	json_t *rems = json_object_get(body, "removes"); /* the seed's name */
	if (adm_url_list(x, adds, "adds") < 0 || adm_url_list(x, dels, "deletes") < 0 ||
	    adm_url_list(x, rems, "removes") < 0) {
		json_decref(body);
		return;
	}
	size_t i;
	json_t *v;
	char err[512];
	json_t *added = json_array(), *deleted = json_array();
	json_t *lists[2] = {dels, rems};
	int failed = 0, status = 400;
	/* adds come first (a URL in both lists ends up deleted): room for what
	 * the deletes will free, counted once per server */
	b->servers_slack = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int l = 0; l < 2; l++)
			json_array_foreach(lists[l], i, v)
			{
				struct server *s = srv_find(b, json_string_value(v));
				if (s && pass == 0 && !s->mark)
					b->servers_slack++;
				if (s)
					s->mark = (uint8_t)(pass == 0);
			}
	size_t nchanges = json_array_size(adds) + json_array_size(dels) + json_array_size(rems);
	b->quiet = nchanges > ADM_LOG_EACH;
	json_array_foreach(adds, i, v)
	{
		const char *u = json_string_value(v);
		if (srv_find(b, u))
			continue;
		struct server *s = srv_add(b, u, 0, err, sizeof(err));
		if (!s) {
			failed = 1;
			if (b->nservers >= b->conf.max_servers + b->servers_slack)
				status = 409; /* a valid request the zone has no room for */
			break;
		}
		json_array_append_new(added, json_string(s->url));
	}
	b->servers_slack = 0;
	if (failed) {
		/* undo the adds so the request changes nothing it did not report */
		json_array_foreach(added, i, v)
		{
			struct server *s = srv_find(b, json_string_value(v));
			if (s)
				srv_remove(s);
		}
		b->quiet = 0;
		json_decref(added);
		json_decref(deleted);
		json_decref(body);
		http_reply_error(x, status, "%s", err);
		return;
	}
	for (int l = 0; l < 2; l++)
		json_array_foreach(lists[l], i, v)
		{
			struct server *s = srv_find(b, json_string_value(v));
			if (s) {
				json_array_append_new(deleted, json_string(s->url));
				srv_remove(s);
			}
		}
	if (b->quiet)
		b->host->log(SCALER_LOG_INFO, BAL_WHO,
		             "zone %s: %zu server(s) added, %zu removed (%d in the zone)", b->zone,
		             json_array_size(added), json_array_size(deleted), b->nservers);
	b->quiet = 0;
	json_decref(body);
	http_reply_json(x, 200, json_pack("{s:o, s:o}", "added", added, "deleted", deleted));
}

/* PUT /monitor: who the primary is, taken only when the state store says
 * that the epoch given is the current one and that its leader has this URL,
 * so a caller (even one with the token) cannot point the dead reports
 * elsewhere or, with an absurd epoch, fence the real primary out. */
#define ADM_MAX_CONFIRMS 4

struct adm_confirm {
	struct adm_confirm *next;
	struct bal *b;           /* NULL once the admin API stopped */
	struct http_exchange *x; /* valid while b is */
	uint64_t epoch;
	char url[256];
};

static void adm_confirm_unlink(struct adm_confirm *c)
{
	struct adm_confirm **pp = &c->b->confirms;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	c->b->nconfirms--;
}

static void adm_monitor_take(struct bal *b, struct http_exchange *x, const char *url,
                             uint64_t epoch)
{
	if (!b->monitor_url || strcmp(b->monitor_url, url) != 0 || epoch != b->monitor_epoch)
		b->host->log(SCALER_LOG_INFO, BAL_WHO, "zone %s: primary is %s (epoch %" PRIu64 ")",
		             b->zone, url, epoch);
	if (!b->monitor_url || strcmp(b->monitor_url, url) != 0) {
		char *u = strdup(url);
		if (!u) {
			http_reply_error(x, 500, "out of memory");
			return;
		}
		free(b->monitor_url);
		b->monitor_url = u;
	}
	b->monitor_epoch = epoch;
	board_put_monitor(b);
	http_reply_json(x, 200, json_pack("{s:s, s:I}", "url", url, "epoch", (json_int_t)epoch));
}

static void adm_confirm_done(void *arg, int status, const char *id, const char *url,
                             uint64_t leader_epoch, uint64_t current_epoch)
{
	struct adm_confirm *c = arg;
	struct bal *b = c->b;
	char canon[256], host[256];
	int port;
	(void)id;
	if (!b) {
		free(c); /* the admin API stopped meanwhile */
		return;
	}
	adm_confirm_unlink(c);
	struct http_exchange *x = c->x;
	if (status < 0) {
		http_reply_error(x, 503,
		                 "the state store is unreachable: cannot confirm epoch %" PRIu64,
		                 c->epoch);
	} else if (current_epoch != c->epoch) {
		http_reply_error(x, 409,
		                 "epoch %" PRIu64
		                 " is not current: the state store is at epoch %" PRIu64,
		                 c->epoch, current_epoch);
	} else if (leader_epoch != c->epoch || !url ||
	           srv_url_parse(url, canon, sizeof(canon), host, sizeof(host), &port) < 0 ||
	           strcmp(canon, c->url) != 0) {
		http_reply_error(
		    x, 409, "the state store names %s%s%s as the primary of epoch %" PRIu64,
		    url ? "\"" : "no one", url ? url : "", url ? "\"" : "", leader_epoch);
	} else if (c->epoch < b->monitor_epoch) {
		http_reply_error(x, 409,
		                 "stale epoch %" PRIu64 ": this balancer has epoch %" PRIu64,
		                 c->epoch, b->monitor_epoch);
	} else {
		adm_monitor_take(b, x, c->url, c->epoch);
	}
	free(c);
}

static void adm_put_monitor(struct bal *b, struct http_exchange *x, const struct http_request *req)
{
	char canon[256], host[256];
	int port;
	json_t *body = http_request_json(x, req);
	if (!body)
		return;
	json_t *url = json_is_object(body) ? json_object_get(body, "url") : NULL;
	json_t *epoch = json_is_object(body) ? json_object_get(body, "epoch") : NULL;
	uint64_t e = json_is_integer(epoch) ? (uint64_t)json_integer_value(epoch) : 0;
	if (!json_is_string(url) || !epoch) {
		http_reply_error(x, 400,
		                 "the body must be {\"url\": \"http://host:port\", \"epoch\": N}");
	} else if (srv_url_parse(json_string_value(url), canon, sizeof(canon), host, sizeof(host),
	                         &port) < 0) {
		http_reply_error(x, 400, "invalid primary URL \"%s\" (expected http://host:port)",
		                 json_string_value(url));
	} else if (!json_is_integer(epoch) || json_integer_value(epoch) < 1) {
		http_reply_error(x, 400, "\"epoch\" must be a positive integer");
	} else if (e < b->monitor_epoch) {
		http_reply_error(x, 409,
		                 "stale epoch %" PRIu64 ": this balancer has epoch %" PRIu64, e,
		                 b->monitor_epoch);
	} else if (e == b->monitor_epoch && b->monitor_url && strcmp(b->monitor_url, canon) == 0) {
		adm_monitor_take(b, x, canon, e); /* the primary repeating itself */
	} else if (!SCALER_HOST_HAS(b->host, leader_get) || !b->host->leader_get) {
		http_reply_error(x, 503,
		                 "this balancer has no state store to confirm epoch %" PRIu64, e);
	} else if (b->nconfirms >= ADM_MAX_CONFIRMS) {
		http_reply_error(x, 503, "%d changes of primary are being confirmed; try again",
		                 b->nconfirms);
	} else {
		struct adm_confirm *c = calloc(1, sizeof(*c));
		if (!c) {
			http_reply_error(x, 500, "out of memory");
		} else {
			c->b = b;
			c->x = x;
			c->epoch = e;
			snprintf(c->url, sizeof(c->url), "%s", canon);
			if (b->host->leader_get(adm_confirm_done, c) < 0) {
				free(c);
				http_reply_error(x, 503,
				                 "the state store is unreachable: cannot confirm "
				                 "epoch %" PRIu64,
				                 e);
			} else {
				c->next = b->confirms;
				b->confirms = c;
				b->nconfirms++;
			}
		}
	}
	json_decref(body);
}

static void adm_metrics(struct bal *b, struct http_exchange *x)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f) {
		http_reply_error(x, 500, "out of memory");
		return;
	}
	int pools[4] = {0, 0, 0, 0};
	for (const struct server *s = b->servers; s; s = s->next)
		pools[s->state]++;
	/* the zone's workers add up */
	struct bal_stats st;
	int nconns, nupstream, nheld;
	board_stats_sum(b, &st, &nconns, &nupstream, &nheld);
	fprintf(f, "# HELP scaler_balancer_responses_total Responses sent to clients, by status "
	           "class.\n# TYPE scaler_balancer_responses_total counter\n");
	for (int i = 1; i <= 5; i++)
		fprintf(f,
		        "scaler_balancer_responses_total{zone=\"%s\",code=\"%dxx\"} %" PRIu64 "\n",
		        b->zone, i, st.responses[i]);
	fprintf(f,
	        "# HELP scaler_balancer_retries_total Requests sent again to another server.\n"
	        "# TYPE scaler_balancer_retries_total counter\n"
	        "scaler_balancer_retries_total{zone=\"%s\"} %" PRIu64 "\n"
	        "# HELP scaler_balancer_upstream_connect_errors_total Failed connections to "
	        "servers.\n"
	        "# TYPE scaler_balancer_upstream_connect_errors_total counter\n"
	        "scaler_balancer_upstream_connect_errors_total{zone=\"%s\"} %" PRIu64 "\n"
	        "# HELP scaler_balancer_timeouts_total Client and server timeouts.\n"
	        "# TYPE scaler_balancer_timeouts_total counter\n"
	        "scaler_balancer_timeouts_total{zone=\"%s\"} %" PRIu64 "\n"
	        "# HELP scaler_balancer_connections_accepted_total Client connections accepted.\n"
	        "# TYPE scaler_balancer_connections_accepted_total counter\n"
	        "scaler_balancer_connections_accepted_total{zone=\"%s\"} %" PRIu64 "\n"
	        "# HELP scaler_balancer_ejections_total Servers ejected as outliers.\n"
	        "# TYPE scaler_balancer_ejections_total counter\n"
	        "scaler_balancer_ejections_total{zone=\"%s\"} %" PRIu64 "\n"
	        "# HELP scaler_balancer_servers_ejected Servers out as outliers now.\n"
	        "# TYPE scaler_balancer_servers_ejected gauge\n"
	        "scaler_balancer_servers_ejected{zone=\"%s\"} %d\n",
	        b->zone, st.retries, b->zone, st.connect_errors, b->zone, st.timeouts, b->zone,
	        st.accepted, b->zone, st.ejections, b->zone, b->nejected);
	fprintf(f, "# HELP scaler_balancer_servers Servers by pool.\n"
	           "# TYPE scaler_balancer_servers gauge\n");
	for (int i = 0; i < 4; i++)
		fprintf(f, "scaler_balancer_servers{zone=\"%s\",pool=\"%s\"} %d\n", b->zone,
		        srv_state_name((enum srv_state)i), pools[i]);
	fprintf(f,
	        "# HELP scaler_balancer_client_connections Open client connections.\n"
	        "# TYPE scaler_balancer_client_connections gauge\n"
	        "scaler_balancer_client_connections{zone=\"%s\"} %d\n"
	        "# HELP scaler_balancer_upstream_connections Open connections to servers.\n"
	        "# TYPE scaler_balancer_upstream_connections gauge\n"
	        "scaler_balancer_upstream_connections{zone=\"%s\"} %d\n"
	        "# HELP scaler_balancer_held_requests Requests waiting for a server to start.\n"
	        "# TYPE scaler_balancer_held_requests gauge\n"
	        "scaler_balancer_held_requests{zone=\"%s\"} %d\n",
	        b->zone, nconns, b->zone, nupstream, b->zone, nheld);
	fprintf(f, "# HELP scaler_balancer_worker_responses_total Responses sent by each worker of "
	           "the zone (workers = N).\n# TYPE scaler_balancer_worker_responses_total "
	           "counter\n");
	for (int w = 0; w < b->nworkers; w++) {
		struct bal_stats ws;
		if (board_worker_stats(b, w, &ws) < 0)
			continue;
		uint64_t n = 0;
		for (int i = 1; i <= 5; i++)
			n += ws.responses[i];
		fprintf(f,
		        "scaler_balancer_worker_responses_total{zone=\"%s\",worker=\"%d\"} %" PRIu64
		        "\n",
		        b->zone, w, n);
	}
	fprintf(f, "# HELP scaler_balancer_server_active_requests Requests in flight per server.\n"
	           "# TYPE scaler_balancer_server_active_requests gauge\n");
	for (const struct server *s = b->servers; s; s = s->next) {
		int active;
		board_counts(s, &active, NULL);
		fprintf(f, "scaler_balancer_server_active_requests{zone=\"%s\",server=\"%s\"} %d\n",
		        b->zone, s->url, active);
	}
	fclose(f);
	http_reply(x, 200, "text/plain; version=0.0.4", out, len, NULL);
	free(out);
}

static void adm_stats_reply(struct bal *b, struct http_exchange *x, double window, int complete)
{
	json_t *o = st_json(b, window, complete);
	if (!o)
		http_reply_error(x, 500, "out of memory");
	else
		http_reply_json(x, 200, o);
}

static void adm_stats(struct bal *b, struct http_exchange *x, const struct http_request *req)
{
	char buf[64], err[256];
	const char *w = http_request_query(req, "window", buf, sizeof(buf));
	char *end = NULL;
	double window = w ? strtod(w, &end) : 10.0;
	if (w && (end == w || *end)) {
		http_reply_error(x, 400, "window must be a number of seconds (got \"%s\")", w);
		return;
	}
	if (st_window_check(b, window, err, sizeof(err)) < 0) {
		http_reply_error(x, b->conf.stats_history > 0 ? 400 : 404, "%s", err);
		return;
	}
	/* the other workers of the zone publish theirs first */
	board_stats_gather(b, window, x, adm_stats_reply);
}

static void adm_handler(struct http_exchange *x, const struct http_request *req, void *arg)
{
	struct bal *b = arg;
	int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
	int put = strcmp(req->method, "PUT") == 0;
	const char *p = req->path;
	static const char *const allow_get[] = {"Allow: GET, HEAD", NULL};
	static const char *const allow_both[] = {"Allow: GET, HEAD, PUT", NULL};

	if (strcmp(p, "/health_check") == 0) {
		if (get)
			http_reply(x, 200, "text/plain", "ok", 2, NULL);
		else
			http_reply(x, 405, "text/plain", "method not allowed\n", 19, allow_get);
	} else if (strcmp(p, "/servers") == 0) {
		if (get)
			adm_get_servers(b, x, req);
		else if (put)
			adm_put_servers(b, x, req);
		else
			http_reply(x, 405, "text/plain", "method not allowed\n", 19, allow_both);
	} else if (strcmp(p, "/monitor") == 0) {
		if (get)
			http_reply_json(x, 200,
			                json_pack("{s:s?, s:I}", "url", b->monitor_url, "epoch",
			                          (json_int_t)b->monitor_epoch));
		else if (put)
			adm_put_monitor(b, x, req);
		else
			http_reply(x, 405, "text/plain", "method not allowed\n", 19, allow_both);
	} else if (strcmp(p, "/metrics") == 0) {
		if (get)
			adm_metrics(b, x);
		else
			http_reply(x, 405, "text/plain", "method not allowed\n", 19, allow_get);
	} else if (strcmp(p, "/events") == 0) {
		if (get)
			http_reply_json(x, 200, outlier_events_json(b));
		else
			http_reply(x, 405, "text/plain", "method not allowed\n", 19, allow_get);
	} else if (strcmp(p, "/stats") == 0) {
		if (get)
			adm_stats(b, x, req);
		else
			http_reply(x, 405, "text/plain", "method not allowed\n", 19, allow_get);
	} else {
		http_reply_error(x, 404, "no such endpoint: %s", p);
	}
}

static const struct http_server_limits adm_limits = {.max_header = 16384, .max_body = 1 << 20};

int admin_allowed(struct bal *b, const char *hostport, char *err, size_t errlen)
{
	if ((!b->host->token || !b->host->token[0]) && !net_addr_is_loopback(hostport)) {
		snprintf(err, errlen,
		         "admin address %s is not loopback and no API token is configured; set a "
		         "token or listen on 127.0.0.1",
		         hostport);
		return -1;
	}
	return 0;
}

/* The auth rule of every admin listener: reads need the token too. */
static int adm_auth(struct bal *b, char *err, size_t errlen)
{
	if (b->admin && http_server_set_auth(b->admin, b->host->token,
	                                     SCALER_HOST_HAS(b->host, public_reads) &&
	                                         b->host->public_reads) < 0) {
		snprintf(err, errlen, "out of memory");
		http_server_free(b->admin);
		b->admin = NULL;
	}
	return b->admin ? 0 : -1;
}

int admin_start(struct bal *b, const char *hostport, char *err, size_t errlen)
{
	if (admin_allowed(b, hostport, err, errlen) < 0)
		return -1;
	b->admin = http_server_new(b->loop, hostport, &adm_limits, adm_handler, b, err, errlen);
	return adm_auth(b, err, errlen);
}

int admin_adopt(struct bal *b, int fd, const char *hostport, char *err, size_t errlen)
{
	if (admin_allowed(b, hostport, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	b->admin = http_server_adopt(b->loop, fd, &adm_limits, adm_handler, b, err, errlen);
	if (!b->admin)
		close(fd);
	return adm_auth(b, err, errlen);
}

void admin_stop(struct bal *b)
{
	/* the server drops its pending exchanges: answers that come back
	 * from the state store find nobody to reply to */
	while (b->confirms) {
		struct adm_confirm *c = b->confirms;
		b->confirms = c->next;
		c->b = NULL;
		c->x = NULL;
	}
	b->nconfirms = 0;
	board_stats_drop(b); /* the exchanges go with the server */
	if (b->admin) {
		http_server_free(b->admin);
		b->admin = NULL;
	}
}
