/* driverctl: drive a driver plugin from the command line, for tests.
 *
 *   driverctl -d PLUGINDIR -c CONF [-v] COMMAND [ARGS] [';' COMMAND ...]
 *
 * loads the driver named in CONF's `driver` group through the real plugin
 * loader on the real host (src/plugin/host.c), runs each command to completion on
 * the loop and prints one JSON line per command:
 *
 *   create ZONE ID        {"ok":true,"server":{...}}
 *   list                  {"ok":true,"servers":[...]}
 *   remove ID [ZONE REF]  {"ok":true}        (ZONE REF: a server it may not know)
 *   wait SECONDS          {"ok":true}        (runs the loop)
 *   reload CONF2          {"ok":true}        (CONF2's driver group, in place)
 *   reconcile EPOCH       {"ok":true,"summary":{...}}   (needs `redis`)
 *   sweep EPOCH           an orphan sweep: {"ok":true,"summary":{..., "candidates":[IDS]}};
 *                         a later sweep of the same run acts on those candidates
 *
 * CONF (libconfig):
 *   cluster = "t1";  redis = "redis://127.0.0.1:6379/0";   (optional)
 *   driver = { plugin = "process"; ... the plugin's settings ... };
 *   zones = ( { name = "z1"; port_min = 20000; port_max = 20099; } );
 *
 * Exit status 0 when every command succeeded, 1 otherwise, 2 on bad usage. */
#include "config.h"

#include <ev.h>
#include <jansson.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "log.h"
#include "plugin.h"
#include "reconcile.h"
#include "redis_conn.h"
#include "store.h"

struct dc {
	struct ev_loop *loop;
	struct host *host;
	struct plugin_instance pi;
	const struct scaler_driver_ops *ops;
	struct scaler_zone *zones;
	const struct scaler_zone **zonep;
	size_t nzones;
	int done;
	int ok;
	int in_call; /* inside a driver's operation: a callback now breaks its contract */
	json_t *out;
	struct reconcile_seen seen; /* the last sweep's candidates */
};

static json_t *dc_server_json(const struct scaler_server *s)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:f, s:b}", "id", s->id, "zone", s->zone, "address",
	                 s->address, "ref", s->ref, "created", s->created, "running", s->running);
}

static void dc_print(struct dc *dc)
{
	if (dc->out && dc->in_call > 1) /* the callback ran before the call returned */
		json_object_set_new(dc->out, "on_callers_stack", json_true());
	dc->in_call = 0;
	char *text = json_dumps(dc->out, JSON_COMPACT);
	printf("%s\n", text ? text : "{}");
	fflush(stdout);
	free(text);
	json_decref(dc->out);
	dc->out = NULL;
}

static void dc_fail(struct dc *dc, const char *err)
{
	dc->ok = 0;
	dc->out = json_pack("{s:b, s:s}", "ok", 0, "error", err ? err : "failed");
	dc->done = 1;
}

static void dc_run(struct dc *dc, double timeout)
{
	ev_tstamp end = ev_time() + timeout;
	while (!dc->done && ev_time() < end)
		ev_run(dc->loop, EVRUN_ONCE);
	if (!dc->done)
		dc_fail(dc, "timed out");
}

static void dc_server_cb(void *arg, int status, const struct scaler_server *srv, const char *err)
{
	struct dc *dc = arg;
	if (dc->in_call == 1)
		dc->in_call = 2;
	if (status != 0) {
		dc_fail(dc, err);
		return;
	}
	dc->out = json_pack("{s:b, s:o}", "ok", 1, "server", dc_server_json(srv));
	dc->done = 1;
}

static void dc_list_cb(void *arg, int status, const struct scaler_server *srvs, size_t n,
                       const char *err)
{
	struct dc *dc = arg;
	json_t *a;
	if (status != 0) {
		dc_fail(dc, err);
		return;
	}
	a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, dc_server_json(&srvs[i]));
	dc->out = json_pack("{s:b, s:o}", "ok", 1, "servers", a);
	dc->done = 1;
}

/* list and keep the result for remove-by-id */
struct dc_find {
	struct dc *dc;
	const char *id;
	struct scaler_server srv;
	int found, done, status;
	char err[512];
};

