"""The swarm driver (driver_swarm.so) against a real Swarm of three managers
on namespaced hosts, through tests/driverctl; and the docker driver against
one of those hosts' engines over tcp:// with TLS client certificates."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scalertest import *  # noqa: E402,F403
from mhbed import Certs, Scalers, Swarm, bed_unavailable  # noqa: E402

S = None
CLUSTER = "sd%d" % (os.getpid() % 100000)
PORTS = (31000, 31099)


def bed():
    global S
    if S is None:
        why = bed_unavailable()
        if why:
            skip(why)
        S = Swarm(managers=3)
        S.client = S.certs.copy_client("driverctl", os.path.join(S.root.path, "driverctl"))
        for n, rack in zip(S.nodes, ("r1", "r1", "r2")):
            S.node_label(n, "rack", rack)
        S.node_label(S.nodes[0], "zone", "z1")
        S.node_label(S.nodes[1], "zone", "z1")
    return S


def conf(settings="", managers=None, plugin="swarm", name="sw"):
    s = bed()
    ca, cert, key = s.client
    if plugin == "swarm":
        where = "managers = [%s];" % ", ".join('"%s"' % m for m in (managers or s.managers_tcp()))
        # short, so that a manager that does not answer is given up quickly
        api_timeout = 3
    else:
        where = 'host = "%s";' % managers
        # POST /containers/create copies the image's root file system on
        # vfs: many seconds on a loaded machine (the driver's default)
        api_timeout = 60
    return write_file("%s-%d.conf" % (name, time.monotonic_ns()), """
cluster = "%s";
driver = { plugin = "%s"; %s tls_ca = "%s"; tls_cert = "%s"; tls_key = "%s";
           image = "%s"; stop_timeout = 1; api_timeout = %d; %s };
zones = ( { name = "z1"; port_min = %d; port_max = %d; },
          { name = "z2"; port_min = %d; port_max = %d; } );
""" % (CLUSTER, plugin, where, ca, cert, key, s.image, api_timeout, settings, PORTS[0], PORTS[0] + 49,
       PORTS[0] + 50, PORTS[1]))


def ctl(path, *cmds, timeout=180):
    argv = [binary("tests/driverctl"), "-d", plugin_dir(), "-c", path]
    for i, c in enumerate(cmds):
        if i:
            argv.append(";")
        argv += [str(a) for a in c]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    out = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    if len(out) != len(cmds):
        log(r.stderr[-3000:])
    return out


def listed(path):
    r = ctl(path, ["list"])[0]
    check(r["ok"], "list: %r" % r)
    return {s["id"]: s for s in r["servers"]}


def remove_all():
    """Every service of the test's cluster, straight through the API (the
    driver's remove is tested on its own)."""
    for svc in S.services(CLUSTER):
        S.api("DELETE", "/services/" + svc["ID"])


def health(address):
    try:
        return http("GET", address + "/health_check", timeout=2)[0]
    except OSError as e:
        return str(e)


@test
def a_server_is_a_service_of_one_task_on_host_networking_with_restart_none():
    c = conf()
    r = ctl(c, ["create", "z1", "z1-a"])[0]
    check(r["ok"], "create: %r" % r)
    srv = r["server"]
    node = S.node_of(srv["address"])
    check(node is not None, "address %s is a node's address" % srv["address"])
    port = int(srv["address"].rsplit(":", 1)[1])
    check(PORTS[0] <= port <= PORTS[0] + 49, "port %d in zone z1's range" % port)
    wait_until(lambda: health(srv["address"]) == 200, 10, "GET /health_check on the server's address")
    st, svc = S.api("GET", "/services/" + srv["ref"])
    check_eq(st, 200, "the service named by the server's ref")
    tt = svc["Spec"]["TaskTemplate"]
    check_eq(svc["Spec"]["Name"], "scaler-%s-z1-a" % CLUSTER, "service name")
    check_eq(svc["Spec"]["Mode"], {"Replicated": {"Replicas": 1}}, "one replica")
    check_eq(tt["RestartPolicy"]["Condition"], "none", "restart condition (only scaler replaces)")
    nets = [S.api("GET", "/networks/" + n["Target"])[1]["Name"] for n in tt.get("Networks", [])]
    check_eq(nets, ["host"], "the service's networks")
    env = sorted(e for e in tt["ContainerSpec"]["Env"] if e.split("=")[0] in ("PORT", "ZONE", "SERVER_ID"))
    check_eq(env, ["PORT=%d" % port, "SERVER_ID=z1-a", "ZONE=z1"], "environment")
    labels = {k: v for k, v in svc["Spec"]["Labels"].items() if k != "scaler.created"}
    check_eq(labels, {"scaler.cluster": CLUSTER, "scaler.zone": "z1", "scaler.server": "z1-a",
                      "scaler.port": str(port), "scaler.node": "1"}, "labels")
    check_eq(listed(c)["z1-a"], srv, "list reports what create returned")


