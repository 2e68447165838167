"""Scale to zero and back with real processes: scalerd (process driver
running scaler-app, single election, builtin balancer) and a throwaway
Redis. A zone with min = 0 and no server holds the requests that arrive,
wakes the primary (POST /wake), which starts a server at once; the held
requests reach it in order with their bodies; once idle for idle_timeout
the zone goes back to zero, and wakes again."""
import os
import threading
import time

from scalertest import *

SCALERD = binary("scalerd")
APP = binary("scaler-app")
TOKEN = "zero-token"
AUTH = {"Authorization": "Bearer " + TOKEN}


class Zone:
    """scalerd with one zone at min = 0."""

    def __init__(self, name="zero", policy='plugin = "threshold"; max_cpu = 80.0; min_cpu = 5.0;',
                 metrics='plugin = "http"; timeout = 0.5;', idle_timeout=2.0, driver=None):
        self.redis = Redis()
        self.admin, self.listen, self.zadmin = free_port(), free_port(), free_port()
        self.state = os.path.join(tmpdir(), name + "-state")
        os.makedirs(self.state, exist_ok=True)
        first, _ = free_port_range(100)
        self.conf = write_file(name + ".conf", """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; };
cluster = "%s";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 1.0; drain_timeout = 0.2; idle_timeout = %g;
driver = { %s };
metrics = { %s };
policy = { %s };
balancer = { plugin = "builtin"; health_interval = 0.5; hold_timeout = 20.0; };
zones = ( { name = "zone1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 2;
            ports = [%d, %d]; } );
""" % (self.admin, TOKEN, name, self.redis.url(), plugin_dir(), self.state, idle_timeout,
       driver or 'plugin = "process"; command = ["%s"]; stop_timeout = 3.0;' % APP,
       metrics, policy, self.listen, self.zadmin, first, first + 99))
        self.name = name
        self.eng = None
        self.proc = spawn([SCALERD, "-c", self.conf], name="scalerd-" + name)
        wait_until(lambda: http("GET", self.url("/health_check"))[0] == 200, 10,
                   "scalerd's admin API")
        wait_until(lambda: self.balancer_stats() is not None, 10, "the zone's balancer")
        # primary, and the zone loaded: its first evaluation holds at zero
        wait_until(lambda: self.last_decision(), 10, "the zone's first evaluation")
        check_eq(self.last_decision()["rule"], "at zero", "the first decision of a zone at zero")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin, path)

    def last_decision(self):
        st, body = http_json("GET", self.url("/status"), headers=AUTH)
        if st != 200:
            return None
        return [z for z in body["zones"] if z["name"] == "zone1"][0]["last_decision"]

    def servers(self):
        st, body = http_json("GET", self.url("/servers?zone=zone1"), headers=AUTH)
        check_eq(st, 200, "GET /servers")
        return body

    def events(self, kind=None):
        st, body = http_json("GET", self.url("/events?zone=zone1"), headers=AUTH)
        check_eq(st, 200, "GET /events")
        return [e for e in body["events"] if kind is None or e["kind"] == kind]

    def balancer_stats(self):
        try:
            st, body = http_json("GET", "http://127.0.0.1:%d/stats?window=1" % self.zadmin,
                                 headers=AUTH)
        except OSError:
            return None
        return body if st == 200 else None

    def request(self, method, path, body=None):
        return http(method, "http://127.0.0.1:%d%s" % (self.listen, path), body=body,
                    timeout=30)

    def stop(self):
        refs = [s["ref"] for s in self.servers()]
        self.proc.stop()
        if self.eng:
            for c in self.eng.containers(label="scaler.cluster=" + self.name):
                self.eng.remove(c["Id"])
        else:
            for ref in refs:
                kill_process_server(ref)
        self.redis.stop()


def burst(zone, n):
    """n requests at once, every third a POST /echo with a body of its own;
    returns [(status, body, expected body)]."""
    out = [None] * n

    def one(i):
        if i % 3 == 0:
            want = ("body %d " % i).encode() * (50 + i)
            st, _, body = zone.request("POST", "/echo", want)
            out[i] = (st, body, want)
        else:
            st, _, body = zone.request("GET", "/health_check")
            out[i] = (st, body, None)
    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(40)
    return out


def check_answers(out, what):
    for i, r in enumerate(out):
        check(r is not None, "%s: request %d was answered" % (what, i))
        st, body, want = r
        check_eq(st, 200, "%s: status of request %d" % (what, i))
        if want is not None:
            check_eq(body, want, "%s: the body request %d sent, echoed" % (what, i))


