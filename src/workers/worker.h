/* The balancer worker: `scalerd --balancer ZONE`, one process per zone,
 * started and restarted by scalerd. Runs the balancer plugin's data plane. */
#ifndef SCALER_WORKER_H
#define SCALER_WORKER_H

/* config_fd >= 0: read the config from that descriptor (the snapshot the
 * supervisor hands over), conf_path is then only its name. Exit status. */
int worker_run(const char *zone, const char *conf_path, int config_fd, int debug, int use_syslog);

#endif