@test
def servers_spread_over_the_racks_and_the_nodes():
    c = conf('preferences = ["spread=node.labels.rack", "spread=node.id"];')
    for i in range(3):
        r = ctl(c, ["create", "z2", "z2-s%d" % i])[0]
        check(r["ok"], "create z2-s%d: %r" % (i, r))
    nodes = {sid: S.node_of(s["address"]).name for sid, s in listed(c).items() if s["zone"] == "z2"}
    racks = sorted({"m1": "r1", "m2": "r1", "m3": "r2"}[n] for n in nodes.values())
    check_eq(racks, ["r1", "r1", "r2"], "racks of zone z2's 3 servers (r2 has one node)")
    check(len(set(nodes.values())) == 3, "three servers on three nodes: %r" % nodes)


@test
def constraints_with_the_zone_name_keep_a_zone_on_its_nodes():
    c = conf('constraints = ["node.labels.zone=={zone}"];')
    for i in range(3):
        r = ctl(c, ["create", "z1", "z1-c%d" % i])[0]
        check(r["ok"], "create z1-c%d: %r" % (i, r))
        check(S.node_of(r["server"]["address"]).name in ("m1", "m2"),
              "z1-c%d on a node labelled zone=z1, not %s" % (i, r["server"]["address"]))
    st, svc = S.api("GET", "/services/scaler-%s-z1-c0" % CLUSTER)
    check_eq(svc["Spec"]["TaskTemplate"]["Placement"]["Constraints"], ["node.labels.zone==z1"],
             "the constraint Swarm got")


@test
def no_node_for_the_constraints_is_swarms_own_error_and_nothing_stays():
    c = conf('constraints = ["node.labels.zone=={zone}"];')
    r = ctl(c, ["create", "z2", "z2-none"])[0]
    check(not r["ok"] and "no suitable node" in r["error"], "error in Swarm's words: %r" % r)
    check("z2-none" not in listed(c), "no service left for z2-none")
    check(not [s for s in S.services(CLUSTER) if s["Spec"]["Name"].endswith("z2-none")],
          "Swarm has no service z2-none")


@test
def a_missing_image_is_swarms_own_error_and_nothing_stays():
    c = conf()
    with open(c) as f:
        text = f.read().replace(S.image, S.registry + "/nope:1")
    with open(c, "w") as f:
        f.write(text)
    r = ctl(c, ["create", "z1", "z1-noimage"])[0]
    check(not r["ok"] and "nope" in r["error"] and ("No such image" in r["error"] or "not found" in r["error"]),
          "error in Docker's words: %r" % r)
    check("z1-noimage" not in listed(c), "no service left for z1-noimage")


@test
def remove_deletes_the_service_and_its_task_stops():
    c = conf()
    before = listed(c)
    srv = before["z1-a"]
    r = ctl(c, ["remove", "z1-a"])[0]
    check(r["ok"], "remove: %r" % r)
    check("z1-a" not in listed(c), "z1-a listed after its removal")
    st, _ = S.api("GET", "/services/" + srv["ref"])
    check_eq(st, 404, "GET of the removed service")
    wait_until(lambda: health(srv["address"]) != 200, 5, "the removed server to stop answering")


@test
def a_manager_that_does_not_answer_is_skipped():
    # a dead first manager (nothing listens there): the next one serves
    dead = "tcp://%s:%d" % (S.bed.net.addr(250), 2376)
    c = conf(managers=[dead] + S.managers_tcp())
    r = ctl(c, ["create", "z2", "z2-fo"], ["list"])
    check(r[0]["ok"], "create with a dead first manager: %r" % r[0])
    check(r[1]["ok"] and "z2-fo" in {s["id"] for s in r[1]["servers"]}, "list: %r" % r[1])


@test
def no_manager_answering_is_a_clear_error():
    c = conf(managers=["tcp://%s:2376" % S.bed.net.addr(250), "tcp://%s:2376" % S.bed.net.addr(251)])
    r = ctl(c, ["list"])[0]
    check(not r["ok"] and "no Swarm manager could serve the request" in r["error"]
          and S.bed.net.addr(251) in r["error"], "error: %r" % r)


@test
def a_lost_node_s_servers_are_listed_as_not_running():
    c = conf()
    on_m3 = {sid: s for sid, s in listed(c).items() if S.node_of(s["address"]).name == "m3"}
    check(on_m3, "some server runs on m3: %r" % listed(c))
    S.bed.cut(S.nodes[2].host)
    try:
        t0 = time.monotonic()
        wait_until(lambda: not any(listed(c)[sid]["running"] for sid in on_m3), 15,
                   "m3's servers listed as not running")
        log("m3's servers not running %.1f s after its link went down" % (time.monotonic() - t0))
        others = {sid: s for sid, s in listed(c).items() if sid not in on_m3}
        check(all(s["running"] for s in others.values()), "the other servers still run: %r" % others)
    finally:
        S.bed.heal(S.nodes[2].host)