@test
def a_zone_at_zero_wakes_on_requests_and_serves_them_all_then_goes_back_to_zero_and_again():
    z = Zone()
    try:
        time.sleep(1.0)
        check_eq(z.servers(), [], "servers of a zone at min = 0 that saw no request")
        check_eq(z.events("hold"), [], "no hold event: at zero nothing is blocked")
        out = burst(z, 12)
        check_answers(out, "first wake-up")
        wakes = z.events("wake")
        check_eq(len(wakes), 1, "one wake event for the burst: %r" % wakes)
        check_eq((wakes[0]["from"], wakes[0]["to"]), (0, 1), "the wake goes 0 -> 1")
        check("wait at the balancer" in wakes[0]["reason"], "its reason: %r" % wakes[0])
        check_eq(len([s for s in z.servers() if s["state"] == "serving"]), 1, "serving servers")
        # idle: after idle_timeout the policy (min_cpu 5 %, count above min 0) removes it
        wait_until(lambda: z.servers() == [], 20, "the idle zone back at zero")
        out = burst(z, 6)
        check_answers(out, "second wake-up")
        check_eq(len(z.events("wake")), 2, "a second wake event")
    finally:
        z.stop()


@test
def with_the_docker_driver_a_zone_at_zero_wakes_and_serves_every_request():
    from dockertest import DockerUnavailable, app_image, engine
    try:
        eng = engine()
        image = app_image(eng, APP)
    except DockerUnavailable as e:
        skip(str(e))
    z = Zone(name="zero-dk%d" % free_port(), metrics='plugin = "balancer";',
             policy='plugin = "concurrency"; target = 10; stable_window = 10;', idle_timeout=30,
             driver='plugin = "docker"; host = "%s"; image = "%s"; network = "host"; '
                    'stop_timeout = 2.0;' % (eng.host, image))
    z.eng = eng
    try:
        out = burst(z, 10)
        check_answers(out, "a zone of containers woken from zero")
        ready = z.events("server_ready")
        check_eq(len(ready), 1, "one container started")
        log("container ready %.2f s after the wake-up" % ready[0]["start_seconds"])
        check_eq(len(eng.containers(label="scaler.cluster=" + z.name)), 1,
                 "containers of the zone")
    finally:
        z.stop()


@test
def a_wake_up_call_for_an_unknown_zone_or_without_the_token_changes_nothing():
    z = Zone(name="zero-api")
    try:
        st, body = http_json("POST", z.url("/wake"), {"zone": "nope", "held": 1}, headers=AUTH)
        check_eq(st, 404, "unknown zone: %r" % body)
        st, _ = http_json("POST", z.url("/wake"), {"zone": "zone1", "held": 1})
        check_eq(st, 401, "without the token")
        st, body = http_json("POST", z.url("/wake"), {"zone": "zone1", "held": "x"}, headers=AUTH)
        check_eq(st, 400, "held not a number: %r" % body)
        st, body = http_json("POST", z.url("/wake"), {"zone": "zone1", "held": 1, "epoch": 99},
                             headers=AUTH)
        check_eq(st, 409, "a balancer that knows a newer epoch: %r" % body)
        time.sleep(1.0)
        check_eq(z.servers(), [], "no server started by refused calls")
        check_eq(z.events("wake"), [], "no wake event")
        st, body = http_json("POST", z.url("/wake"), {"zone": "zone1", "held": 3}, headers=AUTH)
        check_eq(st, 202, "a good call: %r" % body)
        check_eq(body["starting"], 1, "it starts one server")
        wait_until(lambda: [s for s in z.servers() if s["state"] == "serving"], 10,
                   "the server serving")
    finally:
        z.stop()


@test
def on_requests_a_zone_wakes_panics_out_under_a_burst_and_falls_back_to_zero():
    z = Zone(name="zero-kpa", metrics='plugin = "balancer";',
             policy='plugin = "concurrency"; target = 2; stable_window = 4;', idle_timeout=2.0)
    try:
        stop = threading.Event()
        answers = []

        def client():
            while not stop.is_set():
                st, _, _ = z.request("GET", "/work?ms=300")
                answers.append(st)
        ts = [threading.Thread(target=client, daemon=True) for _ in range(10)]
        for t in ts:
            t.start()
        wait_until(lambda: [e for e in z.events("scale_up") if e["to"] >= 2], 30,
                   "a scale-up past one server under 10 clients")
        stop.set()
        for t in ts:
            t.join(30)
        check(answers and all(st == 200 for st in answers),
              "every request answered 200 (%d: %r)" % (len(answers),
                                                        sorted(set(answers))))
        wake = z.events("wake")
        check_eq(len(wake), 1, "one wake-up")
        ups = z.events("scale_up")
        check(any(e["rule"] in ("panic", "stable") and "in flight" in e["reason"] for e in ups),
              "a scale-up explained in requests in flight: %r" % [e["reason"] for e in ups])
        wait_until(lambda: z.servers() == [], 40, "the idle zone back at zero")
        for e in z.events():
            if e["kind"] in ("wake", "scale_up", "scale_down", "server_ready"):
                log("%s %d -> %d: %s" % (e["kind"], e["from"], e["to"], e["reason"]))
        downs = z.events("scale_down")
        check(any(e["to"] == 0 and e["rule"] == "idle" and "idle_timeout" in e["reason"]
                  for e in downs),
              "the last server went for idleness: %r" % [(e["to"], e["reason"]) for e in downs])
    finally:
        z.stop()


