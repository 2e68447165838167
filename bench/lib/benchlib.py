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


def wait_port(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %.0fs" % (port, timeout))


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
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""

NGINX_PROXY = """worker_processes 1;
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
    keepalive 64;
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
  nbthread 1
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
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_BACKEND.format(dir=d, port=port))
    p = procs.spawn(["nginx", "-c", conf, "-p", d], name)
    wait_port(port)
    return p, port


def nginx_proxy(procs, backends, name="nginx-proxy"):
    port = free_port()
    d = procs.path(name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    servers = "\n".join("    server 127.0.0.1:%d;" % b for b in backends)
    with open(conf, "w") as f:
        f.write(NGINX_PROXY.format(dir=d, port=port, servers=servers))
    p = procs.spawn(["nginx", "-c", conf, "-p", d], name)
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


def haproxy(procs, backends, inter="10s", extra_defaults="", name="haproxy"):
    port = free_port()
    conf = procs.path(name + ".cfg")
    servers = "\n".join("  server s%d 127.0.0.1:%d check inter %s" % (i + 1, b, inter)
                        for i, b in enumerate(backends))
    with open(conf, "w") as f:
        f.write(HAPROXY.format(port=port, servers=servers, extra_defaults=extra_defaults,
                               extra_global=haproxy_extra_global()))
    p = procs.spawn(["haproxy", "-db", "-f", conf], name)
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
    wait_port(port)
    wait_port(admin)
    return p, port, admin


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url, conns, duration, threads=1, timeout=None):
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency"]
    if timeout:
        argv += ["--timeout", timeout]
    r = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60)
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
