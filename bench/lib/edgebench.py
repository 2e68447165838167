"""The balancer at the edge, for bench/balancer: TLS and HTTP/2 against
HAProxy and nginx with the same certificate and suites, the cost of the
access log, the slow-start ramp and the requests an outlier costs before
its ejection.

Clients: wrk (Debian's, built with OpenSSL) for HTTP/1.1 over TLS, with
"Connection: close" for a handshake per request. wrk reconnects with the
session of its previous connection, so left alone it measures TLS 1.3
resumptions; with bench/lib/tlshandshakes.c preloaded (an LD_PRELOAD shim
built with cc at the start of the row) it drops that session before each
handshake, so every handshake is full and the server signs with the key
type the row names. The shim also counts full and resumed handshakes, which
the rows print. h2load (nghttp2-client)
for HTTP/2, -c10 -m10 (10 clients x 10 streams). The certificates (ECDSA
P-256 and RSA 2048, self-signed for 127.0.0.1) are made with the openssl
CLI; every server gets TLS 1.2 and 1.3, the same TLS 1.2 suites and the
same groups, and keeps its own defaults for session resumption."""
import json
import os
import re
import shutil
import subprocess
import threading
import time

import benchlib as bl

CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-"
           "SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-"
           "POLY1305")
GROUPS = "X25519:P-256:P-384"


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2.0


