"""TLS termination in the zone's balancer, with certificates the test makes
with the openssl CLI: SNI picks the certificate, TLS 1.0 and 1.1 are
refused, a key that does not match (or that others may read) is refused by
scalerd -t, certificates are read again on SIGHUP with a connection open
across it, session tickets resume on every worker of a zone and across a
reload, OCSP stapling, the HTTP->HTTPS redirect listener, X-Forwarded-Proto,
WebSocket and the smuggling cases over TLS."""
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import (SMUGGLING, Balancer, Certs, Zone, backend, backend_requests,  # noqa
                     parse_responses, refused_settings, tls_client, tls_context,
                     tls_exchange)

_shared = {}


def site():
    """A CA, certificates for a.test (and *.a.test) and b.test, a backend and
    a balancer with both certificates, a.test the default."""
    if not _shared:
        c = Certs()
        _shared["certs"] = c
        _shared["a"], _shared["b"] = c.issue("a", ["a.test", "*.a.test"]), c.issue("b", ["b.test"])
        _shared["be"] = backend("tls-be")
        _shared["bal"] = Balancer([_shared["be"].url], {
            "tls": {"certificates": [_shared["a"], _shared["b"]]}})
    return _shared["certs"], _shared["be"], _shared["bal"]


def get(path="/", extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + \
        b"\r\n"


def peer_cn(port, name, ca):
    s = tls_client(port, name, ca)
    try:
        return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    finally:
        s.close()


def s_client(port, *args, data=b"", timeout=10):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input=data, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("latin-1")


@test
def sni_picks_the_certificate_asked_for_and_the_first_one_is_the_default():
    certs, be, bal = site()
    check_eq(peer_cn(bal.port, "a.test", certs.ca), "a.test", "certificate for a.test")
    check_eq(peer_cn(bal.port, "b.test", certs.ca), "b.test", "certificate for b.test")
    check_eq(peer_cn(bal.port, "www.a.test", certs.ca), "a.test", "a wildcard name")
    check_eq(peer_cn(bal.port, "B.TEST", certs.ca), "b.test", "names compare without case")
    ctx = ssl.create_default_context(cafile=certs.ca)
    ctx.check_hostname = False
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", bal.port), timeout=5))
    check_eq(dict(x[0] for x in s.getpeercert()["subject"])["commonName"], "a.test",
             "no SNI: the first certificate")
    s.close()
    out = tls_exchange(bal.port, get("/"), "b.test", certs.ca)
    check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"tls-be\n"),
          "a request over TLS reaches the server: %r" % out[:80])


@test
def tls_1_0_and_1_1_are_refused_and_1_2_and_1_3_are_spoken():
    certs, be, bal = site()
    for flag in ("-tls1", "-tls1_1"):
        rc, out = s_client(bal.port, flag, "-cipher", "DEFAULT@SECLEVEL=0", "-servername",
                           "a.test")
        check("no protocols available" not in out, "the client could offer %s: %s" % (flag, out))
        check(rc != 0 and "alert protocol version" in out,
              "%s refused with a protocol_version alert: %s" % (flag, out[-400:]))
    for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        rc, out = s_client(bal.port, flag, "-servername", "a.test", "-CAfile", certs.ca,
                           "-ign_eof",
                           data=b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        check("Protocol  : " + version in out or "Protocol: " + version in out or
              "New, " + version in out, "%s spoken: %s" % (version, out[-600:]))
        check("HTTP/1.1 200" in out, "%s answered: %s" % (version, out[-300:]))


@test
def the_server_sees_https_and_the_access_log_the_tls_version():
    certs = Certs()
    a = certs.issue("a", ["a.test"])
    be = backend("proto-be")
    log_path = os.path.join(tmpdir(), "tls-access.log")
    bal = Balancer([be.url], {"tls": {"certificates": [a]},
                              "access_log": {"path": log_path, "flush": 0.1}})
    out = tls_exchange(bal.port, get("/echo", b"X-Forwarded-Proto: http\r\n"), "a.test", certs.ca)
    seen = json.loads(parse_responses(out)[0][2])
    hdr = {k.lower(): v for k, v in seen["headers"]}
    check_eq(hdr.get("x-forwarded-proto"), "https", "X-Forwarded-Proto (the client's replaced)")
    check_eq(hdr.get("forwarded"), "for=127.0.0.1;proto=https", "Forwarded")
    wait_until(lambda: os.path.exists(log_path) and os.path.getsize(log_path) > 0, 5,
               "the access log line")
    with open(log_path) as f:
        e = json.loads(f.readline())
    check_eq((e["tls"], e["status"], e["path"]), ("TLSv1.3", 200, "/echo"), "the access log line")


@test
def a_websocket_tunnel_works_over_tls():
    certs, be, bal = site()
    s = tls_client(bal.port, "a.test", certs.ca)
    key = base64.b64encode(b"0123456789abcdef").decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    check(head.startswith(b"HTTP/1.1 101"), "switched protocols: %r" % head)
    for msg in (b"hello", b"x" * 5000):
        mask = b"\x01\x02\x03\x04"
        n = len(msg)
        hdr = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) +
                               n.to_bytes(2, "big"))
        s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
        want = 2 + (2 if n >= 126 else 0) + n
        got = head.split(b"\r\n\r\n", 1)[1]
        head = b"\r\n\r\n"
        while len(got) < want:
            got += s.recv(65536)
        check_eq(got[-n:], msg, "a %d-byte frame echoed through the TLS tunnel" % n)
    s.close()


