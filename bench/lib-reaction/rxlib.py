"""Helpers of bench/reaction and bench/evaluate (stdlib only): a private
redis-server, a scalerd with a generated config, HTTP on 127.0.0.1, and the
cleanup of everything they started (also the process-driver servers, which
outlive scalerd on purpose).

Every process started here carries SCALER_BENCH_ID=<id> in its environment;
`Run.close` finds leftovers by that tag and touches nothing else."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))


def builddir():
    for d in (os.environ.get("top_builddir"), os.environ.get("BUILD_DIR"),
              os.path.join(SRCDIR, "build"), os.getcwd()):
        if d and os.path.exists(os.path.join(d, "scalerd")):
            return os.path.abspath(d)
    sys.exit("scalerd not found: run from the build tree or set top_builddir (scripts/check builds into ./build)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(method, url, body=None, timeout=2.0):
    """(status, parsed JSON or bytes); raises OSError on transport errors."""
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.rpartition(":")
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        hdr = {}
        if body is not None:
            body = json.dumps(body)
            hdr["Content-Type"] = "application/json"
        c.request(method, "/" + path, body=body, headers=hdr)
        r = c.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data
    except http.client.HTTPException as e:
        raise OSError(str(e))
    finally:
        c.close()


def get_json(url, timeout=2.0):
    try:
        st, j = request("GET", url, timeout=timeout)
        return j if st == 200 else None
    except OSError:
        return None


def proc_cpu_seconds(pid):
    """utime + stime of a process, in seconds (from /proc/PID/stat, clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_cpu_ns(pid):
    """CPU time of all threads of a process in ns, from the scheduler
    (/proc/PID/task/*/schedstat, first field); None when not available."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


class Run:
    """A private Redis + scalerd. conf(run) returns the scaler.conf text."""

    def __init__(self, name):
        self.build = builddir()
        self.tag = "%s-%d-%d" % (name, os.getpid(), int(time.time()))
        self.dir = tempfile.mkdtemp(prefix="scaler-%s-" % name)
        self.state = os.path.join(self.dir, "state")
        self.servers_dir = os.path.join(self.state, "servers")
        os.makedirs(self.servers_dir)
        self.env = dict(os.environ, SCALER_BENCH_ID=self.tag)
        self.procs = []
        self.redis_port = free_port()
        self.admin_port = free_port()
        self.scalerd = None

    def spawn(self, argv, logname, **kw):
        logf = open(os.path.join(self.dir, logname), "wb")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=self.env, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def start_redis(self):
        rdir = os.path.join(self.dir, "redis")
        os.makedirs(rdir)
        self.redis = self.spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                 "--dir", rdir, "--save", "", "--appendonly", "no",
                                 "--daemonize", "no"], "redis.log")
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def common_conf(self):
        return """node = { id = 1; admin = "127.0.0.1:%d"; };
cluster = "bench";
redis = "redis://127.0.0.1:%d/0";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "info"; };
stop_timeout = 3.0;
""" % (self.admin_port, self.redis_port, os.path.join(self.build, ".libs"), self.state)

    def start_scalerd(self, conf_text):
        self.conf = os.path.join(self.dir, "scaler.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        r = subprocess.run([os.path.join(self.build, "scalerd"), "-t", "-c", self.conf],
                           capture_output=True, text=True, env=self.env)
        if r.returncode != 0:
            raise RuntimeError("scalerd -t refused the generated config:\n" + r.stderr)
        self.scalerd = self.spawn([os.path.join(self.build, "scalerd"), "-c", self.conf], "scalerd.log")
        for _ in range(150):
            if get_json(self.admin("/health_check"), timeout=0.5) is not None or \
               self._answers(self.admin_port):
                return
            if self.scalerd.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("scalerd did not start; log:\n" + self.log_tail())

    @staticmethod
    def _answers(port):
        try:
            st, _ = request("GET", "http://127.0.0.1:%d/health_check" % port, timeout=0.5)
            return st == 200
        except OSError:
            return False

    def admin(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin_port, path)

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, "scalerd.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def _tagged(self, pid):
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                return ("SCALER_BENCH_ID=" + self.tag).encode() in f.read().split(b"\0")
        except OSError:
            return False

    def server_pids(self):
        """pids recorded by the process driver that still carry our tag"""
        pids = []
        for fn in os.listdir(self.servers_dir) if os.path.isdir(self.servers_dir) else []:
            if fn.endswith(".json"):
                try:
                    with open(os.path.join(self.servers_dir, fn)) as f:
                        pid = int(json.load(f)["pid"])
                    if self._tagged(pid):
                        pids.append(pid)
                except (OSError, ValueError, KeyError):
                    pass
        return pids

    def leftovers(self):
        tag = ("SCALER_BENCH_ID=" + self.tag).encode()
        found = []
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % p, "rb") as f:
                    if tag not in f.read().split(b"\0"):
                        continue
                with open("/proc/%s/stat" % p) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            found.append(int(p))
        return found

    def close(self):
        if self.scalerd and self.scalerd.poll() is None:
            self.scalerd.send_signal(signal.SIGTERM)
            try:
                self.scalerd.wait(15)
            except subprocess.TimeoutExpired:
                self.scalerd.kill()
                self.scalerd.wait()
        for pid in self.server_pids():
            for target in (-pid, pid):
                try:
                    os.kill(target, signal.SIGTERM)
                    break
                except OSError:
                    pass
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        deadline = time.monotonic() + 5
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)
        left = self.leftovers()
        if not os.environ.get("SCALER_BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return left
