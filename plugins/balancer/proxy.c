/* The request path: client connections in, upstream connections out.
 *
 * Speed comes from few system calls (a proxy spends most of its time in the kernel): one read per
 * readable event into a per-connection buffer, one sendmsg per direction
 * with the request/response head forwarded as the bytes that arrived and
 * the few changed headers spliced in by the iovec, watchers that stay armed,
 * buffers and connection structs from free lists, and upstream keep-alive.
 *
 * One request of a client connection is in flight at a time; pipelined
 * requests wait in its buffer. The request's bytes stay in the buffer until
 * its response starts, so a failed attempt can be replayed on another
 * server (bodies up to retry_body_size).
 *
 * With no alive server (a zone scaled to zero, or its first server still
 * starting) a request is held instead of answered 503: at most hold_max of
 * them, in arrival order, each for at most hold_timeout; its body keeps
 * arriving into its buffer (up to retry_body_size, then the client waits).
 * The first held request wakes the primary (wake.c); when a server turns
 * alive they are dispatched to it in the order they came. */
#include "config.h"

#include "bal.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUTQ_MAX 28
/* a forwarded head: its kept pieces, the added lines, the body */
_Static_assert(H1_MAX_DROP + 1 + 4 + 1 <= OUTQ_MAX, "room for a head in the queue");
#define BUF_FREE_MAX 256
/* Large buffers: a request kept for a retry (retry_body_size), a large
 * body read in fewer, larger reads. Pooled apart, fewer of them. */
#define BUF_LARGE_MIN (64 << 10)
#define BUF_LARGE_FREE_MAX 16
/* A server connection reads into twice the client's buffer size: a
 * response of 16 KiB and its head come in one read and go out in one
 * write, where half of that took two of each (HACKING, "Bodies", has the
 * measurements). Held only while a response is read. */
#define BUF_RESP_FACTOR 2
/* A response body of a known length at least this large goes from the
 * server's socket to the client's through a pipe (splice), never copied
 * through the proxy's memory. */
#define SPLICE_MIN (32 << 10)
#define PIPE_SIZE (256 << 10)
#define PIPE_FREE_MAX 64
#define CLOSING_LINGER 2.0

struct buf {
	struct buf *next;
	uint32_t cap;
	uint8_t big; /* 1: malloc'd for a large retryable request, not pooled;
	              * 2: a large buffer (buf_get_large), pooled apart;
	              * 3: a server connection's read buffer (buf_get_resp) */
	char data[];
};

struct outq {
	struct iovec iov[OUTQ_MAX];
	uint8_t i, n;  /* pending entries [i, n) */
	uint64_t sent; /* bytes written, ever */
};

enum c_phase {
	C_IDLE,     /* between requests, nothing buffered */
	C_HEAD,     /* part of a request head arrived */
	C_EXCHANGE, /* a request is being relayed */
	C_TUNNEL,   /* upgraded (WebSocket): raw bytes both ways */
	C_CLOSING,  /* error sent: wait for the client to read it, then close */
	C_H2,       /* an HTTP/2 connection: its streams are exchanges of their own */
};

enum u_state { U_CONNECTING, U_BUSY, U_IDLE };

struct uconn {
	struct uconn *prev, *next; /* server's idle list */
	struct bal *b;
	struct server *srv;
	struct cconn *c;
	int fd;
	ev_io io;
	struct buf *in;
	uint32_t in_len, in_off; /* [in_off, in_len) not yet relayed */
	size_t scan;
	uint8_t state;
	uint8_t reused;    /* served a response before */
	uint8_t head_done; /* final response head seen */
	uint8_t resp_done;
	uint8_t no_reuse;
	uint8_t body;
	unsigned ninterim; /* 1xx responses to the current request */
	uint64_t body_left;
	struct h1_chunk ck;
	struct h1_head rs;
	double since;
	struct outq out;   /* request bytes to the server */
	int pr, pw;        /* the pipe of a spliced body, -1 when none */
	uint32_t pipe_len; /* body bytes in the pipe, not yet at the client */
	uint8_t splicing;  /* the rest of the body goes through the pipe */
};

struct cconn {
	struct cconn *prev, *next; /* b->conns */
	struct bal *b;
	struct uconn *u; /* the server connection of the exchange */
	int fd;
	ev_io io;
	struct buf *in;
	uint32_t in_len;
	uint32_t rq_start, rq_end, rq_sent; /* current request in the buffer */
	size_t scan;
	uint8_t phase;
	uint8_t rq_done;    /* every byte of the request arrived */
	uint8_t rq_trimmed; /* sent bytes were dropped to make room: no retry */
	uint8_t head_sent;  /* the head went to the current upstream */
	uint8_t resp_started;
	uint8_t close_after;
	uint8_t eof;
	uint8_t read_blocked;
	uint8_t ntried;
	uint8_t last_timeout; /* the last attempt timed out connecting */
	uint8_t splice_ok;    /* a plain socket: bodies may be spliced to it (not under TLS) */
	uint8_t body_only;    /* the response is out; the rest of the body goes to u (dropped
	                       * without u), then the connection is kept */
	uint8_t trusted;      /* the client is a trusted proxy (trusted_proxies) */
	uint8_t fwd_len, fwd_proto_len; /* of fwd, of its X-Forwarded-Proto line */
	uint64_t rq_body_left, rq_total;
	struct h1_chunk ck;
	struct h1_head rq;
	struct server *tried[8];
	double since, wsince;
	double sent_at;              /* the current attempt went to its server (stats.c latency) */
	struct cconn *hprev, *hnext; /* b->held_first..held_last while held */
	double held_at;
	uint8_t held;
	/* the access log's: its request started, its line is written, the
	 * bytes sent before its response, its status, its head's method and
	 * target when a long body pushed them out of the buffer */
	uint8_t logged;
	uint16_t resp_status;
	double rq_at;
	uint64_t out_mark;
	char *saved_line;
	uint16_t saved_mlen, saved_plen;
	char client[INET6_ADDRSTRLEN];
	struct ssl_st *ssl; /* TLS (tls.c), NULL for plain HTTP */
	uint8_t tls_rww;    /* the TLS layer must write before it reads on */
	uint8_t alpn_checked;
	uint8_t dead;        /* closed: on the free list */
	uint8_t stream_done; /* a stream's response is complete */
	uint8_t want_write;  /* an HTTP/2 connection has frames to write */
	struct h2conn *h2;   /* the HTTP/2 session of a connection in C_H2 */
	struct h2s *h2s;     /* an HTTP/2 stream's exchange: its stream (no socket) */
	const char *tls_ver; /* a stream's: its connection's TLS version */
	struct outq out;     /* response bytes to the client */
	char fwd[176];       /* the forwarding lines the proxy adds to each request */
};

static void c_close(struct cconn *c);
static void c_finish(struct cconn *c);
static void c_next(struct cconn *c);
static void c_dispatch(struct cconn *c);
static void c_send_upstream(struct cconn *c);
static void c_error(struct cconn *c, int status);
static void c_arm(struct cconn *c);
static void c_out_drained(struct cconn *c);
static void u_arm(struct uconn *u);
static void u_close(struct uconn *u);
static void u_process(struct uconn *u);
static void u_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void u_splice_out(struct uconn *u);

/* ---- buffers and free lists --------------------------------------------- */

/* A buffer of `cap` bytes from a free list (*head, *n), or a new one
 * marked `big` (see struct buf). */
static struct buf *buf_pool_get(struct buf **head, int *n, size_t cap, uint8_t big)
{
	struct buf *x = *head;
	if (x) {
		*head = x->next;
		(*n)--;
		return x;
	}
	x = malloc(sizeof(*x) + cap);
	if (!x)
		return NULL;
	x->cap = (uint32_t)cap;
	x->big = big;
	return x;
}

static struct buf *buf_get(struct bal *b)
{
	return buf_pool_get(&b->free_bufs, &b->nfree_bufs, b->buf_size, 0);
}

static size_t buf_large_size(const struct bal *b)
{
	size_t keep =
	    b->conf.retry_body_size > BUF_LARGE_MIN ? b->conf.retry_body_size : BUF_LARGE_MIN;
	return keep + b->buf_size;
}

static struct buf *buf_get_large(struct bal *b)
{
	return buf_pool_get(&b->free_large, &b->nfree_large, buf_large_size(b), 2);
}

static struct buf *buf_get_resp(struct bal *b)
{
	return buf_pool_get(&b->free_resp, &b->nfree_resp, BUF_RESP_FACTOR * b->buf_size, 3);
}

/* x onto a free list (*head, *n) holding at most max, else freed. */
static void buf_pool_put(struct buf **head, int *n, int max, struct buf *x)
{
	if (*n >= max) {
		free(x);
		return;
	}
	x->next = *head;
	*head = x;
	(*n)++;
}

static void buf_pool_free(struct buf **head, int *n)
{
	while (*head) {
		struct buf *x = *head;
		*head = x->next;
		free(x);
	}
	*n = 0;
}

static void buf_put(struct bal *b, struct buf *x)
{
	if (!x)
		return;
	if (x->big == 3)
		buf_pool_put(&b->free_resp, &b->nfree_resp, BUF_FREE_MAX, x);
	else if (x->big == 2)
		buf_pool_put(&b->free_large, &b->nfree_large, BUF_LARGE_FREE_MAX, x);
	else if (x->big)
		free(x); /* 1: sized for one request */
	else
		buf_pool_put(&b->free_bufs, &b->nfree_bufs, BUF_FREE_MAX, x);
}

/* ---- pipes for splice ----------------------------------------------------- */

