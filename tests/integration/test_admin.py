#!/usr/bin/env python3
"""scalerd's admin API against a hostile client: the auth rule (a token
guards reads too, node.public_reads opens them), idle connections that
must not lock anyone out, paths that are not UTF-8, the /events long-poll
and the dead reports a primary checks before it acts."""
import json
import os
import re
import resource
import socket
import subprocess
import time

from scalertest import *

SCALERD = binary("scalerd")
TOKEN = "admin-test-token"
AUTH = {"Authorization": "Bearer " + TOKEN}


class Node:
    """One scalerd (single election) with a token, and a Redis."""

    def __init__(self, zones="", extra="", node_extra="", name="scalerd", wrap=(), start=15):
        self.redis = Redis()
        self.port = free_port()
        self.cluster = "adm%d" % self.port
        self.state = os.path.join(tmpdir(), "state-%d" % self.port)
        os.makedirs(self.state)
        self.path = write_file("%s-%d.conf" % (name, self.port), """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; %s };
cluster = "%s"; redis = "%s"; plugin_dir = "%s"; state_dir = "%s";
log = { level = "info"; };
election = { plugin = "single"; };
%s
zones = ( %s );
""" % (self.port, TOKEN, node_extra, self.cluster, self.redis.url(), plugin_dir(), self.state,
            extra, zones))
        self.proc = spawn(list(wrap) + [SCALERD, "-c", self.path], name=name)
        wait_until(lambda: self.answers(), start, "scalerd's admin API on port %d" % self.port)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def answers(self):
        try:
            return http("GET", self.url("/health_check"), timeout=1)[0] == 200
        except OSError:
            return False

    def get(self, path, headers=AUTH, timeout=5.0):
        return http_json("GET", self.url(path), headers=headers, timeout=timeout)

    def stop(self):
        rc = self.proc.stop()
        self.redis.stop()
        return rc


READS = ["/status", "/servers", "/events", "/metrics"]


@test
def with_a_token_every_endpoint_but_health_check_needs_it():
    n = Node()
    try:
        for path in READS:
            st, body = n.get(path, headers={})
            check_eq(st, 401, "GET %s without the token" % path)
            st, _ = n.get(path, headers={"Authorization": "Bearer wrong"})
            check_eq(st, 401, "GET %s with a wrong token" % path)
            st, _ = n.get(path)
            check_eq(st, 200, "GET %s with the token" % path)
        # only the header counts: never a query parameter or a cookie
        st, _ = n.get("/status?token=" + TOKEN, headers={"Cookie": "token=" + TOKEN})
        check_eq(st, 401, "GET /status with the token in the query and a cookie")
        for method, path in (("POST", "/reload"), ("PUT", "/report"), ("POST", "/scale"),
                             ("POST", "/election/ping")):
            st, _ = http_json(method, n.url(path), body={})
            check_eq(st, 401, "%s %s without the token" % (method, path))
        st, _, body = http("GET", n.url("/health_check"))
        check_eq((st, body), (200, b"ok\n"), "GET /health_check without a token")
    finally:
        n.stop()


@test
def public_reads_open_the_reads_and_nothing_else():
    n = Node(node_extra="public_reads = true;")
    try:
        for path in READS:
            st, _ = n.get(path, headers={})
            check_eq(st, 200, "GET %s without the token and public_reads" % path)
        st, _, _ = http("HEAD", n.url("/status"))
        check_eq(st, 200, "HEAD /status without the token and public_reads")
        for method, path in (("POST", "/reload"), ("PUT", "/report"), ("POST", "/drain")):
            st, _ = http_json(method, n.url(path), body={})
            check_eq(st, 401, "%s %s without the token, public_reads or not" % (method, path))
    finally:
        n.stop()


@test
def scalerctl_reads_with_the_token_of_the_config():
    n = Node()
    try:
        r = subprocess.run([binary("scalerctl"), "-c", n.path, "--json", "status"],
                           capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, SCALER_TOKEN=""))
        check_eq(r.returncode, 0, "scalerctl status exit status (stderr: %s)" % r.stderr)
        check_eq(json.loads(r.stdout)["node"]["id"], "1", "node id in scalerctl's status")
    finally:
        n.stop()


