/*
 * metrics "influxdb": per-server load from InfluxDB through InfluxQL over
 * HTTP (GET /query?db=...&q=..., the InfluxDB 1.x API, which InfluxDB 2.x
 * and 3.x also serve as their v1 compatibility API).
 *
 * One query per zone and evaluation:
 *
 *   SELECT mean("cpu_usage") FROM "rp"."scaler_app"
 *   WHERE "zone" = 'zone1' AND time > now() - 10000ms GROUP BY "server"
 *
 * Identifiers are double-quoted and the zone a single-quoted string
 * literal, both with backslash escapes, so no setting or zone name can
 * change the statement. A server asked about without points in the window
 * is missing (never 0); the zone average (the host's) is the mean of the
 * per-server means. An error from InfluxDB (transport, HTTP status, "error" in the
 * result) is status -1 with InfluxDB's own message.
 *
 * Settings (group "metrics"):
 *   url = "http://127.0.0.1:8086";  database = "scaler";
 *   measurement = "scaler_app";     field = "cpu_usage";
 *   zone_tag = "zone";              server_tag = "server";
 *   retention_policy = "";          ("" = the database's default)
 *   username = ""; password = "";   HTTP basic auth (InfluxDB 1.x)
 *   token = "";                     "Authorization: Token ..." (2.x/3.x v1 API)
 *   timeout = 2.0;                  seconds
 */
#include "config.h"

#include <scaler/plugin.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IM_WHO "metrics influxdb"

struct im_settings {
	char *url; /* without a trailing "/" */
	char *database, *measurement, *field, *zone_tag, *server_tag, *rp;
	char *username, *password, *token;
	char *auth_header; /* "Authorization: ..." or NULL */
	double timeout;
};

struct im_query {
	struct im_query *next;
	struct im_ctx *ctx;
	char zone[64];
	char url[256];    /* the base URL, for messages */
	char *server_tag; /* as asked: a reload may change it meanwhile */
	size_t n;
	char (*ids)[64];
	struct scaler_metric_value *values;
	struct scaler_http_call *call;
	scaler_metrics_cb cb;
	void *arg;
};

struct im_ctx {
	const struct scaler_host *host;
	struct im_settings set;
	struct im_query *queries; /* in flight */
};

static const char *const im_known[] = {
    "plugin",           "url",      "database", "measurement", "field",   "zone_tag", "server_tag",
    "retention_policy", "username", "password", "token",       "timeout", NULL};

/* ---- text helpers ----------------------------------------------------------- */

struct im_buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void im_put(struct im_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap : 256);
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void im_puts(struct im_buf *b, const char *s)
{
	im_put(b, s, strlen(s));
}

/* InfluxQL quoting: `quote` is '"' for identifiers, '\'' for strings;
 * backslash, the quote and newline are escaped (the InfluxQL scanner
 * understands \\, \", \' and \n in both). */
static void im_quote(struct im_buf *b, const char *s, char quote)
{
	char q[2] = {quote, 0};

	im_puts(b, q);
	for (; *s; s++) {
		if (*s == '\\' || *s == quote)
			im_put(b, "\\", 1);
		if (*s == '\n')
			im_puts(b, "\\n");
		else
			im_put(b, s, 1);
	}
	im_puts(b, q);
}

/* Percent-encoding of a query parameter value (RFC 3986 unreserved kept). */
static void im_urlencode(struct im_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			im_put(b, (const char *)&c, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			im_put(b, e, 3);
		}
	}
}

static void im_base64(struct im_buf *b, const unsigned char *s, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		char o[4];
		if (i + 1 < n)
			v |= (unsigned)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		o[0] = tab[(v >> 18) & 63];
		o[1] = tab[(v >> 12) & 63];
		o[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		o[3] = i + 2 < n ? tab[v & 63] : '=';
		im_put(b, o, 4);
	}
}

/* ---- settings ------------------------------------------------------------- */

static void im_settings_free(struct im_settings *s)
{
	free(s->url);
	free(s->database);
	free(s->measurement);
	free(s->field);
	free(s->zone_tag);
	free(s->server_tag);
	free(s->rp);
	free(s->username);
	free(s->password);
	free(s->token);
	free(s->auth_header);
	memset(s, 0, sizeof(*s));
}

