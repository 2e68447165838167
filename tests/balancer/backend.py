#!/usr/bin/env python3
"""A small HTTP/1.1 backend for the balancer tests (stdlib only).

    backend.py PORT NAME

  GET  /health_check      200 ok (503 after PUT /control/unhealthy)
  PUT  /control/healthy   /control/unhealthy: switch the health check
  PUT  /control/fail?status=S  answer S to every request but these (default 503;
                          "drop": close without an answer); /control/answer: answer again
  GET  /stats             {"name":..., "requests": N, "checks": health checks}
                          (not counted)
  ANY  /echo              JSON: name, method, path, version, headers, body
  GET  /chunked           a chunked response of five chunks
  GET  /slow?s=N          answers after N seconds
  POST /early             answers 200 "early" before it reads the body (then reads it)
  GET  /big?n=N[&chunked] N bytes of a repeating pattern
  GET  /half-head         sends part of a response head, then closes
  ANY  /drop              reads the request and closes without a response
  GET  /cut               sends a response head and part of the body, then closes
  GET  /ws                WebSocket handshake, then echoes every frame
  GET  /interim?n=N&size=S&code=C  N interim responses C (default 100) with S
                          bytes of Link header each, then 200 "done"
  GET  /raw?B64           the bytes B64 (urlsafe base64) as the response, then closes
  ANY  anything else      200 "<name>\\n"
Keep-alive, request bodies with Content-Length or chunked; a request with
Expect: 100-continue gets 100 Continue before its body is read.
"""
import base64
import hashlib
import json
import socket
import socketserver
import sys
import threading
import time

NAME = "backend"
STATE = {"healthy": True, "requests": 0, "fail": 0, "checks": 0}
LOCK = threading.Lock()


class Bad(Exception):
    pass


def read_line(f):
    line = f.readline(65537)
    if not line:
        raise EOFError
    return line


def read_chunked(f):
    body = b""
    while True:
        size = int(read_line(f).split(b";")[0].strip(), 16)
        if size == 0:
            while read_line(f) not in (b"\r\n", b"\n"):
                pass
            return body
        body += f.read(size)
        f.read(2)


