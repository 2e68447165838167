"""A data plane that never drops a user: scalerd holds each zone's sockets,
so a worker killed, crash-looping or replaced on reload never closes the
port; a reload swaps workers without a failed request; `workers = N` runs
N processes on the zone's socket with one admin view."""
import os
import re
import signal
import socket
import sys
import time

from scalertest import *

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "balancer"))
from baltest import backend  # noqa: E402
from loadclient import Load  # noqa: E402

SCALERD = binary("scalerd")


def zone_text(name, listen, admin, servers, balancer="", workers=None):
    return ('{ name = "%s"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 0; '
            'servers = [%s]; %s%s }'
            % (name, listen, admin, ", ".join('"%s"' % s for s in servers),
               "workers = %s; " % workers if workers is not None else "",
               "balancer = { %s };" % balancer if balancer else ""))


class Node:
    """scalerd with zones over static servers; zones: list of zone_text."""

    def __init__(self, zones, name="scalerd", extra="", redis_url=None, plugin_dirs=()):
        self.plugin_dirs = ":".join([plugin_dir()] + list(plugin_dirs))
        self.redis = None if redis_url else Redis()
        self.redis_url = redis_url or self.redis.url()
        self.admin = free_port()
        self.name = name
        self.extra = extra
        self.path = write_file(name + ".conf", self.text(zones))
        self.proc = spawn([SCALERD, "-c", self.path], name=name)
        self.started = time.monotonic()

        def up():
            check(self.proc.alive(), "scalerd exited: %s" % self.proc.output()[-1500:])
            return http("GET", self.url("/health_check"), timeout=1)[0] == 200
        wait_until(up, 10, "scalerd's admin API")

    def text(self, zones):
        return ('node = { id = 1; admin = "127.0.0.1:%d"; };\ncluster = "c%d";\nredis = "%s";\n'
                'plugin_dir = "%s";\nstate_dir = "%s";\nlog = { level = "debug"; };\n'
                'drain_timeout = 5.0;\n%s\nzones = ( %s );\n'
                % (self.admin, self.admin, self.redis_url, self.plugin_dirs, tmpdir(), self.extra,
                   ",\n".join(zones)))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin, path)

    def zone(self, name):
        st, body = http_json("GET", self.url("/status"))
        check_eq(st, 200, "GET /status")
        for z in body["zones"]:
            if z["name"] == name:
                return z
        return None

    def pids(self, name):
        z = self.zone(name)
        return z.get("balancer_pids") if z else None

    def reload(self, zones):
        with open(self.path, "w") as f:
            f.write(self.text(zones))
        self.proc.signal(signal.SIGHUP)

    def log(self):
        return self.proc.output()


def serves(port):
    try:
        st, _, _ = http("GET", "http://127.0.0.1:%d/" % port, timeout=2)
        return st == 200
    except OSError:
        return False


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def all_refused(port, tries=16):
    """Every connect refused: with a socket per worker (SO_REUSEPORT) the
    kernel hashes each new connection to one of them, so one try can miss
    a socket left open."""
    return all(refused(port) for _ in range(tries))


def live(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


KEEPALIVE, FRESH = 8, 4


@test
def a_worker_killed_under_load_refuses_nothing_and_fails_only_its_requests_in_flight():
    a, b = backend("kill-a"), backend("kill-b")
    port, admin = free_port(), free_port()
    node = Node([zone_text("z", port, admin, [a.url, b.url])], name="kill")
    wait_until(lambda: serves(port), 10, "the zone to serve")
    pid = node.pids("z")[0]
    load = Load(port, keepalive=KEEPALIVE, fresh=FRESH)
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: node.pids("z")[0] not in (0, pid), 5, "a new worker")
    time.sleep(1.5)
    r = load.stop()
    log("kill -9 under load: %r" % r)
    check_eq(r.refused, 0, "refused connections while the worker was down (%r)" % r)
    check(r.failed <= KEEPALIVE + FRESH,
          "at most one failed request per client connection open on the killed worker "
          "(%d), got %r" % (KEEPALIVE + FRESH, r))
    check(r.ok > 100, "requests served around the kill: %r" % r)
    check(serves(port), "the new worker serves")


