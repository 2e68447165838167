/* scalerd --stop-servers: stop the servers this node started on this host
 * (the Debian package's prerm runs it when the package is removed). */
#ifndef SCALER_STOP_SERVERS_H
#define SCALER_STOP_SERVERS_H

/* 0 when every server is stopped (or there is none), 1 otherwise. */
int stop_servers_run(const char *conf_path);

#endif
