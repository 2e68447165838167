#!/usr/bin/env python3
"""The Debian packages: packaging/deb/build makes them, lintian finds no
errors, they install, the installed scalerd accepts its packaged config and
runs as user scaler (checked with the installed scalerctl), and a purge
stops the servers it started and leaves no file, user or process.

This installs into the machine it runs on, so it runs only as root, on a
machine where scaler is not already installed. Two checkouts may run their
tests on one machine at once: the install-to-purge of one run would pull
the package from under the other, so the runs take turns (a lock file), and
a dpkg call that finds dpkg's own lock taken waits for it."""
import fcntl
import glob
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import time

from scalertest import *

S = {}  # what the steps found, in order
LOCK = "/run/lock/scaler-test-package.lock"


def run(argv, timeout=120, **kw):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCALER_")}  # the installed daemon uses its own plugin dir
    env.update(kw.pop("env", {}))
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, **kw)


def take_turns():
    """Hold the machine's lock of this test until the process exits."""
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    waited = False
    deadline = time.monotonic() + 3600
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if not waited:
                log("another run of this test holds %s; waiting for it" % LOCK)
                waited = True
            if time.monotonic() > deadline:
                raise RuntimeError("%s still held after an hour" % LOCK)
            time.sleep(1)


def dpkg(args, timeout=300):
    """dpkg ARGS, waiting (up to 10 minutes) while another dpkg or apt holds
    dpkg's lock instead of failing."""
    deadline = time.monotonic() + 600
    while True:
        r = run(["dpkg"] + args, timeout=timeout)
        if r.returncode == 0 or "locked by another process" not in r.stderr or \
                time.monotonic() > deadline:
            return r
        time.sleep(1)


def scaler_installed():
    st = run(["dpkg-query", "-W", "-f", "${Status}", "scaler"])
    return st.returncode == 0 and "not-installed" not in st.stdout and \
        "config-files" not in st.stdout


def preconditions():
    if os.geteuid() != 0:
        skip("needs root: it installs and purges the package")
    for tool in ("dpkg-buildpackage", "dh", "lintian"):
        if not shutil.which(tool):
            skip("%s is missing (apt-get install dpkg-dev debhelper lintian)" % tool)
    if "preinstalled" not in S:
        S["preinstalled"] = scaler_installed()
    if S["preinstalled"]:
        skip("scaler is already installed on this machine; not touching it")


def needs(step):
    check(step in S, "an earlier step (%s) failed; see above" % step)


def installed():
    return "debs_installed" in S


def purge():
    r = dpkg(["--purge", "scaler-dev", "scaler"])
    S.pop("debs_installed", None)
    return r


@test
def the_build_script_makes_scaler_and_scaler_dev_debs():
    preconditions()
    out = os.path.join(tmpdir(), "dist")
    r = run([os.path.join(srcdir(), "packaging", "deb", "build"), out], timeout=1800)
    if r.returncode != 0:
        log(r.stdout[-6000:])
        log(r.stderr[-6000:])
    check(r.returncode == 0, "packaging/deb/build: expected exit 0, got %d" % r.returncode)
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    version = run(["dpkg-parsechangelog", "-l",
                   os.path.join(srcdir(), "packaging/deb/debian/changelog"), "-S", "Version"]).stdout.strip()
    for pkg in ("scaler", "scaler-dev"):
        path = os.path.join(out, "%s_%s_%s.deb" % (pkg, version, arch))
        check(os.path.exists(path), "%s in %s (have: %s)" % (os.path.basename(path), out,
                                                            ", ".join(sorted(os.listdir(out)))))
        S[pkg] = path
    S["multiarch"] = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()
    S["built"] = True


