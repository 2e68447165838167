/* Checks shared by the harnesses of the balancer's HTTP/1 parser. The
 * grammar here is written from RFC 9112 independently of http1.c, so that
 * the two disagree where one of them is wrong. */
#include "config.h"

#include "fuzz.h"
#include "fuzz_http1.h"

#include <stdlib.h>
#include <string.h>

static int fz_is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int fz_is_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

void fz_check_head(const char *buf, size_t size, size_t r, const struct h1_head *h, int request)
{
	FUZZ_ASSERT(r <= size && r >= 4 && h->len == r, "head length %zu (h->len %u) of %zu", r,
	            h->len, size);
	FUZZ_ASSERT(memcmp(buf + r - 4, "\r\n\r\n", 4) == 0, "the head does not end with CRLFCRLF");
	for (size_t i = 0; i < r; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\r')
			FUZZ_ASSERT(i + 1 < r && buf[i + 1] == '\n', "bare CR at %zu", i);
		else if (c == '\n')
			FUZZ_ASSERT(i > 0 && buf[i - 1] == '\r', "bare LF at %zu", i);
		else
			FUZZ_ASSERT(fz_is_field_byte(c), "byte 0x%02x at %zu", c, i);
	}
	const char *eol = memchr(buf, '\r', r);
	size_t first = (size_t)(eol - buf) + 2, prev_end = first;
	FUZZ_ASSERT(h->ndrop <= H1_MAX_DROP, "ndrop %d", h->ndrop);
	for (int i = 0; i < h->ndrop; i++) {
		size_t off = h->drop_off[i], len = h->drop_len[i];
		FUZZ_ASSERT(off >= prev_end, "drop %d at %zu overlaps or precedes %zu", i, off,
		            prev_end);
		FUZZ_ASSERT(buf[off - 1] == '\n', "drop %d at %zu is not at a line start", i, off);
		FUZZ_ASSERT(len >= 3 && off + len <= r - 2, "drop %d (%zu, %zu) out of the head", i,
		            off, len);
		FUZZ_ASSERT(memcmp(buf + off + len - 2, "\r\n", 2) == 0,
		            "drop %d does not end a line", i);
		FUZZ_ASSERT(!memchr(buf + off, '\n', len - 1), "drop %d spans lines", i);
		FUZZ_ASSERT(fz_is_tchar((unsigned char)buf[off]),
		            "drop %d does not start with a field name", i);
		prev_end = off + len;
	}
	if (request) {
		FUZZ_ASSERT(h->method_len > 0 && buf[h->method_len] == ' ', "method length %u",
		            h->method_len);
		FUZZ_ASSERT(!h->head_method || (h->method_len == 4 && !memcmp(buf, "HEAD", 4)),
		            "head_method on another method");
	}
	FUZZ_ASSERT(h->version == 10 || h->version == 11, "version %d", h->version);
	FUZZ_ASSERT(h->body <= H1_BODY_CLOSE, "body framing %d", h->body);
	FUZZ_ASSERT(h->body == H1_BODY_LENGTH ? h->content_length > 0 : 1,
	            "a length body of 0 bytes");
}

static void fz_head_eq(const struct h1_head *a, const struct h1_head *b, const char *how)
{
	FUZZ_ASSERT(a->len == b->len && a->version == b->version && a->body == b->body &&
	                a->conn_close == b->conn_close && a->upgrade == b->upgrade &&
	                a->idempotent == b->idempotent && a->head_method == b->head_method &&
	                a->ndrop == b->ndrop && a->status == b->status &&
	                a->method_len == b->method_len && a->content_length == b->content_length,
	            "the head parses differently %s", how);
	for (int i = 0; i < a->ndrop; i++)
		FUZZ_ASSERT(a->drop_off[i] == b->drop_off[i] && a->drop_len[i] == b->drop_len[i],
		            "drop %d differs %s", i, how);
}

static int fz_parse(int request, const char *buf, size_t len, size_t *scan, struct h1_head *h)
{
	return request ? h1_parse_request(buf, len, 4096, scan, h, request == FZ_TRUSTED)
	               : h1_parse_response(buf, len, 4096, scan, h);
}

