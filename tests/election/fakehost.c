/* See fakehost.h. */
#include "config.h"

#include "fakehost.h"

#include "conf.h"

#include <dlfcn.h>
#include <ev.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum fake_store_op { FAKE_EPOCH_TAKE, FAKE_LEADER_SET, FAKE_LEADER_GET };

struct fake_store_cb {
	enum fake_store_op op;
	void *cb;
	void *arg;
	uint64_t epoch; /* leader_set: the writer's epoch */
	struct fake_store_cb *next;
};

static struct fake_host *fake_current; /* log and conf_error have no context */

static void fake_log(enum scaler_log_level level, const char *who, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fake_current)
		snprintf(fake_current->last_log, sizeof(fake_current->last_log), "%s", msg);
	if (getenv("FAKEHOST_VERBOSE"))
		fprintf(stderr, "# [%d] %s: %s\n", (int)level, who ? who : "", msg);
}

static int fake_conf_error(const config_setting_t *setting, const char *fmt, ...)
{
	va_list ap;
	char msg[800];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fake_current)
		snprintf(fake_current->last_log, sizeof(fake_current->last_log), "line %d: %s: %s",
		         setting ? config_setting_source_line(setting) : 0,
		         setting && config_setting_name(setting) ? config_setting_name(setting)
		                                                 : "?",
		         msg);
	if (getenv("FAKEHOST_VERBOSE") && fake_current)
		fprintf(stderr, "# conf_error %s\n", fake_current->last_log);
	return -1;
}

static int fake_conf_check_known(const config_setting_t *group, const char *const *known)
{
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		int ok = 0;
		for (const char *const *k = known; *k; k++)
			if (name && strcmp(name, *k) == 0)
				ok = 1;
		if (!ok)
			return fake_conf_error(s, "unknown setting");
	}
	return 0;
}

static struct scaler_http_call *fake_http_request(const struct scaler_http_request *req,
                                                  scaler_http_cb cb, void *arg)
{
	struct fake_host *h = fake_current;
	struct fake_call *c;

	if (!req || !req->url || h->ncalls >= FAKE_MAX_CALLS)
		return NULL;
	c = &h->calls[h->ncalls++];
	memset(c, 0, sizeof(*c));
	snprintf(c->method, sizeof(c->method), "%s", req->method ? req->method : "GET");
	snprintf(c->url, sizeof(c->url), "%s", req->url);
	if (req->body)
		snprintf(c->body, sizeof(c->body), "%.*s", (int)req->body_len, req->body);
	for (const char *const *hd = req->headers; hd && *hd; hd++)
		if (strncasecmp(*hd, "Authorization:", 14) == 0)
			snprintf(c->auth, sizeof(c->auth), "%s", *hd);
	c->timeout = req->timeout;
	c->cb = cb;
	c->arg = arg;
	c->state = FAKE_PENDING;
	return (struct scaler_http_call *)c;
}

static void fake_http_cancel(struct scaler_http_call *call)
{
	struct fake_call *c = (struct fake_call *)call;

	if (c->state == FAKE_PENDING)
		c->state = FAKE_CANCELLED;
}

static void fake_enqueue(struct fake_host *h, enum fake_store_op op, void *cb, void *arg,
                         uint64_t epoch)
{
	struct fake_store_cb *q = calloc(1, sizeof(*q));

	q->op = op;
	q->cb = cb;
	q->arg = arg;
	q->epoch = epoch;
	*h->queue_tail = q;
	h->queue_tail = &q->next;
	ev_idle_start(h->loop, &h->idle);
}

/* Store calls answer from the loop, never from inside the call, like Redis. */
static void fake_store_deliver(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct fake_host *h = w->data;
	struct fake_store_cb *q = h->queue;

	if (!q) {
		ev_idle_stop(loop, w);
		return;
	}
	h->queue = q->next;
	if (!h->queue)
		h->queue_tail = &h->queue;
	switch (q->op) {
	case FAKE_EPOCH_TAKE: {
		void (*cb)(void *, int, uint64_t) = (void (*)(void *, int, uint64_t))q->cb;
		if (h->redis_down)
			cb(q->arg, -1, 0);
		else {
			uint64_t e = ++h->epoch;
			if (h->steal_after_take) {
				h->steal_after_take = 0;
				h->epoch++;
			}
			cb(q->arg, 0, e);
		}
		break;
	}
	case FAKE_LEADER_SET: {
		void (*cb)(void *, int, uint64_t) = (void (*)(void *, int, uint64_t))q->cb;
		if (h->redis_down) {
			cb(q->arg, -1, 0);
		} else if (q->epoch != h->epoch) {
			cb(q->arg, -2, h->epoch);
		} else {
			snprintf(h->leader_id, sizeof(h->leader_id), "%s", h->pub.node_id);
			snprintf(h->leader_url, sizeof(h->leader_url), "%s", h->pub.admin_url);
			h->leader_epoch = q->epoch;
			cb(q->arg, 0, h->epoch);
		}
		break;
	}
	case FAKE_LEADER_GET: {
		void (*cb)(void *, int, const char *, const char *, uint64_t, uint64_t) =
		    (void (*)(void *, int, const char *, const char *, uint64_t, uint64_t))q->cb;
		if (h->redis_down)
			cb(q->arg, -1, NULL, NULL, 0, 0);
		else
			cb(q->arg, 0, h->leader_id, h->leader_url, h->leader_epoch, h->epoch);
		break;
	}
	}
	free(q);
}

