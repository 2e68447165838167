#!/usr/bin/env python3
"""The compose demo (demo/) is validated here (tests/integration/test_compose.py
runs it): the compose file is valid with and without its Kafka profile, both
metrics paths (Kafka → Telegraf → InfluxDB, and scaler-app straight to
InfluxDB) deliver what the influxdb metrics plugin queries, and every scalerd
node config passes `scalerd -t` with either."""
import json
import os
import re
import shutil
import subprocess
import sys

from scalertest import *

DEMO = os.path.join(srcdir(), "demo")
COMPOSE = os.path.join(DEMO, "docker-compose.yml")
NODES = [os.path.join(DEMO, "scaler-node%d.conf" % n) for n in (1, 2, 3)]
ZONES = ["zone1", "zone2", "zone3"]
METRICS_PATHS = ("kafka", "influxdb")  # demo/app-metrics-<path>.conf
TOKEN_ENV = "SCALER_TOKEN=test-token-0123456789\n"
KAFKA_ENV = TOKEN_ENV + "COMPOSE_PROFILES=kafka\nSCALER_DEMO_METRICS=kafka\n"


def compose(*args, env_text=TOKEN_ENV):
    exe = shutil.which("docker-compose")
    if not exe:
        skip("docker-compose is not installed (apt-get install docker-compose)")
    env_file = write_file("demo.env", env_text)
    env = {k: v for k, v in os.environ.items() if k != "SCALER_TOKEN"}
    return subprocess.run([exe, "-f", COMPOSE, "--env-file", env_file] + list(args),
                          capture_output=True, text=True, timeout=60, env=env)


