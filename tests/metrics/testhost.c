#include "config.h"

#include "testhost.h"

#include "conf.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char th_buf[65536];
static size_t th_len;
static int th_echo;

static void th_append(const char *fmt, va_list ap)
{
	char line[4096];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	if (th_echo)
		fprintf(stderr, "%s\n", line);
	n = strlen(line);
	if (th_len + n + 2 > sizeof(th_buf))
		return;
	memcpy(th_buf + th_len, line, n);
	th_len += n;
	th_buf[th_len++] = '\n';
	th_buf[th_len] = '\0';
}

static void th_appendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void th_appendf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	th_append(fmt, ap);
	va_end(ap);
}

const char *testhost_messages(void)
{
	return th_buf;
}

void testhost_clear(void)
{
	th_len = 0;
	th_buf[0] = '\0';
}

void testhost_echo(int on)
{
	th_echo = on;
}

static void th_log(enum scaler_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void th_log(enum scaler_log_level level, const char *who, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	th_appendf("log %d %s: %s", (int)level, who ? who : "-", msg);
}

/* "zones.[0].policy.max_cpu" style path of a setting. */
static void th_path(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *p = config_setting_parent(s);
	const char *name = config_setting_name(s);
	char own[128];

	if (!p) {
		snprintf(buf, len, "%s", name ? name : "");
		return;
	}
	th_path(p, buf, len);
	if (name)
		snprintf(own, sizeof(own), "%s%s", buf[0] ? "." : "", name);
	else
		snprintf(own, sizeof(own), "[%d]", config_setting_index(s));
	strncat(buf, own, len - strlen(buf) - 1);
}

static int th_conf_error(const config_setting_t *setting, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int th_conf_error(const config_setting_t *setting, const char *fmt, ...)
{
	char msg[4096], path[512] = "";
	const char *file = NULL;
	int line = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (setting) {
		file = config_setting_source_file(setting);
		line = (int)config_setting_source_line(setting);
		th_path(setting, path, sizeof(path));
	}
	th_appendf("conf %s:%d: %s: %s", file ? file : "<string>", line, path, msg);
	return -1;
}

static int th_conf_check_known(const config_setting_t *group, const char *const *known)
{
	int i, n = config_setting_length(group), bad = 0;

	for (i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		const char *const *k;

		for (k = known; name && *k; k++)
			if (!strcmp(*k, name))
				break;
		if (!name || !*k)
			bad = th_conf_error(s, "unknown setting %s", name ? name : "(unnamed)");
	}
	return bad;
}

void testhost_init(struct scaler_host *host, struct ev_loop *loop)
{
	memset(host, 0, sizeof(*host));
	host->abi_major = SCALER_ABI_MAJOR;
	host->abi_minor = SCALER_ABI_MINOR;
	host->size = sizeof(*host);
	host->loop = loop;
	host->node_id = "1";
	host->cluster = "test";
	host->admin_url = "http://127.0.0.1:1";
	host->log = th_log;
	host->conf_error = th_conf_error;
	host->conf_check_known = th_conf_check_known;
	host->conf_number = conf_number;
	host->conf_integer = conf_integer;
	conf_number_reporter(th_conf_error);
}

const struct scaler_plugin *testhost_load(const char *kind, const char *name, char *err,
                                          size_t errlen)
{
	const char *dir = getenv("SCALER_PLUGIN_DIR");
	const struct scaler_plugin *p;
	char path[4096];
	void *h;

	snprintf(path, sizeof(path), "%s/%s_%s.so", dir && *dir ? dir : ".libs", kind, name);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
		return NULL;
	}
	p = dlsym(h, SCALER_PLUGIN_SYMBOL);
	if (!p) {
		snprintf(err, errlen, "%s exports no %s", path, SCALER_PLUGIN_SYMBOL);
		return NULL;
	}
	if (p->abi_major != SCALER_ABI_MAJOR || p->abi_minor > SCALER_ABI_MINOR ||
	    strcmp(p->name, name)) {
		snprintf(err, errlen, "%s: descriptor says %s ABI %u.%u, expected %s ABI %d.%d",
		         path, p->name, p->abi_major, p->abi_minor, name, SCALER_ABI_MAJOR,
		         SCALER_ABI_MINOR);
		return NULL;
	}
	return p; /* the handle stays open for the life of the test */
}

config_setting_t *testhost_group(config_t *cf, const char *text, char *err, size_t errlen)
{
	size_t len = strlen(text) + 16;
	char *doc = malloc(len);
	config_setting_t *g;

	config_init(cf);
	if (!doc) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(doc, len, "g = {\n%s\n};", text);
	if (config_read_string(cf, doc) != CONFIG_TRUE) {
		snprintf(err, errlen, "line %d: %s", config_error_line(cf) - 1,
		         config_error_text(cf));
		free(doc);
		return NULL;
	}
	free(doc);
	g = config_lookup(cf, "g");
	if (!g)
		snprintf(err, errlen, "no group");
	return g;
}

int testhost_plugin_init(struct scaler_host *host, const struct scaler_plugin *p, config_t *cf,
                         const char *text, void **ctx)
{
	config_setting_t *g = NULL;
	char err[512];

	testhost_init(host, NULL);
	testhost_clear();
	if (text) {
		g = testhost_group(cf, text, err, sizeof(err));
		if (!g) {
			/* a broken fixture is the test's own bug: stop loudly */
			fprintf(stderr, "test config \"%s\" does not parse: %s\n", text, err);
			abort();
		}
	} else {
		config_init(cf);
	}
	return p->init(host, g, ctx);
}
