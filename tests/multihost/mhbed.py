"""The multi-host test bed: hosts are network namespaces on one bridge
(tests/lib/netbed.py), addresses from 198.18.0.0/15 only.

    from mhbed import Swarm, Scalers

    sw = Swarm(managers=3)        # m1..m3: a dockerd each, one Swarm of 3 managers,
                                  # docker-registry on m1, the scaler-app image pushed there
    sc = Scalers(sw, nodes=3)     # a Redis host and 3 scalerd hosts (bully), swarm driver
    sc.start_all(); sc.primary()

Every host has its own root directory (dockerd's data-root, exec-root,
socket, pidfile and log; scalerd's state_dir, token file, plugin directory
copy, config and log), so nothing passes between "hosts" through the shared
filesystem; they do share one clock. The dockerds listen on their host's
address with TLS (certificates made here with openssl, a client certificate
required) and the drivers reach them only that way. Swarm takes its
networks from a second /24 of 198.18.0.0/15 (--default-addr-pool, and a
docker_gwbridge made beforehand on each host), so nothing uses 10.x or
172.x even by accident.
"""
import atexit
import base64
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from scalertest import binary, srcdir, plugin_dir, wait_until, http_json, http, log  # noqa: E402
from dockertest import Engine  # noqa: E402
import netbed  # noqa: E402
from netbed import Bed, Subnet, netns_available, LOCK_DIR  # noqa: E402

__all__ = ["Swarm", "Scalers", "bed_unavailable", "Certs"]

DOCKER_PORT = 2376
REGISTRY_PORT = 5000
HEARTBEAT = 1.0  # Swarm's dispatcher heartbeat: a lost node is "down" after about 3 of them


def bed_unavailable():
    """None when the bed can run here, else why not (tests skip with it)."""
    why = netns_available()
    if why:
        return why
    for tool in ("dockerd", "docker-registry", "openssl", "redis-server"):
        if not shutil.which(tool):
            return tool + " is not installed"
    return None


def _run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), (r.stderr or r.stdout).strip()[-800:]))
    return r.stdout


