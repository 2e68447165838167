/* driver "shell": servers are whatever three shell commands make them.
 *
 *   driver = { plugin = "shell";
 *              create = "start-server";  # prints "ADDRESS [REF]" first
 *              remove = "stop-server";
 *              list = "list-servers";    # prints "ID ZONE ADDRESS [REF]" lines
 *              timeout = 30.0; };        # seconds a command may take
 *
 * Each command runs as /bin/sh -c COMMAND with SCALER_CLUSTER, SCALER_ZONE,
 * SCALER_SERVER_ID, SCALER_PORT_MIN and SCALER_PORT_MAX (create),
 * SCALER_ADDRESS and SCALER_REF (remove) in its environment; exit status 0
 * is success, anything else fails the call with the command's first line
 * of output. The commands are children the loop watches (ev_child for the
 * exit, ev_io for the output): nothing waits for them. ev_child needs
 * libev's default loop, the one scalerd runs.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <scaler/plugin.h>

#define SH_NAME "shell"

enum sh_op { SH_CREATE, SH_REMOVE, SH_LIST };

struct sh_run;

struct sh {
	const struct scaler_host *host;
	char *create, *remove, *list;
	double timeout;
	struct sh_run *runs;
};

struct sh_run {
	struct sh *sh;
	enum sh_op op;
	pid_t pid;
	int fd; /* the command's stdout */
	ev_io io;
	ev_child child;
	ev_timer timer;
	int eof, exited, status, timed_out;
	char out[16384];
	size_t len;
	struct scaler_server srv;
	scaler_driver_cb cb;
	scaler_driver_list_cb list_cb;
	void *arg;
	struct sh_run *next;
};

static const char *const sh_names[] = {"create", "remove", "list"};

/* ---- settings ---- */

static int sh_command(const struct scaler_host *host, const config_setting_t *conf,
                      const char *name, char **out)
{
	const char *v = NULL;

	if (!conf || !config_setting_lookup_string(conf, name, &v) || !*v)
		return host->conf_error(conf, "%s: a shell command is required", name);
	if (!(*out = strdup(v)))
		return -1;
	return 0;
}

static void sh_fini(void *ctx);

static int sh_init(const struct scaler_host *host, const config_setting_t *conf, void **ctx)
{
	static const char *const known[] = {"plugin", "create", "remove", "list", "timeout", NULL};
	struct sh *sh = calloc(1, sizeof(*sh));
	int bad = 0;

	if (!sh)
		return -1;
	sh->host = host;
	if (conf && host->conf_check_known(conf, known) < 0)
		bad = -1;
	bad |= sh_command(host, conf, "create", &sh->create);
	bad |= sh_command(host, conf, "remove", &sh->remove);
	bad |= sh_command(host, conf, "list", &sh->list);
	bad |= host->conf_number(conf, "timeout", 30.0, 0.1, 3600, &sh->timeout);
	if (bad) {
		sh_fini(sh);
		return -1;
	}
	*ctx = sh;
	return 0;
}

/* ---- one command ---- */

static void sh_run_free(struct sh_run *r)
{
	struct ev_loop *loop = r->sh->host->loop;

	for (struct sh_run **pp = &r->sh->runs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	ev_io_stop(loop, &r->io);
	ev_child_stop(loop, &r->child);
	ev_timer_stop(loop, &r->timer);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* The command is done (output read, exit seen): answer. */
static void sh_finish(struct sh_run *r)
{
	char err[512], *line = r->out, *nl;
	int ok = !r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;

	r->out[r->len] = '\0';
	if (!ok) {
		line[strcspn(line, "\n")] = '\0';
		if (r->timed_out)
			snprintf(err, sizeof(err), "%s command timed out after %g s",
			         sh_names[r->op], r->sh->timeout);
		else
			snprintf(err, sizeof(err), "%s command failed (status %d): %.300s",
			         sh_names[r->op],
			         WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1, line);
		r->sh->host->log(SCALER_LOG_ERR, SH_NAME, "%s", err);
		if (r->op == SH_LIST)
			r->list_cb(r->arg, -1, NULL, 0, err);
		else
			r->cb(r->arg, -1, NULL, err);
		sh_run_free(r);
		return;
	}
	if (r->op == SH_CREATE) {
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%255s %127s", r->srv.address, r->srv.ref) < 1) {
			r->cb(r->arg, -1, NULL, "create command printed no address");
		} else {
			r->srv.running = 1;
			r->cb(r->arg, 0, &r->srv, NULL);
		}
	} else if (r->op == SH_REMOVE) {
		r->cb(r->arg, 0, &r->srv, NULL);
	} else {
		struct scaler_server *v = NULL;
		size_t n = 0, cap = 0;
		for (; *line; line = nl) {
			struct scaler_server s = {.running = 1};
			nl = line + strcspn(line, "\n");
			if (*nl)
				*nl++ = '\0';
			if (sscanf(line, "%63s %63s %255s %127s", s.id, s.zone, s.address, s.ref) <
			    3)
				continue;
			if (n == cap) {
				struct scaler_server *g =
				    realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
				if (!g)
					break;
				v = g;
			}
			v[n++] = s;
		}
		r->list_cb(r->arg, 0, v, n, NULL);
		free(v);
	}
	sh_run_free(r);
}

static void sh_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sh_run *r = w->data;
	char sink[4096];
	ssize_t n;

	(void)revents;
	if (r->len < sizeof(r->out) - 1)
		n = read(r->fd, r->out + r->len, sizeof(r->out) - 1 - r->len);
	else
		n = read(r->fd, sink, sizeof(sink)); /* more than we keep: drop it */
	if (n > 0) {
		if (r->len < sizeof(r->out) - 1)
			r->len += (size_t)n;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	ev_io_stop(loop, w);
	r->eof = 1;
	if (r->exited)
		sh_finish(r);
}

static void sh_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct sh_run *r = w->data;

	(void)revents;
	ev_child_stop(loop, w);
	r->exited = 1;
	r->status = w->rstatus;
	if (r->eof)
		sh_finish(r);
}

