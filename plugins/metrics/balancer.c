/*
 * metrics "balancer": what the zone's own balancer counts, for scaling on
 * requests instead of CPU. Every query is one GET /stats?window=S on the
 * zone's admin address (with the bearer token when one is configured); the
 * balancer answers per server the requests in flight on average over the
 * window, the requests per second and the latency percentiles, counted by
 * its data path (plugins/balancer/stats.c). Works with any app: no /stats
 * contract with the servers, nothing else to run.
 *
 * Missing stays missing: a window the balancer worker has not fully
 * observed (it started less than S seconds ago), a server the balancer does
 * not know yet, a latency without a response in the window, or a failed
 * request to the admin API give no value, never 0.
 *
 * Settings (group "metrics"):
 *   metric  = "concurrency";  or "rps", "latency_p50", "latency_p95",
 *                             "latency_p99" (seconds)
 *   timeout = 1.0;            seconds for the admin API to answer
 */
#include "config.h"

#include <scaler/plugin.h>

#include "net.h"

#include <ev.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BM_WHO "metrics balancer"

static const struct {
	const char *name;
	const char *key, *sub; /* in each server of GET /stats */
	const char *unit;      /* as a policy's sentence says it */
} bm_metrics[] = {
    {"concurrency", "concurrency", NULL, "in flight"}, {"rps", "rps", NULL, "requests/s"},
    {"latency_p50", "latency", "p50", "s (p50)"},      {"latency_p95", "latency", "p95", "s (p95)"},
    {"latency_p99", "latency", "p99", "s (p99)"},
};
#define BM_NMETRICS (sizeof(bm_metrics) / sizeof(bm_metrics[0]))

struct bm_query {
	struct bm_query *next;
	struct bm_ctx *ctx;
	char zone[64];
	size_t n;
	struct scaler_server *servers; /* copies: the caller's may not outlive the call */
	struct scaler_metric_value *values;
	struct scaler_http_call *call;
	ev_timer done; /* completes a query without servers, off the caller's stack */
	scaler_metrics_cb cb;
	void *arg;
};

/* what was last logged of a zone, so a lasting condition is logged once */
struct bm_zone {
	struct bm_zone *next;
	char name[64];
	char said[256];
};

struct bm_ctx {
	const struct scaler_host *host;
	int metric; /* index in bm_metrics */
	double timeout;
	struct bm_query *queries;
	struct bm_zone *zones;
};

static const char *const bm_known[] = {"plugin", "metric", "timeout", NULL};

static int bm_parse(const struct scaler_host *host, const config_setting_t *conf, int *metric,
                    double *timeout)
{
	int bad = 0;

	*metric = 0;
	if (conf && !config_setting_is_group(conf))
		return host->conf_error(conf, "the metrics settings must be a group { ... }");
	if (conf && host->conf_check_known(conf, bm_known) < 0)
		bad = -1;
	const config_setting_t *s = conf ? config_setting_get_member(conf, "metric") : NULL;
	if (s) {
		const char *v = config_setting_get_string(s);
		size_t i = 0;
		while (v && i < BM_NMETRICS && strcmp(v, bm_metrics[i].name))
			i++;
		if (!v || i == BM_NMETRICS)
			bad = host->conf_error(
			    s,
			    "metric must be \"concurrency\", \"rps\", "
			    "\"latency_p50\", \"latency_p95\" or \"latency_p99\"%s%s%s",
			    v ? " (got \"" : "", v ? v : "", v ? "\")" : "");
		else
			*metric = (int)i;
	}
	bad |= host->conf_number(conf, "timeout", 1.0, 0.01, 300, timeout);
	return bad ? -1 : 0;
}

/* Log `said` for the zone unless the same condition (`key`, its first
 * words when NULL) was logged last; "" resets. */
static void bm_say(struct bm_ctx *ctx, const char *zone, enum scaler_log_level level,
                   const char *key, const char *said)
{
	struct bm_zone *z = ctx->zones;
	while (z && strcmp(z->name, zone))
		z = z->next;
	if (!z && !said[0])
		return;
	if (!z) {
		z = calloc(1, sizeof(*z));
		if (!z)
			return;
		snprintf(z->name, sizeof(z->name), "%s", zone);
		z->next = ctx->zones;
		ctx->zones = z;
	}
	if (!key)
		key = said;
	if (strcmp(z->said, key) == 0)
		return;
	snprintf(z->said, sizeof(z->said), "%s", key);
	if (said[0])
		ctx->host->log(level, BM_WHO, "zone %s: %s", zone, said);
}

