#include "config.h"

#include "host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "host_services.h"
#include "http_client.h"
#include "log.h"
#include "redis_conn.h"
#include "store.h"

/* One host per process: the plugin-facing functions below take no
 * context argument, so they reach it through this pointer. */
static struct host *host_current;

static void host_log(enum scaler_log_level level, const char *who, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	if (level > log_get_level())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(level, who, "%s", msg);
}

static int host_conf_error(const config_setting_t *setting, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return conf_error(setting, "%s", msg);
}

static struct scaler_http_call *host_http_request(const struct scaler_http_request *req,
                                                  scaler_http_cb cb, void *arg)
{
	return http_client_request(host_current->http, req, cb, arg);
}

static void host_http_cancel(struct scaler_http_call *call)
{
	http_client_cancel(call);
}

static int host_redis_command(scaler_redis_cb cb, void *arg, const char *fmt, ...)
{
	va_list ap;
	int rc;
	if (!host_current->redis)
		return -1;
	va_start(ap, fmt);
	rc = redis_conn_vcommand(host_current->redis, cb, arg, fmt, ap);
	va_end(ap);
	return rc;
}

static int host_redis_command_argv(scaler_redis_cb cb, void *arg, int argc, const char **argv,
                                   const size_t *argvlen)
{
	if (!host_current->redis)
		return -1;
	return redis_conn_command_argv(host_current->redis, cb, arg, argc, argv, argvlen);
}

/* ---- leadership records, adapted from the store's callbacks ---- */

struct host_lead_call {
	void (*epoch_cb)(void *arg, int status, uint64_t epoch);
	void (*set_cb)(void *arg, int status, uint64_t current_epoch);
	void (*get_cb)(void *arg, int status, const char *id, const char *url,
	               uint64_t leader_epoch, uint64_t current_epoch);
	void *arg;
};

static int host_status(enum store_status st)
{
	return st == STORE_OK ? 0 : st == STORE_STALE ? -2 : -1;
}

static void host_epoch_done(void *arg, enum store_status st, uint64_t epoch, const char *err)
{
	struct host_lead_call *c = arg;
	(void)err;
	c->epoch_cb(c->arg, host_status(st), epoch);
	free(c);
}

static int host_epoch_take(void (*cb)(void *arg, int status, uint64_t epoch), void *arg)
{
	struct host_lead_call *c;
	if (!host_current->store || !(c = calloc(1, sizeof(*c))))
		return -1;
	c->epoch_cb = cb;
	c->arg = arg;
	if (store_epoch_take(host_current->store, host_epoch_done, c) < 0) {
		free(c);
		return -1;
	}
	return 0;
}

struct host_set_call {
	void (*cb)(void *arg, int status, uint64_t current_epoch);
	void *arg;
	uint64_t epoch;
};

static void host_leader_epoch_done(void *arg, enum store_status st, uint64_t epoch, const char *err)
{
	struct host_set_call *c = arg;
	(void)err;
	c->cb(c->arg, -2, st == STORE_OK ? epoch : 0);
	free(c);
}

static void host_leader_set_done(void *arg, enum store_status st, const char *err)
{
	struct host_set_call *c = arg;
	(void)err;
	if (st == STORE_STALE) {
		/* tell the caller which epoch won */
		if (store_epoch_get(host_current->store, host_leader_epoch_done, c) == 0)
			return;
		c->cb(c->arg, -2, 0);
	} else {
		c->cb(c->arg, host_status(st), st == STORE_OK ? c->epoch : 0);
	}
	free(c);
}

static int host_leader_set(uint64_t epoch,
                           void (*cb)(void *arg, int status, uint64_t current_epoch), void *arg)
{
	struct host_set_call *c;
	if (!host_current->store || !(c = calloc(1, sizeof(*c))))
		return -1;
	c->cb = cb;
	c->arg = arg;
	c->epoch = epoch;
	if (store_leader_set(host_current->store, epoch, host_current->node_id,
	                     host_current->admin_url, host_leader_set_done, c) < 0) {
		free(c);
		return -1;
	}
	return 0;
}

static void host_leader_get_done(void *arg, enum store_status st, const struct store_leader *l,
                                 uint64_t current_epoch)
{
	struct host_lead_call *c = arg;
	if (st == STORE_OK && l)
		c->get_cb(c->arg, 0, l->id, l->url, l->epoch, current_epoch);
	else if (st == STORE_NOTFOUND)
		c->get_cb(c->arg, 0, NULL, NULL, 0, current_epoch);
	else
		c->get_cb(c->arg, -1, NULL, NULL, 0, 0);
	free(c);
}

static int host_leader_get(void (*cb)(void *arg, int status, const char *id, const char *url,
                                      uint64_t leader_epoch, uint64_t current_epoch),
                           void *arg)
{
	struct host_lead_call *c;
	if (!host_current->store || !(c = calloc(1, sizeof(*c))))
		return -1;
	c->get_cb = cb;
	c->arg = arg;
	if (store_leader_get(host_current->store, host_leader_get_done, c) < 0) {
		free(c);
		return -1;
	}
	return 0;
}

/* ---- the primary's lease ---- */

struct host_lease_call {
	scaler_lease_cb cb;
	void *arg;
};

