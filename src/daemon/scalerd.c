/* scalerd: the supervisor. Parses scaler.conf, loads the plugins, runs the
 * election, serves the admin API, supervises one balancer worker per zone
 * and, while primary, runs the control loop. `scalerd --balancer ZONE` is
 * the worker itself (worker.c). */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "conf.h"
#include "controller.h"
#include "daemon.h"
#include "host.h"
#include "http_server.h"
#include "log.h"
#include "net.h"
#include "plugin.h"
#include "sdnotify.h"
#include "stop_servers.h"
#include "supervise.h"
#include "worker.h"

#define DEFAULT_CONF SYSCONFDIR "/scaler/scaler.conf"

static void usage(FILE *f)
{
	fprintf(
	    f, "Usage: scalerd [-c FILE] [-t] [-d]\n"
	       "       scalerd --stop-servers [-c FILE]\n"
	       "       scalerd --balancer ZONE [-c FILE]\n"
	       "\n"
	       "Keeps a stateless HTTP service sized to its load, zone by zone.\n"
	       "\n"
	       "  -c, --config FILE   configuration file (default " DEFAULT_CONF ")\n"
	       "  -t, --test          check the configuration and the plugins it names, then exit\n"
	       "                      (0: valid, 1: errors, printed one per line)\n"
	       "  -d, --debug         log at debug level (overrides log.level)\n"
	       "      --syslog        log to syslog instead of stderr\n"
	       "      --stop-servers  stop the servers this node started on this host (process\n"
	       "                      driver) and exit; for removing the software\n"
	       "      --balancer ZONE run the balancer worker of ZONE (started by scalerd itself)\n"
	       "  -V, --version       print the version and exit\n"
	       "  -h, --help          print this help and exit\n"
	       "\n"
	       "Signals: HUP reloads the configuration, TERM and INT stop gracefully.\n"
	       "See scalerd(8) and scaler.conf(5).\n");
}

static double now_unix(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- plugins of a config ----------------------------------------------- */

/* metrics and policies are the controller's: one instance per zone */
struct plugin_set {
	struct plugin_instance driver, election, balancer;
};

static const struct {
	enum scaler_kind kind;
	size_t conf_off;
	size_t set_off;
} kinds[] = {
    {SCALER_KIND_DRIVER, offsetof(struct conf, driver), offsetof(struct plugin_set, driver)},
    {SCALER_KIND_ELECTION, offsetof(struct conf, election), offsetof(struct plugin_set, election)},
    {SCALER_KIND_BALANCER, offsetof(struct conf, balancer), offsetof(struct plugin_set, balancer)},
};

#define KIND_CONF(c, i) ((const struct conf_plugin *)((const char *)(c) + kinds[i].conf_off))
#define KIND_PI(s, i) ((struct plugin_instance *)((char *)(s) + kinds[i].set_off))

static void plugin_set_free(struct plugin_set *s)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		plugin_instance_free(KIND_PI(s, i));
}

/* Load and init every plugin the config names (metrics and policy: one per
 * zone, checked here and made by the controller). -1 after logging each
 * error. */
/* A zone's own balancer group is read by its plugin here too, so that -t
 * and a reload refuse what the zone's workers would (a TLS key that does
 * not match its certificate). At start, such a zone's worker fails alone. */
static int zone_balancers_check(const struct conf *c, const struct scaler_host *h)
{
	int failed = 0;
	for (size_t i = 0; i < c->nzones; i++) {
		const struct conf_zone *cz = &c->zones[i];
		struct plugin_instance pi;
		if (!cz->balancer)
			continue;
		if (plugin_instance_new(&pi, c->plugin_dir, SCALER_KIND_BALANCER,
		                        cz->balancer_plugin, h, cz->balancer_conf,
		                        plugin_setting(cz->balancer, NULL), NULL, 0) < 0)
			failed = 1;
		else
			plugin_instance_free(&pi);
	}
	return failed ? -1 : 0;
}

