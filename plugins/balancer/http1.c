/* Strict HTTP/1 head parser for the proxy path. It only finds what framing
 * and forwarding need (version, body framing, hop-by-hop lines to drop) and
 * refuses anything two parsers could read differently: bare CR or LF,
 * obs-fold, control bytes, Content-Length with Transfer-Encoding, a repeated
 * or malformed Content-Length, transfer codings other than chunked, a tab in
 * either, chunk lines and trailers outside RFC 9112's grammar. */
#include "config.h"

#include "bal.h"

#include <string.h>

static const uint8_t h1_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,         ['&'] = 1,         ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,         ['^'] = 1,         ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* field-value bytes: HTAB, SP, VCHAR, obs-text */
static const uint8_t h1_vchar[256] = {
    ['\t'] = 1,
    [' ' ... '~'] = 1,
    [0x80 ... 0xff] = 1,
};

static int h1_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int h1_name_is(const char *p, size_t n, const char *lower)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!lower[i] || h1_lower((unsigned char)p[i]) != lower[i])
			return 0;
	return lower[i] == 0;
}

/* 1 when the comma-separated list v[0..n) holds `token` (case-insensitive) */
static int h1_list_has(const char *v, size_t n, const char *token)
{
	size_t tl = strlen(token), i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && h1_name_is(v + s, tl, token))
			return 1;
	}
	return 0;
}

/* A server's Transfer-Encoding list v[0..n): 1 when it ends with chunked
 * ("gzip, chunked"), 0 when chunked is not in it ("gzip": the body ends
 * with the connection), -1 for what parsers read differently: an empty
 * element (",chunked", valid but read as another coding by http_parser), an
 * element that is no token ("gzip chunked", or with parameters), chunked
 * anywhere but last. */
static int h1_te_list(const char *v, size_t n)
{
	size_t i = 0;
	int chunked_last = 0;
	for (;;) {
		while (i < n && v[i] == ' ')
			i++;
		size_t s = i;
		while (i < n && h1_tchar[(unsigned char)v[i]])
			i++;
		size_t e = i;
		while (i < n && v[i] == ' ')
			i++;
		if (e == s || (i < n && v[i] != ',') || chunked_last)
			return -1;
		chunked_last = e - s == 7 && h1_name_is(v + s, 7, "chunked");
		if (i == n)
			return chunked_last;
		i++; /* the comma */
	}
}

struct h1_fields;
static void h1_connection_tokens(const char *v, size_t n, struct h1_fields *f);

/* Find the end of the head: returns its length, 0 (need more) or -400. */
static int h1_find_end(const char *buf, size_t len, size_t *scan)
{
	size_t pos = *scan;
	for (;;) {
		const char *lf = memchr(buf + pos, '\n', len - pos);
		if (!lf)
			break;
		size_t i = (size_t)(lf - buf);
		if (i == 0 || buf[i - 1] != '\r')
			return -400; /* bare LF */
		if (i == pos + 1) {
			if (pos == 0)
				return -400; /* empty first line */
			return (int)(i + 1);
		}
		pos = i + 1;
	}
	*scan = pos;
	return 0;
}

static int h1_drop(struct h1_head *h, size_t off, size_t len)
{
	if (h->ndrop >= H1_MAX_DROP)
		return -1;
	h->drop_off[h->ndrop] = (uint32_t)off;
	h->drop_len[h->ndrop] = (uint32_t)len;
	h->ndrop++;
	return 0;
}

static void h1_sort_drops(struct h1_head *h)
{
	for (int i = 1; i < h->ndrop; i++)
		for (int j = i; j > 0 && h->drop_off[j - 1] > h->drop_off[j]; j--) {
			uint32_t o = h->drop_off[j], l = h->drop_len[j];
			h->drop_off[j] = h->drop_off[j - 1];
			h->drop_len[j] = h->drop_len[j - 1];
			h->drop_off[j - 1] = o;
			h->drop_len[j - 1] = l;
		}
}

struct h1_fields {
	int has_cl, has_te, te_repeated, te_chunked, te_bad, conn_close, conn_keepalive,
	    conn_upgrade;
	int upgrade_ws, nhost;
	int nlisted; /* other Connection tokens: headers to remove */
	const char *listed[4];
	uint8_t listed_len[4];
	uint64_t cl;
	uint32_t upgrade_off[4], upgrade_len[4]; /* the Upgrade lines */
	int has_upgrade;
	int keep_forwarded; /* request: keep the client's forwarding headers */
};

