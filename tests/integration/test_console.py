#!/usr/bin/env python3
"""scalerd's web console and the calls behind it: the page in headless
Chromium (tests/console/console.js), GET /zones, /history, /cluster and
/events?last=N, a backup forwarding them to the primary, and scalerctl top
in tmux. scalerd runs the process driver with scaler-app, the threshold
policy with thresholds no idle app crosses, and a token."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

from browsertest import browser_env, chromium
from scalertest import *

SCALERD = binary("scalerd")
SCALERCTL = binary("scalerctl")
APP = binary("scaler-app")
TOKEN = "console-token-5be0c1d8a7f24e93"
AUTH = {"Authorization": "Bearer " + TOKEN}
HOSTILE = '<img src=x onerror="window.__pwned=1">'


class Node:
    """A scalerd node; zones run on it unless hosts_zones is False."""

    def __init__(self, redis, name, node_id=1, public_reads=False, peers=None, zones=("zone1",),
                 hosts_zones=True, ports=None, admin=None, token=TOKEN):
        self.redis, self.name, self.id = redis, name, node_id
        self.token, self.auth = token, {"Authorization": "Bearer " + token}
        self.admin = admin or free_port()
        self.token_file = write_file(name + ".token", token + "\n")
        self.state = os.path.join(tmpdir(), name + "-state")
        os.makedirs(self.state, exist_ok=True)
        self.zone_ports = ports or {}
        zs = []
        first, _ = free_port_range(100 * len(zones)) if not ports else (None, None)
        for i, z in enumerate(zones):
            if z not in self.zone_ports:
                self.zone_ports[z] = (free_port(), free_port(), first + 100 * i)
            listen, zadmin, base = self.zone_ports[z]
            zs.append('{ name = "%s"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 1;'
                      ' max = 3; ports = [%d, %d]; }' % (z, listen, zadmin, base, base + 99))
        self.peers = peers
        self.public_reads = public_reads
        self.hosts_zones = hosts_zones
        self.zones = ",\n".join(zs)
        self.write_conf()
        self.start()

    def write_conf(self):
        election = 'election = { plugin = "single"; };'
        if self.peers:
            election = ('election = { plugin = "bully"; check_interval = 0.5; timeout = 0.5;'
                        ' peers = ( %s ); };' % ", ".join(
                            '{ id = %d; url = "%s"; }' % (k, u) for k, u in sorted(self.peers.items())))
        self.conf = write_file(self.name + ".conf", """
node = { id = %d; admin = "127.0.0.1:%d"; token_file = "%s"; public_reads = %s; %s };
cluster = "console";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 1.0; drain_timeout = 0.3;
driver = { plugin = "process"; command = ["%s"]; stop_timeout = 3.0; };
metrics = { plugin = "http"; timeout = 0.5; };
policy = { plugin = "threshold"; max_cpu = 90.0; min_cpu = 0.001; };
balancer = { plugin = "builtin"; health_interval = 0.5; recheck_interval = 5.0; retries = 2;
             report_interval = 30.0; };
