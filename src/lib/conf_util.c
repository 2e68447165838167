/* The config helpers scalerd and its plugins share: FILE:LINE: SETTING
 * error messages, unknown-setting checks with "did you mean", typed number
 * getters, and the syntax of addresses, URLs and tokens. */
#include "config.h"

#include "conf_util.h"
#include "log.h"
#include "net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const config_setting_t *cu_member(const config_setting_t *group, const char *name)
{
	return group ? config_setting_get_member(group, name) : NULL;
}

/* ---- error reporting ---------------------------------------------------- */

const char *conf_setting_file(const config_setting_t *s)
{
	for (; s; s = config_setting_parent(s))
		if (config_setting_source_file(s))
			return config_setting_source_file(s);
	return "(config)";
}

const char *conf_setting_path(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *chain[64];
	size_t n = 0, off = 0;

	if (!buf || len == 0)
		return "";
	buf[0] = '\0';
	for (; s && !config_setting_is_root(s) && n < sizeof(chain) / sizeof(chain[0]);
	     s = config_setting_parent(s))
		chain[n++] = s;
	while (n-- > 0) {
		const config_setting_t *p = chain[n];
		const config_setting_t *parent = config_setting_parent(p);
		const char *sep = off ? "." : "";
		int w;

		if (parent && !config_setting_is_group(parent))
			w = snprintf(buf + off, len - off, "%s[%d]", sep, config_setting_index(p));
		else
			w = snprintf(buf + off, len - off, "%s%s", sep,
			             config_setting_name(p) ? config_setting_name(p) : "?");
		if (w < 0 || (size_t)w >= len - off) {
			buf[off] = '\0'; /* cut at a whole component */
			break;
		}
		off += (size_t)w;
	}
	return buf;
}

/* While conf_load validates, errors are collected and then logged sorted
 * by file and line, so that they read from the top of the file down. */
struct cu_msg {
	const char *file;
	unsigned line;
	size_t seq;
	char *text;
};

struct cu_msgs {
	struct cu_msg *v;
	size_t n, cap;
};

static struct cu_msgs *cu_collect;
void conf_emit(const char *file, unsigned line, const char *text)
{
	struct cu_msgs *m = cu_collect;

	/* one reason reached by several paths (a plugin_dir every default
	 * plugin is looked up in) is logged once */
	for (size_t i = 0; m && i < m->n; i++)
		if (m->v[i].line == line && strcmp(m->v[i].text, text) == 0)
			return;
	if (m && m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		struct cu_msg *v = realloc(m->v, cap * sizeof(*v));
		if (v) {
			m->v = v;
			m->cap = cap;
		}
	}
	if (m && m->n < m->cap) {
		char *copy = strdup(text);
		if (copy) {
			m->v[m->n] = (struct cu_msg){file, line, m->n, copy};
			m->n++;
			return;
		}
	}
	log_msg(SCALER_LOG_ERR, NULL, "%s", text);
}

