#include "config.h"

#include "http_server.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <ev.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define HS_READ_BUF 16384  /* one per server: connections own only what they have not parsed */
#define HS_MAX_HEADERS 100 /* more → 431 */
#define HS_OUT_HIGH (256u << 10) /* unsent response bytes before we stop reading */
#define HS_LINGER_SECS 2.0       /* seconds to drain a refused request before closing */
#define HS_LINGER_BYTES (4u << 20)
#define HS_DEFAULT_MAX_CONNS 10000
#define HS_EVICT_LOG_EVERY 60.0 /* seconds between two notices about closing idle clients */

struct hs_buf {
	char *data;
	size_t len, cap;
};

enum hs_part { HS_NONE, HS_URL, HS_FIELD, HS_VALUE };

struct hs_hdr_off {
	size_t name, value; /* offsets into the arena; value SIZE_MAX = empty */
};

/* The request being parsed. */
struct hs_build {
	struct hs_buf arena; /* url, header names and values, decoded path and query */
	struct hs_hdr_off *hdrs;
	size_t nhdrs, hdrs_cap;
	enum hs_part last;
	size_t header_bytes;
	int headers_done;
	int complete;
	int keep_alive;
	int head;
	int upgrade;
	int err_status; /* set by a callback that refused the request */
	char err_msg[160];
	size_t path_off, query_off;
	struct hs_buf body;
};

enum hs_state {
	HS_OPEN,  /* reading and parsing requests */
	HS_DRAIN, /* no more requests: answer what is queued, then close */
	HS_LINGER /* response written after a refusal: discard input until EOF */
};

struct hs_conn;

struct http_exchange {
	struct hs_conn *conn; /* NULL once the client went away */
	struct http_exchange *next;
	int replied;
	int close_after;
	int head;
	int keep_alive;
	char *resp;
	size_t resp_len;
	struct http_request req;
	char *arena;
	struct http_header *headers;
	char *body;
	char peer[64];
};

struct hs_conn {
	struct http_server *srv;
	struct hs_conn *prev, *next; /* in srv->fresh or srv->used, oldest first */
	int used;                    /* a request was handed to the handler: in srv->used */
	int fd;
	ev_io rio, wio;
	ev_timer timer;
	http_parser parser;
	char peer[64];
	int loopback;
	enum hs_state state;
	int busy;   /* entry points on the stack; freeing waits for 0 */
	int closed; /* fd closed, exchanges detached */
	int processing;
	int in_request;
	double req_start;
	double last_activity;
	double linger_deadline;
	size_t lingered;

	char *in; /* the server's read buffer while parsing it, else what was left unparsed */
	int in_owned;
	int in_waiting; /* bytes arrived behind the request in the handler */
	int in_eof;     /* the client stopped sending */
	size_t in_off, in_len;

	struct hs_build b;
	struct http_exchange *q_head, *q_tail; /* one request in the handler, then refusals */
	struct hs_buf out;
	size_t out_off;
};

struct hs_list {
	struct hs_conn *head, *tail; /* oldest first */
};

struct http_server {
	struct ev_loop *loop;
	int fd;
	int port;
	ev_io lio;
	ev_timer retry; /* accept paused after EMFILE */
	struct http_server_limits lim;
	http_handler handler;
	void *arg;
	/* connections that never had a request handled, then the others by last use:
	 * at max_conns the oldest idle one makes room for a new client */
	struct hs_list fresh, used;
	int nconns;
	double evict_logged;
	unsigned long evicted;
	char *rbuf;  /* HS_READ_BUF bytes shared by every connection */
	char *token; /* the auth rule: NULL = off */
	int public_reads;
	const char *const *public_paths; /* open to GET and HEAD (static files) */
};

static const http_parser_settings hs_settings;

/* ---- small buffers ------------------------------------------------------ */