@test
def smuggling_attempts_over_tls_are_refused_and_reach_no_server():
    certs, be, bal = site()
    before = backend_requests(be)
    for data, what in SMUGGLING:
        res = parse_responses(tls_exchange(bal.port, data, "a.test", certs.ca))
        check(res and res[0][0] == 400, "%s over TLS: 400, got %r" % (what, res[:1]))
        check_eq(len(res), 1, "%s over TLS: responses before the close" % what)
    check_eq(backend_requests(be), before, "requests that reached the server")


@test
def a_plain_request_or_a_stalled_handshake_on_the_tls_port_costs_nothing():
    certs = Certs()
    a = certs.issue("a", ["a.test"])
    be = backend("stall-be")
    bal = Balancer([be.url], {"tls": {"certificates": [a]}, "client_timeout": 0.5})
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    try:
        got = s.recv(4096)
    except ConnectionResetError:
        got = b""
    check(got[:4] != b"HTTP", "plain HTTP on the TLS port gets no HTTP answer: %r" % got[:40])
    s.close()
    idle = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    t0 = time.monotonic()
    check_eq(idle.recv(10), b"", "a client that never says hello is closed")
    check(time.monotonic() - t0 < 3, "within client_timeout, not idle_timeout (%.1f s)"
          % (time.monotonic() - t0))
    out = tls_exchange(bal.port, get("/"), "a.test", certs.ca)
    check(out.startswith(b"HTTP/1.1 200"), "the balancer still serves: %r" % out[:40])