static int cu_msg_cmp(const void *pa, const void *pb)
{
	const struct cu_msg *a = pa, *b = pb;
	int r = strcmp(a->file, b->file);

	if (r)
		return r;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void cu_flush(struct cu_msgs *m)
{
	if (m->n)
		qsort(m->v, m->n, sizeof(*m->v), cu_msg_cmp);
	for (size_t i = 0; i < m->n; i++) {
		log_msg(SCALER_LOG_ERR, NULL, "%s", m->v[i].text);
		free(m->v[i].text);
	}
	free(m->v);
	m->v = NULL;
	m->n = m->cap = 0;
}

static struct cu_msgs cu_held;

void conf_errors_hold(void)
{
	cu_collect = &cu_held;
}

void conf_errors_release(void)
{
	cu_collect = NULL;
	cu_flush(&cu_held);
}

/* Log one error about `s`: "FILE:LINE: PATH: message". */
__attribute__((format(printf, 2, 0))) static void cu_vreport(const config_setting_t *s,
                                                             const char *fmt, va_list ap)
{
	char where[512], msg[1024], text[1700];
	unsigned line = s ? config_setting_source_line(s) : 0;
	const char *file = conf_setting_file(s);

	conf_setting_path(s, where, sizeof(where));
	vsnprintf(msg, sizeof(msg), fmt, ap);

	if (line > 0 && where[0])
		snprintf(text, sizeof(text), "%s:%u: %s: %s", file, line, where, msg);
	else if (line > 0)
		snprintf(text, sizeof(text), "%s:%u: %s", file, line, msg);
	else if (where[0])
		snprintf(text, sizeof(text), "%s: %s: %s", file, where, msg);
	else
		snprintf(text, sizeof(text), "%s: %s", file, msg);
	conf_emit(file, line, text);
}

int conf_error(const config_setting_t *setting, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cu_vreport(setting, fmt, ap);
	va_end(ap);
	return -1;
}

const char *conf_type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

/* Edit distance of two short names (for "did you mean"); capped at 9. */
static int cu_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int row[33];

	if (la > 32 || lb > 32)
		return 9;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int diag = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* Report every member of `group` not in `known`; the number reported. */
int conf_report_unknown(const config_setting_t *group, const char *const *known)
{
	int n = 0;

	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(m), *near = NULL;
		int best = 3; /* suggest only close names */
		size_t k;

		for (k = 0; known[k]; k++)
			if (name && strcmp(name, known[k]) == 0)
				break;
		if (known[k])
			continue;
		n++;
		for (k = 0; name && known[k]; k++) {
			int d = cu_distance(name, known[k]);
			if (d < best) {
				best = d;
				near = known[k];
			}
		}
		if (near) {
			conf_error(m, "unknown setting (did you mean %s?)", near);
			continue;
		}
		char list[512];
		size_t off = 0;
		list[0] = '\0';
		for (k = 0; known[k] && off < sizeof(list); k++) {
			int w = snprintf(list + off, sizeof(list) - off, "%s%s", k ? ", " : "",
			                 known[k]);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		conf_error(m, "unknown setting (known here: %s)", list);
	}
	return n;
}

int conf_check_known(const config_setting_t *group, const char *const *known)
{
	if (!group)
		return 0;
	if (!config_setting_is_group(group))
		return conf_error(group, "must be a group (got %s)", conf_type_name(group));
	return conf_report_unknown(group, known) ? -1 : 0;
}

int conf_is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

long long conf_int_value(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT64 ? config_setting_get_int64(s)
	                                                   : config_setting_get_int(s);
}

/* The value of number setting `s` (int or float) in *v; -1 after `error`
 * when it is not a finite number. `name` starts the messages in the style of
 * conf_number ("timeout must be ..."); NULL for the core's own settings. */
int conf_number_value(conf_error_fn error, const config_setting_t *s, const char *name, double *v)
{
	const char *sp = name ? " " : "";

	if (!name)
		name = "";
	if (conf_is_int(s))
		*v = (double)conf_int_value(s);
	else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
		*v = config_setting_get_float(s);
	else
		return error(s, "%s%smust be a number (got %s)", name, sp, conf_type_name(s));
	if (!isfinite(*v))
		return error(s, "%s%smust be a finite number", name, sp);
	return 0;
}

/* The value of integer setting `s` in [lo, hi] in *v; -1 after `error`.
 * `name` as for conf_number_value. */
int conf_integer_value(conf_error_fn error, const config_setting_t *s, const char *name,
                       long long lo, long long hi, long long *v)
{
	const char *sp = name ? " " : "";

	if (!name)
		name = "";
	if (!conf_is_int(s))
		return error(s, "%s%smust be an integer (got %s)", name, sp, conf_type_name(s));
	*v = conf_int_value(s);
	if (*v >= lo && *v <= hi)
		return 0;
	if (*sp) /* conf_number's range message */
		return error(s, "%s must be between %lld and %lld, not %lld", name, lo, hi, *v);
	return error(s, "must be between %lld and %lld (got %lld)", lo, hi, *v);
}

/* Where conf_number and conf_integer report: conf_error unless a host in a
 * test records the messages its own way. */
static conf_error_fn cu_number_error = conf_error;

void conf_number_reporter(conf_error_fn error)
{
	cu_number_error = error ? error : conf_error;
}

int conf_number(const config_setting_t *group, const char *name, double def, double lo, double hi,
                double *out)
{
	const config_setting_t *s = cu_member(group, name);
	double v;

	*out = def;
	if (!s)
		return 0;
	if (conf_number_value(cu_number_error, s, name, &v) < 0)
		return -1;
	if (v < lo || v > hi)
		return cu_number_error(s, "%s must be between %g and %g, not %g", name, lo, hi, v);
	*out = v;
	return 0;
}

int conf_integer(const config_setting_t *group, const char *name, long long def, long long lo,
                 long long hi, long long *out)
{
	const config_setting_t *s = cu_member(group, name);
	long long v;

	*out = def;
	if (!s)
		return 0;
	if (conf_integer_value(cu_number_error, s, name, lo, hi, &v) < 0)
		return -1;
	*out = v;
	return 0;
}

/* A number of seconds (int or float); strict: must be > min, else >= min. */
int conf_seconds(const config_setting_t *group, const char *name, double min, int strict,
                 double *out)
{
	const config_setting_t *s = cu_member(group, name);
	double v;

	if (!s)
		return 0;
	if (conf_number_value(conf_error, s, NULL, &v) < 0)
		return -1;
	if (strict && !(v > min))
		return conf_error(s, "must be > %g (got %g)", min, v);
	if (!strict && v < min)
		return conf_error(s, "must be >= %g (got %g)", min, v);
	if (v > CONF_SECONDS_MAX)
		return conf_error(s, "must be at most %.0f s (a year), not %g", CONF_SECONDS_MAX,
		                  v);
	*out = v;
	return 1;
}

int conf_get_seconds(const config_setting_t *group, const char *name, double min, double *out)
{
	return conf_seconds(group, name, min, 0, out);
}

/* ---- value syntax ------------------------------------------------------- */

int conf_charset(const char *s, const char *extra, int upper)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (islower(ch) || isdigit(ch) || (upper && isupper(ch)) || strchr(extra, ch))
			continue;
		return 0;
	}
	return 1;
}

