/* HTTP client behaviour: requests against scaler's own HTTP server on the
 * same loop, timeouts, refused connections, unix sockets, cancellation. */
#include "config.h"

#include "http_client.h"
#include "http_server.h"
#include "log.h"
#include "net.h"
#include "test_http_util.h"

#include <check.h>
#include <ev.h>
#include <jansson.h>
#include <sys/un.h>

static struct ev_loop *tc_loop;
static struct http_client *tc_client;
static struct http_server *tc_srv;
static int tc_port;
static char tc_url[128];

struct tc_result {
	int called;
	long status;
	char *body;
	size_t body_len;
	char error[512];
	double elapsed;
};

static int tc_inside_request; /* set while http_client_request runs */

static void tc_cb(void *arg, const struct scaler_http_response *resp)
{
	struct tc_result *r = arg;

	ck_assert_msg(!tc_inside_request, "expected no callback from inside http_client_request");
	r->called++;
	r->status = resp->status;
	r->elapsed = resp->elapsed;
	r->body_len = resp->body_len;
	ck_assert_msg(resp->body && resp->body[resp->body_len] == '\0',
	              "expected a NUL-terminated response body");
	free(r->body);
	r->body = strdup(resp->body);
	snprintf(r->error, sizeof(r->error), "%s", resp->error ? resp->error : "");
	ck_assert_msg((resp->status == 0) == (resp->error != NULL),
	              "expected an error text exactly when status is 0 (status %ld, error %s)",
	              resp->status, resp->error ? resp->error : "NULL");
}

static struct scaler_http_call *tc_start(const struct scaler_http_request *req, struct tc_result *r)
{
	tc_inside_request = 1;
	struct scaler_http_call *call = http_client_request(tc_client, req, tc_cb, r);
	tc_inside_request = 0;
	ck_assert_msg(call != NULL, "expected http_client_request to accept %s", req->url);
	return call;
}

static void tc_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	*(int *)w->data = 1;
}

/* Run the loop until *flag is set or `secs` pass; 1 when the flag was set. */
static int tc_run_until(const int *flag, double secs)
{
	int expired = 0;
	ev_timer t;

	ev_timer_init(&t, tc_timeout_cb, secs, 0);
	t.data = &expired;
	ev_timer_start(tc_loop, &t);
	while (!*flag && !expired)
		ev_run(tc_loop, EVRUN_ONCE);
	ev_timer_stop(tc_loop, &t);
	return *flag != 0;
}

static void tc_run_for(double secs)
{
	int never = 0;
	tc_run_until(&never, secs);
}