@test
def scalerd_t_refuses_a_key_that_does_not_match_or_that_others_may_read():
    certs = Certs()
    a, b = certs.issue("a", ["a.test"]), certs.issue("b", ["b.test"])
    readable = certs.path("readable.key")
    with open(b["key"], "rb") as f, open(readable, "wb") as out:
        out.write(f.read())
    os.chmod(readable, 0o644)
    cases = (({"cert": a["cert"], "key": b["key"]}, "does not match"),
             ({"cert": b["cert"], "key": readable}, "readable.key"),
             ({"cert": certs.path("none.pem"), "key": a["key"]}, "No such file"),
             ({"cert": a["cert"], "key": a["key"], "ocsp": a["cert"]}, "not a successful OCSP"))
    if os.geteuid() == 0:
        # the secrets rule: a root-owned key only the daemon's group may read besides root
        other = certs.path("other-group.key")
        with open(a["key"], "rb") as f, open(other, "wb") as out:
            out.write(f.read())
        os.chown(other, 0, 54321)
        os.chmod(other, 0o640)
        cases += (({"cert": a["cert"], "key": other}, "read by group 54321"),)
    for entry, words in cases:
        path = write_file("tls-t-%d.conf" % free_port(), """
node = { id = 1; admin = "127.0.0.1:%d"; };
plugin_dir = "%s";
balancer = { plugin = "builtin";
  tls = { certificates = ( { %s } ); };
};
zones = ( { name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 1; } );
""" % (free_port(), plugin_dir(), " ".join('%s = "%s";' % kv for kv in entry.items()), free_port(),
            free_port()))
        r = subprocess.run([binary("scalerd"), "-t", "-c", path], capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode()
        check(r.returncode != 0, "scalerd -t refuses %r: %s" % (entry, out))
        check(words in out and os.path.basename(path) + ":" in out,
              "the error names %r and FILE:LINE: %s" % (words, out))
    # in a zone's own balancer group too
    path = write_file("tls-zone-%d.conf" % free_port(), """
node = { id = 1; admin = "127.0.0.1:%d"; };
plugin_dir = "%s";
zones = ( { name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 1;
            balancer = { tls = { certificates = ( { cert = "%s"; key = "%s"; } ); }; }; } );
""" % (free_port(), plugin_dir(), free_port(), free_port(), a["cert"], b["key"]))
    r = subprocess.run([binary("scalerd"), "-t", "-c", path], capture_output=True, timeout=30)
    check(r.returncode != 0 and "does not match" in (r.stdout + r.stderr).decode(),
          "a zone's own tls group is checked by scalerd -t: %s" % r.stderr.decode())
    # the same with the right key is valid: the daemon's own, or root's that the
    # daemon's group may read
    keys = [a["key"]]
    if os.geteuid() == 0:
        shared = certs.path("daemon-group.key")
        with open(a["key"], "rb") as f, open(shared, "wb") as out:
            out.write(f.read())
        os.chown(shared, 0, os.getegid())
        os.chmod(shared, 0o640)
        keys.append(shared)
    for key in keys:
        path = write_file("tls-ok-%d.conf" % free_port(), """
node = { id = 1; admin = "127.0.0.1:%d"; };
plugin_dir = "%s";
balancer = { plugin = "builtin"; tls = { certificates = ( { cert = "%s"; key = "%s"; } ); }; };
zones = ( { name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 1; } );
""" % (free_port(), plugin_dir(), a["cert"], key, free_port(), free_port()))
        r = subprocess.run([binary("scalerd"), "-t", "-c", path], capture_output=True, timeout=30)
        check_eq(r.returncode, 0, "scalerd -t with a matching key, mode %o (%s)"
                 % (os.stat(key).st_mode & 0o777, r.stderr.decode()))


def serial_of(port, name, ca):
    s = tls_client(port, name, ca)
    try:
        return s.getpeercert()["serialNumber"]
    finally:
        s.close()


@test
def certificates_are_read_again_on_sighup_and_an_open_connection_carries_on():
    certs = Certs()
    a = certs.issue("a", ["a.test"], serial=1001)
    be = backend("hup-be")
    z = Zone([be.url], {"tls": {"certificates": [a]}})
    wait_until(lambda: serial_of(z.listen, "a.test", certs.ca) == "03E9", 10, "serial 1001")
    keep = tls_client(z.listen, "a.test", certs.ca)
    keep.sendall(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n")
    check(keep.recv(4096).startswith(b"HTTP/1.1 200"), "a keep-alive connection before")
    # the files change in place, as certbot or an operator changes them
    fresh = certs.issue("a2", ["a.test"], serial=1002)
    for k in ("cert", "key"):
        os.rename(fresh[k], a[k])
    z.proc.signal(signal.SIGHUP)
    wait_until(lambda: serial_of(z.listen, "a.test", certs.ca) == "03EA", 10,
               "new connections get the new certificate (serial 1002)")
    keep.sendall(b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
    check(keep.recv(4096).startswith(b"HTTP/1.1 200"), "the connection opened before the reload "
          "still answers")
    keep.close()
    # a broken file is refused and the certificate in use stays
    with open(a["key"], "w") as f:
        f.write("not a key\n")
    z.proc.signal(signal.SIGHUP)
    wait_until(lambda: "not reloaded" in z.proc.output() or "reload refused" in z.proc.output(),
               10, "the bad key refused")
    check_eq(serial_of(z.listen, "a.test", certs.ca), "03EA", "the certificate in use stays")
    z.stop()


@test
def session_tickets_resume_on_every_worker_of_a_zone_and_across_a_reload():
    certs = Certs()
    a = certs.issue("a", ["a.test"])
    be = backend("tix-be")
    z = Zone([be.url], {"tls": {"certificates": [a]}}, workers=2)
    wait_until(lambda: len(z.worker_pids()) == 2, 10, "two workers")
    ctx = tls_context(certs.ca)

    def visit(session=None):
        s = tls_client(z.listen, "a.test", certs.ca, session=session, ctx=ctx)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        s.recv(4096)  # TLS 1.3 tickets come after the handshake: read past them
        out = (s.session, s.session_reused)
        s.close()
        return out
    sess, reused = visit()
    check(not reused and sess is not None, "a first full handshake gives a session")
    resumed = [visit(sess)[1] for _ in range(10)]
    check_eq(resumed, [True] * 10, "resumed on whichever worker accepted")
    before = z.worker_pids()
    z.write({"tls": {"certificates": [a]}, "health_interval": 9.0})
    z.proc.signal(signal.SIGHUP)
    wait_until(lambda: z.worker_pids() and not set(z.worker_pids()) & set(before), 15,
               "the workers replaced by the reload")
    check_eq([visit(sess)[1] for _ in range(4)], [True] * 4,
             "resumed with the same ticket by the new workers")
    z.stop()


@test
def a_tls13_resumption_gets_a_fresh_ticket_so_tickets_used_once_keep_resuming():
    # Clients use a TLS 1.3 ticket once (RFC 8446 C.4): without a new one
    # after each resumption, every other connection was a full handshake.
    certs, _, bal = site()
    ctx = tls_context(certs.ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    offered, got = None, []
    for _ in range(5):
        s = tls_client(bal.port, "a.test", certs.ca, session=offered, ctx=ctx)
        s.sendall(get())
        while s.recv(65536):  # read to the close, past any ticket
            pass
        got.append((s.session_reused, offered is not None and s.session == offered))
        offered = s.session
        s.close()
    check_eq(got, [(False, False)] + [(True, False)] * 4,
             "(resumed, left holding the ticket it offered) for each connection, each "
             "offering the session the one before ended with")


@test
def an_ocsp_response_is_stapled():
    certs = Certs()
    a = certs.issue("a", ["a.test"])
    a["ocsp"] = certs.ocsp("a")
    be = backend("ocsp-be")
    bal = Balancer([be.url], {"tls": {"certificates": [a]}})
    rc, out = s_client(bal.port, "-status", "-servername", "a.test", "-CAfile", certs.ca,
                       data=b"")
    check("OCSP Response Status: successful" in out, "the response stapled: %s" % out[-800:])
    check("Cert Status: good" in out, "it says good: %s" % out[-800:])


@test
def the_redirect_listener_sends_http_to_https():
    certs = Certs()
    a = certs.issue("a", ["a.test"])
    be = backend("redir-be")
    rport = free_port()
    bal = Balancer([be.url], {"tls": {"certificates": [a], "redirect": "127.0.0.1:%d" % rport}})
    wait_until(lambda: raw_http(rport, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close"
                                       b"\r\n\r\n").startswith(b"HTTP/1.1 308"), 5,
               "the redirect listener")
    res = parse_responses(raw_http(rport, b"GET /x/y%20z?q=1&r=%22 HTTP/1.1\r\nHost: a.test:80\r\n"
                                          b"Connection: close\r\n\r\n"))
    check_eq(res[0][0], 308, "status")
    check_eq(res[0][1]["location"], ["https://a.test:%d/x/y%%20z?q=1&r=%%22" % bal.port],
             "Location")
    res = parse_responses(raw_http(rport, b"GET / HTTP/1.1\r\nHost: evil\r\n\"\r\n"
                                          b"Connection: close\r\n\r\n"))
    check(res[0][0] in (400,), "a bad request gets 400: %r" % (res[0][:2],))
    res = parse_responses(raw_http(rport, b"GET / HTTP/1.1\r\nHost: a<b\r\nConnection: close\r\n\r\n"))
    check_eq(res[0][0], 400, "a Host that is no name gets 400")
    check_eq(backend_requests(be), 0, "nothing reaches the server")


@test
def tls_settings_are_checked_with_file_line_and_setting():
    certs = Certs()
    a = certs.issue("a", ["a.test"])
    for bad, words in (({"certificates": []}, ["certificates"]),
                       ({"certificates": [a], "min_version": "1.1"}, ["min_version", "1.2"]),
                       ({"certificates": [a], "ciphers": "NOPE-CIPHER"}, ["ciphers"]),
                       ({"certificates": [dict(a, key="relative.key")]}, ["key", "absolute"]),
                       ({"certificates": [a], "redirect": "nowhere"}, ["redirect"]),
                       ({"certificates": [a], "redirect_status": 303}, ["redirect_status"])):
        refused_settings({"tls": bad}, words)


if __name__ == "__main__":
    main()
