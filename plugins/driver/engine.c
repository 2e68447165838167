/* The Docker Engine API client of the container drivers (see engine.h). */
#include "config.h"

#include "engine.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define ENG_API_MAX_MAJOR 1
#define ENG_API_MAX_MINOR 41
#define ENG_VERSION_TIMEOUT 10.0

struct eng_ep {
	int refs;
	struct eng *eng;
	char url[300];         /* as configured */
	char socket_path[256]; /* "" for tcp */
	char base_url[300];    /* http://localhost or http(s)://host:port */
	char tcp_host[256];    /* tcp: the host part, without brackets */
	char version[16];      /* negotiated "1.41"; "" until then */
	struct scaler_http_call *version_call;
};

struct eng {
	const struct scaler_host *host;
	char noun[32];
	struct eng_ep **eps;
	size_t neps;
	size_t current; /* the endpoint that answered last: tried first */
	char *tls_ca, *tls_cert, *tls_key;
	struct eng_call *calls;
};

struct eng_call {
	struct eng *eng;
	struct eng_ep *ep; /* the endpoint being tried (a reference) */
	char method[8];
	char *path, *body;
	double timeout;
	eng_cb cb;
	void *arg;
	size_t start, tried;
	int waiting; /* for ep's version */
	struct scaler_http_call *http;
	char errs[1024]; /* "url: why; ..." of the endpoints given up */
	struct eng_call *next;
};

static void eng_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void eng_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- endpoints ------------------------------------------------------------ */

static void eng_ep_unref(struct eng_ep *ep)
{
	if (!ep || --ep->refs > 0)
		return;
	if (ep->version_call)
		ep->eng->host->http_cancel(ep->version_call);
	free(ep);
}

/* NULL after a conf_error naming s */
static struct eng_ep *eng_ep_parse(struct eng *e, const config_setting_t *s, const char *v)
{
	struct eng_ep *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return NULL;
	ep->refs = 1;
	ep->eng = e;
	snprintf(ep->url, sizeof(ep->url), "%s", v);
	if (strncmp(v, "unix://", 7) == 0) {
		if (v[7] != '/' || strlen(v + 7) >= sizeof(ep->socket_path)) {
			e->host->conf_error(s, "expected unix:///absolute/path, got \"%s\"", v);
			goto fail;
		}
		snprintf(ep->socket_path, sizeof(ep->socket_path), "%s", v + 7);
		snprintf(ep->base_url, sizeof(ep->base_url), "http://localhost");
		return ep;
	}
	if (strncmp(v, "tcp://", 6) == 0) {
		const char *hp = v + 6;
		const char *colon = strrchr(hp, ':');
		if (!*hp || strpbrk(hp, "/?#@ ") || !colon || colon == hp || !colon[1] ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) < 1 ||
		    atoi(colon + 1) > 65535 || strlen(hp) > 250) {
			e->host->conf_error(s, "expected tcp://host:port, got \"%s\"", v);
			goto fail;
		}
		eng_fmt(ep->base_url, sizeof(ep->base_url), "%s://%s",
		        e->tls_ca || e->tls_cert ? "https" : "http", hp);
		size_t n = (size_t)(colon - hp);
		if (hp[0] == '[' && n >= 2 && hp[n - 1] == ']') {
			hp++;
			n -= 2;
		}
		eng_fmt(ep->tcp_host, sizeof(ep->tcp_host), "%.*s", (int)n, hp);
		return ep;
	}
	e->host->conf_error(s, "expected unix:///path or tcp://host:port, got \"%s\"", v);
fail:
	free(ep);
	return NULL;
}

static int eng_add(struct eng *e, const config_setting_t *s, const char *v)
{
	struct eng_ep *ep = eng_ep_parse(e, s, v);
	struct eng_ep **eps;
	if (!ep)
		return -1;
	eps = realloc(e->eps, (e->neps + 1) * sizeof(*eps));
	if (!eps) {
		eng_ep_unref(ep);
		return -1;
	}
	e->eps = eps;
	e->eps[e->neps++] = ep;
	return 0;
}

