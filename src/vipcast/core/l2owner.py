"""Who answers for an L2 address: pure decisions over a membership :class:`View`.

The owner of an IP is the first of its candidates that is alive and says it can serve the IP
(:func:`choose_owner`); every node computes it from the same view, so they agree without the
API server. Without a quorum a node owns nothing (see :mod:`vipcast.proto.membership`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import ip_address

from vipcast.core.desired import L2Ownership
from vipcast.proto.membership import View


def choose_owner(
    candidates: Iterable[str],
    alive: frozenset[str],
    serving: Mapping[str, frozenset[str]] | None = None,
    ip: str | None = None,
) -> str | None:
    """The first candidate in preference order that is alive and (when ``serving`` is given)
    says it can serve ``ip``; None if there is none (nobody answers: nobody could serve it)."""
    for name in candidates:
        if name not in alive:
            continue
        if serving is None or ip is None or ip in serving.get(name, frozenset()):
            return name
    return None


def owner_of(ownership: L2Ownership, view: View) -> str | None:
    """The owner of ``ownership.ip`` under ``view`` (None without a quorum)."""
    if not view.quorum:
        return None
    ip = canonical_ip(ownership.ip) if view.serving is not None else None
    return choose_owner(ownership.candidates, view.alive, view.serving, ip)


def canonical_ip(text: str) -> str:
    return str(ip_address(text))


def owned_here(
    ownerships: Iterable[L2Ownership], node: str, view: View
) -> tuple[L2Ownership, ...]:
    """The ownerships this node must answer for under ``view`` (none without a quorum)."""
    if not view.quorum:
        return ()
    return tuple(o for o in ownerships if owner_of(o, view) == node)