/* A tab in a framing field's value: valid OWS, but http_parser (and maybe
 * the next hop) takes "chunked<TAB>" for another coding and reads the body
 * to the end of the connection, where the balancer keeps it for the next
 * request. Nobody needs it: refused. */
static int h1_has_tab(const char *v, size_t n)
{
	return memchr(v, '\t', n) != NULL;
}

/* Parse the header lines in buf[start..end) (end = head length, the
 * final CRLF excluded). request: 1 for requests. Returns 0 or -status. */
static int h1_fields_parse(const char *buf, size_t start, size_t end, int request, int keep_conn,
                           struct h1_head *h, struct h1_fields *f)
{
	int bad = request ? -400 : -502;
	size_t pos = start;

	while (pos < end) {
		const char *line = buf + pos;
		if (line[0] == ' ' || line[0] == '\t')
			return bad; /* obs-fold */
		size_t n = 0;
		while (h1_tchar[(unsigned char)line[n]])
			n++;
		if (n == 0 || line[n] != ':')
			return bad; /* empty name, bad byte in name or space before ':' */
		/* one pass over the value: it ends at the first byte that is not
		 * a field-value byte, which must be the CR of CRLF */
		size_t v = n + 1, ll = v;
		while (h1_vchar[(unsigned char)line[ll]])
			ll++;
		if (line[ll] != '\r' || line[ll + 1] != '\n' || pos + ll > end)
			return bad;
		size_t next = pos + ll + 2, ve = ll;
		while (v < ve && (line[v] == ' ' || line[v] == '\t'))
			v++;
		while (ve > v && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
			ve--;
		const char *val = line + v;
		size_t vl = ve - v;
		int drop = 0;

		switch (n) {
		case 2:
			drop = request && h1_name_is(line, n, "te");
			break;
		case 9:
			/* the forwarding headers of a client that is no trusted
			 * proxy are lies we must not pass on: the proxy adds its own */
			if (request &&
			    (h1_name_is(line, n, "forwarded") || h1_name_is(line, n, "x-real-ip")))
				drop = !f->keep_forwarded;
			break;
		case 4:
			if (h1_name_is(line, n, "host"))
				f->nhost++;
			break;
		case 7:
			if (h1_name_is(line, n, "upgrade")) {
				if (f->has_upgrade == 4)
					return bad;
				f->upgrade_off[f->has_upgrade] = (uint32_t)pos;
				f->upgrade_len[f->has_upgrade] = (uint32_t)(next - pos);
				f->has_upgrade++;
				if (h1_list_has(val, vl, "websocket"))
					f->upgrade_ws = 1;
			}
			/* Trailer stays: it describes trailers we forward unchanged */
			break;
		case 10:
			if (h1_name_is(line, n, "connection")) {
				h1_connection_tokens(val, vl, f);
				drop = !keep_conn;
			} else if (h1_name_is(line, n, "keep-alive")) {
				drop = 1;
			}
			break;
		case 14:
			if (h1_name_is(line, n, "content-length")) {
				uint64_t x = 0;
				if (vl == 0 || vl > 18 || h1_has_tab(line + n + 1, ll - n - 1))
					return bad;
				for (size_t i = 0; i < vl; i++) {
					if (val[i] < '0' || val[i] > '9')
						return bad;
					x = x * 10 + (uint64_t)(val[i] - '0');
				}
				/* RFC 9110 §8.6 lets a recipient refuse a repeated
				 * Content-Length; forwarding "0" and "00" as two lines
				 * leaves the next hop to guess, and no sender that
				 * follows the RFC repeats it */
				if (f->has_cl)
					return bad;
				f->has_cl = 1;
				f->cl = x;
			} else if (h1_name_is(line, n, "http2-settings")) {
				drop = 1;
			}
			break;
		case 15:
			if (request && h1_name_is(line, n, "x-forwarded-for"))
				drop = !f->keep_forwarded;
			break;
		case 16:
			if (h1_name_is(line, n, "proxy-connection"))
				drop = 1;
			else if (request && h1_name_is(line, n, "x-forwarded-host"))
				drop = !f->keep_forwarded;
			break;
		case 17:
			if (h1_name_is(line, n, "transfer-encoding")) {
				if (h1_has_tab(line + n + 1, ll - n - 1))
					return bad;
				if (f->has_te)
					f->te_repeated = 1;
				f->has_te = 1;
				int te = vl == 7 && h1_name_is(val, vl, "chunked");
				if (!te && !request && (te = h1_te_list(val, vl)) < 0)
					return bad; /* "gzip, chunked" is fine from a server */
				if (te)
					f->te_chunked = 1;
				else
					f->te_bad = 1;
			} else if (request && h1_name_is(line, n, "x-forwarded-proto")) {
				/* we say which protocol the client used, unless a
				 * trusted proxy in front said it already */
				drop = !f->keep_forwarded;
				h->has_forwarded_proto = (uint8_t)f->keep_forwarded;
			}
			break;
		}
		if (drop && h1_drop(h, pos, next - pos) < 0)
			return bad;
		pos = next;
	}
	return 0;
}

/* The Connection tokens we act on, in one pass over the list. */
static void h1_connection_tokens(const char *v, size_t n, struct h1_fields *f)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		int known = 0;
		switch (e - s) {
		case 5:
			known = h1_name_is(v + s, 5, "close");
			f->conn_close |= known;
			break;
		case 7:
			known = h1_name_is(v + s, 7, "upgrade");
			f->conn_upgrade |= known;
			break;
		case 10:
			known = h1_name_is(v + s, 10, "keep-alive");
			f->conn_keepalive |= known;
			break;
		}
		if (!known && e > s && e - s < 64) {
			if (f->nlisted < 4) {
				f->listed[f->nlisted] = v + s;
				f->listed_len[f->nlisted] = (uint8_t)(e - s);
			}
			f->nlisted++;
		}
	}
}

