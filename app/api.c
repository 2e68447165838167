#include "config.h"

#include "app.h"
#include "load_sim.h"
#include "log.h"
#include "sinks.h"
#include "work.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_WORK_MS_DEFAULT 10

/* Like http_reply_json, with numbers printed for people (0.11, not
 * 0.11000000000000001). Takes the reference to `o`. */
static void api_reply_json(struct http_exchange *x, int status, json_t *o)
{
	char *body = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;

	json_decref(o);
	if (!body) {
		http_reply_error(x, 500, "out of memory");
		return;
	}
	http_reply(x, status, "application/json", body, strlen(body), NULL);
	free(body);
}

typedef void (*api_fn)(struct app *app, struct http_exchange *x, const struct http_request *req);

struct api_route {
	const char *path;
	const char *method;
	api_fn fn;
	int control; /* changes how the server behaves: needs the control token */
};

static void api_dashboard(struct app *app, struct http_exchange *x, const struct http_request *req)
{
	static const char *const headers[] = {"Cache-Control: no-store", NULL};
	http_reply(x, 200, "text/html; charset=utf-8", app_dashboard_html,
	           strlen(app_dashboard_html), headers);
}

static void api_health_check(struct app *app, struct http_exchange *x,
                             const struct http_request *req)
{
	if (app->healthy)
		http_reply(x, 200, "text/plain", "ok", 2, NULL);
	else
		http_reply(x, 503, "text/plain", "unhealthy", 9, NULL);
}

static void api_add_counters(json_t *o, const char *prefix, const struct sink_counters *c,
                             int enabled)
{
	char name[32];

	snprintf(name, sizeof(name), "%s_enabled", prefix);
	json_object_set_new(o, name, json_boolean(enabled));
	snprintf(name, sizeof(name), "%s_sent", prefix);
	json_object_set_new(o, name, json_integer((json_int_t)c->sent));
	snprintf(name, sizeof(name), "%s_dropped", prefix);
	json_object_set_new(o, name, json_integer((json_int_t)c->dropped));
	snprintf(name, sizeof(name), "%s_pending", prefix);
	json_object_set_new(o, name, json_integer((json_int_t)c->pending));
}

static void api_stats(struct app *app, struct http_exchange *x, const struct http_request *req)
{
	json_t *o = app_sample_json(app, &app->last);
	struct sink_counters k = {0}, i = {0};
	struct work_counters w;

	/* health is a switch, not a sample: show it as it is now */
	json_object_set_new(o, "health_status", json_integer(app->healthy));
	json_object_set_new(o, "healthy", json_boolean(app->healthy));
	json_object_set_new(o, "memory_mib", json_real(app->last.memory_mib));
	json_object_set_new(o, "profile",
	                    json_string(load_profile_name(load_sim_profile(app->sim))));
	json_object_set_new(o, "cpu_target", json_real(load_sim_target(app->sim)));
	json_object_set_new(o, "requests", json_integer((json_int_t)app->requests));
	if (app->kafka)
		kafka_sink_counters(app->kafka, &k);
	if (app->influx)
		influx_sink_counters(app->influx, &i);
	api_add_counters(o, "kafka", &k, app->kafka != NULL);
	api_add_counters(o, "influx", &i, app->influx != NULL);
	work_pool_counters(app->work, &w);
	json_object_set_new(o, "work_threads", json_integer(w.threads));
	json_object_set_new(o, "work_in_flight_max", json_integer(w.max_in_flight));
	json_object_set_new(o, "work_running", json_integer(w.running));
	json_object_set_new(o, "work_waiting", json_integer(w.waiting));
	json_object_set_new(o, "work_done", json_integer((json_int_t)w.done));
	json_object_set_new(o, "work_refused", json_integer((json_int_t)w.refused));
	json_object_set_new(o, "work_dropped", json_integer((json_int_t)w.dropped));
	json_object_set_new(o, "control", json_string(app->control_token ? "token" : "open"));
	api_reply_json(x, 200, o);
}

