#include "config.h"

#include "worker.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "conf.h"
#include "host.h"
#include "log.h"
#include "net.h"
#include "plugin.h"
#include "redis_conn.h"
#include "store.h"

/* A plugin without connections (ABI < 1.4) gets this long after SIGTERM. */
#define WORKER_DRAIN_LEGACY 2.0
/* How long a worker waits for the state store before it serves without it
 * (the static servers, or what the shared memory held). */
#define WORKER_RESTORE_WAIT 1.0
/* While draining, how often the worker looks whether connections are left. */
#define WORKER_DRAIN_POLL 0.05

struct worker {
	struct ev_loop *loop;
	struct conf *conf;
	const struct conf_zone *zone;
	struct host *host;
	struct plugin_instance bal;
	const struct scaler_balancer_ops *ops;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer drain, restore_retry;
	double restore_deadline, drain_deadline;
	int restored, stopping;
	int handed;  /* the plugin serves on handed sockets and accepts once restored */
	int serving; /* READY=1 sent */
	int status_fd;
	/* restore results, gathered from two store calls */
	char **servers;
	size_t nservers;
	int have_servers, have_leader;
	int servers_pending, leader_pending;
	char monitor_url[256];
	uint64_t epoch;
};

int worker_fds_parse(struct worker_fds *f, const char *worker, const char *fds)
{
	char *end;
	memset(f, 0, sizeof(*f));
	long i = strtol(worker, &end, 10);
	if (end == worker || *end != '/')
		return -1;
	const char *p = end + 1;
	long n = strtol(p, &end, 10);
	if (end == p || *end || i < 0 || n < 1 || i >= n || n > 1024)
		return -1;
	f->index = (int)i;
	f->count = (int)n;
	int *dst[] = {&f->status, &f->listen, &f->admin, &f->shared, &f->previous, &f->wake};
	p = fds;
	for (size_t k = 0; k < sizeof(dst) / sizeof(dst[0]); k++) {
		long v = strtol(p, &end, 10);
		if (end == p || v < -1 || v > 1 << 20 || *end != (k + 1 < 6 ? ',' : '\0'))
			return -1;
		*dst[k] = (int)v;
		p = end + 1;
	}
	return 0;
}

/* Tell scalerd that this worker accepts now. */
static void worker_serving(struct worker *w)
{
	if (w->serving)
		return;
	w->serving = 1;
	if (w->status_fd >= 0) {
		static const char ready[] = "READY=1\n";
		if (write(w->status_fd, ready, sizeof(ready) - 1) < 0)
			log_warn("zone %s: cannot tell scalerd this worker serves: %s",
			         w->zone->name, strerror(errno));
		close(w->status_fd);
		w->status_fd = -1;
	}
}

static void worker_restore_finish(struct worker *w)
{
	if (!w->have_servers || !w->have_leader || w->restored)
		return;
	w->restored = 1;
	ev_timer_stop(w->loop, &w->restore_retry);
	if (w->ops->restore)
		w->ops->restore(w->bal.ctx, (const char *const *)w->servers, w->nservers,
		                w->monitor_url[0] ? w->monitor_url : NULL, w->epoch);
	log_info("zone %s: restored %zu server(s) from the state store%s%s", w->zone->name,
	         w->nservers, w->monitor_url[0] ? ", primary " : "", w->monitor_url);
	for (size_t i = 0; i < w->nservers; i++)
		free(w->servers[i]);
	free(w->servers);
	w->servers = NULL;
	w->nservers = 0;
	worker_serving(w);
}

/* The state store did not answer in time (or there is none). */
static void worker_restore_without_store(struct worker *w, const char *why)
{
	if (w->restored)
		return;
	w->restored = 1;
	ev_timer_stop(w->loop, &w->restore_retry);
	log_warn("zone %s: %s; serving %s until the primary pushes the set", w->zone->name, why,
	         w->handed ? "what this worker has (shared with the workers before it, or the "
	                     "static servers)"
	                   : "the static servers only");
	if (w->handed && w->ops->restore)
		w->ops->restore(w->bal.ctx, NULL, 0, NULL, 0);
	worker_serving(w);
}

static void worker_on_servers(void *arg, enum store_status st, const struct store_server *srv,
                              size_t n)
{
	struct worker *w = arg;
	w->servers_pending = 0;
	if (w->restored || w->have_servers || (st != STORE_OK && st != STORE_NOTFOUND))
		return; /* retried by the timer */
	w->servers = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; w->servers && i < n; i++) {
		/* only servers that passed their first health check take traffic */
		if (strcmp(srv[i].state, "serving") == 0)
			w->servers[w->nservers++] = strdup(srv[i].srv.address);
	}
	w->have_servers = 1;
	worker_restore_finish(w);
}

