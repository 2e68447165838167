/* balancer_builtin: the plugin descriptor, its settings, the worker-side
 * life cycle (serve / restore / shutdown) and the controller-side pushes to
 * a zone's admin API. */
#include "config.h"

#include "bal.h"
#include "log.h"
#include "net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const bi_known[] = {"plugin",
                                       "algorithm",
                                       "health_interval",
                                       "health_timeout",
                                       "health_path",
                                       "recheck_interval",
                                       "retries",
                                       "report_interval",
                                       "max_attempts",
                                       "connect_timeout",
                                       "server_timeout",
                                       "client_timeout",
                                       "idle_timeout",
                                       "tunnel_timeout",
                                       "upstream_idle_timeout",
                                       "upstream_keepalive",
                                       "max_header_size",
                                       "max_body_size",
                                       "retry_body_size",
                                       "max_connections",
                                       "trusted_proxies",
                                       "max_servers",
                                       "max_checks",
                                       "stats_history",
                                       "hold_max",
                                       "hold_timeout",
                                       "slow_start",
                                       "eject",
                                       "access_log",
                                       "tls",
                                       NULL};

static void bi_defaults(struct bal_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->algo = BAL_ROUND_ROBIN;
	c->health_interval = 10.0;
	c->health_timeout = 2.0;
	snprintf(c->health_path, sizeof(c->health_path), "/health_check");
	c->recheck_interval = 30.0;
	c->retries = 3;
	c->report_interval = 60.0;
	c->max_attempts = 3;
	c->connect_timeout = 2.0;
	c->server_timeout = 30.0;
	c->client_timeout = 10.0;
	c->idle_timeout = 60.0;
	c->tunnel_timeout = 3600.0;
	c->upstream_idle_timeout = 30.0;
	c->upstream_keepalive = 1024;
	c->max_header_size = 16384;
	c->max_body_size = 64ull << 20;
	c->retry_body_size = 64 << 10;
	c->max_connections = 20000;
	c->max_servers = 4096;
	c->max_checks = 256;
	c->stats_history = 60;
	c->hold_max = 1024;
	c->hold_timeout = 30.0;
}

int bal_net_parse(const char *s, struct bal_net *out)
{
	char a[64];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(a))
		return -1;
	memcpy(a, s, alen);
	a[alen] = '\0';
	memset(out, 0, sizeof(*out));
	int max;
	if (inet_pton(AF_INET, a, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, a, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	out->bits = (uint8_t)max;
	if (slash) {
		char *end;
		errno = 0;
		long bits = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || bits < 0 || bits > max ||
		    !isdigit((unsigned char)slash[1]))
			return -1;
		out->bits = (uint8_t)bits;
	}
	return 0;
}

int bal_net_match(const struct bal_net *nets, int n, int family, const void *addr)
{
	const uint8_t *a = addr;
	for (int i = 0; i < n; i++) {
		const struct bal_net *x = &nets[i];
		if (x->family != family)
			continue;
		int full = x->bits / 8, rest = x->bits % 8;
		if (memcmp(x->addr, a, (size_t)full) != 0)
			continue;
		if (rest && ((x->addr[full] ^ a[full]) & (0xff00 >> rest) & 0xff))
			continue;
		return 1;
	}
	return 0;
}

static int bi_parse_trusted(const struct scaler_host *h, const config_setting_t *s,
                            struct bal_conf *c)
{
	int rc = 0;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return h->conf_error(s, "must be a list of addresses or networks (e.g. "
		                        "trusted_proxies = [\"10.0.0.0/8\", \"::1\"];)");
	int n = config_setting_length(s);
	if (n > BAL_MAX_TRUSTED)
		return h->conf_error(s, "at most %d entries (got %d)", BAL_MAX_TRUSTED, n);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		if (!v || bal_net_parse(v, &c->trusted[c->ntrusted]) < 0)
			rc |= h->conf_error(e,
			                    "must be an IPv4 or IPv6 address with an optional "
			                    "/prefix (e.g. \"10.0.0.0/8\"), not %s%s%s",
			                    v ? "\"" : "", v ? v : "a number", v ? "\"" : "");
		else
			c->ntrusted++;
	}
	return rc;
}