static void api_history(struct app *app, struct http_exchange *x, const struct http_request *req)
{
	json_t *o = json_object(), *samples = json_array();
	size_t first = (app->history_head + APP_HISTORY - app->history_len) % APP_HISTORY;

	for (size_t n = 0; n < app->history_len; n++) {
		const struct app_sample *s = &app->history[(first + n) % APP_HISTORY];
		json_t *e = json_object();
		json_object_set_new(e, "ts", json_real(s->ts));
		json_object_set_new(e, "cpu_usage", json_real(s->cpu_usage));
		json_object_set_new(e, "memory_usage", json_real(s->memory_usage));
		json_object_set_new(e, "throughput", json_real(s->throughput));
		json_array_append_new(samples, e);
	}
	json_object_set_new(o, "server", json_string(app->server_id));
	json_object_set_new(o, "zone", json_string(app->zone));
	json_object_set_new(o, "interval", json_integer(1));
	json_object_set_new(o, "samples", samples);
	api_reply_json(x, 200, o);
}

/* The body must be an object holding exactly `key` (and nothing else), else
 * 400 naming what is wrong. Returns the value or NULL after replying. */
static json_t *api_body_field(struct http_exchange *x, const struct http_request *req,
                              json_t **body, const char *key, const char *example)
{
	const char *name;
	json_t *v;

	*body = http_request_json(x, req);
	if (!*body)
		return NULL;
	if (!json_is_object(*body)) {
		http_reply_error(x, 400, "the body must be a JSON object like %s", example);
		return NULL;
	}
	json_object_foreach(*body, name, v)
	{
		if (strcmp(name, key) != 0) {
			http_reply_error(x, 400, "unknown field \"%s\": the body is %s", name,
			                 example);
			return NULL;
		}
	}
	v = json_object_get(*body, key);
	if (!v)
		http_reply_error(x, 400, "missing field \"%s\": the body is %s", key, example);
	return v;
}

static void api_load(struct app *app, struct http_exchange *x, const struct http_request *req)
{
	static const char example[] = "{\"profile\": \"high\"|\"low\"|\"stop\"}";
	json_t *body, *v = api_body_field(x, req, &body, "profile", example);
	int p;

	if (!v)
		goto out;
	if (!json_is_string(v)) {
		http_reply_error(x, 400, "\"profile\" must be a string: one of high, low, stop");
		goto out;
	}
	p = load_profile_parse(json_string_value(v));
	if (p < 0) {
		http_reply_error(x, 400, "unknown profile \"%.64s\": expected high, low or stop",
		                 json_string_value(v));
		goto out;
	}
	int changed = load_sim_set_profile(app->sim, (enum load_profile)p);
	if (changed)
		log_info("profile set to %s by %s", load_profile_name((enum load_profile)p),
		         req->peer);
	api_reply_json(x, 200,
	               json_pack("{s:s, s:b, s:f}", "profile",
	                         load_profile_name((enum load_profile)p), "changed", changed,
	                         "cpu_target", load_sim_target(app->sim)));
out:
	json_decref(body);
}

static void api_health(struct app *app, struct http_exchange *x, const struct http_request *req)
{
	static const char example[] = "{\"healthy\": true|false}";
	json_t *body, *v = api_body_field(x, req, &body, "healthy", example);

	if (!v)
		goto out;
	if (!json_is_boolean(v)) {
		http_reply_error(x, 400, "\"healthy\" must be true or false");
		goto out;
	}
	if (app->healthy != json_is_true(v))
		log_notice("health check set to %s by %s", json_is_true(v) ? "pass" : "fail",
		           req->peer);
	app->healthy = json_is_true(v);
	api_reply_json(x, 200, json_pack("{s:b}", "healthy", app->healthy));
out:
	json_decref(body);
}

