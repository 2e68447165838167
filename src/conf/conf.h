/* scaler.conf: parse (libconfig) and validate into struct conf.
 * Every error names FILE:LINE: SETTING: what is wrong (conf_util.h). */
#ifndef SCALER_CONF_H
#define SCALER_CONF_H

#include <libconfig.h>
#include <stddef.h>

#include <scaler/plugin.h>

#include "conf_util.h" /* conf_error and the helpers plugins use */

#define CONF_NAME_MAX 64
#define CONF_WORKERS_MAX 64 /* balancer workers of a zone */

/* One plugin kind's group: `driver = { plugin = "process"; ... };` */
struct conf_plugin {
	char name[CONF_NAME_MAX];      /* validated [a-z0-9_-]+ */
	const config_setting_t *group; /* the whole group (plugin's own settings), may be NULL */
};

/* One metric a zone scales on: `metrics = { plugin = "http"; };` is one,
 * named after its plugin; `metrics = { cpu = { plugin = "http"; };
 * requests = { plugin = "balancer"; }; };` names several. */
#define CONF_METRICS_MAX 8
struct conf_metric {
	char name[CONF_NAME_MAX];  /* [a-z0-9_-]+ */
	struct conf_plugin plugin; /* its plugin and settings */
};

struct conf_zone {
	char name[CONF_NAME_MAX]; /* [A-Za-z0-9_.-]+ */
	char listen[128];         /* host:port */
	char admin[128];          /* host:port */
	int min, max;             /* 0 <= min <= max */
	int port_min, port_max;   /* server port range */
	int workers;              /* balancer processes on the zone's socket, default 1 */
	double interval;          /* control loop period, inherits global */
	double window;            /* metrics window, inherits global */
	double cooldown_up, cooldown_down;
	double idle_timeout; /* scale to zero after this long without a request */
	int dry_run;
	char **servers; /* static servers, NULL-terminated (maybe empty) */
	size_t nservers;
	const config_setting_t *policy;   /* per-zone policy group or NULL */
	const config_setting_t *balancer; /* per-zone balancer group or NULL */
	const config_setting_t *metrics;  /* per-zone metrics (group, names) or NULL */
	const config_setting_t *group;    /* the zone's own group */
	int line;
	size_t index; /* position in the zones list */
	/* What the zone runs with: its own policy/balancer group when it has
	 * one (plugin name inherited from the global group when omitted),
	 * else the global group (which may be NULL: all defaults). */
	char policy_plugin[CONF_NAME_MAX];
	const config_setting_t *policy_conf;
	char balancer_plugin[CONF_NAME_MAX];
	const config_setting_t *balancer_conf;
	/* the metrics it scales on: its own, some of the global ones (by
	 * name), or all of the global ones */
	struct conf_metric metrics_list[CONF_METRICS_MAX];
	size_t nmetrics;
	struct scaler_zone pub; /* view handed to plugins (points into this struct) */
};

struct conf {
	char path[4096];
	config_t cfg; /* owns the strings the groups point to */
	int refs;     /* conf_ref / conf_free */
	int counted;  /* in conf_alive() */

	/* node */
	char node_id[CONF_NAME_MAX];
	char admin_listen[128]; /* host:port of scalerd's admin API */
	char admin_url[256];    /* advertised URL (default http://<admin_listen>) */
	char *token;            /* NULL when none; from node.token or node.token_file */
	char token_file[4096];
	int public_reads;    /* node.public_reads: GET and HEAD need no token */
	char **zones_hosted; /* node.zones: names of zones this node runs balancers for,
	                      * NULL-terminated; NULL = all (an empty list = none) */

	char cluster[CONF_NAME_MAX];
	char redis_url[512];
	char plugin_dir[4096]; /* default $SCALER_PLUGIN_DIR, else PLUGINDIR */
	char state_dir[4096];  /* server logs and pid records of the process driver */
	char log_level[16];    /* a name log_level_parse() accepts; default "info" */
	int log_syslog;

	double interval;                   /* default 10 s (seed) */
	double window;                     /* default 10 s (seed) */
	double cooldown_up, cooldown_down; /* default 0 s */
	double idle_timeout;               /* default 30 s */
	double drain_timeout;              /* removed servers finish requests, default 10 s */
	double reconcile_interval;         /* orphan sweep period, default 60 s, 0: off */
	int dry_run;
	double stop_timeout; /* SIGTERM → SIGKILL for children, default 10 s */

	struct conf_plugin driver, policy, election, balancer;
	struct conf_metric metrics[CONF_METRICS_MAX]; /* at least one ("http") */
	size_t nmetrics;

	struct conf_zone *zones;
	size_t nzones;
};

/* Parse and validate. NULL on any error, after logging every error found
 * (one line each, FILE:LINE: SETTING: message, sorted by file and line,
 * then "FILE: N errors, configuration not loaded"). No side effects besides
 * reading the file (and node.token_file). Not reentrant: call it from the
 * main thread only. */
struct conf *conf_load(const char *path);
/* A config is freed when its last holder lets go: conf_load gives one
 * reference, conf_ref another (to keep the groups and zones of a config
 * that is no longer in force while something still points into them), and
 * conf_free drops one. */
struct conf *conf_ref(const struct conf *c);
void conf_free(struct conf *c);
/* How many configs this process holds (loaded and not yet freed). */
size_t conf_alive(void);

const struct conf_zone *conf_zone_find(const struct conf *c, const char *name);
/* 1 when the zone's balancer worker can keep running across a reload from
 * a to b: same name, listen, admin, workers, static servers (in order), effective
 * balancer plugin and the same content of its effective balancer group
 * (compared setting by setting; int 10 equals float 10.0; group members in
 * any order; the group's own `plugin` member is compared as the effective
 * plugin name). min, max, ports, interval, window, cooldowns, dry_run and
 * the policy are controller-side and are not compared. */
int conf_zone_equal(const struct conf_zone *a, const struct conf_zone *b);
/* The plugin_dir setting (NULL when the file has none): where errors of
 * plugins that have no group of their own are reported. */
const config_setting_t *conf_plugin_dir_setting(const struct conf *c);
/* 1 when this node hosts the balancer of zone `name`. */
int conf_hosts_zone(const struct conf *c, const char *name);

#endif
