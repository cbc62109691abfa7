"""The per-node plan: from (spec, assignments, endpoint slices, nodes) to each node's NodePlan.

A pure function. Every node computes the plans of all nodes alike, so L2 owners agree without
talking. What is derived once for all nodes is :class:`vipcast.core.plan_context.PlanContext`.
Rules:

* a Service is announced only when it has at least one ready endpoint;
* a node is eligible for an advertisement when it is Ready, selected by the advertisement's
  ``nodeSelectors`` and — with ``externalTrafficPolicy: Local`` — runs a ready endpoint;
* BGP: the node announces the (aggregated) prefix to the BGPPeers that select it and that the
  advertisement names (all of them when it names none);
* L2: one owner per address among the eligible nodes, by a stable hash order (``candidates``);
* NAT: each eligible node carries every port of the VIP to the ready endpoints (only the local
  ones with policy Local); ``local_vips`` lists the VIPs the node must accept;
* a Gateway's stand-in Service (:mod:`vipcast.core.gateway.address`) is announced without
  endpoints and gets no NAT rules: the node's Envoy binds its VIP.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vipcast.alloc.pools import ip_text
from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import BGPRoute, L2Ownership, NatRule, NodePlan
from vipcast.core.endpoints import PortBackends
from vipcast.core.ownership import Ranking
from vipcast.core.plan_context import Assignments, PlanContext
from vipcast.spec import (
    BGPAdvertisement,
    EndpointSlice,
    Node,
    Service,
    ServicePort,
    Spec,
)

Large = tuple[tuple[int, int, int], ...]
RouteKey = tuple[str, tuple[str, ...], tuple[int, ...], Large, int | None]


def aggregate(version: int, value: int, adv: BGPAdvertisement) -> str:
    """The prefix announced for an address under the advertisement's aggregation length."""
    bits = 32 if version == 4 else 128
    length = adv.spec.aggregation_length if version == 4 else adv.spec.aggregation_length_v6
    mask = ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
    return f"{ip_text(version, value & mask)}/{length}"


@dataclass
class _L2Duty:
    """One address answered on the LAN, with what every node needs to plan it."""

    eligible: frozenset[str]
    services: set[str]
    #: (eligible nodes, interfaces or ("*",)) of each L2Advertisement covering it
    interfaces: list[tuple[frozenset[str], tuple[str, ...]]]

    def interfaces_on(self, node: str) -> tuple[str, ...]:
        """The node's interfaces for the address; () means every interface."""
        if len(self.interfaces) == 1:  # the common case: one advertisement
            on: Iterable[str] = self.interfaces[0][1]
        else:
            on = {i for nodes, ifaces in self.interfaces if node in nodes for i in ifaces}
        return () if "*" in on else tuple(sorted(on))


class _Prefixes:
    """The announced prefix of addresses per advertisement's aggregation length."""

    def __init__(self) -> None:
        self._masks: dict[tuple[int, str], tuple[int, str]] = {}

    def of(self, family: int, value: int, adv: BGPAdvertisement) -> str:
        """Same as ``aggregate(family, value, adv)``."""
        mask = self._masks.get((family, adv.name))
        if mask is None:
            bits = 32 if family == 4 else 128
            length = adv.spec.aggregation_length if family == 4 else (
                adv.spec.aggregation_length_v6
            )
            mask = self._masks[(family, adv.name)] = (
                ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1), f"/{length}"
            )
        return ip_text(family, value & mask[0]) + mask[1]


class _Candidates:
    """L2 candidate orders, ranked only for addresses with L2 duties, once for all nodes."""

    def __init__(self, nodes: frozenset[str]) -> None:
        self._rankings: dict[frozenset[str], Ranking] = {nodes: Ranking(nodes)}
        self._orders: dict[str, tuple[str, ...]] = {}

    def of(self, ip: str, eligible: frozenset[str]) -> tuple[str, ...]:
        order = self._orders.get(ip)
        if order is None:
            ranking = self._rankings.get(eligible)
            if ranking is None:
                ranking = self._rankings[eligible] = Ranking(eligible)
            order = self._orders[ip] = ranking.order(ip)
        return order


#: one announced address (see _build): the nodes sharing its NAT rules (None: no node forwards
#: it to remote endpoints only), the address, the rules they share
_Entry = tuple[frozenset[str] | None, str, list[NatRule]]


