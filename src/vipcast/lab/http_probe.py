"""A count- and time-bounded HTTP client, run inside a namespace by :mod:`vipcast.lab.backends`.

``python -m vipcast.lab.http_probe URL --count N --deadline SECONDS [--timeout S]`` sends at
most N GET requests, one new connection each (so per-connection load balancing shows), stops
at the deadline, and prints one JSON object: ``{"sent": n, "ok": n, "failed": n,
"backends": {"b1": n, ...}, "clients": [...], "nodes": {...}, "errors": [first few]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter


def probe(url: str, count: int, deadline: float, timeout: float) -> dict[str, object]:
    backends: Counter[str] = Counter()
    nodes: Counter[str] = Counter()
    clients: set[str] = set()
    errors: list[str] = []
    sent = ok = failed = 0
    end = time.monotonic() + deadline
    # never through a proxy from the environment: lab traffic stays in the namespaces
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while sent < count and time.monotonic() < end:
        sent += 1
        remaining = max(0.05, min(timeout, end - time.monotonic()))
        try:
            with opener.open(url, timeout=remaining) as resp:
                data = json.loads(resp.read())
            backends[str(data.get("backend"))] += 1
            nodes[str(data.get("node"))] += 1
            clients.add(str(data.get("client")))
            ok += 1
        except (OSError, ValueError, urllib.error.URLError) as exc:
            failed += 1
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
    return {
        "sent": sent,
        "ok": ok,
        "failed": failed,
        "backends": dict(backends),
        "nodes": dict(nodes),
        "clients": sorted(clients),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.url, args.count, args.deadline, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
