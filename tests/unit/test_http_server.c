/* HTTP server behaviour: framing, pipelining, limits, timeouts, JSON and
 * token helpers, and the address helpers in net.c. The server's loop runs
 * in a background thread; the test talks to it with blocking sockets. */
#include "config.h"

#include "http_server.h"
#include "log.h"
#include "net.h"
#include "test_http_util.h"

#include <check.h>
#include <ev.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

static struct ev_loop *ts_loop;
static struct http_server *ts_srv;
static pthread_t ts_thread;
static ev_async ts_stop;
static int ts_port;
static atomic_int ts_replied_late; /* async replies sent after the client left */
static atomic_int ts_handled;
static atomic_int ts_in_handler;     /* async requests not answered yet */
static atomic_int ts_in_handler_max; /* the most there were at once */

struct ts_later {
	ev_timer timer;
	struct http_exchange *x;
	char text[256];
};

static void ts_later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ts_later *l = w->data;

	if (!http_exchange_alive(l->x))
		atomic_fetch_add(&ts_replied_late, 1);
	atomic_fetch_sub(&ts_in_handler, 1);
	http_reply(l->x, 200, "text/plain", l->text, strlen(l->text), NULL);
	free(l);
}

static void ts_handler(struct http_exchange *x, const struct http_request *req, void *arg)
{
	char buf[256];

	atomic_fetch_add(&ts_handled, 1);
	if (strcmp(req->path, "/async") == 0) {
		/* answered later from a timer: /async?delay=0.2&text=a */
		struct ts_later *l = calloc(1, sizeof(*l));
		double delay = atof(http_request_query(req, "delay", buf, sizeof(buf)) ?: "0.2");
		snprintf(l->text, sizeof(l->text), "%s",
		         http_request_query(req, "text", buf, sizeof(buf)) ?: "async");
		l->x = x;
		int now = atomic_fetch_add(&ts_in_handler, 1) + 1;
		if (now > atomic_load(&ts_in_handler_max))
			atomic_store(&ts_in_handler_max, now);
		ev_timer_init(&l->timer, ts_later_cb, delay, 0);
		l->timer.data = l;
		ev_timer_start(ts_loop, &l->timer);
		return;
	}
	if (strncmp(req->path, "/sync/", 6) == 0) {
		http_reply(x, 200, "text/plain", req->path + 6, strlen(req->path + 6), NULL);
		return;
	}
	if (strcmp(req->path, "/echo") == 0) {
		const char *hdrs[] = {"X-Method: ", NULL};
		char mh[64];
		snprintf(mh, sizeof(mh), "X-Method: %s", req->method);
		hdrs[0] = mh;
		if (strlen(req->body) != req->body_len || req->body[req->body_len] != '\0') {
			http_reply_error(x, 500, "body not NUL-terminated");
			return;
		}
		http_reply(x, 200, "application/octet-stream", req->body, req->body_len, hdrs);
		return;
	}
	if (strcmp(req->path, "/json") == 0) {
		json_t *j = http_request_json(x, req);
		if (j)
			http_reply_json(x, 200, json_pack("{s:o}", "got", j));
		return;
	}
	if (strcmp(req->path, "/secure") == 0) {
		if (http_require_token(x, req, "s3cret-token"))
			http_reply(x, 200, "text/plain", "welcome", 7, NULL);
		return;
	}
	if (strcmp(req->path, "/query") == 0) {
		const char *v = http_request_query(req, "name", buf, sizeof(buf));
		if (!v)
			http_reply_error(x, 404, "no name");
		else
			http_reply(x, 200, "text/plain", v, strlen(v), NULL);
		return;
	}
	if (strcmp(req->path, "/header") == 0) {
		const char *v = http_request_header(req, "x-test");
		snprintf(buf, sizeof(buf), "[%s] peer_is_loopback=%d", v ? v : "(none)",
		         req->peer_is_loopback);
		http_reply(x, 200, "text/plain", buf, strlen(buf), NULL);
		return;
	}
	if (strncmp(req->path, "/err/", 5) == 0) {
		http_reply_error(x, 404, "no such endpoint: %s", req->path);
		return;
	}
	if (strcmp(req->path, "/nocontent") == 0) {
		http_reply(x, 204, NULL, NULL, 0, NULL);
		return;
	}
	/* the decoded path, for the decoding test */
	snprintf(buf, sizeof(buf), "path=%s query=%s", req->path, req->query);
	http_reply(x, 404, "text/plain", buf, strlen(buf), NULL);
}

static void ts_stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void *ts_run(void *arg)
{
	ev_run(ts_loop, 0);
	return NULL;
}

/* token: the auth rule's token (NULL: none) */
static void ts_start_auth(const struct http_server_limits *lim, const char *token, int public_reads)
{
	char err[256] = "";

	log_setup("test_http_server", SCALER_LOG_WARNING, 0);
	atomic_store(&ts_replied_late, 0);
	atomic_store(&ts_handled, 0);
	atomic_store(&ts_in_handler, 0);
	atomic_store(&ts_in_handler_max, 0);
	ts_loop = ev_loop_new(EVFLAG_AUTO);
	ts_srv = http_server_new(ts_loop, "127.0.0.1:0", lim, ts_handler, NULL, err, sizeof(err));
	ck_assert_msg(ts_srv != NULL, "expected the server to listen on 127.0.0.1:0, got: %s", err);
	ck_assert(http_server_set_auth(ts_srv, token, public_reads) == 0);
	if (token) {
		static const char *const open_paths[] = {"/pub", "/open/*", NULL};
		http_server_set_public_paths(ts_srv, open_paths);
	}
	ts_port = http_server_port(ts_srv);
	ck_assert_msg(ts_port > 0, "expected a bound port, got %d", ts_port);
	ev_async_init(&ts_stop, ts_stop_cb);
	ev_async_start(ts_loop, &ts_stop);
	ck_assert(pthread_create(&ts_thread, NULL, ts_run, NULL) == 0);
}

