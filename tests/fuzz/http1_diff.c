/* The balancer's HTTP/1 parser against http_parser (the parser of the admin
 * API and of Node.js before llhttp) on the same bytes: a request, or a
 * response when the input starts with "HTTP/". When both accept a message,
 * they must agree on the method, target, version, status, header fields
 * (names as sent, values without surrounding whitespace), keep-alive and
 * the body. Where only one accepts, nothing is asserted: the balancer is
 * meant to be stricter; where both accept and differ, two programs on the
 * path read one message two ways, the root of request smuggling.
 *
 * Verdicts: "both", "ours" (only the balancer accepts), "theirs", "none". */
#include "config.h"

#include "fuzz.h"
#include "fuzz_http1.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEAD 4096
#define MAX_FIELDS 128

struct fz_msg {
	char url[MAX_HEAD];
	size_t url_len;
	struct {
		size_t name_off, name_len, value_off, value_len;
	} f[MAX_FIELDS];
	int nf, in_value, overflow;
	int nf_head;             /* fields of the head; the rest are trailers */
	char text[2 * MAX_HEAD]; /* names and values, back to back */
	size_t text_len;
	char *body;
	size_t body_len;
	int headers_done, complete;
	int keep_alive; /* as the head says: http_parser lets trailers change it */
};

static struct fz_msg *fz_m;

static int fz_append(char *dst, size_t *len, size_t cap, const char *at, size_t n)
{
	if (*len + n > cap) {
		fz_m->overflow = 1;
		return 0;
	}
	memcpy(dst + *len, at, n);
	*len += n;
	return 0;
}

static int fz_on_url(http_parser *p, const char *at, size_t n)
{
	(void)p;
	return fz_append(fz_m->url, &fz_m->url_len, sizeof(fz_m->url), at, n);
}

static int fz_on_field(http_parser *p, const char *at, size_t n)
{
	(void)p;
	struct fz_msg *m = fz_m;
	if (m->in_value || m->nf == 0) {
		if (m->nf == MAX_FIELDS) {
			m->overflow = 1;
			return 0;
		}
		m->nf++;
		m->f[m->nf - 1].name_off = m->text_len;
		m->f[m->nf - 1].name_len = 0;
		m->f[m->nf - 1].value_len = 0;
		m->in_value = 0;
	}
	m->f[m->nf - 1].name_len += n;
	return fz_append(m->text, &m->text_len, sizeof(m->text), at, n);
}

static int fz_on_value(http_parser *p, const char *at, size_t n)
{
	(void)p;
	struct fz_msg *m = fz_m;
	if (m->nf == 0)
		return 0;
	if (!m->in_value) {
		m->in_value = 1;
		m->f[m->nf - 1].value_off = m->text_len;
	}
	m->f[m->nf - 1].value_len += n;
	return fz_append(m->text, &m->text_len, sizeof(m->text), at, n);
}

static int fz_on_headers_complete(http_parser *p)
{
	fz_m->headers_done = 1;
	fz_m->nf_head = fz_m->nf;
	fz_m->keep_alive = http_should_keep_alive(p);
	/* 1: "no body", which http_parser leaves to its caller for these */
	return p->type == HTTP_RESPONSE &&
	       (p->status_code < 200 || p->status_code == 204 || p->status_code == 304);
}

static int fz_on_body(http_parser *p, const char *at, size_t n)
{
	(void)p;
	memcpy(fz_m->body + fz_m->body_len, at, n);
	fz_m->body_len += n;
	return 0;
}

static int fz_on_complete(http_parser *p)
{
	fz_m->complete = 1;
	http_parser_pause(p, 1); /* one message */
	return 0;
}

static const http_parser_settings fz_settings = {
    .on_url = fz_on_url,
    .on_header_field = fz_on_field,
    .on_header_value = fz_on_value,
    .on_headers_complete = fz_on_headers_complete,
    .on_body = fz_on_body,
    .on_message_complete = fz_on_complete,
};

static void fz_trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* The header lines of our accepted head against http_parser's fields. */
static void fz_compare_fields(const char *buf, const struct h1_head *h, const struct fz_msg *m)
{
	const char *eol = memchr(buf, '\r', h->len);
	size_t pos = (size_t)(eol - buf) + 2;
	int i = 0;
	while (pos < h->len - 2) {
		const char *line = buf + pos;
		const char *end = memchr(line, '\r', h->len - pos);
		const char *colon = memchr(line, ':', (size_t)(end - line));
		FUZZ_ASSERT(colon, "an accepted header line without a colon");
		size_t nl = (size_t)(colon - line);
		const char *v = colon + 1;
		size_t vl = (size_t)(end - v);
		fz_trim(&v, &vl);
		FUZZ_ASSERT(i < m->nf_head, "http_parser saw %d fields, the balancer more",
		            m->nf_head);
		const char *tn = m->text + m->f[i].name_off, *tv = m->text + m->f[i].value_off;
		size_t tnl = m->f[i].name_len, tvl = m->f[i].value_len;
		fz_trim(&tv, &tvl);
		FUZZ_ASSERT(nl == tnl && memcmp(line, tn, nl) == 0,
		            "field %d: name \"%.*s\" vs \"%.*s\"", i, (int)nl, line, (int)tnl, tn);
		FUZZ_ASSERT(vl == tvl && memcmp(v, tv, vl) == 0,
		            "field %d (%.*s): value \"%.*s\" vs \"%.*s\"", i, (int)nl, line,
		            (int)vl, v, (int)tvl, tv);
		i++;
		pos = (size_t)(end - buf) + 2;
	}
	FUZZ_ASSERT(i == m->nf_head, "the balancer saw %d fields, http_parser %d", i, m->nf_head);
}

