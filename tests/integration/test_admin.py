#!/usr/bin/env python3
"""scalerd's admin API against a hostile client: the auth rule (a token
guards reads too, node.public_reads opens them), idle connections that
must not lock anyone out, paths that are not UTF-8, the /events long-poll
and the dead reports a primary checks before it acts."""
import json
import os
import re
import resource
import socket
import subprocess
import time

from scalertest import *

SCALERD = binary("scalerd")
TOKEN = "admin-test-token"
AUTH = {"Authorization": "Bearer " + TOKEN}


class Node:
    """One scalerd (single election) with a token, and a Redis."""

    def __init__(self, zones="", extra="", node_extra="", name="scalerd"):
        self.redis = Redis()
        self.port = free_port()
        self.cluster = "adm%d" % self.port
        self.state = os.path.join(tmpdir(), "state-%d" % self.port)
        os.makedirs(self.state)
        self.path = write_file("%s-%d.conf" % (name, self.port), """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; %s };
cluster = "%s"; redis = "%s"; plugin_dir = "%s"; state_dir = "%s";
log = { level = "info"; };
election = { plugin = "single"; };
%s
zones = ( %s );
""" % (self.port, TOKEN, node_extra, self.cluster, self.redis.url(), plugin_dir(), self.state,
            extra, zones))
        self.proc = spawn([SCALERD, "-c", self.path], name=name)
        wait_until(lambda: self.answers(), 15, "scalerd's admin API on port %d" % self.port)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def answers(self):
        try:
            return http("GET", self.url("/health_check"), timeout=1)[0] == 200
        except OSError:
            return False

    def get(self, path, headers=AUTH, timeout=5.0):
        return http_json("GET", self.url(path), headers=headers, timeout=timeout)

    def stop(self):
        rc = self.proc.stop()
        self.redis.stop()
        return rc


READS = ["/status", "/servers", "/events", "/metrics"]


@test
def with_a_token_every_endpoint_but_health_check_needs_it():
    n = Node()
    try:
        for path in READS:
            st, body = n.get(path, headers={})
            check_eq(st, 401, "GET %s without the token" % path)
            st, _ = n.get(path, headers={"Authorization": "Bearer wrong"})
            check_eq(st, 401, "GET %s with a wrong token" % path)
            st, _ = n.get(path)
            check_eq(st, 200, "GET %s with the token" % path)
        # only the header counts: never a query parameter or a cookie
        st, _ = n.get("/status?token=" + TOKEN, headers={"Cookie": "token=" + TOKEN})
        check_eq(st, 401, "GET /status with the token in the query and a cookie")
        for method, path in (("POST", "/reload"), ("PUT", "/report"), ("POST", "/scale"),
                             ("POST", "/election/ping")):
            st, _ = http_json(method, n.url(path), body={})
            check_eq(st, 401, "%s %s without the token" % (method, path))
        st, _, body = http("GET", n.url("/health_check"))
        check_eq((st, body), (200, b"ok\n"), "GET /health_check without a token")
    finally:
        n.stop()


@test
def public_reads_open_the_reads_and_nothing_else():
    n = Node(node_extra="public_reads = true;")
    try:
        for path in READS:
            st, _ = n.get(path, headers={})
            check_eq(st, 200, "GET %s without the token and public_reads" % path)
        st, _, _ = http("HEAD", n.url("/status"))
        check_eq(st, 200, "HEAD /status without the token and public_reads")
        for method, path in (("POST", "/reload"), ("PUT", "/report"), ("POST", "/drain")):
            st, _ = http_json(method, n.url(path), body={})
            check_eq(st, 401, "%s %s without the token, public_reads or not" % (method, path))
    finally:
        n.stop()


@test
def scalerctl_reads_with_the_token_of_the_config():
    n = Node()
    try:
        r = subprocess.run([binary("scalerctl"), "-c", n.path, "--json", "status"],
                           capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, SCALER_TOKEN=""))
        check_eq(r.returncode, 0, "scalerctl status exit status (stderr: %s)" % r.stderr)
        check_eq(json.loads(r.stdout)["node"]["id"], "1", "node id in scalerctl's status")
    finally:
        n.stop()


@test
def a_path_that_is_not_utf8_gets_404_and_no_error_in_the_log():
    n = Node()
    try:
        for raw in ("/%C0%80", "/%ED%A0%80", "/%F4%90%80%80", "/a%FFb"):
            st, body = n.get(raw)
            check_eq(st, 404, "GET %s" % raw)
            check("no such endpoint" in body["error"], "the 404 says why: %r" % body)
        out = n.proc.output()
        errs = [l for l in out.splitlines() if " err: " in l]
        check(not errs, "no error logged for paths that are not UTF-8, got:\n" + "\n".join(errs))
    finally:
        n.stop()


@test
def a_tokened_request_is_answered_while_10050_idle_connections_are_held():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 20000  # scalerd then keeps 10,000 connections (half its limit)
    if hard != resource.RLIM_INFINITY and hard < 10050 + 200:
        skip("needs %d file descriptors (hard limit %d)" % (10050 + 200, hard))
    # this process holds the 10,050 connections; scalerd inherits the limit
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    n = Node()
    idle = []
    try:
        for _ in range(10050):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", n.port))
            except BlockingIOError:
                pass
            idle.append(s)
        # every connection is through the handshake; none sent a byte
        time.sleep(1.0)
        for i in range(3):
            st, body = n.get("/status", timeout=10)
            check_eq(st, 200, "GET /status with the token while 10,050 idle connections "
                     "are held (try %d)" % (i + 1))
        check(n.proc.alive(), "scalerd still runs")
    finally:
        for s in idle:
            s.close()
        n.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    main()
