/* scalerd's admin API on node.admin. */
#ifndef SCALER_ADMIN_H
#define SCALER_ADMIN_H

#include <jansson.h>
#include <stddef.h>

struct daemon;
struct http_request;
struct http_server;

struct http_server *admin_start(struct daemon *d, char *err, size_t errlen);
/* The zones of GET /status: the controller's view, whether the zone
 * serves TLS, and the balancer workers of the zones this node hosts (new
 * reference). */
json_t *admin_zones_json(struct daemon *d);
/* A query parameter; *bad is set when it is present but unusable (too
 * long or badly encoded), which is an error, not "absent". */
const char *admin_query(const struct http_request *req, const char *name, char *buf, size_t len,
                        int *bad);

#endif
