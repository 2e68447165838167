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

from scalertest import (binary, builddir, check, free_port, plugin_dir, raw_http, spawn,
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
        return "[%s]" % ", ".join(_conf_value(x) for x in v)
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
