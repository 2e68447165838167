/* Helpers shared by the HTTP unit tests: a blocking test client that reads
 * whole HTTP/1.1 responses, and a monotonic clock. */
#ifndef TEST_HTTP_UTIL_H
#define TEST_HTTP_UTIL_H

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline double tu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct tu_conn {
	int fd;
	char buf[1 << 16];
	size_t len;
};

struct tu_resp {
	int status;
	char head[8192]; /* status line and headers, NUL-terminated */
	char *body;      /* malloc'd, NUL-terminated */
	size_t body_len;
};

static inline void tu_connect(struct tu_conn *c, int port)
{
	struct sockaddr_in sa;
	struct timeval tv = {.tv_sec = 10};
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(c->fd >= 0, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	              "expected to connect to 127.0.0.1:%d, got %s", port, strerror(errno));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static inline void tu_close(struct tu_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Send everything; returns bytes sent (the server may close early). */
static inline size_t tu_send(struct tu_conn *c, const void *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, (const char *)data + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	return off;
}

static inline void tu_send_str(struct tu_conn *c, const char *s)
{
	size_t n = tu_send(c, s, strlen(s));
	ck_assert_msg(n == strlen(s), "expected to send %zu bytes, sent %zu (%s)", strlen(s), n,
	              strerror(errno));
}

/* Read more into the buffer; 0 on EOF, -1 on error or timeout. */
static inline ssize_t tu_fill(struct tu_conn *c)
{
	ssize_t n;
	if (c->len == sizeof(c->buf))
		return -1;
	do
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->len += (size_t)n;
	return n;
}

/* Value of a header in a response head, copied into out; NULL when absent. */
static inline const char *tu_header(const struct tu_resp *r, const char *name, char *out,
                                    size_t outlen)
{
	const char *p = strstr(r->head, "\r\n");
	size_t nl = strlen(name);
	while (p && p[2]) {
		const char *line = p + 2, *eol = strstr(line, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 &&
		    line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = (size_t)(eol - v);
			if (vl >= outlen)
				vl = outlen - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
		p = eol;
	}
	return NULL;
}

/* Read one whole response (Content-Length framed; HEAD: no body).
 * Returns 0, or -1 when the connection ended first. */
static inline int tu_read_response_ex(struct tu_conn *c, struct tu_resp *r, int head)
{
	char *end;
	size_t hlen, clen = 0;
	char v[64];

	memset(r, 0, sizeof(*r));
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (tu_fill(c) <= 0)
			return -1;
	hlen = (size_t)(end - c->buf) + 4;
	ck_assert_msg(hlen < sizeof(r->head), "response head of %zu bytes too long", hlen);
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = '\0';
	ck_assert_msg(sscanf(r->head, "HTTP/1.%*d %d", &r->status) == 1,
	              "expected an HTTP/1.x status line, got \"%.60s\"", r->head);
	if (!head && tu_header(r, "Content-Length", v, sizeof(v)))
		clen = strtoul(v, NULL, 10);
	memmove(c->buf, c->buf + hlen, c->len - hlen);
	c->len -= hlen;
	r->body = malloc(clen + 1);
	ck_assert(r->body != NULL);
	while (r->body_len < clen) {
		if (c->len == 0 && tu_fill(c) <= 0) {
			r->body[r->body_len] = '\0';
			return -1;
		}
		size_t take = clen - r->body_len < c->len ? clen - r->body_len : c->len;
		memcpy(r->body + r->body_len, c->buf, take);
		r->body_len += take;
		memmove(c->buf, c->buf + take, c->len - take);
		c->len -= take;
	}
	r->body[r->body_len] = '\0';
	return 0;
}

static inline void tu_read_response(struct tu_conn *c, struct tu_resp *r)
{
	ck_assert_msg(tu_read_response_ex(c, r, 0) == 0,
	              "expected a complete response, the connection ended or timed out (%s)",
	              strerror(errno));
}

static inline void tu_resp_free(struct tu_resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* 1 when the server closes the connection (EOF or reset) within `secs`. */
static inline int tu_wait_eof(struct tu_conn *c, double secs)
{
	double until = tu_now() + secs;
	char sink[4096];
	c->len = 0;
	while (tu_now() < until) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int ms = (int)((until - tu_now()) * 1000) + 1;
		if (poll(&p, 1, ms) <= 0)
			continue;
		ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
	}
	return 0;
}

#endif
