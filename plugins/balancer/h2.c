/* HTTP/2 to clients, with nghttp2, on TLS connections whose ALPN chose h2.
 *
 * Each stream is an exchange of its own in proxy.c (a struct cconn without
 * a socket), so an HTTP/2 request takes the path an HTTP/1.1 one takes:
 * server choice, retries, holding, upstream keep-alive, statistics, access
 * log. The request goes in as HTTP/1.1 bytes that this file writes from
 * the stream's headers and DATA, and that the HTTP/1 parser reads again;
 * the response comes back as the HTTP/1.1 bytes the server sent, which
 * this file turns into HEADERS and DATA frames.
 *
 * Strictness (RFC 9113 §8): nghttp2 refuses connection-specific fields,
 * pseudo-headers out of place, uppercase names, field values with CR, LF
 * or NUL, and DATA that disagrees with content-length; the request written
 * from the fields is parsed again by the HTTP/1 parser, so anything it
 * would refuse is refused here too. The body is framed by content-length
 * when the client gave one (nghttp2 holds the DATA to it), else chunked
 * from the DATA frames: what one stream carries is one request upstream,
 * never two.
 *
 * Limits: max concurrent streams (http2_max_streams), the header list
 * (max_header_size: 431 past it), windows granted only as the exchange
 * takes the body (no buffer grows with what a client sends), and the rapid
 * reset pattern (CVE-2023-44487): a stream starts only after the whole
 * batch of frames that opened it was read, so one reset in the same batch
 * never reaches a server, and nghttp2's reset budget (H2_RESET_BURST,
 * then H2_RESET_RATE a second) closes a connection that goes on with
 * GOAWAY ENHANCE_YOUR_CALM. */
#include "config.h"

#include "bal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#define H2_RESET_BURST 200 /* resets a connection may send at once */
#define H2_RESET_RATE 33   /* then per second (nghttp2's default) */
#define H2_OBUF 65536      /* frames written at once */
#define H2_FRAME_MAX 16393 /* the largest nghttp2_session_mem_send piece (a frame) */
#define H2_HEAD_MAX 1024   /* the request line and Host, past the fields */

/* The worker's: one buffer to write frames from, and the connections with
 * work to finish before the loop sleeps. */
struct h2ctx {
	ev_prepare prep;
	struct h2conn *dirty;
	char obuf[H2_OBUF];
	char ibuf[16384];
};

struct h2seg { /* request bytes waiting for room in the exchange */
	struct h2seg *next;
	size_t len, off, payload; /* payload: the DATA bytes in it, consumed once all went in */
	char data[];
};

struct h2s {
	struct h2conn *h;
	int32_t id;
	struct h2s *next, *prev; /* the connection's streams */
	struct h2s *tnext;       /* work to do after the batch */
	uint8_t queued, want_start, want_writable, want_end;
	struct cconn *c; /* the exchange, NULL before it starts and once it closed */
	/* the request */
	char method[64];
	char authority[256], host[256];
	char *path;    /* a copy of :path */
	char *fields;  /* "name: value\r\n" lines of the regular fields */
	char *cookies; /* cookie fields, joined with "; " (RFC 9113 §8.2.3) */
	size_t flen, fcap, clen, ccap, hsize;
	uint8_t has_cl, has_host, has_auth, end_in, started, chunked, closed, detached, complete;
	uint8_t feeding, doomed;
	int busy;   /* calls on the stack that use it: freed when they return */
	int refuse; /* a status to answer without a server, 0 */
	struct h2seg *pend, *pend_last;
	/* the response */
	uint8_t head_sent, body, eof, deferred;
	unsigned ninterim;
	uint64_t left;
	struct h1_chunk ck;
};

struct h2conn {
	struct bal *b;
	struct cconn *c;
	nghttp2_session *ses;
	struct h2conn *dnext; /* ctx->dirty */
	uint8_t dirty, closing, freeing, running;
	struct h2s *streams, *todo, *todo_last;
	int nstreams;
	double last; /* when the last stream ended (or the connection began) */
	char *rem;   /* frames not written yet */
	size_t rlen, roff;
	double wsince; /* since when rem waits */
};

