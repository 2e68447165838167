/* See fakehost.h. */
#include "config.h"

#include "fakehost.h"

#include "conf_util.h"
#include "host_services.h"
#include "http_client.h"

#include <dlfcn.h>
#include <ev.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum fake_store_op {
	FAKE_EPOCH_TAKE,
	FAKE_LEADER_SET,
	FAKE_LEADER_GET,
	FAKE_LEASE_TAKE,
	FAKE_LEASE_RENEW,
	FAKE_LEASE_RELEASE,
	FAKE_LEASE_GET,
	FAKE_LEASE_BREAK,
};

struct fake_store_cb {
	enum fake_store_op op;
	void *cb;
	void *arg;
	uint64_t epoch; /* leader_set, lease_*: the writer's epoch */
	double ttl;
	char ref[192]; /* lease_break: the lease as the caller saw it */
	struct fake_store_cb *next;
};

static struct fake_host *fake_current; /* log and conf_error have no context */
static struct ev_loop *fake_loop;      /* the table's loop, for defer */

/* ---- recorded messages ---- */

static char fake_buf[65536];
static size_t fake_len;
static int fake_echo;
static enum scaler_log_level fake_level = SCALER_LOG_DEBUG;

static void fake_record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fake_record(const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (fake_echo || getenv("FAKEHOST_VERBOSE"))
		fprintf(stderr, "%s\n", line);
	if (fake_current)
		snprintf(fake_current->last_log, sizeof(fake_current->last_log), "%s", line);
	n = strlen(line);
	if (fake_len + n + 2 > sizeof(fake_buf))
		return;
	memcpy(fake_buf + fake_len, line, n);
	fake_len += n;
	fake_buf[fake_len++] = '\n';
	fake_buf[fake_len] = '\0';
}

const char *fake_messages(void)
{
	return fake_buf;
}

void fake_messages_clear(void)
{
	fake_len = 0;
	fake_buf[0] = '\0';
}

void fake_messages_echo(int on)
{
	fake_echo = on;
}

void fake_messages_level(enum scaler_log_level max)
{
	fake_level = max;
}