static void dc_find_cb(void *arg, int status, const struct scaler_server *srvs, size_t n,
                       const char *err)
{
	struct dc_find *f = arg;
	f->status = status;
	snprintf(f->err, sizeof(f->err), "%s", err ? err : "");
	for (size_t i = 0; i < n; i++)
		if (strcmp(srvs[i].id, f->id) == 0) {
			f->srv = srvs[i];
			f->found = 1;
		}
	f->done = 1;
}

/* ---- health check for reconcile: GET <address>/health_check, 2xx ------- */

struct dc_health {
	void (*done)(void *arg, int healthy);
	void *arg;
};

static void dc_health_cb(void *arg, const struct scaler_http_response *resp)
{
	struct dc_health *h = arg;
	h->done(h->arg, resp->status >= 200 && resp->status < 300);
	free(h);
}

static int dc_health(void *health_arg, const struct scaler_server *srv,
                     void (*done)(void *arg, int healthy), void *arg)
{
	struct dc *dc = health_arg;
	char url[300];
	struct scaler_http_request req = {.url = url, .timeout = 2.0};
	struct dc_health *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	snprintf(url, sizeof(url), "%s/health_check", srv->address);
	h->done = done;
	h->arg = arg;
	if (!dc->host->pub.http_request(&req, dc_health_cb, h)) {
		free(h);
		return -1;
	}
	return 0;
}

static void dc_reconcile_cb(void *arg, const struct reconcile_summary *s)
{
	struct dc *dc = arg;
	json_t *sum = json_pack(
	    "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "status",
	    reconcile_status_name(s->status), "records", (json_int_t)s->records, "servers",
	    (json_int_t)s->servers, "adopted", (json_int_t)s->adopted, "orphans_removed",
	    (json_int_t)s->orphans_removed, "promoted", (json_int_t)s->promoted, "records_dropped",
	    (json_int_t)s->records_dropped, "deletions_finished", (json_int_t)s->deletions_finished,
	    "still_starting", (json_int_t)s->still_starting, "ignored", (json_int_t)s->ignored,
	    "errors", (json_int_t)s->errors, "err", s->err);
	if (s->seen) {
		json_t *ids = json_array();
		free(dc->seen.v);
		dc->seen.v = NULL;
		dc->seen.n = 0;
		if (s->seen->n && (dc->seen.v = malloc(s->seen->n * sizeof(*s->seen->v)))) {
			memcpy(dc->seen.v, s->seen->v, s->seen->n * sizeof(*s->seen->v));
			dc->seen.n = s->seen->n;
		}
		for (size_t i = 0; i < s->seen->n; i++)
			json_array_append_new(ids, json_string(s->seen->v[i].id));
		json_object_set_new(sum, "candidates", ids);
	}
	dc->ok = dc->ok && s->status == RECONCILE_OK;
	dc->out = json_pack("{s:b, s:o}", "ok", s->status == RECONCILE_OK, "summary", sum);
	dc->done = 1;
}

static void dc_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc *dc = w->data;
	dc->out = json_pack("{s:b}", "ok", 1);
	dc->done = 1;
}

static const struct scaler_zone *dc_zone(struct dc *dc, const char *name)
{
	for (size_t i = 0; i < dc->nzones; i++)
		if (strcmp(dc->zones[i].name, name) == 0)
			return &dc->zones[i];
	return NULL;
}

