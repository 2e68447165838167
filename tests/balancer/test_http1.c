/* The proxy's HTTP/1 head parser and chunked scanner, table-driven. */
#include "config.h"

#include "bal.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct req_case {
	const char *what;
	const char *head;
	int want; /* >0: complete (head length checked), 0: need more, <0: -status */
	int body; /* enum h1_body when complete */
	int conn_close;
	int ndrop;
};

#define CL(s) s, (int)sizeof(s) - 1

static const struct req_case req_cases[] = {
    {"a plain GET", CL("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_BODY_NONE, 0, 0},
    {"Content-Length body", CL("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
     H1_BODY_LENGTH, 0, 0},
    {"chunked", CL("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
     H1_BODY_CHUNKED, 0, 0},
    {"HTTP/1.0 closes by default", CL("GET / HTTP/1.0\r\n\r\n"), H1_BODY_NONE, 1, 0},
    {"HTTP/1.0 keep-alive", CL("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), H1_BODY_NONE, 0,
     1},
    {"Connection: close", CL("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
     H1_BODY_NONE, 1, 1},
    {"hop-by-hop lines dropped",
     CL("GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: "
        "x\r\nX-Forwarded-Proto: https\r\n\r\n"),
     H1_BODY_NONE, 0, 4},
    {"headers named in Connection dropped",
     CL("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a, X-B\r\nX-A: 1\r\nx-b: 2\r\nX-C: 3\r\n\r\n"),
     H1_BODY_NONE, 0, 3},
    {"an unasked Upgrade dropped", CL("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n"),
     H1_BODY_NONE, 0, 1},
    {"every Upgrade line dropped",
     CL("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: a\r\nUpgrade: websocket\r\n\r\n"), H1_BODY_NONE, 0,
     2},
    {"a partial head", "GET / HTTP/1.1\r\nHost: a\r\n", 0, 0, 0, 0},
    {"CL with TE",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: "
     "chunked\r\n\r\n",
     -400, 0, 0, 0},
    {"differing Content-Length",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", -400, 0, 0, 0},
    {"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", -400, 0,
     0, 0},
    {"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", -400, 0,
     0, 0},
    {"huge Content-Length",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", -400, 0, 0, 0},
    {"gzip coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", -501, 0, 0, 0},
    {"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
     -501, 0, 0, 0},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400, 0, 0, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", -400, 0, 0, 0},
    {"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n", -400, 0, 0, 0},
    {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", -400, 0, 0, 0},
    {"bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", -400, 0, 0, 0},
    {"DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", -400, 0, 0, 0},
    {"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", -400, 0, 0, 0},
    {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400, 0, 0, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505, 0, 0, 0},
    {"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", -400, 0, 0, 0},
    {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", -501, 0, 0, 0},
    {"relative target", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", -400, 0, 0, 0},
    {"Content-Length declared hop-by-hop",
     "POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: 1\r\n\r\n", -400,
     0, 0, 0},
    {"empty first line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400, 0, 0, 0},
    {"a tab after chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n",
     -400, 0, 0, 0},
    {"a tab before a Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5\r\n\r\n",
     -400, 0, 0, 0},
    {"a bare CR ending the request line", "GET /x HTTP/1.1\rXKeep-Alive: 1\r\nHost: x\r\n\r\n",
     -400, 0, 0, 0},
    {"a bare CR in the target", "GET /x\r HTTP/1.1\r\nHost: x\r\n\r\n", -400, 0, 0, 0},
    {"a line of a bare CR", "GET / HTTP/1.1\r\nHost: x\r\n\r\r\n\r\n", -400, 0, 0, 0},
    {"the same Content-Length twice",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", -400, 0, 0, 0},
    {"Content-Length 0 and 00",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n", -400, 0, 0,
     0},
};

START_TEST(test_request_heads)
{
	const struct req_case *c = &req_cases[_i];
	struct h1_head h;
	size_t scan = 0;
	size_t len = strlen(c->head);
	int r = h1_parse_request(c->head, len, 16384, &scan, &h, 0);
	if (c->want > 0) {
		ck_assert_msg(r == (int)len, "%s: expected a complete head of %zu bytes, got %d",
		              c->what, len, r);
		ck_assert_msg(h.body == c->body, "%s: expected body framing %d, got %d", c->what,
		              c->body, h.body);
		ck_assert_msg(h.conn_close == c->conn_close, "%s: expected conn_close %d, got %d",
		              c->what, c->conn_close, h.conn_close);
		ck_assert_msg(h.ndrop == c->ndrop, "%s: expected %d dropped lines, got %d", c->what,
		              c->ndrop, h.ndrop);
	} else {
		ck_assert_msg(r == c->want, "%s: expected %d, got %d", c->what, c->want, r);
	}
}
END_TEST

START_TEST(test_forwarding_headers_of_a_client_are_dropped_unless_trusted)
{
	const char *head = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n"
	                   "forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Host: "
	                   "evil\r\nX-Forwarded-Proto: https\r\nX-Other: kept\r\n\r\n";
	struct h1_head h;
	size_t scan = 0;
	ck_assert_int_eq(h1_parse_request(head, strlen(head), 16384, &scan, &h, 0),
	                 (int)strlen(head));
	ck_assert_msg(h.ndrop == 5 && !h.has_forwarded_proto,
	              "from a client: 5 forwarding lines dropped, got %d", h.ndrop);
	scan = 0;
	ck_assert_int_eq(h1_parse_request(head, strlen(head), 16384, &scan, &h, 1),
	                 (int)strlen(head));
	ck_assert_msg(h.ndrop == 0 && h.has_forwarded_proto,
	              "from a trusted proxy: every line kept, X-Forwarded-Proto noted; got %d "
	              "drops",
	              h.ndrop);
}
END_TEST

START_TEST(test_a_head_over_the_limit_is_431)
{
	char buf[2048];
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
	struct h1_head h;
	size_t scan = 0;
	int r = h1_parse_request(buf, sizeof(buf), 1024, &scan, &h, 0);
	ck_assert_msg(r == -431,
	              "expected -431 for 2 KiB without an end over a 1 KiB limit, got %d", r);
}
END_TEST

START_TEST(test_a_head_arriving_byte_by_byte)
{
	const char *head = "GET /a HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n";
	size_t len = strlen(head), scan = 0;
	struct h1_head h;
	for (size_t n = 1; n < len; n++) {
		int r = h1_parse_request(head, n, 16384, &scan, &h, 0);
		ck_assert_msg(r == 0, "expected 0 (need more) with %zu of %zu bytes, got %d", n,
		              len, r);
	}
	ck_assert_int_eq(h1_parse_request(head, len, 16384, &scan, &h, 0), (int)len);
}
END_TEST

START_TEST(test_response_heads)
{
	struct h1_head h;
	size_t scan = 0;
	const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n";
	ck_assert_int_eq(h1_parse_response(ok, strlen(ok), 16384, &scan, &h), (int)strlen(ok));
	ck_assert_int_eq(h.status, 200);
	ck_assert_int_eq(h.body, H1_BODY_LENGTH);
	ck_assert_int_eq(h.ndrop, 1);
	scan = 0;
	const char *eof = "HTTP/1.0 200 OK\r\n\r\n";
	ck_assert_int_eq(h1_parse_response(eof, strlen(eof), 16384, &scan, &h), (int)strlen(eof));
	ck_assert_msg(h.body == H1_BODY_CLOSE && h.conn_close, "a 1.0 response without length");
	scan = 0;
	const char *ws =
	    "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
	ck_assert_int_eq(h1_parse_response(ws, strlen(ws), 16384, &scan, &h), (int)strlen(ws));
	ck_assert_msg(h.upgrade && h.ndrop == 0, "101 keeps Upgrade and Connection");
	scan = 0;
	const char *bad =
	    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
	ck_assert_int_eq(h1_parse_response(bad, strlen(bad), 16384, &scan, &h), -502);
	scan = 0;
	scan = 0;
	const char *gzip = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
	ck_assert_int_eq(h1_parse_response(gzip, strlen(gzip), 16384, &scan, &h),
	                 (int)strlen(gzip));
	ck_assert_msg(h.body == H1_BODY_CLOSE, "gzip alone: the body ends with the connection");
	scan = 0;
	const char *listed = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,  chunked\r\n\r\n";
	ck_assert_int_eq(h1_parse_response(listed, strlen(listed), 16384, &scan, &h),
	                 (int)strlen(listed));
	ck_assert_msg(h.body == H1_BODY_CHUNKED, "\"gzip, chunked\" is chunked");
	scan = 0;
	const char *nostatus = "HTTP/1.1 2x0 OK\r\n\r\n";
	ck_assert_int_eq(h1_parse_response(nostatus, strlen(nostatus), 16384, &scan, &h), -502);
}
END_TEST

START_TEST(test_responses_the_proxy_refuses)
{
	static const char *const bad[] = {
	    "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\rX: y\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\tchunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked,\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip chunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: $ chunked\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct h1_head h;
		size_t scan = 0;
		int r = h1_parse_response(bad[i], strlen(bad[i]), 16384, &scan, &h);
		ck_assert_msg(r == -502, "expected -502 for %s, got %d", bad[i], r);
	}
	struct h1_head h;
	size_t scan = 0;
	const char *ok = "HTTP/1.1 599 Edge\r\nContent-Length: 0\r\n\r\n";
	ck_assert_msg(h1_parse_response(ok, strlen(ok), 16384, &scan, &h) == (int)strlen(ok),
	              "a 599 is a status like any other");
}
END_TEST

static int kind_of(const char *request, const char *response, unsigned *ninterim)
{
	struct h1_head rq, rs;
	size_t scan = 0;
	ck_assert_int_eq(h1_parse_request(request, strlen(request), 16384, &scan, &rq, 0),
	                 (int)strlen(request));
	scan = 0;
	ck_assert_int_eq(h1_parse_response(response, strlen(response), 16384, &scan, &rs),
	                 (int)strlen(response));
	return h1_response_kind(&rq, &rs, ninterim);
}

START_TEST(test_interim_responses_and_upgrades)
{
	const char *get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *ws = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: "
	                 "Upgrade\r\n\r\n";
	const char *sw =
	    "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
	unsigned n = 0;
	ck_assert_msg(kind_of(get, sw, &n) == -502, "a 101 to a request without Upgrade is a 502");
	ck_assert_msg(kind_of(ws, sw, &n) == H1_SWITCH, "a 101 to a WebSocket upgrade switches");
	ck_assert_msg(kind_of(ws, "HTTP/1.1 101 S\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
	                      &n) == -502,
	              "a 101 to another protocol than the one asked for is a 502");
	for (int i = 0; i < H1_MAX_INTERIM; i++)
		ck_assert_msg(kind_of(get, "HTTP/1.1 100 Continue\r\n\r\n", &n) == H1_INTERIM,
		              "interim response %d of %d is relayed", i + 1, H1_MAX_INTERIM);
	ck_assert_msg(kind_of(get, "HTTP/1.1 103 Early Hints\r\n\r\n", &n) == -502,
	              "one interim response more than %d is a 502", H1_MAX_INTERIM);
	n = 0;
	ck_assert_msg(kind_of(get, "HTTP/1.1 204 No Content\r\n\r\n", &n) == H1_FINAL,
	              "a 204 is final");
}
END_TEST

START_TEST(test_chunked_scanner)
{
	const char *body = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
	size_t len = strlen(body);
	/* whole, then one byte at a time: the body ends before "NEXT" */
	struct h1_chunk ck;
	memset(&ck, 0, sizeof(ck));
	ck_assert_int_eq(h1_chunk_scan(&ck, body, len), (ssize_t)(len - 4));
	ck_assert(ck.done);
	memset(&ck, 0, sizeof(ck));
	size_t used = 0;
	for (size_t i = 0; i < len && !ck.done; i++)
		used += (size_t)h1_chunk_scan(&ck, body + i, 1);
	ck_assert_msg(ck.done && used == len - 4, "byte by byte: done %d after %zu", ck.done, used);

	static const char *const bad[] = {"zz\r\n",
	                                  "5\nhello",
	                                  "3\r\nabcX\r\n",
	                                  "1234567890abcdef0\r\n",
	                                  "0\r\n\x01\r\n",
	                                  "5 \r\nhello\r\n0\r\n\r\n",
	                                  "5\t\r\nhello\r\n0\r\n\r\n",
	                                  "5;a=b \r\nhello\r\n0\r\n\r\n",
	                                  "5;\r\nhello\r\n0\r\n\r\n",
	                                  "5;a=\r\nhello\r\n0\r\n\r\n",
	                                  "5;a=\"x\r\nhello\r\n0\r\n\r\n",
	                                  "5 a\r\nhello\r\n0\r\n\r\n",
	                                  "0\r\nno-colon\r\n\r\n",
	                                  "0\r\n: no name\r\n\r\n",
	                                  "0\r\nX T: 1\r\n\r\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&ck, 0, sizeof(ck));
		ck_assert_msg(h1_chunk_scan(&ck, bad[i], strlen(bad[i])) == -1,
		              "expected a framing error for case %zu", i);
	}
	static const char *const good[] = {"5 ; a = b ;c\r\nhello\r\n0\r\n\r\n",
	                                   "5;a=\"q\\\"; x\"\r\nhello\r\n0\r\nX-T:\r\n\r\n"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&ck, 0, sizeof(ck));
		ck_assert_msg(h1_chunk_scan(&ck, good[i], strlen(good[i])) ==
		                      (ssize_t)strlen(good[i]) &&
		                  ck.done,
		              "expected case %zu to be a whole chunked body", i);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http1");
	TCase *tc = tcase_create("heads");
	tcase_add_loop_test(tc, test_request_heads, 0,
	                    (int)(sizeof(req_cases) / sizeof(req_cases[0])));
	tcase_add_test(tc, test_a_head_over_the_limit_is_431);
	tcase_add_test(tc, test_forwarding_headers_of_a_client_are_dropped_unless_trusted);
	tcase_add_test(tc, test_a_head_arriving_byte_by_byte);
	tcase_add_test(tc, test_response_heads);
	tcase_add_test(tc, test_responses_the_proxy_refuses);
	tcase_add_test(tc, test_interim_responses_and_upgrades);
	tcase_add_test(tc, test_chunked_scanner);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
