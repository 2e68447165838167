/* Socket address helpers shared by scalerd, the balancer and scaler-app. */
#ifndef SCALER_NET_H
#define SCALER_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Accept port 0 ("pick a free port") in net_parse_hostport_flags. */
#define NET_PORT_ZERO_OK 1

/* Split "host:port" or "[v6]:port" into host (without brackets) and port.
 * "*" or an empty host stands for every address (host becomes "").
 * Returns -1 on bad input (no port, port outside 1..65535, a bare IPv6
 * address, a host that does not fit hostlen), else 0. */
int net_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
/* Same; flags NET_PORT_ZERO_OK also accepts port 0. */
int net_parse_hostport_flags(const char *s, char *host, size_t hostlen, int *port, int flags);

/* "http://HOST:PORT" + path for reaching a listen address: a wildcard host
 * ("", "0.0.0.0", "::") is reached through loopback, an IPv6 host gets its
 * brackets. -1 on a bad hostport or when out is too small. */
int net_http_url(const char *hostport, const char *path, char *out, size_t outlen);

/* A listening TCP socket on hostport (port 0 picks a free one), nonblocking,
 * close-on-exec, SO_REUSEADDR. -1 with a sentence in err on failure. */
int net_listen(const char *hostport, int backlog, char *err, size_t errlen);
/* The same; NET_LISTEN_REUSEPORT: several processes may listen on it at
 * once (SO_REUSEPORT), as workers do while one set replaces another. */
#define NET_LISTEN_REUSEPORT 1
int net_listen_flags(const char *hostport, int backlog, int flags, char *err, size_t errlen);

/* 1 when hostport (or a bare host) names a loopback address: 127.0.0.0/8,
 * ::1, ::ffff:127.0.0.0/104 or "localhost". Only numeric addresses are
 * considered, nothing is resolved; 0 otherwise and on bad input. */
int net_addr_is_loopback(const char *hostport);

/* 1 when the socket address is loopback (see above). */
int net_sockaddr_is_loopback(const struct sockaddr *sa);
/* "127.0.0.1:54321" or "[::1]:54321" into buf; returns buf. */
char *net_sockaddr_str(const struct sockaddr *sa, char *buf, size_t buflen);
/* The local port a bound socket has, -1 on error. */
int net_local_port(int fd);

#endif
