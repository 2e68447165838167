/* The plugin loader (plugin.h): the search path, the checks of the
 * directories and files it loads from, the descriptor, and each kind's
 * required operations. */
#include "config.h"

#include "plugin.h"

#include "conf_util.h"
#include "log.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
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

/* ---- the operations each kind must have ---- */

struct pl_op {
	size_t off;
	const char *name;
};

#define PL_OP(type, member)                            \
	{                                              \
		offsetof(struct type, member), #member \
	}

static const struct {
	size_t size; /* the host's sizeof of the kind's ops table */
	struct pl_op required[4];
} pl_kinds[] = {
    [SCALER_KIND_DRIVER] = {sizeof(struct scaler_driver_ops),
                            {PL_OP(scaler_driver_ops, create), PL_OP(scaler_driver_ops, remove),
                             PL_OP(scaler_driver_ops, list)}},
    [SCALER_KIND_METRICS] = {sizeof(struct scaler_metrics_ops), {PL_OP(scaler_metrics_ops, query)}},
    [SCALER_KIND_POLICY] = {sizeof(struct scaler_policy_ops), {PL_OP(scaler_policy_ops, decide)}},
    [SCALER_KIND_ELECTION] = {sizeof(struct scaler_election_ops),
                              {PL_OP(scaler_election_ops, start)}},
    [SCALER_KIND_BALANCER] = {sizeof(struct scaler_balancer_ops),
                              {PL_OP(scaler_balancer_ops, serve)}},
};

/* Check the kind's ops table and copy it into p->ops at the host's size. */
static int pl_check_ops(struct plugin *p, char *err, size_t errlen)
{
	const char *kind = plugin_kind_name(p->kind);
	const void *ops = p->desc->ops.driver; /* every member is a pointer to a table */
	size_t size;

	if (!ops) {
		snprintf(err, errlen, "%s: the descriptor has no %s operations (ops.%s is NULL)",
		         p->path, kind, kind);
		return -1;
	}
	size = *(const size_t *)ops; /* every table starts with its size */
	for (const struct pl_op *op = pl_kinds[p->kind].required; op->name; op++) {
		void *fn;
		if (size < op->off + sizeof(fn)) {
			snprintf(
			    err, errlen,
			    "%s: its %s ops table says it is %zu bytes, too small to hold %s(), "
			    "which a %s plugin must have; set .size = sizeof(the table) and "
			    "rebuild",
			    p->path, kind, size, op->name, kind);
			return -1;
		}
		memcpy(&fn, (const char *)ops + op->off, sizeof(fn));
		if (!fn) {
			snprintf(err, errlen,
			         "%s: its %s ops have no %s(): a %s plugin must have one (see "
			         "scaler-plugin(7))",
			         p->path, kind, op->name, kind);
			return -1;
		}
	}
	memset(&p->ops, 0, sizeof(p->ops));
	memcpy(&p->ops, ops, size < pl_kinds[p->kind].size ? size : pl_kinds[p->kind].size);
	return 0;
}

/* ---- finding and opening the file ---- */

/* Why a plugin directory or file may not be trusted, NULL when it may:
 * only root or this user may be able to change what scalerd runs. */
static const char *pl_untrusted(const struct stat *st)
{
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return "owned by another user than root or scalerd's";
	if (st->st_mode & S_IWOTH)
		return "world-writable";
	/* a group's members are other users too (root's group is root's) */
	if ((st->st_mode & S_IWGRP) && st->st_gid != 0)
		return "writable by its group, which is not root's";
	return NULL;
}

/* Open directory `dir` of the search path: a descriptor; -1 when it does
 * not exist (skipped); -2 with err set when it is refused. */
static int pl_open_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	const char *why = NULL;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), e = errno;

	if (fd < 0) {
		if (e == ENOENT)
			return -1;
		if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
			snprintf(err, errlen,
			         "plugin directory %s is a symbolic link; set plugin_dir to the "
			         "directory itself",
			         dir);
		else
			snprintf(err, errlen, "plugin directory %s: %s", dir, strerror(e));
		return -2;
	}
	if (fstat(fd, &st) < 0 || (why = pl_untrusted(&st))) {
		snprintf(err, errlen,
		         "refusing plugin directory %s: it is %s, and whoever can write there "
		         "chooses what scalerd runs (a sticky bit does not change that); chown "
		         "root and chmod go-w it",
		         dir, why ? why : "unreadable");
		close(fd);
		return -2;
	}
	return fd;
}

/* Open <file> in directory dfd: a descriptor; -1 when it is not there; -2
 * with err set when it is refused. */
