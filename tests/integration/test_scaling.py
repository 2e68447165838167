"""Scaling end to end with real processes: scalerd (process driver running
scaler-app, http metrics, threshold policy, single election, builtin
balancers) and a throwaway Redis. Short intervals; the seed's rule with
lower thresholds (20 % / 5 %) so the High profile crosses them quickly."""
import json
import os
import signal
import time

from scalertest import *

SCALERD = binary("scalerd")
APP = binary("scaler-app")
TOKEN = "scaling-token"
AUTH = {"Authorization": "Bearer " + TOKEN}


class Cluster:
    def __init__(self, zones=("zone1", "zone2", "zone3"), dry=(), name="scaling", command=None,
                 bounds=(1, 3)):
        self.redis = Redis()
        self.admin = free_port()
        self.state = os.path.join(tmpdir(), name + "-state")
        os.makedirs(self.state, exist_ok=True)
        self.zones = {}
        zs = []
        # one block of ports, 100 per zone: zones' ranges must not overlap
        first, _ = free_port_range(100 * len(zones))
        for i, z in enumerate(zones):
            listen, zadmin = free_port(), free_port()
            base = first + 100 * i
            self.zones[z] = (listen, zadmin)
            zs.append('{ name = "%s"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = %d; max = %d;'
                      ' ports = [%d, %d]; %s }' % (z, listen, zadmin, bounds[0], bounds[1], base, base + 99,
                                                  "dry_run = true;" if z in dry else ""))
        self.conf = write_file(name + ".conf", """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; };
cluster = "%s";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 1.0; cooldown_down = 2.0; drain_timeout = 0.3;
driver = { plugin = "process"; command = [%s]; stop_timeout = 3.0; };
metrics = { plugin = "http"; timeout = 0.5; };
policy = { plugin = "threshold"; max_cpu = 20.0; min_cpu = 5.0; };
balancer = { plugin = "builtin"; health_interval = 0.5; recheck_interval = 0.5; retries = 2;
             report_interval = 0.5; };
zones = ( %s );
""" % (self.admin, TOKEN, name, self.redis.url(), plugin_dir(), self.state,
       ", ".join('"%s"' % a for a in (command or [APP])), ",\n".join(zs)))
        self.name = name
        self.start()

    def start(self):
        self.proc = spawn([SCALERD, "-c", self.conf], name="scalerd-" + self.name)
        wait_until(lambda: http("GET", self.url("/health_check"))[0] == 200, 10, "scalerd's admin API")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin, path)

    def servers(self, zone):
        st, body = http_json("GET", self.url("/servers?zone=" + zone), headers=AUTH)
        check_eq(st, 200, "GET /servers?zone=" + zone)
        return body

    def serving(self, zone):
        return [s for s in self.servers(zone) if s["state"] == "serving"]

    def events(self, zone=None):
        st, body = http_json("GET", self.url("/events" + ("?zone=" + zone if zone else "")), headers=AUTH)
        check_eq(st, 200, "GET /events")
        return body["events"]

    def balancer_alive(self, zone):
        st, body = http_json("GET", "http://127.0.0.1:%d/servers" % self.zones[zone][1], headers=AUTH)
        return body if st == 200 else None

    def set_profile(self, zone, profile):
        for s in self.serving(zone):
            try:
                http("POST", s["address"] + "/load", {"profile": profile}, timeout=2)
            except OSError:
                pass

    def stop(self):
        # the process driver's servers outlive scalerd on purpose (a restarted
        # scalerd adopts them): remove them through the admin API's state
        refs = []
        for z in self.zones:
            try:
                refs += [s["ref"] for s in self.servers(z)]
            except Exception:
                pass
        self.proc.stop()
        for ref in refs:
            kill_process_server(ref)
        self.redis.stop()


def through_balancer(c, zone):
    st, _, body = http("GET", "http://127.0.0.1:%d/stats" % c.zones[zone][0], timeout=3)
    check_eq(st, 200, "GET /stats through the balancer of " + zone)
    return json.loads(body)


