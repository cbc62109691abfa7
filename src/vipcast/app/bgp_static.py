"""A speaker driven by JSON lines on stdin, for interop tests and benchmarks.

``python -m vipcast.app.bgp_static`` (run inside a namespace) reads one JSON document per
line and makes the speaker equal to it::

    {"listen": [["0.0.0.0", 179]]}                      (first line only, optional)
    {"peers": [{"name": "r", "address": "192.0.2.1", "local_asn": 65001, "peer_asn": 65000,
                "router_id": "192.0.2.11", "password": null, "hold_time": 90, ...}],
     "routes": {"r": {"198.18.0.1/32": {"communities": [...], "large_communities": [...],
                                         "extended_communities": [<64-bit ints>],
                                         "local_pref": null}}},
     "generate": {"peer": "r", "base": "198.18.0.0", "count": 1000}}   (or a list of them)

``{"stop": true}`` (or end of input) stops with Cease/Administrative Shutdown. After every
document and every session event it prints ``{"t": <monotonic>, "peers": [status...]}``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from typing import Any

from vipcast.proto.bgp import IPV4_UNICAST, IPV6_UNICAST, RouteAttributes, SessionConfig
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker
from vipcast.runtime.bgp.transport import TransportOptions


def peer_from_json(doc: dict[str, Any]) -> PeerSettings:
    config = SessionConfig(
        local_asn=int(doc["local_asn"]),
        peer_asn=int(doc["peer_asn"]),
        router_id=str(doc["router_id"]),
        hold_time=int(doc.get("hold_time", 90)),
        connect_retry_time=float(doc.get("connect_retry_time", 5.0)),
        idle_hold_time=float(doc.get("idle_hold_time", 1.0)),
        idle_hold_max=float(doc.get("idle_hold_max", max(60.0, doc.get("idle_hold_time", 1.0)))),
        stable_time=float(doc.get("stable_time", 10.0)),
        passive=bool(doc.get("passive", False)),
        graceful_restart=bool(doc.get("graceful_restart", False)),
        restart_time=int(doc.get("restart_time", 120)),
        restarting=bool(doc.get("restarting", False)),
        next_hop_v6=doc.get("next_hop_v6"),
        extended_messages=bool(doc.get("extended_messages", True)),
        update_size=int(doc.get("update_size", 4096)),
        families=frozenset(
            {"ipv4": IPV4_UNICAST, "ipv6": IPV6_UNICAST}[f]
            for f in doc.get("families", ("ipv4", "ipv6"))
        ),
    )
    return PeerSettings(
        name=str(doc["name"]),
        address=str(doc["address"]),
        port=int(doc.get("port", 179)),
        session=config,
        transport=TransportOptions(
            source_address=doc.get("source_address"),
            ttl=doc.get("ttl"),
            gtsm_hops=doc.get("gtsm_hops"),
            md5_password=doc.get("password"),
        ),
    )


def host_routes(base: str, count: int) -> list[str]:
    """``count`` consecutive host routes from ``base`` (IPv4 text built from integers: the
    benchmark's trigger includes this, and ipaddress arithmetic is ten times slower)."""
    start = ipaddress.ip_address(base)
    if start.version == 6:
        return [f"{start + i}/128" for i in range(count)]
    first = int(start)
    octets = [str(i) for i in range(256)]
    return [
        f"{octets[v >> 24]}.{octets[(v >> 16) & 255]}.{octets[(v >> 8) & 255]}.{octets[v & 255]}/32"
        for v in range(first, min(first + count, 1 << 32))
    ]


def routes_from_json(doc: dict[str, Any]) -> dict[str, dict[str, RouteAttributes]]:
    table: dict[str, dict[str, RouteAttributes]] = {}
    for peer, routes in doc.get("routes", {}).items():
        table[peer] = {
            prefix: RouteAttributes(
                communities=tuple(int(c) for c in attrs.get("communities", ())),
                large_communities=tuple(
                    (int(a), int(b), int(c)) for a, b, c in attrs.get("large_communities", ())
                ),
                local_pref=attrs.get("local_pref"),
                extended_communities=tuple(
                    int(c) for c in attrs.get("extended_communities", ())
                ),
            )
            for prefix, attrs in routes.items()
        }
    generates = doc.get("generate") or []
    for generate in [generates] if isinstance(generates, dict) else generates:
        target = table.setdefault(str(generate["peer"]), {})
        plain = RouteAttributes()
        target.update(
            dict.fromkeys(host_routes(str(generate["base"]), int(generate["count"])), plain)
        )
    return table


async def serve(lines: asyncio.Queue[str | None]) -> None:
    first = await lines.get()
    listen: list[tuple[str, int]] = []
    pending = first
    if first is not None:
        doc = json.loads(first)
        if "listen" in doc and len(doc) == 1:
            listen = [(str(a), int(p)) for a, p in doc["listen"]]
            pending = None
    speaker = Speaker(listen=listen)
    await speaker.start()

    def report() -> None:
        status = [asdict(s) for s in speaker.status()]
        print(json.dumps({"t": time.monotonic(), "peers": status}), flush=True)

    async def watch() -> None:
        while True:
            await speaker.wait_changed(1.0)
            report()

    watcher = asyncio.create_task(watch())
    try:
        while True:
            line = pending if pending is not None else await lines.get()
            pending = None
            if line is None:
                break
            doc = json.loads(line)
            if doc.get("stop"):
                break
            if "routes" in doc or "generate" in doc:
                speaker.set_routes(routes_from_json(doc))
            if "peers" in doc:
                speaker.configure([peer_from_json(p) for p in doc["peers"]])
            report()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await speaker.stop("bgp_static stopping")
        report()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        fd = sys.stdin.fileno()
        pending = bytearray()

        def readable() -> None:
            # os.read, not sys.stdin.readline(): a buffered reader may swallow several lines
            # at once and the descriptor would not become readable again for the rest
            chunk = os.read(fd, 1 << 20)
            pending.extend(chunk)
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[:end])
                del pending[: end + 1]
                if line.strip():
                    lines.put_nowait(line.decode())
            if not chunk:
                loop.remove_reader(fd)
                if pending.strip():
                    lines.put_nowait(pending.decode())
                lines.put_nowait(None)

        loop.add_reader(fd, readable)
        await serve(lines)

    asyncio.run(run())


if __name__ == "__main__":
    main()