static void bm_query_free(struct bm_query *q)
{
	ev_timer_stop(q->ctx->host->loop, &q->done);
	free(q->servers);
	free(q->values);
	free(q);
}

static void bm_unlink(struct bm_query *q)
{
	for (struct bm_query **pp = &q->ctx->queries; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

/* Call back with the values (status 0) or an error, then free q. */
static void bm_finish(struct bm_query *q, const char *err)
{
	/* no average: from ABI 1.2 the host computes it from the values */
	struct scaler_metrics_result res = {.values = q->values, .n = q->n};

	bm_unlink(q);
	/* the callback may end the plugin instance: touch nothing of ctx after */
	if (err)
		q->cb(q->arg, -1, NULL, err);
	else
		q->cb(q->arg, 0, &res, NULL);
	bm_query_free(q);
}

/* The server of the answer at `address` (trailing '/' ignored), or NULL. */
static json_t *bm_find(json_t *servers, const char *address)
{
	size_t alen = strlen(address), i;
	json_t *s;
	while (alen && address[alen - 1] == '/')
		alen--;
	json_array_foreach(servers, i, s)
	{
		const char *url = json_string_value(json_object_get(s, "url"));
		if (url && strlen(url) == alen && strncmp(url, address, alen) == 0)
			return s;
	}
	return NULL;
}

static void bm_on_response(void *arg, const struct scaler_http_response *resp)
{
	struct bm_query *q = arg;
	struct bm_ctx *ctx = q->ctx;
	char err[512];
	json_error_t jerr;
	json_t *root = NULL;

	q->call = NULL;
	if (resp->status == 0) {
		snprintf(err, sizeof(err), "GET /stats of the zone's balancer: %s",
		         resp->error ? resp->error : "no response");
		goto fail;
	}
	if (resp->status != 200) {
		json_t *e = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, &jerr);
		const char *msg = json_string_value(json_object_get(e, "error"));
		snprintf(err, sizeof(err), "GET /stats of the zone's balancer: status %ld%s%s",
		         resp->status, msg ? ": " : "", msg ? msg : "");
		json_decref(e);
		goto fail;
	}
	root = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, &jerr);
	json_t *servers = json_object_get(root, "servers");
	if (!json_is_array(servers)) {
		snprintf(err, sizeof(err),
		         "GET /stats of the zone's balancer: not the expected JSON (%s)",
		         root ? "no \"servers\" array" : jerr.text);
		goto fail;
	}
	if (!json_is_true(json_object_get(root, "observed"))) {
		const char *why = json_string_value(json_object_get(root, "missing"));
		char said[256];
		snprintf(said, sizeof(said), "every value is missing: %s",
		         why ? why : "the balancer has not observed the whole window");
		/* logged once while it lasts, not at every second of uptime */
		bm_say(ctx, q->zone, SCALER_LOG_INFO, "unobserved", said);
	} else {
		bm_say(ctx, q->zone, SCALER_LOG_INFO, NULL, "");
		const char *key = bm_metrics[ctx->metric].key, *sub = bm_metrics[ctx->metric].sub;
		for (size_t i = 0; i < q->n; i++) {
			json_t *v = json_object_get(bm_find(servers, q->servers[i].address), key);
			if (sub)
				v = json_object_get(v, sub);
			if (json_is_number(v) && isfinite(json_number_value(v))) {
				q->values[i].value = json_number_value(v);
				q->values[i].missing = 0;
			}
		}
	}
	json_decref(root);
	bm_finish(q, NULL);
	return;
fail:
	json_decref(root);
	bm_say(ctx, q->zone, SCALER_LOG_WARNING, NULL, err);
	bm_finish(q, err);
}

static void bm_on_done_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	bm_finish(w->data, NULL);
}

