#!/usr/bin/env python3
"""Leadership when the network splits (#25): three scalerd nodes (plugin
bully, preempt on), each in its own network namespace on a test bed
(tests/lib/netbed.py), and one Redis in the root namespace on the bed's
gateway address (.1). The test watches every node's GET /status from a
second root address (.254), so that cutting a node off from Redis (a
blackhole route to .1 inside its namespace) does not cut it off from the
test.

What must hold:
  - the primary cut off from its two peers but still reaching Redis keeps
    its lease: no new epoch, one primary all along, nothing changes after
    the partition heals;
  - the primary cut off from Redis but not from its peers steps down within
    its lease, one node takes over with one new epoch, never two primaries
    at once (and after healing, preempt hands the lead back through a
    release: one more epoch, again never two primaries).

Timings: check_interval 0.2 s, timeout 0.2 s, lease 0.6 s (3 checks)."""
from http.client import HTTPConnection
import json
import os
import signal
import subprocess
import time

from scalertest import *
from electiontest import bully_node_conf
from netbed import Bed, netns_available

CHECK = 0.2
TIMEOUT = 0.2
LEASE = 3 * CHECK
MARGIN = 1.0  # scheduling on a loaded 2-core machine
TOKEN = "p4rtition"

_bed = {}


def bed():
    """One bed for the file: hosts n1, n2, n3 (.2, .3, .4), Redis on .1, the
    test's own address .254."""
    if "bed" not in _bed:
        b = Bed()
        hosts = {i: b.host("n%d" % i) for i in (1, 2, 3)}
        probe = b.net.addr(254)
        subprocess.run(["ip", "addr", "add", probe + "/24", "dev", b.bridge], check=True)
        redis = Redis(bind=[b.gateway])
        _bed.update(bed=b, hosts=hosts, probe=probe, redis=redis)
    return _bed


def need_netns():
    why = netns_available()
    if why:
        skip(why)
    if not os.access(binary("scalerd"), os.X_OK):
        skip("scalerd is not built")
    if not os.path.exists(os.path.join(plugin_dir(), "election_bully.so")):
        skip("election_bully.so is not built")


class NetCluster:
    def __init__(self):
        env = bed()
        self.bed, self.hosts, self.probe, self.redis = (env["bed"], env["hosts"], env["probe"],
                                                        env["redis"])
        self.port = free_port()
        self.cluster = "part%d" % self.port
        self.procs = {}

    def url(self, i):
        return "http://%s:%d" % (self.hosts[i].addr, self.port)

    def start(self, i):
        conf = bully_node_conf(self.cluster, i, "%s:%d" % (self.hosts[i].addr, self.port), TOKEN,
                               "redis://%s:%d/0" % (self.bed.gateway, self.redis.port),
                               {k: self.url(k) for k in self.hosts}, CHECK, TIMEOUT,
                               lease=LEASE, level="info")
        self.procs[i] = spawn(self.hosts[i].spawn_argv([binary("scalerd"), "-c", conf]),
                              name="scalerd-%s-%d" % (self.cluster, i))

    def start_all(self):
        for i in (3, 2, 1):
            self.start(i)

    def view(self, i, timeout=0.5):
        """Node i's election status, fetched from the test's own address."""
        conn = HTTPConnection(self.hosts[i].addr, self.port, timeout=timeout,
                                          source_address=(self.probe, 0))
        try:
            conn.request("GET", "/status", headers={"Authorization": "Bearer " + TOKEN})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                return None
            return json.loads(body).get("election")
        except (OSError, ValueError):
            return None
        finally:
            conn.close()

    def views(self):
        return {i: self.view(i) for i in self.hosts}

    def agreed(self, want, v=None):
        v = v or self.views()
        p = v.get(want)
        if not p or p["state"] != "primary":
            return None
        for i, e in v.items():
            if i != want and (not e or e["state"] != "backup" or not e["primary"] or
                              e["primary"]["id"] != str(want) or
                              e["primary"]["epoch"] != p["epoch"]):
                return None
        return p["epoch"]

    def wait_agreed(self, want, timeout):
        return wait_until(lambda: self.agreed(want), timeout,
                          "node %d primary, followed by the others" % want)

    def redis_epoch(self):
        v = self.redis.cli("GET", self.cluster + ":epoch")
        return int(v) if v and v.isdigit() else 0

    def log(self, i):
        return self.procs[i].output()

    def stop(self):
        for p in self.procs.values():
            p.signal(signal.SIGCONT)
            p.kill()


