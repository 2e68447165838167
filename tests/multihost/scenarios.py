"""The six multi-host scenarios, shared by tests/multihost/test_multihost.py
(scripts/check runs 1, 2 and 4) and bench/multihost (all six, as a table).

Each scenario runs on a converged bed (Redis records = running tasks = the
balancer's server set), with traffic through zone1's balancer during the
fault, and returns a Result. After healing, it waits for the invariant
again. A scenario "held" when the invariant holds after healing, it had no
stale action, and its own condition held.

A stale action is a Swarm service create or remove (Swarm's own event
stream) that scaler's fenced records do not account for: a service created
for a server id that never had a record in Redis (records are written,
fenced, before the driver is called), or a server's service created or
removed twice.
"""
import threading
import time

from scalertest import log, wait_until  # noqa: F401

CONVERGE = 40.0  # seconds a scenario may take to converge after healing


class Result:
    def __init__(self, number, title):
        self.number, self.title = number, title
        self.failed = self.total = 0
        self.converge = None    # seconds from healing (or the action) to the invariant
        self.stale = 0
        self.invariant = None   # None: holds, else what differs
        self.condition = None   # None: holds, else what did not
        self.figures = {}       # name: (value, goal or None)
        self.notes = []

    @property
    def held(self):
        return self.invariant is None and self.stale == 0 and self.condition is None

    def why(self):
        return "; ".join(x for x in (self.condition, self.invariant,
                                     "%d stale actions" % self.stale if self.stale else None) if x)


class Watch:
    """Records every server id Redis holds, sampled every 50 ms, while a
    scenario runs; then counts stale actions in Swarm's event stream."""

    def __init__(self, sc):
        self.sc = sc
        self.since = time.time()
        self.seen = set(sc.records())
        self.roles = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.seen |= set(self.sc.records())
            except Exception:
                pass
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._t.join(5)
        self.seen |= set(self.sc.records())
        return self.stale()

    def stale(self):
        prefix = "scaler-%s-" % self.sc.cluster
        created, removed, stale = {}, {}, []
        for t, action, name in self.sc.swarm.service_events(self.since - 1):
            if not name.startswith(prefix):
                continue
            sid = name[len(prefix):]
            if action == "create":
                created[sid] = created.get(sid, 0) + 1
                if sid not in self.seen:
                    stale.append("%s created without a record" % sid)
            elif action == "remove":
                removed[sid] = removed.get(sid, 0) + 1
        stale += ["%s created %d times" % (k, n) for k, n in created.items() if n > 1]
        stale += ["%s removed %d times" % (k, n) for k, n in removed.items() if n > 1]
        return stale


def _finish(r, sc, tr, w, t_heal):
    """Wait for the invariant (traffic still flowing), then for the Swarm to
    settle (the next scenario starts from a Swarm with a leader), check the
    invariant once more, and count."""
    start = t_heal or time.monotonic()
    try:
        sc.converge(CONVERGE, "the invariant after healing")
        r.converge = time.monotonic() - start
        sc.swarm.settle()
        sc.converge(CONVERGE, "the invariant once the Swarm settled")
    except AssertionError as e:
        r.invariant = str(e)
    r.failed, r.total = tr.stop()
    if r.invariant is None:
        r.invariant = sc.invariant()
    stale = w.stop()
    r.stale = len(stale)
    r.notes += stale
    return r


def _back_to(sc, base, r):
    """The zone back to `base` servers for the next scenario; when the bed
    does not get there, the invariant did not hold (an orphan, say)."""
    sc.pin(base, 5)
    try:
        sc.converge(CONVERGE, "back to the base size")
    except AssertionError as e:
        r.invariant = "%s%s" % (r.invariant + "; " if r.invariant else "", e)
    return r


def _node_servers(sc, node):
    return [k for k, n in sc.nodes_of_servers().items() if n == node]


# ---- 1 ---------------------------------------------------------------------


def scale_up_and_down_across_hosts(sc, Traffic, up=6):
    r = Result(1, "scale up and down across hosts")
    w = Watch(sc)
    tr = Traffic(sc.listen)
    base = len(sc.records())
    t_pin = time.time()
    sc.pin(up, 30)
    wait_until(lambda: len([s for s in (sc.balancer() or {}).values() if s == "alive"]) >= up, 30,
               "%d servers alive in the balancer" % up, interval=0.05)
    t_visible = time.time()
    ups = [e for e in sc.events() if e["kind"] == "scale_up" and e["time"] >= t_pin - 1]
    decided = ups[0]["time"] if ups else t_pin
    r.figures["scale-out visible after the decision"] = (t_visible - decided, 3.0)
    spread = sorted(set(sc.nodes_of_servers().values()))
    r.notes.append("%d servers on %s" % (up, ", ".join(spread)))
    if len(spread) < 2:
        r.condition = "the servers landed on %s only" % spread
    sc.pin(base, 30)
    wait_until(lambda: len(sc.records()) == base, 30, "back to %d servers" % base)
    return _finish(r, sc, tr, w, None)