class _NatViews:
    """Each node's NAT rules and local VIPs from the announced addresses, built once per
    *view* -- the distinct sets of announcing nodes a node belongs to, among the *wide* ones
    (more than half the planned nodes) -- and then completed per node with the rules of the
    addresses whose endpoints it runs and of the addresses only a few nodes announce.

    A node's rules are, address after address in entry order, its own rules where it runs an
    endpoint, else the shared ones where it announces the address. Nodes alike (same
    selectors, readiness and peers) hold the same view, so the walk over every address is done
    per view, not per node; per node only its own entries and those of its narrow sets (a
    Service with ``externalTrafficPolicy: Local`` is announced by the few nodes running it,
    and would otherwise make every node's view a different one) are put in: each replaces the
    shared rules of its address, one per port alike, or is inserted where the view has none.
    """

    def __init__(self, entries: list[_Entry], own: dict[str, list[tuple[int, list[NatRule]]]],
                 vips_order: tuple[str, ...], nodes: int) -> None:
        self._entries = entries
        self._own = own
        self._vips_order = vips_order
        self._rank = {ip: i for i, ip in enumerate(vips_order)}
        self._sets: dict[frozenset[str], int] = {}
        #: node -> the entries of narrow sets holding it, in entry order
        self._narrow: dict[str, list[int]] = {}
        narrow: set[frozenset[str]] = set()
        for at, (shared, _ip, _rules) in enumerate(entries):
            if shared is None or shared in self._sets:
                continue
            if shared in narrow or len(shared) * 2 <= nodes:
                narrow.add(shared)
                for node in shared:
                    self._narrow.setdefault(node, []).append(at)
            else:
                self._sets[shared] = len(self._sets)
        #: a view's VIPs in order -> their ranks in the order of all VIPs
        self._ranks: dict[tuple[str, ...], list[int]] = {}
        #: view -> (shared rules in order, rules of the view before each entry, VIPs, in order)
        self._views: dict[frozenset[frozenset[str]], tuple[
            tuple[NatRule, ...], list[int], frozenset[str], tuple[str, ...]]] = {}

    def _view(self, node: str) -> tuple[
            tuple[NatRule, ...], list[int], frozenset[str], tuple[str, ...], frozenset[object]]:
        member = frozenset(s for s in self._sets if node in s)
        view = self._views.get(member)
        if view is None:
            rules: list[NatRule] = []
            before: list[int] = []
            vips: set[str] = set()
            for shared, ip, shared_rules in self._entries:
                before.append(len(rules))
                if shared in member:
                    rules.extend(shared_rules)
                    vips.add(ip)
            ordered = (self._vips_order if len(vips) == len(self._vips_order)
                       else tuple(sorted(vips, key=self._rank.__getitem__)))
            view = self._views[member] = (tuple(rules), before, frozenset(vips), ordered)
        return (*view, member)

    def _extra(self, node: str) -> list[tuple[int, list[NatRule]]]:
        """The node's entries beyond its view, in entry order: its own rules, and the shared
        ones of the narrow sets holding it where it has none of its own."""
        mine = self._own.get(node) or []
        narrow = self._narrow.get(node)
        if not narrow:
            return mine
        owned = {at for at, _ in mine}
        entries = self._entries
        merged = mine + [(at, entries[at][2]) for at in narrow if at not in owned]
        merged.sort(key=_first)
        return merged

    def of(self, node: str) -> tuple[tuple[NatRule, ...], tuple[str, ...]]:
        """(NAT rules, local VIPs) of ``node``."""
        shared_rules, before, vips, ordered, member = self._view(node)
        mine = self._extra(node)
        if not mine:
            return shared_rules, ordered
        nat: list[NatRule] = []
        done = 0
        extra: set[str] = set()
        for at, rules in mine:
            shared, ip, _ = self._entries[at]
            start = before[at]
            nat.extend(shared_rules[done:start])
            nat.extend(rules)
            if shared in member:  # in place of the shared rules (as many: one per port)
                done = start + len(rules)
            else:
                done = start
                if ip not in vips:
                    extra.add(ip)
        nat.extend(shared_rules[done:])
        if extra:
            ordered = self._with(ordered, extra)
        return tuple(nat), ordered

    def _with(self, ordered: tuple[str, ...], extra: set[str]) -> tuple[str, ...]:
        """``ordered`` (VIPs in address order) with the VIPs of ``extra`` put in their place."""
        if len(ordered) + len(extra) == len(self._vips_order):
            return self._vips_order
        rank = self._rank
        ranks = self._ranks.get(ordered)
        if ranks is None:
            ranks = self._ranks[ordered] = [rank[ip] for ip in ordered]
        listed: list[str] = []
        done = 0
        for ip in sorted(extra, key=rank.__getitem__):
            at = bisect.bisect_left(ranks, rank[ip])
            listed.extend(ordered[done:at])
            listed.append(ip)
            done = at
        listed.extend(ordered[done:])
        return tuple(listed)