static int hs_buf_reserve(struct hs_buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static int hs_buf_append(struct hs_buf *b, const void *data, size_t len)
{
	if (hs_buf_reserve(b, len) < 0)
		return -1;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

static int hs_buf_printf(struct hs_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int hs_buf_printf(struct hs_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || hs_buf_reserve(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

static void hs_buf_free(struct hs_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- status texts -------------------------------------------------------- */

static const struct {
	int status;
	const char *text;
} hs_status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {423, "Locked"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *http_status_text(int status)
{
	for (size_t i = 0; i < sizeof(hs_status_texts) / sizeof(hs_status_texts[0]); i++)
		if (hs_status_texts[i].status == status)
			return hs_status_texts[i].text;
	if (status >= 200 && status < 300)
		return "Success";
	if (status >= 300 && status < 400)
		return "Redirection";
	if (status >= 400 && status < 500)
		return "Client Error";
	return "Server Error";
}

/* ---- exchanges ----------------------------------------------------------- */

static void hs_exchange_free(struct http_exchange *x)
{
	free(x->resp);
	free(x->arena);
	free(x->headers);
	free(x->body);
	free(x);
}

static void hs_exchange_drop_request(struct http_exchange *x)
{
	free(x->arena);
	free(x->headers);
	free(x->body);
	x->arena = NULL;
	x->headers = NULL;
	x->body = NULL;
	memset(&x->req, 0, sizeof(x->req));
}

static void hs_queue_push(struct hs_conn *c, struct http_exchange *x)
{
	x->conn = c;
	if (c->q_tail)
		c->q_tail->next = x;
	else
		c->q_head = x;
	c->q_tail = x;
}

/* ---- connections --------------------------------------------------------- */

static void hs_build_reset(struct hs_build *b)
{
	hs_buf_free(&b->arena);
	hs_buf_free(&b->body);
	free(b->hdrs);
	memset(b, 0, sizeof(*b));
}

static void hs_conn_free(struct hs_conn *c)
{
	hs_build_reset(&c->b);
	hs_buf_free(&c->out);
	if (c->in_owned)
		free(c->in);
	free(c);
}

static struct hs_list *hs_conn_list(struct hs_conn *c)
{
	return c->used ? &c->srv->used : &c->srv->fresh;
}

static void hs_list_unlink(struct hs_list *l, struct hs_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

static void hs_list_append(struct hs_list *l, struct hs_conn *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

/* A request is handed to the handler: the connection is now the most
 * recently used one. */
static void hs_conn_touch(struct hs_conn *c)
{
	hs_list_unlink(hs_conn_list(c), c);
	c->used = 1;
	hs_list_append(&c->srv->used, c);
}

static struct hs_conn *hs_server_victim(const struct http_server *srv);

/* Accepting waits only while every connection has a request in progress. */
static void hs_server_resume_accept(struct http_server *srv)
{
	if (srv->fd >= 0 && !ev_is_active(&srv->lio) && !ev_is_active(&srv->retry) &&
	    (srv->nconns < srv->lim.max_conns || hs_server_victim(srv)))
		ev_io_start(srv->loop, &srv->lio);
}

/* Close the socket and detach the queue; the struct goes when nothing
 * on the stack uses it any more. */
static void hs_conn_close(struct hs_conn *c)
{
	struct http_server *srv = c->srv;

	if (c->closed)
		return;
	c->closed = 1;
	ev_io_stop(srv->loop, &c->rio);
	ev_io_stop(srv->loop, &c->wio);
	ev_timer_stop(srv->loop, &c->timer);
	close(c->fd);
	c->fd = -1;
	hs_list_unlink(hs_conn_list(c), c);
	srv->nconns--;

	struct http_exchange *x = c->q_head, *next;
	for (; x; x = next) {
		next = x->next;
		x->next = NULL;
		if (x->replied)
			hs_exchange_free(x);
		else
			x->conn = NULL; /* freed by its reply */
	}
	c->q_head = c->q_tail = NULL;
	hs_server_resume_accept(srv);
	if (c->busy == 0)
		hs_conn_free(c);
}

static void hs_conn_update(struct hs_conn *c);
static void hs_conn_process(struct hs_conn *c);

static void hs_conn_hold(struct hs_conn *c)
{
	c->busy++;
}

static void hs_conn_release(struct hs_conn *c)
{
	if (--c->busy > 0)
		return;
	if (c->closed)
		hs_conn_free(c);
	else
		hs_conn_update(c);
}

/* Move replied responses at the head of the queue to the output and write. */
static void hs_conn_flush(struct hs_conn *c)
{
	while (c->q_head && c->q_head->replied) {
		struct http_exchange *x = c->q_head;
		c->q_head = x->next;
		if (!c->q_head)
			c->q_tail = NULL;
		if (hs_buf_append(&c->out, x->resp, x->resp_len) < 0) {
			log_err("http: %s: out of memory for a response", c->peer);
			hs_exchange_free(x);
			hs_conn_close(c);
			return;
		}
		if (x->close_after)
			c->state = c->state == HS_LINGER ? HS_LINGER : HS_DRAIN;
		hs_exchange_free(x);
	}

	while (c->out_off < c->out.len) {
		ssize_t n =
		    send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			log_debug("http: %s: write: %s", c->peer, strerror(errno));
			hs_conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
		c->last_activity = ev_now(c->srv->loop);
	}
	if (c->out_off == c->out.len) {
		c->out.len = c->out_off = 0;
		if (c->out.cap > 65536)
			hs_buf_free(&c->out);
	}
}

/* Queue a refusal (after any earlier responses) and stop reading requests. */
static void hs_conn_refuse(struct hs_conn *c, int status, const char *msg)
{
	struct http_exchange *x = calloc(1, sizeof(*x));
	json_t *j = json_pack("{s:s}", "error", msg);
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct hs_buf r = {0};

	json_decref(j);
	log_info("http: %s: %d %s: %s", c->peer, status, http_status_text(status), msg);
	c->in_request = 0;
	c->state = HS_DRAIN;
	if (!x || !body ||
	    hs_buf_printf(&r,
	                  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                  status, http_status_text(status), strlen(body), body) < 0) {
		free(x);
		free(body);
		hs_buf_free(&r);
		hs_conn_close(c);
		return;
	}
	free(body);
	x->replied = 1;
	x->close_after = 1;
	x->resp = r.data;
	x->resp_len = r.len;
	hs_queue_push(c, x);
	hs_conn_flush(c);
}

static void hs_conn_start_linger(struct hs_conn *c)
{
	c->state = HS_LINGER;
	c->linger_deadline = ev_now(c->srv->loop) + HS_LINGER_SECS;
	c->lingered = 0;
	shutdown(c->fd, SHUT_WR);
}

/* Recompute which watchers run and when the timer fires. */
static void hs_conn_update(struct hs_conn *c)
{
	struct ev_loop *loop = c->srv->loop;
	double deadline = 0;
	int want_read, want_write;

	if (c->closed)
		return;
	if (c->in_eof && c->state == HS_OPEN && !c->q_head && c->in_off == c->in_len) {
		c->in_request = 0; /* what was read is answered: no more will come */
		c->state = HS_DRAIN;
	}
	if (c->state == HS_DRAIN && !c->q_head && c->out_off == c->out.len) {
		/* a client that may still be sending gets a staged close, so that
		 * its unread bytes cannot turn the close into a reset that
		 * destroys the answer (RFC 9112, section 9.6) */
		if (c->in_eof) {
			hs_conn_close(c);
			return;
		}
		hs_conn_start_linger(c);
	}
	want_write = c->out_off < c->out.len;
	/* while a request is in the handler, read only to see the client leave */
	want_read = c->state == HS_LINGER || (c->q_head && !c->in_waiting && !c->in_eof) ||
	            (c->state == HS_OPEN && !c->q_head && c->in_off == c->in_len &&
	             c->out.len - c->out_off < HS_OUT_HIGH);
	if (want_read && !ev_is_active(&c->rio))
		ev_io_start(loop, &c->rio);
	else if (!want_read && ev_is_active(&c->rio))
		ev_io_stop(loop, &c->rio);
	if (want_write && !ev_is_active(&c->wio))
		ev_io_start(loop, &c->wio);
	else if (!want_write && ev_is_active(&c->wio))
		ev_io_stop(loop, &c->wio);

	if (c->state == HS_LINGER)
		deadline = c->linger_deadline;
	else if (c->in_request && c->state == HS_OPEN)
		deadline = c->req_start + c->srv->lim.read_timeout;
	else if (want_write)
		deadline = c->last_activity + c->srv->lim.idle_timeout;
	else if (!c->q_head && c->state == HS_OPEN)
		deadline = c->last_activity + c->srv->lim.idle_timeout;

	ev_timer_stop(loop, &c->timer);
	if (deadline > 0) {
		double after = deadline - ev_now(loop);
		ev_timer_set(&c->timer, after > 0 ? after : 0, 0);
		ev_timer_start(loop, &c->timer);
	}
	if (!c->q_head && !ev_is_active(&c->srv->lio))
		hs_server_resume_accept(c->srv); /* this one may now make room */
}

static void hs_conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hs_conn *c = w->data;
	double now = ev_now(loop);

	hs_conn_hold(c);
	if (c->state == HS_LINGER) {
		if (now >= c->linger_deadline)
			hs_conn_close(c);
	} else if (c->in_request && c->state == HS_OPEN) {
		if (now >= c->req_start + c->srv->lim.read_timeout) {
			char msg[96];
			snprintf(msg, sizeof(msg), "request not received within %g s",
			         c->srv->lim.read_timeout);
			hs_conn_refuse(c, 408, msg);
		}
	} else if (c->out_off < c->out.len || (!c->q_head && c->state == HS_OPEN)) {
		if (now >= c->last_activity + c->srv->lim.idle_timeout) {
			log_debug("http: %s: idle, closing", c->peer);
			hs_conn_close(c);
		}
	}
	hs_conn_release(c);
}

static void hs_conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hs_conn *c = w->data;

	hs_conn_hold(c);
	hs_conn_flush(c);
	if (!c->closed && c->state == HS_OPEN && c->in_off < c->in_len)
		hs_conn_process(c);
	hs_conn_release(c);
}

/* Copy what is left unparsed of the shared read buffer, so that an idle
 * connection holds no buffer at all. */
static void hs_conn_keep_input(struct hs_conn *c)
{
	size_t left = c->in_len - c->in_off;

	if (c->in_owned)
		return;
	if (c->closed || left == 0) {
		c->in = NULL;
		c->in_off = c->in_len = 0;
		return;
	}
	char *p = malloc(left);
	if (!p) {
		log_err("http: %s: out of memory keeping %zu bytes of a request", c->peer, left);
		c->in = NULL;
		hs_conn_close(c);
		return;
	}
	memcpy(p, c->in + c->in_off, left);
	c->in = p;
	c->in_owned = 1;
	c->in_off = 0;
	c->in_len = left;
}

/* Everything read was parsed: the connection holds no input. */
static void hs_conn_drop_input(struct hs_conn *c)
{
	if (c->in_owned)
		free(c->in);
	c->in = NULL;
	c->in_owned = 0;
	c->in_off = c->in_len = 0;
}

static void hs_conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hs_conn *c = w->data;
	ssize_t n;

	hs_conn_hold(c);
	if (c->state == HS_LINGER) {
		n = recv(c->fd, c->srv->rbuf, HS_READ_BUF, 0);
		if (n > 0)
			c->lingered += (size_t)n;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
		    c->lingered > HS_LINGER_BYTES)
			hs_conn_close(c);
		hs_conn_release(c);
		return;
	}
	if (c->q_head) {
		char byte;
		n = recv(c->fd, &byte, 1, MSG_PEEK);
		if (n > 0) {
			c->in_waiting = 1; /* read once the answer is out */
		} else if (n == 0) {
			c->in_eof = 1; /* answer what was read, then close */
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			log_debug("http: %s: left before its answer: %s", c->peer, strerror(errno));
			hs_conn_close(c);
		}
		hs_conn_release(c);
		return;
	}
	if (c->state != HS_OPEN || c->in_off < c->in_len ||
	    c->out.len - c->out_off >= HS_OUT_HIGH) {
		hs_conn_release(c);
		return;
	}
	c->in_waiting = 0;
	n = recv(c->fd, c->srv->rbuf, HS_READ_BUF, 0);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			log_debug("http: %s: read: %s", c->peer, strerror(errno));
			hs_conn_close(c);
		}
	} else if (n == 0) {
		/* the client is done sending: answer what it asked, then close */
		c->in_request = 0;
		c->in_eof = 1;
		c->state = HS_DRAIN;
	} else {
		hs_conn_drop_input(c);
		c->in = c->srv->rbuf;
		c->in_off = 0;
		c->in_len = (size_t)n;
		c->last_activity = ev_now(loop);
		hs_conn_process(c);
		hs_conn_keep_input(c);
	}
	hs_conn_release(c);
}

/* ---- parsing -------------------------------------------------------------- */

static int hs_fail(struct hs_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int hs_fail(struct hs_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	c->b.err_status = status;
	va_start(ap, fmt);
	vsnprintf(c->b.err_msg, sizeof(c->b.err_msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int hs_count_header_bytes(struct hs_conn *c, size_t len)
{
	c->b.header_bytes += len;
	if (c->b.header_bytes > c->srv->lim.max_header)
		return hs_fail(c, 431, "request headers larger than %zu bytes",
		               c->srv->lim.max_header);
	return 0;
}

/* Start a new string in the arena when the kind of data changes. */
static int hs_switch(struct hs_conn *c, enum hs_part part)
{
	struct hs_build *b = &c->b;

	if (b->last == part)
		return 0;
	if (b->last != HS_NONE && hs_buf_append(&b->arena, "", 1) < 0)
		return hs_fail(c, 500, "out of memory");
	if (part == HS_FIELD) {
		if (b->nhdrs == HS_MAX_HEADERS)
			return hs_fail(c, 431, "more than %d request headers", HS_MAX_HEADERS);
		if (b->nhdrs == b->hdrs_cap) {
			size_t cap = b->hdrs_cap ? b->hdrs_cap * 2 : 16;
			struct hs_hdr_off *h = realloc(b->hdrs, cap * sizeof(*h));
			if (!h)
				return hs_fail(c, 500, "out of memory");
			b->hdrs = h;
			b->hdrs_cap = cap;
		}
		b->hdrs[b->nhdrs].name = b->arena.len;
		b->hdrs[b->nhdrs].value = SIZE_MAX;
		b->nhdrs++;
	} else if (part == HS_VALUE) {
		b->hdrs[b->nhdrs - 1].value = b->arena.len;
	}
	b->last = part;
	return 0;
}

static int hs_on_message_begin(http_parser *p)
{
	struct hs_conn *c = p->data;

	hs_build_reset(&c->b);
	c->in_request = 1;
	c->req_start = ev_now(c->srv->loop);
	return 0;
}

static int hs_on_url(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;

	if (hs_count_header_bytes(c, len) < 0 || hs_switch(c, HS_URL) < 0)
		return -1;
	if (hs_buf_append(&c->b.arena, at, len) < 0)
		return hs_fail(c, 500, "out of memory");
	return 0;
}

static int hs_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;

	if (hs_count_header_bytes(c, len + (c->b.last != HS_FIELD ? 4 : 0)) < 0)
		return -1;
	if (c->b.headers_done) /* chunked trailers: counted, not kept */
		return 0;
	if (hs_switch(c, HS_FIELD) < 0)
		return -1;
	if (hs_buf_append(&c->b.arena, at, len) < 0)
		return hs_fail(c, 500, "out of memory");
	return 0;
}

static int hs_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;

	if (hs_count_header_bytes(c, len) < 0)
		return -1;
	if (c->b.headers_done)
		return 0;
	if (hs_switch(c, HS_VALUE) < 0)
		return -1;
	if (hs_buf_append(&c->b.arena, at, len) < 0)
		return hs_fail(c, 500, "out of memory");
	return 0;
}

static int hs_hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decode src[0..len) into out (room for len + 1). plus: '+' is a
 * space (query strings). -1 on a bad escape or an encoded NUL. */
static int hs_url_decode(const char *src, size_t len, char *out, int plus)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (src[i] == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -1;
			hi = hs_hexval(src[i + 1]);
			lo = hs_hexval(src[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (plus && src[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = src[i];
		}
	}
	out[o] = '\0';
	return 0;
}

static const char *hs_build_header(const struct hs_build *b, const char *name)
{
	for (size_t i = 0; i < b->nhdrs; i++)
		if (strcasecmp(b->arena.data + b->hdrs[i].name, name) == 0)
			return b->hdrs[i].value == SIZE_MAX ? "" : b->arena.data + b->hdrs[i].value;
	return NULL;
}

static int hs_on_headers_complete(http_parser *p)
{
	struct hs_conn *c = p->data;
	struct hs_build *b = &c->b;
	const struct http_server_limits *lim = &c->srv->lim;
	const char *url, *cl = NULL;
	size_t url_len, ncl = 0, nte = 0;
	struct http_parser_url u;

	if (b->last == HS_NONE)
		return hs_fail(c, 400, "empty request target");
	if (hs_buf_append(&b->arena, "", 1) < 0)
		return hs_fail(c, 500, "out of memory");
	b->last = HS_NONE;
	b->headers_done = 1;

	/* trailing blanks are not part of a header value */
	for (size_t i = 0; i < b->nhdrs; i++) {
		if (b->hdrs[i].value == SIZE_MAX)
			continue;
		char *v = b->arena.data + b->hdrs[i].value;
		size_t n = strlen(v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			v[--n] = '\0';
		const char *name = b->arena.data + b->hdrs[i].name;
		if (strcasecmp(name, "Content-Length") == 0) {
			if (cl && strcmp(cl, v) != 0)
				return hs_fail(c, 400, "conflicting Content-Length headers");
			cl = v;
			ncl++;
		} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
			nte++;
		}
	}
	if (ncl && nte)
		return hs_fail(c, 400, "both Content-Length and Transfer-Encoding given");

	if (p->method == HTTP_CONNECT)
		return hs_fail(c, 405, "method CONNECT is not supported");

	url = b->arena.data; /* the request target is the arena's first string */
	url_len = strlen(url);
	b->path_off = b->arena.len;
	if (url_len == 1 && url[0] == '*') {
		if (hs_buf_append(&b->arena, "*", 2) < 0)
			return hs_fail(c, 500, "out of memory");
		b->query_off = b->arena.len - 1;
	} else {
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, url_len, 0, &u) != 0)
			return hs_fail(c, 400, "invalid request target");
		const char *path = "/";
		size_t path_len = 1, qlen = 0;
		if (u.field_set & (1 << UF_PATH)) {
			path = url + u.field_data[UF_PATH].off;
			path_len = u.field_data[UF_PATH].len;
		}
		if (u.field_set & (1 << UF_QUERY))
			qlen = u.field_data[UF_QUERY].len;
		if (hs_buf_reserve(&b->arena, path_len + qlen + 2) < 0)
			return hs_fail(c, 500, "out of memory");
		url = b->arena.data; /* may have moved */
		if (u.field_set & (1 << UF_PATH))
			path = url + u.field_data[UF_PATH].off;
		if (hs_url_decode(path, path_len, b->arena.data + b->path_off, 0) < 0)
			return hs_fail(c, 400, "invalid percent-encoding in the request path");
		b->arena.len += strlen(b->arena.data + b->path_off) + 1;
		b->query_off = b->arena.len;
		if (qlen)
			memcpy(b->arena.data + b->arena.len, url + u.field_data[UF_QUERY].off,
			       qlen);
		b->arena.data[b->arena.len + qlen] = '\0';
		b->arena.len += qlen + 1;
	}

	b->keep_alive = http_should_keep_alive(p);
	b->head = p->method == HTTP_HEAD;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > lim->max_body)
		return hs_fail(c, 413, "request body of %llu bytes is larger than %zu bytes",
		               (unsigned long long)p->content_length, lim->max_body);

	const char *expect = hs_build_header(b, "Expect");
	if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_major == 1 &&
	    p->http_minor >= 1 && !c->q_head && c->out_off == c->out.len) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (hs_buf_append(&c->out, cont, sizeof(cont) - 1) < 0)
			return hs_fail(c, 500, "out of memory");
		hs_conn_flush(c);
	}
	return 0;
}

static int hs_on_body(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_build *b = &c->b;

	if (b->body.len + len > c->srv->lim.max_body)
		return hs_fail(c, 413, "request body larger than %zu bytes", c->srv->lim.max_body);
	if (hs_buf_append(&b->body, at, len) < 0)
		return hs_fail(c, 500, "out of memory");
	return 0;
}

static int hs_on_message_complete(http_parser *p)
{
	struct hs_conn *c = p->data;

	c->b.complete = 1;
	c->b.upgrade = p->upgrade;
	c->in_request = 0;
	http_parser_pause(p, 1); /* hand the request over outside the parser */
	return 0;
}

static const http_parser_settings hs_settings = {
    .on_message_begin = hs_on_message_begin,
    .on_url = hs_on_url,
    .on_header_field = hs_on_header_field,
    .on_header_value = hs_on_header_value,
    .on_headers_complete = hs_on_headers_complete,
    .on_body = hs_on_body,
    .on_message_complete = hs_on_message_complete,
};

static int hs_public_path(const struct http_server *srv, const char *path)
{
	for (const char *const *p = srv->public_paths; p && *p; p++) {
		size_t n = strlen(*p);
		if (n && (*p)[n - 1] == '*' ? strncmp(path, *p, n - 1) == 0 : strcmp(path, *p) == 0)
			return 1;
	}
	return 0;
}

/* The auth rule every listener built on this server shares: with a token,
 * only /health_check is open, with public_reads GET and HEAD too, and GET
 * and HEAD of the public paths. 0 after answering 401. */
static int hs_authorized(const struct http_server *srv, struct http_exchange *x)
{
	const struct http_request *req = &x->req;
	int read = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;

	if (!srv->token || strcmp(req->path, "/health_check") == 0)
		return 1;
	if (read && (srv->public_reads || hs_public_path(srv, req->path)))
		return 1;
	return http_require_token(x, req, srv->token);
}

/* Turn the parsed request into an exchange and call the handler. */
static void hs_conn_dispatch(struct hs_conn *c)
{
	struct hs_build *b = &c->b;
	struct http_exchange *x = calloc(1, sizeof(*x));
	struct http_header *hdrs = calloc(b->nhdrs + 1, sizeof(*hdrs));

	if (!x || !hdrs) {
		free(x);
		free(hdrs);
		hs_conn_refuse(c, 500, "out of memory");
		return;
	}
	x->arena = b->arena.data;
	x->body = b->body.data;
	x->headers = hdrs;
	for (size_t i = 0; i < b->nhdrs; i++) {
		hdrs[i].name = x->arena + b->hdrs[i].name;
		hdrs[i].value = b->hdrs[i].value == SIZE_MAX ? "" : x->arena + b->hdrs[i].value;
	}
	x->head = b->head;
	x->keep_alive = b->keep_alive && !b->upgrade;
	snprintf(x->peer, sizeof(x->peer), "%s", c->peer);
	x->req.method = http_method_str((enum http_method)c->parser.method);
	x->req.path = x->arena + b->path_off;
	x->req.query = x->arena + b->query_off;
	x->req.headers = hdrs;
	x->req.nheaders = b->nhdrs;
	x->req.body = x->body ? x->body : "";
	x->req.body_len = b->body.len;
	x->req.peer = x->peer;
	x->req.peer_is_loopback = c->loopback;
	b->arena.data = NULL;
	b->body.data = NULL;
	hs_build_reset(b);

	if (!x->keep_alive)
		c->state = HS_DRAIN; /* read nothing after a request that closes */
	hs_queue_push(c, x);
	hs_conn_touch(c);
	if (hs_authorized(c->srv, x))
		c->srv->handler(x, &x->req, c->srv->arg);
}

static void hs_conn_process(struct hs_conn *c)
{
	if (c->processing)
		return;
	c->processing = 1;
	hs_conn_hold(c);
	/* a client that sends without reading waits until its responses drain */
	while (!c->closed && c->state == HS_OPEN && c->in_off < c->in_len && !c->q_head &&
	       c->out.len - c->out_off < HS_OUT_HIGH) {
		size_t n = http_parser_execute(&c->parser, &hs_settings, c->in + c->in_off,
		                               c->in_len - c->in_off);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

		c->in_off += n;
		if (c->closed)
			break;
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
		} else if (e != HPE_OK) {
			if (c->b.err_status)
				hs_conn_refuse(c, c->b.err_status, c->b.err_msg);
			else if (e == HPE_HEADER_OVERFLOW)
				hs_conn_refuse(c, 431, "request headers too large");
			else {
				char msg[160];
				snprintf(msg, sizeof(msg), "malformed request: %s",
				         http_errno_description(e));
				hs_conn_refuse(c, 400, msg);
			}
			break;
		}
		if (c->b.complete)
			hs_conn_dispatch(c);
		else if (n == 0)
			break;
	}
	if (!c->closed && c->in_off == c->in_len && c->in_owned)
		hs_conn_drop_input(c);
	c->processing = 0;
	hs_conn_release(c);
}

/* ---- accepting ------------------------------------------------------------ */

static void hs_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_server *srv = w->data;

	ev_timer_stop(loop, w);
	hs_server_resume_accept(srv);
}

