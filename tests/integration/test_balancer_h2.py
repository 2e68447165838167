"""HTTP/2 to clients (ALPN h2 on the zone's TLS listener), HTTP/1.1 to the
servers: curl --http2 and h2load get their answers, bodies both ways
(content-length, chunked, large), the stream and header list limits,
frames RFC 9113 §8 forbids are refused by stream or connection and reach
no server, a request never turns into two upstream, and a flood of
opened-and-reset streams (CVE-2023-44487) is cut off without reaching the
servers."""
import hashlib
import json
import os
import subprocess
import sys
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import (H2_ACK, H2_DATA, H2_END_HEADERS, H2_END_STREAM,  # noqa
                     H2_GOAWAY, H2_HEADERS, H2_PROTOCOL_ERROR, H2_RST, H2_SETTINGS, Balancer,
                     Certs, H2Raw, backend, backend_requests,
                     h2_frame, h2_goaway, h2_request_headers, h2_stream_end, hpack)

_shared = {}


def site():
    if not _shared:
        c = Certs()
        _shared["certs"], _shared["a"] = c, c.issue("a", ["a.test"])
        _shared["be"] = backend("h2-be")
        _shared["log"] = os.path.join(tmpdir(), "h2-access.log")
        _shared["bal"] = Balancer([_shared["be"].url], {
            "tls": {"certificates": [_shared["a"]], "http2_max_streams": 50},
            "max_header_size": 8192,
            "access_log": {"path": _shared["log"], "flush": 0.1}})
    return _shared["certs"], _shared["be"], _shared["bal"]


def curl(bal, certs, path, *args, timeout=30):
    """curl --http2 https://a.test:PORT/path: (status, http version, body)."""
    r = subprocess.run(["curl", "-sS", "--http2", "--cacert", certs.ca, "--resolve",
                        "a.test:%d:127.0.0.1" % bal.port, "-o", "-", "-w",
                        "\n%{http_code} %{http_version}"] + list(args) +
                       ["https://a.test:%d%s" % (bal.port, path)], capture_output=True,
                       timeout=timeout)
    check_eq(r.returncode, 0, "curl %s %s: %s" % (path, args, r.stderr.decode()))
    body, _, tail = r.stdout.rpartition(b"\n")
    code, version = tail.decode().split()
    return int(code), version, body


@test
def curl_over_http2_gets_its_answers_and_the_server_sees_http_1_1():
    certs, be, bal = site()
    code, version, body = curl(bal, certs, "/echo?q=1", "-H", "X-Test: yes", "-b", "a=1",
                               "-b", "b=2")
    check_eq((code, version), (200, "2"), "status and protocol")
    seen = json.loads(body)
    hdr = {k.lower(): v for k, v in seen["headers"]}
    check_eq((seen["method"], seen["path"], seen["version"]), ("GET", "/echo?q=1", "HTTP/1.1"),
             "what the server got")
    check_eq(hdr.get("host"), "a.test:%d" % bal.port, "Host from :authority")
    check_eq(hdr.get("x-test"), "yes", "a field")
    check_eq(hdr.get("x-forwarded-proto"), "https", "X-Forwarded-Proto")
    check("a=1" in hdr.get("cookie", "") and "b=2" in hdr.get("cookie", ""),
          "cookies in one field: %r" % hdr.get("cookie"))
    code, _, body = curl(bal, certs, "/chunked")
    check_eq((code, body), (200, b"".join(b"part %d of h2-be;" % i for i in range(5))),
             "a chunked response, its data only")


@test
def request_and_response_bodies_cross_intact_both_ways():
    certs, be, bal = site()
    data = bytes(range(256)) * 1000  # 256 KB: several windows
    path = os.path.join(tmpdir(), "upload.bin")
    with open(path, "wb") as f:
        f.write(data)
    code, _, body = curl(bal, certs, "/echo", "--data-binary", "@" + path)
    seen = json.loads(body)
    check_eq((code, seen["body_len"], seen["sha1"]), (200, len(data), hashlib.sha1(data).hexdigest()),
             "a POST with content-length")
    # from a pipe: no content-length, so it goes chunked to the server
    r = subprocess.run(["curl", "-sS", "--http2", "--cacert", certs.ca, "--resolve",
                        "a.test:%d:127.0.0.1" % bal.port, "-T", "-", "-X", "POST",
                        "https://a.test:%d/echo" % bal.port], input=data, capture_output=True,
                       timeout=30)
    seen = json.loads(r.stdout)
    check_eq((seen["body_len"], seen["sha1"]), (len(data), hashlib.sha1(data).hexdigest()),
             "a POST without content-length")
    check("chunked" in json.dumps(seen["headers"]).lower(), "sent chunked upstream")
    for q in ("n=3000000", "n=3000000&chunked"):
        code, _, body = curl(bal, certs, "/big?" + q)
        check_eq((code, len(body)), (200, 3000000), "a 3 MB response (%s)" % q)
        pattern = b"0123456789abcdef" * 4096
        check(body == (pattern * 50)[:3000000], "its bytes (%s)" % q)


