#!/usr/bin/env python3
"""scalerctl against a fake scalerd admin API that follows the documented
contract (auth on mutating endpoints, 404 for unknown zones, long-polled
events). The fake records every request so the tests can check what
scalerctl sent, not only what it printed."""
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from scalertest import *

TOKEN = "s3cret-token"
NOW = time.time()


def fresh_state():
    servers = {
        "zone1": [
            {"id": "zone1-ab12", "zone": "zone1", "address": "http://127.0.0.1:20000",
             "state": "serving", "driver": "process", "ref": "pid:4242:1", "created": NOW - 600,
             "metric": 80.5},
            {"id": "zone1-cd34", "zone": "zone1", "address": "http://127.0.0.1:20001",
             "state": "starting", "driver": "process", "ref": "pid:4243:1", "created": NOW - 5,
             "metric": None},
        ],
        "zone2": [
            {"id": "zone2-ef56", "zone": "zone2", "address": "http://127.0.0.1:20100",
             "state": "serving", "driver": "process", "ref": "pid:4300:1", "created": NOW - 7200,
             "metric": 4.0},
        ],
    }
    events = [
        {"id": "1700000000000-0", "time": NOW - 120, "zone": "zone1", "kind": "scale_up",
         "from": 1, "to": 2, "reason": "average cpu 80.5 >= max_cpu 70"},
        {"id": "1700000000001-0", "time": NOW - 60, "zone": "zone2", "kind": "hold",
         "from": 1, "to": 1, "reason": "average cpu 4.0 at min servers"},
    ]
    return {"servers": servers, "events": events, "pins": {}, "reload_errors": None}