def load_yaml(text):
    """YAML → Python via PyYAML, here or in the interpreter docker-compose uses."""
    try:
        import yaml
        return yaml.safe_load(text)
    except ImportError:
        pass
    for py in ("/usr/bin/python3",):
        if os.path.exists(py):
            r = subprocess.run([py, "-c", "import json,sys,yaml; "
                                "print(json.dumps(yaml.safe_load(sys.stdin)))"],
                               input=text, capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                return json.loads(r.stdout)
    skip("no PyYAML to read `docker-compose config` (apt-get install python3-yaml)")


def compose_config(env_text=TOKEN_ENV):
    r = compose("config", env_text=env_text)
    check(r.returncode == 0, "docker-compose config: expected exit 0, got %d:\n%s"
          % (r.returncode, r.stderr))
    return load_yaml(r.stdout)


def active_services(config, profiles):
    """The services `up` starts with these profiles active."""
    return {name for name, s in config["services"].items()
            if not s.get("profiles") or set(s["profiles"]) & set(profiles)}


def app_metrics_env(path):
    """The env = [...] of demo/app-metrics-<path>.conf, as a dict."""
    text = strip_comments(open(os.path.join(DEMO, "app-metrics-%s.conf" % path)).read())
    m = re.search(r"^env\s*=\s*\[(.*?)\];", text, re.S | re.M)
    check(m is not None, "app-metrics-%s.conf sets env = [...]" % path)
    return dict(v.split("=", 1) for v in json.loads("[%s]" % m.group(1)))


def load_toml(path):
    try:
        import tomllib
    except ImportError:
        skip("python %s has no tomllib (needs 3.11)" % sys.version.split()[0])
    with open(path, "rb") as f:
        return tomllib.load(f)


def strip_comments(text):
    return "\n".join(l.split("#", 1)[0].rstrip() for l in text.splitlines())


def conf_value(text, group, name):
    """The string or number `name` in libconfig group `group` (simple files)."""
    body = re.search(r"^%s\s*=\s*\{(.*?)^\};" % re.escape(group), strip_comments(text),
                     re.S | re.M)
    check(body is not None, "group %s in the node config" % group)
    m = re.search(r"^\s*%s\s*=\s*(\"[^\"]*\"|[0-9.]+)\s*;" % re.escape(name), body.group(1), re.M)
    check(m is not None, "%s.%s in the node config" % (group, name))
    return json.loads(m.group(1))


@test
def the_compose_file_is_valid_with_an_env_file():
    for env_text in (TOKEN_ENV, KAFKA_ENV):
        r = compose("config", "-q", env_text=env_text)
        check(r.returncode == 0, "docker-compose config -q with %r: expected exit 0, got %d:\n%s"
              % (env_text, r.returncode, r.stderr))


@test
def the_compose_file_refuses_to_start_without_a_token():
    r = compose("config", "-q", env_text="# no token here\n")
    check(r.returncode != 0, "docker-compose config without SCALER_TOKEN must fail")
    check("demo/.env" in r.stderr, "the error names demo/.env: %r" % r.stderr)


@test
def the_compose_demo_has_the_seed_topology():
    c = compose_config(KAFKA_ENV)
    services = c["services"]
    want = {"kafka", "kafka-topics", "influxdb", "telegraf", "redis", "scaler-app-image",
            "scalerd1", "scalerd2", "scalerd3"}
    check_eq(active_services(c, ["kafka"]), want, "services of the kafka profile")
    check_eq(c["networks"]["scaler"].get("name"), "scaler-demo", "network name")
    subnets = [p.get("subnet") for p in c["networks"]["scaler"].get("ipam", {}).get("config", [])]
    check(len(subnets) == 1 and subnets[0].startswith("198.1"),
          "the network has one explicit subnet from 198.18.0.0/15: %r" % subnets)
    check(str(services["influxdb"]["image"]).startswith("influxdb:1.8"), "InfluxDB 1.8 image")
    check_eq(services["redis"]["image"], "redis:7", "the official Redis image by default")
    check("--appendonly" in services["redis"]["command"] and
          "yes" in services["redis"]["command"], "redis appendonly: %r" % services["redis"]["command"])
    check(any(str(v).endswith(":/data") or ":/data:" in str(v)
              for v in services["redis"].get("volumes", [])), "redis data on a volume")
    for n in (1, 2, 3):
        s = services["scalerd%d" % n]
        check_eq((s["build"].get("dockerfile", "Dockerfile"), s["build"].get("target")),
                 ("Dockerfile", "scalerd"), "scalerd%d build" % n)
        vols = [str(v) for v in s["volumes"]]
        check(any(v.startswith("/var/run/docker.sock:/var/run/docker.sock") for v in vols),
              "scalerd%d mounts the docker socket: %r" % (n, vols))
        check(any("scaler-node%d.conf:/etc/scaler/scaler.conf" % n in v for v in vols),
              "scalerd%d mounts scaler-node%d.conf: %r" % (n, n, vols))
        check(any("app-metrics-kafka.conf:/etc/scaler/app-metrics.conf" in v for v in vols),
              "scalerd%d mounts app-metrics-kafka.conf: %r" % (n, vols))
        published = []
        for p in s.get("ports", []):
            if isinstance(p, dict):
                published.append((str(p.get("published")), int(p["target"])))
            else:
                parts = str(p).split("/")[0].split(":")
                published.append((parts[-2], int(parts[-1])))
        check(("%d" % (8080 + n), 8080 + n) in published,
              "scalerd%d publishes zone%d's balancer on host port %d: %r" % (n, n, 8080 + n, published))
        check(s["environment"].get("SCALER_TOKEN") == "test-token-0123456789",
              "scalerd%d gets the token from the env file" % n)
    app = services["scaler-app-image"]
    check_eq((app["build"].get("dockerfile", "Dockerfile"), app["build"].get("target"),
              app["image"]), ("Dockerfile", "scaler-app", "scaler-app:demo"),
             "scaler-app image build")


@test
def without_the_kafka_profile_scaler_app_writes_straight_to_influxdb():
    c = compose_config()
    check_eq(active_services(c, []),
             {"influxdb", "redis", "scaler-app-image", "scalerd1", "scalerd2", "scalerd3"},
             "services without a profile")
    for n in (1, 2, 3):
        vols = [str(v) for v in c["services"]["scalerd%d" % n]["volumes"]]
        check(any("app-metrics-influxdb.conf:/etc/scaler/app-metrics.conf" in v for v in vols),
              "scalerd%d mounts app-metrics-influxdb.conf: %r" % (n, vols))
    env = app_metrics_env("influxdb")
    check("KAFKA_BROKERS" not in env, "no Kafka on the direct path: %r" % env)
    text = open(NODES[0]).read()
    check_eq(env.get("INFLUX_URL"), conf_value(text, "metrics", "url"),
             "scaler-app's INFLUX_URL vs metrics.url")
    check_eq(env.get("INFLUX_DB"), conf_value(text, "metrics", "database"),
             "scaler-app's INFLUX_DB vs metrics.database")
    check_eq(app_metrics_env("kafka"), {"KAFKA_BROKERS": "kafka:9092"},
             "the kafka path's env")


@test
def images_built_here_are_selected_only_explicitly():
    c = compose_config(TOKEN_ENV + "REDIS_IMAGE=scaler-redis:demo\n"
                       "INFLUXDB_IMAGE=scaler-influxdb:demo\n")
    check_eq((c["services"]["redis"]["image"], c["services"]["influxdb"]["image"]),
             ("scaler-redis:demo", "scaler-influxdb:demo"), "images chosen by REDIS_IMAGE, INFLUXDB_IMAGE")


@test
def no_secret_is_committed_in_the_demo():
    for name in os.listdir(DEMO):
        path = os.path.join(DEMO, name)
        if not os.path.isfile(path) or name == ".env":
            continue
        text = open(path, encoding="utf-8", errors="replace").read()
        for m in re.finditer(r"(?im)^\s*(token|password|SCALER_TOKEN)\s*[:=]\s*\"?([^\"\s;#]+)", text):
            check(m.group(2) in ("change-me", "${SCALER_TOKEN", "/run/scaler/token") or
                  m.group(2).startswith("$"),
                  "%s: %r looks like a committed secret" % (name, m.group(0).strip()))
    env_example = open(os.path.join(DEMO, "env.example")).read()
    check(re.search(r"(?m)^SCALER_TOKEN=change-me$", env_example), "env.example has a placeholder token")


@test
def telegraf_writes_what_the_influxdb_metrics_plugin_queries():
    t = load_toml(os.path.join(DEMO, "telegraf.conf"))
    consumers = t["inputs"]["kafka_consumer"]
    check_eq(len(consumers), 1, "one kafka_consumer input")
    k = consumers[0]
    check_eq(sorted(k["topics"]), ZONES, "topics = the zone names (scaler-app's default topic)")
    check_eq(k["brokers"], ["kafka:9092"], "brokers")
    check_eq(k["data_format"], "json", "data_format")
    check(set(k["tag_keys"]) >= {"zone", "server"}, "tag_keys has zone and server: %r" % k["tag_keys"])
    check_eq((k.get("json_time_key"), k.get("json_time_format")), ("ts", "unix"), "sample time")
    outs = t["outputs"]["influxdb"]
    check_eq(len(outs), 1, "one influxdb output")

    for path in NODES:
        text = open(path).read()
        check_eq(conf_value(text, "metrics", "plugin"), "influxdb", "%s metrics.plugin" % path)
        check_eq(k["name_override"], conf_value(text, "metrics", "measurement"),
                 "telegraf's measurement vs %s metrics.measurement" % os.path.basename(path))
        check_eq(conf_value(text, "metrics", "field"), "cpu_usage", "metrics.field")
        check_eq(conf_value(text, "metrics", "zone_tag"), "zone", "metrics.zone_tag")
        check_eq(conf_value(text, "metrics", "server_tag"), "server", "metrics.server_tag")
        check_eq(outs[0]["database"], conf_value(text, "metrics", "database"),
                 "telegraf's database vs metrics.database")
        check_eq(outs[0]["urls"], [conf_value(text, "metrics", "url")],
                 "telegraf's InfluxDB vs metrics.url")
        zones = re.findall(r'name\s*=\s*"([^"]+)"', strip_comments(text))
        check_eq(sorted(zones), ZONES, "%s zones" % os.path.basename(path))


@test
def scaler_app_samples_carry_the_tags_and_field_telegraf_maps():
    exe = binary("scaler-app")
    if not os.path.exists(exe):
        skip("scaler-app is not built")
    port = free_port()
    app = spawn([exe, "--host", "127.0.0.1", "--port", str(port), "--zone", "zone2",
                 "--server-id", "zone2-test"], name="scaler-app")
    import urllib.request

    def stats():
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % port, timeout=2) as r:
            return json.loads(r.read())
    # the first sample is taken a second after start
    s = wait_until(lambda: stats()["ts"] > 0 and stats(), 10,
                   "scaler-app to answer GET /stats with its first sample")
    check_eq((s.get("zone"), s.get("server")), ("zone2", "zone2-test"), "tags in the sample")
    check(isinstance(s.get("cpu_usage"), (int, float)), "cpu_usage is a number: %r" % s)
    check(isinstance(s.get("ts"), (int, float)) and s["ts"] > 1e9, "ts is unix seconds: %r" % s)
    app.stop()


