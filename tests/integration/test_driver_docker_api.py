"""The docker driver's use of the Engine API, against a scripted fake
engine on a unix socket (no dockerd needed): version negotiation, the
order of calls, cleanup after a failed start, the remove fallbacks."""
import json
import os
import re
import sys
import time

from scalertest import *
import fakeengine


class FakeEngine(fakeengine.FakeEngine):
    """The fake engine with a docker driver config pointing at it."""

    def conf(self, settings=""):
        path = os.path.join(tmpdir(), "fake-%d.conf" % id(self))
        with open(path, "w") as f:
            f.write('cluster = "fk";\ndriver = { plugin = "docker"; host = "unix://%s"; '
                    'image = "img:1"; stop_timeout = 7; %s };\n'
                    'zones = ( { name = "z1"; port_min = 31000; port_max = 31009; } );\n'
                    % (self.sock, settings))
        return path

    def ctl(self, *cmds, settings=""):
        return fakeengine.driverctl(self.conf(settings), *cmds)


CID = "ab" * 32
LABELS = {"scaler.cluster": "fk", "scaler.zone": "z1", "scaler.server": "s1",
          "scaler.address": "http://127.0.0.1:31000"}


@test
def the_api_version_is_the_lower_of_141_and_the_engines():
    for engine_version, want in [("1.40", "v1.40"), ("1.43", "v1.41"), ("2.0", "v1.41")]:
        e = FakeEngine(engine_version)
        e.routes.append(("GET", r"/containers/json.*", 200, []))
        r = e.ctl(["list"], ["list"])
        check(all(x["ok"] for x in r), "list against engine %s: %r" % (engine_version, r))
        check_eq(e.paths()[0], ("GET", "/version"), "first request")
        check_eq([p.split("/")[1] for m, p in e.paths()[1:]], [want, want],
                 "version prefix used with an engine at API %s (negotiated once)" % engine_version)


@test
def list_asks_for_this_clusters_label_and_maps_containers():
    e = FakeEngine()
    e.routes.append(("GET", r"/containers/json.*", 200, [
        {"Id": CID, "Labels": LABELS, "State": "running", "Created": 1700000000},
        {"Id": "cd" * 32, "Labels": {"scaler.cluster": "fk"}, "State": "running"},  # no server label
    ]))
    r = e.ctl(["list"])[0]
    check_eq(r["servers"], [{"id": "s1", "zone": "z1", "address": "http://127.0.0.1:31000",
                             "ref": CID, "created": 1700000000.0, "running": True}],
             "servers listed")
    path = e.paths()[1][1]
    check("all=1" in path and "filters=" in path, "list asks for all containers with a filter: %s" % path)
    q = path.split("filters=", 1)[1]
    import urllib.parse
    check_eq(json.loads(urllib.parse.unquote(q)), {"label": ["scaler.cluster=fk"]}, "label filter")