static void ts_start(const struct http_server_limits *lim)
{
	ts_start_auth(lim, NULL, 0);
}

static void setup_default(void)
{
	struct http_server_limits lim = {.read_timeout = 0.3, .idle_timeout = 5};
	ts_start(&lim);
}

static void teardown(void)
{
	ev_async_send(ts_loop, &ts_stop);
	pthread_join(ts_thread, NULL);
	http_server_free(ts_srv);
	ev_async_stop(ts_loop, &ts_stop);
	ev_loop_destroy(ts_loop);
	ts_srv = NULL;
	ts_loop = NULL;
}

/* send a request and read its response on a fresh connection */
static void ts_exchange(const char *request, struct tu_resp *r)
{
	struct tu_conn *c = malloc(sizeof(*c));
	tu_connect(c, ts_port);
	tu_send_str(c, request);
	tu_read_response(c, r);
	tu_close(c);
	free(c);
}

static void ts_expect_error(const struct tu_resp *r, int status, const char *needle)
{
	char v[128];
	json_error_t jerr;
	json_t *j;

	ck_assert_msg(r->status == status, "expected status %d, got %d (body %s)", status,
	              r->status, r->body);
	ck_assert_msg(tu_header(r, "Content-Type", v, sizeof(v)) &&
	                  strcmp(v, "application/json") == 0,
	              "expected a JSON error body, got head:\n%s", r->head);
	j = json_loads(r->body, 0, &jerr);
	ck_assert_msg(j && json_is_string(json_object_get(j, "error")),
	              "expected {\"error\": \"...\"}, got %s", r->body);
	ck_assert_msg(strstr(json_string_value(json_object_get(j, "error")), needle),
	              "expected the error to mention \"%s\", got %s", needle, r->body);
	json_decref(j);
}

/* ---- pipelining and keep-alive ------------------------------------------ */

START_TEST(pipelined_requests_are_answered_in_request_order)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	const char *want[] = {"first-async", "2", "3", "fourth-async", "5"};

	tu_connect(c, ts_port);
	/* one write: an async reply that completes after the later sync ones */
	tu_send_str(c, "GET /async?delay=0.3&text=first-async HTTP/1.1\r\nHost: t\r\n\r\n"
	               "GET /sync/2 HTTP/1.1\r\nHost: t\r\n\r\n"
	               "GET /sync/3 HTTP/1.1\r\nHost: t\r\n\r\n"
	               "GET /async?delay=0.05&text=fourth-async HTTP/1.1\r\nHost: t\r\n\r\n"
	               "GET /sync/5 HTTP/1.1\r\nHost: t\r\n\r\n");
	for (int i = 0; i < 5; i++) {
		tu_read_response(c, &r);
		ck_assert_msg(r.status == 200 && strcmp(r.body, want[i]) == 0,
		              "response %d: expected 200 \"%s\", got %d \"%s\"", i + 1, want[i],
		              r.status, r.body);
		tu_resp_free(&r);
	}
	tu_close(c);
	free(c);
}
END_TEST

START_TEST(deep_pipeline_of_300_requests_is_answered_in_order)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	size_t cap = 300 * 64, len = 0;
	char *all = malloc(cap);

	for (int i = 0; i < 300; i++)
		len +=
		    (size_t)snprintf(all + len, cap - len,
		                     i % 50 == 0 ? "GET /async?delay=0.01&text=%d HTTP/1.1\r\n\r\n"
		                                 : "GET /sync/%d HTTP/1.1\r\n\r\n",
		                     i);
	tu_connect(c, ts_port);
	tu_send(c, all, len);
	for (int i = 0; i < 300; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		tu_read_response(c, &r);
		ck_assert_msg(r.status == 200 && strcmp(r.body, want) == 0,
		              "response %d: expected 200 \"%s\", got %d \"%s\"", i, want, r.status,
		              r.body);
		tu_resp_free(&r);
	}
	tu_close(c);
	free(all);
	free(c);
}
END_TEST

START_TEST(client_that_half_closes_still_gets_its_answers)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;

	tu_connect(c, ts_port);
	tu_send_str(c,
	            "GET /async?delay=0.1&text=one HTTP/1.1\r\n\r\nGET /sync/two HTTP/1.1\r\n\r\n");
	shutdown(c->fd, SHUT_WR);
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "one") == 0, "expected one, got %d %s",
	              r.status, r.body);
	tu_resp_free(&r);
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "two") == 0, "expected two, got %d %s",
	              r.status, r.body);
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(c, 10), "expected the server to close once answered");
	tu_close(c);
	free(c);
}
END_TEST

START_TEST(keep_alive_connection_is_reused)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	char v[64];

	tu_connect(c, ts_port);
	for (int i = 0; i < 3; i++) {
		char req[128], want[16];
		snprintf(req, sizeof(req), "GET /sync/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
		snprintf(want, sizeof(want), "%d", i);
		tu_send_str(c, req);
		tu_read_response(c, &r);
		ck_assert_msg(
		    r.status == 200 && strcmp(r.body, want) == 0,
		    "request %d on the same connection: expected 200 \"%s\", got %d \"%s\"", i,
		    want, r.status, r.body);
		ck_assert_msg(tu_header(&r, "Connection", v, sizeof(v)) &&
		                  strcasecmp(v, "keep-alive") == 0,
		              "expected Connection: keep-alive, got head:\n%s", r.head);
		tu_resp_free(&r);
	}
	/* HTTP/1.0 asking for keep-alive keeps the connection too */
	tu_send_str(c, "GET /sync/ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 200 && tu_header(&r, "Connection", v, sizeof(v)) &&
	                  strcasecmp(v, "keep-alive") == 0,
	              "expected HTTP/1.0 keep-alive to be honoured, got:\n%s", r.head);
	tu_resp_free(&r);
	/* Connection: close ends it after the response */
	tu_send_str(c, "GET /sync/last HTTP/1.1\r\nConnection: close\r\n\r\n");
	tu_read_response(c, &r);
	ck_assert_msg(tu_header(&r, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0,
	              "expected Connection: close, got head:\n%s", r.head);
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(c, 5), "expected the server to close after Connection: close");
	tu_close(c);
	free(c);
}
END_TEST