struct eng *eng_new(const struct scaler_host *host, const config_setting_t *conf, const char *name,
                    int many, const char *def, const char *noun)
{
	struct eng *e = calloc(1, sizeof(*e));
	const config_setting_t *s = conf ? config_setting_get_member(conf, name) : NULL;
	const char *v;
	int bad = 0;
	if (!e)
		return NULL;
	e->host = host;
	snprintf(e->noun, sizeof(e->noun), "%s", noun);
	if ((v = eng_conf_string(host, conf, "tls_ca", &bad)))
		e->tls_ca = strdup(v);
	if ((v = eng_conf_string(host, conf, "tls_cert", &bad)))
		e->tls_cert = strdup(v);
	if ((v = eng_conf_string(host, conf, "tls_key", &bad)))
		e->tls_key = strdup(v);
	if (bad)
		goto fail;
	if (!!e->tls_cert != !!e->tls_key) {
		host->conf_error(conf, "tls_cert and tls_key go together");
		goto fail;
	}
	if (!s) {
		if (eng_add(e, NULL, def) < 0)
			goto fail;
	} else if (!many) {
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			host->conf_error(s, "expected a string (unix:///path or tcp://host:port)");
			goto fail;
		}
		if (eng_add(e, s, config_setting_get_string(s)) < 0)
			goto fail;
	} else {
		json_t *list = eng_conf_strings(host, s, 0, 0);
		size_t i;
		json_t *u;
		if (!list)
			goto fail;
		if (json_array_size(list) == 0)
			host->conf_error(s, "expected at least one endpoint");
		json_array_foreach(list, i, u)
		{
			if (eng_add(e, config_setting_get_elem(s, (unsigned)i),
			            json_string_value(u)) < 0)
				break;
		}
		if (e->neps != json_array_size(list) || e->neps == 0) {
			json_decref(list);
			goto fail;
		}
		json_decref(list);
	}
	for (size_t i = 0; i < e->neps; i++)
		if ((e->tls_ca || e->tls_cert) && e->eps[i]->socket_path[0]) {
			host->conf_error(s ? s : conf,
			                 "TLS settings need tcp://host:port endpoints");
			goto fail;
		}
	return e;
fail:
	eng_free(e);
	return NULL;
}

size_t eng_count(const struct eng *e)
{
	return e->neps;
}

const char *eng_tcp_host(const struct eng *e, size_t i)
{
	return i < e->neps && !e->eps[i]->socket_path[0] ? e->eps[i]->tcp_host : NULL;
}

