#include "config.h"

#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const plugin_kinds[] = {
    [SCALER_KIND_DRIVER] = "driver",     [SCALER_KIND_METRICS] = "metrics",
    [SCALER_KIND_POLICY] = "policy",     [SCALER_KIND_ELECTION] = "election",
    [SCALER_KIND_BALANCER] = "balancer",
};

const char *plugin_kind_name(enum scaler_kind kind)
{
	if ((int)kind <= 0 || (size_t)kind >= sizeof(plugin_kinds) / sizeof(plugin_kinds[0]))
		return "unknown";
	return plugin_kinds[kind];
}

int plugin_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

struct plugin *plugin_load(const char *dir, enum scaler_kind kind, const char *name, char *err,
                           size_t errlen)
{
	char path[4096];
	struct stat st;

	if (!plugin_name_valid(name)) {
		snprintf(err, errlen,
		         "invalid %s plugin name \"%s\": names use only a-z, 0-9, '_' and '-'",
		         plugin_kind_name(kind), name ? name : "");
		return NULL;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s_%s.so", dir, plugin_kind_name(kind),
	                     name) >= sizeof(path)) {
		snprintf(err, errlen, "plugin directory path too long: %s", dir);
		return NULL;
	}
	/* lstat: a symlink is refused, so the file loaded is the file in the
	 * configured directory and not something it points elsewhere to. */
	if (lstat(path, &st) < 0) {
		snprintf(err, errlen, "%s plugin \"%s\" not found: %s: %s (plugin_dir = \"%s\")",
		         plugin_kind_name(kind), name, path, strerror(errno), dir);
		return NULL;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(err, errlen,
		         "%s: refusing to load a symbolic link; install the plugin file itself",
		         path);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return NULL;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "%s: refusing a world-writable plugin file; chmod o-w it",
		         path);
		return NULL;
	}

	dlerror();
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "%s: cannot load: %s", path, dlerror());
		return NULL;
	}
	const struct scaler_plugin *d = dlsym(h, SCALER_PLUGIN_SYMBOL);
	if (!d) {
		snprintf(err, errlen,
		         "%s: no \"%s\" symbol: this is not a scaler plugin (built without "
		         "SCALER_PLUGIN_DEFINE?)",
		         path, SCALER_PLUGIN_SYMBOL);
		goto fail;
	}
	if (d->abi_major != SCALER_ABI_MAJOR || d->abi_minor > SCALER_ABI_MINOR) {
		snprintf(
		    err, errlen,
		    "%s: plugin ABI %u.%u does not match scalerd's ABI %d.%d; rebuild the plugin "
		    "against this scalerd's scaler/plugin.h",
		    path, d->abi_major, d->abi_minor, SCALER_ABI_MAJOR, SCALER_ABI_MINOR);
		goto fail;
	}
	if (d->size < offsetof(struct scaler_plugin, ops) + sizeof(d->ops)) {
		snprintf(
		    err, errlen,
		    "%s: plugin descriptor is %zu bytes, scalerd needs %zu; rebuild the plugin",
		    path, d->size, sizeof(struct scaler_plugin));
		goto fail;
	}
	if (d->kind != kind) {
		snprintf(
		    err, errlen,
		    "%s: is a %s plugin, but it was configured as the %s plugin; name a %s plugin "
		    "there",
		    path, plugin_kind_name(d->kind), plugin_kind_name(kind),
		    plugin_kind_name(kind));
		goto fail;
	}
	if (!d->name || strcmp(d->name, name) != 0) {
		snprintf(err, errlen,
		         "%s: plugin calls itself \"%s\", expected \"%s\"; rename the file", path,
		         d->name ? d->name : "(null)", name);
		goto fail;
	}
	if (!d->init || !d->fini || !d->ops.driver) {
		snprintf(err, errlen, "%s: plugin descriptor lacks init, fini or its operations",
		         path);
		goto fail;
	}

	struct plugin *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->handle = h;
	p->desc = d;
	p->kind = kind;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->path, sizeof(p->path), "%s", path);
	return p;
fail:
	dlclose(h);
	return NULL;
}

void plugin_unload(struct plugin *p)
{
	if (!p)
		return;
	dlclose(p->handle);
	free(p);
}

int plugin_instance_new(struct plugin_instance *pi, const char *dir, enum scaler_kind kind,
                        const char *name, const struct scaler_host *host,
                        const config_setting_t *conf, char *err, size_t errlen)
{
	pi->plugin = plugin_load(dir, kind, name, err, errlen);
	pi->ctx = NULL;
	if (!pi->plugin)
		return -1;
	if (pi->plugin->desc->init(host, conf, &pi->ctx) < 0) {
		snprintf(err, errlen, "%s plugin \"%s\": invalid settings (see above)",
		         plugin_kind_name(kind), name);
		plugin_unload(pi->plugin);
		pi->plugin = NULL;
		return -1;
	}
	return 0;
}

void plugin_instance_free(struct plugin_instance *pi)
{
	if (!pi || !pi->plugin)
		return;
	pi->plugin->desc->fini(pi->ctx);
	plugin_unload(pi->plugin);
	pi->plugin = NULL;
	pi->ctx = NULL;
}