static void h2_run(struct h2conn *h);

/* ---- the worker's context -------------------------------------------------------- */

static void h2_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct h2ctx *x = w->data;
	(void)loop;
	(void)revents;
	while (x->dirty) {
		struct h2conn *h = x->dirty;
		x->dirty = h->dnext;
		h->dirty = 0;
		h2_run(h);
	}
}

static struct h2ctx *h2_ctx(struct bal *b)
{
	if (!b->h2ctx && (b->h2ctx = calloc(1, sizeof(*b->h2ctx)))) {
		ev_prepare_init(&b->h2ctx->prep, h2_on_prepare);
		b->h2ctx->prep.data = b->h2ctx;
		ev_prepare_start(b->loop, &b->h2ctx->prep);
		ev_unref(b->loop);
	}
	return b->h2ctx;
}

static void h2_mark(struct h2conn *h)
{
	struct h2ctx *x = h->b->h2ctx;
	if (h->dirty || h->freeing)
		return;
	h->dirty = 1;
	h->dnext = x->dirty;
	x->dirty = h;
}

static void h2_unmark(struct h2conn *h)
{
	struct h2ctx *x = h->b->h2ctx;
	if (!h->dirty)
		return;
	for (struct h2conn **pp = &x->dirty; *pp; pp = &(*pp)->dnext)
		if (*pp == h) {
			*pp = h->dnext;
			break;
		}
	h->dirty = 0;
}

/* ---- streams ------------------------------------------------------------------------ */

static void h2s_queue(struct h2s *s)
{
	struct h2conn *h = s->h;
	if (!s->queued) {
		s->queued = 1;
		s->tnext = NULL;
		if (h->todo_last)
			h->todo_last->tnext = s;
		else
			h->todo = s;
		h->todo_last = s;
	}
	h2_mark(h);
}

static void h2s_free(struct h2s *s)
{
	struct h2conn *h = s->h;
	if (s->busy) {
		s->doomed = 1;
		return;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->queued) {
		struct h2s **pp = &h->todo;
		h->todo_last = NULL;
		for (; *pp; pp = &(*pp)->tnext) {
			if (*pp == s)
				*pp = s->tnext;
			if (!*pp)
				break;
			h->todo_last = *pp;
		}
	}
	while (s->pend) {
		struct h2seg *g = s->pend;
		s->pend = g->next;
		free(g);
	}
	free(s->fields);
	free(s->cookies);
	free(s->path);
	h->nstreams--;
	if (h->nstreams == 0)
		h->last = ev_now(h->b->loop);
	free(s);
}

/* s is used across calls that may end it (the exchange closes, nghttp2
 * closes the stream): it stays until the last such use is over. */
static void h2s_hold(struct h2s *s)
{
	s->busy++;
}

static void h2s_release(struct h2s *s)
{
	if (--s->busy == 0 && s->doomed)
		h2s_free(s);
}

/* Free s once nghttp2 and the exchange are both done with it. */
static void h2s_maybe_free(struct h2s *s)
{
	if (s->closed && (s->detached || !s->c))
		h2s_free(s);
}

/* Append a, sep and b to a growing buffer. */
static int h2_append(char **buf, size_t *len, size_t *cap, const char *a, size_t an,
                     const char *sep, const char *b, size_t bn)
{
	size_t sn = strlen(sep), need = *len + an + sn + bn;
	if (need > *cap) {
		size_t ncap = *cap ? *cap * 2 : 512;
		while (ncap < need)
			ncap *= 2;
		char *f = realloc(*buf, ncap);
		if (!f)
			return -1;
		*buf = f;
		*cap = ncap;
	}
	memcpy(*buf + *len, a, an);
	memcpy(*buf + *len + an, sep, sn);
	memcpy(*buf + *len + an + sn, b, bn);
	*len = need;
	return 0;
}

