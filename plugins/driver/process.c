/* driver "process": servers are processes on this host.
 *
 * Each server is `command` run in its own session (setsid) with PORT, ZONE,
 * SERVER_ID and HOST (host_address, unless `env` sets HOST) in its
 * environment, never SCALER_TOKEN, output appended to
 * <log_dir>/<server-id>.log. Its pid and kernel start time ("pid:starttime",
 * so a recycled pid is never mistaken for it) are recorded in
 * <state_dir>/<server-id>.json; a new scalerd finds the servers that still
 * run through these files and drops the files of the dead ones. Servers
 * outlive scalerd on purpose: a restart of the daemon does not restart the
 * service.
 *
 * Settings (driver group):
 *   command       array of strings, default ["scaler-app"]; [0] looked up in PATH
 *   env           array of "NAME=value" added to the servers' environment
 *   log_dir       absolute path, default <state_dir of scaler.conf>/servers
 *   state_dir     absolute path, default log_dir
 *   host_address  host part of the servers' addresses, default 127.0.0.1
 *   stop_timeout  seconds from SIGTERM to SIGKILL, default 10
 * Ports come from the zone's port_min..port_max. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <scaler/plugin.h>

#define PD_NAME "process"
#define PD_DEFAULT_DIR "/var/lib/scaler/servers"
#define PD_POLL 0.1 /* seconds between checks of a process that is not our child */

extern char **environ;

struct pd;

struct pd_waiter {
	scaler_driver_cb cb;
	void *arg;
	struct pd_waiter *next;
};

struct pd_server {
	struct pd *pd;
	struct scaler_server srv;
	pid_t pid;
	unsigned long long starttime;
	int port;
	int child; /* our child: reaped through ev_child */
	int gone;  /* exited (or removed): waiting to be freed */

	/* create: the exec status pipe */
	ev_io exec_io;
	int exec_fd;
	scaler_driver_cb create_cb;
	void *create_arg;

	ev_child child_w;
	ev_timer poll_w; /* not our child: watch /proc until it is gone */
	ev_timer kill_w; /* SIGKILL after stop_timeout */
	int removing;
	struct pd_waiter *waiters;

	struct pd_server *next;
};

/* A callback deferred to the next loop iteration (never from inside a call). */
struct pd_deferred {
	struct pd *pd;
	struct scaler_deferred *h; /* host->defer's */
	int list;                  /* 1: list, 0: driver cb */
	scaler_driver_cb cb;
	scaler_driver_list_cb list_cb;
	void *arg;
	int status;
	struct scaler_server srv;
	char err[512];
	struct pd_deferred *next;
};

struct pd {
	const struct scaler_host *host;
	char **command; /* NULL-terminated */
	char **env;     /* NULL-terminated "K=V" */
	char log_dir[PATH_MAX];
	char state_dir[PATH_MAX];
	char host_address[128];
	double stop_timeout;
	struct pd_server *servers;
	struct pd_deferred *deferred;
};

static const char *const pd_known[] = {"plugin",    "command",      "env",          "log_dir",
                                       "state_dir", "host_address", "stop_timeout", NULL};

/* ---- small helpers ------------------------------------------------------ */

static double pd_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* snprintf for paths and messages: truncation is acceptable (paths are
 * bounded at init) and must not be a compile-time warning. */
static void pd_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pd_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void pd_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Server ids become file names: [A-Za-z0-9_.-], not starting with a dot. */
static int pd_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= sizeof(((struct scaler_server *)0)->id) || id[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("_.-", id[i]))
			return 0;
	return 1;
}

static int pd_mkdirs(const char *dir)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot); 0
 * when the process does not exist or is a zombie. */
static unsigned long long pd_starttime(pid_t pid)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
	if (!p || p[1] != ' ')
		return 0;
	p += 2; /* field 3: state */
	if (*p == 'Z' || *p == 'X')
		return 0;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return 0;
		p++;
	}
	return strtoull(p, NULL, 10);
}

static int pd_alive(pid_t pid, unsigned long long starttime)
{
	return pid > 0 && starttime && pd_starttime(pid) == starttime;
}

/* Signal a server's process group, unless its pid was recycled: a pid whose
 * process now has another start time belongs to someone else. While any
 * member of the group lives, the kernel does not hand out its number, so a
 * group whose leader is gone is still ours. */
static void pd_kill_group(pid_t pid, unsigned long long starttime, int sig)
{
	unsigned long long now = pd_starttime(pid);
	if (pid <= 0 || (now != 0 && now != starttime))
		return;
	if (kill(-pid, sig) < 0 && errno == ESRCH && now != 0)
		kill(pid, sig);
}

static int pd_parse_ref(const char *ref, pid_t *pid, unsigned long long *starttime)
{
	char *end;
	long p = strtol(ref, &end, 10);
	if (end == ref || *end != ':' || p <= 0)
		return -1;
	*starttime = strtoull(end + 1, &end, 10);
	if (*end || !*starttime)
		return -1;
	*pid = (pid_t)p;
	return 0;
}

