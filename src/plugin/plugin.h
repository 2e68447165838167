/* Plugin loader: dlopen <dir>/<kind>_<name>.so, check the descriptor. */
#ifndef SCALER_PLUGIN_LOADER_H
#define SCALER_PLUGIN_LOADER_H

#include <scaler/plugin.h>

struct plugin {
	void *handle;
	const struct scaler_plugin *desc;
	enum scaler_kind kind;
	char name[64];
	char path[4096];
};

/* An initialised plugin: descriptor plus its per-instance context. */
struct plugin_instance {
	struct plugin *plugin;
	void *ctx;
};

const char *plugin_kind_name(enum scaler_kind kind);
/* 1 when name matches [a-z0-9_-]+ and is at most 63 bytes. */
int plugin_name_valid(const char *name);

/* NULL with a sentence in err (file, both versions, what to do). */
struct plugin *plugin_load(const char *dir, enum scaler_kind kind, const char *name, char *err,
                           size_t errlen);
void plugin_unload(struct plugin *p);

/* load + init with conf (may be NULL); -1 with err filled / logged. */
int plugin_instance_new(struct plugin_instance *pi, const char *dir, enum scaler_kind kind,
                        const char *name, const struct scaler_host *host,
                        const config_setting_t *conf, char *err, size_t errlen);
void plugin_instance_free(struct plugin_instance *pi);

#endif