/* A string setting; empty is refused unless allow_empty. */
static int im_string(const struct scaler_host *host, const config_setting_t *conf, const char *name,
                     const char *def, int allow_empty, char **out)
{
	config_setting_t *s = conf ? config_setting_get_member(conf, name) : NULL;
	const char *v = def, *c;

	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return host->conf_error(s, "%s must be a string", name);
		v = config_setting_get_string(s);
		if (!allow_empty && !*v)
			return host->conf_error(s, "%s must not be empty", name);
		for (c = v; *c; c++)
			if ((unsigned char)*c < ' ' || *c == 0x7f)
				return host->conf_error(s, "%s must not contain control characters",
				                        name);
	}
	*out = strdup(v);
	if (!*out) {
		host->log(SCALER_LOG_ERR, IM_WHO, "out of memory");
		return -1;
	}
	return 0;
}

static int im_parse(const struct scaler_host *host, const config_setting_t *conf,
                    struct im_settings *set)
{
	config_setting_t *s;
	int bad = 0, sbad = 0;
	size_t len;

	memset(set, 0, sizeof(*set));
	set->timeout = 2.0;
	if (conf && !config_setting_is_group(conf))
		return host->conf_error(conf, "the metrics settings must be a group { ... }");
	if (conf && host->conf_check_known(conf, im_known) < 0)
		bad = -1;
	sbad |= im_string(host, conf, "url", "http://127.0.0.1:8086", 0, &set->url);
	sbad |= im_string(host, conf, "database", "scaler", 0, &set->database);
	sbad |= im_string(host, conf, "measurement", "scaler_app", 0, &set->measurement);
	sbad |= im_string(host, conf, "field", "cpu_usage", 0, &set->field);
	sbad |= im_string(host, conf, "zone_tag", "zone", 0, &set->zone_tag);
	sbad |= im_string(host, conf, "server_tag", "server", 0, &set->server_tag);
	sbad |= im_string(host, conf, "retention_policy", "", 1, &set->rp);
	sbad |= im_string(host, conf, "username", "", 1, &set->username);
	sbad |= im_string(host, conf, "password", "", 1, &set->password);
	sbad |= im_string(host, conf, "token", "", 1, &set->token);
	if (sbad)
		return -1;

	s = conf ? config_setting_get_member(conf, "url") : NULL;
	if (strncmp(set->url, "http://", 7) && strncmp(set->url, "https://", 8))
		bad = host->conf_error(s, "url must start with http:// or https://, like "
		                          "\"http://127.0.0.1:8086\"");
	else if (strchr(set->url, '?') || strchr(set->url, '#') || strchr(set->url, ' '))
		bad = host->conf_error(s, "url must be the server's base URL, without a query "
		                          "(the database is its own setting)");
	else if (strchr(set->url, '@'))
		bad = host->conf_error(s, "url must not carry credentials: use username and "
		                          "password, or token");
	len = strlen(set->url);
	while (len > 0 && set->url[len - 1] == '/')
		set->url[--len] = '\0';

	if (set->token[0] && (set->username[0] || set->password[0]))
		bad = host->conf_error(config_setting_get_member(conf, "token"),
		                       "set either token (InfluxDB 2.x/3.x) or username and "
		                       "password (InfluxDB 1.x), not both");
	else if (set->password[0] && !set->username[0])
		bad = host->conf_error(config_setting_get_member(conf, "password"),
		                       "password is set but username is not");
	else if (set->username[0] && strchr(set->username, ':'))
		bad = host->conf_error(config_setting_get_member(conf, "username"),
		                       "username must not contain \":\" (HTTP basic auth)");

	if (host->conf_number(conf, "timeout", 2.0, 0.01, 300, &set->timeout) < 0)
		bad = -1;
	if (bad)
		return -1;

	if (set->token[0] || set->username[0]) {
		struct im_buf b = {0};
		if (set->token[0]) {
			im_puts(&b, "Authorization: Token ");
			im_puts(&b, set->token);
		} else {
			struct im_buf up = {0};
			im_puts(&up, set->username);
			im_puts(&up, ":");
			im_puts(&up, set->password);
			im_puts(&b, "Authorization: Basic ");
			if (!up.oom)
				im_base64(&b, (const unsigned char *)up.p, up.len);
			free(up.p);
			if (up.oom)
				b.oom = 1;
		}
		if (b.oom) {
			free(b.p);
			host->log(SCALER_LOG_ERR, IM_WHO, "out of memory");
			return -1;
		}
		set->auth_header = b.p;
	}
	return 0;
}

/* ---- the query ------------------------------------------------------------- */

