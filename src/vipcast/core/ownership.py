"""One L2 owner per address, agreed by every node without talking: a stable hash order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def preference(node: str, ip: str) -> str:
    """The node's rank key for ``ip``: sha256 of ``node#ip`` (spreads owners across nodes)."""
    return hashlib.sha256(f"{node}#{ip}".encode()).hexdigest()


def l2_candidates(ip: str, nodes: Iterable[str]) -> tuple[str, ...]:
    """Eligible nodes in preference order; the first is the owner while it is alive."""
    return tuple(sorted(set(nodes), key=lambda n: (preference(n, ip), n)))
