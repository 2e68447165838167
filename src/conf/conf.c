/* scaler.conf: libconfig parsing and validation into struct conf (the
 * helpers plugins use too are in src/lib/conf_util.c). Every error is one
 * log line "FILE:LINE: SETTING: message"; conf_load reports every error it
 * finds before giving up, so one run shows an operator everything to fix. */
#include "config.h"

#include "conf.h"
#include "conf_read.h"
#include "log.h"
#include "net.h"
#include "secret.h"
#include "token_file.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/scaler"
#endif
#ifndef LOCALPLUGINDIR
#define LOCALPLUGINDIR "/usr/local/lib/scaler"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

#define CF_ZONE_MAX_SERVERS 1000
#define CF_PORT_BASE 20000
#define CF_PORT_STRIDE 100

/* One validation run: counts errors so that every one is reported. */
struct cf {
	struct conf *c;
	int nerr;
	char base[4096]; /* the config file's directory, absolute */
};

__attribute__((format(printf, 3, 4))) static void cf_err(struct cf *x, const config_setting_t *s,
                                                         const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	x->nerr++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_error(s, "%s", msg);
}

/* A required member of `group` is absent: reported at the group's line. */
static void cf_missing(struct cf *x, const config_setting_t *group, const char *name)
{
	char path[512], text[700];
	unsigned line = config_setting_source_line(group);

	x->nerr++;
	conf_setting_path(group, path, sizeof(path));
	if (line > 0)
		snprintf(text, sizeof(text), "%s:%u: %s%s%s: required setting is missing",
		         conf_setting_file(group), line, path, path[0] ? "." : "", name);
	else
		snprintf(text, sizeof(text), "%s: %s%s%s: required setting is missing",
		         conf_setting_file(group), path, path[0] ? "." : "", name);
	conf_emit(conf_setting_file(group), line, text);
}

/* ---- typed getters: 1 read, 0 absent, -1 error (counted) --------------- */

static const config_setting_t *cf_member(const config_setting_t *group, const char *name)
{
	return group ? config_setting_get_member(group, name) : NULL;
}

static int cf_string(struct cf *x, const config_setting_t *group, const char *name,
                     const char **out, const config_setting_t **where)
{
	const config_setting_t *s = cf_member(group, name);

	if (where)
		*where = s;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cf_err(x, s, "must be a string (got %s)", conf_type_name(s));
		return -1;
	}
	*out = config_setting_get_string(s);
	return 1;
}

/* Copy a string setting's value into a fixed buffer. */
static int cf_copy(struct cf *x, const config_setting_t *s, const char *v, char *buf, size_t len)
{
	if (strlen(v) >= len) {
		cf_err(x, s, "too long (at most %zu characters)", len - 1);
		return -1;
	}
	memcpy(buf, v, strlen(v) + 1);
	return 0;
}

static int cf_bool(struct cf *x, const config_setting_t *group, const char *name, int *out)
{
	const config_setting_t *s = cf_member(group, name);

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		cf_err(x, s, "must be true or false (got %s)", conf_type_name(s));
		return -1;
	}
	*out = config_setting_get_bool(s);
	return 1;
}

static int cf_int_setting(struct cf *x, const config_setting_t *s, long long lo, long long hi,
                          int *out)
{
	long long v;

	if (conf_integer_value(conf_error, s, NULL, lo, hi, &v) < 0) {
		x->nerr++;
		return -1;
	}
	*out = (int)v;
	return 1;
}

static int cf_int(struct cf *x, const config_setting_t *group, const char *name, long long lo,
                  long long hi, int *out)
{
	const config_setting_t *s = cf_member(group, name);

	return s ? cf_int_setting(x, s, lo, hi, out) : 0;
}

static int cf_seconds(struct cf *x, const config_setting_t *group, const char *name, double min,
                      int strict, double *out)
{
	int r = conf_seconds(group, name, min, strict, out);

	if (r < 0)
		x->nerr++;
	return r;
}

/* ---- node --------------------------------------------------------------- */

static void cf_node_id(struct cf *x, const config_setting_t *node)
{
	const config_setting_t *s = cf_member(node, "id");
	struct conf *c = x->c;

	if (!s) {
		cf_missing(x, node, "id");
		return;
	}
	if (conf_is_int(s)) {
		long long v = conf_int_value(s);
		if (v < 1) {
			cf_err(x, s, "must be >= 1 (got %lld)", v);
			return;
		}
		snprintf(c->node_id, sizeof(c->node_id), "%lld", v);
		return;
	}
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);
		if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18) {
			cf_err(x, s, "must be a positive integer or a string of at most 18 digits");
			return;
		}
		unsigned long long n = strtoull(v, NULL, 10);
		if (n < 1) {
			cf_err(x, s, "must be >= 1 (got \"%s\")", v);
			return;
		}
		snprintf(c->node_id, sizeof(c->node_id), "%llu", n);
		return;
	}
	cf_err(x, s, "must be an integer >= 1 or a string of digits (got %s)", conf_type_name(s));
}

static void cf_token_file(struct cf *x, const config_setting_t *s, const char *path)
{
	struct conf *c = x->c;
	struct stat st;
	char why[4400];

	if (!*path) {
		cf_err(x, s, "must not be empty");
		return;
	}
	if (cf_copy(x, s, path, c->token_file, sizeof(c->token_file)) < 0)
		return;
	/* the secret rule: who may own and read it (src/lib/secret.c) */
	if (!(c->token = token_file_read(path, &st, why, sizeof(why))))
		cf_err(x, s, "%s", why);
}

