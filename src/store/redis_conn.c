#include "config.h"

#include "redis_conn.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"

#define RC_BACKOFF_MIN 0.1
#define RC_BACKOFF_MAX 5.0
#define RC_CONNECT_TIMEOUT 5.0
#define RC_REPLY_TIMEOUT 15.0 /* no reply for this long while commands wait: reconnect */

struct redis_conn {
	struct ev_loop *loop;
	redisAsyncContext *ac;        /* NULL while waiting to reconnect */
	int connected;                /* handshake (AUTH, SELECT) done */
	unsigned long long client_id; /* CLIENT ID of this connection, 0: unknown */
	int logged_down;              /* "unreachable" logged once per outage */
	char last_err[300];           /* last handshake error logged */

	/* where to */
	char host[256];
	int port;
	char path[108]; /* unix socket, "" for TCP */
	char *user;     /* NULL: AUTH with password only */
	char *password; /* NULL: no AUTH */
	int db;
	char where[300]; /* for messages, without the password */

	double backoff;
	ev_timer retry;
	ev_timer connect_timer;

	/* a Redis that stops answering (frozen, partitioned) is dropped */
	size_t pending;     /* commands awaiting their reply */
	ev_tstamp progress; /* last reply, or when the first pending command was sent */
	double reply_timeout;
	ev_timer watchdog;

	void (*state_cb)(void *arg, int connected);
	void *state_arg;
};

/* One command in flight: the caller's callback behind hiredis' own. */
struct rc_call {
	struct redis_conn *r;
	scaler_redis_cb cb;
	void *arg;
};

static void rc_connect(struct redis_conn *r);

/* ---- URL ---------------------------------------------------------------- */

static int rc_unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape. */
static char *rc_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < n ? rc_unhex((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? rc_unhex((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi << 4 | lo) == 0) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static int rc_parse_int(const char *s, size_t n, int min, int max, int *out)
{
	long v = 0;
	if (n == 0 || n > 9)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int rc_parse_url(struct redis_conn *r, const char *url, char *err, size_t errlen)
{
	if (!url || !*url) {
		snprintf(err, errlen, "empty Redis URL");
		return -1;
	}
	if (strncmp(url, "unix:", 5) == 0) {
		const char *p = url + 5;
		if (strncmp(p, "//", 2) == 0)
			p += 2;
		size_t n = strcspn(p, "?");
		if (n == 0 || p[0] != '/') {
			snprintf(err, errlen,
			         "Redis URL \"%s\": expected unix:/absolute/path[?db=N]", url);
			return -1;
		}
		if (n >= sizeof(r->path)) {
			snprintf(err, errlen, "Redis URL \"%s\": socket path longer than %zu bytes",
			         url, sizeof(r->path) - 1);
			return -1;
		}
		memcpy(r->path, p, n);
		r->path[n] = '\0';
		const char *q = p + n;
		while (*q == '?' || *q == '&') {
			q++;
			size_t m = strcspn(q, "&");
			if (strncmp(q, "db=", 3) == 0) {
				if (rc_parse_int(q + 3, m - 3, 0, 100000, &r->db) < 0) {
					snprintf(err, errlen,
					         "Redis URL \"%s\": db must be a number >= 0", url);
					return -1;
				}
			} else if (strncmp(q, "password=", 9) == 0) {
				free(r->password);
				r->password = rc_decode(q + 9, m - 9);
				if (!r->password) {
					snprintf(err, errlen, "Redis URL \"%s\": bad %%-escape",
					         url);
					return -1;
				}
			} else {
				snprintf(
				    err, errlen,
				    "Redis URL \"%s\": unknown parameter \"%.*s\" (db, password)",
				    url, (int)m, q);
				return -1;
			}
			q += m;
		}
		snprintf(r->where, sizeof(r->where), "unix:%s", r->path);
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen,
		         "Redis URL \"%s\": expected redis://[:password@]host:port[/db] or "
		         "unix:/path[?db=N]",
		         url);
		return -1;
	}
	const char *p = url + 8;
	const char *end = p + strcspn(p, "/?#");
	const char *at = NULL;
	for (const char *c = p; c < end; c++)
		if (*c == '@')
			at = c;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon) {
			snprintf(
			    err, errlen,
			    "Redis URL \"%s\": credentials must be :password@ or user:password@",
			    url);
			return -1;
		}
		if (colon > p) {
			r->user = rc_decode(p, (size_t)(colon - p));
			if (!r->user)
				goto bad_escape;
		}
		r->password = rc_decode(colon + 1, (size_t)(at - colon - 1));
		if (!r->password)
			goto bad_escape;
		p = at + 1;
	}
	/* host[:port], host may be [v6] */
	const char *hend, *portp = NULL;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (!rb) {
			snprintf(err, errlen, "Redis URL \"%s\": missing ']'", url);
			return -1;
		}
		p++;
		hend = rb;
		if (rb + 1 < end) {
			if (rb[1] != ':')
				goto bad_port;
			portp = rb + 2;
		}
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		hend = colon ? colon : end;
		if (colon)
			portp = colon + 1;
	}
	if (hend == p) {
		snprintf(err, errlen, "Redis URL \"%s\": no host", url);
		return -1;
	}
	if ((size_t)(hend - p) >= sizeof(r->host)) {
		snprintf(err, errlen, "Redis URL \"%s\": host name too long", url);
		return -1;
	}
	memcpy(r->host, p, (size_t)(hend - p));
	r->host[hend - p] = '\0';
	r->port = 6379;
	if (portp && rc_parse_int(portp, (size_t)(end - portp), 1, 65535, &r->port) < 0)
		goto bad_port;
	if (*end == '/') {
		const char *d = end + 1;
		size_t n = strcspn(d, "?#");
		if (n > 0 && rc_parse_int(d, n, 0, 100000, &r->db) < 0) {
			snprintf(err, errlen, "Redis URL \"%s\": db must be a number >= 0", url);
			return -1;
		}
		end = d + n;
	}
	if (*end) {
		snprintf(err, errlen, "Redis URL \"%s\": unexpected \"%s\"", url, end);
		return -1;
	}
	snprintf(r->where, sizeof(r->where), "%s%s%s:%d", strchr(r->host, ':') ? "[" : "", r->host,
	         strchr(r->host, ':') ? "]" : "", r->port);
	return 0;
