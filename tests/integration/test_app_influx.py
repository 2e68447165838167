#!/usr/bin/env python3
"""scaler-app writes its metrics to a real InfluxDB 1.x every second, and an
InfluxDB that goes away never blocks the app."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from apptest import App, request  # noqa: E402
from influx import Influx  # noqa: E402
from scalertest import check, check_eq, log, main, skip, test, wait_until  # noqa: E402

MEAN_CPU = "SELECT mean(cpu_usage) FROM scaler_app WHERE time > now() - 30s GROUP BY server"


def need_influxd():
    if not os.environ.get("SCALER_TEST_INFLUX_URL") and not shutil.which("influxd"):
        skip("influxd is not installed (apt-get install influxdb)")


def unique_db(name):
    return "%s_%d_%d" % (name, os.getpid(), int(time.time()))


@test
def points_reach_influxdb_tagged_with_zone_and_server():
    need_influxd()
    db = Influx()
    name = unique_db("app")
    db.create_database(name)
    a = App(zone="zone-i1", server_id="iapp-1", env={"INFLUX_URL": db.url, "INFLUX_DB": name,
                                                    "PROFILE": "low"})
    series = wait_until(lambda: db.query(MEAN_CPU, name), 10,
                        "a mean(cpu_usage) for server iapp-1 in InfluxDB")
    check_eq([s["tags"] for s in series], [{"server": "iapp-1"}], "series tags")
    mean = series[0]["values"][0][1]
    check(isinstance(mean, (int, float)) and 0 < mean < 100,
          "mean(cpu_usage) of a low-profile app is a percent above 0; got %r" % mean)
    time.sleep(3)
    rows = db.query("SELECT * FROM scaler_app WHERE time > now() - 60s", name)[0]
    cols = rows["columns"]
    for c in ("cpu_usage", "memory_usage", "throughput", "health_status", "zone", "server"):
        check(c in cols, "column %s in scaler_app; columns %r" % (c, cols))
    zones = {r[cols.index("zone")] for r in rows["values"]}
    check_eq(zones, {"zone-i1"}, "zone tag")
    check(len(rows["values"]) >= 4, "about one point a second; got %d" % len(rows["values"]))
    s = a.stats()
    check(s["influx_enabled"] and s["influx_sent"] >= 4 and s["influx_dropped"] == 0,
          "influx counters in /stats: expected sent >= 4, none dropped; got %r" % s)
    a.stop()
    db.drop_database(name)


@test
def a_missing_database_is_counted_as_drops():
    need_influxd()
    db = Influx()
    a = App(zone="zone-i2", server_id="iapp-2",
            env={"INFLUX_URL": db.url, "INFLUX_DB": unique_db("missing")})
    s = a.wait_stats(lambda s: s["influx_dropped"] >= 2, 8, "influx_dropped >= 2")
    check_eq(s["influx_sent"], 0, "influx_sent when the database does not exist")
    a.stop()


@test
def influxdb_stopped_mid_run_never_blocks_the_app_and_drops_are_counted():
    need_influxd()
    try:
        db = Influx(own=True)
    except Exception as e:
        skip("cannot start a private influxd: %s" % e)
    name = unique_db("down")
    db.create_database(name)
    a = App(zone="zone-i3", server_id="iapp-3", env={"INFLUX_URL": db.url, "INFLUX_DB": name})
    a.wait_stats(lambda s: s["influx_sent"] >= 2, 8, "influx_sent >= 2 while InfluxDB is up")
    db.stop()
    before = a.stats()
    worst = 0.0
    t_end = time.monotonic() + 5
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        check_eq(request("GET", a.port, "/health_check")[0], 200,
                 "GET /health_check while InfluxDB is down")
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.2)
    after = a.stats()
    log("while down: sent %d -> %d, dropped %d -> %d, worst latency %.3fs"
        % (before["influx_sent"], after["influx_sent"], before["influx_dropped"],
           after["influx_dropped"], worst))
    check(worst < 0.5, "requests answer at once while InfluxDB is down; worst %.3fs" % worst)
    check(after["influx_dropped"] >= before["influx_dropped"] + 3,
          "about one drop a second while InfluxDB is down; dropped went %d -> %d"
          % (before["influx_dropped"], after["influx_dropped"]))

    db.start()
    sent = after["influx_sent"]
    a.wait_stats(lambda s: s["influx_sent"] >= sent + 2, 10,
                 "writes to succeed again once InfluxDB is back")
    check_eq(a.stop(), 0, "exit status after SIGTERM")
    db.close()


if __name__ == "__main__":
    main()
