"""What one node must do: the contract between the pure planner and the effect layers.

The planner (:mod:`vipcast.core.plan`) produces a :class:`NodePlan` per node; the BGP speaker,
the L2 responder and the data plane consume it. Everything here is a frozen value, ordered
deterministically, so two plans compare equal exactly when the node's duties are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Protocol = Literal["TCP", "UDP", "SCTP"]
TrafficPolicy = Literal["Cluster", "Local"]


@dataclass(frozen=True, order=True)
class Backend:
    """One endpoint of a service port: where the data plane sends VIP traffic."""

    ip: str
    port: int
    node: str | None = None
    #: the endpoint runs on the node this plan is for
    local: bool = False
    ready: bool = True


@dataclass(frozen=True, order=True)
class NatRule:
    """Carry ``vip:port/protocol`` to ``backends`` (DNAT), as the traffic policy says."""

    service: str  # "namespace/name"
    vip: str
    port: int
    protocol: Protocol
    backends: tuple[Backend, ...]
    traffic_policy: TrafficPolicy = "Cluster"
    #: CIDRs allowed to reach the VIP; empty means everyone
    source_ranges: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class BGPRoute:
    """A prefix this node announces, to which peers and with which attributes."""

    prefix: str  # "192.0.2.10/32", "2001:db8::10/128" or an aggregate
    peers: tuple[str, ...]  # BGPPeer names
    #: RFC 1997 communities as 32-bit values
    communities: tuple[int, ...] = ()
    #: RFC 8092 large communities (global admin, local 1, local 2)
    large_communities: tuple[tuple[int, int, int], ...] = ()
    local_pref: int | None = None
    services: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class L2Ownership:
    """An IP answered on the LAN (ARP/NDP) by exactly one node.

    ``candidates`` are the eligible nodes in the stable-hash preference order every node
    computes alike; ``owner`` is the first of them in the static view. At run time the L2
    runtime takes the first candidate that its membership view says is alive.
    """

    ip: str
    interfaces: tuple[str, ...]
    owner: str
    candidates: tuple[str, ...]
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodePlan:
    """Everything one node announces and forwards."""

    node: str
    bgp: tuple[BGPRoute, ...] = ()
    l2: tuple[L2Ownership, ...] = ()
    nat: tuple[NatRule, ...] = ()
    #: VIPs the node must accept locally (address or local route), whether BGP or L2
    local_vips: tuple[str, ...] = field(default=())
