/* scaler.conf: parse (libconfig) and validate into struct conf.
 * Every error names FILE:LINE: SETTING: what is wrong. */
#ifndef SCALER_CONF_H
#define SCALER_CONF_H

#include <libconfig.h>
#include <stddef.h>

#include <scaler/plugin.h>

#define CONF_NAME_MAX 64

/* One plugin kind's group: `driver = { plugin = "process"; ... };` */
struct conf_plugin {
	char name[CONF_NAME_MAX];      /* validated [a-z0-9_-]+ */
	const config_setting_t *group; /* the whole group (plugin's own settings), may be NULL */
};

struct conf_zone {
	char name[CONF_NAME_MAX];    /* [A-Za-z0-9_.-]+ */
	char listen[128];            /* host:port */
	char admin[128];             /* host:port */
	int min, max;                /* 0 <= min <= max */
	int port_min, port_max;      /* server port range */
	double interval;             /* control loop period, inherits global */
	double window;               /* metrics window, inherits global */
	double cooldown_up, cooldown_down;
	int dry_run;
	char **servers;              /* static servers, NULL-terminated (maybe empty) */
	size_t nservers;
	const config_setting_t *policy;   /* per-zone policy group or NULL */
	const config_setting_t *balancer; /* per-zone balancer group or NULL */
	const config_setting_t *group;    /* the zone's own group */
	int line;
	struct scaler_zone pub;      /* view handed to plugins (points into this struct) */
};

struct conf_peer {
	char id[CONF_NAME_MAX];
	char url[256];
};

struct conf {
	char path[4096];
	config_t cfg; /* owns the strings the groups point to */

	/* node */
	char node_id[CONF_NAME_MAX];
	char admin_listen[128];     /* host:port of scalerd's admin API */
	char admin_url[256];        /* advertised URL (default http://<admin_listen>) */
	char *token;                /* NULL when none; from node.token or node.token_file */
	char token_file[4096];
	char **zones_hosted;        /* node.zones: names of zones this node runs balancers for; NULL = all */

	char cluster[CONF_NAME_MAX];
	char redis_url[512];
	char plugin_dir[4096];
	char state_dir[4096];       /* server logs and pid records of the process driver */
	char log_level[16];
	int log_syslog;

	double interval;            /* default 10 s (seed) */
	double window;              /* default 10 s (seed) */
	double cooldown_up, cooldown_down; /* default 0 s */
	double drain_timeout;       /* default 10 s */
	int dry_run;
	double stop_timeout;        /* SIGTERM → SIGKILL for children, default 10 s */

	struct conf_plugin driver, metrics, policy, election, balancer;

	struct conf_zone *zones;
	size_t nzones;

	struct conf_peer *peers;    /* election peers (election.peers), may be empty */
	size_t npeers;
};

/* Parse and validate. NULL on any error, after logging every error found
 * (one line each, FILE:LINE: SETTING: message). */
struct conf *conf_load(const char *path);
void conf_free(struct conf *c);

const struct conf_zone *conf_zone_find(const struct conf *c, const char *name);
/* 1 when zone `z` is identical in a and b (same balancer process may stay). */
int conf_zone_equal(const struct conf_zone *a, const struct conf_zone *b);
/* 1 when this node hosts the balancer of zone `name`. */
int conf_hosts_zone(const struct conf *c, const char *name);

/* Helpers the host hands plugins (see struct scaler_host). */
int conf_error(const config_setting_t *setting, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int conf_check_known(const config_setting_t *group, const char *const *known);
/* "zones.[1].max" style path of a setting into buf. */
const char *conf_setting_path(const config_setting_t *s, char *buf, size_t len);

/* Read a number setting (int or float) as double; 0 when absent (value
 * untouched), 1 when read, -1 after conf_error when not a number or below min. */
int conf_get_seconds(const config_setting_t *group, const char *name, double min, double *out);

#endif