@test
def h2load_runs_many_streams_on_a_few_connections():
    certs, be, bal = site()
    r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "20",
                        "https://127.0.0.1:%d/" % bal.port], capture_output=True, timeout=120)
    out = r.stdout.decode()
    check("2000 succeeded, 0 failed, 0 errored" in out, "h2load: %s" % out[-600:])
    check("Application protocol: h2" in out, "spoken over h2: %s" % out[-600:])


@test
def the_access_log_says_http_2():
    certs, be, bal = site()
    curl(bal, certs, "/logged-h2")
    path = _shared["log"]

    def line():
        if not os.path.exists(path):
            return None
        with open(path) as f:
            for l in f:
                e = json.loads(l)
                if e["path"] == "/logged-h2":
                    return e
        return None
    wait_until(line, 5, "the access log line")
    e = line()
    check_eq((e["protocol"], e["status"], e["tls"], e["method"]), ("HTTP/2", 200, "TLSv1.3", "GET"),
             "the line")


def server_settings(frames):
    """The server's first SETTINGS, as {identifier: value}."""
    for f in frames:
        if f[0] == H2_SETTINGS and not f[1] & H2_ACK:
            p = f[3]
            return {int.from_bytes(p[i:i + 2], "big"): int.from_bytes(p[i + 2:i + 6], "big")
                    for i in range(0, len(p) - 5, 6)}
    return None


@test
def streams_past_http2_max_streams_are_refused():
    certs, be, bal = site()
    h = H2Raw(bal.port, certs.ca)
    # its SETTINGS (which H2Raw acknowledges) say the limits it holds clients to
    got = h.frames(lambda fs: server_settings(fs) is not None)
    settings = server_settings(got)
    check(settings is not None, "the server's SETTINGS: %r" % got)
    check_eq((settings.get(3), settings.get(6)), (50, 8192),
             "SETTINGS_MAX_CONCURRENT_STREAMS (http2_max_streams) and "
             "SETTINGS_MAX_HEADER_LIST_SIZE (max_header_size)")
    def open_streams(first, n, wait):
        block = hpack(h2_request_headers("/slow?s=%d" % wait))
        h.send(b"".join(h2_frame(H2_HEADERS, H2_END_HEADERS | H2_END_STREAM, first + 2 * i,
                                 block) for i in range(n)))

    def ended(fs, ids):
        return all(h2_stream_end(fs, i) for i in ids) or (fs and fs[-1][0] == "closed")
    # up to the limit, at once: every stream answered
    before = backend_requests(be)
    open_streams(1, 50, 1)
    got = h.frames(lambda fs: ended(fs, range(1, 101, 2)), timeout=20)
    check_eq([h2_stream_end(got, i) for i in range(1, 101, 2)], [("end", None)] * 50,
             "50 streams at once (http2_max_streams = 50) answered")
    check_eq(backend_requests(be) - before, 50, "requests that reached the server")
    # one past it while 50 are open: refused, and it reaches no server
    before = backend_requests(be)
    # (the 50 stay open while their server waits 5 s; the 51st comes after them on the
    # connection, so it finds them open)
    open_streams(101, 50, 5)
    open_streams(201, 1, 5)
    got = h.frames(lambda fs: ended(fs, range(101, 203, 2)) or h2_goaway(fs) is not None,
                   timeout=20)
    h.close()
    end = h2_stream_end(got, 201)
    goaway = [f for f in got if f[0] == H2_GOAWAY]
    # RFC 9113 5.1.2: a stream error PROTOCOL_ERROR or REFUSED_STREAM; nghttp2 makes it a
    # connection error once the limit was acknowledged (GOAWAY, the stream not processed)
    refused = end in (("rst", 7), ("rst", 1)) or (
        goaway and int.from_bytes(goaway[0][3][:4], "big") < 201 and
        h2_goaway(got) == H2_PROTOCOL_ERROR)
    check(refused, "the 51st stream refused (RST_STREAM, or GOAWAY below it), got %r / %r"
          % (end, [(f[0], f[3][:8]) for f in goaway]))
    check(backend_requests(be) - before <= 50, "the 51st stream reached no server (%d requests)"
          % (backend_requests(be) - before))
    code, _, _ = curl(bal, certs, "/after-limit")
    check_eq(code, 200, "the balancer still serves others")


@test
def a_header_list_past_max_header_size_gets_431():
    certs, be, bal = site()
    before = backend_requests(be)
    code, _, _ = curl(bal, certs, "/", "-H", "X-Big: " + "b" * 9000)
    check_eq(code, 431, "status for 9 KB of fields (max_header_size = 8192)")
    check_eq(backend_requests(be), before, "requests that reached the server")