@test
def the_packages_hold_what_an_operator_needs_and_no_la_files():
    preconditions()
    needs("built")
    ma = S["multiarch"]
    files = run(["dpkg-deb", "-c", S["scaler"]]).stdout
    paths = [l.split()[-1].lstrip(".") for l in files.splitlines() if l.split()]
    paths = [p.split(" -> ")[0] for p in paths]
    for want in ("/usr/sbin/scalerd", "/usr/bin/scalerctl", "/usr/bin/scaler-app",
                 "/etc/scaler/scaler.conf", "/usr/lib/%s/scaler/driver_process.so" % ma,
                 "/usr/share/man/man8/scalerd.8.gz", "/usr/share/man/man1/scalerctl.1.gz",
                 "/usr/share/man/man1/scaler-app.1.gz", "/usr/share/man/man5/scaler.conf.5.gz"):
        check(want in paths, "%s in the scaler package; it has:\n%s" % (want, "\n".join(paths)))
    check(any(p.endswith("/systemd/system/scaler.service") for p in paths),
          "the systemd unit in the scaler package")
    check(not [p for p in paths if p.endswith(".la")], "no .la files: %r"
          % [p for p in paths if p.endswith(".la")])
    plugins = [p for p in paths if p.startswith("/usr/lib/%s/scaler/" % ma) and p.endswith(".so")]
    log("plugins: " + ", ".join(os.path.basename(p) for p in plugins))
    conffiles = run(["dpkg-deb", "-I", S["scaler"], "conffiles"]).stdout.split()
    check("/etc/scaler/scaler.conf" in conffiles, "scaler.conf is a conffile: %r" % conffiles)
    dev = run(["dpkg-deb", "-c", S["scaler-dev"]]).stdout
    for want in ("./usr/include/scaler/plugin.h", "./usr/lib/%s/pkgconfig/scaler-plugin.pc" % ma,
                 "./usr/share/man/man7/scaler-plugin.7.gz"):
        check(want in dev, "%s in scaler-dev:\n%s" % (want, dev))
    r = run(["sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xO --wildcards "
             "'*/systemd/system/scaler.service'", "sh", S["scaler"]])
    check(r.returncode == 0, "the unit file can be read from the package: %s" % r.stderr)
    unit = r.stdout.splitlines()
    for line in ("Type=notify", "ExecStart=/usr/sbin/scalerd -c /etc/scaler/scaler.conf",
                 "ExecReload=/bin/kill -HUP $MAINPID", "User=scaler", "StateDirectory=scaler",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "WantedBy=multi-user.target", "LogsDirectory=scaler",
                 # the zone balancers bind 80/443 as user scaler, and nothing more
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"):
        check(line in unit, "%r in scaler.service:\n%s" % (line, r.stdout))
    check([l for l in unit if l.startswith("Capabilit") or l.startswith("Ambient")] ==
          ["CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE"],
          "no other capability granted:\n%s" % r.stdout)
    check(any(l.startswith("#LoadCredential=") for l in unit),
          "the unit shows how to hand a TLS key over with LoadCredential=:\n%s" % r.stdout)
    # the access logs' rotation, with the signal that makes the workers reopen them
    check("/etc/logrotate.d/scaler" in paths, "/etc/logrotate.d/scaler in the scaler package")
    r = run(["sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xO --wildcards '*/logrotate.d/scaler'",
             "sh", S["scaler"]])
    check("/var/log/scaler/*.log {" in r.stdout and "--signal=USR1 scaler.service" in r.stdout,
          "the logrotate snippet rotates /var/log/scaler/*.log and sends SIGUSR1:\n%s" % r.stdout)


@test
def lintian_finds_no_errors():
    preconditions()
    needs("built")
    r = run(["lintian", "--tag-display-limit", "0", S["scaler"], S["scaler-dev"]], timeout=600)
    lines = r.stdout.splitlines()
    errors = [l for l in lines if l.startswith("E:")]
    warnings = [l for l in lines if l.startswith("W:")]
    if warnings:
        log("lintian warnings:\n" + "\n".join(warnings))
    check(not errors, "no lintian errors, got:\n" + "\n".join(errors))


@test
def installing_creates_the_user_and_a_private_token():
    preconditions()
    needs("built")
    r = dpkg(["-i", S["scaler"], S["scaler-dev"]])
    S["debs_installed"] = True
    check(r.returncode == 0, "dpkg -i: expected exit 0, got %d:\n%s%s"
          % (r.returncode, r.stdout, r.stderr))
    user = pwd.getpwnam("scaler")
    check(user.pw_uid < 1000, "scaler is a system user (uid %d)" % user.pw_uid)
    group = grp.getgrnam("scaler")
    st = os.stat("/etc/scaler/token")
    check_eq(stat.S_IMODE(st.st_mode), 0o640, "mode of /etc/scaler/token")
    check_eq((st.st_uid, st.st_gid), (0, group.gr_gid), "owner root:scaler of /etc/scaler/token")
    token = open("/etc/scaler/token").read()
    check(re.fullmatch(r"[0-9a-f]{64}\n", token), "the token is 32 random bytes in hex: %r" % token)
    conf = open("/etc/scaler/scaler.conf").read()
    check(re.search(r'(?m)^\s*token_file = "/etc/scaler/token";', conf),
          "the packaged scaler.conf uses /etc/scaler/token")
    unit = (glob.glob("/lib/systemd/system/scaler.service") +
            glob.glob("/usr/lib/systemd/system/scaler.service"))
    check(unit, "scaler.service installed")
    if shutil.which("systemd-analyze"):
        r = run(["systemd-analyze", "verify", unit[0]])
        check(r.returncode == 0 and "scaler.service" not in r.stderr,
              "systemd-analyze verify scaler.service: exit %d\n%s" % (r.returncode, r.stderr))
    # a reinstall keeps the token
    r = dpkg(["-i", S["scaler"]])
    check_eq(open("/etc/scaler/token").read(), token, "token after reinstalling")
    S["installed"] = True


@test
def the_installed_scalerd_accepts_the_packaged_config():
    preconditions()
    needs("installed")
    r = run(["/usr/sbin/scalerd", "-t", "-c", "/etc/scaler/scaler.conf"])
    check(r.returncode == 0, "scalerd -t -c /etc/scaler/scaler.conf: expected exit 0, got %d:\n%s%s"
          % (r.returncode, r.stdout, r.stderr))
    r = run(["/usr/bin/scalerctl", "--version"])
    check(r.returncode == 0 and r.stdout.startswith("scalerctl "), "scalerctl --version: %r" % r.stdout)
    for page in ("scalerd", "scalerctl", "scaler-app", "scaler.conf"):
        r = run(["man", "-w", page])
        check(r.returncode == 0, "man page %s is installed: %s" % (page, r.stderr))


def header_abi(path):
    text = open(path).read()
    ver = [re.search(r"#define SCALER_ABI_%s (\d+)" % part, text) for part in ("MAJOR", "MINOR")]
    check(all(ver), "SCALER_ABI_MAJOR and SCALER_ABI_MINOR defined in %s" % path)
    return "%s.%s" % (ver[0].group(1), ver[1].group(1))


@test
def the_installed_scaler_dev_gives_a_working_pkg_config_file_and_its_man_page():
    """What a plugin author has after apt-get install scaler-dev: pkg-config
    scaler-plugin (no PKG_CONFIG_PATH) names the ABI of the installed header
    and the directory the installed scalerd loads plugins from, its flags
    build the example plugins, and man 7 scaler-plugin is there."""
    preconditions()
    needs("installed")
    env = {"PKG_CONFIG_PATH": "", "PKG_CONFIG_SYSROOT_DIR": "", "PKG_CONFIG_LIBDIR": ""}
    env = {k: v for k, v in os.environ.items() if k not in env and not k.startswith("SCALER_")
           and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}

    def pc(*args):
        r = subprocess.run(["pkg-config"] + list(args) + ["scaler-plugin"], capture_output=True,
                           text=True, timeout=30, env=env)
        check(r.returncode == 0, "pkg-config %s scaler-plugin with the installed scaler-dev: "
              "exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r.stdout.strip()

    pcfile = "/usr/lib/%s/pkgconfig/scaler-plugin.pc" % S["multiarch"]
    check(os.path.exists(pcfile), "%s installed" % pcfile)
    check_eq(pc("--variable=abi"), header_abi("/usr/include/scaler/plugin.h"),
             "pkg-config --variable=abi against the installed <scaler/plugin.h>")
    check_eq(pc("--variable=abi"), header_abi(os.path.join(srcdir(), "include/scaler/plugin.h")),
             "pkg-config --variable=abi against the source tree's header")
    plugindir = pc("--variable=plugindir")
    check_eq(plugindir, "/usr/lib/%s/scaler" % S["multiarch"], "pkg-config --variable=plugindir")
    check(os.path.exists(os.path.join(plugindir, "driver_process.so")),
          "the plugindir variable (%s) holds the packaged plugins" % plugindir)
    local = pc("--variable=localplugindir")
    check(local.startswith("/") and local != plugindir,
          "pkg-config --variable=localplugindir: an absolute directory before the packaged one, "
          "got %r" % local)
    check(not local.startswith("/usr/lib/") and not local.startswith("/lib/"),
          "the local plugin directory is not under the packaged /usr/lib: %r" % local)
    cflags = pc("--cflags")
    check(srcdir() not in cflags and builddir() not in cflags,
          "the installed --cflags point at no source or build tree: %s" % cflags)
    libs = pc("--libs").split()
    for lib in ("-lev", "-lconfig", "-lhiredis"):
        check(lib in libs, "pkg-config --libs names %s: %s" % (lib, libs))

    # the example plugins, C and C++, built with the installed flags alone,
    # and loaded by the installed scalerd from plugindir's neighbour
    ex = os.path.join(tmpdir(), "examples-installed")
    shutil.copytree(os.path.join(srcdir(), "examples", "plugins"), ex)
    os.chmod(tmpdir(), 0o711)
    os.chmod(ex, 0o755)
    r = subprocess.run(["make", "-C", ex], capture_output=True, text=True, timeout=300, env=env)
    check(r.returncode == 0, "make in a copy of examples/plugins with the installed scaler-dev:"
          "\n%s%s" % (r.stdout[-3000:], r.stderr[-3000:]))
    conf = write_file("installed-sdk.conf", """node = { id = 1; };
plugin_dir = [ "%s", "%s" ];
driver = { plugin = "shell"; create = "true"; remove = "true"; list = "true"; };
metrics = { plugin = "loadavg"; };
policy = { plugin = "band"; low = 10.0; high = 80.0; };
zones = ( { name = "z1"; listen = "127.0.0.1:1"; admin = "127.0.0.1:2";
            policy = { plugin = "band_cxx"; high = 70.0; }; } );
""" % (ex, plugindir))
    r = run(["/usr/sbin/scalerd", "-t", "-c", conf])
    check(r.returncode == 0, "the installed scalerd -t loads the examples built with the "
          "installed SDK: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))

    r = run(["man", "-w", "7", "scaler-plugin"])
    check(r.returncode == 0, "man 7 scaler-plugin is installed: %s" % r.stderr)
    page = r.stdout.strip()
    owner = run(["dpkg-query", "-S", page])
    check(owner.returncode == 0 and owner.stdout.startswith("scaler-dev:"),
          "%s belongs to scaler-dev: %s%s" % (page, owner.stdout, owner.stderr))
    r = run(["man", "--warnings", "-l", page], env={"MANWIDTH": "80"})
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    check(r.returncode == 0 and not r.stderr.strip() and len(lines) > 50,
          "man 7 scaler-plugin renders without warnings: exit %d, %d lines (expected > 50), "
          "stderr: %s" % (r.returncode, len(lines), r.stderr))
    check("SCALER_PLUGIN_DEFINE" in r.stdout, "the page explains SCALER_PLUGIN_DEFINE")
    S["sdk"] = pcfile, page


def alive(pid):
    """pid runs (a zombie does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


RECORDS = "/var/lib/scaler/servers"  # the packaged state_dir's, as the prerm finds them


def recorded_servers():
    """(pid, starttime) of each server the process driver recorded."""
    found = []
    for path in glob.glob(os.path.join(RECORDS, "*.json")):
        with open(path) as f:
            rec = json.load(f)
        found.append((int(rec["pid"]), int(rec["starttime"])))
    return found


def starttime(pid):
    """The kernel's start time of live process `pid` (the driver records it
    next to the pid, so a recycled pid is not taken for the server), else 0."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return 0 if fields[0] in "ZX" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def processes_of(uid):
    """Live processes of user `uid` in this mount namespace (containers on
    this machine may run their own scaler as a uid of the same number)."""
    mine = os.stat("/proc/self/ns/mnt").st_ino
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.stat("/proc/%s" % p).st_uid != uid or \
                    os.stat("/proc/%s/ns/mnt" % p).st_ino != mine or not alive(int(p)):
                continue
            with open("/proc/%s/cmdline" % p, "rb") as f:
                found.append("%s %s" % (p, f.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


@test
def the_installed_daemon_runs_as_scaler_and_answers_scalerctl():
    preconditions()
    needs("installed")
    redis = Redis()
    # ports below the ephemeral range: no other test's outgoing connection
    # can take one of them between now and the bind
    base, _ = free_port_range(100)
    admin = base
    conf = open("/etc/scaler/scaler.conf").read()
    conf = re.sub(r'(?m)^(\s*)admin = "127\.0\.0\.1:9000";', r'\1admin = "127.0.0.1:%d";' % admin, conf)
    check(str(admin) in conf, "node.admin of the packaged config could be moved to a free port")
    conf = re.sub(r'(?m)^redis = ".*";', 'redis = "%s";' % redis.url(), conf)
    for z in (1, 2, 3):
        lo = base + 20 * z
        conf = conf.replace('"127.0.0.1:808%d";' % z, '"127.0.0.1:%d"; ports = [%d, %d];'
                            % (base + 2 * z - 1, lo, lo + 19))
        conf = conf.replace('"127.0.0.1:908%d"' % z, '"127.0.0.1:%d"' % (base + 2 * z))
    # the packaged state_dir (/var/lib/scaler), where the package finds the
    # servers again when it is removed; the copy is readable by group scaler
    os.chmod(tmpdir(), 0o711)
    confdir = os.path.join(tmpdir(), "installed")
    os.makedirs(confdir)
    gid = grp.getgrnam("scaler").gr_gid
    os.chown(confdir, 0, gid)
    os.chmod(confdir, 0o750)
    path = os.path.join(confdir, "scaler.conf")
    with open(path, "w") as f:
        f.write(conf)
    os.chown(path, 0, gid)
    os.chmod(path, 0o640)
    r = run(["/usr/sbin/scalerd", "-t", "-c", path])
    check(r.returncode == 0, "scalerd -t on the test copy of the config:\n%s%s" % (r.stdout, r.stderr))

    # as systemd runs it: user and group scaler. The test environment's
    # SCALER_PLUGIN_DIR points at the build tree; the installed daemon must
    # load the installed plugins.
    d = Proc(["/usr/bin/setpriv", "--reuid=scaler", "--regid=scaler", "--init-groups",
              "/usr/bin/env", "-u", "SCALER_PLUGIN_DIR", "/usr/sbin/scalerd", "-c", path],
             name="scalerd-installed")
    token = open("/etc/scaler/token").read().strip()
    try:
        def role():
            r = run(["/usr/bin/scalerctl", "-c", path, "--json", "status"], timeout=20)
            return r.returncode == 0 and json.loads(r.stdout)["node"]["role"] == "primary"
        wait_until(role, 30, "the installed scalerd to be primary (single election), "
                   "asked with the installed scalerctl")

        def serving():
            st, body = http_json("GET", "http://127.0.0.1:%d/servers" % admin,
                                 headers={"Authorization": "Bearer " + token})
            return [x for x in body if x["state"] == "serving"] if st == 200 else []
        wait_until(lambda: len(serving()) == 3, 60, "one serving server in each of 3 zones")
        # "pid:starttime": a pid recycled by another process is not the server
        S["servers"] = [tuple(map(int, x["ref"].split(":"))) for x in serving()]
        r = run(["/usr/bin/scalerctl", "-c", path, "status"], timeout=20)
        log(r.stdout)
        check_eq(r.returncode, 0, "scalerctl status exit status")
        for z in ("zone1", "zone2", "zone3"):
            check(z in r.stdout, "%s in scalerctl status:\n%s" % (z, r.stdout))
        check("(primary, epoch " in r.stdout, "this single node is primary:\n" + r.stdout)
        # reload is a mutating endpoint: the token comes from node.token_file
        r = run(["/usr/bin/scalerctl", "-c", path, "reload"], timeout=20)
        check(r.returncode == 0, "scalerctl reload with the packaged token: exit %d\n%s"
              % (r.returncode, r.stderr))
        r = run(["/usr/bin/scalerctl", "-u", "http://127.0.0.1:%d" % admin, "reload"],
                env={"SCALER_CONF": write_file("empty.conf", "")})
        check_eq(r.returncode, 3, "scalerctl reload without the token: exit status")
    finally:
        rc = d.stop(timeout=20)
        if rc != 0:
            log(d.output()[-4000:])
    check_eq(rc, 0, "scalerd's exit status after SIGTERM")
    # the servers as scalerd left them: a server replaced (a health check
    # that timed out on a loaded machine) after the list above was read is
    # not one of them, its successor is
    recorded = recorded_servers()
    check(len(recorded) >= 3, "the process driver's records of at least 3 servers in %s, "
          "found %r" % (RECORDS, recorded))
    gone = [p for p, t in recorded if starttime(p) != t]
    check(not gone, "the servers outlive a stop of scalerd (by design); gone: %r" % gone)
    S["servers"] = sorted(set(recorded) | set(S["servers"]))


@test
def purging_stops_the_servers_and_leaves_no_files_no_user_and_no_process():
    preconditions()
    needs("built")
    uid = pwd.getpwnam("scaler").pw_uid
    r = purge()
    check(r.returncode == 0, "dpkg --purge: expected exit 0, got %d:\n%s%s"
          % (r.returncode, r.stdout, r.stderr))
    log(r.stdout.strip())
    left = [p for p, t in S.get("servers", []) if starttime(p) == t]
    check(not left, "no server of the installed scalerd left running after the purge, found "
          "pids %r" % left)
    procs = processes_of(uid)
    check(not procs, "no process of user scaler left, found:\n" + "\n".join(procs))
    left = [p for p in ("/etc/scaler", "/usr/sbin/scalerd", "/usr/bin/scalerctl",
                        "/usr/bin/scaler-app", "/usr/lib/%s/scaler" % S["multiarch"],
                        "/usr/include/scaler", "/var/lib/scaler")
            if os.path.lexists(p)]
    left += [p for p in S.get("sdk", ()) if os.path.lexists(p)]
    left += glob.glob("/lib/systemd/system/scaler.service") + \
        glob.glob("/usr/lib/systemd/system/scaler.service")
    check(not left, "nothing left after purge, found: %r" % left)
    for db, name in ((pwd.getpwnam, "user"), (grp.getgrnam, "group")):
        try:
            db("scaler")
            found = True
        except KeyError:
            found = False
        check(not found, "no %s scaler after purge" % name)


def _cleanup_install():
    if installed():
        purge()


if __name__ == "__main__":
    import atexit
    turn = take_turns()
    atexit.register(_cleanup_install)
    main()
