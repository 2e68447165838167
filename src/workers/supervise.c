#include "config.h"

#include "supervise.h"

#include <ev.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

#define SUP_BACKOFF_MIN 0.1 /* the second restart in a row; the first is at once */
#define SUP_BACKOFF_MAX 5.0 /* cap: a crash loop retries every 5 s */
#define SUP_STABLE 10.0     /* up this long → backoff resets */
#define SUP_BACKLOG 4096    /* of a zone's listening sockets (capped by somaxconn) */

/* Descriptors a worker is handed: the config snapshot, then (--fds) its
 * status pipe, the zone's listening and admin sockets, the shared memory of
 * its set and of the set it replaces, and one eventfd per worker of its
 * set. */
#define SUP_CONFIG_FD 3
#define SUP_FD_STATUS 4
#define SUP_FD_WAKE 9 /* SUP_FD_STATUS + 5: the first wake fd */
#define SUP_MAX_WORKERS 1024

/* A bound socket, shared by the zones and worker sets that use it. A
 * zone's listen address has one per worker (slot), SO_REUSEPORT. */
struct sup_sock {
	struct sup_sock *next;
	char addr[128];
	int slot; /* of a listening socket; -1 for an admin socket */
	int fd;
	int refs;
};

struct sup_set;

struct sup_worker {
	struct sup_set *set;
	int index;
	pid_t pid;
	ev_child child;
	ev_timer restart; /* pending restart after backoff */
	ev_io status;     /* the worker's status pipe: READY=1 once it accepts */
	double started;
	double backoff;
	int quick_exits; /* consecutive exits before SUP_STABLE */
	int ready;       /* said READY=1 since it started */
};

/* The workers of a zone started with one config: `count` processes on the
 * same sockets and shared memory. */
struct sup_set {
	struct sup_zone *zone;
	struct sup_set *next; /* the zone's sets, newest first */
	unsigned id;          /* for the log */
	int count;
	int hand_over;
	struct sup_sock **listen; /* one per worker; NULL without hand_over */
	struct sup_sock *admin;
	int shared_fd, previous_fd;
	int *wake;
	int serving;  /* every worker said READY=1 once */
	int draining; /* told to stop: nothing restarts, freed once all are reaped */
	ev_timer kill;
	struct sup_worker *w;
};

struct sup_zone {
	struct supervisor *sup;
	struct sup_zone *next;
	char name[64];
	struct sup_sock **listen; /* what new sets get, one per worker */
	int nlisten;
	struct sup_sock *admin;
	struct sup_set *sets;
	int restarts;
	int removed; /* freed once its last set is */
};

struct supervisor {
	struct ev_loop *loop;
	char *exe;
	char *conf_path;
	int config_fd;
	int debug, use_syslog; /* -d, --syslog for the workers */
	double drain, stop;
	struct sup_sock *socks;
	struct sup_zone *zones;
	unsigned next_set_id;
	int stopping; /* stop_all was called: start nothing new */
	void (*all_done)(void *arg);
	void *all_done_arg;
};

static void sup_spawn(struct sup_worker *w);

struct supervisor *supervisor_new(struct ev_loop *loop, const char *exe, const char *conf_path,
                                  int debug, int use_syslog)
{
	struct supervisor *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = loop;
	s->exe = strdup(exe);
	s->conf_path = strdup(conf_path);
	if (!s->exe || !s->conf_path) {
		free(s->exe);
		free(s->conf_path);
		free(s);
		return NULL;
	}
	s->config_fd = -1;
	s->debug = debug;
	s->use_syslog = use_syslog;
	s->drain = 10.0;
	s->stop = 10.0;
	return s;
}

