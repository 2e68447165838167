"""Reconciliation (src/control/reconcile.c) of Redis records with what the process
driver lists, through tests/driverctl `reconcile EPOCH` on a real
redis-server. The health check is GET <address>/health_check."""
import json
import os
import signal
import subprocess
import sys
import time

from scalertest import *

CLUSTER = "rtest"



_pids = []


def _kill_all():
    for pid in _pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


import atexit
atexit.register(_kill_all)


class World:
    """A redis-server, a process-driver config, helpers for both."""

    n = 0

    def __init__(self):
        World.n += 1
        self.redis = Redis()
        self.dir = os.path.join(tmpdir(), "world%d" % World.n)
        www = os.path.join(self.dir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "health_check"), "w") as f:
            f.write("ok\n")
        pmin, pmax = free_port_range(20)
        healthy = ["sh", "-c", 'exec %s -m http.server -b 127.0.0.1 -d %s "$PORT"' % (sys.executable, www)]
        self.conf = self._conf("healthy", healthy, pmin, pmax)
        # same state dir, a command that never answers: for unhealthy servers
        self.conf_mute = self._conf("mute", ["sleep", "1000"], pmin, pmax)

    def _conf(self, name, cmd, pmin, pmax):
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write('cluster = "%s";\nredis = "%s";\n' % (CLUSTER, self.redis.url()))
            f.write('driver = { plugin = "process"; command = [%s]; state_dir = "%s"; log_dir = "%s";'
                    ' stop_timeout = 2; };\n'
                    % (", ".join(json.dumps(c) for c in cmd), os.path.join(self.dir, "state"),
                       os.path.join(self.dir, "logs")))
            f.write('zones = ( { name = "z1"; port_min = %d; port_max = %d; },\n'
                    '          { name = "z2"; port_min = %d; port_max = %d; } );\n'
                    % (pmin, pmax, pmin, pmax))
        return path

    def ctl(self, *cmds, conf=None, expect_ok=True):
        argv = [binary("tests/driverctl"), "-d", plugin_dir(), "-c", conf or self.conf]
        for i, c in enumerate(cmds):
            if i:
                argv.append(";")
            argv += [str(a) for a in c]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        replies = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        for x in replies:
            srv = x.get("server")
            if srv and srv.get("ref"):
                _pids.append(int(srv["ref"].split(":")[0]))
        if expect_ok:
            check(all(x.get("ok") for x in replies) and len(replies) == len(cmds),
                  "driverctl %s: expected success, got %r, stderr:\n%s" % (cmds, replies, r.stderr))
        self.stderr = r.stderr
        return replies

    def create(self, zone, sid, mute=False):
        srv = self.ctl(["create", zone, sid], conf=self.conf_mute if mute else None)[0]["server"]
        if not mute:
            wait_until(lambda: self._answers(srv["address"]), 10, "%s to answer" % sid)
        return srv

    @staticmethod
    def _answers(address):
        import urllib.request
        try:
            with urllib.request.urlopen(address + "/health_check", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def rcli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.redis.port), "--raw"] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def epoch(self):
        return int(self.rcli("INCR", CLUSTER + ":epoch"))

    def record(self, zone, sid, state, address="http://127.0.0.1:1", ref=""):
        rec = {"id": sid, "zone": zone, "address": address, "ref": ref, "created": time.time(),
               "driver": "process", "state": state, "updated": time.time()}
        self.rcli("HSET", "%s:servers:%s" % (CLUSTER, zone), sid, json.dumps(rec))
        self.rcli("SADD", CLUSTER + ":zones", zone)

    def records(self, zone):
        out = subprocess.run(["redis-cli", "-p", str(self.redis.port), "--raw", "HGETALL",
                              "%s:servers:%s" % (CLUSTER, zone)],
                             capture_output=True, text=True).stdout.splitlines()
        return {out[i]: json.loads(out[i + 1]) for i in range(0, len(out) - 1, 2)}

    def events(self):
        out = subprocess.run(["redis-cli", "-p", str(self.redis.port), "--raw", "XRANGE",
                              CLUSTER + ":events", "-", "+"],
                             capture_output=True, text=True).stdout.splitlines()
        return [json.loads(l) for l in out if l.startswith("{")]

    def reconcile(self, epoch, expect_ok=True):
        return self.ctl(["reconcile", epoch], expect_ok=expect_ok)[0]["summary"]

    def listed(self):
        return {s["id"]: s for s in self.ctl(["list"])[0]["servers"]}


