"""Small TAP test harness for scaler's integration tests (stdlib only).

    from scalertest import *

    @test
    def a_server_that_fails_three_rechecks_is_reported_dead():
        ...
        check_eq(got, want, "what this is")

    if __name__ == "__main__":
        main()

Every test runs in order; a failed check prints what was expected and what
came instead. Processes started through `spawn` are killed at the end.
"""
import atexit
import http.client as _httpclient
import json as _json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

__all__ = [
    "test", "main", "skip", "check", "check_eq", "wait_until", "free_port", "free_port_range",
    "http", "http_json", "spawn", "Proc", "Redis", "builddir", "srcdir", "tmpdir",
    "plugin_dir", "binary", "write_file", "raw_http", "redis_cli", "log", "kill_process_server",
]

_tests = []
_procs = []
_tmp = None


class Skip(Exception):
    pass


class CheckFailed(AssertionError):
    pass


def test(fn):
    _tests.append(fn)
    return fn


def skip(reason):
    raise Skip(reason)


def log(msg):
    sys.stdout.write("# " + str(msg).replace("\n", "\n# ") + "\n")
    sys.stdout.flush()


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def check_eq(got, want, what):
    if got != want:
        raise CheckFailed("%s: expected %r, got %r" % (what, want, got))


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # the thing may not be up yet
            last = e
        if time.monotonic() > deadline:
            raise CheckFailed("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def builddir():
    return os.environ.get("top_builddir") or os.getcwd()


def srcdir():
    return os.environ.get("top_srcdir") or os.getcwd()


def plugin_dir():
    return os.environ.get("SCALER_PLUGIN_DIR") or os.path.join(builddir(), ".libs")


def binary(name):
    """Path of a built program (libtool wrapper scripts work as well)."""
    return os.path.join(builddir(), name)


def tmpdir():
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="scalertest-")
    return _tmp


def write_file(name, text):
    """A file of the test's own, mode 0600: configs with an inline token and
    token files are secrets that scalerd refuses when others can read them."""
    path = os.path.join(tmpdir(), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


_ports_given = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port nothing listens on, below the ephemeral range: a port
    the kernel gave us with bind(0) is also a source port it may give any
    outgoing connection (tests under load open thousands a second) before
    the process we start binds it. Never the same port twice per test.
    21000-26999: apart from the servers' port ranges of free_port_range
    (27000 up) and of the shipped configs (20000-20999)."""
    import random
    high = min(_ephemeral_low(), 27000)
    for _ in range(1000 if high > 21000 else 0):
        port = random.randrange(21000, high)
        if port in _ports_given:
            continue
        s = socket.socket()
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            continue
        finally:
            s.close()
        _ports_given.add(port)
        return port
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port_range(n=20):
    """(low, high): n consecutive ports free now, below the ephemeral range
    and above free_port's (best effort: someone may take one later; drivers
    skip busy ports)."""
    import random
    for _ in range(200):
        base = random.randrange(27000, min(_ephemeral_low(), 32768) - n)
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base, base + n - 1
    raise RuntimeError("no free range of %d ports" % n)


def http(method, url, body=None, headers=None, timeout=5.0):
    """One request on a fresh connection: (status, headers dict lower-case, body bytes)."""
    assert url.startswith("http://")
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.rpartition(":")
    conn = _httpclient.HTTPConnection(host, int(port), timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = _json.dumps(body)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, "/" + path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def http_json(method, url, body=None, headers=None, timeout=5.0):
    status, _, data = http(method, url, body, headers, timeout)
    try:
        return status, _json.loads(data) if data else None
    except ValueError:
        return status, data


def raw_http(port, data, timeout=3.0, host="127.0.0.1"):
    """Send raw bytes, read until the peer closes or timeout; returns bytes."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


class Proc:
    def __init__(self, argv, env=None, name=None, cwd=None):
        self.name = name or os.path.basename(argv[0])
        self.logpath = os.path.join(tmpdir(), "%s-%d.log" % (self.name, len(_procs)))
        self.logf = open(self.logpath, "wb")
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(argv, env=e, stdout=self.logf, stderr=subprocess.STDOUT,
                                  cwd=cwd, start_new_session=True)
        self.pid = self.p.pid
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=10.0):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.p.returncode

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                self.p.kill()
            self.p.wait()

    def wait(self, timeout=None):
        return self.p.wait(timeout)

    def output(self):
        self.logf.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")


def spawn(argv, env=None, name=None, cwd=None):
    return Proc(argv, env, name, cwd)


class Redis:
    """A throwaway redis-server on a free loopback port."""

    def __init__(self, appendonly=False, port=None, bind=()):
        """bind: more addresses to listen on besides 127.0.0.1 (a test
        network's, from netbed)."""
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=tmpdir())
        self.appendonly = appendonly
        self.bind = list(bind)
        self.start()

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"] + self.bind + [
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no"]
        if self.bind:  # a private test network: no password, as on loopback
            argv += ["--protected-mode", "no"]
        self.proc = spawn(argv, name="redis")
        wait_until(lambda: self.cli("PING") == "PONG", 5, "redis-server to answer PING")

    def url(self, db=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, db)

    def cli(self, *args):
        return redis_cli(self.port, *args)

    def cli_raw(self, *args):
        """Reply lines as redis-cli --raw prints them (one element a line)."""
        r = subprocess.run(["redis-cli", "-p", str(self.port), "--raw"] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=5)
        return r.stdout.splitlines()

    def stop(self):
        self.proc.stop()


def redis_cli(port, *args):
    r = subprocess.run(["redis-cli", "-p", str(port), "--no-raw"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=5)
    out = r.stdout.strip()
    if out.startswith('"') and out.endswith('"') and "\n" not in out:
        return out[1:-1]
    return out


def _proc_starttime(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_process_server(ref):
    """SIGKILL the process group of a process-driver server given its ref
    ("pid:starttime"), only if that pid still is that server (pids recycle)."""
    try:
        pid, start = (int(x) for x in str(ref).split(":"))
    except ValueError:
        return
    if _proc_starttime(pid) == start:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _cleanup():
    for p in reversed(_procs):
        try:
            p.kill()
        except Exception:
            pass
    if _tmp and not os.environ.get("SCALERTEST_KEEP"):
        shutil.rmtree(_tmp, ignore_errors=True)


atexit.register(_cleanup)


def main():
    only = sys.argv[1:]
    tests = [t for t in _tests if not only or t.__name__ in only]
    print("1..%d" % len(tests))
    sys.stdout.flush()
    failed = 0
    for i, t in enumerate(tests, 1):
        name = t.__name__.replace("_", " ")
        start = time.monotonic()
        try:
            t()
            print("ok %d - %s (%.1fs)" % (i, name, time.monotonic() - start))
        except Skip as e:
            print("ok %d - %s # SKIP %s" % (i, name, e))
        except Exception as e:
            failed += 1
            print("not ok %d - %s" % (i, name))
            if isinstance(e, CheckFailed):
                log("FAILED: %s" % e)
                tb = traceback.extract_tb(e.__traceback__)
                frame = [f for f in tb if f.filename != __file__]
                if frame:
                    log("at %s:%d" % (frame[-1].filename, frame[-1].lineno))
            else:
                log(traceback.format_exc())
        sys.stdout.flush()
    _cleanup()
    sys.exit(1 if failed else 0)
