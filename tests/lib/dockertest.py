"""A Docker engine for scaler's tests (stdlib only).

    from dockertest import engine, build_test_image, DockerUnavailable

    eng = engine()                  # $SCALER_TEST_DOCKER_HOST, or a private dockerd
    image = build_test_image(eng)   # "scaler-test-app:latest", built locally
    image = app_image(eng, path)    # "scaler-app-test:latest", the built scaler-app
    status, body = eng.api("GET", "/containers/json?all=1")

With $SCALER_TEST_DOCKER_HOST ("unix:///path" or "tcp://127.0.0.1:port")
that engine is used as is. Without it, a private dockerd is started with its
own data root, exec root and socket under a temporary directory (vfs
storage, no iptables, no bridge: containers use host networking) and is
stopped at exit. Nothing is pulled: the test image is imported from a
tarball made by tests/docker/build-test-image.sh (a static busybox serving
/www, with GET /health_check, on $PORT).
"""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

__all__ = ["engine", "build_test_image", "app_image", "DockerUnavailable", "Engine", "TEST_IMAGE",
           "APP_IMAGE"]

TEST_IMAGE = "scaler-test-app:latest"
APP_IMAGE = "scaler-app-test:latest"


class DockerUnavailable(Exception):
    """No engine could be reached or started (tests skip with this reason)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Engine:
    def __init__(self, host, proc=None, root=None):
        self.host = host  # as scaler.conf's docker `host` setting takes it
        self.proc = proc
        self.root = root

    def _conn(self, timeout):
        if self.host.startswith("unix://"):
            return _UnixConnection(self.host[len("unix://"):], timeout)
        if self.host.startswith("tcp://"):
            h, _, p = self.host[len("tcp://"):].rpartition(":")
            return http.client.HTTPConnection(h, int(p), timeout=timeout)
        raise DockerUnavailable("unsupported docker host %r" % self.host)

    def api(self, method, path, body=None, headers=None, timeout=60):
        """(status, JSON value or raw bytes). body: dict/list (JSON) or bytes."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        c = self._conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data

    def ping(self):
        try:
            status, _ = self.api("GET", "/_ping", timeout=2)
            return status == 200
        except OSError:
            return False

    def containers(self, label=None):
        """Every container (running or not), optionally with a label filter."""
        q = "/containers/json?all=1"
        if label:
            q += "&filters=" + urllib.parse.quote(json.dumps({"label": [label]}))
        status, body = self.api("GET", q)
        if status != 200:
            raise RuntimeError("GET %s: %s %r" % (q, status, body))
        return body

    def inspect(self, ref):
        return self.api("GET", "/containers/%s/json" % ref)

    def remove(self, ref):
        return self.api("DELETE", "/containers/%s?force=1" % ref)[0]

    def stop(self):
        if not self.proc:
            return
        for c in self.containers():
            self.remove(c["Id"])
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        if self.root and not os.environ.get("SCALERTEST_KEEP"):
            # dockerd leaves its network namespace mounted under exec-root
            with open("/proc/self/mounts") as f:
                mounts = [l.split()[1] for l in f if l.split()[1].startswith(self.root + "/")]
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", m], capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)


_engine = None


def _start_private():
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise DockerUnavailable("dockerd is not installed (apt-get install -y docker.io)")
    if os.geteuid() != 0:
        raise DockerUnavailable("a private dockerd needs root; set SCALER_TEST_DOCKER_HOST")
    root = tempfile.mkdtemp(prefix="sdk-", dir="/tmp")  # short: socket paths are limited
    sock = os.path.join(root, "docker.sock")
    log = open(os.path.join(root, "dockerd.log"), "wb")
    argv = [dockerd, "--storage-driver=vfs", "--iptables=false", "--ip6tables=false",
            "--bridge=none", "--data-root", os.path.join(root, "data"),
            "--exec-root", os.path.join(root, "exec"), "--pidfile", os.path.join(root, "pid"),
            "-H", "unix://" + sock]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    eng = Engine("unix://" + sock, proc, root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(sock) and eng.ping():
            atexit.register(eng.stop)
            return eng
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with open(os.path.join(root, "dockerd.log"), "rb") as f:
        tail = f.read()[-2000:].decode("utf-8", "replace")
    raise DockerUnavailable("private dockerd did not answer /_ping; its log ends with:\n" + tail)


def engine():
    """The engine to test against (started once per process)."""
    global _engine
    if _engine is None:
        host = os.environ.get("SCALER_TEST_DOCKER_HOST")
        if host:
            eng = Engine(host)
            if not eng.ping():
                raise DockerUnavailable("SCALER_TEST_DOCKER_HOST=%s does not answer /_ping" % host)
            _engine = eng
        else:
            _engine = _start_private()
    return _engine


def _import(eng, tar, name, cmd):
    """Import a rootfs tarball as image `name` running cmd: (status, body)."""
    repo, _, tag = name.partition(":")
    q = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": tag or "latest",
                                "changes": 'CMD ["%s"]' % cmd})
    with open(tar, "rb") as f:
        return eng.api("POST", "/images/create?" + q, body=f.read(),
                       headers={"Content-Type": "application/x-tar"}, timeout=300)


def build_test_image(eng, name=TEST_IMAGE):
    """Import the test image unless the engine has it already; its name."""
    status, _ = eng.api("GET", "/images/%s/json" % name)
    if status == 200:
        return name
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "..", "docker", "build-test-image.sh")
    with tempfile.TemporaryDirectory() as d:
        tar = os.path.join(d, "rootfs.tar")
        r = subprocess.run(["sh", script, tar], capture_output=True, text=True)
        if r.returncode != 0:
            raise DockerUnavailable("cannot build the test image: " + r.stderr.strip())
        status, body = _import(eng, tar, name, "/bin/serve")
    if status != 200 or b"error" in (body if isinstance(body, bytes) else json.dumps(body).encode()):
        raise DockerUnavailable("cannot import the test image: %s %r" % (status, body))
    return name


def app_image(eng, app_binary, name=APP_IMAGE):
    """Import the built scaler-app (app_binary) and its libraries as an image;
    imported again on every call, since the binary under test changes. Its
    name."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "..", "docker", "build-app-image.sh")
    with tempfile.TemporaryDirectory() as d:
        tar = os.path.join(d, "app.tar")
        r = subprocess.run(["sh", script, app_binary, tar], capture_output=True, text=True)
        if r.returncode != 0:
            raise DockerUnavailable("build-app-image.sh: " + r.stderr.strip())
        status, body = _import(eng, tar, name, "/usr/bin/scaler-app")
    if status != 200:
        raise DockerUnavailable("cannot import the scaler-app image: %s %r" % (status, body))
    return name
