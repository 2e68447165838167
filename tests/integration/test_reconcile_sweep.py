"""The primary's orphan sweep (reconcile_interval, src/control/primary.c and
reconcile_sweep in src/control/reconcile.c): a server of a configured zone
that the driver lists without a record in Redis (what a primary deposed
during a create leaves behind) is adopted when healthy and removed when
not, once two sweeps in a row found it so; servers the controller is
creating at the same time are never touched. One scalerd (election
single), the process driver, tests/driverctl to start the orphans in the
driver's state directory with the cluster's label and no record."""
import json
import os
import signal
import subprocess
import sys
import time

from scalertest import *

APP = binary("scaler-app")
TOKEN = "sweep-token"
AUTH = {"Authorization": "Bearer " + TOKEN}
SWEEP = 1.0  # reconcile_interval


class Cluster:
    def __init__(self, interval=SWEEP):
        self.redis = Redis()
        self.name = "sweep%d" % free_port()  # a cluster of its own
        self.dir = os.path.join(tmpdir(), self.name)
        self.servers_dir = os.path.join(self.dir, "servers")
        os.makedirs(self.servers_dir)
        self.admin, self.listen, self.zadmin = free_port(), free_port(), free_port()
        ports = free_port_range(20)
        # the controller's servers take 2 s to start: creates are in flight
        # while the first sweeps run
        slow = ["sh", "-c", "sleep 2; exec %s" % APP]
        self.conf = write_file("%s.conf" % self.name, """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; };
cluster = "%s";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 1.0; reconcile_interval = %g;
driver = { plugin = "process"; command = %s; state_dir = "%s"; log_dir = "%s"; stop_timeout = 2.0; };
metrics = { plugin = "http"; timeout = 0.5; };
policy = { plugin = "threshold"; max_cpu = 1000000.0; min_cpu = 0.0; within_bounds_trigger = 1000; };
balancer = { plugin = "builtin"; health_interval = 0.5; };
zones = ( { name = "z1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 2; max = 6;
            ports = [%d, %d]; } );
""" % (self.admin, TOKEN, self.name, self.redis.url(), plugin_dir(), self.dir, interval,
       json.dumps(slow), self.servers_dir, self.servers_dir, self.listen, self.zadmin,
       ports[0], ports[0] + 9))
        # driverctl: same cluster, same state directory, ports of their own
        self.ctl_confs = {}
        for kind, cmd in (("healthy", [APP]), ("mute", ["sleep", "1000"])):
            self.ctl_confs[kind] = write_file("%s-%s.conf" % (self.name, kind), """
cluster = "%s";
driver = { plugin = "process"; command = %s; state_dir = "%s"; log_dir = "%s"; stop_timeout = 2.0; };
zones = ( { name = "z1"; port_min = %d; port_max = %d; } );
""" % (self.name, json.dumps(cmd), self.servers_dir, self.servers_dir, ports[0] + 10, ports[1]))
        self.refs = []
        self.proc = spawn([binary("scalerd"), "-c", self.conf], name=self.name)

    def orphan(self, kind, sid):
        """Start a server with the cluster's label and no record."""
        r = subprocess.run([binary("tests/driverctl"), "-d", plugin_dir(), "-c",
                            self.ctl_confs[kind], "create", "z1", sid],
                           capture_output=True, text=True, timeout=60)
        replies = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        check(replies and replies[0].get("ok"),
              "driverctl create %s: expected success, got %r, stderr:\n%s"
              % (sid, replies, r.stderr))
        srv = replies[0]["server"]
        self.refs.append(srv["ref"])
        return srv

    def records(self):
        raw = self.redis.cli_raw("HGETALL", "%s:servers:z1" % self.name)
        return {raw[i]: json.loads(raw[i + 1]) for i in range(0, len(raw) - 1, 2)}

    def events(self):
        out = self.redis.cli_raw("XRANGE", self.name + ":events", "-", "+")
        return [json.loads(l) for l in out if l.startswith("{")]

    def reconcile_events(self):
        return [e for e in self.events() if e.get("kind") == "reconcile"]

    def stop(self):
        self.proc.kill()
        for rec in self.records().values():
            self.refs.append(rec.get("ref", ""))
        for ref in self.refs:
            kill_process_server(ref)
        self.redis.stop()


def alive(srv):
    pid, start = (int(x) for x in srv["ref"].split(":"))
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z" and int(fields[19]) == start
    except (OSError, IndexError, ValueError):
        return False