@test
def a_path_that_is_not_utf8_gets_404_and_no_error_in_the_log():
    n = Node()
    try:
        for raw in ("/%C0%80", "/%ED%A0%80", "/%F4%90%80%80", "/a%FFb"):
            st, body = n.get(raw)
            check_eq(st, 404, "GET %s" % raw)
            check("no such endpoint" in body["error"], "the 404 says why: %r" % body)
        out = n.proc.output()
        errs = [l for l in out.splitlines() if " err: " in l]
        check(not errs, "no error logged for paths that are not UTF-8, got:\n" + "\n".join(errs))
    finally:
        n.stop()


@test
def a_tokened_request_is_answered_while_10050_idle_connections_are_held():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 20000  # scalerd then keeps 10,000 connections (half its limit)
    if hard != resource.RLIM_INFINITY and hard < 10050 + 200:
        skip("needs %d file descriptors (hard limit %d)" % (10050 + 200, hard))
    # this process holds the 10,050 connections; scalerd inherits the limit
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    n = Node()
    idle = []
    try:
        for _ in range(10050):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", n.port))
            except BlockingIOError:
                pass
            idle.append(s)
        # every connection is through the handshake; none sent a byte
        time.sleep(1.0)
        for i in range(3):
            st, body = n.get("/status", timeout=10)
            check_eq(st, 200, "GET /status with the token while 10,050 idle connections "
                     "are held (try %d)" % (i + 1))
        check(n.proc.alive(), "scalerd still runs")
    finally:
        for s in idle:
            s.close()
        n.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def redis_info(n, field):
    out = n.redis.cli("INFO", "all")
    for line in out.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def redis_calls(n, cmd):
    """How many times Redis ran `cmd` (INFO commandstats)."""
    v = redis_info(n, "cmdstat_" + cmd)
    return int(re.search(r"calls=(\d+)", v).group(1)) if v else 0


ZONE = """{ name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 2; }"""
DRIVER = 'driver = { plugin = "process"; command = ["/bin/true"]; };'


def primary_node(**kw):
    n = Node(zones=ZONE % (free_port(), free_port()), extra=DRIVER, **kw)
    wait_until(lambda: n.get("/status")[1]["node"]["role"] == "primary", 15,
               "the single node to be primary")
    return n


@test
def a_long_poll_after_dollar_gets_what_happens_while_it_waits():
    import threading
    n = primary_node()
    try:
        got = {}
        looks = redis_calls(n, "xrevrange")

        def poll():
            got["first"] = n.get("/events?zone=z1&after=$&wait=8", timeout=15)
        t = threading.Thread(target=poll)
        t.start()
        # "$" is resolved (one XREVRANGE) before anything happens
        wait_until(lambda: redis_calls(n, "xrevrange") > looks, 5,
                   "the long-poll to resolve \"$\"")
        for count in (0, None):
            st, body = http_json("POST", n.url("/scale"), {"zone": "z1", "count": count},
                                 headers=AUTH)
            check_eq(st, 200, "POST /scale count=%r (%r)" % (count, body))
        t.join(20)
        st, body = got["first"]
        check_eq(st, 200, "GET /events?after=$&wait=8")
        kinds = [e["kind"] for e in body["events"]]
        check(kinds and kinds[0] == "pin", "the pin made during the poll, got %r" % body)
        if "unpin" not in kinds:
            st, more = n.get("/events?zone=z1&after=%s&wait=5" % body["last"])
            check_eq(st, 200, "GET /events after the first answer")
            kinds += [e["kind"] for e in more["events"]]
        check_eq(kinds, ["pin", "unpin"], "every event made during the polls, once each")
    finally:
        n.stop()


@test
def an_event_id_redis_cannot_take_is_a_400_not_a_503():
    n = Node()
    try:
        for bad in ("1" * 40, "1-" + "9" * 21, "18446744073709551616", "-1", "1-", "abc", "$x"):
            st, body = n.get("/events?after=" + bad)
            check_eq(st, 400, "GET /events?after=%s (%r)" % (bad, body))
        for good in ("18446744073709551615-18446744073709551615", "0", "$", "1700000000000-3"):
            st, body = n.get("/events?after=" + good)
            check_eq(st, 200, "GET /events?after=%s (%r)" % (good, body))
    finally:
        n.stop()