@test
def a_reload_that_changes_the_balancer_fails_no_request():
    a, b = backend("rl-a"), backend("rl-b")
    port, admin = free_port(), free_port()
    zones = lambda hi, n: [zone_text("z", port, admin, [a.url, b.url], workers=n,
                                     balancer="health_interval = %.1f;" % hi)]
    node = Node(zones(5.0, 1), name="reload")
    wait_until(lambda: serves(port), 10, "the zone to serve")
    old = node.pids("z")
    load = Load(port, keepalive=KEEPALIVE, fresh=FRESH)
    # a setting, more workers, a setting of two workers, fewer workers
    for i, (hi, n) in enumerate(((6.0, 1), (6.0, 2), (7.0, 2), (7.0, 1))):
        time.sleep(1.0)
        node.reload(zones(hi, n))
        wait_until(lambda: (node.pids("z") or [0])[0] not in [0] + old, 10,
                   "new workers after reload %d" % i)
        wait_until(lambda: not any(live(p) for p in old), 10, "the old workers to drain and exit")
        old = node.pids("z")
        check_eq(len(old), n, "workers after reload %d" % i)
    time.sleep(0.5)
    r = load.stop()
    log("four reloads under load: %r" % r)
    check_eq(r.failed, 0, "failed requests across four reloads (%r)" % r)
    check(r.ok > 100, "requests served across the reloads: %r" % r)


@test
def a_request_in_flight_on_the_old_worker_across_a_reload_completes():
    a = backend("slow-a")
    port, admin = free_port(), free_port()
    zones = lambda hi: [zone_text("z", port, admin, [a.url],
                                  balancer="health_interval = %.1f;" % hi)]
    node = Node(zones(5.0), name="slow")
    wait_until(lambda: serves(port), 10, "the zone to serve")
    old = node.pids("z")[0]
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"GET /slow?s=4 HTTP/1.1\r\nHost: x\r\n\r\n")
    node.reload(zones(6.0))
    wait_until(lambda: node.pids("z")[0] not in (0, old), 10, "a new worker")
    with s, s.makefile("rb") as f:
        out = f.read()  # to the end: the draining worker closes after it
    head = out.split(b"\r\n\r\n", 1)[0].lower()
    check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"slow slow-a\n"),
          "the request sent before the reload gets its whole answer, got %r" % out[:300])
    check(b"connection: close" in head,
          "the old worker answered it while draining (Connection: close): %r" % head)
    check(serves(port), "the new worker serves")


@test
def a_crash_looping_worker_keeps_the_port_bound_and_the_loop_is_logged():
    port, admin = free_port(), free_port()
    # scalerd checks only the global balancer group: a bad zone group makes
    # the worker exit at start, every time; two workers, so each of the
    # zone's two sockets must stay bound through the loop
    node = Node([zone_text("z", port, admin, [], balancer="max_connections = 0;", workers=2)],
                name="crashloop")
    for w in (0, 1):
        wait_until(lambda: "balancer worker %d of zone z is crash-looping" % w in node.log(), 10,
                   "worker %d's crash loop in the log" % w)
    check("socket stays open" in node.log(), "the log says the socket stays open: %s"
          % node.log()[-800:])
    held = []
    for _ in range(3):
        for _ in range(8):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except ConnectionRefusedError:
                check(False, "the zone's port accepts every connection (in the backlog) while "
                      "its workers crash-loop: one was refused")
        time.sleep(0.3)
    for s in held:
        s.close()
    z = node.zone("z")
    check(z["balancer_restarts"] >= 4, "restarts of both workers counted: %r" % z)


@test
def removing_a_zone_closes_its_socket_and_moving_one_opens_the_new_address_first():
    a = backend("mv-a")
    p1, a1, p2, a2, p3 = free_port(), free_port(), free_port(), free_port(), free_port()
    # two workers each: a zone's address is two sockets, both must close
    node = Node([zone_text("one", p1, a1, [a.url], workers=2),
                 zone_text("two", p2, a2, [a.url], workers=2)], name="move")
    wait_until(lambda: serves(p1) and serves(p2), 10, "both zones to serve")
    node.reload([zone_text("one", p3, a1, [a.url], workers=2)])
    wait_until(lambda: serves(p3), 10, "zone one on its new address")
    wait_until(lambda: all_refused(p1), 10, "both of zone one's sockets on its old address to "
               "close")
    wait_until(lambda: all_refused(p2), 10, "both of zone two's sockets to close with the zone")
    check(refused(a2), "zone two's admin address is closed too")
    check(serves(p3), "zone one still serves")
    check(all(serves(p3) for _ in range(8)), "zone one serves every connection on its new "
          "address")