class FakeScalerd:
    """Implements the scalerd admin API contract scalerctl is written against."""

    def __init__(self, token=TOKEN):
        self.token = token
        self.state = fresh_state()
        self.requests = []
        self.cond = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_event(self, ev):
        with self.cond:
            self.state["events"].append(ev)
            self.cond.notify_all()

    def zones(self):
        return sorted(self.state["servers"])

    def status_json(self):
        zones = []
        for name in self.zones():
            pin = self.state["pins"].get(name)
            zones.append({
                "name": name, "listen": "127.0.0.1:808%s" % name[-1],
                "admin": "127.0.0.1:908%s" % name[-1], "min": 1, "max": 5,
                "servers": [{k: s[k] for k in ("id", "address", "state", "metric")}
                            for s in self.state["servers"][name]],
                "last_decision": {"time": NOW - 120, "from": 1, "to": 2, "rule": "above max_cpu",
                                  "reason": "average cpu 80.5 >= max_cpu 70"}
                if name == "zone1" else None,
                "cooldown_remaining": 30.0 if name == "zone1" else 0.0,
                "pinned": pin, "dry_run": name == "zone2",
            })
        return {"node": {"id": "1", "url": self.url, "role": "primary", "epoch": 3},
                "config": {"path": "/etc/scaler/scaler.conf", "loaded_at": NOW - 3600},
                "plugins": [{"kind": "driver", "name": "process", "version": "0.1.0",
                             "path": "/usr/lib/scaler/driver_process.so"},
                            {"kind": "policy", "name": "threshold", "version": "0.1.0",
                             "path": "/usr/lib/scaler/policy_threshold.so"}],
                "election": {"plugin": "bully", "primary": "1"},
                "zones": zones}

    def handle(self, h, method):
        u = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(u.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "not json"
        self.requests.append({"method": method, "path": u.path, "query": query,
                              "auth": h.headers.get("Authorization"), "body": body})
        status, reply = self.route(method, u.path, query, body, h.headers.get("Authorization"))
        data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/plain" if isinstance(reply, str) else "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def route(self, method, path, query, body, auth):
        if method == "POST" and self.token and auth != "Bearer " + self.token:
            return 401, {"error": "missing or wrong bearer token"}
        zone = query.get("zone") or (body.get("zone") if isinstance(body, dict) else None)
        if zone is not None and zone not in self.state["servers"]:
            return 404, {"error": 'unknown zone "%s"' % zone}
        if (method, path) == ("GET", "/health_check"):
            return 200, "ok"
        if (method, path) == ("GET", "/status"):
            return 200, self.status_json()
        if (method, path) == ("GET", "/servers"):
            out = []
            for z in self.zones():
                if zone is None or z == zone:
                    out += self.state["servers"][z]
            return 200, out
        if (method, path) == ("GET", "/events"):
            def after_ids():
                evs = [e for e in self.state["events"] if zone is None or e["zone"] == zone]
                if "after" in query:
                    evs = [e for e in evs if e["id"] > query["after"]]
                return evs
            with self.cond:
                evs = after_ids()
                if not evs and "wait" in query:
                    self.cond.wait_for(lambda: after_ids(), float(query["wait"]))
                    evs = after_ids()
                last = evs[-1]["id"] if evs else query.get("after")
            return 200, {"events": evs, "last": last}
        if (method, path) == ("POST", "/reload"):
            if self.state["reload_errors"]:
                return 400, {"error": "invalid configuration, nothing changed",
                             "errors": self.state["reload_errors"]}
            return 200, {"result": "reloaded"}
        if (method, path) == ("POST", "/scale"):
            if not isinstance(body, dict) or "count" not in body or zone is None:
                return 400, {"error": "body must be {\"zone\":..., \"count\":...}"}
            if body["count"] is None:
                self.state["pins"].pop(zone, None)
                return 200, {"zone": zone, "count": None, "until": None}
            if not isinstance(body["count"], int) or not 1 <= body["count"] <= 5:
                return 400, {"error": "count %r is outside %s's min..max (1..5)" % (body["count"], zone)}
            until = time.time() + body["for"] if body.get("for") else None
            self.state["pins"][zone] = {"count": body["count"], "until": until}
            return 200, {"zone": zone, "count": body["count"], "until": until}
        if (method, path) == ("POST", "/drain"):
            ids = [s["id"] for s in self.state["servers"][zone]]
            if body.get("server") not in ids:
                return 404, {"error": 'unknown server "%s" in zone %s' % (body.get("server"), zone)}
            return 202, {"result": "draining"}
        if (method, path) == ("GET", "/boom"):
            return 500, {"error": "internal"}
        return 404, {"error": "no such endpoint"}


_fake = None


def fake():
    global _fake
    if _fake is None:
        _fake = FakeScalerd()
    return _fake


def ctl_test(fn):
    """A test that starts with the fake in its initial state."""
    def run():
        f = fake()
        f.state = fresh_state()
        f.requests = []
        fn()
    run.__name__ = fn.__name__
    return test(run)


def ctl(*args, env=None, url=True, token=True, timeout=20):
    """Run scalerctl; returns (exit code, stdout, stderr)."""
    f = fake()
    f.requests = []
    argv = [binary("scalerctl")]
    if url:
        argv += ["-u", f.url]
    if token:
        argv += ["-t", TOKEN]
    argv += list(args)
    e = {k: v for k, v in os.environ.items() if not k.startswith("SCALER_")}
    # a scaler.conf installed on this machine must not leak into the tests
    e["SCALER_CONF"] = write_file("empty.conf", "")
    e.update(env or {})
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e)
    return r.returncode, r.stdout, r.stderr


def check_exit(got, want, out, err, what):
    check(got == want, "%s: expected exit %d, got %d\nstdout: %s\nstderr: %s"
          % (what, want, got, out, err))


def column_starts(header, names):
    return [header.index(n) for n in names]


@ctl_test
def status_prints_the_node_and_an_aligned_table_of_zones():
    rc, out, err = ctl("status")
    check_exit(rc, 0, out, err, "scalerctl status")
    check("node     1 (primary, epoch 3)" in out, "node line with id, role and epoch in:\n" + out)
    check("/etc/scaler/scaler.conf" in out, "config path in:\n" + out)
    check("driver=process 0.1.0" in out, "plugins in:\n" + out)
    lines = out.splitlines()
    header = [l for l in lines if l.startswith("ZONE")]
    check(len(header) == 1, "one table header starting with ZONE in:\n" + out)
    header = header[0]
    for col in ("SERVERS", "MIN", "MAX", "LOAD", "LISTEN", "PINNED", "COOLDOWN", "LAST DECISION"):
        check(col in header, "column %s in header %r" % (col, header))
    z1 = [l for l in lines if l.startswith("zone1 ")][0]
    z2 = [l for l in lines if l.startswith("zone2 ")][0]
    check("2 (1 serving)" in z1, "zone1 shows 2 servers, 1 serving: %r" % z1)
    check("80.5" in z1, "zone1 load is the mean of known metrics (80.5): %r" % z1)
    check("1 -> 2 above max_cpu, 2m ago" in z1, "zone1 last decision: %r" % z1)
    check("30s" in z1, "zone1 cooldown 30s: %r" % z1)
    check("(dry run)" in z2, "zone2 is marked dry run: %r" % z2)
    listen = header.index("LISTEN")
    check_eq(z1[listen:listen + 14], "127.0.0.1:8081", "zone1 listen under the LISTEN column")
    check_eq(z2[listen:listen + 14], "127.0.0.1:8082", "zone2 listen under the LISTEN column")


