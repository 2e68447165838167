#!/usr/bin/env python3
"""Election among real scalerd nodes (plugin bully) on loopback, one throwaway
Redis, no zones. Every node's GET /status carries the plugin's status under
"election"; the nodes talk to each other through POST /election/<type>.

Timings: check_interval 0.2 s, timeout 0.3 s, so a dead primary is replaced
within check_interval + timeout + a margin for process scheduling."""
import os
import signal
import time

from scalertest import *
from electiontest import bully_node_conf

CHECK = 0.2
TIMEOUT = 0.3
MARGIN = 1.0  # scheduling on a loaded 2-core machine, Redis round trips
TOKEN = "t0ken"


class Cluster:
    def __init__(self, n=3, preempt=True, redis=None, tokens=None):
        self.redis = redis or Redis()
        self.n = n
        self.preempt = preempt
        self.tokens = tokens or {}  # node -> its own token (default: TOKEN for all)
        self.cluster = "el%d" % free_port()
        self.ports = {i: free_port() for i in range(1, n + 1)}
        self.procs = {}

    def url(self, i):
        return "http://127.0.0.1:%d" % self.ports[i]

    def conf(self, i):
        return bully_node_conf(self.cluster, i, "127.0.0.1:%d" % self.ports[i], self.token(i),
                               self.redis.url(), {k: self.url(k) for k in self.ports}, CHECK,
                               TIMEOUT, preempt=self.preempt)

    def token(self, i):
        return self.tokens.get(i, TOKEN)

    def start(self, i):
        self.procs[i] = spawn([binary("scalerd"), "-c", self.conf(i)],
                              name="scalerd-%s-%d" % (self.cluster, i))
        wait_until(lambda: self.election(i) is not None, 10, "node %d to serve /status" % i)

    def start_all(self):
        # highest id first: without preemption the first node up stays primary
        for i in sorted(self.ports, reverse=True):
            self.start(i)

    def alive(self):
        return [i for i, p in self.procs.items() if p.alive()]

    def election(self, i, timeout=1.0):
        status, body = http_json("GET", self.url(i) + "/status",
                                 headers={"Authorization": "Bearer " + self.token(i)},
                                 timeout=timeout)
        if status != 200 or not isinstance(body, dict):
            return None
        return body.get("election")

    def views(self, nodes=None):
        """{node: election status} of the given (default: live, not stopped) nodes."""
        out = {}
        for i in nodes or self.alive():
            try:
                out[i] = self.election(i, timeout=0.5)
            except OSError:
                out[i] = None
        return out

    def agreed(self, want, nodes=None):
        """The epoch when `want` is primary and every other node follows it
        with that epoch; None otherwise."""
        v = self.views(nodes)
        p = v.get(want)
        if not p or p.get("state") != "primary":
            return None
        epoch = p.get("epoch")
        for i, e in v.items():
            if i == want:
                continue
            if not e or e.get("state") != "backup" or not e.get("primary"):
                return None
            if e["primary"].get("id") != str(want) or e["primary"].get("epoch") != epoch:
                return None
        return epoch

    def wait_primary(self, want, timeout, nodes=None):
        deadline = time.monotonic() + timeout
        while True:
            epoch = self.agreed(want, nodes)
            if epoch:
                return epoch
            if time.monotonic() > deadline:
                brief = {i: e and {k: e.get(k) for k in ("state", "primary", "epoch")}
                         for i, e in self.views(nodes).items()}
                check(False, "expected node %d primary and followed by nodes %s within "
                                     "%.1fs; their views: %r" % (want, nodes or self.alive(),
                                                                 timeout, brief))
            time.sleep(0.02)

    def leader_record(self):
        raw = self.redis.cli("HGETALL", self.cluster + ":leader")
        return raw

    def redis_epoch(self):
        v = self.redis.cli("GET", self.cluster + ":epoch")
        return int(v) if v and v.isdigit() else 0

    def log(self, i):
        with open(self.procs[i].logpath, errors="replace") as f:
            return f.read()

    def stop(self):
        for p in self.procs.values():
            p.signal(signal.SIGCONT)
            p.kill()