/* Remove the header lines named in Connection (hop-by-hop by declaration).
 * Rare, so a second pass over the lines is fine. */
static int h1_drop_listed(const char *buf, size_t start, size_t end, struct h1_head *h,
                          const struct h1_fields *f)
{
	if (f->nlisted > 4)
		return -1;
	for (int i = 0; i < f->nlisted; i++) {
		/* framing and routing headers cannot be declared hop-by-hop */
		const char *t = f->listed[i];
		size_t tl = f->listed_len[i];
		if ((tl == 14 && h1_name_is(t, tl, "content-length")) ||
		    (tl == 17 && h1_name_is(t, tl, "transfer-encoding")) ||
		    (tl == 4 && h1_name_is(t, tl, "host")))
			return -1;
	}
	size_t pos = start;
	while (pos < end) {
		const char *line = buf + pos;
		const char *eol = memchr(line, '\r', end - pos);
		size_t next = (size_t)(eol - buf) + 2;
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		size_t n = (size_t)(colon - line);
		for (int i = 0; i < f->nlisted; i++) {
			if (f->listed_len[i] != n)
				continue;
			size_t k = 0;
			while (k < n && h1_lower((unsigned char)line[k]) ==
			                    h1_lower((unsigned char)f->listed[i][k]))
				k++;
			if (k == n) {
				int dup = 0;
				for (int d = 0; d < h->ndrop; d++)
					dup |= h->drop_off[d] == pos;
				if (!dup && h1_drop(h, pos, next - pos) < 0)
					return -1;
				break;
			}
		}
		pos = next;
	}
	return 0;
}

/* Not upgrading: every Upgrade line goes. */
static int h1_drop_upgrade(struct h1_head *h, const struct h1_fields *f)
{
	for (int i = 0; i < f->has_upgrade; i++)
		if (h1_drop(h, f->upgrade_off[i], f->upgrade_len[i]) < 0)
			return -1;
	return 0;
}

static int h1_version(const char *p, size_t n, int request)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
	    p[7] < '0' || p[7] > '9')
		return request ? -400 : -502;
	if (p[5] != '1')
		return request ? -505 : -502;
	return p[7] == '0' ? 10 : 11;
}

