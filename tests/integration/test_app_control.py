#!/usr/bin/env python3
"""scaler-app facing a hostile network: the control endpoints need the app's
own token when one is set, the app listens on loopback unless told
otherwise, and POST /echo gives back exactly the bytes it got, up to a bound."""
import json
import os
import random
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from apptest import App, request, request_json  # noqa: E402
from scalertest import (binary, check, check_eq, free_port, main, raw_http, spawn,  # noqa: E402
                        test, tmpdir, wait_until)

TOKEN = "app-token-4f1c9e2a7b3d8e6f0a5c"
MIB = 1024 * 1024


def run_app(args, env=None, timeout=5):
    """scaler-app run to its exit (for refused configurations)."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("HOST", "PORT", "APP_CONTROL_TOKEN", "APP_CONTROL_TOKEN_FILE")}
    e.update({"PORT": str(free_port()), "HOST": "127.0.0.1"})
    e.update(env or {})
    return subprocess.run([binary("scaler-app")] + args, env=e, capture_output=True, text=True,
                          timeout=timeout)


def token_file(name, text, mode):
    path = os.path.join(tmpdir(), name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@test
def with_a_token_load_and_health_refuse_anyone_without_it_and_change_nothing():
    a = App(env={"APP_CONTROL_TOKEN": TOKEN}, zone="zone-c", server_id="ctl-1")
    refused = [
        ({}, "no Authorization header"),
        ({"Authorization": "Bearer wrong-token-0123456789abcdef"}, "a wrong token"),
        ({"Authorization": "Bearer " + TOKEN[:-1]}, "the token less its last character"),
        ({"Authorization": "Bearer " + TOKEN + "x"}, "the token with a character more"),
        ({"Authorization": "Basic " + TOKEN}, "the token as Basic credentials"),
        ({"Authorization": TOKEN}, "the token without a scheme"),
        ({"Cookie": "token=" + TOKEN}, "the token in a cookie"),
        ({"X-Token": TOKEN}, "the token in another header"),
    ]
    for path, body in (("/load", {"profile": "high"}), ("/health", {"healthy": False})):
        for headers, what in refused:
            status, hdrs, data = request("POST", a.port, path, body, headers=headers)
            check(status == 401 and b"error" in data,
                  "POST %s with %s: expected 401 with a JSON error, got %d %r"
                  % (path, what, status, data[:200]))
            check(hdrs.get("www-authenticate", "").startswith("Bearer"),
                  "POST %s with %s: a 401 names the Bearer scheme; headers %r"
                  % (path, what, hdrs))
        for q in ("?token=", "?access_token="):
            status, _, _ = request("POST", a.port, path + q + TOKEN, body)
            check_eq(status, 401, "POST %s%s<token>: a token in the URL is never taken" % (path, q))
    s = a.stats()
    check_eq((s["profile"], s["cpu_target"], s["healthy"]), ("stop", 0, True),
             "profile, target and health after the refused requests")
    check_eq(a.get("/health_check")[0], 200, "health check after the refused POST /health")
    check_eq(s.get("control"), "token", "control in /stats of an app with a token")

    ok = {"Authorization": "Bearer " + TOKEN}
    status, r = request_json("POST", a.port, "/load", {"profile": "high"}, headers=ok)
    check_eq((status, r.get("profile")), (200, "high"), "POST /load high with the token")
    status, r = request_json("POST", a.port, "/health", {"healthy": False}, headers=ok)
    check_eq((status, r), (200, {"healthy": False}), "POST /health false with the token")
    check_eq(a.get("/health_check")[0], 503, "health check after POST /health false")
    status, _ = request_json("POST", a.port, "/health", {"healthy": True}, headers=ok)
    check_eq(status, 200, "POST /health true with the token")
    a.load("stop")

    # reading and the service itself need no token
    for method, path, body in (("GET", "/", None), ("GET", "/health_check", None),
                               ("GET", "/stats", None), ("GET", "/history", None),
                               ("GET", "/work?ms=1", None), ("POST", "/echo", "x")):
        status, _, _ = request(method, a.port, path, body)
        check_eq(status, 200, "%s %s without a token" % (method, path))
    check(TOKEN not in a.output(), "the token must never be logged")
    a.stop()


@test
def without_a_token_the_app_runs_open_and_says_so():
    a = App(zone="zone-o", server_id="open-1")
    check_eq(a.stats().get("control"), "open", "control in /stats of an app without a token")
    wait_until(lambda: "open to anyone" in a.output(), 5,
               "a warning at start that POST /load and POST /health are open")
    r = a.load("low")
    check_eq(r["profile"], "low", "POST /load without a token on an open app")
    a.stop()


@test
def the_token_file_is_read_once_and_must_be_private():
    path = token_file("app-token", "  %s  \nsecond line is ignored\n" % TOKEN, 0o600)
    a = App(env={"APP_CONTROL_TOKEN_FILE": path}, zone="zone-f", server_id="file-1")
    a.token = TOKEN
    status, _, _ = request("POST", a.port, "/load", {"profile": "low"})
    check_eq(status, 401, "POST /load without the token of the file")
    check_eq(a.load("low")["profile"], "low", "POST /load with the token of the file")
    a.stop()

    fifo = os.path.join(tmpdir(), "token-fifo")
    os.mkfifo(fifo, 0o600)
    cases = [
        ({"APP_CONTROL_TOKEN_FILE": token_file("t-644", TOKEN, 0o644)}, [], "chmod"),
        ({"APP_CONTROL_TOKEN_FILE": token_file("t-604", TOKEN, 0o604)}, [], "chmod"),
        ({"APP_CONTROL_TOKEN_FILE": token_file("t-620", TOKEN, 0o620)}, [], "chmod"),
        ({}, ["--control-token-file", token_file("t-666", TOKEN, 0o666)], "chmod"),
        ({"APP_CONTROL_TOKEN_FILE": fifo}, [], "must be a regular file"),
        ({"APP_CONTROL_TOKEN_FILE": tmpdir()}, [], "must be a regular file"),
        ({"APP_CONTROL_TOKEN_FILE": os.path.join(tmpdir(), "none")}, [], "cannot read"),
        ({"APP_CONTROL_TOKEN_FILE": token_file("t-empty", "\n" + TOKEN, 0o600)}, [],
         "first line"),
        ({"APP_CONTROL_TOKEN_FILE": token_file("t-short", "short\n", 0o600)}, [], "16"),
        ({"APP_CONTROL_TOKEN": TOKEN, "APP_CONTROL_TOKEN_FILE": path}, [], "keep one"),
        ({"APP_CONTROL_TOKEN": "too-short"}, [], "16"),
        ({"APP_CONTROL_TOKEN": "has a space in the middle of it"}, [], "spaces"),
        ({"APP_CONTROL_TOKEN": "x" * 1025}, [], "1024"),
        ({}, ["--control-token=" + TOKEN], "never taken from the command line"),
        ({}, ["--control-tok", TOKEN], "never taken from the command line"),
        ({}, ["--co=" + TOKEN], "never taken from the command line"),
    ]
    for env, args, word in cases:
        try:
            r = run_app(args, env)
        except subprocess.TimeoutExpired:
            check(False, "scaler-app with %r %r: expected exit 2 at once, it hung" % (env, args))
        check(r.returncode == 2 and word in r.stderr,
              "scaler-app with %r %r: expected exit 2 and an error saying %r, got %d, stderr %r"
              % (env, args, word, r.returncode, r.stderr))
        check(TOKEN not in r.stderr, "the token must never be printed: %r" % r.stderr)


def listen_address(pid, port):
    """The local address (hex, as in /proc/net/tcp) of pid's listening socket on port."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = {}  # by inode: a table read while others change can list a socket twice
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            addr, hexport = cols[1].rsplit(":", 1)
            if int(hexport, 16) == port and cols[3] == "0A" and cols[9] in inodes:
                found[cols[9]] = addr
    return sorted(found.values())


