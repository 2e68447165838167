/* The balancer worker: `scalerd --balancer ZONE`, started and restarted by
 * scalerd (one or more per zone). Runs the balancer plugin's data plane. */
#ifndef SCALER_WORKER_H
#define SCALER_WORKER_H

/* What scalerd hands a worker (--worker, --fds); -1 where nothing is. */
struct worker_fds {
	int index, count; /* --worker INDEX/COUNT */
	int status;       /* the worker writes READY=1 here once it accepts */
	int listen, admin;
	int shared, previous;
	int wake; /* the first of `count` consecutive eventfds */
};

/* "INDEX/COUNT" and "STATUS,LISTEN,ADMIN,SHARED,PREVIOUS,WAKE" into f;
 * -1 when malformed. */
int worker_fds_parse(struct worker_fds *f, const char *worker, const char *fds);

/* config_fd >= 0: read the config from that descriptor (the snapshot the
 * supervisor hands over), conf_path is then only its name. f NULL: run
 * alone, binding the zone's sockets. Exit status. */
int worker_run(const char *zone, const char *conf_path, int config_fd, const struct worker_fds *f,
               int debug, int use_syslog);

#endif
