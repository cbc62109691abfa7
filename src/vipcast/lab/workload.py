"""The lab's workload: HTTP backends that echo who served and whom they saw, and a bounded client.

Run inside a namespace (``ip netns exec NS python -m vipcast.lab.workload ...``):

- ``serve --host H --port P --name B --node N`` answers every request with one JSON line
  ``{"backend": B, "node": N, "client": "<source address it saw>"}``;
- ``load --url URL --count C --interval S --timeout T --max-seconds M`` sends at most C
  requests (one new TCP connection each, so ECMP hashing spreads them), at most M seconds, and
  prints one JSON line per request: ``{"t": seconds since start, "ok": bool, "backend": ...,
  "node": ..., "client": ..., "error": ...}``.

Both are bounded and stop by themselves; the lab kills servers by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Sample:
    t: float
    ok: bool
    backend: str | None = None
    node: str | None = None
    client: str | None = None
    error: str | None = None


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str, node: str
) -> None:
    try:
        while True:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            if not head:
                break
            peer = writer.get_extra_info("peername")
            body = json.dumps({"backend": name, "node": node, "client": peer[0]}).encode() + b"\n"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, name: str, node: str) -> None:
    server = await asyncio.start_server(
        lambda r, w: _answer(r, w, name, node), host=host, port=port, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def request(url: str, timeout: float) -> Sample:
    """One GET on a new connection; the outcome as a Sample (t filled by the caller)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    conn = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        if resp.status != 200:
            return Sample(0.0, False, error=f"HTTP {resp.status}")
        return Sample(0.0, True, data.get("backend"), data.get("node"), data.get("client"))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Sample(0.0, False, error=type(exc).__name__)
    finally:
        conn.close()


def load(
    url: str, count: int, interval: float, timeout: float, max_seconds: float
) -> Iterator[Sample]:
    """At most ``count`` requests, at most ``max_seconds``, one every ``interval`` seconds."""
    start = time.monotonic()
    for i in range(count):
        due = start + i * interval
        now = time.monotonic()
        if now - start > max_seconds:
            return
        if due > now:
            time.sleep(due - now)
        t = time.monotonic() - start
        sample = request(url, timeout)
        yield Sample(
            round(t, 4), sample.ok, sample.backend, sample.node, sample.client, sample.error
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vipcast.lab.workload")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--name", required=True)
    s.add_argument("--node", default="")
    c = sub.add_parser("load")
    c.add_argument("--url", required=True)
    c.add_argument("--count", type=int, default=100)
    c.add_argument("--interval", type=float, default=0.01)
    c.add_argument("--timeout", type=float, default=0.5)
    c.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        asyncio.run(serve(args.host, args.port, args.name, args.node))
        return 0
    for sample in load(
        args.url,
        min(args.count, 100_000),
        args.interval,
        args.timeout,
        min(args.max_seconds, 600.0),
    ):
        sys.stdout.write(json.dumps(asdict(sample)) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
