"""Test networks: a /24 of 198.18.0.0/15 per test, and hosts as network namespaces.

    from netbed import Subnet, Bed

    net = Subnet()                 # a free 198.18.x.0/24, held until the process exits
    net.cidr, net.addr(5)          # "198.18.3.0/24", "198.18.3.5"

    bed = Bed()                    # a Subnet plus a bridge; the root namespace is .1
    a = bed.host("a")              # namespace with a veth on the bridge, address .2
    a.run(["ip", "addr"])          # a command inside it (nsenter --net, not ip netns exec)
    a.spawn_argv(["dockerd", ...]) # argv prefix for long-running processes
    bed.cut(a); bed.heal(a)        # link down / up: the host is lost to everyone
    bed.loss(a, 100); bed.loss(a, 0)
    bed.partition(a, b); bed.join(a, b)  # a and b lose each other only

Tests run in parallel under `make check`, so every test that builds a
network takes its own /24 through one allocator: a lock file per /24 under
/run/scaler-test-nets, held (flock) for the life of the process. A /24
whose lock is free but whose bridge or namespaces remain was left by a
killed run; taking it removes them first, and kills what still runs in
them. Only 198.18.0.0/15 and loopback
ever carry traffic.
"""
import atexit
import fcntl
import os
import signal
import subprocess

__all__ = ["Subnet", "Bed", "Host", "netns_available"]

LOCK_DIR = "/run/scaler-test-nets"
SLOTS = 512  # 198.18.0.0/15 = 512 × /24


def _sh(argv, check=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r


def netns_available():
    """None when this process can make namespaces and bridges, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nsenter"):
        if _sh(["sh", "-c", "command -v " + tool], check=False).returncode != 0:
            return tool + " is not installed"
    return None


class Subnet:
    """One /24 of 198.18.0.0/15, exclusively this process's until it exits."""

    def __init__(self):
        os.makedirs(LOCK_DIR, exist_ok=True)
        start = os.getpid() % SLOTS  # spread parallel tests over the range
        for k in range(SLOTS):
            i = (start + k) % SLOTS
            fd = os.open(os.path.join(LOCK_DIR, "%d.lock" % i), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.index, self._fd = i, fd
            break
        else:
            raise RuntimeError("no free /24 left in 198.18.0.0/15")
        self.prefix = "198.%d.%d" % (18 + self.index // 256, self.index % 256)
        self.cidr = self.prefix + ".0/24"
        self.tag = "s%d" % self.index  # short: interface names are at most 15 bytes
        _remove_leftovers(self.tag)

    def addr(self, host):
        return "%s.%d" % (self.prefix, host)

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _remove_leftovers(tag):
    """Namespaces and bridge a killed run left on this /24 (the caller holds
    its lock, so they are nobody's). What still runs in them is killed first:
    `ip netns del` alone leaves those processes running (a dockerd and its
    containers, say). The namespace's mount makes its inode its own, so the
    inode names exactly the processes inside."""
    r = _sh(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(tag + "-"):
            _kill_inside(name)
            _sh(["ip", "netns", "del", name], check=False)
    _sh(["ip", "link", "del", "br-" + tag], check=False)


def _kill_inside(name):
    try:
        want = "net:[%d]" % os.stat("/var/run/netns/" + name).st_ino
    except OSError:
        return
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.readlink("/proc/%s/ns/net" % pid) == want:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


class Host:
    """A network namespace with one veth on the bed's bridge."""

    def __init__(self, bed, name, number):
        self.bed, self.name, self.number = bed, name, number
        self.ns = "%s-%s" % (bed.net.tag, name)
        self.addr = bed.net.addr(number)
        self.veth = "v%s-%d" % (bed.net.tag, number)  # the bridge side, in the root namespace
        inner = "e%s-%d" % (bed.net.tag, number)
        _sh(["ip", "netns", "add", self.ns])
        _sh(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", inner])
        _sh(["ip", "link", "set", inner, "netns", self.ns])
        _sh(["ip", "link", "set", self.veth, "master", bed.bridge, "up"])
        self.run(["ip", "link", "set", "lo", "up"])
        self.run(["ip", "link", "set", inner, "name", "eth0"])
        self.run(["ip", "addr", "add", self.addr + "/24", "dev", "eth0"])
        self.run(["ip", "link", "set", "eth0", "up"])
        # anything not on the bed's /24 goes nowhere: there is no default route

    def nsenter(self):
        """argv prefix running a command in this host's network namespace.
        nsenter --net keeps the root /sys (ip netns exec remounts it, and
        dockerd then fails: "Devices cgroup isn't mounted")."""
        return ["nsenter", "--net=/var/run/netns/" + self.ns, "--"]

    def spawn_argv(self, argv):
        return self.nsenter() + list(argv)

    def run(self, argv, check=True):
        return _sh(self.nsenter() + list(argv), check=check)


class Bed:
    """A bridge on a private /24 with hosts on it; removed at exit."""

    def __init__(self, subnet=None):
        self.net = subnet or Subnet()
        self.bridge = "br-" + self.net.tag
        self.hosts = []
        self.gateway = self.net.addr(1)  # the root namespace's address on the bridge
        _sh(["ip", "link", "add", self.bridge, "type", "bridge"])
        _sh(["ip", "addr", "add", self.gateway + "/24", "dev", self.bridge])
        _sh(["ip", "link", "set", self.bridge, "up"])
        atexit.register(self.close)

    def host(self, name):
        h = Host(self, name, len(self.hosts) + 2)
        self.hosts.append(h)
        return h

    def cut(self, host):
        """The host loses its link: nobody reaches it, it reaches nobody."""
        _sh(["ip", "link", "set", host.veth, "down"])

    def heal(self, host):
        _sh(["ip", "link", "set", host.veth, "up"])

    def partition(self, a, b):
        """a and b lose each other (silently dropped, like a real partition);
        both still reach everyone else, the root namespace included."""
        a.run(["ip", "route", "replace", "blackhole", b.addr + "/32"])
        b.run(["ip", "route", "replace", "blackhole", a.addr + "/32"])

    def join(self, a, b):
        a.run(["ip", "route", "del", "blackhole", b.addr + "/32"], check=False)
        b.run(["ip", "route", "del", "blackhole", a.addr + "/32"], check=False)

    def loss(self, host, percent):
        """Drop `percent` of the packets the bridge sends towards the host (0 removes it)."""
        if percent <= 0:
            _sh(["tc", "qdisc", "del", "dev", host.veth, "root"], check=False)
        else:
            _sh(["tc", "qdisc", "replace", "dev", host.veth, "root", "netem", "loss", "%d%%" % percent])

    def close(self):
        for h in self.hosts:
            _sh(["ip", "netns", "del", h.ns], check=False)
            _sh(["ip", "link", "del", h.veth], check=False)
        self.hosts = []
        _sh(["ip", "link", "del", self.bridge], check=False)
        self.net.release()