class Handler(socketserver.StreamRequestHandler):
    def send(self, status, body, ctype="text/plain", extra=(), close=False):
        if isinstance(body, str):
            body = body.encode()
        head = "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            status, ctype, len(body))
        for h in extra:
            head += h + "\r\n"
        if close:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode() + b"\r\n" + body)
        self.wfile.flush()

    def handle(self):
        try:
            while self.one():
                pass
        except (EOFError, ConnectionError, ValueError, Bad):
            pass

    def one(self):
        f = self.rfile
        line = read_line(f).decode("latin-1").rstrip("\r\n")
        method, target, version = line.split(" ")
        headers = []
        while True:
            h = read_line(f).decode("latin-1").rstrip("\r\n")
            if not h:
                break
            name, _, value = h.partition(":")
            headers.append((name, value.strip()))
        hmap = {}
        for n, v in headers:
            hmap.setdefault(n.lower(), []).append(v)
        body = b""
        if "100-continue" in ",".join(hmap.get("expect", [])).lower():
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # then read the body
            self.wfile.flush()
        if target == "/early" and "content-length" in hmap:
            # answer first, then read the body (as nginx's `return` does)
            self.send(200, "early\n")
            f.read(int(hmap["content-length"][0]))
            return True
        if "chunked" in ",".join(hmap.get("transfer-encoding", [])).lower():
            body = read_chunked(f)
        elif "content-length" in hmap:
            body = f.read(int(hmap["content-length"][0]))
        conn = ",".join(hmap.get("connection", [])).lower()
        close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)
        path, _, query = target.partition("?")

        if path == "/health_check":
            with LOCK:
                STATE["checks"] += 1
            self.send(200 if STATE["healthy"] else 503, "ok\n" if STATE["healthy"] else "sick\n",
                      close=close)
            return not close
        if path == "/stats":
            self.send(200, json.dumps({"name": NAME, "requests": STATE["requests"],
                                       "checks": STATE["checks"]}),
                      "application/json", close=close)
            return not close
        with LOCK:
            STATE["requests"] += 1
        if path in ("/control/fail", "/control/answer"):
            st = query.partition("=")[2] or "503"
            STATE["fail"] = (-1 if st == "drop" else int(st)) if path.endswith("fail") else 0
            self.send(200, "done\n", close=close)
        elif STATE["fail"] < 0:
            return False
        elif STATE["fail"]:
            self.send(STATE["fail"], "failing\n", close=close)
        elif path.startswith("/control/"):
            STATE["healthy"] = path == "/control/healthy"
            self.send(200, "done\n", close=close)
        elif path == "/echo":
            out = {"name": NAME, "method": method, "sha1": hashlib.sha1(body).hexdigest(), "path": target, "version": version,
                   "headers": headers, "body": body.decode("latin-1"), "body_len": len(body)}
            self.send(200, json.dumps(out), "application/json", close=close)
        elif path == "/chunked":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(5):
                part = ("part %d of %s;" % (i, NAME)).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                time.sleep(0.01)
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
            self.wfile.flush()
        elif path == "/big":
            n = int(query.partition("=")[2].partition("&")[0] or "1000000")
            pattern = b"0123456789abcdef" * 4096
            data = (pattern * (n // len(pattern) + 1))[:n]
            if "chunked" in query:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(0, n, 50000):
                    part = data[i:i + 50000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + data)
            self.wfile.flush()
        elif path == "/slow":
            secs = float(query.partition("=")[2] or "1")
            time.sleep(secs)
            self.send(200, "slow %s\n" % NAME, close=close)
        elif path == "/half-head":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-")
            self.wfile.flush()
            time.sleep(0.05)
            return False
        elif path == "/drop":
            return False  # read the request, close without a response
        elif path == "/cut":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
            self.wfile.flush()
            time.sleep(0.05)
            return False
        elif path == "/interim":
            q = dict(kv.partition("=")[::2] for kv in query.split("&") if kv)
            n, size, code = int(q.get("n", "1")), int(q.get("size", "0")), int(q.get("code", "100"))
            link = ("Link: </%s>; rel=preload\r\n" % ("a" * size)) if size else ""
            self.wfile.write(("HTTP/1.1 %d Interim\r\n%s\r\n" % (code, link)).encode() * n)
            self.send(200, "done\n", close=close)
        elif path == "/raw":
            self.wfile.write(base64.urlsafe_b64decode(query))
            self.wfile.flush()
            time.sleep(0.05)
            return False
        elif path == "/ws":
            key = hmap.get("sec-websocket-key", [""])[0]
            acc = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())
            self.wfile.flush()
            self.ws_echo()
            return False
        else:
            self.send(200, NAME + "\n", close=close)
        return not close

    def ws_echo(self):
        f = self.rfile
        while True:
            h = f.read(2)
            if len(h) < 2:
                return
            op = h[0] & 0x0F
            n = h[1] & 0x7F
            if n == 126:
                n = int.from_bytes(f.read(2), "big")
            elif n == 127:
                n = int.from_bytes(f.read(8), "big")
            mask = f.read(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(n)))
            if op == 8:
                self.wfile.write(b"\x88\x00")
                self.wfile.flush()
                return
            hdr = bytes([0x80 | op])
            if len(data) < 126:
                hdr += bytes([len(data)])
            else:
                hdr += bytes([126]) + len(data).to_bytes(2, "big")
            self.wfile.write(hdr + data)
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


def main():
    global NAME
    port = int(sys.argv[1])
    NAME = sys.argv[2] if len(sys.argv) > 2 else "backend-%d" % port
    srv = Server(("127.0.0.1", port), Handler)
    srv.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print("listening on 127.0.0.1:%d" % port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