%s
zones = ( %s );
""" % (self.id, self.admin, self.token_file, "true" if self.public_reads else "false",
       "" if self.hosts_zones else "zones = [];", self.redis.url(), plugin_dir(), self.state, APP,
       election, self.zones))

    def start(self):
        # a path relative to the working directory: the page shows it (and the
        # screenshot in the README must not show a temporary directory)
        self.proc = spawn([SCALERD, "-c", os.path.basename(self.conf)], cwd=tmpdir(),
                          name="scalerd-" + self.name)
        wait_until(lambda: http("GET", self.url("/health_check"))[0] == 200, 10,
                   "scalerd %s's admin API" % self.name)

    def restart(self, public_reads):
        self.proc.stop()
        self.public_reads = public_reads
        self.write_conf()
        self.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin, path)

    def get(self, path, headers=None):
        return http_json("GET", self.url(path), headers=self.auth if headers is None else headers)

    def stop(self):
        refs = []
        st, servers = self.get("/servers")
        if st == 200:
            refs = [s["ref"] for s in servers]
        self.proc.stop()
        for ref in refs:
            kill_process_server(ref)


STATE = {}


def node():
    if "node" not in STATE:
        STATE["redis"] = Redis()
        STATE["node"] = Node(STATE["redis"], "console", zones=("zone1", "zone2"))
        n = STATE["node"]
        wait_until(lambda: all(len(n.get("/servers?zone=" + z)[1] or []) >= 1
                               for z in ("zone1", "zone2")), 15, "a server in each zone")
    return STATE["node"]


def serving(n, zone):
    st, servers = n.get("/servers?zone=" + zone)
    return [s for s in servers if s["state"] == "serving"] if st == 200 else []


@test
def the_page_is_public_under_ui_with_a_content_security_policy_and_the_data_is_not():
    n = node()
    st, hdrs, _ = http("GET", n.url("/"))
    check_eq((st, hdrs.get("location")), (302, "/ui/"), "GET / redirects to the console")
    for path, ctype in (("/ui/", "text/html"), ("/ui/console.js", "text/javascript"),
                        ("/ui/chart.js", "text/javascript"), ("/ui/console.css", "text/css"),
                        ("/ui/icon.svg", "image/svg+xml")):
        st, hdrs, body = http("GET", n.url(path))
        check_eq((st, hdrs.get("content-type", "").split(";")[0]), (200, ctype),
                 "GET %s without a token" % path)
        check(hdrs.get("content-security-policy", "").startswith("default-src 'self'"),
              "%s carries Content-Security-Policy: default-src 'self': %r"
              % (path, hdrs.get("content-security-policy")))
        check_eq(hdrs.get("x-content-type-options"), "nosniff", path + " nosniff")
    st, _, body = http("GET", n.url("/ui/console.js"))
    check(b"innerHTML" not in body and b"insertAdjacentHTML" not in body and b"eval(" not in body,
          "the console inserts text only: no innerHTML, insertAdjacentHTML or eval in console.js")
    check_eq(http("GET", n.url("/ui/nothing.js"))[0], 404, "an unknown file under /ui/")
    check_eq(n.get("/ui/auth", headers={})[1], {"reads": "token", "actions": "token"},
             "/ui/auth: what the page must ask for")
    for path in ("/zones", "/history", "/cluster", "/events?last=5", "/status"):
        check_eq(n.get(path, headers={})[0], 401, "GET %s without the token" % path)
    check_eq(http("POST", n.url("/ui/"), body="{}", headers={})[0], 401,
             "only GET and HEAD reach the page without the token")
    check_eq(http("POST", n.url("/zones"), body="{}", headers=AUTH)[0], 405, "POST /zones")
    r = subprocess.run([SCALERCTL, "-u", n.url(""), "top", "-n", "1"], capture_output=True,
                       text=True, timeout=20)
    check_eq(r.returncode, 3, "scalerctl top without the token exits 3 (unauthorised): %r"
             % r.stderr)


@test
def zones_show_every_server_as_scalerd_and_its_balancer_see_it():
    n = node()
    wait_until(lambda: all(s.get("balancer", {}).get("state") == "alive"
                           for z in n.get("/zones")[1]["zones"] for s in z["servers"]), 10,
               "every server alive in its balancer")
    st, body = n.get("/zones")
    check_eq(st, 200, "GET /zones")
    check_eq([z["name"] for z in body["zones"]], ["zone1", "zone2"], "the zones, in config order")
    z1 = body["zones"][0]
    check(z1["balancer"]["reachable"] is True and z1["balancer"]["held"] == 0,
          "zone1's balancer answered: %r" % z1["balancer"])
    s = z1["servers"][0]
    check_eq((s["state"], s["balancer"]["state"], s["balancer"]["url"]),
             ("serving", "alive", s["address"]), "a server in scalerd and in the balancer")
    for k in ("consecutive_failures", "requests_served", "in_flight", "weight", "ejected_until"):
        check(k in s["balancer"], "the balancer's %s of each server: %r" % (k, s["balancer"]))
    check(len(z1["balancer_pids"]) == 1, "the zone's workers: %r" % z1.get("balancer_pids"))
    check_eq(z1["tls"], False, "zone1 serves plain HTTP")
    st, body = n.get("/zones?zone=zone2")
    check_eq([z["name"] for z in body["zones"]], ["zone2"], "?zone= picks one")
    check_eq(n.get("/zones?zone=nope")[0], 404, "an unknown zone")


@test
def history_keeps_each_evaluation_with_the_policys_guides():
    n = node()
    wait_until(lambda: len(n.get("/history?zone=zone1")[1]["zones"][0]["points"]) >= 3, 10,
               "three samples of zone1")
    st, body = n.get("/history?zone=zone1")
    check_eq(st, 200, "GET /history")
    h = body["zones"][0]
    check(body["primary"] is True and h["started"] and h["started"] <= time.time(),
          "the primary's history, with its start: %r" % {k: h[k] for k in ("started", "why")})
    check_eq(h["why"], "this node became primary", "why the history starts where it does")
    check_eq(h["metrics"], [{"name": "http", "unit": ""}], "the zone's metrics")
    check(0 < h["bytes"] < 85 * 1024, "the ring's memory, under its bound for one metric at a "
          "sample a second: %r bytes" % h["bytes"])
    check_eq(sorted((g["name"], g["value"]) for g in h["guides"]),
             [("max_cpu", 90.0), ("min_cpu", 0.001)], "the threshold policy's guides")
    pts = h["points"]
    check(all(len(p) == 3 and p[1] >= 1 for p in pts), "[t, servers, value] each: %r" % pts[-3:])
    check(all(pts[i][0] < pts[i + 1][0] for i in range(len(pts) - 1)), "oldest first")
    check(all(int(pts[i][0]) != int(pts[i + 1][0]) for i in range(len(pts) - 1)),
          "at most one sample a second (interval 0.5 s)")
    since = pts[-2][0]
    st, body = n.get("/history?zone=zone1&since=%f" % since)
    check(all(p[0] > since for p in body["zones"][0]["points"]), "since= gives only newer samples")
    check_eq(len(n.get("/history")[1]["zones"]), 2, "every zone without ?zone=")
    for q, want in (("since=-1", 400), ("since=abc", 400), ("zone=nope", 404), ("zone=%zz", 400)):
        check_eq(n.get("/history?" + q)[0], want, "GET /history?" + q)


def connections_to(port):
    """Established TCP connections whose far end is 127.0.0.1:port."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