static int pipe_get(struct bal *b, struct uconn *u)
{
	if (b->npipes > 0) {
		b->npipes--;
		u->pr = b->pipes[b->npipes][0];
		u->pw = b->pipes[b->npipes][1];
		return 0;
	}
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE); /* a smaller one works too */
	u->pr = fds[0];
	u->pw = fds[1];
	return 0;
}

/* An empty pipe goes back to the pool; one with bytes in it is closed. */
static void pipe_put(struct bal *b, struct uconn *u)
{
	if (u->pr < 0)
		return;
	if (u->pipe_len == 0 && b->npipes < PIPE_FREE_MAX) {
		b->pipes[b->npipes][0] = u->pr;
		b->pipes[b->npipes][1] = u->pw;
		b->npipes++;
	} else {
		close(u->pr);
		close(u->pw);
	}
	u->pr = u->pw = -1;
	u->pipe_len = 0;
	u->splicing = 0;
}

/* ---- output queues ------------------------------------------------------ */

static inline void outq_add(struct outq *q, const void *p, size_t len)
{
	if (len == 0)
		return;
	q->iov[q->n].iov_base = (void *)p;
	q->iov[q->n].iov_len = len;
	q->n++;
}

/* w bytes of q were written. */
static void outq_consume(struct outq *q, size_t w)
{
	q->sent += w;
	while (w > 0 && q->i < q->n) {
		struct iovec *v = &q->iov[q->i];
		if (w >= v->iov_len) {
			w -= v->iov_len;
			q->i++;
		} else {
			v->iov_base = (char *)v->iov_base + w;
			v->iov_len -= w;
			w = 0;
		}
	}
}

/* 1: everything written; 0: the socket is full; -1: error. more: bytes
 * of the same message are sure to follow (a body of known length not all
 * read yet), so the kernel may hold a partial segment for them (MSG_MORE):
 * the peer is woken once for a full segment rather than once per piece. */
static int outq_flush(int fd, struct outq *q, int more)
{
	while (q->i < q->n) {
		struct msghdr mh;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = q->iov + q->i;
		mh.msg_iovlen = (size_t)(q->n - q->i);
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		outq_consume(q, (size_t)w);
	}
	q->i = q->n = 0;
	return 1;
}

static inline int outq_pending(const struct outq *q)
{
	return q->i < q->n;
}

/* Output for the client queued, or waiting in a splice pipe. */
static inline int c_out_pending(const struct cconn *c)
{
	return outq_pending(&c->out) || (c->u && c->u->pipe_len);
}

/* Append buf[off..off+len) minus the head's dropped lines (head at `head`,
 * `hlen` bytes without the final CRLF) to q. */
static void outq_add_head(struct outq *q, const char *head, const struct h1_head *h)
{
	uint32_t pos = 0, end = h->len - 2;
	for (int i = 0; i < h->ndrop; i++) {
		outq_add(q, head + pos, h->drop_off[i] - pos);
		pos = h->drop_off[i] + h->drop_len[i];
	}
	outq_add(q, head + pos, end - pos);
}

/* ---- the client's transport: the socket, or TLS on it ---------------------- */

/* One TLS record's worth: small pieces of the queue go out as one record
 * (one write), not one record each. */
static char c_tls_stage[16384];

static int c_tls_flush(struct cconn *c)
{
	struct outq *q = &c->out;
	while (q->i < q->n) {
		const char *p = q->iov[q->i].iov_base;
		size_t len = q->iov[q->i].iov_len;
		/* a retry after EAGAIN sees at least the bytes it saw before: the
		 * queue only grows until it is written */
		if (q->n - q->i > 1 && len < sizeof(c_tls_stage)) {
			len = 0;
			for (int i = q->i; i < q->n && len < sizeof(c_tls_stage); i++) {
				size_t k = q->iov[i].iov_len;
				if (k > sizeof(c_tls_stage) - len)
					k = sizeof(c_tls_stage) - len;
				memcpy(c_tls_stage + len, q->iov[i].iov_base, k);
				len += k;
			}
			p = c_tls_stage;
		}
		ssize_t w = tls_send(c->ssl, p, len);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		outq_consume(q, (size_t)w);
	}
	q->i = q->n = 0;
	return 1;
}

/* Write c's queue: 1 all written, 0 it would block, -1 error. */
static int c_flush(struct cconn *c)
{
	if (c->h2s)
		return h2_stream_flush(c->h2s);
	/* more of a response body of known length is on its way from the server */
	const struct uconn *u = c->u;
	int more =
	    u && u->head_done && !u->resp_done && u->body == H1_BODY_LENGTH && u->body_left > 0;
	return c->ssl ? c_tls_flush(c) : outq_flush(c->fd, &c->out, more);
}

static ssize_t c_recv(struct cconn *c, void *buf, size_t len)
{
	if (!c->ssl)
		return read(c->fd, buf, len);
	int ww;
	ssize_t n = tls_recv(c->ssl, buf, len, &ww);
	c->tls_rww = (uint8_t)ww;
	return n;
}

/* No more bytes to the client (after an error response). */
static void c_shut_wr(struct cconn *c)
{
	if (c->h2s) {
		c->stream_done = 1;
		h2_stream_end(c->h2s); /* the stream ends: the error response is all out */
		return;
	}
	if (c->ssl) {
		tls_conn_free(c->ssl, 1);
		c->ssl = NULL;
	}
	shutdown(c->fd, SHUT_WR);
}

/* Bytes TLS decrypted (or read ahead) wake no watcher: read them now. */
static void c_tls_more(struct cconn *c)
{
	if (c->fd >= 0 && c->ssl && !c->read_blocked && !c->eof && ev_is_active(&c->io) &&
	    (c->io.events & EV_READ) && tls_pending(c->ssl))
		ev_feed_event(c->b->loop, &c->io, EV_READ);
}

/* ---- error responses ---------------------------------------------------- */

static const struct {
	int status;
	const char *reason, *body;
} c_errors[] = {
    {400, "Bad Request", "bad request: the request is malformed or its framing is ambiguous"},
    {408, "Request Timeout", "request timeout: the request did not arrive in time"},
    {413, "Content Too Large", "content too large: the request body exceeds the limit"},
    {431, "Request Header Fields Too Large", "request header fields too large"},
    {501, "Not Implemented", "not implemented: this method or transfer coding is not supported"},
    {502, "Bad Gateway", "bad gateway: no server could complete the request"},
    {503, "Service Unavailable", "service unavailable: no server is alive in this zone"},
    {504, "Gateway Timeout", "gateway timeout: the server did not answer in time"},
    {505, "HTTP Version Not Supported", "HTTP version not supported"},
    /* holding (looked up by index, after the plain 503 above) */
    {503, "Service Unavailable",
     "service unavailable: no server of this zone became ready while the request waited "
     "(hold_timeout); the zone may be starting from zero"},
    {503, "Service Unavailable",
     "service unavailable: this zone has no server ready and already holds hold_max "
     "requests waiting for one"},
};
#define C_NERRORS (sizeof(c_errors) / sizeof(c_errors[0]))
#define C_ERR_HOLD_TIMEOUT ((int)C_NERRORS - 2)
#define C_ERR_HOLD_FULL ((int)C_NERRORS - 1)

static char c_errtext[C_NERRORS][320];
static size_t c_errlen[C_NERRORS];

static void c_errors_init(void)
{
	if (c_errlen[0])
		return;
	for (size_t i = 0; i < C_NERRORS; i++) {
		size_t blen = strlen(c_errors[i].body) + 1;
		int n = snprintf(c_errtext[i], sizeof(c_errtext[i]),
		                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: "
		                 "%zu\r\nConnection: close\r\n\r\n%s\n",
		                 c_errors[i].status, c_errors[i].reason, blen, c_errors[i].body);
		c_errlen[i] = (size_t)n;
	}
}

/* ---- upstream connections ----------------------------------------------- */

static void u_idle_unlink(struct uconn *u)
{
	struct server *s = u->srv;
	if (u->prev)
		u->prev->next = u->next;
	else
		s->idle_first = u->next;
	if (u->next)
		u->next->prev = u->prev;
	else
		s->idle_last = u->prev;
	u->prev = u->next = NULL;
	s->nidle--;
}

static void u_close(struct uconn *u)
{
	struct bal *b = u->b;
	struct server *s = u->srv;
	if (u->state == U_IDLE)
		u_idle_unlink(u);
	ev_io_stop(b->loop, &u->io);
	pipe_put(b, u);
	close(u->fd);
	buf_put(b, u->in);
	u->in = NULL;
	b->nupstream--;
	u->next = b->free_uconns;
	b->free_uconns = u;
	srv_conn_closed(s);
}

static void u_arm(struct uconn *u)
{
	int ev;
	if (u->state == U_CONNECTING)
		ev = EV_WRITE;
	else if (u->state == U_IDLE)
		ev = EV_READ;
	else
		ev = (outq_pending(&u->out) ? EV_WRITE : 0) |
		     ((u->c && c_out_pending(u->c)) ? 0 : EV_READ);
	if (ev == (u->io.events & (EV_READ | EV_WRITE)) && ev_is_active(&u->io))
		return;
	ev_io_stop(u->b->loop, &u->io);
	ev_io_set(&u->io, u->fd, ev);
	if (ev)
		ev_io_start(u->b->loop, &u->io);
}

