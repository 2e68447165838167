"""The swarm driver's use of the Engine API, against scripted fake Swarm
managers on unix sockets (no dockerd needed): the service it asks for,
manager failover, Swarm's own errors, cleanup, the settings it refuses.
tests/multihost/test_swarm_driver.py runs it against a real Swarm."""
import os
import re
import subprocess
import sys
import time

from scalertest import *
from fakeengine import FakeEngine, driverctl

SID = "s0000000000000000000000001"
NODES = [
    {"ID": "n1", "Status": {"State": "ready", "Addr": "198.18.255.1"},  # never dialled
     "Spec": {"Role": "manager", "Availability": "active", "Labels": {"rack": "a"}},
     "Description": {"Hostname": "h1"}},
    {"ID": "n2", "Status": {"State": "ready", "Addr": "198.18.255.2"},
     "Spec": {"Role": "worker", "Availability": "active", "Labels": {"rack": "b"}},
     "Description": {"Hostname": "h2"}},
    {"ID": "n3", "Status": {"State": "down", "Addr": "198.18.255.3"},
     "Spec": {"Role": "worker", "Availability": "active", "Labels": {"rack": "b"}},
     "Description": {"Hostname": "h3"}},
]


def service(sid, server, port, zone="z1", cluster="fk"):
    return {"ID": sid, "Spec": {"Name": "scaler-%s-%s" % (cluster, server), "Labels": {
        "scaler.cluster": cluster, "scaler.zone": zone, "scaler.server": server,
        "scaler.port": str(port), "scaler.created": "1700000000.5"}}}


def task(sid, node, state="running", desired="running", err=None):
    t = {"ID": "t-" + sid, "ServiceID": sid, "NodeID": node, "DesiredState": desired,
         "Status": {"State": state, "Message": state}}
    if err:
        t["Status"]["Err"] = err
    return t


def conf(managers, settings=""):
    path = os.path.join(tmpdir(), "swarm-%d.conf" % len(os.listdir(tmpdir())))
    with open(path, "w") as f:
        f.write('cluster = "fk";\ndriver = { plugin = "swarm"; managers = [%s]; image = "reg/app:1"; '
                'stop_timeout = 2; api_timeout = 2; start_timeout = 3; %s };\n'
                'zones = ( { name = "z1"; port_min = 31000; port_max = 31000; } );\n'
                % (", ".join('"unix://%s"' % m.sock for m in managers), settings))
    return path


def manager(services=(), tasks=(), nodes=NODES, first=()):
    """A fake manager; `first`: routes that come before the listings."""
    m = FakeEngine(name="fake-swarm")
    m.routes += list(first) + [("GET", r"/services\?filters=.*", 200, list(services)),
                 ("GET", r"/tasks\?filters=.*", 200, list(tasks)),
                 ("GET", r"/nodes", 200, nodes),
                 ("GET", r"/nodes/n2", 200, nodes[1])]
    return m


def not_a_manager():
    m = FakeEngine(name="fake-worker")
    m.routes.append(("GET", r"/(services|tasks|nodes).*", 503, {"message": "This node is not a swarm manager. Worker "
                                                     "nodes can't be used to view or modify cluster "
                                                     "state."}))
    m.routes.append(("POST", r"/.*", 503, {"message": "This node is not a swarm manager."}))
    return m


@test
def list_maps_services_to_servers_at_their_tasks_nodes():
    m = manager([service(SID, "s1", 31000), service("s2id", "s2", 31001),
                 service("s3id", "s3", 31002)],
                [task(SID, "n2"), task("s3id", "n3")])
    r = driverctl(conf([m]), ["list"])[0]
    check(r["ok"], "list: %r" % r)
    got = {s["id"]: (s["address"], s["running"], s["ref"]) for s in r["servers"]}
    check_eq(got, {"s1": ("http://198.18.255.2:31000", True, SID),
                   "s2": ("", False, "s2id"),                     # no task meant to run
                   "s3": ("http://198.18.255.3:31002", False, "s3id")},  # its node is down
             "servers listed (address, running, ref)")
    q = [p for _, p in m.paths() if p.startswith("/v1.41/services")][0]
    check("scaler.cluster%3Dfk" in q, "services filtered on the cluster's label: %s" % q)


