/* The balancer's request parser (plugins/balancer/http1.c) on any bytes:
 * a request head, then its body when the head is accepted.
 *
 * Invariants: an accepted head ends with an empty line, holds no bare CR or
 * LF, parses the same when it arrives in pieces, drops only whole header
 * lines after the request line, and what the proxy forwards (the head minus
 * its dropped lines plus the lines the proxy adds) is accepted again with
 * the same framing (and without the client's forwarding headers unless it
 * is a trusted proxy); the chunked scanner gives the same result whole, byte by
 * byte and split in two, and agrees with the grammar of RFC 9112 §7.1.
 *
 * Verdicts: "400", "431", "501", "505" (refused), "more" (incomplete),
 * "accept" (and a body that completes), "body-error" (the chunked body is
 * malformed), "body-more" (the chunked body is incomplete). */
#include "config.h"

#include "fuzz.h"
#include "fuzz_http1.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HEAD 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct h1_head h;
	size_t scan = 0;
	int r = h1_parse_request(buf, size, MAX_HEAD, &scan, &h, 0);
	if (r == 0) {
		fuzz_verdict("more");
		return 0;
	}
	if (r < 0) {
		FUZZ_ASSERT(r == -400 || r == -431 || r == -501 || r == -505,
		            "unexpected result %d", r);
		fuzz_verdict("%d", -r);
		return 0;
	}
	fz_check_head(buf, size, (size_t)r, &h, FZ_UNTRUSTED);
	fz_check_pieces(buf, size, (size_t)r, &h, FZ_UNTRUSTED);
	fz_check_forwarded(buf, &h, 0);
	/* the same bytes from a trusted proxy */
	struct h1_head t;
	scan = 0;
	FUZZ_ASSERT(h1_parse_request(buf, size, MAX_HEAD, &scan, &t, 1) == r,
	            "accepted from a client but not from a trusted proxy");
	fz_check_head(buf, size, (size_t)r, &t, FZ_TRUSTED);
	fz_check_pieces(buf, size, (size_t)r, &t, FZ_TRUSTED);
	fz_check_forwarded(buf, &t, 1);
	if (h.body == H1_BODY_CHUNKED) {
		int c = fz_check_chunked(buf + r, size - (size_t)r, NULL);
		fuzz_verdict("%s", c < 0 ? "body-error" : c == 0 ? "body-more" : "accept");
	} else {
		FUZZ_ASSERT(h.body == H1_BODY_NONE || h.body == H1_BODY_LENGTH,
		            "a request framed as %d", h.body);
		fuzz_verdict("accept");
	}
	return 0;
}