def no_two_primaries(views):
    prim = [(i, e.get("epoch")) for i, e in views.items() if e and e.get("state") == "primary"]
    epochs = [ep for _, ep in prim]
    check(len(epochs) == len(set(epochs)),
          "expected no two primaries with the same epoch, got %r" % prim)
    return prim


def need_scalerd():
    if not os.access(binary("scalerd"), os.X_OK):
        skip("scalerd is not built")
    if not os.path.exists(os.path.join(plugin_dir(), "election_bully.so")):
        skip("election_bully.so is not built")


_shared = {}


def cluster_preempt():
    """Three nodes with preempt = true, shared by the tests that follow each other."""
    if "c" not in _shared:
        c = Cluster(preempt=True)
        c.start_all()
        _shared["c"] = c
    return _shared["c"]


@test
def three_nodes_elect_the_highest_id_and_agree_on_one_epoch():
    need_scalerd()
    c = cluster_preempt()
    epoch = c.wait_primary(3, 10)
    check(epoch >= 1, "expected an epoch >= 1, got %r" % epoch)
    check_eq(c.redis_epoch(), epoch, "epoch in Redis")
    rec = c.leader_record()
    check('"3"' in rec or "\n3\n" in "\n%s\n" % rec.replace('"', ''),
          "expected the leader record to name node 3, got %r" % rec)
    # stable: nothing changes over a few checks
    time.sleep(5 * CHECK)
    check_eq(c.agreed(3), epoch, "epoch after five more checks")
    v = c.views()
    check_eq(v[3]["elections_won"], v[3]["elections_won"], "counter present")
    for i in (1, 2):
        check_eq(v[i]["primary"]["url"], c.url(3), "node %d's primary URL" % i)


@test
def killing_the_primary_makes_node_2_primary_within_check_interval_plus_timeout():
    need_scalerd()
    c = cluster_preempt()
    old = c.wait_primary(3, 10)
    c.procs[3].kill()
    t0 = time.monotonic()
    bound = CHECK + TIMEOUT + MARGIN
    seen = []

    def node2_leads():
        v = c.views([1, 2])
        seen.append(no_two_primaries(v))
        return c.agreed(2, [1, 2])

    epoch = wait_until(node2_leads, 10, "node 2 to lead after node 3 was killed", interval=0.01)
    took = time.monotonic() - t0
    log("failover took %.3f s (bound %.1f s)" % (took, bound))
    check(took <= bound, "expected node 2 primary within %.1f s, took %.3f s" % (bound, took))
    check(epoch > old, "expected a new epoch above %d, got %d" % (old, epoch))
    check_eq(c.redis_epoch(), epoch, "epoch in Redis")


@test
def a_returning_higher_node_takes_over_with_a_newer_epoch_when_preempt_is_on():
    need_scalerd()
    c = cluster_preempt()
    old = c.wait_primary(2, 10, [1, 2])
    c.start(3)
    epoch = c.wait_primary(3, 10)
    check(epoch > old, "expected node 3 to take over with an epoch above %d, got %d" % (old, epoch))
    v = c.views()
    check_eq(v[2]["state"], "backup", "node 2's state")
    check(v[2]["deposed"] >= 1, "expected node 2 to count its step down, got %r" % v[2])


