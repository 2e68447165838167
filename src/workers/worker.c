#include "config.h"

#include "worker.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "conf.h"
#include "host.h"
#include "log.h"
#include "plugin.h"
#include "store.h"

/* After SIGTERM, in-flight requests get this long to finish. */
#define WORKER_DRAIN 2.0
/* Give up waiting for the state store after this long at start. */
#define WORKER_RESTORE_WAIT 5.0

struct worker {
	struct ev_loop *loop;
	struct conf *conf;
	const struct conf_zone *zone;
	struct host *host;
	struct plugin_instance bal;
	const struct scaler_balancer_ops *ops;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer drain, restore_retry;
	double restore_deadline;
	int restored, stopping;
	/* restore results, gathered from two store calls */
	char **servers;
	size_t nservers;
	int have_servers, have_leader;
	int servers_pending, leader_pending;
	char monitor_url[256];
	uint64_t epoch;
};

static void worker_restore_try(struct worker *w);

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
}

static void worker_on_servers(void *arg, enum store_status st, const struct store_server *srv,
                              size_t n)
{
	struct worker *w = arg;
	w->servers_pending = 0;
	if (w->have_servers || (st != STORE_OK && st != STORE_NOTFOUND))
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
	if (w->have_leader)
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
	if (w->restored || !w->host->store)
		return;
	if (ev_now(w->loop) > w->restore_deadline) {
		log_warn("zone %s: state store unreachable; serving the static servers only until "
		         "the primary pushes the set",
		         w->zone->name);
		w->restored = 1;
		ev_timer_stop(w->loop, &w->restore_retry);
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
	(void)t;
	(void)revents;
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
	if (w->ops->shutdown)
		w->ops->shutdown(w->bal.ctx);
	ev_timer_init(&w->drain, worker_on_drain, WORKER_DRAIN, 0.);
	ev_timer_start(loop, &w->drain);
}

static void worker_on_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
	/* scalerd restarts a worker whose zone changed; HUP means nothing here */
	(void)loop;
	(void)s;
	(void)revents;
}

int worker_run(const char *zone, const char *conf_path, int config_fd, int debug, int use_syslog)
{
	struct worker w;
	char path[64], err[1024], title[80];
	int rc = 1;

	memset(&w, 0, sizeof(w));
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
	if (!w.ops->serve || w.ops->serve(w.bal.ctx, &w.zone->pub) < 0) {
		log_err("zone %s: the balancer could not start on %s (admin %s)", zone,
		        w.zone->listen, w.zone->admin);
		goto out;
	}

	ev_signal_init(&w.sig_term, worker_on_term, SIGTERM);
	ev_signal_init(&w.sig_int, worker_on_term, SIGINT);
	ev_signal_init(&w.sig_hup, worker_on_hup, SIGHUP);
	w.sig_term.data = w.sig_int.data = w.sig_hup.data = &w;
	ev_signal_start(w.loop, &w.sig_term);
	ev_signal_start(w.loop, &w.sig_int);
	ev_signal_start(w.loop, &w.sig_hup);

	/* Redis connects asynchronously: ask now and every 0.1 s until both
	 * answers are in, so a restarted worker serves its servers at once. */
	w.restore_deadline = ev_now(w.loop) + WORKER_RESTORE_WAIT;
	ev_timer_init(&w.restore_retry, worker_on_restore_timer, 0.05, 0.1);
	w.restore_retry.data = &w;
	if (w.host->store)
		ev_timer_start(w.loop, &w.restore_retry);

	log_info("zone %s: balancer serving on %s, admin on %s", zone, w.zone->listen,
	         w.zone->admin);
	ev_run(w.loop, 0);
	rc = 0;
out:
	ev_timer_stop(w.loop, &w.restore_retry);
	for (size_t i = 0; i < w.nservers; i++)
		free(w.servers[i]);
	free(w.servers);
	plugin_instance_free(&w.bal);
	host_free(w.host);
	conf_free(w.conf);
	return rc;
}