START_TEST(http10_without_keep_alive_is_closed)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	char v[64];

	tu_connect(c, ts_port);
	tu_send_str(c, "GET /sync/old HTTP/1.0\r\n\r\n");
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "old") == 0, "expected 200 old, got %d %s",
	              r.status, r.body);
	ck_assert_msg(tu_header(&r, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0,
	              "expected Connection: close for HTTP/1.0, got head:\n%s", r.head);
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(c, 5), "expected EOF after an HTTP/1.0 response");
	tu_close(c);
	free(c);
}
END_TEST

START_TEST(idle_keep_alive_connection_is_closed_after_idle_timeout)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	double t0;

	tu_connect(c, ts_port);
	tu_send_str(c, "GET /sync/x HTTP/1.1\r\nHost: t\r\n\r\n");
	tu_read_response(c, &r);
	tu_resp_free(&r);
	t0 = tu_now();
	ck_assert_msg(tu_wait_eof(c, 10), "expected the idle connection to be closed");
	ck_assert_msg(tu_now() - t0 >= 0.25, "expected the close after about 0.4 s, got %.3f s",
	              tu_now() - t0);
	tu_close(c);
	free(c);
}
END_TEST

static void setup_short_idle(void)
{
	struct http_server_limits lim = {.read_timeout = 5, .idle_timeout = 0.4};
	ts_start(&lim);
}

/* ---- bodies ---------------------------------------------------------------- */

START_TEST(body_is_delivered_nul_terminated_and_chunked_bodies_are_joined)
{
	struct tu_resp r;
	char v[64];

	ts_exchange("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world", &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "hello world") == 0,
	              "expected the body echoed, got %d \"%s\"", r.status, r.body);
	ck_assert_msg(tu_header(&r, "X-Method", v, sizeof(v)) && strcmp(v, "PUT") == 0,
	              "expected X-Method: PUT, got head:\n%s", r.head);
	tu_resp_free(&r);

	ts_exchange("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
	            "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
	            &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "hello world") == 0,
	              "expected the chunked body joined, got %d \"%s\"", r.status, r.body);
	tu_resp_free(&r);
}
END_TEST

START_TEST(body_over_1mib_is_refused_with_413)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	size_t big = (1 << 20) + 512;
	char *chunk = malloc(big);
	char head[256];

	memset(chunk, 'a', big);
	/* declared up front: refused before the body arrives */
	tu_connect(c, ts_port);
	snprintf(head, sizeof(head), "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
	         big);
	tu_send_str(c, head);
	tu_send(c, chunk, 4096);
	tu_read_response(c, &r);
	ts_expect_error(&r, 413, "larger than 1048576");
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(c, 10), "expected the connection closed after 413");
	tu_close(c);

	/* chunked: refused once the accumulated body passes the limit */
	tu_connect(c, ts_port);
	tu_send_str(c, "PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
	snprintf(head, sizeof(head), "%zx\r\n", big);
	tu_send_str(c, head);
	tu_send(c, chunk, big); /* the server discards what it refused */
	tu_send(c, "\r\n0\r\n\r\n", 7);
	tu_read_response(c, &r);
	ts_expect_error(&r, 413, "larger than 1048576");
	tu_resp_free(&r);
	tu_close(c);
	free(chunk);
	free(c);
}
END_TEST

START_TEST(header_of_64kib_is_refused_with_431)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	size_t big = 64 * 1024;
	static const char prefix[] = "GET /sync/x HTTP/1.1\r\nHost: t\r\nX-Big: ";
	size_t n = sizeof(prefix) - 1;
	char *req = malloc(n + big + 8);

	ck_assert(req != NULL);
	memcpy(req, prefix, n);
	memset(req + n, 'h', big);
	strcpy(req + n + big, "\r\n\r\n");
	tu_connect(c, ts_port);
	tu_send(c, req, strlen(req));
	tu_read_response(c, &r);
	ts_expect_error(&r, 431, "headers larger than 32768");
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(c, 10), "expected the connection closed after 431");
	tu_close(c);
	free(req);
	free(c);
}
END_TEST

/* ---- timeouts ---------------------------------------------------------------- */

START_TEST(slow_client_gets_408_within_read_timeout)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	double t0, dt;

	tu_connect(c, ts_port);
	t0 = tu_now();
	tu_send_str(c, "GET /sync/slow HTTP/1.1\r\nHost: t\r\n"); /* half a request */
	tu_read_response(c, &r);
	dt = tu_now() - t0;
	ts_expect_error(&r, 408, "not received within 0.3 s");
	ck_assert_msg(dt >= 0.25 && dt < 3.0,
	              "expected the 408 about 0.3 s after the request started, got %.3f s", dt);
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(c, 10), "expected the connection closed after 408");
	tu_close(c);
	free(c);
}
END_TEST

/* ---- malformed and ambiguous requests ----------------------------------------- */

START_TEST(content_length_with_transfer_encoding_is_refused_with_400)
{
	struct tu_resp r;

	ts_exchange("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
	            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	            &r);
	ck_assert_msg(r.status == 400,
	              "expected 400 for Content-Length + Transfer-Encoding, got %d", r.status);
	tu_resp_free(&r);

	ts_exchange(
	    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
	    "hello!",
	    &r);
	ck_assert_msg(r.status == 400, "expected 400 for differing Content-Length headers, got %d",
	              r.status);
	tu_resp_free(&r);
}
END_TEST