@test
def create_sends_the_container_spec_then_starts_it():
    e = FakeEngine()
    e.routes += [("GET", r"/containers/json.*", 200, []),
                 ("POST", r"/containers/create\?name=scaler-fk-s1", 201, {"Id": CID}),
                 ("POST", r"/containers/%s/start" % CID, 204, None)]
    r = e.ctl(["create", "z1", "s1"],
              settings='command = ["/bin/serve", "-v"]; env = ["A=1"]; memory = "128m"; '
                       'cpus = 1.5; cpu_shares = 256; binds = ["/srv:/data:ro"]; '
                       'volumes = ["cache:/cache"];')[0]
    check(r["ok"], "create: %r" % r)
    check_eq((r["server"]["ref"], r["server"]["address"]), (CID, "http://127.0.0.1:31000"),
             "created server")
    reqs = [(m, re.sub(r"^/v1\.41", "", p), b) for m, p, b in e.requests]
    check_eq([(m, p.split("?")[0]) for m, p, _ in reqs],
             [("GET", "/version"), ("GET", "/containers/json"), ("POST", "/containers/create"),
              ("POST", "/containers/%s/start" % CID)], "calls in order")
    body = reqs[2][2]
    check_eq((body["Image"], body["Cmd"]), ("img:1", ["/bin/serve", "-v"]), "image and command")
    check_eq(sorted(body["Env"]), ["A=1", "HOST=127.0.0.1", "PORT=31000", "SERVER_ID=s1", "ZONE=z1"],
             "environment (host networking: HOST is host_address)")
    check_eq({k: v for k, v in body["Labels"].items() if k != "scaler.created"},
             {"scaler.cluster": "fk", "scaler.zone": "z1", "scaler.server": "s1",
              "scaler.port": "31000", "scaler.address": "http://127.0.0.1:31000"}, "labels")
    hc = body["HostConfig"]
    check_eq((hc["NetworkMode"], hc["RestartPolicy"], hc["Memory"], hc["NanoCpus"], hc["CpuShares"],
              hc["Binds"], hc["Mounts"]),
             ("host", {"Name": "no"}, 128 << 20, 1500000000, 256, ["/srv:/data:ro"],
              [{"Type": "volume", "Source": "cache", "Target": "/cache", "ReadOnly": False}]),
             "host config")


@test
def a_failed_start_deletes_the_container_and_reports_dockers_message():
    e = FakeEngine()
    e.routes += [("GET", r"/containers/json.*", 200, []),
                 ("POST", r"/containers/create.*", 201, {"Id": CID}),
                 ("POST", r"/containers/%s/start" % CID, 500, {"message": "port is already allocated"}),
                 ("DELETE", r"/containers/%s\?force=1" % CID, 204, None)]
    r = e.ctl(["create", "z1", "s1"])[0]
    check(not r["ok"] and "port is already allocated" in r["error"], "error: %r" % r)
    check_eq(e.paths()[-1], ("DELETE", "/v1.41/containers/%s?force=1" % CID), "last call: forced delete")


@test
def a_create_refused_before_any_call_answers_later_and_sends_nothing():
    e = FakeEngine()
    e.routes += [("GET", r"/containers/json.*", 200, [])]
    r = e.ctl(["create", "z1", "bad id!"], ["create", "nozone", "s1"])
    check(not r[0]["ok"] and 'server id "bad id!" is not valid' in r[0]["error"],
          "a server id the driver refuses: %r" % r[0])
    check(not r[0].get("on_callers_stack"),
          "the refusal reaches the callback from the loop, after create returned: %r" % r[0])
    check(not [p for m, p in e.paths() if m == "POST"], "nothing created: %r" % e.paths())


def silent_create(path, body):
    """An engine that makes the container but answers after api_timeout (1 s)."""
    time.sleep(2)
    return 201, {"Id": CID}


@test
def a_create_the_engine_did_not_answer_in_time_is_taken_when_it_made_the_container():
    e = FakeEngine()
    e.routes += [("GET", r"/containers/json.*", 200, []),
                 ("POST", r"/containers/create.*", 0, silent_create),
                 ("GET", r"/containers/scaler-fk-s1/json", 200,
                  {"Id": CID, "Config": {"Labels": dict(LABELS, **{"scaler.port": "31000"})}}),
                 ("POST", r"/containers/%s/start" % CID, 204, None)]
    r = e.ctl(["create", "z1", "s1"], settings="api_timeout = 1;")[0]
    check(r["ok"] and r["server"]["ref"] == CID, "create takes container %s: %r" % (CID, r))
    check_eq([(m, re.sub(r"^/v1\.41", "", p).split("?")[0]) for m, p in e.paths()[2:]],
             [("POST", "/containers/create"), ("GET", "/containers/scaler-fk-s1/json"),
              ("POST", "/containers/%s/start" % CID)],
             "the create, a look at the container by name, its start")