static void worker_on_leader(void *arg, enum store_status st, const struct store_leader *l,
                             uint64_t current_epoch)
{
	struct worker *w = arg;
	(void)current_epoch;
	w->leader_pending = 0;
	if (w->restored || w->have_leader)
		return;
	if (st == STORE_OK && l) {
		snprintf(w->monitor_url, sizeof(w->monitor_url), "%s", l->url);
		w->epoch = l->epoch;
	} else if (st != STORE_NOTFOUND) {
		return; /* retried by the timer */
	}
	w->have_leader = 1;
	worker_restore_finish(w);
}

static void worker_restore_try(struct worker *w)
{
	if (w->restored)
		return;
	if (!w->host->store) {
		worker_restore_without_store(w, "no state store");
		return;
	}
	if (ev_now(w->loop) > w->restore_deadline) {
		worker_restore_without_store(w, "the state store did not answer in time");
		return;
	}
	if (w->host->redis && redis_conn_down(w->host->redis)) {
		worker_restore_without_store(w, "the state store is unreachable");
		return;
	}
	if (!w->have_servers && !w->servers_pending)
		w->servers_pending =
		    store_servers_list(w->host->store, w->zone->name, worker_on_servers, w) == 0;
	if (!w->have_leader && !w->leader_pending)
		w->leader_pending = store_leader_get(w->host->store, worker_on_leader, w) == 0;
}

static void worker_on_restore_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	worker_restore_try(t->data);
}

static void worker_on_drain(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	(void)revents;
	if (w->handed && w->ops->connections(w->bal.ctx) > 0 && ev_now(loop) < w->drain_deadline)
		return;
	ev_break(loop, EVBREAK_ALL);
}

static void worker_on_term(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct worker *w = s->data;
	(void)revents;
	if (w->stopping) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	w->stopping = 1;
	log_info("zone %s: stopping the balancer", w->zone->name);
	ev_timer_stop(loop, &w->restore_retry);
	if (w->ops->shutdown)
		w->ops->shutdown(w->bal.ctx);
	if (w->handed) {
		w->drain_deadline = ev_now(loop) + w->conf->drain_timeout;
		ev_timer_init(&w->drain, worker_on_drain, 0., WORKER_DRAIN_POLL);
	} else {
		ev_timer_init(&w->drain, worker_on_drain, WORKER_DRAIN_LEGACY, 0.);
	}
	w->drain.data = w;
	ev_timer_start(loop, &w->drain);
}

static void worker_on_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
	/* scalerd replaces the workers of a changed zone; HUP means nothing here */
	(void)loop;
	(void)s;
	(void)revents;
}