C = None


def cluster():
    global C
    if C is None:
        C = Cluster(dry=("zone3",))
    return C


@test
def every_zone_starts_with_one_server_reachable_through_its_balancer():
    c = cluster()
    for z in ("zone1", "zone2"):
        wait_until(lambda: len(c.serving(z)) == 1, 20, "one serving server in " + z)
        wait_until(lambda: c.balancer_alive(z), 10, "the server alive in %s's balancer" % z)
        stats = through_balancer(c, z)
        check_eq(stats["zone"], z, "zone of the server answering through the balancer")
        check_eq(stats["server"], c.serving(z)[0]["id"], "server answering through %s's balancer" % z)


@test
def high_cpu_in_zone1_scales_it_to_max_and_leaves_the_others():
    c = cluster()

    def grown():
        c.set_profile("zone1", "high")  # load spreads to new servers too
        return len(c.serving("zone1")) == 3
    wait_until(grown, 90, "zone1 to scale up to max (3)", interval=1.0)
    wait_until(lambda: len(c.balancer_alive("zone1") or []) == 3, 10, "3 servers alive in zone1's balancer")
    check_eq(len(c.servers("zone2")), 1, "servers in zone2")
    ups = [e for e in c.events("zone1") if e["kind"] == "scale_up"]
    check(len(ups) >= 2, "scale_up events in zone1: %r" % ups)
    check(all(e["zone"] == "zone1" for e in ups), "events of zone1 only")
    check_eq([e for e in c.events("zone2") if e["kind"] in ("scale_up", "scale_down")], [],
             "scaling events in zone2")


@test
def a_dry_run_zone_records_its_decisions_and_creates_nothing():
    c = cluster()
    wait_until(lambda: [e for e in c.events("zone3") if e["kind"] == "dry_run"], 10,
               "a dry_run event in zone3")
    ev = [e for e in c.events("zone3") if e["kind"] == "dry_run"][0]
    check_eq((ev["from"], ev["to"], ev.get("would")), (0, 1, "fill"), "the dry-run decision")
    time.sleep(1.0)
    check_eq(c.servers("zone3"), [], "servers in the dry-run zone")


@test
def low_cpu_scales_zone1_back_to_min_after_the_cooldown():
    c = cluster()
    c.set_profile("zone1", "low")
    wait_until(lambda: c.set_profile("zone1", "low") or len(c.servers("zone1")) == 1, 90,
               "zone1 back to min (1)", interval=1.0)
    wait_until(lambda: len(c.balancer_alive("zone1") or []) == 1, 10, "1 server alive in zone1's balancer")
    downs = [e for e in c.events("zone1") if e["kind"] == "scale_down"]
    check_eq(len(downs), 2, "scale_down events in zone1 (3 -> 2 -> 1)")
    gap = downs[1]["time"] - downs[0]["time"]
    check(gap >= 1.9, "scale-downs at least cooldown_down (2 s) apart, got %.2f s" % gap)


@test
def an_unhealthy_server_is_reported_dead_and_replaced():
    c = cluster()
    old = c.serving("zone2")[0]
    pid = int(old["ref"].split(":")[0])
    st, _, _ = http("POST", old["address"] + "/health", {"healthy": False})
    check_eq(st, 200, "POST /health false")

    def replaced():
        s = c.serving("zone2")
        return len(s) == 1 and s[0]["id"] != old["id"]
    wait_until(replaced, 20, "a new server replacing %s" % old["id"])
    wait_until(lambda: not os.path.exists("/proc/%d" % pid), 10, "the dead server's process to be gone")
    kinds = [e["kind"] for e in c.events("zone2")]
    check("replace" in kinds, "a replace event in zone2: %r" % kinds)
    wait_until(lambda: c.balancer_alive("zone2") == [c.serving("zone2")[0]["address"]], 10,
               "the balancer to serve the replacement")