bad_port:
	snprintf(err, errlen, "Redis URL \"%s\": port must be a number from 1 to 65535", url);
	return -1;
bad_escape:
	snprintf(err, errlen, "Redis URL \"%s\": bad %%-escape in the credentials", url);
	return -1;
}

/* ---- connection state --------------------------------------------------- */

static void rc_set_state(struct redis_conn *r, int connected)
{
	if (!connected)
		r->client_id = 0;
	if (r->connected == connected)
		return;
	r->connected = connected;
	if (r->state_cb)
		r->state_cb(r->state_arg, connected);
}

static void rc_schedule_retry(struct redis_conn *r)
{
	ev_timer_stop(r->loop, &r->connect_timer);
	if (ev_is_active(&r->retry))
		return;
	ev_timer_set(&r->retry, r->backoff, 0.);
	ev_timer_start(r->loop, &r->retry);
	r->backoff *= 2;
	if (r->backoff > RC_BACKOFF_MAX)
		r->backoff = RC_BACKOFF_MAX;
}

static void rc_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	rc_connect(w->data);
}

/* hiredis frees the context after this returns. */
static void rc_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_conn *r = ac->data;
	if (!r)
		return;
	r->ac = NULL;
	ev_timer_stop(r->loop, &r->watchdog);
	if (r->connected)
		log_msg(SCALER_LOG_WARNING, "redis", "connection to %s lost%s%s; reconnecting",
		        r->where, ac->errstr[0] ? ": " : "", ac->errstr);
	if (r->connected)
		r->backoff = RC_BACKOFF_MIN;
	r->logged_down = 1;
	rc_set_state(r, 0);
	rc_schedule_retry(r);
}

/* A failed handshake step: drop the connection and try again later. */
static void rc_handshake_failed(struct redis_conn *r, redisAsyncContext *ac, const char *step,
                                const redisReply *reply)
{
	char msg[sizeof(r->last_err)];
	snprintf(msg, sizeof(msg), "%s on %s failed: %s", step, r->where,
	         reply ? reply->str : "connection lost");
	/* once per outage, not at every retry */
	if (strcmp(msg, r->last_err) != 0)
		log_msg(SCALER_LOG_ERR, "redis", "%s (retrying)", msg);
	snprintf(r->last_err, sizeof(r->last_err), "%s", msg);
	if (reply)
		redisAsyncDisconnect(ac);
}

static void rc_ready_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis_conn *r = ac->data;
	redisReply *reply = reply_;
	const char *step = privdata;
	if (!r || !reply || (ac->c.flags & REDIS_DISCONNECTING))
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		rc_handshake_failed(r, ac, step, reply);
		return;
	}
	if (strcmp(step, "ready") != 0)
		return;
	if (r->logged_down)
		log_msg(SCALER_LOG_NOTICE, "redis", "connected to %s again", r->where);
	else
		log_msg(SCALER_LOG_INFO, "redis", "connected to %s", r->where);
	r->logged_down = 0;
	r->last_err[0] = '\0';
	r->backoff = RC_BACKOFF_MIN;
	r->progress = ev_now(r->loop);
	if (r->reply_timeout > 0)
		ev_timer_start(r->loop, &r->watchdog);
	rc_set_state(r, 1);
}

