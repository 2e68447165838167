#!/usr/bin/env python3
"""metrics "http": scrapes each server's /stats through the real plugin
(metrics_http.so) run by tests/metrics/metrics-query against small HTTP
servers in this process."""
import http.server as http_server
import json
import os
import socket
import subprocess
import sys
import threading
import time

from scalertest import *


class Stats:
    """An HTTP server on a free loopback port answering every GET with
    `status` and `body`; `bodies` (a list) is served in turn when given."""

    def __init__(self, body=None, status=200, bodies=None):
        self.status = status
        self.bodies = list(bodies) if bodies else [body]
        self.paths = []
        stats = self

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_GET(self):
                stats.paths.append(self.path)
                body = stats.bodies.pop(0) if len(stats.bodies) > 1 else stats.bodies[0]
                if not isinstance(body, (bytes, str)):
                    body = json.dumps(body)
                if isinstance(body, str):
                    body = body.encode()
                self.send_response(stats.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = "http://127.0.0.1:%d" % self.server.server_address[1]


class Silent:
    """Accepts connections (the kernel does, from the backlog) and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "http://127.0.0.1:%d" % self.sock.getsockname()[1]


def query(zone, servers, settings=None, rounds=1, interval=0.0, window=10.0, expect_rc=0):
    """Run metrics-query; returns (list of result dicts, stderr text)."""
    argv = [binary("metrics-query"), "-p", "http", "-r", str(rounds), "-i", str(interval),
            "-w", str(window)]
    if settings is not None:
        argv += ["-c", settings]
    argv.append(zone)
    # a server "/" or "/zone" starts the next round's set (see metrics-query.c)
    argv += [sid if sid.startswith("/") else "%s=%s" % (sid, addr) for sid, addr in servers]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SCALER_PLUGIN_DIR=plugin_dir()))
    if r.returncode != expect_rc:
        raise AssertionError("metrics-query exited %d, expected %d\nstdout: %s\nstderr: %s"
                             % (r.returncode, expect_rc, r.stdout, r.stderr))
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()], r.stderr


def by_server(result):
    return {v["server"]: (None if v["missing"] else v["value"]) for v in result["values"]}


@test
def healthy_servers_give_their_values_and_the_zone_mean():
    a, b = Stats({"cpu_usage": 30}), Stats({"cpu_usage": 50.5, "memory_usage": 12})
    (res,), _ = query("zone1", [("a", a.address), ("b", b.address)])
    check_eq(res["status"], 0, "status")
    check_eq(by_server(res), {"a": 30.0, "b": 50.5}, "per-server values")
    check_eq(res["average_valid"], True, "average_valid")
    check_eq(res["average"], 40.25, "zone average (mean of 30 and 50.5)")
    check_eq(a.paths, ["/stats"], "path requested from a (default /stats)")


@test
def bad_answers_make_a_server_missing_not_zero():
    good = Stats({"cpu_usage": 80})
    cases = [
        ("badjson", Stats("{cpu_usage: 12")),
        ("status500", Stats({"cpu_usage": 5}, status=500)),
        ("nofield", Stats({"memory_usage": 5})),
        ("string", Stats({"cpu_usage": "5"})),
        ("notobject", Stats([5])),
        ("refused", type("Closed", (), {"address": "http://127.0.0.1:%d" % free_port()})()),
    ]
    servers = [("good", good.address)] + [(name, s.address) for name, s in cases]
    (res,), err = query("zone1", servers)
    want = {"good": 80.0}
    want.update({name: None for name, _ in cases})
    check_eq(by_server(res), want, "values (None = missing)")
    check_eq((res["average"], res["average_valid"]), (80.0, True),
             "average over the one server that answered")
    for name, why in [("badjson", "not JSON"), ("status500", "HTTP status 500"),
                      ("nofield", 'no "cpu_usage"'), ("string", "not a number")]:
        check(any(name in line and why in line for line in err.splitlines()),
              "expected a warning naming server %s and '%s', got:\n%s" % (name, why, err))


@test
def a_server_that_never_answers_times_out_without_holding_up_the_others():
    good, s1, s2 = Stats({"cpu_usage": 20}), Silent(), Silent()
    start = time.monotonic()
    (res,), err = query("zone1", [("good", good.address), ("s1", s1.address),
                                  ("s2", s2.address)], settings="timeout = 0.5;")
    took = time.monotonic() - start
    check_eq(by_server(res), {"good": 20.0, "s1": None, "s2": None}, "values")
    check_eq(res["average"], 20.0, "average")
    check(0.4 < res["elapsed"] < 0.95,
          "expected the round to end after about the 0.5 s timeout (both silent servers "
          "fetched at once), took %.2f s (process %.2f s)" % (res["elapsed"], took))


@test
def every_server_missing_leaves_no_valid_average():
    (res,), _ = query("zone1", [("x", Stats("oops").address), ("y", Stats({}).address)])
    check_eq(res["status"], 0, "status (the query itself worked)")
    check_eq(res["average_valid"], False, "average_valid")
    check_eq(by_server(res), {"x": None, "y": None}, "values")


@test
def no_servers_still_calls_back_once():
    (res,), _ = query("zone1", [])
    check_eq((res["status"], res["average_valid"], res["values"]), (0, False, []),
             "status, average_valid, values")


@test
def the_value_is_the_mean_of_the_samples_within_the_window():
    s = Stats(bodies=[{"cpu_usage": 20}, {"cpu_usage": 40}, {"cpu_usage": 90}])
    results, _ = query("zone1", [("a", s.address)], rounds=3, interval=0.3, window=10)
    check_eq([by_server(r)["a"] for r in results], [20.0, 30.0, 50.0],
             "values over three rounds with a 10 s window (running mean)")
    s = Stats(bodies=[{"cpu_usage": 20}, {"cpu_usage": 40}])
    results, _ = query("zone1", [("a", s.address)], rounds=2, interval=0.4, window=0.2)
    check_eq([by_server(r)["a"] for r in results], [20.0, 40.0],
             "values with a 0.2 s window and 0.4 s between rounds (old sample dropped)")


@test
def a_failed_round_is_missing_even_with_older_samples_in_the_window():
    s = Stats(bodies=[{"cpu_usage": 20}, "broken", {"cpu_usage": 40}])
    results, _ = query("zone1", [("a", s.address)], rounds=3, interval=0.2, window=10)
    check_eq([by_server(r)["a"] for r in results], [20.0, None, 30.0],
             "values: answer, broken answer, answer")


@test
def a_server_no_longer_asked_about_is_forgotten():
    a = Stats(bodies=[{"cpu_usage": 20}, {"cpu_usage": 40}])
    b = Stats({"cpu_usage": 70})
    results, _ = query("zone1", [("a", a.address), ("/", None), ("b", b.address),
                                 ("/", None), ("a", a.address)], interval=0.1)
    check_eq([by_server(r) for r in results], [{"a": 20.0}, {"b": 70.0}, {"a": 40.0}],
             "values per round (a's first sample forgotten while it was not asked about)")


@test
def another_zones_query_forgets_nothing_of_this_zone():
    a = Stats(bodies=[{"cpu_usage": 20}, {"cpu_usage": 40}])
    c = Stats({"cpu_usage": 70})
    results, _ = query("zone1", [("a", a.address), ("/zone2", None), ("c", c.address),
                                 ("/zone1", None), ("a", a.address)], interval=0.1)
    check_eq([(r["zone"], by_server(r)) for r in results],
             [("zone1", {"a": 20.0}), ("zone2", {"c": 70.0}), ("zone1", {"a": 30.0})],
             "zone and values per round (a keeps its samples across zone2's query)")


@test
def a_new_address_starts_a_new_window():
    old, new = Stats({"cpu_usage": 20}), Stats({"cpu_usage": 40})
    results, _ = query("zone1", [("a", old.address), ("/", None), ("a", new.address)],
                       interval=0.1)
    check_eq([by_server(r)["a"] for r in results], [20.0, 40.0],
             "values of a before and after its address changed")


@test
def path_and_nested_field_are_settings():
    s = Stats({"load": {"cpu": 66}})
    (res,), _ = query("zone1", [("a", s.address + "/")],
                      settings='path = "/metrics/load?fmt=json"; field = "load.cpu";')
    check_eq(by_server(res), {"a": 66.0}, "value read from load.cpu")
    check_eq(s.paths, ["/metrics/load?fmt=json"], "path requested (no doubled slash)")


@test
def bad_settings_are_refused_with_the_setting_named():
    for settings, want in [
        ("timeout = -1;", "g.timeout: timeout must be between 0.01 and 300, not -1"),
        ('timeout = "1s";', "g.timeout: timeout must be a number (got a string)"),
        ('path = "stats";', 'g.path: path must start with "/"'),
        ('path = "/a b";', "g.path: path must not contain spaces"),
        ('field = "";', "g.field: field must name a JSON member"),
        ("field = 3;", "g.field: field must be a string"),
        ('pth = "/stats";', "g.pth: unknown setting pth"),
    ]:
        out, err = query("zone1", [], settings=settings, expect_rc=2)
        check_eq(out, [], "output for refused settings %r" % settings)
        check(want in err, "for %r expected an error containing %r, got:\n%s"
              % (settings, want, err))


if __name__ == "__main__":
    main()