static void host_lease_done(void *arg, enum store_status st, const struct store_lease *l)
{
	struct host_lease_call *c = arg;
	struct scaler_lease pub = {0};
	int status = st == STORE_OK ? 0 : st == STORE_STALE ? -2 : st == STORE_HELD ? -3 : -1;

	if (l && l->holder[0]) {
		pub.holder = l->holder;
		pub.epoch = l->epoch;
		pub.remaining = l->remaining;
		pub.ref = l->ref;
	}
	if (c->cb)
		c->cb(c->arg, status, l ? &pub : NULL, l ? l->current_epoch : 0);
	free(c);
}

static struct host_lease_call *host_lease_call(scaler_lease_cb cb, void *arg)
{
	struct host_lease_call *c;
	if (!host_current->store || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->cb = cb;
	c->arg = arg;
	return c;
}

/* Free the call when the store could not send it. */
static int host_lease_sent(struct host_lease_call *c, int rc)
{
	if (rc < 0)
		free(c);
	return rc < 0 ? -1 : 0;
}

static int host_lease_take(double ttl, scaler_lease_cb cb, void *arg)
{
	struct host_lease_call *c = host_lease_call(cb, arg);
	return c ? host_lease_sent(c, store_lease_take(host_current->store, host_current->node_id,
	                                               host_current->admin_url, ttl,
	                                               host_lease_done, c))
	         : -1;
}

static int host_lease_renew(uint64_t epoch, double ttl, scaler_lease_cb cb, void *arg)
{
	struct host_lease_call *c = host_lease_call(cb, arg);
	return c ? host_lease_sent(c, store_lease_renew(host_current->store, host_current->node_id,
	                                                epoch, ttl, host_lease_done, c))
	         : -1;
}

static int host_lease_release(uint64_t epoch, scaler_lease_cb cb, void *arg)
{
	struct host_lease_call *c = host_lease_call(cb, arg);
	return c ? host_lease_sent(c,
	                           store_lease_release(host_current->store, host_current->node_id,
	                                               epoch, host_lease_done, c))
	         : -1;
}

static int host_lease_get(scaler_lease_cb cb, void *arg)
{
	struct host_lease_call *c = host_lease_call(cb, arg);
	return c ? host_lease_sent(c, store_lease_get(host_current->store, host_lease_done, c))
	         : -1;
}

static int host_lease_break(const struct scaler_lease *lease, scaler_lease_cb cb, void *arg)
{
	struct host_lease_call *c;
	if (!lease || !lease->ref || !(c = host_lease_call(cb, arg)))
		return -1;
	return host_lease_sent(
	    c, store_lease_break(host_current->store, lease->ref, host_lease_done, c));
}

static struct scaler_deferred *host_defer(void (*fn)(void *arg), void *arg)
{
	return defer_on(host_current->loop, fn, arg);
}

static char *host_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct host *host_new(struct ev_loop *loop, const struct host_params *p, char *err, size_t errlen)
{
	struct host *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->loop = loop;
	h->node_id = host_strdup(p->node_id ? p->node_id : "0");
	h->cluster = host_strdup(p->cluster ? p->cluster : "scaler");
	h->admin_url = host_strdup(p->admin_url ? p->admin_url : "");
	h->token = p->token && *p->token ? host_strdup(p->token) : NULL;
	h->state_dir = host_strdup(p->state_dir);
	h->http = http_client_new(loop);
	if (!h->http) {
		snprintf(err, errlen, "cannot start the HTTP client");
		host_free(h);
		return NULL;
	}
	if (p->redis_url) {
		h->redis = redis_conn_new(loop, p->redis_url, err, errlen);
		if (!h->redis) {
			host_free(h);
			return NULL;
		}
		h->store = store_new(h->redis, h->cluster);
	}

	struct scaler_host *s = &h->pub;
	s->abi_major = SCALER_ABI_MAJOR;
	s->abi_minor = SCALER_ABI_MINOR;
	s->size = sizeof(*s);
	s->loop = loop;
	s->node_id = h->node_id;
	s->cluster = h->cluster;
	s->admin_url = h->admin_url;
	s->token = h->token;
	s->log = host_log;
	s->conf_error = host_conf_error;
	s->conf_check_known = conf_check_known;
	s->http_request = host_http_request;
	s->http_cancel = host_http_cancel;
	s->redis_command = host_redis_command;
	s->redis_command_argv = host_redis_command_argv;
	s->epoch_take = host_epoch_take;
	s->leader_set = host_leader_set;
	s->leader_get = host_leader_get;
	s->state_dir = h->state_dir;
	s->public_reads = p->public_reads;
	s->conf_number = conf_number;
	s->conf_integer = conf_integer;
	s->lease_take = host_lease_take;
	s->lease_renew = host_lease_renew;
	s->lease_release = host_lease_release;
	s->lease_get = host_lease_get;
	s->lease_break = host_lease_break;
	s->defer = host_defer;
	s->defer_cancel = defer_cancel;
	host_current = h;
	return h;
}

void host_close_redis(struct host *h)
{
	if (!h || !h->redis)
		return;
	struct redis_conn *r = h->redis;
	struct store *st = h->store;
	/* the store stays usable while its pending replies come back */
	redis_conn_free(r);
	h->redis = NULL;
	h->store = NULL;
	store_free(st);
}

void host_free(struct host *h)
{
	if (!h)
		return;
	if (h->store)
		store_free(h->store);
	if (h->redis)
		redis_conn_free(h->redis);
	if (h->http)
		http_client_free(h->http);
	if (host_current == h)
		host_current = NULL;
	free(h->node_id);
	free(h->cluster);
	free(h->admin_url);
	free(h->token);
	free(h->state_dir);
	free(h);
}