START_TEST(malformed_request_is_refused_with_400_and_closed)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;

	tu_connect(c, ts_port);
	tu_send_str(c, "GARBAGE\x01 / HTTP/1.1\r\n\r\n");
	tu_read_response(c, &r);
	ts_expect_error(&r, 400, "malformed request");
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(c, 10), "expected the connection closed after 400");
	tu_close(c);
	free(c);

	ts_exchange("GET /bad%zzpath HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	ts_expect_error(&r, 400, "percent-encoding");
	tu_resp_free(&r);
	ts_exchange("GET /nul%00byte HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	ck_assert_msg(r.status == 400, "expected 400 for an encoded NUL in the path, got %d",
	              r.status);
	tu_resp_free(&r);
}
END_TEST

/* ---- helpers: JSON, token, query, headers ------------------------------------ */

START_TEST(invalid_json_gets_400_with_json_error)
{
	struct tu_resp r;

	ts_exchange("PUT /json HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\n\r\n{\"a\": 1,\n  ]}",
	            &r);
	ts_expect_error(&r, 400, "invalid JSON at line 2 column");
	tu_resp_free(&r);

	ts_exchange("PUT /json HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n{\"a\":[]}", &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "{\"got\":{\"a\":[]}}") == 0,
	              "expected valid JSON to pass, got %d %s", r.status, r.body);
	tu_resp_free(&r);
}
END_TEST

START_TEST(token_is_required_when_configured)
{
	struct tu_resp r;
	char v[128];

	ts_exchange("PUT /secure HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
	ts_expect_error(&r, 401, "authorization required");
	ck_assert_msg(tu_header(&r, "WWW-Authenticate", v, sizeof(v)) &&
	                  strncmp(v, "Bearer", 6) == 0,
	              "expected WWW-Authenticate: Bearer, got head:\n%s", r.head);
	tu_resp_free(&r);

	ts_exchange("PUT /secure HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret-tokex\r\n"
	            "Content-Length: 0\r\n\r\n",
	            &r);
	ts_expect_error(&r, 401, "invalid bearer token");
	ck_assert_msg(tu_header(&r, "WWW-Authenticate", v, sizeof(v)) &&
	                  strncmp(v, "Bearer", 6) == 0,
	              "expected WWW-Authenticate: Bearer, got head:\n%s", r.head);
	tu_resp_free(&r);

	ts_exchange(
	    "PUT /secure HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret-token-longer\r\n"
	    "Content-Length: 0\r\n\r\n",
	    &r);
	ck_assert_msg(r.status == 401, "expected 401 for a token with a valid prefix, got %d",
	              r.status);
	tu_resp_free(&r);

	ts_exchange("PUT /secure HTTP/1.1\r\nHost: t\r\nAuthorization: Basic czNjcmV0LXRva2Vu\r\n"
	            "Content-Length: 0\r\n\r\n",
	            &r);
	ck_assert_msg(r.status == 401, "expected 401 for Basic auth, got %d", r.status);
	tu_resp_free(&r);

	ts_exchange("PUT /secure HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret-token\r\n"
	            "Content-Length: 0\r\n\r\n",
	            &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "welcome") == 0,
	              "expected 200 welcome with the right token, got %d %s", r.status, r.body);
	tu_resp_free(&r);
}
END_TEST

START_TEST(query_and_path_are_url_decoded)
{
	struct tu_resp r;

	ts_exchange("GET /query?x=1&name=a%20b+c%2Fd&y HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "a b c/d") == 0,
	              "expected name decoded to \"a b c/d\", got %d \"%s\"", r.status, r.body);
	tu_resp_free(&r);

	ts_exchange("GET /query?other=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	ck_assert_msg(r.status == 404, "expected an absent parameter to be NULL (404), got %d",
	              r.status);
	tu_resp_free(&r);

	ts_exchange("GET /a%20dir/x?k=v%20w HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	ck_assert_msg(strcmp(r.body, "path=/a dir/x query=k=v%20w") == 0,
	              "expected decoded path and raw query, got \"%s\"", r.body);
	tu_resp_free(&r);
}
END_TEST

START_TEST(headers_are_case_insensitive_and_peer_is_loopback)
{
	struct tu_resp r;

	ts_exchange("GET /header HTTP/1.1\r\nHost: t\r\nX-TEST:   spaced value  \r\n\r\n", &r);
	ck_assert_msg(strcmp(r.body, "[spaced value] peer_is_loopback=1") == 0,
	              "expected the trimmed header and a loopback peer, got \"%s\"", r.body);
	tu_resp_free(&r);
}
END_TEST

START_TEST(head_gets_no_body_and_204_has_no_length)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	char v[64];

	tu_connect(c, ts_port);
	tu_send_str(c, "HEAD /sync/abc HTTP/1.1\r\nHost: t\r\n\r\nGET /nocontent HTTP/1.1\r\n"
	               "Host: t\r\n\r\nGET /sync/after HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert(tu_read_response_ex(c, &r, 1) == 0);
	ck_assert_msg(r.status == 200 && tu_header(&r, "Content-Length", v, sizeof(v)) &&
	                  strcmp(v, "3") == 0,
	              "expected HEAD to report Content-Length: 3, got:\n%s", r.head);
	tu_resp_free(&r);
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 204 && !tu_header(&r, "Content-Length", v, sizeof(v)),
	              "expected 204 without Content-Length, got:\n%s", r.head);
	tu_resp_free(&r);
	/* the next response starts right after: no stray body bytes */
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "after") == 0,
	              "expected 200 after, got %d \"%s\"", r.status, r.body);
	tu_resp_free(&r);
	tu_close(c);
	free(c);
}
END_TEST

