#!/usr/bin/env python3
"""metrics "influxdb": the real plugin (metrics_influxdb.so), run by
tests/metrics/metrics-query, against a throwaway influxd (tests/lib/influx.py)
and, for what a real server cannot show (request headers, the exact
statement), a small fake /query endpoint in this process."""
import http.server as http_server
import json
import os
import subprocess
import threading
import time
import urllib.parse

from scalertest import *
from influx import Influx, InfluxError

DB = "scaler_metrics_test_%d" % os.getpid()
_influx = None


def influx():
    """One InfluxDB for the tests that only read; data written once."""
    global _influx
    if _influx is None:
        try:
            _influx = Influx()
        except InfluxError as e:
            skip("no InfluxDB: %s" % e)
        _influx.create_database(DB)
        now = int(time.time() * 1000)
        _influx.write(DB, [
            "scaler_app,zone=zone1,server=a cpu_usage=20 %d" % (now - 4000),
            "scaler_app,zone=zone1,server=a cpu_usage=40 %d" % (now - 2000),
            "scaler_app,zone=zone1,server=b cpu_usage=60 %d" % (now - 3000),
            # e last reported an hour ago: outside any window the tests ask for
            "scaler_app,zone=zone1,server=e cpu_usage=99 %d" % (now - 3600 * 1000),
            "scaler_app,zone=zone2,server=c cpu_usage=90 %d" % (now - 1000),
            "scaler_app,zone=zo'ne,server=d cpu_usage=10 %d" % (now - 1000),
            'scaler"app,zone=zone1,server=a cpu_usage=77 %d' % (now - 1000),
            "scaler_app,zone=zone1,server=a load=5 %d" % (now - 1000),
        ])
    return _influx


def query(zone, servers, settings="", window=60.0, expect_rc=0):
    """Run metrics-query with the influxdb plugin; returns (result, stderr)."""
    argv = [binary("metrics-query"), "-p", "influxdb", "-w", str(window), "-c", settings,
            zone] + list(servers)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SCALER_PLUGIN_DIR=plugin_dir()))
    if r.returncode != expect_rc:
        raise AssertionError("metrics-query exited %d, expected %d\nstdout: %s\nstderr: %s"
                             % (r.returncode, expect_rc, r.stdout, r.stderr))
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return (lines[0] if lines else None), r.stderr


def on_test_db(extra=""):
    return 'url = "%s"; database = "%s"; %s' % (influx().url, DB, extra)


def by_server(result):
    return {v["server"]: (None if v["missing"] else v["value"]) for v in result["values"]}


@test
def per_server_means_and_their_zone_average():
    res, _ = query("zone1", ["a", "b", "e"], on_test_db())
    check_eq((res["status"], res["error"]), (0, None), "status and error")
    check_eq(by_server(res), {"a": 30.0, "b": 60.0, "e": None},
             "per-server means over the last 60 s (e has no point in the window)")
    check_eq((res["average"], res["average_valid"]), (45.0, True),
             "zone average = mean of the per-server means")


@test
def the_zone_filter_holds():
    res, _ = query("zone2", ["c", "a"], on_test_db())
    check_eq(by_server(res), {"c": 90.0, "a": None}, "zone2 values (a is in zone1)")
    check_eq(res["average"], 90.0, "zone2 average")


@test
def a_quote_in_the_zone_name_is_a_plain_character():
    res, _ = query("zo'ne", ["d"], on_test_db())
    check_eq((res["status"], by_server(res)), (0, {"d": 10.0}), "status and values of zo'ne")


@test
def a_zone_name_cannot_inject_influxql():
    for zone in ["zone1' OR \"zone\" = 'zone2", "x' OR '1' = '1", "zone1\\", "zone1'--",
                 "zone1\nSELECT"]:
        res, err = query(zone, ["a", "b", "c"], on_test_db())
        check_eq((res["status"], res["error"], res["average_valid"]), (0, None, False),
                 "status, error and average_valid for zone %r (no data, no error)" % zone)
        check_eq(by_server(res), {"a": None, "b": None, "c": None},
                 "values for zone %r" % zone)


