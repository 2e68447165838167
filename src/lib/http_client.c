#include "config.h"

#include "http_client.h"
#include "log.h"

#include <curl/curl.h>
#include <ev.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HC_MAX_BODY (16u << 20)
#define HC_DEFAULT_TIMEOUT 10.0

struct hc_sock {
	struct http_client *c;
	struct hc_sock *prev, *next;
	curl_socket_t fd;
	ev_io io;
};

struct scaler_http_call {
	struct http_client *c;
	struct scaler_http_call *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	scaler_http_cb cb;
	void *arg;
	char *body;
	size_t body_len, body_cap;
	int too_big;
	int calling_back; /* cancel from inside its own callback is a no-op */
	double start;
	char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	struct scaler_http_call *calls;
	struct hc_sock *socks;
	size_t pending;
	int dispatching; /* completion callbacks on the stack */
	int freeing;     /* http_client_free was called from a callback */
};

static pthread_once_t hc_once = PTHREAD_ONCE_INIT;
static CURLcode hc_global_rc;

static void hc_global_init(void)
{
	hc_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static double hc_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- calls --------------------------------------------------------------- */

static void hc_unlink(struct scaler_http_call *call)
{
	struct http_client *c = call->c;

	if (call->prev)
		call->prev->next = call->next;
	else if (c->calls == call)
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
	c->pending--;
}

static void hc_call_free(struct scaler_http_call *call)
{
	if (call->easy)
		curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	free(call->body);
	free(call);
}

/* Remove from the multi handle and forget, without calling back. */
static void hc_call_drop(struct scaler_http_call *call)
{
	curl_multi_remove_handle(call->c->multi, call->easy);
	hc_unlink(call);
	hc_call_free(call);
}

static void hc_destroy(struct http_client *c)
{
	while (c->calls)
		hc_call_drop(c->calls);
	curl_multi_cleanup(c->multi);
	while (c->socks) {
		struct hc_sock *k = c->socks;
		c->socks = k->next;
		ev_io_stop(c->loop, &k->io);
		free(k);
	}
	ev_timer_stop(c->loop, &c->timer);
	free(c);
}

static size_t hc_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct scaler_http_call *call = userp;
	size_t n = size * nmemb;

	if (call->body_len + n > HC_MAX_BODY) {
		call->too_big = 1;
		return 0; /* curl aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (call->body_len + n + 1 > call->body_cap) {
		size_t cap = call->body_cap ? call->body_cap : 4096;
		while (cap < call->body_len + n + 1)
			cap *= 2;
		char *p = realloc(call->body, cap);
		if (!p)
			return 0;
		call->body = p;
		call->body_cap = cap;
	}
	memcpy(call->body + call->body_len, data, n);
	call->body_len += n;
	call->body[call->body_len] = '\0';
	return n;
}

/* Call back every finished transfer. */
static void hc_check_done(struct http_client *c)
{
	CURLMsg *msg;
	int left;

	c->dispatching++;
	while (!c->freeing && (msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode res = msg->data.result; /* msg is invalid once the handle is removed */
		struct scaler_http_call *call;
		struct scaler_http_response resp;
		char *priv = NULL;
		long status = 0;

		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		call = (struct scaler_http_call *)(void *)priv;
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		curl_multi_remove_handle(c->multi, easy);
		hc_unlink(call);

		memset(&resp, 0, sizeof(resp));
		resp.elapsed = hc_now() - call->start;
		resp.body = call->body ? call->body : "";
		resp.body_len = call->body_len;
		if (res == CURLE_OK && status > 0) {
			resp.status = status;
		} else {
			resp.status = 0;
			if (call->too_big)
				resp.error = "response body larger than 16 MiB";
			else if (res == CURLE_OK)
				resp.error = "no HTTP response received";
			else
				resp.error =
				    call->errbuf[0] ? call->errbuf : curl_easy_strerror(res);
		}
		call->calling_back = 1;
		call->cb(call->arg, &resp);
		hc_call_free(call);
	}
	if (--c->dispatching == 0 && c->freeing)
		hc_destroy(c);
}

/* ---- curl ↔ libev ---------------------------------------------------------- */

static void hc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_client *c = w->data;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	hc_check_done(c);
}

static void hc_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hc_sock *k = w->data;
	struct http_client *c = k->c; /* k may be freed inside socket_action */
	int action = ((revents & EV_READ) ? CURL_CSELECT_IN : 0) |
	             ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(c->multi, k->fd, action, &running);
	hc_check_done(c);
}

static int hc_socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct hc_sock *k = socketp;

	if (what == CURL_POLL_REMOVE) {
		if (k) {
			ev_io_stop(c->loop, &k->io);
			if (k->prev)
				k->prev->next = k->next;
			else
				c->socks = k->next;
			if (k->next)
				k->next->prev = k->prev;
			free(k);
			curl_multi_assign(c->multi, fd, NULL);
		}
		return 0;
	}
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k) {
			log_err("http client: out of memory watching a socket");
			return -1;
		}
		k->c = c;
		k->fd = fd;
		ev_init(&k->io, hc_io_cb);
		k->io.data = k;
		k->next = c->socks;
		if (c->socks)
			c->socks->prev = k;
		c->socks = k;
		curl_multi_assign(c->multi, fd, k);
	}
	int events =
	    ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	ev_io_stop(c->loop, &k->io);
	ev_io_set(&k->io, fd, events);
	if (events)
		ev_io_start(c->loop, &k->io);
	return 0;
}

