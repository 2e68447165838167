/* The JSON bodies of every admin endpoint, on any bytes: the first byte
 * picks the endpoint, the rest is the body.
 *   0-3  scalerd's PUT /report, POST /scale, /drain, /wake: the checks of
 *        src/admin/admin_body.c that stand before the controller;
 *   4-5  a zone balancer's PUT /servers and PUT /monitor, through its real
 *        admin API: the builtin plugin runs in this process (a fake host,
 *        no state store) on loopback;
 *   6-7  POST /election/<type> to the bully and the single election plugins
 *        (the second byte picks the type), with a fake host that sends
 *        nothing.
 *
 * Invariants: what scalerd's checks accept holds what the controller
 * relies on (strings, counts and durations in range, at most 1,000 servers
 * in a report) and a refusal says why; the balancer never answers 500, only
 * valid JSON, and its server list stays valid JSON of http:// URLs; an
 * election plugin always sets a status and replies valid JSON.
 *
 * Only loopback carries traffic: a server URL the balancer would check is
 * rewritten to 127.0.0.1 (same port) before it is sent.
 *
 * Verdicts: "bad-json", "report-accept", "scale-400", "servers-200",
 * "monitor-503", "bully-409", ... */
#include "config.h"

#include "admin_body.h"
#include "fakehost.h"
#include "fuzz.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FZ_TOKEN "fuzz-token"

static const char *const fz_names[] = {"report",  "scale",   "drain", "wake",
                                       "servers", "monitor", "bully", "single"};

/* ---- scalerd's bodies ------------------------------------------------------ */

static void fz_scalerd(int which, json_t *body)
{
	char err[256] = "";
	int rc;

	switch (which) {
	case 0: {
		struct admin_report_body b;
		if ((rc = admin_body_report(body, &b, err, sizeof(err))) == 0) {
			FUZZ_ASSERT(b.zone && json_is_array(b.dead) &&
			                json_array_size(b.dead) <= ADMIN_REPORT_MAX,
			            "a report accepted with a bad zone or list");
			size_t i;
			json_t *v;
			json_array_foreach(b.dead, i, v)
			    FUZZ_ASSERT(json_is_string(v), "dead[%zu] accepted, not a string", i);
			FUZZ_ASSERT(!b.events ||
			                (json_is_array(b.events) &&
			                 json_array_size(b.events) <= ADMIN_REPORT_MAX_EVENTS),
			            "events accepted that are not a short array");
			json_array_foreach(b.events, i, v)
			    FUZZ_ASSERT(json_string_value(json_object_get(v, "server")) &&
			                    json_string_value(json_object_get(v, "reason")),
			                "events[%zu] accepted without server or reason", i);
		}
		break;
	}
	case 1: {
		struct admin_scale_body b;
		if ((rc = admin_body_scale(body, &b, err, sizeof(err))) == 0)
			FUZZ_ASSERT(b.zone && b.count >= -1 && b.count <= ADMIN_PIN_MAX &&
			                isfinite(b.duration) && b.duration >= 0 &&
			                b.duration <= ADMIN_PIN_FOR_MAX,
			            "a pin accepted out of range: count %d for %g", b.count,
			            b.duration);
		break;
	}
	case 2: {
		struct admin_drain_body b;
		if ((rc = admin_body_drain(body, &b, err, sizeof(err))) == 0)
			FUZZ_ASSERT(b.zone && b.server, "a drain accepted without zone or server");
		break;
	}
	default: {
		struct admin_wake_body b;
		if ((rc = admin_body_wake(body, &b, err, sizeof(err))) == 0)
			FUZZ_ASSERT(b.zone && b.held >= 0, "a wake accepted with held %ld", b.held);
		break;
	}
	}
	if (rc < 0) {
		json_t *e = json_pack("{s:s}", "error", err);
		FUZZ_ASSERT(err[0] && e, "a refusal that says nothing, or not as JSON: \"%s\"",
		            err);
		json_decref(e);
	}
	fuzz_verdict("%s-%s", fz_names[which], rc == 0 ? "accept" : "400");
}

/* ---- a zone balancer's admin API ------------------------------------------- */

static struct ev_loop *fz_loop;
static struct scaler_host fz_host;
static const struct scaler_plugin *fz_bal;
static void *fz_bal_ctx;
static int fz_admin_port;