/* One command: argv[0..argc). */
static void dc_command(struct dc *dc, int argc, char **argv)
{
	char err[512];
	dc->done = 0;
	if (argc == 3 && strcmp(argv[0], "create") == 0) {
		struct scaler_server_spec spec = {.zone = dc_zone(dc, argv[1]),
		                                  .server_id = argv[2]};
		if (!spec.zone) {
			snprintf(err, sizeof(err), "no zone %s in the config", argv[1]);
			dc_fail(dc, err);
		} else {
			dc->in_call = 1;
			int r = dc->ops->create(dc->pi.ctx, &spec, dc_server_cb, dc);
			if (dc->in_call == 1)
				dc->in_call = 0;
			if (r < 0)
				dc_fail(dc, "create refused");
		}
		dc_run(dc, 120);
	} else if (argc == 1 && strcmp(argv[0], "list") == 0) {
		if (dc->ops->list(dc->pi.ctx, dc_list_cb, dc) < 0)
			dc_fail(dc, "list refused");
		dc_run(dc, 60);
	} else if ((argc == 2 || argc == 4) && strcmp(argv[0], "remove") == 0) {
		struct scaler_server srv;
		memset(&srv, 0, sizeof(srv));
		snprintf(srv.id, sizeof(srv.id), "%s", argv[1]);
		if (argc == 4) {
			snprintf(srv.zone, sizeof(srv.zone), "%s", argv[2]);
			snprintf(srv.ref, sizeof(srv.ref), "%s", argv[3]);
		} else {
			struct dc_find f = {.dc = dc, .id = argv[1]};
			if (dc->ops->list(dc->pi.ctx, dc_find_cb, &f) < 0) {
				dc_fail(dc, "list refused");
				return;
			}
			while (!f.done)
				ev_run(dc->loop, EVRUN_ONCE);
			if (f.status != 0 || !f.found) {
				snprintf(err, sizeof(err), "%s",
				         f.status ? f.err : "no such server");
				dc_fail(dc, err);
				return;
			}
			srv = f.srv;
		}
		if (dc->ops->remove(dc->pi.ctx, &srv, dc_server_cb, dc) < 0)
			dc_fail(dc, "remove refused");
		dc_run(dc, 120);
		if (dc->out && json_is_true(json_object_get(dc->out, "ok")))
			json_object_del(dc->out, "server");
	} else if (argc == 2 && strcmp(argv[0], "wait") == 0) {
		ev_timer w;
		ev_timer_init(&w, dc_wait_cb, atof(argv[1]), 0.);
		w.data = dc;
		ev_timer_start(dc->loop, &w);
		dc_run(dc, atof(argv[1]) + 5);
		ev_timer_stop(dc->loop, &w);
	} else if (argc == 2 && strcmp(argv[0], "reload") == 0) {
		/* the driver group of another config file, applied in place */
		config_t *cfg = calloc(1, sizeof(*cfg));
		const config_setting_t *group;
		config_init(cfg);
		if (!config_read_file(cfg, argv[1])) {
			snprintf(err, sizeof(err), "%s:%d: %s", argv[1], config_error_line(cfg),
			         config_error_text(cfg));
			dc_fail(dc, err);
		} else if (!(group = config_lookup(cfg, "driver"))) {
			dc_fail(dc, "no driver group");
		} else if (!dc->pi.plugin->desc->reload ||
		           dc->pi.plugin->desc->reload(dc->pi.ctx, group) < 0) {
			dc_fail(dc, "reload refused (see above)");
		} else {
			dc->out = json_pack("{s:b}", "ok", 1);
		}
		config_destroy(cfg); /* plugins keep copies of their settings */
		free(cfg);
	} else if (argc == 2 &&
	           (strcmp(argv[0], "reconcile") == 0 || strcmp(argv[0], "sweep") == 0)) {
		uint64_t epoch = strtoull(argv[1], NULL, 10);
		if (!dc->host->store) {
			dc_fail(dc, "reconcile needs `redis` in the config");
			return;
		}
		if (!(argv[0][0] == 'r'
		          ? reconcile_start(dc->host->store, &dc->pi, dc->zonep, dc->nzones, epoch,
		                            dc_health, dc, dc_reconcile_cb, dc)
		          : reconcile_sweep(dc->host->store, &dc->pi, dc->zonep, dc->nzones, epoch,
		                            &dc->seen, dc_health, dc, NULL, dc_reconcile_cb, dc)))
			dc_fail(dc, "reconcile could not start");
		dc_run(dc, 120);
	} else {
		snprintf(err, sizeof(err), "unknown command or wrong arguments: %s", argv[0]);
		dc_fail(dc, err);
	}
}

