/* Init-style supervision of the zones' balancer workers (exec of scalerd
 * itself, `scalerd --balancer ZONE`), restarted when they exit, with
 * exponential backoff that resets once a worker has stayed up.
 *
 * The supervisor owns each zone's listening sockets: it binds them once and
 * hands them to the workers, so a worker that dies, crash-loops or is
 * replaced never closes the port (connections wait in the backlog). A zone
 * runs `workers` processes, each on its own socket of the zone's address
 * (SO_REUSEPORT: the kernel spreads the connections): a set of workers.
 * A reload
 * that changes the zone's balancer starts a new set on the same sockets and
 * lets the old one drain only once every new worker serves. A socket closes
 * when its zone is removed or moves to another address. */
#ifndef SCALER_SUPERVISE_H
#define SCALER_SUPERVISE_H

#include <stddef.h>
#include <sys/types.h>

struct ev_loop;
struct supervisor;

/* What the supervisor needs to know of a zone. */
struct supervisor_zone {
	const char *name;
	const char *listen; /* host:port */
	const char *admin;  /* host:port */
	int workers;        /* processes on the zone's address, a socket each, >= 1 */
	/* 1: the zone's balancer plugin serves on sockets it is handed (ABI
	 * 1.4); 0: the worker binds its own (one worker, a gap on restart) */
	int hand_over;
};

/* exe: path of the scalerd binary; conf_path: the config file's name
 * (shown in ps); the config itself is handed over through an fd.
 * debug, use_syslog: scalerd's -d and --syslog, handed on to the workers. */
struct supervisor *supervisor_new(struct ev_loop *loop, const char *exe, const char *conf_path,
                                  int debug, int use_syslog);
void supervisor_free(struct supervisor *s);

/* The config snapshot (an fd holding the validated config) that workers
 * started from now on read; the supervisor keeps its own dup. */
void supervisor_set_config_fd(struct supervisor *s, int fd);
/* A worker told to stop finishes its requests for up to drain (seconds);
 * it is killed after max(stop, drain + 1). */
void supervisor_set_timeouts(struct supervisor *s, double drain, double stop);

/* Phase one of applying a config: bind the sockets zone z needs that the
 * supervisor does not hold yet. Nothing running changes. -1 with a
 * sentence in err (the address and why). */
int supervisor_zone_prepare(struct supervisor *s, const struct supervisor_zone *z, char *err,
                            size_t errlen);
/* Close the sockets prepared and taken by no zone (after applying, or
 * when the config was refused). */
void supervisor_prepared_drop(struct supervisor *s);

/* Phase two. Start the zone's workers (nothing when they run). */
int supervisor_zone_start(struct supervisor *s, const struct supervisor_zone *z);
/* New workers for the zone (its balancer settings, address or worker count
 * changed); the running ones keep serving until every new one serves, then
 * stop accepting and drain. */
int supervisor_zone_replace(struct supervisor *s, const struct supervisor_zone *z);
/* Stop the zone's workers (they drain) and close its sockets. */
void supervisor_zone_remove(struct supervisor *s, const char *zone);

/* Worker 0 of the zone's current set (0 when none runs). */
pid_t supervisor_zone_pid(const struct supervisor *s, const char *zone);
/* Up to max pids of the zone's current set (0 where a worker is down);
 * returns the set's size. */
int supervisor_zone_pids(const struct supervisor *s, const char *zone, pid_t *pids, int max);
/* Restarts of the zone's workers since scalerd started. */
int supervisor_zone_restarts(const struct supervisor *s, const char *zone);

/* Send sig to every worker, draining ones included (SIGUSR1: reopen the
 * access logs). */
void supervisor_signal_all(const struct supervisor *s, int sig);

/* Stop every worker: SIGTERM, SIGKILL after the timeout; done() when all
 * are reaped (maybe at once). */
void supervisor_stop_all(struct supervisor *s, void (*done)(void *arg), void *arg);

#endif