static void cf_node(struct cf *x, const config_setting_t *root)
{
	static const char *const known[] = {"id",         "admin", "url",          "token",
	                                    "token_file", "zones", "public_reads", NULL};
	struct conf *c = x->c;
	const config_setting_t *node = cf_member(root, "node"), *s, *ts, *tfs;
	const char *v, *why;
	char host[260];
	int port;

	snprintf(c->admin_listen, sizeof(c->admin_listen), "127.0.0.1:9000");
	if (!node) {
		cf_missing(x, root, "node");
		return;
	}
	if (!config_setting_is_group(node)) {
		cf_err(x, node, "must be a group (got %s): node = { id = 1; };",
		       conf_type_name(node));
		return;
	}
	x->nerr += conf_report_unknown(node, known);
	cf_node_id(x, node);

	if (cf_string(x, node, "admin", &v, &s) > 0) {
		if (conf_hostport(v, host, sizeof(host), &port, &why) < 0)
			cf_err(x, s, "\"%s\": %s", v, why);
		else
			cf_copy(x, s, v, c->admin_listen, sizeof(c->admin_listen));
	}
	if (cf_string(x, node, "url", &v, &s) > 0) {
		if (conf_http_url(v, 1, &why) < 0)
			cf_err(x, s, "\"%s\": %s", v, why);
		else
			cf_copy(x, s, v, c->admin_url, sizeof(c->admin_url));
	} else if (!s) {
		snprintf(c->admin_url, sizeof(c->admin_url), "http://%s", c->admin_listen);
		if (conf_hostport(c->admin_listen, host, sizeof(host), &port, &why) == 0 &&
		    conf_wildcard_host(host))
			log_msg(SCALER_LOG_WARNING, NULL,
			        "%s:%u: node.url: not set and node.admin listens on every address; "
			        "other nodes are told %s, set node.url to a reachable address",
			        conf_setting_file(node), config_setting_source_line(node),
			        c->admin_url);
	}

	int has_token = cf_string(x, node, "token", &v, &ts);
	if (has_token > 0) {
		if (!conf_token_ok(v))
			cf_err(x, ts,
			       "must be non-empty visible ASCII (no spaces or control characters)");
		else if (strlen(v) > TOKEN_MAX)
			cf_err(x, ts, "is longer than %d bytes", TOKEN_MAX);
		else if (!(c->token = strdup(v)))
			cf_err(x, ts, "out of memory");
	}
	const char *tf;
	int has_file = cf_string(x, node, "token_file", &tf, &tfs);
	if (ts && tfs)
		cf_err(x, tfs, "node.token and node.token_file are both set; keep one");
	else if (has_file > 0)
		cf_token_file(x, tfs, tf);

	cf_bool(x, node, "public_reads", &c->public_reads);

	s = cf_member(node, "zones");
	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
		    config_setting_type(s) != CONFIG_TYPE_LIST) {
			cf_err(x, s, "must be a list of zone names (got %s): zones = [\"zone1\"];",
			       conf_type_name(s));
			return;
		}
		int n = config_setting_length(s);
		c->zones_hosted = calloc((size_t)n + 1, sizeof(char *));
		if (!c->zones_hosted) {
			cf_err(x, s, "out of memory");
			return;
		}
		for (int i = 0, k = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				cf_err(x, e, "must be a string (got %s)", conf_type_name(e));
				continue;
			}
			if (!(c->zones_hosted[k++] = strdup(config_setting_get_string(e))))
				cf_err(x, e, "out of memory");
		}
	}
}

/* ---- plugins ------------------------------------------------------------ */

/* Validate `plugin = "name";` of a plugin group; 1 read, 0 absent, -1 error. */
static int cf_plugin_name(struct cf *x, const config_setting_t *group, char *out)
{
	const config_setting_t *s;
	const char *v;
	int r = cf_string(x, group, "plugin", &v, &s);

	if (r <= 0)
		return r;
	if (!conf_charset(v, "_-", 0) || strlen(v) >= CONF_NAME_MAX) {
		cf_err(x, s, "\"%s\": plugin names are 1 to %d characters of a-z, 0-9, '_', '-'", v,
		       CONF_NAME_MAX - 1);
		return -1;
	}
	memcpy(out, v, strlen(v) + 1);
	return 1;
}

static void cf_plugin(struct cf *x, const config_setting_t *root, const char *kind, const char *def,
                      struct conf_plugin *p)
{
	const config_setting_t *g = cf_member(root, kind);

	snprintf(p->name, sizeof(p->name), "%s", def);
	p->group = NULL;
	if (!g)
		return;
	if (!config_setting_is_group(g)) {
		cf_err(x, g, "must be a group (got %s): %s = { plugin = \"%s\"; };",
		       conf_type_name(g), kind, def);
		return;
	}
	p->group = g;
	if (cf_plugin_name(x, g, p->name) == 0)
		cf_missing(x, g, "plugin");
}

/* A zone's optional `policy` / `balancer` group: plugin may be omitted. */
static void cf_zone_plugin(struct cf *x, const config_setting_t *zg, const char *kind,
                           const struct conf_plugin *global, const config_setting_t **zone_group,
                           char *eff_name, const config_setting_t **eff_group)
{
	const config_setting_t *g = cf_member(zg, kind);

	snprintf(eff_name, CONF_NAME_MAX, "%s", global->name);
	*eff_group = global->group;
	*zone_group = NULL;
	if (!g)
		return;
	if (!config_setting_is_group(g)) {
		cf_err(x, g, "must be a group (got %s)", conf_type_name(g));
		return;
	}
	*zone_group = g;
	*eff_group = g;
	cf_plugin_name(x, g, eff_name);
}

/* ---- metrics ------------------------------------------------------------ */

/* `metrics`: one plugin's group (it names its plugin, or holds no group),
 * or a group of named groups, one per metric. A zone's own group may omit
 * `plugin` (then the global metric's plugin, when there is one). */