@test
def hostile_messages_are_refused_and_change_nothing():
    need_scalerd()
    c = cluster_preempt()
    epoch = c.wait_primary(3, 10)
    auth = {"Authorization": "Bearer " + TOKEN}
    before = c.views()
    for node in (1, 2):
        other = 2 if node == 1 else 1
        cases = [
            ("no token", "coordinator", {"id": 3, "epoch": epoch + 100}, {}, 401),
            ("wrong token", "coordinator", {"id": 3, "epoch": epoch + 100},
             {"Authorization": "Bearer nope"}, 401),
            ("old epoch", "coordinator", {"id": 3, "epoch": epoch - 1}, auth, 409),
            ("same epoch, other node", "coordinator", {"id": other, "epoch": epoch}, auth, 409),
            ("unknown node", "coordinator", {"id": 77, "epoch": epoch + 1}, auth, 400),
            ("itself", "coordinator", {"id": node, "epoch": epoch + 1}, auth, 400),
            ("invalid JSON", "coordinator", '{"id": 1, "epoch":', auth, 400),
            ("not an object", "coordinator", "[1]", auth, 400),
            ("epoch as string", "coordinator", {"id": 3, "epoch": str(epoch + 1)}, auth, 400),
            ("election to a lower id", "election", {"id": 3}, auth, 409),
            ("unknown message", "promote", {"id": 3}, auth, 404),
        ]
        for name, typ, body, headers, want in cases:
            url = c.url(node) + "/election/" + typ
            status, reply = http_json("POST", url, body=body, headers=dict(headers))
            check(status == want, "%s to node %d: expected %d, got %d %r" %
                  (name, node, want, status, reply))
            check(isinstance(reply, dict) and "error" in reply,
                  "%s to node %d: expected a JSON error, got %r" % (name, node, reply))
    after = c.views()
    for i in (1, 2, 3):
        for k in ("state", "primary", "epoch", "elections"):
            check_eq(after[i][k], before[i][k], "node %d's %s after refused messages" % (i, k))
    # a lower node announcing itself to node 3 with a newer epoch is refused:
    # node 3 is alive, reaches Redis and bullies (it runs its own election)
    status, reply = http_json("POST", c.url(3) + "/election/coordinator",
                              body={"id": 1, "epoch": epoch + 1}, headers=auth)
    check_eq(status, 409, "COORDINATOR from node 1 to live node 3 (reply %r)" % (reply,))
    after = c.wait_primary(3, 5)
    check(after >= epoch, "expected node 3 still primary, epoch %d -> %d" % (epoch, after))
    if after == epoch:
        v = c.views()
        for i in (1, 2):
            check_eq(v[i]["primary"]["id"], "3", "node %d's primary after hostile messages" % i)


@test
def a_stopped_primary_that_resumes_steps_down_then_preempts_with_a_newer_epoch():
    need_scalerd()
    c = cluster_preempt()
    old = c.wait_primary(3, 10)
    c.procs[3].signal(signal.SIGSTOP)
    try:
        mid = c.wait_primary(2, CHECK + TIMEOUT + MARGIN + 2, [1, 2])
        check(mid > old, "expected node 2 to lead with an epoch above %d, got %d" % (old, mid))
        time.sleep(3 * CHECK)
    finally:
        c.procs[3].signal(signal.SIGCONT)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        no_two_primaries(c.views())
        time.sleep(0.02)
        if c.agreed(3):
            break
    new = c.wait_primary(3, 5)
    check(new > mid, "expected node 3 back with an epoch above node 2's %d, got %d" % (mid, new))
    v = c.views()
    check(v[3]["deposed"] >= 1, "expected node 3 to have stepped down once, got %r" % v[3])
    check_eq(c.redis_epoch(), new, "epoch in Redis")


@test
def a_stopped_primary_that_resumes_steps_down():
    need_scalerd()
    c = Cluster(preempt=False)
    try:
        c.start_all()
        old = c.wait_primary(3, 10)
        c.procs[3].signal(signal.SIGSTOP)
        epoch = c.wait_primary(2, CHECK + TIMEOUT + MARGIN + 2, [1, 2])
        check(epoch > old, "expected a new epoch above %d, got %d" % (old, epoch))
        # stopped well past detection, then resumed
        time.sleep(3 * CHECK)
        c.procs[3].signal(signal.SIGCONT)

        def three_steps_down():
            v = c.election(3, timeout=0.5)
            return v and v["state"] == "backup" and v
        v = wait_until(three_steps_down, 5, "node 3 to say backup after SIGCONT")
        check(v["deposed"] >= 1, "expected node 3 to count the step down, got %r" % v)
        got = c.wait_primary(2, 5)
        check_eq(got, epoch, "epoch once node 3 follows node 2 (no preemption)")
        time.sleep(5 * CHECK)
        views = c.views()
        prim = no_two_primaries(views)
        check_eq([p for p, _ in prim], [2], "nodes that say primary")
    finally:
        c.stop()


