"""Scale from zero at the balancer: with no alive server a request is held
(at most hold_max, each at most hold_timeout, then 503 saying why), the
primary is woken, a starting server is probed every few tens of
milliseconds, and the held requests go to the first server that turns
alive, in the order they came, with their bodies intact."""
import json
import os
import socket
import sys
import threading
import time

from scalertest import *

sys.path.insert(0, os.path.join(srcdir(), "tests", "balancer"))
from baltest import Balancer, FakePrimary, scalerd_has_balancer  # noqa


class OrderedBackend:
    """Serves one connection at a time, in the order they were accepted,
    recording (method, path, body) of every request but health checks and
    answering with the body it got (Connection: close)."""

    def __init__(self, port=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.seen = []
        self.sock.listen(256)
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.one(c)
            except (OSError, ValueError):
                pass
            c.close()

    def one(self, c):
        f = c.makefile("rb")
        method, path, _ = f.readline().decode().split(" ", 2)
        length = 0
        while True:
            line = f.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        body = f.read(length) if length else b""
        if path != "/health_check":
            self.seen.append((method, path, body))
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % len(body) + body)


def send(port, method, path, body=b"", timeout=20):
    head = "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" % (method, path)
    if method == "POST":
        head += "Content-Length: %d\r\n" % len(body)
    out = raw_http(port, head.encode() + b"\r\n" + body, timeout=timeout)
    head, _, data = out.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), data


def held(bal):
    return bal.admin_get("/stats?window=1")[1]["held"]


@test
def held_requests_go_to_the_first_alive_server_in_order_with_their_bodies():
    bal = Balancer([], {"hold_timeout": 20, "health_interval": 30})
    reqs = []
    for i in range(8):
        if i % 2:
            body = (b"body-%d-" % i) * (30000 if i == 5 else 3)  # one of 240 KB
            reqs.append(("POST", "/r/%d" % i, body))
        else:
            reqs.append(("GET", "/r/%d" % i, b""))
    results = [None] * len(reqs)

    def go(i):
        results[i] = send(bal.port, *reqs[i])
    for i in range(len(reqs)):
        threading.Thread(target=go, args=(i,), daemon=True).start()
        wait_until(lambda: held(bal) == i + 1, 5, "request %d to be held" % i)
    time.sleep(0.3)
    check_eq(results, [None] * len(reqs), "nothing answered while no server exists")
    srv = OrderedBackend()
    check_eq(bal.admin_put("/servers", {"adds": [srv.url]})[0], 200, "PUT /servers")
    wait_until(lambda: all(results), 10, "every held request to be answered")
    for i, (method, path, body) in enumerate(reqs):
        check_eq(results[i], (200, body), "answer to %s %s (its body echoed)" % (method, path))
    check_eq([(m, p) for m, p, _ in srv.seen], [(m, p) for m, p, _ in reqs],
             "the server got them in the order they arrived")
    check_eq([b for _, _, b in srv.seen], [b for _, _, b in reqs], "bodies intact")
    check_eq(held(bal), 0, "nothing held afterwards")


@test
def a_held_request_waits_at_most_hold_timeout_then_gets_503_saying_why():
    bal = Balancer([], {"hold_timeout": 0.5})
    t0 = time.monotonic()
    st, body = send(bal.port, "GET", "/")
    waited = time.monotonic() - t0
    check_eq(st, 503, "status")
    check(b"hold_timeout" in body and b"no server" in body, "the body says why: %r" % body)
    check(waited >= 0.45, "it was held first (answered after %.2f s)" % waited)
    check_eq(held(bal), 0, "nothing held afterwards")


@test
def beyond_hold_max_requests_get_503_at_once_saying_so():
    bal = Balancer([], {"hold_max": 2, "hold_timeout": 5})
    for _ in range(2):
        threading.Thread(target=lambda: send(bal.port, "GET", "/"), daemon=True).start()
    wait_until(lambda: held(bal) == 2, 5, "two requests held")
    st, body = send(bal.port, "GET", "/")
    check_eq(st, 503, "status of the third")
    check(b"hold_max" in body, "the body says why: %r" % body)


@test
def a_starting_server_is_probed_fast_while_requests_wait_for_it():
    # the next regular check is health_interval (60 s) away: only the fast
    # probe can find the server before hold_timeout, and its failed probes
    # while it starts must not make it dead (retries = 1)
    port = free_port()
    bal = Balancer([], {"hold_timeout": 5, "health_interval": 60, "retries": 1})
    url = "http://127.0.0.1:%d" % port
    res = []
    threading.Thread(target=lambda: res.append(send(bal.port, "GET", "/p")), daemon=True).start()
    wait_until(lambda: held(bal) == 1, 5, "the request to be held")
    check_eq(bal.admin_put("/servers", {"adds": [url]})[0], 200, "add a server not listening yet")
    time.sleep(0.5)
    check_eq(bal.states()[url]["state"], "pending", "the starting server after failed probes")
    srv = OrderedBackend(port)
    wait_until(lambda: res, 4, "the held request to be answered")
    check_eq(res[0][0], 200, "status")
    check_eq(srv.seen, [("GET", "/p", b"")], "what the server got")


@test
def the_first_held_request_wakes_the_primary_every_second_until_a_server_is_alive():
    if not scalerd_has_balancer():
        skip("needs scalerd --balancer (the primary comes from the state store)")
    redis = Redis()
    primary = FakePrimary(status=202)
    redis.cli("SET", "t:epoch", "3")
    redis.cli("HSET", "t:leader", "id", "2", "url", primary.url, "epoch", "3")
    bal = Balancer([], {"hold_timeout": 20}, token="wake-tok", redis_url=redis.url())
    wait_until(lambda: bal.admin_get("/monitor")[1]["epoch"] == 3, 5, "the primary restored")
    res = []
    threading.Thread(target=lambda: res.append(send(bal.port, "GET", "/w")), daemon=True).start()
    wait_until(lambda: len(primary.reports) >= 2, 5, "two wake-up calls a second apart")
    w = primary.reports[0]
    check_eq((w["method"], w["path"]), ("POST", "/wake"), "the call")
    check_eq(w["body"], {"zone": "zone1", "held": 1, "epoch": 3}, "its body")
    check_eq(w["auth"], "Bearer wake-tok", "it carries the token")
    srv = OrderedBackend()
    check_eq(bal.admin_put("/servers", {"adds": [srv.url]})[0], 200, "the primary's push")
    wait_until(lambda: res, 5, "the held request to be answered")
    n = len(primary.reports)
    time.sleep(1.5)
    check_eq(len(primary.reports), n, "no wake-up call once a server is alive")


if __name__ == "__main__":
    main()
