"""The builtin balancer (a zone's data plane) through a real worker:
`scalerd --balancer ZONE` (or bal-harness when the build has no scalerd),
with real backend processes (tests/balancer/backend.py)."""
import base64
import json
import os
import socket
import sys
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import (SMUGGLING, Balancer, FakePrimary, backend, backend_requests,  # noqa
                     keepalive_exchange, open_fds, parse_responses, request, tarpit)

FAST = {"health_interval": 0.2, "recheck_interval": 0.2, "health_timeout": 1.0}

_shared = {}


def two():
    """Two backends and a balancer over them, shared by the read-only tests."""
    if not _shared:
        a, b = backend("a"), backend("b")
        _shared["a"], _shared["b"] = a, b
        _shared["bal"] = Balancer([a.url, b.url], {"max_body_size": 100000,
                                                  "client_timeout": 1.0})
        log("balancer via %s" % _shared["bal"].via)
    return _shared["a"], _shared["b"], _shared["bal"]


def get(port, path, extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


# ---- proxying ------------------------------------------------------------

@test
def requests_go_round_robin_over_the_alive_servers():
    a, b, bal = two()
    res = keepalive_exchange(bal.port, [get(bal.port, "/")] * 4)
    names = [r[2].strip().decode() for r in res]
    check_eq(len(names), 4, "responses on one keep-alive connection")
    check_eq(sorted(set(names)), ["a", "b"], "servers that answered")
    check(names[0] != names[1] and names[1] != names[2], "alternating servers, got %r" % names)


@test
def forwarded_headers_are_added_and_hop_by_hop_headers_stripped():
    a, b, bal = two()
    res = keepalive_exchange(bal.port, [get(bal.port, "/echo",
                                            b"Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n"
                                            b"Proxy-Connection: keep-alive\r\nTE: trailers\r\n"
                                            b"X-Forwarded-Proto: https\r\nX-Kept: yes\r\n"
                                            b"X-Secret: listed in Connection\r\n")])
    check_eq(res[0][0], 200, "status")
    seen = json.loads(res[0][2])
    names = [h[0].lower() for h in seen["headers"]]
    for hop in ("keep-alive", "proxy-connection", "te", "x-secret"):
        check(hop not in names, "%s must not reach the server (it saw %r)" % (hop, names))
    hdr = {h[0].lower(): h[1] for h in seen["headers"]}
    check_eq(hdr.get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For")
    check_eq(hdr.get("x-forwarded-proto"), "http", "X-Forwarded-Proto (client's value replaced)")
    check_eq(hdr.get("forwarded"), "for=127.0.0.1;proto=http", "Forwarded (RFC 7239)")
    check_eq(hdr.get("x-kept"), "yes", "an end-to-end header")
    check_eq(seen["path"], "/echo", "path")


def forwarding_lines(headers):
    names = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "forwarded")
    return [(n.lower(), v) for n, v in headers if n.lower() in names]


SPOOF = (b"X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\n"
         b"X-Real-IP: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n")


@test
def a_client_cannot_spoof_its_address_the_balancer_replaces_the_forwarding_headers():
    a, b, bal = two()
    res = keepalive_exchange(bal.port, [get(bal.port, "/echo", SPOOF)])
    check_eq(res[0][0], 200, "status")
    check_eq(forwarding_lines(json.loads(res[0][2])["headers"]),
             [("x-forwarded-for", "127.0.0.1"), ("forwarded", "for=127.0.0.1;proto=http"),
              ("x-forwarded-proto", "http")],
             "the forwarding lines the server sees (the client's 6.6.6.6 gone)")


@test
def a_trusted_front_proxy_keeps_its_forwarding_headers_and_the_balancer_appends():
    a = backend("fwd-a")
    bal = Balancer([a.url], {"trusted_proxies": ["10.0.0.0/8", "127.0.0.1"]})
    res = keepalive_exchange(bal.port, [get(bal.port, "/echo", SPOOF)])
    check_eq(res[0][0], 200, "status")
    check_eq(forwarding_lines(json.loads(res[0][2])["headers"]),
             [("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6;proto=https"),
              ("x-real-ip", "6.6.6.6"), ("x-forwarded-host", "evil.example"),
              ("x-forwarded-proto", "https"),
              ("x-forwarded-for", "127.0.0.1"), ("forwarded", "for=127.0.0.1;proto=http")],
             "the proxy's lines, then the balancer's (one X-Forwarded-Proto: the proxy's)")
    bal.proc.stop()
    bal = Balancer([a.url], {"trusted_proxies": ["10.0.0.0/8"]})
    res = keepalive_exchange(bal.port, [get(bal.port, "/echo", SPOOF)])
    check_eq([v for n, v in forwarding_lines(json.loads(res[0][2])["headers"])
              if n == "x-forwarded-for"], ["127.0.0.1"],
             "X-Forwarded-For from a peer outside trusted_proxies")
    bad = Balancer([a.url], {"trusted_proxies": ["10.0.0.0/33"]}, expect_fail=True)
    check(bad.proc.wait(10) != 0, "a bad network in trusted_proxies is refused")
    check("trusted_proxies" in bad.proc.output() and "10.0.0.0/33" in bad.proc.output(),
          "the error names the setting and the value: %s" % bad.proc.output())


@test
def a_post_body_with_content_length_arrives_intact():
    a, b, bal = two()
    body = bytes(range(256)) * 200  # 51200 bytes, binary
    req = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    res = keepalive_exchange(bal.port, [req])
    seen = json.loads(res[0][2])
    check_eq(seen["body_len"], len(body), "body length at the server")
    check_eq(seen["body"].encode("latin-1"), body, "body bytes at the server")


@test
def a_client_waiting_for_100_continue_gets_it_before_it_sends_its_body():
    # the head reaches the server without its body, and the server's 100
    # Continue reaches the client, which only then sends the body
    a, b, bal = two()
    body = b"y" * 70000
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    try:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        s.settimeout(1.0)
        try:
            interim = s.recv(4096)
        except socket.timeout:
            interim = b""
        check(interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"),
              "100 Continue within 1 s of the head, before any body byte: %r" % interim)
        s.settimeout(5)
        s.sendall(body[:1000])
        time.sleep(0.05)
        s.sendall(body[1000:])
        out = b""
        while b"\r\n\r\n" not in out:
            d = s.recv(65536)
            if not d:
                break
            out += d
        head, _, rest = out.partition(b"\r\n\r\n")
        length = [int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:")]
        while length and len(rest) < length[0]:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        check(head.startswith(b"HTTP/1.1 200"), "the final answer: %r" % head[:200])
        check_eq(json.loads(rest)["body_len"], len(body), "the body at the server")
    finally:
        s.close()


@test
def chunked_bodies_round_trip_both_ways():
    a, b, bal = two()
    req = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n")
    res = keepalive_exchange(bal.port, [req, get(bal.port, "/chunked")])
    check_eq(res[0][0], 200, "status of the chunked upload")
    check_eq(json.loads(res[0][2])["body"], "hello, world", "decoded request body at the server")
    check_eq(res[1][0], 200, "status of the chunked download")
    check_eq(res[1][1].get("transfer-encoding"), ["chunked"], "response framing kept")
    check(res[1][2].startswith(b"part 0 of ") and res[1][2].count(b"part") == 5,
          "five chunks relayed, got %r" % res[1][2])


@test
def large_bodies_stream_through_both_ways():
    a, b = backend("big-a"), backend("big-b")
    bal = Balancer([a.url, b.url], {"retry_body_size": 65536})
    pattern = b"0123456789abcdef" * 4096
    n = 3000000
    want = (pattern * (n // len(pattern) + 1))[:n]
    res = keepalive_exchange(bal.port, [get(bal.port, "/big?n=%d" % n),
                                        get(bal.port, "/big?n=%d&chunked" % n),
                                        get(bal.port, "/")], timeout=10)
    check_eq([r[0] for r in res], [200, 200, 200], "statuses")
    check(res[0][2] == want, "3 MB body with Content-Length intact (got %d bytes)" % len(res[0][2]))
    check(res[1][2] == want, "3 MB chunked body intact (got %d bytes)" % len(res[1][2]))
    body = os.urandom(2000000)
    import hashlib
    res = keepalive_exchange(bal.port, [
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        get(bal.port, "/")], timeout=10)
    check_eq(res[0][0], 200, "status of a 2 MB upload")
    seen = json.loads(res[0][2])
    check_eq((seen["body_len"], seen["sha1"]), (len(body), hashlib.sha1(body).hexdigest()),
             "the 2 MB upload at the server")
    check_eq(res[1][0], 200, "the connection still serves after the upload")


@test
def a_server_that_answers_before_the_body_is_in_keeps_the_client_connection():
    a = backend("early-a")
    bal = Balancer([a.url])
    n = 300000
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    try:
        s.sendall(b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % n)
        got = b""
        while b"early\n" not in got:
            d = s.recv(65536)
            check(d, "the early answer arrives before the body is sent (got %r)" % got)
            got += d
        check(got.startswith(b"HTTP/1.1 200"), "the early answer: %r" % got[:100])
        check(b"connection: close" not in got.lower(), "and keeps the connection: %r" % got)
        for i in range(0, n, 50000):  # the body, after the answer
            s.sendall(b"x" * min(50000, n - i))
        s.sendall(get(bal.port, "/"))
        got = b""
        while not got.endswith(b"early-a\n"):
            d = s.recv(65536)
            check(d, "the next request on the connection is answered (got %r)" % got)
            got += d
        check(got.startswith(b"HTTP/1.1 200"), "the next answer: %r" % got[:100])
    finally:
        s.close()


@test
def pipelined_requests_are_answered_in_order():
    a, b, bal = two()
    data = (b"GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /echo?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    res = request(bal.port, data)
    check_eq(len(res), 3, "responses")
    check_eq([json.loads(r[2])["path"] for r in res], ["/echo?n=1", "/echo?n=2", "/echo?n=3"],
             "order of responses")
    check_eq(json.loads(res[1][2])["body"], "abc", "body of the pipelined POST")
    check_eq(res[2][1].get("connection"), ["close"], "Connection: close on the last response")


@test
def a_client_that_half_closes_after_pipelining_gets_every_answer():
    a, b, bal = two()
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    s.sendall(get(bal.port, "/echo?n=1") + get(bal.port, "/echo?n=2"))
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    res = parse_responses(out)
    check_eq([json.loads(r[2])["path"] for r in res], ["/echo?n=1", "/echo?n=2"],
             "answers before the close")


@test
def a_pipelined_head_that_straddles_the_buffer_end_is_parsed_intact():
    a, b, bal = two()
    body = b"b" * 7900
    hdrs = b"".join(b"X-Line-%03d: %s\r\n" % (i, b"v" * 80) for i in range(95))
    data = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body +
            b"GET /echo HTTP/1.1\r\nHost: t\r\n" + hdrs + b"Connection: close\r\n\r\n")
    res = request(bal.port, data)
    check_eq([r[0] for r in res], [200, 200], "statuses")
    seen = json.loads(res[1][2])
    lines = [h for h in seen["headers"] if h[0].startswith("X-Line-")]
    check_eq(len(lines), 95, "header lines of the second request at the server")
    check(all(h[1] == "v" * 80 for h in lines), "header values intact")


@test
def an_http_1_0_client_gets_its_answer_and_the_connection_closes():
    a, b, bal = two()
    res = request(bal.port, b"GET /echo HTTP/1.0\r\n\r\n")
    check_eq(len(res), 1, "responses")
    check_eq(res[0][0], 200, "status")
    check_eq(json.loads(res[0][2])["version"], "HTTP/1.0", "version the server saw")


@test
def an_http_1_0_keep_alive_client_keeps_its_connection():
    a, b, bal = two()
    req = b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    res = keepalive_exchange(bal.port, [req, req])
    check_eq([r[0] for r in res], [200, 200], "two answers on one HTTP/1.0 connection")
    check_eq(res[0][1].get("connection"), ["keep-alive"], "the response says keep-alive")
    check_eq(json.loads(res[0][2])["version"], "HTTP/1.0", "version the server saw")
    res = request(bal.port, b"GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    check_eq(res[0][0], 200, "status of a response without length to a 1.0 client")


@test
def connection_close_from_the_client_closes_after_the_response():
    a, b, bal = two()
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=3)
    s.sendall(get(bal.port, "/", b"Connection: close\r\n"))
    out = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        out += d
    s.close()
    check(out.startswith(b"HTTP/1.1 200"), "a 200 before the close, got %r" % out[:80])


@test
def a_websocket_is_tunnelled_and_echoes():
    a, b, bal = two()
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=3)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    check(head.startswith(b"HTTP/1.1 101"), "101 Switching Protocols, got %r" % head)
    check(b"upgrade: websocket" in head.lower(), "Upgrade header relayed: %r" % head)
    for msg in (b"hello", b"x" * 300):
        mask = os.urandom(4)
        frame = bytes([0x81])
        frame += bytes([0x80 | len(msg)]) if len(msg) < 126 else bytes([0x80 | 126]) + len(msg).to_bytes(2, "big")
        frame += mask + bytes(c ^ mask[i % 4] for i, c in enumerate(msg))
        s.sendall(frame)
        got = b""
        want = 2 + (0 if len(msg) < 126 else 2) + len(msg)
        while len(got) < want:
            d = s.recv(4096)
            check(d, "the tunnel closed early")
            got += d
        check_eq(got[-len(msg):], msg, "echoed payload")
    s.close()


# ---- refusing bad input ---------------------------------------------------

def refused(bal, data, status, what):
    res = request(bal.port, data)
    check(res, "%s: expected a %d response, the connection closed without one" % (what, status))
    check_eq(res[0][0], status, what)
    check_eq(len(res), 1, "%s: responses before the close" % what)


@test
def smuggling_attempts_are_refused_with_400_and_reach_no_server():
    a, b, bal = two()
    before = backend_requests(a) + backend_requests(b)
    for data, what in SMUGGLING:
        refused(bal, data, 400, what)
    refused(bal, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
            "a transfer coding other than chunked")
    refused(bal, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "HTTP/2.0 request line")
    check_eq(backend_requests(a) + backend_requests(b), before, "requests that reached a server")


def raw(response):
    return "/raw?" + base64.urlsafe_b64encode(response).decode()


@test
def interim_responses_are_relayed_however_many_bytes_they_take():
    a, b, bal = two()
    res = request(bal.port, get(bal.port, "/interim?n=20&size=1000&code=103",
                                b"Connection: close\r\n"))
    check_eq([r[0] for r in res], [103] * 20 + [200], "20 early hints of 1 KB (20 KB), then 200")
    check(all(len(r[1]["link"][0]) > 1000 for r in res[:20]), "each hint with its Link header")
    res = request(bal.port, get(bal.port, "/interim?n=3").replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    check_eq([r[0] for r in res], [200], "an HTTP/1.0 client gets no 1xx (RFC 9110 15.2)")


@test
def a_flood_of_interim_responses_gets_a_502_not_a_bare_close():
    a, b, bal = two()
    res = request(bal.port, get(bal.port, "/interim?n=700", b"Connection: close\r\n"))
    check(res, "a response, not a bare close")
    check_eq([r[0] for r in res], [100] * 32 + [502],
             "700 x 100 Continue (17 KB): the first 32 relayed, then 502")


@test
def a_101_nobody_asked_for_and_a_status_outside_100_to_599_get_502():
    a, b, bal = two()
    cases = [
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         "an unrequested 101"),
        (b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok", "status 999"),
        (b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok", "status 600"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n",
         "Content-Length 0 and 00 from a server"),
        (b"HTTP/1.1 200 OK\rX: y\r\nContent-Length: 2\r\n\r\nok", "a bare CR in the status line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n2\r\nok\r\n0\r\n\r\n",
         "a tab after chunked, which http_parser reads as another coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
         "an empty element before chunked, the same"),
    ]
    for data, what in cases:
        res = request(bal.port, get(bal.port, raw(data)))
        check_eq([r[0] for r in res], [502], what)


@test
def a_malformed_chunk_line_or_trailer_from_a_server_is_not_relayed():
    a, b, bal = two()
    cases = [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
         "a chunk size with a trailing space"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer\r\n\r\n",
         "a trailer line without a colon"),
    ]
    for data, what in cases:
        out = raw_http(bal.port, get(bal.port, raw(data)))
        check(not out.endswith(b"\r\n\r\n") or b"hello" not in out,
              "%s: the client never gets a complete response (got %r)" % (what, out))
        check(b"X-Trailer\r\n" not in out and b"5 \r\n" not in out,
              "%s: the bad line is not relayed (got %r)" % (what, out))


@test
def an_oversize_header_gets_431_and_an_oversize_body_413():
    a, b, bal = two()
    refused(bal, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431,
            "a 20 KB header")
    refused(bal, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n", 413,
            "a body over max_body_size")
    big = b"x" * 60000
    data = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += (b"%x\r\n" % len(big)) + big + b"\r\n"
    data += (b"%x\r\n" % len(big)) + big + b"\r\n0\r\n\r\n"
    res = request(bal.port, data)
    check_eq(res[0][0] if res else None, 413, "a chunked body over max_body_size")


@test
def a_slow_client_gets_408():
    a, b, bal = two()
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    t0 = time.monotonic()
    out = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        out += d
    s.close()
    check(out.startswith(b"HTTP/1.1 408"), "408, got %r" % out[:60])
    check(time.monotonic() - t0 < 3.0, "408 within client_timeout (1 s) + a tick")


@test
def with_zero_servers_and_no_holding_requests_get_503_saying_so():
    bal = Balancer([], {"hold_max": 0})
    res = request(bal.port, get(bal.port, "/"))
    check_eq(res[0][0], 503, "status")
    check(b"no server is alive" in res[0][2], "body says why: %r" % res[0][2])


# ---- retries ---------------------------------------------------------------

@test
def a_request_that_cannot_connect_is_retried_on_another_server_with_its_body():
    a = backend("retry-a")
    dead = "http://127.0.0.1:%d" % free_port()
    bal = Balancer([dead, a.url])
    body = b"payload-" * 1000
    res = keepalive_exchange(bal.port, [
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body] * 2)
    for r in res:
        check_eq(r[0], 200, "status")
        check_eq(json.loads(r[2])["body"].encode(), body, "body at the server after a retry")
    check(bal.metric("scaler_balancer_retries_total") >= 1, "a retry was counted")
    check(bal.metric("scaler_balancer_upstream_connect_errors_total") >= 1,
          "a connect error was counted")
    check_eq(bal.states()[dead]["state"], "disconnected", "the unreachable server's pool")
    check_eq(bal.servers(), [a.url], "alive servers")


@test
def a_request_whose_response_started_is_not_retried():
    a, b = backend("cut-a"), backend("cut-b")
    bal = Balancer([a.url, b.url])
    res = request(bal.port, get(bal.port, "/cut"))
    check(not res or res[0][0] == 200, "at most the start of the cut response")
    check(not res or len(res[0][2]) < 1000, "the cut body is not completed")
    time.sleep(0.2)
    check_eq(backend_requests(a) + backend_requests(b), 1, "servers that got the request")
    res = request(bal.port, get(bal.port, "/half-head"))
    check_eq(res[0][0], 502, "status after part of a response head")
    time.sleep(0.2)
    check_eq(backend_requests(a) + backend_requests(b), 2,
             "servers that got the request whose head was cut (no retry)")


@test
def a_post_fully_sent_on_a_fresh_connection_is_not_retried_but_a_get_is():
    a, b = backend("drop-a"), backend("drop-b")
    bal = Balancer([a.url, b.url], {"upstream_keepalive": 0})
    res = request(bal.port, b"POST /drop HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
    check_eq(res[0][0], 502, "status of the POST")
    time.sleep(0.2)
    check_eq(backend_requests(a) + backend_requests(b), 1, "servers that got the POST")
    res = request(bal.port, get(bal.port, "/drop"))
    check_eq(res[0][0], 502, "status of the GET once every server dropped it")
    time.sleep(0.2)
    check_eq(backend_requests(a) + backend_requests(b), 3, "servers that got the GET (retried)")
    check_eq(sorted(bal.servers()), sorted([a.url, b.url]),
             "a dropped request does not take servers out of rotation")


@test
def an_upstream_timeout_gets_504_and_no_retry():
    a, b = backend("slow-a"), backend("slow-b")
    bal = Balancer([a.url, b.url], {"server_timeout": 0.5})
    t0 = time.monotonic()
    res = request(bal.port, get(bal.port, "/slow?s=2"), timeout=5)
    check_eq(res[0][0], 504, "status")
    check(b"gateway timeout" in res[0][2], "body says which: %r" % res[0][2])
    check(time.monotonic() - t0 < 1.8, "answered before the server did")
    check_eq(backend_requests(a) + backend_requests(b), 1, "servers that got the request")


@test
def when_every_attempt_fails_the_client_gets_502():
    dead = ["http://127.0.0.1:%d" % free_port() for _ in range(3)]
    bal = Balancer(dead)
    res = request(bal.port, get(bal.port, "/"))
    check_eq(res[0][0], 502, "status")
    check(b"bad gateway" in res[0][2], "body says which: %r" % res[0][2])


# ---- pools -----------------------------------------------------------------

@test
def a_failing_server_goes_disconnected_then_alive_again():
    a, b = backend("pool-a"), backend("pool-b")
    bal = Balancer([a.url, b.url], FAST)
    request(a.port, b"PUT /control/unhealthy HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    wait_until(lambda: bal.states()[a.url]["state"] == "disconnected", 3, "a to be disconnected")
    st = bal.states()[a.url]
    check(st["consecutive_failures"] >= 1, "failures counted: %r" % st)
    check("503" in (st["last_error"] or ""), "last error names the status: %r" % st)
    check_eq(bal.servers(), [b.url], "alive servers while a is out")
    for _ in range(4):
        check_eq(request(bal.port, get(bal.port, "/", b"Connection: close\r\n"))[0][2], b"pool-b\n",
                 "traffic goes to b only")
    request(a.port, b"PUT /control/healthy HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    wait_until(lambda: bal.states()[a.url]["state"] == "alive", 3, "a to be alive again")


def needs_scalerd():
    from baltest import scalerd_has_balancer
    if not scalerd_has_balancer():
        skip("needs scalerd --balancer (a state store to confirm the primary)")


def set_leader(redis, url, epoch):
    """What a primary's election writes to the state store (cluster "t")."""
    redis.cli("SET", "t:epoch", str(epoch))
    redis.cli("HSET", "t:leader", "id", "2", "url", url, "epoch", str(epoch))


@test
def a_dead_server_is_reported_and_forgotten_only_after_the_primary_accepts():
    needs_scalerd()
    primary = FakePrimary(status=500)
    redis = Redis()
    a, b = backend("dead-a"), backend("dead-b")
    bal = Balancer([a.url, b.url], dict(FAST, retries=3, report_interval=0.3), token="s3cret",
                   redis_url=redis.url())
    set_leader(redis, primary.url, 1)
    check_eq(bal.admin_put("/monitor", {"url": primary.url, "epoch": 1})[0], 200, "PUT /monitor")
    a.kill()
    wait_until(lambda: bal.states()[a.url]["state"] == "dead", 5, "a to be dead")
    wait_until(lambda: len(primary.reports) >= 2, 3, "two reports to a failing primary")
    check(a.url in bal.states(), "a dead server stays until the primary accepts the report")
    rep = primary.reports[0]
    check_eq(rep["path"], "/report", "report path")
    check_eq(rep["body"], {"zone": "zone1", "dead": [a.url]}, "report body")
    check_eq(rep["auth"], "Bearer s3cret", "report carries the token")
    primary.status = 200
    wait_until(lambda: a.url not in bal.states(), 3, "a to be forgotten after a 2xx")
    n = len(primary.reports)
    time.sleep(1.0)
    check_eq(len(primary.reports), n, "no report without dead servers")
    primary.close()


@test
def dead_servers_are_reported_a_thousand_at_a_time():
    needs_scalerd()
    primary = FakePrimary(status=500)  # refuses until every server is dead
    redis = Redis()
    set_leader(redis, primary.url, 1)
    pit, ports = tarpit(1005)
    bal = Balancer([], dict(FAST, retries=1, health_timeout=0.2, report_interval=0.3,
                            max_checks=500), redis_url=redis.url())
    check_eq(bal.admin_put("/servers", {"adds": ["http://127.0.0.1:%d" % p for p in ports]})[0],
             200, "PUT of 1,005 servers that never answer")
    wait_until(lambda: all(v["state"] == "dead" for v in bal.states().values()), 20,
               "all 1,005 to be dead")
    n = len(primary.reports)
    primary.status = 200
    wait_until(lambda: not bal.states(), 10, "every reported server forgotten")
    sizes = [len(r["body"]["dead"]) for r in primary.reports[n:] if r["answered"] == 200]
    check_eq(sizes, [1000, 5], "servers named per accepted report (the primary takes 1,000)")
    pit.stop()
    primary.close()


@test
def a_server_added_by_the_api_takes_traffic_once_its_check_passes():
    a, b = backend("add-a"), backend("add-b")
    bal = Balancer([a.url], FAST)
    dead = "http://127.0.0.1:%d" % free_port()
    st, body = bal.admin_put("/servers", {"adds": [b.url, dead]})
    check_eq(st, 200, "PUT /servers status (%r)" % body)
    wait_until(lambda: b.url in bal.servers(), 3, "b to be alive")
    check(dead not in bal.servers(), "a server that fails its check takes no traffic")
    names = set(request(bal.port, get(bal.port, "/", b"Connection: close\r\n"))[0][2] for _ in range(4))
    check_eq(names, {b"add-a\n", b"add-b\n"}, "servers answering")
    check_eq(bal.admin_put("/servers", {"adds": [b.url]})[0], 200, "a duplicate add")
    check_eq(sorted(bal.states()), sorted([a.url, b.url, dead]), "duplicates are ignored")
    wait_until(lambda: bal.states()[dead]["state"] == "dead", 5, "the never-healthy server to die")
    st, _ = bal.admin_put("/servers", {"deletes": [dead, a.url + "/"]})
    check_eq(st, 200, "deletes of a dead and an alive server")
    check_eq(sorted(bal.states()), [b.url], "servers left")


@test
def servers_given_by_name_are_resolved_and_take_traffic():
    a, b = backend("name-a"), backend("name-b")
    bal = Balancer(["http://localhost:%d" % a.port], FAST)
    named_b = "http://localhost:%d" % b.port
    check_eq(bal.admin_put("/servers", {"adds": [named_b]})[0], 200, "add by name")
    wait_until(lambda: sorted(bal.servers()) == sorted(["http://localhost:%d" % a.port, named_b]),
               3, "both named servers to be alive")
    names = set(request(bal.port, get(bal.port, "/", b"Connection: close\r\n"))[0][2] for _ in range(4))
    check_eq(names, {b"name-a\n", b"name-b\n"}, "servers answering")


@test
def a_worker_restores_its_servers_and_primary_from_redis():
    from baltest import scalerd_has_balancer
    if not scalerd_has_balancer():
        skip("needs scalerd --balancer")
    redis = Redis()
    a, b = backend("restore-a"), backend("restore-b")

    def record(sid, url, state):
        return json.dumps({"id": sid, "zone": "zone1", "address": url, "ref": "pid:1",
                           "created": 1.0, "driver": "process", "state": state, "updated": 1.0})
    redis.cli("HSET", "t:servers:zone1", "zone1-a", record("zone1-a", a.url, "serving"))
    redis.cli("HSET", "t:servers:zone1", "zone1-b", record("zone1-b", b.url, "starting"))
    redis.cli("SET", "t:epoch", "7")
    redis.cli("HSET", "t:leader", "id", "2", "url", "http://127.0.0.1:7007", "epoch", "7")
    bal = Balancer([], redis_url=redis.url())
    wait_until(lambda: bal.servers() == [a.url], 5, "the serving server to be restored")
    check(b.url not in bal.states(), "a server still starting is not restored")
    check_eq(bal.admin_get("/monitor")[1], {"url": "http://127.0.0.1:7007", "epoch": 7},
             "the primary restored from the leader record")
    check_eq(request(bal.port, get(bal.port, "/", b"Connection: close\r\n"))[0][2], b"restore-a\n",
             "traffic right after the restore")
    redis.stop()


@test
def in_flight_requests_to_a_deleted_server_finish():
    a = backend("del-a")
    bal = Balancer([a.url], {"hold_max": 0})
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    s.sendall(get(bal.port, "/slow?s=1", b"Connection: close\r\n"))
    time.sleep(0.3)
    check_eq(bal.admin_put("/servers", {"deletes": [a.url]})[0], 200, "delete")
    out = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        out += d
    check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"slow del-a\n"),
          "the in-flight request completes, got %r" % out)
    check_eq(request(bal.port, get(bal.port, "/"))[0][0], 503, "no server after the delete")


@test
def twenty_thousand_servers_are_taken_in_one_put_and_the_zone_keeps_serving():
    a = backend("many-a")
    pit, ports = tarpit(1)
    # one check at a time, held by a server that never answers: the 20,000
    # (ports nobody may listen on) wait their turn and get no traffic
    bal = Balancer([a.url], {"max_servers": 20002, "max_checks": 1, "health_timeout": 600})
    hang = "http://127.0.0.1:%d" % ports[0]
    check_eq(bal.admin_put("/servers", {"adds": [hang]})[0], 200, "PUT of the hanging server")
    wait_until(lambda: bal.states()[hang]["state"] == "pending" and open_fds(bal.proc.pid) > 0,
               3, "its check to start")
    time.sleep(0.2)
    many = ["http://127.0.0.1:%d" % p for p in range(40000, 60002)
            if p not in (a.port, ports[0])][:20000]
    st, body = bal.admin_put("/servers", {"adds": many})
    check_eq(st, 200, "PUT /servers of 20,000 servers")
    check_eq(len(body["added"]), 20000, "servers reported added")
    check_eq(len(bal.admin_get("/servers?state=all")[1]), 20002, "servers in the zone")
    for _ in range(3):
        res = request(bal.port, get(bal.port, "/", b"Connection: close\r\n"))
        check_eq(res[0][2] if res else None, b"many-a\n", "the zone answers while they are checked")
    st, body = bal.admin_put("/servers", {"deletes": many})
    check_eq((st, len(body["deleted"])), (200, 20000), "deleting them in one PUT")
    check_eq(sorted(bal.states()), sorted([a.url, hang]), "servers after the delete")
    log = bal.proc.output()
    check(log.count("\n") < 100, "one log line per batch, not one per server (%d lines)"
          % log.count("\n"))
    pit.stop()


@test
def health_checks_are_bounded_so_hanging_servers_cannot_exhaust_descriptors():
    a = backend("hang-a")
    pit, ports = tarpit(600)
    # 400 descriptors for the worker: 600 checks at once would run out
    bal = Balancer([a.url], {"health_timeout": 5.0, "max_checks": 100},
                   wrap=["prlimit", "--nofile=400:400"])
    hanging = ["http://127.0.0.1:%d" % p for p in ports]
    st, body = bal.admin_put("/servers", {"adds": hanging})
    check_eq(st, 200, "PUT /servers of 600 hanging servers (%r)" % (body,))
    most = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        most = max(most, open_fds(bal.proc.pid))
        time.sleep(0.05)
    check(most <= 100 + 40, "open descriptors stay near max_checks = 100 (saw %d)" % most)
    res = request(bal.port, get(bal.port, "/", b"Connection: close\r\n"))
    check_eq(res[0][2] if res else None, b"hang-a\n", "the zone answers while checks hang")
    log = bal.proc.output()
    check("Too many open files" not in log, "no descriptor ran out: %s" % log[-2000:])
    pit.stop()


@test
def max_servers_caps_a_zone_and_a_put_over_it_changes_nothing():
    a = backend("cap-a")
    bal = Balancer([a.url], {"max_servers": 5})
    four = ["http://127.0.0.1:%d" % p for p in range(41001, 41005)]
    check_eq(bal.admin_put("/servers", {"adds": four})[0], 200, "up to the cap")
    before = sorted(bal.states())
    st, body = bal.admin_put("/servers", {"adds": ["http://127.0.0.1:41100"]})
    check_eq(st, 409, "one over max_servers = 5")
    check("max_servers" in json.dumps(body), "the error names the setting: %r" % (body,))
    check_eq(sorted(bal.states()), before, "servers after the refused PUT")
    st, body = bal.admin_put("/servers", {"adds": ["http://127.0.0.1:41100"],
                                          "deletes": [four[0], four[0] + "/"]})
    check_eq(st, 200, "an add with a delete at the cap (%r)" % (body,))
    check_eq(len(bal.states()), 5, "servers after the swap")
    bad = Balancer([a.url] + four + ["http://127.0.0.1:41200"], {"max_servers": 5},
                   expect_fail=True)
    check(bad.proc.wait(10) != 0, "more static servers than max_servers: the worker refuses")
    check("max_servers" in bad.proc.output(), "and says why: %s" % bad.proc.output())


@test
def least_conn_and_random2_are_selectable():
    a, b = backend("alg-a"), backend("alg-b")
    for algo in ("least_conn", "random2"):
        bal = Balancer([a.url, b.url], {"algorithm": algo})
        res = keepalive_exchange(bal.port, [get(bal.port, "/")] * 6)
        check_eq([r[0] for r in res], [200] * 6, "%s: statuses" % algo)
        bal.proc.stop()
    bad = Balancer([a.url], {"algorithm": "fastest"}, expect_fail=True)
    check(bad.proc.wait(10) != 0, "an unknown algorithm is refused")
    check("fastest" in bad.proc.output(), "the error names the value: %s" % bad.proc.output())


@test
def sigterm_lets_in_flight_requests_finish_and_stops_accepting():
    a = backend("term-a")
    bal = Balancer([a.url])
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    s.sendall(get(bal.port, "/slow?s=1"))
    time.sleep(0.3)
    bal.proc.signal(15)
    time.sleep(0.2)
    try:
        c = socket.create_connection(("127.0.0.1", bal.port), timeout=1)
        c.close()
        refused_new = False
    except OSError:
        refused_new = True
    check(refused_new, "new connections are refused after SIGTERM")
    out = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        out += d
    check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"slow term-a\n"),
          "the in-flight request completes, got %r" % out)
    check(b"connection: close" in out.lower(), "and says the connection closes")
    check_eq(bal.proc.wait(5), 0, "exit status after SIGTERM")


# ---- admin API -------------------------------------------------------------

@test
def admin_api_refuses_bad_input_and_changes_nothing():
    needs_scalerd()
    a = backend("adm-a")
    redis = Redis()
    bal = Balancer([a.url], token="tok", redis_url=redis.url())
    before = bal.states()
    cases = [
        ("{not json", 400, "invalid JSON"),
        ('["x"]', 400, "an array body"),
        ('{"adds": "http://127.0.0.1:1"}', 400, "adds not an array"),
        ('{"adds": [1]}', 400, "a number as URL"),
        ('{"adds": ["http://127.0.0.1:9"], "deletes": [null]}', 400, "null in deletes"),
        ('{"adds": ["http://127.0.0.1:9", "ftp://127.0.0.1:1"]}', 400, "ftp URL"),
        ('{"adds": ["http://127.0.0.1"]}', 400, "URL without port"),
        ('{"adds": ["http://127.0.0.1:99999"]}', 400, "port out of range"),
        ('{"adds": ["http://127.0.0.1:9/path"]}', 400, "URL with a path"),
        ('{"adds": ["http://user@127.0.0.1:9"]}', 400, "URL with user info"),
        ('{"add": []}', 400, "unknown key"),
    ]
    for raw, status, what in cases:
        st, body = bal.admin_put("/servers", raw=raw)
        check_eq(st, status, what)
        check(isinstance(body, dict) and body.get("error"), "%s: a JSON error: %r" % (what, body))
    st, body = bal.admin_put("/servers", raw='{"adds": ["http://127.0.0.1:9", "http://bad host:1"]}')
    check("bad host" in json.dumps(body), "the error names the bad URL: %r" % body)
    check_eq(bal.states(), before, "servers after refused requests")
    check_eq(bal.admin_put("/servers", {"adds": ["http://127.0.0.1:9"]}, token="")[0], 401,
             "no token")
    check_eq(bal.admin_put("/servers", {"adds": ["http://127.0.0.1:9"]}, token="wrong")[0], 401,
             "wrong token")
    check_eq(bal.states(), before, "servers after unauthorised requests")
    set_leader(redis, "http://127.0.0.1:7000", 5)
    check_eq(bal.admin_put("/monitor", {"url": "http://127.0.0.1:7000", "epoch": 5})[0], 200,
             "monitor at epoch 5")
    st, body = bal.admin_put("/monitor", {"url": "http://127.0.0.1:7001", "epoch": 4})
    check_eq(st, 409, "a stale epoch")
    check_eq(bal.admin_get("/monitor")[1], {"url": "http://127.0.0.1:7000", "epoch": 5},
             "GET /monitor after the stale push")
    check_eq(bal.admin_put("/monitor", {"url": "nope", "epoch": 6})[0], 400, "a bad monitor URL")
    check_eq(bal.admin_put("/monitor", {"url": "http://127.0.0.1:7001", "epoch": "6"})[0], 400,
             "a string epoch")
    check_eq(bal.admin_put("/monitor", {"url": "http://127.0.0.1:7002", "epoch": 6}, token="x")[0],
             401, "monitor without the token")
    check_eq(bal.admin_get("/health_check"), (200, "ok"), "GET /health_check")
    check_eq(bal.admin_get("/servers")[1], [a.url], "GET /servers (seed shape)")


@test
def the_controller_side_pushes_servers_and_the_primary_with_the_token():
    needs_scalerd()
    a, b = backend("push-a"), backend("push-b")
    redis = Redis()
    bal = Balancer([a.url], FAST, token="pushtok", redis_url=redis.url())
    harness = [os.path.join(builddir(), "tests", "balancer", "bal-harness")]
    so = os.path.join(plugin_dir(), "balancer_builtin.so")
    admin = "127.0.0.1:%d" % bal.admin_port

    def push(args, token):
        import subprocess
        env = dict(os.environ)
        env.pop("SCALER_TOKEN", None)
        if token:
            env["SCALER_TOKEN"] = token
        return subprocess.run(harness + args, capture_output=True, text=True, timeout=20, env=env)

    r = push(["--push-servers", so, admin, "+" + b.url, "-" + a.url], "pushtok")
    check_eq(r.returncode, 0, "push_servers exit status (stderr %r)" % r.stderr)
    wait_until(lambda: bal.servers() == [b.url], 3, "b alone to be alive after the push")
    r = push(["--push-servers", so, admin, "+http://127.0.0.1:1"], "wrong")
    check(r.returncode != 0 and "401" in r.stderr, "a wrong token fails with 401: %r" % r.stderr)
    set_leader(redis, "http://127.0.0.1:7100", 3)
    r = push(["--push-monitor", so, admin, "http://127.0.0.1:7100", "3"], "pushtok")
    check_eq(r.returncode, 0, "push_monitor exit status (stderr %r)" % r.stderr)
    check_eq(bal.admin_get("/monitor")[1], {"url": "http://127.0.0.1:7100", "epoch": 3}, "monitor")
    r = push(["--push-monitor", so, admin, "http://127.0.0.1:7101", "2"], "pushtok")
    check(r.returncode != 0 and "409" in r.stderr, "a stale epoch fails with 409: %r" % r.stderr)


@test
def put_monitor_is_taken_only_when_the_state_store_confirms_the_epoch():
    needs_scalerd()
    redis = Redis()
    set_leader(redis, "http://127.0.0.1:7007", 7)
    bal = Balancer([], token="tok", redis_url=redis.url())
    wait_until(lambda: bal.admin_get("/monitor")[1] == {"url": "http://127.0.0.1:7007", "epoch": 7},
               5, "the primary restored from the state store")
    set_leader(redis, "http://127.0.0.1:7008", 8)
    real = {"url": "http://127.0.0.1:7008", "epoch": 8}
    check_eq(bal.admin_put("/monitor", real)[0], 200, "the new primary's push, confirmed")
    cases = [
        ({"url": "http://127.0.0.1:6666"}, 400, "no epoch"),
        ({"url": "http://127.0.0.1:6666", "epoch": 0}, 400, "epoch 0"),
        ({"url": "http://127.0.0.1:6666", "epoch": 2 ** 63 - 1}, 409, "epoch 2^63-1"),
        ({"url": "http://127.0.0.1:6666", "epoch": 9}, 409, "the next epoch, not yet taken"),
        ({"url": "http://127.0.0.1:6666", "epoch": 8}, 409, "the current epoch with another URL"),
        ({"url": "http://127.0.0.1:7007", "epoch": 7}, 409, "the previous primary"),
    ]
    for body, status, what in cases:
        st, reply = bal.admin_put("/monitor", body)
        check_eq(st, status, what)
        check(isinstance(reply, dict) and reply.get("error"), "%s: says why: %r" % (what, reply))
        check_eq(bal.admin_get("/monitor")[1], real, "GET /monitor after %s" % what)
    check_eq(bal.admin_put("/monitor", real)[0], 200, "the real primary still pushes")
    redis.stop()
    st, reply = bal.admin_put("/monitor", {"url": "http://127.0.0.1:7009", "epoch": 9})
    check_eq(st, 503, "a new primary while the state store is down: %r" % reply)
    check_eq(bal.admin_get("/monitor")[1], real, "GET /monitor with the state store down")
    check_eq(bal.admin_put("/monitor", real)[0], 200, "the known primary repeating itself")


@test
def metrics_are_prometheus_text():
    a, b, bal = two()
    keepalive_exchange(bal.port, [get(bal.port, "/")] * 3)
    _, text = bal.admin_get("/metrics")
    for name in ("scaler_balancer_responses_total", "scaler_balancer_retries_total",
                 "scaler_balancer_upstream_connect_errors_total", "scaler_balancer_servers",
                 "scaler_balancer_client_connections"):
        check("# TYPE %s " % name in text, "%s in /metrics" % name)
    check(bal.metric('scaler_balancer_responses_total{zone="zone1",code="2xx"}') >= 3,
          "2xx responses counted")
    check_eq(bal.metric('scaler_balancer_servers{zone="zone1",pool="alive"}'), 2.0,
             "alive pool size")


@test
def without_a_token_the_admin_api_refuses_a_non_loopback_address():
    bal = Balancer([], admin_host="0.0.0.0", expect_fail=True)
    rc = bal.proc.wait(10)
    check(rc != 0, "the worker exits non-zero (rc %r)" % rc)
    check("loopback" in bal.proc.output(), "it says why: %s" % bal.proc.output())


if __name__ == "__main__":
    main()