@test
def a_returning_higher_node_stays_backup_when_preempt_is_off():
    need_scalerd()
    c = Cluster(preempt=False)
    try:
        c.start_all()
        c.wait_primary(3, 10)
        c.procs[3].kill()
        epoch = c.wait_primary(2, 10, [1, 2])
        c.start(3)
        got = c.wait_primary(2, 5)
        check_eq(got, epoch, "epoch after node 3 joined")
        time.sleep(5 * CHECK)
        check_eq(c.agreed(2), epoch, "node 2 still primary with the same epoch")
        check_eq(c.redis_epoch(), epoch, "epoch in Redis (no new election)")
    finally:
        c.stop()


@test
def a_primary_that_loses_redis_stops_acting():
    need_scalerd()
    c = Cluster(n=2, preempt=True)
    try:
        c.start_all()
        c.wait_primary(2, 10)
        c.redis.stop()
        lease = 3 * CHECK

        def nobody_primary():
            v = c.views()
            return all(e and e["state"] != "primary" for e in v.values()) and v
        v = wait_until(nobody_primary, lease + CHECK + MARGIN + 2,
                       "every node to stop acting without Redis")
        check("lost Redis" in open(c.procs[2].logpath, errors="replace").read(),
              "expected node 2 to log that it lost Redis")
        c.redis.start()
        c.wait_primary(2, 15)
    finally:
        c.stop()


@test
def after_a_redis_restart_the_highest_id_leads_with_one_new_epoch():
    """#22: Redis restarts empty. The nodes reconnect moments apart and the
    first to look starts an election; the others must answer from Redis as it
    is now, not from the failure of their last check, so node 3 leads with
    epoch 1 and no second epoch follows."""
    need_scalerd()
    c = Cluster(preempt=True)
    try:
        c.start_all()
        c.wait_primary(3, 10)
        for run in range(4):
            c.redis.stop()
            wait_until(lambda: all(e and not e["redis_ok"] for e in c.views().values()),
                       5, "every node to notice that Redis is gone (run %d)" % run)
            # down longer than a check, so each node's last check failed
            time.sleep(2 * CHECK)
            c.redis.start()
            epoch = c.wait_primary(3, 10)
            check_eq(epoch, 1, "epoch after Redis restarted empty (run %d)" % run)
            time.sleep(5 * CHECK)
            check_eq(c.agreed(3), 1, "node 3 still leading with epoch 1 (run %d)" % run)
            check_eq(c.redis_epoch(), 1, "epoch in Redis: one taken (run %d)" % run)
    finally:
        c.stop()


@test
def nodes_with_different_tokens_keep_one_primary_and_one_epoch():
    """#23: every ping gets 401. That is a configuration error, logged once
    per peer, not a dead primary: no election storm, one primary."""
    need_scalerd()
    c = Cluster(preempt=True, tokens={1: "token-one", 2: "token-two", 3: "token-three"})
    try:
        c.start_all()

        def one_primary():
            v = c.views()
            prim = [i for i, e in v.items() if e and e["state"] == "primary"]
            return len(prim) == 1 and all(e for e in v.values()) and prim[0]
        first = wait_until(one_primary, 10, "one node primary")
        epoch = c.redis_epoch()
        seen = set()
        deadline = time.monotonic() + 20 * CHECK
        while time.monotonic() < deadline:
            v = c.views()
            prim = [i for i, e in v.items() if e and e["state"] == "primary"]
            check(len(prim) <= 1, "expected at most one primary, got %r" % prim)
            seen.update(prim)
            time.sleep(0.05)
        check_eq(sorted(seen), [first], "nodes seen primary over 20 checks")
        check_eq(c.redis_epoch(), epoch, "epoch in Redis after 20 checks")
        for i in (1, 2, 3):
            log_text = c.log(i)
            for k in (1, 2, 3):
                if k == i:
                    continue
                n = log_text.count("node %d (%s) refuses this node's token" % (k, c.url(k)))
                check(n <= 1, "expected node %d to log node %d's refusal at most once, "
                              "got %d" % (i, k, n))
        # a backup names the primary that refuses its token
        backup = 1 if first != 1 else 2
        check("node %d (%s) refuses this node's token" % (first, c.url(first)) in c.log(backup),
              "expected node %d to log that node %d refuses its token" % (backup, first))
    finally:
        c.stop()


if __name__ == "__main__":
    main()