/* A new connection to s; NULL with errno set when it failed at once. */
static struct uconn *u_connect(struct bal *b, struct server *s)
{
	int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int connected = 1;
	if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) < 0) {
		if (errno != EINPROGRESS) {
			int e = errno;
			close(fd);
			errno = e;
			return NULL;
		}
		connected = 0;
	}
	struct uconn *u = b->free_uconns;
	if (u)
		b->free_uconns = u->next;
	else if (!(u = malloc(sizeof(*u)))) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	memset(u, 0, offsetof(struct uconn, out));
	u->out.i = u->out.n = 0;
	u->pr = u->pw = -1;
	u->pipe_len = 0;
	u->splicing = 0;
	u->b = b;
	u->srv = s;
	u->fd = fd;
	u->state = connected ? U_BUSY : U_CONNECTING;
	u->since = ev_now(b->loop);
	ev_io_init(&u->io, u_io_cb, fd, 0);
	/* responses first: finishing requests in flight before reading new
	 * ones keeps the latency tail short under load */
	ev_set_priority(&u->io, 1);
	u->io.data = u;
	s->conns++;
	b->nupstream++;
	return u;
}

/* Put u back on its server's idle list (or close it). */
static void u_release(struct uconn *u, int reusable)
{
	struct bal *b = u->b;
	struct server *s = u->srv;
	u->c = NULL;
	if (!reusable || s->removed || s->state != SRV_ALIVE ||
	    s->nidle >= b->conf.upstream_keepalive || b->shutting_down) {
		u_close(u);
		return;
	}
	buf_put(b, u->in);
	pipe_put(b, u);
	u->in = NULL;
	u->in_len = u->in_off = 0;
	u->state = U_IDLE;
	u->reused = 1;
	u->since = ev_now(b->loop);
	u->prev = s->idle_last;
	u->next = NULL;
	if (s->idle_last)
		s->idle_last->next = u;
	else
		s->idle_first = u;
	s->idle_last = u;
	s->nidle++;
	u_arm(u);
}

void proxy_close_idle(struct server *s)
{
	while (s->idle_first)
		u_close(s->idle_first);
}

/* The response is out, the server stopped taking the request's body (or
 * spoke out of turn): the rest of the body is read and dropped. */
static void c_drop_upstream(struct cconn *c)
{
	struct uconn *u = c->u;
	if (!u)
		return;
	u->c = NULL;
	c->u = NULL;
	u_close(u);
	c->rq_sent = c->rq_end;
	c_arm(c);
}

/* The body of a request answered early is all in and sent on: the
 * exchange ends, the connection is kept. */
static void c_body_check(struct cconn *c)
{
	if (c->body_only && c->rq_done &&
	    (!c->u || (c->rq_sent == c->rq_end && !outq_pending(&c->u->out))))
		c_finish(c);
}

/* Upstream failed before a response could be relayed: retry or answer. */
static void u_fail(struct uconn *u, int err, int connect_failed, int timed_out)
{
	struct bal *b = u->b;
	struct cconn *c = u->c;
	struct server *s = u->srv;
	int was_reused = u->reused;
	/* the server answered, in part */
	int got_bytes = u->head_done || u->in_len > 0 || u->ninterim > 0;
	int fully_sent =
	    c && c->rq_done && c->head_sent && !outq_pending(&u->out) && c->rq_sent == c->rq_end;

	if (c && c->body_only) {
		/* the response went out whole: the rest of the body is dropped */
		c_drop_upstream(c);
		return;
	}

	if (connect_failed) {
		/* only a failed connect says the server is gone: a reset after the
		 * request went out may be that request's fault, and must not take
		 * every server out of rotation one retry at a time */
		char why[160];
		b->st->connect_errors++;
		snprintf(why, sizeof(why), "connect: %s", timed_out ? "timed out" : strerror(err));
		if (s->state == SRV_ALIVE)
			srv_set_state(s, SRV_DISCONNECTED, why);
		else
			snprintf(s->last_error, sizeof(s->last_error), "%s", why);
	}
	st_request_end(s, ev_now(b->loop), 0, 0);
	srv_busy(s, -1);
	/* a kept-alive connection the server closed unasked is not its failure */
	if (!was_reused || got_bytes || connect_failed)
		outlier_result(s, 0);
	u->c = NULL;
	u_close(u);
	if (!c)
		return;
	c->u = NULL;
	c->last_timeout = (uint8_t)timed_out;
	int retry = !c->resp_started && !got_bytes && !c->rq_trimmed &&
	            (connect_failed || was_reused || c->rq.idempotent || !fully_sent);
	if (retry && c->ntried < b->conf.max_attempts) {
		b->st->retries++;
		c_dispatch(c);
	} else if (!c->resp_started) {
		c_error(c, timed_out ? 504 : 502);
	} else {
		c_close(c);
	}
}

/* ---- client connections ------------------------------------------------- */

static void c_arm(struct cconn *c)
{
	if (c->h2s) {
		if (!c->eof && !c->read_blocked)
			h2_stream_armed(c->h2s); /* room for the request's body */
		return;
	}
	int ev = (c_out_pending(c) || c->tls_rww || c->want_write ? EV_WRITE : 0) |
	         ((c->eof || c->read_blocked) ? 0 : EV_READ);
	if (ev == (c->io.events & (EV_READ | EV_WRITE)) && ev_is_active(&c->io))
		return;
	ev_io_stop(c->b->loop, &c->io);
	ev_io_set(&c->io, c->fd, ev);
	if (ev)
		ev_io_start(c->b->loop, &c->io);
}

/* ---- held requests ------------------------------------------------------ */

static void c_hold_unlink(struct cconn *c)
{
	struct bal *b = c->b;
	if (!c->held)
		return;
	if (c->hprev)
		c->hprev->hnext = c->hnext;
	else
		b->held_first = c->hnext;
	if (c->hnext)
		c->hnext->hprev = c->hprev;
	else
		b->held_last = c->hprev;
	c->hprev = c->hnext = NULL;
	c->held = 0;
	b->nheld--;
	board_holding(b);
}

static void c_error_at(struct cconn *c, int i);

/* No server is alive for c's request: hold it (1), or 0 to answer 503. */
static int c_hold(struct cconn *c)
{
	struct bal *b = c->b;
	if (b->conf.hold_max <= 0 || b->shutting_down)
		return 0;
	if (b->nheld >= b->conf.hold_max) {
		c_error_at(c, C_ERR_HOLD_FULL);
		return 1;
	}
	c->held = 1;
	c->held_at = ev_now(b->loop);
	c->hnext = NULL;
	c->hprev = b->held_last;
	if (b->held_last)
		b->held_last->hnext = c;
	else
		b->held_first = c;
	b->held_last = c;
	if (++b->nheld == 1)
		wake_holding(b);
	board_holding(b);
	return 1;
}

void proxy_release_held(struct bal *b)
{
	while (b->held_first && b->nalive > 0) {
		struct cconn *c = b->held_first;
		c_hold_unlink(c);
		/* a body that filled the buffer blocked reading: it streams now */
		c->read_blocked = 0;
		c_arm(c);
		c_dispatch(c);
	}
}

/* ---- the access log ----------------------------------------------------- */

static uint64_t c_out_queued(const struct outq *q)
{
	uint64_t n = 0;
	for (int i = q->i; i < q->n; i++)
		n += q->iov[i].iov_len;
	return n;
}

/* The current request's method and target, into the line when the buffer
 * is about to lose them (a body streamed past retry_body_size). */
static void c_log_save(struct cconn *c)
{
	if (!c->b->alog || c->saved_line || !c->in)
		return;
	const char *h = c->in->data + c->rq_start, *t = h + c->rq.method_len + 1;
	const char *sp = memchr(t, ' ', c->rq.len);
	size_t tl = sp ? (size_t)(sp - t) : 0;
	if (tl > 2048)
		tl = 2048;
	if (!(c->saved_line = malloc(c->rq.method_len + tl)))
		return;
	memcpy(c->saved_line, h, c->rq.method_len);
	memcpy(c->saved_line + c->rq.method_len, t, tl);
	c->saved_mlen = c->rq.method_len;
	c->saved_plen = (uint16_t)tl;
}

/* The access log line of c's current request, once: `status` sent (0:
 * none), `extra` bytes about to be queued. */
static void c_log(struct cconn *c, int status, size_t extra)
{
	struct bal *b = c->b;
	if (!b->alog || c->logged)
		return;
	c->logged = 1;
	double now = ev_now(b->loop);
	int understood = c->phase == C_EXCHANGE || c->phase == C_TUNNEL;
	struct alog_entry e = {
	    .start = understood ? c->rq_at : (c->phase == C_HEAD ? c->since : now),
	    .end = now,
	    .client = c->client,
	    .status = status,
	    .bytes = c->out.sent - c->out_mark + c_out_queued(&c->out) + extra,
	    .upstream_time = -1,
	    .tls = c->ssl ? tls_version(c->ssl) : c->tls_ver,
	};
	if (understood) {
		e.protocol = c->h2s ? "HTTP/2" : c->rq.version == 10 ? "HTTP/1.0" : "HTTP/1.1";
		e.retries = c->ntried > 1 ? c->ntried - 1 : 0;
		if (c->saved_line) {
			e.method = c->saved_line;
			e.method_len = c->saved_mlen;
			e.path = c->saved_line + c->saved_mlen;
			e.path_len = c->saved_plen;
		} else if (c->in) {
			const char *h = c->in->data + c->rq_start, *sp;
			e.method = h;
			e.method_len = c->rq.method_len;
			e.path = h + e.method_len + 1;
			sp = memchr(e.path, ' ', c->rq.len - e.method_len - 1);
			e.path_len = sp ? (size_t)(sp - e.path) : 0;
		}
		if (c->u) {
			e.upstream = c->u->srv->url;
			e.upstream_time = now - c->sent_at;
		}
	}
	alog_request(b->alog, &e);
	free(c->saved_line);
	c->saved_line = NULL;
}