@test
def a_balancer_worker_killed_under_load_serves_the_same_servers_within_2_seconds():
    import threading
    c = cluster()
    st, status = http_json("GET", c.url("/status"), headers=AUTH)
    z1 = [z for z in status["zones"] if z["name"] == "zone1"][0]
    want = sorted(s["address"] for s in z1["servers"] if s["state"] == "serving")
    results = []  # (monotonic time, answered 200)
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                ok = http("GET", "http://127.0.0.1:%d/stats" % c.zones["zone1"][0], timeout=1)[0] == 200
            except OSError:
                ok = False
            results.append((time.monotonic(), ok))
            time.sleep(0.005)
    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(0.5)
        os.kill(z1["balancer_pid"], signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: sorted(c.balancer_alive("zone1") or []) == want, 2.0,
                   "the restarted worker to serve %r" % want, interval=0.02)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    failed = [r for r in results if not r[1]]
    check(all(ok for at, ok in results if at < t0), "requests before the kill all answered")
    recovered = max((at for at, ok in failed), default=t0) - t0
    log("%d requests, %d failed; served again %.2f s after the kill" % (len(results), len(failed), recovered))
    check(recovered < 2.0, "requests failing for %.2f s after the kill (expected < 2 s)" % recovered)
    check(results[-1][1] and sum(1 for at, ok in results if at > t0 + 2.0 and not ok) == 0,
          "every request answered from 2 s after the kill")


@test
def dead_reports_need_the_token_and_unknown_servers_are_ignored():
    c = cluster()
    body = {"zone": "zone1", "dead": ["http://127.0.0.1:1"]}
    st, _ = http_json("PUT", c.url("/report"), body)
    check_eq(st, 401, "PUT /report without the token")
    auth = {"Authorization": "Bearer " + TOKEN}
    st, reply = http_json("PUT", c.url("/report"), body, headers=auth)
    check_eq(st, 200, "PUT /report naming an unknown server")
    check_eq(reply["unknown"], ["http://127.0.0.1:1"], "unknown servers in the answer")
    check_eq(len(c.servers("zone1")), 1, "servers in zone1 after a report of an unknown server")
    for bad in ('{"zone": "zone1", "dead": "x"}', '{"zone": 3, "dead": []}', '[', '{"dead": [1]}'):
        st, _ = http_json("PUT", c.url("/report"), bad, headers=dict(auth, **{"Content-Type": "application/json"}))
        check_eq(st, 400, "PUT /report with body %s" % bad)
    st, reply = http_json("PUT", c.url("/report"), {"zone": "nosuch", "dead": []}, headers=auth)
    check_eq(st, 404, "PUT /report for an unknown zone")


@test
def scale_requests_are_validated():
    c = cluster()
    auth = {"Authorization": "Bearer " + TOKEN}
    for body, want in (({"zone": "zone2", "count": 4294967296}, 400), ({"zone": "zone2", "count": -1}, 400),
                       ({"zone": "zone2", "count": "2"}, 400), ({"zone": "zone2", "count": 9}, 400),
                       ({"zone": "zone2", "count": 2, "for": -5}, 400), ({"zone": "nosuch", "count": 1}, 404),
                       ({"zone": "zone2"}, 400)):
        st, _ = http_json("POST", c.url("/scale"), body, headers=auth)
        check_eq(st, want, "POST /scale %r" % body)
    st, _ = http_json("POST", c.url("/scale"), {"zone": "zone2", "count": 2})
    check_eq(st, 401, "POST /scale without the token")
    check_eq(len(c.servers("zone2")), 1, "servers of zone2 after refused scale requests")


