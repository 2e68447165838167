"""The balancer's access log: one line per request (JSON or a format
string), written from a buffer flushed on an interval, reopened on
SIGUSR1 for logrotate, off unless configured."""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import sys
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import Balancer, Zone, backend, refused_settings  # noqa

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def read_lines(path, n, timeout=5):
    got = []

    def enough():
        got[:] = []
        if os.path.exists(path):
            with open(path, "rb") as f:
                got.extend(f.read().decode().splitlines())
        return len(got) >= n
    wait_until(enough, timeout, "%d line(s) in %s" % (n, path))
    return got


def exchange(port, data):
    return raw_http(port, data, timeout=5.0)


@test
def every_request_is_a_json_line_that_matches_what_was_sent_and_answered():
    a = backend("log-a")
    path = os.path.join(tmpdir(), "access-json.log")
    bal = Balancer([a.url], {"access_log": {"path": path, "flush": 0.1}})
    sent = [
        (b"GET /x?q=%22y%22&z=\"w\" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
         "GET", '/x?q=%22y%22&z="w"', 200),
        (b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", "POST", "/echo", 200),
        (b"GET /\\back HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "GET", "/\\back", 200),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", None, None, 400),
    ]
    got_bytes = [len(exchange(bal.port, req)) for req, _, _, _ in sent]
    lines = read_lines(path, 4)
    check_eq(len(lines), 4, "lines for 4 requests")
    for (req, method, target, status), n, line in zip(sent, got_bytes, lines):
        e = json.loads(line)
        check_eq(list(e), ["time", "zone", "client", "method", "path", "protocol", "status",
                           "bytes", "upstream", "upstream_time", "total_time", "retries", "tls"],
                 "the fields, in order")
        check(TIME.match(e["time"]), "time is ISO 8601 UTC: %r" % e["time"])
        check_eq((e["zone"], e["client"], e["method"], e["path"], e["status"], e["tls"]),
                 ("zone1", "127.0.0.1", method, target, status, None), "the line of %r" % req)
        check_eq(e["bytes"], n, "bytes sent for %r" % req)
        if status == 200:
            check_eq(e["upstream"], a.url, "upstream")
            check_eq(e["protocol"], "HTTP/1.0" if b"HTTP/1.0" in req else "HTTP/1.1", "protocol")
            check(0 <= e["upstream_time"] <= e["total_time"] < 5,
                  "0 <= upstream_time <= total_time: %r" % line)
            check_eq(e["retries"], 0, "retries")
        else:
            check_eq((e["upstream"], e["upstream_time"], e["protocol"]), (None, None, None),
                     "a refused request has no upstream")


@test
def a_format_string_writes_its_fields_and_escapes_quotes():
    a = backend("fmt-a")
    path = os.path.join(tmpdir(), "access-fmt.log")
    fmt = '$client "$method $path $protocol" $status $bytes $upstream $retries $tls $$'
    bal = Balancer([a.url], {"access_log": {"path": path, "format": fmt, "flush": 0.1}})
    n = len(exchange(bal.port, b'GET /a"b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'))
    line = read_lines(path, 1)[0]
    check_eq(line, '127.0.0.1 "GET /a\\x22b HTTP/1.1" 200 %d %s 0 - $' % (n, a.url), "the line")


@test
def the_log_is_reopened_on_sigusr1_and_nothing_is_lost_across_a_rotation():
    a = backend("rot-a")
    path = os.path.join(tmpdir(), "access-rot.log")
    bal = Balancer([a.url], {"access_log": {"path": path, "flush": 0.1}})
    get = b"GET /%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    for i in range(3):
        exchange(bal.port, get % i)
    read_lines(path, 3)
    os.rename(path, path + ".1")
    for i in range(3, 5):
        exchange(bal.port, get % i)
    os.kill(bal.proc.pid, signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), 5, "a new file after SIGUSR1")
    for i in range(5, 8):
        exchange(bal.port, get % i)
    new = read_lines(path, 3)
    old = read_lines(path + ".1", 3)
    paths = [json.loads(l)["path"] for l in old + new]
    check_eq(sorted(paths, key=lambda p: int(p[1:])), ["/%d" % i for i in range(8)],
             "every request once across the two files")
    check_eq([json.loads(l)["path"] for l in new][-3:], ["/5", "/6", "/7"],
             "requests after the reopen in the new file")
    check(bal.proc.alive(), "the worker lives on after SIGUSR1")


@test
def scalerd_passes_sigusr1_on_to_its_balancer_workers():
    a = backend("usr1-a")
    path = os.path.join(tmpdir(), "access-usr1.log")
    z = Zone([a.url], {"access_log": {"path": path, "flush": 0.1}})
    get = b"GET /%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    wait_until(lambda: raw_http(z.listen, get % 0).startswith(b"HTTP/1.1 200"), 15,
               "the zone's balancer to answer")
    read_lines(path, 1)
    os.rename(path, path + ".1")
    z.proc.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), 5, "the worker to reopen its log after scalerd's "
               "SIGUSR1")
    exchange(z.listen, get % 1)
    check_eq([json.loads(l)["path"] for l in read_lines(path, 1)], ["/1"], "the new file's line")
    check(z.proc.alive(), "scalerd lives on after SIGUSR1")
    z.stop()


