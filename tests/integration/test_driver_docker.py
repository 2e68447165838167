"""The docker driver (driver_docker.so) against a real Docker engine
(tests/lib/dockertest.py: $SCALER_TEST_DOCKER_HOST or a private dockerd),
driven through the real plugin loader by tests/driverctl."""
import json
import os
import subprocess
import sys
import time
import urllib.request

from scalertest import *
import dockertest
from netbed import Subnet

eng = None
image = None



class Driver:
    counter = 0

    def __init__(self, cluster=None, settings=None, ports=None):
        Driver.counter += 1
        self.cluster = cluster or "dt%d-%d" % (os.getpid(), Driver.counter)
        self.port_min, self.port_max = ports or free_port_range(10)
        s = {"host": eng.host, "image": image, "env": ["SCALER_TEST=yes"], "stop_timeout": 2}
        s.update(settings or {})
        self.conf = os.path.join(tmpdir(), "docker-%d.conf" % Driver.counter)
        with open(self.conf, "w") as f:
            f.write('cluster = "%s";\ndriver = {\n  plugin = "docker";\n' % self.cluster)
            for k, v in s.items():
                if v is None:
                    continue
                if isinstance(v, list):
                    f.write("  %s = [%s];\n" % (k, ", ".join(json.dumps(x) for x in v)))
                elif isinstance(v, str):
                    f.write("  %s = %s;\n" % (k, json.dumps(v)))
                else:
                    f.write("  %s = %s;\n" % (k, v))
            f.write("};\nzones = ( { name = \"z1\"; port_min = %d; port_max = %d; },\n"
                    "          { name = \"z2\"; port_min = %d; port_max = %d; } );\n"
                    % (self.port_min, self.port_max, self.port_min, self.port_max))

    def run(self, *cmds, expect_ok=True):
        argv = [binary("tests/driverctl"), "-d", plugin_dir(), "-c", self.conf]
        for i, c in enumerate(cmds):
            if i:
                argv.append(";")
            argv += [str(a) for a in c]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        self.stderr = r.stderr
        replies = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        if expect_ok:
            bad = [x for x in replies if not x.get("ok")]
            check(r.returncode == 0 and not bad and len(replies) == len(cmds),
                  "driverctl %s: expected success, got exit %d, replies %r, stderr:\n%s"
                  % (cmds, r.returncode, replies, r.stderr))
        return replies

    def create(self, zone, sid):
        return self.run(["create", zone, sid])[0]["server"]

    def list(self):
        return {s["id"]: s for s in self.run(["list"])[0]["servers"]}

    def containers(self):
        return eng.containers("scaler.cluster=" + self.cluster)


