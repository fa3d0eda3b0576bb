"""Requests per second of one URL, run INSIDE a target with its system python3 (stdlib only).

    python3 rps.py tls 127.0.0.1:443 /health [clients] [seconds]
    python3 rps.py unix /run/app/blue.sock /health [clients] [seconds]

Each client is a process with one keep-alive connection (HTTP/1.1), so nginx over TLS and
Gunicorn's unix socket are driven by the same client code: only the path differs. Prints
one JSON line: requests, failed, seconds, rps.
"""

import http.client
import json
import multiprocessing
import socket
import ssl
import sys
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


class TLSConnection(http.client.HTTPConnection):
    """HTTPS to an address, with the server name (SNI) nginx's site answers to."""

    def __init__(self, address: str, server_name: str = "localhost") -> None:
        super().__init__("localhost", timeout=10)
        host, _, port = address.rpartition(":")
        self.address, self.server_name = (host, int(port)), server_name
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=10)
        self.sock = self.context.wrap_socket(sock, server_hostname=self.server_name)


def connection(kind: str, target: str) -> http.client.HTTPConnection:
    return UnixConnection(target) if kind == "unix" else TLSConnection(target)


def client(kind: str, target: str, path: str, seconds: float, out: "multiprocessing.Queue[tuple[int, int]]") -> None:
    done = failed = 0
    conn = connection(kind, target)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn.request("GET", path, headers={"Host": "localhost"})
            response = conn.getresponse()
            response.read()
            if response.status >= 500:
                failed += 1
            done += 1
        except (OSError, http.client.HTTPException):
            failed += 1
            conn.close()
            conn = connection(kind, target)
    out.put((done, failed))


def main() -> None:
    kind, target, path = sys.argv[1:4]
    clients = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 10
    queue: "multiprocessing.Queue[tuple[int, int]]" = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(kind, target, path, seconds, queue)) for _ in range(clients)]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=seconds + 30) for _ in procs]
    for proc in procs:
        proc.join()
    took = time.monotonic() - started
    done = sum(r[0] for r in results)
    print(json.dumps({"requests": done, "failed": sum(r[1] for r in results), "seconds": round(took, 2),
                      "rps": round(done / seconds, 1)}))


if __name__ == "__main__":
    main()