@test
def concurrent_zones_calls_share_one_fan_out_to_the_balancers():
    n = node()
    st, body = n.get("/zones?zone=zone1")
    check_eq(st, 200, "GET /zones?zone=zone1")
    zone = body["zones"][0]
    port = int(zone["admin"].rsplit(":", 1)[1])
    # the zone's balancer stopped: every call to it waits its full second
    os.kill(zone["balancer_pid"], signal.SIGSTOP)
    results = []
    try:
        before = connections_to(port)
        threads = [threading.Thread(target=lambda: results.append(n.get("/zones?zone=zone1")))
                   for _ in range(10)]
        for t in threads:
            t.start()
        peak, start = 0, time.monotonic()
        while time.monotonic() - start < 0.8:
            peak = max(peak, connections_to(port))
            time.sleep(0.02)
        for t in threads:
            t.join(20)
    finally:
        os.kill(zone["balancer_pid"], signal.SIGCONT)
    check_eq(sorted(st for st, _ in results), [200] * 10, "10 concurrent GET /zones")
    check(all(b["zones"][0]["balancer"]["reachable"] is False for _, b in results),
          "each answer says the stopped balancer did not answer: %r" % results[0][1])
    # one fan-out: two calls (servers, stats), not two per GET /zones
    check(peak <= before + 2 + 2,
          "10 concurrent GET /zones opened %d connection(s) to the zone's balancer "
          "(%d before): one fan-out opens 2" % (peak - before, before))


@test
def events_last_gives_the_newest_and_where_to_wait_from():
    n = node()
    st, body = n.get("/events?zone=zone1&last=2")
    check_eq(st, 200, "GET /events?last=2")
    check(len(body["events"]) == 2 and all(e["zone"] == "zone1" for e in body["events"]),
          "the two newest of zone1: %r" % body["events"])
    st, allev = n.get("/events")
    z1 = [e for e in allev["events"] if e["zone"] == "zone1"]
    check_eq([e["id"] for e in body["events"]], [e["id"] for e in z1[-2:]],
             "the newest two, oldest first")
    check_eq(body["last"], allev["events"][-1]["id"], "last: the stream's newest id")
    for q in ("last=0", "last=501", "last=x", "last=3&after=0", "last=3&wait=1"):
        check_eq(n.get("/events?" + q)[0], 400, "GET /events?" + q)


@test
def cluster_lists_this_node_and_whether_redis_answers():
    n = node()
    st, body = n.get("/cluster")
    check_eq(st, 200, "GET /cluster")
    me = body["nodes"][0]
    check_eq((me["id"], me["self"], me["role"], me["state"], me["redis"]),
             ("1", True, "primary", "primary", True), "this node as /cluster shows it")