static int pl_open_file(int dfd, const char *path, const char *file, char *err, size_t errlen)
{
	struct stat st;
	const char *why = NULL;
	int fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return -1;
		if (errno == ELOOP)
			snprintf(
			    err, errlen,
			    "%s: refusing to load a symbolic link; install the plugin file itself",
			    path);
		else
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -2;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -2;
	}
	if ((why = pl_untrusted(&st))) {
		snprintf(err, errlen, "%s: refusing a plugin file %s; chown root and chmod go-w it",
		         path, why);
		close(fd);
		return -2;
	}
	return fd;
}

/* A plugin found earlier on the path shadows the others of its name: say
 * so once per file. */
static void pl_log_shadowing(const char *found, const char *rest, const char *file)
{
	static char seen[32][128];
	static size_t nseen;
	char dir[4096], other[8300];
	struct stat st;

	while (*rest) {
		size_t n = strcspn(rest, ":");
		snprintf(dir, sizeof(dir), "%.*s", (int)n, rest);
		rest += n + (rest[n] == ':');
		snprintf(other, sizeof(other), "%s/%s", dir, file);
		if (!dir[0] || stat(other, &st) < 0)
			continue;
		for (size_t i = 0; i < nseen; i++)
			if (strcmp(seen[i], file) == 0)
				return;
		if (nseen < sizeof(seen) / sizeof(seen[0]))
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", file);
		log_info("plugin %s shadows %s (the first on plugin_dir is loaded)", found, other);
		return;
	}
}

/* The files plugins were loaded from. dlopen gets "/proc/self/fd/N", the
 * descriptor that was checked; the dynamic loader knows an object by that
 * name from then on, so N stays open while the object may be mapped (after
 * dlclose too, when it stays loaded) and another file never gets that
 * name. A file loaded again (a policy per zone) reuses its entry. */
struct pl_file {
	dev_t dev;
	ino_t ino;
	int fd;
	int refs;
	char name[32];
	struct pl_file *next;
};

static struct pl_file *pl_files;

