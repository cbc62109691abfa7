"""Who answers for an L2 address: pure decisions over a membership :class:`View`.

The owner of an IP is the first of its candidates that is alive and says it can serve the IP
(:func:`choose_owner`); every node computes it from the same view, so they agree without the
API server. Without a quorum a node owns nothing (see :mod:`vipcast.proto.membership`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


def owned_here(ownerships: Iterable[L2Ownership], node: str, view: View) -> tuple[L2Ownership, ...]:
    """The ownerships this node must answer for under ``view`` (none without a quorum)."""
    if not view.quorum:
        return ()
    return tuple(o for o in ownerships if owner_of(o, view) == node)


@dataclass(frozen=True)
class Releasing:
    """The VIPs a node keeps answering after a plan or servability change gave them to another
    live node, each with the moment it stops at the latest (``ip -> deadline``).

    The hand-over order: the new owner announces (gratuitous ARP / unsolicited NA) as soon as it
    takes the VIP; the old owner answers until it sees that claim on the wire from another MAC,
    or until the deadline (the new owner may have died meanwhile: the normal failover applies).
    A VIP lost because nobody may own it (no quorum, no servable candidate) or because this node
    stops is not released: it stops at once.
    """

    deadlines: Mapping[str, float] = field(default_factory=dict)

    @property
    def ips(self) -> frozenset[str]:
        return frozenset(self.deadlines)

    def step(
        self,
        *,
        lost_to_peer: frozenset[str],
        peer_owned: frozenset[str],
        claimed: frozenset[str],
        now: float,
        timeout: float,
    ) -> Releasing:
        """The next state: start releasing ``lost_to_peer`` (deadline ``now + timeout``); keep
        only what another live node owns now (``peer_owned``: not what is ours again, not what
        nobody may own any more), not what a peer claimed on the wire, not what is past its
        deadline."""
        deadlines = dict(self.deadlines)
        for ip in (lost_to_peer & peer_owned) - deadlines.keys():
            deadlines[ip] = now + timeout
        return Releasing(
            {
                ip: until
                for ip, until in deadlines.items()
                if ip in peer_owned and ip not in claimed and until > now
            }
        )

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values(), default=None)


def owned_by_peers(ownerships: Iterable[L2Ownership], node: str, view: View) -> frozenset[str]:
    """The VIPs (as written in the plan) that another live node owns under ``view``: one this
    node loses to them is handed over (:class:`Releasing`), any other it loses just stops."""
    return frozenset(o.ip for o in ownerships if owner_of(o, view) not in (None, node))


def announce_again(before: View, after: View, owned: frozenset[str]) -> frozenset[str]:
    """The VIPs of ``owned`` (owned under ``after``) to announce again although this node may
    never have lost them in its own view: all of them when it refuted a suspicion or a death of
    itself between the two views (its incarnation rose). Other members may have counted it out
    meanwhile and the next candidate may have announced its VIPs (gratuitous ARP / unsolicited
    NA), moving the LAN's neighbour caches; ownership comes back with the refutation, but the
    caches only with an announcement from the owner (RFC 5227 §2.3, RFC 4861 §7.2.6). A node
    frozen by a stall cannot tell whether it was declared dead or only suspected (a death of an
    older incarnation is ignored once refuted), so every refutation counts."""
    return owned if after.incarnation > before.incarnation else frozenset()