START_TEST(expect_100_continue_is_answered)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;

	tu_connect(c, ts_port);
	tu_send_str(c, "PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
	               "Content-Length: 4\r\n\r\n");
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 100, "expected 100 Continue before the body, got %d", r.status);
	tu_resp_free(&r);
	tu_send_str(c, "data");
	tu_read_response(c, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "data") == 0,
	              "expected 200 data, got %d %s", r.status, r.body);
	tu_resp_free(&r);
	tu_close(c);
	free(c);
}
END_TEST

START_TEST(reply_after_the_client_left_is_discarded)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;

	tu_connect(c, ts_port);
	tu_send_str(c, "GET /async?delay=0.3 HTTP/1.1\r\nHost: t\r\n\r\n");
	/* wait until the handler has the request, then leave */
	for (double until = tu_now() + 10; atomic_load(&ts_handled) < 1 && tu_now() < until;)
		usleep(5000);
	ck_assert_msg(atomic_load(&ts_handled) == 1, "expected the request to reach the handler");
	struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* leave with a reset */
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	tu_close(c);
	for (double until = tu_now() + 10; atomic_load(&ts_replied_late) < 1 && tu_now() < until;)
		usleep(5000);
	ck_assert_msg(atomic_load(&ts_replied_late) == 1,
	              "expected the late reply to find the exchange dead");
	/* the server still serves others */
	ts_exchange("GET /sync/alive HTTP/1.1\r\nHost: t\r\n\r\n", &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "alive") == 0, "expected 200 alive, got %d",
	              r.status);
	tu_resp_free(&r);
	free(c);
}
END_TEST

START_TEST(a_request_in_progress_is_never_closed_for_a_new_client)
{
	struct tu_conn *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct tu_resp r;
	struct pollfd p;

	tu_connect(a, ts_port);
	tu_send_str(a, "GET /async?delay=0.6&text=a HTTP/1.1\r\nHost: t\r\n\r\n");
	for (double until = tu_now() + 10; atomic_load(&ts_handled) < 1 && tu_now() < until;)
		usleep(5000);
	tu_connect(b, ts_port); /* sits in the backlog while a's request runs */
	tu_send_str(b, "GET /sync/b HTTP/1.1\r\nHost: t\r\n\r\n");
	p.fd = b->fd;
	p.events = POLLIN;
	ck_assert_msg(poll(&p, 1, 300) == 0,
	              "expected no answer to b while a's request is in progress at max_conns = 1");
	tu_read_response(a, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "a") == 0,
	              "expected a's request answered, not cut off for b; got %d %s", r.status,
	              r.body);
	tu_resp_free(&r);
	/* a is idle now: b takes its place */
	tu_read_response(b, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "b") == 0,
	              "expected b served once a was idle, got %d", r.status);
	tu_resp_free(&r);
	ck_assert_msg(tu_wait_eof(a, 5), "expected the idle a closed to make room for b");
	tu_close(a);
	tu_close(b);
	free(a);
	free(b);
}
END_TEST

static void setup_one_conn(void)
{
	struct http_server_limits lim = {.max_conns = 1};
	ts_start(&lim);
}

START_TEST(at_max_conns_a_new_client_closes_the_oldest_that_never_sent_a_request)
{
	enum { N = 8 };
	struct tu_conn *used = malloc(sizeof(*used)), *idle = calloc(N, sizeof(*idle));
	struct tu_conn *late = calloc(2, sizeof(*late));
	struct tu_resp r;

	/* a keep-alive client that was served, then idle ones up to the limit */
	tu_connect(used, ts_port);
	tu_send_str(used, "GET /sync/used HTTP/1.1\r\nHost: t\r\n\r\n");
	tu_read_response(used, &r);
	tu_resp_free(&r);
	for (int i = 0; i < N - 1; i++) {
		tu_connect(&idle[i], ts_port);
		usleep(2000); /* accepted in this order */
	}
	/* two newcomers are served: the two oldest idle clients make room */
	for (int k = 0; k < 2; k++) {
		tu_connect(&late[k], ts_port);
		tu_send_str(&late[k], "GET /sync/late HTTP/1.1\r\nHost: t\r\n\r\n");
		tu_read_response(&late[k], &r);
		ck_assert_msg(r.status == 200 && strcmp(r.body, "late") == 0,
		              "expected newcomer %d answered at max_conns, got %d", k + 1,
		              r.status);
		tu_resp_free(&r);
		ck_assert_msg(tu_wait_eof(&idle[k], 5),
		              "expected the idle client accepted %s closed for newcomer %d",
		              k ? "second" : "first", k + 1);
	}
	for (int i = 2; i < N - 1; i++) {
		struct pollfd p = {.fd = idle[i].fd, .events = POLLIN};
		ck_assert_msg(poll(&p, 1, 0) == 0,
		              "expected idle client %d (accepted after the closed ones) still open",
		              i);
	}
	tu_send_str(used, "GET /sync/again HTTP/1.1\r\nHost: t\r\n\r\n");
	tu_read_response(used, &r);
	ck_assert_msg(r.status == 200 && strcmp(r.body, "again") == 0,
	              "expected the client that was served kept before those that never asked, got "
	              "%d",
	              r.status);
	tu_resp_free(&r);
	tu_close(used);
	for (int i = 0; i < N - 1; i++)
		tu_close(&idle[i]);
	tu_close(&late[0]);
	tu_close(&late[1]);
	free(used);
	free(idle);
	free(late);
}
END_TEST

static void setup_eight_conns(void)
{
	struct http_server_limits lim = {.max_conns = 8};
	ts_start(&lim);
}

/* ---- one request per connection in the handler ---------------------------- */