void supervisor_set_config_fd(struct supervisor *s, int fd)
{
	if (s->config_fd >= 0)
		close(s->config_fd);
	s->config_fd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

void supervisor_set_timeouts(struct supervisor *s, double drain, double stop)
{
	s->drain = drain;
	s->stop = stop;
}

/* ---- sockets ------------------------------------------------------------- */

static struct sup_sock *sock_find(struct supervisor *s, const char *addr, int slot)
{
	for (struct sup_sock *k = s->socks; k; k = k->next)
		if (k->slot == slot && strcmp(k->addr, addr) == 0)
			return k;
	return NULL;
}

static struct sup_sock *sock_ref(struct sup_sock *k)
{
	if (k)
		k->refs++;
	return k;
}

static void sock_close(struct supervisor *s, struct sup_sock *k)
{
	for (struct sup_sock **pp = &s->socks; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	if (k->slot <= 0)
		log_info("closed the socket on %s", k->addr);
	close(k->fd);
	free(k);
}

static void sock_unref(struct supervisor *s, struct sup_sock *k)
{
	if (k && --k->refs <= 0)
		sock_close(s, k);
}

/* The socket on addr (a listening socket of worker `slot`, or the admin
 * socket with slot -1), bound now unless the supervisor holds it. */
static struct sup_sock *sock_open(struct supervisor *s, const char *addr, int slot, char *err,
                                  size_t errlen)
{
	struct sup_sock *k = sock_find(s, addr, slot);
	if (k)
		return k;
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(k->addr, sizeof(k->addr), "%s", addr);
	k->slot = slot;
	if (slot == 0) {
		/* SO_REUSEPORT would let a second scalerd share the port
		 * silently: whoever holds it without scalerd's other sockets is
		 * told here, as without it */
		k->fd = net_listen(addr, 1, err, errlen);
		if (k->fd >= 0)
			close(k->fd);
		else if (!sock_find(s, addr, 1)) {
			free(k);
			return NULL;
		}
	}
	k->fd = slot < 0 ? net_listen(addr, 511, err, errlen)
	                 : net_listen_flags(addr, SUP_BACKLOG, NET_LISTEN_REUSEPORT, err, errlen);
	if (k->fd < 0) {
		free(k);
		return NULL;
	}
	k->next = s->socks;
	s->socks = k;
	if (slot <= 0)
		log_info("listening on %s", addr);
	return k;
}

/* The listening sockets of workers [0, n) on addr, and the admin socket.
 * -1 with err; what was bound stays for supervisor_prepared_drop. */
static int sock_open_zone(struct supervisor *s, const struct supervisor_zone *z, char *err,
                          size_t errlen)
{
	for (int i = 0; i < z->workers && i < SUP_MAX_WORKERS; i++)
		if (!sock_open(s, z->listen, i, err, errlen))
			return -1;
	return sock_open(s, z->admin, -1, err, errlen) ? 0 : -1;
}

int supervisor_zone_prepare(struct supervisor *s, const struct supervisor_zone *z, char *err,
                            size_t errlen)
{
	if (!z->hand_over)
		return 0;
	return sock_open_zone(s, z, err, errlen);
}

void supervisor_prepared_drop(struct supervisor *s)
{
	for (struct sup_sock *k = s->socks, *next; k; k = next) {
		next = k->next;
		if (k->refs <= 0)
			sock_close(s, k);
	}
}

/* ---- zones and sets ------------------------------------------------------ */

static struct sup_zone *zone_find(const struct supervisor *s, const char *name)
{
	for (struct sup_zone *z = s->zones; z; z = z->next)
		if (!z->removed && strcmp(z->name, name) == 0)
			return z;
	return NULL;
}

/* The set that serves the zone's users now: the newest that ever served,
 * else the newest. */
static struct sup_set *zone_current(const struct sup_zone *z)
{
	for (struct sup_set *t = z->sets; t; t = t->next)
		if (!t->draining && t->serving)
			return t;
	for (struct sup_set *t = z->sets; t; t = t->next)
		if (!t->draining)
			return t;
	return NULL;
}

static void sup_check_all_done(struct supervisor *s)
{
	if (!s->all_done)
		return;
	for (struct sup_zone *z = s->zones; z; z = z->next)
		if (z->sets)
			return;
	void (*done)(void *) = s->all_done;
	s->all_done = NULL;
	done(s->all_done_arg);
}

static void zone_free(struct sup_zone *z)
{
	struct supervisor *s = z->sup;
	for (struct sup_zone **pp = &s->zones; *pp; pp = &(*pp)->next)
		if (*pp == z) {
			*pp = z->next;
			break;
		}
	for (int i = 0; i < z->nlisten; i++)
		sock_unref(s, z->listen[i]);
	free(z->listen);
	sock_unref(s, z->admin);
	free(z);
}

static void set_close_fds(struct sup_set *t)
{
	if (t->shared_fd >= 0)
		close(t->shared_fd);
	if (t->previous_fd >= 0)
		close(t->previous_fd);
	t->shared_fd = t->previous_fd = -1;
	for (int i = 0; t->wake && i < t->count; i++)
		if (t->wake[i] >= 0)
			close(t->wake[i]);
	free(t->wake);
	t->wake = NULL;
}

static void set_unref_socks(struct sup_set *t)
{
	struct supervisor *s = t->zone->sup;
	for (int i = 0; t->listen && i < t->count; i++)
		sock_unref(s, t->listen[i]);
	free(t->listen);
	t->listen = NULL;
	sock_unref(s, t->admin);
	t->admin = NULL;
}

static void set_free(struct sup_set *t)
{
	struct sup_zone *z = t->zone;
	struct supervisor *s = z->sup;
	for (struct sup_set **pp = &z->sets; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	for (int i = 0; i < t->count; i++) {
		struct sup_worker *w = &t->w[i];
		ev_child_stop(s->loop, &w->child);
		ev_timer_stop(s->loop, &w->restart);
		if (ev_is_active(&w->status) || w->status.fd >= 0) {
			ev_io_stop(s->loop, &w->status);
			if (w->status.fd >= 0)
				close(w->status.fd);
		}
	}
	ev_timer_stop(s->loop, &t->kill);
	set_close_fds(t);
	set_unref_socks(t);
	free(t->w);
	free(t);
	if (z->removed && !z->sets)
		zone_free(z);
	sup_check_all_done(s);
}

static int set_running(const struct sup_set *t)
{
	int n = 0;
	for (int i = 0; i < t->count; i++)
		n += t->w[i].pid > 0;
	return n;
}

static void set_on_kill(struct ev_loop *loop, ev_timer *tm, int revents)
{
	struct sup_set *t = tm->data;
	(void)loop;
	(void)revents;
	for (int i = 0; i < t->count; i++)
		if (t->w[i].pid > 0) {
			log_warn("balancer worker %d of zone %s (pid %d) did not stop in time; "
			         "killing it",
			         i, t->zone->name, t->w[i].pid);
			kill(t->w[i].pid, SIGKILL);
		}
}

/* Stop the set: its workers stop accepting and finish their requests. */
static void set_drain(struct sup_set *t)
{
	struct supervisor *s = t->zone->sup;
	if (t->draining)
		return;
	t->draining = 1;
	for (int i = 0; i < t->count; i++) {
		struct sup_worker *w = &t->w[i];
		ev_timer_stop(s->loop, &w->restart);
		if (w->pid > 0)
			kill(w->pid, SIGTERM);
	}
	/* the workers hold their own copies; the supervisor's go, and with
	 * them a socket no zone uses any more */
	set_close_fds(t);
	set_unref_socks(t);
	if (!set_running(t)) {
		set_free(t);
		return;
	}
	double after = s->stop > s->drain + 1 ? s->stop : s->drain + 1;
	ev_timer_set(&t->kill, after, 0.);
	ev_timer_start(s->loop, &t->kill);
}

static void sup_on_restart(struct ev_loop *loop, ev_timer *tm, int revents)
{
	(void)loop;
	(void)revents;
	sup_spawn(tm->data);
}

/* Every worker of t serves: the sets it replaces stop accepting. */
static void set_now_serving(struct sup_set *t)
{
	struct sup_zone *z = t->zone;
	t->serving = 1;
	if (t->previous_fd >= 0) {
		close(t->previous_fd);
		t->previous_fd = -1;
	}
	int older = 0;
	for (struct sup_set *o = t->next, *next; o; o = next) {
		next = o->next;
		if (!o->draining) {
			older++;
			set_drain(o);
		}
	}
	if (older)
		log_info("zone %s: the new balancer worker(s) serve; the previous ones drain",
		         z->name);
}

static void sup_on_status(struct ev_loop *loop, ev_io *io, int revents)
{
	struct sup_worker *w = io->data;
	char buf[256];
	(void)revents;
	ssize_t n = read(io->fd, buf, sizeof(buf) - 1);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* the worker is gone (its exit is seen by the child watcher) */
		ev_io_stop(loop, io);
		close(io->fd);
		ev_io_set(io, -1, EV_READ);
		return;
	}
	buf[n] = '\0';
	struct sup_set *t = w->set;
	if (!strstr(buf, "READY=1") || w->ready)
		return;
	w->ready = 1;
	log_debug("balancer worker %d of zone %s (pid %d) serves", w->index, t->zone->name, w->pid);
	if (t->serving || t->draining)
		return;
	for (int i = 0; i < t->count; i++)
		if (!t->w[i].ready)
			return;
	set_now_serving(t);
}

static void sup_on_child(struct ev_loop *loop, ev_child *c, int revents)
{
	struct sup_worker *w = c->data;
	struct sup_set *t = w->set;
	struct sup_zone *z = t->zone;
	int st = c->rstatus;
	double up = ev_now(loop) - w->started;
	(void)revents;

	ev_child_stop(loop, &w->child);
	w->pid = 0;
	w->ready = 0;
	if (t->draining) {
		log_info("balancer worker %d of zone %s stopped", w->index, z->name);
		if (!set_running(t))
			set_free(t);
		return;
	}
	if (WIFSIGNALED(st))
		log_warn("balancer worker %d of zone %s (pid %d) killed by signal %d after %.1f s",
		         w->index, z->name, c->rpid, WTERMSIG(st), up);
	else
		log_warn("balancer worker %d of zone %s (pid %d) exited with status %d after %.1f "
		         "s",
		         w->index, z->name, c->rpid, WEXITSTATUS(st), up);

	if (up >= SUP_STABLE) {
		w->backoff = SUP_BACKOFF_MIN;
		w->quick_exits = 0;
	}
	z->restarts++;
	/* the first restart is at once: the socket stays open meanwhile */
	double delay = w->quick_exits ? w->backoff : 0;
	if (w->quick_exits)
		w->backoff = w->backoff * 2 > SUP_BACKOFF_MAX ? SUP_BACKOFF_MAX : w->backoff * 2;
	w->quick_exits++;
	if (w->quick_exits >= 3)
		log_err("balancer worker %d of zone %s is crash-looping (%d exits in a row within "
		        "%.0f s of start); next try in %.1f s%s",
		        w->index, z->name, w->quick_exits, SUP_STABLE, delay,
		        t->listen ? "; its socket stays open" : "");
	ev_timer_set(&w->restart, delay, 0.);
	ev_timer_start(loop, &w->restart);
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

/* In the child: put src[i] on SUP_FD_STATUS + i (the config on
 * SUP_CONFIG_FD) and close everything else. */
static void sup_child_fds(const int *src, int n, int config_fd)
{
	int base = SUP_FD_STATUS + n + 16;
	int tmp[SUP_FD_WAKE - SUP_FD_STATUS + SUP_MAX_WORKERS];
	int cfg = config_fd >= 0 ? fcntl(config_fd, F_DUPFD, base) : -1;
	if (config_fd >= 0 && cfg < 0)
		_exit(127);
	for (int i = 0; i < n; i++) {
		tmp[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD, base) : -1;
		if (src[i] >= 0 && tmp[i] < 0)
			_exit(127);
	}
	if (cfg >= 0 && dup2(cfg, SUP_CONFIG_FD) < 0)
		_exit(127);
	for (int i = 0; i < n; i++)
		if (tmp[i] >= 0 && dup2(tmp[i], SUP_FD_STATUS + i) < 0)
			_exit(127);
	/* nothing else of scalerd's leaks into the worker: not every library
	 * opens its sockets close-on-exec */
	sup_close_from(SUP_FD_STATUS + n);
}

static void sup_spawn(struct sup_worker *w)
{
	struct sup_set *t = w->set;
	struct sup_zone *z = t->zone;
	struct supervisor *s = z->sup;
	char title[80], workerarg[32], fdsarg[64];
	int pfd[2];

	if (s->stopping || t->draining)
		return;
	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_err("cannot start balancer worker %d of zone %s: pipe: %s", w->index, z->name,
		        strerror(errno));
		ev_timer_set(&w->restart, SUP_BACKOFF_MAX, 0.);
		ev_timer_start(s->loop, &w->restart);
		return;
	}
	/* the worker writes; scalerd reads without blocking */
	fcntl(pfd[1], F_SETFL, 0);
	snprintf(title, sizeof(title), "scaler:%s", z->name);
	snprintf(workerarg, sizeof(workerarg), "%d/%d", w->index, t->count);
	int src[SUP_FD_WAKE - SUP_FD_STATUS + SUP_MAX_WORKERS];
	int nsrc = 0;
	src[nsrc++] = pfd[1];
	src[nsrc++] = t->listen ? t->listen[w->index]->fd : -1;
	src[nsrc++] = t->admin && w->index == 0 ? t->admin->fd : -1;
	src[nsrc++] = t->shared_fd;
	src[nsrc++] = t->previous_fd;
	for (int i = 0; t->wake && i < t->count; i++)
		src[nsrc++] = t->wake[i];
	/* --fds STATUS,LISTEN,ADMIN,SHARED,PREVIOUS,WAKE0: where each landed */
	int off = 0;
	for (int i = 0; i < 5 && off < (int)sizeof(fdsarg); i++)
		off += snprintf(fdsarg + off, sizeof(fdsarg) - (size_t)off, "%s%d", i ? "," : "",
		                src[i] >= 0 ? SUP_FD_STATUS + i : -1);
	if (off < (int)sizeof(fdsarg))
		snprintf(fdsarg + off, sizeof(fdsarg) - (size_t)off, ",%d",
		         t->wake ? SUP_FD_WAKE : -1);

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		log_err("cannot start balancer worker %d of zone %s: fork: %s", w->index, z->name,
		        strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		ev_timer_set(&w->restart, SUP_BACKOFF_MAX, 0.);
		ev_timer_start(s->loop, &w->restart);
		return;
	}
	if (pid == 0) {
		sigset_t all;
		/* a worker never outlives scalerd */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		prctl(PR_SET_NAME, title);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* passed on by scalerd (reload, log reopen): ignored until the
		 * worker takes them, never its death */
		signal(SIGHUP, SIG_IGN);
		signal(SIGUSR1, SIG_IGN);
		sup_child_fds(src, nsrc, s->config_fd);
		/* scalerd died between fork and prctl */
		if (getppid() != parent)
			_exit(0);
		char *argv[16];
		int argc = 0;
		argv[argc++] = s->exe;
		argv[argc++] = "--balancer";
		argv[argc++] = z->name;
		argv[argc++] = "-c";
		argv[argc++] = s->conf_path;
		if (s->config_fd >= 0) {
			argv[argc++] = "--config-fd";
			argv[argc++] = "3";
		}
		argv[argc++] = "--worker";
		argv[argc++] = workerarg;
		argv[argc++] = "--fds";
		argv[argc++] = fdsarg;
		if (s->debug)
			argv[argc++] = "-d";
		if (s->use_syslog)
			argv[argc++] = "--syslog";
		argv[argc] = NULL;
		execv(s->exe, argv);
		_exit(127);
	}
	close(pfd[1]);
	if (w->status.fd >= 0) {
		ev_io_stop(s->loop, &w->status);
		close(w->status.fd);
	}
	ev_io_set(&w->status, pfd[0], EV_READ);
	ev_io_start(s->loop, &w->status);
	w->pid = pid;
	w->ready = 0;
	w->started = ev_now(s->loop);
	ev_child_set(&w->child, pid, 0);
	ev_child_start(s->loop, &w->child);
	log_info("balancer worker %d of zone %s started (pid %d)", w->index, z->name, pid);
}

static struct sup_set *set_new(struct sup_zone *z, const struct supervisor_zone *cz)
{
	struct supervisor *s = z->sup;
	struct sup_set *t = calloc(1, sizeof(*t));
	int count = cz->hand_over ? cz->workers : 1;
	if (count < 1)
		count = 1;
	if (count > SUP_MAX_WORKERS)
		count = SUP_MAX_WORKERS;
	if (!t || !(t->w = calloc((size_t)count, sizeof(*t->w))) ||
	    !(t->wake = calloc((size_t)count, sizeof(int)))) {
		log_err("zone %s: out of memory", z->name);
		if (t)
			free(t->w);
		free(t);
		return NULL;
	}
	t->zone = z;
	t->id = ++s->next_set_id;
	t->count = count;
	t->hand_over = cz->hand_over;
	t->shared_fd = t->previous_fd = -1;
	for (int i = 0; i < count; i++)
		t->wake[i] = -1;
	if (cz->hand_over) {
		char name[96];
		snprintf(name, sizeof(name), "scaler-zone-%s", z->name);
		t->shared_fd = memfd_create(name, MFD_CLOEXEC);
		for (int i = 0; i < count && t->shared_fd >= 0; i++)
			if ((t->wake[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
				break;
		if (t->shared_fd < 0 || t->wake[count - 1] < 0) {
			log_err("zone %s: cannot set up its workers: %s", z->name, strerror(errno));
			set_close_fds(t);
			free(t->w);
			free(t);
			return NULL;
		}
		t->listen = calloc((size_t)count, sizeof(*t->listen));
		if (!t->listen || z->nlisten < count) {
			log_err("zone %s: out of memory", z->name);
			free(t->listen);
			set_close_fds(t);
			free(t->w);
			free(t);
			return NULL;
		}
		for (int i = 0; i < count; i++)
			t->listen[i] = sock_ref(z->listen[i]);
		t->admin = sock_ref(z->admin);
		struct sup_set *cur = zone_current(z);
		if (cur && cur->shared_fd >= 0)
			t->previous_fd = fcntl(cur->shared_fd, F_DUPFD_CLOEXEC, 10);
	} else {
		free(t->wake);
		t->wake = NULL;
	}
	ev_timer_init(&t->kill, set_on_kill, 0., 0.);
	t->kill.data = t;
	for (int i = 0; i < count; i++) {
		struct sup_worker *w = &t->w[i];
		w->set = t;
		w->index = i;
		w->backoff = SUP_BACKOFF_MIN;
		ev_child_init(&w->child, sup_on_child, 0, 0);
		w->child.data = w;
		ev_timer_init(&w->restart, sup_on_restart, 0., 0.);
		w->restart.data = w;
		ev_io_init(&w->status, sup_on_status, -1, EV_READ);
		w->status.data = w;
	}
	t->next = z->sets;
	z->sets = t;
	return t;
}

/* Take the zone's sockets for cz's addresses and workers (bound by
 * prepare, or now). */
static int zone_take_sockets(struct sup_zone *z, const struct supervisor_zone *cz)
{
	struct supervisor *s = z->sup;
	char err[512];
	struct sup_sock **l = NULL, *a = NULL;
	int n = 0;
	if (cz->hand_over) {
		n = cz->workers < SUP_MAX_WORKERS ? cz->workers : SUP_MAX_WORKERS;
		if (sock_open_zone(s, cz, err, sizeof(err)) < 0 ||
		    !(l = calloc((size_t)n, sizeof(*l)))) {
			log_err("zone %s: %s", z->name, l ? err : "out of memory");
			supervisor_prepared_drop(s);
			return -1;
		}
		for (int i = 0; i < n; i++)
			l[i] = sock_ref(sock_find(s, cz->listen, i));
		a = sock_ref(sock_find(s, cz->admin, -1));
	}
	for (int i = 0; i < z->nlisten; i++)
		sock_unref(s, z->listen[i]);
	free(z->listen);
	sock_unref(s, z->admin);
	z->listen = l;
	z->nlisten = n;
	z->admin = a;
	return 0;
}

static void set_start(struct sup_set *t)
{
	for (int i = 0; i < t->count; i++)
		sup_spawn(&t->w[i]);
	if (!t->hand_over) {
		/* the worker binds its own sockets: nothing to wait for */
		t->serving = 1;
		for (struct sup_set *o = t->next; o; o = o->next)
			set_drain(o);
	}
}

int supervisor_zone_start(struct supervisor *s, const struct supervisor_zone *cz)
{
	if (zone_find(s, cz->name))
		return 0;
	if (s->stopping)
		return -1;
	struct sup_zone *z = calloc(1, sizeof(*z));
	if (!z)
		return -1;
	z->sup = s;
	snprintf(z->name, sizeof(z->name), "%s", cz->name);
	z->next = s->zones;
	s->zones = z;
	if (zone_take_sockets(z, cz) < 0) {
		zone_free(z);
		return -1;
	}
	struct sup_set *t = set_new(z, cz);
	if (!t) {
		zone_free(z);
		return -1;
	}
	set_start(t);
	return 0;
}

int supervisor_zone_replace(struct supervisor *s, const struct supervisor_zone *cz)
{
	struct sup_zone *z = zone_find(s, cz->name);
	if (!z)
		return supervisor_zone_start(s, cz);
	if (s->stopping)
		return -1;
	/* a legacy worker binds the port itself: the old one must go first */
	if (!cz->hand_over)
		for (struct sup_set *o = z->sets; o; o = o->next)
			set_drain(o);
	if (zone_take_sockets(z, cz) < 0)
		return -1;
	/* sets that never served are dropped at once; the one serving goes
	 * only once the new one serves */
	for (struct sup_set *o = z->sets, *next; o; o = next) {
		next = o->next;
		if (!o->serving)
			set_drain(o);
	}
	struct sup_set *t = set_new(z, cz);
	if (!t)
		return -1;
	if (cz->hand_over && t->next)
		log_info("zone %s: new balancer worker(s); the running ones serve until they do",
		         z->name);
	set_start(t);
	return 0;
}

void supervisor_zone_remove(struct supervisor *s, const char *name)
{
	struct sup_zone *z = zone_find(s, name);
	if (!z)
		return;
	z->removed = 1;
	for (int i = 0; i < z->nlisten; i++)
		sock_unref(s, z->listen[i]);
	free(z->listen);
	z->listen = NULL;
	z->nlisten = 0;
	sock_unref(s, z->admin);
	z->admin = NULL;
	if (!z->sets) {
		zone_free(z);
		return;
	}
	for (struct sup_set *t = z->sets, *next; t; t = next) {
		next = t->next;
		set_drain(t); /* may free z with its last set */
	}
}

pid_t supervisor_zone_pid(const struct supervisor *s, const char *zone)
{
	pid_t pid = 0;
	supervisor_zone_pids(s, zone, &pid, 1);
	return pid;
}

int supervisor_zone_pids(const struct supervisor *s, const char *zone, pid_t *pids, int max)
{
	struct sup_zone *z = zone_find(s, zone);
	struct sup_set *t = z ? zone_current(z) : NULL;
	if (!t)
		return 0;
	for (int i = 0; i < t->count && i < max; i++)
		pids[i] = t->w[i].pid;
	return t->count;
}

int supervisor_zone_restarts(const struct supervisor *s, const char *zone)
{
	struct sup_zone *z = zone_find(s, zone);
	return z ? z->restarts : 0;
}

void supervisor_signal_all(const struct supervisor *s, int sig)
{
	for (const struct sup_zone *z = s->zones; z; z = z->next)
		for (const struct sup_set *t = z->sets; t; t = t->next)
			for (int i = 0; i < t->count; i++)
				if (t->w[i].pid > 0)
					kill(t->w[i].pid, sig);
}

void supervisor_stop_all(struct supervisor *s, void (*done)(void *arg), void *arg)
{
	s->stopping = 1;
	s->all_done = done;
	s->all_done_arg = arg;
	for (struct sup_zone *z = s->zones, *next; z; z = next) {
		next = z->next;
		for (struct sup_set *t = z->sets, *tn; t; t = tn) {
			tn = t->next;
			set_drain(t);
		}
	}
	sup_check_all_done(s);
}

void supervisor_free(struct supervisor *s)
{
	if (!s)
		return;
	s->all_done = NULL;
	while (s->zones) {
		struct sup_zone *z = s->zones;
		z->removed = 1;
		if (!z->sets) {
			zone_free(z);
			continue;
		}
		for (int last = 0; !last;) {
			struct sup_set *t = z->sets;
			last = !t->next;
			for (int i = 0; i < t->count; i++)
				if (t->w[i].pid > 0)
					kill(t->w[i].pid, SIGKILL);
			set_free(t); /* frees z with its last set */
		}
	}
	while (s->socks)
		sock_close(s, s->socks);
	if (s->config_fd >= 0)
		close(s->config_fd);
	free(s->exe);
	free(s->conf_path);
	free(s);
}