/* ---- config ------------------------------------------------------------- */

static char **pd_conf_strings(const struct pd *pd, const config_setting_t *s, const char *what,
                              int need_eq)
{
	int n = config_setting_length(s);
	char **v;
	if (config_setting_type(s) == CONFIG_TYPE_STRING && !need_eq) {
		v = calloc(2, sizeof(*v));
		if (v && !(v[0] = strdup(config_setting_get_string(s)))) {
			free(v);
			return NULL;
		}
		return v;
	}
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		pd->host->conf_error(s, "expected an array of strings (%s)", what);
		return NULL;
	}
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *str = config_setting_type(e) == CONFIG_TYPE_STRING
		                      ? config_setting_get_string(e)
		                      : NULL;
		if (!str) {
			pd->host->conf_error(e, "expected a string (%s)", what);
			goto fail;
		}
		if (need_eq && (str[0] == '=' || !strchr(str, '='))) {
			pd->host->conf_error(e, "expected \"NAME=value\", got \"%s\"", str);
			goto fail;
		}
		if (!(v[i] = strdup(str)))
			goto fail;
	}
	return v;
fail:
	pd_strv_free(v);
	return NULL;
}

static int pd_conf_dir(const struct pd *pd, const config_setting_t *conf, const char *name,
                       char *dst, size_t len)
{
	const config_setting_t *s = conf ? config_setting_get_member(conf, name) : NULL;
	const char *v;
	if (!s)
		return 0;
	v = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
	if (!v || v[0] != '/')
		return pd->host->conf_error(s, "expected an absolute directory path");
	if (strlen(v) >= len - 80)
		return pd->host->conf_error(s, "path too long");
	snprintf(dst, len, "%s", v);
	return 1;
}

static void pd_fini(void *ctx);

static int pd_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	struct pd *pd = calloc(1, sizeof(*pd));
	const config_setting_t *s;
	int got_state;
	if (!pd)
		return -1;
	pd->host = host;
	pd->stop_timeout = 10;
	/* default: <scaler.conf state_dir>/servers */
	if (SCALER_HOST_HAS(host, state_dir) && host->state_dir && host->state_dir[0] == '/')
		snprintf(pd->log_dir, sizeof(pd->log_dir), "%s/servers", host->state_dir);
	else
		snprintf(pd->log_dir, sizeof(pd->log_dir), "%s", PD_DEFAULT_DIR);
	snprintf(pd->host_address, sizeof(pd->host_address), "127.0.0.1");
	if (conf && host->conf_check_known(conf, pd_known) < 0)
		goto fail;

	s = conf ? config_setting_get_member(conf, "command") : NULL;
	if (s) {
		pd->command = pd_conf_strings(pd, s, "program and arguments", 0);
		if (!pd->command)
			goto fail;
		if (!pd->command[0] || !pd->command[0][0]) {
			host->conf_error(s, "the command needs at least a program name");
			goto fail;
		}
	} else {
		pd->command = calloc(2, sizeof(char *));
		if (!pd->command || !(pd->command[0] = strdup("scaler-app")))
			goto fail;
	}
	s = conf ? config_setting_get_member(conf, "env") : NULL;
	pd->env = s ? pd_conf_strings(pd, s, "environment", 1) : calloc(1, sizeof(char *));
	if (!pd->env)
		goto fail;
	if (pd_conf_dir(pd, conf, "log_dir", pd->log_dir, sizeof(pd->log_dir)) < 0)
		goto fail;
	got_state = pd_conf_dir(pd, conf, "state_dir", pd->state_dir, sizeof(pd->state_dir));
	if (got_state < 0)
		goto fail;
	if (!got_state)
		snprintf(pd->state_dir, sizeof(pd->state_dir), "%s", pd->log_dir);
	s = conf ? config_setting_get_member(conf, "host_address") : NULL;
	if (s) {
		const char *v = config_setting_type(s) == CONFIG_TYPE_STRING
		                    ? config_setting_get_string(s)
		                    : NULL;
		if (!v || !*v || strlen(v) >= sizeof(pd->host_address) || strpbrk(v, "/ @?#")) {
			host->conf_error(s, "expected a host name or address");
			goto fail;
		}
		snprintf(pd->host_address, sizeof(pd->host_address), "%s", v);
	}
	s = conf ? config_setting_get_member(conf, "stop_timeout") : NULL;
	if (s) {
		int t = config_setting_type(s);
		double v = t == CONFIG_TYPE_INT     ? config_setting_get_int(s)
		           : t == CONFIG_TYPE_INT64 ? (double)config_setting_get_int64(s)
		           : t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
		                                    : -1;
		if (!(v >= 0 && v <= 3600)) {
			host->conf_error(s, "expected seconds from 0 to 3600");
			goto fail;
		}
		pd->stop_timeout = v;
	}
	*ctx = pd;
	return 0;