@test
def events_answers_without_events_leak_nothing():
    import shutil
    if not shutil.which("valgrind"):
        return skip("valgrind not installed")
    n = Node(wrap=["valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite",
                   "--errors-for-leak-kinds=definite", "--error-exitcode=99"], start=120)
    try:
        for path in ("/events?last=5", "/events?after=$&wait=0.1",
                     "/events?after=0&wait=0.1"):
            for _ in range(3):
                st, body = n.get(path, timeout=30)
                check_eq(st, 200, "GET %s (%r)" % (path, body))
                check_eq(body["events"], [], "GET %s on an empty stream" % path)
    finally:
        rc = n.proc.stop(timeout=120)
        n.redis.stop()
    out = n.proc.output()
    check("definitely lost" not in out and rc != 99,
          "no memory definitely lost answering /events without events (exit %r):\n%s"
          % (rc, out[-4000:]))


@test
def pipelined_long_polls_cost_redis_one_look_per_tick_not_one_per_poll():
    n = Node()
    conns = []
    try:
        req = ("GET /events?wait=3 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
               % TOKEN).encode() * 64
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", n.port))
            s.sendall(req)
            conns.append(s)
        time.sleep(0.5)  # every connection's first poll is waiting
        before = int(redis_info(n, "total_commands_processed"))
        time.sleep(2.0)
        ran = int(redis_info(n, "total_commands_processed")) - before
        log("Redis ran %d commands in 2 s" % ran)
        # 20 connections x 64 polls re-reading every 0.25 s would be ~10,000;
        # one look per tick and one poll per connection is ~10
        check(ran < 100, "Redis ran %d commands in 2 s for 20 connections of 64 pipelined "
              "long-polls; expected fewer than 100" % ran)
    finally:
        for s in conns:
            s.close()
        n.stop()


@test
def a_dead_report_deletes_only_what_fails_the_primarys_own_check():
    lo, hi = free_port_range(20)
    zone = ('{ name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 1; max = 2; '
            'ports = [%d, %d]; }' % (free_port(), free_port(), lo, hi))
    extra = """
driver = { plugin = "process"; command = ["%s"]; stop_timeout = 2.0; };
balancer = { plugin = "builtin"; report_interval = 3600.0; };
interval = 0.5; drain_timeout = 0.2;
""" % binary("scaler-app")
    n = Node(zones=zone, extra=extra)
    refs = []

    def serving():
        st, body = n.get("/servers?zone=z1")
        check_eq(st, 200, "GET /servers?zone=z1")
        refs.extend(s["ref"] for s in body if s.get("ref") and s["ref"] not in refs)
        return [s for s in body if s["state"] == "serving"]
    try:
        wait_until(lambda: len(serving()) == 1, 30, "one serving server in z1")
        s = serving()[0]
        # a healthy server named (twice) in a report is checked, not deleted
        st, body = http_json("PUT", n.url("/report"), {"zone": "z1", "dead": [s["address"]] * 2},
                             headers=AUTH, timeout=10)
        check_eq(st, 200, "PUT /report naming a healthy server (%r)" % body)
        check_eq((body["alive"], body["deleted"]), ([s["address"]], []),
                 "the healthy server kept, once")
        time.sleep(1.0)
        check_eq([x["id"] for x in serving()], [s["id"]], "the same server still serving")
        check(not [e for e in n.get("/events?zone=z1")[1]["events"] if e["kind"] == "replace"],
              "no replace event for a healthy server")
        # a server that is really gone is deleted and the zone refilled
        kill_process_server(s["ref"])
        st, body = http_json("PUT", n.url("/report"), {"zone": "z1", "dead": [s["address"]]},
                             headers=AUTH, timeout=10)
        check_eq(st, 200, "PUT /report naming a dead server (%r)" % body)
        check_eq((body["alive"], body["deleted"]), ([], [s["id"]]), "the dead server deleted")
        wait_until(lambda: [x["id"] for x in serving()] not in ([], [s["id"]]), 30,
                   "a new server in z1")
    finally:
        n.stop()
        for ref in refs:
            kill_process_server(ref)


