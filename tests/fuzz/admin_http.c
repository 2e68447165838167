/* The admin HTTP server (src/lib/http_server.c) on any bytes a client can
 * send: the input is written to one connection of a real server on
 * 127.0.0.1 (a token configured, as scalerd and the balancers run it), the
 * client half-closes, and everything the server sends until it closes is
 * read back.
 *
 * The handler exercises the request API (query, headers, JSON bodies, error
 * replies that quote the path, replies later from a timer).
 *
 * Invariants: the handler never sees a request without the token except
 * GET/HEAD/... /health_check (the auth rule), nor two requests of the
 * connection at once; the server always ends the exchange by closing; what
 * it sends is a sequence of well-formed HTTP/1.1 responses, never a 500
 * (nothing a client sends is the server's fault), and every JSON body is
 * valid JSON (so valid UTF-8).
 *
 * Verdict: the statuses of the responses joined with '+' ("404", "200+401",
 * "none" when the server closed without answering). */
#include "config.h"

#include "fuzz.h"
#include "http_server.h"
#include "log.h"

#include <errno.h>
#include <ev.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FZ_TOKEN "fuzz-token"
#define FZ_MAX_OUT (4u << 20)

static struct ev_loop *fz_loop;
static struct http_server *fz_srv;
static int fz_port;
static int fz_in_handler;

struct fz_later {
	ev_timer t;
	struct http_exchange *x;
};

static void fz_later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fz_later *l = w->data;
	(void)loop;
	(void)revents;
	fz_in_handler--;
	http_reply(l->x, 200, "text/plain", "later", 5, NULL);
	free(l);
}

static int fz_authorized(const struct http_request *req)
{
	const char *a = http_request_header(req, "Authorization");
	if (!a || strncasecmp(a, "Bearer ", 7) != 0)
		return 0;
	for (a += 7; *a == ' ';)
		a++;
	return strcmp(a, FZ_TOKEN) == 0;
}

static void fz_handler(struct http_exchange *x, const struct http_request *req, void *arg)
{
	char buf[256];
	(void)arg;

	FUZZ_ASSERT(strcmp(req->path, "/health_check") == 0 || fz_authorized(req),
	            "the handler got %s %s without the token", req->method, req->path);
	FUZZ_ASSERT(fz_in_handler == 0, "two requests of one connection in the handler at once");
	FUZZ_ASSERT(req->body[req->body_len] == '\0', "body not NUL-terminated");
	if (strcmp(req->path, "/health_check") == 0) {
		http_reply(x, 200, "text/plain", "ok\n", 3, NULL);
	} else if (strcmp(req->path, "/later") == 0) {
		struct fz_later *l = calloc(1, sizeof(*l));
		FUZZ_ASSERT(l, "out of memory");
		l->x = x;
		fz_in_handler++;
		ev_timer_init(&l->t, fz_later_cb, 0., 0.);
		l->t.data = l;
		ev_timer_start(fz_loop, &l->t);
	} else if (strcmp(req->path, "/json") == 0) {
		json_t *j = http_request_json(x, req);
		if (j)
			http_reply_json(x, 200, json_pack("{s:o}", "got", j));
	} else if (strcmp(req->path, "/query") == 0) {
		const char *v = http_request_query(req, "zone", buf, sizeof(buf));
		const char *h = http_request_header(req, "X-Zone");
		http_reply_error(x, 404, "unknown zone \"%s\" (header \"%s\")", v ? v : "",
		                 h ? h : "");
	} else {
		http_reply_error(x, 404, "no such endpoint: %s", req->path);
	}
}

static void fz_init(void)
{
	char err[256];
	struct http_server_limits lim = {.max_header = 8192,
	                                 .max_body = 65536,
	                                 .read_timeout = 2,
	                                 .idle_timeout = 2,
	                                 .max_conns = 4};

	log_setup("fuzz", SCALER_LOG_ERR, 0);
	fz_loop = ev_loop_new(EVFLAG_AUTO);
	fz_srv = http_server_new(fz_loop, "127.0.0.1:0", &lim, fz_handler, NULL, err, sizeof(err));
	FUZZ_ASSERT(fz_srv, "cannot start the server: %s", err);
	FUZZ_ASSERT(http_server_set_auth(fz_srv, FZ_TOKEN, 0) == 0, "set_auth");
	fz_port = http_server_port(fz_srv);
}

struct fz_client {
	ev_io io;
	ev_timer deadline;
	const uint8_t *data;
	size_t size, sent;
	char *out;
	size_t out_len, out_cap;
	int done, timed_out;
};

