#!/usr/bin/env python3
"""The Debian packages: packaging/deb/build makes them, lintian finds no
errors, they install, the installed scalerd accepts its packaged config and
runs (checked with the installed scalerctl), and a purge leaves nothing.

This installs into the machine it runs on, so it runs only as root, on a
machine where scaler is not already installed."""
import glob
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess

from scalertest import *

S = {}  # what the steps found, in order


def run(argv, timeout=120, **kw):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCALER_")}  # the installed daemon uses its own plugin dir
    env.update(kw.pop("env", {}))
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, **kw)


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
    r = run(["dpkg", "--purge", "scaler-dev", "scaler"])
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
    for want in ("./usr/include/scaler/plugin.h", "./usr/lib/%s/pkgconfig/scaler-plugin.pc" % ma):
        check(want in dev, "%s in scaler-dev:\n%s" % (want, dev))
    r = run(["sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xO --wildcards "
             "'*/systemd/system/scaler.service'", "sh", S["scaler"]])
    check(r.returncode == 0, "the unit file can be read from the package: %s" % r.stderr)
    unit = r.stdout.splitlines()
    for line in ("Type=notify", "ExecStart=/usr/sbin/scalerd -c /etc/scaler/scaler.conf",
                 "ExecReload=/bin/kill -HUP $MAINPID", "User=scaler", "StateDirectory=scaler",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "WantedBy=multi-user.target"):
        check(line in unit, "%r in scaler.service:\n%s" % (line, r.stdout))


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
    r = run(["dpkg", "-i", S["scaler"], S["scaler-dev"]], timeout=300)
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
    r = run(["dpkg", "-i", S["scaler"]], timeout=300)
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


@test
def the_installed_daemon_runs_and_answers_scalerctl():
    preconditions()
    needs("installed")
    redis = Redis()
    conf = open("/etc/scaler/scaler.conf").read()
    admin = free_port()
    conf = re.sub(r'(?m)^(\s*)admin = "127\.0\.0\.1:9000";', r'\1admin = "127.0.0.1:%d";' % admin, conf)
    check(str(admin) in conf, "node.admin of the packaged config could be moved to a free port")
    conf = re.sub(r'(?m)^redis = ".*";', 'redis = "%s";' % redis.url(), conf)
    # zones on free ports, so that nothing else on this machine is in the way
    for z in (1, 2, 3):
        conf = conf.replace('"127.0.0.1:808%d"' % z, '"127.0.0.1:%d"' % free_port())
        conf = conf.replace('"127.0.0.1:908%d"' % z, '"127.0.0.1:%d"' % free_port())
    state = os.path.join(tmpdir(), "state")
    os.makedirs(state)
    conf += '\nstate_dir = "%s";\n' % state
    path = write_file("installed.conf", conf)
    r = run(["/usr/sbin/scalerd", "-t", "-c", path])
    check(r.returncode == 0, "scalerd -t on the test copy of the config:\n%s%s" % (r.stdout, r.stderr))

    # the test environment's SCALER_PLUGIN_DIR points at the build tree; the
    # installed daemon must load the installed plugins
    d = Proc(["/usr/bin/env", "-u", "SCALER_PLUGIN_DIR", "/usr/sbin/scalerd", "-c", path],
             name="scalerd-installed")
    try:
        def role():
            r = run(["/usr/bin/scalerctl", "-c", path, "--json", "status"], timeout=20)
            return r.returncode == 0 and json.loads(r.stdout)["node"]["role"] == "primary"
        wait_until(role, 30, "the installed scalerd to be primary (single election), "
                   "asked with the installed scalerctl")
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


@test
def purging_leaves_no_files_and_no_user():
    preconditions()
    needs("built")
    r = purge()
    check(r.returncode == 0, "dpkg --purge: expected exit 0, got %d:\n%s%s"
          % (r.returncode, r.stdout, r.stderr))
    left = [p for p in ("/etc/scaler", "/usr/sbin/scalerd", "/usr/bin/scalerctl",
                        "/usr/bin/scaler-app", "/usr/lib/%s/scaler" % S["multiarch"],
                        "/usr/include/scaler", "/var/lib/scaler")
            if os.path.lexists(p)]
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
    atexit.register(_cleanup_install)
    main()
