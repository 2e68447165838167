"""A load client for the continuity tests that counts every failure.

    load = Load(port, keepalive=8, fresh=4)   # threads; starts at once
    ...                                        # kill, reload, ...
    r = load.stop()
    r.ok, r.refused, r.failed, r.statuses, r.per_conn_failures

Each keep-alive thread sends GET / on one connection, request after
request; a response that says Connection: close (a worker draining) makes
it reconnect, which is no failure. Each fresh thread opens a new connection
per request. A failure is a refused connect, a connection that ends or
resets before a whole response, a timeout, or a status other than 200.
"""
import socket
import threading
import time


class Result:
    def __init__(self):
        self.ok = 0
        self.refused = 0
        self.failed = 0  # everything that is not a 200 (refused included)
        self.statuses = {}
        self.errors = {}  # kind -> count
        self.lock = threading.Lock()

    def count(self, kind, status=None):
        with self.lock:
            if kind == "ok":
                self.ok += 1
                return
            self.failed += 1
            if kind == "refused":
                self.refused += 1
            if status is not None:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def __repr__(self):
        return "ok %d, failed %d (refused %d, %r, statuses %r)" % (
            self.ok, self.failed, self.refused, self.errors, self.statuses)


def _read_response(sock, buf):
    """(status, close, rest) of one response read from sock after buf;
    raises EOFError when the peer closes first."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed before a response head")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    length, close = 0, False
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v.strip())
        elif k == b"connection" and v.strip().lower() == b"close":
            close = True
    while len(rest) < length:
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed in the middle of a body")
        rest += d
    return status, close, rest[length:]


class Load:
    def __init__(self, port, keepalive=8, fresh=4, path="/", host="127.0.0.1", timeout=5.0):
        self.addr = (host, port)
        self.req = ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode()
        self.req_close = ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                          % path).encode()
        self.timeout = timeout
        self.result = Result()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._keepalive, daemon=True)
                        for _ in range(keepalive)]
        self.threads += [threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh)]
        for t in self.threads:
            t.start()

    def _connect(self):
        try:
            return socket.create_connection(self.addr, timeout=self.timeout)
        except ConnectionRefusedError:
            self.result.count("refused")
        except OSError:
            self.result.count("connect")
        return None

    def _one(self, sock, buf, req):
        """One exchange: (close, rest) or None after counting a failure."""
        try:
            sock.sendall(req)
            status, close, rest = _read_response(sock, buf)
        except socket.timeout:
            self.result.count("timeout")
            return None
        except (OSError, EOFError, ValueError, IndexError):
            self.result.count("read")
            return None
        if status != 200:
            self.result.count("status", status)
            return close, rest
        self.result.count("ok")
        return close, rest

    def _keepalive(self):
        sock, buf = None, b""
        while not self.stopping.is_set():
            if sock is None:
                sock, buf = self._connect(), b""
                if sock is None:
                    time.sleep(0.01)
                    continue
            r = self._one(sock, buf, self.req)
            if r is None or r[0]:
                sock.close()
                sock = None
            else:
                buf = r[1]
        if sock:
            sock.close()

    def _fresh(self):
        while not self.stopping.is_set():
            sock = self._connect()
            if sock is None:
                time.sleep(0.01)
                continue
            self._one(sock, b"", self.req_close)
            sock.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 1)
        return self.result