static void fz_client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fz_client *c = w->data;
	if ((revents & EV_WRITE) && c->sent < c->size) {
		ssize_t n = send(w->fd, c->data + c->sent, c->size - c->sent, MSG_NOSIGNAL);
		if (n > 0)
			c->sent += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			c->sent = c->size; /* the server closed: it wants no more */
		if (c->sent == c->size) {
			shutdown(w->fd, SHUT_WR);
			ev_io_stop(loop, w);
			ev_io_set(w, w->fd, EV_READ);
			ev_io_start(loop, w);
		}
	}
	if (revents & EV_READ) {
		if (c->out_cap - c->out_len < 65536) {
			c->out_cap = c->out_cap ? c->out_cap * 2 : 131072;
			c->out = realloc(c->out, c->out_cap + 1);
			FUZZ_ASSERT(c->out, "out of memory");
		}
		ssize_t n = recv(w->fd, c->out + c->out_len, c->out_cap - c->out_len, 0);
		if (n > 0) {
			c->out_len += (size_t)n;
			FUZZ_ASSERT(c->out_len < FZ_MAX_OUT, "more than %u bytes of responses",
			            FZ_MAX_OUT);
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			c->done = 1;
			ev_break(loop, EVBREAK_ONE);
		}
	}
}

static void fz_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fz_client *c = w->data;
	(void)revents;
	c->timed_out = 1;
	ev_break(loop, EVBREAK_ONE);
}

static const char *fz_header(const char *head, size_t hlen, const char *name, char *out,
                             size_t outlen)
{
	size_t nl = strlen(name);
	for (const char *p = head; p < head + hlen;) {
		const char *eol = memmem(p, (size_t)(head + hlen - p), "\r\n", 2);
		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(eol - v), v);
			return out;
		}
		p = eol + 2;
	}
	return NULL;
}

/* Check the responses and name the verdict. */
static void fz_check_responses(const char *out, size_t len)
{
	char verdict[64] = "";
	size_t off = 0, n = 0;

	while (off < len) {
		const char *r = out + off;
		const char *end = memmem(r, len - off, "\r\n\r\n", 4);
		FUZZ_ASSERT(end, "a response head without its end: %.60s", r);
		size_t hlen = (size_t)(end - r) + 4;
		int status = 0;
		char cl[32], ct[128];
		FUZZ_ASSERT(len - off > 13 && memcmp(r, "HTTP/1.1 ", 9) == 0 &&
		                sscanf(r + 9, "%3d", &status) == 1 && r[12] == ' ',
		            "not a status line: %.40s", r);
		FUZZ_ASSERT(status >= 100 && status <= 599, "status %d", status);
		FUZZ_ASSERT(status != 500, "500 for a client's bytes: %.*s", (int)(len - off), r);
		off += hlen;
		if (status != 100) {
			size_t blen = 0;
			if (fz_header(r, hlen, "Content-Length", cl, sizeof(cl)))
				blen = strtoul(cl, NULL, 10);
			else
				FUZZ_ASSERT(status == 204 || status == 304,
				            "status %d without Content-Length", status);
			/* a HEAD response has the length but no body */
			int head = off == len ||
			           (len - off >= 9 && memcmp(out + off, "HTTP/1.1 ", 9) == 0);
			if (blen && !head) {
				FUZZ_ASSERT(len - off >= blen, "body of %zu bytes cut at %zu", blen,
				            len - off);
				if (fz_header(r, hlen, "Content-Type", ct, sizeof(ct)) &&
				    strcmp(ct, "application/json") == 0) {
					json_error_t jerr;
					json_t *j = json_loadb(out + off, blen, 0, &jerr);
					FUZZ_ASSERT(j, "a JSON body that is not JSON (%s): %.*s",
					            jerr.text, (int)blen, out + off);
					json_decref(j);
				}
				off += blen;
			}
		}
		if (n < 8) {
			size_t vl = strlen(verdict);
			snprintf(verdict + vl, sizeof(verdict) - vl, "%s%d", n ? "+" : "", status);
		} else if (n == 8) {
			strncat(verdict, "+...", sizeof(verdict) - strlen(verdict) - 1);
		}
		n++;
	}
	fuzz_verdict("%s", n ? verdict : "none");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	struct fz_client c = {.data = data, .size = size};

	if (!fz_srv)
		fz_init();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FUZZ_ASSERT(fd >= 0, "socket: %s", strerror(errno));
	sa.sin_port = htons((uint16_t)fz_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		FUZZ_ASSERT(errno == EINPROGRESS, "connect: %s", strerror(errno));
	ev_io_init(&c.io, fz_client_cb, fd, size ? EV_READ | EV_WRITE : EV_READ);
	c.io.data = &c;
	if (!size)
		shutdown(fd, SHUT_WR);
	ev_io_start(fz_loop, &c.io);
	ev_timer_init(&c.deadline, fz_deadline_cb, 8., 0.);
	c.deadline.data = &c;
	ev_timer_start(fz_loop, &c.deadline);
	while (!c.done && !c.timed_out)
		ev_run(fz_loop, EVRUN_ONCE);
	ev_io_stop(fz_loop, &c.io);
	ev_timer_stop(fz_loop, &c.deadline);
	close(fd);
	FUZZ_ASSERT(!c.timed_out, "the server neither answered nor closed within 8 s");
	/* let the server see the close and free the connection */
	for (int i = 0; i < 4; i++)
		ev_run(fz_loop, EVRUN_NOWAIT);
	fz_check_responses(c.out ? c.out : "", c.out_len);
	free(c.out);
	return 0;
}
