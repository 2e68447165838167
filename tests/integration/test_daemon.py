"""scalerd as a daemon: config test mode, supervision of the balancer
workers, reload on SIGHUP, graceful stop."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

from scalertest import *

SCALERD = binary("scalerd")
TOKEN = "test-token-123"
AUTH = {"Authorization": "Bearer " + TOKEN}


def conf_text(redis, admin_port, zones, token=TOKEN, extra=""):
    zs = []
    for name, listen, admin in zones:
        zs.append('{ name = "%s"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 3; }'
                  % (name, listen, admin))
    return """
node = { id = 1; admin = "127.0.0.1:%d"; %s };
cluster = "t%d";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
%s
zones = ( %s );
""" % (admin_port, 'token = "%s";' % token if token else "", admin_port, redis.url(), plugin_dir(),
       tmpdir(), extra, ",\n".join(zs))


def status(port):
    st, body = http_json("GET", "http://127.0.0.1:%d/status" % port, headers=AUTH)
    check_eq(st, 200, "GET /status")
    return body


def zone_status(port, name):
    for z in status(port)["zones"]:
        if z["name"] == name:
            return z
    return None


def answers(port):
    try:
        st, _, body = http("GET", "http://127.0.0.1:%d/health_check" % port, timeout=1)
        return st == 200
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def children_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


@test
def config_test_mode_accepts_the_shipped_config():
    r = subprocess.run([SCALERD, "-t", "-c", os.path.join(srcdir(), "etc/scaler.conf")],
                       capture_output=True, text=True, env=dict(os.environ, SCALER_PLUGIN_DIR=plugin_dir()))
    check_eq(r.returncode, 0, "exit status of scalerd -t on etc/scaler.conf (stderr: %s)" % r.stderr)
    check("valid" in r.stdout, "expected 'valid' in: %r" % r.stdout)


@test
def config_test_mode_reports_a_broken_config_with_file_and_line_and_exits_1():
    path = write_file("broken.conf", 'node = { id = 1; };\nzones = (\n  { name = "a"; min = 5; max = 2; listen = "127.0.0.1:1"; admin = "127.0.0.1:2"; }\n);\n')
    r = subprocess.run([SCALERD, "-t", "-c", path], capture_output=True, text=True)
    check_eq(r.returncode, 1, "exit status for an invalid config")
    check("broken.conf:3:" in r.stderr, "expected 'broken.conf:3:' in: %r" % r.stderr)
    check("max" in r.stderr, "expected the setting 'max' named in: %r" % r.stderr)


@test
def config_test_mode_refuses_an_unknown_plugin_naming_it():
    redis = Redis()
    path = write_file("badplugin.conf", conf_text(redis, free_port(), [], extra='metrics = { plugin = "nosuch"; };'))
    r = subprocess.run([SCALERD, "-t", "-c", path], capture_output=True, text=True)
    redis.stop()
    check_eq(r.returncode, 1, "exit status for an unknown plugin")
    check("metrics_nosuch.so" in r.stderr, "expected the plugin file named in: %r" % r.stderr)


@test
def a_non_loopback_admin_address_without_a_token_is_refused_by_t_and_at_start():
    redis = Redis()
    port = free_port()
    node = conf_text(redis, port, [], token=None).replace('"127.0.0.1:%d"' % port,
                                                          '"0.0.0.0:%d"' % port)
    zone = conf_text(redis, port, [("pub", free_port(), free_port())], token=None)
    zone = re.sub(r'admin = "127\.0\.0\.1:(\d+)"; min', r'admin = "0.0.0.0:\1"; min', zone)
    try:
        for name, text, setting in (("open-node.conf", node, "node.admin"),
                                    ("open-zone.conf", zone, "zones.[0].admin")):
            path = write_file(name, text)
            r = subprocess.run([SCALERD, "-t", "-c", path], capture_output=True, text=True,
                               timeout=30)
            check_eq(r.returncode, 1, "scalerd -t exit status for %s" % name)
            check(re.search(r"%s:\d+: %s: .*not a loopback address and no token"
                            % (re.escape(name), re.escape(setting)), r.stderr),
                  "-t names FILE:LINE: %s: %r" % (setting, r.stderr))
            p = spawn([SCALERD, "-c", path], name="scalerd-" + name)
            rc = p.wait(10)
            check_eq(rc, 1, "exit status of scalerd started with %s" % name)
            check("token" in p.output(), "the reason (token) in the log: %s" % p.output()[-500:])
    finally:
        redis.stop()


class Daemon:
    def __init__(self, zones, name="scalerd", extra=""):
        self.redis = Redis()
        self.admin = free_port()
        self.zones = zones
        self.extra = extra
        self.path = write_file(name + ".conf", conf_text(self.redis, self.admin, zones, extra=extra))
        self.proc = spawn([SCALERD, "-c", self.path], name=name)
        wait_until(lambda: answers(self.admin), 10, "scalerd's admin API")

    def rewrite(self, zones=None, text=None):
        with open(self.path, "w") as f:
            f.write(text if text is not None else conf_text(self.redis, self.admin, zones, extra=self.extra))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin, path)

    def worker_pid(self, zone):
        z = zone_status(self.admin, zone)
        return z and z.get("balancer_pid")

    def stop(self):
        self.proc.stop()
        self.redis.stop()


def three_ports():
    return free_port(), free_port()


@test
def workers_run_per_zone_and_reload_keeps_the_unchanged_ones():
    a, b, c = ("za",) + three_ports(), ("zb",) + three_ports(), ("zc",) + three_ports()
    d = Daemon([a, b])
    try:
        wait_until(lambda: answers(a[2]) and answers(b[2]), 10, "both zones' balancer admin APIs")
        pid_a = wait_until(lambda: d.worker_pid("za"), 5, "pid of zone za's worker")
        pid_b = d.worker_pid("zb")
        check(pid_alive(pid_a) and pid_alive(pid_b), "workers are running")
        check(pid_a in children_of(d.proc.pid), "the worker is a child of scalerd")

        d.rewrite([a, c])  # zb removed, zc added
        d.proc.signal(signal.SIGHUP)
        wait_until(lambda: answers(c[2]), 10, "the added zone's balancer")
        wait_until(lambda: not pid_alive(pid_b), 10, "the removed zone's worker to exit")
        check(not answers(b[2]), "the removed zone's admin API no longer answers")
        check_eq(d.worker_pid("za"), pid_a, "pid of the untouched zone's worker after reload")
        names = [z["name"] for z in status(d.admin)["zones"]]
        check_eq(sorted(names), ["za", "zc"], "zones in /status after reload")
        check_eq(status(d.admin)["config"]["reloads"], 1, "reloads counted")

        # a broken edit: refused, the running config stays
        d.rewrite(text="zones = ( { name = ; } );\n")
        d.proc.signal(signal.SIGHUP)
        wait_until(lambda: status(d.admin)["config"]["reload_failures"] == 1, 5, "the refused reload")
        names = [z["name"] for z in status(d.admin)["zones"]]
        check_eq(sorted(names), ["za", "zc"], "zones still served after a broken reload")
        check(answers(a[2]) and answers(c[2]), "balancers still serve after a broken reload")
        check_eq(d.worker_pid("za"), pid_a, "worker untouched by a broken reload")
        check("scalerd.conf:1" in d.proc.output(), "the log names file:line of the error")

        # POST /reload needs the token, and reports the errors
        st, body = http_json("POST", d.url("/reload"))
        check_eq(st, 401, "POST /reload without a token")
        st, body = http_json("POST", d.url("/reload"), headers={"Authorization": "Bearer " + TOKEN})
        check_eq(st, 400, "POST /reload of a broken file")
        check(body.get("errors"), "the refusal lists errors: %r" % body)
    finally:
        d.stop()


@test
def a_killed_worker_is_restarted_within_2_seconds():
    a = ("zk",) + three_ports()
    d = Daemon([a], name="scalerd-kill")
    try:
        pid = wait_until(lambda: d.worker_pid("zk"), 10, "the zone's worker")
        wait_until(lambda: answers(a[2]), 10, "the zone's balancer")
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: d.worker_pid("zk") not in (None, 0, pid) and answers(a[2]), 2.0,
                   "a new worker serving the zone")
        log("new worker after %.2f s" % (time.monotonic() - t0))
        check_eq(zone_status(d.admin, "zk")["balancer_restarts"], 1, "restarts counted")
    finally:
        d.stop()


@test
def systemd_hears_ready_reloading_and_stopping():
    import socket
    path = os.path.join(tmpdir(), "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    redis = Redis()
    admin = free_port()
    conf = write_file("notify.conf", conf_text(redis, admin, []))
    p = spawn([SCALERD, "-c", conf], env={"NOTIFY_SOCKET": path}, name="scalerd-notify")
    try:
        check_eq(sock.recv(4096), b"READY=1", "first notification")
        check(answers(admin), "the admin API answers once READY=1 was sent")
        p.signal(signal.SIGHUP)
        check_eq(sock.recv(4096), b"RELOADING=1", "notification on SIGHUP")
        check_eq(sock.recv(4096), b"READY=1", "notification after the reload")
        p.signal(signal.SIGTERM)
        check_eq(sock.recv(4096), b"STOPPING=1", "notification on SIGTERM")
        check_eq(p.wait(10), 0, "exit status")
    finally:
        p.kill()
        redis.stop()
        sock.close()


@test
def plugins_export_only_their_descriptor():
    sos = sorted(f for f in os.listdir(plugin_dir()) if f.endswith(".so"))
    check(len(sos) >= 9, "the built plugins: %r" % sos)
    for so in sos:
        out = subprocess.run(["nm", "-D", "--defined-only", os.path.join(plugin_dir(), so)],
                             capture_output=True, text=True).stdout
        syms = sorted(l.split()[-1] for l in out.splitlines() if l.strip())
        check_eq(syms, ["scaler_plugin"], "dynamic symbols defined by " + so)


@test
def a_sighup_during_the_stop_does_not_hang_it():
    a = ("zh",) + three_ports()
    d = Daemon([a], name="scalerd-hupstop")
    wait_until(lambda: d.worker_pid("zh"), 10, "the zone's worker")
    d.proc.signal(signal.SIGTERM)
    time.sleep(0.1)
    d.proc.signal(signal.SIGHUP)
    check_eq(d.proc.wait(15), 0, "exit status after SIGTERM then SIGHUP")
    d.redis.stop()


@test
def workers_run_when_scalerd_is_pid_1():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip("needs root and unshare(1) to run scalerd as pid 1 of a pid namespace")
    redis = Redis()
    admin, listen, zadmin = free_port(), free_port(), free_port()
    conf = write_file("pid1.conf", conf_text(redis, admin, [("zp", listen, zadmin)]))
    p = spawn(["unshare", "--pid", "--fork", "--mount-proc", SCALERD, "-c", conf], name="scalerd-pid1")
    try:
        wait_until(lambda: answers(zadmin), 10, "the zone's balancer under a scalerd that is pid 1")
        time.sleep(0.5)
        z = zone_status(admin, "zp")
        check_eq(z["balancer_restarts"], 0, "worker restarts under pid 1")
    finally:
        p.stop()
        redis.stop()


@test
def sigterm_stops_gracefully_and_leaves_no_child():
    a, b = ("zt1",) + three_ports(), ("zt2",) + three_ports()
    d = Daemon([a, b], name="scalerd-term")
    pids = [wait_until(lambda: d.worker_pid(z), 10, "worker of " + z) for z in ("zt1", "zt2")]
    kids = children_of(d.proc.pid)
    d.proc.signal(signal.SIGTERM)
    rc = d.proc.wait(15)
    check_eq(rc, 0, "exit status after SIGTERM")
    for pid in pids + kids:
        wait_until(lambda: not pid_alive(pid), 2, "child %d to be gone" % pid)
    d.redis.stop()


def send_garbage(port):
    """A request the balancer's admin HTTP server refuses: its status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return c.recv(200).split(b"\r\n")[0].decode("latin-1")


