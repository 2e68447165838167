/* The balancer's response side (plugins/balancer/http1.c): a request head,
 * then what a server sends back, taken as the proxy takes it: interim
 * responses, then the final one and its body.
 *
 * Invariants: as for requests (fuzz_http1.h), for every response head; a
 * 101 only to a request that asked for that upgrade; no more than
 * H1_MAX_INTERIM interim responses.
 *
 * Verdicts: "request-400", "request-refused", "request-more" (the request
 * was refused or is incomplete), "request-body" (its chunked body), "502"
 * (the proxy answers the client 502), "more" (the final head is incomplete),
 * the final status ("200", "101") when its body is complete or delimited by
 * the close, "body-more", "body-error". */
#include "config.h"

#include "fuzz.h"
#include "fuzz_http1.h"

#include <string.h>

#define MAX_HEAD 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct h1_head rq, rs;
	size_t scan = 0;
	int r = h1_parse_request(buf, size, MAX_HEAD, &scan, &rq, 0);
	if (r <= 0) {
		fuzz_verdict("request-%s", r == 0 ? "more" : r == -400 ? "400" : "refused");
		return 0;
	}
	size_t pos = (size_t)r;
	if (rq.body == H1_BODY_LENGTH) {
		if (size - pos < rq.content_length) {
			fuzz_verdict("request-more");
			return 0;
		}
		pos += rq.content_length;
	} else if (rq.body == H1_BODY_CHUNKED) {
		size_t used = 0;
		if (fz_check_chunked(buf + pos, size - pos, &used) <= 0) {
			fuzz_verdict("request-body");
			return 0;
		}
		pos += used;
	}
	unsigned ninterim = 0;
	for (;;) {
		scan = 0;
		r = h1_parse_response(buf + pos, size - pos, MAX_HEAD, &scan, &rs);
		if (r == 0) {
			fuzz_verdict("more");
			return 0;
		}
		if (r < 0) {
			FUZZ_ASSERT(r == -502, "a response head refused with %d", r);
			fuzz_verdict("502");
			return 0;
		}
		fz_check_head(buf + pos, size - pos, (size_t)r, &rs, 0);
		fz_check_pieces(buf + pos, size - pos, (size_t)r, &rs, 0);
		FUZZ_ASSERT(rs.status >= 100 && rs.status <= 599, "status %u", rs.status);
		int kind = h1_response_kind(&rq, &rs, &ninterim);
		if (kind < 0) {
			FUZZ_ASSERT(kind == -502, "kind %d", kind);
			FUZZ_ASSERT(rs.status == 101 ? !(rq.upgrade && rs.upgrade)
			                             : ninterim > H1_MAX_INTERIM,
			            "a %u refused", rs.status);
			fuzz_verdict("502");
			return 0;
		}
		pos += (size_t)r;
		if (kind == H1_INTERIM) {
			FUZZ_ASSERT(rs.status >= 100 && rs.status < 200 && rs.status != 101,
			            "a %u taken as interim", rs.status);
			FUZZ_ASSERT(ninterim <= H1_MAX_INTERIM, "%u interim responses", ninterim);
			continue;
		}
		break;
	}
	if (rs.status == 101) {
		FUZZ_ASSERT(rq.upgrade && rs.upgrade, "a 101 to a request that did not ask");
		fuzz_verdict("101");
		return 0;
	}
	FUZZ_ASSERT(rs.status >= 200, "a final %u", rs.status);
	switch (rs.body) {
	case H1_BODY_NONE:
	case H1_BODY_CLOSE:
		fuzz_verdict("%u", rs.status);
		break;
	case H1_BODY_LENGTH:
		if (size - pos >= rs.content_length)
			fuzz_verdict("%u", rs.status);
		else
			fuzz_verdict("body-more");
		break;
	case H1_BODY_CHUNKED: {
		int c = fz_check_chunked(buf + pos, size - pos, NULL);
		if (c > 0)
			fuzz_verdict("%u", rs.status);
		else
			fuzz_verdict("%s", c < 0 ? "body-error" : "body-more");
		break;
	}
	default:
		FUZZ_ASSERT(0, "body framing %d", rs.body);
	}
	return 0;
}
