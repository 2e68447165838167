#!/usr/bin/env python3
"""scaler-app sends its metrics to Kafka every second (librdkafka's mock
cluster stands in for the brokers), and a broker that is gone never blocks
the app."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from apptest import App, request  # noqa: E402
from scalertest import binary, check, check_eq, free_port, log, main, test  # noqa: E402


class MockKafka:
    """tests/app/kafka-mock-consumer: a mock cluster and a consumer of one topic."""

    def __init__(self, topic):
        self.topic = topic
        self.p = subprocess.Popen([binary("tests/app/kafka-mock-consumer"), topic],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        first = self.p.stdout.readline().split()
        check(len(first) == 2 and first[0] == "BOOTSTRAP",
              "kafka-mock-consumer should print BOOTSTRAP <servers>; got %r (stderr %r)"
              % (first, self.p.stderr.read() if self.p.poll() is not None else ""))
        self.bootstrap = first[1]
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put((time.monotonic(), json.loads(line)))

    def collect(self, seconds):
        out = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                return out

    def stop(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@test
def metrics_reach_the_zone_topic_once_a_second_keyed_by_server_id():
    kafka = MockKafka("zone-k1")
    try:
        a = App(zone="zone-k1", server_id="kapp-1", env={"KAFKA_BROKERS": kafka.bootstrap})
        kafka.collect(2.5)  # connection set-up
        got = kafka.collect(6.0)
        log("%d messages in 6 s; last: %r" % (len(got), got[-1][1] if got else None))
        check(4 <= len(got) <= 8, "about one message a second: expected 4-8 in 6 s, got %d"
              % len(got))
        fields = {"cpu_usage": (int, float), "memory_usage": (int, float),
                  "throughput": (int, float), "health_status": int, "server": str, "zone": str,
                  "ts": (int, float)}
        for _, m in got:
            check_eq((m["topic"], m["key"]), ("zone-k1", "kapp-1"), "topic and key of a message")
            v = json.loads(m["value"])
            for k, t in fields.items():
                check(isinstance(v.get(k), t), "message field %s of type %s; got %r" % (k, t, v))
            check_eq((v["server"], v["zone"], v["health_status"]), ("kapp-1", "zone-k1", 1),
                     "server, zone, health_status in a message")
        ts = [json.loads(m["value"])["ts"] for _, m in got]
        gaps = [b - a_ for a_, b in zip(ts, ts[1:])]
        check(all(0.5 < g < 1.6 for g in gaps), "messages about 1 s apart; ts gaps %r" % gaps)
        s = a.stats()
        check(s["kafka_enabled"] and s["kafka_sent"] >= len(got) and s["kafka_dropped"] == 0,
              "kafka counters in /stats: expected sent >= %d, none dropped; got sent %r "
              "dropped %r" % (len(got), s["kafka_sent"], s["kafka_dropped"]))
        check_eq(a.stop(), 0, "exit status after SIGTERM")
    finally:
        kafka.stop()


@test
def kafka_topic_overrides_the_zone_name():
    kafka = MockKafka("metrics-all")
    try:
        a = App(zone="zone-k2", server_id="kapp-2",
                env={"KAFKA_BROKERS": kafka.bootstrap, "KAFKA_TOPIC": "metrics-all"})
        got = kafka.collect(5.0)
        s = a.stats()  # says so when the app is gone
        check(len(got) >= 2, "messages on KAFKA_TOPIC metrics-all; got %d (kafka_sent %r, "
              "kafka_dropped %r)" % (len(got), s["kafka_sent"], s["kafka_dropped"]))
        check_eq(json.loads(got[-1][1]["value"])["zone"], "zone-k2", "zone in the message")
        a.stop()
    finally:
        kafka.stop()


@test
def a_broker_that_is_not_there_never_blocks_the_app_and_drops_are_counted():
    dead = "127.0.0.1:%d" % free_port()  # nothing listens there
    a = App(zone="zone-k3", server_id="kapp-3", env={"KAFKA_BROKERS": dead})
    worst = 0.0
    deadline = time.monotonic() + 25
    dropped = 0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        status, _, _ = request("GET", a.port, "/health_check")
        worst = max(worst, time.monotonic() - t0)
        check_eq(status, 200, "GET /health_check while Kafka is down")
        s = a.stats()
        dropped = s["kafka_dropped"]
        if dropped >= 1 and time.monotonic() > deadline - 20:
            break
        time.sleep(0.2)
    log("worst /health_check latency %.3fs, kafka_dropped %d" % (worst, dropped))
    check(worst < 0.5, "requests answer at once while Kafka is down; worst took %.3fs" % worst)
    check(dropped >= 1, "kafka_dropped counts undeliverable metrics; /stats says %r" % s)
    check_eq(a.load("high")["profile"], "high", "POST /load while Kafka is down")
    t0 = time.monotonic()
    a.proc.signal(signal.SIGTERM)
    rc = a.proc.wait(10)
    check_eq(rc, 0, "exit status after SIGTERM with Kafka down")
    check(time.monotonic() - t0 < 4, "SIGTERM exits within a few seconds although Kafka is down")


if __name__ == "__main__":
    main()
