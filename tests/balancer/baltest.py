"""Helpers of the balancer's integration tests: backends, a balancer worker
(`scalerd --balancer` when the build has it, else bal-harness), a fake
primary that records dead reports."""
import http.server
import json
import os
import socket
import sys
import threading
import time

from scalertest import (binary, builddir, check, free_port, plugin_dir, raw_http, spawn, tmpdir,
                        srcdir, wait_until, write_file)

HERE = os.path.dirname(os.path.abspath(__file__))


def backend(name):
    port = free_port()
    p = spawn([sys.executable, os.path.join(HERE, "backend.py"), str(port), name], name=name)
    p.port = port
    p.url = "http://127.0.0.1:%d" % port
    wait_until(lambda: raw_http(port, b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
               .startswith(b"HTTP/1.1 200"), 5, "backend %s to answer" % name)
    return p


def tarpit(n):
    """n loopback ports whose connects hang (tarpit.py); returns (proc, ports)."""
    p = spawn([sys.executable, os.path.join(HERE, "tarpit.py"), str(n)], name="tarpit")
    wait_until(lambda: p.output().strip(), 10, "the tarpit's ports")
    return p, json.loads(p.output().splitlines()[0])


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def backend_requests(b):
    out = raw_http(b.port, b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return json.loads(out.split(b"\r\n\r\n", 1)[1])["requests"]


def scalerd_has_balancer():
    exe = binary("scalerd")
    if not os.access(exe, os.X_OK):
        return False
    import subprocess
    try:
        r = subprocess.run([exe, "--help"], capture_output=True, timeout=5)
    except Exception:
        return False
    return b"--balancer" in r.stdout + r.stderr


def _conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        # groups go in a list ( ), scalars in an array [ ]
        fmt = "( %s )" if any(isinstance(x, dict) for x in v) else "[%s]"
        return fmt % ", ".join(_conf_value(x) for x in v)
    if isinstance(v, dict):
        return "{ %s}" % "".join("%s = %s; " % (k, _conf_value(x)) for k, x in v.items())
    return repr(v)


class Balancer:
    """One zone's balancer worker on free loopback ports."""

    def __init__(self, servers=(), settings=None, token=None, admin_host="127.0.0.1",
                 expect_fail=False, redis_url=None, wrap=None):
        self.port, self.admin_port = free_port(), free_port()
        self.token = token
        settings = dict(settings or {})
        lines = "".join("  %s = %s;\n" % (k, _conf_value(v)) for k, v in settings.items())
        admin = "%s:%d" % (admin_host, self.admin_port)
        self.via = os.environ.get("SCALER_TEST_BALANCER_VIA") or (
            "scalerd" if scalerd_has_balancer() else "harness")
        env = {}
        if self.via == "scalerd":
            conf = write_file("bal-%d.conf" % self.port,
                              ('redis = "%s";\ncluster = "t";\n' % redis_url if redis_url else "") +
                              'node = { id = 1; admin = "127.0.0.1:%d";%s };\n'
                              'plugin_dir = "%s";\n'
                              'balancer = {\n  plugin = "builtin";\n%s};\n'
                              'zones = ( { name = "zone1"; listen = "127.0.0.1:%d"; '
                              'admin = "%s"; min = 0; max = 10; servers = [%s]; } );\n'
                              % (free_port(), ' token = "%s";' % token if token else "",
                                 plugin_dir(), lines, self.port, admin,
                                 ", ".join('"%s"' % s for s in servers)))
            argv = [binary("scalerd"), "--balancer", "zone1", "-c", conf]
        else:
            conf = write_file("bal-%d.conf" % self.port, "balancer = {\n%s};\n" % lines)
            argv = [os.path.join(builddir(), "tests", "balancer", "bal-harness"),
                    os.path.join(plugin_dir(), "balancer_builtin.so"), conf,
                    "127.0.0.1:%d" % self.port, admin] + list(servers)
            if token:
                env["SCALER_TOKEN"] = token
        wrap = (wrap or []) + (os.environ.get("SCALER_TEST_WRAP") or "").split()  # "valgrind -q"
        argv = wrap + argv
        self.proc = spawn(argv, env=env, name="balancer")
        if expect_fail:
            return
        wait_until(lambda: self.admin_get("/health_check")[0] == 200, 10,
                   "the balancer's admin API to answer (log: %s)" % self.proc.logpath)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def admin_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin_port, path)

    def _admin(self, method, path, body=None, token=None, raw=None):
        s = socket.create_connection(("127.0.0.1", self.admin_port), timeout=5)
        try:
            if raw is None:
                raw = json.dumps(body) if body is not None else ""
            if isinstance(raw, str):
                raw = raw.encode()
            hdr = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n" % (
                method, path, len(raw))
            tok = self.token if token is None else token
            if tok:
                hdr += "Authorization: Bearer %s\r\n" % tok
            if raw:
                hdr += "Content-Type: application/json\r\n"
            s.sendall(hdr.encode() + b"\r\n" + raw)
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        finally:
            s.close()
        head, _, data = out.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        try:
            return status, json.loads(data) if data.strip() else None
        except ValueError:
            return status, data.decode("latin-1")

    def admin_get(self, path):
        return self._admin("GET", path)

    def admin_put(self, path, body=None, token=None, raw=None):
        return self._admin("PUT", path, body, token, raw)

    def servers(self):
        return self.admin_get("/servers")[1]

    def states(self):
        return {s["url"]: s for s in self.admin_get("/servers?state=all")[1]}

    def metric(self, name):
        _, text = self.admin_get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total