@test
def the_app_listens_on_loopback_unless_told_otherwise():
    a = App(env={"HOST": ""}, zone="zone-l", server_id="lo-1")
    check_eq(listen_address(a.pid, a.port), ["0100007F"],
             "listening address of an app given no HOST (127.0.0.1 in /proc/net/tcp)")
    a.stop()
    b = App(env={"HOST": "0.0.0.0"}, zone="zone-l", server_id="any-1")
    check_eq(listen_address(b.pid, b.port), ["00000000"],
             "listening address of an app given HOST=0.0.0.0")
    b.stop()
    r = run_app(["--help"])
    check("default 127.0.0.1" in r.stdout, "--help gives the default address: %r" % r.stdout)
    if socket.has_ipv6 and os.path.exists("/proc/net/tcp6"):
        port = free_port()
        c = spawn([binary("scaler-app")], env={"HOST": "[::1]", "PORT": str(port)},
                  name="scaler-app")
        addr = wait_until(lambda: listen_address(c.pid, port) if c.alive() else [None], 10,
                          "scaler-app given HOST=[::1] to listen")
        check_eq(addr, ["00000000000000000000000001000000"],
                 "listening address of an app given HOST=[::1], as the drivers write it (%s)"
                 % c.output())
        c.stop()


@test
def echo_gives_back_the_body_byte_for_byte_up_to_1_mib():
    a = App(zone="zone-e", server_id="echo-1")
    rnd = random.Random(11)
    body = bytes(rnd.getrandbits(8) for _ in range(100000))
    status, hdrs, data = request("POST", a.port, "/echo", body,
                                 headers={"Content-Type": "text/html"})
    check_eq((status, len(data), data == body), (200, len(body), True),
             "POST /echo of 100000 random bytes: status, length, same bytes")
    check_eq((hdrs.get("content-type"), hdrs.get("x-content-type-options")),
             ("application/octet-stream", "nosniff"),
             "an echo is never served as what the client said it was")
    check_eq(request("POST", a.port, "/echo", b"")[:3:2], (200, b""), "POST /echo of nothing")
    big = bytes(rnd.getrandbits(8) for _ in range(MIB))
    status, _, data = request("POST", a.port, "/echo", big, timeout=20)
    check_eq((status, data == big), (200, True), "POST /echo of exactly 1 MiB")
    status, _, data = request("POST", a.port, "/echo", big + b"x", timeout=20)
    check_eq(status, 413, "POST /echo of 1 MiB + 1 byte")
    chunked = raw_http(a.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    check(chunked.startswith(b"HTTP/1.1 200") and chunked.endswith(b"\r\n\r\nhello world"),
          "a chunked POST /echo comes back whole; got %r" % chunked[-200:])
    over = raw_http(a.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    b"Connection: close\r\n\r\n%x\r\n" % (MIB + 1) + b"y" * (MIB + 1) + b"\r\n0\r\n\r\n",
                    timeout=20)
    check(over.startswith(b"HTTP/1.1 413"), "a chunked POST /echo over 1 MiB gets 413; got %r"
          % over[:100])

    # pipelined on one connection: each answer is its own body, in order
    bodies = [b"request %d " % i * (i + 1) for i in range(20)]
    reqs = b"".join(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(b), b) for b in bodies)
    reqs += b"GET /health_check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw_http(a.port, reqs, timeout=10)
    got = []
    rest = out
    while rest.startswith(b"HTTP/1.1 200"):
        head, _, rest = rest.partition(b"\r\n\r\n")
        n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0]
                .split(b":")[1])
        got.append(rest[:n])
        rest = rest[n:]
    check_eq(got, bodies + [b"ok"], "20 pipelined POST /echo answered in order, then the health "
             "check")
    status, hdrs, _ = request("GET", a.port, "/echo")
    check_eq((status, hdrs.get("allow")), (405, "POST"), "GET /echo")
    a.stop()


if __name__ == "__main__":
    main()