def pid_alive(srv):
    pid = int(srv["ref"].split(":")[0])
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@test
def a_healthy_orphan_is_adopted_and_a_record_without_server_is_dropped():
    w = World()
    e = w.epoch()
    orphan = w.create("z1", "orphan")
    w.record("z1", "ghost", "serving", ref="999999:1")
    s = w.reconcile(e)
    check_eq((s["adopted"], s["records_dropped"], s["errors"], s["status"]), (1, 1, 0, "ok"),
             "summary (adopted, records_dropped, errors, status)")
    recs = w.records("z1")
    check_eq(sorted(recs), ["orphan"], "records of z1 after reconciliation")
    check_eq((recs["orphan"]["state"], recs["orphan"]["address"], recs["orphan"]["ref"],
              recs["orphan"]["driver"]),
             ("serving", orphan["address"], orphan["ref"], "process"), "the adopted record")
    ev = [x for x in w.events() if x["kind"] == "reconcile"]
    check_eq(sorted((x["server"], x["action"]) for x in ev),
             [("ghost", "dropped the record of vanished"), ("orphan", "adopted orphan")],
             "reconcile events")
    check(pid_alive(orphan), "the adopted server still runs")
    # a second run finds nothing to do
    s = w.reconcile(e)
    check_eq((s["adopted"], s["records_dropped"], s["records"], s["servers"]), (0, 0, 1, 1),
             "second run: nothing to correct")


@test
def a_starting_record_with_a_healthy_server_becomes_serving():
    w = World()
    e = w.epoch()
    srv = w.create("z1", "s1")
    w.record("z1", "s1", "starting", address="", ref="")
    w.record("z2", "s2", "starting")  # never created
    s = w.reconcile(e)
    check_eq((s["promoted"], s["records_dropped"]), (1, 1), "summary (promoted, records_dropped)")
    rec = w.records("z1")["s1"]
    check_eq((rec["state"], rec["address"], rec["ref"]), ("serving", srv["address"], srv["ref"]),
             "promoted record takes the driver's address and ref")
    check_eq(w.records("z2"), {}, "the starting record without a server is dropped")


@test
def a_starting_record_whose_server_is_not_healthy_yet_is_left_alone():
    w = World()
    e = w.epoch()
    w.create("z1", "slow", mute=True)
    w.record("z1", "slow", "starting")
    s = w.reconcile(e)
    check_eq(s["still_starting"], 1, "still_starting")
    check_eq(w.records("z1")["slow"]["state"], "starting", "record state")
    check("slow" in w.listed(), "the server still runs")


@test
def an_unhealthy_orphan_is_removed():
    w = World()
    e = w.epoch()
    mute = w.create("z1", "mute", mute=True)
    s = w.reconcile(e)
    check_eq((s["orphans_removed"], s["adopted"]), (1, 0), "summary (orphans_removed, adopted)")
    wait_until(lambda: not pid_alive(mute), 5, "the unhealthy orphan to be gone")
    check_eq(w.records("z1"), {}, "no record for the removed orphan")


@test
def a_deleting_record_is_finished():
    w = World()
    e = w.epoch()
    srv = w.create("z1", "d1")
    w.record("z1", "d1", "deleting", address=srv["address"], ref=srv["ref"])
    w.record("z1", "d2", "deleting")  # server already gone
    s = w.reconcile(e)
    check_eq(s["deletions_finished"], 2, "deletions_finished")
    check(not pid_alive(srv), "the server of the deleting record is removed")
    check_eq(w.records("z1"), {}, "both deleting records deleted")


@test
def a_stale_epoch_stops_reconciliation_and_changes_nothing():
    w = World()
    e = w.epoch()
    w.epoch()  # another node took over
    healthy = w.create("z1", "orphan")
    mute = w.create("z1", "mute", mute=True)
    w.record("z1", "ghost", "serving")
    s = w.reconcile(e, expect_ok=False)
    check_eq(s["status"], "stale", "status of a reconciliation with a stale epoch")
    check("stale" in s["err"], "the error says stale: %r" % s["err"])
    check_eq(sorted(w.records("z1")), ["ghost"], "records unchanged")
    check(pid_alive(healthy) and pid_alive(mute), "no server removed by a stale node")