static void cf_metrics_group(struct cf *x, const config_setting_t *g, const char *inherit,
                             struct conf_metric *out, size_t *n)
{
	int len = config_setting_length(g), nsub = 0;
	*n = 0;
	for (int i = 0; i < len; i++)
		nsub += config_setting_is_group(config_setting_get_elem(g, (unsigned)i));
	if (cf_member(g, "plugin") || nsub == 0) {
		struct conf_metric *m = &out[0];
		snprintf(m->plugin.name, sizeof(m->plugin.name), "%s", inherit ? inherit : "");
		m->plugin.group = g;
		int r = cf_plugin_name(x, g, m->plugin.name);
		if (r == 0 && !inherit)
			cf_missing(x, g, "plugin");
		snprintf(m->name, sizeof(m->name), "%s", m->plugin.name);
		*n = 1;
		return;
	}
	if (nsub != len) {
		cf_err(x, g,
		       "either one metric's settings (metrics = { plugin = \"http\"; };) or named "
		       "metrics, each a group (metrics = { cpu = { plugin = \"http\"; }; requests "
		       "= { plugin = \"balancer\"; }; };), not both");
		return;
	}
	if (len > CONF_METRICS_MAX) {
		cf_err(x, g, "at most %d metrics (got %d)", CONF_METRICS_MAX, len);
		return;
	}
	for (int i = 0; i < len; i++) {
		const config_setting_t *mg = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(mg);
		struct conf_metric *m = &out[*n];
		if (!name || !conf_charset(name, "_-", 0) || strlen(name) >= sizeof(m->name)) {
			cf_err(x, mg, "metric names are 1 to %d characters of a-z, 0-9, '_', '-'",
			       CONF_NAME_MAX - 1);
			continue;
		}
		snprintf(m->name, sizeof(m->name), "%s", name);
		m->plugin.name[0] = '\0';
		m->plugin.group = mg;
		if (cf_plugin_name(x, mg, m->plugin.name) == 0)
			cf_missing(x, mg, "plugin");
		(*n)++;
	}
}

static void cf_metrics(struct cf *x, const config_setting_t *root, const char *def)
{
	struct conf *c = x->c;
	const config_setting_t *g = cf_member(root, "metrics");
	if (!g) {
		snprintf(c->metrics[0].name, sizeof(c->metrics[0].name), "%s", def);
		snprintf(c->metrics[0].plugin.name, sizeof(c->metrics[0].plugin.name), "%s", def);
		c->metrics[0].plugin.group = NULL;
		c->nmetrics = 1;
		return;
	}
	if (!config_setting_is_group(g)) {
		cf_err(x, g, "must be a group (got %s): metrics = { plugin = \"http\"; };",
		       conf_type_name(g));
		return;
	}
	cf_metrics_group(x, g, NULL, c->metrics, &c->nmetrics);
}

static const struct conf_metric *cf_metric_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nmetrics; i++)
		if (strcmp(c->metrics[i].name, name) == 0)
			return &c->metrics[i];
	return NULL;
}

/* A zone's `metrics`: its own group, or the names of global metrics
 * ("requests" or ["cpu", "requests"]); absent: every global metric. */
static void cf_zone_metrics(struct cf *x, struct conf_zone *z, const config_setting_t *zg)
{
	const struct conf *c = x->c;
	const config_setting_t *g = cf_member(zg, "metrics");
	z->metrics = g;
	z->nmetrics = 0;
	if (!g) {
		memcpy(z->metrics_list, c->metrics, c->nmetrics * sizeof(c->metrics[0]));
		z->nmetrics = c->nmetrics;
		return;
	}
	if (config_setting_is_group(g)) {
		cf_metrics_group(x, g, c->nmetrics == 1 ? c->metrics[0].plugin.name : NULL,
		                 z->metrics_list, &z->nmetrics);
		return;
	}
	int scalar = config_setting_type(g) == CONFIG_TYPE_STRING;
	if (!scalar && !config_setting_is_array(g) && !config_setting_is_list(g)) {
		cf_err(x, g,
		       "must be a group of metrics, or the names of global ones (metrics = "
		       "\"requests\"; or metrics = [\"cpu\", \"requests\"];), not %s",
		       conf_type_name(g));
		return;
	}
	int len = scalar ? 1 : config_setting_length(g);
	if (len < 1 || len > CONF_METRICS_MAX) {
		cf_err(x, g, "names 1 to %d metrics (got %d)", CONF_METRICS_MAX, len);
		return;
	}
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = scalar ? g : config_setting_get_elem(g, (unsigned)i);
		const char *v = config_setting_get_string(e);
		const struct conf_metric *m = v ? cf_metric_find(c, v) : NULL;
		if (!v) {
			cf_err(x, e, "must be a metric's name (got %s)", conf_type_name(e));
			continue;
		}
		if (!m) {
			char names[512] = "";
			for (size_t k = 0; k < c->nmetrics; k++)
				snprintf(names + strlen(names), sizeof(names) - strlen(names),
				         "%s\"%s\"", k ? ", " : "", c->metrics[k].name);
			cf_err(x, e, "no metric \"%s\" among the global metrics (%s)", v, names);
			continue;
		}
		int dup = 0;
		for (size_t k = 0; k < z->nmetrics; k++)
			dup |= strcmp(z->metrics_list[k].name, v) == 0;
		if (dup) {
			cf_err(x, e, "\"%s\" is named twice", v);
			continue;
		}
		z->metrics_list[z->nmetrics++] = *m;
	}
}

/* ---- zones -------------------------------------------------------------- */

static void cf_zone_servers(struct cf *x, struct conf_zone *z, const config_setting_t *s)
{
	const char *why;

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST) {
		cf_err(x, s,
		       "must be a list of URLs (got %s): servers = [\"http://127.0.0.1:9001\"];",
		       conf_type_name(s));
		return;
	}
	int n = config_setting_length(s);
	if (n > CF_ZONE_MAX_SERVERS) {
		cf_err(x, s, "at most %d static servers", CF_ZONE_MAX_SERVERS);
		return;
	}
	z->servers = calloc((size_t)n + 1, sizeof(char *));
	if (!z->servers) {
		cf_err(x, s, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cf_err(x, e, "must be a string (got %s)", conf_type_name(e));
			continue;
		}
		const char *v = config_setting_get_string(e);
		if (conf_http_url(v, 0, &why) < 0) {
			cf_err(x, e, "\"%s\": %s", v, why);
			continue;
		}
		size_t k;
		for (k = 0; k < z->nservers; k++)
			if (strcmp(z->servers[k], v) == 0)
				break;
		if (k < z->nservers) {
			cf_err(x, e, "\"%s\" is listed twice", v);
			continue;
		}
		if (!(z->servers[z->nservers] = strdup(v))) {
			cf_err(x, e, "out of memory");
			continue;
		}
		z->nservers++;
	}
}

