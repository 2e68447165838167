"""The balancer's request statistics (GET /stats?window=S on the zone's
admin API): per server, requests in flight on average, requests per
second and latency percentiles over the window, counted by the data path.
A window the worker has not fully observed is missing, never 0."""
import os
import sys
import threading
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import Balancer, backend  # noqa


def in_background(fn, n):
    ts = [threading.Thread(target=fn, daemon=True) for _ in range(n)]
    for t in ts:
        t.start()
    return ts


def by_url(stats):
    return {s["url"]: s for s in stats["servers"]}


@test
def four_requests_held_in_flight_for_a_whole_window_count_as_concurrency_four():
    a = backend("a")
    bal = Balancer([a.url], {"stats_history": 30})
    ts = in_background(lambda: http("GET", bal.url("/slow?s=3"), timeout=10), 4)
    wait_until(lambda: by_url(bal.admin_get("/stats?window=1")[1])[a.url]["in_flight"] == 4, 5,
               "4 requests in flight")
    time.sleep(2.2)  # the slots of the last second hold all four the whole time
    st, stats = bal.admin_get("/stats?window=1")
    check_eq(st, 200, "GET /stats status")
    s = by_url(stats)[a.url]
    check(3.9 <= s["concurrency"] <= 4.1, "average concurrency over 1 s ~4, got %r" % s)
    check_eq(s["requests"], 0.0, "responses relayed in the window (none finished yet)")
    for t in ts:
        t.join()
    s = by_url(bal.admin_get("/stats?window=2")[1])[a.url]
    check(s["requests"] >= 3.5, "the four responses count once they are relayed: %r" % s)


@test
def requests_per_second_and_latency_percentiles_follow_what_was_relayed():
    a, b = backend("a"), backend("b")
    bal = Balancer([a.url, b.url], {"stats_history": 5})
    wait_until(lambda: bal.admin_get("/stats?window=5")[1]["observed"], 10,
               "the worker to have run 5 s")
    for _ in range(20):
        check_eq(http("GET", bal.url("/slow?s=0.05"))[0], 200, "a slow request")
    st, stats = bal.admin_get("/stats?window=5")
    check_eq(st, 200, "status")
    check(stats["observed"], "the worker has run for the whole window: %r" % stats)
    servers = by_url(stats)
    total = sum(s["requests"] for s in servers.values())
    check(19.5 <= total <= 20.5, "20 responses over both servers, got %r" % total)
    for url in (a.url, b.url):
        s = servers[url]
        check(9 <= s["requests"] <= 11, "round robin gave each about 10: %r" % s)
        check(abs(s["rps"] - s["requests"] / 5) < 0.01, "rps is requests / window: %r" % s)
        lat = s["latency"]
        # fixed buckets, two per octave: within the bucket that holds 50 ms
        check(0.045 <= lat["p50"] <= 0.11 and lat["p50"] <= lat["p95"] <= lat["p99"] <= 0.2,
              "latency percentiles of 50 ms requests: %r" % lat)
        check_eq(round(sum(c for _, c in s["histogram"])), round(s["requests"]),
                 "histogram counts add up to the responses")


@test
def a_window_longer_than_the_worker_has_run_is_missing_not_zero():
    a = backend("a")
    bal = Balancer([a.url], {"stats_history": 60})
    st, stats = bal.admin_get("/stats?window=4")
    check_eq(st, 200, "status")
    check(stats["uptime"] < 4, "a fresh worker (%r)" % stats["uptime"])
    check_eq(stats["observed"], False, "observed")
    check("missing" in stats and "not 0" in stats["missing"], "says why: %r" % stats)
    s = by_url(stats)[a.url]
    check_eq((s["concurrency"], s["rps"], s["requests"]), (None, None, None),
             "values of a window the worker did not see")
    wait_until(lambda: bal.admin_get("/stats?window=4")[1]["observed"], 10,
               "the window to be observed once the worker has run 4 s")
    s = by_url(bal.admin_get("/stats?window=4")[1])[a.url]
    check_eq((s["concurrency"], s["rps"], s["requests"]), (0.0, 0.0, 0.0),
             "an idle server over an observed window is 0")
    check_eq(s["latency"], {"p50": None, "p95": None, "p99": None},
             "no latency without a response")


@test
def bad_windows_are_refused_with_a_sentence():
    a = backend("a")
    bal = Balancer([a.url], {"stats_history": 20})
    for q, want in (("window=abc", "number"), ("window=0", "above 0"),
                    ("window=-1", "above 0"), ("window=21", "stats_history (20)"),
                    ("window=nan", "above 0")):
        st, body = bal.admin_get("/stats?" + q)
        check_eq(st, 400, "status for %s" % q)
        check(want in body["error"], "the error for %s names %r: %r" % (q, want, body))
    off = Balancer([a.url], {"stats_history": 0})
    st, body = off.admin_get("/stats?window=1")
    check_eq(st, 404, "stats_history = 0 keeps none")
    check("stats_history = 0" in body["error"], "says so: %r" % body)


@test
def stats_need_the_token_when_one_is_configured():
    a = backend("a")
    bal = Balancer([a.url], {"stats_history": 10}, token="s3cret-token")
    st, _ = bal._admin("GET", "/stats?window=1", token="")
    check_eq(st, 401, "without the bearer token")
    st, _ = bal._admin("GET", "/stats?window=1", token="wrong")
    check_eq(st, 401, "with a wrong token")
    st, _ = bal.admin_get("/stats?window=1")
    check_eq(st, 200, "with the token")


if __name__ == "__main__":
    main()