int conf_wildcard_host(const char *h)
{
	return !*h || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "*") == 0;
}

/* Why "host:port" / "[v6]:port" is refused, for the error message. */
static const char *cu_hostport_why(const char *s)
{
	const char *colon, *h, *hend;
	char host[300];

	if (s[0] == '[') {
		if (!(hend = strchr(s, ']')))
			return "missing ']' after the IPv6 address";
		h = s + 1;
		colon = hend + 1;
		if (*colon != ':')
			return "missing :port after the IPv6 address";
	} else {
		if (!(colon = strrchr(s, ':')))
			return "missing :port";
		if (memchr(s, ':', (size_t)(colon - s)))
			return "IPv6 addresses are written in brackets: [::1]:port";
		h = s;
		hend = colon;
	}
	size_t n = (size_t)(hend - h);
	if (n >= sizeof(host) || n > 253)
		return "host name too long";
	memcpy(host, h, n);
	host[n] = '\0';
	if (s[0] == '[') {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return "invalid IPv6 address";
	} else if (n && strcmp(host, "*") != 0 && !conf_charset(host, ".-_", 1)) {
		return "invalid host name (letters, digits, '.', '-', '_')";
	} else if (n && strspn(host, "0123456789.") == n) {
		struct in_addr a4;
		if (inet_pton(AF_INET, host, &a4) != 1)
			return "invalid IPv4 address";
	}
	const char *p = colon + 1;
	if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5)
		return "port must be a number between 1 and 65535";
	long v = strtol(p, NULL, 10);
	if (v < 1 || v > 65535)
		return "port must be between 1 and 65535";
	return "expected host:port or [v6]:port";
}

/* Split "host:port" or "[v6]:port" into host (brackets removed; "" for
 * every address, written "*:port" or ":port") and port, by the rules
 * scalerd's listeners use (net_parse_hostport); a dotted-decimal host must
 * also be a valid IPv4 address. 0 on success, else -1 with *why set. */
int conf_hostport(const char *s, char *host, size_t hostlen, int *port, const char **why)
{
	if (net_parse_hostport(s, host, hostlen, port) < 0) {
		*why = cu_hostport_why(s);
		return -1;
	}
	if (*host && strspn(host, "0123456789.") == strlen(host)) {
		struct in_addr a;
		if (inet_pton(AF_INET, host, &a) != 1) {
			*why = "invalid IPv4 address";
			return -1;
		}
	}
	return 0;
}

/* host:port of something to connect to: every-address hosts make no sense. */
int conf_connect_hostport(const char *s, char *host, size_t hostlen, int *port, const char **why)
{
	if (conf_hostport(s, host, hostlen, port, why) < 0)
		return -1;
	if (!*host) {
		*why = "missing host";
		return -1;
	}
	return 0;
}

/* http://host:port (static servers); http[s]://host[:port][/path] when
 * `path_ok` (the advertised admin URL). */
int conf_http_url(const char *u, int path_ok, const char **why)
{
	char auth[300], host[260];
	const char *rest;
	int port;

	if (strncmp(u, "http://", 7) == 0)
		rest = u + 7;
	else if (path_ok && strncmp(u, "https://", 8) == 0)
		rest = u + 8;
	else {
		*why = path_ok ? "must start with http:// or https://" : "must be http://host:port";
		return -1;
	}
	size_t n = strcspn(rest, "/?#");
	if (rest[n] && !path_ok) {
		*why = "must be http://host:port (no path)";
		return -1;
	}
	if (n == 0 || n >= sizeof(auth)) {
		*why = "missing host";
		return -1;
	}
	memcpy(auth, rest, n);
	auth[n] = '\0';
	if (conf_connect_hostport(auth, host, sizeof(host), &port, why) == 0)
		return 0;
	if (path_ok && !strchr(auth, ':') && conf_charset(auth, ".-_", 1))
		return 0; /* host without port */
	if (path_ok && auth[0] == '[' && auth[n - 1] == ']') {
		struct in6_addr a6;
		auth[n - 1] = '\0';
		if (inet_pton(AF_INET6, auth + 1, &a6) == 1)
			return 0; /* [v6] without port */
	}
	return -1;
}

