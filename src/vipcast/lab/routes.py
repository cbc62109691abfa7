"""Kernel routes as the lab reads them (``ip -j route show``), normalised to values."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NextHop:
    gateway: str | None
    dev: str | None
    weight: int = 1


@dataclass(frozen=True)
class Route:
    """One kernel route, as ``ip -j route show`` reports it, normalised."""

    dst: str  # always with a prefix length: "0.0.0.0/0", "192.0.2.10/32"
    nexthops: tuple[NextHop, ...]
    protocol: str | None = None
    metric: int | None = None
    type: str = "unicast"

    @property
    def gateways(self) -> tuple[str, ...]:
        return tuple(sorted(h.gateway for h in self.nexthops if h.gateway))


def parse_routes(raw: list[dict[str, Any]], family: int) -> list[Route]:
    """Turn ``ip -j route show`` output into :class:`Route` values (ECMP kept as nexthops)."""
    routes: list[Route] = []
    for entry in raw:
        dst = str(entry.get("dst", ""))
        if dst == "default":
            dst = "0.0.0.0/0" if family == 4 else "::/0"
        elif "/" not in dst:
            dst = f"{dst}/{32 if family == 4 else 128}"
        hops_raw = entry.get("nexthops")
        if hops_raw:
            hops = tuple(
                NextHop(h.get("gateway"), h.get("dev"), int(h.get("weight", 1))) for h in hops_raw
            )
        else:
            hops = (NextHop(entry.get("gateway"), entry.get("dev")),)
        metric = entry.get("metric")
        routes.append(
            Route(
                dst=str(ipaddress.ip_network(dst, strict=False)),
                nexthops=hops,
                protocol=entry.get("protocol"),
                metric=int(metric) if metric is not None else None,
                type=str(entry.get("type", "unicast")),
            )
        )
    return routes
