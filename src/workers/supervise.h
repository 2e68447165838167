/* Init-style supervision of the per-zone balancer workers: one child
 * process per zone (an exec of scalerd itself), restarted when it exits,
 * with exponential backoff that resets once a worker has stayed up. */
#ifndef SCALER_SUPERVISE_H
#define SCALER_SUPERVISE_H

#include <sys/types.h>

struct ev_loop;
struct supervisor;

/* exe: path of the scalerd binary; conf_path: the config file's name
 * (shown in ps); the config itself is handed over through an fd. */
/* debug, use_syslog: scalerd's -d and --syslog, handed on to the workers. */
struct supervisor *supervisor_new(struct ev_loop *loop, const char *exe, const char *conf_path,
                                  int debug, int use_syslog);
void supervisor_free(struct supervisor *s);

/* The config snapshot (an fd holding the validated config) that workers
 * started from now on read; the supervisor keeps its own dup. */
void supervisor_set_config_fd(struct supervisor *s, int fd);

/* Start (or keep) the worker of a zone; restart=1 forces a new process. */
int supervisor_zone_start(struct supervisor *s, const char *zone);
/* SIGTERM the zone's worker and forget it (SIGKILL after timeout). */
void supervisor_zone_stop(struct supervisor *s, const char *zone, double timeout);
pid_t supervisor_zone_pid(const struct supervisor *s, const char *zone);
int supervisor_zone_restarts(const struct supervisor *s, const char *zone);

/* Stop every worker: SIGTERM, SIGKILL after timeout; done() when all are
 * reaped (maybe at once). */
void supervisor_stop_all(struct supervisor *s, double timeout, void (*done)(void *arg), void *arg);

#endif