@test
def servers_and_records_of_unconfigured_zones_are_left_alone():
    w = World()
    e = w.epoch()
    w.record("gone-zone", "x", "serving")
    s = w.reconcile(e)
    check_eq(s["ignored"], 1, "ignored")
    check_eq(sorted(w.records("gone-zone")), ["x"], "record of an unconfigured zone kept")


@test
def a_sweep_touches_no_record_and_acts_on_an_orphan_at_its_second_sighting():
    """The primary's periodic orphan sweep (reconcile_sweep): what the
    takeover would correct in the records is left to the controller; an
    orphan is only noted by the first sweep, adopted or removed by the next."""
    w = World()
    e = w.epoch()
    orphan = w.create("z1", "orphan")
    mute = w.create("z1", "mute", mute=True)
    w.record("z1", "ghost", "serving", ref="999999:1")  # no server
    w.record("z1", "half", "starting", address="")  # no server yet
    w.record("z2", "gone", "deleting")
    before = {z: w.records(z) for z in ("z1", "z2")}
    s1, s2 = (x["summary"] for x in w.ctl(["sweep", e], ["sweep", e]))
    check_eq((s1["status"], s1["adopted"], s1["orphans_removed"], s1["records_dropped"],
              s1["deletions_finished"], sorted(s1["candidates"])),
             ("ok", 0, 0, 0, 0, ["mute", "orphan"]),
             "first sweep (status, adopted, orphans_removed, records_dropped, "
             "deletions_finished, candidates)")
    check_eq((s2["status"], s2["adopted"], s2["orphans_removed"], s2["records_dropped"],
              s2["deletions_finished"], s2["candidates"]),
             ("ok", 1, 1, 0, 0, []), "second sweep (same fields)")
    after = {z: w.records(z) for z in ("z1", "z2")}
    for z in ("z1", "z2"):
        for sid, rec in before[z].items():
            check_eq(after[z].get(sid), rec, "record %s of %s after two sweeps" % (sid, z))
    check_eq(sorted(after["z1"]), ["ghost", "half", "orphan"], "records of z1 after two sweeps")
    check_eq((after["z1"]["orphan"]["state"], after["z1"]["orphan"]["ref"]),
             ("serving", orphan["ref"]), "the adopted orphan's record")
    wait_until(lambda: not pid_alive(mute), 5, "the unhealthy orphan to be gone")
    ev = [x for x in w.events() if x["kind"] == "reconcile"]
    check_eq(sorted((x["server"], x["action"], x.get("sweep")) for x in ev),
             [("mute", "removed unhealthy orphan", True), ("orphan", "adopted orphan", True)],
             "reconcile events of the sweeps")
    # a sweep of a new run has seen nothing yet: it only notes
    orphan2 = w.create("z1", "orphan2")
    s3 = w.ctl(["sweep", e])[0]["summary"]
    check_eq((s3["adopted"], s3["candidates"]), (0, ["orphan2"]), "a new run's first sweep")
    check("orphan2" not in w.records("z1") and pid_alive(orphan2), "orphan2 untouched")


@test
def a_sweep_with_a_stale_epoch_changes_nothing():
    w = World()
    e = w.epoch()
    w.epoch()  # another node took over
    healthy = w.create("z1", "orphan")
    mute = w.create("z1", "mute", mute=True)
    s1, s2 = (x["summary"] for x in w.ctl(["sweep", e], ["sweep", e], expect_ok=False))
    check_eq(s2["status"], "stale", "status of the second sweep with a stale epoch")
    check_eq((s2["adopted"], s2["orphans_removed"]), (0, 0), "second sweep (adopted, removed)")
    check_eq(w.records("z1"), {}, "no record written by a stale sweep")
    check(pid_alive(healthy) and pid_alive(mute), "no server removed by a stale sweep")


if __name__ == "__main__":
    if not os.access(binary("tests/driverctl"), os.X_OK):
        print("1..0 # SKIP tests/driverctl is not built")
        sys.exit(0)
    main()