@test
def a_websocket_tunnel_is_logged_as_it_opens():
    a = backend("ws-a")
    path = os.path.join(tmpdir(), "access-ws.log")
    bal = Balancer([a.url], {"access_log": {"path": path, "flush": 0.1}})
    s = socket.create_connection(("127.0.0.1", bal.port), timeout=5)
    key = base64.b64encode(b"0123456789abcdef").decode()
    s.sendall(("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    check(head.startswith(b"HTTP/1.1 101"), "switched: %r" % head)
    e = json.loads(read_lines(path, 1)[0])
    check_eq((e["method"], e["path"], e["status"], e["upstream"]), ("GET", "/ws", 101, a.url),
             "the tunnel's line")
    s.close()


@test
def a_log_that_cannot_be_written_is_said_once_and_requests_are_still_served():
    a = backend("nolog-a")
    path = os.path.join(tmpdir(), "no-such-dir", "access.log")
    bal = Balancer([a.url], {"access_log": {"path": path, "flush": 0.1}})
    out = exchange(bal.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 200"), "served without its log: %r" % out[:40])
    wait_until(lambda: "access log %s: No such file or directory" % path in bal.proc.output(),
               5, "the error in the worker's log")
    time.sleep(0.5)
    check_eq(bal.proc.output().count("No such file or directory"), 1, "said once")


@test
def a_log_whose_writes_never_finish_holds_no_request_nor_the_worker_s_exit():
    a = backend("fifo-a")
    path = os.path.join(tmpdir(), "access.fifo")
    os.mkfifo(path, 0o600)  # nobody reads it: opening it to write never returns
    bal = Balancer([a.url], {"access_log": {"path": path, "flush": 0.1}})
    for i in range(50):
        out = exchange(bal.port, b"GET /%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                       % i)
        check(out.startswith(b"HTTP/1.1 200"), "request %d served: %r" % (i, out[:40]))
    bal.proc.signal(signal.SIGTERM)
    wait_until(lambda: not bal.proc.alive(), 20, "the worker to end on SIGTERM (its writer "
               "gets 5 s, then is given up)")
    check("byte(s) of lines lost" in bal.proc.output(), "the loss said: %s"
          % bal.proc.output()[-600:])


@test
def a_writer_that_keeps_finishing_buffers_is_waited_for_past_the_stop_wait():
    """The worker stops while its log is a FIFO read slowly: what the writer
    was given before SIGTERM is read 4 s after it, the lines buffered since
    7 s after. The writer keeps finishing buffers, so the worker waits for it
    past the 5 s it gives a stuck writer, and every line is written."""
    import fcntl
    a = backend("fifo-slow")
    path = os.path.join(tmpdir(), "slow.fifo")
    os.mkfifo(path, 0o600)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # so the writer's open returns
    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe: full after 4 KiB
    bal = Balancer([a.url], {"access_log": {"path": path, "flush": 0.1}})
    got = b""
    try:
        def burst(first, n):
            for i in range(first, first + n):
                out = exchange(bal.port, b"GET /line-%04d HTTP/1.1\r\nHost: t\r\n"
                               b"Connection: close\r\n\r\n" % i)
                check(out.startswith(b"HTTP/1.1 200"), "request %d served: %r" % (i, out[:40]))

        def read_some():
            try:
                return os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.02)
                return None
        # more than the pipe holds: the writer blocks in the middle of it
        burst(0, 30)
        time.sleep(1.0)
        # more than the pipe holds again, buffered while the writer is blocked
        burst(30, 60)
        stopped = time.monotonic()
        bal.proc.signal(signal.SIGTERM)
        time.sleep(4)
        # the writer finishes what it had
        while b"/line-0029" not in got and time.monotonic() - stopped < 30:
            got += read_some() or b""
        time.sleep(max(0.0, 7 - (time.monotonic() - stopped)))
        while True:  # then the rest, up to the writer's end (EOF)
            b = read_some()
            if b == b"" or (b is None and time.monotonic() - stopped > 30):
                break
            got += b or b""
        wait_until(lambda: not bal.proc.alive(), 20, "the worker to end on SIGTERM")
    finally:
        os.close(fd)
    text = got.decode()
    missing = [i for i in range(90) if "/line-%04d" % i not in text]
    check(not missing and "lost" not in bal.proc.output(),
          "every line written, none said lost; missing %r; log: %s"
          % (missing, bal.proc.output()[-600:]))


@test
def access_log_settings_are_checked_with_file_line_and_setting():
    for bad, words in (({"path": "relative.log"}, ["path", "absolute"]),
                       ({"path": "/tmp/x.log", "format": "$client $nope"}, ["format", "$nope"]),
                       ({"format": "json"}, ["access_log", "path is required"]),
                       ({"path": "/tmp/x.log", "flush": 0}, ["flush"])):
        refused_settings({"access_log": bad}, words)


if __name__ == "__main__":
    main()