/* Run alone (not started by scalerd): bind what scalerd would hand over. */
static int worker_bind_alone(struct worker *w, struct worker_fds *f, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	f->count = 1;
	f->status = f->previous = -1;
	f->listen = net_listen(w->zone->listen, 4096, err, errlen);
	if (f->listen < 0)
		return -1;
	f->admin = net_listen(w->zone->admin, 511, err, errlen);
	f->shared = memfd_create("scaler-zone", MFD_CLOEXEC);
	f->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->admin < 0)
		return -1;
	if (f->shared < 0 || f->wake < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Start the plugin's data plane. 1: it accepts at once; 0: once restored. */
static int worker_serve(struct worker *w, const struct worker_fds *handed)
{
	char err[512];
	struct worker_fds alone;
	const struct worker_fds *f = handed;

	/* the loader's copy of the ops: NULL where an older plugin has none */
	if (!w->ops->serve_worker || !w->ops->connections) {
		if (handed && handed->listen >= 0) {
			log_err(
			    "zone %s: balancer plugin \"%s\" cannot serve on the sockets scalerd "
			    "holds (it has plugin ABI %u.%u; 1.4 is needed)",
			    w->zone->name, w->bal.plugin->name, w->bal.plugin->desc->abi_major,
			    w->bal.plugin->desc->abi_minor);
			return -1;
		}
		if (!w->ops->serve || w->ops->serve(w->bal.ctx, &w->zone->pub) < 0) {
			log_err("zone %s: the balancer could not start on %s (admin %s)",
			        w->zone->name, w->zone->listen, w->zone->admin);
			return -1;
		}
		return 1; /* it accepts already, and takes restore later */
	}
	if (!f || f->listen < 0) {
		if (worker_bind_alone(w, &alone, err, sizeof(err)) < 0) {
			log_err("zone %s: %s", w->zone->name, err);
			return -1;
		}
		f = &alone;
	}
	int wake[1024];
	for (int i = 0; i < f->count && i < 1024; i++)
		wake[i] = f->wake >= 0 ? f->wake + i : -1;
	struct scaler_zone_worker zw = {.size = sizeof(zw),
	                                .index = f->index,
	                                .count = f->count,
	                                .listen_fd = f->listen,
	                                .admin_fd = f->admin,
	                                .shared_fd = f->shared,
	                                .previous_fd = f->previous,
	                                .wake_fds = wake};
	int r = w->ops->serve_worker(w->bal.ctx, &w->zone->pub, &zw);
	if (r < 0) {
		log_err("zone %s: the balancer could not start on %s (admin %s)", w->zone->name,
		        w->zone->listen, w->zone->admin);
		return -1;
	}
	w->handed = 1;
	return r > 0;
}

int worker_run(const char *zone, const char *conf_path, int config_fd, const struct worker_fds *f,
               int debug, int use_syslog)
{
	struct worker w;
	char path[64], err[1024], title[80];
	int rc = 1;

	memset(&w, 0, sizeof(w));
	w.status_fd = f ? f->status : -1;
	snprintf(title, sizeof(title), "scaler:%s", zone);
	prctl(PR_SET_NAME, title);
	w.loop = ev_default_loop(EVFLAG_AUTO);
	if (config_fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", config_fd);
		w.conf = conf_load(path);
		close(config_fd);
	} else {
		w.conf = conf_load(conf_path);
	}
	if (!w.conf)
		return 1;
	int lvl = debug ? SCALER_LOG_DEBUG : log_level_parse(w.conf->log_level);
	log_setup("scalerd-balancer", lvl >= 0 ? (enum scaler_log_level)lvl : SCALER_LOG_INFO,
	          use_syslog || w.conf->log_syslog);
	w.zone = conf_zone_find(w.conf, zone);
	if (!w.zone) {
		log_err("%s: no zone named \"%s\"", conf_path, zone);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGUSR1, SIG_IGN); /* logrotate's reopen; a plugin with logs takes it */

	struct host_params hp = {.node_id = w.conf->node_id,
	                         .cluster = w.conf->cluster,
	                         .admin_url = w.conf->admin_url,
	                         .token = w.conf->token,
	                         .redis_url = w.conf->redis_url,
	                         .state_dir = w.conf->state_dir,
	                         .public_reads = w.conf->public_reads};
	w.host = host_new(w.loop, &hp, err, sizeof(err));
	if (!w.host) {
		log_err("zone %s: %s", zone, err);
		goto out;
	}
	/* a zone's own balancer group replaces the global one */
	if (plugin_instance_new(
	        &w.bal, w.conf->plugin_dir, SCALER_KIND_BALANCER, w.zone->balancer_plugin,
	        &w.host->pub, w.zone->balancer_conf,
	        plugin_setting(w.zone->balancer_conf, conf_plugin_dir_setting(w.conf)), NULL,
	        0) < 0)
		goto out;
	w.ops = &w.bal.plugin->ops.balancer;
	int at_once = worker_serve(&w, f);
	if (at_once < 0)
		goto out;

	ev_signal_init(&w.sig_term, worker_on_term, SIGTERM);
	ev_signal_init(&w.sig_int, worker_on_term, SIGINT);
	ev_signal_init(&w.sig_hup, worker_on_hup, SIGHUP);
	w.sig_term.data = w.sig_int.data = w.sig_hup.data = &w;
	ev_signal_start(w.loop, &w.sig_term);
	ev_signal_start(w.loop, &w.sig_int);
	ev_signal_start(w.loop, &w.sig_hup);

	/* Redis connects asynchronously: ask now and every 10 ms until both
	 * answers are in; a worker on handed sockets accepts only then (or
	 * after WORKER_RESTORE_WAIT), so no user gets a 503 the worker before
	 * it would have served. */
	w.restore_deadline = ev_now(w.loop) + WORKER_RESTORE_WAIT;
	ev_timer_init(&w.restore_retry, worker_on_restore_timer, 0., 0.01);
	w.restore_retry.data = &w;
	if (at_once && w.handed) {
		w.restored = 1; /* from the shared memory */
		worker_serving(&w);
	} else if (!w.handed && !w.host->store) {
		w.restored = 1;
		worker_serving(&w);
	} else {
		if (!w.handed)
			worker_serving(&w); /* an old plugin accepts already */
		ev_timer_start(w.loop, &w.restore_retry);
	}

	log_info("zone %s: balancer worker %d of %d on %s, admin %s", zone, f ? f->index : 0,
	         f ? f->count : 1, w.zone->listen,
	         f && f->admin < 0 && f->listen >= 0 ? "on worker 0" : w.zone->admin);
	ev_run(w.loop, 0);
	rc = 0;
out:
	ev_timer_stop(w.loop, &w.restore_retry);
	ev_timer_stop(w.loop, &w.drain);
	for (size_t i = 0; i < w.nservers; i++)
		free(w.servers[i]);
	free(w.servers);
	plugin_instance_free(&w.bal);
	host_free(w.host);
	conf_free(w.conf);
	if (w.status_fd >= 0)
		close(w.status_fd);
	return rc;
}
