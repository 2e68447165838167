#include "config.h"

#include "supervise.h"

#include <ev.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define SUP_BACKOFF_MIN 0.1 /* first restart after a crash */
#define SUP_BACKOFF_MAX 5.0 /* cap: a crash loop retries every 5 s */
#define SUP_STABLE 10.0     /* up this long → backoff resets */

/* Workers get the config snapshot as this descriptor. */
#define SUP_CONFIG_FD 3

struct worker {
	struct supervisor *sup;
	char zone[64];
	pid_t pid;
	ev_child child;
	ev_timer restart; /* pending restart after backoff */
	ev_timer kill;    /* SIGKILL after the stop timeout */
	double started;
	double backoff;
	int restarts;    /* since scalerd started */
	int quick_exits; /* consecutive exits before SUP_STABLE */
	int stopping;    /* being stopped: do not restart, free when reaped */
	struct worker *next;
};

struct supervisor {
	struct ev_loop *loop;
	char *exe;
	char *conf_path;
	int config_fd;
	int debug, use_syslog; /* -d, --syslog for the workers */
	struct worker *workers;
	int stopping; /* stop_all was called: start nothing new */
	void (*all_done)(void *arg);
	void *all_done_arg;
};

static void sup_spawn(struct worker *w);

struct supervisor *supervisor_new(struct ev_loop *loop, const char *exe, const char *conf_path,
                                  int debug, int use_syslog)
{
	struct supervisor *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = loop;
	s->exe = strdup(exe);
	s->conf_path = strdup(conf_path);
	s->config_fd = -1;
	s->debug = debug;
	s->use_syslog = use_syslog;
	return s;
}