def reset_midway(port):
    """Half a request, then a TCP reset: the server's read fails (a debug line)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /health_check HTTP/1.1\r\n")
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def daemon_with_log(name, level, flags):
    redis = Redis()
    zone = (name,) + three_ports()
    text = conf_text(redis, free_port(), [zone]).replace('level = "debug"', 'level = "%s"' % level)
    p = spawn([SCALERD] + flags + ["-c", write_file(name + ".conf", text)], name=name)
    wait_until(lambda: answers(zone[2]), 10, "the balancer of zone " + name)
    return p, redis, zone[2]


@test
def balancer_workers_log_at_the_level_and_to_the_place_scalerd_is_told():
    # the balancer plugin's HTTP server (libscalerutil linked into the
    # plugin) logs through scalerd: its "400" line is info, below log.level
    p, redis, port = daemon_with_log("scalerd-log-err", "err", [])
    try:
        check(send_garbage(port).startswith("HTTP/1.1 400"), "the garbage request got a 400")
        time.sleep(0.5)
        check("400" not in p.output(),
              "with log.level = err, no info line of the balancer's HTTP server: %s"
              % p.output()[-800:])
    finally:
        p.stop()
        redis.stop()
    # -d reaches the workers: their HTTP server's debug lines are logged
    p, redis, port = daemon_with_log("scalerd-log-d", "err", ["-d"])
    try:
        reset_midway(port)
        wait_until(lambda: "http: 127.0.0.1" in p.output() and "read:" in p.output(), 5,
                   "the debug line of the balancer's HTTP server on a reset connection")
    finally:
        p.stop()
        redis.stop()
    # --syslog reaches the workers: nothing of theirs on stderr
    p, redis, port = daemon_with_log("scalerd-log-syslog", "info", ["--syslog"])
    try:
        check(send_garbage(port).startswith("HTTP/1.1 400"), "the garbage request got a 400")
        time.sleep(0.5)
        check("http: 127.0.0.1" not in p.output() and "scalerd-balancer" not in p.output(),
              "with --syslog nothing of the workers on stderr, got: %s" % p.output()[-800:])
    finally:
        p.stop()
        redis.stop()


@test
def stop_servers_stops_what_the_process_driver_started_and_nothing_else():
    redis = Redis()
    port = free_port()
    lo, hi = free_port_range(20)
    state = os.path.join(tmpdir(), "stop-servers-state")
    os.makedirs(state)
    text = conf_text(redis, port, [("zs", free_port(), free_port())],
                     extra='driver = { plugin = "process"; command = ["%s"]; stop_timeout = 2.0; };'
                     % binary("scaler-app")).replace("min = 0; max = 3;", "min = 2; max = 3; ports = [%d, %d];" % (lo, hi))
    text = re.sub(r'state_dir = "[^"]*";', 'state_dir = "%s";' % state, text)
    path = write_file("stop-servers.conf", text)
    d = spawn([SCALERD, "-c", path], name="scalerd-stop-servers")
    other = spawn(["sleep", "300"], name="not-a-server")
    try:
        wait_until(lambda: answers(port), 10, "scalerd's admin API")

        def serving():
            st, body = http_json("GET", "http://127.0.0.1:%d/servers?zone=zs" % port, headers=AUTH)
            return [s for s in body if s["state"] == "serving"] if st == 200 else []
        wait_until(lambda: len(serving()) == 2, 30, "two serving servers")
        pids = [int(s["ref"].split(":")[0]) for s in serving()]
        check_eq(d.stop(), 0, "scalerd's exit status after SIGTERM")
        check(all(pid_alive(p) for p in pids), "servers outlive a stop of scalerd (by design)")
        r = subprocess.run([SCALERD, "--stop-servers", "-c", path], capture_output=True,
                           text=True, timeout=60)
        check_eq(r.returncode, 0, "scalerd --stop-servers exit status (%s%s)" % (r.stdout, r.stderr))
        check("2 server(s) stopped" in r.stdout, "it says what it stopped: %r" % r.stdout)
        left = [p for p in pids if pid_alive(p)]
        check(not left, "no server left running, found pids %r" % left)
        check(other.alive(), "a process that is not a server is left alone")
        r = subprocess.run([SCALERD, "--stop-servers", "-c", path], capture_output=True,
                           text=True, timeout=60)
        check_eq((r.returncode, "0 server(s) stopped" in r.stdout), (0, True),
                 "a second run finds nothing to stop (%r)" % r.stdout)
    finally:
        d.kill()
        other.kill()
        redis.stop()


@test
def reloads_leave_no_old_configuration_behind():
    redis = Redis()
    port = free_port()
    zones = [("ra", free_port(), free_port()), ("rb", free_port(), free_port())]
    versions = [conf_text(redis, port, zones,
                          extra='driver = { plugin = "process"; command = ["/bin/true"]; };\n'
                                'interval = %s;' % iv) for iv in ("10.0", "11.0")]
    path = write_file("reloads.conf", versions[0])
    d = spawn([SCALERD, "-c", path], name="scalerd-reloads")
    try:
        wait_until(lambda: answers(port), 10, "scalerd's admin API")

        def generations():
            st, _, text = http("GET", "http://127.0.0.1:%d/metrics" % port, headers=AUTH)
            check_eq(st, 200, "GET /metrics")
            m = re.search(rb"(?m)^scaler_config_generations (\d+)$", text)
            check(m, "scaler_config_generations in /metrics")
            return int(m.group(1))
        check_eq(generations(), 1, "configurations in memory after the start")
        for i in range(1, 41):
            write_file("reloads.conf", versions[i % 2])
            st, body = http_json("POST", "http://127.0.0.1:%d/reload" % port, headers=AUTH)
            check_eq(st, 200, "reload %d (%r)" % (i, body))
        # the one in force, and the first one, whose groups the unchanged
        # driver, election and balancer instances still point into
        n = generations()
        check(n <= 3, "40 reloads left %d configurations in memory; expected at most 3" % n)
    finally:
        d.stop()
        redis.stop()


if __name__ == "__main__":
    main()