static void tc_result_free(struct tc_result *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- the server side -------------------------------------------------------- */

static void tc_handler(struct http_exchange *x, const struct http_request *req, void *arg)
{
	if (strcmp(req->path, "/hello") == 0) {
		http_reply(x, 200, "text/plain", "hello", 5, NULL);
	} else if (strcmp(req->path, "/echo") == 0) {
		const char *ct = http_request_header(req, "Content-Type");
		const char *xt = http_request_header(req, "X-Test");
		json_t *j = json_pack("{s:s,s:s%,s:s,s:s,s:s}", "method", req->method, "body",
		                      req->body, req->body_len, "content_type", ct ? ct : "(none)",
		                      "x_test", xt ? xt : "(none)", "peer", req->peer);
		http_reply_json(x, 200, j);
	} else if (strcmp(req->path, "/huge") == 0) {
		size_t n = (16u << 20) + 1024;
		char *big = malloc(n);
		memset(big, 'z', n);
		http_reply(x, 200, "text/plain", big, n, NULL);
		free(big);
	} else if (strcmp(req->path, "/status") == 0) {
		http_reply_error(x, 503, "try later");
	} else {
		http_reply_error(x, 404, "no such path %s", req->path);
	}
}

static void setup(void)
{
	char err[256];

	log_setup("test_http_client", SCALER_LOG_WARNING, 0);
	tc_loop = ev_loop_new(EVFLAG_AUTO);
	tc_client = http_client_new(tc_loop);
	ck_assert_msg(tc_client != NULL, "expected http_client_new to succeed");
	tc_srv = http_server_new(tc_loop, "127.0.0.1:0", NULL, tc_handler, NULL, err, sizeof(err));
	ck_assert_msg(tc_srv != NULL, "expected the test server to listen: %s", err);
	tc_port = http_server_port(tc_srv);
	snprintf(tc_url, sizeof(tc_url), "http://127.0.0.1:%d", tc_port);
}

static void teardown(void)
{
	http_client_free(tc_client);
	http_server_free(tc_srv);
	ev_loop_destroy(tc_loop);
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(get_and_put_reach_the_server_and_reuse_the_connection)
{
	struct tc_result r1 = {0}, r2 = {0};
	char url[256], peer1[64];
	const char *hdrs[] = {"Content-Type: application/json", "X-Test: yes", NULL};
	json_t *j;

	snprintf(url, sizeof(url), "%s/hello", tc_url);
	struct scaler_http_request get = {.url = url};
	tc_start(&get, &r1);
	ck_assert_int_eq(http_client_pending(tc_client), 1);
	ck_assert_msg(r1.called == 0, "expected no callback before the loop runs");
	ck_assert_msg(tc_run_until(&r1.called, 10), "expected the GET to complete");
	ck_assert_msg(r1.status == 200 && strcmp(r1.body, "hello") == 0,
	              "expected 200 hello, got %ld \"%s\" (%s)", r1.status, r1.body, r1.error);
	ck_assert_int_eq(http_client_pending(tc_client), 0);

	tc_result_free(&r1);
	snprintf(url, sizeof(url), "%s/echo", tc_url);
	char *body = strdup("{\"adds\":[\"a\"]}");
	struct scaler_http_request put = {
	    .method = "PUT", .url = url, .headers = hdrs, .body = body, .body_len = strlen(body)};
	tc_start(&put, &r1);
	free(body); /* the client copied it */
	ck_assert_msg(tc_run_until(&r1.called, 10), "expected the PUT to complete");
	ck_assert_msg(r1.status == 200, "expected 200, got %ld (%s)", r1.status, r1.error);
	j = json_loads(r1.body, 0, NULL);
	ck_assert_msg(j != NULL, "expected a JSON echo, got %s", r1.body);
	ck_assert_str_eq(json_string_value(json_object_get(j, "method")), "PUT");
	ck_assert_str_eq(json_string_value(json_object_get(j, "body")), "{\"adds\":[\"a\"]}");
	ck_assert_str_eq(json_string_value(json_object_get(j, "content_type")), "application/json");
	ck_assert_str_eq(json_string_value(json_object_get(j, "x_test")), "yes");
	snprintf(peer1, sizeof(peer1), "%s", json_string_value(json_object_get(j, "peer")));
	json_decref(j);

	/* the next request goes over the same kept-alive connection */
	struct scaler_http_request del = {.method = "DELETE", .url = url};
	tc_start(&del, &r2);
	ck_assert_msg(tc_run_until(&r2.called, 10), "expected the DELETE to complete");
	j = json_loads(r2.body, 0, NULL);
	ck_assert_msg(j != NULL, "expected a JSON echo, got %s", r2.body);
	ck_assert_str_eq(json_string_value(json_object_get(j, "method")), "DELETE");
	ck_assert_msg(strcmp(json_string_value(json_object_get(j, "peer")), peer1) == 0,
	              "expected the connection reused (same peer %s), got %s", peer1,
	              json_string_value(json_object_get(j, "peer")));
	json_decref(j);
	tc_result_free(&r1);
	tc_result_free(&r2);
}
END_TEST

START_TEST(http_error_statuses_are_responses_not_errors)
{
	struct tc_result r = {0};
	char url[256];

	snprintf(url, sizeof(url), "%s/status", tc_url);
	struct scaler_http_request req = {.url = url};
	tc_start(&req, &r);
	ck_assert(tc_run_until(&r.called, 10));
	ck_assert_msg(r.status == 503 && strstr(r.body, "try later") && r.error[0] == '\0',
	              "expected 503 with its body and no error, got %ld \"%s\" \"%s\"", r.status,
	              r.body, r.error);
	tc_result_free(&r);
}
END_TEST

START_TEST(listener_that_never_answers_times_out)
{
	struct tc_result r = {0};
	char err[256], url[128];
	int fd = net_listen("127.0.0.1:0", 16, err, sizeof(err)); /* never accepts */

	ck_assert_msg(fd >= 0, "listen: %s", err);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/never", net_local_port(fd));
	struct scaler_http_request req = {.url = url, .timeout = 0.2};
	tc_start(&req, &r);
	ck_assert_msg(tc_run_until(&r.called, 10), "expected the request to time out");
	ck_assert_msg(r.status == 0 && r.error[0],
	              "expected status 0 with an error, got %ld \"%s\"", r.status, r.error);
	ck_assert_msg(strcasestr(r.error, "timed out") || strcasestr(r.error, "timeout"),
	              "expected a timeout error, got \"%s\"", r.error);
	ck_assert_msg(r.elapsed >= 0.18 && r.elapsed < 2.0,
	              "expected the timeout after about 0.2 s, got %.3f s", r.elapsed);
	close(fd);
	tc_result_free(&r);
}
END_TEST

START_TEST(refused_connection_reports_status_0)
{
	struct tc_result r = {0};
	char err[256], url[128];
	int fd = net_listen("127.0.0.1:0", 16, err, sizeof(err));
	int port = net_local_port(fd);

	close(fd); /* nobody listens there now */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	struct scaler_http_request req = {.url = url, .timeout = 5};
	tc_start(&req, &r);
	ck_assert_msg(tc_run_until(&r.called, 10), "expected the refused request to call back");
	ck_assert_msg(r.status == 0 && (strcasestr(r.error, "refused") ||
	                                strcasestr(r.error, "couldn't connect")),
	              "expected status 0 with a connection error, got %ld \"%s\"", r.status,
	              r.error);
	ck_assert_int_eq(r.called, 1);
	tc_result_free(&r);
}
END_TEST

START_TEST(bad_urls_fail_through_the_callback_or_are_refused)
{
	struct tc_result r = {0};

	struct scaler_http_request none = {.url = NULL};
	ck_assert_msg(http_client_request(tc_client, &none, tc_cb, &r) == NULL,
	              "expected NULL for a request without URL");
	struct scaler_http_request empty = {.url = ""};
	ck_assert(http_client_request(tc_client, &empty, tc_cb, &r) == NULL);
	struct scaler_http_request badm = {.url = "http://127.0.0.1/", .method = "GE T"};
	ck_assert_msg(http_client_request(tc_client, &badm, tc_cb, &r) == NULL,
	              "expected NULL for an invalid method");
	struct scaler_http_request badt = {.url = "http://127.0.0.1/", .timeout = -1};
	ck_assert_msg(http_client_request(tc_client, &badt, tc_cb, &r) == NULL,
	              "expected NULL for a negative timeout");
	ck_assert_int_eq(http_client_pending(tc_client), 0);

	/* not http: refused by curl, reported through the callback */
	struct scaler_http_request file = {.url = "file:///etc/passwd"};
	tc_start(&file, &r);
	ck_assert_msg(tc_run_until(&r.called, 10), "expected a callback for file://");
	ck_assert_msg(r.status == 0 && r.error[0], "expected status 0 for file://, got %ld",
	              r.status);
	tc_result_free(&r);
}
END_TEST

/* a tiny AF_UNIX HTTP server: answers one fixed response per connection */
struct tc_unix {
	ev_io lio;
	ev_io cio;
	int cfd;
	char req[4096];
	size_t len;
	int served;
};

static void tc_unix_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tc_unix *u = w->data;
	ssize_t n = read(u->cfd, u->req + u->len, sizeof(u->req) - 1 - u->len);

	if (n > 0) {
		u->len += (size_t)n;
		u->req[u->len] = '\0';
		if (!strstr(u->req, "\r\n\r\n"))
			return;
		static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
		                           "Connection: close\r\n\r\nover the unix";
		ck_assert(write(u->cfd, resp, sizeof(resp) - 1) == (ssize_t)sizeof(resp) - 1);
		u->served++;
	}
	ev_io_stop(loop, w);
	close(u->cfd);
	u->cfd = -1;
}

static void tc_unix_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tc_unix *u = w->data;
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0 || u->cfd >= 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	u->cfd = fd;
	u->len = 0;
	ev_io_init(&u->cio, tc_unix_conn_cb, fd, EV_READ);
	u->cio.data = u;
	ev_io_start(loop, &u->cio);
}