void fz_check_pieces(const char *buf, size_t size, size_t r, const struct h1_head *h, int request)
{
	struct h1_head h2;
	size_t cuts[4] = {1, r / 2, r - 1, r - 3};
	for (int i = 0; i < 4; i++) {
		size_t scan = 0;
		int p = fz_parse(request, buf, cuts[i], &scan, &h2);
		FUZZ_ASSERT(p == 0, "%d for the first %zu bytes of a %zu-byte head", p, cuts[i], r);
		p = fz_parse(request, buf, size, &scan, &h2);
		FUZZ_ASSERT(p == (int)r, "%d after a cut at %zu, %zu whole", p, cuts[i], r);
		fz_head_eq(h, &h2, "after a cut");
	}
	size_t scan = 0;
	for (size_t k = 1; k < r; k++) {
		int p = fz_parse(request, buf, k, &scan, &h2);
		FUZZ_ASSERT(p == 0, "%d for %zu of %zu bytes, byte by byte", p, k, r);
	}
	FUZZ_ASSERT(fz_parse(request, buf, size, &scan, &h2) == (int)r, "byte by byte");
	fz_head_eq(h, &h2, "byte by byte");
}

static int fz_name_is(const char *line, size_t n, const char *lower)
{
	if (strlen(lower) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((line[i] | (line[i] >= 'A' && line[i] <= 'Z' ? 0x20 : 0)) != lower[i])
			return 0;
	return 1;
}

void fz_check_forwarded(const char *buf, const struct h1_head *h, int trusted)
{
	static const char added[] = "X-Forwarded-For: 127.0.0.1\r\n"
	                            "Forwarded: for=127.0.0.1;proto=http\r\n";
	static const char proto[] = "X-Forwarded-Proto: http\r\n";
	char *out = malloc(h->len + 256);
	size_t n = 0, pos = 0;
	FUZZ_ASSERT(out, "out of memory");
	for (int i = 0; i < h->ndrop; i++) {
		memcpy(out + n, buf + pos, h->drop_off[i] - pos);
		n += h->drop_off[i] - pos;
		pos = h->drop_off[i] + h->drop_len[i];
	}
	memcpy(out + n, buf + pos, h->len - 2 - pos);
	n += h->len - 2 - pos;
	size_t kept = n;
	memcpy(out + n, added, sizeof(added) - 1);
	n += sizeof(added) - 1;
	if (!trusted || !h->has_forwarded_proto) {
		memcpy(out + n, proto, sizeof(proto) - 1);
		n += sizeof(proto) - 1;
	}
	const char *conn = h->upgrade         ? "Connection: upgrade\r\n"
	                   : h->version == 10 ? "Connection: keep-alive\r\n"
	                                      : "";
	memcpy(out + n, conn, strlen(conn));
	n += strlen(conn);
	memcpy(out + n, "\r\n", 2);
	n += 2;

	if (!trusted) {
		/* nothing a client says about where it comes from gets through */
		static const char *const fwd[] = {"x-forwarded-for", "x-forwarded-proto",
		                                  "x-forwarded-host", "x-real-ip", "forwarded"};
		const char *line = memchr(out, '\n', kept);
		while (line && (size_t)(line - out) + 1 < kept) {
			line++;
			const char *colon = memchr(line, ':', kept - (size_t)(line - out));
			for (size_t k = 0; colon && k < sizeof(fwd) / sizeof(fwd[0]); k++)
				FUZZ_ASSERT(!fz_name_is(line, (size_t)(colon - line), fwd[k]),
				            "a client's %s line is forwarded", fwd[k]);
			line = memchr(line, '\n', kept - (size_t)(line - out));
		}
	}

	struct h1_head f;
	size_t scan = 0;
	int r = h1_parse_request(out, n, n + 1, &scan, &f, 1);
	FUZZ_ASSERT(r == (int)n, "the forwarded head (%zu bytes) parses as %d", n, r);
	FUZZ_ASSERT(f.version == h->version && f.body == h->body &&
	                f.content_length == h->content_length && f.method_len == h->method_len &&
	                f.head_method == h->head_method && f.idempotent == h->idempotent &&
	                f.upgrade == h->upgrade,
	            "the forwarded head is framed differently");
	for (int i = 0; i < f.ndrop; i++)
		FUZZ_ASSERT(f.drop_off[i] >= kept,
		            "the forwarded head still has a line to drop at %u (kept %zu)",
		            f.drop_off[i], kept);
	free(out);
}

/* ---- chunked bodies ------------------------------------------------------ */

static int fz_scan(const char *p, size_t n, size_t step, size_t *used, int *done)
{
	struct h1_chunk ck;
	memset(&ck, 0, sizeof(ck));
	size_t pos = 0;
	while (pos < n && !ck.done) {
		size_t take = step && n - pos > step ? step : n - pos;
		ssize_t t = h1_chunk_scan(&ck, p + pos, take);
		if (t < 0)
			return -1;
		FUZZ_ASSERT((size_t)t <= take, "the scanner took %zd of %zu bytes", t, take);
		FUZZ_ASSERT((size_t)t == take || ck.done, "the scanner stopped early");
		pos += (size_t)t;
	}
	*used = pos;
	*done = ck.done;
	return 0;
}

int fz_check_chunked(const char *p, size_t n, size_t *used)
{
	size_t u1 = 0, u2 = 0, u3 = 0;
	int d1 = 0, d2 = 0, d3 = 0;
	int r1 = fz_scan(p, n, 0, &u1, &d1);
	int r2 = fz_scan(p, n, 1, &u2, &d2);
	int r3 = fz_scan(p, n, n / 2 ? n / 2 : 1, &u3, &d3);
	FUZZ_ASSERT(r1 == r2 && r1 == r3, "whole %d, byte by byte %d, halves %d", r1, r2, r3);
	if (r1 < 0)
		return -1;
	FUZZ_ASSERT(u1 == u2 && u1 == u3 && d1 == d2 && d1 == d3,
	            "whole %zu/%d, byte by byte %zu/%d, halves %zu/%d", u1, d1, u2, d2, u3, d3);
	if (used)
		*used = u1;
	if (!d1)
		return 0;
	FUZZ_ASSERT(fz_chunked_parse(p, u1, NULL, NULL) == u1,
	            "a chunked body of %zu bytes against RFC 9112", u1);
	return 1;
}

static size_t fz_ws(const char *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i;
}

static size_t fz_token(const char *p, size_t n, size_t i)
{
	while (i < n && fz_is_tchar((unsigned char)p[i]))
		i++;
	return i;
}

/* chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 * chunk-ext-val = token / quoted-string. Returns the end, or 0. */
static size_t fz_chunk_ext(const char *p, size_t n, size_t i)
{
	for (;;) {
		size_t j = fz_ws(p, n, i);
		if (j >= n || p[j] != ';')
			return i; /* whitespace before CRLF is not part of it */
		j = fz_ws(p, n, j + 1);
		size_t e = fz_token(p, n, j);
		if (e == j)
			return 0;
		i = e;
		j = fz_ws(p, n, e);
		if (j < n && p[j] == '=') {
			j = fz_ws(p, n, j + 1);
			if (j < n && p[j] == '"') {
				j++;
				for (;;) {
					if (j >= n)
						return 0;
					unsigned char c = (unsigned char)p[j];
					if (c == '"')
						break;
					if (c == '\\') {
						if (j + 1 >= n ||
						    !fz_is_field_byte((unsigned char)p[j + 1]))
							return 0;
						j += 2;
					} else if (fz_is_field_byte(c)) {
						j++;
					} else {
						return 0;
					}
				}
				i = j + 1;
			} else {
				e = fz_token(p, n, j);
				if (e == j)
					return 0;
				i = e;
			}
		}
	}
}

size_t fz_chunked_parse(const char *p, size_t n, char *out, size_t *outlen)
{
	size_t i = 0;
	if (outlen)
		*outlen = 0;
	for (;;) {
		size_t s = i;
		unsigned long long size = 0;
		while (i < n && strchr("0123456789abcdefABCDEF", p[i]) && p[i]) {
			if (size >> 56)
				return 0;
			int c = p[i];
			size = size * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
			i++;
		}
		if (i == s)
			return 0;
		i = fz_chunk_ext(p, n, i);
		if (!i || i + 2 > n || p[i] != '\r' || p[i + 1] != '\n')
			return 0;
		i += 2;
		if (size == 0)
			break;
		if (size > n - i || n - i - size < 2)
			return 0;
		if (out) {
			memcpy(out + *outlen, p + i, size);
			*outlen += size;
		}
		i += size;
		if (p[i] != '\r' || p[i + 1] != '\n')
			return 0;
		i += 2;
	}
	/* trailer-section = *( field-line CRLF ), then CRLF */
	for (;;) {
		if (i + 2 <= n && p[i] == '\r' && p[i + 1] == '\n')
			return i + 2;
		size_t e = fz_token(p, n, i);
		if (e == i || e >= n || p[e] != ':')
			return 0;
		i = e + 1;
		while (i < n && p[i] != '\r') {
			if (!fz_is_field_byte((unsigned char)p[i]))
				return 0;
			i++;
		}
		if (i + 2 > n || p[i + 1] != '\n')
			return 0;
		i += 2;
	}
}