fail:
	pd_fini(pd);
	return -1;
}

/* ---- deferred callbacks ------------------------------------------------- */

static void pd_deferred_cb(void *arg);

static struct pd_deferred *pd_defer(struct pd *pd)
{
	struct pd_deferred *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->pd = pd;
	if (!(d->h = pd->host->defer(pd_deferred_cb, d))) {
		free(d);
		return NULL;
	}
	d->next = pd->deferred;
	pd->deferred = d;
	return d;
}

static void pd_deferred_unlink(struct pd *pd, struct pd_deferred *d)
{
	for (struct pd_deferred **pp = &pd->deferred; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
}

static int pd_scan(struct pd *pd);
static void pd_list_fill(struct pd *pd, struct scaler_server **out, size_t *n);

static void pd_deferred_cb(void *arg)
{
	struct pd_deferred *d = arg;
	struct pd *pd = d->pd;
	pd_deferred_unlink(pd, d);
	if (d->list) {
		struct scaler_server *list = NULL;
		size_t n = 0;
		if (pd_scan(pd) < 0) {
			d->list_cb(d->arg, -1, NULL, 0, d->err);
		} else {
			pd_list_fill(pd, &list, &n);
			d->list_cb(d->arg, 0, list, n, NULL);
			free(list);
		}
	} else if (d->cb) {
		d->cb(d->arg, d->status, d->status == 0 ? &d->srv : NULL,
		      d->status == 0 ? NULL : d->err);
	}
	free(d);
}

/* Fail (or succeed) a call later, on the loop. */
static int pd_reply_later(struct pd *pd, scaler_driver_cb cb, void *arg, int status,
                          const struct scaler_server *srv, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int pd_reply_later(struct pd *pd, scaler_driver_cb cb, void *arg, int status,
                          const struct scaler_server *srv, const char *fmt, ...)
{
	struct pd_deferred *d = pd_defer(pd);
	va_list ap;
	if (!d)
		return -1;
	d->cb = cb;
	d->arg = arg;
	d->status = status;
	if (srv)
		d->srv = *srv;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(d->err, sizeof(d->err), fmt, ap);
		va_end(ap);
		if (status)
			pd->host->log(SCALER_LOG_ERR, PD_NAME, "%s", d->err);
	}
	return 0;
}

/* ---- servers in memory and on disk -------------------------------------- */

static struct pd_server *pd_find(struct pd *pd, const char *id)
{
	for (struct pd_server *s = pd->servers; s; s = s->next)
		if (!s->gone && strcmp(s->srv.id, id) == 0)
			return s;
	return NULL;
}

static void pd_state_path(const struct pd *pd, const char *id, char *buf, size_t len)
{
	pd_fmt(buf, len, "%s/%s.json", pd->state_dir, id);
}

/* Written before the create succeeds, atomically (tmp + fsync + rename). */
static int pd_state_write(struct pd *pd, const struct pd_server *s, char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:I, s:I}", "cluster",
	                      pd->host->cluster ? pd->host->cluster : "", "id", s->srv.id, "zone",
	                      s->srv.zone, "address", s->srv.address, "ref", s->srv.ref, "created",
	                      s->srv.created, "port", s->port, "pid", (json_int_t)s->pid,
	                      "starttime", (json_int_t)s->starttime);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int fd, rc = -1;
	json_decref(j);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pd_state_path(pd, s->srv.id, path, sizeof(path));
	pd_fmt(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		pd_fmt(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		free(text);
		return -1;
	}
	size_t len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		pd_fmt(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
	else if (rename(tmp, path) < 0)
		pd_fmt(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
	else
		rc = 0;
	close(fd);
	if (rc < 0)
		unlink(tmp);
	free(text);
	return rc;
}

static void pd_state_remove(struct pd *pd, const char *id)
{
	char path[PATH_MAX];
	pd_state_path(pd, id, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		pd->host->log(SCALER_LOG_WARNING, PD_NAME, "cannot remove %s: %s", path,
		              strerror(errno));
}

static void pd_server_stop_watchers(struct pd_server *s)
{
	struct ev_loop *loop = s->pd->host->loop;
	if (s->exec_fd >= 0) {
		ev_io_stop(loop, &s->exec_io);
		close(s->exec_fd);
		s->exec_fd = -1;
	}
	ev_child_stop(loop, &s->child_w);
	ev_timer_stop(loop, &s->poll_w);
	ev_timer_stop(loop, &s->kill_w);
}

static void pd_server_unlink_free(struct pd_server *s)
{
	struct pd *pd = s->pd;
	for (struct pd_server **pp = &pd->servers; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pd_server_stop_watchers(s);
	for (struct pd_waiter *w = s->waiters, *n; w; w = n) {
		n = w->next;
		free(w);
	}
	free(s);
}

static void pd_child_cb(struct ev_loop *loop, ev_child *w, int revents);
static void pd_poll_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void pd_kill_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void pd_exec_cb(struct ev_loop *loop, ev_io *w, int revents);

static struct pd_server *pd_server_new(struct pd *pd)
{
	struct pd_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->pd = pd;
	s->exec_fd = -1;
	ev_child_init(&s->child_w, pd_child_cb, 0, 0);
	s->child_w.data = s;
	ev_timer_init(&s->poll_w, pd_poll_cb, PD_POLL, PD_POLL);
	s->poll_w.data = s;
	ev_timer_init(&s->kill_w, pd_kill_cb, 0., 0.);
	s->kill_w.data = s;
	s->next = pd->servers;
	pd->servers = s;
	return s;
}

/* Watch for the exit: ev_child for our children (default loop only), else
 * poll /proc. */
static void pd_server_watch(struct pd_server *s)
{
	struct ev_loop *loop = s->pd->host->loop;
	if (s->child && ev_is_default_loop(loop)) {
		ev_child_set(&s->child_w, s->pid, 0);
		ev_child_start(loop, &s->child_w);
	} else if (!ev_is_active(&s->poll_w)) {
		ev_timer_again(loop, &s->poll_w);
	}
}

/* Read one state file; adopt the server when its process still runs,
 * delete the file when it does not. */
static void pd_scan_one(struct pd *pd, const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	const char *cluster = NULL, *id = NULL, *zone = NULL, *address = NULL, *ref = NULL;
	double created = 0;
	int port = 0;
	pid_t pid;
	unsigned long long starttime;
	if (!j ||
	    json_unpack(j, "{s:s, s:s, s:s, s:s, s:s, s?F, s?i}", "cluster", &cluster, "id", &id,
	                "zone", &zone, "address", &address, "ref", &ref, "created", &created,
	                "port", &port) < 0 ||
	    !pd_id_valid(id) || pd_parse_ref(ref, &pid, &starttime) < 0) {
		pd->host->log(SCALER_LOG_WARNING, PD_NAME, "ignoring malformed state file %s",
		              path);
		json_decref(j);
		return;
	}
	if (strcmp(cluster, pd->host->cluster ? pd->host->cluster : "") != 0 || pd_find(pd, id)) {
		json_decref(j);
		return;
	}
	if (!pd_alive(pid, starttime)) {
		pd->host->log(SCALER_LOG_NOTICE, PD_NAME,
		              "server %s (pid %d) is gone; dropping its record", id, (int)pid);
		unlink(path);
		json_decref(j);
		return;
	}
	struct pd_server *s = pd_server_new(pd);
	if (s) {
		snprintf(s->srv.id, sizeof(s->srv.id), "%s", id);
		snprintf(s->srv.zone, sizeof(s->srv.zone), "%s", zone);
		snprintf(s->srv.address, sizeof(s->srv.address), "%s", address);
		snprintf(s->srv.ref, sizeof(s->srv.ref), "%s", ref);
		s->srv.created = created;
		s->srv.running = 1;
		s->pid = pid;
		s->starttime = starttime;
		s->port = port;
		pd->host->log(SCALER_LOG_INFO, PD_NAME, "found running server %s (pid %d, %s)", id,
		              (int)pid, address);
		pd_server_watch(s);
	}
	json_decref(j);
}

/* Bring memory up to date with the state directory. */
static int pd_scan(struct pd *pd)
{
	DIR *d = opendir(pd->state_dir);
	struct dirent *e;
	char path[PATH_MAX];
	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		pd_fmt(path, sizeof(path), "%s/%s", pd->state_dir, e->d_name);
		pd_scan_one(pd, path);
	}
	closedir(d);
	return 0;
}

static void pd_list_fill(struct pd *pd, struct scaler_server **out, size_t *n)
{
	size_t count = 0;
	for (struct pd_server *s = pd->servers; s; s = s->next)
		count++;
	*out = count ? calloc(count, sizeof(**out)) : NULL;
	*n = 0;
	for (struct pd_server *s = pd->servers; s && *out; s = s->next) {
		/* a process that died since it was last seen is gone */
		if (s->gone || s->exec_fd >= 0 || !pd_alive(s->pid, s->starttime))
			continue;
		(*out)[*n] = s->srv;
		(*out)[*n].running = 1;
		(*n)++;
	}
}

/* ---- exit and removal --------------------------------------------------- */

/* The server's process is gone: finish a pending create (failed) and the
 * removals (done), forget it. create_err: why the create failed, when the
 * process never got to run the command. */
static void pd_server_gone(struct pd_server *s, const char *how, const char *create_err)
{
	struct pd *pd = s->pd;
	struct ev_loop *loop = pd->host->loop;
	struct pd_waiter *w = s->waiters;
	struct scaler_server srv = s->srv;
	scaler_driver_cb create_cb = s->create_cb;
	void *create_arg = s->create_arg;
	char err[PATH_MAX + 512];
	srv.running = 0;
	s->waiters = NULL;
	s->create_cb = NULL;
	s->gone = 1;
	/* whatever the leader left behind in its process group */
	pd_kill_group(s->pid, s->starttime, SIGKILL);
	if (s->child && !ev_is_default_loop(loop))
		waitpid(s->pid, NULL, WNOHANG); /* the default loop reaps every child itself */
	pd_server_stop_watchers(s);
	pd_state_remove(pd, s->srv.id);
	if (create_cb) {
		if (create_err)
			snprintf(err, sizeof(err), "%s", create_err);
		else
			snprintf(err, sizeof(err),
			         "server %s %s right after it started; see %s/%s.log", s->srv.id,
			         how, pd->log_dir, s->srv.id);
		pd->host->log(SCALER_LOG_ERR, PD_NAME, "%s", err);
	} else if (s->removing) {
		pd->host->log(SCALER_LOG_INFO, PD_NAME, "server %s (pid %d) removed: %s", s->srv.id,
		              (int)s->pid, how);
	} else {
		pd->host->log(SCALER_LOG_WARNING, PD_NAME, "server %s (pid %d) %s", s->srv.id,
		              (int)s->pid, how);
	}
	pd_server_unlink_free(s);
	if (create_cb)
		create_cb(create_arg, -1, NULL, err);
	while (w) {
		struct pd_waiter *next = w->next;
		if (w->cb)
			w->cb(w->arg, 0, &srv, NULL);
		free(w);
		w = next;
	}
}

/* The exec status pipe of a starting server: errno when exec failed, EOF
 * when it succeeded. 0: nothing yet (or, when `exited`, it ran and died:
 * the caller reports that), 1: started, 2: failed and freed. */
static int pd_exec_settle(struct pd_server *s, int exited)
{
	struct pd *pd = s->pd;
	int child_errno = 0;
	char err[PATH_MAX + 256];
	ssize_t n = read(s->exec_fd, &child_errno, sizeof(child_errno));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	ev_io_stop(pd->host->loop, &s->exec_io);
	close(s->exec_fd);
	s->exec_fd = -1;
	if (n == (ssize_t)sizeof(child_errno)) {
		snprintf(err, sizeof(err), "cannot run %s for server %s: %s", pd->command[0],
		         s->srv.id, strerror(child_errno));
		if (s->child && !ev_is_default_loop(pd->host->loop))
			waitpid(s->pid, NULL, 0); /* it exits at once */
		pd_server_gone(s, "could not start", err);
		return 2;
	}
	if (exited)
		return 0;
	/* EOF: the command runs */
	scaler_driver_cb cb = s->create_cb;
	void *arg = s->create_arg;
	struct scaler_server srv = s->srv;
	s->create_cb = NULL;
	s->srv.running = 1;
	srv.running = 1;
	pd->host->log(SCALER_LOG_INFO, PD_NAME, "server %s started: pid %d, %s", s->srv.id,
	              (int)s->pid, s->srv.address);
	if (cb)
		cb(arg, 0, &srv, NULL);
	return 1;
}

static void pd_exec_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	pd_exec_settle(w->data, 0);
}

static void pd_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct pd_server *s = w->data;
	char how[64];
	int st = w->rstatus;
	if (WIFEXITED(st))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(st));
	else
		return; /* stopped/continued */
	ev_child_stop(loop, w);
	/* a failed exec reports through the pipe before the child exits */
	if (s->exec_fd >= 0 && pd_exec_settle(s, 1) == 2)
		return;
	pd_server_gone(s, how, NULL);
}

