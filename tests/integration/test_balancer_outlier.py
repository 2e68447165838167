"""Slow start and outlier ejection in the zone's balancer: a server that
joins takes a linearly rising share of new requests over slow_start seconds
(with each balancing algorithm); a server that answers 5xx or fails
consecutive_5xx / consecutive_failures times in a row is ejected for
base_time x the times it was ejected, never more than max_percent of the
zone nor the last server, comes back, and both are events (GET /events,
reported to the primary)."""
import os
import socket
import sys
import threading
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import (Balancer, FakePrimary, backend, keepalive_exchange,  # noqa
                     refused_settings, scalerd_has_balancer)

QUIET = {"health_interval": 60.0, "recheck_interval": 60.0}


def get(path="/"):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n"


def control(b, what):
    out = raw_http(b.port, ("PUT /control/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                            % what).encode())
    check(out.startswith(b"HTTP/1.1 200"), "backend %s took /control/%s" % (b.url, what))


def answers(bal, n, path="/"):
    """n requests one after the other on one connection: [(status, body)]."""
    res = []
    while len(res) < n:
        got = keepalive_exchange(bal.port, [get(path)] * (n - len(res)))
        check(got, "responses from the balancer")
        res += [(r[0], r[2].strip().decode()) for r in got]
    return res


def events(bal):
    st, body = bal.admin_get("/events")
    check_eq(st, 200, "GET /events")
    return body["events"]


def ejected(bal, url):
    return bal.states()[url]["ejected_until"] is not None


# ---- outlier ejection ---------------------------------------------------------

@test
def a_server_answering_5xx_is_ejected_after_consecutive_5xx_and_returns_after_base_time():
    a, b, c = backend("ej-a"), backend("ej-b"), backend("ej-c")
    bal = Balancer([a.url, b.url, c.url],
                   dict(QUIET, eject={"consecutive_5xx": 3, "base_time": 1.0, "max_percent": 50}))
    control(a, "fail")
    res = answers(bal, 30)
    failed = [r for r in res if r[0] == 503]
    check_eq(len(failed), 3, "503s relayed before a was ejected (consecutive_5xx = 3, one "
             "request at a time)")
    check(all(r == (200, "ej-b") or r == (200, "ej-c") for r in res if r[0] != 503),
          "every other answer from b or c: %r" % res)
    check(ejected(bal, a.url), "a is ejected: %r" % bal.states()[a.url])
    check_eq(bal.states()[a.url]["state"], "alive", "an ejected server stays alive for the checks")
    ev = events(bal)
    check_eq([(e["kind"], e["server"], e["reason"], e["duration"]) for e in ev],
             [("eject", a.url, "3 consecutive 5xx responses", 1.0)], "the ejection event")
    check_eq(bal.metric("scaler_balancer_ejections_total"), 1.0, "ejections counted")
    check_eq(bal.metric("scaler_balancer_servers_ejected"), 1.0, "servers ejected now")
    control(a, "answer")
    wait_until(lambda: not ejected(bal, a.url), 5, "a back after base_time (1 s)")
    check_eq([e["kind"] for e in events(bal)], ["eject", "return"], "events after the return")
    check("ej-a" in [r[1] for r in answers(bal, 6)], "a takes requests again")
    # a second ejection lasts base_time x 2
    control(a, "fail")
    answers(bal, 12)
    check(ejected(bal, a.url), "a ejected again")
    check_eq(events(bal)[-1]["duration"], 2.0, "the second ejection lasts base_time x 2")
    check_eq(bal.states()[a.url]["ejections"], 2, "times ejected")


@test
def failed_attempts_eject_a_server_and_the_client_sees_none_of_them():
    a, b = backend("fail-a"), backend("fail-b")
    bal = Balancer([a.url, b.url],
                   dict(QUIET, eject={"consecutive_5xx": 0, "consecutive_failures": 2,
                                      "base_time": 30.0, "max_percent": 50}))
    control(a, "fail?status=drop")  # a reads each request and closes without an answer
    res = answers(bal, 20)
    check_eq(set(res), {(200, "fail-b")}, "every request answered by b (retried off a)")
    check(ejected(bal, a.url), "a is ejected: %r" % bal.states()[a.url])
    check_eq(events(bal)[0]["reason"], "2 consecutive failed attempts", "the reason")


@test
def ejection_takes_at_most_max_percent_of_the_zone_and_never_the_last_server():
    a, b, c = backend("pct-a"), backend("pct-b"), backend("pct-c")
    for x in (a, b, c):
        control(x, "fail")
    bal = Balancer([a.url, b.url, c.url],
                   dict(QUIET, eject={"consecutive_5xx": 2, "base_time": 30.0, "max_percent": 10}))
    answers(bal, 30)
    out = [u for u in (a.url, b.url, c.url) if ejected(bal, u)]
    check_eq(len(out), 1, "servers ejected with max_percent = 10 of 3 (at least one is allowed)")
    bal.proc.stop()
    bal = Balancer([a.url, b.url],
                   dict(QUIET, eject={"consecutive_5xx": 2, "base_time": 30.0, "max_percent": 100}))
    res = answers(bal, 20)
    check_eq(len([u for u in (a.url, b.url) if ejected(bal, u)]), 1,
             "servers ejected with max_percent = 100 of 2: never the last one serving")
    check_eq(set(r[0] for r in res), {503}, "the zone still answers (the servers' 503s)")


@test
def ejections_and_returns_are_reported_to_the_primary():
    if not scalerd_has_balancer():
        skip("needs scalerd --balancer (a state store to confirm the primary)")
    primary = FakePrimary(status=200)
    redis = Redis()
    redis.cli("SET", "t:epoch", "1")
    redis.cli("HSET", "t:leader", "id", "2", "url", primary.url, "epoch", "1")
    a, b = backend("rep-a"), backend("rep-b")
    bal = Balancer([a.url, b.url], dict(QUIET, eject={"consecutive_5xx": 2, "base_time": 0.5}),
                   redis_url=redis.url())
    check_eq(bal.admin_put("/monitor", {"url": primary.url, "epoch": 1})[0], 200, "PUT /monitor")
    control(a, "fail")
    answers(bal, 8)
    control(a, "answer")
    wait_until(lambda: sum(len(r["body"].get("events", [])) for r in primary.reports) >= 2, 5,
               "the ejection and the return reported")
    sent = [e for r in primary.reports for e in r["body"].get("events", [])]
    check_eq([(e["kind"], e["server"]) for e in sent], [("eject", a.url), ("return", a.url)],
             "events reported, once each, in order")
    check_eq(primary.reports[0]["body"]["dead"], [], "a report of events names no dead server")
    check_eq(bal.admin_get("/events")[1]["reported"], 2, "the balancer knows both were taken")
    primary.close()


@test
def eject_settings_are_checked_with_file_line_and_setting():
    refused_settings({"eject": {"consecutive_5xx": -1, "max_percent": 101, "nope": 1}},
                     ["consecutive_5xx", "max_percent", "nope"])
    refused_settings({"eject": {"base_time": 60.0, "max_time": 10.0}}, ["max_time"])


# ---- slow start ---------------------------------------------------------------

def ramp(algorithm, clients):
    """A server joins a zone of two under load: its share of the requests per
    second over slow_start = 3 s."""
    a, b, c = backend("ss-a-" + algorithm), backend("ss-b-" + algorithm), \
        backend("ss-c-" + algorithm)
    bal = Balancer([a.url, b.url], dict(QUIET, algorithm=algorithm, slow_start=3.0,
                                       health_interval=0.1, recheck_interval=0.1))
    stop = threading.Event()
    seen = []  # (time, name)

    def client():
        s = None
        while not stop.is_set():
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(get("/"))
                buf = b""
                while not (b"\r\n\r\n" in buf and buf.endswith(b"\n") and
                           len(buf.split(b"\r\n\r\n", 1)[1]) >= 2):
                    d = s.recv(4096)
                    if not d:
                        raise OSError("closed")
                    buf += d
                seen.append((time.monotonic(), buf.split(b"\r\n\r\n", 1)[1].strip().decode()))
            except OSError:
                s = None
        if s:
            s.close()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    check_eq(bal.admin_put("/servers", {"adds": [c.url]})[0], 200, "PUT /servers adds c")
    wait_until(lambda: c.url in bal.servers(), 5, "c alive")
    t0 = time.monotonic()
    time.sleep(4.5)
    stop.set()
    for t in threads:
        t.join(10)
    share = []
    for sec in range(4):
        names = [n for t, n in seen if t0 + sec <= t < t0 + sec + 1]
        share.append(names.count("ss-c-" + algorithm) / max(1, len(names)))
    log("%s: share of the joining server per second: %s" % (
        algorithm, " ".join("%.2f" % x for x in share)))
    return share, bal, c


def check_ramp(share, algorithm, full_share=True):
    full = 1.0 / 3
    check(share[0] < 0.6 * full, "%s: in its first second the new server takes less than 60 %% of "
          "a full share (%.2f of %.2f)" % (algorithm, share[0], full))
    check(share[0] < share[1] < share[2] + 0.05, "%s: a rising share, not a step: %r"
          % (algorithm, share))
    if full_share:
        check(share[3] > 0.7 * full, "%s: after slow_start the full share (%.2f of %.2f)"
              % (algorithm, share[3], full))


@test
def a_joining_server_ramps_up_over_slow_start_with_round_robin():
    share, bal, c = ramp("round_robin", 4)
    check_ramp(share, "round_robin")
    check_eq(bal.states()[c.url]["weight"], 1.0, "weight once slow_start is over")


@test
def a_joining_server_ramps_up_over_slow_start_with_least_conn():
    share, bal, c = ramp("least_conn", 4)
    # least_conn gives a server that answers more slowly fewer requests by
    # design, and on a starved machine one Python backend is slower for a
    # second now and then (0.22 of 0.33 was seen): once slow start is over
    # the server is no longer thinned (weight 1), and its share has risen
    check_ramp(share, "least_conn", full_share=False)
    check(share[3] > share[0], "least_conn: a larger share once slow_start is over: %r" % share)
    check_eq(bal.states()[c.url]["weight"], 1.0, "weight once slow_start is over")


@test
def a_joining_server_ramps_up_over_slow_start_with_random2():
    share, _, _ = ramp("random2", 4)
    check_ramp(share, "random2")


@test
def a_server_back_from_disconnected_ramps_up_and_static_servers_do_not():
    a, b = backend("back-a"), backend("back-b")
    bal = Balancer([a.url, b.url], {"slow_start": 30.0, "health_interval": 0.1,
                                    "recheck_interval": 0.1})
    check_eq({u: s["weight"] for u, s in bal.states().items()}, {a.url: 1.0, b.url: 1.0},
             "servers the balancer starts with take their full share at once")
    control(a, "unhealthy")
    wait_until(lambda: bal.states()[a.url]["state"] == "disconnected", 5, "a disconnected")
    control(a, "healthy")
    wait_until(lambda: bal.states()[a.url]["state"] == "alive", 5, "a alive again")
    w = bal.states()[a.url]["weight"]
    check(0 < w < 0.1, "a's weight just after it came back: %r" % w)


if __name__ == "__main__":
    main()