/* A new request may start: its line is not written yet. */
static void c_log_next(struct cconn *c)
{
	c->logged = 0;
	c->out_mark = c->out.sent + c_out_queued(&c->out);
}

static void c_close(struct cconn *c)
{
	struct bal *b = c->b;
	if (c->dead)
		return;
	if (c->phase == C_EXCHANGE)
		c_log(c, c->resp_started ? c->resp_status : 0, 0);
	if (c->h2) {
		struct h2conn *h = c->h2;
		c->h2 = NULL;
		h2_free(h); /* its streams end first */
	}
	free(c->saved_line);
	c->saved_line = NULL;
	struct uconn *u = c->u;
	c_hold_unlink(c);
	if (u) {
		if (!c->body_only) {
			st_request_end(u->srv, ev_now(b->loop), 0, 0);
			srv_busy(u->srv, -1);
		}
		u->c = NULL;
		c->u = NULL;
		u_close(u);
	}
	c->dead = 1;
	/* streams are a list of their own: closing a connection closes its
	 * streams without touching the list a sweep walks */
	struct cconn **head = c->h2s ? &b->streams : &b->conns;
	if (c->h2s) {
		struct h2s *st = c->h2s;
		c->h2s = NULL;
		h2_stream_detach(st, c->stream_done);
		b->nstreams--;
	} else {
		ev_io_stop(b->loop, &c->io);
		if (c->ssl) {
			tls_conn_free(c->ssl, 1);
			c->ssl = NULL;
		}
		close(c->fd);
		b->nconns--;
	}
	c->fd = -1;
	buf_put(b, c->in);
	c->in = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = b->free_cconns;
	b->free_cconns = c;
	if (b->accepting && !b->shutting_down && b->listen_fd >= 0 && !ev_is_active(&b->accept_w) &&
	    !ev_is_active(&b->accept_pause))
		ev_io_start(b->loop, &b->accept_w);
	if (b->shutting_down && b->nconns == 0)
		ev_timer_stop(b->loop, &b->sweep);
}

static int c_err_index(int status)
{
	for (size_t i = 0; i < C_NERRORS; i++)
		if (c_errors[i].status == status)
			return (int)i;
	return 0;
}

/* Answer with an error and close once the client has read it. */
static void c_error(struct cconn *c, int status)
{
	c_error_at(c, c_err_index(status));
}

static void c_error_at(struct cconn *c, int i)
{
	struct bal *b = c->b;
	int status = c_errors[i].status;
	c_hold_unlink(c);
	c_log(c, outq_pending(&c->out) ? 0 : status, outq_pending(&c->out) ? 0 : c_errlen[i]);
	if (outq_pending(&c->out)) {
		/* part of an interim response is still queued (it points into
		 * the server's buffer): nothing clean can follow it */
		c_close(c);
		return;
	}
	if (c->u) {
		struct uconn *u = c->u;
		if (!c->body_only) {
			st_request_end(u->srv, ev_now(b->loop), 0, 0);
			srv_busy(u->srv, -1);
		}
		u->c = NULL;
		c->u = NULL;
		u_close(u);
	}
	if (status < 500)
		b->st->client_errors++;
	b->st->responses[status / 100]++;
	c->out.i = c->out.n = 0;
	outq_add(&c->out, c_errtext[i], c_errlen[i]);
	c->phase = C_CLOSING;
	c->since = ev_now(b->loop);
	c->read_blocked = 0;
	int r = c_flush(c);
	if (r < 0) {
		c_close(c);
		return;
	}
	if (r > 0)
		c_shut_wr(c);
	c_arm(c);
}

/* Scan newly arrived request body bytes; -1 after answering an error. */
static int c_scan_body(struct cconn *c)
{
	if (c->rq_done)
		return 0;
	uint32_t avail = c->in_len - c->rq_end;
	if (avail == 0)
		return 0;
	uint64_t take;
	if (c->rq.body == H1_BODY_LENGTH) {
		take = avail < c->rq_body_left ? avail : c->rq_body_left;
		c->rq_body_left -= take;
		if (c->rq_body_left == 0)
			c->rq_done = 1;
	} else {
		ssize_t t = h1_chunk_scan(&c->ck, c->in->data + c->rq_end, avail);
		if (t < 0) {
			if (c->resp_started)
				c_close(c);
			else
				c_error(c, 400);
			return -1;
		}
		take = (uint64_t)t;
		c->rq_total += take;
		if (c->rq_total > c->b->conf.max_body_size) {
			if (c->resp_started)
				c_close(c);
			else
				c_error(c, 413);
			return -1;
		}
		if (c->ck.done)
			c->rq_done = 1;
	}
	c->rq_end += (uint32_t)take;
	return 0;
}

/* A complete request head is in the buffer: set up the exchange. */
static void c_parse(struct cconn *c)
{
	struct bal *b = c->b;
	int r = h1_parse_request(c->in->data + c->rq_start, c->in_len - c->rq_start,
	                         b->conf.max_header_size, &c->scan, &c->rq, c->trusted);
	if (r == 0) {
		if (c->phase == C_IDLE) {
			c->phase = C_HEAD;
			c->since = ev_now(b->loop);
		}
		return;
	}
	if (r < 0) {
		c_error(c, -r);
		return;
	}
	if (c->phase == C_IDLE)
		c->since = ev_now(b->loop);
	c->rq_at = c->since;
	c->phase = C_EXCHANGE;
	c->rq_end = c->rq_start + (uint32_t)r;
	c->rq_sent = c->rq_start;
	c->rq_done = c->rq.body == H1_BODY_NONE;
	c->rq_trimmed = c->head_sent = c->resp_started = 0;
	c->ntried = 0;
	c->last_timeout = 0;
	c->rq_total = 0;
	/* 1.0: unless keep-alive; an HTTP/2 stream: one exchange */
	c->close_after = c->rq.conn_close || b->shutting_down || c->h2s;
	if (c->rq.body == H1_BODY_LENGTH) {
		if (c->rq.content_length > b->conf.max_body_size) {
			c_error(c, 413);
			return;
		}
		c->rq_body_left = c->rq.content_length;
	} else if (c->rq.body == H1_BODY_CHUNKED) {
		memset(&c->ck, 0, sizeof(c->ck));
	}
	if (c_scan_body(c) < 0)
		return;
	c_dispatch(c);
}

/* Send the current request to a server (another one on a retry). */
static void c_dispatch(struct cconn *c)
{
	struct bal *b = c->b;
	for (;;) {
		struct server *s = srv_pick(b, c->tried, c->ntried);
		if (!s) {
			if (c->ntried == 0 && c_hold(c))
				return;
			c_error(c, c->ntried == 0 ? 503 : (c->last_timeout ? 504 : 502));
			return;
		}
		if (c->ntried < (int)(sizeof(c->tried) / sizeof(c->tried[0])))
			c->tried[c->ntried] = s;
		c->ntried++;
		struct uconn *u = s->idle_last;
		if (u) {
			u_idle_unlink(u);
			u->state = U_BUSY;
		} else {
			u = u_connect(b, s);
			if (!u) {
				int e = errno;
				if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ||
				    e == EADDRNOTAVAIL) {
					b->host->log(SCALER_LOG_ERR, BAL_WHO, "connect to %s: %s",
					             s->url, strerror(e));
					c_error(c, 502);
					return;
				}
				b->st->connect_errors++;
				char why[160];
				snprintf(why, sizeof(why), "connect: %s", strerror(e));
				outlier_result(s, 0);
				srv_set_state(s, SRV_DISCONNECTED, why);
				if (c->ntried >= b->conf.max_attempts) {
					c_error(c, 502);
					return;
				}
				b->st->retries++;
				continue;
			}
		}
		u->c = c;
		u->since = ev_now(b->loop);
		u->head_done = u->resp_done = u->no_reuse = 0;
		u->ninterim = 0;
		u->scan = 0;
		u->out.i = u->out.n = 0;
		c->u = u;
		c->sent_at = ev_now(b->loop);
		st_request_start(s, c->sent_at);
		srv_busy(s, 1);
		c->rq_sent = c->rq_start;
		c->head_sent = 0;
		if (u->state == U_BUSY)
			c_send_upstream(c);
		else
			u_arm(u);
		return;
	}
}

/* Queue the request bytes not yet sent to the upstream and write them. */
static void c_send_upstream(struct cconn *c)
{
	struct uconn *u = c->u;
	if (!u || u->state != U_BUSY || outq_pending(&u->out))
		return;
	if (!c->head_sent) {
		const char *head = c->in->data + c->rq_start;
		outq_add_head(&u->out, head, &c->rq);
		/* a trusted proxy's X-Forwarded-Proto stays: it saw the client */
		outq_add(&u->out, c->fwd,
		         (size_t)(c->fwd_len - (c->rq.has_forwarded_proto ? c->fwd_proto_len : 0)));
		if (c->rq.upgrade)
			outq_add(&u->out, "Connection: upgrade\r\n", 21);
		else if (c->rq.version == 10)
			outq_add(&u->out, "Connection: keep-alive\r\n", 24); /* keep the pool */
		outq_add(&u->out, "\r\n", 2);
		c->rq_sent = c->rq_start + c->rq.len;
		c->head_sent = 1;
	}
	/* body bytes go with more of the body sure to follow: not a head alone,
	 * which a client sending Expect: 100-continue waits an answer to */
	int more = c->rq_end > c->rq_sent && c->rq.body == H1_BODY_LENGTH && c->rq_body_left > 0;
	if (c->rq_end > c->rq_sent) {
		outq_add(&u->out, c->in->data + c->rq_sent, c->rq_end - c->rq_sent);
		c->rq_sent = c->rq_end;
	}
	if (!outq_pending(&u->out)) {
		u_arm(u);
		return;
	}
	int r = outq_flush(u->fd, &u->out, more);
	if (r < 0) {
		u_fail(u, errno, 0, 0);
		return;
	}
	u->since = ev_now(u->b->loop);
	if (r == 0) {
		c->read_blocked = 1; /* until the server takes what we have */
		c_arm(c);
	}
	u_arm(u);
}