@test
def outlier_events_in_a_report_go_to_the_zone_event_stream_and_bad_ones_are_refused():
    zone = ('{ name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 1; }'
            % (free_port(), free_port()))
    n = Node(zones=zone, extra='balancer = { plugin = "builtin"; report_interval = 3600.0; };')
    ev = {"kind": "eject", "server": "http://127.0.0.1:9", "duration": 30.0, "ejections": 1,
          "reason": "5 consecutive 5xx responses"}
    try:
        wait_until(lambda: http_json("PUT", n.url("/report"), {"zone": "z1", "dead": [],
                                                               "events": [ev]},
                                     headers=AUTH)[0] == 200, 15, "the primary to take the report")
        got = [e for e in n.get("/events?zone=z1")[1]["events"] if e["kind"] == "eject"]
        check_eq([(e["server"], e["rule"], e["duration"], e["ejections"]) for e in got],
                 [("http://127.0.0.1:9", "outlier", 30.0, 1)], "the ejection in the event stream")
        check("ejected by the balancer: 5 consecutive 5xx" in got[0]["reason"],
              "the reason says what happened: %r" % got[0]["reason"])
        for bad in ([dict(ev, kind="explode")], [dict(ev, server=7)], [ev] * 65, "x",
                    [dict(ev, reason="r" * 201)]):
            st, body = http_json("PUT", n.url("/report"), {"zone": "z1", "dead": [],
                                                           "events": bad}, headers=AUTH)
            check_eq(st, 400, "a report with bad events %.60r (%r)" % (bad, body))
        check_eq(len([e for e in n.get("/events?zone=z1")[1]["events"] if e["kind"] == "eject"]),
                 1, "nothing written for the refused reports")
    finally:
        n.stop()


@test
def a_balancer_keeps_a_server_the_primary_found_healthy():
    import http.server
    import sys
    import threading
    sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
    from baltest import Balancer, backend, scalerd_has_balancer
    if not scalerd_has_balancer():
        skip("needs scalerd --balancer (a state store to confirm the primary)")
    reports = []

    class Primary(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            reports.append(body)
            out = json.dumps({"deleted": [], "alive": body["dead"], "unknown": [],
                              "in_progress": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Primary)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    primary = "http://127.0.0.1:%d" % srv.server_address[1]
    redis = Redis()
    a, b = backend("kept-a"), backend("kept-b")
    bal = Balancer([a.url, b.url], {"health_interval": 0.2, "recheck_interval": 0.2,
                                    "health_timeout": 1.0, "retries": 2,
                                    "report_interval": 0.3}, token="s3cret",
                   redis_url=redis.url())
    try:
        redis.cli("SET", "t:epoch", "1")
        redis.cli("HSET", "t:leader", "id", "2", "url", primary, "epoch", "1")
        check_eq(bal.admin_put("/monitor", {"url": primary, "epoch": 1})[0], 200,
                 "PUT /monitor")
        a.kill()
        wait_until(lambda: len(reports) >= 2, 10, "a reported dead twice")
        check(a.url in bal.states(), "a server the primary answered \"alive\" for is kept")
        check_eq(reports[0], {"zone": "zone1", "dead": [a.url]}, "the report")
    finally:
        srv.shutdown()


def zone_worker(public_reads):
    """A zone's balancer worker (scalerd --balancer) with a token."""
    port, admin = free_port(), free_port()
    conf = write_file("worker-%d.conf" % port, """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; %s };
plugin_dir = "%s";
zones = ( { name = "z"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 0; max = 2; } );
""" % (free_port(), TOKEN, "public_reads = true;" if public_reads else "", plugin_dir(), port,
           admin))
    p = spawn([SCALERD, "--balancer", "z", "-c", conf], name="zone-worker")
    url = "http://127.0.0.1:%d" % admin

    def up():
        try:
            return http("GET", url + "/health_check", timeout=1)[0] == 200
        except OSError:
            return False
    wait_until(up, 10, "the zone worker's admin API")
    return p, url


BALANCER_READS = ["/servers", "/servers?state=all", "/monitor", "/metrics", "/stats"]


@test
def a_zone_balancers_admin_api_follows_the_same_rule():
    p, url = zone_worker(public_reads=False)
    try:
        for path in BALANCER_READS:
            st, _ = http_json("GET", url + path)
            check_eq(st, 401, "balancer GET %s without the token" % path)
            st, _ = http_json("GET", url + path, headers=AUTH)
            check_eq(st, 200, "balancer GET %s with the token" % path)
        st, _ = http_json("PUT", url + "/servers", {"adds": []})
        check_eq(st, 401, "balancer PUT /servers without the token")
        check_eq(http("GET", url + "/health_check")[0], 200, "balancer /health_check, no token")
    finally:
        p.kill()
    p, url = zone_worker(public_reads=True)
    try:
        for path in BALANCER_READS:
            st, _ = http_json("GET", url + path)
            check_eq(st, 200, "balancer GET %s without the token, public_reads" % path)
        for method, path in (("PUT", "/servers"), ("PUT", "/monitor")):
            st, _ = http_json(method, url + path, {})
            check_eq(st, 401, "balancer %s %s without the token, public_reads or not"
                     % (method, path))
    finally:
        p.kill()


if __name__ == "__main__":
    main()