@test
def a_create_the_engine_cannot_account_for_is_removed_by_name():
    def silent_get(path, body):
        time.sleep(2)
        return 404, {"message": "No such container: scaler-fk-s1"}
    e = FakeEngine()
    e.routes += [("GET", r"/containers/json.*", 200, []),
                 ("POST", r"/containers/create.*", 0, silent_create),
                 ("GET", r"/containers/scaler-fk-s1/json", 0, silent_get),
                 ("DELETE", r"/containers/scaler-fk-s1\?force=1", 204, None)]
    r = e.ctl(["create", "z1", "s1"], settings="api_timeout = 1;")[0]
    check(not r["ok"] and "create server s1" in r["error"] and "left behind" not in r["error"],
          "error: %r" % r)
    check_eq(e.paths()[-1], ("DELETE", "/v1.41/containers/scaler-fk-s1?force=1"),
             "last call: the container removed by name")


@test
def a_create_the_engine_did_not_answer_fails_when_no_such_container_exists():
    e = FakeEngine()
    e.routes += [("GET", r"/containers/json.*", 200, []),
                 ("POST", r"/containers/create.*", 0, silent_create),
                 ("GET", r"/containers/scaler-fk-s1/json", 404,
                  {"message": "No such container: scaler-fk-s1"})]
    r = e.ctl(["create", "z1", "s1"], settings="api_timeout = 1;")[0]
    check(not r["ok"] and "create server s1" in r["error"] and "timed out" in r["error"].lower(),
          "error: %r" % r)
    check(not [p for m, p in e.paths() if m == "DELETE" or p.endswith("/start")],
          "nothing deleted or started: %r" % e.paths())


@test
def remove_checks_the_labels_stops_with_the_timeout_then_deletes():
    e = FakeEngine()
    e.routes += [("GET", r"/containers/%s/json" % CID, 200, {"Id": CID, "Config": {"Labels": LABELS}}),
                 ("POST", r"/containers/%s/stop\?t=7" % CID, 204, None),
                 ("DELETE", r"/containers/%s" % CID, 409, {"message": "You cannot remove a running container"}),
                 ("DELETE", r"/containers/%s\?force=1" % CID, 204, None)]
    r = e.ctl(["remove", "s1", "z1", CID])[0]
    check(r["ok"], "remove: %r" % r)
    check_eq([p.replace("/v1.41", "") for m, p in e.paths()[1:]],
             ["/containers/%s/json" % CID, "/containers/%s/stop?t=7" % CID,
              "/containers/%s" % CID, "/containers/%s?force=1" % CID],
             "inspect, stop?t=stop_timeout, delete, forced delete as the fallback")


@test
def a_reload_applies_the_new_image_without_renegotiating():
    e = FakeEngine()
    e.routes += [("GET", r"/containers/json.*", 200, []),
                 ("POST", r"/containers/create.*", 201, {"Id": CID}),
                 ("POST", r"/containers/%s/start" % CID, 204, None)]
    other = os.path.join(tmpdir(), "fake-reload.conf")
    with open(e.conf()) as f:
        text = f.read().replace('image = "img:1"', 'image = "img:2"')
    with open(other, "w") as f:
        f.write(text)
    r = e.ctl(["create", "z1", "s1"], ["reload", other], ["create", "z1", "s2"])
    check(all(x["ok"] for x in r), "create, reload, create: %r" % r)
    images = [b["Image"] for m, p, b in e.requests if "/containers/create" in p]
    check_eq(images, ["img:1", "img:2"], "images of the creates before and after the reload")
    check_eq(sum(1 for m, p in e.paths() if p == "/version"), 1, "GET /version calls")


@test
def removing_a_container_that_is_gone_succeeds():
    e = FakeEngine()
    e.routes.append(("GET", r"/containers/.*/json", 404, {"message": "No such container"}))
    r = e.ctl(["remove", "s1", "z1", CID])[0]
    check(r["ok"], "remove of a missing container: %r" % r)


if __name__ == "__main__":
    if not os.access(binary("tests/driverctl"), os.X_OK):
        print("1..0 # SKIP tests/driverctl is not built")
        sys.exit(0)
    main()