class Certs:
    """A throwaway CA, and certificates it signs (EC P-256: fast to make)."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca-key.pem")
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-subj", "/CN=scaler test CA",
              "-days", "2"])

    def issue(self, name, usage, ip=None):
        """(cert, key) for `name`; usage "serverAuth" (with ip as its SAN) or "clientAuth"."""
        key = os.path.join(self.dir, name + "-key.pem")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("extendedKeyUsage = %s\n" % usage)
            if ip:
                f.write("subjectAltName = IP:%s\n" % ip)
        _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", key, "-out", csr, "-subj", "/CN=" + name])
        _run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
              "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext])
        return cert, key

    def copy_client(self, name, dest):
        """A client certificate of its own, with the CA, in dest: (ca, cert, key)."""
        cert, key = self.issue(name, "clientAuth")
        os.makedirs(dest, exist_ok=True)
        out = []
        for src, base in ((self.ca, "ca.pem"), (cert, "cert.pem"), (key, "key.pem")):
            shutil.copy(src, os.path.join(dest, base))
            out.append(os.path.join(dest, base))
        return tuple(out)


class _Root:
    """The temporary tree every host's root lives in (short: unix sockets).
    It records its owner's pid and every namespace made for it (name, inode,
    netbed slot), so that a later bed can clear what a killed run left:
    `ip netns del` alone leaves the processes of a namespace running."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="mh-", dir="/tmp")
        with open(os.path.join(self.path, "owner"), "w") as f:
            f.write("%d\n" % os.getpid())
        if os.environ.get("SCALERTEST_KEEP"):  # kept for a look: not a leftover
            open(os.path.join(self.path, "keep"), "w").close()

    def host(self, name):
        d = os.path.join(self.path, name)
        os.makedirs(d, exist_ok=True)
        return d

    def namespace(self, host):
        with open(os.path.join(self.path, "netns"), "a") as f:
            f.write("%s %d %d\n" % (host.ns, os.stat("/var/run/netns/" + host.ns).st_ino,
                                    host.bed.net.index))


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _reap_leftovers():
    """Clear the beds whose owner died without cleaning up (kept ones stay):
    netbed's leftover removal on each of their /24s (under its lock, so only
    when nobody has taken the slot since: netbed cleared it then), then
    their mounts and files."""
    for root in glob.glob("/tmp/mh-*"):
        if os.path.exists(os.path.join(root, "keep")):
            continue
        try:
            with open(os.path.join(root, "owner")) as f:
                if _alive(int(f.read())):
                    continue
            with open(os.path.join(root, "netns")) as f:
                slots = {int(l.split()[2]) for l in f if len(l.split()) == 3}
        except (OSError, ValueError):
            continue
        for slot in slots:
            fd = os.open(os.path.join(LOCK_DIR, "%d.lock" % slot),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                netbed._remove_leftovers("s%d" % slot)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
        time.sleep(0.2)
        _umount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def _umount_under(root):
    with open("/proc/self/mounts") as f:
        mounts = [l.split()[1] for l in f if l.split()[1].startswith(root + "/")]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


class DockerHost:
    """A namespaced host with its own dockerd (unix socket for the test, TLS on
    its address for everyone else)."""

    def __init__(self, bed, name, root, certs, registry_cidr):
        self.host = bed.host(name)
        root.namespace(self.host)
        self.name, self.addr = name, self.host.addr
        self.root = root.host(name)
        cert, key = certs.issue(name + "-dockerd", "serverAuth", ip=self.addr)
        sock = os.path.join(self.root, "docker.sock")
        self.tcp = "tcp://%s:%d" % (self.addr, DOCKER_PORT)
        argv = ["dockerd", "--storage-driver=vfs", "--iptables=false", "--ip6tables=false",
                "--bridge=none", "--data-root", os.path.join(self.root, "data"),
                "--exec-root", os.path.join(self.root, "exec"),
                "--pidfile", os.path.join(self.root, "dockerd.pid"),
                "-H", "unix://" + sock, "-H", self.tcp,
                "--tlsverify", "--tlscacert", certs.ca, "--tlscert", cert, "--tlskey", key,
                "--insecure-registry", registry_cidr, "--log-level", "warn"]
        self.log = os.path.join(self.root, "dockerd.log")
        self.proc = subprocess.Popen(self.host.spawn_argv(argv), stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.engine = Engine("unix://" + sock)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if os.path.exists(self.engine.host[7:]) and self.engine.ping():
                return
            time.sleep(0.1)
        with open(self.log, "rb") as f:
            tail = f.read()[-1500:].decode("utf-8", "replace")
        raise RuntimeError("dockerd on %s did not answer; its log ends with:\n%s" % (self.name, tail))

    def api(self, method, path, body=None, **kw):
        return self.engine.api(method, path, body, **kw)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self):
        if self.proc:
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        netbed._kill_inside(self.host.ns)  # servers a dockerd left
        _umount_under(self.root)


class Swarm:
    """A Swarm of `managers` managers, each on its own namespaced host, with
    Debian's docker-registry on the first and the scaler-app image in it."""

    def __init__(self, managers=3, bed=None, root=None):
        _reap_leftovers()  # before Bed(): netbed would drop a dead run's namespaces unreaped
        self.bed = bed or Bed()
        self.root = root or _Root()
        self.pool = Subnet()  # Swarm's own networks: never 10.x or 172.x
        self.certs = Certs(self.root.host("ca"))
        self.nodes = []
        self._events = []
        atexit.register(self.close)
        t0 = time.monotonic()
        for i in range(managers):
            self.nodes.append(DockerHost(self.bed, "m%d" % (i + 1), self.root, self.certs, self.bed.net.cidr))
        for n in self.nodes:
            n.wait_ready()
        for i, n in enumerate(self.nodes):
            self._gwbridge(n, i)
        self._form()
        self.registry = "%s:%d" % (self.nodes[0].addr, REGISTRY_PORT)
        self._start_registry(self.nodes[0])
        self.image = self._push_app_image()
        self.ids = {n.name: self.node_id(n) for n in self.nodes}
        log("swarm of %d on %s (pool %s) up in %.1f s" % (managers, self.bed.net.cidr, self.pool.cidr,
                                                         time.monotonic() - t0))

    # ---- formation ----

    def _gwbridge(self, n, i):
        # made before init/join, so Swarm takes it instead of a default pool
        st, body = n.api("POST", "/networks/create", {
            "Name": "docker_gwbridge", "Driver": "bridge",
            "IPAM": {"Config": [{"Subnet": "%s.%d/28" % (self.pool.prefix, 128 + 16 * i)}]},
            "Options": {"com.docker.network.bridge.name": "docker_gwbridge",
                        "com.docker.network.bridge.enable_icc": "false",
                        "com.docker.network.bridge.enable_ip_masquerade": "false"}})
        if st != 201:
            raise RuntimeError("docker_gwbridge on %s: %s %r" % (n.name, st, body))

    def _form(self):
        first = self.nodes[0]
        st, body = first.api("POST", "/swarm/init", {
            "ListenAddr": "%s:2377" % first.addr, "AdvertiseAddr": "%s:2377" % first.addr,
            "DefaultAddrPool": [self.pool.prefix + ".0/25"], "SubnetSize": 28,
            "Spec": {"Dispatcher": {"HeartbeatPeriod": int(HEARTBEAT * 1e9)},
                     "Orchestration": {"TaskHistoryRetentionLimit": 2}}})
        if st != 200:
            raise RuntimeError("swarm init: %s %r" % (st, body))
        st, sw = first.api("GET", "/swarm")
        token = sw["JoinTokens"]["Manager"]
        for n in self.nodes[1:]:
            st, body = n.api("POST", "/swarm/join", {
                "ListenAddr": "%s:2377" % n.addr, "AdvertiseAddr": "%s:2377" % n.addr,
                "RemoteAddrs": ["%s:2377" % first.addr], "JoinToken": token})
            if st != 200:
                raise RuntimeError("swarm join of %s: %s %r" % (n.name, st, body))
        wait_until(lambda: len([x for x in self.api("GET", "/nodes")[1]
                                if x["Status"]["State"] == "ready"]) == len(self.nodes),
                   30, "every node of the swarm ready")
        # nothing but 198.18.0.0/15 in any network Swarm or dockerd made
        for n in self.nodes:
            for net in n.api("GET", "/networks")[1]:
                for c in (net.get("IPAM") or {}).get("Config") or []:
                    sub = c.get("Subnet", "")
                    if sub and not (sub.startswith("198.18.") or sub.startswith("198.19.")):
                        raise RuntimeError("network %s on %s uses %s" % (net["Name"], n.name, sub))

    def _start_registry(self, n):
        d = os.path.join(n.root, "registry")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "config.yml")
        with open(conf, "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                    "    rootdirectory: %s/data\n  delete:\n    enabled: true\n"
                    "http:\n  addr: %s\n" % (d, self.registry))
        self.registry_proc = subprocess.Popen(n.host.spawn_argv(["docker-registry", "serve", conf]),
                                              stdout=open(os.path.join(d, "log"), "wb"),
                                              stderr=subprocess.STDOUT, start_new_session=True)

        def up():
            try:
                return http("GET", "http://%s/v2/" % self.registry, timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(up, 20, "docker-registry on %s" % self.registry)

    def _push_app_image(self):
        """scripts/images' scaler-app image (built, or found cached, in the
        test engine, then copied into m1's), pushed to the registry and
        pulled by every node, so a first scale-out waits for no pull."""
        src = os.environ.get("SCALER_TEST_DOCKER_HOST") or "unix:///var/run/docker.sock"
        first = self.nodes[0]
        out = _run([os.path.join(srcdir(), "scripts", "images"), "--engine", first.engine.host,
                    "--from", src, "scaler-app"], timeout=1800)
        built = out.split()[0]  # "scaler-app:demo 88.6"
        name = "%s/scaler-app" % self.registry
        st, body = first.api("POST", "/images/%s/tag?%s" % (built, urllib.parse.urlencode(
            {"repo": name, "tag": "test"})))
        if st != 201:
            raise RuntimeError("tagging %s: %s %r" % (built, st, body))
        st, body = first.api("POST", "/images/%s/push?tag=test" % name,
                             headers={"X-Registry-Auth": base64.urlsafe_b64encode(b"{}").decode()},
                             timeout=300)
        text = body.decode() if isinstance(body, bytes) else json.dumps(body)
        if st != 200 or '"error"' in text:
            raise RuntimeError("pushing the app image: %s %s" % (st, text[-500:]))
        pulls = [threading.Thread(target=n.api, args=(
            "POST", "/images/create?fromImage=%s&tag=test" % urllib.parse.quote(name)),
            kwargs={"timeout": 300}) for n in self.nodes[1:]]
        for t in pulls:
            t.start()
        for t in pulls:
            t.join()
        return name + ":test"

    # ---- looking at it ----

    def manager(self, timeout=30):
        """A node whose engine answers as a manager (the test's own view);
        after a partition heals, Raft may need a while to have a leader."""
        deadline = time.monotonic() + timeout
        while True:
            for n in self.nodes:
                try:
                    st, body = n.api("GET", "/nodes", timeout=3)
                    if st == 200:
                        return n
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("no manager of the swarm answers")
            time.sleep(0.2)

    def api(self, method, path, body=None, **kw):
        return self.manager().api(method, path, body, **kw)

    def settle(self, timeout=60, stable=5.0):
        """Wait until every node is ready, every manager reachable and one of
        them leader, `stable` seconds in a row: a manager back from a long
        partition may unseat the leader a moment after it is back (it
        campaigned with a newer Raft term meanwhile), and the Swarm then has
        no leader for a few seconds."""
        deadline = time.monotonic() + timeout
        since = None
        while True:
            try:
                st, nodes = self.nodes[0].api("GET", "/nodes", timeout=3)
            except OSError:
                st, nodes = 0, None
            ok = st == 200 and len(nodes) == len(self.nodes) and all(
                n["Status"]["State"] == "ready" and (n.get("ManagerStatus") or {}).get("Reachability")
                == "reachable" for n in nodes) and any((n.get("ManagerStatus") or {}).get("Leader")
                                                       for n in nodes)
            now = time.monotonic()
            since = (since or now) if ok else None
            if since and now - since >= stable:
                return
            if now > deadline:
                raise AssertionError("the Swarm did not settle in %.0f s: %s" % (
                    timeout, [(n["Status"]["Addr"], n["Status"]["State"], n.get("ManagerStatus"))
                              for n in nodes] if st == 200 else "no answer (%s)" % st))
            time.sleep(0.2)

    def node_id(self, n):
        st, info = n.api("GET", "/info")
        return info["Swarm"]["NodeID"]

    def node_label(self, n, key, value):
        nid = self.ids[n.name]
        st, node = self.api("GET", "/nodes/" + nid)
        spec = node["Spec"]
        spec.setdefault("Labels", {})[key] = value
        st, body = self.api("POST", "/nodes/%s/update?version=%d" % (nid, node["Version"]["Index"]), spec)
        if st != 200:
            raise RuntimeError("labelling %s: %s %r" % (n.name, st, body))

    def managers_tcp(self):
        return [n.tcp for n in self.nodes]

    def services(self, cluster):
        q = urllib.parse.quote(json.dumps({"label": ["scaler.cluster=" + cluster]}))
        st, body = self.api("GET", "/services?filters=" + q)
        return body if st == 200 else []

    def running(self, cluster):
        """{server id: address} of this cluster's services whose task runs on a
        node Swarm sees ready, as the servers' addresses."""
        services = self.services(cluster)
        st, tasks = self.api("GET", "/tasks?filters=" + urllib.parse.quote(
            json.dumps({"desired-state": ["running"]})))
        st, nodes = self.api("GET", "/nodes")
        addr = {n["ID"]: n["Status"]["Addr"] for n in nodes if n["Status"]["State"] == "ready"}
        out = {}
        for s in services:
            for t in tasks:
                if t["ServiceID"] == s["ID"] and t["Status"]["State"] == "running" and t["NodeID"] in addr:
                    out[s["Spec"]["Labels"]["scaler.server"]] = "http://%s:%s" % (
                        addr[t["NodeID"]], s["Spec"]["Labels"]["scaler.port"])
        return out

    def node_of(self, address):
        """The bed node whose address an http://addr:port server address names."""
        host = address.split("//")[1].split(":")[0]
        return next((n for n in self.nodes if n.addr == host), None)

    def service_events(self, since, until=None):
        """Swarm's service events (create, remove, update) between two unix times."""
        until = until or time.time()
        q = urllib.parse.urlencode({"since": "%.3f" % since, "until": "%.3f" % until,
                                    "filters": json.dumps({"type": ["service"]})})
        st, body = self.api("GET", "/events?" + q, timeout=10)
        if isinstance(body, bytes):
            lines = body.decode().splitlines()
        elif isinstance(body, list):
            lines = [json.dumps(x) for x in body]
        else:
            lines = [json.dumps(body)] if body else []
        out = []
        for l in lines:
            try:
                e = json.loads(l)
            except ValueError:
                continue
            out.append((e.get("timeNano", 0) / 1e9, e.get("Action"),
                        (e.get("Actor") or {}).get("Attributes", {}).get("name", "")))
        return out

    def close(self):
        for n in self.nodes:
            n.stop()
        for n in self.nodes:
            n.reap()
        if getattr(self, "registry_proc", None) and self.registry_proc.poll() is None:
            self.registry_proc.kill()
            self.registry_proc.wait()
        self.nodes = []
        if not os.environ.get("SCALERTEST_KEEP"):
            shutil.rmtree(self.root.path, ignore_errors=True)
        self.pool.release()


TOKEN = "multihost-token"
AUTH = {"Authorization": "Bearer " + TOKEN}


class Scalers:
    """Redis (append-only file) on its own host and `nodes` scalerd nodes
    (bully election) on theirs, driving `swarm` through the swarm driver
    over TLS; zone1's balancer runs on the first scalerd host."""

    def __init__(self, swarm, nodes=3, zone_min=3, zone_max=8, cluster=None, driver_extra=""):
        self.swarm, self.bed, self.root = swarm, swarm.bed, swarm.root
        self.cluster = cluster or "mh%d" % (os.getpid() % 100000)
        self.redis_host = self.bed.host("redis")
        self.hosts = {i: self.bed.host("s%d" % i) for i in range(1, nodes + 1)}
        for h in [self.redis_host] + list(self.hosts.values()):
            self.root.namespace(h)
        self.procs = {}
        self.zone_min, self.zone_max = zone_min, zone_max
        self.driver_extra = driver_extra
        self.listen = "%s:8081" % self.hosts[1].addr
        self.zadmin = "%s:9081" % self.hosts[1].addr
        atexit.register(self.close)
        self._start_redis()

    # ---- Redis ----

    def _start_redis(self):
        d = self.root.host("redis")
        self.redis_port = 6379
        self.redis_proc = subprocess.Popen(self.redis_host.spawn_argv([
            "redis-server", "--port", str(self.redis_port), "--bind", self.redis_host.addr,
            "--protected-mode", "no", "--dir", d, "--save", "", "--appendonly", "yes",
            "--daemonize", "no"]), stdout=open(os.path.join(d, "redis.log"), "wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.redis("PING") == "PONG", 10, "redis-server on the redis host")

    def redis(self, *args):
        r = subprocess.run(["redis-cli", "-h", self.redis_host.addr, "-p", str(self.redis_port),
                            "--raw"] + [str(a) for a in args], capture_output=True, text=True, timeout=5)
        return r.stdout.strip()

    def records(self, zone="zone1"):
        """{server id: record} of the zone in Redis."""
        r = subprocess.run(["redis-cli", "-h", self.redis_host.addr, "-p", str(self.redis_port),
                            "--raw", "HGETALL", "%s:servers:%s" % (self.cluster, zone)],
                           capture_output=True, text=True, timeout=5)
        lines = r.stdout.splitlines()
        return {k: json.loads(v) for k, v in zip(lines[0::2], lines[1::2])}

    # ---- scalerd nodes ----

    def url(self, i):
        return "http://%s:9000" % self.hosts[i].addr

    def _managers_for(self, i):
        """The managers, node i's own first (node 3 starts with m3): losing
        a host then also loses the manager some scalerd was talking to."""
        ms = self.swarm.managers_tcp()
        k = (i - 1) % len(ms)
        return ms[k:] + ms[:k]

    def _conf(self, i):
        h = self.hosts[i]
        d = self.root.host(h.name)
        plugins = os.path.join(d, "plugins")
        if not os.path.isdir(plugins):
            os.makedirs(plugins)
            for so in glob.glob(os.path.join(plugin_dir(), "*.so")):
                shutil.copy(so, plugins)
        token = os.path.join(d, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token, 0o600)
        ca, cert, key = self.swarm.certs.copy_client("scalerd-%d" % i, os.path.join(d, "tls"))
        os.makedirs(os.path.join(d, "state"), exist_ok=True)
        peers = ", ".join('{ id = %d; url = "%s"; }' % (k, self.url(k)) for k in self.hosts)
        conf = os.path.join(d, "scaler.conf")
        with open(conf, "w") as f:
            f.write("""
node = { id = %d; admin = "%s:9000"; token_file = "%s"; zones = [%s]; };
cluster = "%s";
redis = "redis://%s:%d/0";
plugin_dir = "%s";
state_dir = "%s";
log = { level = "debug"; };
interval = 0.5; window = 1.0; drain_timeout = 0.3;
driver = { plugin = "swarm"; managers = [%s]; tls_ca = "%s"; tls_cert = "%s"; tls_key = "%s";
           image = "%s"; stop_timeout = 1; start_timeout = 30; api_timeout = 2; %s };
metrics = { plugin = "http"; timeout = 0.5; };
policy = { plugin = "threshold"; max_cpu = 1000000.0; min_cpu = 0.0; };
election = { plugin = "bully"; check_interval = 0.3; timeout = 0.3; lease = 1.5; preempt = false;
             peers = ( %s ); };
balancer = { plugin = "builtin"; health_interval = 0.3; health_timeout = 0.3; recheck_interval = 0.3;
             report_interval = 0.3; connect_timeout = 0.3; };
zones = ( { name = "zone1"; listen = "%s"; admin = "%s"; min = %d; max = %d; ports = [30000, 30099]; } );
""" % (i, h.addr, token, '"zone1"' if i == 1 else "", self.cluster, self.redis_host.addr,
                self.redis_port, plugins, os.path.join(d, "state"),
                ", ".join('"%s"' % m for m in self._managers_for(i)), ca, cert, key,
                self.swarm.image, self.driver_extra, peers, self.listen, self.zadmin, self.zone_min,
                self.zone_max))
        return conf

    def start(self, i):
        d = self.root.host(self.hosts[i].name)
        logf = open(os.path.join(d, "scalerd.log"), "ab")
        self.procs[i] = subprocess.Popen(self.hosts[i].spawn_argv([binary("scalerd"), "-c", self._conf(i)]),
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: self.status(i), 15, "scalerd node %d to answer" % i)
        except AssertionError as e:
            raise AssertionError("%s; its log ends with:\n%s" % (e, self.log_of(i)[-1500:]))

    def start_all(self):
        """Highest id first, so that it is the primary (preempt = false)."""
        for i in sorted(self.hosts, reverse=True):
            self.start(i)
            if i == max(self.hosts):
                wait_until(lambda: self.primary() == i, 15, "node %d primary" % i)

    def log_of(self, i):
        with open(os.path.join(self.root.host(self.hosts[i].name), "scalerd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def status(self, i, timeout=1.0):
        try:
            st, body = http_json("GET", self.url(i) + "/status", timeout=timeout, headers=AUTH)
            return body if st == 200 else None
        except OSError:
            return None

    def roles(self):
        out = {}
        for i in self.hosts:
            s = self.status(i, 0.5)
            out[i] = (s["node"]["role"], s["node"]["epoch"]) if s else None
        return out

    def primary(self):
        prim = [i for i, r in self.roles().items() if r and r[0] == "primary"]
        return prim[0] if len(prim) == 1 else None

    def post(self, i, path, body):
        return http_json("POST", self.url(i) + path, body, headers=AUTH, timeout=3)

    def pin(self, count, seconds):
        p = self.primary()
        st, body = self.post(p, "/scale", {"zone": "zone1", "count": count, "for": seconds})
        if st != 200:
            raise RuntimeError("POST /scale on node %s: %s %r" % (p, st, body))
        return p

    def events(self):
        """Every event of zone1 in Redis (oldest first), as the admin API gives them."""
        for i in self.hosts:
            try:
                st, body = http_json("GET", self.url(i) + "/events?zone=zone1&limit=1000",
                                     timeout=2, headers=AUTH)
                if st == 200:
                    return sorted(body["events"], key=lambda e: e["time"])
            except OSError:
                continue
        return []

    def balancer(self):
        """{address: state} of zone1's balancer."""
        st, body = http_json("GET", "http://%s/servers?state=all" % self.zadmin, timeout=2,
                             headers=AUTH)
        return {s["url"]: s["state"] for s in body} if st == 200 else None

    def invariant(self):
        """None when Redis records = running tasks = the balancer's server set
        (all serving, alive), else what differs."""
        recs = self.records()
        run = self.swarm.running(self.cluster)
        services = {s["Spec"]["Labels"].get("scaler.server") for s in self.swarm.services(self.cluster)}
        bal = self.balancer() or {}
        problems = []
        if any(r["state"] != "serving" for r in recs.values()):
            problems.append("records not serving: %r" % {k: r["state"] for k, r in recs.items()})
        if set(recs) != set(run):
            problems.append("records %s != running tasks %s" % (sorted(recs), sorted(run)))
        if services != set(recs):
            problems.append("services %s != records %s (orphans or missing)" % (sorted(services), sorted(recs)))
        addrs = {r["address"] for r in recs.values()}
        if any(run.get(k) != r["address"] for k, r in recs.items()):
            problems.append("addresses differ: records %r, tasks %r" % (
                {k: r["address"] for k, r in recs.items()}, run))
        if set(bal) != addrs or any(s != "alive" for s in bal.values()):
            problems.append("balancer %r != records %s" % (bal, sorted(addrs)))
        return "; ".join(problems) or None

    def converge(self, timeout, what="the invariant"):
        """Seconds until the invariant holds; AssertionError saying what
        still differed after `timeout`."""
        t0 = time.monotonic()
        while True:
            try:
                problem = self.invariant()
            except Exception as e:  # a host that does not answer yet
                problem = "%s: %s" % (type(e).__name__, e)
            if problem is None:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError("timed out after %.0f s waiting for %s: %s" % (timeout, what, problem))
            time.sleep(0.2)

    def nodes_of_servers(self):
        return {k: self.swarm.node_of(r["address"]).name for k, r in self.records().items()}

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = {}
        if getattr(self, "redis_proc", None) and self.redis_proc.poll() is None:
            self.redis_proc.kill()
            self.redis_proc.wait()


class Traffic:
    """Requests through a balancer, one after the other, from the root
    namespace; counts what failed and when."""

    def __init__(self, hostport, path="/health_check"):
        self.host, self.port = hostport.rsplit(":", 1)
        self.path = path
        self.total = self.failed = 0
        self.failures = []  # monotonic times
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        import http.client
        while not self._stop.is_set():
            ok = False
            try:
                c = http.client.HTTPConnection(self.host, int(self.port), timeout=2)
                c.request("GET", self.path)
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                pass
            except http.client.HTTPException:
                pass
            self.total += 1
            if not ok:
                self.failed += 1
                self.failures.append(time.monotonic())
            time.sleep(0.01)

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return self.failed, self.total