/* Make room in the client buffer; 0 when there is none to be had. */
static int c_make_room(struct cconn *c)
{
	struct bal *b = c->b;
	struct buf *x = c->in;
	int sending = c->u && outq_pending(&c->u->out);
	if (sending)
		return 0;
	if (c->rq_start > 0 && c->phase != C_TUNNEL) {
		uint32_t d = c->rq_start;
		memmove(x->data, x->data + d, c->in_len - d);
		c->in_len -= d;
		c->rq_start = 0;
		c->rq_end -= d;
		c->rq_sent = c->rq_sent > d ? c->rq_sent - d : 0;
		/* c->scan is relative to rq_start: unchanged */
		return 1;
	}
	if (c->phase != C_EXCHANGE || c->rq_done)
		return 0;
	size_t limit = b->conf.retry_body_size + b->buf_size;
	if (!c->resp_started && !c->rq_trimmed && x->cap < limit) {
		/* room for the whole request at once when its length is known, so
		 * it is read in as few reads as the client's sends allow */
		size_t need = (size_t)x->cap * 2;
		if (c->rq.body == H1_BODY_LENGTH &&
		    c->rq_end + c->rq_body_left + b->buf_size > need)
			need = c->rq_end + c->rq_body_left + b->buf_size;
		if (need > limit)
			need = limit;
		struct buf *y = need <= buf_large_size(b) ? buf_get_large(b) : NULL;
		if (!y && (y = malloc(sizeof(*y) + need))) {
			y->cap = (uint32_t)need;
			y->big = 1;
		}
		if (y) {
			memcpy(y->data, x->data, c->in_len);
			c->in = y;
			buf_put(b, x);
			return 1;
		}
	}
	if (c->head_sent && c->rq_sent > c->rq_start) {
		/* the body is larger than what a retry may resend: stream it */
		uint32_t d = c->rq_sent;
		if (!c->rq_trimmed)
			c_log_save(c);
		memmove(x->data, x->data + d, c->in_len - d);
		c->in_len -= d;
		c->rq_start = 0;
		c->rq_end -= d;
		c->rq_sent = 0;
		c->rq_trimmed = 1;
		return 1;
	}
	return 0;
}

static void c_tunnel_to_upstream(struct cconn *c);
static void c_input(struct cconn *c, uint32_t n);

static void c_read(struct cconn *c)
{
	struct bal *b = c->b;
	if (!c->in) {
		c->in = buf_get(b);
		if (!c->in) {
			c_close(c);
			return;
		}
		c->in_len = c->rq_start = c->rq_end = c->rq_sent = 0;
	}
	if (c->in_len == c->in->cap && !c_make_room(c)) {
		c->read_blocked = 1;
		c_arm(c);
		return;
	}
	ssize_t n = c_recv(c, c->in->data + c->in_len, c->in->cap - c->in_len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		c_close(c);
		return;
	}
	if (n == 0) {
		if (c->phase == C_EXCHANGE && c->rq_done) {
			/* half-closed after its requests: answer them, then close */
			c->eof = 1;
			c_arm(c);
			return;
		}
		c_close(c);
		return;
	}
	if (c->ssl && !c->alpn_checked) {
		c->alpn_checked = 1;
		if (tls_alpn_h2(c->ssl)) {
			/* HTTP/2: the connection carries streams from now on */
			c->phase = C_H2;
			c->since = ev_now(b->loop);
			struct buf *x = c->in; /* h2.c reads into its own buffer from now on */
			c->in = NULL;
			c->in_len = c->rq_start = c->rq_end = c->rq_sent = 0;
			c->h2 = h2_start(b, c, x->data, (size_t)n);
			buf_put(b, x);
			if (!c->h2)
				c_close(c);
			return;
		}
	}
	c_input(c, (uint32_t)n);
}

/* n more bytes of the request(s) arrived in c->in. */
static void c_input(struct cconn *c, uint32_t n)
{
	struct bal *b = c->b;
	c->in_len += n;
	switch (c->phase) {
	case C_IDLE:
	case C_HEAD:
		c_parse(c);
		break;
	case C_EXCHANGE:
		c->since = ev_now(b->loop);
		if (c_scan_body(c) < 0)
			return;
		if (c->u)
			c_send_upstream(c);
		else if (c->body_only)
			c->rq_sent = c->rq_end; /* dropped: room for the rest */
		if (c->body_only)
			c_body_check(c);
		break;
	case C_TUNNEL:
		c->since = ev_now(b->loop);
		c_tunnel_to_upstream(c);
		break;
	case C_CLOSING:
	case C_H2:
		c->in_len = 0; /* discard */
		break;
	}
}

/* Forward the buffered client bytes of a tunnel. */
static void c_tunnel_to_upstream(struct cconn *c)
{
	struct uconn *u = c->u;
	if (!u || outq_pending(&u->out))
		return;
	if (c->in_len > c->rq_sent)
		outq_add(&u->out, c->in->data + c->rq_sent, c->in_len - c->rq_sent);
	c->rq_sent = c->in_len;
	int r = outq_flush(u->fd, &u->out, 0);
	if (r < 0) {
		c_close(c);
		return;
	}
	if (r > 0) {
		c->in_len = c->rq_sent = c->rq_start = c->rq_end = 0;
		if (c->read_blocked) {
			c->read_blocked = 0;
			c_arm(c);
		}
	} else {
		c->read_blocked = 1;
		c_arm(c);
	}
	u_arm(u);
}

/* The response of the current exchange has been relayed completely. */
static void c_finish(struct cconn *c)
{
	struct bal *b = c->b;
	struct uconn *u = c->u;
	if (u && !c->body_only) {
		struct server *s = u->srv;
		double now = ev_now(b->loop);
		c_log(c, c->resp_status, 0);
		st_request_end(s, now, now - c->sent_at, 1);
		srv_busy(s, -1);
		srv_served(s);
	}
	if (!c->rq_done && !c->close_after && !b->shutting_down) {
		/* the server answered before the body was all in (nginx's
		 * `return`, an early 413): closing now would reset a client still
		 * sending it; the rest goes on to the server, and the connection
		 * is kept once it is all in (HAProxy does the same) */
		c->body_only = 1;
		if (u)
			u_arm(u);
		c_arm(c);
		return;
	}
	c->body_only = 0;
	c->u = NULL;
	if (u) {
		int reusable = !u->no_reuse && !u->rs.conn_close && u->body != H1_BODY_CLOSE &&
		               c->rq_done && c->head_sent && c->rq_sent == c->rq_end &&
		               !outq_pending(&u->out);
		u_release(u, reusable);
	}
	if (!c->rq_done)
		c->close_after = 1;
	if (c->close_after || b->shutting_down || (c->eof && c->rq_end >= c->in_len)) {
		c_close(c);
		return;
	}
	c_next(c);
}

/* Prepare for the next request: drop the finished one from the buffer. */
static void c_next(struct cconn *c)
{
	struct bal *b = c->b;
	c_log_next(c);
	c->phase = C_IDLE;
	c->scan = 0;
	c->since = ev_now(b->loop);
	if (c->rq_end >= c->in_len) {
		buf_put(b, c->in);
		c->in = NULL;
		c->in_len = c->rq_start = c->rq_end = c->rq_sent = 0;
	} else {
		c->rq_start = c->rq_end;
		if (c->in->big || c->rq_start > c->in->cap / 2) {
			/* move pipelined bytes to a pooled buffer / to the front;
			 * more than a pooled buffer holds (the next request's body
			 * came along) stay in the large one */
			uint32_t left = c->in_len - c->rq_start;
			struct buf *x = c->in->big && left <= b->buf_size ? buf_get(b) : c->in;
			if (!x) {
				c_close(c);
				return;
			}
			memmove(x->data, c->in->data + c->rq_start, left);
			if (x != c->in)
				buf_put(b, c->in);
			c->in = x;
			c->in_len = left;
			c->rq_start = 0;
		}
		c->rq_end = c->rq_sent = c->rq_start;
	}
	if (c->read_blocked) {
		c->read_blocked = 0;
		c_arm(c);
	}
	if (c->in && c->in_len > c->rq_start)
		c_parse(c);
	if (c->eof && (c->phase == C_IDLE || c->phase == C_HEAD))
		c_close(c); /* nothing more can arrive */
}

static void c_out_drained(struct cconn *c)
{
	struct uconn *u = c->u;
	if (c->phase == C_CLOSING) {
		c_shut_wr(c);
		c_arm(c);
		return;
	}
	if (u) {
		if (!u->head_done && u->in && u->in_off < u->in_len) {
			/* an interim response went out: parse what followed it */
			c_arm(c);
			u_process(u);
			return;
		}
		if (u->in && u->in_off == u->in_len)
			u->in_off = u->in_len = 0;
		if (u->resp_done) {
			c_finish(c);
			return;
		}
		u_arm(u);
	}
	c_arm(c);
}

