#!/usr/bin/python3
"""Test webhook receiver: appends each POSTed JSON body to a file, one per line."""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

LOG = sys.argv[1] if len(sys.argv) > 1 else "/var/log/webhook.jsonl"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        record = {"path": self.path, "body": json.loads(body)}
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(204)
        self.end_headers()


HTTPServer(("", 8000), Handler).serve_forever()