static void pd_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pd_server *s = w->data;
	if (!pd_alive(s->pid, s->starttime))
		pd_server_gone(s, "exited", NULL);
}

static void pd_kill_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pd_server *s = w->data;
	s->pd->host->log(SCALER_LOG_WARNING, PD_NAME,
	                 "server %s (pid %d) still runs %.1fs after SIGTERM; sending SIGKILL",
	                 s->srv.id, (int)s->pid, s->pd->stop_timeout);
	pd_kill_group(s->pid, s->starttime, SIGKILL);
}

static int pd_remove(void *ctx, const struct scaler_server *srv, scaler_driver_cb cb, void *arg)
{
	struct pd *pd = ctx;
	struct pd_server *s;
	struct pd_waiter *w;
	pid_t pid;
	unsigned long long starttime;
	if (!srv || !srv->id[0])
		return -1;
	s = pd_find(pd, srv->id);
	if (!s) {
		pd_scan(pd);
		s = pd_find(pd, srv->id);
	}
	if (!s && srv->ref[0] && pd_parse_ref(srv->ref, &pid, &starttime) == 0 &&
	    pd_alive(pid, starttime)) {
		/* known only by its reference (no state file): remove it all the same */
		s = pd_server_new(pd);
		if (!s)
			return -1;
		s->srv = *srv;
		s->pid = pid;
		s->starttime = starttime;
		pd_server_watch(s);
	}
	if (!s) {
		/* already gone */
		pd_state_remove(pd, srv->id);
		return pd_reply_later(pd, cb, arg, 0, srv, NULL);
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->cb = cb;
	w->arg = arg;
	w->next = s->waiters;
	s->waiters = w;
	if (s->removing)
		return 0;
	s->removing = 1;
	pd_kill_group(s->pid, s->starttime, SIGTERM);
	pd->host->log(SCALER_LOG_INFO, PD_NAME, "stopping server %s (pid %d)", s->srv.id,
	              (int)s->pid);
	ev_timer_set(&s->kill_w, pd->stop_timeout, 0.);
	ev_timer_start(pd->host->loop, &s->kill_w);
	return 0;
}

/* ---- create ------------------------------------------------------------- */

/* Full path of the program: as given when it holds a '/', else from PATH. */
static int pd_which(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");
	struct stat st;
	if (strchr(prog, '/')) {
		snprintf(out, len, "%s", prog);
		return access(out, X_OK) == 0 && stat(out, &st) == 0 && S_ISREG(st.st_mode) ? 0
		                                                                            : -1;
	}
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(out, len, "%.*s%s%s", (int)n, path, n ? "/" : "./", prog);
		if (access(out, X_OK) == 0 && stat(out, &st) == 0 && S_ISREG(st.st_mode))
			return 0;
		path += n;
		if (*path == ':')
			path++;
	}
	return -1;
}

