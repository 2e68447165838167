"""A throwaway InfluxDB 1.x for tests (stdlib only).

    from influx import Influx

    db = Influx()                  # influxd on free loopback ports, data in a temp dir
    db.create_database("scaler")
    db.query("SELECT mean(cpu_usage) FROM scaler_app GROUP BY server", "scaler")
    db.stop(); db.start()          # same ports, same data

When SCALER_TEST_INFLUX_URL is set (scripts/check starts one), Influx() uses
that server instead, unless own=True is asked for (tests that stop and start
the database need their own). Use a database name of your own per test.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Influx", "InfluxError"]


class InfluxError(Exception):
    pass


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"
  logging-enabled = false

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[retention]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
"""


class Influx:
    def __init__(self, own=False, binary="influxd", start_timeout=20.0):
        self.external = None if own else os.environ.get("SCALER_TEST_INFLUX_URL")
        self.proc = None
        self.logf = None
        if self.external:
            self.url = self.external.rstrip("/")
            self.dir = None
            return
        self.binary = shutil.which(binary)
        if not self.binary:
            raise InfluxError("%s is not installed (apt-get install influxdb)" % binary)
        self.dir = tempfile.mkdtemp(prefix="influx-")
        self.http_port = _free_port()
        self.rpc_port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.http_port
        self.config = os.path.join(self.dir, "influxdb.conf")
        with open(self.config, "w") as f:
            f.write(_CONFIG.format(dir=self.dir, http_port=self.http_port,
                                   rpc_port=self.rpc_port))
        self.logpath = os.path.join(self.dir, "influxd.log")
        self.start_timeout = start_timeout
        self.start()

    def start(self):
        if self.external:
            raise InfluxError("cannot start the external InfluxDB at %s" % self.url)
        if self.proc and self.proc.poll() is None:
            return
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen([self.binary, "run", "-config", self.config],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise InfluxError("influxd exited with %s:\n%s" % (self.proc.returncode,
                                                                  self.log()[-2000:]))
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise InfluxError("influxd did not answer /ping within %.0fs:\n%s"
                                  % (self.start_timeout, self.log()[-2000:]))
            time.sleep(0.1)

    def stop(self, timeout=10.0):
        """Stop the server (its data stays for start())."""
        if self.external:
            raise InfluxError("cannot stop the external InfluxDB at %s" % self.url)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
            self.logf = None

    def close(self):
        """Stop and remove the data directory."""
        if not self.external:
            self.stop()
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def log(self):
        if not self.dir:
            return ""
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def ping(self):
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1.0) as r:
                return r.status == 204
        except (OSError, urllib.error.URLError):
            return False

    def _request(self, method, path, params, body=None, timeout=10.0):
        url = "%s%s?%s" % (self.url, path, urllib.parse.urlencode(params))
        req = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                data = r.read()
        except urllib.error.HTTPError as e:
            raise InfluxError("%s %s: HTTP %d %s" % (method, path, e.code,
                                                     e.read().decode("utf-8", "replace")))
        return json.loads(data) if data else None

    def query(self, q, db=None):
        """Run InfluxQL; returns the first statement's series list (possibly []).
        Raises InfluxError when InfluxDB reports an error."""
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        method = "GET" if q.lstrip().upper().startswith(("SELECT", "SHOW")) else "POST"
        res = self._request(method, "/query", params)
        if "error" in res:
            raise InfluxError(res["error"])
        stmt = res["results"][0]
        if "error" in stmt:
            raise InfluxError("%s: %s" % (q, stmt["error"]))
        return stmt.get("series", [])

    def create_database(self, name):
        self.query('CREATE DATABASE "%s"' % name.replace('"', '\\"'))

    def drop_database(self, name):
        self.query('DROP DATABASE "%s"' % name.replace('"', '\\"'))

    def write(self, db, lines, precision="ms"):
        """Write line protocol (a string or a list of lines)."""
        if isinstance(lines, (list, tuple)):
            lines = "\n".join(lines)
        self._request("POST", "/write", {"db": db, "precision": precision},
                      body=lines.encode())