static void cf_zone_ports(struct cf *x, struct conf_zone *z, const config_setting_t *zg)
{
	const config_setting_t *s = cf_member(zg, "ports");
	int lo, hi;

	if (!s) {
		long base = CF_PORT_BASE + CF_PORT_STRIDE * (long)z->index;
		if (base + CF_PORT_STRIDE - 1 > 65535) {
			cf_missing(x, zg, "ports");
			return;
		}
		z->port_min = (int)base;
		z->port_max = (int)base + CF_PORT_STRIDE - 1;
		return;
	}
	if ((config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	     config_setting_type(s) != CONFIG_TYPE_LIST) ||
	    config_setting_length(s) != 2) {
		cf_err(x, s, "must be [low, high] (two port numbers)");
		return;
	}
	if (cf_int_setting(x, config_setting_get_elem(s, 0), 1, 65535, &lo) < 0 ||
	    cf_int_setting(x, config_setting_get_elem(s, 1), 1, 65535, &hi) < 0)
		return;
	if (lo > hi) {
		cf_err(x, s, "low port must be <= high port (%d > %d)", lo, hi);
		return;
	}
	z->port_min = lo;
	z->port_max = hi;
}

/* workers = N (1 to CONF_WORKERS_MAX) or "auto" (one per core). */
static void cf_zone_workers(struct cf *x, struct conf_zone *z, const config_setting_t *zg)
{
	const config_setting_t *s = cf_member(zg, "workers");
	z->workers = 1;
	if (!s)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (strcmp(config_setting_get_string(s), "auto") != 0) {
			cf_err(x, s, "must be a number of processes or \"auto\" (got \"%s\")",
			       config_setting_get_string(s));
			return;
		}
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		z->workers = n < 1 ? 1 : n > CONF_WORKERS_MAX ? CONF_WORKERS_MAX : (int)n;
		return;
	}
	cf_int_setting(x, s, 1, CONF_WORKERS_MAX, &z->workers);
}

static void cf_zone(struct cf *x, struct conf_zone *z, const config_setting_t *zg)
{
	static const char *const known[] = {
	    "name",     "listen",   "admin",        "min",           "max",     "ports",
	    "interval", "window",   "cooldown_up",  "cooldown_down", "dry_run", "servers",
	    "policy",   "balancer", "idle_timeout", "metrics",       "workers", NULL};
	struct conf *c = x->c;
	const config_setting_t *s, *smin, *smax;
	const char *v, *why;
	char host[260];
	int port;

	z->group = zg;
	z->line = (int)config_setting_source_line(zg);
	z->min = 1;
	z->max = 10;
	z->interval = c->interval;
	z->window = c->window;
	z->cooldown_up = c->cooldown_up;
	z->cooldown_down = c->cooldown_down;
	z->idle_timeout = c->idle_timeout;
	z->dry_run = c->dry_run;
	snprintf(z->policy_plugin, sizeof(z->policy_plugin), "%s", c->policy.name);
	snprintf(z->balancer_plugin, sizeof(z->balancer_plugin), "%s", c->balancer.name);

	if (!config_setting_is_group(zg)) {
		cf_err(x, zg, "must be a group (got %s): { name = \"zone1\"; listen = ...; }",
		       conf_type_name(zg));
		return;
	}
	x->nerr += conf_report_unknown(zg, known);

	int r = cf_string(x, zg, "name", &v, &s);
	if (r == 0)
		cf_missing(x, zg, "name");
	else if (r > 0) {
		/* names end up in file and container names: no "..", no hidden files */
		if (!conf_charset(v, "_.-", 1) || strlen(v) >= sizeof(z->name) ||
		    !isalnum((unsigned char)v[0]))
			cf_err(x, s,
			       "\"%s\": zone names are 1 to %zu characters of A-Z, a-z, 0-9, '_', "
			       "'.', '-', starting with a letter or a digit",
			       v, sizeof(z->name) - 1);
		else
			memcpy(z->name, v, strlen(v) + 1);
	}

	static const char *const addrs[] = {"listen", "admin"};
	for (int i = 0; i < 2; i++) {
		char *dst = i == 0 ? z->listen : z->admin;
		r = cf_string(x, zg, addrs[i], &v, &s);
		if (r == 0)
			cf_missing(x, zg, addrs[i]);
		else if (r > 0) {
			if (conf_hostport(v, host, sizeof(host), &port, &why) < 0)
				cf_err(x, s, "\"%s\": %s", v, why);
			else
				cf_copy(x, s, v, dst, sizeof(z->listen));
		}
	}

	smin = cf_member(zg, "min");
	smax = cf_member(zg, "max");
	int okmin = cf_int(x, zg, "min", 0, 1000, &z->min) >= 0;
	int okmax = cf_int(x, zg, "max", 0, 1000, &z->max) >= 0;
	if (okmin && okmax && z->min > z->max) {
		if (smax)
			cf_err(x, smax, "must be >= min (%d < %d)", z->max, z->min);
		else
			cf_err(x, smin, "must be <= max (%d > %d, the default max)", z->min,
			       z->max);
	}

	cf_zone_ports(x, z, zg);
	cf_zone_workers(x, z, zg);
	cf_seconds(x, zg, "interval", 0.2, 0, &z->interval);
	cf_seconds(x, zg, "window", 0, 1, &z->window);
	cf_seconds(x, zg, "cooldown_up", 0, 0, &z->cooldown_up);
	cf_seconds(x, zg, "cooldown_down", 0, 0, &z->cooldown_down);
	cf_seconds(x, zg, "idle_timeout", 0, 0, &z->idle_timeout);
	cf_bool(x, zg, "dry_run", &z->dry_run);

	if ((s = cf_member(zg, "servers")))
		cf_zone_servers(x, z, s);
	if (!z->servers && !(z->servers = calloc(1, sizeof(char *))))
		cf_err(x, zg, "out of memory");

	cf_zone_plugin(x, zg, "policy", &c->policy, &z->policy, z->policy_plugin, &z->policy_conf);
	cf_zone_metrics(x, z, zg);
	cf_zone_plugin(x, zg, "balancer", &c->balancer, &z->balancer, z->balancer_plugin,
	               &z->balancer_conf);
}

