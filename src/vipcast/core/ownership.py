"""One L2 owner per address, agreed by every node without talking: a stable hash order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache


def preference(node: str, ip: str) -> str:
    """The node's rank key for ``ip``: sha256 of ``node#ip`` (spreads owners across nodes)."""
    return hashlib.sha256(f"{node}#{ip}".encode()).hexdigest()


def l2_candidates(ip: str, nodes: Iterable[str]) -> tuple[str, ...]:
    """Eligible nodes in preference order; the first is the owner while it is alive.

    Same order as sorting by :func:`preference`; the digest's bytes sort as its hex does.
    """
    tail = ip.encode()
    ranked = []
    for n in set(nodes):
        h = _prefix(n).copy()
        h.update(tail)
        ranked.append((h.digest(), n))
    ranked.sort()
    return tuple(n for _, n in ranked)


@lru_cache(maxsize=4096)
def _prefix(node: str) -> hashlib._Hash:
    return hashlib.sha256(f"{node}#".encode())