/* A connection that may be closed to let a new client in: one that never had
 * a request handled (the oldest first), else the least recently used one
 * with no request in progress and nothing left to send. */
static struct hs_conn *hs_server_victim(const struct http_server *srv)
{
	if (srv->fresh.head)
		return srv->fresh.head;
	for (struct hs_conn *c = srv->used.head; c; c = c->next)
		if (!c->q_head && c->out_off == c->out.len && !c->in_request)
			return c;
	return NULL;
}

static void hs_server_evict(struct http_server *srv, struct hs_conn *victim)
{
	double now = ev_now(srv->loop);

	srv->evicted++;
	if (now >= srv->evict_logged + HS_EVICT_LOG_EVERY) {
		log_warn("http: port %d: %d connections are open (the limit): closing idle ones to "
		         "let new clients in (%lu so far)",
		         srv->port, srv->nconns, srv->evicted);
		srv->evict_logged = now;
	}
	log_debug("http: %s: closed to make room for a new client", victim->peer);
	hs_conn_close(victim);
}

static void hs_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_server *srv = w->data;

	for (;;) {
		struct hs_conn *victim = NULL;
		if (srv->nconns >= srv->lim.max_conns && !(victim = hs_server_victim(srv))) {
			ev_io_stop(loop, &srv->lio); /* all busy: resumed when one closes */
			return;
		}
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd =
		    accept4(srv->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* out of descriptors: an idle client gives its one back */
			if ((errno == EMFILE || errno == ENFILE) &&
			    (victim || (victim = hs_server_victim(srv)))) {
				hs_server_evict(srv, victim);
				continue;
			}
			log_err("http: accept on port %d: %s", srv->port, strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				ev_io_stop(loop, &srv->lio);
				ev_timer_set(&srv->retry, 1.0, 0);
				ev_timer_start(loop, &srv->retry);
			}
			return;
		}
		struct hs_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			log_err("http: out of memory accepting a connection");
			close(fd);
			return;
		}
		if (victim)
			hs_server_evict(srv, victim);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->srv = srv;
		c->fd = fd;
		net_sockaddr_str((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
		c->loopback = net_sockaddr_is_loopback((struct sockaddr *)&ss);
		c->last_activity = ev_now(loop);
		http_parser_init(&c->parser, HTTP_REQUEST);
		c->parser.data = c;
		ev_io_init(&c->rio, hs_conn_read_cb, fd, EV_READ);
		ev_io_init(&c->wio, hs_conn_write_cb, fd, EV_WRITE);
		ev_init(&c->timer, hs_conn_timer_cb);
		c->rio.data = c->wio.data = c->timer.data = c;
		hs_list_append(&srv->fresh, c);
		srv->nconns++;
		hs_conn_update(c);
	}
}