static int pd_port_used(const struct pd *pd, int port)
{
	for (const struct pd_server *s = pd->servers; s; s = s->next)
		if (!s->gone && s->port == port)
			return 1;
	return 0;
}

/* A port of the zone's range that no server of ours holds and that is free
 * to bind; -1 when there is none. */
static int pd_port_pick(const struct pd *pd, const struct scaler_zone *z)
{
	for (int port = z->port_min; port <= z->port_max; port++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		int fd, one = 1, ok;
		if (pd_port_used(pd, port))
			continue;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	return -1;
}

/* An inherited variable that must not reach the servers: scalerctl's token
 * is the cluster's admin token, and app servers never hold it. */
static int pd_env_secret(const char *e)
{
	return strncmp(e, "SCALER_TOKEN=", 13) == 0;
}

static char **pd_envp(const struct pd *pd, const struct scaler_server_spec *spec, int port)
{
	size_t n = 0, k = 0, extra = 4;
	int nours = 4;
	char **envp;
	for (char **e = environ; *e; e++)
		n++;
	for (char **e = pd->env; *e; e++) {
		extra++;
		if (strncmp(*e, "HOST=", 5) == 0)
			nours = 3; /* the configured HOST wins over host_address */
	}
	envp = calloc(n + extra + 1, sizeof(*envp));
	if (!envp)
		return NULL;
	/* configured and scaler's own variables replace inherited ones; HOST
	 * makes the server listen where the balancers are told to reach it */
	char *ours[4] = {NULL, NULL, NULL, NULL};
	if (asprintf(&ours[0], "PORT=%d", port) < 0 ||
	    asprintf(&ours[1], "ZONE=%s", spec->zone->name) < 0 ||
	    asprintf(&ours[2], "SERVER_ID=%s", spec->server_id) < 0 ||
	    (nours == 4 && asprintf(&ours[3], "HOST=%s", pd->host_address) < 0)) {
		for (int i = 0; i < 4; i++)
			free(ours[i]);
		free(envp);
		return NULL;
	}
	for (char **e = environ; *e; e++) {
		size_t klen = strcspn(*e, "=");
		int replaced = pd_env_secret(*e);
		for (int i = 0; i < nours && !replaced; i++)
			if (strncmp(*e, ours[i], klen + 1) == 0)
				replaced = 1;
		for (char **c = pd->env; *c && !replaced; c++)
			if (strncmp(*e, *c, klen + 1) == 0)
				replaced = 1;
		if (!replaced)
			envp[k++] = strdup(*e);
	}
	for (char **c = pd->env; *c; c++) {
		size_t klen = strcspn(*c, "=");
		int ours_too = 0;
		for (int i = 0; i < nours; i++)
			if (strncmp(*c, ours[i], klen + 1) == 0)
				ours_too = 1;
		if (!ours_too)
			envp[k++] = strdup(*c);
	}
	for (int i = 0; i < nours; i++)
		envp[k++] = ours[i];
	for (size_t i = 0; i < k; i++)
		if (!envp[i]) {
			pd_strv_free(envp);
			return NULL;
		}
	return envp;
}

/* In the child, between fork and exec: only async-signal-safe calls.
 * The exec waits for a byte on `go`: the parent sends it once the server is
 * recorded in its state file, so no server ever runs unrecorded (a parent
 * that dies first closes the pipe and the child exits instead). */
static void pd_child_exec(const char *prog, char *const *argv, char *const *envp, int logfd,
                          int errfd, int go_r, int go_w)
{
	sigset_t none;
	int err, nullfd;
	char go;
	/* the kernel's struct: glibc's sigaction() refuses its own internal
	 * signals (32, 33), which an ignoring parent would otherwise pass on */
	struct {
		void (*handler)(int);
		unsigned long flags;
		void (*restorer)(void);
		unsigned long long mask;
	} dfl = {SIG_DFL, 0, NULL, 0};
	for (int sig = 1; sig < 65; sig++)
		syscall(SYS_rt_sigaction, sig, &dfl, NULL,
		        sizeof(dfl.mask)); /* KILL/STOP: EINVAL */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	nullfd = open("/dev/null", O_RDONLY);
	if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		goto fail;
	/* nothing of scalerd's leaks into the server, CLOEXEC or not */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3; fd < 65536; fd++)
			if (fd != errfd)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
	close(go_w);
	if (read(go_r, &go, 1) != 1)
		_exit(125);
	execve(prog, argv, envp);
fail:
	err = errno;
	if (write(errfd, &err, sizeof(err)) < 0)
		_exit(126);
	_exit(127);
}