START_TEST(pipelined_requests_reach_the_handler_one_at_a_time)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;
	char all[64 * 64];
	size_t len = 0;

	for (int i = 0; i < 64; i++)
		len += (size_t)snprintf(all + len, sizeof(all) - len,
		                        "GET /async?delay=0.01&text=%d HTTP/1.1\r\n\r\n", i);
	tu_connect(c, ts_port);
	tu_send(c, all, len);
	for (int i = 0; i < 64; i++) {
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		tu_read_response(c, &r);
		ck_assert_msg(r.status == 200 && strcmp(r.body, want) == 0,
		              "response %d: expected 200 \"%s\", got %d \"%s\"", i, want, r.status,
		              r.body);
		tu_resp_free(&r);
	}
	ck_assert_msg(atomic_load(&ts_in_handler_max) == 1,
	              "expected one request of the connection in the handler at a time, saw %d",
	              atomic_load(&ts_in_handler_max));
	tu_close(c);
	free(c);
}
END_TEST

/* ---- text that is not UTF-8 ------------------------------------------------- */

START_TEST(paths_that_are_not_utf8_get_404_and_no_error_log)
{
	static const struct {
		const char *path, *want;
	} cases[] = {
	    {"/err/%C0%80", "/err/??"},                       /* overlong NUL */
	    {"/err/%C1%BF", "/err/??"},                       /* overlong 2-byte */
	    {"/err/%E0%80%80", "/err/???"},                   /* overlong 3-byte */
	    {"/err/%F0%80%80%80", "/err/????"},               /* overlong 4-byte */
	    {"/err/%ED%A0%80", "/err/???"},                   /* a surrogate */
	    {"/err/%F4%90%80%80", "/err/????"},               /* above U+10FFFF */
	    {"/err/%FF%FE", "/err/??"},                       /* never in UTF-8 */
	    {"/err/%E2%82", "/err/??"},                       /* cut short */
	    {"/err/%C3%A9t%C3%A9", "/err/\xc3\xa9t\xc3\xa9"}, /* valid stays */
	    {"/err/%F0%9F%98%80", "/err/\xf0\x9f\x98\x80"},
	};
	char logpath[] = "/tmp/test_http_server_log.XXXXXX";
	int logfd = mkstemp(logpath);
	int saved = dup(2);

	ck_assert(logfd >= 0 && saved >= 0);
	unlink(logpath);
	dup2(logfd, 2);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tu_resp r;
		char req[256], want[128];
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", cases[i].path);
		snprintf(want, sizeof(want), "no such endpoint: %s", cases[i].want);
		ts_exchange(req, &r);
		dup2(saved, 2);
		ts_expect_error(&r, 404, want);
		dup2(logfd, 2);
		tu_resp_free(&r);
	}
	dup2(saved, 2);
	char logged[4096] = "";
	ssize_t n = pread(logfd, logged, sizeof(logged) - 1, 0);
	logged[n > 0 ? n : 0] = '\0';
	close(logfd);
	close(saved);
	ck_assert_msg(n <= 0, "expected nothing logged for paths that are not UTF-8, got:\n%s",
	              logged);
}
END_TEST

/* ---- the auth rule ------------------------------------------------------------ */

static int ts_status(const char *request)
{
	struct tu_conn *c = malloc(sizeof(*c));
	struct tu_resp r;

	tu_connect(c, ts_port);
	tu_send_str(c, request);
	ck_assert_msg(tu_read_response_ex(c, &r, strncmp(request, "HEAD ", 5) == 0) == 0,
	              "expected a response to %.40s", request);
	tu_close(c);
	free(c);
	int st = r.status;
	tu_resp_free(&r);
	return st;
}

#define TS_TOKEN "Authorization: Bearer s3cret-token\r\n"

START_TEST(with_a_token_everything_but_health_check_needs_it)
{
	static const char *const open_reqs[] = {
	    "GET /health_check HTTP/1.1\r\nHost: t\r\n\r\n",
	    "HEAD /health_check HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	static const char *const closed_reqs[] = {
	    "GET /sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	    "HEAD /sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n",
	    "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	    "DELETE /sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	    /* the header only: never a query parameter or a cookie */
	    "GET /sync/x?access_token=s3cret-token HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /sync/x HTTP/1.1\r\nHost: t\r\nCookie: token=s3cret-token\r\n\r\n",
	    "GET /sync/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\n\r\n",
	    "GET /health_check/../sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(open_reqs) / sizeof(open_reqs[0]); i++)
		ck_assert_msg(ts_status(open_reqs[i]) != 401, "expected no token needed for %.30s",
		              open_reqs[i]);
	for (size_t i = 0; i < sizeof(closed_reqs) / sizeof(closed_reqs[0]); i++) {
		int st = ts_status(closed_reqs[i]);
		ck_assert_msg(st == 401, "expected 401 without the token for %.60s, got %d",
		              closed_reqs[i], st);
	}
	ck_assert_int_eq(atomic_load(&ts_handled), 2);
	int st = ts_status("GET /sync/x HTTP/1.1\r\nHost: t\r\n" TS_TOKEN "\r\n");
	ck_assert_msg(st == 200, "expected 200 for GET with the token, got %d", st);
	st = ts_status("PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n" TS_TOKEN "\r\n");
	ck_assert_msg(st == 200, "expected 200 for PUT with the token, got %d", st);
}
END_TEST

/* A console's static files: GET and HEAD of the public paths only. */
START_TEST(public_paths_are_open_to_reads_only)
{
	static const char *const open_reqs[] = {
	    "GET /pub HTTP/1.1\r\nHost: t\r\n\r\n",
	    "HEAD /pub HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /open/ HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /open/app.js HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	static const char *const closed_reqs[] = {
	    "GET /pub/x HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /public HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /open HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /opened HTTP/1.1\r\nHost: t\r\n\r\n",
	    "POST /pub HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	    "PUT /open/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(open_reqs) / sizeof(open_reqs[0]); i++)
		ck_assert_msg(ts_status(open_reqs[i]) != 401, "expected no token needed for %.30s",
		              open_reqs[i]);
	for (size_t i = 0; i < sizeof(closed_reqs) / sizeof(closed_reqs[0]); i++) {
		int st = ts_status(closed_reqs[i]);
		ck_assert_msg(st == 401, "expected 401 without the token for %.60s, got %d",
		              closed_reqs[i], st);
	}
}
END_TEST

START_TEST(public_reads_open_get_and_head_but_not_writes)
{
	static const char *const reads[] = {
	    "GET /sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	    "HEAD /sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	    "GET /health_check HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	static const char *const writes[] = {
	    "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	    "DELETE /sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	    "OPTIONS /sync/x HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		int st = ts_status(reads[i]);
		ck_assert_msg(st != 401, "expected %.30s open with public_reads, got %d", reads[i],
		              st);
	}
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		int st = ts_status(writes[i]);
		ck_assert_msg(st == 401, "expected 401 for %.30s without the token, got %d",
		              writes[i], st);
	}
	int st =
	    ts_status("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n" TS_TOKEN "\r\n");
	ck_assert_msg(st == 200, "expected 200 for POST with the token, got %d", st);
}
END_TEST