int h1_parse_request(const char *buf, size_t len, size_t max_head, size_t *scan, struct h1_head *h,
                     int keep_forwarded)
{
	int end = h1_find_end(buf, len < max_head ? len : max_head, scan);
	if (end == 0)
		return len >= max_head ? -431 : 0;
	if (end < 0)
		return end;

	memset(h, 0, offsetof(struct h1_head, drop_off));
	h->len = (uint32_t)end;

	/* request-line = method SP request-target SP HTTP-version CRLF; a CR
	 * anywhere but before LF is refused (RFC 9112 §2.2): the next parser
	 * may end the line there, or not */
	const char *eol = memchr(buf, '\r', (size_t)end);
	size_t ll = (size_t)(eol - buf), m = 0;
	if (eol[1] != '\n')
		return -400;
	while (m < ll && h1_tchar[(unsigned char)buf[m]])
		m++;
	if (m == 0 || m >= ll || buf[m] != ' ')
		return -400;
	size_t t = m + 1, te = t;
	while (te < ll && (unsigned char)buf[te] > 0x20 && (unsigned char)buf[te] < 0x7f)
		te++;
	if (te == t || te >= ll || buf[te] != ' ')
		return -400;
	int ver = h1_version(buf + te + 1, ll - te - 1, 1);
	if (ver < 0)
		return ver;
	h->version = (uint8_t)ver;
	h->method_len = (uint16_t)m;
	if (m == 7 && memcmp(buf, "CONNECT", 7) == 0)
		return -501;
	if (buf[t] != '/' && !(buf[t] == '*' && te == t + 1) &&
	    !(te - t > 7 && memcmp(buf + t, "http://", 7) == 0))
		return -400;
	h->head_method = (m == 4 && memcmp(buf, "HEAD", 4) == 0);
	h->idempotent = (m == 3 && (memcmp(buf, "GET", 3) == 0 || memcmp(buf, "PUT", 3) == 0)) ||
	                h->head_method || (m == 6 && memcmp(buf, "DELETE", 6) == 0) ||
	                (m == 7 && memcmp(buf, "OPTIONS", 7) == 0) ||
	                (m == 5 && memcmp(buf, "TRACE", 5) == 0);

	struct h1_fields f;
	memset(&f, 0, sizeof(f));
	f.keep_forwarded = keep_forwarded;
	int r = h1_fields_parse(buf, ll + 2, (size_t)end - 2, 1, 0, h, &f);
	if (r < 0)
		return r;
	if (f.nlisted && h1_drop_listed(buf, ll + 2, (size_t)end - 2, h, &f) < 0)
		return -400;
	if (f.has_te && (f.has_cl || f.te_repeated || f.te_bad || !f.te_chunked || ver == 10))
		return f.has_cl || f.te_repeated || ver == 10 ? -400 : -501;
	if (f.nhost > 1 || (ver == 11 && f.nhost == 0))
		return -400;
	if (f.te_chunked) {
		h->body = H1_BODY_CHUNKED;
	} else if (f.has_cl && f.cl > 0) {
		h->body = H1_BODY_LENGTH;
		h->content_length = f.cl;
	}
	h->conn_close = ver == 10 ? !f.conn_keepalive : f.conn_close;
	if (f.has_upgrade) {
		if (f.upgrade_ws && f.conn_upgrade && ver == 11 && m == 3 &&
		    memcmp(buf, "GET", 3) == 0 && h->body == H1_BODY_NONE)
			h->upgrade = 1;
		else if (h1_drop_upgrade(h, &f) < 0)
			return -400;
	}
	h1_sort_drops(h);
	return end;
}