def raw_exchange(bal, certs, headers, body=None, end_headers=True):
    h = H2Raw(bal.port, certs.ca)
    flags = H2_END_HEADERS if end_headers else 0
    if body is None:
        flags |= H2_END_STREAM
    frames = h2_frame(H2_HEADERS, flags, 1, hpack(headers))
    if body is not None:
        frames += h2_frame(H2_DATA, H2_END_STREAM, 1, body)
    h.send(frames)
    got = h.frames(lambda fs: h2_stream_end(fs, 1) or (fs and fs[-1][0] == "closed") or
                   h2_goaway(fs) is not None)
    h.close()
    return got


@test
def frames_rfc_9113_forbids_are_refused_and_reach_no_server():
    certs, be, bal = site()
    before = backend_requests(be)
    bad = [
        (h2_request_headers(extra=[("connection", "keep-alive")]), None, "a Connection field"),
        (h2_request_headers(extra=[("transfer-encoding", "chunked")]), b"0\r\n\r\n",
         "Transfer-Encoding"),
        (h2_request_headers(extra=[("X-Upper", "1")]), None, "an uppercase name"),
        (h2_request_headers(extra=[("x-bad", "a\r\nGET /smuggled HTTP/1.1")]), None,
         "CR LF in a value"),
        (h2_request_headers(extra=[("x-nul", "a\x00b")]), None, "NUL in a value"),
        (h2_request_headers(method="POST", extra=[("content-length", "5")]), b"abc",
         "DATA shorter than content-length"),
        (h2_request_headers(method="POST", extra=[("content-length", "3")]), b"abcdef",
         "DATA longer than content-length"),
        ([(":method", "GET"), (":path", "/")], None, "no :scheme"),
        ([(":path", "/"), (":method", "GET"), ("x-a", "1"), (":scheme", "https")], None,
         "a pseudo-header after a field"),
        (h2_request_headers(extra=[("upgrade", "websocket")]), None, "Upgrade"),
        (h2_request_headers(method="CONNECT"), None, "CONNECT"),
        (h2_request_headers(path="/a b"), None, "a space in :path"),
        (h2_request_headers(extra=[("host", "other.test")]), None, "Host not :authority"),
    ]
    for headers, body, what in bad:
        before = backend_requests(be)
        got = raw_exchange(bal, certs, headers, body)
        end = h2_stream_end(got, 1)
        refused = (end and end[0] == "rst") or h2_goaway(got) is not None or \
            (got and got[-1][0] == "closed")
        if end and end[0] == "end":
            # answered: with a 4xx/5xx the proxy gave itself (no server saw it)
            refused = True
        check(refused, "%s: refused (got %r)" % (what, [f[:3] for f in got]))
        check_eq(backend_requests(be), before, "%s: requests that reached the server" % what)


@test
def one_stream_is_one_request_upstream_never_two():
    certs, be, bal = site()
    before = backend_requests(be)
    smuggle = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    # a body that looks like the end of a chunked body and a second request
    got = raw_exchange(bal, certs, h2_request_headers("/echo", "POST"), smuggle)
    check_eq(h2_stream_end(got, 1), ("end", None), "the POST answered")
    got = raw_exchange(bal, certs, h2_request_headers(
        "/echo", "POST", extra=[("content-length", str(len(smuggle)))]), smuggle)
    check_eq(h2_stream_end(got, 1), ("end", None), "the POST with content-length answered")
    check_eq(backend_requests(be) - before, 2, "requests the server got for two streams")


@test
def a_flood_of_streams_opened_and_reset_is_cut_off_before_it_reaches_the_servers():
    certs, be, bal = site()
    before = backend_requests(be)
    h = H2Raw(bal.port, certs.ca)
    block = hpack(h2_request_headers("/flood"))
    sent = 0
    goaway = None
    # CVE-2023-44487: open and reset, again and again, in big batches
    for batch in range(50):
        data = b""
        for i in range(100):
            sid = 1 + 2 * sent
            data += h2_frame(H2_HEADERS, H2_END_HEADERS | H2_END_STREAM, sid, block)
            data += h2_frame(H2_RST, 0, sid, (8).to_bytes(4, "big"))  # CANCEL
            sent += 1
        try:
            h.send(data)
        except OSError:
            break
        got = h.frames(lambda fs: False, timeout=0.05)
        goaway = h2_goaway(got) if goaway is None else goaway
        if goaway is not None or (got and got[-1][0] == "closed"):
            break
    if goaway is None:
        goaway = h2_goaway(h.frames(lambda fs: h2_goaway(fs) is not None, timeout=3))
    h.close()
    log("streams opened and reset before the balancer cut the connection: %d" % sent)
    check(goaway is not None, "the connection is cut with GOAWAY")
    check(sent < 5000, "the connection was cut before the 5,000 streams (%d sent)" % sent)
    reached = backend_requests(be) - before
    check(reached <= 10, "streams reset in the batch that opened them reach no server (%d did)"
          % reached)
    code, _, _ = curl(bal, certs, "/after")
    check_eq(code, 200, "the balancer still serves others")


if __name__ == "__main__":
    main()