def _first(item: tuple[int, list[NatRule]]) -> int:
    return item[0]


def _port_order(port: ServicePort) -> tuple[int, str]:
    return port.port, port.protocol


def _build(ctx: PlanContext, targets: frozenset[str]) -> dict[str, NodePlan]:
    nodes_sorted = sorted(targets)
    # one entry per announced address, in (service, address) order: the nodes announcing it
    # that forward to every endpoint as remote ones (None: none do), the address, the NAT
    # rules those nodes share (one per port), and the nodes that run endpoints of it (with
    # their own rules) -- see _NatViews
    entries: list[_Entry] = []
    own_rules: dict[str, list[tuple[int, list[NatRule]]]] = {n: [] for n in nodes_sorted}
    l2_duties: dict[str, _L2Duty] = {}
    prefix_advs: dict[str, set[str]] = {}  # prefix -> the BGPAdvertisements announcing it
    # route attributes -> service -> the nodes announcing it for that service
    route_services: dict[RouteKey, dict[str, frozenset[str]]] = {}
    all_vips: set[str] = set()
    # (eligible nodes, nodes of a peer group) -> the target nodes among both
    reach: dict[tuple[frozenset[str], frozenset[str]], frozenset[str]] = {}
    prefixes = _Prefixes()
    for key, service, ips in ctx.announced_services():
        eps = ctx.endpoints.get(key, ())
        # every node's NAT rules come out in (service, vip, port, protocol) order as they are
        # appended: services are in key order, addresses in text order, ports sorted here
        ports = service.spec.ports
        if len(ports) > 1:
            ports = tuple(sorted(ports, key=_port_order))
        #: per family: the ports' backends, and the nodes running any of them
        tables: dict[int, tuple[list[tuple[ServicePort, PortBackends]], frozenset[str]]] = {}
        allowed = ctx.allowed(key)
        for ip in sorted(ips) if len(ips) > 1 else ips:
            family, value = addr = ctx.address(ip)
            pools = ctx.pool_index.pools_of(*addr)
            if not pools:
                continue  # outside every pool: announced by no advertisement
            announcing: set[str] = set()
            l2_nodes: frozenset[str] = frozenset()
            l2_ifaces: list[tuple[frozenset[str], tuple[str, ...]]] = []
            for _kind, adv, eligible in ctx.advertised_in(pools[0], allowed):
                if isinstance(adv, BGPAdvertisement):
                    prefix = prefixes.of(family, value, adv)
                    advs = prefix_advs.get(prefix)
                    if advs is None:
                        prefix_advs[prefix] = {adv.name}
                    else:
                        advs.add(adv.name)
                    std, large = ctx.communities(adv)
                    for peers, peer_nodes in ctx.peer_groups(adv):
                        nodes = reach.get((eligible, peer_nodes))
                        if nodes is None:
                            nodes = reach[(eligible, peer_nodes)] = eligible & peer_nodes & targets
                        if not nodes:
                            continue
                        announcing.update(nodes)
                        rk: RouteKey = (prefix, peers, std, large, adv.spec.local_pref)
                        by_service = route_services.get(rk)
                        if by_service is None:
                            route_services[rk] = {key: nodes}
                            continue
                        had = by_service.get(key)
                        by_service[key] = nodes if had is None else had | nodes
                else:
                    l2_nodes = l2_nodes | eligible if l2_nodes else eligible
                    l2_ifaces.append((eligible, adv.spec.interfaces or ("*",)))
            if l2_nodes:
                duty = l2_duties.get(ip)
                if duty is None:
                    duty = l2_duties[ip] = _L2Duty(l2_nodes, set(), [])
                else:
                    # sharers of an address must agree on the candidates: keep the common nodes
                    duty.eligible = duty.eligible & l2_nodes or duty.eligible
                duty.services.add(key)
                duty.interfaces.extend(l2_ifaces)
                announcing.update(l2_nodes & targets)
            if not announcing:
                continue
            all_vips.add(ip)
            sharers = frozenset(announcing)
            if key in ctx.proxied:
                entries.append((sharers, ip, []))  # Envoy binds the VIP: no NAT rules
                continue
            found = tables.get(family)
            if found is None:
                table = [(port, PortBackends(service, port, eps, family)) for port in ports]
                nodes_with = frozenset[str]().union(*(b.nodes for _, b in table))
                found = tables[family] = (table, nodes_with)
            table, backend_nodes = found
            at = len(entries)
            # nodes running backends of these ports have rules of their own (their backends
            # are local); every other node's are the remote ones
            here = sharers & backend_nodes if backend_nodes else backend_nodes
            for node in here:
                own_rules[node].append((at, _nat_rules(key, service, ip, table, node)))
            # a node without endpoints of the service sees them all as remote: the rules are
            # the same frozen values on every such node, so they are built once and shared
            remote = next(iter(sharers - here), None) if here else next(iter(sharers))
            if remote is None:
                entries.append((None, ip, []))
            else:
                entries.append((sharers, ip, _nat_rules(key, service, ip, table, remote)))
    plans: dict[str, NodePlan] = {}
    candidates = _Candidates(ctx.ready_nodes)
    # merging is needed only where two advertisements announce one prefix
    merge = any(len(advs) > 1 for advs in prefix_advs.values())
    # equal duties on different nodes are the same frozen value: build each once
    route_cache: dict[tuple[RouteKey, frozenset[str]], BGPRoute] = {}
    l2_cache: dict[tuple[str, tuple[str, ...]], L2Ownership] = {}
    l2_order = sorted(l2_duties.items(), key=lambda item: ctx.address(item[0]))
    vips_order = tuple(sorted(all_vips, key=ctx.address))
    route_table = [
        (rk, by_service, frozenset.intersection(*by_service.values()),
         BGPRoute(*rk, services=tuple(sorted(by_service))))
        for rk, by_service in sorted(route_services.items(), key=lambda item: _key_order(item[0]))
    ]
    # each node's routes and L2 duties in table order: walked once for all nodes (each entry
    # appended to the lists of the nodes it concerns), not once per node
    node_routes: dict[str, list[BGPRoute]] = {node: [] for node in nodes_sorted}
    if not merge:
        for rk, by_service, everywhere, route in route_table:
            for node in everywhere:  # announced for every service here: the shared value
                node_routes[node].append(route)
            if len(by_service) > 1:
                for node in frozenset.union(*by_service.values()) - everywhere:
                    svcs = {s for s, nodes in by_service.items() if node in nodes}
                    node_routes[node].append(_route(route_cache, rk, svcs))
    node_l2: dict[str, list[L2Ownership]] = {node: [] for node in nodes_sorted}
    for ip, duty in l2_order:
        # one advertisement: the same interfaces, so the same value, on every node
        shared: L2Ownership | None = None
        for node in duty.eligible:
            mine = node_l2.get(node)
            if mine is None:
                continue  # not planned here
            if shared is not None:
                mine.append(shared)
                continue
            interfaces = duty.interfaces_on(node)
            own = l2_cache.get((ip, interfaces))
            if own is None:
                ranked = candidates.of(ip, duty.eligible)
                owners = tuple(sorted(duty.services))
                own = L2Ownership(ip, interfaces, ranked[0], ranked, owners)
                l2_cache[(ip, interfaces)] = own
            if len(duty.interfaces) == 1:
                shared = own
            mine.append(own)
    views = _NatViews(entries, own_rules, vips_order, len(nodes_sorted))
    for node in nodes_sorted:
        routes = node_routes[node]
        if merge:
            mine_rk = {rk: {s for s, nodes in by_service.items() if node in nodes}
                       for rk, by_service, _, _ in route_table}
            merged = _merge_routes({rk: svcs for rk, svcs in mine_rk.items() if svcs})
            for rk, svcs in sorted(merged.items(), key=lambda item: item[0]):
                routes.append(_route(route_cache, rk, svcs))
        nat, vips = views.of(node)
        plans[node] = NodePlan(
            node=node, bgp=tuple(routes), l2=tuple(node_l2[node]), nat=nat, local_vips=vips
        )
    return plans


