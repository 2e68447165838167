/* The state of one scalerd process in daemon mode, shared by scalerd.c
 * (lifecycle, reload), admin.c (admin API) and controller.c. */
#ifndef SCALER_DAEMON_H
#define SCALER_DAEMON_H

#include <ev.h>
#include <stdint.h>

#include "conf.h"
#include "plugin.h"

enum daemon_role { ROLE_BACKUP = 0, ROLE_PRIMARY = 1 };

struct host;
struct http_server;
struct supervisor;
struct controller;

/* A plugin instance and the config it was made from, kept until nothing
 * can call into it any more. */
struct retired {
	struct plugin_instance pi;
	struct conf *conf;
	double at;
	struct retired *next;
};

struct daemon {
	struct ev_loop *loop;
	char exe[4096];
	char conf_path[4096];
	struct conf *conf;
	double loaded_at; /* unix time of the config in force */
	unsigned reloads, reload_failures;

	struct host *host;
	struct plugin_instance driver, metrics, election, balancer;
	/* the config whose group each of driver, election and balancer was made
	 * or last reloaded with (a reference: it may no longer be in force) */
	struct conf *plugin_conf[3];
	struct http_server *admin;
	struct supervisor *sup;
	struct controller *ctl;
	struct retired *retired;
	struct zones_req *zones_fanouts; /* GET /zones calls in flight (src/admin/console.c) */

	enum daemon_role role;
	uint64_t epoch; /* our epoch while primary */
	char primary_id[64];
	char primary_url[256];
	uint64_t primary_epoch;

	ev_signal sig_hup, sig_term, sig_int, sig_usr1;
	ev_timer sweep_timer;
	int stopping;
	int force_debug; /* -d: keep debug logging across reloads */
};

/* SIGHUP and POST /reload: parse → validate → diff → apply. 0 when the new
 * config is in force; -1 when it was refused (errors logged and, when
 * errors is not NULL, appended as strings). */
int daemon_reload(struct daemon *d, void *errors_json_array);

#endif