@test
def status_and_metrics_explain_the_zones():
    c = cluster()
    st, status = http_json("GET", c.url("/status"), headers=AUTH)
    check_eq(st, 200, "GET /status")
    z1 = [z for z in status["zones"] if z["name"] == "zone1"][0]
    check(z1["last_decision"] and z1["last_decision"]["reason"], "zone1's last decision has a reason: %r" % z1)
    check("cooldown_remaining" in z1 and z1["servers"][0]["state"] == "serving", "zone1 in /status: %r" % z1)
    st, _, text = http("GET", c.url("/metrics"), headers=AUTH)
    check_eq(st, 200, "GET /metrics")
    text = text.decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            values[k] = float(v)
    check(values.get('scaler_evaluations_total{zone="zone1"}', 0) > 10, "evaluations of zone1 counted")
    check(values.get('scaler_decisions_total{zone="zone1",kind="scale_up"}', 0) >= 2, "scale-ups counted")
    check_eq(values.get('scaler_servers{zone="zone2",state="serving"}'), 1.0, "serving servers of zone2")
    check(values.get('scaler_driver_calls_total{op="create"}', 0) >= 4, "driver creates counted")
    check_eq(values.get("scaler_primary"), 1.0, "scaler_primary")


@test
def a_restarted_scalerd_adopts_the_running_servers():
    c = cluster()
    before = {z: sorted(s["id"] for s in c.servers(z)) for z in c.zones}
    c.proc.signal(signal.SIGKILL)
    c.proc.wait(5)
    c.start()
    wait_until(lambda: all(len(c.serving(z)) == len(before[z]) for z in c.zones), 20,
               "the servers to be loaded again")
    time.sleep(1.5)  # a few evaluations: nothing must be created or deleted
    after = {z: sorted(s["id"] for s in c.servers(z)) for z in c.zones}
    check_eq(after, before, "servers after scalerd was killed and restarted")
    st, status = http_json("GET", c.url("/status"), headers=AUTH)
    check(status["node"]["epoch"] >= 2, "a new epoch after the restart: %r" % status["node"])


@test
def zz_stop_cluster():
    if C:
        C.stop()


@test
def lowering_max_by_reload_removes_the_surplus():
    c = Cluster(zones=("trim",), name="trim", bounds=(2, 2))
    try:
        wait_until(lambda: len(c.serving("trim")) == 2, 20, "2 serving servers")
        with open(c.conf) as f:
            text = f.read()
        with open(c.conf, "w") as f:
            f.write(text.replace("min = 2; max = 2;", "min = 1; max = 1;"))
        c.proc.signal(signal.SIGHUP)
        wait_until(lambda: len(c.servers("trim")) == 1, 15, "the zone trimmed to its new max (1)")
        check(any(e["kind"] == "scale_down" and e["rule"] == "max" for e in c.events("trim")),
              "a scale_down event with rule max")
    finally:
        c.stop()


@test
def a_scalerd_killed_while_a_server_starts_finishes_it_after_restart():
    # servers that take 2 s to come up leave a "starting" record to repair
    c = Cluster(zones=("slow",), name="slowstart",
                command=["/bin/sh", "-c", "sleep 2; exec %s" % APP])
    try:
        def starting():
            raw = c.redis.cli_raw("HGETALL", "slowstart:servers:slow")
            recs = [json.loads(x) for x in raw[1::2]]
            return [r for r in recs if r["state"] == "starting" and r["address"]]
        recs = wait_until(starting, 10, "a starting record with an address")
        c.proc.signal(signal.SIGKILL)
        c.proc.wait(5)
        check_eq(len(starting()), 1, "the record is still starting after the kill")
        c.start()
        wait_until(lambda: [s["id"] for s in c.serving("slow")] == [recs[0]["id"]], 15,
                   "the same server %s serving after the restart" % recs[0]["id"])
        time.sleep(1.0)
        check_eq([s["id"] for s in c.servers("slow")], [recs[0]["id"]], "servers of the zone (none created twice)")
        wait_until(lambda: c.balancer_alive("slow") == [recs[0]["address"]], 5, "the server in the balancer")
    finally:
        c.stop()


if __name__ == "__main__":
    main()
