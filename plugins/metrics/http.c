/*
 * metrics "http" (the default): every query fetches GET <address><path>
 * from each server of the zone, all at once through the host's HTTP client,
 * and reads one number from the JSON object it answers (scaler-app's
 * /stats: {"cpu_usage": 42.5, ...}).
 *
 * Each server keeps the samples of its successful fetches with monotonic
 * timestamps; its value for a query is the mean of its samples within the
 * query's window. A server whose fetch fails this round (transport error,
 * timeout, non-2xx, not JSON, field missing or not a number) is missing
 * for this round: nothing is invented for it. Servers of a zone that a
 * query no longer names are forgotten.
 *
 * Settings (group "metrics"):
 *   path    = "/stats";    request path, appended to the server's address
 *   field   = "cpu_usage"; member holding the value; "a.b" reads {"a":{"b":N}}
 *   timeout = 1.0;         seconds per fetch
 */
#include "config.h"

#include <scaler/plugin.h>

#include <ev.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HM_WHO "metrics http"
#define HM_SAMPLES 64 /* per server; a window rarely holds more than a few */

struct hm_server {
	struct hm_server *next;
	char id[64];
	char zone[64];
	char address[256];
	double t[HM_SAMPLES]; /* ring of samples, oldest at head */
	double v[HM_SAMPLES];
	size_t head, n;
	int failing; /* the last fetch failed (to log changes, not every round) */
};

struct hm_query;

struct hm_fetch {
	struct hm_query *q;
	size_t i;
	struct scaler_http_call *call;
};

struct hm_query {
	struct hm_query *next;
	struct hm_ctx *ctx;
	char zone[64];
	double window;
	size_t n, pending;
	struct scaler_server *servers; /* copies: the caller's may not outlive the call */
	struct scaler_metric_value *values;
	struct hm_fetch *fetches;
	ev_timer done; /* completes a query that started no fetch, off the caller's stack */
	scaler_metrics_cb cb;
	void *arg;
};

struct hm_ctx {
	const struct scaler_host *host;
	char *path;
	char *field;
	double timeout;
	struct hm_server *servers;
	struct hm_query *queries; /* in flight */
};

static const char *const hm_known[] = {"plugin", "path", "field", "timeout", NULL};

static double hm_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- settings ----------------------------------------------------------- */

static int hm_string(const struct scaler_host *host, const config_setting_t *conf, const char *name,
                     const char *def, char **out)
{
	config_setting_t *s = conf ? config_setting_get_member(conf, name) : NULL;
	const char *v = def;

	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return host->conf_error(s, "%s must be a string", name);
		v = config_setting_get_string(s);
	}
	*out = strdup(v);
	if (!*out) {
		host->log(SCALER_LOG_ERR, HM_WHO, "out of memory");
		return -1;
	}
	return 0;
}

static int hm_parse(const struct scaler_host *host, const config_setting_t *conf,
                    struct hm_ctx *ctx)
{
	config_setting_t *s;
	int bad = 0;
	const char *c;

	ctx->timeout = 1.0;
	if (conf && !config_setting_is_group(conf))
		return host->conf_error(conf, "the metrics settings must be a group { ... }");
	if (conf && host->conf_check_known(conf, hm_known) < 0)
		bad = -1;
	if (hm_string(host, conf, "path", "/stats", &ctx->path) < 0 ||
	    hm_string(host, conf, "field", "cpu_usage", &ctx->field) < 0)
		return -1;
	s = conf ? config_setting_get_member(conf, "path") : NULL;
	if (ctx->path[0] != '/')
		bad = host->conf_error(s, "path must start with \"/\", like \"/stats\"");
	for (c = ctx->path; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			bad = host->conf_error(s, "path must not contain spaces or control "
			                          "characters (URL-encode them)");
			break;
		}
	s = conf ? config_setting_get_member(conf, "field") : NULL;
	if (!ctx->field[0] || ctx->field[0] == '.' || ctx->field[strlen(ctx->field) - 1] == '.' ||
	    strstr(ctx->field, "..") || strlen(ctx->field) > 255)
		bad = host->conf_error(s, "field must name a JSON member, like \"cpu_usage\" "
		                          "or \"cpu.usage\"");
	if (host->conf_number(conf, "timeout", 1.0, 0.01, 300, &ctx->timeout) < 0)
		bad = -1;
	return bad;
}

