#!/usr/bin/env python3
"""Listening sockets that never accept: a health check's connect to one of
them stays pending (the accept queue is full) until the check times out.

    tarpit.py N     prints the N ports (one JSON list on a line), then sleeps
"""
import json
import socket
import sys
import time

socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    socks.append(s)
print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
while True:
    time.sleep(3600)