/* The id Redis gives this connection: a lease names it, so that others can
 * ask Redis whether its holder is still connected. Optional (an ACL may
 * refuse CLIENT, an old Redis not know it): 0 then. Any other error (a
 * protected or loading Redis) fails the handshake like PING would. */
static void rc_client_id_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis_conn *r = ac->data;
	redisReply *reply = reply_;
	if (!r || !reply || (ac->c.flags & REDIS_DISCONNECTING))
		return;
	if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
		r->client_id = (unsigned long long)reply->integer;
	else if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOPERM", 6) != 0 &&
	         strncmp(reply->str, "ERR unknown", 11) != 0)
		rc_handshake_failed(r, ac, privdata, reply);
}

static void rc_connect_cb(const redisAsyncContext *cac, int status)
{
	struct redis_conn *r = cac->data;
	redisAsyncContext *ac = (redisAsyncContext *)cac;
	if (!r)
		return;
	ev_timer_stop(r->loop, &r->connect_timer);
	if (status != REDIS_OK) {
		/* hiredis frees the context after this returns */
		r->ac = NULL;
		if (!r->logged_down)
			log_msg(SCALER_LOG_WARNING, "redis", "cannot connect to %s: %s; retrying",
			        r->where, cac->errstr);
		r->logged_down = 1;
		rc_schedule_retry(r);
		return;
	}
	if (!r->path[0])
		redisEnableKeepAlive(&ac->c);
	if (r->password) {
		if (r->user)
			redisAsyncCommand(ac, rc_ready_cb, "AUTH", "AUTH %s %s", r->user,
			                  r->password);
		else
			redisAsyncCommand(ac, rc_ready_cb, "AUTH", "AUTH %s", r->password);
	}
	if (r->db)
		redisAsyncCommand(ac, rc_ready_cb, "SELECT", "SELECT %d", r->db);
	redisAsyncCommand(ac, rc_client_id_cb, "CLIENT ID", "CLIENT ID");
	redisAsyncCommand(ac, rc_ready_cb, "ready", "PING");
}

static void rc_connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_conn *r = w->data;
	redisAsyncContext *ac = r->ac;
	if (!ac)
		return;
	if (!r->logged_down)
		log_msg(SCALER_LOG_WARNING, "redis", "cannot connect to %s: timed out; retrying",
		        r->where);
	r->logged_down = 1;
	r->ac = NULL;
	ac->data = NULL;
	redisAsyncFree(ac);
	rc_set_state(r, 0);
	rc_schedule_retry(r);
}

static void rc_watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct redis_conn *r = w->data;
	redisAsyncContext *ac = r->ac;
	if (!ac || !r->pending || ev_now(loop) - r->progress < r->reply_timeout)
		return;
	log_msg(SCALER_LOG_WARNING, "redis",
	        "%s has not answered %zu command(s) for %.0f s; reconnecting", r->where, r->pending,
	        ev_now(loop) - r->progress);
	ev_timer_stop(loop, w);
	r->ac = NULL;
	ac->data = NULL;
	redisAsyncFree(ac); /* the waiting callbacks get NULL */
	r->logged_down = 1;
	r->backoff = RC_BACKOFF_MIN;
	rc_set_state(r, 0);
	rc_schedule_retry(r);
}

static void rc_connect(struct redis_conn *r)
{
	redisAsyncContext *ac;
	if (r->ac)
		return;
	ac = r->path[0] ? redisAsyncConnectUnix(r->path) : redisAsyncConnect(r->host, r->port);
	if (!ac || ac->err) {
		if (!r->logged_down)
			log_msg(SCALER_LOG_WARNING, "redis", "cannot connect to %s: %s; retrying",
			        r->where, ac ? ac->errstr : "out of memory");
		r->logged_down = 1;
		if (ac)
			redisAsyncFree(ac);
		rc_schedule_retry(r);
		return;
	}
	/* children (servers of the process driver) must not inherit it */
	if (ac->c.fd >= 0)
		fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
	ac->data = r;
	if (redisLibevAttach(r->loop, ac) != REDIS_OK) {
		ac->data = NULL;
		redisAsyncFree(ac);
		rc_schedule_retry(r);
		return;
	}
	redisAsyncSetConnectCallback(ac, rc_connect_cb);
	redisAsyncSetDisconnectCallback(ac, rc_disconnect_cb);
	r->ac = ac;
	ev_timer_set(&r->connect_timer, RC_CONNECT_TIMEOUT, 0.);
	ev_timer_start(r->loop, &r->connect_timer);
}