/* Our body of an accepted message: 1 and the bytes when it is complete, 0
 * when more is needed, -1 when it is malformed. */
static int fz_our_body(const char *p, size_t n, const struct h1_head *h, char *out, size_t *len)
{
	*len = 0;
	switch (h->body) {
	case H1_BODY_NONE:
		return 1;
	case H1_BODY_LENGTH:
		if (n < h->content_length)
			return 0;
		memcpy(out, p, h->content_length);
		*len = h->content_length;
		return 1;
	case H1_BODY_CHUNKED: {
		size_t used;
		int c = fz_check_chunked(p, n, &used);
		if (c <= 0)
			return c;
		FUZZ_ASSERT(fz_chunked_parse(p, used, out, len) == used, "chunked decode");
		return 1;
	}
	case H1_BODY_CLOSE:
		memcpy(out, p, n);
		*len = n;
		return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	int request = !(size >= 5 && memcmp(buf, "HTTP/", 5) == 0);
	struct h1_head h;
	size_t scan = 0;
	int r = request ? h1_parse_request(buf, size, MAX_HEAD, &scan, &h, 0)
	                : h1_parse_response(buf, size, MAX_HEAD, &scan, &h);
	int ours = r > 0;
	if (ours && !request) {
		/* as the proxy takes it, after a GET */
		static const char get[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
		struct h1_head rq;
		size_t s2 = 0;
		unsigned ninterim = 0;
		h1_parse_request(get, sizeof(get) - 1, MAX_HEAD, &s2, &rq, 0);
		int kind = h1_response_kind(&rq, &h, &ninterim);
		ours = kind != -502;
		if (h.status < 200)
			h.body = H1_BODY_NONE;
	}

	struct fz_msg *m = calloc(1, sizeof(*m));
	FUZZ_ASSERT(m, "out of memory");
	m->body = malloc(size + 1);
	FUZZ_ASSERT(m->body, "out of memory");
	fz_m = m;
	http_parser p;
	http_parser_init(&p, request ? HTTP_REQUEST : HTTP_RESPONSE);
	size_t used = http_parser_execute(&p, &fz_settings, buf, size);
	enum http_errno e = HTTP_PARSER_ERRNO(&p);
	if (e == HPE_OK && !m->complete && m->headers_done && !p.upgrade)
		http_parser_execute(&p, &fz_settings, NULL, 0); /* the end of the input */
	e = HTTP_PARSER_ERRNO(&p);
	int theirs = m->headers_done && !m->overflow && (e == HPE_OK || e == HPE_PAUSED);
	(void)used;

	fuzz_verdict("%s", ours && theirs ? "both" : ours ? "ours" : theirs ? "theirs" : "none");
	if (ours && theirs) {
		if (request) {
			FUZZ_ASSERT(h.method_len == strlen(http_method_str(p.method)) &&
			                memcmp(buf, http_method_str(p.method), h.method_len) == 0,
			            "method %.*s vs %s", h.method_len, buf,
			            http_method_str(p.method));
			const char *t = buf + h.method_len + 1;
			const char *te = memchr(t, ' ', h.len);
			FUZZ_ASSERT(te && (size_t)(te - t) == m->url_len &&
			                memcmp(t, m->url, m->url_len) == 0,
			            "target \"%.*s\" vs \"%.*s\"", te ? (int)(te - t) : 0, t,
			            (int)m->url_len, m->url);
		} else {
			FUZZ_ASSERT(h.status == p.status_code, "status %u vs %u", h.status,
			            p.status_code);
		}
		FUZZ_ASSERT(p.http_major == 1 && (h.version == 10) == (p.http_minor == 0),
		            "version %d vs %d.%d", h.version, p.http_major, p.http_minor);
		fz_compare_fields(buf, &h, m);
		if (!p.upgrade && !h.upgrade) {
			char *ob = malloc(size + 1);
			size_t olen;
			FUZZ_ASSERT(ob, "out of memory");
			int done = fz_our_body(buf + h.len, size - h.len, &h, ob, &olen);
			if (done > 0 && m->complete) {
				FUZZ_ASSERT(olen == m->body_len && memcmp(ob, m->body, olen) == 0,
				            "body of %zu bytes vs %zu", olen, m->body_len);
				FUZZ_ASSERT(!h.conn_close == !!m->keep_alive ||
				                h.body == H1_BODY_CLOSE,
				            "keep-alive %d vs %d", !h.conn_close, m->keep_alive);
			} else {
				FUZZ_ASSERT(done <= 0,
				            "the balancer has the whole body, http_parser "
				            "wants more");
				FUZZ_ASSERT(done < 0 || !m->complete,
				            "http_parser has the whole body, "
				            "the balancer wants more");
			}
			free(ob);
		}
	}
	free(m->body);
	free(m);
	return 0;
}