@test
def a_reload_whose_address_cannot_be_bound_is_refused_and_changes_nothing():
    a = backend("busy-a")
    port, admin = free_port(), free_port()
    node = Node([zone_text("z", port, admin, [a.url])], name="busy")
    wait_until(lambda: serves(port), 10, "the zone to serve")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    pid = node.pids("z")[0]
    node.reload([zone_text("z", taken, admin, [a.url])])
    wait_until(lambda: "reload refused" in node.log(), 10, "the reload to be refused")
    check("127.0.0.1:%d" % taken in node.log(), "the log names the address")
    check_eq(node.pids("z")[0], pid, "the worker runs on")
    check(serves(port), "the zone serves on its address")
    busy.close()


@test
def a_worker_whose_state_store_does_not_answer_serves_its_static_servers():
    a = backend("mute-a")
    # a "Redis" that takes connections (the kernel's backlog) and never answers
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(64)
    port, admin = free_port(), free_port()
    node = Node([zone_text("z", port, admin, [a.url])], name="mute",
                redis_url="redis://127.0.0.1:%d" % mute.getsockname()[1])
    wait_until(lambda: serves(port), 10, "the zone to serve its static server without Redis")
    check("zone z: the state store did not answer in time" in node.log(),
          "the worker says why it serves without the state store: %s" % node.log()[-1500:])
    mute.close()


@test
def a_balancer_built_before_abi_1_4_runs_one_worker_that_binds_its_own_socket():
    # tests/plugins/balancer_old.c: serve only, as built against ABI 1.1
    old_dir = os.path.join(builddir(), "tests", "plugins", ".libs")
    port, admin = free_port(), free_port()
    node = Node([zone_text("z", port, admin, [], balancer='plugin = "old";', workers=2)],
                name="oldabi", plugin_dirs=[old_dir])

    def answers():
        try:
            st, _, body = http("GET", "http://127.0.0.1:%d/" % port, timeout=2)
            return st == 200 and body == b"old\n"
        except OSError:
            return False
    wait_until(answers, 10, "the old balancer to answer on the zone's address")
    check('balancer plugin "old" binds its own sockets (plugin ABI < 1.4): one worker, not 2'
          in node.log(), "scalerd says the zone runs one worker, not two: %s"
          % node.log()[-1500:])
    pids = node.pids("z")
    check(len(pids) == 1 and pids[0], "one worker: %r" % pids)
    os.kill(pids[0], signal.SIGKILL)
    wait_until(lambda: (node.pids("z") or [0])[0] not in (0, pids[0]), 10, "a new worker")
    wait_until(answers, 10, "the restarted old balancer to answer (it binds the port again)")


