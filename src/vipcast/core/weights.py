"""Weighted ECMP (RFC 10005): each node's weight for a VIP, as link bandwidth communities.

A ``BGPAdvertisement`` with ``weightedECMP: endpoints`` asks every node that announces one of
its host routes to attach a transitive link bandwidth community whose value is the node's
weight times :data:`UNIT` bytes per second. The weight of a route is the sum, over the
services sharing its address, of:

- ``externalTrafficPolicy: Local``: the node's ready endpoints of the service (only nodes
  with one announce, so it is at least 1);
- ``Cluster``: the Node's ``vipcast.io/bgp-weight`` annotation (a positive number, default 1:
  every node equal). An annotation that is not a positive finite number is ignored with a
  reason (:func:`weight_issues`); the route stays announced with the default.

The weight is a function of the config alone (endpoint counts, annotations), so every node
computes the same unit for the same counts and the router's ratios are the counts' ratios.
Aggregated routes (shorter than a host route) carry no weight: one node's count for many
VIPs means nothing to the router.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from vipcast.alloc.pools import PoolIndex, parse_address
from vipcast.core.allocation import pool_input
from vipcast.core.desired import BGPRoute, NodePlan
from vipcast.core.endpoints import ready_endpoints
from vipcast.proto.bgp.ext_communities import (
    LinkBandwidth,
    decode_link_bandwidth,
    encode_link_bandwidth,
)
from vipcast.spec import EndpointSlice, Issue, Spec

#: bytes per second per unit of weight (one ready endpoint): 1 Mbit/s. Only ratios matter to
#: the router; a fixed unit makes every node's value comparable.
UNIT = 125_000.0
#: the largest weight sent: far below float32's range, far above any real endpoint count
MAX_WEIGHT = 1_000_000.0
WEIGHT_ANNOTATION = "vipcast.io/bgp-weight"
DEFAULT_NODE_WEIGHT = 1.0


@dataclass(frozen=True)
class RouteWeight:
    """The weight one node puts on one route."""

    prefix: str
    weight: float
    #: ready local endpoints behind it (Local-policy services); None: a Cluster weight
    endpoints: int | None

    @property
    def bytes_per_second(self) -> float:
        return self.weight * UNIT


def parse_node_weight(text: str | None) -> tuple[float, str | None]:
    """(weight, reason it was not taken) of a ``vipcast.io/bgp-weight`` annotation value."""
    if text is None:
        return DEFAULT_NODE_WEIGHT, None
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_NODE_WEIGHT, f"{text!r} is not a number"
    if not math.isfinite(value) or value <= 0:
        return DEFAULT_NODE_WEIGHT, f"{text!r} is not a positive finite number"
    if value > MAX_WEIGHT:
        return DEFAULT_NODE_WEIGHT, f"{text!r} exceeds the largest weight {MAX_WEIGHT:g}"
    return value, None


def _weighted_pools(spec: Spec) -> dict[str, frozenset[str] | None]:
    """Pools some weighted advertisement announces, with the peers it names (None: all)."""
    out: dict[str, frozenset[str] | None] = {}
    for adv in spec.bgp_advertisements:
        if adv.spec.weighted_ecmp is None:
            continue
        peers = frozenset(adv.spec.peers) if adv.spec.peers else None
        for pool in spec.pools_selected(adv.spec.ip_address_pools,
                                        adv.spec.ip_address_pool_selectors):
            had = out.get(pool.name, frozenset())
            out[pool.name] = None if had is None or peers is None else had | peers
    return out


def _host_ip(prefix: str) -> str | None:
    ip, _, length = prefix.partition("/")
    return ip if length in ("32", "128") else None


def route_weights(spec: Spec, plan: NodePlan) -> dict[str, RouteWeight]:
    """Per prefix of ``plan.bgp`` that a weighted advertisement covers, the node's weight."""
    pools = _weighted_pools(spec)
    if not pools:
        return {}
    index = PoolIndex(pool_input(p) for p in spec.pools)
    refusing = {p.name for p in spec.peers if not p.spec.extended_communities}
    services = {s.key: s for s in spec.services}
    node = next((n for n in spec.nodes if n.metadata.name == plan.node), None)
    node_weight, _ = parse_node_weight(
        node.metadata.annotations.get(WEIGHT_ANNOTATION) if node is not None else None
    )
    counts: dict[str, int] = {}
    slices: dict[str, list[EndpointSlice]] | None = None
    out: dict[str, RouteWeight] = {}
    for route in plan.bgp:
        ip = _host_ip(route.prefix)
        if ip is None:
            continue
        names = index.pools_of(*parse_address(ip))
        if not names or names[0] not in pools:
            continue
        peers = pools[names[0]]
        if peers is not None and not set(route.peers) <= peers:
            continue
        if any(p in refusing for p in route.peers):
            continue  # a peer that takes no extended communities: unweighted (check-config)
        weight, endpoints = 0.0, 0
        local_only = True
        for key in route.services:
            service = services.get(key)
            if service is None:
                continue
            if service.spec.external_traffic_policy == "Local":
                if key not in counts:
                    if slices is None:
                        slices = {}
                        for s in spec.endpoint_slices:
                            if s.service_key:
                                slices.setdefault(s.service_key, []).append(s)
                    counts[key] = sum(1 for ep in ready_endpoints(slices.get(key, ()))
                                      if ep.node == plan.node)
                weight += counts[key]
                endpoints += counts[key]
            else:
                weight += node_weight
                local_only = False
        if weight > 0:
            out[route.prefix] = RouteWeight(
                route.prefix, min(weight, MAX_WEIGHT), endpoints if local_only else None
            )
    return out