def _route(
    cache: dict[tuple[RouteKey, frozenset[str]], BGPRoute], rk: RouteKey, services: set[str]
) -> BGPRoute:
    """Equal duties on different nodes are the same frozen value: build each once."""
    ck = (rk, frozenset(services))
    route = cache.get(ck)
    if route is None:
        route = cache[ck] = BGPRoute(*rk, services=tuple(sorted(services)))
    return route


def plan_node(
    spec: Spec,
    assignments: Assignments,
    node: str,
    *,
    endpoint_slices: Iterable[EndpointSlice] | None = None,
    nodes: Iterable[Node] | None = None,
) -> NodePlan:
    """The duties of ``node``. A node unknown to the inputs gets an empty plan."""
    ctx = PlanContext(spec, assignments, endpoint_slices, nodes)
    if node not in ctx.nodes:
        return NodePlan(node=node)
    return _build(ctx, frozenset({node}))[node]


def plan_all(
    spec: Spec,
    assignments: Assignments,
    *,
    endpoint_slices: Iterable[EndpointSlice] | None = None,
    nodes: Iterable[Node] | None = None,
) -> dict[str, NodePlan]:
    """Every known node's plan, by node name (sorted)."""
    ctx = PlanContext(spec, assignments, endpoint_slices, nodes)
    return _build(ctx, frozenset(ctx.nodes))