/* The setting to blame for a zone's value: the member, else the zone. */
static const config_setting_t *cf_blame(const struct conf_zone *z, const char *name)
{
	const config_setting_t *s = cf_member(z->group, name);

	return s ? s : z->group;
}

struct cf_addr {
	const char *value;
	const config_setting_t *where; /* to blame */
	char what[128];                /* "zones.[0].listen" */
	char host[260];
	int port;
};

/* A host as an address: numeric forms in their canonical spelling
 * (127.000.000.001, [0:0::1]), names lower-case. */
static void cf_host_canon(const char *h, char *out, size_t len)
{
	unsigned char a[16];

	if ((inet_pton(AF_INET, h, a) == 1 && inet_ntop(AF_INET, a, out, (socklen_t)len)) ||
	    (inet_pton(AF_INET6, h, a) == 1 && inet_ntop(AF_INET6, a, out, (socklen_t)len)))
		return;
	snprintf(out, len, "%s", h);
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static int cf_addr_conflict(const struct cf_addr *a, const struct cf_addr *b)
{
	char ha[INET6_ADDRSTRLEN + 260], hb[INET6_ADDRSTRLEN + 260];

	if (a->port != b->port)
		return 0;
	if (conf_wildcard_host(a->host) || conf_wildcard_host(b->host))
		return 1;
	cf_host_canon(a->host, ha, sizeof(ha));
	cf_host_canon(b->host, hb, sizeof(hb));
	if (strcmp(ha, hb) == 0)
		return 1;
	/* localhost is the loopback address it resolves to */
	if (strcmp(ha, "localhost") == 0)
		return strcmp(hb, "127.0.0.1") == 0 || strcmp(hb, "::1") == 0;
	if (strcmp(hb, "localhost") == 0)
		return strcmp(ha, "127.0.0.1") == 0 || strcmp(ha, "::1") == 0;
	return 0;
}

/* Listen and admin addresses of scalerd and every zone must differ. */
static void cf_check_addresses(struct cf *x, const config_setting_t *root)
{
	struct conf *c = x->c;
	struct cf_addr *a = calloc(2 * c->nzones + 1, sizeof(*a));
	const config_setting_t *node = cf_member(root, "node");
	const char *why;
	size_t n = 0;

	if (!a) {
		cf_err(x, root, "out of memory");
		return;
	}
	const config_setting_t *na = cf_member(node, "admin");
	a[n].value = c->admin_listen;
	a[n].where = na ? na : node ? node : root;
	snprintf(a[n].what, sizeof(a[n].what), "node.admin%s", na ? "" : " (default)");
	n++;
	for (size_t i = 0; i < c->nzones; i++) {
		const struct conf_zone *z = &c->zones[i];
		for (int k = 0; k < 2; k++) {
			const char *field = k ? "admin" : "listen";
			const char *v = k ? z->admin : z->listen;
			if (!*v)
				continue;
			a[n].value = v;
			a[n].where = cf_blame(z, field);
			snprintf(a[n].what, sizeof(a[n].what), "zones.[%zu].%s", i, field);
			n++;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (conf_hostport(a[i].value, a[i].host, sizeof(a[i].host), &a[i].port, &why) < 0)
			a[i].port = -1;
	for (size_t j = 1; j < n; j++) {
		if (a[j].port < 0)
			continue;
		for (size_t i = 0; i < j; i++) {
			if (a[i].port < 0 || !cf_addr_conflict(&a[i], &a[j]))
				continue;
			cf_err(x, a[j].where, "\"%s\" is already used by %s (\"%s\", line %u)",
			       a[j].value, a[i].what, a[i].value,
			       config_setting_source_line(a[i].where));
			break;
		}
	}
	free(a);
}

static void cf_zones(struct cf *x, const config_setting_t *root)
{
	struct conf *c = x->c;
	const config_setting_t *zl = cf_member(root, "zones");

	if (!zl)
		return;
	if (config_setting_type(zl) == CONFIG_TYPE_ARRAY && config_setting_length(zl) == 0)
		return; /* zones = []; */
	if (config_setting_type(zl) != CONFIG_TYPE_LIST) {
		cf_err(x, zl,
		       "must be a list of groups (got %s): zones = ( { name = \"zone1\"; ... } );",
		       conf_type_name(zl));
		return;
	}
	size_t n = (size_t)config_setting_length(zl);
	if (n == 0)
		return;
	c->zones = calloc(n, sizeof(*c->zones));
	if (!c->zones) {
		cf_err(x, zl, "out of memory");
		return;
	}
	c->nzones = n;
	for (size_t i = 0; i < n; i++) {
		c->zones[i].index = i;
		cf_zone(x, &c->zones[i], config_setting_get_elem(zl, (unsigned)i));
	}

	for (size_t j = 1; j < n; j++) {
		const struct conf_zone *b = &c->zones[j];
		if (!b->name[0])
			continue;
		for (size_t i = 0; i < j; i++) {
			if (strcmp(c->zones[i].name, b->name) == 0) {
				cf_err(x, cf_blame(b, "name"),
				       "duplicate zone name \"%s\" (first used by zones.[%zu], "
				       "line %d)",
				       b->name, i, c->zones[i].line);
				break;
			}
		}
	}
	for (size_t j = 1; j < n; j++) {
		const struct conf_zone *b = &c->zones[j];
		if (!b->port_min)
			continue;
		for (size_t i = 0; i < j; i++) {
			const struct conf_zone *a = &c->zones[i];
			if (!a->port_min || a->port_max < b->port_min || b->port_max < a->port_min)
				continue;
			cf_err(x, cf_blame(b, "ports"),
			       "port range %d-%d overlaps zones.[%zu] (\"%s\", %d-%d%s); each zone "
			       "needs its own range",
			       b->port_min, b->port_max, i, a->name, a->port_min, a->port_max,
			       cf_member(a->group, "ports") ? "" : ", its default");
			break;
		}
	}

	for (size_t i = 0; i < n; i++) {
		struct conf_zone *z = &c->zones[i];
		z->pub.name = z->name;
		z->pub.listen = z->listen;
		z->pub.admin = z->admin;
		z->pub.min = z->min;
		z->pub.max = z->max;
		z->pub.port_min = z->port_min;
		z->pub.port_max = z->port_max;
		z->pub.servers = (const char *const *)z->servers;
		z->pub.conf = z->group;
	}
}

static void cf_check_hosted(struct cf *x, const config_setting_t *root)
{
	const struct conf *c = x->c;
	const config_setting_t *s = cf_member(cf_member(root, "node"), "zones");

	if (!c->zones_hosted || !s)
		return;
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			continue;
		const char *name = config_setting_get_string(e);
		if (!conf_zone_find(c, name))
			cf_err(x, e, "no zone named \"%s\" in zones", name);
		for (int k = 0; k < i; k++) {
			const config_setting_t *p = config_setting_get_elem(s, (unsigned)k);
			if (config_setting_type(p) == CONFIG_TYPE_STRING &&
			    strcmp(config_setting_get_string(p), name) == 0) {
				cf_err(x, e, "\"%s\" is listed twice", name);
				break;
			}
		}
	}
}

/* ---- the whole file ----------------------------------------------------- */

/* Add one directory to the plugin search path, relative to the config
 * file's directory when it is not absolute. */
static void cf_plugin_dir_add(struct cf *x, const config_setting_t *s, const char *dir, size_t n)
{
	struct conf *c = x->c;
	size_t off = strlen(c->plugin_dir);
	int w;

	if (n == 0) {
		cf_err(x, s, "an empty directory in the plugin search path");
		return;
	}
	w = snprintf(c->plugin_dir + off, sizeof(c->plugin_dir) - off, "%s%s%s%.*s", off ? ":" : "",
	             dir[0] == '/' ? "" : x->base, dir[0] == '/' ? "" : "/", (int)n, dir);
	if (w < 0 || (size_t)w >= sizeof(c->plugin_dir) - off) {
		c->plugin_dir[off] = '\0';
		cf_err(x, s, "the plugin search path is too long");
	}
}

/* plugin_dir: one directory, several separated by ':' or a list of them:
 * the plugin search path, first match wins (local plugins before packaged
 * ones). Unset: $SCALER_PLUGIN_DIR, else the local then the packaged
 * plugin directory. */
static void cf_plugin_dir(struct cf *x, const config_setting_t *root)
{
	struct conf *c = x->c;
	const config_setting_t *s = config_setting_get_member(root, "plugin_dir");
	const char *env = getenv("SCALER_PLUGIN_DIR");

	if (!s) {
		if (env && *env)
			snprintf(c->plugin_dir, sizeof(c->plugin_dir), "%s", env);
		else if (strcmp(LOCALPLUGINDIR, PLUGINDIR) == 0)
			snprintf(c->plugin_dir, sizeof(c->plugin_dir), "%s", PLUGINDIR);
		else
			snprintf(c->plugin_dir, sizeof(c->plugin_dir), "%s:%s", LOCALPLUGINDIR,
			         PLUGINDIR);
		return;
	}
	c->plugin_dir[0] = '\0';
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);
		if (!*v) {
			cf_err(x, s, "must not be empty");
			return;
		}
		for (size_t n; *v; v += n + (v[n] == ':')) {
			n = strcspn(v, ":");
			cf_plugin_dir_add(x, s, v, n);
		}
		return;
	}
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST) {
		cf_err(x, s, "must be a directory or a list of them (got %s)", conf_type_name(s));
		return;
	}
	if (config_setting_length(s) == 0)
		cf_err(x, s, "must name at least one directory");
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		if (!v)
			cf_err(x, e, "must be a string (got %s)", conf_type_name(e));
		else if (strchr(v, ':'))
			cf_err(x, e, "\"%s\": a directory of the list cannot contain ':'", v);
		else
			cf_plugin_dir_add(x, e, v, strlen(v));
	}
}