/* The /query URL for zone and window; NULL on OOM. */
static char *im_query_url(const struct im_settings *s, const char *zone, double window)
{
	struct im_buf q = {0}, u = {0};
	char num[64];
	long long ms = (long long)ceil((window > 0 ? window : 10) * 1000);

	im_puts(&q, "SELECT mean(");
	im_quote(&q, s->field, '"');
	im_puts(&q, ") FROM ");
	if (s->rp[0]) {
		im_quote(&q, s->rp, '"');
		im_puts(&q, ".");
	}
	im_quote(&q, s->measurement, '"');
	im_puts(&q, " WHERE ");
	im_quote(&q, s->zone_tag, '"');
	im_puts(&q, " = ");
	im_quote(&q, zone, '\'');
	snprintf(num, sizeof(num), " AND time > now() - %lldms GROUP BY ", ms);
	im_puts(&q, num);
	im_quote(&q, s->server_tag, '"');

	im_puts(&u, s->url);
	im_puts(&u, "/query?db=");
	im_urlencode(&u, s->database);
	im_puts(&u, "&q=");
	if (!q.oom)
		im_urlencode(&u, q.p);
	if (q.oom || u.oom) {
		free(q.p);
		free(u.p);
		return NULL;
	}
	free(q.p);
	return u.p;
}