def cert(procs, kind):
    """(cert, key, cert+key) files for 127.0.0.1 of kind "ecdsa-p256" or "rsa-2048"."""
    d = procs.path("tls-" + kind)
    os.makedirs(d, exist_ok=True)
    algo = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind.startswith("ecdsa")
            else ["-newkey", "rsa:2048"])
    subprocess.run(["openssl", "req", "-x509", "-nodes"] + algo +
                   ["-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   cwd=d, check=True, capture_output=True)
    os.chmod(os.path.join(d, "key.pem"), 0o600)
    both = os.path.join(d, "both.pem")
    with open(both, "wb") as out:
        for f in ("cert.pem", "key.pem"):
            with open(os.path.join(d, f), "rb") as src:
                out.write(src.read())
    # nginx's workers run as another user when started by root: they read
    # nothing of these (the master does), but the directory must be open
    os.chmod(d, 0o755)
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"), both


def scaler_tls(procs, backends, crt, key, via, name, extra=None):
    settings = {"tls": '{ certificates = ( { cert = "%s"; key = "%s"; } ); }' % (crt, key)}
    settings.update(extra or {})
    return bl.scaler_balancer(procs, backends, settings, name=name, via=via)


def haproxy_tls(procs, backends, both, name):
    extra = ("  ssl-default-bind-ciphers %s\n  ssl-default-bind-options ssl-min-ver TLSv1.2\n"
             "  ssl-default-bind-curves %s\n" % (CIPHERS, GROUPS))
    port = bl.free_port()
    conf = procs.path(name + ".cfg")
    servers = "\n".join("  server s%d 127.0.0.1:%d check inter 10s" % (i + 1, b)
                        for i, b in enumerate(backends))
    with open(conf, "w") as f:
        f.write(bl.HAPROXY.format(port=port, servers=servers, extra_defaults="",
                                  extra_global=bl.haproxy_extra_global() + extra, nbthread=1)
                .replace("  bind 127.0.0.1:%d\n" % port,
                         "  bind 127.0.0.1:%d ssl crt %s alpn h2,http/1.1\n" % (port, both)))
    procs.spawn(["haproxy", "-db", "-f", conf], name)
    bl.wait_port(port)
    return port


def nginx_conf(procs, name, port, server, upstream=""):
    """Start nginx (one worker, no access log) with `server` inside its
    server block on 127.0.0.1:port (ssl and http2 when asked)."""
    d = procs.path(name)
    os.makedirs(d, exist_ok=True)
    os.chmod(procs.dir, 0o755)
    os.chmod(d, 0o755)  # its workers run as another user when started by root
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                "events { worker_connections 20000; }\nhttp {\n  access_log off;\n"
                "  keepalive_requests 1000000;\n  http2_max_concurrent_streams 100;\n"
                "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
                "  uwsgi_temp_path %s; scgi_temp_path %s;\n%s  server {\n%s  }\n}\n"
                % ((d,) * 7 + (upstream, server)))
    procs.spawn(["nginx", "-c", conf, "-p", d], name)
    bl.wait_port(port)
    return port


def nginx_tls(procs, backends, crt, key, name):
    port = bl.free_port()
    upstream = "  upstream be {\n%s\n    keepalive 64;\n  }\n" % "\n".join(
        "    server 127.0.0.1:%d;" % b for b in backends)
    server = ("    listen 127.0.0.1:%d ssl http2;\n    ssl_certificate %s;\n"
              "    ssl_certificate_key %s;\n    ssl_protocols TLSv1.2 TLSv1.3;\n"
              "    ssl_ciphers %s;\n    ssl_ecdh_curve %s;\n    location / {\n"
              "      proxy_pass http://be;\n      proxy_http_version 1.1;\n"
              "      proxy_set_header Connection \"\";\n    }\n"
              % (port, crt, key, CIPHERS, GROUPS))
    return nginx_conf(procs, name, port, server, upstream)


def h2load(url, duration, clients=10, streams=10):
    r = subprocess.run(["h2load", "-c%d" % clients, "-m%d" % streams, "-D%d" % duration, url],
                       capture_output=True, text=True, timeout=duration + 60)
    out = r.stdout
    res = {"rps": 0.0, "failed": 0, "raw": out + r.stderr}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed", out)
    if m:
        res["failed"] = int(m.group(1))
    if "Application protocol: h2" not in out:
        res["rps"] = 0.0  # not HTTP/2: no figure
    return res


def rounds_of(targets, run, rounds):
    """run(port) for each (name, port) of targets, rounds times, in
    alternating order: {name: [results]}."""
    res = {name: [] for name, _ in targets}
    for rnd in range(rounds):
        order = targets if rnd % 2 == 0 else list(reversed(targets))
        for name, port in order:
            res[name].append(run(port))
            time.sleep(0.5)
    return res


def handshake_shim(procs):
    """Build bench/lib/tlshandshakes.c into the run's directory: its path,
    or None (no cc or no OpenSSL headers: the rows say so)."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tlshandshakes.c")
    out = procs.path("tlshandshakes.so")
    r = subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", out, src,
                        "-ldl"], capture_output=True, text=True)
    if r.returncode != 0:
        print("\n(cannot build the handshake shim: %s)" % (r.stderr.strip() or "cc failed"))
        return None
    return out


def wrk_tls(url, duration, shim, full):
    """wrk -c50 with a new connection per request, through the shim; the
    result gets the client's counts of full and resumed handshakes."""
    env = dict(os.environ)
    if shim:
        env["LD_PRELOAD"] = shim
        env["SCALER_BENCH_FULL_HANDSHAKES"] = "1" if full else "0"
    res = bl.wrk(url, 50, duration, close=True, env=env)
    m = re.search(r"tlshandshakes: full (\d+) resumed (\d+)", res["raw"])
    res["full"], res["resumed"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    return res


def handshake_counts(results):
    full = [x["full"] for x in results if x["full"] is not None]
    resumed = [x["resumed"] for x in results if x["resumed"] is not None]
    return "full %d, resumed %d" % (sum(full), sum(resumed)) if full else "not counted"


def tls_rows(procs, backends, via, duration, rounds):
    """TLS handshakes (full per key type, resumed), TLS keep-alive, HTTP/2:
    the ratio lines."""
    lines = []
    shim = handshake_shim(procs)
    if not shutil.which("h2load"):
        print("\n(h2load not installed: apt-get install nghttp2-client; no HTTP/2 row)")
    for kind in ("ecdsa-p256", "rsa-2048"):
        crt, key, both = cert(procs, kind)
        _, sport, _ = scaler_tls(procs, backends, crt, key, via, "scaler-tls-" + kind)
        hport = haproxy_tls(procs, backends, both, "haproxy-tls-" + kind)
        nport = nginx_tls(procs, backends, crt, key, "nginx-tls-" + kind)
        targets = [("scaler", sport), ("haproxy", hport), ("nginx", nport)]
        modes = [(True, "full handshakes (the client drops its session before each)")]
        if kind == "ecdsa-p256":
            modes.append((False, "resumed where the server allows (TLS 1.3 tickets, as wrk "
                                 "offers them)"))
        for full, what in modes:
            if full and not shim:
                continue  # without the shim wrk resumes: not full handshakes
            print("\nTLS %s, a new connection (and handshake) per request, %s: wrk -t1 -c50 "
                  "-H 'Connection: close', %ds" % (kind, what, duration))
            res = rounds_of(targets, lambda p: wrk_tls("https://127.0.0.1:%d/" % p, duration,
                                                       shim, full), rounds)
            rps = {n: median([x["rps"] for x in v]) for n, v in res.items()}
            for n in ("scaler", "haproxy", "nginx"):
                print("  %-8s %10.0f handshakes/s  errors %d  (%s)" % (
                    n, rps[n], sum(x["errors"] + x["non2xx"] for x in res[n]),
                    handshake_counts(res[n])))
            lines.append("balancer/haproxy TLS %s ratio%s: %.2f  (nginx %.2f)" % (
                "handshake" if full else "resumption", " (%s)" % kind if full else "",
                rps["scaler"] / rps["haproxy"] if rps["haproxy"] else float("nan"),
                rps["scaler"] / rps["nginx"] if rps["nginx"] else float("nan")))
        if kind != "ecdsa-p256":
            continue
        print("\nTLS %s, keep-alive: wrk -t1 -c50, %ds" % (kind, duration))
        res = rounds_of(targets, lambda p: bl.wrk("https://127.0.0.1:%d/" % p, 50, duration),
                        rounds)
        rps = {n: median([x["rps"] for x in v]) for n, v in res.items()}
        for n in ("scaler", "haproxy", "nginx"):
            print("  %-8s %10.0f req/s" % (n, rps[n]))
        lines.append("balancer/haproxy TLS keep-alive ratio: %.2f  (nginx %.2f)" % (
            rps["scaler"] / rps["haproxy"] if rps["haproxy"] else float("nan"),
            rps["scaler"] / rps["nginx"] if rps["nginx"] else float("nan")))
        if shutil.which("h2load"):
            print("\nHTTP/2 over TLS %s: h2load -c10 -m10 (10 clients x 10 streams), %ds"
                  % (kind, duration))
            res = rounds_of(targets, lambda p: h2load("https://127.0.0.1:%d/" % p, duration),
                            rounds)
            rps = {n: median([x["rps"] for x in v]) for n, v in res.items()}
            for n in ("scaler", "haproxy", "nginx"):
                print("  %-8s %10.0f req/s  failed %d" % (n, rps[n],
                                                         sum(x["failed"] for x in res[n])))
            lines.append("balancer/haproxy h2 ratio: %.2f  (nginx %.2f)" % (
                rps["scaler"] / rps["haproxy"] if rps["haproxy"] else float("nan"),
                rps["scaler"] / rps["nginx"] if rps["nginx"] else float("nan")))
    return lines


def access_log_cost(procs, backends, via, duration, rounds):
    path = procs.path("access.log")
    _, off, _ = bl.scaler_balancer(procs, backends, name="scaler-nolog", via=via)
    _, on, _ = bl.scaler_balancer(procs, backends, {"access_log": '{ path = "%s"; }' % path},
                                  name="scaler-log", via=via)
    print("\naccess log off / on (JSON, default buffer and flush): wrk -t1 -c50, %ds" % duration)
    res = rounds_of([("off", off), ("on", on)],
                    lambda p: bl.wrk("http://127.0.0.1:%d/" % p, 50, duration), rounds)
    rps = {n: median([x["rps"] for x in v]) for n, v in res.items()}
    lines = 0
    if os.path.exists(path):
        with open(path, "rb") as f:
            lines = sum(1 for _ in f)
    print("  off %10.0f req/s\n  on  %10.0f req/s  (%d lines written)" % (rps["off"], rps["on"],
                                                                      lines))
    cost = (rps["off"] - rps["on"]) / rps["off"] * 100 if rps["off"] else float("nan")
    return ["access log cost: %.1f %%  (goal: within 5 %%)" % cost]


def admin_json(port, path):
    out = bl.http_get(port, path)
    return json.loads(out.split(b"\r\n\r\n", 1)[1])


def admin_put(port, path, body):
    import socket
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"PUT %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n"
              b"Content-Type: application/json\r\n\r\n" % (path.encode(), len(data)) + data)
    while s.recv(65536):
        pass
    s.close()


def slow_start_ramp(procs, backends, via, seconds):
    """A third server joins two under wrk -c20: its share per second."""
    joiner = backends[2]
    _, port, admin = bl.scaler_balancer(procs, backends[:2], {"slow_start": seconds},
                                        name="scaler-slowstart", via=via)
    result = {}

    def load():
        result["wrk"] = bl.wrk("http://127.0.0.1:%d/" % port, 20, int(seconds) + 3)
    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.0)
    url = "http://127.0.0.1:%d" % joiner
    admin_put(admin, "/servers", {"adds": [url]})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if url in admin_json(admin, "/servers"):
            break
        time.sleep(0.01)

    def served():
        return {s["url"]: s["requests_served"] for s in admin_json(admin, "/servers?state=all")}
    shares = []
    last = served()
    for _ in range(int(seconds) + 1):
        time.sleep(1.0)
        now = served()
        total = sum(now[u] - last.get(u, 0) for u in now)
        shares.append((now.get(url, 0) - last.get(url, 0)) / total if total else 0.0)
        last = now
    t.join()
    return ["slow start (slow_start = %g s, round robin, wrk -c20): the joining server's share "
            "per second: %s  (full share %.2f)" % (seconds, " ".join("%.2f" % x for x in shares),
                                                  1 / 3.0)]


def outlier_count(procs, backends, via, duration, consecutive=5):
    """One of three backends answers 503 to everything from the start: the
    failed requests before the balancer ejects it, against the bound."""
    port = bl.free_port()
    nginx_conf(procs, "nginx-503", port,
               "    listen 127.0.0.1:%d;\n    location = /health_check { return 200 \"ok\\n\"; }\n"
               "    location / { return 503 \"failing\\n\"; }\n" % port)
    _, sport, admin = bl.scaler_balancer(
        procs, backends[:2] + [port],
        {"eject": "{ consecutive_5xx = %d; base_time = 600; }" % consecutive},
        name="scaler-outlier", via=via)
    r = bl.wrk("http://127.0.0.1:%d/" % sport, 50, duration)
    ev = [e for e in admin_json(admin, "/events")["events"] if e["kind"] == "eject"]
    in_flight = ev[0]["in_flight"] if ev else -1
    return ["outlier: %d failed requests before the ejection of a server answering 503 "
            "(bound: consecutive_5xx %d + %d in flight on it then = %d; %d requests in all)"
            % (r["non2xx"], consecutive, in_flight, consecutive + max(in_flight, 0),
               r["requests"])]
