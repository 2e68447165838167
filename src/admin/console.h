/* scalerd's web console (/ui/) and its data calls (/zones, /history,
 * /cluster), served on the admin API. */
#ifndef SCALER_CONSOLE_H
#define SCALER_CONSOLE_H

struct daemon;
struct http_exchange;
struct http_request;
struct http_server;

/* Open the console's static files to readers without a token. */
void console_setup(struct http_server *srv);
/* 1 when the request is the console's (answered now or later), else 0. */
int console_handle(struct daemon *d, struct http_exchange *x, const struct http_request *req);

#endif