START_TEST(unix_socket_url_talks_to_an_af_unix_server)
{
	struct tc_unix u = {.cfd = -1};
	struct tc_result r = {0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[108];
	int lfd;

	snprintf(path, sizeof(path), "/tmp/scaler-test-http-%d.sock", (int)getpid());
	unlink(path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert(lfd >= 0);
	ck_assert_msg(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", path,
	              strerror(errno));
	ck_assert(listen(lfd, 8) == 0);
	ev_io_init(&u.lio, tc_unix_accept_cb, lfd, EV_READ);
	u.lio.data = &u;
	ev_io_start(tc_loop, &u.lio);

	struct scaler_http_request req = {
	    .url = "http://localhost/v1.43/containers/json", .unix_socket = path, .timeout = 5};
	tc_start(&req, &r);
	ck_assert_msg(tc_run_until(&r.called, 10), "expected the unix-socket request to complete");
	ck_assert_msg(r.status == 200 && strcmp(r.body, "over the unix") == 0,
	              "expected 200 \"over the unix\", got %ld \"%s\" (%s)", r.status, r.body,
	              r.error);
	ck_assert_msg(strncmp(u.req, "GET /v1.43/containers/json HTTP/1.1\r\n", 37) == 0,
	              "expected the request line to carry the URL path, got \"%.60s\"", u.req);
	ev_io_stop(tc_loop, &u.lio);
	if (u.cfd >= 0) {
		ev_io_stop(tc_loop, &u.cio);
		close(u.cfd);
	}
	close(lfd);
	unlink(path);
	tc_result_free(&r);
}
END_TEST

START_TEST(cancelled_request_never_calls_back)
{
	struct tc_result r = {0}, other = {0};
	char err[256], url[128], hello[256];
	int fd = net_listen("127.0.0.1:0", 16, err, sizeof(err));

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/never", net_local_port(fd));
	struct scaler_http_request req = {.url = url, .timeout = 0.2};
	struct scaler_http_call *call = tc_start(&req, &r);
	tc_run_for(0.05); /* connected and waiting */
	ck_assert_int_eq(http_client_pending(tc_client), 1);
	http_client_cancel(call);
	ck_assert_int_eq(http_client_pending(tc_client), 0);
	/* cancelled before the loop ever ran it */
	call = tc_start(&req, &r);
	http_client_cancel(call);
	tc_run_for(0.5); /* past the timeout it would have hit */
	ck_assert_msg(r.called == 0, "expected no callback after cancel, got %d", r.called);

	/* the client still works */
	snprintf(hello, sizeof(hello), "%s/hello", tc_url);
	struct scaler_http_request ok = {.url = hello};
	tc_start(&ok, &other);
	ck_assert(tc_run_until(&other.called, 10));
	ck_assert_int_eq(other.status, 200);
	close(fd);
	tc_result_free(&other);
}
END_TEST

START_TEST(response_over_16mib_is_an_error)
{
	struct tc_result r = {0};
	char url[256];

	snprintf(url, sizeof(url), "%s/huge", tc_url);
	struct scaler_http_request req = {.url = url, .timeout = 20};
	tc_start(&req, &r);
	ck_assert_msg(tc_run_until(&r.called, 25), "expected the huge response to call back");
	ck_assert_msg(r.status == 0 && strstr(r.error, "16 MiB"),
	              "expected status 0 and a 16 MiB error, got %ld \"%s\"", r.status, r.error);
	tc_result_free(&r);
}
END_TEST

/* freeing the client from inside a callback cancels the rest quietly */
static struct tc_result tc_other;
static void tc_free_cb(void *arg, const struct scaler_http_response *resp)
{
	int *called = arg;
	(*called)++;
	http_client_free(tc_client);
	tc_client = NULL;
}

START_TEST(free_from_a_callback_and_free_with_pending_requests)
{
	int called = 0;
	char url[256], err[256], never[128];
	int fd = net_listen("127.0.0.1:0", 16, err, sizeof(err));

	snprintf(never, sizeof(never), "http://127.0.0.1:%d/never", net_local_port(fd));
	snprintf(url, sizeof(url), "%s/hello", tc_url);
	struct scaler_http_request a = {.url = url};
	struct scaler_http_request b = {.url = never, .timeout = 5};
	ck_assert(http_client_request(tc_client, &b, tc_cb, &tc_other) != NULL);
	ck_assert(http_client_request(tc_client, &a, tc_free_cb, &called) != NULL);
	ck_assert(tc_run_until(&called, 10));
	tc_run_for(0.1);
	ck_assert_msg(tc_other.called == 0, "expected the pending request dropped silently");

	/* and a plain free with requests in flight */
	tc_client = http_client_new(tc_loop);
	ck_assert(http_client_request(tc_client, &b, tc_cb, &tc_other) != NULL);
	tc_run_for(0.05);
	close(fd);
}
END_TEST

static Suite *http_client_suite(void)
{
	Suite *s = suite_create("http_client");
	TCase *tc = tcase_create("client");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, get_and_put_reach_the_server_and_reuse_the_connection);
	tcase_add_test(tc, http_error_statuses_are_responses_not_errors);
	tcase_add_test(tc, listener_that_never_answers_times_out);
	tcase_add_test(tc, refused_connection_reports_status_0);
	tcase_add_test(tc, bad_urls_fail_through_the_callback_or_are_refused);
	tcase_add_test(tc, unix_socket_url_talks_to_an_af_unix_server);
	tcase_add_test(tc, cancelled_request_never_calls_back);
	tcase_add_test(tc, response_over_16mib_is_an_error);
	tcase_add_test(tc, free_from_a_callback_and_free_with_pending_requests);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_client_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