def plant_hostile(n):
    """Events a console must show as text: markup in a reason, and in a
    zone name (no config accepts one; the stream is where it could come
    from)."""
    for zone, reason in (("zone1", "held because " + HOSTILE), (HOSTILE, "a zone named in markup")):
        ev = json.dumps({"time": time.time(), "zone": zone, "kind": "hold", "from": 1, "to": 1,
                         "reason": reason})
        STATE["redis"].cli("XADD", "console:events", "*", "json", ev)


@test
def the_console_in_a_browser_shows_decisions_live_and_guards_actions():
    n = node()
    env = browser_env()
    out = os.path.join(builddir(), "tests", "artifacts")
    proc = subprocess.Popen(["node", os.path.join(srcdir(), "tests", "console", "console.js"),
                             n.url(""), TOKEN, out], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    res = None
    try:
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("need") == "plant":
                plant_hostile(n)
            elif msg.get("need") == "restart":
                n.restart(public_reads=True)
            elif "result" in msg:
                res = msg["result"]
                break
            proc.stdin.write("done\n")
            proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    check(res is not None and proc.returncode == 0,
          "the browser script should pass; exit %s, stderr:\n%s" % (proc.returncode, err[-3000:]))
    log("browser saw: %r" % {k: v for k, v in res.items() if k != "tab_reached"})
    check_eq(res["url_after_redirect"], n.url("/ui/"), "/ redirects the browser to /ui/")
    check_eq(res["data_calls_before_token"], [], "data calls before the token was given")
    check_eq(res["errors_after_load"], [], "errors in the console once the page has loaded")
    check(res["cluster"]["role"] == "primary" and res["cluster"]["primary"] == "node 1" and
          res["cluster"]["config"] == "console.conf" and
          "threshold" not in res["cluster"]["plugins"] and "process" in res["cluster"]["plugins"],
          "the cluster view: %r" % res["cluster"])
    log("scale-up shown %.2f s after the POST" % res["scale_up_seconds"])
    check(any("starting" in r or "serving" in r for r in res["rows_after_scale"]) and
          "Pinned" in res["pinned_flag"], "the new server and the pin: %r %r"
          % (res["rows_after_scale"], res["pinned_flag"]))
    check(res["chart_metric_pixels"] > 50, "the chart draws the zone's CPU (%s): %d pixels of "
          "its colour" % (res["chart_label"], res["chart_metric_pixels"]))
    check(res["unhealthy_row"] and ("disconnected" in res["unhealthy_row"] or
                                    "dead" in res["unhealthy_row"]),
          "the unhealthy server's balancer state: %r" % res["unhealthy_row"])
    check_eq((res["xss"]["imgs"], res["xss"]["pwned"], res["xss"]["csp"]), (0, None, []),
             "images in the page, what the planted onerror did, CSP violations")
    check(HOSTILE in res["xss"]["recent"], "the planted zone name shown as text: %r"
          % res["xss"]["recent"][:300])
    check_eq(res["errors_before_restart"], [], "errors in the console before the restart")
    check(res["phone_width"] <= 390, "nothing wider than a 390 px phone: %d" % res["phone_width"])
    for shot in ("console-1280x800.png", "console-390x844.png"):
        check(os.path.getsize(os.path.join(out, shot)) > 10000, "a screenshot " + shot)
    phone = {f["id"]: f for f in res["phone_tab"]}
    for control in ("btn-token", "btn-reload", "zone1", "pin-count", "pin-for", "btn-pin", "Drain"):
        check(control in res["tab_reached"], "%s reachable with Tab (reached %r)"
              % (control, res["tab_reached"]))
        check(control in phone, "%s reachable with Tab at 390 px (reached %r)"
              % (control, sorted(phone)))
    for f in res["phone_tab"]:
        check(f["left"] >= 0 and f["right"] <= 390 and f["ring"] not in ("none", ""),
              "at 390 px a focused control is on screen with a focus ring: %r" % f)
    check(res["states_unwritten"]["shown"] >= 4 and res["states_unwritten"]["blank"] == 0,
          "every state is written, not only coloured: %r" % res["states_unwritten"])
    check(res["history_note_after"] != res["history_note_before"],
          "after the restart the page says the history started again: %r"
          % res["history_note_after"])
    check_eq((res["read_only_prompt"], res["posts_before_token"]), (False, 0),
             "with public reads: no prompt on load, and nothing sent before the token")
    check(res["refused_message"].startswith("The token was refused") and
          res["pinned_after_wrong"] is None,
          "a wrong token is refused and pins nothing: %r, %r"
          % (res["refused_message"], res["pinned_after_wrong"]))
    check(res["pinned_after_right"] is not None, "the right token pins: %r"
          % res["pinned_after_right"])
    check_eq((res["cookies"], res["local_storage"], res["session_token"], res["token_in_urls"],
              res["unauthenticated_data_calls"]), ([], [], True, False, []),
             "cookies, localStorage, the token in sessionStorage, in URLs, actions sent bare")
    check_eq(res["external"], [], "requests to anywhere but scalerd")
    refused = [e for e in res["console_errors"] if "status of 401" in e]
    check_eq(len(refused), 1, "one 401 in the console (the wrong token): %r"
             % res["console_errors"])


@test
def scalerctl_top_in_tmux_shows_the_zones_and_quits_on_q():
    if not shutil.which("tmux"):
        skip("tmux is not installed (apt-get install tmux)")
    n = node()
    sock = "scaler-top-%d" % os.getpid()
    tmux = ["tmux", "-L", sock]
    env = dict(os.environ, LANG="C.UTF-8", TERM="xterm-256color")
    cmd = "%s -u %s -t %s top -d 0.5" % (SCALERCTL, n.url(""), TOKEN)
    subprocess.run(tmux + ["-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "200",
                           "-y", "50", cmd], env=env, check=True)
    try:
        screen = {}

        def shows_zones():
            r = subprocess.run(tmux + ["capture-pane", "-p", "-t", "top"], capture_output=True,
                               text=True)
            screen["text"] = r.stdout
            return "LAST DECISION" in r.stdout and "zone1" in r.stdout and "zone2" in r.stdout \
                and "latest decisions" in r.stdout
        wait_until(shows_zones, 10, "scalerctl top to show the zones in tmux")
        log(screen["text"])
        check("scaler top" in screen["text"] and "node 1 (primary" in screen["text"],
              "the header names the node and its role")
        check(any(l.startswith("zone1") and "serving" in l and "alive" in l
                  for l in screen["text"].splitlines()),
              "a zone1 server, serving in scalerd and alive in the balancer")
        subprocess.run(tmux + ["send-keys", "-t", "top", "q"], check=True)
        wait_until(lambda: subprocess.run(tmux + ["has-session", "-t", "top"],
                                          capture_output=True).returncode != 0, 5,
                   "q to end scalerctl top (and its tmux session)")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
    # without a terminal, -n frames one after another
    r = subprocess.run([SCALERCTL, "-u", n.url(""), "-t", TOKEN, "top", "-n", "2", "-d", "0.2",
                        "zone2"], capture_output=True, text=True, timeout=20)
    check_eq(r.returncode, 0, "scalerctl top -n 2 exits 0 (stderr %r)" % r.stderr)
    check(r.stdout.count("scaler top") == 2 and "zone2" in r.stdout and "zone1  " not in r.stdout,
          "two frames of zone2 alone: %r" % r.stdout[:600])
    r = subprocess.run([SCALERCTL, "-u", n.url(""), "status", "-d", "1"], capture_output=True,
                       text=True, timeout=20)
    check_eq(r.returncode, 1, "-d belongs to top only: %r" % r.stderr)


def backup_page(backup, primary_url):
    """The console opened on the backup, in the browser when there is one."""
    if not chromium() or not shutil.which("node") or not shutil.which("npm"):
        log("no chromium or node here: the backup's page is not opened")
        return
    out = os.path.join(builddir(), "tests", "artifacts")
    r = subprocess.run(["node", os.path.join(srcdir(), "tests", "console", "console.js"),
                        backup.url(""), backup.token, out, "backup"], env=browser_env(),
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "the browser on the backup; exit %s, stderr:\n%s"
          % (r.returncode, r.stderr[-3000:]))
    res = json.loads(r.stdout.splitlines()[-1])["result"]
    log("the backup's page: %r" % res)
    check_eq((res["role"], res["primary"], res["console_errors"]), ("backup", "node 2", []),
             "the backup's page: its role, the primary, errors in the console")
    check("node 2" in res["note"] and primary_url in res["note"],
          "the page says it is a backup and who the primary is: %r" % res["note"])
    check(any("serving" in r and "alive" in r for r in res["rows"]),
          "the primary's servers, forwarded, with the balancer's view: %r" % res["rows"])
    check(any(n.startswith("1 (this node)") and "backup" in n for n in res["nodes"]) and
          any(n.startswith("2") and "primary" in n for n in res["nodes"]),
          "the nodes with their roles: %r" % res["nodes"])


@test
def a_backup_forwards_zones_and_history_to_the_primary_and_says_who_it_is():
    redis = Redis()
    a1, a2 = free_port(), free_port()
    peers = {1: "http://127.0.0.1:%d" % a1, 2: "http://127.0.0.1:%d" % a2}
    primary = backup = None
    # a token near the 4096 bytes a token file holds: the backup forwards it whole
    token = "console-long-token-" + "0123456789abcdef" * 240
    try:
        primary = Node(redis, "primary2", node_id=2, peers=peers, admin=a2, token=token)
        wait_until(lambda: (primary.get("/status")[1] or {}).get("node", {}).get("role")
                   == "primary", 10, "node 2 to be primary")
        backup = Node(redis, "backup1", node_id=1, peers=peers, hosts_zones=False,
                      ports=dict(primary.zone_ports), admin=a1, token=token)
        wait_until(lambda: (backup.get("/status")[1] or {}).get("node", {}).get("primary"),
                   10, "node 1 to know the primary")
        wait_until(lambda: serving(primary, "zone1"), 15, "a server in zone1")
        check_eq(backup.get("/status")[1]["node"]["role"], "backup", "node 1's role")
        st, zones = backup.get("/zones")
        check_eq(st, 200, "GET /zones from the backup")
        check_eq([s["id"] for s in zones["zones"][0]["servers"]],
                 [s["id"] for s in primary.get("/zones")[1]["zones"][0]["servers"]],
                 "the backup's /zones is the primary's")
        check(zones["zones"][0]["servers"][0].get("balancer", {}).get("state") == "alive",
              "with the balancer's view: %r" % zones["zones"][0]["servers"][0])
        st, hist = backup.get("/history?zone=zone1")
        check(st == 200 and hist["primary"] is True, "the backup forwards /history: %r %r"
              % (st, hist if st != 200 else hist["primary"]))
        st, body = backup.get("/zones", headers=dict(backup.auth, **{"X-Scaler-Forwarded": "3"}))
        check_eq((st, body.get("primary")), (503, peers[2]),
                 "a forwarded call is not forwarded again: it says who the primary is")
        check_eq(backup.get("/zones", headers={})[0], 401, "the backup wants the token too")
        st, cl = backup.get("/cluster")
        roles = {n["id"]: (n["role"], n["reachable"], n["self"]) for n in cl["nodes"]}
        check_eq(roles, {"1": ("backup", True, True), "2": ("primary", True, False)},
                 "/cluster on the backup asks every node")
        backup_page(backup, peers[2])
        # reads public on the backup but not on the primary: a call without
        # the token is never forwarded with the backup's own token
        backup.restart(public_reads=True)
        wait_until(lambda: (backup.get("/status", headers={})[1] or {}).get("node", {})
                   .get("primary"), 10, "the restarted backup to know the primary")
        check_eq(backup.get("/status")[1]["node"]["role"], "backup", "node 1's role")
        for path in ("/zones", "/history?zone=zone1"):
            check_eq(primary.get(path, headers={})[0], 401, "the primary wants the token")
            st, body = backup.get(path, headers={})
            check((st, body.get("primary")) == (503, peers[2]) and "zones" not in body
                  and "points" not in json.dumps(body),
                  "GET %s without the token on a backup with public reads says who the "
                  "primary is and shows none of its data: %r %r" % (path, st, body))
            st, body = backup.get(path)
            check_eq(st, 200, "GET %s with the token on that backup is forwarded" % path)
        # the primary gone: the backup says so, and who it was
        primary.proc.signal(signal.SIGSTOP)
        try:
            st, body = http_json("GET", backup.url("/zones"), headers=backup.auth, timeout=10)
            check(st in (502, 503) and body.get("primary") == peers[2],
                  "the primary does not answer: %r %r" % (st, body))
            st, cl = http_json("GET", backup.url("/cluster"), headers=backup.auth, timeout=10)
            down = [n for n in cl["nodes"] if n["id"] == "2"][0]
            check(down["reachable"] is False and "no answer" in down.get("error", ""),
                  "a node that does not answer: %r" % down)
        finally:
            primary.proc.signal(signal.SIGCONT)
    finally:
        for nd in (backup, primary):
            if nd:
                nd.stop()
        redis.stop()


@test
def zz_stop():
    if "node" in STATE:
        STATE["node"].stop()
        STATE["redis"].stop()


if __name__ == "__main__":
    main()