/* Request bytes for the exchange: now when it has room, else in order later. */
static int h2s_push(struct h2s *s, const char *p, size_t n, size_t payload)
{
	struct h2seg *g = malloc(sizeof(*g) + n);
	if (!g)
		return -1;
	g->next = NULL;
	g->len = n;
	g->off = 0;
	g->payload = payload;
	memcpy(g->data, p, n);
	if (s->pend_last)
		s->pend_last->next = g;
	else
		s->pend = g;
	s->pend_last = g;
	return 0;
}

/* Move what waits into the exchange while it takes it; the window grows
 * by the DATA bytes that went in. */
static void h2s_feed(struct h2s *s)
{
	struct h2conn *h = s->h;
	if (s->feeding)
		return; /* the exchange asked for more while taking some */
	s->feeding = 1;
	h2s_hold(s);
	while (s->pend) {
		struct h2seg *g = s->pend;
		if (s->c && !proxy_stream_dead(s->c)) {
			size_t took = proxy_stream_input(s->c, g->data + g->off, g->len - g->off);
			g->off += took;
			if (g->off < g->len && s->c && !proxy_stream_dead(s->c))
				break; /* h2_stream_armed brings the rest */
		}
		/* taken, or nobody to take it: the client may send on */
		if (g->payload && s->closed)
			nghttp2_session_consume_connection(h->ses, g->payload);
		else if (g->payload)
			nghttp2_session_consume(h->ses, s->id, g->payload);
		s->pend = g->next;
		if (!s->pend)
			s->pend_last = NULL;
		free(g);
		h2_mark(h);
	}
	s->feeding = 0;
	h2s_release(s);
}