static void im_query_unlink(struct im_query *q)
{
	struct im_query **pp;

	for (pp = &q->ctx->queries; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

static void im_query_free(struct im_query *q)
{
	free(q->ids);
	free(q->values);
	free(q->server_tag);
	free(q);
}

/* InfluxDB's message from an error body ({"error": "..."}), else NULL. */
static const char *im_error_of(json_t *root)
{
	json_t *e = json_object_get(root, "error");
	json_t *r0 = json_array_get(json_object_get(root, "results"), 0);

	if (json_is_string(e))
		return json_string_value(e);
	e = json_object_get(r0, "error");
	return json_is_string(e) ? json_string_value(e) : NULL;
}

/* Fill q->values from a successful result; -1 with why when the JSON is
 * not shaped like an InfluxDB result. */
static int im_fill(struct im_query *q, json_t *root, char *why, size_t whylen)
{
	const char *tag = q->server_tag;
	json_t *r0 = json_array_get(json_object_get(root, "results"), 0), *series, *ser;
	size_t i, k;

	if (!json_is_object(r0)) {
		snprintf(why, whylen, "the answer has no results[0]");
		return -1;
	}
	series = json_object_get(r0, "series");
	if (!series)
		return 0; /* no point at all in the window: every server is missing */
	if (!json_is_array(series)) {
		snprintf(why, whylen, "results[0].series is not a list");
		return -1;
	}
	json_array_foreach(series, k, ser)
	{
		json_t *server = json_object_get(json_object_get(ser, "tags"), tag);
		json_t *cols = json_object_get(ser, "columns");
		json_t *row = json_array_get(json_object_get(ser, "values"), 0);
		json_t *col, *v;
		size_t c, at = 1;

		if (!json_is_string(server))
			continue; /* points without the server tag say nothing about a server */
		json_array_foreach(cols, c, col)
		{
			if (json_is_string(col) && !strcmp(json_string_value(col), "mean"))
				at = c;
		}
		v = json_array_get(row, at);
		if (!json_is_number(v) || !isfinite(json_number_value(v)))
			continue;
		for (i = 0; i < q->n; i++)
			if (!strcmp(q->ids[i], json_string_value(server))) {
				q->values[i].value = json_number_value(v);
				q->values[i].missing = 0;
			}
	}
	return 0;
}

static void im_on_response(void *arg, const struct scaler_http_response *resp)
{
	struct im_query *q = arg;
	struct scaler_metrics_result res = {0};
	json_t *root = NULL;
	json_error_t jerr;
	const char *ierr;
	char why[1024] = "", sub[256];
	size_t i;
	int status = 0;

	q->call = NULL;
	im_query_unlink(q);
	if (resp->status == 0) {
		snprintf(why, sizeof(why), "InfluxDB at %s: %s", q->url,
		         resp->error ? resp->error : "no response");
		status = -1;
	} else {
		root = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, &jerr);
		ierr = root ? im_error_of(root) : NULL;
		if (ierr) {
			snprintf(why, sizeof(why), "InfluxDB at %s: %s", q->url, ierr);
			status = -1;
		} else if (resp->status < 200 || resp->status > 299) {
			snprintf(why, sizeof(why), "InfluxDB at %s: HTTP status %ld", q->url,
			         resp->status);
			status = -1;
		} else if (!root) {
			snprintf(why, sizeof(why), "InfluxDB at %s: the answer is not JSON (%s)",
			         q->url, jerr.text);
			status = -1;
		} else if (im_fill(q, root, sub, sizeof(sub)) < 0) {
			snprintf(why, sizeof(why), "InfluxDB at %s: %s", q->url, sub);
			status = -1;
		}
	}
	json_decref(root);

	if (status < 0)
		for (i = 0; i < q->n; i++)
			q->values[i].missing = 1;
	res.values = q->values;
	res.n = q->n;
	/* the callback may end the plugin instance: touch nothing of ctx after */
	q->cb(q->arg, status, &res, status < 0 ? why : NULL);
	im_query_free(q);
}

static int im_query(void *vctx, const struct scaler_zone *zone, const struct scaler_server *servers,
                    size_t n, double window, scaler_metrics_cb cb, void *arg)
{
	struct im_ctx *ctx = vctx;
	const struct scaler_host *host = ctx->host;
	struct scaler_http_request req;
	const char *headers[2] = {ctx->set.auth_header, NULL};
	struct im_query *q;
	char *url;
	size_t i;

	if (!zone || !zone->name || (n && !servers) || !cb)
		return -1;
	q = calloc(1, sizeof(*q));
	url = im_query_url(&ctx->set, zone->name, window);
	if (q) {
		q->ids = calloc(n ? n : 1, sizeof(*q->ids));
		q->values = calloc(n ? n : 1, sizeof(*q->values));
		q->server_tag = strdup(ctx->set.server_tag);
	}
	if (!q || !url || !q->ids || !q->values || !q->server_tag) {
		if (q)
			im_query_free(q);
		free(url);
		host->log(SCALER_LOG_ERR, IM_WHO, "out of memory");
		return -1;
	}
	q->ctx = ctx;
	q->n = n;
	q->cb = cb;
	q->arg = arg;
	snprintf(q->zone, sizeof(q->zone), "%s", zone->name);
	snprintf(q->url, sizeof(q->url), "%s", ctx->set.url);
	for (i = 0; i < n; i++) {
		snprintf(q->ids[i], sizeof(q->ids[i]), "%s", servers[i].id);
		q->values[i].server_id = q->ids[i];
		q->values[i].missing = 1;
	}

	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.headers = ctx->set.auth_header ? headers : NULL;
	req.timeout = ctx->set.timeout;
	q->call = host->http_request(&req, im_on_response, q);
	free(url);
	if (!q->call) {
		host->log(SCALER_LOG_ERR, IM_WHO, "zone %s: cannot start a request to %s", q->zone,
		          ctx->set.url);
		im_query_free(q);
		return -1;
	}
	q->next = ctx->queries;
	ctx->queries = q;
	return 0;
}

/* ---- instance ---------------------------------------------------------------- */

static int im_init(const struct scaler_host *host, const config_setting_t *conf, void **ctxp)
{
	struct im_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx) {
		host->log(SCALER_LOG_ERR, IM_WHO, "out of memory");
		return -1;
	}
	ctx->host = host;
	if (im_parse(host, conf, &ctx->set) < 0) {
		im_settings_free(&ctx->set);
		free(ctx);
		return -1;
	}
	*ctxp = ctx;
	return 0;
}

/* New settings apply to the next query; one in flight finishes as asked. */
static int im_reload(void *vctx, const config_setting_t *conf)
{
	struct im_ctx *ctx = vctx;
	struct im_settings set;

	if (im_parse(ctx->host, conf, &set) < 0) {
		im_settings_free(&set);
		return -1;
	}
	im_settings_free(&ctx->set);
	ctx->set = set;
	return 0;
}

/* Queries in flight are cancelled without their callbacks. */
static void im_fini(void *vctx)
{
	struct im_ctx *ctx = vctx;

	if (!ctx)
		return;
	while (ctx->queries) {
		struct im_query *q = ctx->queries;
		ctx->queries = q->next;
		if (q->call)
			ctx->host->http_cancel(q->call);
		im_query_free(q);
	}
	im_settings_free(&ctx->set);
	free(ctx);
}

static const struct scaler_metrics_ops im_ops = {
    .size = sizeof(struct scaler_metrics_ops),
    .query = im_query,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_METRICS, "influxdb", PACKAGE_VERSION, im_init, im_reload, im_fini,
                     metrics, &im_ops);