# ---- 2 ---------------------------------------------------------------------


def worker_host_lost(sc, Traffic, node=None):
    """node None: m3, or m2 when m3 runs none of the servers (m1 holds the
    registry and was the first Raft leader)."""
    r = Result(2, "a Swarm worker host lost")
    if node is None:
        node = "m3" if _node_servers(sc, "m3") else "m2"
    host = next(n for n in sc.swarm.nodes if n.name == node)
    lost = _node_servers(sc, node)
    if not lost:
        r.condition = "no server ran on m2 or m3 to lose: %r" % sc.nodes_of_servers()
        return r
    want = len(sc.records())
    w = Watch(sc)
    tr = Traffic(sc.listen)
    time.sleep(0.5)
    t_cut = time.monotonic()
    sc.bed.cut(host.host)

    def replaced():
        recs = sc.records()
        bal = sc.balancer() or {}
        return (len(recs) == want and not set(lost) & set(recs)
                and all(r_["state"] == "serving" for r_ in recs.values())
                and all(bal.get(r_["address"]) == "alive" for r_ in recs.values()))
    try:
        wait_until(replaced, 40, "%s's servers replaced elsewhere" % node, interval=0.05)
        r.figures["servers serving again elsewhere after the link went down"] = (
            time.monotonic() - t_cut, 10.0)
    except AssertionError as e:
        r.condition = str(e)
    time.sleep(0.5)
    fails = [t - t_cut for t in tr.failures if t >= t_cut]
    r.figures["last failed request after the link went down"] = (fails[-1] if fails else 0.0, None)
    r.notes.append("lost %s: %s" % (node, ", ".join(lost)))
    sc.bed.heal(host.host)
    return _finish(r, sc, tr, w, time.monotonic())


# ---- 3 ---------------------------------------------------------------------


def primary_cut_from_peers(sc, Traffic, hold=6.0):
    r = Result(3, "primary cut from its peers, reaching Redis")
    p = sc.primary()
    others = [i for i in sc.hosts if i != p]
    w = Watch(sc)
    tr = Traffic(sc.listen)
    base = len(sc.records())
    for i in others:
        sc.bed.partition(sc.hosts[p], sc.hosts[i])
    t0 = time.monotonic()
    primaries = set()
    asked = set()
    both = 0
    while time.monotonic() - t0 < hold:
        roles = sc.roles()
        now = {i for i, x in roles.items() if x and x[0] == "primary"}
        primaries |= now
        both += len(now) > 1
        # an operator asks every node that says it is primary for one more server
        if time.monotonic() - t0 > 2.0:
            for i in now - asked:
                st, _ = sc.post(i, "/scale", {"zone": "zone1", "count": base + 1, "for": 30})
                asked.add(i)
        time.sleep(0.1)
    for i in others:
        sc.bed.join(sc.hosts[p], sc.hosts[i])
    r.figures["nodes that were primary during the partition"] = (len(primaries), 1)
    if both:
        r.notes.append("two nodes said primary at once in %d looks (0.1 s apart)" % both)
    if len(primaries) != 1:
        r.condition = "primaries during the partition: %s (expected exactly one)" % sorted(primaries)
    created = [e for e in sc.events() if e["kind"] in ("server_ready",) and e["time"] >= w.since]
    if len(created) > 1:
        r.condition = (r.condition or "") + " %d servers created for one more (%s)" % (
            len(created), [e.get("node") for e in created])
    res = _finish(r, sc, tr, w, time.monotonic())
    return _back_to(sc, base, res)


# ---- 4 ---------------------------------------------------------------------