def answers(address):
    try:
        with urllib.request.urlopen(address + "/health_check", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@test
def a_created_container_runs_labelled_with_its_env_and_answers_on_its_port():
    d = Driver(settings={"memory": "64m", "cpus": 0.5, "cpu_shares": 512})
    srv = d.create("z1", "z1-a")
    port = int(srv["address"].rsplit(":", 1)[1])
    check(d.port_min <= port <= d.port_max, "port %d in the zone's range" % port)
    check_eq(srv["address"], "http://127.0.0.1:%d" % port, "address")
    status, c = eng.inspect(srv["ref"])
    check_eq(status, 200, "inspect of the created container (ref = container id)")
    check_eq(c["Name"], "/scaler-%s-z1-a" % d.cluster, "container name")
    check(c["State"]["Running"], "container is running")
    labels = c["Config"]["Labels"]
    check_eq((labels.get("scaler.cluster"), labels.get("scaler.zone"), labels.get("scaler.server"),
              labels.get("scaler.address")),
             (d.cluster, "z1", "z1-a", srv["address"]), "labels")
    env = dict(e.split("=", 1) for e in c["Config"]["Env"])
    check_eq((env.get("PORT"), env.get("ZONE"), env.get("SERVER_ID"), env.get("SCALER_TEST"),
              env.get("HOST")),
             (str(port), "z1", "z1-a", "yes", "127.0.0.1"),
             "environment (HOST: host networking listens on host_address only)")
    hc = c["HostConfig"]
    check_eq((hc["NetworkMode"], hc["RestartPolicy"]["Name"], hc["Memory"], hc["NanoCpus"],
              hc["CpuShares"]),
             ("host", "no", 64 * 1024 * 1024, 500000000, 512), "host config")
    wait_until(lambda: answers(srv["address"]), 15, "the container to answer on its port")
    d.run(["remove", "z1-a"])


@test
def remove_stops_and_deletes_the_container():
    d = Driver()
    srv = d.create("z1", "z1-a")
    d.run(["remove", "z1-a"])
    status, _ = eng.inspect(srv["ref"])
    check_eq(status, 404, "inspect of the removed container")
    check_eq(d.containers(), [], "containers of the cluster after remove")
    # already gone: still a success
    d.run(["remove", "z1-a", "z1", srv["ref"]])


@test
def list_finds_exactly_this_clusters_containers():
    d = Driver()
    other = Driver()
    a = d.create("z1", "z1-a")
    b = d.create("z2", "z2-b")
    o = other.create("z1", "z1-a")
    status, plain = eng.api("POST", "/containers/create",
                            {"Image": image, "Cmd": ["sleep", "60"],
                             "Labels": {"scaler.server": "z1-x"}})
    check_eq(status, 201, "create an unrelated container")
    try:
        got = d.list()
        check_eq(sorted(got), ["z1-a", "z2-b"], "servers listed for the cluster")
        check_eq((got["z1-a"]["ref"], got["z1-a"]["address"], got["z1-a"]["zone"], got["z1-a"]["running"]),
                 (a["ref"], a["address"], "z1", True), "listed z1-a")
        check_eq(got["z2-b"]["ref"], b["ref"], "listed z2-b ref")
        check_eq(sorted(other.list()), ["z1-a"], "the other cluster lists its own only")
        # a stopped container is listed as not running
        eng.api("POST", "/containers/%s/stop?t=1" % b["ref"])
        check_eq(d.list()["z2-b"]["running"], False, "stopped container listed as not running")
    finally:
        eng.remove(plain["Id"])
    d.run(["remove", "z1-a"], ["remove", "z2-b"])
    other.run(["remove", "z1-a"])
    check_eq(d.containers() + other.containers(), [], "no container left")


@test
def ports_of_live_containers_are_not_reused():
    d = Driver()
    a = d.create("z1", "a")
    b = d.create("z1", "b")  # another driverctl process: knows only the labels
    check(a["address"] != b["address"], "two containers, two ports (%s, %s)" % (a["address"], b["address"]))
    d.run(["remove", "a"], ["remove", "b"])


@test
def a_container_on_a_named_network_is_addressed_by_its_ip_there():
    net = "scalertest%d" % os.getpid()
    # never Docker's default pools (172.x, 10.x): a /24 of 198.18.0.0/15 of this test's own
    sub = Subnet()
    status, body = eng.api("POST", "/networks/create", {
        "Name": net, "Driver": "bridge",
        "IPAM": {"Config": [{"Subnet": sub.cidr, "Gateway": sub.addr(1)}]}})
    if status != 201:
        skip("cannot create a bridge network on this engine: %s %r" % (status, body))
    try:
        d = Driver(settings={"network": net, "container_port": 8080})
        srv = d.create("z1", "n1")
        status, c = eng.inspect(srv["ref"])
        ip = c["NetworkSettings"]["Networks"][net]["IPAddress"]
        check(ip.startswith(sub.prefix + "."), "the container has an address on %s (%s), got %r" % (net, sub.cidr, ip))
        check_eq(srv["address"], "http://%s:8080" % ip, "address: the IP on the network + container_port")
        check_eq(d.list()["n1"]["address"], srv["address"], "listed address")
        env = dict(e.split("=", 1) for e in c["Config"]["Env"])
        check_eq((env.get("PORT"), env.get("HOST")), ("8080", None),
                 "PORT is the container port; no HOST (the container has its own addresses)")
        d.run(["remove", "n1"])
    finally:
        eng.api("DELETE", "/networks/" + net)
        sub.release()


@test
def a_missing_image_is_a_clear_error_and_leaves_no_container():
    d = Driver(settings={"image": "scaler-no-such-image:404"})
    r = d.run(["create", "z1", "x"], expect_ok=False)[0]
    check(not r["ok"] and "No such image: scaler-no-such-image:404" in r["error"],
          "expected Docker's 'No such image' message, got %r" % r)
    check_eq(d.containers(), [], "containers left behind")


@test
def a_container_that_cannot_start_is_deleted():
    d = Driver(settings={"command": ["/no/such/program"]})
    r = d.run(["create", "z1", "x"], expect_ok=False)[0]
    check(not r["ok"] and "start server x" in r["error"] and "/no/such/program" in r["error"],
          "expected the start error naming the program, got %r" % r)
    check_eq(d.containers(), [], "containers left behind after the failed start")


@test
def remove_leaves_a_container_that_is_not_this_server_alone():
    d = Driver()
    status, plain = eng.api("POST", "/containers/create", {"Image": image, "Cmd": ["sleep", "60"]})
    check_eq(status, 201, "create an unrelated container")
    try:
        r = d.run(["remove", "z1-a", "z1", plain["Id"]], expect_ok=False)[0]
        check(not r["ok"] and "leaving it alone" in r["error"], "expected a refusal, got %r" % r)
        check_eq(eng.inspect(plain["Id"])[0], 200, "the unrelated container still exists")
    finally:
        eng.remove(plain["Id"])


@test
def an_unreachable_engine_is_a_clear_error():
    d = Driver(settings={"host": "unix:///nonexistent/docker.sock"})
    r = d.run(["list"], expect_ok=False)[0]
    check(not r["ok"] and "unreachable" in r["error"] and "/nonexistent/docker.sock" in r["error"],
          "expected 'Docker engine ... unreachable', got %r" % r)


@test
def bad_settings_are_refused_naming_the_setting():
    for settings, words in [({"image": None}, ["image", "required"]),
                            ({"memory": "lots"}, ["memory"]),
                            ({"host": "ftp://x"}, ["host", "tcp://host:port"]),
                            ({"binds": ["nocolon"]}, ["binds", "source:/target"]),
                            ({"cpus": -1}, ["cpus"])]:
        d = Driver(settings=settings)
        d.run(["list"], expect_ok=False)
        for w in words:
            check(w in d.stderr, "settings %r: expected %r in the error, got:\n%s" % (settings, w, d.stderr))


if __name__ == "__main__":
    if not os.access(binary("tests/driverctl"), os.X_OK):
        print("1..0 # SKIP tests/driverctl is not built")
        sys.exit(0)
    try:
        eng = dockertest.engine()
        image = dockertest.build_test_image(eng)
    except dockertest.DockerUnavailable as e:
        print("1..0 # SKIP %s" % str(e).replace("\n", " "))
        sys.exit(0)
    main()