static void cf_root(struct cf *x, const config_setting_t *root)
{
	static const char *const known[] = {"node",
	                                    "cluster",
	                                    "redis",
	                                    "plugin_dir",
	                                    "state_dir",
	                                    "log",
	                                    "interval",
	                                    "window",
	                                    "cooldown_up",
	                                    "cooldown_down",
	                                    "drain_timeout",
	                                    "dry_run",
	                                    "stop_timeout",
	                                    "driver",
	                                    "metrics",
	                                    "policy",
	                                    "election",
	                                    "balancer",
	                                    "zones",
	                                    "idle_timeout",
	                                    "reconcile_interval",
	                                    NULL};
	static const char *const log_known[] = {"level", "syslog", NULL};
	struct conf *c = x->c;
	const config_setting_t *s;
	const char *v, *why;

	snprintf(c->cluster, sizeof(c->cluster), "scaler");
	snprintf(c->redis_url, sizeof(c->redis_url), "redis://127.0.0.1:6379/0");
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", LOCALSTATEDIR "/lib/scaler");
	snprintf(c->log_level, sizeof(c->log_level), "info");
	c->interval = 10.0;
	c->window = 10.0;
	c->drain_timeout = 10.0;
	c->stop_timeout = 10.0;
	c->idle_timeout = 30.0;
	c->reconcile_interval = 60.0;

	x->nerr += conf_report_unknown(root, known);
	cf_node(x, root);

	if (cf_string(x, root, "cluster", &v, &s) > 0) {
		if (!conf_charset(v, "_-", 0) || strlen(v) >= sizeof(c->cluster))
			cf_err(
			    x, s,
			    "\"%s\": cluster names are 1 to %zu characters of a-z, 0-9, '_', '-'",
			    v, sizeof(c->cluster) - 1);
		else
			memcpy(c->cluster, v, strlen(v) + 1);
	}
	if (cf_string(x, root, "redis", &v, &s) > 0) {
		/* the URL may carry a password: never echo it */
		if (conf_redis_url(v, &why) < 0)
			cf_err(x, s, "%s", why);
		else
			cf_copy(x, s, v, c->redis_url, sizeof(c->redis_url));
	}
	cf_plugin_dir(x, root);
	if (cf_string(x, root, "state_dir", &v, &s) > 0) {
		if (!*v)
			cf_err(x, s, "must not be empty");
		else
			cf_copy(x, s, v, c->state_dir, sizeof(c->state_dir));
	}

	const config_setting_t *lg = cf_member(root, "log");
	if (lg && !config_setting_is_group(lg))
		cf_err(x, lg, "must be a group (got %s): log = { level = \"info\"; };",
		       conf_type_name(lg));
	else if (lg) {
		x->nerr += conf_report_unknown(lg, log_known);
		if (cf_string(x, lg, "level", &v, &s) > 0) {
			if (log_level_parse(v) < 0)
				cf_err(x, s,
				       "\"%s\": must be one of err, warning, notice, info, debug",
				       v);
			else
				cf_copy(x, s, v, c->log_level, sizeof(c->log_level));
		}
		cf_bool(x, lg, "syslog", &c->log_syslog);
	}

	cf_seconds(x, root, "interval", 0.2, 0, &c->interval);
	cf_seconds(x, root, "window", 0, 1, &c->window);
	cf_seconds(x, root, "cooldown_up", 0, 0, &c->cooldown_up);
	cf_seconds(x, root, "cooldown_down", 0, 0, &c->cooldown_down);
	cf_seconds(x, root, "idle_timeout", 0, 0, &c->idle_timeout);
	cf_seconds(x, root, "drain_timeout", 0, 0, &c->drain_timeout);
	cf_seconds(x, root, "stop_timeout", 0, 0, &c->stop_timeout);
	double every = c->reconcile_interval;
	if (cf_seconds(x, root, "reconcile_interval", 0, 0, &every) > 0) {
		const config_setting_t *ri = cf_member(root, "reconcile_interval");
		if (every != 0 && (every < 1 || every > 86400))
			cf_err(x, ri, "must be 0 (off) or 1 to 86400 seconds (got %g)", every);
		else
			c->reconcile_interval = every;
	}
	cf_bool(x, root, "dry_run", &c->dry_run);

	cf_plugin(x, root, "driver", "process", &c->driver);
	cf_metrics(x, root, "http");
	cf_plugin(x, root, "policy", "threshold", &c->policy);
	cf_plugin(x, root, "election", "single", &c->election);
	cf_plugin(x, root, "balancer", "builtin", &c->balancer);

	cf_zones(x, root);
	cf_check_hosted(x, root);
	cf_check_addresses(x, root);
}