/* ---- per-server samples --------------------------------------------------- */

static struct hm_server *hm_server_find(struct hm_ctx *ctx, const char *id)
{
	struct hm_server *s;

	for (s = ctx->servers; s; s = s->next)
		if (!strcmp(s->id, id))
			return s;
	return NULL;
}

/* The server's record; a new one when unknown or when its address changed
 * (a different process: its old samples say nothing about it). */
static struct hm_server *hm_server_get(struct hm_ctx *ctx, const char *zone,
                                       const struct scaler_server *srv)
{
	struct hm_server *s = hm_server_find(ctx, srv->id);

	if (s && strcmp(s->address, srv->address)) {
		s->n = s->head = 0;
		snprintf(s->address, sizeof(s->address), "%s", srv->address);
	}
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->id, sizeof(s->id), "%s", srv->id);
	snprintf(s->zone, sizeof(s->zone), "%s", zone);
	snprintf(s->address, sizeof(s->address), "%s", srv->address);
	s->next = ctx->servers;
	ctx->servers = s;
	return s;
}

/* Forget the servers of `zone` that the query does not name. */
static void hm_forget(struct hm_ctx *ctx, const char *zone, const struct scaler_server *servers,
                      size_t n)
{
	struct hm_server **pp = &ctx->servers;

	while (*pp) {
		struct hm_server *s = *pp;
		size_t i;

		for (i = 0; i < n; i++)
			if (!strcmp(servers[i].id, s->id))
				break;
		if (!strcmp(s->zone, zone) && i == n) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

static void hm_sample_add(struct hm_server *s, double t, double v)
{
	size_t at;

	if (s->n == HM_SAMPLES) {
		s->head = (s->head + 1) % HM_SAMPLES;
		s->n--;
	}
	at = (s->head + s->n) % HM_SAMPLES;
	s->t[at] = t;
	s->v[at] = v;
	s->n++;
}

/* Mean of the samples no older than window; drops older ones. */
static double hm_sample_mean(struct hm_server *s, double now, double window)
{
	double sum = 0;
	size_t i;

	while (s->n > 1 && now - s->t[s->head] > window) {
		s->head = (s->head + 1) % HM_SAMPLES;
		s->n--;
	}
	for (i = 0; i < s->n; i++)
		sum += s->v[(s->head + i) % HM_SAMPLES];
	return s->n ? sum / (double)s->n : NAN;
}

/* ---- one fetch ------------------------------------------------------------ */

/* The number at `field` ("a.b" walks objects) in body; -1 with why. */
static int hm_extract(const char *field, const char *body, size_t len, double *out, char *why,
                      size_t whylen)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr), *v;
	const char *p = field;
	char key[256];
	int rc = -1;

	if (!root) {
		snprintf(why, whylen, "the body is not JSON (%s at line %d)", jerr.text, jerr.line);
		return -1;
	}
	v = root;
	while (v && *p) {
		size_t k = strcspn(p, ".");
		snprintf(key, sizeof(key), "%.*s", (int)(k < sizeof(key) ? k : sizeof(key) - 1), p);
		v = json_is_object(v) ? json_object_get(v, key) : NULL;
		p += k + (p[k] == '.');
	}
	if (!v)
		snprintf(why, whylen, "the JSON has no \"%s\"", field);
	else if (!json_is_number(v) || !isfinite(json_number_value(v)))
		snprintf(why, whylen, "\"%s\" is not a number", field);
	else {
		*out = json_number_value(v);
		rc = 0;
	}
	json_decref(root);
	return rc;
}