static void setup_token(void)
{
	struct http_server_limits lim = {.read_timeout = 0.3, .idle_timeout = 5};
	ts_start_auth(&lim, "s3cret-token", 0);
}

static void setup_token_public_reads(void)
{
	struct http_server_limits lim = {.read_timeout = 0.3, .idle_timeout = 5};
	ts_start_auth(&lim, "s3cret-token", 1);
}

/* ---- server creation and net.c ------------------------------------------------- */

START_TEST(bad_listen_address_is_a_clear_error)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *bad[] = {"127.0.0.1", "127.0.0.1:99999", "::1:80", "127.0.0.1:-1",
	                     "host:port", "[::1]80",         ""};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		struct http_server *s =
		    http_server_new(loop, bad[i], NULL, ts_handler, NULL, err, sizeof(err));
		ck_assert_msg(s == NULL, "expected \"%s\" to be refused", bad[i]);
		ck_assert_msg(strstr(err, "invalid listen address"),
		              "expected an error naming the bad address for \"%s\", got \"%s\"",
		              bad[i], err);
	}
	struct http_server *s =
	    http_server_new(loop, "[::1]:0", NULL, ts_handler, NULL, err, sizeof(err));
	if (s) { /* IPv6 may be disabled in the sandbox */
		ck_assert_int_gt(http_server_port(s), 0);
		http_server_free(s);
	}
	ev_loop_destroy(loop);
}
END_TEST

START_TEST(net_parse_hostport_accepts_host_port_and_bracketed_v6)
{
	static const struct {
		const char *in;
		int flags;
		int rc;
		const char *host;
		int port;
	} cases[] = {
	    {"127.0.0.1:8080", 0, 0, "127.0.0.1", 8080},
	    {"localhost:1", 0, 0, "localhost", 1},
	    {"[::1]:65535", 0, 0, "::1", 65535},
	    {"*:80", 0, 0, "", 80},
	    {"0.0.0.0:0", NET_PORT_ZERO_OK, 0, "0.0.0.0", 0},
	    {"0.0.0.0:0", 0, -1, NULL, 0},
	    {"127.0.0.1:65536", 0, -1, NULL, 0},
	    {"127.0.0.1:", 0, -1, NULL, 0},
	    {"127.0.0.1", 0, -1, NULL, 0},
	    {"::1:80", 0, -1, NULL, 0},
	    {"[::1:80", 0, -1, NULL, 0},
	    {"[nothex]:80", 0, -1, NULL, 0},
	    {"a b:80", 0, -1, NULL, 0},
	    {"host:+80", 0, -1, NULL, 0},
	    {"host:8o", 0, -1, NULL, 0},
	    {"999.0.0.1:80", 0, -1, NULL, 0},
	    {":8080", 0, 0, "", 8080},
	    {"my-host_1.example:443", 0, 0, "my-host_1.example", 443},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char host[64] = "unset";
		int port = -7;
		int rc = net_parse_hostport_flags(cases[i].in, host, sizeof(host), &port,
		                                  cases[i].flags);
		ck_assert_msg(rc == cases[i].rc, "\"%s\": expected %d, got %d", cases[i].in,
		              cases[i].rc, rc);
		if (rc == 0)
			ck_assert_msg(strcmp(host, cases[i].host) == 0 && port == cases[i].port,
			              "\"%s\": expected host \"%s\" port %d, got \"%s\" %d",
			              cases[i].in, cases[i].host, cases[i].port, host, port);
	}
	char small[4];
	int port;
	ck_assert_msg(net_parse_hostport("example.com:80", small, sizeof(small), &port) == -1,
	              "expected a host that does not fit to be refused");
}
END_TEST