static int plugin_set_load(struct plugin_set *s, const struct conf *c, const struct scaler_host *h)
{
	int failed = 0;

	memset(s, 0, sizeof(*s));
	conf_errors_hold(); /* a bad plugin_dir is one error, not one per kind */
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct conf_plugin *cp = KIND_CONF(c, i);
		if (plugin_instance_new(
		        KIND_PI(s, i), c->plugin_dir, kinds[i].kind, cp->name, h, cp->group,
		        plugin_setting(cp->group, conf_plugin_dir_setting(c)), NULL, 0) < 0)
			failed = 1;
	}
	if (controller_check_policies(c, h) < 0)
		failed = 1;
	conf_errors_release();
	if (failed) {
		plugin_set_free(s);
		return -1;
	}
	return 0;
}

/* ---- -t ------------------------------------------------------------------ */

static int test_config(const char *path)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct conf *c = conf_load(path);
	if (!c) {
		fprintf(stderr, "%s: configuration has errors\n", path);
		return 1;
	}
	char err[256];
	struct host_params hp = {.node_id = c->node_id,
	                         .cluster = c->cluster,
	                         .admin_url = c->admin_url,
	                         .token = c->token,
	                         .state_dir = c->state_dir,
	                         .public_reads = c->public_reads};
	struct host *h = host_new(loop, &hp, err, sizeof(err));
	if (!h) {
		fprintf(stderr, "%s\n", err);
		conf_free(c);
		return 1;
	}
	struct plugin_set s;
	int rc = plugin_set_load(&s, c, &h->pub);
	if (rc == 0)
		plugin_set_free(&s);
	if (zone_balancers_check(c, &h->pub) < 0)
		rc = -1;
	host_free(h);
	conf_free(c);
	if (rc < 0) {
		fprintf(stderr, "%s: configuration has errors\n", path);
		return 1;
	}
	printf("%s: configuration is valid\n", path);
	return 0;
}

/* ---- config snapshot handed to workers ------------------------------------ */

/* Workers read the validated config from an in-memory file, so a worker
 * restarted after a broken edit still gets the config in force. */
