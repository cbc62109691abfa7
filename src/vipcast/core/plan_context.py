"""What the planner derives once from its inputs and shares between all nodes' plans
(:class:`PlanContext`): the nodes and their labels, the Services' ready endpoints, the pools'
advertisements and the nodes each selects, the peers an advertisement reaches from a node, and
per address the nodes eligible to announce it. Used by :mod:`vipcast.core.plan` and
:mod:`vipcast.core.explain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from vipcast.alloc import Selector
from vipcast.alloc.pools import PoolIndex, parse_address
from vipcast.core.allocation import pool_input
from vipcast.core.endpoints import ReadyEndpoint, any_ready, ready_endpoints
from vipcast.core.gateway.address import proxied
from vipcast.spec import (
    LOAD_BALANCER_CLASS,
    BGPAdvertisement,
    EndpointSlice,
    L2Advertisement,
    Node,
    Service,
    Spec,
)

Assignments = Mapping[str, Sequence[str]]
#: (peers, the nodes that reach exactly these peers) of one advertisement
PeerGroups = tuple[tuple[tuple[str, ...], frozenset[str]], ...]
#: (kind "BGP" or "L2", the advertisement, the nodes eligible under it) for one address
Advertised = tuple[tuple[str, BGPAdvertisement | L2Advertisement, frozenset[str]], ...]


@dataclass(frozen=True)
class Announcement:
    """What one advertisement makes of one address: the nodes eligible for it."""

    kind: str  # "BGP" or "L2"
    advertisement: str
    ip: str
    eligible: frozenset[str]


class ServiceEndpoints:
    """The ready endpoints of each Service (by key), each Service's made when first asked for:
    a node's routes alone (:mod:`vipcast.core.first_routes`) ask only whether a Cluster-policy
    Service has one (:meth:`any_ready`), which needs no sorted endpoint tuple."""

    __slots__ = ("_made", "_slices")

    def __init__(self, slices: Mapping[str, Sequence[EndpointSlice]]) -> None:
        self._slices = slices
        self._made: dict[str, tuple[ReadyEndpoint, ...]] = {}

    def get(self, key: str, default: tuple[ReadyEndpoint, ...] = ()
            ) -> tuple[ReadyEndpoint, ...]:
        """The Service's ready endpoints (:func:`ready_endpoints` of its slices); ``default``
        for a Service without slices."""
        made = self._made.get(key)
        if made is None:
            slices = self._slices.get(key)
            if slices is None:
                return default
            made = self._made[key] = ready_endpoints(slices)
        return made

    def any_ready(self, key: str) -> bool:
        """Whether the Service has a ready endpoint (``bool(self.get(key))``)."""
        made = self._made.get(key)
        if made is not None:
            return bool(made)
        slices = self._slices.get(key)
        return slices is not None and any_ready(slices)


class PlanContext:
    """Everything derived once from the inputs and shared by all nodes' plans."""

    def __init__(
        self,
        spec: Spec,
        assignments: Assignments,
        endpoint_slices: Iterable[EndpointSlice] | None = None,
        nodes: Iterable[Node] | None = None,
    ) -> None:
        self.spec = spec
        self.assignments = {k: tuple(v) for k, v in sorted(assignments.items()) if v}
        self.nodes: dict[str, Node] = {
            n.metadata.name: n for n in sorted(nodes if nodes is not None else spec.nodes,
                                               key=lambda n: n.metadata.name)
        }
        self.ready_nodes = frozenset(name for name, n in self.nodes.items() if n.ready)
        self.services: dict[str, Service] = {s.key: s for s in spec.services}
        #: Gateways' stand-in Services: no endpoints, no NAT (Envoy serves the VIP)
        self.proxied = proxied(spec) if spec.gateways or spec.ingresses else frozenset()
        slices: dict[str, list[EndpointSlice]] = {}
        for s in endpoint_slices if endpoint_slices is not None else spec.endpoint_slices:
            if s.service_key:
                slices.setdefault(s.service_key, []).append(s)
        self.endpoints = ServiceEndpoints(slices)
        self.pool_index = PoolIndex(pool_input(p) for p in spec.pools)
        self.bgp_by_pool: dict[str, list[BGPAdvertisement]] = {p.name: [] for p in spec.pools}
        self.l2_by_pool: dict[str, list[L2Advertisement]] = {p.name: [] for p in spec.pools}
        self.adv_nodes: dict[tuple[str, str], frozenset[str]] = {}
        for bgp in sorted(spec.bgp_advertisements, key=lambda a: a.name):
            for pool in spec.pools_selected(
                bgp.spec.ip_address_pools, bgp.spec.ip_address_pool_selectors
            ):
                self.bgp_by_pool[pool.name].append(bgp)
            self.adv_nodes[("BGP", bgp.name)] = self._selected(bgp.spec.node_selectors)
        for l2 in sorted(spec.l2_advertisements, key=lambda a: a.name):
            for pool in spec.pools_selected(
                l2.spec.ip_address_pools, l2.spec.ip_address_pool_selectors
            ):
                self.l2_by_pool[pool.name].append(l2)
            self.adv_nodes[("L2", l2.name)] = self._selected(l2.spec.node_selectors)
        self._peers: dict[tuple[str, str], tuple[str, ...]] = {}
        self._peer_groups: dict[str, PeerGroups] = {}
        self._addresses: dict[str, tuple[int, int]] = {}
        self._local: dict[str, frozenset[str]] = {}
        self._eligible: dict[tuple[str, str, frozenset[str]], frozenset[str]] = {}
        self._advertised: dict[tuple[str, frozenset[str]], Advertised] = {}
        self._communities: dict[str, tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]] = {}

    def _selected(self, selectors: Sequence[Selector]) -> frozenset[str]:
        if not selectors:
            return frozenset(self.nodes)
        return frozenset(
            name
            for name in self.nodes
            if any(s.matches(self.labels_of(name)) for s in selectors)
        )

    def labels_of(self, node: str) -> Mapping[str, str]:
        """A node's labels, ``kubernetes.io/hostname`` defaulting to its name (a hand-written
        standalone Node may lack it; a BGPPeer's session is opened by the same rule,
        :func:`vipcast.core.sessions.peer_selects_node`, so routes and sessions agree)."""
        labels = self.nodes[node].metadata.labels
        if "kubernetes.io/hostname" in labels:
            return labels
        return {**labels, "kubernetes.io/hostname": node}

    # ------------------------------------------------------------ lookups

    def address(self, ip: str) -> tuple[int, int]:
        """(version, value) of an assigned address, parsed once per context."""
        addr = self._addresses.get(ip)
        if addr is None:
            addr = self._addresses[ip] = parse_address(ip)
        return addr

    def pool_of(self, ip: str) -> str | None:
        names = self.pool_index.pools_of(*self.address(ip))
        return names[0] if names else None

    def peers_for(self, adv: BGPAdvertisement, node: str) -> tuple[str, ...]:
        """BGPPeers selecting ``node`` that the advertisement sends to (all when none named)."""
        key = (adv.name, node)
        if key not in self._peers:
            labels = self.labels_of(node)
            self._peers[key] = tuple(
                sorted(
                    p.name
                    for p in self.spec.peers
                    if (not adv.spec.peers or p.name in adv.spec.peers)
                    and (
                        not p.spec.node_selectors
                        or any(s.matches(labels) for s in p.spec.node_selectors)
                    )
                )
            )
        return self._peers[key]

    def peer_groups(self, adv: BGPAdvertisement) -> PeerGroups:
        """The nodes grouped by the peers the advertisement reaches from them (none left out)."""
        groups = self._peer_groups.get(adv.name)
        if groups is None:
            by_peers: dict[tuple[str, ...], set[str]] = {}
            for node in self.nodes:
                peers = self.peers_for(adv, node)
                if peers:
                    by_peers.setdefault(peers, set()).add(node)
            groups = tuple((peers, frozenset(nodes)) for peers, nodes in sorted(by_peers.items()))
            self._peer_groups[adv.name] = groups
        return groups

    def communities(
        self, adv: BGPAdvertisement
    ) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]:
        if adv.name not in self._communities:
            std: set[int] = set()
            large: set[tuple[int, int, int]] = set()
            for text in adv.spec.communities:
                value = self.spec.resolve_community(text)
                if isinstance(value, tuple):
                    large.add(value)
                else:
                    std.add(value)
            self._communities[adv.name] = (tuple(sorted(std)), tuple(sorted(large)))
        return self._communities[adv.name]

    def local_nodes(self, key: str) -> frozenset[str]:
        """Nodes running a ready endpoint of the service."""
        nodes = self._local.get(key)
        if nodes is None:
            nodes = frozenset(e.node for e in self.endpoints.get(key, ()) if e.node)
            self._local[key] = nodes
        return nodes

    def announcements(self, key: str, ip: str) -> list[Announcement]:
        """Per advertisement covering ``ip``'s pool: the nodes eligible to announce it."""
        return [
            Announcement(kind, adv.name, ip, eligible)
            for kind, adv, eligible in self.advertised(key, ip)
        ]

    def advertised(self, key: str, ip: str) -> Advertised:
        """(kind, advertisement, eligible nodes) per advertisement covering ``ip``'s pool."""
        pool = self.pool_of(ip)
        if pool is None:
            return ()
        return self.advertised_in(pool, self.allowed(key))

    def allowed(self, key: str) -> frozenset[str]:
        """Nodes that may announce the service: Ready, and with policy Local, running it."""
        if self.services[key].spec.external_traffic_policy == "Local":
            return self.ready_nodes & self.local_nodes(key)
        return self.ready_nodes

    def advertised_in(self, pool: str, allowed: frozenset[str]) -> Advertised:
        """(kind, advertisement, eligible nodes) per advertisement of ``pool``."""
        out = self._advertised.get((pool, allowed))
        if out is None:
            found = []
            for kind, advs in (("BGP", self.bgp_by_pool), ("L2", self.l2_by_pool)):
                adv: BGPAdvertisement | L2Advertisement
                for adv in advs.get(pool, ()):
                    name = adv.name
                    cache_key = (kind, name, allowed)
                    eligible = self._eligible.get(cache_key)
                    if eligible is None:
                        eligible = self._eligible[cache_key] = (
                            self.adv_nodes[(kind, name)] & allowed
                        )
                    found.append((kind, adv, eligible))
            out = self._advertised[(pool, allowed)] = tuple(found)
        return out

    def announced_services(self) -> Iterable[tuple[str, Service, tuple[str, ...]]]:
        """Services with addresses that are LoadBalancers and have a ready endpoint."""
        for key, ips in self.assignments.items():
            service = self.services.get(key)
            if service is None or service.spec.type != "LoadBalancer":
                continue
            if service.spec.load_balancer_class not in (None, LOAD_BALANCER_CLASS):
                continue  # another controller's addresses (read from its status)
            if not self.endpoints.any_ready(key) and key not in self.proxied:
                continue
            yield key, service, ips