class Timeline:
    """Who claims primary over time, from the nodes' own clocks (one machine):
    each node reports when it last became primary and when it last stepped
    down. The primary intervals of all nodes must not overlap. (Two nodes
    can both say primary in one poll without overlapping: the poll asks
    them one after the other.)"""

    def __init__(self, c):
        self.c = c
        self.polls = 0
        self.since = {i: {} for i in c.hosts}  # node -> {primary_since: primary_until or None}

    def poll(self):
        v = self.c.views()
        self.polls += 1
        for i, e in v.items():
            if not e or not e["primary_since"]:
                continue
            until = e["primary_until"] if e["primary_until"] >= e["primary_since"] else None
            if until is not None or e["primary_since"] not in self.since[i]:
                self.since[i][e["primary_since"]] = until
        return v

    def primaries(self):
        """Nodes that were primary while watched."""
        return sorted(i for i, iv in self.since.items() if iv)

    def watch(self, seconds, until=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            v = self.poll()
            if until and until(v):
                return v
            time.sleep(0.02)
        return None

    def check_no_overlap(self):
        flat = sorted((s, e if e is not None else float("inf"), i)
                      for i, iv in self.since.items() for s, e in iv.items())
        for (s1, e1, i1), (s2, e2, i2) in zip(flat, flat[1:]):
            check(s2 >= e1, "expected node %d to stop claiming primary (at %.3f) before node %d "
                            "started (at %.3f): two primaries" % (i1, e1, i2, s2))

    def stepped_down(self, i):
        """When node i last stopped claiming primary, None if it did not."""
        ends = [e for e in self.since[i].values() if e is not None]
        return max(ends) if ends else None


def counters(v):
    return {i: e and (e["elections_won"], e["deposed"]) for i, e in v.items()}


@test
def a_primary_cut_from_its_peers_but_not_from_redis_keeps_the_lead():
    need_netns()
    c = NetCluster()
    b, h = c.bed, c.hosts
    try:
        c.start_all()
        epoch = c.wait_agreed(3, 15)
        before = counters(c.views())
        b.partition(h[3], h[1])
        b.partition(h[3], h[2])
        t = Timeline(c)
        # 30 checks, 10 leases: before, the peers elected every few checks
        t.watch(30 * CHECK)
        v = t.poll()
        check_eq(c.redis_epoch(), epoch, "epoch in Redis during the partition")
        check_eq(t.primaries(), [3], "nodes seen primary during the partition")
        t.check_no_overlap()
        check_eq(counters(v), before, "elections won and step-downs during the partition")
        for i in (1, 2):
            check_eq(v[i]["primary"] and v[i]["primary"]["id"], "3",
                     "node %d's primary during the partition" % i)
            check("does not answer as primary, but holds its lease" in c.log(i),
                  "expected node %d to log that it waits for node 3's lease" % i)
        b.join(h[3], h[1])
        b.join(h[3], h[2])
        c.wait_agreed(3, 5)
        t.watch(10 * CHECK)
        check_eq(c.agreed(3), epoch, "node 3's epoch after healing")
        check_eq(c.redis_epoch(), epoch, "epoch in Redis after healing")
        check_eq(counters(c.views()), before, "elections won and step-downs after healing")
        t.check_no_overlap()
        log("%d polls, epoch %d throughout" % (t.polls, epoch))
    finally:
        b.join(h[3], h[1])
        b.join(h[3], h[2])
        c.stop()


@test
def a_primary_cut_from_redis_steps_down_within_its_lease_and_one_node_takes_over():
    need_netns()
    c = NetCluster()
    b, h = c.bed, c.hosts
    cut = ["ip", "route", "replace", "blackhole", b.gateway + "/32"]
    try:
        c.start_all()
        epoch = c.wait_agreed(3, 15)
        t = Timeline(c)
        t_cut = time.time()
        h[3].run(cut)
        v = t.watch(LEASE + 5 + MARGIN, until=lambda v: c.agreed(2, v))
        check(v, "expected node 2 to lead within %.1f s of node 3's cut" % (LEASE + 5 + MARGIN))
        t.check_no_overlap()
        down = t.stepped_down(3)
        check(down is not None, "expected node 3 to step down")
        check(down - t_cut <= LEASE + MARGIN,
              "expected node 3 to step down within its lease (%.1f s) of the cut, "
              "took %.2f s" % (LEASE, down - t_cut))
        check("lost Redis" in c.log(3), "expected node 3 to log that it lost Redis")
        check_eq(c.agreed(2, v), epoch + 1, "epoch of node 2's takeover")
        check_eq(c.redis_epoch(), epoch + 1, "epoch in Redis: one takeover")
        check_eq(t.primaries(), [2, 3], "nodes seen primary")
        t.watch(5 * CHECK)
        check_eq(c.redis_epoch(), epoch + 1, "epoch in Redis while node 3 stays cut")
        # healed: preempt hands the lead back, once, through a release
        h[3].run(["ip", "route", "del", "blackhole", b.gateway + "/32"], check=False)
        v = t.watch(15, until=lambda v: c.agreed(3, v))
        check(v, "expected node 3 to lead again after healing")
        check_eq(c.agreed(3, v), epoch + 2, "node 3's epoch after healing")
        check("node 3, a higher id, takes over (preempt)" in c.log(2),
              "expected node 2 to release the lead to node 3")
        t.watch(5 * CHECK)
        check_eq(c.redis_epoch(), epoch + 2, "epoch in Redis after healing")
        t.check_no_overlap()
        log("%d polls; node 3 stepped down %.2f s after the cut" % (t.polls, down - t_cut))
    finally:
        h[3].run(["ip", "route", "del", "blackhole", b.gateway + "/32"], check=False)
        c.stop()


if __name__ == "__main__":
    main()
