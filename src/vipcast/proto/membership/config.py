"""Timers and configuration of the SWIM membership (values only).

The defaults are chosen for a LAN and for vipcast's L2 failover budget, not for a WAN:
:meth:`Timers.lan` picks faster probes for a small cluster (where every node probes every
other several times a second at negligible cost) and a 0.1 s period past 16 members, where the
per-node message budget, not the cluster size, sets the cost (see docs/membership.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field


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

    def suspicion_timeout(self, members: int) -> float:
        return max(
            self.suspicion_min,
            self.suspicion_mult * math.log10(members + 1) * self.probe_interval,
        )

    def retransmits(self, members: int) -> int:
        return self.retransmit_mult * max(1, math.ceil(math.log10(members + 1)))

    @classmethod
    def lan(cls, members: int) -> Timers:
        """Timers for a LAN cluster of ``members`` nodes (see the module docstring)."""
        if members <= 16:
            return cls(
                probe_interval=0.05,
                probe_timeout=0.02,
                indirect_checks=2,
                suspicion_min=0.12,
                gossip_interval=0.02,
                settle_after=0.35,
            )
        return cls()

    @classmethod
    def memberlist_lan(cls) -> Timers:
        """hashicorp memberlist's DefaultLANConfig, as published: ProbeInterval 1 s,
        ProbeTimeout 500 ms, IndirectChecks 3, SuspicionMult 4 (the minimum of its Lifeguard
        suspicion range), GossipInterval 200 ms, GossipNodes 3, RetransmitMult 4."""
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