static void eng_call_free(struct eng_call *c)
{
	for (struct eng_call **pp = &c->eng->calls; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	eng_ep_unref(c->ep);
	free(c->path);
	free(c->body);
	free(c);
}

void eng_cancel(struct eng_call *c)
{
	if (!c)
		return;
	if (c->http)
		c->eng->host->http_cancel(c->http);
	eng_call_free(c);
}

void eng_take(struct eng *e, struct eng *from)
{
	for (size_t i = 0; i < from->neps; i++)
		for (size_t k = 0; k < e->neps; k++)
			if (strcmp(from->eps[i]->url, e->eps[k]->url) == 0)
				snprintf(from->eps[i]->version, sizeof(from->eps[i]->version), "%s",
				         e->eps[k]->version);
	/* calls in flight keep their endpoint (they hold a reference) */
	for (size_t k = 0; k < e->neps; k++)
		eng_ep_unref(e->eps[k]);
	free(e->eps);
	free(e->tls_ca);
	free(e->tls_cert);
	free(e->tls_key);
	e->eps = from->eps;
	e->neps = from->neps;
	for (size_t i = 0; i < e->neps; i++)
		e->eps[i]->eng = e;
	e->current = 0;
	e->tls_ca = from->tls_ca;
	e->tls_cert = from->tls_cert;
	e->tls_key = from->tls_key;
	snprintf(e->noun, sizeof(e->noun), "%s", from->noun);
	free(from);
}

void eng_free(struct eng *e)
{
	if (!e)
		return;
	while (e->calls)
		eng_cancel(e->calls);
	for (size_t i = 0; i < e->neps; i++)
		eng_ep_unref(e->eps[i]);
	free(e->eps);
	free(e->tls_ca);
	free(e->tls_cert);
	free(e->tls_key);
	free(e);
}

/* ---- calls ---------------------------------------------------------------- */

/* Docker's own words ({"message": ...}), else the status */
static void eng_message(const struct scaler_http_response *resp, json_t *j, char *buf, size_t len)
{
	if (json_is_string(json_object_get(j, "message")))
		snprintf(buf, len, "%s", json_string_value(json_object_get(j, "message")));
	else
		snprintf(buf, len, "HTTP %ld", resp->status);
}

static void eng_finish(struct eng_call *c, long status, json_t *j, const char *message)
{
	struct eng_reply r = {
	    .status = status,
	    .json = j,
	    .message = message,
	    .endpoint = c->ep ? c->ep->url : "",
	    .failovers = (int)c->tried,
	};
	eng_cb cb = c->cb;
	void *arg = c->arg;
	char endpoint[sizeof(c->ep->url)];
	snprintf(endpoint, sizeof(endpoint), "%s", r.endpoint);
	r.endpoint = endpoint;
	eng_call_free(c);
	cb(arg, &r);
}

static void eng_attempt(struct eng_call *c);
static void eng_version_cb(void *arg, const struct scaler_http_response *resp);

/* This endpoint could not serve the call: the next one, or the end. */
static void eng_give_up(struct eng_call *c, long status, json_t *j, const char *why)
{
	struct eng *e = c->eng;
	size_t n = strlen(c->errs);
	char msg[sizeof(c->errs) + 64];
	eng_fmt(c->errs + n, sizeof(c->errs) - n, "%s%s: %s", n ? "; " : "", c->ep->url, why);
	c->tried++;
	if (c->tried < e->neps) {
		e->host->log(SCALER_LOG_WARNING, "driver", "%s %s: %s; trying the next one",
		             e->noun, c->ep->url, why);
		e->current = (c->start + c->tried) % e->neps;
		eng_attempt(c);
		return;
	}
	c->tried--; /* failovers count the endpoints given up before the last */
	if (e->neps > 1)
		eng_fmt(msg, sizeof(msg), "no %s could serve the request: %s", e->noun, c->errs);
	else if (status == 0)
		eng_fmt(msg, sizeof(msg), "%s at %s unreachable: %s", e->noun, c->ep->url, why);
	else
		eng_fmt(msg, sizeof(msg), "%s", why);
	eng_finish(c, status, j, msg);
}

/* Answers a manager gives when it cannot serve: not a manager, no leader. */
static int eng_unavailable(long status, const char *message)
{
	return status == 503 || (status == 500 && (strstr(message, "code = Unavailable") ||
	                                           strstr(message, "code = DeadlineExceeded") ||
	                                           strstr(message, "does not have a leader")));
}

static void eng_http_cb(void *arg, const struct scaler_http_response *resp)
{
	struct eng_call *c = arg;
	json_error_t jerr;
	json_t *j;
	char why[512];
	c->http = NULL;
	if (resp->status == 0) {
		eng_give_up(c, 0, NULL, resp->error ? resp->error : "no response");
		return;
	}
	j = resp->body_len ? json_loadb(resp->body, resp->body_len, 0, &jerr) : NULL;
	if (resp->status >= 200 && resp->status < 300) {
		c->eng->current = (c->start + c->tried) % c->eng->neps;
		snprintf(why, sizeof(why), "HTTP %ld", resp->status);
		eng_finish(c, resp->status, j, why);
	} else {
		eng_message(resp, j, why, sizeof(why));
		if (eng_unavailable(resp->status, why))
			eng_give_up(c, resp->status, j, why);
		else
			eng_finish(c, resp->status, j, why);
	}
	json_decref(j);
}

static struct scaler_http_call *eng_send(struct eng *e, struct eng_ep *ep, const char *method,
                                         const char *path, const char *body, double timeout,
                                         scaler_http_cb cb, void *arg)
{
	static const char *const json_headers[] = {"Content-Type: application/json", NULL};
	char url[2048];
	struct scaler_http_request req = {
	    .method = method,
	    .url = url,
	    .unix_socket = ep->socket_path[0] ? ep->socket_path : NULL,
	    .headers = body ? json_headers : NULL,
	    .body = body,
	    .body_len = body ? strlen(body) : 0,
	    .timeout = timeout,
	    .ca_cert = e->tls_ca,
	    .client_cert = e->tls_cert,
	    .client_key = e->tls_key,
	};
	if (ep->version[0])
		eng_fmt(url, sizeof(url), "%s/v%s%s", ep->base_url, ep->version, path);
	else
		eng_fmt(url, sizeof(url), "%s%s", ep->base_url, path);
	return e->host->http_request(&req, cb, arg);
}

static void eng_version_cb(void *arg, const struct scaler_http_response *resp)
{
	struct eng_ep *ep = arg;
	struct eng *e = ep->eng;
	json_error_t jerr;
	json_t *j = NULL;
	int major = 0, minor = 0;
	char why[512] = "";
	const char *v;
	ep->version_call = NULL;
	ep->refs++; /* the waiting calls may drop the last other references */
	if (resp->status == 0) {
		snprintf(why, sizeof(why), "%s", resp->error ? resp->error : "no response");
	} else {
		j = json_loadb(resp->body, resp->body_len, 0, &jerr);
		v = json_string_value(json_object_get(j, "ApiVersion"));
		if (resp->status != 200)
			eng_message(resp, j, why, sizeof(why));
		else if (!v || sscanf(v, "%d.%d", &major, &minor) != 2)
			snprintf(why, sizeof(why), "GET /version has no ApiVersion");
	}
	if (!why[0]) {
		if (major > ENG_API_MAX_MAJOR ||
		    (major == ENG_API_MAX_MAJOR && minor > ENG_API_MAX_MINOR)) {
			major = ENG_API_MAX_MAJOR;
			minor = ENG_API_MAX_MINOR;
		}
		snprintf(ep->version, sizeof(ep->version), "%d.%d", major, minor);
		e->host->log(SCALER_LOG_INFO, "driver", "%s %s: Docker %s, API %s (using %s)",
		             e->noun, ep->url,
		             json_string_value(json_object_get(j, "Version"))
		                 ? json_string_value(json_object_get(j, "Version"))
		                 : "?",
		             json_string_value(json_object_get(j, "ApiVersion")), ep->version);
	}
	json_decref(j);
	/* every call waiting for this endpoint goes on, or on to the next one */
	for (;;) {
		struct eng_call *c = e->calls;
		while (c && !(c->waiting && c->ep == ep))
			c = c->next;
		if (!c)
			break;
		c->waiting = 0;
		if (why[0])
			eng_give_up(c, 0, NULL, why); /* no engine answered as one */
		else
			eng_attempt(c);
	}
	eng_ep_unref(ep);
}

/* Send c to endpoint (start + tried), once its version is known; -1 when
 * nothing could be sent (c is left as it was). */
static int eng_attempt_send(struct eng_call *c)
{
	struct eng *e = c->eng;
	struct eng_ep *ep = e->eps[(c->start + c->tried) % e->neps];
	if (c->ep != ep) {
		eng_ep_unref(c->ep);
		c->ep = ep;
		ep->refs++;
	}
	if (ep->version[0]) {
		c->http = eng_send(e, ep, c->method, c->path, c->body, c->timeout, eng_http_cb, c);
		return c->http ? 0 : -1;
	}
	if (!ep->version_call) {
		double t = c->timeout < ENG_VERSION_TIMEOUT ? c->timeout : ENG_VERSION_TIMEOUT;
		ep->version_call = eng_send(e, ep, "GET", "/version", NULL, t, eng_version_cb, ep);
		if (!ep->version_call)
			return -1;
	}
	c->waiting = 1;
	return 0;
}

static void eng_attempt(struct eng_call *c)
{
	if (eng_attempt_send(c) < 0)
		eng_give_up(c, 0, NULL, "cannot send a request");
}

struct eng_call *eng_request(struct eng *e, const char *method, const char *path, json_t *body,
                             double timeout, eng_cb cb, void *arg)
{
	struct eng_call *c;
	if (!e || !e->neps || !method || strlen(method) >= sizeof(c->method) || !path ||
	    path[0] != '/' || !cb)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->eng = e;
	snprintf(c->method, sizeof(c->method), "%s", method);
	c->path = strdup(path);
	c->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
	c->timeout = timeout > 0 ? timeout : 60.0;
	c->cb = cb;
	c->arg = arg;
	c->start = e->current % e->neps;
	c->next = e->calls;
	e->calls = c;
	/* nothing sent: NULL, so no callback ever runs on the caller's stack */
	if (!c->path || (body && !c->body) || eng_attempt_send(c) < 0) {
		eng_call_free(c);
		return NULL;
	}
	return c;
}

struct eng_call *eng_get_filtered(struct eng *e, const char *path, json_t *filters, double timeout,
                                  eng_cb cb, void *arg)
{
	char *text = json_dumps(filters, JSON_COMPACT);
	size_t len = text ? strlen(text) * 3 + strlen(path) + 16 : 0;
	char *enc = text ? malloc(len) : NULL, *full = text ? malloc(len + 16) : NULL;
	struct eng_call *c = NULL;
	if (enc && full) {
		eng_urlencode(text, enc, len);
		snprintf(full, len + 16, "%s%cfilters=%s", path, strchr(path, '?') ? '&' : '?',
		         enc);
		c = eng_request(e, "GET", full, NULL, timeout, cb, arg);
	}
	free(text);
	free(enc);
	free(full);
	return c;
}

/* ---- a driver's operations ------------------------------------------------ */

static void eng_op_refused(void *arg)
{
	struct eng_op *op = arg;
	op->refused = NULL; /* the host is done with it */
	eng_op_done(op, -1, NULL, 0);
}

void eng_op_init(struct eng_op *op, const struct scaler_host *host, const char *who,
                 struct eng_op **head, void *arg)
{
	op->host = host;
	op->who = who;
	op->arg = arg;
	op->head = head;
	ev_init(&op->timer, NULL);
	op->timer.data = op;
	op->next = *head;
	*head = op;
}

void eng_op_free(struct eng_op *op)
{
	eng_cancel(op->call);
	ev_timer_stop(op->host->loop, &op->timer);
	if (op->refused)
		op->host->defer_cancel(op->refused);
	for (struct eng_op **pp = op->head; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	free(op);
}

void eng_op_done(struct eng_op *op, int status, const struct scaler_server *srvs, size_t n)
{
	scaler_driver_cb cb = op->cb;
	scaler_driver_list_cb list_cb = op->list_cb;
	void *arg = op->arg;
	char err[sizeof(op->err)];
	struct scaler_server srv = op->srv;
	snprintf(err, sizeof(err), "%s", op->err);
	if (status)
		op->host->log(SCALER_LOG_ERR, op->who, "%s", err);
	eng_op_free(op);
	if (list_cb)
		list_cb(arg, status, status ? NULL : srvs, status ? 0 : n, status ? err : NULL);
	else if (cb)
		cb(arg, status, status ? NULL : &srv, status ? err : NULL);
}

void eng_op_fail(struct eng_op *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->err, sizeof(op->err), fmt, ap);
	va_end(ap);
	eng_op_done(op, -1, NULL, 0);
}

int eng_op_refuse(struct eng_op *op, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->err, sizeof(op->err), fmt, ap);
	va_end(ap);
	if (!op->refused && !(op->refused = op->host->defer(eng_op_refused, op))) {
		eng_op_free(op);
		return -1;
	}
	return 1;
}