int h1_parse_response(const char *buf, size_t len, size_t max_head, size_t *scan, struct h1_head *h)
{
	int end = h1_find_end(buf, len < max_head ? len : max_head, scan);
	if (end == 0)
		return len >= max_head ? -502 : 0;
	if (end < 0)
		return -502;

	memset(h, 0, offsetof(struct h1_head, drop_off));
	h->len = (uint32_t)end;

	/* status-line = HTTP-version SP status-code SP [reason-phrase] CRLF */
	const char *eol = memchr(buf, '\r', (size_t)end);
	size_t ll = (size_t)(eol - buf);
	if (eol[1] != '\n' || ll < 12 || buf[8] != ' ' || (ll > 12 && buf[12] != ' '))
		return -502;
	int ver = h1_version(buf, 8, 0);
	if (ver < 0)
		return -502;
	h->version = (uint8_t)ver;
	for (int i = 9; i < 12; i++)
		if (buf[i] < '0' || buf[i] > '9')
			return -502;
	h->status = (uint16_t)((buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0'));
	if (h->status < 100 || h->status > 599)
		return -502; /* RFC 9110 §15: three digits, first 1 to 5 */
	for (size_t i = 13; i < ll; i++)
		if (!h1_vchar[(unsigned char)buf[i]])
			return -502;

	struct h1_fields f;
	memset(&f, 0, sizeof(f));
	int r = h1_fields_parse(buf, ll + 2, (size_t)end - 2, 0, h->status == 101, h, &f);
	if (r < 0)
		return r;
	if (f.nlisted && h->status != 101 &&
	    h1_drop_listed(buf, ll + 2, (size_t)end - 2, h, &f) < 0)
		return -502;
	if (f.has_te && (f.has_cl || f.te_repeated))
		return -502;
	if (f.te_chunked && !f.te_bad)
		h->body = H1_BODY_CHUNKED;
	else if (f.has_te)
		h->body = H1_BODY_CLOSE;
	else if (f.has_cl) {
		h->body = f.cl ? H1_BODY_LENGTH : H1_BODY_NONE;
		h->content_length = f.cl;
	} else
		h->body = H1_BODY_CLOSE;
	h->conn_close = ver == 10 ? !f.conn_keepalive : f.conn_close;
	if (h->status == 101)
		h->upgrade = f.has_upgrade && f.upgrade_ws;
	else if (h1_drop_upgrade(h, &f) < 0)
		return -502;
	h1_sort_drops(h);
	return end;
}

int h1_response_kind(const struct h1_head *rq, struct h1_head *rs, unsigned *ninterim)
{
	if (rs->status == 101) /* RFC 9110 §15.2.2: only to a request's Upgrade */
		return rq->upgrade && rs->upgrade ? H1_SWITCH : -502;
	if (rs->status < 200) {
		/* RFC 9110 §15.2: a client must accept any number of them; a
		 * proxy that does not bound them lets a server hold it forever */
		return ++*ninterim > H1_MAX_INTERIM ? -502 : H1_INTERIM;
	}
	if (rq->head_method || rs->status == 204 || rs->status == 304)
		rs->body = H1_BODY_NONE;
	return H1_FINAL;
}

/* chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 §7.1)
 *   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext  = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
 *   trailers   = *( field-name ":" field-value CRLF )
 * Whitespace is allowed only around ';' and '=' of an extension: "5 \r\n"
 * is refused, as is a trailer line without a colon. */
enum {
	CK_SIZE_START,
	CK_SIZE,
	CK_EXT_WS,         /* whitespace after the size or a value: ';' must follow */
	CK_EXT_NAME_START, /* after ';' */
	CK_EXT_NAME,
	CK_EXT_NAME_WS, /* whitespace after a name: '=' or ';' must follow */
	CK_EXT_VAL_START,
	CK_EXT_VAL_TOKEN,
	CK_EXT_QUOTED,
	CK_EXT_QPAIR,
	CK_EXT_AFTER, /* after a quoted value */
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TRAILER_START,
	CK_TRAILER_NAME,
	CK_TRAILER_VALUE,
	CK_END_LF,
	CK_TRAILER_LF,
};

#define H1_MAX_TRAILERS 16384
#define H1_MAX_EXT 4096 /* bytes of extensions on one chunk line */

static int h1_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = h1_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The next state of a chunk-ext byte, -1 when the byte is not allowed. */
static int h1_chunk_ext(int state, unsigned char ch)
{
	int ws = ch == ' ' || ch == '\t';
	switch (state) {
	case CK_SIZE:
	case CK_EXT_VAL_TOKEN:
	case CK_EXT_AFTER:
		if (state == CK_EXT_VAL_TOKEN && h1_tchar[ch])
			return state;
		return ws           ? CK_EXT_WS
		       : ch == ';'  ? CK_EXT_NAME_START
		       : ch == '\r' ? CK_SIZE_LF
		                    : -1;
	case CK_EXT_WS:
		return ws ? state : ch == ';' ? CK_EXT_NAME_START : -1;
	case CK_EXT_NAME_START:
		return ws ? state : h1_tchar[ch] ? CK_EXT_NAME : -1;
	case CK_EXT_NAME:
		if (h1_tchar[ch])
			return state;
		/* fall through */
	case CK_EXT_NAME_WS:
		if (ws)
			return CK_EXT_NAME_WS;
		if (ch == '=')
			return CK_EXT_VAL_START;
		if (ch == ';')
			return CK_EXT_NAME_START;
		return ch == '\r' && state == CK_EXT_NAME ? CK_SIZE_LF : -1;
	case CK_EXT_VAL_START:
		return ws             ? state
		       : ch == '"'    ? CK_EXT_QUOTED
		       : h1_tchar[ch] ? CK_EXT_VAL_TOKEN
		                      : -1;
	case CK_EXT_QUOTED:
		return ch == '"'      ? CK_EXT_AFTER
		       : ch == '\\'   ? CK_EXT_QPAIR
		       : h1_vchar[ch] ? state
		                      : -1;
	case CK_EXT_QPAIR:
		return h1_vchar[ch] ? CK_EXT_QUOTED : -1;
	}
	return -1;
}

uint64_t h1_chunk_data(const struct h1_chunk *c)
{
	return c->state == CK_DATA && !c->done ? c->left : 0;
}

ssize_t h1_chunk_scan(struct h1_chunk *c, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && !c->done) {
		unsigned char ch = (unsigned char)p[i];
		switch (c->state) {
		case CK_SIZE_START:
		case CK_SIZE: {
			int d = h1_hex(ch);
			if (d >= 0) {
				if (++c->digits > 15)
					return -1;
				c->left = c->left * 16 + (uint64_t)d;
				c->state = CK_SIZE;
			} else if (c->state == CK_SIZE) {
				int st = h1_chunk_ext(CK_SIZE, ch);
				if (st < 0)
					return -1;
				c->state = (uint8_t)st;
				c->ext_bytes = 0;
			} else {
				return -1;
			}
			i++;
			break;
		}
		case CK_EXT_WS:
		case CK_EXT_NAME_START:
		case CK_EXT_NAME:
		case CK_EXT_NAME_WS:
		case CK_EXT_VAL_START:
		case CK_EXT_VAL_TOKEN:
		case CK_EXT_QUOTED:
		case CK_EXT_QPAIR:
		case CK_EXT_AFTER: {
			int st = h1_chunk_ext(c->state, ch);
			if (st < 0 || ++c->ext_bytes > H1_MAX_EXT)
				return -1;
			c->state = (uint8_t)st;
			i++;
			break;
		}
		case CK_SIZE_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->digits = 0;
			if (c->left == 0) {
				c->last = 1;
				c->state = CK_TRAILER_START;
			} else {
				c->state = CK_DATA;
			}
			break;
		case CK_DATA: {
			size_t take = n - i;
			if (take > c->left)
				take = (size_t)c->left;
			c->left -= take;
			i += take;
			if (c->left == 0)
				c->state = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
			if (ch != '\r')
				return -1;
			c->state = CK_DATA_LF;
			i++;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return -1;
			c->state = CK_SIZE_START;
			i++;
			break;
		case CK_TRAILER_START:
		case CK_TRAILER_NAME:
		case CK_TRAILER_VALUE:
			if (++c->trailer_bytes > H1_MAX_TRAILERS)
				return -1;
			if (c->state == CK_TRAILER_START && ch == '\r')
				c->state = CK_END_LF;
			else if (c->state != CK_TRAILER_VALUE && h1_tchar[ch])
				c->state = CK_TRAILER_NAME;
			else if (c->state == CK_TRAILER_NAME && ch == ':')
				c->state = CK_TRAILER_VALUE;
			else if (c->state == CK_TRAILER_VALUE && ch == '\r')
				c->state = CK_TRAILER_LF;
			else if (c->state != CK_TRAILER_VALUE || !h1_vchar[ch])
				return -1;
			i++;
			break;
		case CK_TRAILER_LF:
			if (ch != '\n')
				return -1;
			c->state = CK_TRAILER_START;
			i++;
			break;
		case CK_END_LF:
			if (ch != '\n')
				return -1;
			c->done = 1;
			i++;
			break;
		}
	}
	return (ssize_t)i;
}