def _asn(spec: Spec, peers: tuple[str, ...]) -> int:
    by_name = {p.name: p.spec.my_asn for p in spec.peers}
    return next((by_name[p] for p in peers if p in by_name), 0)


def with_weights(spec: Spec, plan: NodePlan, previous: NodePlan | None = None) -> NodePlan:
    """``plan`` with each weighted route carrying its link bandwidth community (the same
    object when no advertisement asks for weights). A route equal to one of ``previous``
    is that very object, so consumers diffing by identity see it unchanged."""
    weights = route_weights(spec, plan)
    if not weights:
        return plan
    before = {r.prefix: r for r in previous.bgp} if previous is not None else {}
    routes = []
    for route in plan.bgp:
        w = weights.get(route.prefix)
        if w is None:
            routes.append(route)
            continue
        community = encode_link_bandwidth(
            LinkBandwidth(_asn(spec, route.peers), w.bytes_per_second)
        )
        kept = tuple(c for c in route.extended_communities if decode_link_bandwidth(c) is None)
        weighted = replace(route, extended_communities=(*kept, community))
        old = before.get(route.prefix)
        routes.append(old if old == weighted else weighted)
    return replace(plan, bgp=tuple(routes))


def weighted(spec: Spec, plans: Mapping[str, NodePlan]) -> dict[str, NodePlan]:
    """Every node's plan with its weights (``vipcast plan``, ``plan --against``)."""
    return {node: with_weights(spec, plan) for node, plan in plans.items()}


def route_weight(route: BGPRoute) -> float | None:
    """The weight a planned route carries (its link bandwidth over :data:`UNIT`), or None."""
    for value in route.extended_communities:
        lb = decode_link_bandwidth(value)
        if lb is not None:
            return lb.bytes_per_second / UNIT
    return None


def weights_by_prefix(plan: NodePlan) -> Mapping[str, float]:
    return {r.prefix: w for r in plan.bgp if (w := route_weight(r)) is not None}


def weight_issues(spec: Spec) -> Iterator[Issue]:
    """Warnings for ``check-config``: Node weight annotations that are not taken, and weighted
    advertisements sent to peers that take no extended communities."""
    if not any(a.spec.weighted_ecmp for a in spec.bgp_advertisements):
        return
    refusing = sorted(p.name for p in spec.peers if not p.spec.extended_communities)
    for adv in spec.bgp_advertisements:
        if adv.spec.weighted_ecmp is None:
            continue
        named = [p for p in refusing if not adv.spec.peers or p in adv.spec.peers]
        if named:
            yield Issue(
                spec.origins.get(f"BGPAdvertisement/{adv.name}", ""), "BGPAdvertisement",
                adv.name, "spec.weightedECMP",
                f"peer(s) {', '.join(named)} take no extended communities "
                "(BGPPeer spec.extendedCommunities: false): routes sent to them carry no "
                "weight; a router weights only when every path has one",
            )
    for node in spec.nodes:
        text = node.metadata.annotations.get(WEIGHT_ANNOTATION)
        _, reason = parse_node_weight(text)
        if reason is not None:
            yield Issue(
                spec.origins.get(f"Node/{node.metadata.name}", ""), "Node", node.metadata.name,
                f"metadata.annotations[{WEIGHT_ANNOTATION}]",
                f"{reason}: the node's weighted routes use the default weight "
                f"{DEFAULT_NODE_WEIGHT:g}",
            )