@test
def create_asks_for_one_replica_on_host_networking_with_restart_none():
    m = manager(first=[("POST", r"/services/create", 201, {"ID": SID}),
                       ("GET", r"/tasks\?filters=.*service.*", 200, [task(SID, "n2")])])
    r = driverctl(conf([m], 'command = ["-v"]; env = ["A=1"]; cpus = 0.5; memory = "64m"; '
                            'reserve_memory = "32m"; constraints = ["node.labels.zone == {zone}"];'),
                  ["create", "z1", "s1"])[0]
    check(r["ok"], "create: %r" % r)
    check_eq((r["server"]["address"], r["server"]["ref"]), ("http://198.18.255.2:31000", SID),
             "the server: its node's address and its port; the service as ref")
    spec = [b for meth, p, b in m.requests if p.endswith("/services/create")][0]
    tt = spec["TaskTemplate"]
    check_eq((spec["Name"], spec["Mode"]), ("scaler-fk-s1", {"Replicated": {"Replicas": 1}}),
             "name and mode")
    check_eq(tt["RestartPolicy"], {"Condition": "none"}, "restart policy")
    check_eq(tt["Networks"], [{"Target": "host"}], "networks")
    check_eq(tt["Placement"]["Constraints"], ["node.labels.zone == z1"], "constraints ({zone} replaced)")
    cs = tt["ContainerSpec"]
    check_eq((cs["Image"], cs["Args"], cs["StopGracePeriod"]), ("reg/app:1", ["-v"], 2000000000),
             "image, args, stop grace period")
    check_eq(cs["Healthcheck"], {"Test": ["NONE"]}, "the image's HEALTHCHECK off (scalerd checks)")
    check_eq(sorted(cs["Env"]), ["A=1", "HOST=0.0.0.0", "PORT=31000", "SERVER_ID=s1", "ZONE=z1"],
             "environment (HOST: every address of the node, which is not known before)")
    check_eq(tt["Resources"], {"Limits": {"NanoCPUs": 500000000, "MemoryBytes": 64 << 20},
                               "Reservations": {"MemoryBytes": 32 << 20}}, "resources")
    check_eq({k: v for k, v in spec["Labels"].items() if k != "scaler.created"},
             {"scaler.cluster": "fk", "scaler.zone": "z1", "scaler.server": "s1",
              "scaler.port": "31000", "scaler.node": "1"}, "labels")


@test
def a_create_refused_before_any_call_answers_later_and_sends_nothing():
    m = manager()
    path = conf([m])
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:  # a zone without a port range: host networking needs one
        f.write(text.replace("port_min = 31000; port_max = 31000;", "port_min = 0; port_max = 0;"))
    for r, want in zip(driverctl(path, ["create", "z1", "s1"], ["create", "z1", "-bad"]),
                       ["zone z1 has no port range", "is not valid"]):
        check(not r["ok"] and want in r["error"], "refused, saying %r: %r" % (want, r))
        check(not r.get("on_callers_stack"),
              "the refusal reaches the callback from the loop, after create returned: %r" % r)
    check(not [p for meth, p in m.paths() if meth == "POST"], "nothing created: %r" % m.paths())


@test
def a_spread_pins_the_server_to_the_emptiest_group_of_ready_nodes():
    # rack a holds one of z1's servers, rack b none (n3 is down and does not count)
    m = manager([service("other", "s0", 31001)], [task("other", "n1")],
                first=[("POST", r"/services/create", 201, {"ID": SID}),
                       ("GET", r"/tasks\?filters=.*service.*", 200, [task(SID, "n2")])])
    r = driverctl(conf([m], 'preferences = ["spread=node.labels.rack"];'), ["create", "z1", "s1"])[0]
    check(r["ok"], "create: %r" % r)
    spec = [b for meth, p, b in m.requests if p.endswith("/services/create")][0]
    check_eq(spec["TaskTemplate"]["Placement"]["Constraints"], ["node.labels.rack==b"],
             "the pin to rack b")


@test
def a_manager_that_is_not_one_is_skipped_and_the_next_one_serves():
    w = not_a_manager()
    m = manager([service(SID, "s1", 31000)], [task(SID, "n2")])
    r = driverctl(conf([w, m]), ["list"], ["list"])
    check(r[0]["ok"] and r[1]["ok"], "lists through the second manager: %r" % r)
    check_eq(len([p for _, p in w.paths() if "/services" in p]), 1,
             "requests to the worker (the driver stays with the manager that answered)")


@test
def no_manager_able_to_serve_is_an_error_naming_each_and_swarms_words():
    w1, w2 = not_a_manager(), not_a_manager()
    r = driverctl(conf([w1, w2]), ["list"])[0]
    check(not r["ok"], "list fails: %r" % r)
    check("no Swarm manager could serve the request" in r["error"] and w1.sock in r["error"]
          and w2.sock in r["error"] and "This node is not a swarm manager" in r["error"],
          "the error names both managers and says Swarm's words: %r" % r["error"])


