/* The Docker Engine API as the container drivers (docker, swarm) speak it:
 * endpoints ("unix:///path" or "tcp://host:port", https with TLS client
 * certificates), the API version negotiated once per endpoint, JSON
 * requests on the host's asynchronous HTTP client, and failover across
 * several endpoints (a Swarm's managers). Compiled into each driver. */
#ifndef SCALER_DRIVER_ENGINE_H
#define SCALER_DRIVER_ENGINE_H

#include <stddef.h>

#include <ev.h>
#include <jansson.h>
#include <scaler/plugin.h>

struct eng;
struct eng_call;

struct eng_reply {
	long status;          /* HTTP status; 0 when no endpoint answered */
	json_t *json;         /* the body parsed, NULL when it is not JSON; valid during the cb */
	const char *message;  /* status not 2xx: Docker's own words, or why nobody answered */
	const char *endpoint; /* the endpoint that answered, or the last one tried */
	int failovers;        /* endpoints given up (no answer, 503) before this reply */
};

typedef void (*eng_cb)(void *arg, const struct eng_reply *r);

/* Endpoints from the driver group: setting `name`, a string (many = 0) or
 * an array of strings (many = 1), each "unix:///path" or "tcp://host:port";
 * `def` when it is absent. tls_ca, tls_cert, tls_key make tcp:// https.
 * noun names an endpoint in messages ("Docker engine", "Swarm manager").
 * NULL after host->conf_error. */
struct eng *eng_new(const struct scaler_host *host, const config_setting_t *conf, const char *name,
                    int many, const char *def, const char *noun);
/* In-flight calls finish; the next ones use `from`'s endpoints (keeping the
 * negotiated versions of endpoints that did not change). Frees `from`. */
void eng_take(struct eng *e, struct eng *from);
/* Cancels every call in flight: their callbacks are not called. */
void eng_free(struct eng *e);

size_t eng_count(const struct eng *e);
/* Endpoint i: its host for tcp:// (brackets removed), NULL for a socket. */
const char *eng_tcp_host(const struct eng *e, size_t i);

/* Start a request (path without the /vX.Y prefix; body copied). The
 * callback runs once, later, on the loop. timeout 0: the default. NULL
 * when it cannot start (cb never called). */
struct eng_call *eng_request(struct eng *e, const char *method, const char *path, json_t *body,
                             double timeout, eng_cb cb, void *arg);
void eng_cancel(struct eng_call *c);

/* ---- a driver's operations ---- */

/* One create, remove or list of a driver: the caller's callback runs exactly
 * once, never on the caller's stack. Drivers put it first in their own op
 * struct (malloc'd), so that eng_op_free frees the whole. */
struct eng_op {
	const struct scaler_host *host;
	const char *who;             /* the driver, for the log */
	struct eng_op **head, *next; /* the driver's operations in flight */
	scaler_driver_cb cb;         /* create, remove */
	scaler_driver_list_cb list_cb;
	void *arg;
	struct eng_call *call;           /* the request in flight */
	ev_timer timer;                  /* the driver's own waits */
	struct scaler_deferred *refused; /* a refusal's callback, host->defer'd */
	struct scaler_server srv;
	char err[1024];
};

/* Link op (zeroed by the caller) into *head. */
void eng_op_init(struct eng_op *op, const struct scaler_host *host, const char *who,
                 struct eng_op **head, void *arg);
/* Cancel what is in flight, unlink, free (the callback is not called). */
void eng_op_free(struct eng_op *op);
/* Call back (status 0: srv, or srvs[n] for a list; -1: op->err, logged) and free. */
void eng_op_done(struct eng_op *op, int status, const struct scaler_server *srvs, size_t n);
void eng_op_fail(struct eng_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A create's spec into op->srv (id, zone, created now). When the id or the
 * zone's name is not valid, or need_ports and the zone has no port range,
 * the op is refused (eng_op_refuse) and 1 returned, or -1 when even the
 * refusal cannot be arranged (op is freed: the caller fails the call); else 0. */
int eng_op_spec(struct eng_op *op, const struct scaler_server_spec *spec, int need_ports);
/* Fail later, from the loop (host->defer); returns 1 (refused, the
 * callback comes later), or -1 when even that cannot be arranged (out of
 * memory): op is freed and its callback will not be called. */
int eng_op_refuse(struct eng_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- helpers the drivers share ---- */

/* Percent-encode s for a query string. */
void eng_urlencode(const char *s, char *out, size_t len);
/* GET path with ?filters=<JSON of filters> (a query part already in path is kept). */
struct eng_call *eng_get_filtered(struct eng *e, const char *path, json_t *filters, double timeout,
                                  eng_cb cb, void *arg);
/* 1 when id is a valid server id: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}. */
int eng_id_valid(const char *id);

/* Config: a non-empty string setting (NULL when absent; *bad = 1 after a
 * conf_error when it is not one); an array of strings (need_eq: each
 * "NAME=value"; colon: each "a:b[:c]"), NULL after a conf_error; bytes as
 * 268435456 or "256m" (at least `min`), -1 after a conf_error. */
const char *eng_conf_string(const struct scaler_host *host, const config_setting_t *conf,
                            const char *name, int *bad);
json_t *eng_conf_strings(const struct scaler_host *host, const config_setting_t *s, int need_eq,
                         int colon);
long long eng_conf_bytes(const struct scaler_host *host, const config_setting_t *conf,
                         const char *name, long long min);

#endif
