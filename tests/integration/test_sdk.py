"""The plugin SDK as a third-party author meets it: the header and
scaler-plugin.pc installed into a DESTDIR and nothing else (pkg-config
only, no -I into the source tree); the example plugins (C and C++) built
out of tree and run; every C example of the README and the man pages
compiled; and what scalerd -t says about plugins: a missing operation,
FILE:LINE: SETTING, a relative plugin_dir, the plugin search path."""
import glob
import json
import os
import re
import shutil
import subprocess

from scalertest import *

SCALERD = binary("scalerd")
WARN = ["-Wall", "-Wextra", "-Werror"]
S = {}


def run(argv, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def sdk():
    """Install the SDK (header, .pc) into a DESTDIR once; pkg-config's env."""
    if "env" in S:
        return S["env"]
    dest = os.path.join(tmpdir(), "destdir")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = run(["make", "-s", "-C", builddir(), "install-pkgincludeHEADERS",
             "install-pkgconfigDATA", "DESTDIR=" + dest], env=env)
    check(r.returncode == 0, "installing the SDK into a DESTDIR: %s%s" % (r.stdout, r.stderr))
    pcs = glob.glob(os.path.join(dest, "**", "scaler-plugin.pc"), recursive=True)
    check(len(pcs) == 1, "one scaler-plugin.pc installed under %s, found %r" % (dest, pcs))
    env = dict(env, PKG_CONFIG_PATH=os.path.dirname(pcs[0]), PKG_CONFIG_SYSROOT_DIR=dest)
    S["env"], S["dest"] = env, dest
    return env


def pkg_config(*args):
    r = run(["pkg-config"] + list(args) + ["scaler-plugin"], env=sdk())
    check(r.returncode == 0, "pkg-config %s scaler-plugin: %s" % (" ".join(args), r.stderr))
    return r.stdout.strip()


def header_abi():
    text = open(os.path.join(srcdir(), "include", "scaler", "plugin.h")).read()
    major = re.search(r"#define SCALER_ABI_MAJOR (\d+)", text).group(1)
    minor = re.search(r"#define SCALER_ABI_MINOR (\d+)", text).group(1)
    return "%s.%s" % (major, minor)


def build_examples():
    """Copy examples/plugins out of the tree and build them with its Makefile."""
    if "examples" in S:
        return S["examples"]
    out = os.path.join(tmpdir(), "examples")
    shutil.copytree(os.path.join(srcdir(), "examples", "plugins"), out)
    os.chmod(out, 0o755)
    r = run(["make", "-C", out], env=sdk())
    check(r.returncode == 0, "make in a copy of examples/plugins: %s%s" % (r.stdout, r.stderr))
    S["examples"] = out
    return out


def conf(name, body, plugin_dir):
    dirs = ", ".join('"%s"' % d for d in plugin_dir)
    return write_file(name, 'node = { id = 1; };\nplugin_dir = [ %s ];\n%s\n' % (dirs, body))


def scalerd_t(path, **kw):
    return run([SCALERD, "-t", "-c", path], **kw)


def builtins():
    return plugin_dir()


@test
def pkg_config_gives_the_abi_and_every_flag_a_plugin_needs():
    check_eq(pkg_config("--variable=abi"), header_abi(), "pkg-config --variable=abi")
    cflags = pkg_config("--cflags")
    check("-I%s/" % S["dest"] in cflags,
          "--cflags point into the installed SDK (DESTDIR %s): %s" % (S["dest"], cflags))
    check(srcdir() not in cflags, "--cflags do not point into the source tree: %s" % cflags)
    libs = pkg_config("--libs").split()
    for lib in ("-lev", "-lconfig", "-lhiredis"):
        check(lib in libs, "pkg-config --libs names %s (libev has no .pc file): %s" % (lib, libs))
    check(pkg_config("--variable=plugindir").endswith("/scaler"), "plugindir variable")
    check(pkg_config("--variable=localplugindir"), "localplugindir variable")


@test
def the_examples_build_from_the_installed_sdk_alone_and_scalerd_loads_them():
    ex = build_examples()
    for so in ("policy_band.so", "policy_band_cxx.so", "metrics_loadavg.so", "driver_shell.so"):
        check(os.path.exists(os.path.join(ex, so)), "%s built in %s" % (so, ex))
    body = """
driver = { plugin = "shell"; create = "true"; remove = "true"; list = "true"; };
metrics = { plugin = "loadavg"; };
policy = { plugin = "band"; low = 10.0; high = 80.0; };
zones = ( { name = "z1"; listen = "127.0.0.1:1"; admin = "127.0.0.1:2";
            policy = { plugin = "band_cxx"; high = 70.0; }; } );
"""
    r = scalerd_t(conf("examples.conf", body, [ex, builtins()]))
    check(r.returncode == 0, "scalerd -t with the example plugins: exit %d\n%s%s"
          % (r.returncode, r.stdout, r.stderr))
    # and their settings are checked like the built-ins'
    r = scalerd_t(conf("examples-bad.conf", body.replace("low = 10.0", "low = 90.0"),
                       [ex, builtins()]))
    check(r.returncode == 1 and re.search(r"examples-bad\.conf:\d+: policy: low", r.stderr),
          "a bad setting of the example policy refused with FILE:LINE: SETTING: %s" % r.stderr)
    # make install puts them in the local directory, searched first (the
    # SDK sits under a DESTDIR here, so pkg-config's sysroot is in the path)
    local = pkg_config("--variable=localplugindir")
    check(local.startswith(S["dest"]), "localplugindir under the SDK's DESTDIR: %s" % local)
    r = run(["make", "-C", ex, "install"], env=sdk())
    check(r.returncode == 0, "make install of the examples: %s%s" % (r.stdout, r.stderr))
    for so in ("policy_band.so", "policy_band_cxx.so", "metrics_loadavg.so", "driver_shell.so"):
        check(os.path.isfile(os.path.join(local, so)),
              "%s installed into localplugindir %s: %r" % (so, local, os.listdir(local)
                                                           if os.path.isdir(local) else None))


@test
def a_cxx_plugin_builds_with_cxx17_and_cxx20_and_loads():
    ex = build_examples()
    for std in ("c++17", "c++20"):
        out = os.path.join(tmpdir(), "cxx-" + std)
        os.makedirs(out, exist_ok=True)
        so = os.path.join(out, "policy_band_cxx.so")
        cflags, libs = pkg_config("--cflags").split(), pkg_config("--libs").split()
        r = run(["g++", "-std=" + std] + WARN + ["-shared", "-fPIC", "-fvisibility=hidden"] +
                cflags + ["-o", so, os.path.join(ex, "policy_band_cxx.cpp")] + libs)
        check(r.returncode == 0, "g++ -std=%s of policy_band_cxx.cpp:\n%s" % (std, r.stderr))
        nm = run(["nm", "-D", "--defined-only", so]).stdout
        check(re.search(r" [DR] scaler_plugin$", nm, re.M),
              "the descriptor is exported unmangled (-std=%s):\n%s" % (std, nm))
        r = scalerd_t(conf("cxx.conf", 'policy = { plugin = "band_cxx"; };', [out, builtins()]))
        check(r.returncode == 0, "scalerd -t loads the C++ plugin (-std=%s): %s" % (std, r.stderr))


@test
def the_example_driver_makes_servers_with_shell_commands():
    ex = build_examples()
    state = os.path.join(tmpdir(), "shell-servers")
    open(state, "w").close()
    path = write_file("shell-driver.conf", """
cluster = "t1";
driver = { plugin = "shell";
  create = "echo http://127.0.0.1:$SCALER_PORT_MIN ref-$SCALER_SERVER_ID; echo $SCALER_SERVER_ID $SCALER_ZONE http://127.0.0.1:$SCALER_PORT_MIN ref-$SCALER_SERVER_ID >> %(s)s";
  list = "cat %(s)s";
  remove = "grep -v \\"^$SCALER_SERVER_ID \\" %(s)s > %(s)s.new; mv %(s)s.new %(s)s"; };
zones = ( { name = "z1"; port_min = 20500; port_max = 20599; } );
""" % {"s": state})
    r = run([binary("tests/driverctl"), "-d", ex + ":" + builtins(), "-c", path,
             "create", "z1", "z1-a", ";", "list", ";", "remove", "z1-a", ";", "list"])
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    check(r.returncode == 0 and len(lines) == 4,
          "driverctl create/list/remove/list through driver_shell: exit %d\n%s%s"
          % (r.returncode, r.stdout, r.stderr))
    check_eq((lines[0]["server"]["address"], lines[0]["server"]["ref"]),
             ("http://127.0.0.1:20500", "ref-z1-a"), "the created server")
    check_eq([s["id"] for s in lines[1]["servers"]], ["z1-a"], "servers listed after create")
    check_eq(lines[3]["servers"], [], "servers listed after remove")


@test
def the_example_metrics_plugin_answers_later_with_the_hosts_average():
    ex = build_examples()
    r = run([binary("metrics-query"), "-p", "loadavg", "z1", "a", "b"],
            env=dict(os.environ, SCALER_PLUGIN_DIR=ex))
    check(r.returncode == 0, "metrics-query -p loadavg: exit %d\n%s" % (r.returncode, r.stderr))
    res = json.loads(r.stdout.splitlines()[0])
    check_eq([v["missing"] for v in res["values"]], [False, False], "both servers have a value")
    check(res["average_valid"] and res["average"] == res["values"][0]["value"],
          "the zone average, computed by the host, is the servers' value: %r" % res)


def c_examples():
    """(where, code) of every C example in README.md and the man pages."""
    found = []
    readme = open(os.path.join(srcdir(), "README.md")).read()
    for i, m in enumerate(re.finditer(r"```c\n(.*?)```", readme, re.S)):
        found.append(("README.md C example %d" % (i + 1), m.group(1)))
    for page in sorted(glob.glob(os.path.join(srcdir(), "man", "*.[0-9]"))):
        text = open(page).read()
        for i, m in enumerate(re.finditer(r'^\.\\" example: c.*?\n\.nf\n(.*?)\n\.fi', text,
                                          re.S | re.M)):
            code = (m.group(1).replace("\\-", "-").replace("\\(dq", '"')
                    .replace("\\e", "\\"))
            found.append(("%s example %d" % (os.path.basename(page), i + 1), code))
    return found


@test
def every_c_example_of_the_docs_compiles():
    examples = c_examples()
    check(len(examples) >= 2, "C examples found in README.md and the man pages: %d"
          % len(examples))
    cflags = pkg_config("--cflags").split()
    for where, code in examples:
        src = write_file("doc-example.c", code)
        r = run(["cc", "-std=gnu11", "-c", "-fPIC"] + WARN + cflags +
                ["-o", os.path.join(tmpdir(), "doc-example.o"), src])
        check(r.returncode == 0, "%s does not compile with cc %s:\n%s\n%s"
              % (where, " ".join(WARN), r.stderr, code))
        if not where.startswith("README"):
            continue
        # the README says its example builds as C++ too
        src = write_file("doc-example.cpp", code)
        r = run(["g++", "-std=c++17", "-c", "-fPIC"] + WARN + cflags +
                ["-o", os.path.join(tmpdir(), "doc-example.o"), src])
        check(r.returncode == 0, "%s does not compile as C++17:\n%s" % (where, r.stderr))


def own_plugin_dir(name, *sos):
    """A fresh plugin directory holding copies of the given built plugins."""
    d = os.path.join(tmpdir(), name)
    os.makedirs(d, mode=0o755)
    for so in sos:
        shutil.copy(so, d)
    return d


@test
def scalerd_t_refuses_a_policy_without_decide_naming_file_line_and_setting():
    d = own_plugin_dir("nodecide", os.path.join(builddir(), "tests", "plugins", ".libs",
                                                "policy_nodecide.so"))
    path = conf("nodecide.conf", '\n\npolicy = { plugin = "nodecide"; };', [d, builtins()])
    r = scalerd_t(path)
    check_eq(r.returncode, 1, "exit status of scalerd -t (%s)" % r.stderr)
    check(re.search(r"nodecide\.conf:5: policy\.plugin: .*policy_nodecide\.so.*decide", r.stderr),
          "expected FILE:LINE: policy.plugin and the missing decide() in: %s" % r.stderr)


@test
def a_plugin_that_is_not_found_is_reported_at_its_line():
    path = conf("nosuch.conf", '\n\ndriver = {\n  plugin = "nosuch";\n};', [builtins()])
    r = scalerd_t(path)
    check_eq(r.returncode, 1, "exit status of scalerd -t")
    check(re.search(r"nosuch\.conf:6: driver\.plugin: driver plugin \"nosuch\" not found: "
                    r"no driver_nosuch\.so in ", r.stderr),
          "expected FILE:LINE: driver.plugin: ... not found in: %s" % r.stderr)


@test
def a_plugin_dir_without_the_default_plugins_is_reported_at_its_line():
    empty = own_plugin_dir("empty")
    r = scalerd_t(write_file("empty-dir.conf", 'node = { id = 1; };\n\nplugin_dir = "%s";\n'
                             % empty))
    check_eq(r.returncode, 1, "exit status of scalerd -t")
    check(re.search(r"empty-dir\.conf:3: plugin_dir: driver plugin \"process\" not found: "
                    r"no driver_process\.so in %s" % re.escape(empty), r.stderr),
          "expected FILE:LINE: plugin_dir: ... not found in: %s" % r.stderr)


@test
def a_plugin_dir_refused_as_a_directory_is_reported_once_at_its_line():
    builtin = [os.path.join(builtins(), f) for f in os.listdir(builtins()) if f.endswith(".so")]
    open_dir = own_plugin_dir("world-writable", *builtin)
    os.chmod(open_dir, 0o1777)  # sticky, as /tmp: still anyone's to fill
    link = os.path.join(tmpdir(), "plugins-link")
    os.symlink(own_plugin_dir("linked", *builtin), link)
    not_dir = write_file("not-a-directory", "")
    for name, d, why in (("ww", open_dir, "world-writable"), ("link", link, "symbolic link"),
                         ("file", not_dir, "Not a directory")):
        r = scalerd_t(write_file("bad-dir-%s.conf" % name,
                                 'node = { id = 1; };\n\nplugin_dir = "%s";\n' % d))
        check_eq(r.returncode, 1, "exit status of scalerd -t with plugin_dir %s" % d)
        lines = [ln for ln in r.stderr.splitlines() if why in ln]
        check(len(lines) == 1 and re.search(r"bad-dir-%s\.conf:3: plugin_dir: .*%s"
                                            % (name, re.escape(d)), lines[0]),
              "expected one line FILE:LINE: plugin_dir: naming %s and why (%s), got: %s"
              % (d, why, r.stderr))


@test
def a_relative_plugin_dir_is_relative_to_the_config_file():
    d = os.path.join(tmpdir(), "relconf")
    os.makedirs(d)
    rel = os.path.relpath(builtins(), d)
    with open(os.path.join(d, "scaler.conf"), "w") as f:
        f.write('node = { id = 1; };\nplugin_dir = "%s";\n' % rel)
    for cwd in ("/", d):
        r = scalerd_t(os.path.join(d, "scaler.conf"), cwd=cwd)
        check(r.returncode == 0, "plugin_dir = \"%s\" from cwd %s: %s" % (rel, cwd, r.stderr))
    r = scalerd_t("scaler.conf", cwd=d)
    check(r.returncode == 0, "a relative config path and plugin_dir: %s" % r.stderr)


@test
def local_plugins_come_first_and_shadowing_is_logged_once():
    local = own_plugin_dir("local", os.path.join(builtins(), "policy_threshold.so"))
    body = """
policy = { plugin = "threshold"; };
zones = ( { name = "z1"; listen = "127.0.0.1:1"; admin = "127.0.0.1:2";
            policy = { plugin = "threshold"; max_cpu = 80.0; }; },
          { name = "z2"; listen = "127.0.0.1:3"; admin = "127.0.0.1:4";
            policy = { plugin = "threshold"; max_cpu = 90.0; }; } );
"""
    r = scalerd_t(conf("shadow.conf", body, [local, builtins()]))
    check(r.returncode == 0, "scalerd -t: %s" % r.stderr)
    lines = [l for l in r.stderr.splitlines() if "shadows" in l]
    check_eq(len(lines), 1, "lines saying a plugin shadows another (policy loaded 3 times): %r"
             % r.stderr)
    check("%s/policy_threshold.so shadows %s/policy_threshold.so" % (local, builtins())
          in lines[0], "the local plugin shadows the packaged one: %s" % lines[0])


if __name__ == "__main__":
    if not shutil.which("pkg-config") or not shutil.which("g++"):
        print("1..0 # SKIP pkg-config or g++ missing (apt-get install pkg-config g++)")
        raise SystemExit(0)
    main()