static int config_snapshot_fd(struct conf *c)
{
	int fd = memfd_create("scaler.conf", MFD_CLOEXEC);
	if (fd < 0) {
		log_err("cannot snapshot the configuration: memfd_create: %s", strerror(errno));
		return -1;
	}
	/* it may hold the token inline: a secret like the file it came from */
	if (fchmod(fd, 0600) < 0) {
		log_err("cannot snapshot the configuration: fchmod: %s", strerror(errno));
		close(fd);
		return -1;
	}
	FILE *f = fdopen(dup(fd), "w");
	if (!f) {
		close(fd);
		return -1;
	}
	/* the search path as resolved here: relative directories are relative
	 * to the config file, which the worker reads from the snapshot */
	config_setting_t *root = config_root_setting(&c->cfg), *pd;
	if (config_setting_get_member(root, "plugin_dir")) {
		config_setting_remove(root, "plugin_dir");
		if ((pd = config_setting_add(root, "plugin_dir", CONFIG_TYPE_STRING)))
			config_setting_set_string(pd, c->plugin_dir);
	}
	config_write(&c->cfg, f);
	if (ferror(f) | fclose(f)) {
		log_err("cannot snapshot the configuration for the balancer workers");
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- leadership ----------------------------------------------------------- */

static void on_elected(void *arg, uint64_t epoch)
{
	struct daemon *d = arg;
	if (d->stopping)
		return; /* a node on its way out does not start acting */
	log_notice("this node (%s) is primary with epoch %llu", d->conf->node_id,
	           (unsigned long long)epoch);
	d->role = ROLE_PRIMARY;
	d->epoch = epoch;
	controller_start(d->ctl, epoch);
}

static void on_deposed(void *arg, const char *reason)
{
	struct daemon *d = arg;
	if (d->role == ROLE_PRIMARY)
		log_warn("this node (%s) stops acting as primary: %s", d->conf->node_id, reason);
	d->role = ROLE_BACKUP;
	controller_stop(d->ctl, reason);
}

static void on_primary(void *arg, const char *id, const char *url, uint64_t epoch)
{
	struct daemon *d = arg;
	/* the election plugin decides; an epoch can also go back when Redis
	 * lost its data and counts from 1 again */
	snprintf(d->primary_id, sizeof(d->primary_id), "%s", id ? id : "");
	snprintf(d->primary_url, sizeof(d->primary_url), "%s", url ? url : "");
	d->primary_epoch = epoch;
	log_info("primary is node %s (%s) with epoch %llu", d->primary_id, d->primary_url,
	         (unsigned long long)epoch);
}

/* ---- reload ----------------------------------------------------------------- */

/* A swapped-out plugin instance may still have calls in flight (a driver
 * stopping a server, a metrics query): it is finished (fini) after a grace
 * period longer than any of those, not at once. */
#define RETIRE_GRACE 60.0

static void retired_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon *d = t->data;
	(void)revents;
	for (struct retired **pp = &d->retired; *pp;) {
		struct retired *r = *pp;
		if (ev_now(loop) - r->at < RETIRE_GRACE) {
			pp = &r->next;
			continue;
		}
		log_info("%s plugin \"%s\" finished after reload",
		         plugin_kind_name(r->pi.plugin->kind), r->pi.plugin->name);
		plugin_instance_free(&r->pi);
		conf_free(r->conf); /* its group's config, if nothing else holds it */
		*pp = r->next;
		free(r);
	}
}

/* c: the config reference the instance held, handed over */
static void retire(struct daemon *d, struct plugin_instance *pi, struct conf *c)
{
	struct retired *r = calloc(1, sizeof(*r));
	if (!r) {
		plugin_instance_free(pi);
		conf_free(c);
		return;
	}
	r->pi = *pi;
	r->conf = c;
	r->at = ev_now(d->loop);
	r->next = d->retired;
	d->retired = r;
	memset(pi, 0, sizeof(*pi));
}

static int same_group(const struct conf_plugin *a, const struct conf_plugin *b)
{
	return strcmp(a->name, b->name) == 0 && conf_setting_equal(a->group, b->group);
}

static const char *reload_fixed_setting(const struct conf *a, const struct conf *b)
{
	if (strcmp(a->node_id, b->node_id))
		return "node.id";
	if (strcmp(a->admin_listen, b->admin_listen))
		return "node.admin";
	if (strcmp(a->admin_url, b->admin_url))
		return "node.url";
	if (strcmp(a->cluster, b->cluster))
		return "cluster";
	if (strcmp(a->redis_url, b->redis_url))
		return "redis";
	/* servers are recorded with the driver that made them: another driver
	 * could neither list nor remove them */
	if (strcmp(a->driver.name, b->driver.name))
		return "driver.plugin";
	if ((a->token == NULL) != (b->token == NULL) || (a->token && strcmp(a->token, b->token)))
		return "node.token";
	/* the balancer workers run with it until they restart */
	if (a->public_reads != b->public_reads)
		return "node.public_reads";
	if (!same_group(&a->election, &b->election))
		return "election";
	return NULL;
}

/* 1 when the zone's balancer plugin serves on sockets scalerd holds (ABI
 * 1.4); a plugin built before binds its own, in one worker. */
static int zone_hand_over(const struct daemon *d, const struct conf *c, const struct conf_zone *cz)
{
	const struct plugin *p = d->balancer.plugin;
	struct plugin *own = NULL;
	char err[1024];
	if (!p || strcmp(p->name, cz->balancer_plugin) != 0) {
		own = plugin_load(c->plugin_dir, SCALER_KIND_BALANCER, cz->balancer_plugin, err,
		                  sizeof(err));
		if (!own) {
			log_err("zone %s: %s", cz->name, err);
			return 0;
		}
		p = own;
	}
	/* the loader's copy of the ops: NULL where an older plugin has none */
	int yes = p->ops.balancer.serve_worker && p->ops.balancer.connections;
	if (!yes && cz->workers > 1)
		log_warn(
		    "zone %s: balancer plugin \"%s\" binds its own sockets (plugin ABI < 1.4): "
		    "one worker, not %d, and a gap whenever it restarts",
		    cz->name, p->name, cz->workers);
	plugin_unload(own);
	return yes;
}

static void zone_spec(const struct daemon *d, const struct conf *c, const struct conf_zone *cz,
                      struct supervisor_zone *out)
{
	out->name = cz->name;
	out->listen = cz->listen;
	out->admin = cz->admin;
	out->workers = cz->workers;
	out->hand_over = zone_hand_over(d, c, cz);
}

/* Phase one of applying nc: bind the sockets of its zones that scalerd
 * does not hold yet. -1 after logging (and appending to errs) each error;
 * the running zones are untouched. */
static int zones_prepare(struct daemon *d, const struct conf *nc, json_t *errs)
{
	int failed = 0;
	for (size_t i = 0; i < nc->nzones; i++) {
		const struct conf_zone *cz = &nc->zones[i];
		struct supervisor_zone z;
		char err[512];
		if (!conf_hosts_zone(nc, cz->name))
			continue;
		zone_spec(d, nc, cz, &z);
		if (supervisor_zone_prepare(d->sup, &z, err, sizeof(err)) < 0) {
			log_err("%s:%d: zones.[%zu]: %s", nc->path, cz->line, cz->index, err);
			if (errs)
				json_array_append_new(errs,
				                      json_sprintf("zone %s: %s", cz->name, err));
			failed = 1;
		}
	}
	if (failed)
		supervisor_prepared_drop(d->sup);
	return failed ? -1 : 0;
}

/* Phase two: stop removed zones, replace the workers of changed ones,
 * start new ones. */
static void zones_apply(struct daemon *d, const struct conf *old, const struct conf *nc)
{
	supervisor_set_timeouts(d->sup, nc->drain_timeout, nc->stop_timeout);
	for (size_t i = 0; old && i < old->nzones; i++) {
		const struct conf_zone *oz = &old->zones[i];
		const struct conf_zone *nz = conf_zone_find(nc, oz->name);
		if (conf_hosts_zone(old, oz->name) && (!nz || !conf_hosts_zone(nc, oz->name))) {
			log_info("zone %s removed: stopping its balancer workers", oz->name);
			supervisor_zone_remove(d->sup, oz->name);
		}
	}
	for (size_t i = 0; i < nc->nzones; i++) {
		const struct conf_zone *nz = &nc->zones[i];
		const struct conf_zone *oz = old ? conf_zone_find(old, nz->name) : NULL;
		struct supervisor_zone z;
		if (!conf_hosts_zone(nc, nz->name))
			continue;
		zone_spec(d, nc, nz, &z);
		if (oz && conf_hosts_zone(old, oz->name) && !conf_zone_equal(oz, nz)) {
			log_info("zone %s changed: new balancer workers", nz->name);
			supervisor_zone_replace(d->sup, &z);
		} else {
			supervisor_zone_start(d->sup, &z);
		}
	}
	supervisor_prepared_drop(d->sup);
}

int daemon_reload(struct daemon *d, void *errors)
{
	json_t *errs = errors;
	struct conf *nc;
	const char *fixed;

	if (d->stopping) {
		log_warn("not reloading: scalerd is stopping");
		if (errs)
			json_array_append_new(errs, json_string("scalerd is stopping"));
		return -1;
	}
	sd_notify_send("RELOADING=1");
	log_notice("reloading %s", d->conf_path);
	nc = conf_load(d->conf_path);
	if (!nc) {
		if (errs)
			json_array_append_new(errs,
			                      json_string("configuration has errors; see the "
			                                  "log for each (FILE:LINE: SETTING)"));
		goto refused;
	}
	if ((fixed = reload_fixed_setting(d->conf, nc))) {
		log_err("%s: %s changed: restart scalerd to apply it", d->conf_path, fixed);
		if (errs)
			json_array_append_new(
			    errs, json_sprintf("%s changed: restart scalerd to apply it", fixed));
		conf_free(nc);
		goto refused;
	}

	/* Load new instances of plugins whose settings changed before touching
	 * anything, so a bad plugin leaves the running config in force. */
	struct plugin_instance fresh[3] = {{0}};
	struct plugin_set cur = {d->driver, d->election, d->balancer};
	int failed = 0, reloaded[3] = {0};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct conf_plugin *op = KIND_CONF(d->conf, i), *np = KIND_CONF(nc, i);
		const struct plugin_instance *pi = KIND_PI(&cur, i);
		char err[1024];
		if (same_group(op, np))
			continue;
		/* the same plugin applies new settings itself when it can, keeping
		 * its state and the calls it has in flight */
		if (strcmp(op->name, np->name) == 0 && pi->plugin && pi->plugin->desc->reload &&
		    pi->plugin->desc->reload(pi->ctx, np->group) == 0) {
			log_info("%s plugin \"%s\": settings reloaded",
			         plugin_kind_name(kinds[i].kind), np->name);
			reloaded[i] = 1;
			continue;
		}
		if (plugin_instance_new(&fresh[i], nc->plugin_dir, kinds[i].kind, np->name,
		                        &d->host->pub, np->group,
		                        plugin_setting(np->group, conf_plugin_dir_setting(nc)), err,
		                        sizeof(err)) < 0) {
			if (errs)
				json_array_append_new(errs, json_string(err));
			failed = 1;
		}
	}
	if (controller_check_policies(nc, &d->host->pub) < 0) {
		failed = 1;
		if (errs)
			json_array_append_new(errs,
			                      json_string("invalid policy settings; see the log"));
	}
	if (zone_balancers_check(nc, &d->host->pub) < 0) {
		failed = 1;
		if (errs)
			json_array_append_new(
			    errs, json_string("invalid balancer settings of a zone; see the log"));
	}
	if (!failed && zones_prepare(d, nc, errs) < 0)
		failed = 1;
	if (failed) {
		for (size_t i = 0; i < 3; i++)
			plugin_instance_free(&fresh[i]);
		conf_free(nc);
		goto refused;
	}

	/* apply */
	struct conf *old = d->conf;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (!fresh[i].plugin)
			continue;
		log_info("%s plugin: now \"%s\"", plugin_kind_name(kinds[i].kind),
		         fresh[i].plugin->name);
		retire(d, KIND_PI(&cur, i), d->plugin_conf[i]);
		*KIND_PI(&cur, i) = fresh[i];
		d->plugin_conf[i] = conf_ref(nc);
	}
	/* an instance that took the new group holds the new config; one whose
	 * group did not change keeps holding the config it points into */
	for (size_t i = 0; i < 3; i++)
		if (reloaded[i]) {
			conf_free(d->plugin_conf[i]);
			d->plugin_conf[i] = conf_ref(nc);
		}
	d->driver = cur.driver;
	d->balancer = cur.balancer;
	/* the election group is fixed (see reload_fixed_setting) */

	d->conf = nc;
	d->loaded_at = now_unix();
	int fd = config_snapshot_fd(nc);
	if (fd >= 0) {
		supervisor_set_config_fd(d->sup, fd);
		close(fd);
	}
	if (!d->force_debug)
		log_set_level(log_level_parse(nc->log_level) >= 0
		                  ? (enum scaler_log_level)log_level_parse(nc->log_level)
		                  : SCALER_LOG_INFO);
	zones_apply(d, old, nc);
	controller_reconfigure(d->ctl, old, nc);
	/* the old config goes once nothing points into it any more: plugin
	 * instances and zones that still use its groups hold references */
	conf_free(old);
	/* what the reload freed goes back to the system: left in the middle of
	 * the heap, free blocks kept RSS growing over many reloads */
	malloc_trim(0);
	d->reloads++;
	/* the workers read their files again (TLS certificates) */
	supervisor_signal_all(d->sup, SIGHUP);
	log_notice("configuration reloaded from %s", d->conf_path);
	sd_notify_send("READY=1");
	return 0;