def primary_cut_from_redis(sc, Traffic):
    r = Result(4, "primary cut from Redis, reaching its peers")
    p = sc.primary()
    epoch = sc.roles()[p][1]
    w = Watch(sc)
    tr = Traffic(sc.listen)
    base = len(sc.records())
    sc.bed.partition(sc.hosts[p], sc.redis_host)
    t0 = time.monotonic()
    t_cut = time.time()
    try:
        wait_until(lambda: sc.roles()[p] and sc.roles()[p][0] != "primary", 10,
                   "node %d to stop acting" % p, interval=0.05)
        r.figures["old primary stopped acting after the cut"] = (time.monotonic() - t0, None)
        new = wait_until(lambda: sc.primary() not in (None, p) and sc.primary(), 10,
                         "a new primary", interval=0.05)
        r.figures["new primary after the cut"] = (time.monotonic() - t0, None)
        # the new primary acts: one more server
        sc.pin(base + 1, 30)
        wait_until(lambda: len(sc.records()) == base + 1 and sc.invariant() is None, 30,
                   "the new primary's server")
        r.notes.append("node %d took over from node %d (epoch %d -> %d)" % (
            new, p, epoch, sc.roles()[new][1]))
    except AssertionError as e:
        r.condition = str(e)
    sc.bed.join(sc.hosts[p], sc.redis_host)
    t_heal = time.monotonic()
    time.sleep(2.0)
    late = [e for e in sc.events() if e.get("node") == str(p) and e["time"] > t_cut
            and e["kind"] not in ("hold",)]
    if late:
        r.condition = (r.condition or "") + " node %d recorded %d events after the cut" % (p, len(late))
    made = [s for s in sc.swarm.services(sc.cluster)
            if s["Spec"]["Labels"].get("scaler.node") == str(p)
            and float(s["Spec"]["Labels"].get("scaler.created", 0)) > t_cut]
    if made:
        r.condition = (r.condition or "") + " node %d created %d services after the cut" % (p, len(made))
    if sc.roles()[p] and sc.roles()[p][0] == "primary":
        r.notes.append("node %d primary again after healing" % p)
    res = _finish(r, sc, tr, w, t_heal)
    return _back_to(sc, base, res)


# ---- 5 ---------------------------------------------------------------------


def balancer_cut_from_primary(sc, Traffic, hold=4.0):
    r = Result(5, "balancer host cut from the primary")
    p = sc.primary()
    if p == 1:
        r.condition = "the primary runs the balancer; nothing to cut"
        return r
    w = Watch(sc)
    tr = Traffic(sc.listen)
    recs = sc.records()
    victim, rec = sorted(recs.items())[0]
    sc.bed.partition(sc.hosts[1], sc.hosts[p])
    t0 = time.monotonic()
    # a server dies during the partition (its container killed on its node)
    node = sc.swarm.node_of(rec["address"])
    import json
    import urllib.parse
    q = urllib.parse.quote(json.dumps({"label": ["com.docker.swarm.service.name=scaler-%s-%s"
                                                  % (sc.cluster, victim)]}))
    st, cs = node.api("GET", "/containers/json?filters=" + q)
    for c in cs if st == 200 else []:
        node.api("POST", "/containers/%s/kill" % c["Id"])
    time.sleep(hold)
    during = (tr.failed, tr.total)
    if victim not in sc.records():
        r.condition = "the dead server was replaced before the partition healed"
    sc.bed.join(sc.hosts[1], sc.hosts[p])
    t_heal = time.monotonic()
    try:
        wait_until(lambda: victim not in sc.records(), 20, "the dead report delivered after healing")
        r.figures["dead server replaced after healing"] = (time.monotonic() - t_heal, None)
    except AssertionError as e:
        r.condition = str(e)
    r.notes.append("during the partition: %d failed of %d requests (held %.0f s)" % (
        during[0], during[1], time.monotonic() - t0))
    if during[1] == 0 or during[0] > during[1] // 2:
        r.condition = (r.condition or "") + " the zone did not keep serving"
    return _finish(r, sc, tr, w, t_heal)


# ---- 6 ---------------------------------------------------------------------


def everything_heals(sc, Traffic, hold=6.0):
    r = Result(6, "several partitions at once, healed")
    p = sc.primary()
    m1, m2, m3 = sc.swarm.nodes[:3]
    cuts = [(sc.hosts[p], sc.redis_host), (sc.hosts[1], sc.hosts[2]),
            (m2.host, m1.host), (m2.host, m3.host)]  # m2 loses the Swarm, not its users
    w = Watch(sc)
    tr = Traffic(sc.listen)
    for a, b in cuts:
        sc.bed.partition(a, b)
    time.sleep(hold)
    for a, b in cuts:
        sc.bed.join(a, b)
    t_heal = time.monotonic()
    res = _finish(r, sc, tr, w, t_heal)
    if sc.primary() is None:
        res.condition = "no single primary after healing: %r" % sc.roles()
    return res


ALL = [scale_up_and_down_across_hosts, worker_host_lost, primary_cut_from_peers,
       primary_cut_from_redis, balancer_cut_from_primary, everything_heals]
