"""Helpers shared by the scaler-app tests (tests/integration/test_app*.py)."""
import http.client as httpclient
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from scalertest import binary, check, free_port, spawn, wait_until  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


_apps = {}  # port -> App, to explain a refused connection


def request(method, port, path, body=None, headers=None, timeout=5.0):
    """(status, lower-case headers, body bytes) of one request to 127.0.0.1:port."""
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except ConnectionError:
        app = _apps.get(port)
        if app and not app.proc.alive():
            raise AssertionError("%s %s: scaler-app is gone: %s" % (method, path, app.death()))
        raise
    finally:
        conn.close()


def request_json(method, port, path, body=None, timeout=5.0, headers=None):
    status, hdrs, data = request(method, port, path, body, headers=headers, timeout=timeout)
    try:
        return status, json.loads(data)
    except ValueError:
        raise AssertionError("%s %s: expected a JSON body, got HTTP %d %r"
                             % (method, path, status, data[:200]))


def proc_cpu_seconds(pid):
    """utime + stime of a process from /proc/PID/stat, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu_percent(pid, seconds):
    """Percent of one core the process used over the next `seconds`."""
    return proc_and_idle_percent(pid, seconds)[0]


def _idle_seconds():
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return (int(fields[4]) + int(fields[5])) / CLK_TCK  # idle + iowait, all CPUs


def proc_and_idle_percent(pid, seconds):
    """(percent of one core the process used, percent of one core left idle on
    the machine) over the next `seconds`: a process cannot burn what a busy
    machine does not give it."""
    c0, i0, t0 = proc_cpu_seconds(pid), _idle_seconds(), time.monotonic()
    time.sleep(seconds)
    c1, i1, t1 = proc_cpu_seconds(pid), _idle_seconds(), time.monotonic()
    return (c1 - c0) / (t1 - t0) * 100.0, (i1 - i0) / (t1 - t0) * 100.0


class App:
    """A scaler-app on a free loopback port."""

    def __init__(self, env=None, args=None, zone="zone1", server_id="app-1"):
        self.token = (env or {}).get("APP_CONTROL_TOKEN")
        self.port = free_port()
        self.zone = zone
        self.server_id = server_id
        e = {"HOST": "127.0.0.1", "PORT": str(self.port), "ZONE": zone, "SERVER_ID": server_id}
        for k in ("KAFKA_BROKERS", "KAFKA_TOPIC", "INFLUX_URL", "INFLUX_DB", "INFLUX_TOKEN",
                  "PROFILE", "LOG_LEVEL", "APP_CONTROL_TOKEN", "APP_CONTROL_TOKEN_FILE",
                  "WORK_THREADS", "WORK_IN_FLIGHT"):
            e.setdefault(k, "")
        e.update(env or {})
        self.proc = spawn([binary("scaler-app")] + list(args or []), env=e, name="scaler-app")
        _apps[self.port] = self
        wait_until(self._up, 10, "scaler-app to answer GET /health_check on port %d" % self.port)
        self.pid = self._real_pid()

    def death(self):
        """How the process ended, with the end of its output."""
        rc = self.proc.p.returncode
        how = ("killed by signal %d" % -rc) if rc is not None and rc < 0 else "exit status %s" % rc
        return "%s; its output ends with:\n%s" % (how, self.proc.output()[-2000:])

    def _up(self):
        if not self.proc.alive():
            raise AssertionError("scaler-app did not start: %s" % self.death())
        try:
            return request("GET", self.port, "/health_check", timeout=1)[0] in (200, 503)
        except OSError:
            return False

    def _real_pid(self):
        # a libtool wrapper script execs the real binary, so the pid stays the same
        return self.proc.pid

    def auth(self):
        """The Authorization header of the control endpoints (none when open)."""
        return {"Authorization": "Bearer " + self.token} if self.token else {}

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, **kw):
        return request("GET", self.port, path, **kw)

    def stats(self):
        status, s = request_json("GET", self.port, "/stats")
        check(status == 200, "GET /stats: expected 200, got %d %r" % (status, s))
        return s

    def load(self, profile):
        status, r = request_json("POST", self.port, "/load", {"profile": profile},
                                 headers=self.auth())
        check(status == 200, "POST /load %s: expected 200, got %d %r" % (profile, status, r))
        return r

    def wait_stats(self, pred, timeout, what):
        """Poll /stats until pred(stats) holds; returns those stats."""
        def ready():
            s = self.stats()
            return s if pred(s) else None
        return wait_until(ready, timeout, what, interval=0.2)

    def stop(self, timeout=10.0):
        return self.proc.stop(timeout)

    def output(self):
        return self.proc.output()