@test
def measurement_and_field_are_quoted_identifiers():
    res, _ = query("zone1", ["a"], on_test_db('measurement = "scaler\\"app";'))
    check_eq(by_server(res), {"a": 77.0}, 'value from the measurement scaler"app')
    res, _ = query("zone1", ["a", "b"], on_test_db('field = "load";'))
    check_eq(by_server(res), {"a": 5.0, "b": None}, "values of the field load")


@test
def a_retention_policy_is_part_of_the_source():
    db = influx()
    db.query('CREATE RETENTION POLICY "short" ON "%s" DURATION 1h REPLICATION 1' % DB)
    now = int(time.time() * 1000)
    db._request("POST", "/write", {"db": DB, "precision": "ms", "rp": "short"},
                body=("scaler_app,zone=zone3,server=f cpu_usage=33 %d" % (now - 1000)).encode())
    res, _ = query("zone3", ["f"], on_test_db('retention_policy = "short";'))
    check_eq(by_server(res), {"f": 33.0}, "value read from the short retention policy")
    res, _ = query("zone3", ["f"], on_test_db())
    check_eq(by_server(res), {"f": None}, "value from the default retention policy")


@test
def an_unknown_database_is_an_error_with_influxdbs_message():
    res, _ = query("zone1", ["a"], 'url = "%s"; database = "no_such_db_%d";'
                   % (influx().url, os.getpid()))
    check_eq((res["status"], res["average_valid"]), (-1, False), "status and average_valid")
    check("database not found" in (res["error"] or ""),
          "expected InfluxDB's 'database not found' in the error, got %r" % res["error"])


@test
def influxdb_stopped_is_an_error_not_a_scale_down_signal():
    try:
        own = Influx(own=True)
    except InfluxError as e:
        skip("no influxd: %s" % e)
    try:
        own.create_database("scaler")
        own.write("scaler", "scaler_app,zone=zone1,server=a cpu_usage=5 %d"
                  % int(time.time() * 1000))
        res, _ = query("zone1", ["a"], 'url = "%s";' % own.url)
        check_eq((res["status"], by_server(res)), (0, {"a": 5.0}), "while influxd runs")
        own.stop()
        res, _ = query("zone1", ["a"], 'url = "%s"; timeout = 1;' % own.url)
        check_eq((res["status"], res["average_valid"], by_server(res)),
                 (-1, False, {"a": None}), "status, average_valid and values once stopped")
        check(res["error"] and own.url in res["error"],
              "expected the error to name %s, got %r" % (own.url, res["error"]))
    finally:
        own.close()


class FakeInflux:
    """Answers /query with `status` and `body`, recording each request."""

    def __init__(self, body, status=200):
        self.requests = []
        fake = self

        class Handler(http_server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                fake.requests.append({"path": url.path,
                                      "params": urllib.parse.parse_qs(url.query),
                                      "authorization": self.headers.get("Authorization")})
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]


EMPTY = {"results": [{"statement_id": 0}]}


@test
def the_statement_quotes_identifiers_and_the_zone():
    fake = FakeInflux(EMPTY)
    query("we'st\\1", ["a"], 'url = "%s/"; database = "d b"; measurement = "m\\"x"; '
          'field = "cpu"; zone_tag = "z"; server_tag = "s"; retention_policy = "r p";'
          % fake.url, window=2.5)
    check_eq(len(fake.requests), 1, "requests made")
    req = fake.requests[0]
    check_eq(req["path"], "/query", "path (trailing / of url dropped)")
    check_eq(req["params"].get("db"), ["d b"], "db parameter")
    check_eq(req["params"].get("q"),
             ['SELECT mean("cpu") FROM "r p"."m\\"x" WHERE "z" = \'we\\\'st\\\\1\' '
              'AND time > now() - 2500ms GROUP BY "s"'], "InfluxQL statement")
    check_eq(req["authorization"], None, "Authorization without credentials")


