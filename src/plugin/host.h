/* The services table scalerd hands its plugins (struct scaler_host):
 * logging, config error helpers, the async HTTP client, the Redis
 * connection and the leadership records of the state store. */
#ifndef SCALER_HOST_H
#define SCALER_HOST_H

#include <scaler/plugin.h>

struct ev_loop;
struct http_client;
struct redis_conn;
struct store;

struct host_params {
	const char *node_id;
	const char *cluster;
	const char *admin_url;
	const char *token;     /* NULL: none */
	const char *redis_url; /* NULL: no Redis (redis_command fails with -1) */
	const char *state_dir; /* scaler.conf's state_dir, NULL: none */
	int public_reads;      /* node.public_reads */
};

struct host {
	struct scaler_host pub; /* what plugins see; first member */
	struct ev_loop *loop;
	struct http_client *http;
	struct redis_conn *redis; /* NULL without redis_url */
	struct store *store;      /* NULL without redis_url */
	char *node_id, *cluster, *admin_url, *token, *state_dir;
};

/* One host per process (plugins get &h->pub). NULL with err on bad input. */
struct host *host_new(struct ev_loop *loop, const struct host_params *p, char *err, size_t errlen);
void host_free(struct host *h);
/* Close the Redis connection now (pending callbacks get errors); the host
 * then behaves as if it had none. For an orderly exit. */
void host_close_redis(struct host *h);

#endif