static void hm_query_finish(struct hm_query *q)
{
	struct hm_ctx *ctx = q->ctx;
	struct scaler_metrics_result res = {.values = q->values, .n = q->n};
	struct hm_query **pp;

	for (pp = &ctx->queries; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	ev_timer_stop(ctx->host->loop, &q->done);
	/* the callback may end the plugin instance: touch nothing of ctx after */
	q->cb(q->arg, 0, &res, NULL);
	free(q->servers);
	free(q->values);
	free(q->fetches);
	free(q);
}

static void hm_fetch_done(struct hm_fetch *f, int ok, double value, const char *why)
{
	struct hm_query *q = f->q;
	struct hm_ctx *ctx = q->ctx;
	const struct scaler_server *srv = &q->servers[f->i];
	struct scaler_metric_value *mv = &q->values[f->i];
	struct hm_server *s = hm_server_get(ctx, q->zone, srv);

	f->call = NULL;
	if (ok && s) {
		double now = hm_monotonic();
		hm_sample_add(s, now, value);
		mv->value = hm_sample_mean(s, now, q->window);
		mv->missing = 0;
	}
	if (s && !ok && !s->failing)
		ctx->host->log(SCALER_LOG_WARNING, HM_WHO,
		               "zone %s: server %s (%s%s): %s; its load counts as missing until "
		               "it answers",
		               q->zone, srv->id, srv->address, ctx->path, why);
	else if (s && ok && s->failing)
		ctx->host->log(SCALER_LOG_INFO, HM_WHO, "zone %s: server %s answers %s again",
		               q->zone, srv->id, ctx->path);
	if (s)
		s->failing = !ok;
	if (--q->pending == 0)
		hm_query_finish(q);
}

static void hm_on_response(void *arg, const struct scaler_http_response *resp)
{
	struct hm_fetch *f = arg;
	char why[512];
	double v = 0;
	int ok = 0;

	if (resp->status == 0)
		snprintf(why, sizeof(why), "%s", resp->error ? resp->error : "no response");
	else if (resp->status < 200 || resp->status > 299)
		snprintf(why, sizeof(why), "HTTP status %ld", resp->status);
	else
		ok = hm_extract(f->q->ctx->field, resp->body ? resp->body : "", resp->body_len, &v,
		                why, sizeof(why)) == 0;
	hm_fetch_done(f, ok, v, why);
}

static void hm_on_done_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	hm_query_finish(w->data);
}