/* ---- what the text says and libconfig does not --------------------------- */

static const config_setting_t *cf_note_setting(const config_setting_t *s,
                                               const struct conf_note *nt)
{
	int type = config_setting_type(s);
	int want = nt->kind == CONF_NOTE_NUL ? type == CONFIG_TYPE_STRING
	                                     : type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
	const char *file = config_setting_source_file(s);

	const char *name = config_setting_name(s);
	const config_setting_t *parent = config_setting_parent(s);
	int index = -1;
	if (!name && parent) {
		name = config_setting_name(parent); /* an element: its array's name and place */
		index = config_setting_index(s);
	}
	if (want && config_setting_source_line(s) == nt->line && file &&
	    strcmp(file, nt->file) == 0 &&
	    (!nt->name[0] || (name && strcmp(name, nt->name) == 0 && index == nt->index)))
		return s;
	if (config_setting_is_aggregate(s))
		for (int i = 0; i < config_setting_length(s); i++) {
			const config_setting_t *f =
			    cf_note_setting(config_setting_get_elem(s, (unsigned)i), nt);
			if (f)
				return f;
		}
	return NULL;
}

/* A string that held \x00 (libconfig cuts or skips the NUL) and an integer
 * too large for 64 bits (libconfig reads -1 or the largest value). */
static void cf_notes(struct cf *x, const config_setting_t *root, const struct conf_text *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct conf_note *nt = &t->notes[i];
		const config_setting_t *s = cf_note_setting(root, nt);
		char text[700];
		if (nt->kind == CONF_NOTE_NUL && s)
			cf_err(x, s, "holds \\x00 (a NUL character), which no setting takes");
		else if (s)
			cf_err(x, s,
			       "%s is out of range: an integer is at most 2147483647, or "
			       "9223372036854775807 written with an L",
			       nt->text);
		else {
			x->nerr++;
			snprintf(
			    text, sizeof(text), "%s:%u: %s", nt->file, nt->line,
			    nt->kind == CONF_NOTE_NUL
			        ? "a string holds \\x00 (a NUL character), which no setting takes"
			        : "a number does not fit in a 64-bit integer");
			conf_emit(nt->file, nt->line, text);
		}
	}
}

/* A file that holds a secret inline (setting `s`) is a secret itself: the
 * top file, or the @included one the secret is written in. */
static void cf_check_inline(struct cf *x, const config_setting_t *s, const struct conf_text *t,
                            const char *what, const char *instead)
{
	const char *file = config_setting_source_file(s);
	const struct stat *st = &t->st;
	const char *path = x->c->path;
	char why[1024];

	if (file && file != x->c->path) { /* the top file's settings are named by c->path */
		const struct conf_included *inc = conf_included_find(t, file);
		if (!inc) { /* every file libconfig read was read here first */
			cf_err(x, s, "%s is inline, and %s was not read as a file", what, file);
			return;
		}
		st = &inc->st;
		path = inc->path;
	}
	if (secret_check(st, path, "configuration file", why, sizeof(why)) < 0)
		cf_err(x, s, "%s is inline, so %s%s%s%s", what, why, instead ? " (or " : "",
		       instead ? instead : "", instead ? ")" : "");
}