static int fz_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	FUZZ_ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	                getsockname(fd, (struct sockaddr *)&sa, &sl) == 0,
	            "no free port: %s", strerror(errno));
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void fz_balancer_start(void)
{
	char err[512], listen[64], admin[64];

	if (fz_bal)
		return;
	fz_loop = ev_default_loop(EVFLAG_AUTO);
	fake_messages_level(SCALER_LOG_ERR);
	fake_host_table(&fz_host, fz_loop);
	fz_host.token = FZ_TOKEN;
	fz_bal = fake_plugin_open("balancer", "builtin", err, sizeof(err));
	FUZZ_ASSERT(fz_bal, "%s", err);
	FUZZ_ASSERT(fz_bal->init(&fz_host, NULL, &fz_bal_ctx) == 0, "balancer init");
	fz_admin_port = fz_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", fz_free_port());
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", fz_admin_port);
	struct scaler_zone zone = {.name = "zone1", .listen = listen, .admin = admin};
	FUZZ_ASSERT(fz_bal->ops.balancer->serve(fz_bal_ctx, &zone) == 0, "balancer serve");
}

struct fz_exchange {
	ev_io io;
	const char *out;
	size_t out_len, sent;
	char in[1 << 16];
	size_t in_len;
	int done;
};

static void fz_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fz_exchange *x = w->data;
	if ((revents & EV_WRITE) && x->sent < x->out_len) {
		ssize_t n = send(w->fd, x->out + x->sent, x->out_len - x->sent, MSG_NOSIGNAL);
		if (n > 0)
			x->sent += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			x->sent = x->out_len;
		if (x->sent == x->out_len) {
			ev_io_stop(loop, w);
			ev_io_set(w, w->fd, EV_READ);
			ev_io_start(loop, w);
		}
	}
	if (revents & EV_READ) {
		ssize_t n = recv(w->fd, x->in + x->in_len, sizeof(x->in) - 1 - x->in_len, 0);
		if (n > 0)
			x->in_len += (size_t)n;
		if (n == 0 || (n < 0 && errno != EAGAIN) || x->in_len == sizeof(x->in) - 1) {
			x->done = 1;
			ev_break(loop, EVBREAK_ONE);
		}
	}
}

/* One request to the balancer's admin API; the status, the body in *body. */
static int fz_request(const char *method, const char *path, const char *body, size_t len,
                      json_t **reply)
{
	static char req[1 << 17];
	static struct fz_exchange x;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int status = 0;

	int n = snprintf(req, sizeof(req),
	                 "%s %s HTTP/1.1\r\nHost: z\r\nAuthorization: Bearer " FZ_TOKEN
	                 "\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
	                 method, path, len);
	FUZZ_ASSERT(n > 0 && (size_t)n + len < sizeof(req), "request too long");
	memcpy(req + n, body, len);
	memset(&x, 0, sizeof(x));
	x.out = req;
	x.out_len = (size_t)n + len;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	sa.sin_port = htons((uint16_t)fz_admin_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		FUZZ_ASSERT(errno == EINPROGRESS, "connect: %s", strerror(errno));
	ev_io_init(&x.io, fz_io_cb, fd, EV_READ | EV_WRITE);
	x.io.data = &x;
	ev_io_start(fz_loop, &x.io);
	for (int spins = 0; !x.done && spins < 100000; spins++)
		ev_run(fz_loop, EVRUN_ONCE);
	ev_io_stop(fz_loop, &x.io);
	close(fd);
	FUZZ_ASSERT(x.done, "the balancer's admin API did not answer");
	x.in[x.in_len] = '\0';
	FUZZ_ASSERT(sscanf(x.in, "HTTP/1.1 %d", &status) == 1, "not a response: %.60s", x.in);
	FUZZ_ASSERT(status != 500, "500 for a body: %s", x.in);
	const char *b = strstr(x.in, "\r\n\r\n");
	if (reply) {
		*reply = b && b[4] ? json_loads(b + 4, JSON_DECODE_ANY, NULL) : NULL;
		FUZZ_ASSERT(!b || !b[4] || *reply, "a body that is not JSON: %s", b);
	}
	return status;
}

/* Server URLs the balancer would check go to 127.0.0.1, same port: the
 * fuzzer decides what the balancer parses, not where it connects. */
static void fz_loopback_only(json_t *body)
{
	static const char *const keys[] = {"adds", "deletes", "removes"};
	for (size_t k = 0; k < 3; k++) {
		json_t *list = json_object_get(body, keys[k]);
		size_t i;
		json_t *v;
		json_array_foreach(list, i, v)
		{
			const char *s = json_string_value(v);
			char hp[300], host[300], url[400];
			struct in_addr a;
			int port;
			if (!s || strncmp(s, "http://", 7) != 0 || strlen(s + 7) >= sizeof(hp))
				continue;
			snprintf(hp, sizeof(hp), "%s", s + 7);
			size_t n = strlen(hp);
			if (n && hp[n - 1] == '/')
				hp[n - 1] = '\0';
			if (net_parse_hostport(hp, host, sizeof(host), &port) < 0)
				continue; /* the balancer refuses it too */
			if (inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127)
				continue;
			snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
			json_array_set_new(list, i, json_string(url));
		}
	}
}

static void fz_balancer(int which, json_t *body)
{
	json_t *reply = NULL, *list = NULL;

	fz_balancer_start();
	if (which == 4)
		fz_loopback_only(body);
	char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	FUZZ_ASSERT(text, "cannot send the body again");
	int st =
	    fz_request("PUT", which == 4 ? "/servers" : "/monitor", text, strlen(text), &reply);
	free(text);
	json_decref(reply);
	/* whatever happened, the server list is valid, then back to empty */
	FUZZ_ASSERT(fz_request("GET", "/servers?state=all", "", 0, &list) == 200 &&
	                json_is_array(list),
	            "GET /servers?state=all after the request");
	json_t *dels = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		const char *u = json_string_value(json_object_get(v, "url"));
		FUZZ_ASSERT(u && strncmp(u, "http://", 7) == 0, "a server without an http:// URL");
		json_array_append_new(dels, json_string(u));
	}
	json_decref(list);
	json_t *reset = json_pack("{s:o}", "deletes", dels);
	text = json_dumps(reset, JSON_COMPACT);
	json_decref(reset);
	FUZZ_ASSERT(fz_request("PUT", "/servers", text, strlen(text), NULL) == 200,
	            "deleting the servers again");
	free(text);
	fuzz_verdict("%s-%d", fz_names[which], st);
}

