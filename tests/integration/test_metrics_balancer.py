"""metrics "balancer": the zone's own balancer counts the requests (GET /stats
on its admin API), run through tests/metrics/metrics-query against a real
balancer worker over backends in processes."""
import json
import os
import subprocess
import sys
import threading
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import Balancer, backend  # noqa


def query(bal, servers, settings=None, window=1.0, token=None, expect_rc=0, admin=None):
    argv = [binary("metrics-query"), "-p", "balancer", "-w", str(window),
            "-a", admin or "127.0.0.1:%d" % bal.admin_port]
    if token:
        argv += ["-t", token]
    if settings is not None:
        argv += ["-c", settings]
    argv.append("zone1")
    argv += ["%s=%s" % (sid, addr) for sid, addr in servers]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SCALER_PLUGIN_DIR=plugin_dir()))
    if r.returncode != expect_rc:
        raise AssertionError("metrics-query exited %d, expected %d\nstdout: %s\nstderr: %s"
                             % (r.returncode, expect_rc, r.stdout, r.stderr))
    out = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return (out[0] if out else None), r.stderr


def values(res):
    return {v["server"]: (None if v["missing"] else v["value"]) for v in res["values"]}


def hold(bal, n, secs):
    for _ in range(n):
        threading.Thread(target=lambda: http("GET", bal.url("/slow?s=%g" % secs), timeout=30),
                         daemon=True).start()
        time.sleep(0.05)  # in order: round robin gives a, b, a, ...


_shared = {}


def zone():
    """Two backends behind a balancer that has run 2 s: shared, read-only."""
    if not _shared:
        a, b = backend("a"), backend("b")
        bal = Balancer([a.url, b.url], {"stats_history": 30})
        _shared.update(a=a, b=b, bal=bal)
        wait_until(lambda: bal.admin_get("/stats?window=2")[1]["observed"], 10,
                   "the worker to have run 2 s")
    return _shared["a"], _shared["b"], _shared["bal"]


@test
def concurrency_per_server_is_the_average_in_flight_over_the_window():
    a, b, bal = zone()
    hold(bal, 3, 4)
    wait_until(lambda: sum(s["in_flight"] for s in bal.admin_get("/stats?window=1")[1]["servers"])
               == 3, 5, "3 requests in flight")
    time.sleep(2.2)
    res, _ = query(bal, [("a", a.url), ("b", b.url)], window=1)
    check_eq(res["status"], 0, "status")
    v = values(res)
    check(abs(v["a"] + v["b"] - 3) < 0.15, "3 in flight over both servers, got %r" % v)
    check(max(v.values()) > 1.8 and min(v.values()) > 0.8, "2 on one, 1 on the other: %r" % v)
    check(abs(res["average"] - 1.5) < 0.1, "average per server: %r" % res)


@test
def the_metric_setting_chooses_requests_per_second_or_a_latency_percentile():
    a, b, bal = zone()
    for _ in range(10):
        http("GET", bal.url("/slow?s=0.02"))
    res, _ = query(bal, [("a", a.url), ("b", b.url)], 'metric = "rps";', window=2)
    v = values(res)
    check(4 <= (v["a"] + v["b"]) * 2 <= 11, "about 10 responses in 2 s: %r" % v)
    res, _ = query(bal, [("a", a.url), ("b", b.url)], 'metric = "latency_p95";', window=2)
    v = values(res)
    check(all(v[k] is not None and 0.015 <= v[k] <= 0.1 for k in v),
          "p95 of 20 ms requests, in seconds: %r" % v)


@test
def a_server_the_balancer_does_not_know_is_missing_not_zero():
    a, b, bal = zone()
    res, _ = query(bal, [("a", a.url + "/"), ("ghost", "http://127.0.0.1:9")], window=1)
    v = values(res)
    check(v["a"] is not None, "a known server has a value (trailing / ignored): %r" % v)
    check_eq(v["ghost"], None, "a server the balancer has never seen")


@test
def a_window_the_worker_did_not_observe_is_missing_for_every_server():
    a = backend("a")
    bal = Balancer([a.url], {"stats_history": 60})
    res, err = query(bal, [("a", a.url)], window=30)
    check_eq(res["status"], 0, "status (the query worked)")
    check_eq(values(res), {"a": None}, "values")
    check_eq(res["average_valid"], False, "average_valid")
    check("missing" in err and "not 0" in err, "logs why: %r" % err)


@test
def errors_of_the_admin_api_fail_the_query_with_its_reason():
    a, b, bal = zone()
    res, _ = query(bal, [("a", a.url)], window=31)
    check_eq(res["status"], -1, "status for a window longer than stats_history")
    check("stats_history (30)" in (res["error"] or ""), "names the limit: %r" % res)
    res, _ = query(bal, [("a", a.url)], window=1, admin="127.0.0.1:%d" % free_port())
    check_eq(res["status"], -1, "status when nothing answers")
    check("GET /stats" in (res["error"] or ""), "says what failed: %r" % res)


@test
def the_token_is_sent_when_one_is_configured():
    a = backend("a")
    bal = Balancer([a.url], {"stats_history": 10}, token="tok-123456")
    res, _ = query(bal, [("a", a.url)], window=0.5, token="tok-123456")
    check_eq(res["status"], 0, "with the token: %r" % res)
    res, _ = query(bal, [("a", a.url)], window=0.5)
    check_eq(res["status"], -1, "without it")
    check("401" in res["error"], "says 401: %r" % res)


@test
def unknown_metrics_and_settings_are_refused_naming_the_setting():
    _, err = query(None, [("a", "http://127.0.0.1:9")], 'metric = "cpu";', expect_rc=2,
                   admin="127.0.0.1:9")
    check("metric" in err and "\"cpu\"" in err and "concurrency" in err,
          "the error names the setting, the value and the choices: %r" % err)
    _, err = query(None, [("a", "http://127.0.0.1:9")], 'timeout = 0.0;', expect_rc=2,
                   admin="127.0.0.1:9")
    check("timeout" in err, "a timeout of 0 is refused: %r" % err)
    _, err = query(None, [("a", "http://127.0.0.1:9")], 'colour = 1;', expect_rc=2,
                   admin="127.0.0.1:9")
    check("colour" in err, "an unknown setting is refused: %r" % err)


if __name__ == "__main__":
    main()