@test
def the_demo_balancers_write_an_access_log_where_user_scaler_may():
    # off by default (scaler.conf(5)), on in the demo: the first thing to open
    # when a request went wrong
    dockerfile = open(os.path.join(srcdir(), "Dockerfile")).read()
    for path in NODES:
        body = re.search(r"^balancer\s*=\s*\{(.*?)^\};", strip_comments(open(path).read()),
                         re.S | re.M)
        check(body is not None, "a balancer group in %s" % os.path.basename(path))
        m = re.search(r"access_log\s*=\s*\{\s*path\s*=\s*\"(/[^\"]+)\"", body.group(1))
        check(m is not None, "balancer.access_log = { path = ...; } in %s" % os.path.basename(path))
        where = os.path.dirname(m.group(1))
        check(re.search(r"chown scaler:scaler [^\n]*%s( |$)" % re.escape(where), dockerfile,
                        re.M), "the image gives %s to user scaler (Dockerfile)" % where)


@test
def the_three_node_configs_differ_only_in_node_identity():
    texts = [strip_comments(open(p).read()) for p in NODES]

    def shared(t):
        node = re.search(r"^node\s*=\s*\{.*?^\};", t, re.S | re.M).group(0)
        return t.replace(node, "")
    check_eq(shared(texts[1]), shared(texts[0]), "scaler-node2.conf outside node = {...}")
    check_eq(shared(texts[2]), shared(texts[0]), "scaler-node3.conf outside node = {...}")
    for n, t in enumerate(texts, 1):
        check_eq(conf_value(t, "node", "id"), n, "node.id of scaler-node%d.conf" % n)
        check_eq(conf_value(t, "node", "url"), "http://scalerd%d:9000" % n, "node.url")
        check('zones = ["zone%d"];' % n in t, "scaler-node%d.conf hosts zone%d's balancer" % (n, n))
        check(re.search(r'\{ id = %d; url = "http://scalerd%d:9000"; \}' % (n, n), t),
              "node %d is among the election peers" % n)


@test
def every_demo_node_config_passes_scalerd_t():
    exe = binary("scalerd")
    check(os.path.exists(exe), "scalerd is built at %s" % exe)
    token = write_file("demo-token", "test-token-0123456789\n")
    os.chmod(token, 0o600)
    for metrics in METRICS_PATHS:
        # the compose file mounts app-metrics-<path>.conf as app-metrics.conf
        write_file("app-metrics.conf",
                   open(os.path.join(DEMO, "app-metrics-%s.conf" % metrics)).read())
        for path in NODES:
            # the token file the image's entrypoint writes, here a local one
            text = open(path).read().replace('"/run/scaler/token"', json.dumps(token))
            conf = write_file(os.path.basename(path), text)
            r = subprocess.run([exe, "-t", "-c", conf], capture_output=True, text=True,
                               timeout=30, env=dict(os.environ, SCALER_PLUGIN_DIR=plugin_dir()))
            check(r.returncode == 0, "scalerd -t -c %s with app-metrics-%s.conf: expected exit 0, "
                  "got %d:\n%s%s" % (os.path.basename(path), metrics, r.returncode, r.stdout,
                                      r.stderr))


if __name__ == "__main__":
    main()
