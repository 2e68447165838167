"""The scaler.conf of a scalerd node running the bully election with no
zones: what the election tests and bench/election start (stdlib only)."""
import os

from scalertest import plugin_dir, tmpdir, write_file

__all__ = ["bully_node_conf"]


def bully_node_conf(cluster, node, admin, token, redis_url, peers, check, timeout,
                    preempt=True, lease=None, level="debug"):
    """Write node `node`'s config and return its path. admin: its
    "host:port"; peers: {id: admin URL} of every node, this one included;
    lease None: the default (3 x check)."""
    state = os.path.join(tmpdir(), "state-%s-%d" % (cluster, node))
    os.makedirs(state, exist_ok=True)
    peer_list = ", ".join('{ id = %d; url = "%s"; }' % (k, u) for k, u in sorted(peers.items()))
    return write_file("%s-node%d.conf" % (cluster, node), """
node = { id = %d; admin = "%s"; token = "%s"; };
cluster = "%s";
redis = "%s";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "%s"; };
election = {
  plugin = "bully";
  check_interval = %g;
  timeout = %g;
  %s
  preempt = %s;
  peers = ( %s );
};
zones = ();
""" % (node, admin, token, cluster, redis_url, plugin_dir(), state, level, check, timeout,
       "lease = %g;" % lease if lease else "", "true" if preempt else "false", peer_list))
