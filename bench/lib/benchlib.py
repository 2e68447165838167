"""Helpers shared by scaler's benchmarks (stdlib only).

Everything listens on 127.0.0.1 free ports; every process started through
`Procs.spawn` is killed when the benchmark ends (also on Ctrl-C).
"""
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))


def raise_nofile(n=20000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard) if hard != resource.RLIM_INFINITY else n
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=5.0, proc=None):
    """Wait for a listener on port; proc (spawned by Procs): give up when it
    exits, and say what its log ends with."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    why = "nothing listens on 127.0.0.1:%d after %.0fs" % (port, timeout)
    if proc is not None:
        if proc.poll() is not None:
            why = "%s exited (status %d) before 127.0.0.1:%d listened" % (
                proc.bench_name, proc.returncode, port)
        try:
            with open(proc.bench_log, "rb") as f:
                why += "; its log ends:\n" + f.read()[-1500:].decode(errors="replace")
        except OSError:
            pass
    raise RuntimeError(why)


def http_get(port, path="/", timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


class Procs:
    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="scaler-bench-%s-" % name)
        self.procs = []
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stop_all()
        sys.exit(1)

    def spawn(self, argv, name, env=None):
        log = open(os.path.join(self.dir, "%s.log" % name), "wb")
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=e,
                             start_new_session=True)
        p.bench_name = name
        p.bench_log = log.name
        self.procs.append(p)
        return p

    def kill(self, p, sig=signal.SIGKILL):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except OSError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop_all(self):
        for p in reversed(self.procs):
            self.kill(p, signal.SIGTERM)
            self.kill(p)
        self.procs = []

    def cleanup(self):
        self.stop_all()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


NGINX_BACKEND = """worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  sendfile on;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "ok\\n"; }}
    location /files/ {{ root {dir}; }}
  }}
}}
"""

# Static files every nginx backend serves as /files/NAME (the body rows).
BACKEND_FILES = {"16k": 16 * 1024, "256k": 256 * 1024}

NGINX_PROXY = """worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  upstream be {{
{servers}
    keepalive {keepalive};
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""

HAPROXY = """global
  nbthread {nbthread}
  maxconn 20000
{extra_global}defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
{extra_defaults}frontend fe
  bind 127.0.0.1:{port}
  default_backend be
backend be
  balance roundrobin
  http-reuse always
{servers}
"""


def nginx_backend(procs, name, port=None):
    port = port or free_port()
    d = procs.path(name)
    os.makedirs(os.path.join(d, "files"), exist_ok=True)
    for fname, size in BACKEND_FILES.items():
        with open(os.path.join(d, "files", fname), "wb") as f:
            f.write((b"0123456789abcdef" * (size // 16 + 1))[:size])
    # nginx's workers run as another user when started by root
    for path in (procs.dir, d, os.path.join(d, "files")):
        os.chmod(path, 0o755)
    for fname in BACKEND_FILES:
        os.chmod(os.path.join(d, "files", fname), 0o644)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_BACKEND.format(dir=d, port=port))
    p = procs.spawn(["nginx", "-c", conf, "-p", d], name)
    wait_port(port)
    return p, port


def nginx_proxy(procs, backends, name="nginx-proxy", workers=1, keepalive=64):
    """nginx as proxy (ANCHORS.md): a master that holds the socket and
    `workers` worker processes. p.conf_path and p.rewrite(keepalive=K) serve
    a reload that changes the proxy's settings."""
    port = free_port()
    d = procs.path(name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    servers = "\n".join("    server 127.0.0.1:%d;" % b for b in backends)

    def write(ka):
        with open(conf, "w") as f:
            f.write(NGINX_PROXY.format(dir=d, port=port, servers=servers, workers=workers,
                                       keepalive=ka))
    write(keepalive)
    p = procs.spawn(["nginx", "-c", conf, "-p", d], name)
    p.rewrite = write
    wait_port(port)
    return p, port


def haproxy_extra_global():
    """maxconn 20000 needs 40015 descriptors; where the hard limit is lower
    (containers) HAProxy refuses to start unless told to lower maxconn
    itself. The benchmarks use at most ~1,100 connections, so this changes
    nothing they measure."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 40015:
        return "  no strict-limits\n"
    return ""


def haproxy(procs, backends, inter="10s", extra_defaults="", name="haproxy", nbthread=1,
            master_worker=False):
    """HAProxy (ANCHORS.md). master_worker: -W with the listeners exposed
    on a stats socket, so a reload (USR2 to the master, which re-executes
    itself with -x) hands the sockets over; p.rewrite(timeout_client=S)
    changes a setting for that reload."""
    port = free_port()
    conf = procs.path(name + ".cfg")
    servers = "\n".join("  server s%d 127.0.0.1:%d check inter %s" % (i + 1, b, inter)
                        for i, b in enumerate(backends))
    extra_global = haproxy_extra_global()
    if master_worker:
        extra_global += "  stats socket %s mode 600 level admin expose-fd listeners\n" % (
            procs.path(name + ".sock"))

    def write(timeout_client="30s"):
        with open(conf, "w") as f:
            f.write(HAPROXY.format(port=port, servers=servers, extra_defaults=extra_defaults,
                                   extra_global=extra_global, nbthread=nbthread).replace(
                                       "timeout client 30s", "timeout client " + timeout_client))
    write()
    p = procs.spawn(["haproxy"] + (["-W"] if master_worker else []) + ["-db", "-f", conf], name)
    p.rewrite = write
    wait_port(port)
    return p, port


def builddir():
    for d in (os.environ.get("top_builddir"), os.getcwd()):
        if d and os.path.exists(os.path.join(d, ".libs", "balancer_builtin.so")):
            return os.path.abspath(d)
    raise RuntimeError("cannot find the build tree: run from it or set top_builddir "
                       "(it holds .libs/balancer_builtin.so)")


def scalerd_works(bdir):
    exe = os.path.join(bdir, "scalerd")
    if not os.access(exe, os.X_OK):
        return False
    try:
        r = subprocess.run([exe, "--help"], capture_output=True, timeout=5)
        return b"--balancer" in r.stdout + r.stderr
    except Exception:
        return False


def scaler_balancer(procs, backends, settings=None, name="scaler", via="auto"):
    """Start scaler's balancer for one zone over `backends` (ports).
    Returns (process, listen port, admin port). via: scalerd, harness or auto."""
    bdir = builddir()
    port, admin = free_port(), free_port()
    settings = settings or {}
    lines = "".join("  %s = %s;\n" % (k, v) for k, v in settings.items())
    servers = ", ".join('"http://127.0.0.1:%d"' % b for b in backends)
    if via == "auto":
        via = "scalerd" if scalerd_works(bdir) else "harness"
    if via == "scalerd":
        conf = procs.path(name + ".conf")
        with open(conf, "w") as f:
            f.write('node = { id = 1; admin = "127.0.0.1:%d"; };\n'
                    'plugin_dir = "%s";\n'
                    'balancer = {\n  plugin = "builtin";\n%s};\n'
                    'zones = ( { name = "bench"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; '
                    'min = 0; max = 10; servers = [%s]; } );\n'
                    % (free_port(), os.path.join(bdir, ".libs"), lines, port, admin, servers))
        argv = [os.path.join(bdir, "scalerd"), "--balancer", "bench", "-c", conf]
    else:
        conf = procs.path(name + ".conf")
        with open(conf, "w") as f:
            f.write("balancer = {\n%s};\n" % lines)
        argv = [os.path.join(bdir, "tests", "balancer", "bal-harness"),
                os.path.join(bdir, ".libs", "balancer_builtin.so"), conf,
                "127.0.0.1:%d" % port, "127.0.0.1:%d" % admin] + \
               ["http://127.0.0.1:%d" % b for b in backends]
    p = procs.spawn(argv, name)
    p.bench_via = via
    wait_port(port, 10, p)
    wait_port(admin, 10, p)
    return p, port, admin


def redis(procs, name="redis"):
    """A throwaway redis-server (no persistence) for a whole scalerd."""
    port = free_port()
    d = procs.path(name)
    os.makedirs(d, exist_ok=True)
    procs.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                 "--save", "", "--appendonly", "no"], name)
    wait_port(port)
    return port


class Scaler:
    """A whole scalerd (the supervisor that holds the zone's sockets) with one
    zone over `backends`: `workers` balancer processes. rewrite(settings)
    then reload() (SIGHUP) replaces the zone's workers."""

    def __init__(self, procs, backends, settings=None, workers=1, name="scalerd"):
        bdir = builddir()
        self.procs = procs
        self.port, self.admin, self.node = free_port(), free_port(), free_port()
        self.redis = redis(procs, name + "-redis")
        self.backends = backends
        self.workers = workers
        self.conf = procs.path(name + ".conf")
        self.plugins = os.path.join(bdir, ".libs")
        self.rewrite(settings or {})
        self.proc = procs.spawn([os.path.join(bdir, "scalerd"), "-c", self.conf], name)
        # a whole scalerd (config, plugins, Redis) starts slowly on a busy machine
        wait_port(self.node, 15, self.proc)
        deadline = time.monotonic() + 10
        while len([p for p in self.pids() if p]) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        # the port accepts as soon as scalerd binds it: wait for an answer
        while time.monotonic() < deadline:
            try:
                if b" 200 " in http_get(self.port).split(b"\r\n")[0]:
                    break
            except OSError:
                pass
            time.sleep(0.05)

    def rewrite(self, settings):
        lines = "".join("  %s = %s;\n" % (k, v) for k, v in settings.items())
        servers = ", ".join('"http://127.0.0.1:%d"' % b for b in self.backends)
        with open(self.conf, "w") as f:
            f.write('node = { id = 1; admin = "127.0.0.1:%d"; };\n'
                    'cluster = "bench%d";\nredis = "redis://127.0.0.1:%d/0";\n'
                    'plugin_dir = "%s";\nstate_dir = "%s";\n'
                    'balancer = {\n  plugin = "builtin";\n%s};\n'
                    'zones = ( { name = "bench"; listen = "127.0.0.1:%d"; '
                    'admin = "127.0.0.1:%d"; min = 0; max = 0; workers = %d; '
                    'servers = [%s]; } );\n'
                    % (self.node, self.node, self.redis, self.plugins, self.procs.dir, lines,
                       self.port, self.admin, self.workers, servers))

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def status(self):
        out = http_get(self.node, "/status")
        import json
        return json.loads(out.split(b"\r\n\r\n", 1)[1])

    def pids(self):
        try:
            z = [z for z in self.status()["zones"] if z["name"] == "bench"][0]
            return z.get("balancer_pids") or []
        except (OSError, ValueError, IndexError, KeyError):
            return []


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk_script(procs, name, text):
    """A wrk Lua script written into the run's directory."""
    path = procs.path(name + ".lua")
    with open(path, "w") as f:
        f.write(text)
    return path


def post_script(procs, size):
    """wrk -s: every request a POST of `size` bytes."""
    return wrk_script(procs, "post%d" % size,
                      'wrk.method = "POST"\n'
                      'wrk.headers["Content-Type"] = "application/octet-stream"\n'
                      'wrk.body = string.rep("x", %d)\n' % size)


def wrk(url, conns, duration, threads=1, timeout=None, close=False, script=None, env=None):
    """close: a new connection per request (Connection: close); env: wrk's
    environment (default: the bench's)."""
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency"]
    if timeout:
        argv += ["--timeout", timeout]
    if close:
        argv += ["-H", "Connection: close"]
    if script:
        argv += ["-s", script]
    r = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60,
                       env=env)
    out = r.stdout
    res = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "requests": 0, "errors": 0,
           "non2xx": 0, "raw": out + r.stderr}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    if m:
        res["p50"] = _ms(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if m:
        res["p99"] = _ms(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
        res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                        (int(x) for x in m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    return res


def h2load_mean_us(url, clients, rate, duration):
    """Mean request time (µs) at a fixed total rate, or None without h2load
    (Debian: nghttp2-client)."""
    if not shutil.which("h2load"):
        return None
    per = max(1, rate // clients)
    r = subprocess.run(["h2load", "--h1", "-c%d" % clients, "-D%d" % duration, "--rps=%d" % per,
                        url], capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", r.stdout)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1.0, "ms": 1000.0, "s": 1e6}[m.group(2)]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def worker_pid(p):
    """The balancer worker's pid: the process itself, or its only child
    when a supervisor sits in between."""
    try:
        kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
    except OSError:
        kids = []
    return int(kids[0]) if len(kids) == 1 else p.pid
