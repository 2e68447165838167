/* Plugins of bench/evaluate, built by it against the public plugin ABI
 * (<scaler/plugin.h>) like any third-party plugin, never installed. They
 * make the control loop's own cost measurable: nothing outside scalerd is
 * asked anything while the zones are evaluated.
 *
 *   -DBENCH_DRIVER    driver_benchnull: servers exist in memory only; create
 *                     answers at once with address <base>/<server id>
 *                     (bench/evaluate answers its health checks there)
 *   -DBENCH_METRICS   metrics_benchlocal: every server's value is `value`
 *                     (percent), answered from memory
 *   -DBENCH_BALANCER  balancer_benchnull: pushes succeed without I/O; it
 *                     cannot serve a zone (run it with node.zones = [])
 *
 * Every answer is deferred to the next loop iteration (an ev_timer of 0 s),
 * as a real plugin's would be. */
#include <ev.h>
#include <scaler/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct eb_defer {
	ev_timer w;
	void (*run)(struct eb_defer *);
	void *ctx;
	void *cb;
	void *arg;
	void *data;
	size_t n;
	struct scaler_server srv;
};

static const struct scaler_host *eb_host;

static void eb_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct eb_defer *d = (struct eb_defer *)w;
	d->run(d);
	free(d->data);
	free(d);
}

static struct eb_defer *eb_defer(void (*run)(struct eb_defer *), void *cb, void *arg)
{
	struct eb_defer *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->run = run;
	d->cb = cb;
	d->arg = arg;
	ev_timer_init(&d->w, eb_fire, 0., 0.);
	ev_timer_start(eb_host->loop, &d->w);
	return d;
}

static __attribute__((unused)) void eb_free(void *ctx)
{
	free(ctx);
}

#ifdef BENCH_DRIVER
struct bd_srv {
	struct scaler_server srv;
	struct bd_srv *next;
};

struct bd {
	char base[200];
	struct bd_srv *servers;
	size_t n;
};

static int bd_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "address_base", NULL};
	const char *base = "http://127.0.0.1:1";
	struct bd *bd;
	eb_host = host;
	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	if (conf)
		config_setting_lookup_string(conf, "address_base", &base);
	if (!(bd = calloc(1, sizeof(*bd))))
		return -1;
	snprintf(bd->base, sizeof(bd->base), "%s", base);
	*ctx = bd;
	return 0;
}

static void bd_fini(void *ctx)
{
	struct bd *bd = ctx;
	while (bd && bd->servers) {
		struct bd_srv *s = bd->servers;
		bd->servers = s->next;
		free(s);
	}
	free(bd);
}

static void bd_done(struct eb_defer *d)
{
	((scaler_driver_cb)d->cb)(d->arg, 0, &d->srv, NULL);
}

static int bd_create(void *ctx, const struct scaler_server_spec *spec, scaler_driver_cb cb,
                     void *arg)
{
	struct bd *bd = ctx;
	struct bd_srv *s = calloc(1, sizeof(*s));
	struct timespec ts;
	if (!s)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(s->srv.id, sizeof(s->srv.id), "%s", spec->server_id);
	snprintf(s->srv.zone, sizeof(s->srv.zone), "%s", spec->zone->name);
	snprintf(s->srv.address, sizeof(s->srv.address), "%s/%s", bd->base, spec->server_id);
	snprintf(s->srv.ref, sizeof(s->srv.ref), "mem:%zu", ++bd->n);
	s->srv.created = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	s->srv.running = 1;
	s->next = bd->servers;
	bd->servers = s;
	struct eb_defer *d = eb_defer(bd_done, (void *)cb, arg);
	if (!d)
		return -1;
	d->srv = s->srv;
	return 0;
}

static int bd_remove(void *ctx, const struct scaler_server *srv, scaler_driver_cb cb, void *arg)
{
	struct bd *bd = ctx;
	for (struct bd_srv **p = &bd->servers; *p; p = &(*p)->next) {
		if (strcmp((*p)->srv.id, srv->id) == 0) {
			struct bd_srv *s = *p;
			*p = s->next;
			free(s);
			break;
		}
	}
	struct eb_defer *d = eb_defer(bd_done, (void *)cb, arg);
	if (!d)
		return -1;
	d->srv = *srv;
	d->srv.running = 0;
	return 0;
}

static void bd_list_done(struct eb_defer *d)
{
	((scaler_driver_list_cb)d->cb)(d->arg, 0, d->data, d->n, NULL);
}