def refused_settings(settings, words):
    """A balancer with these settings must not start, and its error must name
    each of words."""
    b = Balancer([], settings, expect_fail=True)
    check(b.proc.wait(10) != 0, "%r is refused" % settings)
    out = b.proc.output()
    for w in words:
        check(w in out, "the error for %r names %r: %s" % (settings, w, out))


class FakePrimary:
    """Records PUT /report (and POST /wake) calls; answers with `self.status`."""

    def __init__(self, status=200):
        self.status = status
        self.reports = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.reports.append({"method": self.command, "path": self.path,
                                      "auth": self.headers.get("Authorization"),
                                      "body": json.loads(body or b"null"),
                                      "answered": outer.status})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def request(port, data, timeout=3.0):
    """Raw bytes in; (list of responses as (status, headers, body), closed)."""
    return parse_responses(raw_http(port, data, timeout=timeout))


def parse_responses(buf):
    out = []
    while buf:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            out.append((None, {}, buf))
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs.setdefault(k.strip().lower().decode(), []).append(v.strip().decode("latin-1"))
        body = b""
        if "transfer-encoding" in hdrs:
            while True:
                line, _, rest = rest.partition(b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while True:
                        t, _, rest = rest.partition(b"\r\n")
                        if not t:
                            break
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"][0])
            body, rest = rest[:n], rest[n:]
        elif status in (101, 204, 304) or 100 <= status < 200:
            pass
        else:
            body, rest = rest, b""
        out.append((status, hdrs, body))
        buf = rest
    return out


def keepalive_exchange(port, reqs, timeout=3.0):
    """Send each request on one connection, reading its response before the
    next; returns the list of (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    res = []
    try:
        buf = b""
        for r in reqs:
            s.sendall(r)
            while True:
                if buf and _complete(buf):
                    res.append(parse_responses(buf)[0])
                    buf = b""
                    break
                d = s.recv(65536)
                if not d:
                    if buf:
                        res.append(parse_responses(buf)[0])
                    return res
                buf += d
    finally:
        s.close()
    return res


def _complete(buf):
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    h = head.lower()
    if b"transfer-encoding: chunked" in h:
        return rest.endswith(b"\r\n\r\n") and b"0\r\n" in rest
    for l in h.split(b"\r\n"):
        if l.startswith(b"content-length:"):
            return len(rest) >= int(l.split(b":")[1])
    return True


# ---- TLS -------------------------------------------------------------------

def openssl(*args, cwd=None):
    import subprocess
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr.decode()[-500:]))
    return r.stdout


class Certs:
    """A test CA and certificates it signs, made with the openssl CLI in a
    directory of their own; keys are 0600 (the secrets rule)."""

    def __init__(self, name="certs"):
        self.dir = os.path.join(tmpdir(), "%s-%d" % (name, free_port()))
        os.makedirs(self.dir)
        self.ca = os.path.join(self.dir, "ca.pem")
        self._key("ca.key", "ec")
        openssl("req", "-x509", "-key", "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
                "/CN=scaler test CA", cwd=self.dir)

    def _key(self, name, kind):
        if kind == "rsa":
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                    name, cwd=self.dir)
        else:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    name, cwd=self.dir)
        os.chmod(os.path.join(self.dir, name), 0o600)

    def issue(self, stem, names, kind="ec", serial=None):
        """stem.pem (the certificate, then the CA's) and stem.key for DNS names."""
        self._key(stem + ".key", kind)
        san = ",".join("DNS:" + n for n in names)
        openssl("req", "-new", "-key", stem + ".key", "-out", stem + ".csr", "-subj",
                "/CN=" + names[0], "-addext", "subjectAltName=" + san, cwd=self.dir)
        openssl("x509", "-req", "-in", stem + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-days", "2", "-out", stem + ".crt", "-copy_extensions", "copy",
                "-set_serial", str(serial or free_port()), cwd=self.dir)
        with open(os.path.join(self.dir, stem + ".pem"), "wb") as out:
            for part in (stem + ".crt", "ca.pem"):
                with open(os.path.join(self.dir, part), "rb") as f:
                    out.write(f.read())
        return {"cert": self.path(stem + ".pem"), "key": self.path(stem + ".key")}

    def path(self, name):
        return os.path.join(self.dir, name)

    def ocsp(self, stem):
        """An OCSP response (good) for stem's certificate, signed by the CA."""
        with open(self.path("index.txt"), "w") as f:
            serial = openssl("x509", "-in", stem + ".crt", "-noout", "-serial",
                             cwd=self.dir).decode().strip().split("=")[1]
            subj = openssl("x509", "-in", stem + ".crt", "-noout", "-subject", "-nameopt",
                           "compat", cwd=self.dir).decode().strip().split("=", 1)[1].strip()
            f.write("V\t301231235959Z\t\t%s\tunknown\t%s\n" % (serial, subj))
        openssl("ocsp", "-index", "index.txt", "-rsigner", "ca.pem", "-rkey", "ca.key", "-CA",
                "ca.pem", "-issuer", "ca.pem", "-cert", stem + ".crt", "-respout",
                stem + ".ocsp", "-ndays", "1", cwd=self.dir)
        return self.path(stem + ".ocsp")


def tls_context(ca, alpn=None):
    import ssl
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_client(port, server_hostname, ca, alpn=None, session=None, timeout=5.0, ctx=None):
    """A TLS connection to 127.0.0.1:port verified against ca for server_hostname
    (a session resumes only with the context that made it: pass ctx)."""
    ctx = ctx or tls_context(ca, alpn)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(s, server_hostname=server_hostname, session=session)


def tls_exchange(port, data, server_hostname, ca, timeout=5.0):
    """Send data over TLS, read to the close: the bytes received."""
    s = tls_client(port, server_hostname, ca, timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (ConnectionError, OSError):
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


# Requests a strict HTTP/1 parser refuses (400) and that must reach no server.
SMUGGLING = [
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n", "Content-Length with Transfer-Encoding"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
     "two different Content-Length"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd", "signed Content-Length"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-Bad: a\x01b\r\n\r\n", "control byte in a header value"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n  b\r\n\r\n", "obs-fold"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-Space : a\r\n\r\n", "space before the colon"),
    (b"GET / HTTP/1.1\nHost: t\n\n", "bare LF line ends"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding twice"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Host headers"),
    (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 without Host"),
    (b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", "space in the target"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "chunked in HTTP/1.0"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\nabc",
     "Content-Length declared hop-by-hop"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-Bad: caf\xc3\xa9\r\nBad\x00Name: x\r\n\r\n", "NUL in a header name"),
    (b"GET /x HTTP/1.1\rXKeep-Alive: 1\r\nHost: t\r\n\r\n", "a bare CR ending the request line"),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\rX-B: 2\r\n\r\n", "a bare CR starting a line"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 00\r\n\r\n",
     "Content-Length 0 and 00"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
     "the same Content-Length twice"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
     "a chunk size with a trailing space"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
     b"X-Trailer\r\n\r\n", "a trailer line without a colon"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
     "a tab after chunked"),
]


class Zone:
    """A whole scalerd (single election, its own Redis) with one zone "z1"
    whose balancer group holds `settings`, for what goes through scalerd:
    signals passed on, reloads, several workers."""

    def __init__(self, servers, settings, workers=1, name="scalerd"):
        from scalertest import Redis
        self.redis = Redis()
        self.port, self.listen, self.admin = free_port(), free_port(), free_port()
        self.servers, self.workers = servers, workers
        self.path = os.path.join(tmpdir(), "zone-%d.conf" % self.port)
        self.write(settings)
        self.proc = spawn([binary("scalerd"), "-c", self.path], name=name)
        wait_until(lambda: self.admin_get("/health_check").startswith(b"HTTP/1.1 200"), 15,
                   "zone z1's balancer admin API (log: %s)" % self.proc.logpath)

    def write(self, settings):
        lines = "".join("  %s = %s;\n" % (k, _conf_value(v)) for k, v in settings.items())
        with open(self.path, "w") as f:
            f.write('node = { id = 1; admin = "127.0.0.1:%d"; };\n'
                    'cluster = "z%d"; redis = "%s"; plugin_dir = "%s"; state_dir = "%s";\n'
                    'balancer = {\n  plugin = "builtin";\n%s};\n'
                    'zones = ( { name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; '
                    'min = 0; max = 1; workers = %d; servers = [%s]; } );\n'
                    % (self.port, self.port, self.redis.url(), plugin_dir(), tmpdir(), lines,
                       self.listen, self.admin, self.workers,
                       ", ".join('"%s"' % s for s in self.servers)))

    def admin_get(self, path):
        try:
            return raw_http(self.admin, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                         % path).encode())
        except OSError:
            return b""

    def worker_pids(self):
        """The pids of scalerd's children that are balancer workers of z1."""
        out = []
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    st = f.read()
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == self.proc.pid and b"--balancer" in cmd:
                out.append(int(pid))
        return sorted(out)

    def stop(self):
        self.proc.stop()
        self.redis.stop()


# ---- HTTP/2 frames by hand (for what a real client would not send) -----------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_RST, H2_SETTINGS, H2_PING, H2_GOAWAY, H2_WINDOW = 0, 1, 3, 4, 6, 7, 8
H2_END_STREAM, H2_END_HEADERS, H2_ACK = 1, 4, 1
H2_ENHANCE_YOUR_CALM, H2_PROTOCOL_ERROR = 11, 1


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream.to_bytes(4, "big") + payload


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack(headers):
    """A header block of literal fields without indexing, new names, no Huffman."""
    out = b""
    for name, value in headers:
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        out += b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value
    return out


def h2_request_headers(path="/", method="GET", authority="a.test", extra=()):
    return [(":method", method), (":scheme", "https"), (":path", path),
            (":authority", authority)] + list(extra)


class H2Raw:
    """A TLS connection that speaks HTTP/2 frame by frame."""

    def __init__(self, port, ca, name="a.test", timeout=5.0):
        self.sock = tls_client(port, name, ca, alpn=["h2"], timeout=timeout)
        check(self.sock.selected_alpn_protocol() == "h2", "ALPN chose h2")
        self.buf = b""
        self.sock.sendall(H2_PREFACE + h2_frame(H2_SETTINGS, 0, 0))

    def send(self, data):
        self.sock.sendall(data)

    def frames(self, until, timeout=5.0):
        """Read frames [(type, flags, stream, payload)] until until(frames) or the
        connection closes (then ("closed",) ends the list)."""
        got = []
        deadline = time.monotonic() + timeout
        while not until(got):
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                kind, flags = self.buf[3], self.buf[4]
                stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                got.append((kind, flags, stream, self.buf[9:9 + n]))
                self.buf = self.buf[9 + n:]
                if kind == H2_SETTINGS and not flags & H2_ACK:
                    self.send(h2_frame(H2_SETTINGS, H2_ACK, 0))
            if until(got):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                d = b""
            if not d:
                got.append(("closed",))
                break
            self.buf += d
        return got

    def close(self):
        self.sock.close()


def h2_stream_end(frames, stream):
    """How stream ended in frames: ("rst", code), ("end", None), or None."""
    for f in frames:
        if f[0] == "closed" or len(f) < 4 or f[2] != stream:
            continue
        if f[0] == H2_RST:
            return ("rst", int.from_bytes(f[3][:4], "big"))
        if f[0] in (H2_HEADERS, H2_DATA) and f[1] & H2_END_STREAM:
            return ("end", None)
    return None


def h2_goaway(frames):
    """The GOAWAY's error code, or None."""
    for f in frames:
        if f[0] == H2_GOAWAY:
            return int.from_bytes(f[3][4:8], "big")
    return None