/* ---- public ------------------------------------------------------------- */

struct redis_conn *redis_conn_new(struct ev_loop *loop, const char *url, char *err, size_t errlen)
{
	struct redis_conn *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->loop = loop;
	if (rc_parse_url(r, url, err, errlen) < 0) {
		free(r->user);
		free(r->password);
		free(r);
		return NULL;
	}
	r->backoff = RC_BACKOFF_MIN;
	ev_timer_init(&r->retry, rc_retry_cb, 0., 0.);
	r->retry.data = r;
	ev_timer_init(&r->connect_timer, rc_connect_timeout_cb, 0., 0.);
	r->connect_timer.data = r;
	r->reply_timeout = RC_REPLY_TIMEOUT;
	ev_timer_init(&r->watchdog, rc_watchdog_cb, 1., 1.);
	r->watchdog.data = r;
	rc_connect(r);
	return r;
}

void redis_conn_free(struct redis_conn *r)
{
	if (!r)
		return;
	ev_timer_stop(r->loop, &r->retry);
	ev_timer_stop(r->loop, &r->connect_timer);
	ev_timer_stop(r->loop, &r->watchdog);
	r->state_cb = NULL;
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		ac->data = NULL;
		/* pending callbacks get NULL replies */
		redisAsyncFree(ac);
	}
	free(r->user);
	free(r->password);
	free(r);
}

int redis_conn_connected(const struct redis_conn *r)
{
	return r && r->connected && r->ac;
}

unsigned long long redis_conn_client_id(const struct redis_conn *r)
{
	return redis_conn_connected(r) ? r->client_id : 0;
}

void redis_conn_set_reply_timeout(struct redis_conn *r, double seconds)
{
	r->reply_timeout = seconds > 0 ? seconds : 0;
	ev_timer_stop(r->loop, &r->watchdog);
	if (r->reply_timeout > 0) {
		double every = r->reply_timeout < 4 ? r->reply_timeout / 4 : 1.;
		ev_timer_set(&r->watchdog, every, every);
		if (r->connected)
			ev_timer_start(r->loop, &r->watchdog);
	}
}

int redis_conn_down(const struct redis_conn *r)
{
	return !r->connected && r->logged_down;
}

void redis_conn_on_state(struct redis_conn *r, void (*cb)(void *arg, int connected), void *arg)
{
	r->state_cb = cb;
	r->state_arg = arg;
}

static void rc_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rc_call *c = privdata;
	struct redis_conn *r = c->r;
	/* r is alive here: redis_conn_free frees it only after the context */
	r->pending--;
	r->progress = ev_now(r->loop);
	if (c->cb)
		c->cb(c->arg, reply);
	free(c);
}

static struct rc_call *rc_call_new(struct redis_conn *r, scaler_redis_cb cb, void *arg)
{
	struct rc_call *c;
	if (!redis_conn_connected(r) || (r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
		return NULL;
	c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	c->r = r;
	c->cb = cb;
	c->arg = arg;
	return c;
}

/* The command is queued: count it. */
static int rc_sent(struct redis_conn *r, struct rc_call *c, int status)
{
	if (status != REDIS_OK) {
		free(c);
		return -1;
	}
	if (r->pending++ == 0)
		r->progress = ev_now(r->loop);
	return 0;
}

int redis_conn_vcommand(struct redis_conn *r, scaler_redis_cb cb, void *arg, const char *fmt,
                        va_list ap)
{
	struct rc_call *c = rc_call_new(r, cb, arg);
	if (!c)
		return -1;
	return rc_sent(r, c, redisvAsyncCommand(r->ac, rc_reply_cb, c, fmt, ap));
}

int redis_conn_command(struct redis_conn *r, scaler_redis_cb cb, void *arg, const char *fmt, ...)
{
	va_list ap;
	int rc;
	va_start(ap, fmt);
	rc = redis_conn_vcommand(r, cb, arg, fmt, ap);
	va_end(ap);
	return rc;
}

int redis_conn_command_argv(struct redis_conn *r, scaler_redis_cb cb, void *arg, int argc,
                            const char **argv, const size_t *argvlen)
{
	struct rc_call *c = rc_call_new(r, cb, arg);
	if (!c)
		return -1;
	return rc_sent(r, c, redisAsyncCommandArgv(r->ac, rc_reply_cb, c, argc, argv, argvlen));
}
