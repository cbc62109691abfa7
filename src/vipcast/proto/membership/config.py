"""Timers and configuration of the SWIM membership (values only).

The defaults are chosen for a LAN and for vipcast's L2 failover budget, not for a WAN:
:meth:`Timers.lan` picks faster probes for a small cluster (where every node probes every
other several times a second at negligible cost) and a 0.1 s period past 16 members, where the
per-node message budget, not the cluster size, sets the cost (see docs/membership.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

#: the range a user may set the suspicion floor in (seconds), see :func:`suspicion_min_problem`
SUSPICION_MIN_RANGE = (0.05, 30.0)


def suspicion_min_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a user-set suspicion floor (seconds), or None.

    Below 0.05 s (one probe period of a small cluster) a suspect has no time to refute: on a
    loaded machine, where the event loop's scheduling delays reach tens of milliseconds, every
    hiccup would be a death. Above 30 s detection takes longer than any health check would:
    node liveness and L2 failover would lose their point (a typo such as 120 meant as 120 ms
    is caught here too). See docs/membership.md, "The suspicion floor"."""
    low, high = SUSPICION_MIN_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, not {value!r}"
    if not math.isfinite(value) or not low <= value <= high:
        return f"must be between {low:g} and {high:g} seconds, not {value!r}"
    return None


@dataclass(frozen=True)
class Timers:
    #: one member probed per period (SWIM's protocol period)
    probe_interval: float = 0.1
    #: wait for a direct ack before asking ``indirect_checks`` others to probe
    probe_timeout: float = 0.03
    indirect_checks: int = 3
    #: suspicion lasts ``max(suspicion_min, suspicion_mult * log10(n + 1) * probe_interval)``
    suspicion_mult: float = 1.0
    suspicion_min: float = 0.2
    #: rumors still to spread go to ``gossip_nodes`` random members every ``gossip_interval``
    gossip_interval: float = 0.03
    gossip_nodes: int = 3
    #: each rumor is sent ``retransmit_mult * ceil(log10(n + 1))`` times by every member
    retransmit_mult: int = 4
    #: no quorum before this long after start, unless every member's state is known sooner
    settle_after: float = 0.35
    #: a request (challenge, pull, sync) unanswered this long is sent again
    request_timeout: float = 0.25
    #: Lifeguard's dynamic suspicion: a suspicion starts at ``suspicion_max_mult`` times the
    #: suspicion timeout and shrinks toward it, on a log curve, as up to
    #: ``suspicion_confirmations`` other members are heard suspecting the same incarnation
    #: (1.0: a fixed timeout, SWIM as before)
    suspicion_max_mult: float = 3.0
    suspicion_confirmations: int = 3
    #: Lifeguard's local health: a member that sees signs of its own slowness (a tick late by
    #: more than a probe timeout, a suspicion of itself to refute) raises its health score by
    #: one, a probe answered in time lowers it by one; probe timeout and probe interval are
    #: stretched by ``score + 1``, the score stays below ``awareness_max`` (1: off)
    awareness_max: int = 8
    #: a member refuting a suspicion of itself sends the refutation directly to the member
    #: that told it and up to ``refute_fanout - 1`` others, besides gossiping it (1: only the
    #: member that told it, as before)
    refute_fanout: int = 16

    def suspicion_timeout(self, members: int) -> float:
        return max(
            self.suspicion_min,
            self.suspicion_mult * math.log10(members + 1) * self.probe_interval,
        )

    def suspicion_after(self, members: int, confirmations: int) -> float:
        """How long a suspicion lasts, counted from when it began here, once ``confirmations``
        other members were heard suspecting the same incarnation (Lifeguard's formula:
        ``max - (max - min) * log(c + 1) / log(k + 1)``, never below ``min``). ``k`` is
        ``suspicion_confirmations``, fewer in a cluster too small to give them."""
        low = self.suspicion_timeout(members)
        high = low * max(1.0, self.suspicion_max_mult)
        k = min(self.suspicion_confirmations, members - 2)
        if k < 1 or high <= low:
            return low
        c = min(max(confirmations, 0), k)
        return max(low, high - (high - low) * math.log(c + 1) / math.log(k + 1))

    def stall_tolerance(self) -> float:
        """A member whose process stalls for less than this, minus one network round trip,
        is never declared dead: a probe it missed is concluded a probe interval after it went
        out, and no suspicion here runs out sooner than ``suspicion_min``. A longer stall cannot
        be told from a crash (the stalled member answers nothing), so the tolerance is the
        price in detection time: see docs/membership.md."""
        return self.probe_interval + self.suspicion_min

    def swim(self) -> Timers:
        """The same timers without Lifeguard's additions: a fixed suspicion timeout and no
        local health, refutation to the teller only (the protocol as it was; the bench's
        reference)."""
        return replace(self, suspicion_max_mult=1.0, awareness_max=1, refute_fanout=1)

    def retransmits(self, members: int) -> int:
        return self.retransmit_mult * max(1, math.ceil(math.log10(members + 1)))

    @classmethod
    def lan(cls, members: int, suspicion_min: float | None = None) -> Timers:
        """Timers for a LAN cluster of ``members`` nodes (see the module docstring), with the
        user's suspicion floor if one is given (ValueError naming ``suspicion_min`` if it is
        out of :data:`SUSPICION_MIN_RANGE`)."""
        if members <= 16:
            timers = cls(
                probe_interval=0.05,
                probe_timeout=0.02,
                indirect_checks=2,
                suspicion_min=0.12,
                gossip_interval=0.02,
                settle_after=0.35,
            )
        else:
            timers = cls()
        if suspicion_min is None:
            return timers
        problem = suspicion_min_problem(suspicion_min)
        if problem is not None:
            raise ValueError(f"suspicion_min {problem}")
        return replace(timers, suspicion_min=float(suspicion_min))

    @classmethod
    def memberlist_lan(cls) -> Timers:
        """hashicorp memberlist's DefaultLANConfig, as published: ProbeInterval 1 s,
        ProbeTimeout 500 ms, IndirectChecks 3, SuspicionMult 4 (the minimum of its Lifeguard
        suspicion range), GossipInterval 200 ms, GossipNodes 3, RetransmitMult 4,
        SuspicionMaxTimeoutMult 6, AwarenessMaxMultiplier 8."""
        return cls(
            probe_interval=1.0,
            probe_timeout=0.5,
            indirect_checks=3,
            suspicion_mult=4.0,
            suspicion_min=0.0,
            gossip_interval=0.2,
            gossip_nodes=3,
            retransmit_mult=4,
            settle_after=2.0,
            request_timeout=1.0,
            suspicion_max_mult=6.0,
            suspicion_confirmations=2,
            awareness_max=8,
        )


@dataclass(frozen=True)
class MembershipConfig:
    node: str
    #: every member including this node (:meth:`Membership.set_members` changes it later)
    members: frozenset[str]
    key: bytes
    timers: Timers = field(default_factory=Timers)

    def __post_init__(self) -> None:
        if self.node not in self.members:
            raise ValueError(f"{self.node!r} is not among the members {sorted(self.members)}")
        if not self.key:
            raise ValueError("an empty membership key authenticates nothing")

    @classmethod
    def lan(cls, node: str, members: Iterable[str], key: bytes) -> MembershipConfig:
        names = frozenset(members) | {node}
        return cls(node, names, key, Timers.lan(len(names)))