/* ---- public ---------------------------------------------------------------- */

/* 10,000 connections, or half the descriptors the process may open: the
 * rest of the process needs some too. */
static int hs_default_max_conns(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur / 2 >= HS_DEFAULT_MAX_CONNS)
		return HS_DEFAULT_MAX_CONNS;
	return rl.rlim_cur / 2 > 16 ? (int)(rl.rlim_cur / 2) : 16;
}

struct http_server *http_server_new(struct ev_loop *loop, const char *listen,
                                    const struct http_server_limits *limits, http_handler handler,
                                    void *arg, char *err, size_t errlen)
{
	int fd = net_listen(listen, 511, err, errlen);
	if (fd < 0)
		return NULL;
	struct http_server *srv = http_server_adopt(loop, fd, limits, handler, arg, err, errlen);
	if (!srv)
		close(fd);
	return srv;
}

struct http_server *http_server_adopt(struct ev_loop *loop, int fd,
                                      const struct http_server_limits *limits, http_handler handler,
                                      void *arg, char *err, size_t errlen)
{
	struct http_server *srv;
	struct http_server_limits lim = {0};

	if (!loop || !handler) {
		snprintf(err, errlen, "http server needs a loop and a handler");
		return NULL;
	}
	if (limits)
		lim = *limits;
	if (lim.read_timeout < 0 || lim.idle_timeout < 0 || lim.max_conns < 0 ||
	    lim.read_timeout != lim.read_timeout || lim.idle_timeout != lim.idle_timeout) {
		snprintf(err, errlen, "http server limits must not be negative");
		return NULL;
	}
	if (!lim.max_header)
		lim.max_header = 32 * 1024;
	if (!lim.max_body)
		lim.max_body = 1024 * 1024;
	if (lim.read_timeout == 0)
		lim.read_timeout = 10;
	if (lim.idle_timeout == 0)
		lim.idle_timeout = 60;
	if (!lim.max_conns)
		lim.max_conns = hs_default_max_conns();

	srv = calloc(1, sizeof(*srv));
	if (srv)
		srv->rbuf = malloc(HS_READ_BUF);
	if (!srv || !srv->rbuf) {
		free(srv);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->fd = fd;
	srv->port = net_local_port(srv->fd);
	srv->loop = loop;
	srv->lim = lim;
	srv->handler = handler;
	srv->arg = arg;
	ev_io_init(&srv->lio, hs_accept_cb, srv->fd, EV_READ);
	srv->lio.data = srv;
	ev_init(&srv->retry, hs_retry_cb);
	srv->retry.data = srv;
	ev_io_start(loop, &srv->lio);
	return srv;
}

void http_server_set_public_paths(struct http_server *srv, const char *const *paths)
{
	srv->public_paths = paths;
}

int http_server_set_auth(struct http_server *srv, const char *token, int public_reads)
{
	char *t = token && *token ? strdup(token) : NULL;

	if (token && *token && !t)
		return -1;
	if (srv->token)
		explicit_bzero(srv->token, strlen(srv->token));
	free(srv->token);
	srv->token = t;
	srv->public_reads = public_reads;
	return 0;
}

int http_server_port(const struct http_server *srv)
{
	return srv ? srv->port : -1;
}

void http_server_free(struct http_server *srv)
{
	if (!srv)
		return;
	ev_io_stop(srv->loop, &srv->lio);
	ev_timer_stop(srv->loop, &srv->retry);
	close(srv->fd);
	srv->fd = -1;
	while (srv->fresh.head)
		hs_conn_close(srv->fresh.head);
	while (srv->used.head)
		hs_conn_close(srv->used.head);
	if (srv->token)
		explicit_bzero(srv->token, strlen(srv->token));
	free(srv->token);
	free(srv->rbuf);
	free(srv);
}

static int hs_header_ok(const char *h)
{
	const char *colon = strchr(h, ':');

	if (!colon || colon == h || strpbrk(h, "\r\n"))
		return 0;
	for (const char *p = h; p < colon; p++)
		if (*p <= ' ' || *p >= 127)
			return 0;
	return 1;
}

static int hs_header_is(const char *h, const char *name)
{
	size_t n = strlen(name);
	return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

void http_reply(struct http_exchange *x, int status, const char *content_type, const char *body,
                size_t len, const char *const *headers)
{
	struct hs_conn *c;
	struct hs_buf r = {0};
	int close_it, no_body;

	if (!x)
		return;
	if (x->replied) {
		log_err("http: a request was answered twice (status %d); ignoring the second",
		        status);
		return;
	}
	c = x->conn;
	if (!c || c->closed) {
		hs_exchange_free(x); /* the client left: nothing to send */
		return;
	}
	if (status < 200 || status > 599) {
		log_err("http: handler replied with invalid status %d to %s %s", status,
		        x->req.method, x->req.path);
		status = 500;
		content_type = NULL;
		body = NULL;
		len = 0;
		headers = NULL;
	}
	if (!body)
		len = 0;
	close_it = !x->keep_alive;
	for (size_t i = 0; headers && headers[i]; i++)
		if (hs_header_is(headers[i], "Connection") && strcasestr(headers[i], "close"))
			close_it = 1;
	no_body = status == 204 || status == 304;

	int rc = hs_buf_printf(&r, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
	if (content_type && !no_body && !strpbrk(content_type, "\r\n"))
		rc |= hs_buf_printf(&r, "Content-Type: %s\r\n", content_type);
	if (!no_body)
		rc |= hs_buf_printf(&r, "Content-Length: %zu\r\n", len);
	rc |= hs_buf_printf(&r, "Connection: %s\r\n", close_it ? "close" : "keep-alive");
	for (size_t i = 0; headers && headers[i]; i++) {
		const char *h = headers[i];
		if (!hs_header_ok(h)) {
			log_err("http: dropping malformed response header \"%.40s\"", h);
			continue;
		}
		if (hs_header_is(h, "Content-Length") || hs_header_is(h, "Connection") ||
		    hs_header_is(h, "Transfer-Encoding") ||
		    (content_type && hs_header_is(h, "Content-Type")))
			continue;
		rc |= hs_buf_printf(&r, "%s\r\n", h);
	}
	rc |= hs_buf_append(&r, "\r\n", 2);
	if (!x->head && !no_body && len)
		rc |= hs_buf_append(&r, body, len);
	if (rc) {
		log_err("http: out of memory building a response");
		hs_buf_free(&r);
		hs_exchange_drop_request(x);
		hs_conn_hold(c);
		hs_conn_close(c);
		hs_conn_release(c);
		return;
	}
	hs_exchange_drop_request(x);
	x->resp = r.data;
	x->resp_len = r.len;
	x->replied = 1;
	x->close_after = close_it;

	hs_conn_hold(c);
	hs_conn_flush(c);
	if (!c->closed && !c->processing && c->state == HS_OPEN && c->in_off < c->in_len)
		hs_conn_process(c); /* the pipeline had stalled on this reply */
	hs_conn_release(c);
}

/* Length of the UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 when it is not one. */
static int hs_utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	int n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong below U+0800 */
	else if (p[0] == 0xed)
		hi = 0x9f; /* U+D800..U+DFFF are surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong below U+10000 */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Replace bytes that are not valid UTF-8 so jansson accepts the text. */
static void hs_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		int n = hs_utf8_len(p);
		if (!n)
			*p++ = '?';
		else
			p += n;
	}
}

void http_reply_json(struct http_exchange *x, int status, json_t *json)
{
	char *text = json ? json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	json_decref(json);
	if (!text) {
		log_err("http: cannot serialise a JSON response");
		static const char fail[] =
		    "{\"error\":\"internal error: cannot serialise response\"}";
		http_reply(x, 500, "application/json", fail, sizeof(fail) - 1, NULL);
		return;
	}
	http_reply(x, status, "application/json", text, strlen(text), NULL);
	free(text);
}

void http_reply_error(struct http_exchange *x, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hs_utf8_sanitize(msg);
	http_reply_json(x, status, json_pack("{s:s}", "error", msg));
}

const struct http_request *http_exchange_request(const struct http_exchange *x)
{
	return x && !x->replied ? &x->req : NULL;
}

int http_exchange_alive(const struct http_exchange *x)
{
	return x && x->conn && !x->conn->closed && !x->conn->in_eof;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
	if (!req || !name)
		return NULL;
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

const char *http_request_query(const struct http_request *req, const char *name, char *buf,
                               size_t buflen)
{
	const char *q;

	if (!req || !name || !buf || buflen == 0 || !req->query)
		return NULL;
	q = req->query;
	while (*q) {
		const char *end = strchr(q, '&'), *eq;
		size_t plen, klen, vlen;
		if (!end)
			end = q + strlen(q);
		plen = (size_t)(end - q);
		eq = memchr(q, '=', plen);
		klen = eq ? (size_t)(eq - q) : plen;
		vlen = eq ? (size_t)(end - eq - 1) : 0;
		if (klen > 0 && klen < 256) {
			char key[256];
			if (hs_url_decode(q, klen, key, 1) == 0 && strcmp(key, name) == 0) {
				char *tmp = malloc(vlen + 1);
				const char *ret = NULL;
				if (tmp && hs_url_decode(eq ? eq + 1 : end, vlen, tmp, 1) == 0 &&
				    strlen(tmp) < buflen)
					ret = memcpy(buf, tmp, strlen(tmp) + 1);
				free(tmp);
				return ret;
			}
		}
		q = *end ? end + 1 : end;
	}
	return NULL;
}

json_t *http_request_json(struct http_exchange *x, const struct http_request *req)
{
	json_error_t jerr;
	json_t *j;

	j = json_loadb(req->body, req->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		http_reply_error(x, 400, "invalid JSON at line %d column %d: %s", jerr.line,
		                 jerr.column, jerr.text);
	return j;
}

static int hs_token_equal(const char *given, size_t glen, const char *token)
{
	size_t tlen = strlen(token);
	unsigned char diff = glen != tlen;

	/* time depends on the given length only, never on where a byte differs */
	for (size_t i = 0; i < glen; i++)
		diff |= (unsigned char)given[i] ^ (unsigned char)token[i % tlen];
	return diff == 0;
}

int http_request_has_token(const struct http_request *req, const char *token)
{
	const char *auth = http_request_header(req, "Authorization");

	if (!token || !*token)
		return 1;
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	const char *t = auth + 7;
	while (*t == ' ')
		t++;
	return hs_token_equal(t, strlen(t), token);
}

int http_require_token(struct http_exchange *x, const struct http_request *req, const char *token)
{
	static const char *const hdr_missing[] = {"WWW-Authenticate: Bearer realm=\"scaler\"",
	                                          NULL};
	static const char *const hdr_invalid[] = {
	    "WWW-Authenticate: Bearer realm=\"scaler\", error=\"invalid_token\"", NULL};
	const char *auth;
	static const char missing[] = "{\"error\":\"authorization required: send Authorization: "
	                              "Bearer <token>\"}";
	static const char invalid[] = "{\"error\":\"invalid bearer token\"}";

	if (!token || !*token)
		return 1;
	auth = http_request_header(req, "Authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		if (http_request_has_token(req, token))
			return 1;
		http_reply(x, 401, "application/json", invalid, sizeof(invalid) - 1, hdr_invalid);
		return 0;
	}
	http_reply(x, 401, "application/json", missing, sizeof(missing) - 1, hdr_missing);
	return 0;
}