/* The request's head as HTTP/1.1, then its body so far. */
static void h2s_start(struct h2s *s)
{
	struct h2conn *h = s->h;
	struct bal *b = h->b;
	s->started = 1;
	s->c = proxy_stream_new(h->c, s);
	if (!s->c) {
		nghttp2_submit_rst_stream(h->ses, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
		h2s_feed(s); /* gives the body's window back */
		return;
	}
	/* nghttp2 lets a request without :authority by (RFC 9113 §8.3.1 allows
	 * Host instead); HTTP/1.1 needs one */
	if (!s->refuse && (!s->method[0] || !s->path || (!s->has_auth && !s->has_host)))
		s->refuse = 400;
	size_t plen = s->path ? strlen(s->path) : 0;
	size_t len = strlen(s->method) + plen + strlen(s->authority) + strlen(s->host) + s->flen +
	             s->clen + 128;
	if (!s->refuse && len > b->buf_size)
		s->refuse = 431;
	char *head = s->refuse ? NULL : malloc(len);
	if (!head) {
		proxy_stream_refuse(s->c, s->refuse ? s->refuse : 400);
		h2s_feed(s); /* the body goes nowhere */
		return;
	}
	size_t n = (size_t)snprintf(head, len, "%s %s HTTP/1.1\r\nHost: %s\r\n", s->method, s->path,
	                            s->has_auth ? s->authority : s->host);
	memcpy(head + n, s->fields, s->flen);
	n += s->flen;
	if (s->clen)
		n += (size_t)snprintf(head + n, len - n, "Cookie: %.*s\r\n", (int)s->clen,
		                      s->cookies);
	if (s->chunked)
		n += (size_t)snprintf(head + n, len - n, "Transfer-Encoding: chunked\r\n");
	n += (size_t)snprintf(head + n, len - n, "\r\n");
	/* the head fits an empty buffer: it is taken whole */
	proxy_stream_input(s->c, head, n);
	free(head);
	h2s_feed(s);
}

/* ---- nghttp2's callbacks ---------------------------------------------------------- */

static int h2_on_begin_headers(nghttp2_session *ses, const nghttp2_frame *f, void *user)
{
	struct h2conn *h = user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2s *s = calloc(1, sizeof(*s));
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	s->h = h;
	s->id = f->hd.stream_id;
	s->next = h->streams;
	if (h->streams)
		h->streams->prev = s;
	h->streams = s;
	h->nstreams++;
	nghttp2_session_set_stream_user_data(ses, s->id, s);
	return 0;
}

static int h2_is(const uint8_t *name, size_t n, const char *what)
{
	return n == strlen(what) && memcmp(name, what, n) == 0;
}

static int h2_on_header(nghttp2_session *ses, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user)
{
	struct h2conn *h = user;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers: not passed on */
	struct h2s *s = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
	if (!s || s->refuse)
		return 0;
	/* RFC 9113 §6.5.2: the size of a field line is its name, its value and 32 */
	s->hsize += namelen + valuelen + 32;
	if (s->hsize > h->b->conf.max_header_size) {
		s->refuse = 431;
		return 0;
	}
	const char *v = (const char *)value;
	if (h2_is(name, namelen, ":method")) {
		if (valuelen >= sizeof(s->method))
			s->refuse = 501;
		else
			memcpy(s->method, v, valuelen);
	} else if (h2_is(name, namelen, ":path")) {
		if (!(s->path = strndup(v, valuelen)))
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	} else if (h2_is(name, namelen, ":authority") || h2_is(name, namelen, "host")) {
		int auth = name[0] == ':';
		char *dst = auth ? s->authority : s->host;
		if (valuelen >= sizeof(s->authority)) {
			s->refuse = 400;
		} else {
			memcpy(dst, v, valuelen);
			dst[valuelen] = '\0';
			if (auth)
				s->has_auth = 1;
			else
				s->has_host = 1;
		}
	} else if (h2_is(name, namelen, "cookie")) {
		if (h2_append(&s->cookies, &s->clen, &s->ccap, "", 0, s->clen ? "; " : "", v,
		              valuelen) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	} else if (name[0] != ':' && !h2_is(name, namelen, "te")) {
		/* te: trailers is all nghttp2 lets through, and it is hop-by-hop */
		if (h2_append(&s->fields, &s->flen, &s->fcap, (const char *)name, namelen, ": ", v,
		              valuelen) < 0 ||
		    h2_append(&s->fields, &s->flen, &s->fcap, "", 0, "\r\n", "", 0) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if (h2_is(name, namelen, "content-length"))
			s->has_cl = 1;
	}
	return 0;
}

static int h2_on_frame_recv(nghttp2_session *ses, const nghttp2_frame *f, void *user)
{
	(void)user;
	struct h2s *s = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
	if (!s)
		return 0;
	int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		if (s->has_auth && s->has_host && strcasecmp(s->authority, s->host) != 0)
			s->refuse = 400; /* Host must name what :authority does (RFC 9113 §8.3.1) */
		s->end_in = (uint8_t)end;
		/* a body without content-length goes chunked, frame by frame */
		s->chunked = !end && !s->has_cl;
		s->want_start = 1; /* after the batch: a reset in it costs no server */
		h2s_queue(s);
		return 0;
	}
	if (end && !s->end_in) {
		s->end_in = 1;
		if (s->chunked && h2s_push(s, "0\r\n\r\n", 5, 0) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if (s->started)
			h2s_feed(s);
	}
	return 0;
}

static int h2_on_data(nghttp2_session *ses, uint8_t flags, int32_t id, const uint8_t *data,
                      size_t len, void *user)
{
	struct h2conn *h = user;
	struct h2s *s = nghttp2_session_get_stream_user_data(ses, id);
	(void)flags;
	if (!s) {
		nghttp2_session_consume(h->ses, id, len);
		return 0;
	}
	if (s->chunked && len) {
		char line[24];
		int n = snprintf(line, sizeof(line), "%zx\r\n", len);
		if (h2s_push(s, line, (size_t)n, 0) < 0 ||
		    h2s_push(s, (const char *)data, len, 0) < 0 || h2s_push(s, "\r\n", 2, len) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	} else if (len && h2s_push(s, (const char *)data, len, len) < 0) {
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (s->started)
		h2s_feed(s);
	return 0;
}

static int h2_on_stream_close(nghttp2_session *ses, int32_t id, uint32_t error, void *user)
{
	struct h2s *s = nghttp2_session_get_stream_user_data(ses, id);
	(void)user;
	(void)error;
	if (!s)
		return 0;
	s->closed = 1;
	nghttp2_session_set_stream_user_data(ses, id, NULL);
	if (s->c && !proxy_stream_dead(s->c) && !s->eof) {
		/* reset by the client, or the connection failed it: nobody waits
		 * for the answer */
		s->want_end = 1;
		h2s_queue(s);
		return 0;
	}
	h2s_maybe_free(s);
	return 0;
}

/* ---- responses ------------------------------------------------------------------- */

/* The response head at the front of the exchange's queue into tmp: its
 * length (up to and with the empty line), 0 when it is not all there. */
static size_t h2s_head(struct cconn *c, char *tmp, size_t cap)
{
	struct iovec *iov;
	int n = proxy_stream_out(c, &iov);
	size_t len = 0;
	for (int i = 0; i < n && len < cap; i++) {
		size_t k = iov[i].iov_len < cap - len ? iov[i].iov_len : cap - len;
		memcpy(tmp + len, iov[i].iov_base, k);
		len += k;
	}
	for (size_t j = 0; j + 4 <= len; j++)
		if (memcmp(tmp + j, "\r\n\r\n", 4) == 0)
			return j + 4;
	return 0;
}

/* Fields of an HTTP/1.1 response head as nghttp2 name/value pairs, less
 * the connection-specific ones (RFC 9113 §8.2.2); names lowercased in
 * place. Returns how many. */
static size_t h2_head_nva(char *head, size_t len, nghttp2_nv *nva, size_t max, char *status)
{
	size_t n = 0;
	memcpy(status, head + 9, 3);
	nva[n++] =
	    (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
	char *p = memchr(head, '\n', len);
	char *end = head + len - 2;
	while (p && ++p < end && n < max) {
		char *eol = memchr(p, '\r', (size_t)(end - p) + 1);
		char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!eol || !colon)
			break;
		for (char *q = p; q < colon; q++)
			*q = (char)tolower((unsigned char)*q);
		char *v = colon + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t nl = (size_t)(colon - p);
		static const char *const hop[] = {"connection",       "keep-alive",
		                                  "proxy-connection", "transfer-encoding",
		                                  "upgrade",          NULL};
		int skip = 0;
		for (int k = 0; hop[k] && !skip; k++)
			skip = nl == strlen(hop[k]) && memcmp(p, hop[k], nl) == 0;
		if (!skip)
			nva[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, nl, (size_t)(ve - v),
			                        NGHTTP2_NV_FLAG_NONE};
		p = eol + 1;
	}
	return n;
}

static ssize_t h2_read_body(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *user);

/* Turn the heads at the front of the queue into frames: interim ones
 * (1xx), then the final one. -1 when the stream must be reset. */
static int h2s_heads(struct h2s *s)
{
	struct h2conn *h = s->h;
	struct cconn *c = s->c;
	size_t cap = h->b->buf_size + 64;
	char *tmp = malloc(cap);
	if (!tmp)
		return -1;
	while (!s->head_sent) {
		size_t len = h2s_head(c, tmp, cap);
		if (!len)
			break;
		struct h1_head rs;
		size_t scan = 0;
		if (h1_parse_response(tmp, len, cap, &scan, &rs) <= 0)
			goto bad;
		const struct h1_head *rq = proxy_stream_request(c);
		int kind = rq ? h1_response_kind(rq, &rs, &s->ninterim) : H1_FINAL;
		if (kind < 0 || kind == H1_SWITCH)
			goto bad;
		size_t lines = 1;
		for (size_t i = 0; i < len; i++)
			lines += tmp[i] == '\n';
		nghttp2_nv *nva = malloc(lines * sizeof(*nva));
		if (!nva)
			goto bad;
		char status[3];
		size_t n = h2_head_nva(tmp, len, nva, lines, status);
		int rc;
		if (kind == H1_INTERIM) {
			rc = nghttp2_submit_headers(h->ses, NGHTTP2_FLAG_NONE, s->id, NULL, nva, n,
			                            NULL);
		} else {
			s->head_sent = 1;
			s->body = rs.body;
			s->left = rs.content_length;
			memset(&s->ck, 0, sizeof(s->ck));
			nghttp2_data_provider dp = {.source.ptr = s, .read_callback = h2_read_body};
			if (rs.body == H1_BODY_NONE)
				s->eof = 1;
			rc = nghttp2_submit_response(h->ses, s->id, nva, n,
			                             rs.body == H1_BODY_NONE ? NULL : &dp);
		}
		free(nva);
		proxy_stream_out_take(c, len);
		if (rc != 0)
			goto bad;
	}
	free(tmp);
	return 0;
bad:
	free(tmp);
	return -1;
}

int h2_stream_flush(struct h2s *s)
{
	struct h2conn *h = s->h;
	struct cconn *c = s->c;
	struct iovec *iov;
	if (!c || s->closed) {
		/* the client reset it: the bytes go nowhere */
		int n = proxy_stream_out(c, &iov);
		size_t all = 0;
		for (int i = 0; i < n; i++)
			all += iov[i].iov_len;
		proxy_stream_out_take(c, all);
		return 1;
	}
	if (!s->head_sent && h2s_heads(s) < 0) {
		nghttp2_submit_rst_stream(h->ses, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
		h2_mark(h);
		return -1;
	}
	h2_mark(h);
	if (proxy_stream_out(c, &iov) == 0)
		return 1;
	if (s->deferred) {
		s->deferred = 0;
		nghttp2_session_resume_data(h->ses, s->id);
	}
	return 0; /* h2_read_body takes them, then proxy_stream_writable */
}

static ssize_t h2_read_body(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct h2s *s = src->ptr;
	(void)ses;
	(void)id;
	(void)user;
	if (!s->c) {
		if (s->complete) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* cut short: reset */
	}
	struct iovec *iov;
	int n = proxy_stream_out(s->c, &iov);
	size_t out = 0, taken = 0;
	for (int i = 0; i < n && out < length && !s->eof; i++) {
		const char *p = iov[i].iov_base;
		size_t plen = iov[i].iov_len, off = 0;
		while (off < plen && out < length && !s->eof) {
			size_t k = plen - off;
			if (s->body == H1_BODY_CHUNKED) {
				uint64_t d = h1_chunk_data(&s->ck);
				if (!d) { /* framing: one byte at a time */
					h1_chunk_scan(&s->ck, p + off, 1);
					off++;
					s->eof = s->ck.done;
					continue;
				}
				if (k > d)
					k = (size_t)d;
				if (k > length - out)
					k = length - out;
				h1_chunk_scan(&s->ck, p + off, k);
			} else {
				if (k > length - out)
					k = length - out;
				if (s->body == H1_BODY_LENGTH) {
					if (k > s->left)
						k = (size_t)s->left;
					s->left -= k;
					s->eof = s->left == 0;
				}
			}
			memcpy(buf + out, p + off, k);
			out += k;
			off += k;
		}
		taken += off;
		if (off < plen)
			break;
	}
	proxy_stream_out_take(s->c, taken);
	if (proxy_stream_out(s->c, &iov) == 0) {
		s->want_writable = 1; /* the exchange goes on once the frames are out */
		h2s_queue(s);
	}
	if (s->eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)out;
	}
	if (out == 0) {
		s->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)out;
}

void h2_stream_end(struct h2s *s)
{
	s->eof = 1;
	s->want_end = 1;
	h2s_queue(s);
	if (s->deferred) {
		s->deferred = 0;
		nghttp2_session_resume_data(s->h->ses, s->id);
	}
}

void h2_stream_armed(struct h2s *s)
{
	if (s->pend && s->started && !s->h->running)
		h2s_feed(s);
	else if (s->pend)
		h2s_queue(s); /* fed after the batch */
}

void h2_stream_detach(struct h2s *s, int complete)
{
	struct h2conn *h = s->h;
	s->c = NULL;
	s->detached = 1;
	s->complete = (uint8_t)(complete || s->eof);
	if (h->freeing) {
		h2s_free(s);
		return;
	}
	if (!s->closed) {
		if (!s->complete || !s->head_sent)
			nghttp2_submit_rst_stream(h->ses, NGHTTP2_FLAG_NONE, s->id,
			                          s->head_sent ? NGHTTP2_INTERNAL_ERROR
			                                       : NGHTTP2_REFUSED_STREAM);
		else if (s->deferred) {
			s->deferred = 0;
			nghttp2_session_resume_data(h->ses, s->id);
		}
		/* the pending body's window is given back */
		h2s_feed(s);
		h2_mark(h);
		return;
	}
	h2s_free(s);
}

/* ---- the connection ------------------------------------------------------------------ */

/* Write frames: what waits first, then what nghttp2 has, through one
 * buffer; what the socket does not take is kept. 0, or -1 to close. */
static int h2_send(struct h2conn *h)
{
	struct h2ctx *x = h->b->h2ctx;
	for (;;) {
		if (h->rlen) {
			ssize_t w = proxy_conn_send(h->c, h->rem + h->roff, h->rlen - h->roff);
			if (w < 0)
				return -1;
			h->roff += (size_t)w;
			if (h->roff < h->rlen) {
				proxy_conn_want_write(h->c, 1);
				return 0;
			}
			free(h->rem);
			h->rem = NULL;
			h->rlen = h->roff = 0;
			proxy_conn_want_write(h->c, 0);
		}
		size_t len = 0;
		while (len + H2_FRAME_MAX <= sizeof(x->obuf)) {
			const uint8_t *p;
			ssize_t n = nghttp2_session_mem_send(h->ses, &p);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			memcpy(x->obuf + len, p, (size_t)n);
			len += (size_t)n;
		}
		if (!len)
			return 0;
		ssize_t w = proxy_conn_send(h->c, x->obuf, len);
		if (w < 0)
			return -1;
		if ((size_t)w < len) {
			if (!(h->rem = malloc(len - (size_t)w)))
				return -1;
			memcpy(h->rem, x->obuf + w, len - (size_t)w);
			h->rlen = len - (size_t)w;
			h->roff = 0;
			h->wsince = ev_now(h->b->loop);
		}
	}
}

/* The work of a batch: streams to start, exchanges that may go on or end,
 * frames to write; the connection closes when nghttp2 is done with it. */
static void h2_run(struct h2conn *h)
{
	if (h->running || h->freeing)
		return;
	h->running = 1;
	int failed = 0;
	for (int round = 0; round < 64 && !failed; round++) {
		/* frames first: a stream nghttp2 resets (DATA past its
		 * content-length, ...) is closed once its RST_STREAM is out, and
		 * then never starts */
		failed = h2_send(h) < 0;
		if (failed || !h->todo)
			break;
		while (h->todo) {
			struct h2s *s = h->todo;
			h->todo = s->tnext;
			if (!h->todo)
				h->todo_last = NULL;
			s->queued = 0;
			h2s_hold(s);
			if (s->want_start) {
				s->want_start = 0;
				if (!s->closed)
					h2s_start(s);
			}
			if (s->pend && s->started)
				h2s_feed(s);
			if (s->want_writable) {
				s->want_writable = 0;
				if (s->c)
					proxy_stream_writable(s->c);
			}
			if (s->want_end) {
				s->want_end = 0;
				if (s->c)
					proxy_stream_abort(s->c); /* detaches s */
				else
					h2s_maybe_free(s);
			}
			h2s_release(s);
		}
	}
	failed = failed || h2_send(h) < 0;
	h->running = 0;
	if (h->todo)
		h2_mark(h); /* more than a round's worth: on the next iteration */
	int idle = !h->rlen && !nghttp2_session_want_write(h->ses);
	if (failed || (idle && !nghttp2_session_want_read(h->ses)) ||
	    (idle && h->closing && h->nstreams == 0))
		proxy_conn_close(h->c);
}

struct h2conn *h2_start(struct bal *b, struct cconn *c, const char *in, size_t n)
{
	if (!h2_ctx(b))
		return NULL;
	struct h2conn *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	if (!h || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	h->b = b;
	h->c = c;
	h->last = ev_now(b->loop);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
	if (nghttp2_session_server_new2(&h->ses, cb, h, opt) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	cb = NULL;
	opt = NULL;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)tls_conf_http2(b->conf.tls)},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)b->conf.max_header_size},
	};
	if (nghttp2_submit_settings(h->ses, NGHTTP2_FLAG_NONE, iv, 2) != 0)
		goto fail;
	h->running = 1;
	ssize_t r = n ? nghttp2_session_mem_recv(h->ses, (const uint8_t *)in, n) : 0;
	h->running = 0;
	if (r < 0)
		goto fail;
	h2_mark(h);
	return h;
fail:
	if (cb)
		nghttp2_session_callbacks_del(cb);
	if (opt)
		nghttp2_option_del(opt);
	if (h && h->ses)
		nghttp2_session_del(h->ses);
	free(h);
	return NULL;
}

void h2_io(struct h2conn *h, int revents)
{
	struct h2ctx *x = h->b->h2ctx;
	if (revents & EV_WRITE)
		h2_mark(h); /* what waits goes now, from h2_run */
	if (revents & EV_READ) {
		ssize_t n = proxy_conn_recv(h->c, x->ibuf, sizeof(x->ibuf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			proxy_conn_close(h->c);
			return;
		}
		if (n > 0) {
			h->running = 1;
			ssize_t r =
			    nghttp2_session_mem_recv(h->ses, (const uint8_t *)x->ibuf, (size_t)n);
			h->running = 0;
			if (r < 0) {
				h->b->host->log(SCALER_LOG_DEBUG, BAL_WHO, "zone %s: HTTP/2: %s",
				                h->b->zone, nghttp2_strerror((int)r));
				/* a protocol error: nghttp2 queued GOAWAY; say it, then close */
				h->closing = 1;
				nghttp2_session_terminate_session(h->ses, NGHTTP2_PROTOCOL_ERROR);
			}
			h2_mark(h);
			proxy_conn_more(h->c);
		}
	}
}

void h2_free(struct h2conn *h)
{
	h->freeing = 1;
	h2_unmark(h);
	while (h->streams) {
		struct h2s *s = h->streams;
		/* nothing of a stream's is on the stack when its connection
		 * closes (h2_run never closes it while it works on one) */
		s->busy = 0;
		if (s->c && !proxy_stream_dead(s->c))
			proxy_stream_abort(s->c); /* detach frees s */
		else
			h2s_free(s);
	}
	nghttp2_session_del(h->ses);
	free(h->rem);
	free(h);
}

void h2_sweep(struct h2conn *h, double now)
{
	struct bal *b = h->b;
	if (h->rlen && now - h->wsince > b->conf.client_timeout) {
		proxy_conn_close(h->c); /* the client stopped reading */
		return;
	}
	if (h->nstreams == 0 && !h->closing &&
	    now - h->last > (b->shutting_down ? 0 : b->conf.idle_timeout))
		h2_shutdown(h);
	else if (h->closing && h->nstreams == 0)
		h2_mark(h);
}

void h2_shutdown(struct h2conn *h)
{
	if (h->closing)
		return;
	h->closing = 1;
	nghttp2_submit_goaway(h->ses, NGHTTP2_FLAG_NONE,
	                      nghttp2_session_get_last_proc_stream_id(h->ses), NGHTTP2_NO_ERROR,
	                      NULL, 0);
	h2_mark(h);
}