@test
def a_single_engine_not_in_a_swarm_answers_in_its_own_words():
    w = not_a_manager()
    r = driverctl(conf([w]), ["list"])[0]
    check(not r["ok"] and r["error"].startswith("cannot list services: This node is not a swarm "
                                                "manager"), "error: %r" % r)


@test
def a_task_swarm_cannot_place_is_its_error_and_the_service_is_deleted():
    m = manager(first=[("POST", r"/services/create", 201, {"ID": SID}),
                       ("GET", r"/tasks\?filters=.*service.*", 200, [task(SID, "", "pending", err=(
                           "no suitable node (scheduling constraints not satisfied on 3 nodes)"))]),
                       ("DELETE", r"/services/" + SID, 200, None)])
    r = driverctl(conf([m]), ["create", "z1", "s1"])[0]
    check(not r["ok"] and "no suitable node (scheduling constraints not satisfied on 3 nodes)"
          in r["error"], "error: %r" % r)
    check_eq(m.paths()[-1], ("DELETE", "/v1.41/services/" + SID), "last call: the service deleted")


@test
def a_swarm_without_a_leader_gets_the_cleanup_again_until_it_can():
    answers = [(500, {"message": "rpc error: code = Unknown desc = The swarm does not have a "
                                 "leader. It's possible that too few managers are online."})] * 2
    answers.append((200, None))

    def delete(path, body):
        return answers.pop(0) if len(answers) > 1 else answers[0]
    m = manager(first=[("POST", r"/services/create", 201, {"ID": SID}),
                       ("GET", r"/tasks\?filters=.*service.*", 200, [task(SID, "n2", "rejected",
                                                                           err="No such image: reg/app:1")]),
                       ("DELETE", r"/services/" + SID, 0, delete)])
    r = driverctl(conf([m]), ["create", "z1", "s1"])[0]
    check(not r["ok"] and "No such image: reg/app:1" in r["error"] and "left behind" not in r["error"],
          "error: %r" % r)
    check_eq([p for meth, p in m.paths() if meth == "DELETE"], ["/v1.41/services/" + SID] * 3,
             "DELETEs (two refused without a leader, then done)")


@test
def a_task_that_does_not_run_in_time_is_reported_and_deleted():
    m = manager(first=[("POST", r"/services/create", 201, {"ID": SID}),
                       ("GET", r"/tasks\?filters=.*service.*", 200, [task(SID, "n2", "preparing")]),
                       ("DELETE", r"/services/" + SID, 200, None)])
    r = driverctl(conf([m]), ["create", "z1", "s1"])[0]
    check(not r["ok"] and "did not run within 3 s" in r["error"] and "preparing" in r["error"],
          "error: %r" % r)
    check_eq(m.paths()[-1], ("DELETE", "/v1.41/services/" + SID), "last call: the service deleted")


@test
def a_service_removed_while_it_starts_fails_the_create_at_once():
    # a new primary's reconciliation removed it: no need to wait for start_timeout
    m = manager(first=[("POST", r"/services/create", 201, {"ID": SID}),
                       ("GET", r"/tasks\?filters=.*service.*", 404,
                        {"message": "service %s not found" % SID})])
    t0 = time.monotonic()
    r = driverctl(conf([m]), ["create", "z1", "s1"])[0]
    check(not r["ok"] and "removed while it started" in r["error"] and "not found" in r["error"],
          "error: %r" % r)
    check(time.monotonic() - t0 < 2.5, "failed before start_timeout (3 s): %.1f s" % (time.monotonic() - t0))


@test
def a_create_a_lost_manager_may_have_made_is_adopted_not_doubled():
    # the first manager takes the create and falls silent past api_timeout
    # (having made the service); the second says the name exists: it is ours
    def silent(path, body):
        time.sleep(3)
        return 201, {"ID": SID}
    slow = manager(first=[("POST", r"/services/create", 0, silent)])
    m = manager(first=[("POST", r"/services/create", 409, {
                    "message": "rpc error: code = AlreadyExists desc = name conflicts with an "
                               "existing object"}),
                       ("GET", r"/services/scaler-fk-s1", 200, service(SID, "s1", 31000)),
                       ("GET", r"/tasks\?filters=.*service.*", 200, [task(SID, "n2")])])
    r = driverctl(conf([slow, m]), ["create", "z1", "s1"])
    check(r and r[0]["ok"] and r[0]["server"]["ref"] == SID, "create adopts service %s: %r" % (SID, r))
    check_eq([meth for meth, p in m.paths() if "/services" in p and "filters" not in p],
             ["POST", "GET"], "on the second manager: the create, then a look at the service")