@test
def a_new_primary_hears_of_a_zone_waiting_at_zero_and_wakes_it():
    """Two nodes (bully); node 1 runs the zone's balancer, node 2 is primary
    and is killed; a request then arrives: the balancer's wake-up calls go
    to the dead primary until node 1 takes over and pushes itself, and the
    next call wakes the zone through it."""
    redis = Redis()
    name = "zero-fo%d" % free_port()
    ports = {1: free_port(), 2: free_port()}
    listen, zadmin = free_port(), free_port()
    first, _ = free_port_range(100)
    state = os.path.join(tmpdir(), name + "-state")
    os.makedirs(state, exist_ok=True)
    peers = ", ".join('{ id = %d; url = "http://127.0.0.1:%d"; }' % (k, p) for k, p in ports.items())
    procs = {}

    def conf(i):
        return write_file("%s-%d.conf" % (name, i), """
node = { id = %d; admin = "127.0.0.1:%d"; token = "%s"; zones = [%s]; };
cluster = "%s";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 1.0; drain_timeout = 0.2; idle_timeout = 60.0;
driver = { plugin = "process"; command = ["%s"]; stop_timeout = 2.0; };
metrics = { plugin = "balancer"; };
policy = { plugin = "concurrency"; target = 10; stable_window = 30; };
election = { plugin = "bully"; check_interval = 0.2; timeout = 0.3; lease = 2.0; peers = ( %s ); };
balancer = { plugin = "builtin"; health_interval = 0.5; hold_timeout = 25.0; };
zones = ( { name = "zone1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 2;
            ports = [%d, %d]; } );
""" % (i, ports[i], TOKEN, '"zone1"' if i == 1 else "", name, redis.url(), plugin_dir(), state,
            APP, peers, listen, zadmin, first, first + 99))

    def role(i):
        try:
            st, body = http_json("GET", "http://127.0.0.1:%d/status" % ports[i], headers=AUTH,
                                 timeout=1)
            return body["node"]["role"] if st == 200 else None
        except OSError:
            return None

    def monitor():
        try:
            st, body = http_json("GET", "http://127.0.0.1:%d/monitor" % zadmin, headers=AUTH)
            return body.get("url") if st == 200 else None
        except OSError:
            return None
    try:
        for i in (1, 2):
            procs[i] = spawn([SCALERD, "-c", conf(i)], name="%s-node%d" % (name, i))
        wait_until(lambda: role(2) == "primary" and role(1) == "backup", 15,
                   "node 2 primary, node 1 backup")
        wait_until(lambda: monitor() == "http://127.0.0.1:%d" % ports[2], 15,
                   "the balancer to know node 2 as the primary")
        procs[2].kill()
        res = []
        t0 = time.monotonic()
        threading.Thread(target=lambda: res.append(http(
            "POST", "http://127.0.0.1:%d/echo" % listen, body=b"held through a failover",
            timeout=30)), daemon=True).start()
        wait_until(lambda: res, 30, "the request held during the failover to be answered")
        log("answered %.2f s after the primary was killed" % (time.monotonic() - t0))
        check_eq((res[0][0], res[0][2]), (200, b"held through a failover"),
                 "status and echoed body")
        check_eq(role(1), "primary", "node 1's role now")
        st, body = http_json("GET", "http://127.0.0.1:%d/events?zone=zone1" % ports[1],
                             headers=AUTH)
        wakes = [e for e in body["events"] if e["kind"] == "wake"]
        check_eq([e["node"] for e in wakes], ["1"], "the wake-up recorded by the new primary")
    finally:
        refs = []
        try:
            st, body = http_json("GET", "http://127.0.0.1:%d/servers?zone=zone1" % ports[1],
                                 headers=AUTH)
            refs = [s["ref"] for s in body or []]
        except OSError:
            pass
        for p in procs.values():
            p.kill()
        for ref in refs:
            kill_process_server(ref)
        redis.stop()


if __name__ == "__main__":
    main()