static int pd_create(void *ctx, const struct scaler_server_spec *spec, scaler_driver_cb cb,
                     void *arg)
{
	struct pd *pd = ctx;
	const struct scaler_zone *z = spec ? spec->zone : NULL;
	char prog[PATH_MAX], logpath[PATH_MAX], err[512];
	int port, logfd = -1, pipefd[2] = {-1, -1}, gofd[2] = {-1, -1};
	char **envp = NULL;
	struct pd_server *s;
	pid_t pid;

	if (!spec || !z || !z->name || !spec->server_id || !cb)
		return -1;
	if (!pd_id_valid(spec->server_id))
		return pd_reply_later(pd, cb, arg, -1, NULL,
		                      "server id \"%s\" is not valid: use letters, digits, '_', "
		                      "'.' and '-' (at most 63)",
		                      spec->server_id);
	if (strlen(z->name) >= sizeof(s->srv.zone))
		return pd_reply_later(pd, cb, arg, -1, NULL, "zone name \"%s\" is too long",
		                      z->name);
	if (pd_mkdirs(pd->log_dir) < 0 || pd_mkdirs(pd->state_dir) < 0)
		return pd_reply_later(pd, cb, arg, -1, NULL,
		                      "cannot create the directories %s and %s: %s", pd->log_dir,
		                      pd->state_dir, strerror(errno));
	pd_scan(pd); /* servers of a previous scalerd hold their ports */
	if (pd_find(pd, spec->server_id))
		return pd_reply_later(pd, cb, arg, -1, NULL, "server %s already exists",
		                      spec->server_id);
	if (z->port_min <= 0 || z->port_max < z->port_min || z->port_max > 65535)
		return pd_reply_later(pd, cb, arg, -1, NULL,
		                      "zone %s has no port range for its servers (port_min %d, "
		                      "port_max %d)",
		                      z->name, z->port_min, z->port_max);
	port = pd_port_pick(pd, z);
	if (port < 0)
		return pd_reply_later(pd, cb, arg, -1, NULL,
		                      "zone %s: no free port in %d-%d for server %s", z->name,
		                      z->port_min, z->port_max, spec->server_id);
	if (pd_which(pd->command[0], prog, sizeof(prog)) < 0) {
		if (strchr(pd->command[0], '/'))
			return pd_reply_later(pd, cb, arg, -1, NULL,
			                      "cannot run %s: not an executable file",
			                      pd->command[0]);
		return pd_reply_later(pd, cb, arg, -1, NULL,
		                      "cannot run %s: no such program in PATH (%s)", pd->command[0],
		                      getenv("PATH") ? getenv("PATH") : "");
	}
	pd_fmt(logpath, sizeof(logpath), "%s/%s.log", pd->log_dir, spec->server_id);
	logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (logfd < 0)
		return pd_reply_later(pd, cb, arg, -1, NULL, "cannot open %s: %s", logpath,
		                      strerror(errno));
	envp = pd_envp(pd, spec, port);
	if (!envp || pipe2(pipefd, O_CLOEXEC) < 0 || fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0 ||
	    pipe2(gofd, O_CLOEXEC) < 0) {
		snprintf(err, sizeof(err), "cannot start server %s: %s", spec->server_id,
		         strerror(errno));
		goto fail;
	}
	s = pd_server_new(pd);
	if (!s) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	snprintf(s->srv.id, sizeof(s->srv.id), "%s", spec->server_id);
	snprintf(s->srv.zone, sizeof(s->srv.zone), "%s", z->name);
	snprintf(s->srv.address, sizeof(s->srv.address), "http://%s:%d", pd->host_address, port);
	s->srv.created = pd_now();
	s->port = port;

	/* until the child has reset its dispositions, a signal must not run
	 * scalerd's handlers in it (they would write to scalerd's own loop) */
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid != 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		snprintf(err, sizeof(err), "cannot start server %s: fork: %s", spec->server_id,
		         strerror(errno));
		s->gone = 1;
		pd_server_unlink_free(s);
		goto fail;
	}
	if (pid == 0)
		pd_child_exec(prog, pd->command, envp, logfd, pipefd[1], gofd[0], gofd[1]);
	close(pipefd[1]);
	close(gofd[0]);
	close(logfd);
	pd_strv_free(envp);
	s->pid = pid;
	s->child = 1;
	s->starttime = pd_starttime(pid);
	snprintf(s->srv.ref, sizeof(s->srv.ref), "%d:%llu", (int)pid, s->starttime);
	s->exec_fd = pipefd[0];
	s->create_cb = cb;
	s->create_arg = arg;
	ev_io_init(&s->exec_io, pd_exec_cb, s->exec_fd, EV_READ);
	s->exec_io.data = s;
	ev_io_start(pd->host->loop, &s->exec_io);
	pd_server_watch(s);
	if (!s->starttime || pd_state_write(pd, s, err, sizeof(err)) < 0) {
		/* without a record a restarted scalerd could not find it: the
		 * child never runs the command (no byte on `go`) */
		if (!s->starttime)
			snprintf(err, sizeof(err), "cannot read /proc/%d/stat", (int)pid);
		pd->host->log(SCALER_LOG_ERR, PD_NAME, "server %s: %s; not starting it", s->srv.id,
		              err);
		close(gofd[1]);
		kill(pid, SIGKILL);
		if (!ev_is_default_loop(pd->host->loop))
			waitpid(pid, NULL, 0);
		s->create_cb = NULL;
		s->gone = 1;
		pd_server_unlink_free(s);
		return pd_reply_later(pd, cb, arg, -1, NULL, "cannot record server %s: %s",
		                      spec->server_id, err);
	}
	if (write(gofd[1], "g", 1) != 1)
		pd->host->log(SCALER_LOG_ERR, PD_NAME, "server %s: cannot release it: %s",
		              s->srv.id,
		              strerror(errno)); /* it exits; reported as a failed start */
	close(gofd[1]);
	pd->host->log(SCALER_LOG_DEBUG, PD_NAME, "starting server %s: %s, port %d", s->srv.id, prog,
	              port);
	return 0;