static void sh_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sh_run *r = w->data;

	(void)loop;
	(void)revents;
	r->timed_out = 1;
	kill(r->pid, SIGKILL); /* ev_child sees it die */
}

static void sh_setenv(const char *name, const char *value)
{
	if (value && *value)
		setenv(name, value, 1);
}

/* Start `command` for r: 0, or -1 (nothing started, nothing to free but r). */
static int sh_start(struct sh_run *r, const char *command, const struct scaler_zone *zone)
{
	struct ev_loop *loop = r->sh->host->loop;
	char num[32];
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	r->pid = fork();
	if (r->pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (r->pid == 0) {
		/* the child: stdout into the pipe, our variables, the shell */
		dup2(p[1], STDOUT_FILENO);
		sh_setenv("SCALER_CLUSTER", r->sh->host->cluster);
		sh_setenv("SCALER_ZONE", r->srv.zone);
		sh_setenv("SCALER_SERVER_ID", r->srv.id);
		sh_setenv("SCALER_ADDRESS", r->srv.address);
		sh_setenv("SCALER_REF", r->srv.ref);
		if (zone) {
			snprintf(num, sizeof(num), "%d", zone->port_min);
			sh_setenv("SCALER_PORT_MIN", num);
			snprintf(num, sizeof(num), "%d", zone->port_max);
			sh_setenv("SCALER_PORT_MAX", num);
		}
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	r->fd = p[0];
	fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
	ev_io_init(&r->io, sh_io_cb, r->fd, EV_READ);
	ev_child_init(&r->child, sh_child_cb, r->pid, 0);
	ev_timer_init(&r->timer, sh_timer_cb, r->sh->timeout, 0.);
	r->io.data = r->child.data = r->timer.data = r;
	ev_io_start(loop, &r->io);
	ev_child_start(loop, &r->child);
	ev_timer_start(loop, &r->timer);
	r->next = r->sh->runs;
	r->sh->runs = r;
	return 0;
}

static struct sh_run *sh_run_new(struct sh *sh, enum sh_op op)
{
	struct sh_run *r = calloc(1, sizeof(*r));

	if (r) {
		r->sh = sh;
		r->op = op;
		r->fd = -1;
	}
	return r;
}

/* ---- the driver's operations ---- */

static int sh_create(void *ctx, const struct scaler_server_spec *spec, scaler_driver_cb cb,
                     void *arg)
{
	struct sh *sh = ctx;
	struct sh_run *r = sh_run_new(sh, SH_CREATE);

	if (!r)
		return -1;
	r->cb = cb;
	r->arg = arg;
	snprintf(r->srv.id, sizeof(r->srv.id), "%s", spec->server_id);
	snprintf(r->srv.zone, sizeof(r->srv.zone), "%s", spec->zone->name);
	r->srv.created = (double)time(NULL);
	if (sh_start(r, sh->create, spec->zone) < 0) {
		free(r);
		return -1; /* cb will not be called */
	}
	return 0;
}

static int sh_remove(void *ctx, const struct scaler_server *srv, scaler_driver_cb cb, void *arg)
{
	struct sh *sh = ctx;
	struct sh_run *r = sh_run_new(sh, SH_REMOVE);

	if (!r)
		return -1;
	r->cb = cb;
	r->arg = arg;
	r->srv = *srv;
	if (sh_start(r, sh->remove, NULL) < 0) {
		free(r);
		return -1;
	}
	return 0;
}

static int sh_list(void *ctx, scaler_driver_list_cb cb, void *arg)
{
	struct sh *sh = ctx;
	struct sh_run *r = sh_run_new(sh, SH_LIST);

	if (!r)
		return -1;
	r->list_cb = cb;
	r->arg = arg;
	if (sh_start(r, sh->list, NULL) < 0) {
		free(r);
		return -1;
	}
	return 0;
}

static void sh_fini(void *ctx)
{
	struct sh *sh = ctx;

	while (sh->runs) {
		/* commands in flight end with us: no callback reaches the host */
		kill(sh->runs->pid, SIGKILL);
		waitpid(sh->runs->pid, NULL, 0);
		sh_run_free(sh->runs);
	}
	free(sh->create);
	free(sh->remove);
	free(sh->list);
	free(sh);
}

static const struct scaler_driver_ops sh_ops = {
    .size = sizeof(sh_ops), .create = sh_create, .remove = sh_remove, .list = sh_list};

SCALER_PLUGIN_DEFINE(SCALER_KIND_DRIVER, "shell", "1.0", sh_init, NULL, sh_fini, driver, &sh_ops);
