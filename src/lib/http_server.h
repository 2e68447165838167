/* HTTP/1.1 server on libev + http_parser, shared by scalerd's admin API,
 * the balancer's admin API and scaler-app. Not the proxy data path. */
#ifndef SCALER_HTTP_SERVER_H
#define SCALER_HTTP_SERVER_H

#include <stddef.h>
#include <jansson.h>

struct ev_loop;
struct http_server;
struct http_exchange; /* one request awaiting its response */

struct http_server_limits {
	size_t max_header;   /* bytes of request line + headers; over → 431 (default 32 KiB) */
	size_t max_body;     /* bytes of body; over → 413 (default 1 MiB) */
	double read_timeout; /* a started request must arrive within this; → 408 (default 10 s) */
	double idle_timeout; /* keep-alive idle connection closed after (default 60 s) */
	/* 0 = 10000, or half of RLIMIT_NOFILE when that is less. At the limit a
	 * new client closes the oldest connection that never had a request
	 * handled, else the least recently used idle one; only when every
	 * connection has a request in progress does accepting wait. */
	int max_conns;
};

struct http_header {
	const char *name; /* as received */
	const char *value;
};

struct http_request {
	const char *method; /* "GET", "PUT", ... */
	const char *path;   /* decoded path without the query, e.g. "/servers" */
	const char *query;  /* raw query without '?', "" when none */
	const struct http_header *headers;
	size_t nheaders;
	const char *body; /* NUL-terminated for convenience; body_len is the truth */
	size_t body_len;
	const char *peer; /* "127.0.0.1:54321" */
	int peer_is_loopback;
};

/* Called once per complete request. The handler answers with one of the
 * http_reply* calls, now or later (async). A connection has one request in
 * the handler at a time: the next pipelined one is read once it is answered,
 * so one client never costs more than one request's work. The request stays
 * valid until the reply. */
typedef void (*http_handler)(struct http_exchange *x, const struct http_request *req, void *arg);

/* listen is "host:port" (IPv4, [IPv6] or a name); port 0 picks a free one. */
struct http_server *http_server_new(struct ev_loop *loop, const char *listen,
                                    const struct http_server_limits *limits, http_handler handler,
                                    void *arg, char *err, size_t errlen);
/* The same on a socket that is listening already (non-blocking); the
 * server owns fd from then on, unless it returns NULL. */
struct http_server *http_server_adopt(struct ev_loop *loop, int fd,
                                      const struct http_server_limits *limits, http_handler handler,
                                      void *arg, char *err, size_t errlen);
/* The auth rule of every admin listener: with a token (not NULL, not ""),
 * every request but /health_check needs "Authorization: Bearer <token>"
 * (the header only, never a query or a cookie) and gets 401 without it;
 * public_reads lets GET and HEAD through without one. The server keeps a
 * copy; call again to change it. -1 when out of memory (nothing changed). */
int http_server_set_auth(struct http_server *srv, const char *token, int public_reads);
/* Paths that GET and HEAD reach without the token whatever the auth rule
 * (a web console's static files, so the page can load and ask for it):
 * NULL-terminated, an entry ending in '*' is a prefix. The list must
 * outlive the server (static strings). */
void http_server_set_public_paths(struct http_server *srv, const char *const *paths);
/* The bound port (useful with port 0). */
int http_server_port(const struct http_server *srv);
/* Stop listening and close every connection; pending exchanges are dropped. */
void http_server_free(struct http_server *srv);

/* headers: optional NULL-terminated "Name: value" list. */
void http_reply(struct http_exchange *x, int status, const char *content_type, const char *body,
                size_t len, const char *const *headers);
/* Serialises and decrefs `json`. */
void http_reply_json(struct http_exchange *x, int status, json_t *json);
/* {"error": "<message>"} */
void http_reply_error(struct http_exchange *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The request the exchange belongs to (valid until replied). */
const struct http_request *http_exchange_request(const struct http_exchange *x);
/* 0 when the client went away (the reply is then discarded, still call it)
 * or closed its side of the connection: as nginx does by default
 * (proxy_ignore_client_abort off), a client that sent EOF is taken to wait
 * for nothing, so work done only for it can be dropped. */
int http_exchange_alive(const struct http_exchange *x);

const char *http_request_header(const struct http_request *req, const char *name);
/* Value of a query parameter (URL-decoded into buf), NULL when absent. */
const char *http_request_query(const struct http_request *req, const char *name, char *buf,
                               size_t buflen);
/* Parse the body as a JSON value; on failure replies 400 with a JSON error
 * naming the line/column and returns NULL. */
json_t *http_request_json(struct http_exchange *x, const struct http_request *req);
/* 1 when the request carries "Authorization: Bearer <token>" (constant-time
 * compare) or token is NULL/empty; else replies 401 and returns 0. */
int http_require_token(struct http_exchange *x, const struct http_request *req, const char *token);
/* 1 when the request carries "Authorization: Bearer <token>" or token is
 * NULL/empty, else 0; replies nothing. */
int http_request_has_token(const struct http_request *req, const char *token);

const char *http_status_text(int status);

#endif
