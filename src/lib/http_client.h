/* Asynchronous HTTP client: libcurl multi driven by libev. One client per
 * loop; every request completes through its callback on that loop. */
#ifndef SCALER_HTTP_CLIENT_H
#define SCALER_HTTP_CLIENT_H

#include <scaler/plugin.h> /* struct scaler_http_request / _response / _cb */

struct ev_loop;
struct http_client;

struct http_client *http_client_new(struct ev_loop *loop);
/* Cancels every pending request without calling their callbacks. */
void http_client_free(struct http_client *c);

/* cb is called exactly once (never from inside this call) unless cancelled.
 * NULL on invalid input (no URL). Response bodies are capped at 16 MiB. */
struct scaler_http_call *http_client_request(struct http_client *c,
                                             const struct scaler_http_request *req,
                                             scaler_http_cb cb, void *arg);
void http_client_cancel(struct scaler_http_call *call);

/* Requests in flight. */
size_t http_client_pending(const struct http_client *c);

#endif
