"""Several metrics per zone: named metrics in scaler.conf, zones choosing
among them, the policy's target per metric (checked by scalerd -t with
FILE:LINE: SETTING), the largest count winning with the deciding metric
named, and a reload that changes a zone's metrics."""
import os
import signal
import subprocess
import threading
import time

from scalertest import *

SCALERD = binary("scalerd")
APP = binary("scaler-app")
TOKEN = "metrics-token"
AUTH = {"Authorization": "Bearer " + TOKEN}


def conf_text(admin, redis_url, name, listen, zadmin, first, metrics, policy, zone_extra=""):
    state = os.path.join(tmpdir(), name + "-state")
    os.makedirs(state, exist_ok=True)
    return """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; };
cluster = "%s";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 1.0; drain_timeout = 0.2;
driver = { plugin = "process"; command = ["%s"]; stop_timeout = 3.0; };
metrics = %s;
policy = %s;
balancer = { plugin = "builtin"; health_interval = 0.5; };
zones = ( { name = "zone1"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 1; max = 3;
            ports = [%d, %d]; %s } );
""" % (admin, TOKEN, name, redis_url, plugin_dir(), state, APP, metrics, policy, listen, zadmin,
       first, first + 99, zone_extra)


def check_conf(text, name):
    path = write_file(name, text)
    r = subprocess.run([SCALERD, "-t", "-c", path], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr, path


TWO = '{ cpu = { plugin = "http"; timeout = 0.5; }; requests = { plugin = "balancer"; }; }'


@test
def scalerd_t_checks_the_policys_targets_against_the_zones_metrics():
    ports = (free_port(), free_port(), free_port())
    first, _ = free_port_range(100)
    base = ("127.0.0.1", "redis://127.0.0.1:1/0", "tconf")
    cases = [
        ('{ plugin = "threshold"; }', "", 'policy "threshold" takes one metric; the zone has 2'),
        ('{ plugin = "target"; target = 60.0; }', "",
         "policy.target: the zone has 2 metrics: give each a target"),
        ('{ plugin = "target"; target = { cpu = 60.0; }; }', "",
         'policy.target: no target for the zone\'s metric "requests"'),
        ('{ plugin = "concurrency"; target = { cpu = 60.0; requests = 10; ram = 1; }; }', "",
         'policy.target: a target for "ram", which is not a metric of the zone'),
    ]
    for policy, extra, want in cases:
        text = conf_text(ports[0], base[1], base[2], ports[1], ports[2], first, TWO, policy, extra)
        rc, out, path = check_conf(text, "several.conf")
        check_eq(rc, 1, "scalerd -t exit status for policy %s" % policy)
        check(want in out and "several.conf:" in out,
              "for %s the error names the file and says %r:\n%s" % (policy, want, out))
    ok = conf_text(ports[0], base[1], base[2], ports[1], ports[2], first, TWO,
                   '{ plugin = "target"; target = { cpu = 60.0; requests = 10; }; }')
    rc, out, _ = check_conf(ok, "several-ok.conf")
    check_eq(rc, 0, "scalerd -t on a target per metric (output %r)" % out)
    # the balancer's figures over a window its balancer does not keep
    conc = '{ plugin = "concurrency"; target = { cpu = 60.0; requests = 10; }; %s }'
    for stable, history, want in [
            ("stable_window = 120;", "", "longer than the 60 s its balancer keeps: raise "
             "stats_history to at least 120"),
            ("", "stats_history = 30;", "longer than the 30 s its balancer keeps"),
            ("", "stats_history = 0;", "its balancer keeps none (stats_history = 0)")]:
        text = conf_text(ports[0], base[1], base[2], ports[1], ports[2], first, TWO,
                         conc % stable).replace("health_interval = 0.5;",
                                                "health_interval = 0.5; " + history)
        rc, out, _ = check_conf(text, "several-window.conf")
        check_eq(rc, 1, "scalerd -t exit status for %r %r" % (stable, history))
        check(want in out and "several-window.conf:" in out,
              "for %r %r the error names the file and says %r:\n%s" % (stable, history, want, out))
    text = conf_text(ports[0], base[1], base[2], ports[1], ports[2], first, TWO,
                     conc % "stable_window = 120;").replace(
                         "health_interval = 0.5;", "health_interval = 0.5; stats_history = 120;")
    rc, out, _ = check_conf(text, "several-window-ok.conf")
    check_eq(rc, 0, "scalerd -t with stats_history covering the stable window (output %r)" % out)
    # a zone that names one of the global metrics takes a one-metric policy
    one = conf_text(ports[0], base[1], base[2], ports[1], ports[2], first, TWO,
                    '{ plugin = "threshold"; }', 'metrics = "cpu";')
    rc, out, _ = check_conf(one, "several-one.conf")
    check_eq(rc, 0, "scalerd -t on a zone naming one metric (output %r)" % out)


@test
def the_largest_count_wins_and_the_reason_names_the_metric_then_a_reload_changes_the_metrics():
    redis = Redis()
    admin, listen, zadmin = free_port(), free_port(), free_port()
    first, _ = free_port_range(100)
    name = "several%d" % free_port()
    text = conf_text(admin, redis.url(), name, listen, zadmin, first, TWO,
                     '{ plugin = "target"; target = { cpu = 1000.0; requests = 2; }; '
                     'stabilization_down = 0; }')
    path = write_file(name + ".conf", text)
    proc = spawn([SCALERD, "-c", path], name="scalerd-" + name)
    url = "http://127.0.0.1:%d" % admin

    def events(kind):
        st, body = http_json("GET", url + "/events?zone=zone1", headers=AUTH)
        return [e for e in (body or {}).get("events", []) if e["kind"] == kind]

    def zone_status():
        st, body = http_json("GET", url + "/status", headers=AUTH)
        return [z for z in body["zones"] if z["name"] == "zone1"][0] if st == 200 else None

    stop = threading.Event()
    try:
        wait_until(lambda: http("GET", url + "/health_check")[0] == 200, 10, "scalerd")
        wait_until(lambda: [s for s in http_json("GET", url + "/servers?zone=zone1",
                                                 headers=AUTH)[1] if s["state"] == "serving"],
                   20, "the zone's first server")
        check_eq([m["name"] for m in zone_status()["metrics"]], ["cpu", "requests"],
                 "the zone's metrics in /status")

        # slow requests keep several in flight while the CPU stays low
        def client():
            while not stop.is_set():
                try:
                    http("GET", "http://127.0.0.1:%d/work?ms=100" % listen, timeout=10)
                    http("GET", "http://127.0.0.1:%d/health_check" % listen, timeout=10)
                except OSError:
                    time.sleep(0.1)
        for _ in range(8):
            threading.Thread(target=client, daemon=True).start()
        ups = wait_until(lambda: events("scale_up"), 30, "a scale-up")
        check("requests" in ups[0]["reason"] and "target 2" in ups[0]["reason"],
              "the reason names the deciding metric: %r" % ups[0]["reason"])
        check("_metrics" in ups[0]["values"], "the event's values hold every metric: %r"
              % ups[0]["values"])
        stop.set()

        # reload: the zone scales on CPU alone, with a one-metric policy
        with open(path, "w") as f:
            f.write(text.replace("ports = [%d, %d]; " % (first, first + 99),
                                 'ports = [%d, %d]; metrics = "cpu"; policy = { plugin = '
                                 '"threshold"; }; ' % (first, first + 99)))
        proc.signal(signal.SIGHUP)
        wait_until(lambda: [m["name"] for m in zone_status()["metrics"]] == ["cpu"], 10,
                   "the zone's metrics after the reload")
        check_eq(zone_status()["policy"], "threshold", "the zone's policy after the reload")
        # a reload that the policy cannot bind is refused and changes nothing
        with open(path, "w") as f:
            f.write(text.replace('target = { cpu = 1000.0; requests = 2; }', 'target = 2'))
        proc.signal(signal.SIGHUP)
        time.sleep(1.5)
        check_eq([m["name"] for m in zone_status()["metrics"]], ["cpu"],
                 "the metrics after a refused reload")
        check("reload refused" in proc.output(), "the refusal is logged")
    finally:
        stop.set()
        st, body = http_json("GET", url + "/servers?zone=zone1", headers=AUTH)
        proc.stop()
        for s in body or []:
            kill_process_server(s["ref"])
        redis.stop()


if __name__ == "__main__":
    main()