/* ---- election messages ------------------------------------------------------- */

/* one election host at a time: the fake host records a plugin's calls in
 * the host last used */
static struct fake_host *fz_elect;
static int fz_elect_kind = -1, fz_elect_uses;

static void fz_election(int which, unsigned char pick, const char *body, size_t len)
{
	static const char *const types[] = {"election", "coordinator", "release", "ping", "other"};
	const char *type = types[pick % 5];
	int k = which - 6, status = 0;
	char *reply = NULL;

	/* a fresh host for the other plugin, and now and then: recorded calls pile up */
	if (fz_elect && (fz_elect_kind != k || ++fz_elect_uses % 100 == 0)) {
		fake_host_free(fz_elect); /* finishes the plugin too */
		fz_elect = NULL;
	}
	if (!fz_elect) {
		fake_messages_level(SCALER_LOG_ERR);
		fz_elect = fake_host_new("2", "http://127.0.0.1:9002", FZ_TOKEN);
		fz_elect_kind = k;
		int rc = k == 0 ? fake_load(fz_elect, "election", "bully",
		                            "election = { plugin = \"bully\"; peers = ("
		                            "{ id = 1; url = \"http://127.0.0.1:9001\"; },"
		                            "{ id = 3; url = \"http://127.0.0.1:9003\"; } ); };")
		                : fake_load(fz_elect, "election", "single", NULL);
		FUZZ_ASSERT(rc == 0 && fake_start(fz_elect) == 0, "election plugin start");
	}
	fz_elect->plugin->ops.election->message(fz_elect->ctx, type, body, len, &status, &reply);
	FUZZ_ASSERT(status >= 100 && status <= 599, "message %s: status %d", type, status);
	if (reply) {
		json_t *j = json_loads(reply, JSON_DECODE_ANY, NULL);
		FUZZ_ASSERT(j, "message %s: a reply that is not JSON: %s", type, reply);
		json_decref(j);
		free(reply);
	}
	fuzz_verdict("%s-%d", fz_names[which], status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int which = data[0] % 8;
	if (which >= 6) {
		/* as the admin server hands it over: NUL-terminated, body_len the truth */
		size_t len = size > 2 ? size - 2 : 0;
		char *body = malloc(len + 1);
		FUZZ_ASSERT(body, "out of memory");
		memcpy(body, data + (size > 2 ? 2 : size), len);
		body[len] = '\0';
		fz_election(which, size > 1 ? data[1] : 0, body, len);
		free(body);
		return 0;
	}
	json_error_t jerr;
	json_t *body = json_loadb((const char *)data + 1, size - 1,
	                          JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		fuzz_verdict("bad-json"); /* http_request_json answers 400 */
		return 0;
	}
	if (which < 4)
		fz_scalerd(which, body);
	else
		fz_balancer(which, body);
	json_decref(body);
	return 0;
}