/* eject = { ... }: Envoy's outlier detection defaults (5, 5, 30 s, 300 s, 10 %). */
static int bi_parse_eject(const struct scaler_host *h, const config_setting_t *g,
                          struct bal_conf *c)
{
	static const char *const known[] = {"consecutive_5xx", "consecutive_failures", "base_time",
	                                    "max_time",        "max_percent",          NULL};
	long long v;
	if (!config_setting_is_group(g))
		return h->conf_error(g,
		                     "must be a group (e.g. eject = { consecutive_5xx = 5; "
		                     "consecutive_failures = 5; base_time = 30; max_percent = 10; "
		                     "};)");
	int rc = h->conf_check_known(g, known) < 0;
	rc |= h->conf_integer(g, "consecutive_5xx", 5, 0, 1000000, &v) < 0;
	c->eject_5xx = (int)v;
	rc |= h->conf_integer(g, "consecutive_failures", 5, 0, 1000000, &v) < 0;
	c->eject_failures = (int)v;
	rc |= h->conf_number(g, "base_time", 30, 0.01, 86400, &c->eject_base) < 0;
	double lo = c->eject_base > 0.01 ? c->eject_base : 0.01;
	rc |= h->conf_number(g, "max_time", lo > 300 ? lo : 300, lo, 7 * 86400, &c->eject_max) < 0;
	rc |= h->conf_integer(g, "max_percent", 10, 0, 100, &v) < 0;
	c->eject_max_percent = (int)v;
	return rc ? -1 : 0;
}

/* tls = { ... }: the group's settings are tls.c's to read. */
static int bi_parse_tls(const struct scaler_host *h, const config_setting_t *g, struct bal_conf *c)
{
	static const char *const known[] = {
	    "certificates",    "min_version",     "ciphers",           "ciphersuites",
	    "groups",          "session_tickets", "ticket_rotation",   "redirect",
	    "redirect_status", "http2",           "http2_max_streams", NULL};
	if (!config_setting_is_group(g))
		return h->conf_error(g, "must be a group (e.g. tls = { certificates = ( { cert = "
		                        "\"/etc/scaler/tls/site.pem\"; key = "
		                        "\"/etc/scaler/tls/site.key\"; } ); };)");
	if (h->conf_check_known(g, known) < 0)
		return -1;
	return tls_parse(h, g, &c->tls);
}

