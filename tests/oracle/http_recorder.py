#!/usr/bin/env python3
"""A real HTTP server for the monitoring tests: records every request (method, path, headers,
body) as one JSON line, on 127.0.0.1 only.

Usage: http_recorder.py PORT_FILE LOG_FILE [--fail-file PATH] [--delay SECONDS]

Writes the port it listens on to PORT_FILE once it accepts connections. While the file named by
--fail-file exists, requests are still recorded but answered 503 (a target that is down);
--delay makes every answer wait, so that concurrent clients overlap.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file = sys.argv[1], sys.argv[2]
fail_file = None
delay = 0.0
args = sys.argv[3:]
while args:
    if args[0] == "--fail-file":
        fail_file = args[1]
        args = args[2:]
    elif args[0] == "--delay":
        delay = float(args[1])
        args = args[2:]
    else:
        sys.exit(f"unknown argument {args[0]}")

lock = threading.Lock()


class Recorder(BaseHTTPRequestHandler):
    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        failing = fail_file is not None and os.path.exists(fail_file)
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "answered": 503 if failing else 200,
        }
        with lock:
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if delay:
            time.sleep(delay)
        code = 503 if failing else 200
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = handle_any
    do_POST = handle_any
    do_HEAD = handle_any
    do_PUT = handle_any

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
tmp = port_file + ".tmp"
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, port_file)
server.serve_forever()