static int bd_list(void *ctx, scaler_driver_list_cb cb, void *arg)
{
	struct bd *bd = ctx;
	size_t n = 0;
	for (struct bd_srv *s = bd->servers; s; s = s->next)
		n++;
	struct scaler_server *v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -1;
	n = 0;
	for (struct bd_srv *s = bd->servers; s; s = s->next)
		v[n++] = s->srv;
	struct eb_defer *d = eb_defer(bd_list_done, (void *)cb, arg);
	if (!d) {
		free(v);
		return -1;
	}
	d->data = v;
	d->n = n;
	return 0;
}

static const struct scaler_driver_ops bd_ops = {
    .size = sizeof(bd_ops), .create = bd_create, .remove = bd_remove, .list = bd_list};
SCALER_PLUGIN_DEFINE(SCALER_KIND_DRIVER, "benchnull", "1.0", bd_init, NULL, bd_fini, driver,
                     &bd_ops);
#endif

#ifdef BENCH_METRICS
struct bm {
	double value;
};

static int bm_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "value", NULL};
	struct bm *bm;
	double v = 40.0;
	eb_host = host;
	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	if (conf)
		config_setting_lookup_float(conf, "value", &v);
	if (!(bm = calloc(1, sizeof(*bm))))
		return -1;
	bm->value = v;
	*ctx = bm;
	return 0;
}

static void bm_done(struct eb_defer *d)
{
	struct scaler_metric_value *v = d->data;
	struct scaler_metrics_result res = {.values = v, .n = d->n};
	double sum = 0;
	for (size_t i = 0; i < d->n; i++)
		sum += v[i].value;
	res.average = d->n ? sum / (double)d->n : 0;
	res.average_valid = d->n > 0;
	((scaler_metrics_cb)d->cb)(d->arg, 0, &res, NULL);
}

static int bm_query(void *ctx, const struct scaler_zone *zone, const struct scaler_server *servers,
                    size_t n, double window, scaler_metrics_cb cb, void *arg)
{
	struct bm *bm = ctx;
	(void)zone;
	(void)window;
	struct scaler_metric_value *v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		v[i].server_id = servers[i].id;
		v[i].value = bm->value + (double)(i % 5) - 2.0;
	}
	struct eb_defer *d = eb_defer(bm_done, (void *)cb, arg);
	if (!d) {
		free(v);
		return -1;
	}
	d->data = v;
	d->n = n;
	return 0;
}

static const struct scaler_metrics_ops bm_ops = {.size = sizeof(bm_ops), .query = bm_query};
SCALER_PLUGIN_DEFINE(SCALER_KIND_METRICS, "benchlocal", "1.0", bm_init, NULL, eb_free, metrics,
                     &bm_ops);
#endif

#ifdef BENCH_BALANCER
static int bb_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", NULL};
	eb_host = host;
	if (conf && host->conf_check_known(conf, known) < 0)
		return -1;
	*ctx = calloc(1, 1);
	return *ctx ? 0 : -1;
}

static int bb_serve(void *ctx, const struct scaler_zone *zone)
{
	(void)ctx;
	eb_host->log(SCALER_LOG_ERR, "balancer benchnull",
	             "zone %s: this bench plugin serves nothing", zone->name);
	return -1;
}

static void bb_shutdown(void *ctx)
{
	(void)ctx;
}

static void bb_done(struct eb_defer *d)
{
	((scaler_balancer_cb)d->cb)(d->arg, 0, NULL);
}

static int bb_push_servers(void *ctx, const struct scaler_zone *zone, const char *const *adds,
                           size_t nadds, const char *const *deletes, size_t ndeletes,
                           scaler_balancer_cb cb, void *arg)
{
	(void)ctx, (void)zone, (void)adds, (void)nadds, (void)deletes, (void)ndeletes;
	return eb_defer(bb_done, (void *)cb, arg) ? 0 : -1;
}

static int bb_push_monitor(void *ctx, const struct scaler_zone *zone, const char *url,
                           uint64_t epoch, scaler_balancer_cb cb, void *arg)
{
	(void)ctx, (void)zone, (void)url, (void)epoch;
	return eb_defer(bb_done, (void *)cb, arg) ? 0 : -1;
}

static const struct scaler_balancer_ops bb_ops = {.size = sizeof(bb_ops),
                                                  .serve = bb_serve,
                                                  .shutdown = bb_shutdown,
                                                  .push_servers = bb_push_servers,
                                                  .push_monitor = bb_push_monitor};
SCALER_PLUGIN_DEFINE(SCALER_KIND_BALANCER, "benchnull", "1.0", bb_init, NULL, eb_free, balancer,
                     &bb_ops);
#endif