@test
def the_docker_driver_drives_a_remote_engine_over_tls():
    m2 = S.nodes[1]
    c = conf('', managers=m2.tcp, plugin="docker", name="dk")
    # the image is on m2 once a task ran there; pull it to be sure
    st, _ = m2.api("POST", "/images/create?fromImage=" + S.image.rsplit(":", 1)[0] + "&tag=test",
                   timeout=120)
    check_eq(st, 200, "pulling the image on m2")
    r = ctl(c, ["create", "z1", "dk-1"])[0]
    check(r["ok"], "create over TLS: %r" % r)
    check(r["server"]["address"].startswith("http://%s:" % m2.addr),
          "address on m2's host: %s" % r["server"]["address"])
    # the driver reports a started container; its server listens a moment later
    wait_until(lambda: health(r["server"]["address"]) == 200, 10, "the container to answer on m2")
    r = ctl(c, ["remove", "dk-1"])[0]
    check(r["ok"], "remove over TLS: %r" % r)


@test
def the_docker_driver_refuses_an_engine_it_cannot_verify():
    m2 = S.nodes[1]
    c = conf('', managers=m2.tcp, plugin="docker", name="dkbad")
    with open(c) as f:
        text = f.read()
    # a CA that did not sign m2's certificate
    wrong = Certs(os.path.join(S.root.path, "wrong-ca"))
    with open(c, "w") as f:
        f.write(text.replace(S.client[0], wrong.ca))
    r = ctl(c, ["list"])[0]
    check(not r["ok"] and "unreachable" in r["error"] and m2.addr in r["error"],
          "list against an engine whose certificate another CA signed: %r" % r)
    # no client certificate: dockerd --tlsverify refuses the connection
    with open(c, "w") as f:
        f.write(text.replace('tls_cert = "%s"; tls_key = "%s";' % (S.client[1], S.client[2]), ""))
    r = ctl(c, ["list"])[0]
    check(not r["ok"] and m2.addr in r["error"], "list without a client certificate: %r" % r)


@test
def a_zone_at_zero_wakes_on_requests_and_a_swarm_service_serves_them_all():
    """Scale from zero with the swarm driver: scalerd (one node) with a zone
    at min = 0 and no server; requests that arrive are held by the
    balancer, which wakes the primary; the server the swarm driver makes
    (a service of one task on another host) answers every one of them,
    bodies intact (the process and docker drivers: test_scale_from_zero)."""
    sw = bed()
    sc = Scalers(sw, nodes=1, zone_min=0, zone_max=2, cluster="zf%d" % (os.getpid() % 100000))
    try:
        sc.start_all()
        time.sleep(1.0)
        check_eq(sc.records(), {}, "servers of a zone at min = 0 that saw no request")
        check_eq(sw.services(sc.cluster), [], "services of the zone's cluster before a request")
        out = [None] * 6

        def one(i):
            url = "http://%s/%s" % (sc.listen, "echo" if i % 2 == 0 else "health_check")
            want = ("held body %d " % i).encode() * (40 + i) if i % 2 == 0 else None
            try:
                st, _, body = http("POST" if want else "GET", url, want, timeout=60)
                out[i] = (st, body, want)
            except OSError as e:
                out[i] = (str(e), b"", want)
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(out))]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(70)
        log("first wake-up through the swarm driver: every request answered %.1f s after "
            "the first arrived" % (time.monotonic() - t0))
        for i, r in enumerate(out):
            check(r is not None, "request %d through the balancer was answered" % i)
            st, body, want = r
            check_eq(st, 200, "status of request %d (held while the zone was at zero)" % i)
            if want is not None:
                check_eq(body, want, "the body request %d sent, echoed by the woken server" % i)
        recs = sc.records()
        check_eq(len(recs), 1, "servers of the zone after the wake-up (%r)" % recs)
        services = sw.services(sc.cluster)
        check_eq(len(services), 1, "swarm services of the zone's cluster: %r"
                 % [x["Spec"]["Name"] for x in services])
        addr = list(recs.values())[0]["address"]
        check(sw.node_of(addr) is not None, "the woken server %s runs on a node of the swarm"
              % addr)
    except AssertionError:
        log(sc.log_of(1)[-3000:])
        raise
    finally:
        sc.close()
        for svc in sw.services(sc.cluster):
            sw.api("DELETE", "/services/" + svc["ID"])


@test
def zz_cleanup():
    if S:
        remove_all()


if __name__ == "__main__":
    main()