static int bi_parse(const struct scaler_host *h, const config_setting_t *g, struct bal_conf *c)
{
	bi_defaults(c);
	if (!g)
		return 0;
	int rc = h->conf_check_known(g, bi_known) < 0; /* and report the rest too */
	const config_setting_t *s = config_setting_get_member(g, "algorithm");
	if (s) {
		const char *v = config_setting_get_string(s);
		if (!v)
			rc |=
			    h->conf_error(s, "must be a string: \"round_robin\", \"least_conn\" or "
			                     "\"random2\"");
		else if (strcmp(v, "round_robin") == 0 || strcmp(v, "roundrobin") == 0)
			c->algo = BAL_ROUND_ROBIN;
		else if (strcmp(v, "least_conn") == 0)
			c->algo = BAL_LEAST_CONN;
		else if (strcmp(v, "random2") == 0)
			c->algo = BAL_RANDOM2;
		else
			rc |= h->conf_error(s,
			                    "unknown algorithm \"%s\" (expected \"round_robin\", "
			                    "\"least_conn\" or \"random2\")",
			                    v);
	}
	s = config_setting_get_member(g, "health_path");
	if (s) {
		const char *v = config_setting_get_string(s);
		int ok = v && v[0] == '/' && strlen(v) < sizeof(c->health_path);
		for (const char *p = v; ok && *p; p++)
			ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
		if (!ok)
			rc |= h->conf_error(s, "must be a path starting with '/' without spaces "
			                       "(e.g. health_path = \"/health_check\";)");
		else
			snprintf(c->health_path, sizeof(c->health_path), "%s", v);
	}
	rc |= h->conf_number(g, "health_interval", c->health_interval, 0.01, 86400,
	                     &c->health_interval);
	rc |= h->conf_number(g, "health_timeout", c->health_timeout, 0.01, 600, &c->health_timeout);
	rc |= h->conf_number(g, "recheck_interval", c->recheck_interval, 0.01, 86400,
	                     &c->recheck_interval);
	rc |= h->conf_number(g, "report_interval", c->report_interval, 0.01, 86400,
	                     &c->report_interval);
	rc |= h->conf_number(g, "connect_timeout", c->connect_timeout, 0.01, 600,
	                     &c->connect_timeout);
	rc |=
	    h->conf_number(g, "server_timeout", c->server_timeout, 0.01, 86400, &c->server_timeout);
	rc |=
	    h->conf_number(g, "client_timeout", c->client_timeout, 0.01, 86400, &c->client_timeout);
	rc |= h->conf_number(g, "idle_timeout", c->idle_timeout, 0.01, 86400, &c->idle_timeout);
	rc |= h->conf_number(g, "tunnel_timeout", c->tunnel_timeout, 0.01, 7 * 86400,
	                     &c->tunnel_timeout);
	rc |= h->conf_number(g, "upstream_idle_timeout", c->upstream_idle_timeout, 0.01, 86400,
	                     &c->upstream_idle_timeout);
	long long v;
	rc |= h->conf_integer(g, "retries", c->retries, 1, 1000, &v);
	c->retries = (int)v;
	rc |= h->conf_integer(g, "max_attempts", c->max_attempts, 1, 8, &v);
	c->max_attempts = (int)v;
	rc |= h->conf_integer(g, "upstream_keepalive", c->upstream_keepalive, 0, 100000, &v);
	c->upstream_keepalive = (int)v;
	rc |=
	    h->conf_integer(g, "max_header_size", (long long)c->max_header_size, 1024, 1 << 20, &v);
	c->max_header_size = (size_t)v;
	rc |= h->conf_integer(g, "max_body_size", (long long)c->max_body_size, 0, 1ll << 40, &v);
	c->max_body_size = (uint64_t)v;
	rc |= h->conf_integer(g, "retry_body_size", (long long)c->retry_body_size, 0, 64 << 20, &v);
	c->retry_body_size = (size_t)v;
	rc |= h->conf_integer(g, "max_connections", c->max_connections, 1, 10000000, &v);
	c->max_connections = (int)v;
	rc |= h->conf_integer(g, "max_servers", c->max_servers, 1, 1000000, &v);
	c->max_servers = (int)v;
	rc |= h->conf_integer(g, "max_checks", c->max_checks, 1, 100000, &v);
	c->max_checks = (int)v;
	rc |= h->conf_integer(g, "stats_history", c->stats_history, 0, 3600, &v);
	c->stats_history = (int)v;
	rc |= h->conf_integer(g, "hold_max", c->hold_max, 0, 1000000, &v);
	c->hold_max = (int)v;
	rc |= h->conf_number(g, "hold_timeout", c->hold_timeout, 0.01, 3600, &c->hold_timeout);
	s = config_setting_get_member(g, "trusted_proxies");
	if (s)
		rc |= bi_parse_trusted(h, s, c);
	rc |= h->conf_number(g, "slow_start", 0, 0, 3600, &c->slow_start);
	s = config_setting_get_member(g, "eject");
	if (s)
		rc |= bi_parse_eject(h, s, c);
	s = config_setting_get_member(g, "access_log");
	if (s)
		rc |= alog_parse_access_log(h, s, &c->alog);
	s = config_setting_get_member(g, "tls");
	if (s && !rc)
		rc |= bi_parse_tls(h, s, c); /* loads the certificates: the rest first */
	return rc ? -1 : 0;
}