/* redis://[:password@]host:port[/db] or unix:/path[?db=N] */
int conf_redis_url(const char *u, const char **why)
{
	static const char *const shape =
	    "must be redis://[:password@]host:port[/db] or unix:/path[?db=N]";

	if (strncmp(u, "unix:", 5) == 0) {
		const char *path = u + 5, *q = strchr(path, '?');
		if (path[0] != '/' || path[1] == '\0' || path[1] == '?') {
			*why = "unix: needs an absolute socket path (unix:/run/redis/redis.sock)";
			return -1;
		}
		if (q) {
			if (strncmp(q, "?db=", 4) != 0 || !q[4] ||
			    strspn(q + 4, "0123456789") != strlen(q + 4) || strlen(q + 4) > 9) {
				*why = "the only option after '?' is db=N (a number)";
				return -1;
			}
		}
		return 0;
	}
	if (strncmp(u, "redis://", 8) != 0) {
		*why = shape;
		return -1;
	}
	const char *auth = u + 8, *at = strrchr(auth, '@');
	if (at) {
		if (auth[0] != ':') {
			*why = "credentials are written redis://:password@host:port";
			return -1;
		}
		auth = at + 1;
	}
	char hp[300], host[260];
	size_t n = strcspn(auth, "/");
	int port;
	if (n >= sizeof(hp)) {
		*why = "host too long";
		return -1;
	}
	memcpy(hp, auth, n);
	hp[n] = '\0';
	if (conf_connect_hostport(hp, host, sizeof(host), &port, why) < 0)
		return -1;
	if (auth[n] == '/') {
		const char *db = auth + n + 1;
		if (*db && (strspn(db, "0123456789") != strlen(db) || strlen(db) > 9)) {
			*why = "the database after '/' must be a number";
			return -1;
		}
	}
	return 0;
}

/* A bearer token goes into an HTTP header: visible ASCII only. */
int conf_token_ok(const char *t)
{
	if (!*t)
		return 0;
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return 0;
	return 1;
}

static int cu_group_count(const config_setting_t *g, const char *skip)
{
	int n = 0;

	if (!g)
		return 0;
	for (int i = 0; i < config_setting_length(g); i++) {
		const char *name = config_setting_name(config_setting_get_elem(g, (unsigned)i));
		if (!skip || !name || strcmp(name, skip) != 0)
			n++;
	}
	return n;
}

/* Content equality; `skip` names a member of top-level groups to ignore. */
int conf_setting_equal_except(const config_setting_t *a, const config_setting_t *b,
                              const char *skip)
{
	if (!a || !b) {
		const config_setting_t *g = a ? a : b;
		return !g || (config_setting_is_group(g) && cu_group_count(g, skip) == 0);
	}
	if (config_setting_is_number(a) && config_setting_is_number(b)) {
		if (conf_is_int(a) && conf_is_int(b))
			return conf_int_value(a) == conf_int_value(b);
		double da =
		    conf_is_int(a) ? (double)conf_int_value(a) : config_setting_get_float(a);
		double db =
		    conf_is_int(b) ? (double)conf_int_value(b) : config_setting_get_float(b);
		return da == db;
	}
	if (config_setting_type(a) != config_setting_type(b))
		return 0;
	switch (config_setting_type(a)) {
	case CONFIG_TYPE_STRING:
		return strcmp(config_setting_get_string(a), config_setting_get_string(b)) == 0;
	case CONFIG_TYPE_BOOL:
		return !config_setting_get_bool(a) == !config_setting_get_bool(b);
	case CONFIG_TYPE_GROUP:
		if (cu_group_count(a, skip) != cu_group_count(b, skip))
			return 0;
		for (int i = 0; i < config_setting_length(a); i++) {
			const config_setting_t *m = config_setting_get_elem(a, (unsigned)i);
			const char *name = config_setting_name(m);
			if (skip && name && strcmp(name, skip) == 0)
				continue;
			if (!conf_setting_equal_except(m, config_setting_get_member(b, name), NULL))
				return 0;
		}
		return 1;
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
		if (config_setting_length(a) != config_setting_length(b))
			return 0;
		for (int i = 0; i < config_setting_length(a); i++)
			if (!conf_setting_equal_except(config_setting_get_elem(a, (unsigned)i),
			                               config_setting_get_elem(b, (unsigned)i),
			                               NULL))
				return 0;
		return 1;
	default:
		return 0;
	}
}

int conf_setting_equal(const config_setting_t *a, const config_setting_t *b)
{
	return conf_setting_equal_except(a, b, NULL);
}