int eng_op_spec(struct eng_op *op, const struct scaler_server_spec *spec, int need_ports)
{
	const struct scaler_zone *z = spec->zone;
	struct timeval tv;
	if (!eng_id_valid(spec->server_id))
		return eng_op_refuse(op,
		                     "server id \"%s\" is not valid: use letters, digits, '_', "
		                     "'.' and '-' (at most 63, starting with a letter or digit)",
		                     spec->server_id);
	if (strlen(z->name) >= sizeof(op->srv.zone))
		return eng_op_refuse(op, "zone name \"%s\" is too long", z->name);
	if (need_ports && (z->port_min <= 0 || z->port_max < z->port_min || z->port_max > 65535))
		return eng_op_refuse(op,
		                     "zone %s has no port range for its servers (port_min %d, "
		                     "port_max %d); host networking needs one",
		                     z->name, z->port_min, z->port_max);
	snprintf(op->srv.id, sizeof(op->srv.id), "%s", spec->server_id);
	snprintf(op->srv.zone, sizeof(op->srv.zone), "%s", z->name);
	gettimeofday(&tv, NULL);
	op->srv.created = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

void eng_urlencode(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || strchr("-_.~", ch)) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
}

int eng_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= 64 || !isalnum((unsigned char)id[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("_.-", id[i]))
			return 0;
	return 1;
}

