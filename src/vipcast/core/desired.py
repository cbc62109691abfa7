"""What one node must do: the contract between the pure planner and the effect layers.

The planner (:mod:`vipcast.core.plan`) produces the duties of each node (routes, L2 owners,
NAT rules, local VIPs); the node pipeline (:mod:`vipcast.core.pipeline`) completes them into the
one :class:`NodePlan` every consumer reads (BGP sessions, BFD sessions, health targets,
backends down, servable L2 VIPs). The BGP speaker, BFD, the L2 responder, the data plane and
the health checker consume it. Everything here is a frozen value, ordered
deterministically, so two plans compare equal exactly when the node's duties are the same.

The values built per address and per node (:class:`Backend`, :class:`NatRule`,
:class:`BGPRoute`, :class:`L2Ownership`; a plan of 10,000 Services on 50 nodes makes some
150,000 of them) are frozen dataclasses whose ``__init__`` :func:`vipcast.fastinit.fast_init`
generates from their fields to fill the instance dict in one go: the generated one of a frozen
dataclass sets each field through ``object.__setattr__``, several times slower. The
parameters, defaults, equality, order, hash, ``repr`` and :func:`dataclasses.replace` are the
dataclass's own (tests/foundation/test_desired_init.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from vipcast.fastinit import fast_init
from vipcast.spec.health import HealthCheckConfig

if TYPE_CHECKING:  # types of fields only: the planner and `vipcast plan` need neither
    from vipcast.core.gateway.model import ProxyModel
    from vipcast.proto.bfd import SessionConfig as BfdConfig
    from vipcast.proto.bgp import SessionConfig
    from vipcast.spec.objects import BFDProfileSpec  # pydantic: not needed to read a plan

Protocol = Literal["TCP", "UDP", "SCTP"]
TrafficPolicy = Literal["Cluster", "Local"]
#: (ip, port) of one backend
BackendKey = tuple[str, int]
#: ``(vip, port, protocol)``: one announced service port
VipKey = tuple[str, int, str]


@dataclass(frozen=True)
class NodeIdentity:
    """Who this node is, as the BGP sessions need it."""

    node: str
    router_id: str | None = None
    #: the previous agent did not stop cleanly: graceful restart (R-bit) where configured
    restarting: bool = False


@fast_init
@dataclass(frozen=True, order=True)
class Backend:
    """One endpoint of a service port: where the data plane sends VIP traffic."""

    ip: str
    port: int
    node: str | None = None
    #: the endpoint runs on the node this plan is for
    local: bool = False
    ready: bool = True


@fast_init
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


@fast_init
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
    #: RFC 4360 extended communities as 64-bit values (RFC 10005 link bandwidth: weightedECMP)
    extended_communities: tuple[int, ...] = ()


@fast_init
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


@dataclass(frozen=True, order=True)
class HealthTarget:
    """One backend the node's health checker probes, and how."""

    ip: str
    port: int
    services: tuple[str, ...]
    config: HealthCheckConfig = field(default_factory=HealthCheckConfig)


@dataclass(frozen=True)
class BgpSession:
    """One BGP session the node keeps (from a BGPPeer that selects it)."""

    name: str
    address: str
    port: int
    session: SessionConfig
    source_address: str | None = None
    ttl: int | None = None
    gtsm_hops: int | None = None
    md5_password: str | None = None


@dataclass(frozen=True)
class BfdPeer:
    """The BFD session one BGP peer asks for."""

    name: str
    address: str
    local: str | None
    config: BfdConfig
    multihop: bool = False
    interface: str | None = None


@dataclass(frozen=True)
class HandOffNeighbor:
    """A ``HandOff`` BGPPeer selecting this node: the CNI's session toward a router, to which
    the CNI announces what vipcast hands it (vipcast opens no session)."""

    name: str
    address: str
    my_asn: int
    peer_asn: int
    port: int = 179
    ebgp_multi_hop: bool = False
    #: the BFDProfile's name and intervals (FRR-K8s sets BFD up for the neighbor)
    bfd_profile: str | None = None
    bfd: BFDProfileSpec | None = None
    password: str | None = None
    #: a Secret in the FRR-K8s namespace holding the password (FRR-K8s reads it)
    password_secret: str | None = None


@dataclass(frozen=True)
class HandOffTarget:
    """Where this node's announcements toward hand-off peers go: one CNISpeaker's target."""

    cni: str  # CNISpeaker name
    asn: int  # the CNI's AS
    kind: Literal["calico", "frrK8s", "birdInclude"]
    neighbors: tuple[HandOffNeighbor, ...]
    #: calico: the BGPConfiguration whose serviceLoadBalancerIPs vipcast owns
    bgp_configuration: str = "default"
    #: frrK8s: the namespace of the FRRConfiguration objects
    namespace: str = "frr-k8s-system"
    #: birdInclude: the file, BIRD's control socket, the static protocol's name
    path: str = ""
    control_socket: str = ""
    protocol: str = "vipcast_handoff"


@dataclass(frozen=True, order=True)
class L2Member:
    """A node of the L2 membership (heartbeats) and where its membership socket is."""

    name: str
    address: str | None = None


@dataclass(frozen=True, eq=False)
class RouteDelta:
    """How a plan's ``bgp`` tuple was made from an earlier one: ``base`` with ``removed``
    taken out and ``added`` put in (by object identity). A hint for a consumer that diffs
    (the BGP speaker): valid only if ``base`` is what it applied and ``result`` the tuple it
    is given, which it checks by identity before use."""

    base: tuple[BGPRoute, ...]
    result: tuple[BGPRoute, ...]
    removed: tuple[BGPRoute, ...]
    added: tuple[BGPRoute, ...]


@dataclass(frozen=True)
class NodePlan:
    """Everything one node announces and forwards."""

    node: str
    bgp: tuple[BGPRoute, ...] = ()
    l2: tuple[L2Ownership, ...] = ()
    nat: tuple[NatRule, ...] = ()
    #: VIPs the node must accept locally (address or local route), whether BGP or L2
    local_vips: tuple[str, ...] = field(default=())
    # ---- filled by the node pipeline (vipcast.core.pipeline), empty in bare duties ----------
    #: the BGP sessions to keep
    peers: tuple[BgpSession, ...] = ()
    #: the BFD sessions to keep (one per BGP peer with a BFDProfile)
    bfd: tuple[BfdPeer, ...] = ()
    #: where announcements toward HandOff peers are handed to a CNI (core/handoff.py)
    hand_off: tuple[HandOffTarget, ...] = ()
    #: the backends to health-check
    health: tuple[HealthTarget, ...] = ()
    #: backends left out of the NAT maps: failing their checks, or on a node known dead
    down: frozenset[BackendKey] = frozenset()
    #: the L2 VIPs this node may own now (healthy and verified); None: every planned one
    l2_servable: frozenset[str] | None = None
    #: the L2 membership (this node included); empty: the config has no L2Advertisement
    l2_members: tuple[L2Member, ...] = ()
    #: the liveness-only membership of a BGP config (this node included): who may be declared
    #: dead (``Local.dead_nodes``); empty in L2 mode, where the L2 membership tells
    liveness_members: tuple[L2Member, ...] = ()
    #: what the node's L7 gateway (Envoy) serves; None: the config has no Gateway or Ingress
    proxy: ProxyModel | None = None
    #: how ``bgp`` differs from the previous plan's (the pipeline's filter knows, so a health
    #: flip is not found again by comparing 10,000 routes); not part of the value
    bgp_delta: RouteDelta | None = field(default=None, compare=False, repr=False)