def metrics(admin):
    st, _, body = http("GET", "http://127.0.0.1:%d/metrics" % admin)
    check_eq(st, 200, "GET /metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def backend_stats(b):
    st, _, body = http("GET", b.url + "/stats")
    import json
    return json.loads(body)


@test
def two_workers_share_the_port_and_the_admin_view_adds_them_up():
    a, b = backend("two-a"), backend("two-b")
    port, admin = free_port(), free_port()
    interval = 0.2
    node = Node([zone_text("z", port, admin, [a.url, b.url], workers=2,
                           balancer="health_interval = %.1f;" % interval)], name="two")
    wait_until(lambda: serves(port), 10, "the zone to serve")
    pids = node.pids("z")
    check(len(pids) == 2 and all(pids) and pids[0] != pids[1], "two workers: %r" % pids)
    ok2xx = 'scaler_balancer_responses_total{zone="z",code="2xx"}'
    window = 4
    # the statistics' window below must see both workers' whole life
    time.sleep(max(0, window - 1.5 - (time.monotonic() - node.started)))
    before = metrics(admin)[ok2xx]
    checks0 = [backend_stats(x)["checks"] for x in (a, b)]
    t0 = time.monotonic()
    load = Load(port, keepalive=4, fresh=8)
    time.sleep(2.0)
    r = load.stop()
    elapsed = time.monotonic() - t0
    checks = [backend_stats(x)["checks"] - c for x, c in zip((a, b), checks0)]
    m = metrics(admin)
    per = [m.get('scaler_balancer_worker_responses_total{zone="z",worker="%d"}' % w, 0)
           for w in (0, 1)]
    log("load %r; responses per worker %r; health checks per backend %r in %.1f s"
        % (r, per, checks, elapsed))
    check_eq(r.failed, 0, "failed requests with two workers (%r)" % r)
    check(per[0] > 0 and per[1] > 0, "both workers served some: %r" % per)
    check_eq(m[ok2xx] - before, r.ok, "the zone's 2xx count grew by the load's answers")
    check_eq(sum(per), m[ok2xx], "the workers' responses add up to the zone's")
    st, servers = http_json("GET", "http://127.0.0.1:%d/servers?state=all" % admin)
    check_eq(sum(x["requests_served"] for x in servers), m[ok2xx],
             "GET /servers' requests_served add up over the workers")
    # GET /stats adds the workers' windows up
    st, stats = http_json("GET", "http://127.0.0.1:%d/stats?window=%d" % (admin, window))
    check_eq(st, 200, "GET /stats")
    check("missing" not in stats, "every worker published its window: %r" % stats)
    counted = sum(x["requests"] for x in stats["servers"])
    check(0.9 * r.ok <= counted <= r.ok + 10,
          "requests in GET /stats over both workers: %.0f for %d answered" % (counted, r.ok))
    # one worker checks: a check per interval, not one per worker
    for n in checks:
        check(n <= elapsed / interval + 3,
              "at most %.0f health checks per backend in %.1f s at %.1f s intervals, got %d "
              "(two workers checking would make twice as many)"
              % (elapsed / interval + 3, elapsed, interval, n))


@test
def a_push_reaches_every_worker_and_a_killed_worker_0_restores_from_the_shared_memory():
    a, b, c = backend("push-a"), backend("push-b"), backend("push-c")
    port, admin = free_port(), free_port()
    node = Node([zone_text("z", port, admin, [a.url, b.url], workers=2)], name="push")
    wait_until(lambda: serves(port), 10, "the zone to serve")
    st, _ = http_json("PUT", "http://127.0.0.1:%d/servers" % admin,
                      {"adds": [c.url], "deletes": [a.url]})
    check_eq(st, 200, "PUT /servers")
    wait_until(lambda: sorted(http_json("GET", "http://127.0.0.1:%d/servers" % admin)[1])
               == sorted([b.url, c.url]), 10, "c alive and a gone")
    time.sleep(0.2)
    seen_a = backend_stats(a)["requests"]
    load = Load(port, keepalive=0, fresh=8)
    time.sleep(1.0)
    r = load.stop()
    check_eq(r.failed, 0, "failed requests (%r)" % r)
    check_eq(backend_stats(a)["requests"], seen_a, "no worker sends to the deleted server")
    check(backend_stats(c)["requests"] > 0, "the added server takes requests")
    # worker 0 restarts from what the board holds: the pushed set, at once,
    # while worker 1 serves on
    lead = node.pids("z")[0]
    load = Load(port, keepalive=KEEPALIVE, fresh=FRESH)
    time.sleep(0.5)
    os.kill(lead, signal.SIGKILL)
    wait_until(lambda: node.pids("z")[0] not in (0, lead), 5, "a new worker 0")
    time.sleep(1.0)
    r = load.stop()
    log("worker 0 of two killed under load: %r" % r)
    check_eq(r.refused, 0, "refused connections while worker 0 was down (%r)" % r)
    check(r.failed <= KEEPALIVE + FRESH,
          "at most one failed request per client connection (%d), got %r"
          % (KEEPALIVE + FRESH, r))
    wait_until(lambda: "took 2 server(s) from the zone's shared memory" in node.log(), 5,
               "the new worker 0 to take the set from the shared memory")
    st, servers = http_json("GET", "http://127.0.0.1:%d/servers" % admin)
    check_eq(sorted(servers), sorted([b.url, c.url]), "the restarted worker 0's servers")


if __name__ == "__main__":
    main()