const char *eng_conf_string(const struct scaler_host *host, const config_setting_t *conf,
                            const char *name, int *bad)
{
	const config_setting_t *s = conf ? config_setting_get_member(conf, name) : NULL;
	if (!s)
		return NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING || !*config_setting_get_string(s)) {
		host->conf_error(s, "expected a non-empty string");
		*bad = 1;
		return NULL;
	}
	return config_setting_get_string(s);
}

json_t *eng_conf_strings(const struct scaler_host *host, const config_setting_t *s, int need_eq,
                         int colon)
{
	json_t *a = json_array();
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		host->conf_error(s, "expected an array of strings");
		json_decref(a);
		return NULL;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *el = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_type(el) == CONFIG_TYPE_STRING
		                    ? config_setting_get_string(el)
		                    : NULL;
		if (!v) {
			host->conf_error(el, "expected a string");
			goto fail;
		}
		if (need_eq && (v[0] == '=' || !strchr(v, '='))) {
			host->conf_error(el, "expected \"NAME=value\", got \"%s\"", v);
			goto fail;
		}
		if (colon && (v[0] == ':' || !strchr(v, ':'))) {
			host->conf_error(el, "expected \"source:/target[:options]\", got \"%s\"",
			                 v);
			goto fail;
		}
		json_array_append_new(a, json_string(v));
	}
	return a;
fail:
	json_decref(a);
	return NULL;
}

/* 256m, 1g, 512k, 1048576 → bytes; -1 on bad input */
static long long eng_parse_bytes(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	double mult = 1;
	if (end == s || v < 0)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0':
	case 'b':
		break;
	case 'k':
		mult = 1024.0;
		break;
	case 'm':
		mult = 1024.0 * 1024;
		break;
	case 'g':
		mult = 1024.0 * 1024 * 1024;
		break;
	default:
		return -1;
	}
	if (*end && end[1] && !(tolower((unsigned char)end[1]) == 'b' && !end[2]))
		return -1;
	return (long long)(v * mult);
}

long long eng_conf_bytes(const struct scaler_host *host, const config_setting_t *conf,
                         const char *name, long long min)
{
	const config_setting_t *s = conf ? config_setting_get_member(conf, name) : NULL;
	long long v;
	if (!s)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_STRING)
		v = eng_parse_bytes(config_setting_get_string(s));
	else if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		v = -1;
	if (v < min) {
		host->conf_error(s, "expected bytes (at least %lldm), e.g. 268435456 or \"256m\"",
		                 min >> 20);
		return -1;
	}
	return v;
}
