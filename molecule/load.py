"""A bounded HTTP load: N clients on keep-alive connections, for at most S seconds and R requests.

    python molecule/load.py https://localhost:8443/health --clients 4 --seconds 20 --requests 20000

Each client sends its next request when the last is answered, or at most --rate a second
(a paced load leaves the deploy under test the CPU it would have on a real server).
With --server-name, requests go to the loopback URL with that name as TLS SNI and Host (a
site that serves only its real names, such as one with an ACME certificate).

With --retry-closed, a request whose keep-alive connection the server closed before
answering is sent again once on a new connection, as browsers and curl do for idempotent
requests (RFC 9112, 9.3.1): a graceful nginx reload closes its idle keep-alive connections,
and one can meet a request already on its way. Such retries are counted and reported;
a request that fails again, or any other error, is a failure.

Tests run it in the background around a deploy or a rollback and assert that no request
failed (connection errors and 5xx count as failures). Only loopback targets are allowed.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx


@dataclass
class Result:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> str:
        return (
            f"requests sent {self.sent}, failed {self.failed}, "
            + (f"retried on a closed keep-alive connection {self.retried}, " if self.retried else "")
            + f"p50 {self.percentile(50) * 1000:.1f} ms, p99 {self.percentile(99) * 1000:.1f} ms"
            + (f", errors {self.errors}" if self.errors else "")
        )


class Load:
    """Runs in background threads between start() and stop()."""

    def __init__(self, url: str, clients: int = 4, seconds: float = 120, requests: int = 50_000,
                 rate: float | None = None, server_name: str | None = None, retry_closed: bool = False) -> None:
        host = urlsplit(url).hostname
        if host not in ("localhost", "127.0.0.1", "::1"):
            raise ValueError(f"load only targets loopback, not {host}")
        self.url, self.clients, self.seconds, self.requests, self.rate = url, clients, seconds, requests, rate
        # Sent as SNI and Host; the connection still goes to the loopback URL.
        self.headers = {"Host": server_name} if server_name else {}
        self.extensions = {"sni_hostname": server_name} if server_name else {}
        self.retry_closed = retry_closed
        self.result = Result()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self) -> None:
        deadline = time.monotonic() + self.seconds
        next_at = time.monotonic()
        with httpx.Client(verify=False, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self.rate:
                    next_at += 1 / self.rate
                    if self._stop.wait(max(0.0, next_at - time.monotonic())):
                        return
                with self._lock:
                    if self.result.sent >= self.requests:
                        return
                    self.result.sent += 1
                started = time.monotonic()
                error = None
                retried = False
                try:
                    try:
                        status = client.get(self.url, headers=self.headers, extensions=self.extensions).status_code
                    except httpx.RemoteProtocolError:
                        # Closed by the server without a byte of an answer: once more, on a new connection.
                        if not self.retry_closed:
                            raise
                        retried = True
                        status = client.get(self.url, headers=self.headers, extensions=self.extensions).status_code
                    if status >= 500:
                        error = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                with self._lock:
                    self.result.latencies.append(time.monotonic() - started)
                    self.result.retried += retried
                    if error:
                        self.result.failed += 1
                        self.result.errors[error] = self.result.errors.get(error, 0) + 1

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Result:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.result

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=None, help="at most this many requests a second per client")
    parser.add_argument("--server-name", default=None, help="TLS SNI and Host to send (the URL stays loopback)")
    parser.add_argument("--retry-closed", action="store_true",
                        help="send a request again once when the server closed its keep-alive connection unanswered")
    args = parser.parse_args()
    load = Load(args.url, args.clients, args.seconds, args.requests, args.rate, args.server_name,
                args.retry_closed).start()
    for thread in load._threads:
        thread.join()
    print(load.stop().summary())


if __name__ == "__main__":
    main()
