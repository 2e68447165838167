"""The process driver (driver_process.so) through the real plugin loader,
driven by tests/driverctl: servers are real processes on this host."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from scalertest import *

PORT_MIN = None


def driverctl_path():
    return binary("tests/driverctl")


def app_command(www):
    """scaler-app when it is built, else a small Python HTTP server that
    answers /health_check (both take their port from $PORT)."""
    app = binary("scaler-app")
    if os.access(app, os.X_OK) and not os.environ.get("SCALERTEST_PYTHON_APP"):
        return [app]
    return ["sh", "-c", 'exec %s -m http.server -b 127.0.0.1 -d %s "$PORT"' % (sys.executable, www)]



class Driver:
    """A process-driver config plus helpers to run driverctl against it."""

    counter = 0

    def __init__(self, command=None, stop_timeout=3, env=None, extra="", ports=None):
        Driver.counter += 1
        self.dir = os.path.join(tmpdir(), "drv%d" % Driver.counter)
        self.www = os.path.join(self.dir, "www")
        self.logs = os.path.join(self.dir, "logs")
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.www)
        with open(os.path.join(self.www, "health_check"), "w") as f:
            f.write("ok\n")
        self.port_min, self.port_max = ports or free_port_range(20)
        cmd = command or app_command(self.www)
        envs = env or ["SCALER_TEST=yes"]
        self.conf = os.path.join(self.dir, "driverctl.conf")
        with open(self.conf, "w") as f:
            f.write('cluster = "ptest";\n')
            f.write("driver = {\n  plugin = \"process\";\n")
            f.write("  command = [%s];\n" % ", ".join(json.dumps(c) for c in cmd))
            f.write("  env = [%s];\n" % ", ".join(json.dumps(e) for e in envs))
            f.write('  log_dir = "%s";\n  state_dir = "%s";\n' % (self.logs, self.state))
            f.write("  stop_timeout = %s;\n%s\n};\n" % (stop_timeout, extra))
            f.write('zones = ( { name = "z1"; port_min = %d; port_max = %d; },\n'
                    '          { name = "z2"; port_min = %d; port_max = %d; } );\n'
                    % (self.port_min, self.port_max, self.port_min, self.port_max))
        self.pids = []
        atexit_kill(self)

    def run(self, *cmds, expect_ok=True, preexec_fn=None, env=None):
        """Run commands (each a list) in one driverctl process; list of replies.
        env: variables added to driverctl's (scalerd's) environment."""
        argv = [driverctl_path(), "-d", plugin_dir(), "-c", self.conf]
        for i, c in enumerate(cmds):
            if i:
                argv.append(";")
            argv += [str(a) for a in c]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                           preexec_fn=preexec_fn, env=dict(os.environ, **(env or {})))
        replies = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        if expect_ok:
            bad = [x for x in replies if not x.get("ok")]
            check(r.returncode == 0 and not bad and len(replies) == len(cmds),
                  "driverctl %s: expected every command to succeed, got exit %d, replies %r,"
                  " stderr:\n%s" % (cmds, r.returncode, replies, r.stderr))
        for x in replies:
            srv = x.get("server")
            if srv and srv.get("ref"):
                self.pids.append(int(srv["ref"].split(":")[0]))
        self.stderr = r.stderr
        return replies

    def create(self, zone, sid):
        return self.run(["create", zone, sid])[0]["server"]

    def list(self):
        return {s["id"]: s for s in self.run(["list"])[0]["servers"]}


_drivers = []


def atexit_kill(d):
    _drivers.append(d)


def _kill_all():
    for d in _drivers:
        for pid in d.pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


import atexit
atexit.register(_kill_all)


def pid_of(srv):
    return int(srv["ref"].split(":")[0])


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def answers(srv):
    # urllib: scalertest.http() shadows the http module it needs
    import urllib.request
    with urllib.request.urlopen(srv["address"] + "/health_check", timeout=1) as r:
        return r.status == 200


def proc_env(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)


@test
def a_created_server_runs_its_command_with_port_zone_and_id():
    d = Driver()
    srv = d.create("z1", "z1-a")
    check_eq(srv["zone"], "z1", "zone of the created server")
    port = int(srv["address"].rsplit(":", 1)[1])
    check(d.port_min <= port <= d.port_max,
          "port %d should be in the zone's range %d-%d" % (port, d.port_min, d.port_max))
    check_eq(srv["address"], "http://127.0.0.1:%d" % port, "address")
    pid = pid_of(srv)
    env = proc_env(pid)
    check_eq((env.get("PORT"), env.get("ZONE"), env.get("SERVER_ID"), env.get("SCALER_TEST")),
             (str(port), "z1", "z1-a", "yes"), "PORT, ZONE, SERVER_ID and configured env")
    check_eq(os.getsid(pid), pid, "the server leads its own session")
    wait_until(lambda: answers(srv), 10, "the server to answer /health_check")
    check(os.path.exists(os.path.join(d.logs, "z1-a.log")), "log file <log_dir>/z1-a.log exists")
    with open(os.path.join(d.state, "z1-a.json")) as f:
        rec = json.load(f)
    check_eq((rec["id"], rec["zone"], rec["ref"], rec["address"]),
             ("z1-a", "z1", srv["ref"], srv["address"]), "state file record")
    d.run(["remove", "z1-a"])


@test
def a_server_listens_on_host_address_and_never_gets_the_cluster_token():
    d = Driver()
    token = {"SCALER_TOKEN": "cluster-admin-token-0123456789", "HOST": "0.0.0.0"}
    srv = d.run(["create", "z1", "z1-h"], env=token)[0]["server"]
    env = proc_env(pid_of(srv))
    check_eq(env.get("HOST"), "127.0.0.1",
             "HOST of a server: host_address, not what scalerd inherited")
    check("SCALER_TOKEN" not in env, "scalerd's SCALER_TOKEN must not reach a server: %r"
          % sorted(env))
    wait_until(lambda: answers(srv), 10, "the server to answer at its address")
    d.run(["remove", "z1-h"])
    # (not an address of this namespace: a command that only waits)
    d = Driver(command=["sleep", "1000"], extra='  host_address = "198.18.0.1";')
    srv = d.create("z1", "z1-x")
    check_eq((srv["address"].rsplit(":", 1)[0], proc_env(pid_of(srv)).get("HOST")),
             ("http://198.18.0.1", "198.18.0.1"), "address and HOST with host_address 198.18.0.1")
    d.run(["remove", "z1-x"])
    d = Driver(env=["HOST=0.0.0.0", "SCALER_TEST=yes"])
    srv = d.create("z1", "z1-any")
    check_eq(proc_env(pid_of(srv)).get("HOST"), "0.0.0.0", "HOST set in the driver's env wins")
    d.run(["remove", "z1-any"])


@test
def list_finds_every_server_and_remove_stops_only_that_one():
    d = Driver()
    a = d.create("z1", "z1-a")
    b = d.create("z2", "z2-b")
    check(a["address"] != b["address"], "two servers get two ports")
    got = d.list()
    check_eq(sorted(got), ["z1-a", "z2-b"], "listed servers")
    check(got["z1-a"]["running"] and got["z2-b"]["running"], "both listed as running")
    d.run(["remove", "z1-a"])
    check(not alive(pid_of(a)), "removed server's process should be gone")
    check(alive(pid_of(b)), "the other server still runs")
    check_eq(sorted(d.list()), ["z2-b"], "servers listed after removing z1-a")
    check(not os.path.exists(os.path.join(d.state, "z1-a.json")), "state file of z1-a removed")
    d.run(["remove", "z2-b"])
    check_eq(d.list(), {}, "nothing listed after removing both")


@test
def create_and_remove_in_one_scalerd_reap_the_child():
    d = Driver()
    r = d.run(["create", "z1", "c1"], ["wait", "0.3"], ["remove", "c1"], ["list"])
    pid = pid_of(r[0]["server"])
    check(not alive(pid), "process %d should be gone (reaped, not a zombie)" % pid)
    check_eq(r[3]["servers"], [], "list after remove")


@test
def a_server_killed_from_outside_is_gone_from_list():
    d = Driver()
    a = d.create("z1", "z1-a")
    d.create("z1", "z1-b")
    os.killpg(pid_of(a), signal.SIGKILL)
    wait_until(lambda: not alive(pid_of(a)), 5, "the killed process to disappear")
    check_eq(sorted(d.list()), ["z1-b"], "servers listed after z1-a was killed")
    check(not os.path.exists(os.path.join(d.state, "z1-a.json")),
          "the dead server's state file is dropped")
    # removing it all the same is not an error
    d.run(["remove", "z1-a", "z1", a["ref"]])
    d.run(["remove", "z1-b"])


@test
def a_restarted_scalerd_adopts_the_servers_that_still_run():
    d = Driver()
    a = d.create("z1", "z1-a")  # that driverctl has exited: a "restart"
    wait_until(lambda: answers(a), 10, "z1-a to answer")
    got = d.list()
    check("z1-a" in got, "the new instance lists z1-a (got %r)" % sorted(got))
    check_eq((got["z1-a"]["ref"], got["z1-a"]["address"], got["z1-a"]["running"]),
             (a["ref"], a["address"], True), "adopted server's ref, address, running")
    # a new server does not take the adopted one's port
    b = d.create("z1", "z1-b")
    check(b["address"] != a["address"], "new server must not reuse the port of a live one")
    d.run(["remove", "z1-a"], ["remove", "z1-b"])
    check(not alive(pid_of(a)) and not alive(pid_of(b)), "both processes gone after remove")


@test
def a_recycled_pid_is_not_mistaken_for_the_server():
    d = Driver()
    a = d.create("z1", "z1-a")
    path = os.path.join(d.state, "z1-a.json")
    with open(path) as f:
        rec = json.load(f)
    pid, start = rec["ref"].split(":")
    rec["ref"] = "%s:%d" % (pid, int(start) + 1)  # same pid, another start time
    with open(path, "w") as f:
        json.dump(rec, f)
    check_eq(d.list(), {}, "a record whose start time differs is not a live server")
    os.killpg(pid_of(a), signal.SIGKILL)


@test
def a_reload_applies_new_settings_and_keeps_the_servers():
    d = Driver(env=["GEN=1"])
    d2 = Driver(env=["GEN=2"], ports=(d.port_min, d.port_max))
    with open(d2.conf) as f:  # same directories as d: only the env differs
        text = f.read().replace(d2.logs, d.logs).replace(d2.state, d.state)
    with open(d2.conf, "w") as f:
        f.write(text)
    r = d.run(["create", "z1", "g1"], ["reload", d2.conf], ["create", "z1", "g2"], ["list"])
    check_eq((proc_env(pid_of(r[0]["server"]))["GEN"], proc_env(pid_of(r[2]["server"]))["GEN"]),
             ("1", "2"), "GEN of the servers created before and after the reload")
    check_eq(sorted(s["id"] for s in r[3]["servers"]), ["g1", "g2"], "servers listed after the reload")
    bad = os.path.join(tmpdir(), "bad-reload.conf")
    with open(bad, "w") as f:
        f.write('driver = { plugin = "process"; stop_timeout = "soon"; };\n')
    r = d.run(["reload", bad], ["list"], expect_ok=False)
    check(not r[0]["ok"] and "stop_timeout" in d.stderr, "a bad reload is refused naming the setting")
    check_eq(sorted(s["id"] for s in r[1]["servers"]), ["g1", "g2"], "servers kept after a bad reload")
    d.run(["remove", "g1"], ["remove", "g2"])


@test
def a_server_that_ignores_sigterm_is_killed_after_stop_timeout():
    d = Driver(command=["sh", "-c", "trap '' TERM; exec sleep 1000"], stop_timeout=1)
    a = d.create("z1", "stubborn")
    time.sleep(0.2)
    start = time.monotonic()
    d.run(["remove", "stubborn"])
    took = time.monotonic() - start
    check(not alive(pid_of(a)), "the process should be gone")
    check(0.9 <= took < 5, "remove should take about stop_timeout (1 s), took %.1fs" % took)


@test
def a_missing_program_is_a_clear_error_and_leaves_nothing():
    d = Driver(command=["/nonexistent/scaler-app"])
    r = d.run(["create", "z1", "x"], expect_ok=False)[0]
    check(not r["ok"] and "/nonexistent/scaler-app" in r["error"],
          "expected an error naming the program, got %r" % r)
    d2 = Driver(command=["no-such-program-anywhere"])
    r = d2.run(["create", "z1", "x"], expect_ok=False)[0]
    check(not r["ok"] and "no such program in PATH" in r["error"],
          "expected 'no such program in PATH', got %r" % r)
    check(not os.path.exists(os.path.join(d.state, "x.json")), "no state file left")
    check_eq(d.list(), {}, "nothing listed")


@test
def a_server_that_cannot_be_recorded_never_runs():
    marker = os.path.join(tmpdir(), "ran-unrecorded")
    d = Driver(command=["sh", "-c", "touch %s; exec sleep 1000" % marker])
    os.makedirs(os.path.join(d.state, "x.json.tmp"))  # the state file cannot be written
    r = d.run(["create", "z1", "x"], ["wait", "0.5"], expect_ok=False)[0]
    check(not r["ok"] and "cannot record server x" in r["error"],
          "expected 'cannot record server x', got %r" % r)
    check(not os.path.exists(marker), "the command must not have run without a record")
    check_eq(d.list(), {}, "nothing listed")


@test
def bad_input_is_refused_with_a_clear_error():
    d = Driver()
    r = d.run(["create", "z1", "../escape"], expect_ok=False)[0]
    check("not valid" in r.get("error", ""), "bad server id refused, got %r" % r)
    d.create("z1", "dup")
    r = d.run(["create", "z1", "dup"], expect_ok=False)[0]
    check("already exists" in r.get("error", ""), "duplicate id refused, got %r" % r)
    d.run(["remove", "dup"])
    bad = Driver(extra="  envv = 3;")
    r = bad.run(["list"], expect_ok=False)
    check("envv" in bad.stderr and "unknown setting" in bad.stderr and "driverctl.conf:" in bad.stderr,
          "unknown setting named with file and line, got stderr:\n%s" % bad.stderr)
    bad = Driver(env=["NOEQUALS"])
    bad.run(["list"], expect_ok=False)
    check("NAME=value" in bad.stderr, "env entry without '=' refused, got:\n%s" % bad.stderr)


@test
def ports_skip_busy_ones_and_a_full_range_is_an_error():
    base, _ = free_port_range(3)
    d = Driver(ports=(base, base + 1))
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", base))
    busy.listen(1)
    try:
        a = d.create("z1", "a")
        check_eq(a["address"], "http://127.0.0.1:%d" % (base + 1), "first free port of the range")
        r = d.run(["create", "z1", "b"], expect_ok=False)[0]
        check(not r["ok"] and "no free port" in r["error"],
              "expected 'no free port', got %r" % r)
    finally:
        busy.close()
    d.run(["remove", "a"])


@test
def a_server_inherits_no_fd_blocked_or_ignored_signal_from_scalerd():
    out = os.path.join(tmpdir(), "inherit")
    os.makedirs(out)
    # the masks are read by the exec'd grep itself: a shell blocks every
    # signal for a moment whenever it forks, so reading the shell's is racy
    script = ("ls /proc/$$/fd > %s/fds; exec grep -E '^Sig(Blk|Ign)' /proc/self/status > %s/sigs"
              % (out, out))
    d = Driver(command=["sh", "-c", script])

    def hostile():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGTERM])
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # glibc's internal real-time signals, ignored the way make leaves them
        libc = __import__("ctypes").CDLL(None, use_errno=True)
        buf = (__import__("ctypes").c_ulong * 4)(1, 0, 0, 0)  # SIG_IGN, no flags
        if os.uname().machine == "x86_64":
            for sig in (32, 33):
                libc.syscall(13, sig, buf, None, 8)  # rt_sigaction
        fd = os.open("/dev/null", os.O_RDONLY)
        os.set_inheritable(fd, True)  # an fd without CLOEXEC
    a = d.run(["create", "z1", "a"], preexec_fn=hostile)[0]["server"]
    wait_until(lambda: os.path.exists(out + "/sigs") and open(out + "/sigs").read().count("\n") == 2,
               5, "the server to report its fds and signals")
    fds = sorted(int(x) for x in open(out + "/fds").read().split())
    # sh's own fd for the ls redirection may appear as 3
    check(fds[:3] == [0, 1, 2] and len(fds) <= 4, "expected only fds 0,1,2 (+ the shell's own), got %r" % fds)
    sigs = dict(line.split(":") for line in open(out + "/sigs").read().splitlines())
    check_eq({k: int(v.strip(), 16) for k, v in sigs.items()}, {"SigBlk": 0, "SigIgn": 0},
             "blocked and ignored signal masks of the server")
    d.run(["remove", "a", "z1", a["ref"]])  # grep has exited by now


if __name__ == "__main__":
    if not os.access(driverctl_path(), os.X_OK):
        print("1..0 # SKIP tests/driverctl is not built")
        sys.exit(0)
    main()