static int bm_query(void *vctx, const struct scaler_zone *zone, const struct scaler_server *servers,
                    size_t n, double window, scaler_metrics_cb cb, void *arg)
{
	struct bm_ctx *ctx = vctx;
	const struct scaler_host *host = ctx->host;
	char path[64], url[512], *auth = NULL; /* sized for the token, however long */

	if (!zone || !zone->name || (n && !servers) || !cb || !(window > 0))
		return -1;
	snprintf(path, sizeof(path), "/stats?window=%.3f", window);
	if (net_http_url(zone->admin, path, url, sizeof(url)) < 0) {
		host->log(SCALER_LOG_ERR, BM_WHO, "zone %s: invalid admin address \"%s\"",
		          zone->name, zone->admin ? zone->admin : "");
		return -1;
	}
	struct bm_query *q = calloc(1, sizeof(*q));
	if (!q)
		return -1;
	q->servers = calloc(n ? n : 1, sizeof(*q->servers));
	q->values = calloc(n ? n : 1, sizeof(*q->values));
	if (!q->servers || !q->values) {
		free(q->servers);
		free(q->values);
		free(q);
		host->log(SCALER_LOG_ERR, BM_WHO, "out of memory");
		return -1;
	}
	q->ctx = ctx;
	snprintf(q->zone, sizeof(q->zone), "%s", zone->name);
	q->n = n;
	q->cb = cb;
	q->arg = arg;
	memcpy(q->servers, servers, n * sizeof(*servers));
	for (size_t i = 0; i < n; i++) {
		q->values[i].server_id = q->servers[i].id;
		q->values[i].missing = 1;
	}
	ev_timer_init(&q->done, bm_on_done_timer, 0, 0);
	q->done.data = q;
	q->next = ctx->queries;
	ctx->queries = q;
	if (n == 0) {
		ev_timer_start(host->loop, &q->done);
		return 0;
	}
	const char *headers[2] = {NULL, NULL};
	int oom = 0;
	if (host->token && host->token[0]) {
		oom = asprintf(&auth, "Authorization: Bearer %s", host->token) < 0;
		headers[0] = oom ? NULL : auth;
	}
	struct scaler_http_request req = {
	    .method = "GET", .url = url, .headers = headers, .timeout = ctx->timeout};
	q->call = oom ? NULL : host->http_request(&req, bm_on_response, q);
	if (!oom && auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	if (!q->call) {
		bm_unlink(q);
		bm_query_free(q);
		return -1;
	}
	return 0;
}

/* ---- instance ------------------------------------------------------------ */

static int bm_init(const struct scaler_host *host, const config_setting_t *conf, void **ctxp)
{
	struct bm_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx) {
		host->log(SCALER_LOG_ERR, BM_WHO, "out of memory");
		return -1;
	}
	ctx->host = host;
	if (bm_parse(host, conf, &ctx->metric, &ctx->timeout) < 0) {
		free(ctx);
		return -1;
	}
	*ctxp = ctx;
	return 0;
}

/* New settings apply to the next query. */
static int bm_reload(void *vctx, const config_setting_t *conf)
{
	struct bm_ctx *ctx = vctx;
	int metric;
	double timeout;

	if (bm_parse(ctx->host, conf, &metric, &timeout) < 0)
		return -1;
	ctx->metric = metric;
	ctx->timeout = timeout;
	return 0;
}

/* Queries in flight are cancelled without their callbacks. */
static void bm_fini(void *vctx)
{
	struct bm_ctx *ctx = vctx;

	if (!ctx)
		return;
	while (ctx->queries) {
		struct bm_query *q = ctx->queries;
		ctx->queries = q->next;
		if (q->call)
			ctx->host->http_cancel(q->call);
		bm_query_free(q);
	}
	while (ctx->zones) {
		struct bm_zone *z = ctx->zones;
		ctx->zones = z->next;
		free(z);
	}
	free(ctx);
}

static const char *bm_unit(void *vctx)
{
	const struct bm_ctx *ctx = vctx;
	return bm_metrics[ctx->metric].unit;
}

static const struct scaler_metrics_ops bm_ops = {
    .size = sizeof(struct scaler_metrics_ops),
    .query = bm_query,
    .unit = bm_unit,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_METRICS, "balancer", PACKAGE_VERSION, bm_init, bm_reload, bm_fini,
                     metrics, &bm_ops);
