#!/usr/bin/env python3
"""The compose demo (demo/docker-compose.yml) run for real, without its Kafka
profile: scaler-app writes its metrics straight to InfluxDB.

The images come from scripts/images (nothing is pulled: REDIS_IMAGE and
INFLUXDB_IMAGE select the ones built from Debian's packages). The compose
network takes a /24 of 198.18.0.0/15 from netbed's allocator and the
published ports are free ports on 127.0.0.1. An override file of the test
(a second -f) gives the run its own network name and node configs, so
parallel runs on one engine never meet, and a DNS stub on the network's
gateway: Docker's embedded DNS forwards names it does not know (a peer
that is down) to the host's resolver, which is outside the addresses a
test may reach; the stub answers NXDOMAIN at once, as a reachable resolver
would. The node configs are the demo's with their cluster and network
names, and three settings changed so that High CPU crosses the threshold on
a loaded 2-core machine too (it may get as little as 15 % of a core there)
and zone1 takes exactly one step: max_cpu 10 instead of 70, min_cpu 2
instead of 10 (a loaded and an idle server stay above it), zone1's max 2.

Run in order; each step leaves the demo as the next one needs it. The
figures (up to every zone serving, scale-up, failover) are printed as
"# figure: ..." lines; demo/README.md quotes them."""
import atexit
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import scalertest
from scalertest import *
from dockertest import engine, DockerUnavailable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from netbed import Subnet  # noqa: E402

DEMO = os.path.join(srcdir(), "demo")
ZONES = ("zone1", "zone2", "zone3")
MAX_CPU, MIN_CPU = 10.0, 2.0  # the demo's are 70 and 10: see above
state = {}


def figure(what, seconds):
    log("figure: %s: %.1f s" % (what, seconds))