static void c_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct cconn *c = w->data;
	(void)loop;
	if ((revents & EV_WRITE) && c->tls_rww) {
		c->tls_rww = 0; /* what the TLS layer had to write is out: read on */
		c_arm(c);
		revents |= EV_READ;
		if (!outq_pending(&c->out))
			revents &= ~EV_WRITE;
	}
	if (c->h2) {
		h2_io(c->h2, revents);
		return;
	}
	if (revents & EV_WRITE) {
		if (!outq_pending(&c->out) && c->u && c->u->pipe_len) {
			c->wsince = ev_now(c->b->loop);
			u_splice_out(c->u);
			return;
		}
		int r = c_flush(c);
		if (r < 0) {
			c_close(c);
			return;
		}
		c->wsince = ev_now(c->b->loop); /* writable: the client reads */
		if (r > 0)
			c_out_drained(c);
		return; /* a read, if any, comes on the next iteration */
	}
	if (revents & EV_READ) {
		c_read(c);
		c_tls_more(c);
	}
}

/* ---- the response side -------------------------------------------------- */

static void u_relay(struct uconn *u)
{
	struct cconn *c = u->c;
	int r = c_flush(c);
	if (r < 0) {
		c_close(c);
		return;
	}
	if (r > 0) {
		c_out_drained(c);
	} else {
		c->wsince = ev_now(c->b->loop);
		c_arm(c);
		u_arm(u);
	}
}

/* Relay an interim response (the client is 1.1) and parse on; 0 when it
 * could not all be written at once: parsing resumes once it is out, so the
 * queue and the buffer never hold more than one. -1 when c is gone. */
static int u_interim(struct uconn *u, const char *head)
{
	struct cconn *c = u->c;
	outq_add_head(&c->out, head, &u->rs);
	outq_add(&c->out, "\r\n", 2);
	int r = c_flush(c);
	if (r < 0) {
		c_close(c);
		return -1;
	}
	if (r == 0) {
		c->wsince = ev_now(u->b->loop);
		c_arm(c);
		u_arm(u);
	}
	return r;
}

/* The final response head (or the switch of an asked-for upgrade). */
static void u_response_head(struct uconn *u, int len, int kind)
{
	struct cconn *c = u->c;
	struct bal *b = u->b;
	const char *head = u->in->data + u->in_off;
	struct h1_head *rs = &u->rs;

	u->head_done = 1;
	c->resp_started = 1;
	c->resp_status = rs->status;
	b->st->responses[rs->status / 100]++;
	outlier_result(u->srv, rs->status);
	if (kind == H1_SWITCH) {
		u->body = H1_BODY_NONE;
		c->phase = C_TUNNEL;
		outq_add_head(&c->out, head, rs);
		outq_add(&c->out, "\r\n", 2);
		u->in_off += (uint32_t)len;
		c_log(c, rs->status, 0); /* a tunnel's line is written when it opens */
		return;
	}
	u->body = rs->body;
	if (u->body == H1_BODY_LENGTH)
		u->body_left = rs->content_length;
	else if (u->body == H1_BODY_CHUNKED)
		memset(&u->ck, 0, sizeof(u->ck));
	else if (u->body == H1_BODY_CLOSE)
		c->close_after = 1;
	if (b->shutting_down)
		c->close_after = 1;
	/* an HTTP/1.0 client stays only with a length it can read */
	if (c->rq.version == 10 && u->body != H1_BODY_LENGTH && u->body != H1_BODY_NONE)
		c->close_after = 1;
	outq_add_head(&c->out, head, rs);
	if (c->close_after)
		outq_add(&c->out, "Connection: close\r\n\r\n", 21);
	else if (c->rq.version == 10)
		outq_add(&c->out, "Connection: keep-alive\r\n\r\n", 26);
	else
		outq_add(&c->out, "\r\n", 2);
	u->in_off += (uint32_t)len;
	if (u->body == H1_BODY_NONE)
		u->resp_done = 1;
}

static void u_process(struct uconn *u)
{
	struct cconn *c = u->c;
	struct bal *b = u->b;

	const char *why = "a malformed response head";
	while (!u->head_done) {
		if (outq_pending(&c->out))
			break; /* an interim response is on its way: then the rest */
		const char *head = u->in->data + u->in_off;
		int r =
		    h1_parse_response(head, u->in_len - u->in_off, u->in->cap, &u->scan, &u->rs);
		if (r == 0) {
			if (u->in_len == u->in->cap) {
				if (u->in_off == 0)
					goto bad;
				memmove(u->in->data, u->in->data + u->in_off,
				        u->in_len - u->in_off);
				u->in_len -= u->in_off;
				u->scan = 0;
				u->in_off = 0;
			}
			break;
		}
		if (r < 0)
			goto bad;
		int kind = h1_response_kind(&c->rq, &u->rs, &u->ninterim);
		if (kind < 0) {
			why = u->rs.status == 101
			          ? "a 101 the request did not ask for"
			          : "more than " H1_STR(H1_MAX_INTERIM) " 1xx responses";
			goto bad;
		}
		if (kind == H1_INTERIM) {
			u->in_off += (uint32_t)r;
			u->scan = 0;
			/* RFC 9110 §15.2: HTTP/1.0 clients get no 1xx */
			if (c->rq.version == 11 && u_interim(u, head) <= 0)
				return;
			continue;
		}
		u_response_head(u, r, kind);
		if (c->phase == C_TUNNEL) {
			if (u->in_len > u->in_off)
				outq_add(&c->out, u->in->data + u->in_off, u->in_len - u->in_off);
			u->in_off = u->in_len;
			c->rq_sent = c->rq_end;
			u->resp_done = 0;
			u_relay(u);
			if (c->phase == C_TUNNEL && c->in_len > c->rq_sent && c->u)
				c_tunnel_to_upstream(c);
			return;
		}
	}
	if (u->head_done && !u->resp_done && u->in_len > u->in_off) {
		uint32_t avail = u->in_len - u->in_off, take = avail;
		if (u->body == H1_BODY_LENGTH) {
			if (take > u->body_left)
				take = (uint32_t)u->body_left;
			u->body_left -= take;
			if (!u->body_left)
				u->resp_done = 1;
		} else if (u->body == H1_BODY_CHUNKED) {
			ssize_t t = h1_chunk_scan(&u->ck, u->in->data + u->in_off, avail);
			if (t < 0) {
				u->no_reuse = 1;
				c_close(c);
				return;
			}
			take = (uint32_t)t;
			if (u->ck.done)
				u->resp_done = 1;
		}
		outq_add(&c->out, u->in->data + u->in_off, take);
		u->in_off += take;
		if (u->resp_done && u->in_off < u->in_len)
			u->no_reuse = 1; /* bytes after the response: do not trust it */
	}
	/* what is left of a large body of known length: through a pipe,
	 * once what the buffer holds is out */
	if (u->head_done && !u->resp_done && u->body == H1_BODY_LENGTH &&
	    u->body_left >= SPLICE_MIN && u->in_off == u->in_len && c->splice_ok)
		u->splicing = 1;
	if (outq_pending(&c->out)) {
		u_relay(u);
	} else if (u->resp_done) {
		c_out_drained(c);
	} else {
		if (u->in_off == u->in_len)
			u->in_off = u->in_len = 0;
		u_arm(u);
	}
	return;
bad:
	b->host->log(SCALER_LOG_WARNING, BAL_WHO, "%s sent %s", u->srv->url, why);
	u->no_reuse = 1;
	if (!u->head_done)
		outlier_result(u->srv, 0);
	if (c->resp_started) {
		c_close(c);
	} else {
		c_error(c, 502);
	}
}

static void u_eof(struct uconn *u, int err)
{
	struct cconn *c = u->c;
	if (!c) {
		u_close(u);
		return;
	}
	if (c->body_only) {
		c_drop_upstream(c); /* it closed after answering: drop the rest */
		return;
	}
	if (c->phase == C_TUNNEL) {
		c_close(c);
		return;
	}
	if (!c->resp_started && !u->head_done) {
		u_fail(u, err ? err : ECONNRESET, 0, 0);
		return;
	}
	if (u->head_done && u->body == H1_BODY_CLOSE && !u->resp_done && !err) {
		u->resp_done = 1;
		u->no_reuse = 1;
		if (outq_pending(&c->out))
			return; /* finished when the client has it all */
		c_out_drained(c);
		return;
	}
	/* the response was cut short: the client cannot be told otherwise */
	c_close(c);
}

static void u_connected(struct uconn *u)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		u_fail(u, err, 1, 0);
		return;
	}
	u->state = U_BUSY;
	u->since = ev_now(u->b->loop);
	c_send_upstream(u->c);
}

/* Splicing: the pipe's bytes to the client; then more from the server,
 * or the end of the response. */