refused:
	d->reload_failures++;
	log_err("reload refused: the running configuration stays in force");
	sd_notify_send("READY=1");
	return -1;
}

/* ---- signals and stop ------------------------------------------------------- */

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	daemon_reload(w->data, NULL);
}

/* logrotate's postrotate: the workers reopen their access logs */
static void on_sigusr1(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	(void)loop;
	(void)revents;
	if (d->sup)
		supervisor_signal_all(d->sup, SIGUSR1);
}

static void on_all_stopped(void *arg)
{
	struct daemon *d = arg;
	ev_break(d->loop, EVBREAK_ALL);
}

static void daemon_stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	log_notice("stopping (%s)", why);
	sd_notify_send("STOPPING=1");
	controller_stop(d->ctl, "scalerd is stopping");
	if (d->admin) {
		http_server_free(d->admin);
		d->admin = NULL;
	}
	supervisor_stop_all(d->sup, on_all_stopped, d);
}

static void on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	daemon_stop(w->data, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static int daemon_run(const char *conf_path, int force_debug, int force_syslog)
{
	struct daemon d;
	char err[1024];

	memset(&d, 0, sizeof(d));
	d.loop = ev_default_loop(EVFLAG_AUTO);
	d.force_debug = force_debug;
	snprintf(d.conf_path, sizeof(d.conf_path), "%s", conf_path);
	ssize_t n = readlink("/proc/self/exe", d.exe, sizeof(d.exe) - 1);
	if (n <= 0) {
		log_err("cannot find my own executable: %s", strerror(errno));
		return 1;
	}
	d.exe[n] = '\0';

	d.conf = conf_load(conf_path);
	if (!d.conf)
		return 1;
	int lvl = force_debug ? SCALER_LOG_DEBUG : log_level_parse(d.conf->log_level);
	log_setup("scalerd", lvl >= 0 ? (enum scaler_log_level)lvl : SCALER_LOG_INFO,
	          force_syslog || d.conf->log_syslog);
	d.loaded_at = now_unix();

	signal(SIGPIPE, SIG_IGN);
	struct host_params hp = {.node_id = d.conf->node_id,
	                         .cluster = d.conf->cluster,
	                         .admin_url = d.conf->admin_url,
	                         .token = d.conf->token,
	                         .redis_url = d.conf->redis_url,
	                         .state_dir = d.conf->state_dir,
	                         .public_reads = d.conf->public_reads};
	d.host = host_new(d.loop, &hp, err, sizeof(err));
	if (!d.host) {
		log_err("%s", err);
		conf_free(d.conf);
		return 1;
	}
	struct plugin_set s;
	if (plugin_set_load(&s, d.conf, &d.host->pub) < 0) {
		host_free(d.host);
		conf_free(d.conf);
		return 1;
	}
	d.driver = s.driver;
	d.election = s.election;
	d.balancer = s.balancer;
	for (size_t i = 0; i < 3; i++)
		d.plugin_conf[i] = conf_ref(d.conf);

	d.ctl = controller_new(&d);
	err[0] = '\0';
	d.admin = d.ctl ? admin_start(&d, err, sizeof(err)) : NULL;
	if (!d.ctl || !d.admin) {
		log_err("%s: node.admin: cannot serve the admin API on %s: %s", conf_path,
		        d.conf->admin_listen, err);
		goto out;
	}

	ev_signal_init(&d.sig_hup, on_sighup, SIGHUP);
	ev_signal_init(&d.sig_term, on_sigterm, SIGTERM);
	ev_signal_init(&d.sig_int, on_sigterm, SIGINT);
	ev_signal_init(&d.sig_usr1, on_sigusr1, SIGUSR1);
	d.sig_hup.data = d.sig_term.data = d.sig_int.data = d.sig_usr1.data = &d;
	ev_signal_start(d.loop, &d.sig_usr1);
	ev_signal_start(d.loop, &d.sig_hup);
	ev_signal_start(d.loop, &d.sig_term);
	ev_signal_start(d.loop, &d.sig_int);

	d.sup = supervisor_new(d.loop, d.exe, conf_path, force_debug, force_syslog);
	if (!d.sup || zones_prepare(&d, d.conf, NULL) < 0)
		goto out;
	int fd = config_snapshot_fd(d.conf);
	if (fd >= 0) {
		supervisor_set_config_fd(d.sup, fd);
		close(fd);
	}
	zones_apply(&d, NULL, d.conf);

	ev_timer_init(&d.sweep_timer, retired_sweep, 10., 10.);
	d.sweep_timer.data = &d;
	ev_timer_start(d.loop, &d.sweep_timer);

	struct scaler_election_events ev = {
	    .arg = &d, .elected = on_elected, .deposed = on_deposed, .primary = on_primary};
	if (d.election.plugin->ops.election.start(d.election.ctx, &ev) < 0) {
		log_err("election plugin \"%s\" failed to start", d.election.plugin->name);
		goto out;
	}

	log_notice("scalerd %s started: node %s, admin %s, %zu zone(s), config %s", PACKAGE_VERSION,
	           d.conf->node_id, d.conf->admin_url, d.conf->nzones, conf_path);
	sd_notify_send("READY=1");
	ev_run(d.loop, 0);
	log_notice("stopped");

out:
	/* Redis first, while everything its pending callbacks reach still
	 * exists; those callbacks get errors and end their work */
	host_close_redis(d.host);
	if (d.admin)
		http_server_free(d.admin);
	if (d.ctl)
		controller_free(d.ctl);
	supervisor_free(d.sup);
	struct plugin_set cur = {d.driver, d.election, d.balancer};
	plugin_set_free(&cur);
	for (size_t i = 0; i < 3; i++)
		conf_free(d.plugin_conf[i]);
	while (d.retired) {
		struct retired *r = d.retired;
		d.retired = r->next;
		plugin_instance_free(&r->pi);
		conf_free(r->conf);
		free(r);
	}
	host_free(d.host);
	conf_free(d.conf);
	return d.stopping ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"test", no_argument, NULL, 't'},
	                                     {"debug", no_argument, NULL, 'd'},
	                                     {"syslog", no_argument, NULL, 's'},
	                                     {"balancer", required_argument, NULL, 'b'},
	                                     {"stop-servers", no_argument, NULL, 'S'},
	                                     {"config-fd", required_argument, NULL, 'F'},
	                                     {"worker", required_argument, NULL, 'W'},
	                                     {"fds", required_argument, NULL, 'D'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *conf_path = DEFAULT_CONF, *zone = NULL, *worker = NULL, *fds = NULL;
	int test = 0, debug = 0, use_syslog = 0, config_fd = -1, stop = 0, c;

	while ((c = getopt_long(argc, argv, "c:tdVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf_path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 's':
			use_syslog = 1;
			break;
		case 'b':
			zone = optarg;
			break;
		case 'S':
			stop = 1;
			break;
		case 'F':
			config_fd = atoi(optarg);
			break;
		case 'W':
			worker = optarg;
			break;
		case 'D':
			fds = optarg;
			break;
		case 'V':
			printf("scalerd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, SCALER_ABI_MAJOR,
			       SCALER_ABI_MINOR);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "scalerd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	log_setup(zone ? "scalerd-balancer" : "scalerd", debug ? SCALER_LOG_DEBUG : SCALER_LOG_INFO,
	          use_syslog);
	if (test)
		return test_config(conf_path);
	if (stop)
		return stop_servers_run(conf_path);
	if (zone) {
		struct worker_fds f;
		if ((worker || fds) && (!worker || !fds || worker_fds_parse(&f, worker, fds) < 0)) {
			fprintf(stderr,
			        "scalerd: --worker INDEX/COUNT and --fds are set by scalerd "
			        "for the workers it starts\n");
			return 2;
		}
		return worker_run(zone, conf_path, config_fd, worker ? &f : NULL, debug,
		                  use_syslog);
	}
	return daemon_run(conf_path, debug, use_syslog);
}