static void api_work(struct app *app, struct http_exchange *x, const struct http_request *req)
{
	static const char *const retry[] = {"Retry-After: 1", NULL};
	char buf[32], *end;
	const char *arg = http_request_query(req, "ms", buf, sizeof(buf));
	long ms = API_WORK_MS_DEFAULT;

	if (arg) {
		errno = 0;
		ms = strtol(arg, &end, 10);
		if (errno || end == arg || *end || ms < 1 || ms > APP_WORK_MS_MAX) {
			http_reply_error(x, 400,
			                 "ms must be an integer from 1 to %d, got \"%.20s\"",
			                 APP_WORK_MS_MAX, arg);
			return;
		}
	}
	if (work_submit(app->work, (double)ms, x) == 0)
		return; /* app_work_done answers */

	struct work_counters w;
	char *body;
	json_t *err;

	work_pool_counters(app->work, &w);
	err = json_pack("{s:s}", "error", "busy: too many /work requests in flight");
	json_object_set_new(err, "work_in_flight_max", json_integer(w.max_in_flight));
	body = json_dumps(err, JSON_COMPACT);
	json_decref(err);
	http_reply(x, 503, "application/json", body, body ? strlen(body) : 0, retry);
	free(body);
}

int app_work_wanted(void *ctx, void *arg)
{
	return http_exchange_alive(arg);
}

void app_work_done(void *ctx, void *arg, double ms, double cpu_ms, double wait_ms)
{
	struct app *app = ctx;
	struct http_exchange *x = arg;

	if (cpu_ms < 0) { /* the client left before it started: nobody reads this */
		http_reply_error(x, 503, "dropped: the client went away");
		return;
	}
	api_reply_json(x, 200,
	               json_pack("{s:s, s:s, s:i, s:f, s:f}", "server", app->server_id, "zone",
	                         app->zone, "ms", (int)ms, "cpu_ms", round(cpu_ms * 1000) / 1000,
	                         "wait_ms", round(wait_ms * 1000) / 1000));
}

/* The body back as it came, for checks of body integrity through the
 * balancer. Never rendered: a page of the app's own origin must not be
 * made of what a client sent. */
static void api_echo(struct app *app, struct http_exchange *x, const struct http_request *req)
{
	static const char *const headers[] = {
	    "X-Content-Type-Options: nosniff",
	    "Content-Security-Policy: default-src 'none'; sandbox", "Cache-Control: no-store",
	    NULL};
	http_reply(x, 200, "application/octet-stream", req->body, req->body_len, headers);
}

/* clang-format off */
static const struct api_route api_routes[] = {
    {"/", "GET", api_dashboard, 0},
    {"/health_check", "GET", api_health_check, 0},
    {"/stats", "GET", api_stats, 0},
    {"/history", "GET", api_history, 0},
    {"/work", "GET", api_work, 0},
    {"/echo", "POST", api_echo, 0},
    {"/load", "POST", api_load, 1},
    {"/health", "POST", api_health, 1},
};
/* clang-format on */

void app_api_handle(struct http_exchange *x, const struct http_request *req, void *arg)
{
	struct app *app = arg;
	const struct api_route *path_match = NULL;

	app->requests++;
	for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
		const struct api_route *r = &api_routes[i];
		if (strcmp(r->path, req->path) != 0)
			continue;
		if (strcmp(r->method, req->method) == 0) {
			if (r->control && !http_require_token(x, req, app->control_token))
				return;
			r->fn(app, x, req);
			return;
		}
		path_match = r;
	}
	if (!path_match) {
		http_reply_error(x, 404, "no such endpoint: %.100s", req->path);
		return;
	}

	/* 405 must say what is allowed */
	char allow[64], *body;
	const char *headers[] = {allow, NULL};
	json_t *err = json_pack("{s:s++++}", "error", req->method, " is not allowed on ", req->path,
	                        ", use ", path_match->method);

	snprintf(allow, sizeof(allow), "Allow: %s", path_match->method);
	body = json_dumps(err, JSON_COMPACT);
	json_decref(err);
	http_reply(x, 405, "application/json", body, body ? strlen(body) : 0, headers);
	free(body);
}
