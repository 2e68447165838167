#!/usr/bin/env python3
"""scripts/demo, smoke-tested: `scripts/demo --smoke` uses the build tree
(no apt-get, no build), free ports, runs only the scale-up step with zone1's
max at 2, and stops everything it started."""
import os
import re
import subprocess

from scalertest import *

DEMO = os.path.join(srcdir(), "scripts", "demo")


def tagged(tag):
    """Processes whose environment carries SCALER_DEMO_ID=tag."""
    want = ("SCALER_DEMO_ID=" + tag).encode()
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                if want not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
            with open("/proc/%s/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        found.append("%s %s" % (p, cmd))
    return found


@test
def demo_help_exits_0_and_an_unknown_option_exits_1():
    r = subprocess.run([DEMO, "--help"], capture_output=True, text=True, timeout=30)
    check_eq(r.returncode, 0, "exit status of scripts/demo --help")
    check("--no-scenario" in r.stdout and "--smoke" in r.stdout and "--smoke-requests" in r.stdout,
          "--help names the modes: %r" % r.stdout[:300])
    r = subprocess.run([DEMO, "--bogus"], capture_output=True, text=True, timeout=30)
    check_eq(r.returncode, 1, "exit status of scripts/demo --bogus")
    check("--bogus" in r.stderr, "the error names the option: %r" % r.stderr)


@test
def demo_smoke_scales_zone1_up_and_leaves_no_process_behind():
    import shutil
    if not shutil.which("redis-server"):
        skip("redis-server is not installed (apt-get install redis-server)")
    tag = "smoke-test-%d" % os.getpid()
    env = dict(os.environ, SCALER_DEMO_ID=tag, top_builddir=builddir())
    try:
        r = subprocess.run([DEMO, "--smoke"], env=env, capture_output=True, text=True, timeout=420)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        for line in tagged(tag):
            pid = int(line.split()[0])
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        raise CheckFailed("scripts/demo --smoke did not finish within 420 s; output:\n" + out[-3000:])
    out = r.stdout + r.stderr
    if r.returncode != 0:
        log(out[-4000:])
    check_eq(r.returncode, 0, "exit status of scripts/demo --smoke")
    check(re.search(r"^\s*event \S+\s+zone1\s+scale_up\s+1 -> 2\b", r.stdout, re.M),
          "a scale_up event of zone1 (1 -> 2) among the printed events")
    check(re.search(r"^PASS: zone1 scaled up to 2", r.stdout, re.M), "the PASS line")
    check(re.search(r"^--- POST \S+/load without the token -> 401\b", r.stdout, re.M),
          "the app servers refuse a control request without their token (401)")
    check("no process of this demo is left" in r.stdout, "the demo checked for leftovers")
    wait_until(lambda: not tagged(tag), 5, "no process of the demo left (tag %s)" % tag)


@test
def demo_smoke_requests_wakes_zone3_from_zero_scales_it_out_and_back_to_zero():
    import shutil
    if not shutil.which("redis-server"):
        skip("redis-server is not installed (apt-get install redis-server)")
    tag = "smoke-requests-%d" % os.getpid()
    env = dict(os.environ, SCALER_DEMO_ID=tag, top_builddir=builddir())
    try:
        r = subprocess.run([DEMO, "--smoke-requests"], env=env, capture_output=True, text=True,
                           timeout=300)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        for line in tagged(tag):
            try:
                os.kill(int(line.split()[0]), 9)
            except OSError:
                pass
        raise CheckFailed("scripts/demo --smoke-requests did not finish within 300 s; output:\n"
                          + out[-3000:])
    if r.returncode != 0:
        log((r.stdout + r.stderr)[-4000:])
    check_eq(r.returncode, 0, "exit status of scripts/demo --smoke-requests")
    check(re.search(r"^\s*event \S+\s+zone3\s+wake\s+0 -> 1\b", r.stdout, re.M),
          "a wake event of zone3 (0 -> 1) among the printed events")
    check(re.search(r"^\s*event \S+\s+zone3\s+scale_up\s+\d+ -> \d+\s+panic", r.stdout, re.M),
          "a scale_up of zone3 in panic among the printed events")
    check(re.search(r"^\s*event \S+\s+zone3\s+scale_down\s+1 -> 0\s+idle", r.stdout, re.M),
          "zone3 back to zero for idleness among the printed events")
    check(re.search(r"^PASS: zone3 woke from zero", r.stdout, re.M), "the PASS line")
    wait_until(lambda: not tagged(tag), 5, "no process of the demo left (tag %s)" % tag)


if __name__ == "__main__":
    main()
