#!/usr/bin/env python3
"""scaler-app's GET /work runs on worker threads: the loop keeps answering
/health_check and /stats whatever the /work load, at most WORK_IN_FLIGHT
(default 64) requests are taken at once and the next get 503, and work whose
client left before it started is never done. (How fast health checks answer
under load is measured by bench/app-work, not here.)"""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from apptest import App, request, request_json  # noqa: E402
from scalertest import check, check_eq, log, main, test, wait_until  # noqa: E402


def send_work(port, ms):
    """A connection with GET /work?ms=ms sent on it, its reply not read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /work?ms=%d HTTP/1.1\r\nHost: x\r\n\r\n" % ms)
    return s


def work_stats(a):
    """/stats, or None when it does not answer within 2 s."""
    try:
        status, s = request_json("GET", a.port, "/stats", timeout=2)
    except OSError:
        return None
    return s if status == 200 else None


def in_flight(s):
    return s.get("work_running", 0) + s.get("work_waiting", 0)


@test
def health_and_stats_answer_while_64_work_requests_are_in_flight_and_the_65th_gets_503():
    a = App(env={"WORK_THREADS": "1"}, zone="zone-w", server_id="work-1")
    held = [send_work(a.port, 1000) for _ in range(64)]
    try:
        s = wait_until(lambda: (lambda s: s if s and in_flight(s) == 64 else None)(work_stats(a)),
                       15, "/stats to answer and show 64 /work requests in flight")
        check_eq((s["work_threads"], s["work_in_flight_max"], s["work_running"],
                  s["work_waiting"]), (1, 64, 1, 63),
                 "threads, bound (the default), running and waiting /work in /stats")
        for _ in range(3):
            status, _, body = a.get("/health_check", timeout=2)
            check_eq((status, body), (200, b"ok"),
                     "GET /health_check while 64 /work requests are in flight")
        status, hdrs, data = request("GET", a.port, "/work?ms=1", timeout=2)
        check(status == 503 and "error" in json.loads(data),
              "the 65th /work gets 503 with a JSON error; got %d %r" % (status, data[:200]))
        check_eq(hdrs.get("retry-after"), "1", "Retry-After of the refused /work")
        s = a.stats()
        check_eq((in_flight(s), s["work_refused"]), (64, 1),
                 "in flight and refused after the 65th /work")
    finally:
        for c in held:
            c.close()
    # the waiting ones' clients are gone: they are dropped, never burnt
    s = wait_until(lambda: (lambda s: s if s and in_flight(s) == 0 else None)(work_stats(a)),
                   10, "no /work in flight once their clients closed")
    log("after the clients left: %r" % {k: v for k, v in s.items() if k.startswith("work")})
    check(s["work_dropped"] >= 62 and s["work_done"] <= 2,
          "the /work requests whose clients left before they started are dropped: done %d, "
          "dropped %d" % (s["work_done"], s["work_dropped"]))
    status, r = request_json("GET", a.port, "/work?ms=5")
    check_eq((status, r.get("ms")), (200, 5), "GET /work once the load is gone")
    check(r["cpu_ms"] > 0 and r["wait_ms"] >= 0, "cpu_ms and wait_ms in a /work reply: %r" % r)
    a.stop()


@test
def work_runs_on_as_many_threads_as_configured_and_the_bound_is_a_setting():
    a = App(env={"WORK_THREADS": "2", "WORK_IN_FLIGHT": "3"}, zone="zone-w", server_id="work-2")
    held = [send_work(a.port, 1000) for _ in range(3)]
    try:
        s = wait_until(lambda: (lambda s: s if s and in_flight(s) == 3 else None)(work_stats(a)),
                       10, "3 /work requests in flight")
        check_eq((s["work_threads"], s["work_in_flight_max"], s["work_running"],
                  s["work_waiting"]), (2, 3, 2, 1),
                 "threads, bound, running and waiting with WORK_THREADS=2, WORK_IN_FLIGHT=3")
        status, _, _ = request("GET", a.port, "/work?ms=1", timeout=2)
        check_eq(status, 503, "the 4th /work with WORK_IN_FLIGHT=3")
    finally:
        for c in held:
            c.close()
    a.stop()


@test
def the_default_thread_count_is_the_cpus_the_app_may_use():
    a = App(zone="zone-w", server_id="work-3")
    want = min(64, len(os.sched_getaffinity(0)))
    check_eq(a.stats()["work_threads"], want, "work_threads without WORK_THREADS")
    a.stop()


if __name__ == "__main__":
    main()
