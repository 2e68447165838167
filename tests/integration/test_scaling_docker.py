"""Scaling end to end with the docker driver and the influxdb metrics
plugin: scaler-app runs in containers (host networking, an image imported
from the built binary and its libraries) and writes its metrics to a real
influxd, which scalerd queries with InfluxQL."""
import json
import os
import signal
import time

from scalertest import *
from dockertest import engine, app_image, DockerUnavailable
from influx import Influx

SCALERD = binary("scalerd")
TOKEN = "docker-scaling"
AUTH = {"Authorization": "Bearer " + TOKEN}


class DockerCluster:
    def __init__(self):
        try:
            self.eng = engine()
        except DockerUnavailable as e:
            skip(str(e))
        try:
            self.image = app_image(self.eng, binary("scaler-app"))
        except DockerUnavailable as e:
            raise CheckFailed(str(e))
        self.influx = Influx(own=True)
        self.influx.create_database("scaler")
        self.redis = Redis()
        self.admin = free_port()
        self.name = "dk%d" % free_port()
        self.zones = {}
        zs = []
        # one block of ports, 100 per zone: zones' ranges must not overlap
        first, _ = free_port_range(100 * len(("zone1", "zone2")))
        for i, z in enumerate(("zone1", "zone2")):
            listen, zadmin = free_port(), free_port()
            base = first + 100 * i
            self.zones[z] = (listen, zadmin)
            zs.append('{ name = "%s"; listen = "127.0.0.1:%d"; admin = "127.0.0.1:%d"; min = 1; max = 2;'
                      ' ports = [%d, %d]; }' % (z, listen, zadmin, base, base + 99))
        self.conf = write_file(self.name + ".conf", """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; };
cluster = "%s";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 2.0; cooldown_down = 2.0; drain_timeout = 0.3;
driver = { plugin = "docker"; host = "%s"; image = "%s"; network = "host"; stop_timeout = 2.0;
           env = ["INFLUX_URL=%s", "INFLUX_DB=scaler"]; };
metrics = { plugin = "influxdb"; url = "%s"; database = "scaler"; timeout = 1.0; };
policy = { plugin = "threshold"; max_cpu = 20.0; min_cpu = 5.0; };
balancer = { plugin = "builtin"; health_interval = 0.5; recheck_interval = 0.5; retries = 2;
             report_interval = 0.5; };
zones = ( %s );
""" % (self.admin, TOKEN, self.name, self.redis.url(), plugin_dir(), tmpdir(), self.eng.host,
            self.image, self.influx.url, self.influx.url, ",\n".join(zs)))
        self.proc = spawn([SCALERD, "-c", self.conf], name="scalerd-" + self.name)
        wait_until(lambda: http("GET", self.url("/health_check"))[0] == 200, 10, "scalerd's admin API")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin, path)

    def servers(self, zone):
        st, body = http_json("GET", self.url("/servers?zone=" + zone), headers=AUTH)
        return body

    def serving(self, zone):
        return [s for s in self.servers(zone) if s["state"] == "serving"]

    def balancer_alive(self, zone):
        st, body = http_json("GET", "http://127.0.0.1:%d/servers" % self.zones[zone][1],
                             headers={"Authorization": "Bearer " + TOKEN})
        return body if st == 200 else None

    def events(self, zone):
        return http_json("GET", self.url("/events?zone=" + zone), headers=AUTH)[1]["events"]

    def set_profile(self, zone, profile):
        for s in self.serving(zone):
            try:
                http("POST", s["address"] + "/load", {"profile": profile}, timeout=2)
            except OSError:
                pass

    def containers(self):
        return self.eng.containers(label="scaler.cluster=" + self.name)

    def stop(self):
        self.proc.stop()
        for c in self.containers():
            self.eng.remove(c["Id"])
        self.influx.close()
        self.redis.stop()


D = None


@test
def each_zone_starts_with_one_container_behind_its_balancer():
    global D
    D = DockerCluster()
    for z in D.zones:
        wait_until(lambda: len(D.serving(z)) == 1, 60, "one serving container in " + z)
        # Redis says "serving" before the primary's push reaches the balancer
        wait_until(lambda: D.balancer_alive(z) == [D.serving(z)[0]["address"]], 10,
                   "the serving container alive in %s's balancer" % z)
        st, _, body = http("GET", "http://127.0.0.1:%d/stats" % D.zones[z][0], timeout=3)
        check_eq(st, 200, "GET /stats through %s's balancer" % z)
        check_eq(json.loads(body)["zone"], z, "zone of the answering server")
    labels = sorted(c["Labels"]["scaler.zone"] for c in D.containers())
    check_eq(labels, ["zone1", "zone2"], "zone labels of the running containers")


@test
def influx_metrics_scale_zone1_up_and_back_down():
    if D is None:
        skip("no cluster")
    wait_until(lambda: D.set_profile("zone1", "high") or len(D.serving("zone1")) == 2, 90,
               "zone1 to scale up to 2 containers on InfluxDB metrics", interval=1.0)
    check_eq(len(D.servers("zone2")), 1, "containers in zone2")
    up = [e for e in D.events("zone1") if e["kind"] == "scale_up"][0]
    check(all(v is None or isinstance(v, float) for v in up["values"].values()),
          "per-server values in the scale-up event: %r" % up["values"])
    wait_until(lambda: D.set_profile("zone1", "low") or len(D.servers("zone1")) == 1, 90,
               "zone1 back to 1 container", interval=1.0)
    wait_until(lambda: len([c for c in D.containers() if c["Labels"]["scaler.zone"] == "zone1"]) == 1,
               20, "the removed container to be gone")


@test
def an_unhealthy_container_is_replaced():
    if D is None:
        skip("no cluster")
    old = D.serving("zone2")[0]
    http("POST", old["address"] + "/health", {"healthy": False})
    wait_until(lambda: [s["id"] for s in D.serving("zone2")] not in ([], [old["id"]]), 60,
               "a new container replacing %s" % old["id"])
    ids = [c["Labels"]["scaler.server"] for c in D.containers() if c["Labels"]["scaler.zone"] == "zone2"]
    wait_until(lambda: old["id"] not in [c["Labels"]["scaler.server"] for c in D.containers()], 20,
               "the unhealthy container to be removed")


@test
def with_influxdb_down_zones_hold_and_never_scale_down():
    if D is None:
        skip("no cluster")
    wait_until(lambda: D.set_profile("zone1", "high") or len(D.serving("zone1")) == 2, 90,
               "zone1 at 2 containers again", interval=1.0)
    D.influx.stop()
    D.set_profile("zone1", "stop")
    time.sleep(6)  # a dozen evaluations, well past cooldown_down
    check_eq(len(D.servers("zone1")), 2, "containers in zone1 while InfluxDB is down")
    holds = [e for e in D.events("zone1") if e["kind"] == "hold" and e.get("rule") == "metrics missing"]
    check(holds, "a hold event naming the missing metrics")
    D.influx.start()


@test
def zz_stop():
    if D:
        D.stop()


if __name__ == "__main__":
    main()