@test
def orphans_are_adopted_or_removed_and_servers_being_created_are_not_touched():
    c = Cluster()
    try:
        # the controller is filling the zone to min = 2 (each create takes 2 s)
        wait_until(lambda: len(c.records()) == 2, 15, "the controller to record its 2 servers")
        starting = sorted(c.records())
        check("starting" in [r["state"] for r in c.records().values()],
              "a server of the controller is still starting when the orphans appear")
        healthy = c.orphan("healthy", "z1-orphan-ok")
        mute = c.orphan("mute", "z1-orphan-mute")
        t0 = time.monotonic()
        # handled at the second sweep that sees them: within 2 intervals,
        # plus the health check (2 s) and the load of the machine
        wait_until(lambda: sorted((e["server"], e["action"]) for e in c.reconcile_events()) ==
                   [("z1-orphan-mute", "removed unhealthy orphan"),
                    ("z1-orphan-ok", "adopted orphan")],
                   2 * SWEEP + 20, "one reconcile event for each orphan: adopted / removed")
        log("orphans handled %.1f s after they appeared" % (time.monotonic() - t0))
        evs = {e["server"]: e for e in c.reconcile_events()}
        for sid in ("z1-orphan-ok", "z1-orphan-mute"):
            check("two orphan sweeps" in evs[sid].get("reason", ""),
                  "the event of %s gives the sweep as its reason: %r" % (sid, evs[sid]))
            check(evs[sid].get("sweep") is True, "the event of %s says sweep: %r" % (sid, evs[sid]))
        out = c.proc.output()
        for sid in ("z1-orphan-ok", "z1-orphan-mute"):
            first = out.find("server %s is listed without a record" % sid)
            acted = out.find("orphan server %s" % sid)
            check(0 <= first < acted,
                  "%s was first only noted by a sweep, acted on by a later one" % sid)
        wait_until(lambda: not alive(mute), 10, "the unhealthy orphan's process to be gone")
        check(alive(healthy), "the adopted orphan still runs")
        recs = c.records()
        check_eq((recs.get("z1-orphan-ok") or {}).get("state"), "serving",
                 "the adopted orphan's record")
        check_eq((recs["z1-orphan-ok"]["address"], recs["z1-orphan-ok"]["ref"]),
                 (healthy["address"], healthy["ref"]), "the adopted record's address and ref")
        check("z1-orphan-mute" not in recs, "no record for the removed orphan")
        # the servers the controller created meanwhile: untouched, serving
        wait_until(lambda: all(c.records().get(s, {}).get("state") == "serving"
                               for s in starting), 30, "the controller's servers to serve")
        check_eq(sorted(c.records()), sorted(starting + ["z1-orphan-ok"]),
                 "records: the controller's 2 servers and the adopted orphan")
        touched = [e for e in c.reconcile_events() if e["server"] in starting]
        check_eq(touched, [], "reconcile events about the controller's own servers")
        # a few more sweeps change nothing
        time.sleep(3 * SWEEP)
        check_eq(len(c.reconcile_events()), 2, "reconcile events after more sweeps")
        check_eq(sorted(c.records()), sorted(starting + ["z1-orphan-ok"]),
                 "records after more sweeps")
        # the adopted server is one of the zone's: the balancer has it
        st, body = http_json("GET", "http://127.0.0.1:%d/status" % c.admin, headers=AUTH)
        check_eq(st, 200, "GET /status")
        check("z1-orphan-ok" in json.dumps(body), "the adopted server in the node's /status")
    finally:
        c.stop()


@test
def without_the_sweep_an_orphan_stays_until_a_reload_turns_it_on():
    """reconcile_interval = 0: the orphan is never adopted (what the sweep
    repairs); a reload that sets it starts sweeping."""
    c = Cluster(interval=0)
    try:
        wait_until(lambda: [r["state"] for r in c.records().values()] == ["serving"] * 2, 30,
                   "the controller's 2 servers to serve")
        healthy = c.orphan("healthy", "z1-orphan-ok")
        time.sleep(2 * SWEEP + 3)
        check("z1-orphan-ok" not in c.records(), "no record for an orphan with the sweep off")
        check_eq(c.reconcile_events(), [], "reconcile events with the sweep off")
        check(alive(healthy), "the orphan still runs")
        with open(c.conf) as f:
            text = f.read()
        with open(c.conf, "w") as f:
            f.write(text.replace("reconcile_interval = 0;", "reconcile_interval = %g;" % SWEEP))
        c.proc.signal(signal.SIGHUP)
        wait_until(lambda: (c.records().get("z1-orphan-ok") or {}).get("state") == "serving",
                   2 * SWEEP + 20, "the orphan to be adopted once a reload turned the sweep on")
        check_eq([(e["server"], e["action"]) for e in c.reconcile_events()],
                 [("z1-orphan-ok", "adopted orphan")], "reconcile events after the reload")
    finally:
        c.stop()


if __name__ == "__main__":
    if not os.access(binary("tests/driverctl"), os.X_OK):
        print("1..0 # SKIP tests/driverctl is not built")
        sys.exit(0)
    main()