static int bi_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	struct bal *b = calloc(1, sizeof(*b));
	log_forward(host->log); /* our copy of libscalerutil logs as the host does */
	if (!b) {
		host->log(SCALER_LOG_ERR, BAL_WHO, "out of memory");
		return -1;
	}
	if (bi_parse(host, conf, &b->conf) < 0) {
		alog_conf_free(b->conf.alog);
		tls_conf_free(b->conf.tls);
		free(b);
		return -1;
	}
	b->host = host;
	b->loop = host->loop;
	b->listen_fd = b->admin_fd = -1;
	b->st = &b->own_st;
	b->nworkers = 1;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	b->rnd = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
	*ctx = b;
	return 0;
}

static int bi_reload(void *ctx, const config_setting_t *conf)
{
	(void)ctx;
	(void)conf;
	return -1; /* scalerd restarts the worker of a changed zone */
}

static void bi_fini(void *ctx)
{
	struct bal *b = ctx;
	if (!b)
		return;
	report_stop(b);
	wake_stop(b);
	admin_stop(b);
	board_close(b); /* what it holds stays for the next worker */
	proxy_free(b);
	srv_free_all(b);
	outlier_stop(b);
	if (b->admin_fd >= 0)
		close(b->admin_fd);
	alog_stop(b->alog);
	alog_conf_free(b->conf.alog);
	tls_free(b->tls);
	tls_conf_free(b->conf.tls);
	free(b->monitor_url);
	free(b);
}

/* Serve the zone: on the sockets of w (scalerd holds them), else binding
 * its addresses. */
static int bi_start(struct bal *b, const struct scaler_zone *zone,
                    const struct scaler_zone_worker *w)
{
	char err[512];
	snprintf(b->zone, sizeof(b->zone), "%s", zone->name ? zone->name : "zone");
	if (!zone->listen || !zone->admin) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO,
		             "zone %s: listen and admin addresses are needed", b->zone);
		return -1;
	}
	snprintf(b->listen, sizeof(b->listen), "%s", zone->listen);
	snprintf(b->admin_addr, sizeof(b->admin_addr), "%s", zone->admin);
	b->serving = 1;
	ev_now_update(b->loop);
	b->st_t0 = ev_now(b->loop);
	if (w) {
		b->windex = w->index;
		b->nworkers = w->count;
		b->follower = w->index > 0; /* checks nothing, from the first server on */
	}
	for (const char *const *s = zone->servers; s && *s; s++)
		if (!srv_add(b, *s, 1, err, sizeof(err))) {
			b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: %s", b->zone, err);
			goto fail;
		}
	if (w) {
		/* after the static servers: they are no change to the table */
		if (w->shared_fd >= 0 && board_open(b, w, err, sizeof(err)) < 0) {
			b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: %s", b->zone, err);
			goto fail;
		}
	}
	/* after the board (the zone's ticket keys), before the first accept */
	if (b->conf.tls && !(b->tls = tls_start(b, b->conf.tls, err, sizeof(err)))) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: TLS: %s", b->zone, err);
		goto fail;
	}
	/* a handed admin socket is served once the worker accepts: what it
	 * answers is the restored set; worker 0 alone serves it */
	int r = !w             ? admin_start(b, zone->admin, err, sizeof(err))
	        : !b->follower ? admin_allowed(b, zone->admin, err, sizeof(err))
	                       : 0;
	if (w)
		b->admin_fd = w->admin_fd;
	if (r < 0) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: admin API: %s", b->zone, err);
		goto fail;
	}
	if (w) {
		proxy_adopt(b, w->listen_fd);
	} else if (proxy_listen(b, zone->listen, err, sizeof(err)) < 0) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: %s", b->zone, err);
		goto fail;
	}
	if (!b->follower)
		report_start(b);
	if (b->conf.alog && !b->alog)
		b->alog = alog_start(b, b->conf.alog); /* without it, requests go unlogged */
	b->host->log(SCALER_LOG_INFO, BAL_WHO, "zone %s: proxying %s (%d static server(s))",
	             b->zone, zone->listen, b->nalive);
	return 0;