static int fake_epoch_take(void (*cb)(void *arg, int status, uint64_t epoch), void *arg)
{
	fake_current->n_epoch_take++;
	fake_enqueue(fake_current, FAKE_EPOCH_TAKE, (void *)cb, arg, 0);
	return 0;
}

static int fake_leader_set(uint64_t epoch,
                           void (*cb)(void *arg, int status, uint64_t current_epoch), void *arg)
{
	fake_current->n_leader_set++;
	fake_enqueue(fake_current, FAKE_LEADER_SET, (void *)cb, arg, epoch);
	return 0;
}

static int fake_leader_get(void (*cb)(void *arg, int status, const char *id, const char *url,
                                      uint64_t leader_epoch, uint64_t current_epoch),
                           void *arg)
{
	fake_current->n_leader_get++;
	fake_enqueue(fake_current, FAKE_LEADER_GET, (void *)cb, arg, 0);
	return 0;
}

static void fake_on_elected(void *arg, uint64_t epoch)
{
	struct fake_host *h = arg;
	h->n_elected++;
	h->elected_epoch = epoch;
}

static void fake_on_deposed(void *arg, const char *reason)
{
	struct fake_host *h = arg;
	h->n_deposed++;
	snprintf(h->deposed_reason, sizeof(h->deposed_reason), "%s", reason ? reason : "");
}

static void fake_on_primary(void *arg, const char *id, const char *url, uint64_t epoch)
{
	struct fake_host *h = arg;
	h->n_primary++;
	snprintf(h->primary_id, sizeof(h->primary_id), "%s", id ? id : "");
	snprintf(h->primary_url, sizeof(h->primary_url), "%s", url ? url : "");
	h->primary_epoch = epoch;
}

struct fake_host *fake_host_new(const char *node_id, const char *admin_url, const char *token)
{
	struct fake_host *h = calloc(1, sizeof(*h));

	h->loop = ev_loop_new(EVFLAG_AUTO);
	h->pub.abi_major = SCALER_ABI_MAJOR;
	h->pub.abi_minor = SCALER_ABI_MINOR;
	h->pub.size = sizeof(h->pub);
	h->pub.loop = h->loop;
	h->pub.node_id = node_id;
	h->pub.cluster = "test";
	h->pub.admin_url = admin_url;
	h->pub.token = token;
	h->pub.log = fake_log;
	h->pub.conf_error = fake_conf_error;
	h->pub.conf_check_known = fake_conf_check_known;
	h->pub.conf_number = conf_number;
	h->pub.conf_integer = conf_integer;
	h->pub.http_request = fake_http_request;
	h->pub.http_cancel = fake_http_cancel;
	h->pub.epoch_take = fake_epoch_take;
	h->pub.leader_set = fake_leader_set;
	h->pub.leader_get = fake_leader_get;
	h->queue_tail = &h->queue;
	ev_idle_init(&h->idle, fake_store_deliver);
	h->idle.data = h;
	config_init(&h->cfg);
	fake_current = h;
	conf_number_reporter(fake_conf_error);
	return h;
}

void fake_host_free(struct fake_host *h)
{
	if (h->plugin && h->ctx)
		h->plugin->fini(h->ctx);
	/* like a closing Redis connection: every pending call fails, after fini */
	h->redis_down = 1;
	while (h->queue)
		fake_store_deliver(h->loop, &h->idle, 0);
	ev_idle_stop(h->loop, &h->idle);
	if (h->dl)
		dlclose(h->dl);
	config_destroy(&h->cfg);
	ev_loop_destroy(h->loop);
	if (fake_current == h)
		fake_current = NULL;
	free(h);
}