def plan_for_spec(
    spec: Spec, node: str, current: Mapping[str, Iterable[str]] | None = None
) -> NodePlan:
    """Allocate the spec's Services (keeping ``current`` and status IPs) and plan ``node``.

    The standalone agent's planner: every agent reading the same files computes the same
    allocation, so the nodes agree on the VIPs without talking.
    """
    result = allocate_spec(spec, current)
    return plan_node(spec, result.current(), node)


def _key_order(rk: RouteKey) -> tuple[object, ...]:
    """A total order of route keys: an unset localPref sorts before any value (a key with
    localPref None and one with 0 may differ only there, and None < 0 raises)."""
    return (*rk[:4], rk[4] is not None, rk[4] or 0)


def _merge_routes(routes: dict[RouteKey, set[str]]) -> dict[RouteKey, set[str]]:
    """One set of attributes per (prefix, peer), whatever the advertisements that produced it.

    Two advertisements may cover one prefix for the same peer (overlapping pool selections):
    their communities are merged and the highest localPref wins, so a peer never gets two
    versions of a route. Peers that end up with equal attributes are grouped again.
    """
    if len({(rk[0], peer) for rk in routes for peer in rk[1]}) == sum(len(rk[1]) for rk in routes):
        return routes  # no (prefix, peer) twice: nothing to merge
    per_peer: dict[tuple[str, str], tuple[set[int], set[tuple[int, int, int]], list[int], set[str]]]
    per_peer = {}
    for (prefix, peers, std, large, pref), svcs in routes.items():
        for peer in peers:
            entry = per_peer.setdefault((prefix, peer), (set(), set(), [], set()))
            entry[0].update(std)
            entry[1].update(large)
            if pref is not None:
                entry[2].append(pref)
            entry[3].update(svcs)
    grouped: dict[tuple[str, tuple[int, ...], Large, int | None, frozenset[str]], list[str]] = {}
    for (prefix, peer), (all_std, all_large, prefs, svcs) in per_peer.items():
        attrs = (prefix, tuple(sorted(all_std)), tuple(sorted(all_large)),
                 max(prefs, default=None), frozenset(svcs))
        grouped.setdefault(attrs, []).append(peer)
    return {
        (prefix, tuple(sorted(peers)), std_t, large_t, pref): set(svcs)
        for (prefix, std_t, large_t, pref, svcs), peers in grouped.items()
    }


def _nat_rules(
    key: str,
    service: Service,
    ip: str,
    table: list[tuple[ServicePort, PortBackends]],
    node: str,
) -> list[NatRule]:
    policy = service.spec.external_traffic_policy
    ranges = service.spec.load_balancer_source_ranges
    return [
        NatRule(key, ip, port.port, port.protocol, backends.for_node(node), policy, ranges)
        for port, backends in table
    ]