fail:
	b->serving = 0;
	admin_stop(b);
	tls_free(b->tls);
	b->tls = NULL;
	board_close(b);
	srv_free_all(b);
	return -1;
}

static void bi_accept(struct bal *b);

static int bi_serve(void *ctx, const struct scaler_zone *zone)
{
	return bi_start(ctx, zone, NULL);
}

static int bi_serve_worker(void *ctx, const struct scaler_zone *zone,
                           const struct scaler_zone_worker *w)
{
	struct bal *b = ctx;
	if (!w || w->size < sizeof(*w) || w->listen_fd < 0) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: no listening socket handed over",
		             zone->name ? zone->name : "?");
		return -1;
	}
	if (bi_start(b, zone, w) < 0)
		return -1;
	/* what the workers before this one knew, else the state store's word */
	if (!board_restore(b))
		return 0; /* accepts once restored */
	bi_accept(b);
	return 1;
}

static int bi_connections(void *ctx)
{
	struct bal *b = ctx;
	return b->nconns;
}

static void bi_shutdown(void *ctx)
{
	struct bal *b = ctx;
	report_stop(b);
	wake_stop(b);
	srv_stop_checks(b);
	admin_stop(b);
	if (b->admin_fd >= 0) {
		close(b->admin_fd);
		b->admin_fd = -1;
	}
	tls_stop(b->tls);
	proxy_shutdown(b);
}

/* The server set is known: serve users and the admin API. */
static void bi_accept(struct bal *b)
{
	char err[512];
	proxy_accept(b);
	if (b->admin_fd >= 0 && !b->admin && !b->shutting_down) {
		int fd = b->admin_fd;
		b->admin_fd = -1; /* the admin API's now */
		if (admin_adopt(b, fd, b->admin_addr, err, sizeof(err)) < 0)
			b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: admin API: %s", b->zone,
			             err);
	}
}

static void bi_restore(void *ctx, const char *const *servers, size_t n, const char *monitor_url,
                       uint64_t epoch)
{
	struct bal *b = ctx;
	char err[512];
	for (size_t i = 0; i < n; i++)
		if (servers[i] && !srv_find(b, servers[i]) &&
		    !srv_add(b, servers[i], 1, err, sizeof(err))) {
			b->host->log(SCALER_LOG_WARNING, BAL_WHO, "zone %s: restore: %s", b->zone,
			             err);
			if (b->nservers >= b->conf.max_servers)
				break; /* the rest would say the same */
		}
	if (monitor_url && monitor_url[0] && epoch >= b->monitor_epoch) {
		free(b->monitor_url);
		b->monitor_url = strdup(monitor_url);
		b->monitor_epoch = epoch;
	}
	board_ready(b); /* worker 0: the others take this set */
	proxy_release_held(b);
	bi_accept(b);
}

/* ---- controller side ---------------------------------------------------- */

struct bi_push {
	scaler_balancer_cb cb;
	void *arg;
	char what[32];
};

static void bi_push_done(void *arg, const struct scaler_http_response *resp)
{
	struct bi_push *p = arg;
	char err[512];
	if (resp->status >= 200 && resp->status < 300) {
		p->cb(p->arg, 0, NULL);
	} else {
		if (resp->status)
			snprintf(err, sizeof(err), "%s: status %ld: %.*s", p->what, resp->status,
			         (int)(resp->body_len > 300 ? 300 : resp->body_len),
			         resp->body ? resp->body : "");
		else
			snprintf(err, sizeof(err), "%s: %s", p->what,
			         resp->error ? resp->error : "no response");
		p->cb(p->arg, -1, err);
	}
	free(p);
}