int fake_load(struct fake_host *h, const char *name, const char *conf_text)
{
	const char *dir = getenv("SCALER_PLUGIN_DIR");
	const config_setting_t *group = NULL;
	char path[4096];

	fake_current = h;
	snprintf(path, sizeof(path), "%s/election_%s.so", dir ? dir : ".libs", name);
	h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h->dl) {
		fprintf(stderr, "# cannot load %s: %s\n", path, dlerror());
		return -2;
	}
	h->plugin = dlsym(h->dl, SCALER_PLUGIN_SYMBOL);
	if (!h->plugin || h->plugin->kind != SCALER_KIND_ELECTION) {
		fprintf(stderr, "# %s exports no election descriptor\n", path);
		return -2;
	}
	if (conf_text) {
		if (!config_read_string(&h->cfg, conf_text)) {
			fprintf(stderr, "# bad test config line %d: %s\n",
			        config_error_line(&h->cfg), config_error_text(&h->cfg));
			return -2;
		}
		group = config_lookup(&h->cfg, "election");
	}
	return h->plugin->init(&h->pub, group, &h->ctx);
}

int fake_start(struct fake_host *h)
{
	struct scaler_election_events ev = {
	    .arg = h,
	    .elected = fake_on_elected,
	    .deposed = fake_on_deposed,
	    .primary = fake_on_primary,
	};
	fake_current = h;
	return h->plugin->ops.election->start(h->ctx, &ev);
}

static void fake_stop_loop(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ONE);
}

void fake_run(struct fake_host *h, double seconds)
{
	ev_timer t;

	fake_current = h;
	ev_timer_init(&t, fake_stop_loop, seconds, 0.);
	ev_timer_start(h->loop, &t);
	ev_run(h->loop, 0);
	ev_timer_stop(h->loop, &t);
}

int fake_run_until(struct fake_host *h, int (*pred)(struct fake_host *h), double seconds)
{
	ev_tstamp end = ev_time() + seconds;
	int v;

	while (!(v = pred(h)) && ev_time() < end)
		fake_run(h, 0.005);
	return v;
}

char *fake_message(struct fake_host *h, const char *type, const char *body, int *status)
{
	char *reply = NULL;

	fake_current = h;
	h->plugin->ops.election->message(h->ctx, type, body, body ? strlen(body) : 0, status,
	                                 &reply);
	return reply;
}

json_t *fake_status(struct fake_host *h)
{
	char *s = h->plugin->ops.election->status_json(h->ctx);
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;

	free(s);
	return j;
}

const char *fake_status_str(struct fake_host *h, const char *key)
{
	static char buf[256];
	json_t *j = fake_status(h);
	const char *v = json_string_value(json_object_get(j, key));

	snprintf(buf, sizeof(buf), "%s", v ? v : "");
	json_decref(j);
	return buf;
}

long long fake_status_int(struct fake_host *h, const char *key)
{
	json_t *j = fake_status(h);
	long long v = json_integer_value(json_object_get(j, key));

	json_decref(j);
	return v;
}

static int fake_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

int fake_find_call(struct fake_host *h, const char *url_suffix, int state, int from)
{
	for (int i = from < 0 ? 0 : from; i < h->ncalls; i++)
		if (fake_ends_with(h->calls[i].url, url_suffix) &&
		    (state < 0 || (int)h->calls[i].state == state))
			return i;
	return -1;
}

int fake_count_calls(struct fake_host *h, const char *url_suffix)
{
	int n = 0;

	for (int i = 0; i < h->ncalls; i++)
		n += fake_ends_with(h->calls[i].url, url_suffix);
	return n;
}

void fake_answer(struct fake_host *h, int i, long status, const char *body)
{
	struct fake_call *c = &h->calls[i];
	struct scaler_http_response r = {0};

	if (c->state != FAKE_PENDING)
		return;
	c->state = FAKE_ANSWERED;
	r.status = status;
	r.body = status ? (body ? body : "") : NULL;
	r.body_len = r.body ? strlen(r.body) : 0;
	r.error = status ? NULL : (body ? body : "Connection refused");
	fake_current = h;
	c->cb(c->arg, &r);
}

int fake_answer_all(struct fake_host *h, const char *url_suffix, long status, const char *body)
{
	int n = 0;

	for (int i = 0; i < h->ncalls; i++)
		if (h->calls[i].state == FAKE_PENDING &&
		    fake_ends_with(h->calls[i].url, url_suffix)) {
			fake_answer(h, i, status, body);
			n++;
		}
	return n;
}
