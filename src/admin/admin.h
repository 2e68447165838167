/* scalerd's admin API on node.admin. */
#ifndef SCALER_ADMIN_H
#define SCALER_ADMIN_H

#include <stddef.h>

struct daemon;
struct http_server;

struct http_server *admin_start(struct daemon *d, char *err, size_t errlen);

#endif