static void u_splice_out(struct uconn *u)
{
	struct cconn *c = u->c;
	struct bal *b = u->b;
	while (u->pipe_len) {
		ssize_t m = splice(u->pr, NULL, c->fd, NULL, u->pipe_len,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (m < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			c_close(c);
			return;
		}
		u->pipe_len -= (uint32_t)m;
		c->out.sent += (uint64_t)m; /* the access log's bytes */
	}
	if (u->pipe_len) {
		c->wsince = ev_now(b->loop);
		c_arm(c);
		u_arm(u);
		return;
	}
	if (!u->body_left) {
		u->resp_done = 1;
		pipe_put(b, u);
		c_out_drained(c);
		return;
	}
	c_arm(c);
	u_arm(u);
}

/* Splicing: the server's next bytes of the body into the pipe. */
static void u_splice_in(struct uconn *u)
{
	struct bal *b = u->b;
	if (u->pr < 0 && pipe_get(b, u) < 0) {
		u->splicing = 0; /* no pipe: copy as usual */
		u_arm(u);
		return;
	}
	size_t want = u->body_left < PIPE_SIZE ? (size_t)u->body_left : PIPE_SIZE;
	ssize_t n = splice(u->fd, NULL, u->pw, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno == EINVAL && !u->pipe_len) {
			u->splicing = 0; /* these sockets cannot: copy as usual */
			pipe_put(b, u);
			u_arm(u);
			return;
		}
		u_eof(u, errno);
		return;
	}
	if (n == 0) {
		u_eof(u, 0);
		return;
	}
	u->pipe_len += (uint32_t)n;
	u->body_left -= (uint64_t)n;
	u->since = ev_now(b->loop);
	u_splice_out(u);
}

static void u_read(struct uconn *u)
{
	struct bal *b = u->b;
	if (!u->in) {
		u->in = buf_get_resp(b);
		if (!u->in) {
			u_eof(u, ENOMEM);
			return;
		}
		u->in_len = u->in_off = 0;
	}
	if (u->in_len == u->in->cap) {
		if (u->c && outq_pending(&u->c->out)) {
			u_arm(u);
			return;
		}
		u_eof(u, ENOBUFS);
		return;
	}
	if (u->splicing && u->c && !c_out_pending(u->c)) {
		u_splice_in(u);
		return;
	}
	if (u->head_done && !u->resp_done && u->in->big != 2 && u->in_off == u->in_len && u->c &&
	    !outq_pending(&u->c->out) && (u->body != H1_BODY_LENGTH || u->body_left > u->in->cap)) {
		/* a large body: read it in fewer, larger reads */
		struct buf *x = buf_get_large(b);
		if (x) {
			buf_put(b, u->in);
			u->in = x;
			u->in_len = u->in_off = 0;
		}
	}
	ssize_t n = read(u->fd, u->in->data + u->in_len, u->in->cap - u->in_len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		u_eof(u, errno);
		return;
	}
	if (n == 0) {
		u_eof(u, 0);
		return;
	}
	if (u->state == U_IDLE || !u->c) {
		u_close(u); /* a server may not speak unasked */
		return;
	}
	if (u->c->body_only) {
		c_drop_upstream(u->c); /* nor after its response */
		return;
	}
	u->in_len += (uint32_t)n;
	u->since = ev_now(b->loop);
	struct cconn *c = u->c;
	if (c->phase == C_TUNNEL) {
		outq_add(&c->out, u->in->data + u->in_off, u->in_len - u->in_off);
		u->in_off = u->in_len;
		u_relay(u);
		return;
	}
	u_process(u);
}

static void u_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct uconn *u = w->data;
	(void)loop;
	if (u->state == U_CONNECTING) {
		if (revents & (EV_WRITE | EV_READ))
			u_connected(u);
		return;
	}
	if (revents & EV_WRITE) {
		int r = outq_flush(u->fd, &u->out, 0);
		if (r < 0) {
			if (u->c && u->c->phase == C_TUNNEL)
				c_close(u->c);
			else
				u_fail(u, errno, 0, 0);
			return;
		}
		u->since = ev_now(u->b->loop);
		if (r > 0 && u->c) {
			struct cconn *c = u->c;
			u_arm(u);
			if (c->read_blocked) {
				c->read_blocked = 0;
				c_arm(c);
			}
			if (c->phase == C_TUNNEL) {
				c->in_len = c->rq_sent = c->rq_start = c->rq_end = 0;
			} else if (c->rq_end > c->rq_sent) {
				c_send_upstream(c);
			}
			if (c->body_only && c->u == u)
				c_body_check(c);
		}
		return;
	}
	if (revents & EV_READ)
		u_read(u);
}

/* ---- accept, timeouts, shutdown ----------------------------------------- */

/* An IPv4 client of a dual-stack socket as the IPv4 address it is. */
static void p_unmap(struct sockaddr_storage *sa)
{
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)sa;
	if (sa->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
		return;
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = a6->sin6_port};
	memcpy(&a4.sin_addr, a6->sin6_addr.s6_addr + 12, 4);
	memcpy(sa, &a4, sizeof(a4));
}

/* Whether the client is a trusted proxy, and the lines that tell the
 * server who the client is (RFC 7239 and the X-Forwarded-* custom). */
static void p_forwarding(struct bal *b, struct cconn *c, struct sockaddr_storage *sa)
{
	char ip[INET6_ADDRSTRLEN] = "unknown";
	p_unmap(sa);
	const void *addr = NULL;
	if (sa->ss_family == AF_INET)
		addr = &((struct sockaddr_in *)sa)->sin_addr;
	else if (sa->ss_family == AF_INET6)
		addr = &((struct sockaddr_in6 *)sa)->sin6_addr;
	if (addr)
		inet_ntop(sa->ss_family, addr, ip, sizeof(ip));
	memcpy(c->client, ip, sizeof(c->client));
	c->trusted = (uint8_t)(addr && bal_net_match(b->conf.trusted, b->conf.ntrusted,
	                                             sa->ss_family, addr));
	/* Forwarded quotes an IPv6 address in brackets (RFC 7239 §6) */
	int v6 = sa->ss_family == AF_INET6;
	const char *proto = b->tls ? "https" : "http";
	int n = snprintf(c->fwd, sizeof(c->fwd),
	                 "X-Forwarded-For: %s\r\nForwarded: for=%s%s%s;proto=%s\r\n", ip,
	                 v6 ? "\"[" : "", ip, v6 ? "]\"" : "", proto);
	int p = n < (int)sizeof(c->fwd) ? snprintf(c->fwd + n, sizeof(c->fwd) - (size_t)n,
	                                           "X-Forwarded-Proto: %s\r\n", proto)
	                                : 0;
	c->fwd_len = (uint8_t)(n + p < (int)sizeof(c->fwd) ? n + p : 0);
	c->fwd_proto_len = c->fwd_len ? (uint8_t)p : 0;
}

static void p_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct bal *b = w->data;
	(void)revents;
	for (;;) {
		if (b->nconns >= b->conf.max_connections) {
			ev_io_stop(loop, &b->accept_w);
			return;
		}
		struct sockaddr_storage sa;
		socklen_t slen = sizeof(sa);
		int fd = accept4(b->listen_fd, (struct sockaddr *)&sa, &slen,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				b->host->log(SCALER_LOG_ERR, BAL_WHO,
				             "accept: %s; pausing for 0.1 s", strerror(errno));
				ev_io_stop(loop, &b->accept_w);
				ev_timer_start(loop, &b->accept_pause);
			}
			return;
		}
		struct ssl_st *ssl = NULL;
		if (b->tls && !(ssl = tls_conn_new(b->tls, fd))) {
			close(fd);
			continue;
		}
		struct cconn *c = b->free_cconns;
		if (c)
			b->free_cconns = c->next;
		else if (!(c = malloc(sizeof(*c)))) {
			tls_conn_free(ssl, 0);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(c, 0, offsetof(struct cconn, out));
		c->ssl = ssl;
		c->out.i = c->out.n = 0;
		c->out.sent = 0;
		c->b = b;
		c->fd = fd;
		c->splice_ok = !ssl; /* a body goes around TLS: plain sockets only */
		c->phase = C_IDLE;
		c->since = ev_now(loop);
		p_forwarding(b, c, &sa);
		c->next = b->conns;
		c->prev = NULL;
		if (b->conns)
			b->conns->prev = c;
		b->conns = c;
		b->nconns++;
		b->st->accepted++;
		ev_io_init(&c->io, c_io_cb, fd, EV_READ);
		c->io.data = c;
		ev_io_start(loop, &c->io);
	}
}

static void p_accept_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal *b = w->data;
	(void)revents;
	if (b->accepting && b->listen_fd >= 0 && !b->shutting_down)
		ev_io_start(loop, &b->accept_w);
}

/* While draining, a keep-alive connection is closed between requests only
 * once it has been idle this long (a client that is about to send on it
 * would see the close as a failure); the others get Connection: close on
 * their next response. */
#define DRAIN_IDLE 1.0

/* Close an idle keep-alive connection unless a request is arriving on it. */
static void c_close_idle(struct cconn *c)
{
	char x;
	if (recv(c->fd, &x, 1, MSG_PEEK | MSG_DONTWAIT) > 0 || (c->ssl && tls_pending(c->ssl)))
		return; /* read on the next iteration */
	c_close(c);
}