void supervisor_set_config_fd(struct supervisor *s, int fd)
{
	if (s->config_fd >= 0)
		close(s->config_fd);
	s->config_fd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

static struct worker *sup_find(const struct supervisor *s, const char *zone)
{
	for (struct worker *w = s->workers; w; w = w->next)
		if (!w->stopping && strcmp(w->zone, zone) == 0)
			return w;
	return NULL;
}

static void sup_unlink(struct worker *w)
{
	struct supervisor *s = w->sup;
	for (struct worker **pp = &s->workers; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	ev_child_stop(s->loop, &w->child);
	ev_timer_stop(s->loop, &w->restart);
	ev_timer_stop(s->loop, &w->kill);
	free(w);
	if (s->all_done && !s->workers) {
		void (*done)(void *) = s->all_done;
		s->all_done = NULL;
		done(s->all_done_arg);
	}
}

static void sup_on_restart(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	(void)loop;
	(void)revents;
	sup_spawn(w);
}

static void sup_on_child(struct ev_loop *loop, ev_child *c, int revents)
{
	struct worker *w = c->data;
	int st = c->rstatus;
	double up = ev_now(loop) - w->started;
	(void)revents;

	ev_child_stop(loop, &w->child);
	ev_timer_stop(loop, &w->kill);
	w->pid = 0;
	if (w->stopping) {
		log_info("balancer worker of zone %s stopped", w->zone);
		sup_unlink(w);
		return;
	}
	if (WIFSIGNALED(st))
		log_warn("balancer worker of zone %s (pid %d) killed by signal %d after %.1f s",
		         w->zone, c->rpid, WTERMSIG(st), up);
	else
		log_warn("balancer worker of zone %s (pid %d) exited with status %d after %.1f s",
		         w->zone, c->rpid, WEXITSTATUS(st), up);

	if (up >= SUP_STABLE) {
		w->backoff = SUP_BACKOFF_MIN;
		w->quick_exits = 0;
	} else {
		w->quick_exits++;
		if (w->quick_exits > 1)
			w->backoff =
			    w->backoff * 2 > SUP_BACKOFF_MAX ? SUP_BACKOFF_MAX : w->backoff * 2;
		if (w->quick_exits >= 3)
			log_err(
			    "balancer worker of zone %s is crash-looping (%d exits in a row within "
			    "%.0f s of start); next try in %.1f s",
			    w->zone, w->quick_exits, SUP_STABLE, w->backoff);
	}
	ev_timer_set(&w->restart, w->backoff, 0.);
	ev_timer_start(loop, &w->restart);
}

static void sup_on_kill(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	(void)loop;
	(void)revents;
	if (w->pid > 0) {
		log_warn("balancer worker of zone %s (pid %d) did not stop in time; killing it",
		         w->zone, w->pid);
		kill(w->pid, SIGKILL);
	}
}

static void sup_close_from(int lowfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	for (int fd = lowfd; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
		close(fd);
}

static void sup_spawn(struct worker *w)
{
	struct supervisor *s = w->sup;
	char title[80];
	pid_t pid;

	snprintf(title, sizeof(title), "scaler:%s", w->zone);
	pid_t parent = getpid();
	pid = fork();
	if (pid < 0) {
		log_err("cannot start the balancer worker of zone %s: fork: %s", w->zone,
		        strerror(errno));
		ev_timer_set(&w->restart, SUP_BACKOFF_MAX, 0.);
		ev_timer_start(s->loop, &w->restart);
		return;
	}
	if (pid == 0) {
		char fdarg[16];
		sigset_t all;
		/* a worker never outlives scalerd */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		prctl(PR_SET_NAME, title);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (s->config_fd >= 0) {
			if (dup2(s->config_fd, SUP_CONFIG_FD) < 0)
				_exit(127);
			snprintf(fdarg, sizeof(fdarg), "%d", SUP_CONFIG_FD);
		} else {
			fdarg[0] = '\0';
		}
		/* nothing of scalerd's leaks into the worker: not every library
		 * opens its sockets close-on-exec */
		sup_close_from(SUP_CONFIG_FD + 1);
		/* scalerd died between fork and prctl */
		if (getppid() != parent)
			_exit(0);
		char *argv[10];
		int argc = 0;
		argv[argc++] = s->exe;
		argv[argc++] = "--balancer";
		argv[argc++] = w->zone;
		argv[argc++] = "-c";
		argv[argc++] = s->conf_path;
		if (fdarg[0]) {
			argv[argc++] = "--config-fd";
			argv[argc++] = fdarg;
		}
		if (s->debug)
			argv[argc++] = "-d";
		if (s->use_syslog)
			argv[argc++] = "--syslog";
		argv[argc] = NULL;
		execv(s->exe, argv);
		_exit(127);
	}
	w->pid = pid;
	w->started = ev_now(s->loop);
	ev_child_set(&w->child, pid, 0);
	ev_child_start(s->loop, &w->child);
	log_info("balancer worker of zone %s started (pid %d)", w->zone, pid);
	w->restarts++;
}

int supervisor_zone_start(struct supervisor *s, const char *zone)
{
	struct worker *w = sup_find(s, zone);
	if (w)
		return 0;
	if (s->stopping)
		return -1;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->sup = s;
	snprintf(w->zone, sizeof(w->zone), "%s", zone);
	w->backoff = SUP_BACKOFF_MIN;
	w->restarts = -1; /* the first start is not a restart */
	ev_child_init(&w->child, sup_on_child, 0, 0);
	w->child.data = w;
	ev_timer_init(&w->restart, sup_on_restart, 0., 0.);
	w->restart.data = w;
	ev_timer_init(&w->kill, sup_on_kill, 0., 0.);
	w->kill.data = w;
	w->next = s->workers;
	s->workers = w;
	sup_spawn(w);
	return 0;
}

static void sup_stop(struct worker *w, double timeout)
{
	struct supervisor *s = w->sup;
	w->stopping = 1;
	ev_timer_stop(s->loop, &w->restart);
	if (w->pid <= 0) {
		sup_unlink(w);
		return;
	}
	kill(w->pid, SIGTERM);
	ev_timer_set(&w->kill, timeout, 0.);
	ev_timer_start(s->loop, &w->kill);
}

void supervisor_zone_stop(struct supervisor *s, const char *zone, double timeout)
{
	struct worker *w = sup_find(s, zone);
	if (w)
		sup_stop(w, timeout);
}

pid_t supervisor_zone_pid(const struct supervisor *s, const char *zone)
{
	struct worker *w = sup_find(s, zone);
	return w ? w->pid : 0;
}

int supervisor_zone_restarts(const struct supervisor *s, const char *zone)
{
	struct worker *w = sup_find(s, zone);
	return w && w->restarts > 0 ? w->restarts : 0;
}

void supervisor_stop_all(struct supervisor *s, double timeout, void (*done)(void *arg), void *arg)
{
	s->stopping = 1;
	s->all_done = done;
	s->all_done_arg = arg;
	if (!s->workers) {
		s->all_done = NULL;
		done(arg);
		return;
	}
	struct worker *w = s->workers, *next;
	for (; w; w = next) {
		next = w->next;
		if (!w->stopping)
			sup_stop(w, timeout);
	}
}

void supervisor_free(struct supervisor *s)
{
	if (!s)
		return;
	while (s->workers) {
		struct worker *w = s->workers;
		if (w->pid > 0)
			kill(w->pid, SIGKILL);
		s->all_done = NULL;
		sup_unlink(w);
	}
	if (s->config_fd >= 0)
		close(s->config_fd);
	free(s->exe);
	free(s->conf_path);
	free(s);
}