static int dc_load_zones(struct dc *dc, config_t *cfg)
{
	const config_setting_t *zs = config_lookup(cfg, "zones");
	int n = zs ? config_setting_length(zs) : 0;
	dc->zones = calloc((size_t)n + 1, sizeof(*dc->zones));
	dc->zonep = calloc((size_t)n + 1, sizeof(*dc->zonep));
	if (!dc->zones || !dc->zonep)
		return -1;
	for (int i = 0; i < n; i++) {
		const config_setting_t *z = config_setting_get_elem(zs, (unsigned)i);
		struct scaler_zone *pz = &dc->zones[i];
		if (!config_setting_lookup_string(z, "name", &pz->name)) {
			fprintf(stderr, "driverctl: zone %d has no name\n", i);
			return -1;
		}
		config_setting_lookup_int(z, "port_min", &pz->port_min);
		config_setting_lookup_int(z, "port_max", &pz->port_max);
		config_setting_lookup_int(z, "min", &pz->min);
		config_setting_lookup_int(z, "max", &pz->max);
		pz->conf = z;
		dc->zonep[i] = pz;
	}
	dc->nzones = (size_t)n;
	return 0;
}

static void dc_redis_state(void *arg, int connected)
{
	if (connected)
		*(int *)arg = 1;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *conf = NULL, *cluster = "scaler", *redis = NULL, *name = NULL;
	struct dc dc = {.ok = 1};
	struct host_params hp = {0};
	config_t cfg;
	char err[1024];
	int opt, verbose = 0;

	while ((opt = getopt(argc, argv, "+d:c:v")) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			goto usage;
		}
	}
	if (!dir || !conf || optind >= argc)
		goto usage;
	log_setup("driverctl", verbose ? SCALER_LOG_DEBUG : SCALER_LOG_WARNING, 0);

	config_init(&cfg);
	if (!config_read_file(&cfg, conf)) {
		fprintf(stderr, "driverctl: %s:%d: %s\n", conf, config_error_line(&cfg),
		        config_error_text(&cfg));
		return 2;
	}
	config_lookup_string(&cfg, "cluster", &cluster);
	config_lookup_string(&cfg, "redis", &redis);
	const config_setting_t *group = config_lookup(&cfg, "driver");
	if (!group || !config_setting_lookup_string(group, "plugin", &name)) {
		fprintf(stderr, "driverctl: %s: no driver.plugin\n", conf);
		return 2;
	}
	if (dc_load_zones(&dc, &cfg) < 0)
		return 2;

	dc.loop = ev_default_loop(0);
	hp.node_id = "1";
	hp.cluster = cluster;
	hp.admin_url = "http://127.0.0.1:1";
	hp.redis_url = redis;
	dc.host = host_new(dc.loop, &hp, err, sizeof(err));
	if (!dc.host) {
		fprintf(stderr, "driverctl: %s\n", err);
		return 2;
	}
	if (dc.host->redis) {
		int up = 0;
		ev_tstamp end = ev_time() + 5;
		redis_conn_on_state(dc.host->redis, dc_redis_state, &up);
		while (!up && ev_time() < end)
			ev_run(dc.loop, EVRUN_ONCE);
		redis_conn_on_state(dc.host->redis, NULL, NULL);
	}
	if (plugin_instance_new(&dc.pi, dir, SCALER_KIND_DRIVER, name, &dc.host->pub, group,
	                        plugin_setting(group, NULL), err, sizeof(err)) < 0) {
		json_t *j = json_pack("{s:b, s:s}", "ok", 0, "error", err);
		char *text = json_dumps(j, JSON_COMPACT);
		printf("%s\n", text);
		free(text);
		json_decref(j);
		fprintf(stderr, "driverctl: %s\n", err);
		return 1;
	}
	dc.ops = &dc.pi.plugin->ops.driver;

	for (int i = optind; i < argc;) {
		int j = i;
		while (j < argc && strcmp(argv[j], ";") != 0)
			j++;
		if (j > i) {
			dc_command(&dc, j - i, argv + i);
			if (dc.out && !json_is_true(json_object_get(dc.out, "ok")))
				dc.ok = 0;
			dc_print(&dc);
		}
		i = j + 1;
	}

	plugin_instance_free(&dc.pi);
	host_free(dc.host);
	config_destroy(&cfg);
	free(dc.zones);
	free(dc.zonep);
	free(dc.seen.v);
	return dc.ok ? 0 : 1;
usage:
	fprintf(stderr,
	        "usage: driverctl -d PLUGINDIR -c CONF [-v] COMMAND [ARGS] [';' COMMAND ...]\n"
	        "commands: create ZONE ID | list | remove ID [ZONE REF] | wait SECONDS |"
	        " reload CONF2 | reconcile EPOCH | sweep EPOCH\n");
	return 2;
}