START_TEST(net_addr_is_loopback_knows_loopback_addresses)
{
	static const struct {
		const char *in;
		int want;
	} cases[] = {
	    {"127.0.0.1:80", 1},
	    {"127.1.2.3:1", 1},
	    {"[::1]:80", 1},
	    {"localhost:80", 1},
	    {"LOCALHOST", 1},
	    {"::1", 1},
	    {"127.0.0.1", 1},
	    {"[::ffff:127.0.0.1]:1", 1},
	    {"0.0.0.0:80", 0},
	    {"10.0.0.1:80", 0},
	    {"[::]:80", 0},
	    {"*:80", 0},
	    {"example.com:80", 0},
	    {"128.0.0.1:80", 0},
	    {"", 0},
	    {"garbage", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(net_addr_is_loopback(cases[i].in) == cases[i].want,
		              "net_addr_is_loopback(\"%s\"): expected %d", cases[i].in,
		              cases[i].want);
	ck_assert_int_eq(net_addr_is_loopback(NULL), 0);
}
END_TEST

START_TEST(net_http_url_reaches_a_listen_address)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"127.0.0.1:9081", "http://127.0.0.1:9081/stats"},
	    {"0.0.0.0:9081", "http://127.0.0.1:9081/stats"},
	    {"*:9081", "http://127.0.0.1:9081/stats"},
	    {":9081", "http://127.0.0.1:9081/stats"},
	    {"[::]:9081", "http://[::1]:9081/stats"},
	    {"[::1]:9081", "http://[::1]:9081/stats"},
	    {"admin.example:80", "http://admin.example:80/stats"},
	};
	char out[128];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(net_http_url(cases[i].in, "/stats", out, sizeof(out)) == 0,
		              "net_http_url(\"%s\") refused", cases[i].in);
		ck_assert_str_eq(out, cases[i].want);
	}
	ck_assert_int_eq(net_http_url("no-port", "/", out, sizeof(out)), -1);
	ck_assert_int_eq(net_http_url(NULL, "/", out, sizeof(out)), -1);
	ck_assert_int_eq(net_http_url("127.0.0.1:80", "/long", out, 10), -1);
}
END_TEST

START_TEST(net_listen_gives_a_nonblocking_cloexec_socket)
{
	char err[256];
	int fd = net_listen("127.0.0.1:0", 16, err, sizeof(err));

	ck_assert_msg(fd >= 0, "expected a listening socket, got: %s", err);
	ck_assert_int_gt(net_local_port(fd), 0);
	ck_assert_msg(fcntl(fd, F_GETFL) & O_NONBLOCK, "expected O_NONBLOCK");
	ck_assert_msg(fcntl(fd, F_GETFD) & FD_CLOEXEC, "expected FD_CLOEXEC");
	/* the same port again is a clear error */
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", net_local_port(fd));
	ck_assert_int_eq(net_listen(addr, 16, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "Address already in use") && strstr(err, addr),
	              "expected \"%s ... Address already in use\", got \"%s\"", addr, err);
	close(fd);
}
END_TEST

START_TEST(status_texts_are_known)
{
	ck_assert_str_eq(http_status_text(200), "OK");
	ck_assert_str_eq(http_status_text(413), "Content Too Large");
	ck_assert_str_eq(http_status_text(431), "Request Header Fields Too Large");
	ck_assert_str_eq(http_status_text(499), "Client Error");
}
END_TEST

static Suite *http_server_suite(void)
{
	Suite *s = suite_create("http_server");
	TCase *tc = tcase_create("server");
	tcase_add_checked_fixture(tc, setup_default, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, pipelined_requests_are_answered_in_request_order);
	tcase_add_test(tc, deep_pipeline_of_300_requests_is_answered_in_order);
	tcase_add_test(tc, client_that_half_closes_still_gets_its_answers);
	tcase_add_test(tc, keep_alive_connection_is_reused);
	tcase_add_test(tc, http10_without_keep_alive_is_closed);
	tcase_add_test(tc, body_is_delivered_nul_terminated_and_chunked_bodies_are_joined);
	tcase_add_test(tc, body_over_1mib_is_refused_with_413);
	tcase_add_test(tc, header_of_64kib_is_refused_with_431);
	tcase_add_test(tc, slow_client_gets_408_within_read_timeout);
	tcase_add_test(tc, content_length_with_transfer_encoding_is_refused_with_400);
	tcase_add_test(tc, malformed_request_is_refused_with_400_and_closed);
	tcase_add_test(tc, invalid_json_gets_400_with_json_error);
	tcase_add_test(tc, token_is_required_when_configured);
	tcase_add_test(tc, query_and_path_are_url_decoded);
	tcase_add_test(tc, headers_are_case_insensitive_and_peer_is_loopback);
	tcase_add_test(tc, head_gets_no_body_and_204_has_no_length);
	tcase_add_test(tc, expect_100_continue_is_answered);
	tcase_add_test(tc, reply_after_the_client_left_is_discarded);
	tcase_add_test(tc, pipelined_requests_reach_the_handler_one_at_a_time);
	tcase_add_test(tc, paths_that_are_not_utf8_get_404_and_no_error_log);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, setup_token, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, with_a_token_everything_but_health_check_needs_it);
	tcase_add_test(tc, public_paths_are_open_to_reads_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth_public_reads");
	tcase_add_checked_fixture(tc, setup_token_public_reads, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, public_reads_open_get_and_head_but_not_writes);
	suite_add_tcase(s, tc);

	tc = tcase_create("idle");
	tcase_add_checked_fixture(tc, setup_short_idle, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, idle_keep_alive_connection_is_closed_after_idle_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("max_conns");
	tcase_add_checked_fixture(tc, setup_one_conn, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_request_in_progress_is_never_closed_for_a_new_client);
	suite_add_tcase(s, tc);

	tc = tcase_create("max_conns_eight");
	tcase_add_checked_fixture(tc, setup_eight_conns, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, at_max_conns_a_new_client_closes_the_oldest_that_never_sent_a_request);
	suite_add_tcase(s, tc);

	tc = tcase_create("net");
	tcase_add_test(tc, bad_listen_address_is_a_clear_error);
	tcase_add_test(tc, net_parse_hostport_accepts_host_port_and_bracketed_v6);
	tcase_add_test(tc, net_addr_is_loopback_knows_loopback_addresses);
	tcase_add_test(tc, net_http_url_reaches_a_listen_address);
	tcase_add_test(tc, net_listen_gives_a_nonblocking_cloexec_socket);
	tcase_add_test(tc, status_texts_are_known);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_server_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