struct scaler_http_call *bal_send_json(struct bal *b, const char *method, const char *url,
                                       json_t *body, double timeout, scaler_http_cb cb, void *arg)
{
	char *auth = NULL; /* sized for the token, however long */
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (body && !text)
		return NULL;
	const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
	if (b->host->token && b->host->token[0]) {
		if (asprintf(&auth, "Authorization: Bearer %s", b->host->token) < 0) {
			free(text);
			return NULL;
		}
		headers[1] = auth;
	}
	struct scaler_http_request req = {
	    .method = method,
	    .url = url,
	    .headers = headers,
	    .body = text,
	    .body_len = text ? strlen(text) : 0,
	    .timeout = timeout,
	};
	struct scaler_http_call *call = b->host->http_request(&req, cb, arg);
	free(text);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	return call;
}

int bal_monitor_url(const struct bal *b, const char *path, char *out, size_t len)
{
	if (!b->monitor_url)
		return -1;
	size_t ml = strlen(b->monitor_url);
	if (ml && b->monitor_url[ml - 1] == '/')
		ml--;
	int n = snprintf(out, len, "%.*s%s", (int)ml, b->monitor_url, path);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* PUT a JSON body to the zone's admin API. */
static int bi_put(struct bal *b, const struct scaler_zone *zone, const char *path, json_t *body,
                  scaler_balancer_cb cb, void *arg)
{
	char url[600];
	if (!body)
		return -1;
	if (!zone || net_http_url(zone->admin, path, url, sizeof(url)) < 0) {
		b->host->log(SCALER_LOG_ERR, BAL_WHO, "zone %s: invalid admin address \"%s\"",
		             zone && zone->name ? zone->name : "?",
		             zone && zone->admin ? zone->admin : "");
		json_decref(body);
		return -1;
	}
	struct bi_push *p = calloc(1, sizeof(*p));
	if (!p) {
		json_decref(body);
		return -1;
	}
	p->cb = cb;
	p->arg = arg;
	snprintf(p->what, sizeof(p->what), "PUT %s", path);
	if (!bal_send_json(b, "PUT", url, body, 5.0, bi_push_done, p)) {
		free(p);
		return -1;
	}
	return 0;
}

static json_t *bi_url_array(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (v[i])
			json_array_append_new(a, json_string(v[i]));
	return a;
}

static int bi_push_servers(void *ctx, const struct scaler_zone *zone, const char *const *adds,
                           size_t nadds, const char *const *deletes, size_t ndeletes,
                           scaler_balancer_cb cb, void *arg)
{
	json_t *body = json_pack("{s:o, s:o}", "adds", bi_url_array(adds, nadds), "deletes",
	                         bi_url_array(deletes, ndeletes));
	return bi_put(ctx, zone, "/servers", body, cb, arg);
}

static int bi_push_monitor(void *ctx, const struct scaler_zone *zone, const char *url,
                           uint64_t epoch, scaler_balancer_cb cb, void *arg)
{
	if (!url)
		return -1;
	json_t *body = json_pack("{s:s, s:I}", "url", url, "epoch", (json_int_t)epoch);
	return bi_put(ctx, zone, "/monitor", body, cb, arg);
}

static const struct scaler_balancer_ops bi_ops = {
    .size = sizeof(struct scaler_balancer_ops),
    .serve = bi_serve,
    .shutdown = bi_shutdown,
    .restore = bi_restore,
    .push_servers = bi_push_servers,
    .push_monitor = bi_push_monitor,
    .serve_worker = bi_serve_worker,
    .connections = bi_connections,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_BALANCER, "builtin", PACKAGE_VERSION, bi_init, bi_reload, bi_fini,
                     balancer, &bi_ops);