@test
def token_and_basic_credentials_go_in_the_authorization_header():
    fake = FakeInflux(EMPTY)
    query("zone1", ["a"], 'url = "%s"; token = "s3cr3t==";' % fake.url)
    check_eq(fake.requests[-1]["authorization"], "Token s3cr3t==", "header with token")
    query("zone1", ["a"], 'url = "%s"; username = "scaler"; password = "p:w";' % fake.url)
    check_eq(fake.requests[-1]["authorization"], "Basic c2NhbGVyOnA6dw==",
             "header with username scaler and password p:w")
    check("p:w" not in json.dumps(fake.requests[-1]["params"]),
          "the password must not travel in the URL")


@test
def errors_from_influxdb_come_back_with_its_message():
    for status, body, want in [
        (401, {"error": "authorization failed"}, "authorization failed"),
        (200, {"results": [{"statement_id": 0, "error": "shard gone"}]}, "shard gone"),
        (500, b"<html>oops</html>", "HTTP status 500"),
        (200, b"not json", "not JSON"),
        (200, {"something": "else"}, "no results[0]"),
    ]:
        fake = FakeInflux(body, status)
        res, _ = query("zone1", ["a"], 'url = "%s";' % fake.url)
        check_eq((res["status"], res["average_valid"]), (-1, False),
                 "status for HTTP %d %r" % (status, body))
        check(want in (res["error"] or "") and fake.url in (res["error"] or ""),
              "for HTTP %d %r expected %r and the URL %s in the error, got %r"
              % (status, body, want, fake.url, res["error"]))


@test
def null_and_untagged_series_are_missing_not_zero():
    fake = FakeInflux({"results": [{"statement_id": 0, "series": [
        {"name": "scaler_app", "tags": {"server": "a"}, "columns": ["time", "mean"],
         "values": [["1970-01-01T00:00:00Z", None]]},
        {"name": "scaler_app", "columns": ["time", "mean"],
         "values": [["1970-01-01T00:00:00Z", 12]]},
        {"name": "scaler_app", "tags": {"server": "b"}, "columns": ["time", "mean"],
         "values": [["1970-01-01T00:00:00Z", 42.5]]},
    ]}]})
    res, _ = query("zone1", ["a", "b"], 'url = "%s";' % fake.url)
    check_eq((res["status"], by_server(res), res["average"]), (0, {"a": None, "b": 42.5}, 42.5),
             "status, values and average")


@test
def bad_settings_are_refused_with_the_setting_named():
    for settings, want in [
        ('url = "ftp://127.0.0.1:8086";', "g.url: url must start with http:// or https://"),
        ('url = "http://u:p@127.0.0.1:8086";', "g.url: url must not carry credentials"),
        ('url = "http://127.0.0.1:8086/?db=x";', "g.url: url must be the server's base URL"),
        ('database = "";', "g.database: database must not be empty"),
        ("measurement = 5;", "g.measurement: measurement must be a string"),
        ('token = "t"; username = "u";', "g.token: set either token"),
        ('password = "p";', "g.password: password is set but username is not"),
        ("timeout = 0;", "g.timeout: timeout must be between 0.01 and 300, not 0"),
        ('databse = "x";', "g.databse: unknown setting databse"),
    ]:
        res, err = query("zone1", ["a"], settings, expect_rc=2)
        check_eq(res, None, "output for refused settings %r" % settings)
        check(want in err, "for %r expected an error containing %r, got:\n%s"
              % (settings, want, err))


if __name__ == "__main__":
    try:
        main()
    finally:
        if _influx is not None:
            try:
                if _influx.external:
                    _influx.drop_database(DB)
            finally:
                _influx.close()