static void fake_log(enum scaler_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fake_log(enum scaler_log_level level, const char *who, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	if (level > fake_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fake_current)
		fake_current->n_err_logs += level == SCALER_LOG_ERR;
	fake_record("log %d %s: %s", (int)level, who ? who : "-", msg);
}

static int fake_conf_error(const config_setting_t *setting, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fake_conf_error(const config_setting_t *setting, const char *fmt, ...)
{
	char msg[4096], path[512] = "";
	const char *file = NULL;
	int line = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (setting) {
		file = config_setting_source_file(setting);
		line = (int)config_setting_source_line(setting);
		conf_setting_path(setting, path, sizeof(path));
	}
	fake_record("conf %s:%d: %s: %s", file ? file : "<string>", line, path, msg);
	return -1;
}

static int fake_conf_check_known(const config_setting_t *group, const char *const *known)
{
	int n = config_setting_length(group), bad = 0;

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		const char *const *k;

		for (k = known; name && *k; k++)
			if (!strcmp(*k, name))
				break;
		if (!name || !*k)
			bad = fake_conf_error(s, "unknown setting %s", name ? name : "(unnamed)");
	}
	return bad;
}

static struct scaler_deferred *fake_defer(void (*fn)(void *arg), void *arg)
{
	return defer_on(fake_current ? fake_current->loop : fake_loop, fn, arg);
}

void fake_host_table(struct scaler_host *host, struct ev_loop *loop)
{
	memset(host, 0, sizeof(*host));
	host->abi_major = SCALER_ABI_MAJOR;
	host->abi_minor = SCALER_ABI_MINOR;
	host->size = sizeof(*host);
	host->loop = loop;
	host->node_id = "1";
	host->cluster = "test";
	host->admin_url = "http://127.0.0.1:1";
	host->log = fake_log;
	host->conf_error = fake_conf_error;
	host->conf_check_known = fake_conf_check_known;
	host->conf_number = conf_number;
	host->conf_integer = conf_integer;
	host->defer = fake_defer;
	host->defer_cancel = defer_cancel;
	fake_loop = loop;
	conf_number_reporter(fake_conf_error);
}

/* ---- a real HTTP client ---- */

static struct http_client *fake_http;

static struct scaler_http_call *fake_real_request(const struct scaler_http_request *req,
                                                  scaler_http_cb cb, void *arg)
{
	return http_client_request(fake_http, req, cb, arg);
}

void fake_host_real_http(struct scaler_host *host, struct ev_loop *loop)
{
	if (!fake_http)
		fake_http = http_client_new(loop);
	host->http_request = fake_real_request;
	host->http_cancel = http_client_cancel;
}

/* ---- plugins ---- */

static const char *fake_kind_name(enum scaler_kind kind)
{
	static const char *const names[] = {NULL,     "driver",   "metrics",
	                                    "policy", "election", "balancer"};
	return (int)kind > 0 && (size_t)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

const struct scaler_plugin *fake_plugin_open(const char *kind, const char *name, char *err,
                                             size_t errlen)
{
	const char *dir = getenv("SCALER_PLUGIN_DIR");
	const struct scaler_plugin *p;
	char path[4096];
	void *h;

	snprintf(path, sizeof(path), "%s/%s_%s.so", dir && *dir ? dir : ".libs", kind, name);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
		return NULL;
	}
	p = dlsym(h, SCALER_PLUGIN_SYMBOL);
	if (!p) {
		snprintf(err, errlen, "%s exports no %s", path, SCALER_PLUGIN_SYMBOL);
		return NULL;
	}
	if (p->abi_major != SCALER_ABI_MAJOR || p->abi_minor > SCALER_ABI_MINOR ||
	    strcmp(p->name, name) || strcmp(fake_kind_name(p->kind), kind)) {
		snprintf(err, errlen,
		         "%s: descriptor says %s %s ABI %u.%u, expected %s %s ABI %d.%d", path,
		         fake_kind_name(p->kind), p->name, p->abi_major, p->abi_minor, kind, name,
		         SCALER_ABI_MAJOR, SCALER_ABI_MINOR);
		return NULL;
	}
	return p; /* the handle stays open for the life of the test */
}

config_setting_t *fake_group(config_t *cf, const char *text, char *err, size_t errlen)
{
	size_t len = strlen(text) + 16;
	char *doc = malloc(len);
	config_setting_t *g;

	config_init(cf);
	if (!doc) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(doc, len, "g = {\n%s\n};", text);
	if (config_read_string(cf, doc) != CONFIG_TRUE) {
		snprintf(err, errlen, "line %d: %s", config_error_line(cf) - 1,
		         config_error_text(cf));
		free(doc);
		return NULL;
	}
	free(doc);
	g = config_lookup(cf, "g");
	if (!g)
		snprintf(err, errlen, "no group");
	return g;
}

int fake_plugin_init(struct scaler_host *host, const struct scaler_plugin *p, config_t *cf,
                     const char *text, void **ctx)
{
	config_setting_t *g = NULL;
	char err[512];

	fake_host_table(host, NULL);
	fake_messages_clear();
	if (text) {
		g = fake_group(cf, text, err, sizeof(err));
		if (!g) {
			/* a broken fixture is the test's own bug: stop loudly */
			fprintf(stderr, "test config \"%s\" does not parse: %s\n", text, err);
			abort();
		}
	} else {
		config_init(cf);
	}
	return p->init(host, g, ctx);
}

/* ---- a whole fake host: recorded HTTP, in-memory leadership store ---- */

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

static struct fake_store_cb *fake_enqueue(struct fake_host *h, enum fake_store_op op, void *cb,
                                          void *arg, uint64_t epoch)
{
	struct fake_store_cb *q = calloc(1, sizeof(*q));

	q->op = op;
	q->cb = cb;
	q->arg = arg;
	q->epoch = epoch;
	*h->queue_tail = q;
	h->queue_tail = &q->next;
	ev_idle_start(h->loop, &h->idle);
	return q;
}

/* ---- the lease, as the store's Lua scripts keep it ---- */

int fake_lease_live(struct fake_host *h)
{
	return h->lease_holder[0] && h->lease_until > ev_now(h->loop) && h->lease_epoch == h->epoch;
}

void fake_lease_hold(struct fake_host *h, const char *holder, uint64_t epoch, double ttl)
{
	h->epoch = epoch;
	h->leader_epoch = epoch;
	snprintf(h->leader_id, sizeof(h->leader_id), "%s", holder);
	snprintf(h->lease_holder, sizeof(h->lease_holder), "%s", holder);
	h->lease_epoch = epoch;
	ev_now_update(h->loop);
	h->lease_until = ev_now(h->loop) + ttl;
}

static void fake_lease_answer(struct fake_host *h, struct fake_store_cb *q, int status)
{
	scaler_lease_cb cb = (scaler_lease_cb)q->cb;
	struct scaler_lease l = {0};
	char ref[192];

	if (status == -1) {
		cb(q->arg, -1, NULL, 0);
		return;
	}
	if (fake_lease_live(h)) {
		snprintf(ref, sizeof(ref), "%s %llu 1", h->lease_holder,
		         (unsigned long long)h->lease_epoch);
		l.holder = h->lease_holder;
		l.epoch = h->lease_epoch;
		l.remaining = h->lease_until - ev_now(h->loop);
		l.ref = ref;
	}
	cb(q->arg, status, &l, h->epoch);
}

static int fake_lease_mine(struct fake_host *h, uint64_t epoch)
{
	return h->lease_holder[0] && h->lease_until > ev_now(h->loop) &&
	       strcmp(h->lease_holder, h->pub.node_id) == 0 && h->lease_epoch == epoch;
}

static void fake_lease_deliver(struct fake_host *h, struct fake_store_cb *q)
{
	char ref[192];

	if (h->redis_down) {
		fake_lease_answer(h, q, -1);
		return;
	}
	switch (q->op) {
	case FAKE_LEASE_TAKE:
		if (fake_lease_live(h) && strcmp(h->lease_holder, h->pub.node_id) != 0) {
			fake_lease_answer(h, q, -3);
			return;
		}
		fake_lease_hold(h, h->pub.node_id, h->epoch + 1, q->ttl);
		snprintf(h->leader_url, sizeof(h->leader_url), "%s", h->pub.admin_url);
		fake_lease_answer(h, q, 0);
		return;
	case FAKE_LEASE_RENEW:
		if (q->epoch != h->epoch || strcmp(h->leader_id, h->pub.node_id) != 0 ||
		    (h->lease_holder[0] && h->lease_until > ev_now(h->loop) &&
		     !fake_lease_mine(h, q->epoch))) {
			if (fake_lease_mine(h, q->epoch))
				h->lease_holder[0] = '\0';
			fake_lease_answer(h, q, -2);
			return;
		}
		fake_lease_hold(h, h->pub.node_id, q->epoch, q->ttl);
		fake_lease_answer(h, q, 0);
		return;
	case FAKE_LEASE_RELEASE:
		if (fake_lease_mine(h, q->epoch))
			h->lease_holder[0] = '\0';
		fake_lease_answer(h, q, 0);
		return;
	case FAKE_LEASE_GET:
		fake_lease_answer(h, q, 0);
		return;
	case FAKE_LEASE_BREAK:
		snprintf(ref, sizeof(ref), "%s %llu 1", h->lease_holder,
		         (unsigned long long)h->lease_epoch);
		if (fake_lease_live(h) && (!h->lease_gone || strcmp(ref, q->ref) != 0)) {
			fake_lease_answer(h, q, -3);
			return;
		}
		h->lease_holder[0] = '\0';
		fake_lease_answer(h, q, 0);
		return;
	default:
		return;
	}
}

/* Store calls answer from the loop, never from inside the call, like Redis. */
static void fake_store_deliver(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct fake_host *h = w->data;
	struct fake_store_cb *q = h->queue;

	if (!q || h->redis_hang) {
		ev_idle_stop(loop, w); /* fake_run starts it again */
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
	default:
		fake_lease_deliver(h, q);
		break;
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

static int fake_lease_take(double ttl, scaler_lease_cb cb, void *arg)
{
	if (fake_current->redis_refuse)
		return -1;
	fake_current->n_lease_take++;
	fake_enqueue(fake_current, FAKE_LEASE_TAKE, (void *)cb, arg, 0)->ttl = ttl;
	return 0;
}

static int fake_lease_renew(uint64_t epoch, double ttl, scaler_lease_cb cb, void *arg)
{
	if (fake_current->redis_refuse)
		return -1;
	fake_current->n_lease_renew++;
	fake_enqueue(fake_current, FAKE_LEASE_RENEW, (void *)cb, arg, epoch)->ttl = ttl;
	return 0;
}

static int fake_lease_release(uint64_t epoch, scaler_lease_cb cb, void *arg)
{
	if (fake_current->redis_refuse)
		return -1;
	fake_current->n_lease_release++;
	fake_enqueue(fake_current, FAKE_LEASE_RELEASE, (void *)cb, arg, epoch);
	return 0;
}

static int fake_lease_get(scaler_lease_cb cb, void *arg)
{
	if (fake_current->redis_refuse)
		return -1;
	fake_current->n_lease_get++;
	fake_enqueue(fake_current, FAKE_LEASE_GET, (void *)cb, arg, 0);
	return 0;
}

static int fake_lease_break(const struct scaler_lease *lease, scaler_lease_cb cb, void *arg)
{
	if (!lease || !lease->ref || !*lease->ref || fake_current->redis_refuse)
		return -1;
	fake_current->n_lease_break++;
	snprintf(fake_enqueue(fake_current, FAKE_LEASE_BREAK, (void *)cb, arg, 0)->ref,
	         sizeof(((struct fake_store_cb *)0)->ref), "%s", lease->ref);
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
	fake_host_table(&h->pub, h->loop);
	h->pub.node_id = node_id;
	h->pub.admin_url = admin_url;
	h->pub.token = token;
	h->pub.http_request = fake_http_request;
	h->pub.http_cancel = fake_http_cancel;
	h->pub.epoch_take = fake_epoch_take;
	h->pub.leader_set = fake_leader_set;
	h->pub.leader_get = fake_leader_get;
	h->pub.lease_take = fake_lease_take;
	h->pub.lease_renew = fake_lease_renew;
	h->pub.lease_release = fake_lease_release;
	h->pub.lease_get = fake_lease_get;
	h->pub.lease_break = fake_lease_break;
	h->queue_tail = &h->queue;
	ev_idle_init(&h->idle, fake_store_deliver);
	h->idle.data = h;
	config_init(&h->cfg);
	fake_current = h;
	return h;
}

void fake_host_free(struct fake_host *h)
{
	if (h->plugin && h->ctx)
		h->plugin->fini(h->ctx);
	/* like a closing Redis connection: every pending call fails, after fini */
	h->redis_down = 1;
	h->redis_hang = 0;
	while (h->queue)
		fake_store_deliver(h->loop, &h->idle, 0);
	ev_idle_stop(h->loop, &h->idle);
	config_destroy(&h->cfg);
	ev_loop_destroy(h->loop);
	if (fake_current == h)
		fake_current = NULL;
	free(h);
}

int fake_load(struct fake_host *h, const char *kind, const char *name, const char *conf_text)
{
	const config_setting_t *group = NULL;
	char err[4200];

	fake_current = h;
	h->plugin = fake_plugin_open(kind, name, err, sizeof(err));
	if (!h->plugin) {
		fprintf(stderr, "# %s\n", err);
		return -2;
	}
	if (conf_text) {
		if (!config_read_string(&h->cfg, conf_text)) {
			fprintf(stderr, "# bad test config line %d: %s\n",
			        config_error_line(&h->cfg), config_error_text(&h->cfg));
			return -2;
		}
		group = config_lookup(&h->cfg, kind);
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
	if (h->queue && !h->redis_hang)
		ev_idle_start(h->loop, &h->idle);
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