def silent_create(path, body):
    """A manager that makes the service but answers after api_timeout (2 s)."""
    time.sleep(3)
    return 201, {"ID": SID}


@test
def a_create_no_manager_answered_in_time_is_adopted_when_swarm_made_it():
    m = manager(first=[("POST", r"/services/create", 0, silent_create),
                       ("GET", r"/services/scaler-fk-s1", 200, service(SID, "s1", 31000)),
                       ("GET", r"/tasks\?filters=.*service.*", 200, [task(SID, "n2")])])
    r = driverctl(conf([m]), ["create", "z1", "s1"])
    check(r and r[0]["ok"] and r[0]["server"]["ref"] == SID, "create adopts service %s: %r" % (SID, r))
    check_eq([meth for meth, p in m.paths() if "/services" in p and "filters" not in p],
             ["POST", "GET"], "the create, then a look at the service by name")


@test
def a_create_no_manager_answered_in_time_fails_when_swarm_has_no_such_service():
    m = manager(first=[("POST", r"/services/create", 0, silent_create),
                       ("GET", r"/services/scaler-fk-s1", 404,
                        {"message": "service scaler-fk-s1 not found"})])
    r = driverctl(conf([m]), ["create", "z1", "s1"])[0]
    check(not r["ok"] and "create server s1" in r["error"] and "timed out" in r["error"].lower(),
          "error: %r" % r)
    check(not [p for meth, p in m.paths() if meth == "DELETE"], "no DELETE sent")


@test
def a_create_nobody_can_account_for_is_removed_by_name():
    # neither the create nor the look at the service gets an answer in time
    def silent_get(path, body):
        time.sleep(3)
        return 200, service(SID, "s1", 31000)
    m = manager(first=[("POST", r"/services/create", 0, silent_create),
                       ("GET", r"/services/scaler-fk-s1", 0, silent_get),
                       ("DELETE", r"/services/scaler-fk-s1", 200, None)])
    r = driverctl(conf([m]), ["create", "z1", "s1"])[0]
    check(not r["ok"] and "create server s1" in r["error"] and "left behind" not in r["error"],
          "error: %r" % r)
    check_eq(m.paths()[-1], ("DELETE", "/v1.41/services/scaler-fk-s1"),
             "last call: the service deleted by name")


@test
def remove_leaves_a_service_of_another_cluster_alone():
    m = manager()
    m.routes.append(("GET", r"/services/" + SID, 200, service(SID, "s1", 31000, cluster="other")))
    r = driverctl(conf([m]), ["remove", "s1", "z1", SID])[0]
    check(not r["ok"] and "leaving it alone" in r["error"], "remove: %r" % r)
    check(not [p for meth, p in m.paths() if meth == "DELETE"], "no DELETE sent")


def refused(path):
    """driverctl's stderr when the config is refused (None when it was not)."""
    r = subprocess.run([binary("tests/driverctl"), "-d", plugin_dir(), "-c", path, "list"],
                       capture_output=True, text=True, timeout=30)
    return None if '"ok":true' in r.stdout else r.stderr


@test
def bad_settings_are_refused_naming_the_setting():
    m = manager()
    cases = [('constraints = ["node.labels.zone"];', "driver.constraints.[0]", "KEY==VALUE"),
             ('preferences = ["pack=node.id"];', "driver.preferences.[0]", "spread=KEY"),
             ('tls_cert = "/c.pem";', "driver", "tls_cert and tls_key go together"),
             ('tls_ca = "/ca.pem";', "driver.managers", "TLS settings need tcp://"),
             ('memory = "1k";', "driver.memory", "at least 6m"),
             ('reserve_cpus = 0;', "driver.reserve_cpus", "between 0.01 and 1024"),
             ('color = 1;', "driver.color", "unknown setting")]
    for setting, where, words in cases:
        err = refused(conf([m], setting))
        check(err is not None and where + ":" in err and words in err,
              "%s: expected an error at %s saying %r, got %r" % (setting, where, words, err))
    path = conf([m])
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"managers = \[[^]]*\];", "managers = [];", text))
    err = refused(path)
    check(err is not None and "driver.managers:" in err and "at least one endpoint" in err,
          "an empty managers list: %r" % err)


if __name__ == "__main__":
    if not os.access(binary("tests/driverctl"), os.X_OK):
        print("1..0 # SKIP tests/driverctl is not built")
        sys.exit(0)
    main()