static void p_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bal *b = w->data;
	const struct bal_conf *cf = &b->conf;
	double now = ev_now(loop);
	(void)revents;

	struct cconn *next;
	for (int list = 0; list < 2; list++)
		for (struct cconn *c = list ? b->streams : b->conns; c; c = next) {
			next = c->next;
			struct uconn *u = c->u;
			switch (c->phase) {
			case C_H2:
				h2_sweep(c->h2, now);
				break;
			case C_IDLE:
				if (c->ssl && !tls_handshake_done(c->ssl) &&
				    now - c->since > cf->client_timeout)
					c_close(c); /* a TLS handshake gets client_timeout */
				else if (now - c->since >
				         (b->shutting_down ? DRAIN_IDLE : cf->idle_timeout))
					c_close_idle(c);
				break;
			case C_HEAD:
				if (now - c->since > cf->client_timeout) {
					b->st->timeouts++;
					c_error(c, 408);
				}
				break;
			case C_EXCHANGE:
				if (c->held && now - c->held_at > cf->hold_timeout) {
					b->st->timeouts++;
					c_error_at(c, C_ERR_HOLD_TIMEOUT);
				} else if (u && u->state == U_CONNECTING &&
				           now - u->since > cf->connect_timeout) {
					b->st->timeouts++;
					u_fail(u, ETIMEDOUT, 1, 1);
				} else if (u && now - u->since > cf->server_timeout &&
				           (c->rq_done || outq_pending(&u->out)) &&
				           (!c_out_pending(c) ||
				            now - c->wsince > cf->server_timeout)) {
					/* the server neither read nor wrote for server_timeout
					 * while it had work (not while the client uploads) */
					b->st->timeouts++;
					outlier_result(u->srv, 0);
					if (c->resp_started) {
						c_close(c);
					} else {
						/* not retried: the server may be working on it */
						u->no_reuse = 1;
						c_error(c, 504);
					}
				} else if (!c->rq_done && now - c->since > cf->client_timeout &&
				           !(u && outq_pending(&u->out))) {
					b->st->timeouts++;
					if (c->resp_started)
						c_close(c);
					else
						c_error(c, 408);
				} else if (c_out_pending(c) &&
				           now - c->wsince > cf->client_timeout) {
					c_close(c); /* the client stopped reading */
				}
				break;
			case C_TUNNEL: {
				double last = c->since;
				if (u && u->since > last)
					last = u->since;
				if (now - last > cf->tunnel_timeout)
					c_close(c);
				break;
			}
			case C_CLOSING:
				if (now - c->since > CLOSING_LINGER)
					c_close(c);
				break;
			}
		}
	for (struct server *s = b->servers; s; s = s->next)
		while (s->idle_first && now - s->idle_first->since > cf->upstream_idle_timeout)
			u_close(s->idle_first);
	board_gauges(b);
}

int proxy_listen(struct bal *b, const char *hostport, char *err, size_t errlen)
{
	int fd = net_listen(hostport, 4096, err, errlen);
	if (fd < 0)
		return -1;
	proxy_adopt(b, fd);
	proxy_accept(b);
	return 0;
}

void proxy_accept(struct bal *b)
{
	if (b->accepting || b->shutting_down || b->listen_fd < 0)
		return;
	b->accepting = 1;
	ev_io_start(b->loop, &b->accept_w);
}

void proxy_adopt(struct bal *b, int fd)
{
	c_errors_init();
	b->buf_size = b->conf.max_header_size < 16384 ? 16384 : b->conf.max_header_size;
	b->listen_fd = fd;
	ev_io_init(&b->accept_w, p_accept_cb, b->listen_fd, EV_READ);
	b->accept_w.data = b;
	ev_timer_init(&b->accept_pause, p_accept_resume, 0.1, 0.);
	b->accept_pause.data = b;
	const struct bal_conf *cf = &b->conf;
	double tick = cf->connect_timeout;
	if (cf->client_timeout < tick)
		tick = cf->client_timeout;
	if (cf->server_timeout < tick)
		tick = cf->server_timeout;
	if (cf->hold_max > 0 && cf->hold_timeout < tick)
		tick = cf->hold_timeout;
	tick /= 4;
	if (tick > 0.5)
		tick = 0.5;
	if (tick < 0.02)
		tick = 0.02;
	ev_timer_init(&b->sweep, p_sweep_cb, tick, tick);
	b->sweep.data = b;
	ev_timer_start(b->loop, &b->sweep);
}

void proxy_shutdown(struct bal *b)
{
	/* what waits in this worker's socket is served (Connection: close),
	 * not reset should the socket close with this worker (a reload that
	 * lowers the zone's workers) */
	if (b->accepting && b->listen_fd >= 0 && !b->shutting_down)
		p_accept_cb(b->loop, &b->accept_w, EV_READ);
	b->shutting_down = 1;
	/* nobody will serve what waits: say so now rather than at hold_timeout */
	while (b->held_first)
		c_error_at(b->held_first, C_ERR_HOLD_TIMEOUT);
	if (b->listen_fd >= 0) {
		ev_io_stop(b->loop, &b->accept_w);
		ev_timer_stop(b->loop, &b->accept_pause);
		close(b->listen_fd);
		b->listen_fd = -1;
	}
	double now = ev_now(b->loop);
	struct cconn *next;
	for (struct cconn *c = b->conns; c; c = next) {
		next = c->next;
		if (c->phase == C_IDLE && now - c->since > DRAIN_IDLE)
			c_close_idle(c);
		else if (c->phase == C_H2)
			h2_shutdown(c->h2); /* no new streams; closes once they are done */
	}
	for (struct server *s = b->servers; s; s = s->next)
		proxy_close_idle(s);
	if (b->nconns == 0)
		ev_timer_stop(b->loop, &b->sweep);
}

void proxy_free(struct bal *b)
{
	proxy_shutdown(b);
	while (b->streams)
		c_close(b->streams);
	while (b->conns)
		c_close(b->conns);
	ev_timer_stop(b->loop, &b->sweep);
	while (b->free_cconns) {
		struct cconn *c = b->free_cconns;
		b->free_cconns = c->next;
		free(c);
	}
	while (b->free_uconns) {
		struct uconn *u = b->free_uconns;
		b->free_uconns = u->next;
		free(u);
	}
	while (b->npipes > 0) {
		b->npipes--;
		close(b->pipes[b->npipes][0]);
		close(b->pipes[b->npipes][1]);
	}
	buf_pool_free(&b->free_large, &b->nfree_large);
	buf_pool_free(&b->free_resp, &b->nfree_resp);
	buf_pool_free(&b->free_bufs, &b->nfree_bufs);
}

/* ---- HTTP/2 streams (h2.c): each one an exchange without a socket ------- */

struct cconn *proxy_stream_new(struct cconn *parent, struct h2s *st)
{
	struct bal *b = parent->b;
	struct cconn *c = b->free_cconns;
	if (c)
		b->free_cconns = c->next;
	else if (!(c = malloc(sizeof(*c))))
		return NULL;
	memset(c, 0, offsetof(struct cconn, out));
	c->out.i = c->out.n = 0;
	c->out.sent = 0;
	c->b = b;
	c->fd = -1;
	c->phase = C_IDLE;
	c->since = c->wsince = ev_now(b->loop);
	c->h2s = st;
	c->trusted = parent->trusted;
	c->tls_ver = parent->ssl ? tls_version(parent->ssl) : NULL;
	memcpy(c->client, parent->client, sizeof(c->client));
	memcpy(c->fwd, parent->fwd, sizeof(c->fwd));
	c->fwd_len = parent->fwd_len;
	c->fwd_proto_len = parent->fwd_proto_len;
	c->next = b->streams;
	c->prev = NULL;
	if (b->streams)
		b->streams->prev = c;
	b->streams = c;
	b->nstreams++;
	return c;
}

size_t proxy_stream_input(struct cconn *c, const char *p, size_t n)
{
	struct bal *b = c->b;
	size_t took = 0;
	while (took < n && !c->dead && !c->read_blocked) {
		if (!c->in) {
			if (!(c->in = buf_get(b))) {
				c_close(c);
				break;
			}
			c->in_len = c->rq_start = c->rq_end = c->rq_sent = 0;
		}
		if (c->in_len == c->in->cap && !c_make_room(c)) {
			c->read_blocked = 1;
			break;
		}
		size_t k = n - took;
		if (k > c->in->cap - c->in_len)
			k = c->in->cap - c->in_len;
		memcpy(c->in->data + c->in_len, p + took, k);
		took += k;
		c_input(c, (uint32_t)k);
	}
	return took;
}

void proxy_stream_refuse(struct cconn *c, int status)
{
	c_error(c, status);
}

void proxy_stream_abort(struct cconn *c)
{
	c_close(c);
}

void proxy_stream_writable(struct cconn *c)
{
	if (c->dead)
		return;
	int r = c_flush(c);
	if (r < 0) {
		c_close(c);
		return;
	}
	if (r > 0)
		c_out_drained(c);
}

int proxy_stream_dead(const struct cconn *c)
{
	return c->dead;
}

int proxy_stream_out(struct cconn *c, struct iovec **iov)
{
	*iov = c->out.iov + c->out.i;
	return c->out.n - c->out.i;
}

void proxy_stream_out_take(struct cconn *c, size_t n)
{
	outq_consume(&c->out, n);
	if (c->out.i == c->out.n)
		c->out.i = c->out.n = 0;
	c->wsince = ev_now(c->b->loop); /* the client reads */
}

const struct h1_head *proxy_stream_request(const struct cconn *c)
{
	return c->phase == C_EXCHANGE || c->phase == C_CLOSING ? &c->rq : NULL;
}

ssize_t proxy_conn_recv(struct cconn *c, void *buf, size_t len)
{
	return c_recv(c, buf, len);
}

ssize_t proxy_conn_send(struct cconn *c, const void *p, size_t n)
{
	ssize_t w =
	    c->ssl ? tls_send(c->ssl, p, n) : send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	return w;
}

void proxy_conn_want_write(struct cconn *c, int on)
{
	if (c->want_write != on)
		c->wsince = ev_now(c->b->loop);
	c->want_write = (uint8_t)on;
	c_arm(c);
}

void proxy_conn_more(struct cconn *c)
{
	c_tls_more(c);
}

void proxy_conn_close(struct cconn *c)
{
	c_close(c);
}