class Demo:
    """One compose project of the demo on the test's engine."""

    def __init__(self):
        exe = shutil.which("docker-compose")
        if not exe:
            skip("docker-compose is not installed (apt-get install docker-compose)")
        try:
            self.eng = engine()
        except DockerUnavailable as e:
            skip(str(e))
        if not self.eng.host.startswith("unix://"):
            skip("the demo mounts the engine's socket; %s is not a unix socket" % self.eng.host)
        self.exe = exe
        self.images = build_images(self.eng.host)
        self.net = Subnet()
        tag = "%d" % os.getpid()
        self.project = "scdemo" + tag
        self.cluster = "demo-" + tag
        self.network = "scaler-demo-" + tag
        self.token = secrets.token_hex(16)
        low, _ = free_port_range(6)
        self.zone_port = {z: low + i for i, z in enumerate(ZONES)}
        self.admin_port = {n: low + 2 + n for n in (1, 2, 3)}
        self.conf_dir = os.path.join(tmpdir(), "demo-conf")
        os.makedirs(self.conf_dir)
        self.write_configs()
        self.dns = DnsStub(self.net.addr(1))
        self.override = write_file("test-override.yml", self.override_text())
        self.env = write_file("demo.env", "".join("%s=%s\n" % kv for kv in {
            "SCALER_TOKEN": self.token,
            "REDIS_IMAGE": self.images["redis"],
            "INFLUXDB_IMAGE": self.images["influxdb"],
            "SCALER_DEMO_METRICS": "influxdb",
            "SCALER_DEMO_SUBNET": self.net.cidr,
            "SCALER_DEMO_DOCKER_SOCKET": self.eng.host[len("unix://"):],
            "SCALER_DEMO_BIND": "127.0.0.1",
            "SCALER_DEMO_ZONE1_PORT": self.zone_port["zone1"],
            "SCALER_DEMO_ZONE2_PORT": self.zone_port["zone2"],
            "SCALER_DEMO_ZONE3_PORT": self.zone_port["zone3"],
            "SCALER_DEMO_ADMIN1_PORT": self.admin_port[1],
            "SCALER_DEMO_ADMIN2_PORT": self.admin_port[2],
            "SCALER_DEMO_ADMIN3_PORT": self.admin_port[3],
        }.items()))
        atexit.register(self.remove)

    def write_configs(self):
        """The demo's node configs with this run's cluster and network names."""
        subs = [(r'^cluster = "demo";$', 'cluster = "%s";' % self.cluster),
                (r'^  network = "scaler-demo";$', '  network = "%s";' % self.network),
                (r'^  max_cpu = 70\.0;$', "  max_cpu = %.1f;" % MAX_CPU),
                (r'^  min_cpu = 10\.0;$', "  min_cpu = %.1f;" % MIN_CPU),
                (r'^(  \{ name = "zone1";.*) max = 5; \},$', r"\1 max = 2; },")]
        for n in (1, 2, 3):
            name = "scaler-node%d.conf" % n
            text = open(os.path.join(DEMO, name)).read()
            for pat, rep in subs:
                text, k = re.subn(pat, rep, text, flags=re.M)
                check_eq(k, 1, "lines of demo/%s matching %r" % (name, pat))
            with open(os.path.join(self.conf_dir, name), "w") as f:
                f.write(text)

    def override_text(self):
        """The second compose file: this run's network, node configs, DNS (JSON is YAML)."""
        services = {s: {"dns": [self.dns.addr]} for s in ("redis", "influxdb", "scaler-app-image")}
        for n in (1, 2, 3):
            services["scalerd%d" % n] = {
                "dns": [self.dns.addr],
                "volumes": ["%s:/etc/scaler/scaler.conf:ro"
                            % os.path.join(self.conf_dir, "scaler-node%d.conf" % n)]}
        return json.dumps({
            "services": services,
            "networks": {"scaler": {"name": self.network,
                                    "ipam": {"config": [{"subnet": self.net.cidr}]}}}}, indent=1)

    def compose(self, *args, timeout=300):
        env = dict(os.environ, DOCKER_HOST=self.eng.host)
        for k in ("SCALER_TOKEN", "COMPOSE_PROFILES", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME"):
            env.pop(k, None)
        r = subprocess.run([self.exe, "-p", self.project, "-f",
                            os.path.join(DEMO, "docker-compose.yml"), "-f", self.override,
                            "--env-file", self.env] + list(args),
                           capture_output=True, text=True, timeout=timeout, env=env)
        return r

    def container(self, service):
        """The container of a compose service, as the engine lists it."""
        cs = self.eng.containers(label="com.docker.compose.service=" + service)
        cs = [c for c in cs if c["Labels"].get("com.docker.compose.project") == self.project]
        check_eq(len(cs), 1, "containers of service %s" % service)
        return cs[0]

    def zone_url(self, zone, path="/"):
        return "http://127.0.0.1:%d%s" % (self.zone_port[zone], path)

    def admin_url(self, node, path="/status"):
        return "http://127.0.0.1:%d%s" % (self.admin_port[node], path)

    def status(self, node):
        """GET /status (reads need the token too: node.public_reads is off)."""
        st, body = http_json("GET", self.admin_url(node), timeout=5,
                             headers={"Authorization": "Bearer " + self.token})
        check_eq(st, 200, "GET /status of node %d" % node)
        return body

    def primary(self, nodes=(1, 2, 3)):
        """(node, status) of the node that says it is primary, else None."""
        for n in nodes:
            try:
                s = self.status(n)
            except Exception:
                continue
            if s["node"]["role"] == "primary":
                return n, s
        return None

    def the_primary(self):
        p = self.primary()
        check(p is not None, "a node that says it is primary; none does")
        return p

    def zone_servers(self, status, zone, state=None):
        return [s for z in status["zones"] if z["name"] == zone for s in z["servers"]
                if state is None or s["state"] == state]

    def serves(self, zone):
        """The zone's balancer port answers with a server of that zone."""
        try:
            st, body = http_json("GET", self.zone_url(zone, "/stats"), timeout=5)
        except OSError:
            return False
        return st == 200 and isinstance(body, dict) and body.get("zone") == zone

    def app_containers(self):
        return self.eng.containers(label="scaler.cluster=" + self.cluster)

    def remove(self):
        """What demo/README.md tells users: stop the nodes, remove the servers
        they created by label, then everything compose made."""
        if state.get("removed"):
            return
        if state.get("failed"):
            r = self.compose("logs", "--no-color", "--tail", "60", "scalerd1", "scalerd2",
                             "scalerd3")
            log("the scalerd nodes' logs:\n" + r.stdout)
        self.compose("stop", "scalerd1", "scalerd2", "scalerd3", timeout=120)
        for c in self.app_containers():
            self.eng.remove(c["Id"])
        r = self.compose("down", "-v", timeout=300)
        state["removed"] = True
        return r


class DnsStub(threading.Thread):
    """Answers every DNS query on addr:53 (UDP) with NXDOMAIN, and keeps the names."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.addr, self.names = addr, set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # the address is the compose network's gateway: it exists only once
        # `up` has made the bridge, and the stub must answer from the start
        self.sock.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND
        self.sock.bind((addr, 53))
        self.start()

    def run(self):
        while True:
            q, peer = self.sock.recvfrom(4096)
            if len(q) < 12:
                continue
            name, end = dns_question(q)
            self.names.add(name)
            # same id and question; QR=1, RD copied, RA=1, RCODE=3; no records
            flags = bytes([0x80 | (q[2] & 0x01), 0x83])
            self.sock.sendto(q[:2] + flags + b"\0\1\0\0\0\0\0\0" + q[12:end], peer)


def dns_question(q):
    """(name, offset past the first question) of a DNS query."""
    labels, i = [], 12
    while i < len(q) and q[i] and len(labels) < 64:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += 1 + q[i]
    return ".".join(labels), min(i + 5, len(q))  # the root label, QTYPE, QCLASS


def build_images(host):
    """scripts/images into the engine; {name: tag}."""
    r = subprocess.run([os.path.join(srcdir(), "scripts", "images"), "--engine", host],
                       capture_output=True, text=True, timeout=1800)
    check(r.returncode == 0, "scripts/images --engine %s: exit %d:\n%s"
          % (host, r.returncode, r.stderr[-3000:]))
    tags = {}
    for line in r.stdout.splitlines():
        tag = line.split()[0]
        tags[tag.split(":")[0].replace("scaler-", "", 1)] = tag
    log("images: " + r.stdout.strip().replace("\n", ", "))
    return tags


def step(fn):
    """A step of the scenario: a failure keeps the nodes' logs for the end."""
    def run():
        try:
            fn()
        except scalertest.Skip:
            raise
        except Exception:
            state["failed"] = True
            raise
    run.__name__ = fn.__name__
    return test(run)


def demo():
    d = state.get("demo")
    if d is None:
        skip("the demo did not come up (%s)" % state.get("error", "the first step did not run"))
    return d


@step
def up_with_a_generated_token_serves_every_zone():
    state["error"] = "the images or the engine were not ready"
    d = Demo()
    t0 = time.monotonic()
    r = d.compose("up", "-d", timeout=600)
    if r.returncode != 0:
        state["error"] = "docker-compose up failed"
        check(False, "docker-compose up -d: exit %d:\n%s" % (r.returncode, r.stderr[-3000:]))
    del state["error"]
    state["demo"] = d
    for z in ZONES:
        wait_until(lambda: d.serves(z), 180, "%s to answer GET /stats on 127.0.0.1:%d"
                   % (z, d.zone_port[z]), interval=0.5)
    figure("docker-compose up -> every zone serving through its balancer", time.monotonic() - t0)
    # the token reached scalerd through demo/.env and the entrypoint
    st, _, _ = http("POST", d.admin_url(1, "/reload"))
    check_eq(st, 401, "POST /reload without the token")
    st, _, _ = http("POST", d.admin_url(1, "/reload"),
                    headers={"Authorization": "Bearer " + d.token})
    check_eq(st, 200, "POST /reload with the generated token")


@step
def three_scalerd_containers_elect_one_primary():
    d = demo()
    for n in (1, 2, 3):
        c = d.container("scalerd%d" % n)
        check_eq(c["State"], "running", "scalerd%d's container" % n)
    # a backup learns who is primary from the primary's next message: right
    # after up it may not know yet (primary None), but never may two nodes
    # say they are primary
    seen = {"views": None, "most": 0}

    def agreed():
        views = {}
        for n in (1, 2, 3):
            s = d.status(n)
            views[n] = (s["node"]["role"], (s["node"]["primary"] or {}).get("id"))
        prim = [n for n, (role, _) in views.items() if role == "primary"]
        seen["views"], seen["most"] = views, max(seen["most"], len(prim))
        return len(prim) == 1 and all(p == str(prim[0]) for _, p in views.values()) and prim[0]
    deadline = time.monotonic() + 30
    primary = agreed()
    while not primary and time.monotonic() < deadline:
        time.sleep(0.2)
        primary = agreed()
    check(primary, "every node names the one primary within 30 s; node: (role, primary) %r"
          % seen["views"])
    check(seen["most"] <= 1, "never more than one node says it is primary; last views %r"
          % seen["views"])
    # node 3 starts first (the others wait for it to be healthy) and has the highest id
    check_eq(primary, 3, "the primary")


@step
def the_primary_creates_one_app_container_per_zone_through_the_socket():
    d = demo()

    def one_each():
        zs = [c["Labels"].get("scaler.zone") for c in d.app_containers()]
        return sorted(zs) == list(ZONES) and zs
    wait_until(one_each, 60, "exactly one container per zone labelled scaler.cluster=%s"
               % d.cluster, interval=0.5)
    _, st = d.the_primary()
    for c in d.app_containers():
        zone = c["Labels"]["scaler.zone"]
        check_eq((c["Image"], c["State"]), ("scaler-app:demo", "running"),
                 "container of %s" % zone)
        addr = c["NetworkSettings"]["Networks"].get(d.network, {}).get("IPAddress", "")
        check(addr.startswith(d.net.prefix + "."),
              "%s's server has an address on %s: %r" % (zone, d.net.cidr, addr))
        servers = d.zone_servers(st, zone)
        check_eq([s["address"] for s in servers], ["http://%s:8080" % addr],
                 "the primary's servers of %s" % zone)
        state.setdefault("servers", {})[zone] = servers[0]["address"]


def uids(pid):
    """The real, effective, saved and file-system uids of a process."""
    with open("/proc/%d/status" % pid) as f:
        return [int(u) for u in re.search(r"(?m)^Uid:\s+(.*)$", f.read()).group(1).split()]


@step
def every_container_runs_its_process_as_a_user_other_than_root_and_turns_healthy():
    d = demo()
    ids = {s: d.container(s)["Id"] for s in ("redis", "influxdb", "scalerd1", "scalerd2",
                                             "scalerd3")}
    ids.update({c["Labels"]["scaler.zone"]: c["Id"] for c in d.app_containers()})
    for name, cid in sorted(ids.items()):
        st, info = d.eng.inspect(cid)
        check_eq(st, 200, "inspect of %s's container" % name)
        # scalerd's entrypoint starts as root only to hand the engine's
        # socket group to user scaler, then execs scalerd as that user
        ids_of = uids(info["State"]["Pid"])
        check(0 not in ids_of, "%s's process (pid %d) runs as uids %r, expected no 0"
              % (name, info["State"]["Pid"], ids_of))
        check(info["Config"].get("Healthcheck", {}).get("Test"),
              "%s's image has a HEALTHCHECK: %r" % (name, info["Config"].get("Healthcheck")))

    def health():
        out = {}
        for name, cid in ids.items():
            state = d.eng.inspect(cid)[1]["State"]
            out[name] = (state.get("Health") or {}).get("Status")
        return out
    deadline = time.monotonic() + 120
    now = health()
    while set(now.values()) != {"healthy"} and time.monotonic() < deadline:
        time.sleep(1.0)
        now = health()
    check_eq(sorted(n for n, h in now.items() if h != "healthy"), [],
             "containers not healthy by their HEALTHCHECK after 120 s (%r)" % now)


@step
def each_zone_answers_through_its_balancer_port():
    d = demo()
    for z in ZONES:
        st, _, body = http("GET", d.zone_url(z, "/"))
        check_eq(st, 200, "GET / on %s's port" % z)
        check(b"<html" in body.lower(), "%s answers with the dashboard" % z)
        check(d.serves(z), "GET /stats on %s's port answers with a server of %s" % (z, z))


@step
def zone1_at_high_cpu_scales_up_and_back_down_on_the_influxdb_metric():
    d = demo()
    t0 = time.monotonic()
    # the dashboard's High CPU button, through the balancer
    st, body = http_json("POST", d.zone_url("zone1", "/load"), {"profile": "high"})
    check_eq(st, 200, "POST /load high through zone1's balancer (%r)" % body)

    def zone1(n):
        p = d.primary()
        return p and len(d.zone_servers(p[1], "zone1")) == n and \
            len(d.zone_servers(p[1], "zone1", "serving")) == n and p[1]
    st = wait_until(lambda: zone1(2), 240, "zone1 to grow to 2 serving servers", interval=0.5)
    figure("High CPU -> zone1's second server (metrics through InfluxDB, 10 s interval)",
           time.monotonic() - t0)
    last = [z for z in st["zones"] if z["name"] == "zone1"][0]["last_decision"]
    check(last and last["to"] == 2 and "max_cpu" in last["reason"],
          "the decision names the average against max_cpu: %r" % last)
    # the metric the primary acted on is the one scaler-app wrote to InfluxDB
    influx = d.container("influxdb")["NetworkSettings"]["Networks"][d.network]["IPAddress"]
    q = ("SELECT max(cpu_usage) FROM scaler_app WHERE zone = 'zone1' AND time > now() - 2m")
    st2, body = http_json("GET", "http://%s:8086/query?db=scaler&q=%s"
                          % (influx, urllib.parse.quote(q)))
    check_eq(st2, 200, "InfluxDB query")
    series = body["results"][0].get("series") or [{"values": [[0, 0]]}]
    check(series[0]["values"][0][1] >= MAX_CPU,
          "InfluxDB holds zone1's high samples (max cpu_usage >= %.0f): %r" % (MAX_CPU, body))

    # Low CPU on every server of the zone (the new one has no load)
    t1 = time.monotonic()
    for s in d.zone_servers(st, "zone1"):
        r, b = http_json("POST", s["address"] + "/load", {"profile": "stop"})
        check_eq(r, 200, "POST /load stop to %s (%r)" % (s["address"], b))
    wait_until(lambda: zone1(1), 240, "zone1 to shrink back to 1 serving server", interval=0.5)
    figure("load stopped -> zone1 back to 1 server (cooldown_down 30 s)", time.monotonic() - t1)
    wait_until(lambda: len([c for c in d.app_containers()
                            if c["Labels"].get("scaler.zone") == "zone1"]) == 1,
               60, "the removed server's container to be gone")


class Prober(threading.Thread):
    """GET /health_check on a zone's port in a loop, counting answers."""

    def __init__(self, d, zone):
        super().__init__(daemon=True)
        self.url, self.ok, self.failed, self.errors = d.zone_url(zone, "/health_check"), 0, 0, []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                st, _, _ = http("GET", self.url, timeout=5)
                ok = st == 200
            except Exception as e:  # refused, reset, timed out, garbled
                ok, st = False, e
            if ok:
                self.ok += 1
            else:
                self.failed += 1
                self.errors.append(st)
            time.sleep(0.05)


@step
def docker_kill_of_the_primary_hands_over_while_the_other_zones_serve():
    d = demo()
    n, st = d.the_primary()
    epoch = st["node"]["epoch"]
    zone = "zone%d" % n  # each node hosts its own zone's balancer
    others = [z for z in ZONES if z != zone]
    probers = [Prober(d, z) for z in others]
    for p in probers:
        p.start()
    time.sleep(1)
    t0 = time.monotonic()
    r = subprocess.run(["docker", "-H", d.eng.host, "kill", d.container("scalerd%d" % n)["Id"]],
                       capture_output=True, text=True, timeout=60)
    check_eq(r.returncode, 0, "docker kill of scalerd%d (%s)" % (n, r.stderr.strip()))
    rest = tuple(m for m in (1, 2, 3) if m != n)
    p = wait_until(lambda: d.primary(rest), 60, "another node to become primary", interval=0.2)
    figure("docker kill of the primary -> a new primary", time.monotonic() - t0)
    check(p[1]["node"]["epoch"] > epoch, "the new primary's epoch %d is above %d"
          % (p[1]["node"]["epoch"], epoch))
    # the new primary adopts what runs: one server per zone, none recreated
    wait_until(lambda: all(len(d.zone_servers(d.primary(rest)[1], z)) == 1 for z in ZONES),
               60, "the new primary to know one server per zone")
    time.sleep(2)
    for p in probers:
        p.stop.set()
        p.join()
        check(p.ok > 10 and p.failed == 0, "%s kept serving: %d answered, %d failed %r"
              % (p.url, p.ok, p.failed, p.errors[:3]))
    check(not d.serves(zone), "%s's balancer went down with its node" % zone)
    state["killed"] = (n, zone)


@step
def the_killed_nodes_zone_serves_again_once_its_container_restarts():
    d = demo()
    check("killed" in state, "the step before killed the primary")
    n, zone = state["killed"]
    # docker kill is a manual stop to the engine: no restart policy restarts
    # it; a user starts it again
    r = d.compose("start", "scalerd%d" % n)
    check_eq(r.returncode, 0, "docker-compose start scalerd%d (%s)" % (n, r.stderr.strip()))
    wait_until(lambda: d.serves(zone), 60, "%s to serve again" % zone, interval=0.5)
    wait_until(lambda: d.primary(), 30, "a primary")


@step
def a_crashed_scalerd_container_is_restarted_by_its_policy():
    d = demo()
    n = 1
    c = d.eng.inspect(d.container("scalerd%d" % n)["Id"])[1]
    restarts = c["RestartCount"]
    # SIGKILL of scalerd from the host: a crash, which restart: unless-stopped covers
    os.kill(c["State"]["Pid"], 9)
    wait_until(lambda: d.eng.inspect(c["Id"])[1]["RestartCount"] > restarts, 60,
               "the engine to restart scalerd%d's container" % n, interval=0.2)
    wait_until(lambda: d.serves("zone%d" % n), 60, "zone%d to serve again" % n, interval=0.5)


@step
def down_and_removal_by_label_leave_nothing_of_the_demo():
    d = demo()
    r = d.remove()
    check(r is not None and r.returncode == 0, "docker-compose down -v: %s"
          % (r.stderr[-2000:] if r else "already removed"))
    left = [c["Names"] for c in d.eng.containers(label="com.docker.compose.project=" + d.project)]
    left += [c["Names"] for c in d.app_containers()]
    check_eq(left, [], "containers left")
    st, nets = d.eng.api("GET", "/networks")
    check_eq([n["Name"] for n in nets if n["Name"] == d.network], [], "networks left")
    st, vols = d.eng.api("GET", "/volumes")
    check_eq([v["Name"] for v in vols.get("Volumes") or [] if v["Name"].startswith(d.project + "_")],
             [], "volumes left")


if __name__ == "__main__":
    main()
