"""A scripted fake Docker engine on a unix socket, for the container
drivers' API tests (no dockerd needed), and driverctl to drive a plugin.

    e = FakeEngine()
    e.routes.append(("GET", r"/containers/json.*", 200, []))
    out = driverctl(conf_path, ["list"])       # one JSON object per command
    e.paths()                                  # [(method, full path), ...]
"""
import json
import os
import re
import socketserver
import subprocess
import threading
from http.server import BaseHTTPRequestHandler

from scalertest import binary, plugin_dir, tmpdir

__all__ = ["FakeEngine", "driverctl"]


class FakeEngine:
    """Answers from `routes`: list of (method, regex on the unversioned path,
    status, body), where body may be a function of (path, request body)
    giving (status, body); records every request as (method, full path,
    body)."""

    def __init__(self, api_version="1.41", name="fake-docker"):
        self.sock = os.path.join(tmpdir(), "%s-%d.sock" % (name, id(self)))
        self.api_version = api_version
        self.routes = []
        self.requests = []
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                body = json.loads(body) if body else None
                engine.requests.append((self.command, self.path, body))
                path = re.sub(r"^/v\d+\.\d+", "", self.path)
                status, out = 404, {"message": "no route for %s %s" % (self.command, path)}
                if path == "/version":
                    status, out = 200, {"Version": "fake", "ApiVersion": engine.api_version}
                for method, pattern, st, b in engine.routes:
                    if method == self.command and re.match(pattern + "$", path):
                        status, out = b(path, body) if callable(b) else (st, b)
                        break
                data = json.dumps(out).encode() if out is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that went away after its answer

            def get_request(self):
                conn, _ = self.socket.accept()
                return conn, ("fake", 0)

        self.server = Server(self.sock, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self):
        return [(m, p) for m, p, _ in self.requests]


def driverctl(conf, *cmds, timeout=60):
    """Run tests/driverctl with config file `conf` and commands (lists of
    words); the JSON line each command printed."""
    argv = [binary("tests/driverctl"), "-d", plugin_dir(), "-c", conf]
    for i, c in enumerate(cmds):
        if i:
            argv.append(";")
        argv += [str(a) for a in c]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