static int hm_query(void *vctx, const struct scaler_zone *zone, const struct scaler_server *servers,
                    size_t n, double window, scaler_metrics_cb cb, void *arg)
{
	struct hm_ctx *ctx = vctx;
	const struct scaler_host *host = ctx->host;
	struct hm_query *q;
	size_t i;

	if (!zone || !zone->name || (n && !servers) || !cb)
		return -1;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -1;
	q->servers = calloc(n ? n : 1, sizeof(*q->servers));
	q->values = calloc(n ? n : 1, sizeof(*q->values));
	q->fetches = calloc(n ? n : 1, sizeof(*q->fetches));
	if (!q->servers || !q->values || !q->fetches) {
		free(q->servers);
		free(q->values);
		free(q->fetches);
		free(q);
		host->log(SCALER_LOG_ERR, HM_WHO, "out of memory");
		return -1;
	}
	q->ctx = ctx;
	snprintf(q->zone, sizeof(q->zone), "%s", zone->name);
	q->window = window > 0 ? window : 0;
	q->n = n;
	q->cb = cb;
	q->arg = arg;
	memcpy(q->servers, servers, n * sizeof(*servers));
	ev_timer_init(&q->done, hm_on_done_timer, 0, 0);
	q->done.data = q;
	q->next = ctx->queries;
	ctx->queries = q;

	hm_forget(ctx, q->zone, servers, n);
	for (i = 0; i < n; i++) {
		struct scaler_http_request req;
		char url[1024];
		size_t alen;

		q->values[i].server_id = q->servers[i].id;
		q->values[i].missing = 1;
		q->fetches[i].q = q;
		q->fetches[i].i = i;
		if (strncmp(servers[i].address, "http://", 7) &&
		    strncmp(servers[i].address, "https://", 8)) {
			host->log(SCALER_LOG_WARNING, HM_WHO,
			          "zone %s: server %s has no http:// address (\"%s\"): missing",
			          q->zone, servers[i].id, servers[i].address);
			continue;
		}
		alen = strlen(servers[i].address);
		if (servers[i].address[alen - 1] == '/') /* "http://h:p/" + "/stats" */
			alen--;
		if ((size_t)snprintf(url, sizeof(url), "%.*s%s", (int)alen, servers[i].address,
		                     ctx->path) >= sizeof(url)) {
			host->log(SCALER_LOG_WARNING, HM_WHO,
			          "zone %s: server %s: address too long: missing", q->zone,
			          servers[i].id);
			continue;
		}
		memset(&req, 0, sizeof(req));
		req.method = "GET";
		req.url = url;
		req.timeout = ctx->timeout;
		q->fetches[i].call = host->http_request(&req, hm_on_response, &q->fetches[i]);
		if (q->fetches[i].call)
			q->pending++;
		else
			host->log(SCALER_LOG_WARNING, HM_WHO,
			          "zone %s: server %s: cannot request %s: missing", q->zone,
			          servers[i].id, url);
	}
	if (q->pending == 0)
		ev_timer_start(host->loop, &q->done);
	return 0;
}

/* ---- instance ------------------------------------------------------------ */

static void hm_free_settings(struct hm_ctx *ctx)
{
	free(ctx->path);
	free(ctx->field);
	ctx->path = ctx->field = NULL;
}

static int hm_init(const struct scaler_host *host, const config_setting_t *conf, void **ctxp)
{
	struct hm_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx) {
		host->log(SCALER_LOG_ERR, HM_WHO, "out of memory");
		return -1;
	}
	ctx->host = host;
	if (hm_parse(host, conf, ctx) < 0) {
		hm_free_settings(ctx);
		free(ctx);
		return -1;
	}
	*ctxp = ctx;
	return 0;
}

/* New settings apply from now on (fetches in flight read field when they
 * complete); samples are kept. */
static int hm_reload(void *vctx, const config_setting_t *conf)
{
	struct hm_ctx *ctx = vctx, tmp;

	memset(&tmp, 0, sizeof(tmp));
	tmp.host = ctx->host;
	if (hm_parse(ctx->host, conf, &tmp) < 0) {
		hm_free_settings(&tmp);
		return -1;
	}
	hm_free_settings(ctx);
	ctx->path = tmp.path;
	ctx->field = tmp.field;
	ctx->timeout = tmp.timeout;
	return 0;
}

/* Queries in flight are cancelled without their callbacks. */
static void hm_fini(void *vctx)
{
	struct hm_ctx *ctx = vctx;

	if (!ctx)
		return;
	while (ctx->queries) {
		struct hm_query *q = ctx->queries;
		size_t i;

		ctx->queries = q->next;
		for (i = 0; i < q->n; i++)
			if (q->fetches[i].call)
				ctx->host->http_cancel(q->fetches[i].call);
		ev_timer_stop(ctx->host->loop, &q->done);
		free(q->servers);
		free(q->values);
		free(q->fetches);
		free(q);
	}
	while (ctx->servers) {
		struct hm_server *s = ctx->servers;
		ctx->servers = s->next;
		free(s);
	}
	hm_free_settings(ctx);
	free(ctx);
}

static const struct scaler_metrics_ops hm_ops = {
    .size = sizeof(struct scaler_metrics_ops),
    .query = hm_query,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_METRICS, "http", PACKAGE_VERSION, hm_init, hm_reload, hm_fini,
                     metrics, &hm_ops);
