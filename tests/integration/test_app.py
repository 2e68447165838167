#!/usr/bin/env python3
"""scaler-app: configuration, every endpoint (good and bad input), and a load
simulation that really uses the CPU it reports."""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from apptest import (App, proc_and_idle_percent, proc_cpu_percent, request,  # noqa: E402
                     request_json)
from scalertest import binary, check, check_eq, log, main, test, wait_until  # noqa: E402

_app = None


def app():
    """One app shared by the endpoint tests (started on first use)."""
    global _app
    if _app is None or not _app.proc.alive():
        _app = App(zone="zone-a", server_id="app-a1")
    return _app


def run_app(args, env=None, timeout=5):
    e = dict(os.environ)
    for k in ("HOST", "PORT", "ZONE", "SERVER_ID", "KAFKA_BROKERS", "KAFKA_TOPIC",
              "INFLUX_URL", "INFLUX_DB", "PROFILE", "LOG_LEVEL", "APP_CONTROL_TOKEN",
              "APP_CONTROL_TOKEN_FILE", "WORK_THREADS", "WORK_IN_FLIGHT"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([binary("scaler-app")] + args, env=e, capture_output=True,
                          text=True, timeout=timeout)


def check_json_error(status, body, want_status, what):
    check(status == want_status and isinstance(body, dict) and isinstance(body.get("error"), str)
          and body["error"],
          "%s: expected HTTP %d with a JSON {\"error\": ...}, got %d %r"
          % (what, want_status, status, body))


@test
def help_documents_every_option_and_environment_variable():
    r = run_app(["--help"])
    check_eq(r.returncode, 0, "exit status of scaler-app --help")
    for word in ("--host", "--port", "--zone", "--server-id", "--kafka-brokers", "--kafka-topic",
                 "--influx-url", "--influx-db", "--profile", "--log-level",
                 "HOST", "PORT", "ZONE", "SERVER_ID", "KAFKA_BROKERS", "KAFKA_TOPIC",
                 "INFLUX_URL", "INFLUX_DB", "INFLUX_TOKEN", "--control-token-file",
                 "APP_CONTROL_TOKEN", "APP_CONTROL_TOKEN_FILE", "--work-threads",
                 "WORK_THREADS", "--work-in-flight", "WORK_IN_FLIGHT",
                 "/health_check", "/stats", "/load", "/work", "/health", "/history", "/echo",
                 "memory_usage", "SIGTERM"):
        check(word in r.stdout, "scaler-app --help should mention %s; it printed:\n%s"
              % (word, r.stdout))


@test
def bad_configuration_is_refused_with_a_message_naming_the_setting():
    cases = [
        (["--port", "http"], {}, "PORT"),
        ([], {"PORT": "70000"}, "PORT"),
        ([], {"ZONE": "zone 1"}, "ZONE"),
        ([], {"SERVER_ID": "a,b"}, "SERVER_ID"),
        ([], {"PROFILE": "medium"}, "PROFILE"),
        (["--influx-url", "ftp://127.0.0.1:8086"], {}, "INFLUX_URL"),
        ([], {"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ([], {"WORK_THREADS": "0"}, "WORK_THREADS"),
        (["--work-threads", "257"], {}, "WORK_THREADS"),
        ([], {"WORK_THREADS": "two"}, "WORK_THREADS"),
        ([], {"WORK_IN_FLIGHT": "0"}, "WORK_IN_FLIGHT"),
        (["--work-in-flight", "64x"], {}, "WORK_IN_FLIGHT"),
        (["--no-such-flag"], {}, "--help"),
        (["extra"], {}, "extra"),
    ]
    for args, env, word in cases:
        r = run_app(args, env)
        check(r.returncode == 2 and word in r.stderr,
              "scaler-app %s with %r: expected exit 2 and an error naming %s, got %d, "
              "stderr %r" % (args, env, word, r.returncode, r.stderr))


@test
def flags_win_over_the_environment():
    a = App(env={"ZONE": "from-env", "SERVER_ID": "env-id"},
            args=["--zone", "from-flag", "--server-id", "flag-id"])
    s = a.stats()
    check_eq((s["zone"], s["server"]), ("from-flag", "flag-id"), "zone and server in /stats")
    a.stop()


@test
def health_check_answers_ok_until_the_server_is_told_to_fail():
    a = app()
    status, _, body = a.get("/health_check")
    check_eq((status, body), (200, b"ok"), "GET /health_check of a healthy server")
    status, r = request_json("POST", a.port, "/health", {"healthy": False})
    check_eq((status, r), (200, {"healthy": False}), "POST /health {healthy:false}")
    status, _, body = a.get("/health_check")
    check_eq(status, 503, "GET /health_check after POST /health {healthy:false}")
    check_eq(a.stats()["health_status"], 0, "health_status in /stats while failing")
    status, r = request_json("POST", a.port, "/health", {"healthy": True})
    check_eq(status, 200, "POST /health {healthy:true}")
    status, _, body = a.get("/health_check")
    check_eq((status, body), (200, b"ok"), "GET /health_check after healing")


@test
def stats_reports_every_documented_field():
    a = app()
    a.wait_stats(lambda s: s["ts"] > 0, 5, "a first sample in /stats")
    s = a.stats()
    types = {"server": str, "zone": str, "cpu_usage": (int, float), "memory_usage": (int, float),
             "throughput": (int, float), "health_status": int, "profile": str, "ts": (int, float),
             "kafka_sent": int, "kafka_dropped": int, "influx_sent": int, "influx_dropped": int,
             "cpu_target": (int, float), "memory_mib": (int, float)}
    for k, t in types.items():
        check(k in s and isinstance(s[k], t), "/stats field %s of type %s; got %r" % (k, t, s))
    check_eq((s["server"], s["zone"], s["profile"]), ("app-a1", "zone-a", "stop"),
             "server, zone and profile in /stats")
    check(abs(s["ts"] - time.time()) < 5, "ts in /stats is the current unix time: %r" % s["ts"])
    check(0 < s["memory_usage"] < 100, "memory_usage is a percent: %r" % s["memory_usage"])
    check_eq((s["kafka_enabled"], s["influx_enabled"]), (False, False),
             "sinks without KAFKA_BROKERS / INFLUX_URL")


@test
def memory_usage_is_the_resident_set_in_percent_of_memtotal():
    a = app()
    s = a.stats()
    with open("/proc/%d/status" % a.pid) as f:
        rss_kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    with open("/proc/meminfo") as f:
        total_kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    want_mib = rss_kib / 1024
    check(abs(s["memory_mib"] - want_mib) < max(2.0, want_mib * 0.3),
          "memory_mib %r should be close to VmRSS %.1f MiB" % (s["memory_mib"], want_mib))
    want_pct = s["memory_mib"] * 1024 / total_kib * 100
    check(abs(s["memory_usage"] - want_pct) < 0.01,
          "memory_usage %r should be memory_mib / MemTotal = %.4f %%" % (s["memory_usage"],
                                                                         want_pct))


@test
def history_holds_one_sample_a_second():
    a = app()
    time.sleep(2.2)
    status, h = request_json("GET", a.port, "/history")
    check_eq(status, 200, "GET /history")
    samples = h.get("samples")
    check(isinstance(samples, list) and len(samples) >= 2,
          "at least 2 samples after 2 s; got %r" % h)
    gaps = [b["ts"] - a_["ts"] for a_, b in zip(samples, samples[1:])]
    check(all(0.5 < g < 1.6 for g in gaps), "samples about 1 s apart; gaps %r" % gaps)
    for k in ("ts", "cpu_usage", "memory_usage", "throughput"):
        check(k in samples[-1], "history sample has %s: %r" % (k, samples[-1]))


@test
def dashboard_is_served_from_the_binary_with_nothing_fetched_from_outside():
    status, hdrs, body = app().get("/")
    check_eq(status, 200, "GET /")
    check(hdrs.get("content-type", "").startswith("text/html"),
          "GET / content type text/html; got %r" % hdrs.get("content-type"))
    page = body.decode()
    for elem in ('id="profile"', 'id="cpu"', 'id="memory"', 'id="throughput"', 'id="chart"',
                 'id="btn-high"', 'id="btn-low"', 'id="btn-stop"', 'id="server"', 'id="zone"',
                 "High CPU", "Low CPU", "Stop"):
        check(elem in page, "the dashboard should contain %s" % elem)
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"' >]+""", page)
    check(not external, "the dashboard must not load anything from outside: %r" % external)


@test
def load_switches_the_profile_and_only_through_post():
    a = app()
    r = a.load("low")
    check_eq((r["profile"], r["changed"]), ("low", True), "POST /load low")
    check_eq(a.stats()["profile"], "low", "profile in /stats after POST /load low")
    r = a.load("low")
    check_eq(r["changed"], False, "POST /load low again changes nothing")
    status, _, _ = a.get("/load?profile=high")
    check_eq(status, 405, "GET /load?profile=high")
    check_eq(a.stats()["profile"], "low", "profile after GET /load?profile=high")
    a.load("stop")


@test
def bad_input_gets_400_with_a_json_error_and_changes_nothing():
    a = app()
    a.load("stop")
    a.wait_stats(lambda s: s["cpu_target"] == 0, 3, "cpu_target 0 after stop")
    bad_load = [
        ("{not json", "invalid JSON"),
        ("", "empty body"),
        ('"high"', "a string instead of an object"),
        ("[]", "an array"),
        ("{}", "no profile"),
        ('{"profile": 1}', "profile as a number"),
        ('{"profile": null}', "profile null"),
        ('{"profile": "medium"}', "unknown profile"),
        ('{"profile": "HIGH"}', "profile in capitals"),
        ('{"profile": "high", "force": true}', "an unknown field"),
    ]
    for body, what in bad_load:
        status, r = _post_raw(a.port, "/load", body)
        check_json_error(status, r, 400, "POST /load with %s (%r)" % (what, body))
    s = a.stats()
    check_eq((s["profile"], s["cpu_target"]), ("stop", 0), "profile after refused /load bodies")

    for body, what in [('{"healthy": "no"}', "healthy as a string"),
                       ('{"healthy": 0}', "healthy as a number"),
                       ('{}', "no healthy field"),
                       ('{"healthy": false, "x": 1}', "an unknown field"),
                       ("nope", "invalid JSON")]:
        status, r = _post_raw(a.port, "/health", body)
        check_json_error(status, r, 400, "POST /health with %s (%r)" % (what, body))
    check_eq(a.get("/health_check")[0], 200, "health check after refused /health bodies")

    for q in ("0", "1001", "-5", "abc", "1.5", "", "10x", "99999999999999999999"):
        status, r = request_json("GET", a.port, "/work?ms=" + q)
        check_json_error(status, r, 400, "GET /work?ms=%s" % q)


def _post_raw(port, path, body):
    status, _, data = request("POST", port, path, body,
                              headers={"Content-Type": "application/json"})
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data


@test
def wrong_method_gets_405_naming_the_allowed_one_and_unknown_paths_404():
    a = app()
    for method, path, allowed in [("POST", "/stats", "GET"), ("DELETE", "/health_check", "GET"),
                                  ("PUT", "/", "GET"), ("GET", "/load", "POST"),
                                  ("GET", "/health", "POST"), ("POST", "/work", "GET"),
                                  ("POST", "/history", "GET")]:
        status, hdrs, data = request(method, a.port, path, "{}")
        body = json.loads(data) if data else None
        check_json_error(status, body, 405, "%s %s" % (method, path))
        check_eq(hdrs.get("allow"), allowed, "Allow header of %s %s" % (method, path))
    status, r = request_json("GET", a.port, "/nope")
    check_json_error(status, r, 404, "GET /nope")


@test
def work_spends_the_cpu_asked_for_and_counts_in_throughput():
    a = app()
    t0 = time.monotonic()
    status, r = request_json("GET", a.port, "/work?ms=200")
    took = time.monotonic() - t0
    check_eq(status, 200, "GET /work?ms=200")
    # it stops at 200 ms of CPU, or, starved, at twice that in wall clock
    check(r["cpu_ms"] <= 260 and took >= 0.19 and (r["cpu_ms"] >= 195 or took >= 0.395),
          "GET /work?ms=200 spends 200 ms of CPU or 400 ms of wall time; got cpu_ms %r in %.3fs"
          % (r["cpu_ms"], took))
    status, r = request_json("GET", a.port, "/work")
    check(status == 200 and r["ms"] == 10, "GET /work defaults to 10 ms; got %d %r" % (status, r))

    deadline = time.monotonic() + 2.5
    done = []
    while time.monotonic() < deadline:
        request("GET", a.port, "/work?ms=1")
        done.append(time.monotonic())
    t_read = time.monotonic()
    s = a.stats()
    # the app counts requests per second at a phase of its own: its last
    # second ended somewhere in [t_read - 1, t_read]; the fewest requests
    # this client completed in any such second bounds what it must show
    # (a machine that starves this client lowers the bound with it)
    fewest = min(sum(1 for t in done if end - 1.0 < t <= end)
                 for end in (t_read - 1.0 + k * 0.05 for k in range(21)))
    check(s["throughput"] >= fewest * 0.5,
          "throughput in /stats should reflect at least %d requests in its last second; got %r"
          % (fewest, s["throughput"]))


@test
def high_profile_really_burns_cpu_and_stop_and_low_bring_it_down():
    a = App(zone="zone-cpu", server_id="cpu-1")
    idle = proc_cpu_percent(a.pid, 1.5)
    check(idle < 5, "an app on profile stop uses almost no CPU; /proc says %.1f%%" % idle)

    a.load("high")
    samples = []
    # the target rises 1-5 points a second from 0; 70 is reached within 70 s at worst
    deadline = time.monotonic() + 80
    while time.monotonic() < deadline:
        samples.append(proc_cpu_percent(a.pid, 2.0))
        if a.stats()["cpu_target"] >= 70:
            break
    log("CPU while ramping up (/proc, 2 s windows): %s" % ["%.0f" % x for x in samples])
    check(len(samples) >= 2 and samples[-1] > samples[0] + 5,
          "CPU should rise while the high profile ramps up; got %r" % samples)
    check(a.stats()["cpu_target"] >= 70, "cpu_target reaches 70 within 80 s")
    time.sleep(1.0)
    measured, idle = proc_and_idle_percent(a.pid, 3.0)
    reported = a.stats()["cpu_usage"]
    log("high plateau: /proc %.1f%%, /stats %.1f%%, machine idle %.0f%% of a core"
        % (measured, reported, idle))
    check(measured <= 85, "on the high plateau the process uses at most 75%% of a core; "
          "/proc says %.1f%%" % measured)
    if idle >= 20:
        check(measured >= 60, "on the high plateau the process uses 70-75%% of a core; /proc "
              "says %.1f%% while %.0f%% of a core was idle" % (measured, idle))
    else:
        # others took the CPU: what the app gets is still clearly more than idle
        check(measured >= 10, "even on a busy machine (%.0f%% of a core idle) the high plateau "
              "burns CPU; /proc says %.1f%%" % (idle, measured))
    check(abs(reported - measured) < 15,
          "cpu_usage in /stats (%.1f) should match /proc (%.1f)" % (reported, measured))

    a.load("stop")
    time.sleep(1.5)
    after = proc_cpu_percent(a.pid, 2.0)
    check(after < 5, "after stop the process uses almost no CPU; /proc says %.1f%%" % after)

    a.load("low")
    t_low = a.stats()["cpu_target"]
    check(40 <= t_low <= 50, "the low profile starts near 50%%; cpu_target %r" % t_low)
    time.sleep(0.5)
    low, idle1 = proc_and_idle_percent(a.pid, 2.0)
    time.sleep(1.5)
    later, idle2 = proc_and_idle_percent(a.pid, 2.0)
    t_later = a.stats()["cpu_target"]
    log("low profile: /proc %.1f%% then %.1f%% (machine idle %.0f%%, %.0f%%), target %r -> %r"
        % (low, later, idle1, idle2, t_low, t_later))
    check(t_later < t_low, "the low profile's target falls: %r then %r" % (t_low, t_later))
    check(low <= 60, "the low profile starts at 50%%; /proc says %.1f%%" % low)
    if min(idle1, idle2) >= 20:
        check(low >= 25, "the low profile starts near 50%%; /proc says %.1f%%" % low)
        check(later < low, "the low profile falls: %.1f%% then %.1f%%" % (low, later))
    a.stop()


@test
def sigterm_exits_cleanly_with_status_0():
    a = App(zone="zone-term", server_id="term-1", env={"PROFILE": "high"})
    time.sleep(1.2)
    t0 = time.monotonic()
    a.proc.signal(signal.SIGTERM)
    rc = a.proc.wait(10)
    check_eq(rc, 0, "exit status after SIGTERM (output:\n%s)" % a.output())
    check(time.monotonic() - t0 < 3, "SIGTERM exits within 3 s")


if __name__ == "__main__":
    main()
