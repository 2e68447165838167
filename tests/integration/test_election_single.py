#!/usr/bin/env python3
"""Election plugin "single" (the default) in a real scalerd: the node is
primary with an epoch it took in Redis, and waits for Redis when it is down."""
import os

from scalertest import *

TOKEN = "s1ngle"


def need_scalerd():
    if not os.access(binary("scalerd"), os.X_OK):
        skip("scalerd is not built")
    if not os.path.exists(os.path.join(plugin_dir(), "election_single.so")):
        skip("election_single.so is not built")


def node(redis_port, election="", cluster=None):
    port = free_port()
    cluster = cluster or "single%d" % port
    state = os.path.join(tmpdir(), "state-%d" % port)
    os.makedirs(state, exist_ok=True)
    conf = write_file("single-%d.conf" % port, """
node = { id = 1; admin = "127.0.0.1:%d"; token = "%s"; };
cluster = "%s";
redis = "redis://127.0.0.1:%d/0";
plugin_dir = "%s";
state_dir = "%s";
%s
zones = ();
""" % (port, TOKEN, cluster, redis_port, plugin_dir(), state, election))
    p = spawn([binary("scalerd"), "-c", conf], name="scalerd-single-%d" % port)
    return p, "http://127.0.0.1:%d" % port, cluster


def election(url):
    status, body = http_json("GET", url + "/status", headers={"Authorization": "Bearer " + TOKEN},
                             timeout=1)
    return body.get("election") if status == 200 and isinstance(body, dict) else None


@test
def without_an_election_group_the_node_is_primary_with_a_recorded_epoch():
    need_scalerd()
    r = Redis()
    p, url, cluster = node(r.port)
    e = wait_until(lambda: (election(url) or {}).get("state") == "primary" and election(url),
                   10, "the single node to say primary")
    check_eq(e["plugin"], "single", "election plugin")
    check_eq(e["epoch"], 1, "epoch of the first leadership")
    check_eq(r.cli("GET", cluster + ":epoch"), "1", "epoch in Redis")
    check_eq(e["primary"]["id"], "1", "primary id")
    check_eq(e["primary"]["url"], url, "primary url")
    status, reply = http_json("POST", url + "/election/coordinator", body={"id": 2, "epoch": 9},
                              headers={"Authorization": "Bearer " + TOKEN})
    check_eq(status, 409, "a COORDINATOR to a single node (reply %r)" % (reply,))
    check_eq(election(url)["state"], "primary", "state after the refused message")


@test
def a_single_node_started_before_redis_becomes_primary_once_redis_is_up():
    need_scalerd()
    port = free_port()
    p, url, cluster = node(port, 'election = { plugin = "single"; retry_max = 0.5; };')
    wait_until(lambda: election(url) is not None, 10, "scalerd to serve /status")
    check(election(url)["state"] != "primary",
          "expected no primary without Redis, got %r" % election(url))
    r = Redis(port=port)
    e = wait_until(lambda: (election(url) or {}).get("state") == "primary" and election(url),
                   10, "the single node to become primary once Redis is up")
    check_eq(r.cli("GET", cluster + ":epoch"), str(e["epoch"]), "epoch in Redis")


if __name__ == "__main__":
    main()
