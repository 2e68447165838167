/* The host's Redis connection: hiredis async on the libev loop, URL from
 * scaler.conf (redis://[:password@]host:port/db or unix:/path[?db=N]),
 * AUTH and SELECT on connect, reconnect with backoff (0.1 s doubling to 5 s). */
#ifndef SCALER_REDIS_CONN_H
#define SCALER_REDIS_CONN_H

#include <stdarg.h>
#include <stddef.h>

#include <scaler/plugin.h> /* scaler_redis_cb */

struct ev_loop;
struct redis_conn;

/* NULL with err filled when the URL is invalid; connecting is async. */
struct redis_conn *redis_conn_new(struct ev_loop *loop, const char *url, char *err, size_t errlen);
void redis_conn_free(struct redis_conn *r);
int redis_conn_connected(const struct redis_conn *r);
/* 1 when the last attempt to connect failed (refused, timed out, lost):
 * Redis is known to be down, not just connecting. */
int redis_conn_down(const struct redis_conn *r);
/* Redis's CLIENT ID of the current connection; 0 when not connected or
 * unknown. */
unsigned long long redis_conn_client_id(const struct redis_conn *r);
/* Drop and reopen the connection when commands wait longer than this for
 * a reply (a frozen or partitioned Redis); 0 disables. Default 15 s. */
void redis_conn_set_reply_timeout(struct redis_conn *r, double seconds);
/* Called on every connect (1) and disconnect (0). */
void redis_conn_on_state(struct redis_conn *r, void (*cb)(void *arg, int connected), void *arg);

/* -1 when not connected (cb not called); else cb gets the reply, or NULL
 * when the connection dropped before the reply. */
int redis_conn_command(struct redis_conn *r, scaler_redis_cb cb, void *arg, const char *fmt, ...);
int redis_conn_vcommand(struct redis_conn *r, scaler_redis_cb cb, void *arg, const char *fmt,
                        va_list ap);
int redis_conn_command_argv(struct redis_conn *r, scaler_redis_cb cb, void *arg, int argc,
                            const char **argv, const size_t *argvlen);

#endif