static int hc_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;

	ev_timer_stop(c->loop, &c->timer);
	if (timeout_ms >= 0) {
		/* fractions of a second stay fractions: 0 would spin the loop */
		ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0.0);
		ev_timer_start(c->loop, &c->timer);
	}
	return 0;
}

/* ---- public ------------------------------------------------------------------- */

struct http_client *http_client_new(struct ev_loop *loop)
{
	struct http_client *c;

	pthread_once(&hc_once, hc_global_init);
	if (hc_global_rc != CURLE_OK) {
		log_err("http client: curl_global_init: %s", curl_easy_strerror(hc_global_rc));
		return NULL;
	}
	if (!loop)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = loop;
	c->multi = curl_multi_init();
	if (!c->multi) {
		log_err("http client: curl_multi_init failed");
		free(c);
		return NULL;
	}
	ev_init(&c->timer, hc_timer_cb);
	c->timer.data = c;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, hc_socket_fn);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, hc_timer_fn);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return c;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	if (c->dispatching) {
		/* called from a completion callback: finish once it returns */
		while (c->calls)
			hc_call_drop(c->calls);
		c->freeing = 1;
		return;
	}
	hc_destroy(c);
}

static int hc_method_ok(const char *m)
{
	if (!*m || strlen(m) > 32)
		return 0;
	for (; *m; m++)
		if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_'))
			return 0;
	return 1;
}

static int hc_has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; headers && headers[i]; i++)
		if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
			return 1;
	return 0;
}

static int hc_append_header(struct scaler_http_call *call, const char *h)
{
	struct curl_slist *l = curl_slist_append(call->headers, h);
	if (!l)
		return -1;
	call->headers = l;
	return 0;
}

struct scaler_http_call *http_client_request(struct http_client *c,
                                             const struct scaler_http_request *req,
                                             scaler_http_cb cb, void *arg)
{
	struct scaler_http_call *call;
	const char *method;
	double timeout;
	CURL *e;
	int rc = 0, has_body;

	if (!c || c->freeing || !req || !cb || !req->url || !*req->url)
		return NULL;
	method = req->method ? req->method : "GET";
	if (!hc_method_ok(method)) {
		log_err("http client: invalid method \"%s\"", method);
		return NULL;
	}
	timeout = req->timeout;
	if (isnan(timeout) || timeout < 0 || timeout > 86400) {
		log_err("http client: invalid timeout %g s for %s", timeout, req->url);
		return NULL;
	}
	if (timeout == 0)
		timeout = HC_DEFAULT_TIMEOUT;
	if (req->body_len && !req->body)
		return NULL;

	call = calloc(1, sizeof(*call));
	if (!call)
		return NULL;
	call->c = c;
	call->cb = cb;
	call->arg = arg;
	call->easy = e = curl_easy_init();
	if (!e) {
		free(call);
		return NULL;
	}

	rc |= curl_easy_setopt(e, CURLOPT_URL, req->url);
	rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, call);
	rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never a proxy from the environment */
#if LIBCURL_VERSION_NUM >= 0x075500
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(timeout * 1000.0));
	rc |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, hc_write_cb);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
	if (req->unix_socket && *req->unix_socket)
		rc |= curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket);
	if (req->ca_cert && *req->ca_cert)
		rc |= curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_cert);
	if (req->client_cert && *req->client_cert)
		rc |= curl_easy_setopt(e, CURLOPT_SSLCERT, req->client_cert);
	if (req->client_key && *req->client_key)
		rc |= curl_easy_setopt(e, CURLOPT_SSLKEY, req->client_key);

	has_body = req->body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	           strcmp(method, "PATCH") == 0;
	if (strcmp(method, "HEAD") == 0) {
		rc |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") == 0 && !has_body) {
		rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		if (has_body) {
			/* copied: the caller's buffer may go away once we return */
			rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
			                       (curl_off_t)req->body_len);
			rc |=
			    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
		}
		rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}

	for (size_t i = 0; req->headers && req->headers[i]; i++)
		rc |= hc_append_header(call, req->headers[i]);
	/* no 100-continue round trip, and no form content type curl would invent */
	if (!hc_has_header(req->headers, "Expect"))
		rc |= hc_append_header(call, "Expect:");
	if (has_body && !hc_has_header(req->headers, "Content-Type"))
		rc |= hc_append_header(call, "Content-Type:");
	rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);

	if (rc != 0) {
		log_err("http client: cannot set up %s %s", method, req->url);
		hc_call_free(call);
		return NULL;
	}
	call->start = hc_now();
	/* adding only arms the timer: the transfer (and the callback) starts on the loop */
	CURLMcode mc = curl_multi_add_handle(c->multi, e);
	if (mc != CURLM_OK) {
		log_err("http client: %s %s: %s", method, req->url, curl_multi_strerror(mc));
		hc_call_free(call);
		return NULL;
	}
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->pending++;
	return call;
}

void http_client_cancel(struct scaler_http_call *call)
{
	if (!call || call->calling_back)
		return;
	hc_call_drop(call);
}

size_t http_client_pending(const struct http_client *c)
{
	return c ? c->pending : 0;
}