/* redis://:password@host...: the URL holds a secret */
static int cf_url_has_password(const char *url)
{
	if (strncmp(url, "redis://", 8) != 0)
		return 0;
	url += 8;
	const char *at = strchr(url, '@'), *slash = strchr(url, '/');
	return at && (!slash || at < slash);
}

static void cf_check_secret(struct cf *x, const config_setting_t *root, const struct conf_text *t)
{
	const config_setting_t *ts = cf_member(cf_member(root, "node"), "token");
	const config_setting_t *rs = cf_member(root, "redis");

	if (ts && x->c->token)
		cf_check_inline(x, ts, t, "the token", "move it to a token_file");
	if (rs && config_setting_get_string(rs) &&
	    cf_url_has_password(config_setting_get_string(rs)))
		cf_check_inline(x, rs, t, "the Redis password", NULL);
}

/* What scalerd and its balancer workers refuse at start, -t refuses too:
 * an admin API that others can reach, without a token. */
static void cf_check_exposure(struct cf *x, const config_setting_t *root)
{
	const struct conf *c = x->c;
	const config_setting_t *node = cf_member(root, "node");

	if (c->token)
		return;
	if (!net_addr_is_loopback(c->admin_listen))
		cf_err(x,
		       cf_member(node, "admin") ? cf_member(node, "admin")
		       : node                   ? node
		                                : root,
		       "\"%s\" is not a loopback address and no token is configured; set "
		       "node.token or node.token_file, or listen on 127.0.0.1",
		       c->admin_listen);
	for (size_t i = 0; i < c->nzones; i++) {
		const struct conf_zone *z = &c->zones[i];
		if (z->admin[0] && conf_hosts_zone(c, z->name) && !net_addr_is_loopback(z->admin))
			cf_err(x, cf_blame(z, "admin"),
			       "\"%s\" is not a loopback address and no token is configured; set "
			       "node.token or node.token_file, or listen on 127.0.0.1",
			       z->admin);
	}
}

static size_t cf_alive; /* configs loaded and not freed: what reloads leave behind */

struct conf *conf_load(const char *path)
{
	struct conf *c;
	struct cf x = {0};
	struct conf_text t = {0};

	if (!path || !*path) {
		log_msg(SCALER_LOG_ERR, NULL, "no configuration file given");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_msg(SCALER_LOG_ERR, NULL, "%s: out of memory", path);
		return NULL;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	config_init(&c->cfg);
	c->refs = 1;

	/* @include "x.conf" is relative to the including file's directory */
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*(slash == dir ? slash + 1 : slash) = '\0';
		config_set_include_dir(&c->cfg, dir);
	}
	/* relative paths in the file are relative to its directory */
	char cwd[4096];
	if (path[0] == '/')
		snprintf(x.base, sizeof(x.base), "%s", slash ? dir : "/");
	else if (!getcwd(cwd, sizeof(cwd)))
		snprintf(x.base, sizeof(x.base), "%s", slash ? dir : ".");
	else if (slash)
		snprintf(x.base, sizeof(x.base), "%s/%s", cwd, dir);
	else
		snprintf(x.base, sizeof(x.base), "%s", cwd);

	/* a regular file of a sane size, read once (a FIFO would hang) */
	if (conf_read(&c->cfg, path, c->path, &t) < 0) {
		conf_text_free(&t);
		conf_free(c);
		return NULL;
	}

	x.c = c;
	conf_errors_hold();
	const config_setting_t *root = config_root_setting(&c->cfg);
	/* values libconfig could not read as written are read errors: nothing
	 * is validated on top of them */
	cf_notes(&x, root, &t);
	if (x.nerr == 0) {
		cf_root(&x, root);
		cf_check_secret(&x, root, &t);
		cf_check_exposure(&x, root);
	}
	conf_errors_release();
	conf_text_free(&t);
	if (x.nerr > 0) {
		log_msg(SCALER_LOG_ERR, NULL, "%s: %d error%s, configuration not loaded", path,
		        x.nerr, x.nerr == 1 ? "" : "s");
		conf_free(c);
		return NULL;
	}
	c->counted = 1;
	cf_alive++;
	return c;
}

static void cf_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

struct conf *conf_ref(const struct conf *c)
{
	struct conf *m = (struct conf *)c; /* the count is not part of what the config says */
	if (m)
		m->refs++;
	return m;
}

size_t conf_alive(void)
{
	return cf_alive;
}

void conf_free(struct conf *c)
{
	if (!c || --c->refs > 0)
		return;
	if (c->counted)
		cf_alive--;
	for (size_t i = 0; i < c->nzones; i++)
		cf_strv_free(c->zones[i].servers);
	free(c->zones);
	cf_strv_free(c->zones_hosted);
	if (c->token) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	config_destroy(&c->cfg);
	free(c);
}

/* ---- queries ------------------------------------------------------------ */

const struct conf_zone *conf_zone_find(const struct conf *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->nzones; i++)
		if (strcmp(c->zones[i].name, name) == 0)
			return &c->zones[i];
	return NULL;
}

const config_setting_t *conf_plugin_dir_setting(const struct conf *c)
{
	return config_setting_get_member(config_root_setting(&c->cfg), "plugin_dir");
}

int conf_hosts_zone(const struct conf *c, const char *name)
{
	if (!conf_zone_find(c, name))
		return 0;
	if (!c->zones_hosted)
		return 1;
	for (char **p = c->zones_hosted; *p; p++)
		if (strcmp(*p, name) == 0)
			return 1;
	return 0;
}

int conf_zone_equal(const struct conf_zone *a, const struct conf_zone *b)
{
	if (!a || !b)
		return a == b;
	if (strcmp(a->name, b->name) || strcmp(a->listen, b->listen) ||
	    strcmp(a->admin, b->admin) || a->workers != b->workers)
		return 0;
	if (a->nservers != b->nservers)
		return 0;
	for (size_t i = 0; i < a->nservers; i++)
		if (strcmp(a->servers[i], b->servers[i]))
			return 0;
	if (strcmp(a->balancer_plugin, b->balancer_plugin))
		return 0;
	return conf_setting_equal_except(a->balancer_conf, b->balancer_conf, "plugin");
}