fail:
	if (logfd >= 0)
		close(logfd);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	if (gofd[0] >= 0) {
		close(gofd[0]);
		close(gofd[1]);
	}
	pd_strv_free(envp);
	return pd_reply_later(pd, cb, arg, -1, NULL, "%s", err);
}

static int pd_list(void *ctx, scaler_driver_list_cb cb, void *arg)
{
	struct pd *pd = ctx;
	struct pd_deferred *d;
	if (!cb)
		return -1;
	d = pd_defer(pd);
	if (!d)
		return -1;
	d->list = 1;
	d->list_cb = cb;
	d->arg = arg;
	pd_fmt(d->err, sizeof(d->err), "cannot read %s", pd->state_dir);
	return 0;
}

static void pd_fini(void *ctx)
{
	struct pd *pd = ctx;
	if (!pd)
		return;
	/* the servers keep running: the next scalerd finds them */
	while (pd->servers)
		pd_server_unlink_free(pd->servers);
	while (pd->deferred) {
		struct pd_deferred *d = pd->deferred;
		pd->deferred = d->next;
		pd->host->defer_cancel(d->h);
		free(d);
	}
	pd_strv_free(pd->command);
	pd_strv_free(pd->env);
	free(pd);
}

/* New settings apply in place: the servers and the calls in flight stay. */
static int pd_reload(void *ctx, const config_setting_t *conf)
{
	struct pd *pd = ctx, *n, old;
	if (pd_init(pd->host, conf, (void **)&n) < 0)
		return -1;
	if (strcmp(n->state_dir, pd->state_dir) != 0)
		pd->host->log(SCALER_LOG_WARNING, PD_NAME,
		              "state_dir changes from %s to %s: servers recorded in %s are not "
		              "moved and will not be found again",
		              pd->state_dir, n->state_dir, pd->state_dir);
	old = *pd;
	*pd = *n;
	pd->servers = old.servers;
	pd->deferred = old.deferred;
	*n = old;
	n->servers = NULL;
	n->deferred = NULL;
	pd_fini(n); /* the old settings */
	return 0;
}

static const struct scaler_driver_ops pd_ops = {
    .size = sizeof(struct scaler_driver_ops),
    .create = pd_create,
    .remove = pd_remove,
    .list = pd_list,
};

SCALER_PLUGIN_DEFINE(SCALER_KIND_DRIVER, PD_NAME, PACKAGE_VERSION, pd_init, pd_reload, pd_fini,
                     driver, &pd_ops);
