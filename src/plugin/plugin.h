/* Plugin loader: find <kind>_<name>.so on the plugin search path, check
 * the directory and the file, dlopen the file that was checked, check the
 * descriptor and the kind's operations. */
#ifndef SCALER_PLUGIN_LOADER_H
#define SCALER_PLUGIN_LOADER_H

#include <scaler/plugin.h>

struct pl_file;

struct plugin {
	void *handle;
	struct pl_file *file; /* the open file it was loaded from */
	const struct scaler_plugin *desc;
	enum scaler_kind kind;
	char name[64];
	char path[4096];
	/* The plugin's ops table copied at the host's size: an op that a
	 * plugin built against an older ABI does not have is NULL here. The
	 * host calls through this copy, never through desc->ops. */
	union {
		struct scaler_driver_ops driver;
		struct scaler_metrics_ops metrics;
		struct scaler_policy_ops policy;
		struct scaler_election_ops election;
		struct scaler_balancer_ops balancer;
	} ops;
};

/* An initialised plugin: descriptor plus its per-instance context. */
struct plugin_instance {
	struct plugin *plugin;
	void *ctx;
};

const char *plugin_kind_name(enum scaler_kind kind);
/* 1 when name matches [a-z0-9_-]+ and is at most 63 bytes. */
int plugin_name_valid(const char *name);

/* Load <kind>_<name>.so from the first directory of `path` (directories
 * separated by ':') that has it. Each directory searched must be a real
 * directory (not a symlink), owned by root or this user, not
 * world-writable; so must the file, which is then loaded through the open
 * descriptor that was checked. A plugin found earlier on the path than
 * another of the same name is logged once. NULL with a sentence in err
 * (the file or the directories, what is wrong, what to do). */
struct plugin *plugin_load(const char *path, enum scaler_kind kind, const char *name, char *err,
                           size_t errlen);
void plugin_unload(struct plugin *p);

/* load + init with conf (may be NULL). -1 after reporting why: through
 * conf_error(blame) ("FILE:LINE: SETTING: ...") when blame is not NULL,
 * else log_err; a refused init has reported through the host already.
 * The sentence also goes to err when it is not NULL. */
int plugin_instance_new(struct plugin_instance *pi, const char *path, enum scaler_kind kind,
                        const char *name, const struct scaler_host *host,
                        const config_setting_t *conf, const config_setting_t *blame, char *err,
                        size_t errlen);
void plugin_instance_free(struct plugin_instance *pi);
/* Where a plugin group's load errors are reported: its `plugin` setting,
 * else the group itself, else `fallback` (the plugin_dir setting, or NULL). */
const config_setting_t *plugin_setting(const config_setting_t *group,
                                       const config_setting_t *fallback);

#endif