/* The entry of the file open as fd (which it takes over). */
static struct pl_file *pl_file_get(int fd)
{
	struct stat st;
	struct pl_file *f;

	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	for (f = pl_files; f; f = f->next)
		if (f->dev == st.st_dev && f->ino == st.st_ino) {
			close(fd);
			f->refs++;
			return f;
		}
	if (!(f = calloc(1, sizeof(*f)))) {
		close(fd);
		return NULL;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->fd = fd;
	f->refs = 1;
	snprintf(f->name, sizeof(f->name), "/proc/self/fd/%d", fd);
	f->next = pl_files;
	pl_files = f;
	return f;
}

/* Drop a reference after dlclose; the descriptor is closed once the
 * loader has unmapped the object. */
static void pl_file_put(struct pl_file *f)
{
	void *still;

	if (!f || --f->refs > 0)
		return;
	if ((still = dlopen(f->name, RTLD_LAZY | RTLD_NOLOAD))) {
		dlclose(still);
		return;
	}
	for (struct pl_file **pp = &pl_files; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	close(f->fd);
	free(f);
}

struct plugin *plugin_load(const char *path, enum scaler_kind kind, const char *name, char *err,
                           size_t errlen)
{
	char file[128], dir[4096], full[8300], searched[4096] = "";
	const char *rest = path;
	int dfd = -1, fd = -1;

	if (!plugin_name_valid(name)) {
		snprintf(err, errlen,
		         "invalid %s plugin name \"%s\": names use only a-z, 0-9, '_' and '-'",
		         plugin_kind_name(kind), name ? name : "");
		return NULL;
	}
	if ((int)kind <= 0 || (size_t)kind >= sizeof(pl_kinds) / sizeof(pl_kinds[0])) {
		snprintf(err, errlen, "unknown plugin kind %d", (int)kind);
		return NULL;
	}
	snprintf(file, sizeof(file), "%s_%s.so", plugin_kind_name(kind), name);
	while (fd < 0 && rest && *rest) {
		size_t n = strcspn(rest, ":");
		if (n >= sizeof(dir)) {
			snprintf(err, errlen, "plugin directory path too long: %.*s", (int)n, rest);
			return NULL;
		}
		memcpy(dir, rest, n);
		dir[n] = '\0';
		rest += n + (rest[n] == ':');
		while (n > 1 && dir[n - 1] == '/') /* "link/" would follow the link */
			dir[--n] = '\0';
		if (!n)
			continue;
		snprintf(full, sizeof(full), "%s/%s", dir, file);
		size_t sl = strlen(searched);
		snprintf(searched + sl, sizeof(searched) - sl, "%s%s", sl ? ", " : "", dir);
		if ((dfd = pl_open_dir(dir, err, errlen)) == -2)
			return NULL;
		if (dfd < 0)
			continue;
		fd = pl_open_file(dfd, full, file, err, errlen);
		close(dfd);
		if (fd == -2)
			return NULL;
	}
	if (fd < 0) {
		snprintf(err, errlen,
		         "%s plugin \"%s\" not found: no %s in %s (plugin_dir = \"%s\")",
		         plugin_kind_name(kind), name, file,
		         searched[0] ? searched : "no directory", path);
		return NULL;
	}
	pl_log_shadowing(full, rest, file);

	/* load the file that was checked, not whatever the path names now */
	struct pl_file *pf = pl_file_get(fd);
	if (!pf) {
		snprintf(err, errlen, "%s: out of memory", full);
		return NULL;
	}
	dlerror();
	void *h = dlopen(pf->name, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "%s: cannot load: %s", full, dlerror());
		pl_file_put(pf);
		return NULL;
	}
	const struct scaler_plugin *d = dlsym(h, SCALER_PLUGIN_SYMBOL);
	if (!d) {
		snprintf(err, errlen,
		         "%s: no \"%s\" symbol: this is not a scaler plugin (built without "
		         "SCALER_PLUGIN_DEFINE?)",
		         full, SCALER_PLUGIN_SYMBOL);
		goto fail;
	}
	if (d->abi_major != SCALER_ABI_MAJOR || d->abi_minor > SCALER_ABI_MINOR) {
		snprintf(
		    err, errlen,
		    "%s: plugin ABI %u.%u does not match scalerd's ABI %d.%d; rebuild the plugin "
		    "against this scalerd's scaler/plugin.h%s",
		    full, d->abi_major, d->abi_minor, SCALER_ABI_MAJOR, SCALER_ABI_MINOR,
		    d->abi_major != SCALER_ABI_MAJOR ? " (NEWS says what changed)" : "");
		goto fail;
	}
	if (d->size < offsetof(struct scaler_plugin, ops) + sizeof(d->ops)) {
		snprintf(
		    err, errlen,
		    "%s: plugin descriptor is %zu bytes, scalerd needs %zu; rebuild the plugin",
		    full, d->size, sizeof(struct scaler_plugin));
		goto fail;
	}
	if (d->kind != kind) {
		snprintf(
		    err, errlen,
		    "%s: is a %s plugin, but it was configured as the %s plugin; name a %s plugin "
		    "there",
		    full, plugin_kind_name(d->kind), plugin_kind_name(kind),
		    plugin_kind_name(kind));
		goto fail;
	}
	if (!d->name || strcmp(d->name, name) != 0) {
		snprintf(err, errlen,
		         "%s: plugin calls itself \"%s\", expected \"%s\"; rename the file", full,
		         d->name ? d->name : "(null)", name);
		goto fail;
	}
	if (!d->init || !d->fini) {
		snprintf(err, errlen, "%s: plugin descriptor lacks init or fini", full);
		goto fail;
	}

	struct plugin *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->handle = h;
	p->file = pf;
	p->desc = d;
	p->kind = kind;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->path, sizeof(p->path), "%s", full);
	if (pl_check_ops(p, err, errlen) < 0) {
		free(p);
		goto fail;
	}
	return p;
fail:
	dlclose(h);
	pl_file_put(pf);
	return NULL;
}

void plugin_unload(struct plugin *p)
{
	if (!p)
		return;
	dlclose(p->handle);
	pl_file_put(p->file);
	free(p);
}

const config_setting_t *plugin_setting(const config_setting_t *group,
                                       const config_setting_t *fallback)
{
	const config_setting_t *s = group ? config_setting_get_member(group, "plugin") : NULL;
	return s ? s : group ? group : fallback;
}

int plugin_instance_new(struct plugin_instance *pi, const char *path, enum scaler_kind kind,
                        const char *name, const struct scaler_host *host,
                        const config_setting_t *conf, const config_setting_t *blame, char *err,
                        size_t errlen)
{
	char why[8800];

	pi->ctx = NULL;
	pi->plugin = plugin_load(path, kind, name, why, sizeof(why));
	if (!pi->plugin) {
		if (blame)
			conf_error(blame, "%s", why);
		else
			log_err("%s", why);
		if (err)
			snprintf(err, errlen, "%s", why);
		return -1;
	}
	if (pi->plugin->desc->init(host, conf, &pi->ctx) < 0) {
		/* the plugin said why, through host->conf_error */
		if (err)
			snprintf(err, errlen, "%s plugin \"%s\": invalid settings (see the log)",
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