@ctl_test
def a_proxy_from_the_environment_is_not_used_for_this_machine():
    dead = "http://127.0.0.1:%d" % free_port()
    rc, out, err = ctl("status", env={"http_proxy": dead, "HTTP_PROXY": dead, "no_proxy": "example.org"})
    check_exit(rc, 0, out, err, "status with http_proxy set to a closed port")


@ctl_test
def status_json_prints_the_api_answer_unchanged():
    rc, out, err = ctl("--json", "status")
    check_exit(rc, 0, out, err, "scalerctl --json status")
    got = json.loads(out)
    check_eq(got["node"], {"id": "1", "url": fake().url, "role": "primary", "epoch": 3}, "node")
    check_eq([z["name"] for z in got["zones"]], ["zone1", "zone2"], "zone names")


@ctl_test
def status_shows_a_pin_with_its_remaining_time():
    f = fake()
    f.state["pins"]["zone1"] = {"count": 3, "until": time.time() + 600}
    f.state["pins"]["zone2"] = {"count": 2, "until": None}
    argv = [binary("scalerctl"), "-u", f.url, "status"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    z1 = [l for l in out.splitlines() if l.startswith("zone1 ")][0]
    z2 = [l for l in out.splitlines() if l.startswith("zone2 ")][0]
    check("3 for 10m" in z1 or "3 for 9m" in z1, "zone1 pinned at 3 for ~10m: %r" % z1)
    pinned = out.splitlines()[[l.startswith("ZONE") for l in out.splitlines()].index(True)].index("PINNED")
    check_eq(z2[pinned:pinned + 2], "2 ", "zone2 pinned at 2 until unpinned")


@ctl_test
def servers_lists_every_zone_in_columns():
    rc, out, err = ctl("servers")
    check_exit(rc, 0, out, err, "scalerctl servers")
    lines = out.splitlines()
    check(lines[0].split() == ["ID", "ZONE", "STATE", "ADDRESS", "LOAD", "AGE", "DRIVER", "REF"],
          "header of servers table: %r" % lines[0])
    check_eq(len(lines), 4, "header and 3 servers")
    check(lines[1].startswith("zone1-ab12  zone1  serving "), "first row: %r" % lines[1])
    check("10m" in lines[1], "age of a 10 minute old server is 10m: %r" % lines[1])
    check("2h" in lines[3], "age of a 2 hour old server is 2h: %r" % lines[3])
    addr = lines[0].index("ADDRESS")
    for l in lines[1:]:
        check_eq(l[addr:addr + 7], "http://", "address column aligned in %r" % l)
    check_eq(fake().requests[-1]["query"], {}, "no zone filter sent")


@ctl_test
def servers_of_one_zone_sends_the_zone_filter():
    rc, out, err = ctl("servers", "zone2")
    check_exit(rc, 0, out, err, "scalerctl servers zone2")
    check_eq(fake().requests[0]["query"], {"zone": "zone2"}, "query sent")
    check("zone2-ef56" in out and "zone1-ab12" not in out, "only zone2 servers in:\n" + out)
    rc, out, err = ctl("--json", "servers", "zone1")
    check_eq([s["id"] for s in json.loads(out)], ["zone1-ab12", "zone1-cd34"], "--json servers")


@ctl_test
def an_unknown_zone_exits_4_and_names_the_zones_there_are():
    rc, out, err = ctl("servers", "nope")
    check_exit(rc, 4, out, err, "servers of an unknown zone")
    check('unknown zone "nope" (zones: zone1, zone2)' in err,
          "server's message and the known zones in stderr: %r" % err)
    rc, out, err = ctl("scale", "nope", "2")
    check_exit(rc, 4, out, err, "scale of an unknown zone")
    check("zones: zone1, zone2" in err, "known zones listed in stderr: %r" % err)


@ctl_test
def events_prints_a_table_and_json_on_request():
    rc, out, err = ctl("events")
    check_exit(rc, 0, out, err, "scalerctl events")
    lines = out.splitlines()
    check(lines[0].split() == ["TIME", "ZONE", "KIND", "FROM", "TO", "REASON"],
          "events header: %r" % lines[0])
    check("scale_up" in lines[1] and "average cpu 80.5 >= max_cpu 70" in lines[1],
          "first event: %r" % lines[1])
    check_eq(lines[1].index("scale_up"), lines[2].index("hold"), "KIND column aligned")
    check("wait" not in fake().requests[0]["query"], "no long poll without -f")
    rc, out, err = ctl("events", "zone2")
    check_eq(fake().requests[0]["query"], {"zone": "zone2"}, "zone filter sent")
    check("scale_up" not in out and "hold" in out, "only zone2 events:\n" + out)
    rc, out, err = ctl("--json", "events")
    check_eq(len(json.loads(out)["events"]), 2, "--json events: both events")


@ctl_test
def terminal_commands_in_what_scalerd_says_are_printed_as_question_marks():
    f = fake()
    f.add_event({"id": "1700000000009-0", "time": NOW, "zone": "zone1\x1b]0;owned\x07",
                 "kind": "hold", "from": 1, "to": 1,
                 "reason": "clear\x1b[2J\x1b[31mred\u009b0m\r\nsecond line"})
    for args in (("events",), ("events", "zone1")):
        rc, out, err = ctl(*args)
        check_exit(rc, 0, out, err, "scalerctl " + " ".join(args))
        check("\x1b" not in out and "\x07" not in out and "\u009b" not in out and "\r" not in out,
              "no control character reaches the terminal: %r" % out)
        if len(args) == 1:
            check("clear?[2J?[31mred? 0m??second line" in out, "shown as '?': %r" % out)


@ctl_test
def events_follow_long_polls_after_the_last_event_and_prints_new_ones():
    f = fake()
    argv = [binary("scalerctl"), "-u", f.url, "events", "-f"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        check("hold" in lines[2], "existing events printed first: %r" % lines)
        wait_until(lambda: any("wait" in r["query"] for r in f.requests), 5,
                   "scalerctl to long-poll /events with wait=")
        poll = [r for r in f.requests if "wait" in r["query"]][0]
        check_eq(poll["query"].get("after"), "1700000000001-0", "after= the last event id")
        f.add_event({"id": "1700000000002-0", "time": time.time(), "zone": "zone1",
                     "kind": "scale_down", "from": 2, "to": 1, "reason": "average cpu 3 <= min_cpu 10"})
        line = p.stdout.readline()
        check("scale_down" in line and "min_cpu" in line, "new event printed: %r" % line)
        # it polls again at once; wait for that request so none is still in
        # flight (and logged into the next test) when it is killed
        wait_until(lambda: len([r for r in f.requests if "wait" in r["query"]]) >= 2, 5,
                   "scalerctl's next long poll")
    finally:
        p.kill()
        p.wait()


@ctl_test
def reload_sends_the_token_and_prints_the_result():
    rc, out, err = ctl("reload")
    check_exit(rc, 0, out, err, "scalerctl reload")
    check_eq(out.strip(), "reloaded", "stdout")
    r = fake().requests[0]
    check_eq((r["method"], r["path"], r["auth"]), ("POST", "/reload", "Bearer " + TOKEN), "request")


@ctl_test
def a_refused_reload_exits_5_and_lists_every_config_error():
    f = fake()
    f.state["reload_errors"] = ["scaler.conf:12: zones.[0].max: must be >= min (2)",
                                "scaler.conf:20: driver.plugin: no plugin driver_nope.so"]
    rc, out, err = ctl("reload")
    check_exit(rc, 5, out, err, "refused reload")
    check("previous configuration" in err, "says the old config stays: %r" % err)
    check("scaler.conf:12: zones.[0].max: must be >= min (2)" in err, "first error: %r" % err)
    check("scaler.conf:20: driver.plugin" in err, "second error: %r" % err)


@ctl_test
def scale_pins_a_zone_for_a_duration():
    rc, out, err = ctl("scale", "zone1", "3", "--for", "10m")
    check_exit(rc, 0, out, err, "scale zone1 3 --for 10m")
    r = fake().requests[0]
    check_eq((r["method"], r["path"], r["auth"]), ("POST", "/scale", "Bearer " + TOKEN), "request")
    check_eq(r["body"], {"zone": "zone1", "count": 3, "for": 600}, "body")
    check("zone1 pinned at 3 servers for 10m" in out, "stdout: %r" % out)
    rc, out, err = ctl("scale", "zone1", "2", "--for", "1h30m")
    check_eq(fake().requests[0]["body"]["for"], 5400, "1h30m in seconds")


@ctl_test
def scale_without_for_pins_until_unpinned_and_unpin_sends_null():
    rc, out, err = ctl("scale", "zone2", "2")
    check_exit(rc, 0, out, err, "scale zone2 2")
    check_eq(fake().requests[0]["body"], {"zone": "zone2", "count": 2}, "body without for")
    check("until unpinned" in out and "--unpin" in out, "tells how to unpin: %r" % out)
    rc, out, err = ctl("scale", "zone2", "--unpin")
    check_exit(rc, 0, out, err, "scale zone2 --unpin")
    check_eq(fake().requests[0]["body"], {"zone": "zone2", "count": None}, "unpin body")
    check("unpinned" in out, "stdout: %r" % out)


@ctl_test
def scale_outside_min_max_exits_5_with_the_servers_reason():
    rc, out, err = ctl("scale", "zone1", "9")
    check_exit(rc, 5, out, err, "scale beyond max")
    check("HTTP 400" in err and "outside zone1's min..max (1..5)" in err, "stderr: %r" % err)


@ctl_test
def bad_scale_arguments_are_usage_errors_and_send_nothing():
    for args, words in [(("scale", "zone1", "three"), "whole number"),
                        (("scale", "zone1", "-2"), "Try"),
                        (("scale", "zone1", "2", "--for", "soon"), "not a duration"),
                        (("scale", "zone1", "2", "--for", "0s"), "not a duration"),
                        (("scale", "zone1"), "--unpin"),
                        (("scale", "zone1", "2", "--unpin"), "--unpin"),
                        (("servers", "--for", "1m"), "scale only"),
                        (("status", "-f"), "events only")]:
        rc, out, err = ctl(*args)
        check_exit(rc, 1, out, err, "scalerctl %s" % " ".join(args))
        check(words in err, "%s: %r in stderr %r" % (" ".join(args), words, err))
        check_eq(fake().requests, [], "requests sent by scalerctl %s" % " ".join(args))


@ctl_test
def drain_asks_for_a_server_and_unknown_servers_exit_4():
    rc, out, err = ctl("drain", "zone1", "zone1-ab12")
    check_exit(rc, 0, out, err, "drain zone1 zone1-ab12")
    check_eq(fake().requests[0]["body"], {"zone": "zone1", "server": "zone1-ab12"}, "drain body")
    check("draining zone1-ab12" in out, "stdout: %r" % out)
    rc, out, err = ctl("drain", "zone1", "zone1-zzzz")
    check_exit(rc, 4, out, err, "drain of an unknown server")
    check('unknown server "zone1-zzzz"' in err, "stderr: %r" % err)
    check("(servers in zone1: zone1-ab12, zone1-cd34)" in err, "zone1's servers listed: %r" % err)
    rc, out, err = ctl("--json", "drain", "zone1", "zone1-ab12")
    check_eq(json.loads(out), {"result": "draining"}, "--json drain")


@ctl_test
def an_unreachable_scalerd_exits_2_and_says_how_to_point_elsewhere():
    port = free_port()
    rc, out, err = ctl("status", url=False, env={"SCALER_URL": "127.0.0.1:%d" % port})
    check_exit(rc, 2, out, err, "status against a closed port")
    check("cannot reach scalerd at http://127.0.0.1:%d" % port in err, "URL in stderr: %r" % err)
    check("Connection refused" in err, "reason in stderr: %r" % err)
    check("SCALER_URL" in err and "-u URL" in err, "how to fix in stderr: %r" % err)


@ctl_test
def a_missing_or_wrong_token_exits_3_and_says_how_to_give_one():
    rc, out, err = ctl("reload", token=False)
    check_exit(rc, 3, out, err, "reload without a token")
    check("unauthorised" in err and "SCALER_TOKEN" in err and "--token-file" in err,
          "stderr: %r" % err)
    check_eq(fake().requests[0]["auth"], None, "no Authorization header without a token")
    rc, out, err = ctl("reload", token=False, env={"SCALER_TOKEN": "wrong"})
    check_exit(rc, 3, out, err, "reload with a wrong token")
    check("refused the token from SCALER_TOKEN" in err, "stderr: %r" % err)


@ctl_test
def the_token_comes_from_the_environment_or_a_token_file():
    rc, out, err = ctl("reload", token=False, env={"SCALER_TOKEN": TOKEN})
    check_exit(rc, 0, out, err, "reload with SCALER_TOKEN")
    check_eq(fake().requests[0]["auth"], "Bearer " + TOKEN, "header from SCALER_TOKEN")
    path = write_file("token", TOKEN + "\n")
    rc, out, err = ctl("--token-file", path, "reload", token=False)
    check_exit(rc, 0, out, err, "reload with --token-file")
    check_eq(fake().requests[0]["auth"], "Bearer " + TOKEN, "header from --token-file (newline trimmed)")
    rc, out, err = ctl("--token-file", path + ".missing", "reload", token=False)
    check_exit(rc, 1, out, err, "a missing --token-file")
    check("cannot read token file" in err, "stderr: %r" % err)


@ctl_test
def url_and_token_come_from_scaler_conf():
    f = fake()
    token_file = write_file("conf-token", TOKEN + "\nsecond line is ignored\n")
    conf = write_file("scaler-ctl.conf", """
# scalerctl reads only node.admin, node.url, node.token and node.token_file
node = {
  id = "1";
  admin = "0.0.0.0:%d";
  token_file = "%s";
  some_future_setting = [1, 2, 3];
};
zones = ( { name = "zone1"; listen = "127.0.0.1:8081"; } );
""" % (f.port, token_file))
    rc, out, err = ctl("-c", conf, "reload", url=False, token=False)
    check_exit(rc, 0, out, err, "reload with -c scaler.conf")
    check_eq(f.requests[0]["auth"], "Bearer " + TOKEN, "token from the first line of node.token_file")
    conf2 = write_file("scaler-ctl2.conf", 'node = { url = "%s/"; token = "%s"; };' % (f.url, TOKEN))
    rc, out, err = ctl("-c", conf2, "scale", "zone1", "2", url=False, token=False)
    check_exit(rc, 0, out, err, "scale with node.url and node.token")
    check_eq(f.requests[0]["path"], "/scale", "path after node.url with a trailing slash")


@ctl_test
def an_unreadable_token_file_in_scaler_conf_is_named_when_scalerd_wants_a_token():
    f = fake()
    missing = os.path.join(tmpdir(), "no-such-token")
    conf = write_file("scaler-ctl4.conf", 'node = { admin = "127.0.0.1:%d"; token_file = "%s"; };'
                      % (f.port, missing))
    rc, out, err = ctl("-c", conf, "status", url=False, token=False)
    check_exit(rc, 0, out, err, "status (no token needed) with an unreadable token file")
    rc, out, err = ctl("-c", conf, "reload", url=False, token=False)
    check_exit(rc, 3, out, err, "reload with an unreadable token file")
    check("cannot read token file %s" % missing in err and "group scaler" in err,
          "stderr names the token file and what to do: %r" % err)


@ctl_test
def flags_beat_the_environment_which_beats_the_config_file():
    f = fake()
    conf = write_file("scaler-ctl3.conf", 'node = { admin = "127.0.0.1:%d"; token = "from-conf"; };'
                      % free_port())
    env = {"SCALER_URL": f.url, "SCALER_TOKEN": TOKEN}
    rc, out, err = ctl("-c", conf, "reload", url=False, token=False, env=env)
    check_exit(rc, 0, out, err, "environment over config file")
    check_eq(f.requests[0]["auth"], "Bearer " + TOKEN, "SCALER_TOKEN wins over node.token")
    rc, out, err = ctl("-u", "http://127.0.0.1:%d" % free_port(), "status", url=False, env=env)
    check_exit(rc, 2, out, err, "-u wins over SCALER_URL (points at a closed port)")


@ctl_test
def a_bad_config_file_is_a_usage_error_naming_file_and_line():
    conf = write_file("broken.conf", 'node = {\n  admin = "127.0.0.1:9000"\n  token = ;\n};\n')
    rc, out, err = ctl("-c", conf, "status", url=False)
    check_exit(rc, 1, out, err, "status with a broken -c file")
    check("broken.conf:3:" in err, "file and line in stderr: %r" % err)
    rc, out, err = ctl("-c", conf + ".missing", "status", url=False)
    check_exit(rc, 1, out, err, "status with a missing -c file")
    check("cannot read" in err and "No such file" in err, "stderr: %r" % err)
    # a FIFO no one writes to: refused at once, as scalerd refuses one
    fifo = os.path.join(tmpdir(), "fifo.conf")
    os.mkfifo(fifo, 0o600)
    rc, out, err = ctl("-c", fifo, "status", url=False, timeout=10)
    check_exit(rc, 1, out, err, "status with a FIFO as the -c file")
    check("is a FIFO; a configuration must be a regular file" in err, "stderr: %r" % err)


@ctl_test
def usage_errors_exit_1_and_help_and_version_exit_0():
    for args, words in [((), "no command"), (("frobnicate",), 'unknown command "frobnicate"'),
                        (("drain", "zone1"), "missing arguments"),
                        (("status", "extra"), "too many arguments"),
                        (("--bogus", "status"), "Try 'scalerctl --help'"),
                        (("-u", "ftp://x", "status"), "not an http:// URL")]:
        rc, out, err = ctl(*args, url=False)
        check_exit(rc, 1, out, err, "scalerctl %s" % " ".join(args))
        check(words in err, "%r in stderr %r" % (words, err))
    rc, out, err = ctl("--help", url=False)
    check_exit(rc, 0, out, err, "--help")
    for cmd in ("status", "servers", "events", "reload", "scale", "drain", "SCALER_URL", "Exit status"):
        check(cmd in out, "%s in --help output" % cmd)
    rc, out, err = ctl("--version", url=False)
    check_exit(rc, 0, out, err, "--version")
    check(out.startswith("scalerctl ") and len(out.split()) == 2, "version line: %r" % out)


@ctl_test
def a_server_error_exits_5():
    f = fake()
    f.state["servers"]["zone1"][0]["metric"] = "not a number"
    # status with a non-number metric still prints (the metric counts as unknown)
    rc, out, err = ctl("status")
    check_exit(rc, 0, out, err, "status with an odd metric")
    # a 500 from the server
    orig = f.route
    f.route = lambda *a: (500, {"error": "store unreachable"})
    try:
        rc, out, err = ctl("servers")
    finally:
        f.route = orig
    check_exit(rc, 5, out, err, "servers answered with 500")
    check("HTTP 500" in err and "store unreachable" in err, "stderr: %r" % err)


def top_routes(points, guides=()):
    """The fake's route plus what scalerctl top reads besides /status: /zones
    (the zones of /status) and /history with the given points of zone1."""
    f = fake()
    orig = f.route

    def route(method, path, query, body, auth):
        if (method, path) == ("GET", "/zones"):
            return 200, {"zones": f.status_json()["zones"]}
        if (method, path) == ("GET", "/cluster"):
            return 200, {"nodes": [{"id": "1", "self": True, "reachable": True, "redis": True}]}
        if (method, path) == ("GET", "/history"):
            return 200, {"zones": [{"zone": "zone1", "metrics": [{"name": "cpu"}],
                                    "guides": list(guides), "points": points}]}
        return orig(method, path, query, body, auth)
    return route


def top_trend_of(out, zone="zone1"):
    """The LAST 10 MIN cell of zone's row in top's zone table."""
    lines = out.splitlines()
    header = next(l for l in lines if l.startswith("ZONE") and "LAST 10 MIN" in l)
    row = next(l for l in lines[lines.index(header):] if l.startswith(zone + " "))
    start = header.index("LAST 10 MIN")
    return row[start:start + 20]


@ctl_test
def top_draws_any_history_values_and_survives_hostile_ones():
    f = fake()
    now = time.time()
    # one point per 30-second cell, oldest first: rising, then negative
    # values (a metrics plugin may produce them)
    sane = [[now - 585 + 30 * i, 1, v] for i, v in enumerate(
        [0, 10, 20, 30, 40, 50, 60, 70, -5, -70])]
    hostile = sane + [
        [now - 285, 1, 1e308], [now - 284, 1, 1e308],    # their sum is inf, inf/inf NaN
        [now - 255, 1, -1e308], [now - 254, 1, 1e308],  # mean 0
        [now - 225, 1, -1e308],                         # far below the rest
        [1e300, 1, 5], [-1e300, 1, 5], ["x", 1, 5],     # times no cell holds
        [now - 195, 1, "nan"], [now - 195, 1, None], [now - 195]]
    negative = [[now - 15, 1, -3], [now - 45, 1, -7]]
    for pts, want in ((sane, "~=++**##~_"), (hostile, None), (negative, "_=")):
        orig = f.route
        f.route = top_routes(pts)
        try:
            rc, out, err = ctl("top", "-n", "1", env={"LC_ALL": "C.UTF-8"})
            rca, outa, erra = ctl("top", "-n", "1", env={"LC_ALL": "C"})
        finally:
            f.route = orig
        check_exit(rc, 0, out, err, "scalerctl top (UTF-8) with history points %r" % pts)
        check_exit(rca, 0, outa, erra, "scalerctl top (ASCII) with history points %r" % pts)
        trend = top_trend_of(outa)
        check(all(c in " _.-~=+*#" for c in trend), "the trend is drawn: %r" % trend)
        if want:
            # scaled from the lowest cell (when below 0) to the highest
            check_eq(trend.strip(), want, "the ASCII trend of %r" % [p[2] for p in pts])


@ctl_test
def server_sentences_reach_stderr_as_text_never_terminal_commands():
    f = fake()
    orig = f.route
    evil = "\x1b]0;pwned\x07\x1b[2Jgone\u009b0m"
    for reply in ((400, {"error": "bad" + evil, "errors": ["line 1" + evil, "line 2\r\nx"]}),
                  (500, "<html>" + evil + "</html>"),
                  (401, {"error": "who" + evil}),
                  (404, {"error": "no zone" + evil})):
        f.route = lambda *a: reply
        try:
            results = [ctl("servers"), ctl("reload")]
        finally:
            f.route = orig
        for rc, out, err in results:
            check(rc != 0, "a refusal exits non-zero: %r" % err)
            check("pwned" in err or "gone" in err, "the server's sentence is shown: %r" % err)
            check(not any(c in err for c in "\x1b\x07\r\u009b"),
                  "no control character of the server's reaches the terminal: %r" % err)


@ctl_test
def an_answer_larger_than_8_mib_is_refused_with_a_clear_error():
    f = fake()
    orig = f.route
    f.route = lambda *a: (200, "[" + "1," * (5 << 20) + "1]")
    try:
        rc, out, err = ctl("servers")
    finally:
        f.route = orig
    check_exit(rc, 5, out, err, "scalerctl servers with a 10 MiB answer")
    check("more than 8 MiB" in err and f.url in err,
          "stderr says who sent too large an answer: %r" % err)


@ctl_test
def ctrl_c_ends_top_while_a_request_is_in_flight():
    f = fake()
    orig = f.route
    release = threading.Event()
    arrived = threading.Event()

    def hang(*a):
        arrived.set()
        release.wait(60)
        return 200, f.status_json()
    f.route = hang
    argv = [binary("scalerctl"), "-u", f.url, "--timeout", "60", "top", "-n", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALER_")}
    env["SCALER_CONF"] = write_file("empty.conf", "")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        check(arrived.wait(20), "scalerctl top asks for /status")
        p.send_signal(signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            pass
        check(p.returncode is not None,
              "Ctrl-C ends scalerctl top before scalerd answers the request in flight")
    finally:
        release.set()
        if p.returncode is None:
            p.kill()
            p.wait()
        f.route = orig


if __name__ == "__main__":
    main()
