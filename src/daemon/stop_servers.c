/* scalerd --stop-servers: stop the servers this node's driver started on
 * this host, then exit. The Debian package runs it when it is removed, so
 * that no server keeps running from a deleted binary.
 *
 * Servers outlive a restart of scalerd on purpose (the next scalerd adopts
 * them); only removing the software ends them. That concerns the servers
 * of the process driver, which are processes of this host and end with the
 * systemd unit too (KillMode=mixed). Containers of the docker driver live
 * in the Docker engine and belong to the cluster: they are left alone. */
#include "config.h"

#include "stop_servers.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "host.h"
#include "log.h"
#include "plugin.h"

/* drivers whose servers are processes of this host */
static const char *const ss_local_drivers[] = {"process", NULL};

struct ss_run {
	struct ev_loop *loop;
	const struct scaler_driver_ops *ops;
	void *ctx;
	size_t pending, stopped, failed;
	int listed, list_failed;
	ev_timer deadline;
};

static void ss_check_done(struct ss_run *r)
{
	if (r->listed && r->pending == 0)
		ev_break(r->loop, EVBREAK_ONE);
}

static void ss_removed(void *arg, int status, const struct scaler_server *srv, const char *err)
{
	struct ss_run *r = arg;
	(void)srv;
	r->pending--;
	if (status == 0) {
		r->stopped++;
	} else {
		r->failed++;
		log_err("cannot stop a server: %s", err ? err : "error");
	}
	ss_check_done(r);
}

static void ss_listed(void *arg, int status, const struct scaler_server *srvs, size_t n,
                      const char *err)
{
	struct ss_run *r = arg;
	r->listed = 1;
	if (status != 0) {
		r->list_failed = 1;
		log_err("cannot list the servers: %s", err ? err : "error");
		ss_check_done(r);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		log_notice("stopping server %s (zone %s, %s, %s)", srvs[i].id, srvs[i].zone,
		           srvs[i].address, srvs[i].ref);
		r->pending++;
		if (r->ops->remove(r->ctx, &srvs[i], ss_removed, r) < 0) {
			r->pending--;
			r->failed++;
			log_err("cannot stop server %s", srvs[i].id);
		}
	}
	ss_check_done(r);
}

static void ss_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	log_err("servers still stopping after the driver's time; giving up");
	ev_break(loop, EVBREAK_ONE);
}

int stop_servers_run(const char *conf_path)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct plugin_instance drv = {0};
	struct ss_run r = {.loop = loop};
	char err[1024];
	int local = 0, rc = 1;

	struct conf *c = conf_load(conf_path);
	if (!c)
		return 1;
	for (size_t i = 0; ss_local_drivers[i]; i++)
		local |= strcmp(c->driver.name, ss_local_drivers[i]) == 0;
	if (!local) {
		printf("%s: the %s driver's servers are not processes of this host; they stay with "
		       "the cluster\n",
		       conf_path, c->driver.name);
		conf_free(c);
		return 0;
	}
	/* the driver alone: no Redis, no election, nothing else is touched */
	struct host_params hp = {.node_id = c->node_id,
	                         .cluster = c->cluster,
	                         .admin_url = c->admin_url,
	                         .state_dir = c->state_dir};
	struct host *h = host_new(loop, &hp, err, sizeof(err));
	if (!h) {
		log_err("%s", err);
		conf_free(c);
		return 1;
	}
	if (plugin_instance_new(
	        &drv, c->plugin_dir, SCALER_KIND_DRIVER, c->driver.name, &h->pub, c->driver.group,
	        plugin_setting(c->driver.group, conf_plugin_dir_setting(c)), NULL, 0) < 0)
		goto out; /* reported as FILE:LINE: SETTING */
	r.ops = drv.plugin->desc->ops.driver;
	r.ctx = drv.ctx;
	if (!r.ops->list || !r.ops->remove || r.ops->list(r.ctx, ss_listed, &r) < 0) {
		log_err("the %s driver cannot list its servers", c->driver.name);
		goto out;
	}
	/* the driver sends SIGKILL after its own stop_timeout; wait a bit longer */
	ev_timer_init(&r.deadline, ss_timeout, c->stop_timeout + 30.0, 0.);
	ev_timer_start(loop, &r.deadline);
	ev_run(loop, 0);
	ev_timer_stop(loop, &r.deadline);
	printf("%s: %zu server(s) stopped%s\n", conf_path, r.stopped,
	       r.failed || r.pending ? ", some could not be" : "");
	rc = r.list_failed || r.failed || r.pending ? 1 : 0;
out:
	plugin_instance_free(&drv);
	host_free(h);
	conf_free(c);
	return rc;
}
