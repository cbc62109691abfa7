"""Steady, bounded HTTP load over keep-alive connections, for hitless-change tests.

``python -m vipcast.lab.http_load --url http://203.0.113.1/ --connections 4 --rate 200
--duration 20 --out result.json``: each connection sends at most ``rate/connections``
requests a second for ``duration`` seconds (or until SIGTERM) and the totals are written as
JSON: requests, ok (2xx), by status, failed (non-2xx), resets (the connection was reset or
closed under a request), errors (other exceptions), by backend (the echo backend's id).
A connection that failed is reopened; nothing is retried.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


class Totals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: Counter[int] = Counter()
        self.backends: Counter[str] = Counter()
        self.resets = 0
        self.errors: Counter[str] = Counter()
        self.requests = 0


def worker(url: str, host: str | None, rate: float, stop: threading.Event, t: Totals,
           timeout: float) -> None:
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn: http.client.HTTPConnection | None = None
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    headers = {"Host": host} if host else {}
    while not stop.is_set():
        now = time.monotonic()
        if now < next_at:
            time.sleep(min(next_at - now, 0.05))
            continue
        next_at += interval
        c = conn or http.client.HTTPConnection(parts.hostname or "", parts.port or 80,
                                               timeout=timeout)
        conn = c
        try:
            c.request("GET", path, headers=headers)
            resp = c.getresponse()
            body = resp.read()
            with t.lock:
                t.requests += 1
                t.status[resp.status] += 1
                if resp.status == 200:
                    with contextlib.suppress(ValueError):
                        t.backends[str(json.loads(body).get("backend"))] += 1
            if resp.will_close:
                c.close()
                conn = None
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                ConnectionAbortedError) as exc:
            with t.lock:
                t.requests += 1
                t.resets += 1
                t.errors[type(exc).__name__] += 1
            c.close()
            conn = None
        except (OSError, http.client.HTTPException) as exc:
            with t.lock:
                t.requests += 1
                t.errors[type(exc).__name__] += 1
            c.close()
            conn = None
    if conn is not None:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--host", default=None, help="Host header")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s in total")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    totals = Totals()
    threads = [threading.Thread(target=worker, args=(args.url, args.host,
                                                     args.rate / args.connections, stop,
                                                     totals, args.timeout), daemon=True)
               for _ in range(args.connections)]
    started = time.monotonic()
    for th in threads:
        th.start()
    print("ready", flush=True)
    stop.wait(args.duration)
    stop.set()
    for th in threads:
        th.join(args.timeout + 1)
    ok = sum(n for s, n in totals.status.items() if 200 <= s < 300)
    doc = {
        "seconds": round(time.monotonic() - started, 3),
        "requests": totals.requests,
        "ok": ok,
        "failed": sum(totals.status.values()) - ok,
        "status": {str(k): v for k, v in sorted(totals.status.items())},
        "resets": totals.resets,
        "errors": dict(totals.errors),
        "backends": dict(sorted(totals.backends.items())),
    }
    # whole or absent: a reader waiting for the file never sees it half written
    partial = f"{args.out}.partial"
    with open(partial, "w") as fh:
        json.dump(doc, fh)
    os.replace(partial, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
